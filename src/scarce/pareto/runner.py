"""The loop for vector rewards: one policy on one covariate-shift environment, with the
per-round regrets and the growth of the estimated fronts recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scarce.core.random import SeedLike, spawn
from scarce.core.validation import check_positive_int
from scarce.pareto.cones import Cone
from scarce.pareto.envs import PeaksShiftEnv
from scarce.pareto.policy import VectorPolicy
from scarce.pareto.regret import front_f1, played_regret, preference_regret, round_gaps


@dataclass
class VectorTrace:
    """What :func:`simulate` records.

    Attributes
    ----------
    contexts:
        ``(T, D)`` contexts.
    actions:
        ``(T,)`` played arms.
    support:
        ``(T, K)`` bool, the policy's support at each round.
    target_start:
        first round (1-based) of the target phase.
    preference_regret, preference_regret_filtered, log_hausdorff_regret, played_regret:
        ``(T,)`` per-round regrets (:mod:`scarce.pareto.regret`); sum them over
        ``t >= target_start`` for the target-phase regret.
    checkpoints:
        ``(C,)`` rounds at which the state was inspected.
    front_f1:
        ``(C,)`` mean F1 of the estimated Pareto sets on the evaluation contexts.
    n_leaves, depth:
        ``(C,)`` tree size (NaN for policies without a tree).
    """

    contexts: np.ndarray
    actions: np.ndarray
    support: np.ndarray
    target_start: int
    preference_regret: np.ndarray
    preference_regret_filtered: np.ndarray
    log_hausdorff_regret: np.ndarray
    played_regret: np.ndarray
    checkpoints: np.ndarray
    front_f1: np.ndarray
    n_leaves: np.ndarray
    depth: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def target(self, name: str) -> float:
        """Sum of the per-round regret ``name`` over the target phase."""
        return float(getattr(self, name)[self.target_start - 1 :].sum())


def simulate(
    policy: VectorPolicy,
    env: PeaksShiftEnv,
    horizon: int,
    *,
    seed: SeedLike = 0,
    cone: Cone | None = None,
    n_checkpoints: int = 10,
    n_eval: int = 100,
    eval_contexts: np.ndarray | None = None,
) -> VectorTrace:
    """Run ``policy`` on ``env`` for ``horizon`` rounds, one case per round.

    Parameters
    ----------
    policy:
        a fresh vector policy (``decide`` / ``update`` with ``(1, m)`` rewards).
    env:
        the environment; its change points are rounds of this run.
    horizon:
        ``T``.
    seed:
        root of the context, noise and evaluation streams (the policy has its own seed).
    cone:
        cone of the regrets (default: the orthant).
    n_checkpoints:
        rounds, evenly spaced, at which the estimated fronts are scored.
    n_eval:
        target contexts the front F1 is averaged over (the same at every checkpoint).
    eval_contexts:
        ``(n_eval, D)`` contexts to score the fronts on instead of target draws.
    """
    T = check_positive_int(horizon, "horizon")
    check_positive_int(n_checkpoints, "n_checkpoints")
    cone = Cone.orthant(env.n_objectives) if cone is None else cone
    ctx_rng, noise_rng, eval_rng = spawn(seed, 3)
    X = env.contexts(T, ctx_rng)
    X_eval = (
        env.sample_phase(n_eval, -1, eval_rng)
        if eval_contexts is None
        else np.asarray(eval_contexts, float)
    )
    truth_eval = env.pareto_sets(X_eval, cone)
    checks = np.unique(np.linspace(T / n_checkpoints, T, n_checkpoints).round().astype(int))
    K = env.n_actions
    actions = np.zeros(T, dtype=np.int64)
    support = np.zeros((T, K), dtype=bool)
    f1, leaves, depth = [], [], []
    c = 0
    for t in range(T):
        x = X[t : t + 1]
        d = policy.decide(x)
        actions[t] = d.actions[0]
        support[t] = d.scores[0] > 0
        policy.update(x, d.actions, env.outcomes(x, d.actions, noise_rng))
        if c < checks.size and t + 1 == checks[c]:
            f1.append(float(front_f1(policy.pareto_estimate(X_eval), truth_eval).mean()))
            leaves.append(float(getattr(policy, "n_leaves_", np.nan)))
            depth.append(float(getattr(policy, "depth_", np.nan)))
            c += 1
    mu = env.mean_rewards(X)
    g = round_gaps(mu, cone)
    return VectorTrace(
        contexts=X,
        actions=actions,
        support=support,
        target_start=env.target_start,
        preference_regret=preference_regret(mu, support, cone, round_gap=g),
        preference_regret_filtered=preference_regret(mu, support, cone, filtered=True, round_gap=g),
        log_hausdorff_regret=preference_regret(mu, support, cone, kind="log_hausdorff"),
        played_regret=played_regret(mu, actions, cone, round_gap=g),
        checkpoints=checks,
        front_f1=np.array(f1),
        n_leaves=np.array(leaves),
        depth=np.array(depth),
    )
