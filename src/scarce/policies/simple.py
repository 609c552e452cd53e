"""Baselines: uniform random, greedy and epsilon-greedy on ridge estimates."""

from __future__ import annotations

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_scalar
from scarce.models.ridge import RidgeRegression
from scarce.policies.base import (
    ModelPolicy,
    greedy_decision,
    masked,
    one_hot,
    uniform_choice,
    uniform_probabilities,
)


class Random(Policy):
    """Uniformly random eligible action; learns nothing."""

    reward_kind = "any"  # ignores rewards, so it runs beside vector-reward policies too

    def _decide(self, X, eligible):
        n = X.shape[0]
        actions = uniform_choice(self.rng_, n, self.n_actions, eligible)
        probs = uniform_probabilities(n, self.n_actions, eligible)
        return Decision(
            actions, probs[np.arange(n), actions], masked(np.zeros((n, self.n_actions)), eligible)
        )

    def _action_probabilities(self, X, eligible):
        return uniform_probabilities(X.shape[0], self.n_actions, eligible)

    def _learn(self, X, actions, rewards, full_rewards, **extra):
        pass


class EpsilonGreedy(ModelPolicy):
    """With probability ``epsilon`` a uniformly random eligible action, otherwise the action
    with the highest ridge estimate (ties: lowest id).

    Parameters
    ----------
    epsilon:
        exploration probability in [0, 1].
    lam:
        ridge penalty of the per-action (or shared) reward model.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        epsilon: float = 0.1,
        lam: float = 1.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.epsilon = epsilon
        self.lam = lam

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.epsilon == 0

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.epsilon, "epsilon", low=0.0, high=1.0)

    def _make_model(self, n_models):
        return RidgeRegression(n_models, self.n_features, lam=self.lam)

    def _greedy(self, X, eligible):
        return greedy_decision(self.model_.predict(X)[0], eligible)

    def _decide(self, X, eligible):
        n = X.shape[0]
        greedy = self._greedy(X, eligible)
        if self.epsilon == 0:
            return greedy
        explore = self.rng_.random(n) < self.epsilon
        random_actions = uniform_choice(self.rng_, n, self.n_actions, eligible)
        actions = np.where(explore, random_actions, greedy.actions)
        probs = self._mix(greedy.actions, eligible, n)
        return Decision(actions, probs[np.arange(n), actions], greedy.scores)

    def _mix(self, greedy_actions, eligible, n):
        eps = float(self.epsilon)
        return (1 - eps) * one_hot(greedy_actions, self.n_actions) + eps * uniform_probabilities(
            n, self.n_actions, eligible
        )

    def _action_probabilities(self, X, eligible):
        return self._mix(self._greedy(X, eligible).actions, eligible, X.shape[0])


class Greedy(EpsilonGreedy):
    """Always the action with the highest ridge estimate (epsilon-greedy with epsilon = 0)."""

    deterministic = True

    def __init__(
        self, *, n_actions: int, n_features: int, lam: float = 1.0, seed: SeedLike = None
    ) -> None:
        super().__init__(
            n_actions=n_actions, n_features=n_features, epsilon=0.0, lam=lam, seed=seed
        )
