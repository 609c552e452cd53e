"""Neural feature maps for the linear machinery (extra ``neural``: PyTorch).

* :class:`MLPEmbedding`: a small multilayer perceptron trained on one target; its last hidden
  layer is a feature map ``phi(x)``. Optional dropout (for Monte Carlo dropout samples) and an
  optional Gaussian head (mean and log-variance, trained by the Gaussian negative
  log-likelihood) give the other two uncertainty kinds used by the fair allocation policies.
* :class:`NeuralLinear`: the neural-linear model (Riquelme, Tucker and Snoek, 2018): an
  :class:`MLPEmbedding` retrained on the whole history every ``retrain_every`` observations,
  and a Bayesian linear model (:class:`~scarce.models.ridge.RidgeRegression` for the identity
  link, :class:`~scarce.models.glm.LogisticRegression` for the logistic link) on the
  embeddings, refitted from scratch on the recomputed embeddings after each retraining and
  updated online in between. Its mean and variance feed the usual UCB/TS rules.

Randomness: each object owns a ``torch.Generator`` seeded from ``seed`` (initial weights,
minibatch order, dropout masks); torch's global RNG is neither read nor changed. Networks are
small, so they train on the CPU in float64, like the rest of the library. State is saved as
NumPy arrays (:meth:`get_state`), never pickled modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.core.random import as_generator
from scarce.core.validation import check_positive_int, check_scalar


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "neural models need PyTorch: pip install torch==2.13.0 && pip install 'scarce[neural]'"
        ) from exc
    return torch


_LINKS = ("identity", "logistic")
_HEADS = ("mean", "gaussian")


class MLPEmbedding:
    """A ReLU multilayer perceptron ``x -> phi(x) -> output`` whose last hidden layer
    ``phi(x)`` is used as features.

    Parameters
    ----------
    n_features:
        input dimension ``d``.
    hidden:
        widths of the hidden layers; the embedding dimension is ``hidden[-1]``.
    link:
        ``"identity"`` (squared loss on real targets) or ``"logistic"`` (cross-entropy on
        targets in [0, 1]; outputs are probabilities).
    head:
        ``"mean"`` (one output) or ``"gaussian"`` (mean and log-variance, Gaussian negative
        log-likelihood; identity link only).
    dropout:
        dropout probability after each hidden layer, in [0, 1); > 0 enables
        :meth:`sample_outputs` (Monte Carlo dropout).
    epochs, batch_size, lr, weight_decay:
        Adam training settings for each :meth:`fit`.
    warm_start:
        continue from the current weights on each :meth:`fit` (True) or re-initialise (False).
    seed:
        seed or ``numpy.random.Generator`` for the weights, minibatches and dropout.
    """

    def __init__(
        self,
        n_features: int,
        *,
        hidden: Sequence[int] = (32, 16),
        link: str = "identity",
        head: str = "mean",
        dropout: float = 0.0,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        warm_start: bool = True,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self.n_features = check_positive_int(n_features, "n_features")
        self.hidden = tuple(check_positive_int(h, "hidden[i]") for h in hidden)
        if not self.hidden:
            raise ValueError("hidden must list at least one layer width, e.g. (32, 16)")
        if link not in _LINKS:
            raise ValueError(f"link must be one of {_LINKS}; got {link!r}")
        if head not in _HEADS:
            raise ValueError(f"head must be one of {_HEADS}; got {head!r}")
        if head == "gaussian" and link != "identity":
            raise ValueError("head='gaussian' needs link='identity'")
        self.link = link
        self.head = head
        self.dropout = check_scalar(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
        self.epochs = check_positive_int(epochs, "epochs")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.lr = check_scalar(lr, "lr", low=0.0, low_inclusive=False)
        self.weight_decay = check_scalar(weight_decay, "weight_decay", low=0.0)
        self.warm_start = bool(warm_start)
        rng = as_generator(seed)
        torch = _torch()
        self._gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        self._build()

    @property
    def embedding_dim(self) -> int:
        return self.hidden[-1]

    def _build(self) -> None:
        torch = _torch()
        nn = torch.nn
        layers: list[Any] = []
        width = self.n_features
        # nn.Linear's own initialisation draws from torch's global RNG (then overwritten):
        # fork it so that building a network leaves the global stream alone
        with torch.random.fork_rng(devices=[]):
            for h in self.hidden:
                lin = nn.Linear(width, h)
                self._init_linear(lin)
                layers += [lin, nn.ReLU()]
                if self.dropout > 0:
                    layers.append(nn.Dropout(self.dropout))
                width = h
            self.body = nn.Sequential(*layers).double()
            self.out = nn.Linear(width, 2 if self.head == "gaussian" else 1)
            self._init_linear(self.out)
        self.out = self.out.double()

    def _init_linear(self, lin: Any) -> None:
        # Kaiming-uniform-like init drawn from our own generator (not torch's global RNG)
        torch = _torch()
        bound = 1.0 / np.sqrt(lin.in_features)
        with torch.no_grad():
            lin.weight.copy_((torch.rand(lin.weight.shape, generator=self._gen) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(lin.bias.shape, generator=self._gen) * 2 - 1) * bound)

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}); got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X must be finite (no NaN or inf)")
        return X

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPEmbedding:
        """Train on ``X`` ``(n, d)`` and targets ``y`` ``(n,)`` for ``epochs`` passes."""
        torch = _torch()
        X = self._check_X(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y must have shape ({X.shape[0]},); got {y.shape}")
        if self.link == "logistic" and (y.min(initial=0.0) < 0 or y.max(initial=1.0) > 1):
            raise ValueError("y must lie in [0, 1] for link='logistic'")
        if not self.warm_start:
            self._build()
        if X.shape[0] == 0:
            return self
        params = list(self.body.parameters()) + list(self.out.parameters())
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        n = X.shape[0]
        self.body.train()
        # dropout masks come from torch's global RNG: fork it, seeded from our generator, so
        # training is reproducible and the global stream is left alone
        with torch.random.fork_rng(devices=[], enabled=self.dropout > 0):
            if self.dropout > 0:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=self._gen)))
            for _ in range(self.epochs):
                order = torch.randperm(n, generator=self._gen)
                for start in range(0, n, self.batch_size):
                    idx = order[start : start + self.batch_size]
                    loss = self._loss(self._forward(Xt[idx]), yt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        self.body.eval()
        return self

    def _forward(self, Xt: Any) -> Any:
        return self.out(self.body(Xt))

    def _loss(self, out: Any, y: Any) -> Any:
        torch = _torch()
        if self.head == "gaussian":
            mean, log_var = out[:, 0], out[:, 1].clamp(-10.0, 10.0)
            return 0.5 * torch.mean(log_var + (y - mean) ** 2 / torch.exp(log_var))
        if self.link == "logistic":
            return torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y)
        return torch.mean((out[:, 0] - y) ** 2)

    def embed(self, X: np.ndarray) -> np.ndarray:
        """``(n, hidden[-1])`` last-hidden-layer features (dropout off)."""
        torch = _torch()
        X = self._check_X(X)
        self.body.eval()
        with torch.no_grad():
            return self.body(torch.from_numpy(X)).numpy().astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``(n,)`` network prediction (a probability for the logistic link; the mean for the
        Gaussian head), dropout off."""
        torch = _torch()
        X = self._check_X(X)
        self.body.eval()
        with torch.no_grad():
            out = self._forward(torch.from_numpy(X))[:, 0]
            if self.link == "logistic":
                out = torch.sigmoid(out)
        return out.numpy().astype(np.float64)

    def predict_variance(self, X: np.ndarray) -> np.ndarray:
        """``(n,)`` predicted noise variance of the Gaussian head."""
        torch = _torch()
        if self.head != "gaussian":
            raise ValueError("predict_variance needs head='gaussian'")
        X = self._check_X(X)
        with torch.no_grad():
            log_var = self._forward(torch.from_numpy(X))[:, 1].clamp(-10.0, 10.0)
        return np.exp(log_var.numpy().astype(np.float64))

    def sample_outputs(self, X: np.ndarray, n_samples: int) -> np.ndarray:
        """``(n_samples, n)`` predictions with dropout on (Monte Carlo dropout)."""
        torch = _torch()
        if self.dropout <= 0:
            raise ValueError("sample_outputs needs dropout > 0")
        n_samples = check_positive_int(n_samples, "n_samples")
        X = self._check_X(X)
        Xt = torch.from_numpy(X)
        self.body.train()
        out = []
        # dropout masks come from torch's RNG: fork it and seed from our generator
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=self._gen)))
            for _ in range(n_samples):
                o = self._forward(Xt)[:, 0]
                out.append(torch.sigmoid(o) if self.link == "logistic" else o)
        self.body.eval()
        return torch.stack(out).numpy().astype(np.float64)

    def get_state(self) -> dict[str, Any]:
        """Weights as NumPy arrays and the generator state (as a uint8 array)."""
        state = {f"body.{k}": v.numpy().copy() for k, v in self.body.state_dict().items()}
        state.update({f"out.{k}": v.numpy().copy() for k, v in self.out.state_dict().items()})
        state["generator"] = self._gen.get_state().numpy().copy()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        torch = _torch()
        self.body.load_state_dict(
            {
                k[5:]: torch.from_numpy(np.asarray(v))
                for k, v in state.items()
                if k.startswith("body.")
            }
        )
        self.out.load_state_dict(
            {
                k[4:]: torch.from_numpy(np.asarray(v))
                for k, v in state.items()
                if k.startswith("out.")
            }
        )
        self._gen.set_state(torch.from_numpy(np.asarray(state["generator"], dtype=np.uint8)))


