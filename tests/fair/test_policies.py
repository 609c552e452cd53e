"""The allocation variant of the policy protocol: the coupled selection rule against brute
force, the band oracle against a linear program, baselines' bookkeeping, probabilities,
persistence in the middle of a run, and what comes back through update."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import scarce
from scarce.fair import (
    EqualSplit,
    EXP3Allocator,
    FairOracle,
    GroupUCB,
    LinUCBAllocator,
    MetaCUB,
    Oracle,
    RandomAllocator,
    band_quotas,
    synthetic_env,
)
from scarce.fair.policy import top_by_capacity
from scarce.sim import run


def brute_top(scores, eligible, caps):
    n, K = scores.shape
    actions = np.zeros(n, dtype=int)
    for r in sorted(range(K - 1), key=lambda r: (-caps[r], r)):
        cand = [
            i
            for i in range(n)
            if actions[i] == 0 and eligible[i, r + 1] and scores[i, r + 1] > scores[i, 0]
        ]
        cand.sort(key=lambda i: (-scores[i, r + 1], i))
        for i in cand[: caps[r]]:
            actions[i] = r + 1
    return actions


@settings(max_examples=60)
@given(st.integers(0, 100_000), st.integers(1, 25), st.integers(2, 4))
def test_capacity_rule_matches_brute_force(seed, n, K):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, K))
    eligible = rng.random((n, K)) < 0.8
    eligible[:, 0] = True
    caps = rng.integers(0, 6, K - 1)
    np.testing.assert_array_equal(
        top_by_capacity(scores, eligible, caps), brute_top(scores, eligible, caps)
    )


@settings(max_examples=40)
@given(st.integers(0, 100_000))
def test_band_quotas_solve_the_fractional_problem(seed):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 5))
    sizes = rng.integers(3, 30, K).astype(float)
    values = [np.sort(rng.exponential(size=int(rng.integers(0, s + 1))))[::-1] for s in sizes]
    cap, eps = float(rng.integers(1, 12)), float(rng.choice([0.0, 0.1, 0.2]))
    q = band_quotas(values, sizes, cap, eps)
    # LP over unit fractions x_{k,j} in [0, 1]: max sum v x, per-group band, total <= cap
    rho = cap / sizes.sum()
    avail = np.array([v.size for v in values], float)
    lo = np.minimum((1 - eps) * rho * sizes, avail)
    hi = np.minimum((1 + eps) * rho * sizes, avail)
    c = -np.concatenate(values) if avail.sum() else np.zeros(0)
    if c.size == 0:
        assert np.allclose(q, 0)
        return
    group = np.repeat(np.arange(K), avail.astype(int))
    A = [np.ones(c.size)] + [np.where(group == k, 1.0, 0.0) for k in range(K)]
    A += [-np.where(group == k, 1.0, 0.0) for k in range(K)]
    b = [cap, *hi, *(-lo)]
    lp = linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=(0, 1), method="highs")
    assert lp.status == 0
    value = sum(
        values[k][: int(np.floor(q[k] + 1e-9))].sum()
        + (q[k] - np.floor(q[k] + 1e-9))
        * (values[k][int(np.floor(q[k] + 1e-9))] if q[k] < avail[k] - 1e-9 else 0.0)
        for k in range(K)
    )
    assert value == pytest.approx(-lp.fun, abs=1e-7)
    assert np.all(q >= lo - 1e-9) and np.all(q <= hi + 1e-9) and q.sum() <= cap + 1e-9


@pytest.fixture(scope="module")
def env():
    return synthetic_env(240, n_groups=3, kernel="type1", n_cohorts=3, seed=2)


def trace_of(policy, env, rounds, seed=0):
    n = env.cohort_size
    return run(policy, env, rounds * n, batch_size=n, seed=seed, record_probabilities=False)


def params(env, **kw):
    return {"n_actions": env.n_actions, "n_features": env.n_features, **env.policy_params(0), **kw}


def test_group_ucb_arm_statistics_by_brute_force(env):
    ucb = GroupUCB(**params(env, seed=0, discount=0.8, window=6))
    trace_of(ucb, env, 10)
    n, s = ucb._arm_stats(3)
    # brute force: the delay-agnostic credit of each allocation, weighted by age
    u, r, t, g, _ = ucb.history_.allocations()
    obs = ucb.history_.observations()
    credit = np.zeros(u.size)
    for ou, ot, ov in zip(obs.unit, obs.round, obs.value, strict=True):
        if ou < 0:
            past = t[t <= ot]
            if past.size:
                latest = np.flatnonzero(t == past.max())
                credit[latest] += ov / latest.size
            continue
        mine = np.flatnonzero((u == ou) & (t <= ot))
        if mine.size:
            credit[mine[np.argmax(t[mine] * 10**6 + mine)]] += ov
    age = ucb._last_round() - t
    w = 0.8**age * (age < 6)
    bn, bs = np.zeros((3, 2)), np.zeros((3, 2))
    np.add.at(bn, (g, r), w)
    np.add.at(bs, (g, r), w * credit)
    np.testing.assert_allclose(n, bn)
    np.testing.assert_allclose(s, bs, atol=1e-9)


def test_group_ucb_is_unfair_where_the_band_holds(env):
    ucb = trace_of(GroupUCB(**params(env, seed=1)), env, 24)
    eq = trace_of(EqualSplit(**params(env, seed=1)), env, 24)
    from scarce.fair import fairness_ratios

    fr_ucb, _ = fairness_ratios(ucb, 3, 2)
    fr_eq, by_res = fairness_ratios(eq, 3, 2)
    assert np.abs(fr_ucb - 1).max() > 0.3
    assert np.abs(by_res - 1).max() < 0.05  # parity, to rounding


def test_exp3_probabilities_without_capacities_are_softmax(env):
    p = EXP3Allocator(**params(env, seed=0, eta=0.5))
    trace_of(p, env, 6)
    X = env.population.X[:5]
    groups = env.population.groups[:5]
    probs = p.action_probabilities(X, groups=groups)
    logw = p._log_weights(3)
    z = np.concatenate([np.zeros((5, 1)), logw[groups]], axis=1)
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected)


def test_monte_carlo_probabilities_agree_with_decide_and_never_touch_the_stream(env):
    n = env.cohort_size
    X = env.population.X[env.cohort(0)]
    ctx = {
        "groups": env.population.groups[env.cohort(0)],
        "capacities": np.array([n, *env.resources.budgets]),
        "units": env.cohort(0),
    }
    for cls in (RandomAllocator, GroupUCB, EXP3Allocator):
        policy = cls(**params(env, seed=3))
        probs = policy.action_probabilities(X, **ctx)
        state = policy.rng_.bit_generator.state
        probs_again = policy.action_probabilities(X, **ctx)
        assert policy.rng_.bit_generator.state == state
        np.testing.assert_array_equal(probs, probs_again)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        # expected allocations per resource = the capacities (every case is eligible)
        np.testing.assert_allclose(probs[:, 1:].sum(axis=0), env.resources.budgets, atol=1e-9)
        d = policy.decide(X, **ctx)
        assert np.all(d.probabilities > 0) and np.all(d.probabilities <= 1)


def test_a_run_saved_midway_continues_identically(tmp_path, env):
    n = env.cohort_size
    for cls, kw in (
        (MetaCUB, {"search": {"n_candidates": 4, "n_rollouts": 3}}),
        (EXP3Allocator, {}),
    ):
        a = cls(**params(env, seed=5, **kw))
        trace_of(a, env, 11)  # stops inside a cohort
        a.save(tmp_path / cls.__name__)
        b = scarce.load(tmp_path / cls.__name__)
        rng = np.random.default_rng(0)
        for t in range(11, 19):
            X = env.population.X[env.cohort(t)]
            ctx = {
                "groups": env.population.groups[env.cohort(t)],
                "capacities": np.array([n, *env.resources.budgets]),
                "units": env.cohort(t),
            }
            da, db = a.decide(X, **ctx), b.decide(X, **ctx)
            np.testing.assert_array_equal(da.actions, db.actions)
            rewards = rng.normal(size=n)
            for p, d in ((a, da), (b, db)):
                p.update(
                    X,
                    d.actions,
                    rewards,
                    info=d.info,
                    round_outcome=np.full(n, rewards.sum() + 1.0),
                )


def test_feedback_is_recorded_with_remainders(env):
    p = LinUCBAllocator(**params(env, seed=0))
    X = env.population.X[:4]
    d = p.decide(X, units=np.arange(4), capacities=np.array([4, 1, 1]))
    rewards = np.array([0.5, 0.0, 0.25, 0.0])
    p.update(X, d.actions, rewards, info=d.info, round_outcome=np.full(4, 2.0))
    obs = p.history_.observations()
    # own rows where a window is open (the allocated) or something was seen, then the remainder
    kept = np.flatnonzero((rewards != 0) | (d.actions > 0))
    assert obs.unit.tolist() == [*kept.tolist(), -1] and set(obs.round.tolist()) == {0}
    np.testing.assert_allclose(obs.value, [*rewards[kept], 1.25])
    u, r, t, g, Xa = p.history_.allocations()
    assert sorted(u.tolist()) == np.flatnonzero(d.actions).tolist() and len(u) == 2
    # aggregate feedback (a new round): no own rows, one remainder row with the whole total
    d = p.decide(X, units=np.arange(4), capacities=np.array([4, 1, 1]))
    before = len(p.history_.observations().unit)
    p.update(
        X,
        d.actions,
        np.full(4, 0.5),
        info=d.info,
        round_outcome=np.full(4, 2.0),
        individual=np.zeros(4, bool),
    )
    obs = p.history_.observations()
    assert obs.unit[before:].tolist() == [-1] and obs.value[-1] == 2.0 and obs.round[-1] == 1
    # by hand, without the decision's info: new individuals of the last round
    p.update(X, np.array([1, 0, 0, 0]), np.zeros(4))
    assert p.history_.allocations()[0].max() >= 4


def _key_sums(policy):
    obs = policy.history_.observations()
    out = {}
    for u, t, v in zip(obs.unit.tolist(), obs.round.tolist(), obs.value.tolist(), strict=True):
        out[(u, t)] = out.get((u, t), 0.0) + v
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 100_000), st.booleans())
def test_a_round_may_come_in_several_updates(seed, with_totals):
    """The service learns one case at a time, and delayed feedback splits rounds: learning a
    round's cases in pieces (any order, totals with some pieces only) leaves the same
    observations per (unit, round), remainders included, as one update, and the same fit."""
    env = synthetic_env(60, n_groups=2, kernel="type1", n_cohorts=2, seed=1)
    rng = np.random.default_rng(seed)
    whole = LinUCBAllocator(**params(env, seed=0, attribution="kernel_ls"))
    split = LinUCBAllocator(**params(env, seed=0, attribution="kernel_ls"))
    n = 6
    for t in range(5):
        units = env.cohort(t)[:n]
        X = env.population.X[units]
        ctx = {"units": units, "capacities": np.array([n, 2, 1]), "groups": units % 2}
        d, d2 = whole.decide(X, **ctx), split.decide(X, **ctx)
        np.testing.assert_array_equal(d.actions, d2.actions)
        rewards = rng.normal(size=n)
        own = rng.random(n) < 0.7
        total = np.full(n, rewards[own].sum() + rng.normal())
        fb = {"individual": own, **({"round_outcome": total} if with_totals else {})}
        whole.update(X, d.actions, rewards, info=d.info, **fb)
        order = rng.permutation(n)
        pieces = [q for q in np.array_split(order, rng.integers(1, n + 1)) if q.size]
        first_total = rng.integers(len(pieces))  # pieces before it wait for their remainder
        for j, piece in enumerate(pieces):
            info = {k: v[piece] for k, v in d.info.items()}
            kw = {"individual": own[piece]}
            if with_totals and (j == first_total or (j > first_total and rng.random() < 0.5)):
                kw["round_outcome"] = total[piece]
            split.update(X[piece], d.actions[piece], rewards[piece], info=info, **kw)
            # the kept sums of rounds awaiting a remainder equal a scan of the history
            assert split.pending_sums_ == split._scan_own_sums()
    a, b = _key_sums(whole), _key_sums(split)
    assert a.keys() == b.keys()
    np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], atol=1e-12)
    for p in (whole, split):
        p._fit(4)
    X = env.population.X[:10]
    np.testing.assert_allclose(whole.model_.predict(X)[0], split.model_.predict(X)[0], atol=1e-9)


def test_context_is_validated_with_names(env):
    p = LinUCBAllocator(**params(env, seed=0))
    X = env.population.X[:3]
    with pytest.raises(ValueError, match="capacities must have equal rows"):
        p.decide(X, capacities=np.array([[3, 1, 1], [3, 2, 1], [3, 1, 1]]))
    with pytest.raises(ValueError, match="capacities must be"):
        p.decide(X, capacities=np.array([3, 1]))
    with pytest.raises(ValueError, match="groups must be"):
        p.decide(X, groups=np.array([0.5, 1, 1]))
    with pytest.raises(ValueError, match="units must be"):
        p.decide(X, units=np.array([-1, 0, 1]))
    with pytest.raises(ValueError, match="action 0 .* must be eligible"):
        p.decide(X, capacities=np.array([3, 1, 1]), eligible=np.array([[False, True, True]] * 3))
    with pytest.raises(ValueError, match="n_actions must be an int >= 2"):
        LinUCBAllocator(n_actions=1, n_features=2).decide(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="learn from bandit feedback only"):
        p.update(X, full_rewards=np.zeros((3, 3)))


def test_oracles_know_the_truth_and_keep_the_band(env):
    oracle = trace_of(Oracle(env=env), env, 16)
    fair = trace_of(FairOracle(env=env), env, 16)
    parity = trace_of(FairOracle(env=env, eps_f=0.0), env, 16)
    from scarce.fair import fairness_ratios

    eff = {
        k: t.extras["metric_effect"].sum() for k, t in (("o", oracle), ("f", fair), ("p", parity))
    }
    assert eff["o"] >= eff["f"] >= eff["p"]
    _, fr_fair = fairness_ratios(fair, 3, 2)
    _, fr_par = fairness_ratios(parity, 3, 2)
    # carry rounding keeps every group's count within one unit of its planned count
    exposure = (fair.extras["groups"][:, None] == np.arange(3)).sum(0)[:, None]
    tol = 1.0 / (exposure * env.resources.budgets[None, :] / env.cohort_size)  # one unit
    assert np.all(np.abs(fr_fair - 1) <= 0.2 + tol)
    assert np.all(np.abs(fr_par - 1) <= tol)
