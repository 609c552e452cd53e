"""PCBShift and the tree policies: exact bookkeeping against brute force, the elimination and
split rules step by step, invariants as property tests, persistence, and a seeded learning
test against uniform random play."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.core.policy import load
from scarce.pareto import (
    Cone,
    ParetoRandom,
    ParetoUCB,
    PCBShift,
    PeaksShiftEnv,
    StaticGridPCB,
    pareto_mask,
    simulate,
)

C3 = Cone.from_generators([[1.0, 0.6], [0.6, 1.0]])


def _feed(policy, env, T, seed):
    rng = np.random.default_rng(seed)
    X = env.contexts(T, rng)
    for t in range(T):
        x = X[t : t + 1]
        d = policy.decide(x)
        policy.update(x, d.actions, env.outcomes(x, d.actions, rng))
    return X


def _in_cell(x, lower, upper):
    # cells are (lower, upper], except that a cell starting at 0 also holds 0
    return np.all(((x > lower) | ((lower == 0) & (x == 0))) & (x <= upper), axis=-1)


# ----------------------------------------------------------------------------- validation
def test_vector_rewards_validated_with_clear_errors():
    p = PCBShift(n_actions=3, n_features=2, n_objectives=2, seed=0)
    x = np.array([[0.2, 0.3]])
    with pytest.raises(ValueError, match=r"rewards must have shape \(1, 2\)"):
        p.update(x, [0], [1.0])
    with pytest.raises(ValueError, match="rewards contains NaN"):
        p.update(x, [0], [[np.nan, 1.0]])
    with pytest.raises(ValueError, match="bandit feedback only"):
        p.update(x, full_rewards=np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\]\^D"):
        p.decide(np.array([[1.2, 0.3]]))
    with pytest.raises(ValueError, match="actions must be in"):
        p.update(x, [3], [[1.0, 1.0]])
    with pytest.raises(TypeError, match="unexpected keyword"):
        p.update(x, [0], [[1.0, 1.0]], costs=[1.0])
    with pytest.raises(ValueError, match="delta"):
        PCBShift(n_actions=3, n_features=1, delta=1.5).decide([[0.5]])
    with pytest.raises(ValueError, match="warmup"):
        PCBShift(n_actions=3, n_features=1, warmup="long").decide([[0.5]])
    with pytest.raises(ValueError, match=r"cone must live in R\^3"):
        PCBShift(n_actions=3, n_features=1, n_objectives=3, cone=C3).decide([[0.5]])
    # m = 1 accepts (n,) rewards
    PCBShift(n_actions=2, n_features=1, n_objectives=1, seed=0).update([[0.5]], [1], [0.3])


def test_warmup_is_round_robin_at_the_root():
    p = PCBShift(n_actions=4, n_features=1, warmup=10, c_beta=100.0, seed=0)
    env = PeaksShiftEnv(n_actions=4, change_points=(5,), seed=0)
    rng = np.random.default_rng(0)
    played = []
    for _ in range(10):
        x = env.contexts(1, rng)
        d = p.decide(x)
        assert d.probabilities[0] == 1.0
        played.append(int(d.actions[0]))
        p.update(x, d.actions, env.outcomes(x, d.actions, rng))
        assert p.n_leaves_ == 1
    assert played == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    # "paper" warm-up length: ceil(8 K log(K 2^D / delta))
    q = PCBShift(n_actions=10, n_features=2, delta=0.05)
    assert q.n_warmup_ == math.ceil(80 * math.log(10 * 4 / 0.05))


# ----------------------------------------------------------------------------- exact statistics
@pytest.mark.parametrize("D", [1, 2])
def test_every_leaf_holds_exactly_the_samples_of_its_cell(D):
    env = PeaksShiftEnv(
        n_actions=4, n_features=D, change_points=(200,), distributions=((1, 1), (3, 1))
    )
    p = PCBShift(
        n_actions=4, n_features=D, c_beta=2.0, sigma=0.1, warmup="short", max_depth=4, seed=1
    )
    rng = np.random.default_rng(2)
    X = env.contexts(400, rng)
    A, R = [], []
    for t in range(400):
        x = X[t : t + 1]
        d = p.decide(x)
        y = env.outcomes(x, d.actions, rng)
        p.update(x, d.actions, y)
        A.append(int(d.actions[0]))
        R.append(y[0])
    A, R = np.array(A), np.array(R)
    assert p.n_leaves_ > 1
    probes = np.vstack(
        [
            X[:50],
            np.random.default_rng(3).uniform(size=(50, D)),
            np.zeros((1, D)),
            np.full((1, D), 0.5),
        ]
    )
    for x in probes:
        est = p.leaf_estimates(x)
        inside = _in_cell(X, est["lower"], est["upper"])
        assert inside[np.all(X == x, axis=1)].all() or not np.any(np.all(X == x, axis=1))
        for k in range(4):
            sel = inside & (A == k)
            assert est["counts"][k] == sel.sum()
            if sel.any():
                np.testing.assert_allclose(est["means"][k], R[sel].mean(axis=0), atol=1e-12)
            else:
                assert np.isnan(est["means"][k]).all()
        np.testing.assert_allclose(est["upper"] - est["lower"], 2.0 ** -est["level"])


def _brute_refresh(counts, sums, active, level, policy, cone):
    """The elimination and play-set rules written out with loops."""
    K = len(counts)
    L = math.log(K * policy.n_objectives / policy.delta)
    if policy.sigma is None:  # Hoeffding, rewards in [0, 1]
        rad = [math.sqrt(L / (2 * max(n, 1))) for n in counts]
    else:
        rad = [policy.sigma * math.sqrt(2 * L / max(n, 1)) for n in counts]
    bias = policy.c_beta * 2.0 ** (-policy.beta * level)
    elim_bias = 0.0 if policy.pairwise else bias
    mu = [sums[k] / counts[k] if counts[k] else None for k in range(K)]
    active = active.copy()
    ok = [k for k in range(K) if active[k] and counts[k] >= policy.n_min]
    out = set()
    for k in ok:
        for j in ok:
            if j != k:
                lcb, ucb = mu[j] - rad[j] - elim_bias, mu[k] + rad[k] + elim_bias
                if np.all(cone.W @ (lcb - ucb) > 0):
                    out.add(k)
    for k in out:
        active[k] = False
    play = np.zeros(K, dtype=bool)
    seen = [k for k in range(K) if active[k] and counts[k] >= 1]
    for k in range(K):
        if active[k] and counts[k] == 0:
            play[k] = True
    for k in seen:
        play[k] = not any(
            np.all(cone.W @ (mu[j] - mu[k]) >= -1e-12) and np.any(mu[j] != mu[k])
            for j in seen
            if j != k
        )
    split = (
        level < policy.max_depth_
        and play.any()
        and all(counts[k] >= 1 for k in np.flatnonzero(play))
    )
    split = split and max(rad[k] for k in np.flatnonzero(play)) <= bias
    return active, play, split


@pytest.mark.parametrize(
    ("cone", "pairwise", "sigma", "c_beta"),
    [
        (Cone.orthant(2), False, 0.05, 0.3),
        (C3, False, 0.05, 0.3),
        (Cone.orthant(2), True, 0.05, 0.3),
        (Cone.orthant(2), False, None, 3.0),
    ],
    ids=["orthant", "C3", "pairwise", "hoeffding"],
)
def test_elimination_play_set_and_split_follow_the_rules_step_by_step(
    cone, pairwise, sigma, c_beta
):
    env = PeaksShiftEnv(n_actions=5, change_points=(10,), noise=0.05)
    p = PCBShift(
        n_actions=5,
        n_features=1,
        cone=cone,
        c_beta=c_beta,
        sigma=sigma,
        pairwise=pairwise,
        warmup=10,
        max_depth=3,
        seed=4,
    )
    rng = np.random.default_rng(5)
    eliminated = splits = 0
    for t in range(600):
        x = env.contexts(1, rng)
        before = p.leaf_estimates(x[0])
        d = p.decide(x)
        assert before["play"][d.actions[0]] or t < 10
        y = env.outcomes(x, d.actions, rng)
        k = int(d.actions[0])
        counts = before["counts"].copy()
        sums = np.nan_to_num(before["means"]) * counts[:, None]
        counts[k] += 1
        sums[k] += y[0]
        active, play, split = _brute_refresh(
            counts, sums, before["active"], before["level"], p, cone
        )
        leaves = p.n_leaves_
        p.update(x, d.actions, y)
        split = split and t >= 10
        assert p.n_leaves_ == leaves + (1 if split else 0)
        eliminated += int((before["active"] & ~active).sum())
        splits += int(split)
        if not split:
            after = p.leaf_estimates(x[0])
            np.testing.assert_array_equal(after["active"], active)
            np.testing.assert_array_equal(after["play"], play)
    assert splits > 0  # the split rule was exercised
    assert eliminated > 0 or sigma is None  # and elimination (Hoeffding's radius is too wide here)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.sampled_from(["PCBShift", "ParetoUCB", "StaticGridPCB"]),
    st.integers(1, 2),
    st.floats(0.05, 3.0),
    st.sampled_from(["redistribute", "copy_parent"]),
    st.sampled_from([0.1, "empirical", None]),
)
def test_tree_invariants(seed, name, D, c_beta, child_init, sigma):
    cls = {"PCBShift": PCBShift, "ParetoUCB": ParetoUCB, "StaticGridPCB": StaticGridPCB}[name]
    env = PeaksShiftEnv(n_actions=4, n_features=D, change_points=(40,), noise=0.1)
    p = cls(
        n_actions=4,
        n_features=D,
        c_beta=c_beta,
        sigma=sigma,
        warmup="short",
        max_depth=4,
        child_init=child_init,
        seed=seed,
    )
    _feed(p, env, 150, seed)
    N = p._n_nodes
    child, active, play, count = p._child[:N], p._active[:N], p._play[:N], p._count[:N]
    for node in range(N):
        assert np.all(play[node] <= active[node])  # play set within the active set
        assert play[node].any() and active[node].any()
        if child[node] >= 0:  # children inherit (a subset of) the parent's active set
            kids = range(child[node], child[node] + 2**D)
            for c in kids:
                assert np.all(active[c] <= active[node])
                assert p._level[c] == p._level[node] + 1
                if child_init == "copy_parent":  # each child starts from the parent's statistics
                    assert np.all(count[c] >= count[node])
            # samples are redistributed: the children hold the parent's data (and later data)
            assert np.all(count[list(kids)].sum(axis=0) >= count[node])
        else:
            mu = p._sum[node] / np.maximum(count[node], 1)[:, None]
            seen = active[node] & (count[node] > 0)
            if seen.any() and name != "ParetoUCB":
                front = np.zeros(4, dtype=bool)
                front[seen] = pareto_mask(mu[seen], p.cone_)
                np.testing.assert_array_equal(
                    play[node], front | (active[node] & (count[node] == 0))
                )
    if name == "ParetoUCB":
        assert active.all()  # never eliminates
    if name == "StaticGridPCB":
        assert p.n_leaves_ == 2 ** (D * p.grid_level_)
    assert p.depth_ <= p.max_depth_
    total = sum(len(s) for s in p._samples[:N])
    assert total == 150 == p._n_samples


def test_save_load_round_trip_gives_the_same_future(tmp_path):
    env = PeaksShiftEnv(n_actions=5, n_features=2, n_objectives=3, change_points=(100,))
    for cls in (PCBShift, StaticGridPCB, ParetoUCB):
        p = cls(
            n_actions=5,
            n_features=2,
            n_objectives=3,
            cone=Cone.orthant(3),
            c_beta=1.0,
            sigma=0.1,
            warmup="short",
            seed=3,
        )
        _feed(p, env, 300, 0)
        p.save(tmp_path / cls.__name__)
        q = load(tmp_path / cls.__name__)
        assert type(q) is cls and q.get_params()["n_objectives"] == 3
        rng = np.random.default_rng(9)
        for _ in range(50):
            x = env.contexts(1, rng)
            a, b = p.decide(x), q.decide(x)
            np.testing.assert_array_equal(a.actions, b.actions)
            y = env.outcomes(x, a.actions, rng)
            p.update(x, a.actions, y)
            q.update(x, b.actions, y)
        assert p.n_leaves_ == q.n_leaves_
        np.testing.assert_array_equal(p._count[: p._n_nodes], q._count[: q._n_nodes])


def test_probabilities_are_uniform_on_the_play_set_and_respect_eligibility():
    env = PeaksShiftEnv(n_actions=6, change_points=(50,))
    p = PCBShift(n_actions=6, n_features=1, c_beta=3.2, sigma=0.1, warmup="short", seed=0)
    _feed(p, env, 400, 1)
    X = np.linspace(0, 1, 25)[:, None]
    probs = p.action_probabilities(X)
    play = p.pareto_estimate(X)
    np.testing.assert_allclose(probs, play / play.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(p.play_set(X), play)
    elig = np.zeros((25, 6), dtype=bool)
    elig[:, 5] = True
    d = p.decide(X, eligible=elig)
    assert np.all(d.actions == 5)
    # decisions do not change the state: the empirical law over many draws matches
    x = np.full((4000, 1), 0.3)
    acts = p.decide(x).actions
    freq = np.bincount(acts, minlength=6) / 4000
    np.testing.assert_allclose(freq, p.action_probabilities(x[:1])[0], atol=0.03)


# ----------------------------------------------------------------------------- learning
@pytest.mark.statistical
def test_pcbshift_learns_under_covariate_shift():
    """The spec's instance with K = 5, T = 3000, shift at 1500 (uniform source, power-law
    target near x = 1): target-phase preference regret well below random's, the tree splits,
    and the estimated front's F1 on target contexts rises."""
    T = 3000
    for seed in (0, 1):
        env = PeaksShiftEnv(n_actions=5, change_points=(1500,), distributions=((1, 1), (6, 1)))
        pcb = PCBShift(
            n_actions=5, n_features=1, c_beta=env.holder_constant, sigma=0.1, horizon=T, seed=seed
        )
        rnd = ParetoRandom(n_actions=5, n_features=1, seed=seed)
        tp = simulate(pcb, env, T, seed=seed, n_checkpoints=30)
        tr = simulate(rnd, env, T, seed=seed, n_checkpoints=3)
        assert tp.target("preference_regret") < 0.25 * tr.target("preference_regret")
        assert tp.target("played_regret") < 0.25 * tr.target("played_regret")
        assert tp.n_leaves[-1] > 1 and pcb.depth_ >= 2
        assert np.all(np.diff(tp.n_leaves) >= 0)
        # F1 of the estimated front on target contexts, every 100 rounds: the first checkpoint
        # is inside the round-robin warm-up (one bin: the front of context-averaged means)
        f1 = tp.front_f1
        assert f1[0] < 0.5
        assert f1[-5:].mean() > 0.9 and f1[-5:].mean() > f1[0] + 0.5
        assert f1[15:].mean() > f1[:15].mean() + 0.05
        assert f1[-5:].mean() > tr.front_f1[-1] + 0.3  # random's "front" is every arm


