"""Vector rewards: preference cones, dominance, Pareto sets, the scale-independent gap, the
preference metric, the PCBShift tree policy and its baselines, covariate-shift environments
and the regrets (``scarce run pareto-shift`` lives in :mod:`scarce.pareto.experiments`)."""

from scarce.pareto.baselines import ParetoRandom, ScalarisedLinUCB, simplex_weights
from scarce.pareto.cones import Cone, dominates, pareto_mask, strictly_dominates, weakly_dominates
from scarce.pareto.envs import PeaksShiftEnv
from scarce.pareto.gaps import PreferenceMetric, gap_to_set, gaps
from scarce.pareto.policy import ParetoUCB, PCBShift, StaticGridPCB, VectorPolicy
from scarce.pareto.regret import front_f1, pareto_sets, played_regret, preference_regret, round_gaps
from scarce.pareto.runner import VectorTrace, simulate

__all__ = [
    "Cone",
    "PCBShift",
    "ParetoRandom",
    "ParetoUCB",
    "PeaksShiftEnv",
    "PreferenceMetric",
    "ScalarisedLinUCB",
    "StaticGridPCB",
    "VectorPolicy",
    "VectorTrace",
    "dominates",
    "front_f1",
    "gap_to_set",
    "gaps",
    "pareto_mask",
    "pareto_sets",
    "played_regret",
    "preference_regret",
    "round_gaps",
    "simplex_weights",
    "simulate",
    "strictly_dominates",
    "weakly_dominates",
]
