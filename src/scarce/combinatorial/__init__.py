"""Budgeted combinatorial allocation: how much of a resource each item of a case gets (one of
several levels per item, total capped per case), learned from feedback under an additive
reward model and allocated exactly by a multiple-choice knapsack. The policies are the
``"levels"`` variant of the one protocol and run in :func:`scarce.sim.run`."""

from scarce.combinatorial.envs import QueryAwareAllocationEnv
from scarce.combinatorial.knapsack import allocation_value, greedy_mckp, solve_mckp
from scarce.combinatorial.policies import AllocationPolicy, FixedLevelPolicy, LevelPolicy
from scarce.policies import register_policy

for _cls in (AllocationPolicy, FixedLevelPolicy):
    register_policy(_cls)

__all__ = [
    "AllocationPolicy",
    "FixedLevelPolicy",
    "LevelPolicy",
    "QueryAwareAllocationEnv",
    "allocation_value",
    "greedy_mckp",
    "solve_mckp",
]
