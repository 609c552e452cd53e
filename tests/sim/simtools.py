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


class CostlyToyEnv(ToyEnv):
    """:class:`ToyEnv` whose actions ``1..K-1`` consume one resource: cost ``U[0, a / K]`` for
    action ``a`` (action 0 is free), under a budget of ``rate * horizon``; decision-time
    ``groups`` ``(n,)`` (the sign of the first feature)."""

    name = "costly-toy"
    n_resources = 1

    def __init__(self, rate: float = 0.1, seed=None, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        self.rate = rate

    def budget(self, horizon):
        return np.array([self.rate * horizon])

    @property
    def cost_bound(self):
        return (np.arange(self.n_actions) / self.n_actions)[:, None]

    def expected_costs(self, X):
        n = np.shape(X)[0]
        return np.broadcast_to(self.cost_bound[None] / 2, (n, self.n_actions, 1)).copy()

    def context_extras(self, X):
        return {"groups": (np.asarray(X)[:, 0] > 0).astype(np.int64)}

    def policy_params(self, horizon):
        return {"budget": float(self.rate * horizon), "horizon": horizon}

    def _outcomes(self, X, actions, rng):
        from scarce.core.outcome import Outcome

        rewards = self._full_outcomes(X, rng)[np.arange(len(actions)), actions]
        costs = rng.random(len(actions)) * self.cost_bound[actions, 0]
        return Outcome(rewards, {"costs": costs[:, None]})

    def case_metrics(self, X, decision, outcome):
        return {"chose_free": (decision.actions == 0).astype(float)}


class VectorToyEnv(ToyEnv):
    """Two objectives per action: the toy mean and one minus it (a trade-off)."""

    name = "vector-toy"
    n_objectives = 2

    def expected_rewards(self, X):
        p = super().expected_rewards(X)
        return np.stack([p, 1.0 - p], axis=-1)

    def _outcomes(self, X, actions, rng):
        from scarce.core.outcome import Outcome

        mu = self.expected_rewards(X)[np.arange(len(actions)), actions]
        return Outcome(mu + 0.1 * rng.standard_normal(mu.shape))


class InfoPolicy(Policy):
    """Remembers a decision-time number in ``Decision.info`` and checks it comes back; uses
    ``groups`` at decision time and ``costs`` at update time when given."""

    deterministic = True
    reward_kind = "any"

    def __init__(self, *, n_actions: int, n_features: int, budget=None, horizon=None, seed=None):
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.budget = budget
        self.horizon = horizon

    def _init_state(self):
        self.decided_ = 0
        self.returned_ = []
        self.costs_seen_ = 0
        self.groups_seen_ = []

    def _context_keywords(self):
        return ("groups",)

    def _extra_keywords(self):
        return ("costs", "info")

    def _decide(self, X, eligible, groups=None):
        n = X.shape[0]
        if groups is not None:
            self.groups_seen_.extend(np.asarray(groups).tolist())
        ids = np.arange(self.decided_, self.decided_ + n)
        self.decided_ += n
        scores = np.tile(np.arange(self.n_actions, 0, -1.0), (n, 1))  # prefer low ids
        if eligible is not None:
            scores = np.where(eligible, scores, -np.inf)
        actions = np.argmax(scores, axis=1)
        return Decision(actions, np.ones(n), scores, info={"id": ids})

    def _learn(self, X, actions, rewards, full_rewards, costs=None, info=None):
        if info is not None:
            self.returned_.extend(info["id"].tolist())
        if costs is not None:
            self.costs_seen_ += len(costs)
