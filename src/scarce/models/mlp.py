"""Small networks trained online, with bounded cost (extra ``neural``: PyTorch).

The pieces every neural bandit (and every capability with a neural estimate) composes:

* :class:`NetworkConfig`: the network's shape and its training schedule, one validated value
  (built from a plain mapping, so it travels through TOML, ``get_params`` and JSON);
* :class:`MLP`: a ReLU perceptron with ``n_outputs`` heads on one shared body, or an ensemble of
  ``n_members`` independent such networks evaluated as one batched product. Trained in torch
  (Adam on minibatches of a squared loss restricted to each row's head, per-member row
  weights for bootstrapping, optional dropout); evaluated in NumPy from cached weights (a
  forward pass of one row costs microseconds, not a torch call);
* :class:`ReplayBuffer`: the observations, optionally capped to the most recent ``capacity``;
* :class:`RetrainSchedule`: when to train: first after ``first_train`` observations, then
  after ``max(retrain_every, retrain_growth * n)`` more (a fixed period, or a geometric one
  with ``O(log T)`` retrains over a horizon ``T``);
* :class:`OnlineNetwork`: the three together: ``add`` rows, and a fixed number
  ``train_steps`` of minibatch steps, warm-started from the current weights, when due. No
  step of training ever touches the whole history, so a retrain costs the same at any time.

Randomness: each :class:`MLP` owns a ``torch.Generator`` seeded from ``seed`` (initial
weights, minibatches, training dropout masks); torch's global RNG is never read. Decision-time
randomness (dropout masks of a Thompson sample) comes from a NumPy generator the caller
passes. Weights are float64 and saved as NumPy arrays (``get_state``), never pickled.

Targets are standardised for training (shift and scale from the training rows); the output
layer is re-expressed exactly when they change, so a warm start predicts what it predicted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar


def torch_module() -> Any:
    """``torch``, or an ImportError that says which extra to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "neural models need PyTorch: pip install torch==2.13.0 && pip install 'scarce[neural]'"
        ) from exc
    return torch


class one_torch_thread:
    """Run torch on one intra-op thread inside the block, then restore the setting. The
    networks here are small: on a loaded 2-core machine a batch step took 69 ms with two
    threads and 2.9 ms with one (same script, same machine)."""

    def __enter__(self) -> None:
        self._torch = torch_module()
        self._before = self._torch.get_num_threads()
        if self._before != 1:
            self._torch.set_num_threads(1)

    def __exit__(self, *exc: Any) -> None:
        if self._before != 1:
            self._torch.set_num_threads(self._before)


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


