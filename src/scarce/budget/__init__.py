"""Budgeted decisions: contextual bandits with knapsacks (one or many resources), deferral to
a costly expert, the optimal static policy (LP) and the baselines of the deferral paper.
See ``docs/budgeted-deferral.md``."""

from scarce.budget.baselines import (
    DeferralOutcome,
    apply_budget,
    arbitrary_human,
    best_reject,
    human_only,
    model_only,
    run_learner,
)
from scarce.budget.deferral import HUMAN, MODEL, Deferral, NeuralDeferral
from scarce.budget.envs import DeferralStream, DigitsDeferral, SyntheticDeferral
from scarce.budget.knapsack import KnapsackBandit
from scarce.budget.opt import (
    KnapsackSolution,
    empirical_opt_deferral,
    fractional_knapsack,
    oracle_z,
    static_opt_deferral,
    static_opt_lp,
)

__all__ = [
    "HUMAN",
    "MODEL",
    "Deferral",
    "DeferralOutcome",
    "DeferralStream",
    "DigitsDeferral",
    "KnapsackBandit",
    "KnapsackSolution",
    "NeuralDeferral",
    "SyntheticDeferral",
    "apply_budget",
    "arbitrary_human",
    "best_reject",
    "empirical_opt_deferral",
    "fractional_knapsack",
    "human_only",
    "model_only",
    "oracle_z",
    "run_learner",
    "static_opt_deferral",
    "static_opt_lp",
]
