"""A small logged-bandit problem with an exactly known target value (discrete contexts)."""

from __future__ import annotations

import numpy as np

from scarce.ope import LoggedData

# 4 context types (one-hot features), 3 actions
P_CONTEXT = np.array([0.4, 0.3, 0.2, 0.1])
MU = np.array([[0.2, 0.5, 0.7], [0.6, 0.1, 0.3], [0.9, 0.4, 0.2], [0.3, 0.8, 0.5]])
LOGGING = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]])
TARGET = np.array([[0.1, 0.2, 0.7], [0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.2, 0.6, 0.2]])
GREEDY = np.eye(3)[MU.argmax(axis=1)]


def true_value(target_table: np.ndarray) -> float:
    """Exact value of a policy given as a (context type, action) probability table."""
    return float(P_CONTEXT @ (target_table * MU).sum(axis=1))


def draw(n: int, seed: int, logging: np.ndarray = LOGGING) -> tuple[LoggedData, np.ndarray]:
    """``n`` logged rows; also returns each row's context type."""
    rng = np.random.default_rng(seed)
    types = rng.choice(len(P_CONTEXT), size=n, p=P_CONTEXT)
    u = rng.random(n)
    actions = (u[:, None] > np.cumsum(logging[types], axis=1)).sum(axis=1)
    actions = np.minimum(actions, logging.shape[1] - 1)
    rewards = (rng.random(n) < MU[types, actions]).astype(float)
    data = LoggedData(
        contexts=np.eye(len(P_CONTEXT))[types],
        actions=actions,
        rewards=rewards,
        propensities=logging[types, actions],
        n_actions=3,
    )
    return data, types