def test_batch_update_equals_one_by_one():
    env = PeaksShiftEnv(n_actions=5, n_features=2, change_points=(100,))
    rng = np.random.default_rng(0)
    X = env.contexts(300, rng)
    A = rng.integers(5, size=300)
    R = env.outcomes(X, A, rng)
    kw = dict(n_actions=5, n_features=2, c_beta=1.0, sigma=0.1, warmup=20, seed=0)
    one, batch = PCBShift(**kw), PCBShift(**kw)
    for t in range(300):
        one.update(X[t : t + 1], A[t : t + 1], R[t : t + 1])
    for start in range(0, 300, 60):
        batch.update(X[start : start + 60], A[start : start + 60], R[start : start + 60])
    assert one.n_leaves_ == batch.n_leaves_ > 1
    for key in ("count", "sum", "active", "play", "child"):
        np.testing.assert_array_equal(
            one._get_learned_state()[key], batch._get_learned_state()[key]
        )
    # a batch decision during the warm-up is the round robin of the next rounds
    fresh = PCBShift(**kw)
    np.testing.assert_array_equal(fresh.decide(X[:7]).actions, [0, 1, 2, 3, 4, 0, 1])


def test_empirical_noise_radius_matches_the_sample_standard_deviation():
    env = PeaksShiftEnv(n_actions=4, n_objectives=3, change_points=(10,), noise=0.2)
    p = PCBShift(
        n_actions=4, n_features=1, n_objectives=3, sigma="empirical", max_depth=0, warmup=0, seed=0
    )
    rng = np.random.default_rng(0)
    X = env.contexts(60, rng)
    A = np.r_[np.zeros(30, dtype=int), np.ones(29, dtype=int), 2]  # arm 3 never, arm 2 once
    R = env.outcomes(X, A, rng)
    p.update(X, A, R)
    rad = p._radius(0, np.arange(4))
    L = math.log(4 * 3 / 0.05)
    for k in (0, 1):
        sd = R[A == k].std(axis=0, ddof=1).max()
        assert rad[k] == pytest.approx(sd * math.sqrt(2 * L / np.sum(A == k)), rel=1e-9)
    assert np.isinf(rad[2]) and np.isinf(rad[3])
    assert p.n_leaves_ == 1  # max_depth=0: never splits
    with pytest.raises(ValueError, match="sigma must be"):
        PCBShift(n_actions=2, n_features=1, sigma="estimated").decide([[0.5]])
