"""API keys: stored only as SHA-256 hashes, compared in constant time.

Keys are random tokens (``new_key`` makes 32 random bytes), so a fast hash is enough: there is
nothing to brute-force as with passwords, and a slow hash would cost every request. A key file
holds one ``sha256:<hex>`` line per key (``#`` comments allowed); plain keys are refused there.
``SCARCE_API_KEYS`` holds comma-separated plain keys, hashed as soon as they are read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

ENV_VAR = "SCARCE_API_KEYS"
_PREFIX = "sha256:"


def hash_key(key: str) -> str:
    """``"sha256:<hex>"`` of a key (what a key file stores)."""
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a non-empty string")
    return _PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(32)


class KeyVerifier:
    """Checks ``X-API-Key`` values against stored hashes.

    Parameters
    ----------
    hashes:
        ``"sha256:<hex>"`` strings.

    ``verify`` compares the presented key's hash with *every* stored hash by
    ``hmac.compare_digest`` and combines the results without short-circuiting, so its time
    does not depend on which key matched or on how many leading characters agree.
    """

    def __init__(self, hashes: Iterable[str]) -> None:
        digests = []
        for h in hashes:
            if not isinstance(h, str) or not h.startswith(_PREFIX) or len(h) != len(_PREFIX) + 64:
                raise ValueError(
                    f"key hashes must look like 'sha256:<64 hex digits>'; got {h!r:.20}"
                )
            try:
                digests.append(bytes.fromhex(h[len(_PREFIX) :]))
            except ValueError:
                raise ValueError("key hashes must be hexadecimal after 'sha256:'") from None
        if not digests:
            raise ValueError("KeyVerifier needs at least one key hash")
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def verify(self, key: str | None) -> bool:
        """Whether ``key`` is one of the allowed keys."""
        presented = hashlib.sha256((key or "").encode("utf-8")).digest()
        ok = False
        for d in self._digests:
            ok |= hmac.compare_digest(presented, d)
        return ok and bool(key)


def read_key_file(path: str | Path) -> list[str]:
    """Hashes from a key file (one ``sha256:<hex>`` per line; blank lines and ``#`` comments)."""
    out = []
    for i, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(_PREFIX):
            raise ValueError(
                f"{path}:{i}: key files hold hashes ('sha256:<hex>'), not plain keys; "
                "make one with `scarce api-key`"
            )
        out.append(line)
    return out


def load_key_hashes(
    key_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Allowed key hashes from ``SCARCE_API_KEYS`` (plain keys, comma-separated) and a key file."""
    env = os.environ if environ is None else environ
    hashes = [hash_key(k.strip()) for k in env.get(ENV_VAR, "").split(",") if k.strip()]
    if key_file is not None:
        hashes.extend(read_key_file(key_file))
    return hashes
