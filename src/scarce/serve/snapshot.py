"""Model snapshots as bytes: the ``scarce.core.persist`` directory (``scarce.json`` +
``arrays.npz``) packed into two byte strings and a SHA-256 checksum. Never pickle: loading goes
through ``persist.load`` (``allow_pickle=False``, only ``scarce`` classes)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scarce.core import persist


class SnapshotError(ValueError):
    """A snapshot failed its checksum or does not hold the expected policy."""


@dataclass(frozen=True)
class Snapshot:
    """A published model: ``state_json`` and ``arrays_npz`` bytes as ``persist`` writes them.

    ``watermark`` is the number of joined events (in join order) the model has learned from.
    """

    version: int
    watermark: int
    created_at: float
    checksum: str
    state_json: bytes
    arrays_npz: bytes


def checksum(state_json: bytes, arrays_npz: bytes) -> str:
    """SHA-256 over both parts, length-prefixed so the split point is part of the hash."""
    h = hashlib.sha256()
    for part in (state_json, arrays_npz):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def encode(policy: Any) -> tuple[bytes, bytes, str]:
    """``(state_json, arrays_npz, checksum)`` of a policy, via ``persist.save``."""
    with tempfile.TemporaryDirectory(prefix="scarce-snap-") as tmp:
        path = persist.save(policy, Path(tmp) / "model")
        state_json = (path / "scarce.json").read_bytes()
        arrays_npz = (path / "arrays.npz").read_bytes()
    return state_json, arrays_npz, checksum(state_json, arrays_npz)


def _header(state_json: bytes) -> tuple[Any, Any]:
    """``(class, params)`` as a saved ``scarce.json`` states them (nothing is constructed)."""
    try:
        doc = json.loads(state_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"snapshot state is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SnapshotError("snapshot state is not a saved scarce object")
    return doc.get("class"), doc.get("params")


def decode(
    state_json: bytes, arrays_npz: bytes, expected_checksum: str, expected_model: Any
) -> Any:
    """Verify the checksum, then that the snapshot holds the class and the parameters of
    ``expected_model`` (a fresh instance of the configured policy), and only then load it
    through ``persist.load``: a forged snapshot's class is never constructed, and a model with
    other parameters is never served.

    Raises
    ------
    SnapshotError
        on a checksum mismatch, another class or other parameters.
    """
    actual = checksum(state_json, arrays_npz)
    if actual != expected_checksum:
        raise SnapshotError(
            f"snapshot checksum mismatch: stored {expected_checksum[:16]}..., computed {actual[:16]}..."
        )
    want_class, want_params = _header(encode(expected_model)[0])
    got_class, got_params = _header(state_json)
    if got_class != want_class:
        raise SnapshotError(f"snapshot holds a {got_class!r}, expected {want_class!r}")
    if got_params != want_params:
        raise SnapshotError(
            f"snapshot parameters {got_params!r} differ from the configured {want_params!r}"
        )
    with tempfile.TemporaryDirectory(prefix="scarce-snap-") as tmp:
        path = Path(tmp) / "model"
        path.mkdir()
        (path / "scarce.json").write_bytes(state_json)
        (path / "arrays.npz").write_bytes(arrays_npz)
        obj = persist.load(path)
    if type(obj) is not type(expected_model):  # pragma: no cover - the header said so
        raise SnapshotError(f"snapshot holds a {type(obj).__name__}")
    from scarce.serve.learner import restore_stream

    saved = json.loads(state_json).get("state")
    if isinstance(saved, dict):  # (the generator state is plain JSON: ints and strings)
        restore_stream(obj, saved)
    return obj
