"""Small environments and policies for the simulation tests (module level, so that a process
pool can pickle references to them)."""

from __future__ import annotations

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import Policy
from scarce.envs.base import Environment


class ToyEnv(Environment):
    """Bernoulli rewards with means ``sigmoid(x^T theta_a)``; contexts ``N(0, I)``."""

    name = "toy"

    def __init__(self, n_actions: int = 3, n_features: int = 2, seed=None) -> None:
        super().__init__(seed)
        self.n_actions = n_actions
        self.n_features = n_features
        self.theta = self._rng.normal(size=(n_actions, n_features))

    def _contexts(self, n, rng):
        return rng.normal(size=(n, self.n_features))

    def expected_rewards(self, X):
        return 1.0 / (1.0 + np.exp(-np.asarray(X) @ self.theta.T))

    def _full_outcomes(self, X, rng):
        p = self.expected_rewards(X)
        return (rng.random(p.shape) < p).astype(float)


class NoOracleEnv(ToyEnv):
    """Like :class:`ToyEnv` but without a known truth."""

    name = "no-oracle"
    has_oracle = False

    def expected_rewards(self, X):
        raise NotImplementedError("no oracle")

    def _full_outcomes(self, X, rng):
        p = super().expected_rewards(X)
        return (rng.random(p.shape) < p).astype(float)


def make_toy(seed=None, **kwargs) -> ToyEnv:
    """Module-level factory (what a sweep's env spec may name)."""
    return ToyEnv(seed=seed, **kwargs)


class OraclePolicy(Policy):
    """Chooses the best expected action of a given environment (zero regret by construction)."""

    deterministic = True

    def __init__(self, *, n_actions: int, n_features: int, env=None, seed=None) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.env = env

    def _decide(self, X, eligible):
        scores = self.env.expected_rewards(X)
        actions = np.argmax(scores, axis=1)
        return Decision(actions, np.ones(X.shape[0]), scores)

    def _learn(self, X, actions, rewards, full_rewards, **extra):
        pass


class RecordingPolicy(Policy):
    """Uniformly random; records every call (contexts, feedback) for inspection."""

    def __init__(self, *, n_actions: int, n_features: int, seed=None) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.seen_X: list[np.ndarray] = []
        self.updates: list[dict] = []

    def _decide(self, X, eligible):
        self.seen_X.append(X.copy())
        n = X.shape[0]
        actions = self.rng_.integers(self.n_actions, size=n)
        return Decision(actions, np.full(n, 1.0 / self.n_actions), np.zeros((n, self.n_actions)))

    def _learn(self, X, actions, rewards, full_rewards, **extra):
        self.updates.append(
            {
                "n": X.shape[0],
                "actions": None if actions is None else actions.copy(),
                "rewards": None if rewards is None else rewards.copy(),
                "full": None if full_rewards is None else full_rewards.copy(),
            }
        )


def make_no_oracle(seed=None, **kwargs) -> NoOracleEnv:
    return NoOracleEnv(seed=seed, **kwargs)