class NeuralLinear:
    """Neural-linear model: MLP embeddings plus a Bayesian linear model on them.

    Parameters
    ----------
    n_features:
        input dimension ``d``.
    link:
        ``"identity"`` (ridge on the embeddings; ``predict`` gives the mean and unit-noise
        variance of ``phi(x)^T theta``) or ``"logistic"`` (L2 logistic regression on the
        embeddings; the mean is the probability and the variance is the design-matrix width
        ``phi^T (lam I + sum phi phi^T)^{-1} phi`` on the logit scale).
    hidden, epochs, batch_size, lr, weight_decay:
        settings of the :class:`MLPEmbedding`.
    lam:
        ridge penalty / prior precision of the linear model.
    retrain_every:
        retrain the network on the whole history after this many new observations
        (the spec's schedule); the first training happens once ``min_train`` are seen.
    min_train:
        observations needed before the first training; before it the linear model works on
        the randomly initialised network's features.
    seed:
        seed or generator.
    """

    def __init__(
        self,
        n_features: int,
        *,
        link: str = "identity",
        hidden: Sequence[int] = (32, 16),
        lam: float = 1.0,
        retrain_every: int = 100,
        min_train: int = 20,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        from scarce.models.glm import LogisticRegression
        from scarce.models.ridge import RidgeRegression

        self.n_features = check_positive_int(n_features, "n_features")
        self.link = link
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.retrain_every = check_positive_int(retrain_every, "retrain_every")
        self.min_train = check_positive_int(min_train, "min_train")
        self.net = MLPEmbedding(
            n_features,
            hidden=hidden,
            link=link,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
        )
        h = self.net.embedding_dim
        self._linear_cls = RidgeRegression if link == "identity" else LogisticRegression
        self.linear = self._linear_cls(1, h, lam=self.lam)
        self._X = np.zeros((0, self.n_features))
        self._y = np.zeros(0)
        self._since_train = 0
        self.n_retrains = 0

    @property
    def n_obs(self) -> int:
        return int(self._y.shape[0])

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Add observations ``X`` ``(n, d)``, ``y`` ``(n,)``; retrain on schedule."""
        X = self.net._check_X(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y must have shape ({X.shape[0]},); got {y.shape}")
        self._X = np.concatenate([self._X, X])
        self._y = np.concatenate([self._y, y])
        self._since_train += X.shape[0]
        due = self.n_obs >= self.min_train and (
            self.n_retrains == 0 or self._since_train >= self.retrain_every
        )
        if due:
            self.retrain()
        elif X.shape[0]:
            self.linear.partial_fit(self.net.embed(X), y)

    def retrain(self) -> None:
        """Retrain the network on the whole history, recompute every embedding and refit the
        linear model on them from scratch."""
        self.net.fit(self._X, self._y)
        self.linear = self._linear_cls(1, self.net.embedding_dim, lam=self.lam)
        if self.n_obs:
            self.linear.partial_fit(self.net.embed(self._X), self._y)
        self._since_train = 0
        self.n_retrains += 1

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, variance)``, each ``(n,)`` (see the class docstring for the scale)."""
        from scarce.models.linear import predict_variance

        Z = self.net.embed(X)
        if self.link == "identity":
            mean, var = self.linear.predict(Z)
            return mean[:, 0], var[:, 0]
        return self.linear.predict_proba(Z)[:, 0], predict_variance(Z, self.linear.design_cov)[:, 0]
