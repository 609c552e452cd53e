"""Budgeted decisions: contextual bandits with knapsacks (one or many resources), deferral to
a costly expert, the optimal static policy (LP), the baselines of the deferral paper and the
deferral environments. See ``docs/budgeted-deferral.md``.

Importing the package registers its policies (``KnapsackBandit``, ``Deferral``,
``NeuralDeferral``, ``ModelOnly``, ``HumanOnly``, ``ArbitraryHuman``, ``BestReject``,
``StaticOPT``) and environments (``deferral-synthetic`` and its regimes, ``deferral-digits``).
"""

from scarce.budget import envs as _envs  # noqa: F401  (registers the environments)
from scarce.budget.baselines import (
    ArbitraryHuman,
    BestReject,
    DeferralRule,
    HumanOnly,
    ModelOnly,
    StaticOPT,
)
from scarce.budget.deferral import HUMAN, MODEL, Deferral, NeuralDeferral
from scarce.budget.dual import DualPrices, estimate_z
from scarce.budget.envs import DigitsDeferral, SyntheticDeferral
from scarce.budget.knapsack import KnapsackBandit
from scarce.budget.models import OutcomeModels
from scarce.budget.opt import (
    KnapsackSolution,
    apply_budget,
    best_threshold,
    empirical_opt_deferral,
    fractional_knapsack,
    oracle_z,
    static_opt_deferral,
    static_opt_lp,
)
from scarce.budget.specs import ConfidenceSpec, DualSpec, NetworkSpec

__all__ = [
    "HUMAN",
    "MODEL",
    "ArbitraryHuman",
    "BestReject",
    "ConfidenceSpec",
    "Deferral",
    "DeferralRule",
    "DigitsDeferral",
    "DualPrices",
    "DualSpec",
    "HumanOnly",
    "KnapsackBandit",
    "KnapsackSolution",
    "ModelOnly",
    "NetworkSpec",
    "NeuralDeferral",
    "OutcomeModels",
    "StaticOPT",
    "SyntheticDeferral",
    "apply_budget",
    "best_threshold",
    "empirical_opt_deferral",
    "estimate_z",
    "fractional_knapsack",
    "oracle_z",
    "static_opt_deferral",
    "static_opt_lp",
]
