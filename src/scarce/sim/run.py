"""The simulation loop: run one policy on one environment for a horizon and record a trace.

Randomness
----------
A run has three sources of randomness, kept apart so that each can be fixed on its own:

* the **policy's** own generator, from the ``seed`` the policy was constructed with
  (:func:`run` never touches it; construct the policy with ``seed=None`` for fresh entropy);
* the **environment's contexts**: a child generator derived from ``run(..., seed=...)``;
* the **environment's outcome noise**: a second, independent child generator from the same seed.

Because contexts and outcome noise have their own streams, two policies run with the same
``seed`` see exactly the same cases (common random numbers), whatever actions they take.
The environment's own construction-time randomness (e.g. the true parameters of a synthetic
problem) comes from the seed the environment was built with, not from :func:`run`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from scarce.core.policy import Policy
from scarce.core.random import SeedLike, spawn
from scarce.envs.base import Environment
from scarce.feedback.delay import DelayModel

Feedback = Literal["bandit", "full"]

#: per-case array fields of a :class:`Trace`, in column order
TRACE_COLUMNS = (
    "step",
    "round",
    "action",
    "reward",
    "expected_reward",
    "best_expected_reward",
    "regret",
    "optimal",
    "probability",
)


@dataclass
class Trace:
    """Per-case record of one run. All arrays have shape ``(horizon,)``.

    Attributes
    ----------
    step:
        int64, 1-based index of the case (``1 .. horizon``).
    round:
        int64, 0-based index of the batch the case was decided in.
    action:
        int64, the chosen action.
    reward:
        float64, the realised reward of the chosen action.
    expected_reward:
        float64, the expected reward of the chosen action (NaN without an oracle).
    best_expected_reward:
        float64, the largest expected reward over actions (NaN without an oracle).
    regret:
        float64, the exact expected (pseudo-)regret of the case,
        ``best_expected_reward - expected_reward`` (NaN without an oracle).
    optimal:
        bool, whether the chosen action attains the best expected reward (False without an
        oracle).
    probability:
        float64, the probability with which the policy chose the action.
    policy, env:
        names of the policy and environment.
    batch_size, feedback, has_oracle:
        how the run was made.
    """

    step: np.ndarray
    round: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    expected_reward: np.ndarray
    best_expected_reward: np.ndarray
    regret: np.ndarray
    optimal: np.ndarray
    probability: np.ndarray
    policy: str = "policy"
    env: str = "env"
    batch_size: int = 1
    feedback: str = "bandit"
    has_oracle: bool = True

    @property
    def horizon(self) -> int:
        """Number of cases decided."""
        return int(self.step.shape[0])

    @property
    def cumulative_reward(self) -> np.ndarray:
        """``(horizon,)`` running sum of realised rewards."""
        return np.cumsum(self.reward)

    @property
    def cumulative_regret(self) -> np.ndarray:
        """``(horizon,)`` running sum of expected regret (NaN without an oracle)."""
        return np.cumsum(self.regret)

    @property
    def cumulative_expected_reward(self) -> np.ndarray:
        """``(horizon,)`` running sum of the chosen actions' expected rewards."""
        return np.cumsum(self.expected_reward)

    @property
    def cumulative_best_expected_reward(self) -> np.ndarray:
        """``(horizon,)`` running sum of the best expected rewards (what an oracle collects)."""
        return np.cumsum(self.best_expected_reward)

    def to_frame(self) -> pd.DataFrame:
        """One row per case, the columns of :data:`TRACE_COLUMNS`."""
        return pd.DataFrame({name: getattr(self, name) for name in TRACE_COLUMNS})

    def summary(self) -> dict[str, float]:
        """Totals of the run.

        Returns
        -------
        dict with ``horizon``, ``cumulative_reward``, ``cumulative_regret`` (NaN without an
        oracle), ``mean_reward``, ``reward_to_opt`` (expected reward collected over what the
        oracle collects; NaN without an oracle) and ``optimal_action_rate``.
        """
        h = self.horizon
        total = float(self.reward.sum())
        best = float(self.best_expected_reward.sum())
        return {
            "horizon": h,
            "cumulative_reward": total,
            "cumulative_regret": float(self.regret.sum()),
            "mean_reward": total / h if h else float("nan"),
            "reward_to_opt": float(self.expected_reward.sum()) / best if best else float("nan"),
            "optimal_action_rate": float(self.optimal.mean()) if self.has_oracle else float("nan"),
        }

    def __len__(self) -> int:
        return self.horizon

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray):
                if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                    return False
            elif a != b:
                return False
        return True


