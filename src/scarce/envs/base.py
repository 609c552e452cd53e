"""The environment protocol: contexts in, outcomes out, and the truth where it is known."""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_actions


class Environment:
    """A contextual decision problem to simulate against.

    Subclasses set ``n_actions``, ``n_features`` and ``name`` and implement :meth:`_contexts`,
    :meth:`_outcomes` and (when the truth is known) :meth:`expected_rewards`.

    Every random draw uses the ``rng`` passed to the call, or the environment's own generator
    (from ``seed``) when none is passed, so the simulator can give each run its own stream.

    Some environments (supervised data) can only score the batch they last produced:
    :meth:`outcomes`, :meth:`full_outcomes` and :meth:`expected_rewards` then refer to the
    most recent :meth:`contexts` batch, and say so in their docstring.
    """

    n_actions: int
    n_features: int
    name: str = "env"
    #: whether expected_rewards gives the exact truth (so regret is exact)
    has_oracle: bool = True

    def __init__(self, seed: SeedLike = None) -> None:
        self.seed = seed
        self._rng = as_generator(seed)

    def _gen(self, rng: np.random.Generator | None) -> np.random.Generator:
        return self._rng if rng is None else rng

    def contexts(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` contexts: ``(n, d)``, or ``(n, K, d)`` for per-action features."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an int >= 1; got {n!r}")
        return self._contexts(int(n), self._gen(rng))

    def outcomes(
        self, X: np.ndarray, actions: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """``(n,)`` realised rewards of ``actions`` on contexts ``X``.

        ``actions`` are ``(n,)`` integer ids in ``[0, n_actions)``. The outcomes of all actions
        are drawn (so the random stream does not depend on the actions taken) and the chosen
        ones returned.
        """
        full = self.full_outcomes(X, rng)
        acts = check_actions(actions, full.shape[0], self.n_actions)
        return full[np.arange(full.shape[0]), acts]

    def full_outcomes(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(n, K)`` realised rewards of every action (for full-information feedback)."""
        return self._full_outcomes(X, self._gen(rng))

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` expected reward of each action given the contexts."""
        raise NotImplementedError(f"{type(self).__name__} has no known expected rewards")

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Short description for tables and `scarce list`."""
        return {"name": self.name, "n_actions": self.n_actions, "n_features": self.n_features}