class MLP:
    """``n_members`` independent ReLU perceptrons ``R^d -> R^{n_outputs}``, evaluated together.

    Parameters
    ----------
    n_inputs:
        input dimension ``d``.
    n_outputs:
        heads on the shared body (one per action for shared contexts; 1 for per-action
        features).
    hidden:
        widths of the hidden layers.
    n_members:
        independent networks (an ensemble); 1 for a single network.
    dropout:
        probability of dropping a hidden unit in training and in :meth:`dropout_masks`.
    lr, weight_decay, batch_size:
        training settings (Adam).
    seed:
        seed or NumPy generator; seeds the network's own ``torch.Generator``.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int = 1,
        *,
        hidden: Sequence[int] = (50,),
        n_members: int = 1,
        dropout: float = 0.0,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        seed: SeedLike = None,
    ) -> None:
        torch = torch_module()
        self.n_inputs = check_positive_int(n_inputs, "n_inputs")
        self.n_outputs = check_positive_int(n_outputs, "n_outputs")
        self.hidden = tuple(check_positive_int(h, "hidden[i]") for h in hidden)
        if not self.hidden:
            raise ValueError("hidden must list at least one layer width, e.g. (50,)")
        self.n_members = check_positive_int(n_members, "n_members")
        self.dropout = check_scalar(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
        self.lr = check_scalar(lr, "lr", low=0.0, low_inclusive=False)
        self.weight_decay = check_scalar(weight_decay, "weight_decay", low=0.0)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self._gen = torch.Generator().manual_seed(int(as_generator(seed).integers(2**62)))
        widths = (self.n_inputs, *self.hidden, self.n_outputs)
        self.params: list[Any] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            # uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch.nn.Linear's scale, from our generator
            bound = 1.0 / math.sqrt(fan_in)
            for shape in ((self.n_members, fan_in, fan_out), (self.n_members, 1, fan_out)):
                u = torch.rand(shape, generator=self._gen, dtype=torch.float64)
                self.params.append(((2 * u - 1) * bound).requires_grad_(True))
        self.shift, self.scale = 0.0, 1.0
        self._cache()

    @property
    def embedding_dim(self) -> int:
        return self.hidden[-1]

    @property
    def n_parameters(self) -> int:
        """Parameters of one member."""
        return sum(int(np.prod(p.shape[1:])) for p in self.params)

    def _cache(self) -> None:
        self._np = [p.detach().numpy().copy() for p in self.params]

    def weights(self) -> list[np.ndarray]:
        """The layers' ``[W_1 (M, d, h_1), b_1 (M, 1, h_1), ..., W_L, b_L]`` as NumPy arrays
        (outputs in standardised units: multiply by ``scale``, add ``shift``)."""
        return self._np

    # ------------------------------------------------------------------ evaluation (NumPy)
    def forward(
        self, X: np.ndarray, masks: Sequence[np.ndarray] | None = None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Hidden activations (one ``(M, n, h_l)`` array per layer) and standardised outputs
        ``(M, n, n_outputs)`` of ``X`` ``(n, d)``; ``masks[l]`` ``(n, h_l)`` multiplies layer
        ``l``'s activations (dropout samples)."""
        h = X[None]
        acts = []
        for layer in range(len(self.hidden)):
            W, b = self._np[2 * layer], self._np[2 * layer + 1]
            h = np.maximum(np.matmul(h, W) + b, 0.0)
            if masks is not None:
                h = h * masks[layer]
            acts.append(h)
        return acts, np.matmul(h, self._np[-2]) + self._np[-1]

    def embed(self, X: np.ndarray) -> np.ndarray:
        """``(M, n, hidden[-1])`` last hidden layer of ``X`` ``(n, d)`` (no dropout)."""
        return self.forward(X)[0][-1]

    def predict(self, X: np.ndarray, masks: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """``(M, n, n_outputs)`` predictions in the targets' units."""
        return self.forward(X, masks)[1] * self.scale + self.shift

    def dropout_masks(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """One inverted-dropout mask per case and hidden layer, ``(n, h_l)`` each."""
        if self.dropout <= 0:
            raise ValueError("dropout_masks needs dropout > 0")
        keep = 1.0 - self.dropout
        return [(rng.random((n, h)) < keep) / keep for h in self.hidden]

    # ------------------------------------------------------------------ training (torch)
    def _rescale(self, shift: float, scale: float) -> None:
        """Change the target standardisation without changing any prediction."""
        torch = torch_module()
        W, b = self.params[-2], self.params[-1]
        with torch.no_grad():
            W.mul_(self.scale / scale)
            b.mul_(self.scale / scale).add_((self.shift - shift) / scale)
        self.shift, self.scale = shift, scale
        self._cache()

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        heads: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        *,
        n_steps: int = 100,
    ) -> MLP:
        """``n_steps`` Adam steps, from the current weights, on minibatches of the rows.

        Parameters
        ----------
        X, y:
            ``(n, d)`` inputs and ``(n,)`` targets.
        heads:
            ``(n,)`` ints in ``[0, n_outputs)``: the output each row's target belongs to
            (the loss ignores the other outputs); None: all rows on output 0.
        weights:
            ``(n, n_members)`` non-negative row weights per member (bootstrap masks); None: 1.
        n_steps:
            minibatch steps; each draws ``batch_size`` rows with replacement.
        """
        torch = torch_module()
        n = X.shape[0]
        if n == 0:
            return self
        heads = np.zeros(n, dtype=np.int64) if heads is None else heads
        sd = float(np.std(y))
        self._rescale(
            float(np.mean(y)), sd if sd > 1e-8 * max(1.0, abs(float(np.mean(y)))) else 1.0
        )
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
        yt = torch.from_numpy((np.asarray(y, dtype=np.float64) - self.shift) / self.scale)
        ht = torch.from_numpy(np.asarray(heads, dtype=np.int64))
        wt = None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float64))
        with one_torch_thread():
            self._steps(Xt, yt, ht, wt, check_positive_int(n_steps, "n_steps"))
        self._cache()
        return self

    def _steps(self, Xt: Any, yt: Any, ht: Any, wt: Any, n_steps: int) -> None:
        torch = torch_module()
        n = Xt.shape[0]
        opt = torch.optim.Adam(
            self.params, lr=self.lr, weight_decay=self.weight_decay, foreach=True
        )
        keep = 1.0 - self.dropout
        M = self.n_members
        for _ in range(n_steps):
            idx = torch.randint(n, (self.batch_size,), generator=self._gen)
            h = Xt[idx].unsqueeze(0)
            for layer, width in enumerate(self.hidden):
                h = torch.relu(torch.matmul(h, self.params[2 * layer]) + self.params[2 * layer + 1])
                if self.dropout > 0:
                    full = torch.full((M, self.batch_size, width), keep, dtype=torch.float64)
                    h = h * torch.bernoulli(full, generator=self._gen) / keep
            out = torch.matmul(h, self.params[-2]) + self.params[-1]  # (M, B, outputs)
            pred = out.gather(2, ht[idx].view(1, -1, 1).expand(M, -1, 1))[:, :, 0]
            sq = (pred - yt[idx]) ** 2  # (M, B)
            if wt is None:
                loss = sq.mean(dim=1).sum()
            else:
                w = wt[idx].T  # (M, B)
                loss = ((w * sq).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"p{i}": a.copy() for i, a in enumerate(self._np)}
        state.update(shift=self.shift, scale=self.scale)
        state["generator"] = self._gen.get_state().numpy().copy()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        torch = torch_module()
        with torch.no_grad():
            for i, p in enumerate(self.params):
                value = np.asarray(state[f"p{i}"], dtype=np.float64)
                if value.shape != tuple(p.shape):
                    raise ValueError(
                        f"state['p{i}'] must have shape {tuple(p.shape)}; got {value.shape}"
                    )
                p.copy_(torch.from_numpy(value))
        self.shift, self.scale = float(state["shift"]), float(state["scale"])
        self._gen.set_state(torch.from_numpy(np.asarray(state["generator"], dtype=np.uint8)))
        self._cache()


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
    n_members, dropout:
        as in :class:`MLP`.
    bootstrap:
        with ``n_members > 1``, the probability that a new row is in each member's training
        set (Bernoulli masks drawn once per row, kept in the buffer); 1 for none.
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
        seed: SeedLike = None,
    ) -> None:
        self.config = NetworkConfig.from_mapping(config)
        c = self.config
        rng = as_generator(seed)
        self.bootstrap = check_scalar(
            bootstrap, "bootstrap", low=0.0, high=1.0, low_inclusive=False
        )
        self.mlp = MLP(
            n_inputs,
            n_outputs,
            hidden=c.hidden,
            n_members=n_members,
            dropout=dropout,
            lr=c.lr,
            weight_decay=c.weight_decay,
            batch_size=c.batch_size,
            seed=rng,
        )
        self._mask_rng = np.random.default_rng(int(rng.integers(2**62)))
        n_weights = n_members if self.bootstrap < 1.0 else 0
        self.buffer = ReplayBuffer(n_inputs, c.buffer_size, n_weights)
        self.schedule = RetrainSchedule(c.first_train, c.retrain_every, c.retrain_growth)
        self.n_seen = 0

    def add(self, X: np.ndarray, y: np.ndarray, heads: np.ndarray | None = None) -> bool:
        """Record rows (``heads`` as in :meth:`MLP.fit`); train if due. Returns whether it
        trained."""
        heads = np.zeros(X.shape[0], dtype=np.int64) if heads is None else heads
        weights = None
        if self.buffer.n_weights:
            draws = self._mask_rng.random((X.shape[0], self.buffer.n_weights))
            weights = (draws < self.bootstrap).astype(np.float64)
        self.buffer.add(X, y, heads, weights)
        self.n_seen += X.shape[0]
        if not self.schedule.due(self.n_seen):
            return False
        b = self.buffer
        self.mlp.fit(b.X, b.y, b.heads, b.weights, n_steps=self.config.train_steps)
        self.schedule.done(self.n_seen)
        return True

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
        from scarce.core.random import generator_from_state

        self.mlp.set_state(state["mlp"])
        self.buffer.set_state(state["buffer"])
        self.schedule.set_state(state["schedule"])
        self._mask_rng = generator_from_state(state["mask_rng"])
        self.n_seen = int(state["n_seen"])
