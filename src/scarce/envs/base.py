"""The environment protocol: contexts in, outcomes out, and the truth where it is known."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from scarce.core.outcome import Outcome
from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_actions


class Environment:
    """A contextual decision problem to simulate against.

    Subclasses set ``n_actions``, ``n_features`` and ``name`` and implement :meth:`_contexts`,
    :meth:`_full_outcomes` (or :meth:`_outcomes`, when the outcome is more than one reward per
    action) and, when the truth is known, :meth:`expected_rewards`.

    A capability adds what its problem has through the hooks below, each with a default that
    means "nothing of the kind": costs and a budget (:attr:`n_resources`, :meth:`budget`,
    :attr:`cost_bound`, :meth:`expected_costs`), vector rewards (:attr:`n_objectives`),
    decision-time side information (:meth:`context_extras`), per-case measurements only the
    environment can make (:meth:`case_metrics`) and the parameters it suggests to a policy
    (:meth:`policy_params`). :func:`scarce.sim.run` uses all of them, so every capability runs
    in the one loop.

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
    #: resources the actions consume (0: no costs)
    n_resources: int = 0
    #: objectives of a vector reward (None: scalar rewards)
    n_objectives: int | None = None
    #: the protocol variant its decisions take (:attr:`scarce.core.policy.Policy.action_type`)
    action_type: str = "discrete"

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
    ) -> Outcome:
        """What happens when ``actions`` ``(n,)`` are taken on contexts ``X``.

        Returns an :class:`~scarce.core.outcome.Outcome`: ``rewards`` ``(n,)`` (``(n, m)`` for
        vector rewards) and named ``extras`` (``costs`` ``(n, n_resources)``, ...). By default
        the outcomes of all actions are drawn (so the random stream does not depend on the
        actions taken) and the chosen ones returned.
        """
        acts = check_actions(actions, np.shape(X)[0], self.n_actions)
        return self._outcomes(X, acts, self._gen(rng))

    def _outcomes(self, X: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> Outcome:
        full = self._full_outcomes(X, rng)
        return Outcome(full[np.arange(full.shape[0]), actions])

    def full_outcomes(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(n, K)`` realised rewards of every action (for full-information feedback)."""
        return self._full_outcomes(X, self._gen(rng))

    def full_information(
        self, X: np.ndarray, actions: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[Outcome, np.ndarray]:
        """The outcome of ``actions`` and every action's realised reward ``(n, K)``, from one
        draw (what full-information feedback sees). Environments whose outcomes carry extras
        draw those after the rewards."""
        acts = check_actions(actions, np.shape(X)[0], self.n_actions)
        full = self.full_outcomes(X, rng)
        chosen = full[np.arange(full.shape[0]), acts]
        if type(self)._outcomes is Environment._outcomes:  # nothing beside the rewards
            return Outcome(chosen), full
        extras = self._outcomes(X, acts, self._gen(rng)).extras
        return Outcome(chosen, extras), full

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` expected reward of each action given the contexts (``(n, K, m)`` for
        vector rewards)."""
        raise NotImplementedError(f"{type(self).__name__} has no known expected rewards")

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ capability hooks
    def expected_costs(self, X: np.ndarray) -> np.ndarray:
        """``(n, K, n_resources)`` expected consumption of each action given the contexts."""
        raise NotImplementedError(f"{type(self).__name__} has no costs")

    def budget(self, horizon: int) -> np.ndarray | None:
        """``(n_resources,)`` total budget of a run of ``horizon`` cases, or None (no budget).

        With a budget, :func:`scarce.sim.run` enforces it on any policy: an action is eligible
        only while its :attr:`cost_bound` fits in what is left."""
        return None

    @property
    def cost_bound(self) -> np.ndarray:
        """``(K, n_resources)`` largest consumption of one case per action (0: free)."""
        return np.zeros((self.n_actions, self.n_resources))

    def context_extras(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Decision-time side information about the batch ``X`` last produced by
        :meth:`contexts`: ``eligible`` ``(n, K)`` (actions allowed), ``groups`` ``(n,)``, ...
        The loop gives a policy the keywords it declares and records them all."""
        return {}

    def case_metrics(self, X: np.ndarray, decision: Any, outcome: Outcome) -> dict[str, np.ndarray]:
        """Per-case measurements ``name -> (n,)`` that need the truth and the decision (e.g. a
        vector policy's preference regret); recorded in the trace and summed by sweeps."""
        return {}

    def policy_params(self, horizon: int, names: Collection[str] | None = None) -> dict[str, Any]:
        """Constructor keywords the environment suggests to a policy for a run of ``horizon``
        cases (``budget``, ``horizon``, ``cost_bound``, ``n_objectives``, priors, ...).
        Sweeps and configs pass those the policy accepts and the user did not set.

        ``names``: the keywords wanted (None: all). An environment may skip computing the
        others (some are costly: an oracle's rule) and may still return them."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Short description for tables and `scarce list`."""
        return {"name": self.name, "n_actions": self.n_actions, "n_features": self.n_features}
