"""MetaCUB: meta-level algebra, feasibility of the played shares, the rollout utility against
brute force, validation, and seeded learning behaviour in the one loop."""

import numpy as np
import pytest

from scarce.fair import (
    EqualSplit,
    FairOracle,
    FixedRates,
    GroupUCB,
    LinUCBAllocator,
    MetaCUB,
    RandomAllocator,
    allocation_metrics,
    rate_ratios,
    shares_to_rates,
    synthetic_env,
)
from scarce.sim import run

SMALL = {"n_candidates": 6, "n_global": 2, "n_rollouts": 4}


def params(env, **kw):
    return {"n_actions": env.n_actions, "n_features": env.n_features, **env.policy_params(0), **kw}


def trace_of(policy, env, rounds, seed=0):
    n = env.cohort_size
    return run(policy, env, rounds * n, batch_size=n, seed=seed, record_probabilities=False)


def metrics(trace, env):
    return allocation_metrics(trace, env.population.group_names, env.resources.names)


def test_shares_to_rates_and_parity():
    sizes = np.array([10.0, 30.0, 60.0])
    budgets = np.array([20, 5])
    parity = np.broadcast_to(sizes / sizes.sum(), (2, 3))[None]
    rates = shares_to_rates(parity, sizes, budgets)
    np.testing.assert_allclose(rates[0], [[0.2] * 3, [0.05] * 3])
    np.testing.assert_allclose(rate_ratios(rates, sizes), 1.0)
    skew = np.array([[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]])
    r = shares_to_rates(skew, sizes, budgets)[0]
    np.testing.assert_allclose(r, [[1.0, 1 / 3, 0.0], [0.0, 0.0, 5 / 60]])
    fr = rate_ratios(r[None], sizes)[0]
    overall = (1.0 * 10 + 10) / 100
    np.testing.assert_allclose(fr[0], [1.0 / overall, (1 / 3) / overall, 0.0])


def test_meta_rounds_play_only_feasible_shares_and_move_away_from_parity():
    env = synthetic_env(600, n_groups=4, kernel="type1", n_cohorts=3, seed=1)
    played = []

    class Spy(MetaCUB):
        def _plan(self, X, ctx, parity):
            shares, rates = super()._plan(X, ctx, parity)
            assert self._feasible(shares[None], ctx["caps"])[0]
            fr = rate_ratios(shares_to_rates(shares[None], self.sizes_, ctx["caps"]), self.sizes_)
            assert np.nanmax(np.abs(fr - 1)) <= 0.2 + 1e-9
            np.testing.assert_allclose(shares.sum(axis=1), 1.0)
            assert self.meta_log_[-1]["evaluated"] <= 6 + 2 + 16
            played.append(shares)
            return shares, rates

    trace_of(Spy(**params(env, seed=0, search=SMALL)), env, 40)
    assert len(played) == 5  # one meta round per cohort of 8 rounds
    assert any(np.abs(s - played[0]).max() > 1e-6 for s in played[1:])


def test_rollout_utility_brute_force():
    """One candidate, full effects, floor rounding: a rollout's utility is the sampled effect
    summed over the simulated allocations, which are those the base level then makes."""
    env = synthetic_env(300, kernel="instant", n_cohorts=2, seed=3)
    m = EqualSplit(**params(env, seed=0, rounding="floor"))
    m.search = {"count_full_effect": True, "n_rollouts": 3}
    trace = trace_of(m, env, 8)  # one cohort
    n = env.cohort_size
    units = env.cohort(0)
    X = env.population.X[units]
    ctx = {
        "caps": env.resources.budgets,
        "groups": env.population.groups[units],
        "cooldowns": env.resources.cooldowns,
    }
    m.rng_ = np.random.default_rng(5)
    U = m._rollouts(X, ctx, m.shares_[None])
    f = m.model_.sample(X, 3, np.random.default_rng(5))
    pos = np.searchsorted(units, trace.extras["units"])
    given = trace.action > 0
    expected = f[:, pos[given], trace.action[given] - 1].sum(axis=1)
    np.testing.assert_allclose(U[0], expected, rtol=1e-10)
    assert trace.horizon == 8 * n


