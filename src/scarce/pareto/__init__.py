"""Vector rewards: preference cones, dominance, Pareto sets, the scale-independent gap and the
preference metric. (The PCBShift policy and the covariate-shift environments are to come.)"""

from scarce.pareto.cones import Cone, dominates, pareto_mask, strictly_dominates, weakly_dominates
from scarce.pareto.gaps import PreferenceMetric, gap_to_set, gaps

__all__ = [
    "Cone",
    "PreferenceMetric",
    "dominates",
    "gap_to_set",
    "gaps",
    "pareto_mask",
    "strictly_dominates",
    "weakly_dominates",
]
