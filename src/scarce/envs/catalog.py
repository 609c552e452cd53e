"""A catalog-sized synthetic problem: many actions with features, users with context vectors.

Action features look like item embeddings: ``n_clusters`` cluster centres and a spread around
each, both with a power-law spectrum (coordinate ``j`` scaled by ``j^-1/2``), so the catalog
has a few dominant directions as learned embeddings do. A case's context is a user vector
``x = 1 + context_scale * N(0, I)``; the expected reward of action ``a`` is
``(x * f_a) . theta*`` (the catalog policies' model), standardised to unit spread over the
catalog for an average user, plus ``N(0, noise^2)``.
"""

from __future__ import annotations

import numpy as np

from scarce.core.outcome import Outcome
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.envs.base import Environment
from scarce.envs.registry import register_env


class CatalogEnv(Environment):
    """Users meet a catalog of ``n_actions`` items with ``n_features`` features each.

    Parameters
    ----------
    n_actions:
        catalog size ``K``.
    n_features:
        ``d``, features per item and per user.
    n_clusters:
        item clusters; None: ``max(1, round(sqrt(K)))``.
    context_scale:
        spread of user vectors around 1.
    noise:
        standard deviation of the reward noise.
    seed:
        the catalog and ``theta*`` (and the default stream of contexts and noise).

    Attributes
    ----------
    action_features:
        ``(K, d)`` float32 catalog (give it to a policy with ``set_actions``).
    theta:
        ``(d,)`` true parameter.
    """

    name = "catalog"

    def __init__(
        self,
        n_actions: int = 100_000,
        n_features: int = 64,
        *,
        n_clusters: int | None = None,
        context_scale: float = 0.5,
        noise: float = 0.1,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed)
        self.n_actions = check_positive_int(n_actions, "n_actions")
        self.n_features = check_positive_int(n_features, "n_features")
        self.context_scale = check_scalar(context_scale, "context_scale", low=0.0)
        self.noise = check_scalar(noise, "noise", low=0.0)
        K, d = self.n_actions, self.n_features
        n_clusters = max(1, round(np.sqrt(K))) if n_clusters is None else n_clusters
        self.n_clusters = check_positive_int(n_clusters, "n_clusters")
        rng = np.random.default_rng(self._rng.integers(2**63))
        spectrum = np.arange(1, d + 1) ** -0.5
        centres = rng.standard_normal((self.n_clusters, d)) * spectrum
        F = centres[rng.integers(0, self.n_clusters, K)]
        F += 0.3 * rng.standard_normal((K, d)) * spectrum
        theta = rng.standard_normal(d)
        spread = float(np.std(F[: min(K, 10_000)] @ theta)) or 1.0
        self.theta = theta / spread
        self.action_features = F.astype(np.float32)

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return 1.0 + self.context_scale * rng.standard_normal((n, self.n_features))

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` expected rewards ``(x * f_a) . theta*``."""
        Q = np.asarray(X, dtype=np.float64) * self.theta
        return (Q.astype(np.float32) @ self.action_features.T).astype(np.float64)

    def _outcomes(self, X: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> Outcome:
        """Rewards ``(n,)`` of ``actions``: one noise draw per case, whatever the actions
        (drawing all ``K`` would cost more than the decision)."""
        X = np.asarray(X, dtype=np.float64)
        noise = rng.standard_normal(X.shape[0]) * self.noise
        F = self.action_features[actions].astype(np.float64)
        return Outcome(np.einsum("nd,nd->n", X * self.theta, F) + noise)

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.expected_rewards(X) + self.noise * rng.standard_normal(
            (X.shape[0], self.n_actions)
        )


register_env(
    "catalog",
    CatalogEnv,
    "large action spaces: a synthetic catalog of item embeddings (clusters, power-law "
    "spectrum), user context vectors, rewards (x * f_a) . theta + noise",
)