def test_infeasible_hand_given_rates_raise_or_clip():
    env = synthetic_env(200, kernel="instant", n_cohorts=1, seed=0)
    rates = np.full((2, env.population.n_groups), 0.5)
    with pytest.raises(ValueError, match=r"resource 'r0'.*overshoot"):
        trace_of(FixedRates(**params(env, rates=rates)), env, 2)
    trace = trace_of(FixedRates(**params(env, rates=rates, clip_infeasible=True)), env, 2)
    counts = np.bincount(trace.action, minlength=3)[1:]
    assert np.all(counts <= 2 * env.resources.budgets)


def test_parameter_validation_names_the_argument():
    X = np.zeros((2, 3))
    for kw, msg in (
        ({"fairness": "maybe"}, "fairness must be"),
        ({"search": {"beta_meta": "ucb"}}, "beta_meta"),
        ({"search": {"n_rollouts": 1}}, "n_rollouts"),
        ({"search": {"typo": 1}}, "unknown key"),
        ({"rounding": "up"}, "rounding must be one of"),
        ({"kernels": ["type1", "type2", "type2"]}, "one spec or a list of 2"),
    ):
        with pytest.raises(ValueError, match=msg):
            MetaCUB(n_actions=3, n_features=3, **kw).decide(X)


def test_soft_fairness_gp_ucb_and_neural_models_run():
    env = synthetic_env(300, kernel="type1", n_cohorts=2, seed=2)
    soft = MetaCUB(**params(env, seed=0, fairness="soft", search={**SMALL, "beta_meta": "gp-ucb"}))
    neural = MetaCUB(
        **params(
            env,
            seed=0,
            model="neural_linear",
            search=SMALL,
            model_kwargs={"hidden": (8,), "epochs": 2},
        )
    )
    for policy in (soft, neural):
        m = metrics(trace_of(policy, env, 9), env)
        assert m["cumulative_outcome"] > 0 and m["allocations"] > 0


@pytest.mark.statistical
def test_learners_beat_random_and_the_band_holds_on_groups():
    from scarce.envs import make_env

    env = make_env("groups-type1", seed=0)
    res = {}
    for name, policy in {
        "Random": RandomAllocator(**params(env, seed=1)),
        "UCB": GroupUCB(**params(env, seed=1)),
        "LinUCB": LinUCBAllocator(**params(env, seed=1, attribution="kernel_ls")),
        "EqualSplit": EqualSplit(**params(env, seed=1)),
        "MetaCUB": MetaCUB(**params(env, seed=1)),
        "FairOracle": FairOracle(env=env),
    }.items():
        res[name] = metrics(trace_of(policy, env, 96, seed=2), env)
    out = {k: v["cumulative_outcome"] for k, v in res.items()}
    assert out["LinUCB"] > 1.2 * out["Random"]
    assert out["FairOracle"] >= out["MetaCUB"] > out["EqualSplit"] > out["Random"]
    for name in ("MetaCUB", "EqualSplit", "FairOracle"):
        assert (
            0.8 - 0.02
            <= res[name]["fairness_ratio_min"]
            <= res[name]["fairness_ratio_max"]
            <= 1.2 + 0.02
        )
    assert res["UCB"]["disparity"] > 0.5  # the paper's UCB concentrates on the best group


@pytest.mark.statistical
def test_knowing_the_kernel_beats_assuming_instant_feedback_under_type2():
    from scarce.envs import make_env

    env = make_env("groups-type2", seed=0)
    true = metrics(trace_of(MetaCUB(**params(env, seed=3)), env, 96, seed=4), env)
    wrong = metrics(
        trace_of(MetaCUB(**params(env, seed=3, kernels="instant")), env, 96, seed=4), env
    )
    assert true["cumulative_outcome"] > wrong["cumulative_outcome"]
