"""PCBShift and the tree policies: exact bookkeeping against brute force, the estimate,
elimination, exploration and split rules replayed step by step against a loop-based
re-implementation from the raw samples, invariants as property tests, persistence, and
seeded learning tests (against random play, and the measured failure of issue 15)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.core.policy import load
from scarce.pareto import (
    Cone,
    ParetoUCB,
    PCBShift,
    PeaksShiftEnv,
    StaticGridPCB,
    pareto_mask,
)
from scarce.pareto.experiments import run_segments
from scarce.policies import Random

C3 = Cone.from_generators([[1.0, 0.6], [0.6, 1.0]])


def _feed(policy, env, T, seed):
    """Decide and learn ``T`` cases one by one; returns contexts, actions and rewards."""
    rng = np.random.default_rng(seed)
    X = env.contexts(T, rng)
    A, R = [], []
    for t in range(T):
        x = X[t : t + 1]
        d = policy.decide(x)
        y = env.outcomes(x, d.actions, rng).rewards
        policy.update(x, d.actions, y)
        A.append(int(d.actions[0]))
        R.append(y[0])
    return X, np.array(A), np.array(R)


def _in_cell(x, lower, upper):
    # cells are (lower, upper], except that a cell starting at 0 also holds 0
    return np.all(((x > lower) | ((lower == 0) & (x == 0))) & (x <= upper), axis=-1)


# ----------------------------------------------------------------------------- validation
def test_vector_rewards_validated_with_clear_errors():
    p = PCBShift(n_actions=3, n_features=2, n_objectives=2, seed=0)
    x = np.array([[0.2, 0.3]])
    with pytest.raises(ValueError, match=r"rewards must have shape \(1, 2\)"):
        p.update(x, [0], [1.0])
    with pytest.raises(ValueError, match="rewards.*NaN"):
        p.update(x, [0], [[np.nan, 1.0]])
    with pytest.raises(ValueError, match=r"full_rewards must have shape \(1, 3, 2\)"):
        p.update(x, full_rewards=np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\]\^D"):
        p.decide(np.array([[1.2, 0.3]]))
    with pytest.raises(ValueError, match="actions"):
        p.update(x, [3], [[1.0, 1.0]])
    with pytest.raises(TypeError, match="unexpected keyword"):
        p.update(x, [0], [[1.0, 1.0]], costs=[1.0])
    with pytest.raises(ValueError, match="delta"):
        PCBShift(n_actions=3, n_features=1, delta=1.5).decide([[0.5]])
    with pytest.raises(ValueError, match="warmup"):
        PCBShift(n_actions=3, n_features=1, warmup="long").decide([[0.5]])
    with pytest.raises(ValueError, match="explore_depth"):
        PCBShift(n_actions=3, n_features=1, explore_depth=-1).decide([[0.5]])
    with pytest.raises(ValueError, match=r"cone must live in R\^3"):
        PCBShift(n_actions=3, n_features=1, n_objectives=3, cone=C3).decide([[0.5]])
    # full-information feedback adds a sample of every arm
    q = PCBShift(n_actions=3, n_features=1, warmup=0, seed=0)
    q.update([[0.5], [0.7]], full_rewards=np.ones((2, 3, 2)))
    assert q.leaf_estimates([0.5])["counts"].tolist() == [2, 2, 2]


def test_warmup_is_round_robin_at_the_root():
    p = PCBShift(n_actions=4, n_features=1, warmup=10, c_beta=100.0, seed=0)
    env = PeaksShiftEnv(n_actions=4, change_points=(5,), seed=0)
    rng = np.random.default_rng(0)
    played = []
    for _ in range(10):
        x = env.contexts(1, rng)
        d = p.decide(x)
        assert d.probabilities[0] == 1.0
        assert d.info["support"].sum() == 1
        played.append(int(d.actions[0]))
        p.update(x, d.actions, env.outcomes(x, d.actions, rng).rewards)
        assert p.n_leaves_ == 1
    assert played == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    # "paper" warm-up length: ceil(8 K log(K 2^D / delta))
    q = PCBShift(n_actions=10, n_features=2, delta=0.05)
    assert q.n_warmup_ == math.ceil(80 * math.log(10 * 4 / 0.05))


# ----------------------------------------------------------------------------- exact statistics
@pytest.mark.parametrize("D", [1, 2])
def test_every_bin_holds_exactly_the_samples_of_its_cell(D):
    env = PeaksShiftEnv(
        n_actions=4, n_features=D, change_points=(200,), distributions=((1, 1), (3, 1))
    )
    p = PCBShift(
        n_actions=4, n_features=D, c_beta=2.0, sigma=0.1, warmup="short", max_depth=4, seed=1
    )
    X, A, R = _feed(p, env, 400, 2)
    assert p.n_leaves_ > 1
    probes = np.vstack(
        [X[:50], np.random.default_rng(3).uniform(size=(50, D)), np.zeros((1, D)), [[0.5] * D]]
    )
    t = p.tree_
    for x in probes:
        est = p.leaf_estimates(x)
        np.testing.assert_allclose(est["upper"] - est["lower"], 2.0 ** -est["level"])
        leaf = int(t.leaves(x[None])[0])
        for node in t.path(leaf):  # every node on the path: the regressogram of its cell
            lower = t.lo[node]
            inside = _in_cell(X, lower, lower + 2.0 ** -t.level[node])
            for k in range(4):
                sel = inside & (A == k)
                assert t.count[node, k] == sel.sum()
                np.testing.assert_allclose(t.sum[node, k], R[sel].sum(axis=0), atol=1e-9)
        inside = _in_cell(X, est["lower"], est["upper"])
        for k in range(4):
            sel = inside & (A == k)
            if sel.any():
                np.testing.assert_allclose(est["means"][k], R[sel].mean(axis=0), atol=1e-12)
            else:
                assert np.isnan(est["means"][k]).all()


def _cell_path(x, level):
    """Lower corners of the cells holding ``x`` at levels 0..level (lower-cell convention)."""
    return [np.maximum(np.ceil(x * 2.0**h) - 1, 0) / 2.0**h for h in range(level + 1)]


def _brute_rules(policy, X, A, R, x, level, active_before, t):
    """The rules of scarce.pareto.pcbshift written out with loops over the raw samples
    (X, A, R) seen so far, for the leaf of level ``level`` holding ``x``: the active set after
    elimination, the play set and whether the leaf splits."""
    K, m = policy.n_actions, policy.n_objectives
    L = math.log(K * m / policy.delta)
    rows = []  # per level: counts, means, sampling radius, width
    for h, lower in enumerate(_cell_path(x, level)):
        inside = _in_cell(X, lower, lower + 2.0**-h)
        n = np.array([np.sum(inside & (A == k)) for k in range(K)])
        mu = np.array(
            [R[inside & (A == k)].mean(axis=0) if n[k] else np.full(m, np.nan) for k in range(K)]
        )
        if policy.sigma is None:
            rad = [math.sqrt(L / (2 * c)) if c else math.inf for c in n]
        else:
            rad = [policy.sigma * math.sqrt(2 * L / c) if c else math.inf for c in n]
        bias = policy.c_beta * 2.0 ** (-policy.beta * h)
        rows.append((n, mu, np.array(rad), np.array(rad) + bias, bias))
    est, lcb, ucb, known = (
        np.full((K, m), np.nan),
        np.full((K, m), -np.inf),
        np.full((K, m), np.inf),
        np.zeros(K, bool),
    )
    for k in range(K):
        for _n, mu, _, width, _ in rows:  # root first: the deepest bin with data wins
            if np.isfinite(width[k]):
                known[k] = True
                lcb[k] = np.maximum(lcb[k], mu[k] - width[k])
                ucb[k] = np.minimum(ucb[k], mu[k] + width[k])
                est[k] = mu[k]
    active = active_before.copy()
    W = policy.cone_.W
    cand = [k for k in range(K) if active[k] and known[k]]
    out = [k for k in cand if any(j != k and np.all(W @ (lcb[j] - ucb[k]) > 0) for j in cand)]
    if len(out) == len(cand):  # the policy never empties the active set
        out = []
    active[out] = False
    play = active & ~known
    if policy.explore_depth is not None and level > 0:
        n_anc = rows[min(level, policy.explore_depth)][0]
        play |= active & (n_anc == 0)
    seen = [k for k in range(K) if active[k] and known[k]]
    for k in seen:
        if not any(
            np.all(W @ (est[j] - est[k]) >= -1e-12) and np.any(est[j] != est[k])
            for j in seen
            if j != k
        ):
            play[k] = True
    own_rad, leaf_bias = rows[-1][2], rows[-1][4]
    split = (
        t > policy.n_warmup_
        and level < policy.max_depth_
        and play.any()
        and max(own_rad[np.flatnonzero(play)]) <= leaf_bias
    )
    return active, play, bool(split)


@pytest.mark.parametrize(
    ("cone", "sigma", "c_beta", "explore_depth"),
    [
        (Cone.orthant(2), 0.05, 0.3, 2),
        (C3, 0.05, 0.3, 2),
        (Cone.orthant(2), 0.05, 0.3, None),
        (Cone.orthant(2), None, 3.0, 1),
    ],
    ids=["orthant", "C3", "no-exploration", "hoeffding"],
)
def test_estimates_elimination_play_set_and_split_follow_the_rules_step_by_step(
    cone, sigma, c_beta, explore_depth
):
    env = PeaksShiftEnv(
        n_actions=5, change_points=(300,), distributions=((1, 3), (3, 1)), noise=0.05
    )
    p = PCBShift(
        n_actions=5,
        n_features=1,
        cone=cone,
        c_beta=c_beta,
        sigma=sigma,
        warmup=10,
        max_depth=4,
        explore_depth=explore_depth,
        seed=4,
    )
    rng = np.random.default_rng(5)
    X, A, R = np.zeros((0, 1)), np.zeros(0, int), np.zeros((0, 2))
    eliminated = splits = inherited_plays = 0
    for t in range(600):
        x = env.contexts(1, rng)
        before = p.leaf_estimates(x[0])
        d = p.decide(x)
        assert before["play"][d.actions[0]] or t < 10
        inherited_plays += int(t >= 10 and before["counts"][d.actions[0]] == 0)
        y = env.outcomes(x, d.actions, rng).rewards
        X, A, R = np.vstack([X, x]), np.r_[A, d.actions], np.vstack([R, y])
        active, play, split = _brute_rules(
            p, X, A, R, x[0], before["level"], before["active"], t + 1
        )
        leaves = p.n_leaves_
        p.update(x, d.actions, y)
        assert p.n_leaves_ == leaves + (1 if split else 0)
        eliminated += int((before["active"] & ~active).sum())
        splits += int(split)
        if not split:
            after = p.leaf_estimates(x[0])
            np.testing.assert_array_equal(after["active"], active)
            np.testing.assert_array_equal(after["play"], play)
    assert splits > 0  # the split rule was exercised
    assert eliminated > 0 or sigma is None  # and elimination (Hoeffding's radius is too wide)
    assert inherited_plays > 0  # and the play of inherited estimates


def test_an_arm_leaves_the_active_set_on_one_sample_when_dominated_everywhere():
    # before issue 15 an arm needed n_min = 2 samples to be eliminated, and one that left the
    # empirical front after its first sample was never sampled again, so it stayed active
    p = PCBShift(n_actions=3, n_features=1, sigma=0.01, c_beta=0.01, warmup=0, max_depth=0)
    X = np.full((21, 1), 0.5)
    A = np.r_[np.zeros(10, int), np.ones(10, int), 2]
    R = np.r_[np.tile([[0.9, 0.2]], (10, 1)), np.tile([[0.2, 0.9]], (10, 1)), [[0.1, 0.1]]]
    p.update(X, A, R)
    est = p.leaf_estimates([0.5])
    assert est["counts"][2] == 1
    assert est["active"].tolist() == [True, True, False]  # 1 sample: radius 0.0346
    assert est["play"].tolist() == [True, True, False]


def test_a_leaf_uses_its_own_sample_of_an_arm_before_a_tighter_ancestor_estimate():
    """Issue 15: a child's estimate of an arm is its own regressogram as soon as it holds a
    sample (the paper's bin quantities), the nearest ancestor's until then. The rule it
    replaces took the smallest width, which kept the root's average here (width
    1.48 / sqrt(230) + 0.1 = 0.20 against the leaf's 1.48 + 0.05)."""
    p = PCBShift(n_actions=2, n_features=1, c_beta=0.1, warmup=0, max_depth=1)
    n = 230  # Hoeffding radius 1.48 / sqrt(n) <= bias 0.1 of the root: the root splits
    X = np.full((2 * n, 1), 0.25)
    A = np.tile([0, 1], n)
    R = np.tile([[0.5, 0.5], [0.4, 0.6]], (n, 1))
    p.update(X, A, R)
    assert p.n_leaves_ == 2
    p.update([[0.75]], [0], [[0.9, 0.1]])  # one sample of arm 0 in the right leaf
    right = p.leaf_estimates([0.75])
    assert right["level"] == 1 and right["counts"].tolist() == [1, 0]
    np.testing.assert_allclose(right["estimates"][0], [0.9, 0.1])  # its own sample
    np.testing.assert_allclose(right["estimates"][1], [0.4, 0.6])  # inherited from the root
    assert right["play"].tolist() == [True, True]
    left = p.leaf_estimates([0.25])  # the left leaf holds every earlier sample
    np.testing.assert_allclose(left["estimates"], [[0.5, 0.5], [0.4, 0.6]])
    # the confidence box is still the intersection with the root's: the one sample of the
    # right leaf cannot eliminate anything
    assert right["active"].all()


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.sampled_from(["PCBShift", "ParetoUCB", "StaticGridPCB"]),
    st.integers(1, 2),
    st.floats(0.05, 3.0),
    st.sampled_from([0, 2, None]),
    st.sampled_from([0.1, "empirical", None]),
)
def test_tree_invariants(seed, name, D, c_beta, explore_depth, sigma):
    cls = {"PCBShift": PCBShift, "ParetoUCB": ParetoUCB, "StaticGridPCB": StaticGridPCB}[name]
    env = PeaksShiftEnv(n_actions=4, n_features=D, change_points=(40,), noise=0.1)
    kw = dict(n_actions=4, n_features=D, c_beta=c_beta, sigma=sigma, warmup="short", seed=seed)
    if name != "StaticGridPCB":
        kw.update(max_depth=4, explore_depth=explore_depth)
    p = cls(**kw)
    _feed(p, env, 150, seed)
    t = p.tree_
    N = t.n_nodes
    for node in range(N):
        assert t.active[node].any()
        if t.child[node] >= 0:  # children inherit (a subset of) the parent's active set
            kids = list(range(t.child[node], t.child[node] + 2**D))
            for c in kids:
                assert np.all(t.active[c] <= t.active[node])
                assert t.level[c] == t.level[node] + 1 and t.parent[c] == node
            # the children's cells partition the parent's: their samples add up to its own
            np.testing.assert_array_equal(t.count[kids].sum(axis=0), t.count[node])
        else:
            play = p._leaf_support(node)
            assert np.all(play <= t.active[node]) and play.any()  # play set within active
            est = p._leaf_estimates(node)
            seen = t.active[node] & np.isfinite(est["width"])
            if seen.any() and name != "ParetoUCB":
                front = np.zeros(4, dtype=bool)
                front[seen] = pareto_mask(est["mean"][seen], p.cone_)
                assert np.all(front <= play)  # the front is always played
    if name == "ParetoUCB":
        assert t.active[:N].all()  # never eliminates
    if name == "StaticGridPCB":
        assert p.n_leaves_ == 2 ** (D * p.grid_level_)
    assert p.depth_ <= p.max_depth_
    assert sum(len(s) for s in t.samples[:N]) == 150 == t.n_samples == t.count[0].sum()


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
            np.testing.assert_array_equal(a.info["support"], b.info["support"])
            y = env.outcomes(x, a.actions, rng).rewards
            p.update(x, a.actions, y)
            q.update(x, b.actions, y)
        assert p.n_leaves_ == q.n_leaves_
        for key, value in p.tree_.get_state().items():
            np.testing.assert_array_equal(value, q.tree_.get_state()[key])


