"""Safe save/load: versioned JSON for structure and parameters, ``.npz`` for arrays. No pickle.

A saved object is a directory holding ``scarce.json`` and ``arrays.npz``. Any object with
``get_params()``, ``_get_state()`` and ``_set_state(state)`` can be saved; states are nested
dicts whose leaves are JSON values or NumPy arrays.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "scarce.object"
FORMAT_VERSION = 1
_JSON_NAME = "scarce.json"
_NPZ_NAME = "arrays.npz"


def _to_json(value: Any, arrays: dict[str, np.ndarray], key: str) -> Any:
    """Replace arrays by references into ``arrays``; convert NumPy scalars to Python."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"cannot save object array at {key!r}")
        arrays[key] = value
        return {"__ndarray__": key}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"state keys must be strings; got {k!r} at {key!r}")
            out[k] = _to_json(v, arrays, f"{key}/{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_json(v, arrays, f"{key}/{i}") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not np.isfinite(value):
            return {"__float__": repr(value)}
        return value
    raise TypeError(f"cannot save value of type {type(value).__name__} at {key!r}")


def _from_json(value: Any, arrays: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return np.array(arrays[value["__ndarray__"]])
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _from_json(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v, arrays) for v in value]
    return value


def save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Save ``obj`` to the directory ``path`` (created or replaced atomically)."""
    path = Path(path)
    cls = type(obj)
    qualname = f"{cls.__module__}.{cls.__qualname__}"
    from scarce import __version__

    arrays: dict[str, np.ndarray] = {}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "scarce_version": __version__,
        "class": qualname,
        "params": _to_json(obj.get_params(), arrays, "params"),
        "state": _to_json(obj._get_state(), arrays, "state"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".scarce-save-", dir=path.parent))
    try:
        (tmp / _JSON_NAME).write_text(json.dumps(doc, indent=1, allow_nan=False))
        np.savez(tmp / _NPZ_NAME, **arrays)
        if path.exists():
            if not (path / _JSON_NAME).exists():
                raise FileExistsError(f"path {str(path)!r} exists and is not a saved scarce object")
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load(path: str | os.PathLike[str]) -> Any:
    """Load an object saved by :func:`save`. Only classes inside the ``scarce`` package load."""
    path = Path(path)
    meta = path / _JSON_NAME
    if not meta.exists():
        raise FileNotFoundError(f"no saved scarce object at {str(path)!r} (missing {_JSON_NAME})")
    doc = json.loads(meta.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{str(meta)!r} is not a scarce save file (format={doc.get('format')!r})")
    if doc.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{str(meta)!r} has format_version {doc['format_version']}, newer than this "
            f"scarce supports ({FORMAT_VERSION}); upgrade scarce"
        )
    qualname = doc["class"]
    module_name, _, cls_name = qualname.rpartition(".")
    if not (module_name == "scarce" or module_name.startswith("scarce.")):
        raise ValueError(f"refusing to load class {qualname!r}: only scarce classes can be loaded")
    cls = getattr(importlib.import_module(module_name), cls_name)
    with np.load(path / _NPZ_NAME, allow_pickle=False) as arrays:
        params = _from_json(doc["params"], arrays)
        state = _from_json(doc["state"], arrays)
    obj = cls(**params)
    obj._set_state(state)
    return obj
