"""Vector rewards: preference cones, dominance, Pareto sets, the scale-independent gap, the
preference metric, the PCBShift tree policies and a scalarised baseline, covariate-shift
environments and the regrets. Everything runs in the library's one loop
(:func:`scarce.sim.run`); ``scarce run pareto-shift`` lives in :mod:`scarce.pareto.experiments`.

Importing this package registers the policies (``PCBShift``, ``StaticGridPCB``,
``ParetoUCB``, ``ScalarisedLinUCB``) and the environments (``peaks-shift``,
``peaks-shift-multi``)."""

from scarce.pareto.baselines import ScalarisedLinUCB, simplex_weights
from scarce.pareto.cones import Cone, dominates, pareto_mask, strictly_dominates, weakly_dominates
from scarce.pareto.envs import PeaksShiftEnv
from scarce.pareto.gaps import PreferenceMetric, gap_to_set, gaps
from scarce.pareto.pcbshift import ParetoUCB, PCBShift, StaticGridPCB
from scarce.pareto.policy import VectorPolicy
from scarce.pareto.regret import (
    decision_support,
    front_f1,
    pareto_sets,
    played_regret,
    preference_regret,
    round_gaps,
)

__all__ = [
    "Cone",
    "PCBShift",
    "ParetoUCB",
    "PeaksShiftEnv",
    "PreferenceMetric",
    "ScalarisedLinUCB",
    "StaticGridPCB",
    "VectorPolicy",
    "decision_support",
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
    "strictly_dominates",
    "weakly_dominates",
]
