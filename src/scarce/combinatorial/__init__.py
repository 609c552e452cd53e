"""Budgeted combinatorial allocation: how much of a resource each item of a case gets (one of
several levels per item, total capped per case), learned from feedback under an additive
reward model and allocated exactly by a multiple-choice knapsack."""

from scarce.combinatorial.envs import QueryAwareAllocationEnv
from scarce.combinatorial.knapsack import allocation_value, greedy_mckp, solve_mckp
from scarce.combinatorial.policies import Allocation, AllocationPolicy, FixedLevelPolicy
from scarce.combinatorial.run import run_allocation

__all__ = [
    "Allocation",
    "AllocationPolicy",
    "FixedLevelPolicy",
    "QueryAwareAllocationEnv",
    "allocation_value",
    "greedy_mckp",
    "run_allocation",
    "solve_mckp",
]
