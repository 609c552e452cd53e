"""MetaCUB: meta-level algebra, feasibility of candidates, fairness, learning behaviour."""

import numpy as np
import pytest

from scarce.fair import (
    EXP3Allocator,
    IndexAllocator,
    LinUCBAllocator,
    MetaCUB,
    OracleAllocator,
    RandomAllocator,
    rate_ratios,
    shares_to_rates,
    simulate,
    star_env,
    synthetic_env,
)


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


def test_meta_round_plays_only_feasible_candidates():
    env = synthetic_env(600, n_groups=4, kernel="type1", n_cohorts=3, seed=1)
    m = MetaCUB(model="linear", eps_f=0.2)
    played = []

    class Spy(MetaCUB):
        def start_cohort(self, h, cohort, t):
            super().start_cohort(h, cohort, t)
            played.append(self.shares.copy())
            assert self._feasible(self.shares[None])[0]
            assert self.meta_log[-1]["evaluated"] <= self.n_candidates + self.n_global + 16

    spy = Spy(model="linear", eps_f=0.2)
    simulate(spy, env, 40, seed=0)
    for shares in played:
        fr = rate_ratios(shares_to_rates(shares[None], spy.sizes, env.resources.budgets), spy.sizes)
        assert np.nanmax(np.abs(fr - 1)) <= 0.2 + 1e-9
        np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert len(played) == 5 and m.name == "MetaCUB"
    # the meta level moves away from parity once the model has learned something
    assert any(np.abs(s - played[0]).max() > 1e-6 for s in played[1:])


def test_rollout_utility_brute_force():
    """One candidate, count_full_effect: the utility of a rollout is the sampled effect summed
    over the simulated allocations, which equal what the base level then allocates."""
    env = synthetic_env(300, kernel="instant", n_cohorts=2, seed=3)
    m = MetaCUB(model="linear", count_full_effect=True, n_rollouts=3, meta="parity")
    trace = simulate(m, env, 8, seed=0)  # one cohort: the parity quotas are played for 8 rounds
    cohort = env.population.cohort(0)
    rng = np.random.default_rng(5)
    m.rng = rng
    U = m._rollouts(env.population.X[cohort], 0, m.shares[None])
    m.rng = np.random.default_rng(5)
    f = m.model.sample(env.population.X[cohort], 3, m.rng)
    pos = np.searchsorted(cohort, trace.unit)
    expected = f[:, pos, trace.resource].sum(axis=1)
    np.testing.assert_allclose(U[0], expected, rtol=1e-10)


def test_infeasible_hand_given_rates_raise_or_clip():
    env = synthetic_env(200, kernel="instant", n_cohorts=1, seed=0)

    rates = np.full((2, env.population.n_groups), 0.5)
    with pytest.raises(ValueError, match=r"resource 'r0'.*overshoot"):
        simulate(MetaCUB(model="linear", meta="fixed", rates=rates), env, 2, seed=0)
    trace = simulate(
        MetaCUB(model="linear", meta="fixed", rates=rates, clip_infeasible=True), env, 2, seed=0
    )
    assert np.all(np.bincount(trace.resource, minlength=2) <= 2 * env.resources.budgets)
    with pytest.raises(ValueError, match="rates .* must be given exactly when"):
        MetaCUB(meta="fixed")


def test_parameter_validation():
    with pytest.raises(ValueError, match="fairness must be"):
        MetaCUB(fairness="maybe")
    with pytest.raises(ValueError, match="meta must be"):
        MetaCUB(meta="none")
    with pytest.raises(ValueError, match="beta_meta"):
        MetaCUB(beta_meta="ucb")
    with pytest.raises(ValueError, match="n_rollouts"):
        MetaCUB(n_rollouts=1)


def test_soft_fairness_gp_ucb_and_neural_run():
    env = synthetic_env(300, kernel="type1", n_cohorts=2, seed=2)
    soft = simulate(MetaCUB(model="linear", fairness="soft", beta_meta="gp-ucb"), env, 24, seed=0)
    neural = simulate(
        MetaCUB(model="neural_linear", n_rollouts=4, model_kwargs={"hidden": (8,), "epochs": 3}),
        env,
        24,
        seed=0,
    )
    for tr in (soft, neural):
        assert tr.effect.sum() > 0 and len(tr.unit) > 0


@pytest.mark.statistical
def test_learners_beat_random_and_oracle_beats_all():
    env = synthetic_env(800, kernel="type1", seed=0)
    res = {}
    for alloc in [
        RandomAllocator(),
        OracleAllocator(env),
        IndexAllocator("ucb"),
        EXP3Allocator(),
        LinUCBAllocator("kernel_ls"),
        MetaCUB(model="linear", rounding="randomized"),
    ]:
        res[alloc.name] = simulate(alloc, env, 120, seed=0).effect.sum()
    assert all(res["Oracle"] >= v for v in res.values())
    assert res["LinUCB-delay-aware"] > 2 * res["Random"]
    assert res["MetaCUB"] > 2 * res["Random"]


@pytest.mark.data
@pytest.mark.statistical
@pytest.mark.parametrize("seed", [1, 2])
def test_acceptance_star_type2(no_network, seed):
    """STAR, Type-II kernel: MetaCUB's allocation-rate ratios (per group, and per group and
    resource) all lie in [0.8, 1.2]; the flat delay-aware LinUCB's do not; MetaCUB's cumulative
    outcome is at least the delay-agnostic LinUCB's. MetaCUB has the spec's band eps_f = 0.2;
    randomised rounding makes realised rates match the planned ones for the smallest group
    (about 44 pupils per cohort)."""
    env = star_env("type2", seed=0)
    horizon = 160
    meta = simulate(MetaCUB(model="linear", rounding="randomized"), env, horizon, seed=seed)
    flat = simulate(LinUCBAllocator("kernel_ls"), env, horizon, seed=seed)
    agnostic = simulate(LinUCBAllocator("delay_agnostic"), env, horizon, seed=seed)
    for fr in (meta.fairness_ratios(), meta.fairness_ratios_by_resource()):
        assert np.all((fr >= 0.8) & (fr <= 1.2))
    fr_flat = flat.fairness_ratios_by_resource()
    assert np.any((fr_flat < 0.8) | (fr_flat > 1.2))
    assert meta.effect.sum() >= agnostic.effect.sum()
    assert meta.disparity() < flat.disparity()