def run(
    policy: Policy,
    env: Environment,
    horizon: int,
    *,
    batch_size: int = 1,
    seed: SeedLike = None,
    feedback: Feedback = "bandit",
    delay: DelayModel | None = None,
    record_probabilities: bool = True,
) -> Trace:
    """Run ``policy`` on ``env`` until exactly ``horizon`` cases have been decided.

    Each round draws a batch of contexts, asks the policy to decide all of them, draws the
    outcomes and updates the policy once with the whole batch (so ``batch_size`` models a
    policy that is refitted only every ``batch_size`` cases). The last batch is truncated so
    that exactly ``horizon`` cases are decided.

    Parameters
    ----------
    policy:
        the decision rule; its own ``seed`` drives its randomness (see the module docstring).
    env:
        the environment; with ``env.has_oracle`` its ``expected_rewards`` give exact regret.
    horizon:
        number of cases to decide, >= 1.
    batch_size:
        cases decided per round before the policy is updated, >= 1.
    seed:
        int, ``numpy.random.Generator``, ``SeedSequence`` or None; two independent child
        generators are derived from it, one for the contexts and one for the outcome noise.
    feedback:
        ``"bandit"``: the policy learns only the chosen actions' rewards; ``"full"``: it is
        also given every action's realised reward (``update(..., full_rewards=...)``).
    delay:
        None (the policy learns each batch right after deciding it) or a
        :class:`scarce.feedback.DelayModel`: each outcome reaches the policy in pieces
        ``delay.release(...)[j, tau] * reward`` ``tau`` rounds (batches) after its decision; a
        :class:`scarce.feedback.PendingBuffer` joins the pieces and the policy is updated with
        the decisions completed in each round, in decision order. The trace still records the
        realised reward at decision time; outcomes still pending at the horizon are never
        learned. Delay draws come from a third child generator of ``seed``, so contexts and
        outcome noise are the same as without delay. ``FixedDelay(0)`` reproduces ``None``.
    record_probabilities:
        record each chosen action's probability in ``Trace.probability`` (True), or NaN
        (False). Thompson-sampling policies compute their probabilities lazily and some at a
        cost above the decision's (mixed-effect TS); sweeps, which do not report them, skip
        them. The decisions are the same either way.

    Returns
    -------
    Trace
        per-case arrays of length ``horizon``.
    """
    horizon = _check_int(horizon, "horizon")
    batch_size = _check_int(batch_size, "batch_size")
    if feedback not in ("bandit", "full"):
        raise ValueError(f"feedback must be 'bandit' or 'full'; got {feedback!r}")
    for attr in ("n_actions", "n_features"):
        p, e = getattr(policy, attr, None), getattr(env, attr, None)
        if p is not None and e is not None and p != e:
            raise ValueError(
                f"policy.{attr} must equal env.{attr}; got {p} for {type(policy).__name__} and "
                f"{e} for {getattr(env, 'name', type(env).__name__)}"
            )
    if delay is not None and not isinstance(delay, DelayModel):
        raise TypeError(
            f"delay must be None or a scarce.feedback.DelayModel; got {type(delay).__name__}"
        )
    if delay is None:
        context_rng, outcome_rng = spawn(seed, 2)
    else:
        # the first two children are the same as without delay (SeedSequence spawn keys)
        context_rng, outcome_rng, delay_rng = spawn(seed, 3)
        from scarce.feedback.buffer import PendingBuffer

        buffer = PendingBuffer()
        scheduled: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    oracle = bool(getattr(env, "has_oracle", False))

    action = np.empty(horizon, dtype=np.int64)
    reward = np.empty(horizon, dtype=np.float64)
    chosen_expected = np.full(horizon, np.nan)
    best_expected = np.full(horizon, np.nan)
    probability = np.empty(horizon, dtype=np.float64)
    round_ = np.empty(horizon, dtype=np.int64)

    full_info = feedback == "full"
    all_rows = np.arange(batch_size)
    start, r = 0, 0
    while start < horizon:
        b = min(batch_size, horizon - start)
        stop = start + b
        X = env.contexts(b, rng=context_rng)
        decision = policy.decide(X)
        acts = decision.actions
        rows = all_rows[:b]
        if full_info:
            full = np.asarray(env.full_outcomes(X, rng=outcome_rng), dtype=np.float64)
            rew = full[rows, acts]
            if delay is None:
                policy.update(X, acts, rew, full_rewards=full)
        else:
            rew = np.asarray(env.outcomes(X, acts, rng=outcome_rng), dtype=np.float64)
            if delay is None:
                policy.update(X, acts, rew)
        if delay is not None:
            W = delay.release(acts, delay_rng)
            extra = {"full_rewards": full} if full_info else {}
            ids = buffer.register(X, acts, round=r, expected_pieces=(W > 0).sum(axis=1), **extra)
            for lag in np.flatnonzero(W.any(axis=0)):
                has = W[:, lag] > 0
                scheduled.setdefault(r + int(lag), []).append((ids[has], W[has, lag] * rew[has]))
            for piece_ids, values in scheduled.pop(r, []):
                buffer.add(piece_ids, values)
            buffer.feed(policy, r)
        if oracle:
            expected = env.expected_rewards(X)
            chosen_expected[start:stop] = expected[rows, acts]
            best_expected[start:stop] = expected.max(axis=1)
        action[start:stop] = acts
        reward[start:stop] = rew
        probability[start:stop] = decision.probabilities if record_probabilities else np.nan
        round_[start:stop] = r
        start, r = stop, r + 1

    regret = best_expected - chosen_expected
    optimal = (
        (regret <= 1e-12 * np.maximum(1.0, np.abs(best_expected)))
        if oracle
        else np.zeros(horizon, bool)
    )
    return Trace(
        step=np.arange(1, horizon + 1, dtype=np.int64),
        round=round_,
        action=action,
        reward=reward,
        expected_reward=chosen_expected,
        best_expected_reward=best_expected,
        regret=regret,
        optimal=optimal,
        probability=probability,
        policy=type(policy).__name__,
        env=str(getattr(env, "name", type(env).__name__)),
        batch_size=batch_size,
        feedback=feedback,
        has_oracle=oracle,
    )


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    return int(value)
