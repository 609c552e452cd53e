"""Small networks trained online, with bounded cost (extra ``neural``: PyTorch).

The pieces every neural bandit (and every capability with a neural estimate) composes:

* :class:`NetworkConfig`: the network's shape and its training schedule, one validated value
  (built from a plain mapping, so it travels through TOML, ``get_params`` and JSON);
* :class:`MLP` (defined in :mod:`scarce.models.torch_mlp`, re-exported here): a ReLU
  perceptron with ``n_outputs`` heads on one body, or ``n_members`` independent ones evaluated
  as one batched product; trained in torch (Adam on minibatches of a squared, logistic or
  Gaussian loss restricted to each row's head, per-member row weights, optional dropout);
  evaluated in NumPy from cached weights;
* :class:`ReplayBuffer`: the observations, optionally capped to the most recent ``capacity``;
* :class:`RetrainSchedule`: when to train: first after ``first_train`` observations, then
  after ``max(retrain_every, retrain_growth * n)`` more (a fixed period, or a geometric one
  with ``O(log T)`` retrains over a horizon ``T``);
* :class:`OnlineNetwork`: the three together: ``add`` rows, and a fixed number
  ``train_steps`` of minibatch steps, warm-started from the current weights, when due. No
  step of training ever touches the whole history, so a retrain costs the same at any time.

Randomness: each :class:`MLP` owns a ``torch.Generator`` seeded from ``seed`` (initial
weights, minibatches, training dropout masks); torch's global RNG is never read. Bootstrap
masks come from a NumPy generator of the :class:`OnlineNetwork`. Weights are float32, saved
as NumPy arrays (``get_state``), never pickled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from scarce.core.random import SeedLike, as_generator, generator_from_state
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models.torch_mlp import LOSSES, MLP, one_torch_thread, torch_module


@dataclass(frozen=True)
class NetworkConfig:
    """Shape and training schedule of an online network.

    Attributes
    ----------
    hidden:
        widths of the hidden layers; the embedding is the last one.
    lr, weight_decay:
        Adam step size and L2 penalty.
    batch_size:
        rows per minibatch step (drawn with replacement from the buffer).
    train_steps:
        minibatch steps per retraining (the cost of one retraining, whatever the history).
    first_train:
        observations before the first training (before it the network keeps its random
        initial weights).
    retrain_every, retrain_growth:
        after a retraining at ``n`` observations, the next one comes
        ``max(retrain_every, ceil(retrain_growth * n))`` observations later.
    buffer_size:
        keep only the most recent this many observations (None: all).
    """

    hidden: tuple[int, ...] = (64, 64)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    train_steps: int = 100
    first_train: int = 32
    retrain_every: int = 10
    retrain_growth: float = 0.3
    buffer_size: int | None = None

    def __post_init__(self) -> None:
        hidden = tuple(self.hidden) if isinstance(self.hidden, (list, tuple)) else None
        if not hidden:
            raise ValueError(
                f"network['hidden'] must be a non-empty list of ints; got {self.hidden!r}"
            )
        object.__setattr__(
            self, "hidden", tuple(check_positive_int(h, "network['hidden'][i]") for h in hidden)
        )
        check_scalar(self.lr, "network['lr']", low=0.0, low_inclusive=False)
        check_scalar(self.weight_decay, "network['weight_decay']", low=0.0)
        check_scalar(self.retrain_growth, "network['retrain_growth']", low=0.0)
        for name in ("batch_size", "train_steps", "first_train", "retrain_every"):
            check_positive_int(getattr(self, name), f"network[{name!r}]")
        if self.buffer_size is not None:
            check_positive_int(self.buffer_size, "network['buffer_size']")

    @classmethod
    def from_mapping(
        cls, value: NetworkConfig | Mapping[str, Any] | None, **defaults: Any
    ) -> NetworkConfig:
        """A config from ``value`` (a mapping of some fields, or None), the other fields taken
        from ``defaults`` then from the class defaults. Unknown keys raise ValueError."""
        if isinstance(value, NetworkConfig):
            return value
        if value is not None and not isinstance(value, Mapping):
            raise ValueError(f"network must be a mapping of settings or None; got {value!r}")
        names = [f.name for f in fields(cls)]
        given = dict(value or {})
        unknown = sorted(set(given) - set(names)) + sorted(set(defaults) - set(names))
        if unknown:
            raise ValueError(f"network got unknown key(s) {unknown}; valid keys: {names}")
        return cls(**{**defaults, **given})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out


class ReplayBuffer:
    """Observations ``(x, y, head, weights)``; the most recent ``capacity`` when capped.

    Parameters
    ----------
    n_features:
        ``d``.
    capacity:
        rows kept (the oldest are overwritten); None keeps all.
    n_weights:
        per-row weight columns (bootstrap masks of an ensemble's members); 0 for none.
    """

    def __init__(self, n_features: int, capacity: int | None = None, n_weights: int = 0) -> None:
        self.n_features = check_positive_int(n_features, "n_features")
        self.capacity = None if capacity is None else check_positive_int(capacity, "capacity")
        self.n_weights = int(n_weights)
        self._X = np.zeros((0, self.n_features))
        self._y = np.zeros(0)
        self._heads = np.zeros(0, dtype=np.int64)
        self._w = np.zeros((0, self.n_weights))
        self.size = 0
        self._pos = 0  # next row to overwrite once the capacity is reached

    def _grow(self, need: int) -> None:
        if need <= self._y.shape[0]:
            return
        cap = max(need, 2 * self._y.shape[0], 64)
        if self.capacity is not None:
            cap = min(cap, self.capacity)
        for name in ("_X", "_y", "_heads", "_w"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def add(
        self, X: np.ndarray, y: np.ndarray, heads: np.ndarray, weights: np.ndarray | None = None
    ) -> None:
        """Append rows ``X`` ``(n, d)``, ``y`` ``(n,)``, ``heads`` ``(n,)`` and ``weights``
        ``(n, n_weights)``."""
        n = X.shape[0]
        if self.capacity is not None and n > self.capacity:
            X, y, heads = X[-self.capacity :], y[-self.capacity :], heads[-self.capacity :]
            weights = None if weights is None else weights[-self.capacity :]
            n = self.capacity
        free = n if self.capacity is None else min(n, self.capacity - self.size)
        self._grow(self.size + free)
        cols = [(self._X, X), (self._y, y), (self._heads, heads)]
        if self.n_weights:
            cols.append((self._w, weights))
        for arr, new in cols:
            arr[self.size : self.size + free] = new[:free]
        self.size += free
        for i in range(free, n):  # full: overwrite the oldest rows in turn
            for arr, new in cols:
                arr[self._pos] = new[i]
            self._pos = (self._pos + 1) % self.size

    @property
    def X(self) -> np.ndarray:
        return self._X[: self.size]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.size]

    @property
    def heads(self) -> np.ndarray:
        return self._heads[: self.size]

    @property
    def weights(self) -> np.ndarray | None:
        return self._w[: self.size] if self.n_weights else None

    def get_state(self) -> dict[str, Any]:
        return {
            "X": self.X.copy(),
            "y": self.y.copy(),
            "heads": self.heads.copy(),
            "w": self._w[: self.size].copy(),
            "pos": self._pos,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        X = np.asarray(state["X"], dtype=np.float64).reshape(-1, self.n_features)
        self.size = 0
        self._grow(X.shape[0])
        self.size = X.shape[0]
        self._X[: self.size] = X
        self._y[: self.size] = np.asarray(state["y"], dtype=np.float64)
        self._heads[: self.size] = np.asarray(state["heads"], dtype=np.int64)
        self._w[: self.size] = np.asarray(state["w"], dtype=np.float64).reshape(
            self.size, self.n_weights
        )
        self._pos = int(state["pos"])


class RetrainSchedule:
    """When to train: at ``first_train`` observations, then after
    ``max(retrain_every, ceil(retrain_growth * n))`` more each time (``n`` the count at the
    last training). ``retrain_growth = 0``: a fixed period (Riquelme et al. 2018 retrain every
    50); ``> 0``: ``O(log T)`` trainings over a horizon ``T``."""

    def __init__(self, first_train: int, retrain_every: int, retrain_growth: float = 0.0) -> None:
        self.first_train = check_positive_int(first_train, "first_train")
        self.retrain_every = check_positive_int(retrain_every, "retrain_every")
        self.retrain_growth = check_scalar(retrain_growth, "retrain_growth", low=0.0)
        self.next_at = self.first_train
        self.n_retrains = 0

    def due(self, n_obs: int) -> bool:
        return n_obs >= self.next_at

    def done(self, n_obs: int) -> None:
        self.n_retrains += 1
        gap = max(self.retrain_every, math.ceil(self.retrain_growth * n_obs))
        self.next_at = n_obs + gap

    def get_state(self) -> dict[str, Any]:
        return {"next_at": self.next_at, "n_retrains": self.n_retrains}

    def set_state(self, state: dict[str, Any]) -> None:
        self.next_at, self.n_retrains = int(state["next_at"]), int(state["n_retrains"])


class OnlineNetwork:
    """An :class:`MLP`, its :class:`ReplayBuffer` and its :class:`RetrainSchedule`.

    Parameters
    ----------
    n_inputs, n_outputs:
        as in :class:`MLP`.
    config:
        a :class:`NetworkConfig` (or a mapping of its fields).
    n_members, dropout, loss:
        as in :class:`MLP`.
    bootstrap:
        with ``n_members > 1``, the probability that a new row is in each member's training
        set (Bernoulli masks drawn once per row, kept in the buffer); 1 for none.
    weighted:
        :meth:`add` takes per-member row ``weights`` (kept in the buffer): e.g. a one-hot of
        the model each row belongs to, so that member ``k`` of a bank of independent networks
        trains on model ``k``'s rows only.
    seed:
        seed or NumPy generator (weights, minibatches, bootstrap masks).
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        config: NetworkConfig | Mapping[str, Any] | None = None,
        *,
        n_members: int = 1,
        dropout: float = 0.0,
        bootstrap: float = 1.0,
        weighted: bool = False,
        loss: str = "squared",
        seed: SeedLike = None,
    ) -> None:
        self.config = NetworkConfig.from_mapping(config)
        c = self.config
        rng = as_generator(seed)
        self.bootstrap = check_scalar(
            bootstrap, "bootstrap", low=0.0, high=1.0, low_inclusive=False
        )
        self.weighted = bool(weighted)
        self.mlp = MLP(
            n_inputs,
            n_outputs,
            hidden=c.hidden,
            n_members=n_members,
            dropout=dropout,
            lr=c.lr,
            weight_decay=c.weight_decay,
            batch_size=c.batch_size,
            loss=loss,
            seed=rng,
        )
        self._mask_rng = np.random.default_rng(int(rng.integers(2**62)))
        n_weights = n_members if (self.bootstrap < 1.0 or self.weighted) else 0
        self.buffer = ReplayBuffer(n_inputs, c.buffer_size, n_weights)
        self.schedule = RetrainSchedule(c.first_train, c.retrain_every, c.retrain_growth)
        self.n_seen = 0

    def add(
        self,
        X: np.ndarray,
        y: np.ndarray,
        heads: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> bool:
        """Record rows ``X`` ``(n, d)``, ``y`` ``(n,)`` (``heads`` as in :meth:`MLP.fit`;
        ``weights`` ``(n, n_members)`` non-negative, only with ``weighted=True``, where None
        means 1); train if due. Returns whether it trained."""
        n = X.shape[0]
        heads = np.zeros(n, dtype=np.int64) if heads is None else heads
        M = self.mlp.n_members
        if weights is not None:
            if not self.weighted:
                raise ValueError("weights need OnlineNetwork(..., weighted=True)")
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (n, M) or np.any(weights < 0):
                raise ValueError(f"weights must be non-negative with shape ({n}, {M})")
        elif self.buffer.n_weights:
            weights = np.ones((n, M))
        if self.bootstrap < 1.0:
            draws = self._mask_rng.random((n, M))
            weights = weights * (draws < self.bootstrap)
        self.buffer.add(X, y, heads, weights)
        self.n_seen += n
        if not self.schedule.due(self.n_seen):
            return False
        self.train()
        return True

    def train(self, n_steps: int | None = None) -> None:
        """``n_steps`` (default ``config.train_steps``) warm-started steps on the buffer now,
        counted as a retraining by the schedule."""
        b = self.buffer
        steps = self.config.train_steps if n_steps is None else n_steps
        self.mlp.fit(b.X, b.y, b.heads, b.weights, n_steps=steps)
        self.schedule.done(self.n_seen)

    @property
    def n_retrains(self) -> int:
        return self.schedule.n_retrains

    def get_state(self) -> dict[str, Any]:
        return {
            "mlp": self.mlp.get_state(),
            "buffer": self.buffer.get_state(),
            "schedule": self.schedule.get_state(),
            "mask_rng": self._mask_rng.bit_generator.state,
            "n_seen": self.n_seen,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.mlp.set_state(state["mlp"])
        self.buffer.set_state(state["buffer"])
        self.schedule.set_state(state["schedule"])
        self._mask_rng = generator_from_state(state["mask_rng"])
        self.n_seen = int(state["n_seen"])


__all__ = [
    "LOSSES",
    "MLP",
    "NetworkConfig",
    "OnlineNetwork",
    "ReplayBuffer",
    "RetrainSchedule",
    "one_torch_thread",
    "torch_module",
]
