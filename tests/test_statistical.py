"""Seeded learning-behaviour tests: the policies learn on problems with known optimum."""

import pytest

from scarce.envs import LinearGaussianEnv, LogisticEnv
from scarce.policies import GLMTS, GLMUCB, LinTS, LinUCB, Random
from scarce.sim import run

pytestmark = pytest.mark.statistical

SEEDS = [0, 1, 2]
T = 1500


def _regret(policy_cls, env_cls, seed, **kw):
    env = env_cls(n_actions=5, n_features=5, seed=100 + seed)
    policy = policy_cls(n_actions=5, n_features=5, seed=seed, **kw)
    trace = run(policy, env, horizon=T, seed=seed)
    return trace.regret


@pytest.mark.parametrize(
    "cls,kw", [(LinUCB, {"alpha": 1.0}), (LinTS, {"v": 0.5})], ids=["LinUCB", "LinTS"]
)
def test_linear_policies_beat_random_and_regret_is_sublinear(cls, kw):
    for seed in SEEDS:
        regret = _regret(cls, LinearGaussianEnv, seed, **kw)
        random_regret = _regret(Random, LinearGaussianEnv, seed)
        # well below random: less than a quarter of random's cumulative regret
        assert regret.sum() < 0.25 * random_regret.sum(), (seed, regret.sum(), random_regret.sum())
        # sublinear: the second half of the horizon costs less than the first
        half = T // 2
        assert regret[half:].sum() < regret[:half].sum(), seed


@pytest.mark.parametrize("cls", [GLMUCB, GLMTS], ids=["GLMUCB", "GLMTS"])
def test_glm_policies_beat_random_on_logistic_problem(cls):
    for seed in SEEDS[:2]:
        regret = _regret(cls, LogisticEnv, seed)
        random_regret = _regret(Random, LogisticEnv, seed)
        assert regret.sum() < 0.5 * random_regret.sum(), (seed, regret.sum(), random_regret.sum())
        assert regret[T // 2 :].sum() < regret[: T // 2].sum()
