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

One loop for every capability
-----------------------------
Each round: the environment draws contexts and says what is known about them at decision time
(:meth:`~scarce.envs.Environment.context_extras`: an ``eligible`` mask, ``groups``, ...); with a
budget (:meth:`~scarce.envs.Environment.budget`) a :class:`~scarce.core.ledger.Ledger` makes
ineligible every action whose cost bound no longer fits, so no policy, budget-aware or not, can
overspend; the policy decides; the environment reports an
:class:`~scarce.core.outcome.Outcome` (rewards, and ``costs`` or other named extras); the
ledger books the costs; the policy learns from the rewards, its own ``Decision.info`` and the
extras it declares (:attr:`~scarce.core.policy.Policy.update_keywords`), at once or through a
:class:`~scarce.feedback.PendingBuffer` under a delay model; the environment measures what only
it can (:meth:`~scarce.envs.Environment.case_metrics`). The trace records all of it.
The environment's own construction-time randomness (e.g. the true parameters of a synthetic
problem) comes from the seed the environment was built with, not from :func:`run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from scarce.core.ledger import Ledger
from scarce.core.policy import Policy
from scarce.core.random import SeedLike, spawn
from scarce.envs.base import Environment
from scarce.feedback.buffer import PendingBuffer
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
    """Per-case record of one run. All arrays have leading axis ``horizon``.

    Attributes
    ----------
    step:
        int64, 1-based index of the case (``1 .. horizon``).
    round:
        int64, 0-based index of the batch the case was decided in.
    action:
        int64, the chosen action (``(horizon, N)`` level ids for the ``"levels"`` variant).
    reward:
        float64, the realised reward of the chosen action (NaN for vector rewards: see
        ``extras["vector_rewards"]``).
    expected_reward:
        float64, the expected reward of the chosen action (NaN without a scalar oracle).
    best_expected_reward:
        float64, the largest expected reward over actions (NaN without a scalar oracle).
    regret:
        float64, the exact expected (pseudo-)regret of the case,
        ``best_expected_reward - expected_reward`` (NaN without a scalar oracle).
    optimal:
        bool, whether the chosen action attains the best expected reward (False without an
        oracle).
    probability:
        float64, the probability with which the policy chose the action.
    policy, env:
        names of the policy and environment.
    batch_size, feedback, has_oracle:
        how the run was made.
    extras:
        name -> ``(horizon, ...)`` what the environment reported beside the reward and what
        the loop measured: ``costs`` ``(horizon, n_resources)`` and ``budget_left`` (after the
        case's round) where the environment has a budget, ``vector_rewards`` ``(horizon, m)``,
        decision-time side information such as ``groups``, and the environment's
        :meth:`~scarce.envs.Environment.case_metrics`.
    info:
        name -> ``(horizon, ...)`` the policy's ``Decision.info``.
    budget:
        ``(n_resources,)`` the run's total budget, or None.
    contexts:
        ``(horizon, ...)`` the contexts, with ``run(..., record_contexts=True)``; else None.
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
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, np.ndarray] = field(default_factory=dict)
    budget: np.ndarray | None = None
    contexts: np.ndarray | None = None

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

    @property
    def budget_spent(self) -> np.ndarray | None:
        """``(n_resources,)`` total consumption of the run, or None without a budget."""
        if self.budget is None:
            return None
        return self.extras["costs"].sum(axis=0)

    def to_frame(self) -> pd.DataFrame:
        """One row per case: the columns of :data:`TRACE_COLUMNS`, then each extra (a column
        per component for ``(horizon, k)`` arrays: ``costs_0``, ...; arrays with more axes are
        left out)."""
        columns = {name: getattr(self, name) for name in TRACE_COLUMNS}
        if self.action.ndim == 2:  # structured actions: one column per slot
            del columns["action"]
            columns.update({f"action_{j}": self.action[:, j] for j in range(self.action.shape[1])})
        for name, values in self.extras.items():
            if values.ndim == 1:
                columns[name] = values
            elif values.ndim == 2:
                for j in range(values.shape[1]):
                    columns[f"{name}_{j}"] = values[:, j]
        return pd.DataFrame(columns)

    def summary(self) -> dict[str, float]:
        """Totals of the run.

        Returns
        -------
        dict with ``horizon``, ``cumulative_reward``, ``cumulative_regret`` (NaN without an
        oracle), ``mean_reward``, ``reward_to_opt`` (expected reward collected over what the
        oracle collects; NaN without an oracle) and ``optimal_action_rate``; with a budget,
        ``budget`` and ``budget_spent`` (summed over resources); and the sum of every
        per-case metric of the environment.
        """
        h = self.horizon
        total = float(self.reward.sum())
        best = float(self.best_expected_reward.sum())
        out = {
            "horizon": h,
            "cumulative_reward": total,
            "cumulative_regret": float(self.regret.sum()),
            "mean_reward": total / h if h else float("nan"),
            "reward_to_opt": float(self.expected_reward.sum()) / best if best else float("nan"),
            "optimal_action_rate": float(self.optimal.mean()) if self.has_oracle else float("nan"),
        }
        if self.budget is not None:
            out["budget"] = float(self.budget.sum())
            out["budget_spent"] = float(self.extras["costs"].sum())
        for name, values in self.extras.items():
            if name.startswith("metric_"):
                out[name.removeprefix("metric_")] = float(values.sum())
        return out

    def __len__(self) -> int:
        return self.horizon

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, dict):
                if a.keys() != b.keys() or not all(_same(a[k], b[k]) for k in a):
                    return False
            elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None or not _same(a, b):
                    return False
            elif a != b:
                return False
        return True


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(a, b, equal_nan=np.asarray(a).dtype.kind == "f")


class _Recorder:
    """Per-case arrays of a run, allocated on the first batch that has them."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.arrays: dict[str, np.ndarray] = {}

    def put(self, name: str, start: int, values: Any) -> None:
        values = np.asarray(values)
        arr = self.arrays.get(name)
        if arr is None:
            shape = (self.horizon, *values.shape[1:])
            fill: Any = np.nan if values.dtype.kind == "f" else 0
            arr = np.full(shape, fill, dtype=values.dtype)
            self.arrays[name] = arr
        arr[start : start + values.shape[0]] = values


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
    record_contexts: bool = False,
) -> Trace:
    """Run ``policy`` on ``env`` until exactly ``horizon`` cases have been decided.

    Each round draws a batch of contexts, asks the policy to decide all of them, draws the
    outcomes and updates the policy once with the whole batch (so ``batch_size`` models a
    policy that is refitted only every ``batch_size`` cases). The last batch is truncated so
    that exactly ``horizon`` cases are decided. The module docstring lists what each round
    does for budgets, side information, vector rewards and delays.

    Parameters
    ----------
    policy:
        the decision rule; its own ``seed`` drives its randomness (see the module docstring).
    env:
        the environment; with ``env.has_oracle`` its ``expected_rewards`` give exact regret.
    horizon:
        number of cases to decide, >= 1.
    batch_size:
        cases decided per round before the policy is updated, >= 1. With a budget, an action
        is eligible in a round only if every case of the batch could take it.
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
        the decisions completed in each round, in decision order (with their ``info`` and
        extras). The trace still records the realised reward at decision time, and costs are
        booked at decision time; outcomes still pending at the horizon are never learned.
        Delay draws come from a third child generator of ``seed``, so contexts and outcome
        noise are the same as without delay. ``FixedDelay(0)`` reproduces ``None``.
    record_probabilities:
        record each chosen action's probability in ``Trace.probability`` (True), or NaN
        (False). Thompson-sampling policies compute their probabilities lazily and some at a
        cost above the decision's (mixed-effect TS); sweeps, which do not report them, skip
        them. The decisions are the same either way.
    record_contexts:
        keep the contexts in ``Trace.contexts`` (for measures computed after the run).

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
    vector = env.n_objectives is not None
    _check_reward_kinds(policy, env, vector)
    if delay is not None and not isinstance(delay, DelayModel):
        raise TypeError(
            f"delay must be None or a scarce.feedback.DelayModel; got {type(delay).__name__}"
        )
    if delay is not None and vector:
        raise ValueError("delayed vector rewards are not supported (the buffer sums scalars)")
    if delay is None:
        context_rng, outcome_rng = spawn(seed, 2)
    else:
        # the first two children are the same as without delay (SeedSequence spawn keys)
        context_rng, outcome_rng, delay_rng = spawn(seed, 3)
        buffer = PendingBuffer()
        scheduled: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    budget = env.budget(horizon)
    ledger = None if budget is None else Ledger(budget, env.cost_bound)
    oracle = bool(getattr(env, "has_oracle", False)) and not vector
    decide_keys = set(policy.decide_keywords)
    update_keys = set(policy.update_keywords)

    action = None  # (horizon,) or (horizon, ...) for structured actions, on the first batch
    reward = np.full(horizon, np.nan)
    chosen_expected = np.full(horizon, np.nan)
    best_expected = np.full(horizon, np.nan)
    probability = np.empty(horizon, dtype=np.float64)
    round_ = np.empty(horizon, dtype=np.int64)
    extras, info = _Recorder(horizon), _Recorder(horizon)
    contexts = _Recorder(horizon) if record_contexts else None

    full_info = feedback == "full"
    all_rows = np.arange(batch_size)
    start, r = 0, 0
    while start < horizon:
        b = min(batch_size, horizon - start)
        stop = start + b
        rows = all_rows[:b]
        X = env.contexts(b, rng=context_rng)
        side = env.context_extras(X)
        eligible = side.get("eligible")
        if ledger is not None:
            fits = ledger.affordable(b)
            eligible = fits if eligible is None else np.asarray(eligible, bool) & fits
        given = {k: v for k, v in side.items() if k in decide_keys}
        decision = policy.decide(X, eligible=eligible, **given)
        acts = decision.actions
        if full_info:
            outcome, full = env.full_information(X, acts, rng=outcome_rng)
            full = np.asarray(full, dtype=np.float64)
        else:
            outcome = env.outcomes(X, acts, rng=outcome_rng)
        if ledger is not None:
            if outcome.costs is None:
                raise ValueError(
                    f"{getattr(env, 'name', type(env).__name__)} has a budget but its outcomes "
                    "report no costs"
                )
            ledger.settle(acts, outcome.costs, reserved=False)
            extras.put("budget_left", start, np.broadcast_to(ledger.remaining, (b, budget.size)))
        learn = {k: v for k, v in outcome.extras.items() if k in update_keys}
        if full_info:
            learn["full_rewards"] = full
        if delay is None:
            policy.update(X, acts, outcome.rewards, info=decision.info or None, **learn)
        else:
            W = delay.release(acts, delay_rng)
            ids = buffer.register(
                X,
                acts,
                round=r,
                expected_pieces=(W > 0).sum(axis=1),
                info=decision.info,
                **learn,
            )
            rew_now = outcome.rewards
            for lag in np.flatnonzero(W.any(axis=0)):
                has = W[:, lag] > 0
                scheduled.setdefault(r + int(lag), []).append(
                    (ids[has], W[has, lag] * rew_now[has])
                )
            for piece_ids, values in scheduled.pop(r, []):
                buffer.add(piece_ids, values)
            buffer.feed(policy, r)
        for name, values in {**side, **outcome.extras}.items():
            if name != "eligible":
                extras.put(name, start, values)
        for name, values in env.case_metrics(X, decision, outcome).items():
            extras.put(f"metric_{name}", start, np.asarray(values, dtype=np.float64))
        for name, values in decision.info.items():
            info.put(name, start, values)
        if vector:
            extras.put("vector_rewards", start, outcome.rewards)
        else:
            reward[start:stop] = outcome.rewards
        if oracle:
            expected = env.expected_rewards(X)
            chosen_expected[start:stop] = expected[rows, acts]
            best_expected[start:stop] = expected.max(axis=1)
        if contexts is not None:
            contexts.put("X", start, X)
        if action is None:
            action = np.empty((horizon, *acts.shape[1:]), dtype=np.int64)
        action[start:stop] = acts
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
        extras=extras.arrays,
        info=info.arrays,
        budget=None if budget is None else np.asarray(budget, dtype=np.float64),
        contexts=None if contexts is None else contexts.arrays.get("X"),
    )


def _check_reward_kinds(policy: Policy, env: Environment, vector: bool) -> None:
    kind = getattr(policy, "reward_kind", "scalar")
    name = getattr(env, "name", type(env).__name__)
    p_type = getattr(policy, "action_type", "discrete")
    e_type = getattr(env, "action_type", "discrete")
    if p_type != e_type:
        raise ValueError(
            f"{type(policy).__name__} makes {p_type!r} decisions but {name} takes {e_type!r} "
            "ones (see Policy.action_type)"
        )
    if vector and kind == "scalar":
        raise ValueError(
            f"{type(policy).__name__} learns scalar rewards but {name} gives vector rewards "
            f"of {env.n_objectives} objectives; use a vector-reward policy"
        )
    if not vector and kind == "vector":
        raise ValueError(f"{type(policy).__name__} learns vector rewards but {name} gives scalars")


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    return int(value)
