"""Fair bi-level allocation under delayed feedback: MetaCUB (meta-level group budget shares
under a fairness constraint, base-level individual selection by an upper confidence score),
its baselines and oracles, all :class:`~scarce.fair.policy.CohortPolicy` (the
``"allocation"`` variant of the policy protocol); the population dynamics as an environment of
the one loop (:class:`FairAllocationEnv`, registered as ``star``, ``jobs``, ``groups-*``,
``synthetic-*``); semi-synthetic problems on real data; fairness measures of a run."""

import scarce.fair.envs  # noqa: F401,E402  (registers the environments)
from scarce.fair.allocators import (
    EXP3Allocator,
    FairOracle,
    GroupUCB,
    LinUCBAllocator,
    Oracle,
    RandomAllocator,
    band_quotas,
)
from scarce.fair.data import fitted_effects, groups_env, jobs_env, star_env, synthetic_env
from scarce.fair.metacub import EqualSplit, FixedRates, MetaCUB
from scarce.fair.metrics import allocation_metrics, fairness_ratios, per_round
from scarce.fair.models import (
    UNCERTAINTIES,
    History,
    LinearOutcomeModel,
    NeuralOutcomeModel,
    make_outcome_model,
)
from scarce.fair.policy import CohortPolicy
from scarce.fair.population import (
    AllocationState,
    Population,
    Resources,
    rates_to_counts,
    stratified_cohorts,
)
from scarce.fair.search import MetaSearch, rate_ratios, shares_to_rates
from scarce.fair.world import FairAllocationEnv
from scarce.policies import register_policy

for _cls in (MetaCUB, EqualSplit, LinUCBAllocator, GroupUCB, EXP3Allocator, RandomAllocator):
    register_policy(_cls)

__all__ = [
    "CohortPolicy",
    "AllocationState",
    "EXP3Allocator",
    "EqualSplit",
    "FairAllocationEnv",
    "FairOracle",
    "FixedRates",
    "GroupUCB",
    "History",
    "LinUCBAllocator",
    "LinearOutcomeModel",
    "MetaCUB",
    "MetaSearch",
    "NeuralOutcomeModel",
    "Oracle",
    "Population",
    "RandomAllocator",
    "Resources",
    "UNCERTAINTIES",
    "allocation_metrics",
    "band_quotas",
    "fairness_ratios",
    "fitted_effects",
    "groups_env",
    "jobs_env",
    "make_outcome_model",
    "per_round",
    "rate_ratios",
    "rates_to_counts",
    "shares_to_rates",
    "star_env",
    "stratified_cohorts",
    "synthetic_env",
]