def test_probabilities_are_uniform_on_the_support_and_respect_eligibility():
    env = PeaksShiftEnv(n_actions=6, change_points=(50,))
    p = PCBShift(n_actions=6, n_features=1, c_beta=3.2, sigma=0.1, warmup="short", seed=0)
    _feed(p, env, 400, 1)
    X = np.linspace(0, 1, 25)[:, None]
    probs = p.action_probabilities(X)
    play = p.pareto_estimate(X)
    np.testing.assert_allclose(probs, play / play.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(p.play_set(X), play)
    d = p.decide(X)
    np.testing.assert_array_equal(d.info["support"], play)
    np.testing.assert_allclose(d.scores, probs)  # scores: the choice probabilities
    elig = np.zeros((25, 6), dtype=bool)
    elig[:, 5] = True
    d = p.decide(X, eligible=elig)
    assert np.all(d.actions == 5) and np.all(np.isneginf(d.scores[:, :5]))
    # decisions do not change the state: the empirical law over many draws matches
    x = np.full((4000, 1), 0.3)
    acts = p.decide(x).actions
    freq = np.bincount(acts, minlength=6) / 4000
    np.testing.assert_allclose(freq, p.action_probabilities(x[:1])[0], atol=0.03)


def test_batch_update_equals_one_by_one():
    env = PeaksShiftEnv(n_actions=5, n_features=2, change_points=(100,))
    rng = np.random.default_rng(0)
    X = env.contexts(300, rng)
    A = rng.integers(5, size=300)
    R = env.outcomes(X, A, rng).rewards
    kw = dict(n_actions=5, n_features=2, c_beta=1.0, sigma=0.1, warmup=20, seed=0)
    one, batch = PCBShift(**kw), PCBShift(**kw)
    for t in range(300):
        one.update(X[t : t + 1], A[t : t + 1], R[t : t + 1])
    for start in range(0, 300, 60):
        batch.update(X[start : start + 60], A[start : start + 60], R[start : start + 60])
    assert one.n_leaves_ == batch.n_leaves_ > 1
    for key, value in one.tree_.get_state().items():
        np.testing.assert_array_equal(value, batch.tree_.get_state()[key])
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
    R = env.outcomes(X, A, rng).rewards
    p.update(X, A, R)
    t = p.tree_
    rad = p._radius(t.count[0], t.sum[0], t.sumsq[0])
    L = math.log(4 * 3 / 0.05)
    for k in (0, 1):
        sd = R[A == k].std(axis=0, ddof=1).max()
        assert rad[k] == pytest.approx(sd * math.sqrt(2 * L / np.sum(A == k)), rel=1e-9)
    assert np.isinf(rad[2]) and np.isinf(rad[3])
    assert p.n_leaves_ == 1  # max_depth=0: never splits
    with pytest.raises(ValueError, match="sigma must be"):
        PCBShift(n_actions=2, n_features=1, sigma="estimated").decide([[0.5]])


# ----------------------------------------------------------------------------- learning
def _target(out, env, name="preference_regret"):
    return float(out["metrics"][name][env.target_start - 1 :].sum())


@pytest.mark.statistical
def test_pcbshift_learns_under_covariate_shift():
    """The spec's instance with K = 5, T = 3000, shift at 1500 (uniform source, power-law
    target near x = 1), through scarce.sim.run: target-phase preference regret well below
    random's, the tree splits, and the estimated front's F1 on target contexts rises."""
    T = 3000
    for seed in (0, 1):
        env = PeaksShiftEnv(n_actions=5, change_points=(1500,), distributions=((1, 1), (6, 1)))
        pcb = PCBShift(n_actions=5, n_features=1, **env.policy_params(T), seed=seed)
        out = run_segments(pcb, env, T, seed=seed, n_checkpoints=30)
        env.reset()
        rnd = run_segments(Random(n_actions=5, n_features=1, seed=seed), env, T, seed=seed)
        assert _target(out, env) < 0.02 * _target(rnd, env)  # measured: 0.004
        assert _target(out, env, "played_pareto_regret") < 0.01 * _target(
            rnd, env, "played_pareto_regret"
        )
        assert out["n_leaves"][-1] > 1 and pcb.depth_ >= 2
        assert np.all(np.diff(out["n_leaves"]) >= 0)
        # F1 of the estimated front on target contexts, every 100 rounds: the first two
        # checkpoints are inside the round-robin warm-up (one bin: context-averaged means)
        f1 = out["front_f1"]
        assert f1[:2].mean() < 0.65  # measured 0.53 and 0.39
        assert f1[-5:].mean() > 0.95 and f1[-5:].mean() > f1[:2].mean() + 0.3
        assert f1[-5:].mean() > rnd["front_f1"][-1] + 0.3  # random's "front" is every arm


@pytest.mark.statistical
def test_children_do_not_re_explore_what_their_parents_know():
    """Issue 15's measurement, small: with the first build's rule (a child's statistics only
    from its own cell, every active arm without a sample there explored again) nearly all
    target-phase regret came from rounds playing an arm with no sample in its leaf. Now a
    child starts from its ancestors' estimates, and the tree's target regret is below the
    8-bin static grid's on a strong shift (source near 0, target near 1)."""
    T = 2000
    env_kw = dict(n_actions=6, change_points=(1000,), distributions=((1, 4), (4, 1)))
    for seed in (0, 1):
        env = PeaksShiftEnv(**env_kw)
        pcb = PCBShift(n_actions=6, n_features=1, **env.policy_params(T), seed=seed)
        rng_x, rng_y = np.random.default_rng(seed), np.random.default_rng(seed + 100)
        total = fresh = 0.0
        for t in range(T):
            x = env.contexts(1, rng_x)
            est = pcb.leaf_estimates(x[0])
            d = pcb.decide(x)
            out = env.outcomes(x, d.actions, rng_y)
            regret = env.case_metrics(x, d, out)["preference_regret"][0]
            if t >= env.target_start - 1:
                total += regret
                k = int(d.actions[0])
                if est["counts"][k] == 0 and est["level"] > pcb.explore_depth:
                    fresh += regret  # support widened by an arm new to a deep leaf
            pcb.update(x, d.actions, out.rewards)
        assert fresh <= 0.05 * total + 1e-9
        env = PeaksShiftEnv(**env_kw)
        params = {k: v for k, v in env.policy_params(T).items() if k != "horizon"}
        grid = StaticGridPCB(n_actions=6, n_features=1, **params, grid_level=3, seed=seed)
        tree_out = run_segments(
            PCBShift(n_actions=6, n_features=1, **env.policy_params(T), seed=seed),
            env,
            T,
            seed=seed,
            n_checkpoints=2,
        )
        env.reset()
        grid_out = run_segments(grid, env, T, seed=seed, n_checkpoints=2)
        assert _target(tree_out, env) < 0.7 * _target(grid_out, env)
