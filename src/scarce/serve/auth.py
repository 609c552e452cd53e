"""API keys: stored only as SHA-256 hashes, compared in constant time.

Keys are random tokens (``new_key`` makes 32 random bytes), so a fast hash is enough: there is
nothing to brute-force as with passwords, and a slow hash would cost every request. A key file
holds one ``sha256:<hex>`` line per key (``#`` comments allowed); plain keys are refused there.
``SCARCE_API_KEYS`` holds comma-separated plain keys, hashed as soon as they are read.

A key-file line may add the key's id and scopes: ``sha256:<hex> id=clinic-a scopes=decide,reward``.
The id is recorded with every decision the key makes: only keys with the same id can reward
or retry it (tenant separation; keys without an id share the id ``default``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "SCARCE_API_KEYS"
_PREFIX = "sha256:"
#: what a key may do: ``decide`` (POST /v1/decisions[/batch]), ``reward`` (POST /v1/rewards),
#: ``admin`` (GET /v1/policies/..., POST /v1/snapshots, GET /metrics)
SCOPES = ("decide", "reward", "admin")
#: the key id of keys that name none: they share their decisions (one tenant)
DEFAULT_KEY_ID = "default"


@dataclass(frozen=True)
class KeyInfo:
    """Who a key is: ``id`` (recorded with each decision; keys with the same id share their
    events, so a replacement key gets the id of the key it replaces) and ``scopes``."""

    id: str
    scopes: frozenset[str]


def hash_key(key: str) -> str:
    """``"sha256:<hex>"`` of a key (what a key file stores): the SHA-256 of its UTF-8 bytes."""
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a non-empty string")
    return _PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(32)


def key_line(hashed: str, *, key_id: str | None = None, scopes: Iterable[str] | None = None) -> str:
    """A key-file line: the hash, then ``id=NAME`` and ``scopes=a,b`` when given."""
    parse_key_entry(hashed)
    parts = [hashed]
    if key_id is not None:
        parts.append(f"id={key_id}")
    if scopes is not None:
        parts.append("scopes=" + ",".join(scopes))
    line = " ".join(parts)
    parse_key_entry(line)  # the options are checked the same way as when read back
    return line


def parse_key_entry(entry: str) -> tuple[bytes, KeyInfo]:
    """``(digest, KeyInfo)`` of ``"sha256:<hex> [id=NAME] [scopes=decide,reward,admin]"``
    (defaults: id ``"default"``, every scope)."""
    if not isinstance(entry, str):
        raise ValueError(f"key entries must be strings; got {type(entry).__name__}")
    h, *options = entry.split()
    if not h.startswith(_PREFIX) or len(h) != len(_PREFIX) + 64:
        raise ValueError(f"key hashes must look like 'sha256:<64 hex digits>'; got {h!r:.20}")
    try:
        digest = bytes.fromhex(h[len(_PREFIX) :])
    except ValueError:
        raise ValueError("key hashes must be hexadecimal after 'sha256:'") from None
    key_id, scopes = DEFAULT_KEY_ID, frozenset(SCOPES)
    for opt in options:
        name, _, value = opt.partition("=")
        if name == "id" and value and len(value) <= 100 and value.isprintable():
            key_id = value
        elif name == "scopes":
            scopes = frozenset(s for s in value.split(",") if s)
            unknown = scopes - set(SCOPES)
            if unknown or not scopes:
                raise ValueError(f"scopes must be a non-empty subset of {SCOPES}; got {value!r}")
        else:
            raise ValueError(f"unknown key option {opt!r}; expected id=NAME or scopes=a,b")
    return digest, KeyInfo(key_id, scopes)


class KeyVerifier:
    """Checks ``X-API-Key`` values against stored hashes.

    Parameters
    ----------
    entries:
        ``"sha256:<hex>"`` strings, optionally followed by ``id=NAME`` and
        ``scopes=decide,reward,admin`` (see :func:`parse_key_entry`).

    Notes
    -----
    A presented key is hashed as bytes: a header value as it came over the wire, a ``str`` as
    its UTF-8 encoding (as :func:`hash_key` does), so a non-ASCII key sent as UTF-8 works.
    ``identify`` compares the presented key's hash with *every* stored hash by
    ``hmac.compare_digest`` and combines the results without short-circuiting, so its time
    does not depend on which key matched or on how many leading characters agree.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        parsed = [parse_key_entry(e) for e in entries]
        if not parsed:
            raise ValueError("KeyVerifier needs at least one key hash")
        self._digests = tuple(d for d, _ in parsed)
        self._infos = tuple(info for _, info in parsed)

    def __len__(self) -> int:
        return len(self._digests)

    def identify(self, key: str | bytes | None) -> KeyInfo | None:
        """The key's :class:`KeyInfo`, or None when it is not one of the allowed keys."""
        raw = key.encode("utf-8") if isinstance(key, str) else (key or b"")
        presented = hashlib.sha256(raw).digest()
        found = -1
        for i, d in enumerate(self._digests):
            match = hmac.compare_digest(presented, d)
            found = i if match else found  # no early exit: every hash is compared
        return self._infos[found] if found >= 0 and raw else None

    def verify(self, key: str | bytes | None) -> bool:
        """Whether ``key`` is one of the allowed keys."""
        return self.identify(key) is not None


def read_key_file(path: str | Path) -> list[str]:
    """Key entries of a key file: one ``sha256:<hex> [id=NAME] [scopes=...]`` per line (blank
    lines and ``#`` comments skipped)."""
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
        try:
            parse_key_entry(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{i}: {exc}") from None
        out.append(line)
    return out


def load_key_hashes(
    key_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Allowed key entries from ``SCARCE_API_KEYS`` (plain keys, comma-separated; id
    ``"default"``, every scope) and a key file."""
    env = os.environ if environ is None else environ
    hashes = [hash_key(k.strip()) for k in env.get(ENV_VAR, "").split(",") if k.strip()]
    if key_file is not None:
        hashes.extend(read_key_file(key_file))
    return hashes
