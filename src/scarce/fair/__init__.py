"""Fair bi-level allocation under delayed feedback: MetaCUB (meta-level group budget shares
under a fairness constraint, base-level individual selection by an upper confidence score),
population dynamics (cohorts, budgets, cooldowns), baselines, semi-synthetic simulators on real
data and parity metrics."""

from scarce.fair.allocators import (
    EXP3Allocator,
    IndexAllocator,
    LinUCBAllocator,
    OracleAllocator,
    RandomAllocator,
    parity_quotas,
    select_top,
)
from scarce.fair.data import fitted_effects, jobs_env, star_env, synthetic_env
from scarce.fair.env import (
    AllocationProblem,
    AllocationTrace,
    Allocator,
    FairAllocationEnv,
    simulate,
)
from scarce.fair.metacub import MetaCUB, rate_ratios, shares_to_rates
from scarce.fair.models import (
    UNCERTAINTIES,
    History,
    LinearOutcomeModel,
    NeuralOutcomeModel,
    make_outcome_model,
)
from scarce.fair.population import (
    AllocationState,
    Population,
    Resources,
    rates_to_counts,
    stratified_cohorts,
)

__all__ = [
    "AllocationProblem",
    "AllocationState",
    "AllocationTrace",
    "Allocator",
    "EXP3Allocator",
    "FairAllocationEnv",
    "History",
    "IndexAllocator",
    "LinUCBAllocator",
    "LinearOutcomeModel",
    "MetaCUB",
    "NeuralOutcomeModel",
    "OracleAllocator",
    "Population",
    "RandomAllocator",
    "Resources",
    "UNCERTAINTIES",
    "fitted_effects",
    "jobs_env",
    "make_outcome_model",
    "parity_quotas",
    "rate_ratios",
    "rates_to_counts",
    "select_top",
    "shares_to_rates",
    "simulate",
    "star_env",
    "stratified_cohorts",
    "synthetic_env",
]
