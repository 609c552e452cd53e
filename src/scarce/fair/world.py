"""The fair-allocation world as an :class:`~scarce.envs.Environment` of the one loop (its
registered instances are in :mod:`scarce.fair.envs`).

One round of :func:`scarce.sim.run` is one round of the population dynamics (spec §A.5):

* :meth:`~FairAllocationEnv.contexts` gives the current cohort (the batch: one case per
  member; ``run(..., batch_size=env.cohort_size)``, ``horizon = rounds * cohort_size``);
* :meth:`~FairAllocationEnv.context_extras` says what is known at decision time: ``groups``,
  ``units`` (who each case is, across rounds), ``eligible`` (cooldowns: action ``r + 1`` is
  eligible once resource ``r``'s cooldown is over; action 0, nothing, always), ``capacities``
  and ``cooldowns`` (the round's rules, one row per case);
* :meth:`~FairAllocationEnv.outcomes` books the allocation (a broken capacity or cooldown
  raises), lets every past allocation release ``K^r(t - u) tau(x_i, r)`` this round
  (:func:`scarce.feedback.convolve_outcomes`) and reports what the world shows: each member's
  own increment ``y_i(t)`` plus noise (``observation="individual"``) or only the round's total
  ``y(t)``, split equally over the cases (``observation="aggregate"``, the paper's mode).
  Extras ``round_outcome`` (``y(t)`` over everyone still releasing effects, members of earlier
  cohorts included) and ``individual`` (which of the two the reward is) go to policies that
  declare them;
* :meth:`~FairAllocationEnv.case_metrics` records ``effect`` (the full expected effect of
  each case's allocation, however late it is released: what the regret compares),
  ``released`` and ``observed`` (the round's noise-free and observed total, per case).

The state of the dynamics (round, cooldowns, effects still being released) restarts on
:meth:`~FairAllocationEnv.reset` and whenever contexts are drawn from a new generator (each run
of :func:`scarce.sim.run` brings its own), so one environment object can serve many runs.
Observation noise is drawn for the whole population every round, whoever is observed, so the
noise stream does not depend on the policy (common random numbers across policies).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from scarce.core.outcome import Outcome
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.envs.base import Environment
from scarce.fair.population import AllocationState, Population, Resources
from scarce.feedback.attribution import AllocationLog, convolve_outcomes
from scarce.feedback.kernels import kernel_to_spec

OBSERVATIONS = ("individual", "aggregate")


class FairAllocationEnv(Environment):
    """A population, resources and true effects, played in the one loop (action type
    ``"allocation"``: action 0 gives nothing, action ``r + 1`` gives resource ``r``).

    Parameters
    ----------
    population:
        individuals, groups and cohorts (:class:`~scarce.fair.Population`); every round's batch
        is the first ``cohort_size`` members of the current cohort (the smallest cohort's size).
    resources:
        per-round capacities (``budgets``), cooldowns and delay kernels
        (:class:`~scarce.fair.Resources`).
    effects:
        ``(N, R)`` true expected effect of each resource on each individual.
    cohort_length:
        ``L``, rounds each cohort stays (cohorts are cycled).
    noise_sd:
        standard deviation of the Gaussian noise on each observed increment, >= 0.
    observation:
        ``"individual"`` (each member's own increments) or ``"aggregate"`` (only the round's
        total).
    name:
        label.
    observational:
        optional ``(treatment, outcome, rows)`` of real observational data behind the
        individuals, each ``(N,)`` (treatment -1 for none; ``rows`` marks the rows an outcome
        model may be pretrained on: disjoint from those the true effects were fitted on), for
        :meth:`observational_prior`.
    seed:
        the default generator of the noise (the loop passes its own).
    """

    action_type = "allocation"
    #: the loop's per-case regret (best action per case) ignores the capacities that couple
    #: the cases of a round, so it is not reported; compare ``effect`` with an oracle's run
    has_oracle = False

    def __init__(
        self,
        population: Population,
        resources: Resources,
        effects: np.ndarray,
        *,
        cohort_length: int = 8,
        noise_sd: float = 1.0,
        observation: str = "individual",
        name: str = "fair-env",
        observational: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed)
        self.population = population
        self.resources = resources
        N, R = population.X.shape[0], resources.n_resources
        self.effects = np.asarray(effects, dtype=np.float64)
        if self.effects.shape != (N, R):
            raise ValueError(f"effects must have shape ({N}, {R}); got {self.effects.shape}")
        self.cohort_length = check_positive_int(cohort_length, "cohort_length")
        self.noise_sd = check_scalar(noise_sd, "noise_sd", low=0.0)
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}; got {observation!r}")
        self.observation = observation
        self.name = name
        if observational is not None:
            t, y, rows = (np.asarray(a).reshape(-1) for a in observational)
            if t.shape != (N,) or y.shape != (N,) or rows.shape != (N,):
                raise ValueError(f"observational arrays must each have shape ({N},)")
            observational = (t.astype(np.int64), y.astype(np.float64), rows.astype(bool))
        self.observational = observational
        self.n_actions = R + 1
        self.n_features = population.X.shape[1]
        self.cohort_size = min(len(c) for c in population.cohorts)
        self.reset()

    # ------------------------------------------------------------------ dynamics
    def reset(self) -> None:
        """Start the dynamics again: round 0, no cooldowns, nothing being released."""
        self.t = 0
        self.state = AllocationState(self.population.X.shape[0], self.resources)
        self._log: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        self._batch = np.zeros(0, dtype=np.int64)
        self._batch_round = -1
        self._awaiting = False
        self._stream: np.random.Generator | None = None
        self._last: dict[str, np.ndarray] = {}

    def cohort(self, t: int) -> np.ndarray:
        """Unit ids of the batch of round ``t`` (the first ``cohort_size`` members of cohort
        ``t // L``)."""
        return self.population.cohort(t // self.cohort_length)[: self.cohort_size]

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if rng is not self._stream:  # a new run brings a new context stream
            self.reset()
            self._stream = rng
        if n > self.cohort_size:
            raise ValueError(
                f"n must be at most the cohort size {self.cohort_size}: {self.name} decides one "
                f"cohort per round (run with batch_size={self.cohort_size}); got {n}"
            )
        self._batch = self.cohort(self.t)[:n]
        self._batch_round = self.t
        self._awaiting = True
        self.t += 1
        return self.population.X[self._batch]

    def _check_batch(self, X: np.ndarray) -> None:
        if self._batch_round < 0 or np.shape(X)[0] != self._batch.shape[0]:
            raise ValueError(
                f"X must be the last batch of contexts ({self._batch.shape[0]} cases) of "
                f"{self.name}; an allocation environment scores only the round it last produced"
            )

    def context_extras(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """``groups``, ``units`` ``(n,)``; ``eligible``, ``capacities``, ``cooldowns`` ``(n, K)``
        (column 0, nothing: always eligible, capacity ``n``, no cooldown)."""
        self._check_batch(X)
        n, res = self._batch.shape[0], self.resources
        eligible = np.ones((n, self.n_actions), dtype=bool)
        eligible[:, 1:] = self.state.eligible(self._batch, self._batch_round)
        caps = np.concatenate([[n], res.budgets])
        cool = np.concatenate([[0], res.cooldowns])
        return {
            "groups": self.population.groups[self._batch],
            "units": self._batch.copy(),
            "eligible": eligible,
            "capacities": np.broadcast_to(caps, (n, self.n_actions)).copy(),
            "cooldowns": np.broadcast_to(cool, (n, self.n_actions)).copy(),
        }

    def _outcomes(self, X: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> Outcome:
        self._check_batch(X)
        if not self._awaiting:
            raise ValueError(
                f"{self.name}: outcomes were already drawn for round {self._batch_round}; "
                "draw the next contexts first"
            )
        self._awaiting = False
        t, batch = self._batch_round, self._batch
        given = actions > 0
        units, res = batch[given], actions[given] - 1
        try:
            self.state.record(batch, units, res, t)
        except ValueError as err:
            raise ValueError(
                f"{err} (an allocation policy must honour the capacities and the eligible mask)"
            ) from None
        self._log.append((units, res, self.effects[units, res], t))
        D = self.resources.max_support
        self._log = [entry for entry in self._log if entry[3] > t - D]
        u, r, eff = (np.concatenate([entry[j] for entry in self._log]) for j in range(3))
        rounds = np.concatenate([np.full(entry[0].shape[0], entry[3]) for entry in self._log])
        alloc = AllocationLog(u, r, rounds, np.zeros((u.shape[0], 0)))
        released = convolve_outcomes(alloc, eff, self.resources.kernels, t, since=t - 1)
        noise = rng.standard_normal(self.population.X.shape[0])  # every unit, every round
        observed = released.value + self.noise_sd * noise[released.unit]
        total = float(observed.sum())
        n = batch.shape[0]
        if self.observation == "individual":
            own = np.zeros(self.population.X.shape[0])
            own[released.unit] = observed
            rewards = own[batch]
        else:
            rewards = np.full(n, total / n)
        self._last = {
            "effect": np.where(given, self.effects[batch, np.maximum(actions - 1, 0)], 0.0),
            "released": np.full(n, float(released.value.sum()) / n),
            "observed": np.full(n, total / n),
        }
        extras = {
            "round_outcome": np.full(n, total),
            "individual": np.full(n, self.observation == "individual"),
        }
        return Outcome(rewards, extras)

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise ValueError(
            f"{self.name} has no full-information feedback: an allocation's effect is released "
            "over later rounds and mixed with others (use feedback='bandit')"
        )

    def case_metrics(self, X: np.ndarray, decision: Any, outcome: Outcome) -> dict[str, np.ndarray]:
        """``effect`` (full expected effect of each case's allocation), ``released`` and
        ``observed`` (the round's noise-free and observed total outcome over everyone, an
        equal share per case, so that their sums over a run are the run's totals)."""
        return dict(self._last)

    # ------------------------------------------------------------------ truth and suggestions
    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` the full expected effect of each action on each case of the last batch
        (0 for nothing): what an allocation releases over its kernel window. The reward seen
        in one round is a delayed mixture of these."""
        self._check_batch(X)
        return np.concatenate(
            [np.zeros((self._batch.shape[0], 1)), self.effects[self._batch]], axis=1
        )

    def policy_params(self, horizon: int, names: Collection[str] | None = None) -> dict[str, Any]:
        """``kernels`` (the true delay kernels, by family name or weights) and
        ``cohort_length``: an allocation policy built by a sweep or a config knows them unless
        told otherwise (the misspecification experiment tells it otherwise)."""
        L = self.cohort_length
        return {
            "kernels": [kernel_to_spec(k, L) for k in self.resources.kernels],
            "cohort_length": L,
        }

    def observational_prior(self, lam: float = 1.0) -> np.ndarray:
        """Prior coefficients for a linear outcome model (``MetaCUB(model_kwargs={"prior_theta":
        ...})``), fitted on the observational rows marked for pretraining, which are disjoint
        from the rows the true effects were fitted on.

        Raises
        ------
        ValueError
            when the environment has no observational data (the synthetic ones).
        """
        from scarce.fair.models import observational_prior

        if self.observational is None:
            raise ValueError(
                f"{self.name} has no observational data to pretrain on; star and jobs "
                "environments have it, synthetic ones do not"
            )
        t, y, rows = self.observational
        X = self.population.X
        return observational_prior(X[rows], t[rows], y[rows], self.resources.n_resources, lam)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            cohort_size=self.cohort_size,
            cohort_length=self.cohort_length,
            n_groups=self.population.n_groups,
            observation=self.observation,
            kernels=[k.name for k in self.resources.kernels],
        )
        return out
