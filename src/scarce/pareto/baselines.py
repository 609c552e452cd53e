"""A baseline for vector rewards: per-arm scalarised LinUCB (uniform random play is the core's
:class:`~scarce.policies.Random`, which takes vector rewards too)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.ridge import RidgeRegression
from scarce.pareto.cones import dominates
from scarce.pareto.policy import VectorPolicy
from scarce.policies import register_policy


def simplex_weights(m: int, resolution: int) -> np.ndarray:
    """``(G, m)`` strictly positive weight vectors on the simplex: the lattice points
    ``a / resolution`` (``a`` non-negative integers summing to ``resolution``) shrunk towards
    the centre, ``(a + 1/2) / (resolution + m/2)``."""
    m = check_positive_int(m, "m")
    r = check_positive_int(resolution, "resolution", minimum=0)
    pts = [a for a in itertools.product(range(r + 1), repeat=m) if sum(a) == r]
    return (np.array(pts, dtype=float) + 0.5) / (r + m / 2)


@register_policy
class ScalarisedLinUCB(VectorPolicy):
    """Per-arm, per-objective LinUCB, scalarised.

    Each (arm, objective) pair has its own ridge regression on the features ``[1, x]``
    (``K * m`` independent models of :class:`scarce.models.RidgeRegression`), giving an upper
    confidence vector ``u_k = mean + alpha * sd`` per arm. Each round draws one weight vector
    ``w`` uniformly from a fixed set of weights and plays ``argmax_k s_w(u_k)`` with
    ``s_w(u) = w . u`` (``"linear"``) or ``min_j w_j u_j`` (``"chebyshev"``, reference point 0).
    The support of the policy is the set of arms that win for some weight of the set
    (``Decision.info["support"]``), and an action's probability is the share of weights it
    wins for (exact; also the decision's ``scores``). Full-information feedback
    (``full_rewards`` ``(n, K, m)``) updates every arm's models.

    Parameters
    ----------
    n_actions, n_features, n_objectives, cone, seed:
        as in :class:`~scarce.pareto.policy.VectorPolicy` (the cone only filters the
        estimated Pareto front; the scalarisations are the orthant's).
    scalarization:
        ``"linear"`` or ``"chebyshev"``.
    alpha:
        width multiplier of the confidence bound, >= 0.
    lam:
        ridge penalty, > 0.
    weights:
        ``(G, m)`` positive weights (rows are normalised to sum to 1); default
        :func:`simplex_weights` with resolution 10 for ``m = 2``, 6 for ``m = 3``, 4 above.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        n_objectives: int = 2,
        cone: Any = None,
        scalarization: str = "linear",
        alpha: float = 1.0,
        lam: float = 1.0,
        weights: Any = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            n_objectives=n_objectives,
            cone=cone,
            seed=seed,
        )
        self.scalarization = scalarization
        self.alpha = alpha
        self.lam = lam
        self.weights = weights

    def _check_params(self) -> None:
        super()._check_params()
        if self.scalarization not in ("linear", "chebyshev"):
            raise ValueError(
                f"scalarization must be 'linear' or 'chebyshev'; got {self.scalarization!r}"
            )
        check_scalar(self.alpha, "alpha", low=0.0)
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)
        m = int(self.n_objectives)
        if self.weights is None:
            w = simplex_weights(m, {1: 0, 2: 10, 3: 6}.get(m, 4))
        else:
            w = np.asarray(self.weights, dtype=float)
            if w.ndim != 2 or w.shape[1] != m or w.shape[0] < 1:
                raise ValueError(f"weights must have shape (G, {m}); got {w.shape}")
            if not np.all(np.isfinite(w)) or np.any(w <= 0):
                raise ValueError("weights must be finite and > 0")
        self.weights_ = w / w.sum(axis=1, keepdims=True)

    def _init_state(self) -> None:
        self.model_ = RidgeRegression(
            self.n_actions * self.n_objectives, self.n_features + 1, lam=self.lam
        )

    @staticmethod
    def _phi(X: np.ndarray) -> np.ndarray:
        return np.hstack([np.ones((X.shape[0], 1)), X])

    def _means_ucb(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, var = linear.predict(self._phi(X), self.model_.theta, self.model_.A_inv)
        shape = (X.shape[0], self.n_actions, self.n_objectives)
        mean = mean.reshape(shape)
        return mean, mean + self.alpha * np.sqrt(np.maximum(var, 0.0)).reshape(shape)

    def _wins(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        """``(n, G)`` winning arm for each weight vector."""
        _, ucb = self._means_ucb(X)
        W = self.weights_
        if self.scalarization == "linear":
            s = np.einsum("gj,nkj->ngk", W, ucb)
        else:
            s = (W[None, :, None, :] * ucb[:, None, :, :]).min(axis=3)
        if eligible is not None:
            s = np.where(eligible[:, None, :], s, -np.inf)
        return np.argmax(s, axis=2)

    def _probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        wins = self._wins(X, eligible)
        n, G = wins.shape
        probs = np.zeros((n, self.n_actions))
        np.add.at(probs, (np.repeat(np.arange(n), G), wins.ravel()), 1.0 / G)
        return probs

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        wins = self._wins(X, eligible)
        n, G = wins.shape
        g = self.rng_.integers(G, size=n)
        actions = wins[np.arange(n), g]
        probs = np.zeros((n, self.n_actions))
        np.add.at(probs, (np.repeat(np.arange(n), G), wins.ravel()), 1.0 / G)
        scores = probs if eligible is None else np.where(eligible, probs, -np.inf)
        return Decision(actions, probs[np.arange(n), actions], scores, info={"support": probs > 0})

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        return self._probabilities(X, eligible)

    def _pareto_estimate(self, X: np.ndarray) -> np.ndarray:
        mean, _ = self._means_ucb(X)
        dom = dominates(mean[:, :, None, :], mean[:, None, :, :], self.cone_)  # (n, j, k)
        return ~dom.any(axis=1)

    def _learn(self, X, actions, rewards, full_rewards, **extra) -> None:
        K, m = self.n_actions, self.n_objectives
        if full_rewards is not None:  # every arm's reward vector: K * m models per case
            phi = np.repeat(self._phi(X), K * m, axis=0)
            self.model_.partial_fit(phi, full_rewards.ravel(), np.tile(np.arange(K * m), len(X)))
            return
        phi = np.repeat(self._phi(X), m, axis=0)
        ids = (actions[:, None] * m + np.arange(m)[None, :]).ravel()
        self.model_.partial_fit(phi, rewards.ravel(), ids)

    def _get_learned_state(self) -> dict[str, Any]:
        return {"model": self.model_.get_state()}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.model_.set_state(state["model"])
