"""Covariate-shift environments, regrets against the set-level definitions, the scalarised
LinUCB baseline against closed forms, and the pareto-shift experiment's contract."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta as beta_law
from scipy.stats import kstest

from scarce.core.policy import load
from scarce.pareto import (
    Cone,
    ParetoRandom,
    PeaksShiftEnv,
    PreferenceMetric,
    ScalarisedLinUCB,
    front_f1,
    gaps,
    pareto_mask,
    pareto_sets,
    played_regret,
    preference_regret,
    round_gaps,
    simplex_weights,
)
from scarce.sim.experiments import SUMMARY_COLUMNS

C3 = Cone.from_generators([[1.0, 0.6], [0.6, 1.0]])


# ----------------------------------------------------------------------------- environment
def test_env_phases_follow_the_schedule():
    env = PeaksShiftEnv(
        n_actions=5,
        n_features=2,
        change_points=(300, 600),
        distributions=((1, 4), (1, 1), (6, 1)),
    )
    assert env.phase(np.array([1, 300, 301, 600, 601])).tolist() == [0, 0, 1, 1, 2]
    assert env.target_start == 601
    X = env.contexts(900, np.random.default_rng(0))
    for (lo, hi), (a, b) in zip(((0, 300), (300, 600), (600, 900)), env.distributions, strict=True):
        for d in range(2):
            assert kstest(X[lo:hi, d], beta_law(a, b).cdf).pvalue > 1e-3
    # rounds continue across calls
    Y = env.contexts(5, np.random.default_rng(1), start=599)
    assert Y.shape == (5, 2)
    with pytest.raises(ValueError, match="distributions must have len"):
        PeaksShiftEnv(change_points=(10, 20), distributions=((1, 1), (2, 1)))
    with pytest.raises(ValueError, match="strictly increasing"):
        PeaksShiftEnv(change_points=(20, 10), distributions=((1, 1), (2, 1), (3, 1)))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(2, 3), st.floats(0.3, 1.0), st.integers(0, 1000))
def test_env_means_are_positive_and_hoelder(D, m, beta, seed):
    env = PeaksShiftEnv(n_actions=6, n_features=D, n_objectives=m, beta=beta)
    rng = np.random.default_rng(seed)
    X, Y = rng.uniform(size=(200, D)), rng.uniform(size=(200, D))
    mx, my = env.mean_rewards(X), env.mean_rewards(Y)
    assert mx.shape == (200, 6, m) and np.all(mx >= env.floor)
    dist = np.abs(X - Y).max(axis=1)[:, None, None] ** beta
    assert np.all(np.abs(mx - my) <= env.holder_constant * dist + 1e-12)


def test_env_oracle_pareto_sets_and_noise():
    env = PeaksShiftEnv(n_actions=10, seed=0)
    X = np.linspace(0, 1, 11)[:, None]
    mu = env.mean_rewards(X)
    star = env.pareto_sets(X)
    for i in range(11):
        np.testing.assert_array_equal(star[i], pareto_mask(mu[i], Cone.orthant(2)))
        # the arms between the two peaks are Pareto optimal; far ones are not
        a, b = 0.8 - 0.8 * X[i, 0], 1.0 - 0.8 * X[i, 0]
        iota = np.arange(10) / 9
        assert star[i][(iota >= a) & (iota <= b)].all()
        assert not star[i][(iota < a - 0.25) | (iota > b + 0.25)].any()
    acts = np.zeros(20000, dtype=int)
    Xr = np.full((20000, 1), 0.4)
    y = env.outcomes(Xr, acts, np.random.default_rng(1))
    np.testing.assert_allclose(
        y.mean(axis=0), mu[4, 0] * 0 + env.mean_rewards([[0.4]])[0, 0], atol=0.004
    )
    np.testing.assert_allclose(y.std(axis=0), 0.1, atol=0.003)


def test_dissimilarity_grows_with_the_shift():
    rho = [
        PeaksShiftEnv(change_points=(10,), distributions=((1, 1), (1 + nu, 1))).dissimilarity(0.05)
        for nu in (0, 3, 8)
    ]
    assert rho[0] < rho[1] < rho[2]
    # no shift, uniform P: P(B(x, h)) is 2h inside, h at the edges -> E[1/P] ~ 1/(2h) (1 + 2h)
    assert rho[0] == pytest.approx((1 / 0.1) * (1 - 0.1) + (1 / 0.05 + 1 / 0.1) / 2 * 0.1, rel=0.05)


# ----------------------------------------------------------------------------- regrets
def _random_case(rng, n, K, m):
    means = rng.uniform(0.05, 1.0, size=(n, K, m))
    support = rng.random((n, K)) < 0.5
    support[np.arange(n), rng.integers(K, size=n)] = True
    return means, support


@pytest.mark.parametrize("cone", [Cone.orthant(2), C3], ids=["orthant", "C3"])
def test_preference_regret_equals_the_set_metric(cone):
    rng = np.random.default_rng(0)
    n = 25 if cone.W.shape[0] == 2 and np.allclose(cone.W, np.eye(2)) else 8
    means, support = _random_case(rng, n, 5, 2)
    star = pareto_sets(means, cone)
    g = round_gaps(means, cone)
    for kind in ("set_gap", "log_hausdorff"):
        d = PreferenceMetric(kind, cone=cone)
        r = preference_regret(means, support, cone, kind=kind)
        rf = preference_regret(means, support, cone, kind=kind, filtered=True)
        for t in range(n):
            np.testing.assert_allclose(r[t], d(means[t][support[t]], means[t][star[t]]), atol=1e-9)
            own = pareto_mask(means[t][support[t]], cone)
            np.testing.assert_allclose(
                rf[t], d(means[t][support[t]][own], means[t][star[t]]), atol=1e-9
            )
            np.testing.assert_allclose(g[t], gaps(means[t], cone), atol=1e-9)
    # playing all arms: zero regret only in the filtered (literal) reading
    full = np.ones_like(support)
    assert np.all(preference_regret(means, full, cone, filtered=True) == 0)
    assert np.all(preference_regret(means, full, cone) == g.max(axis=1))
    acts = rng.integers(5, size=n)
    np.testing.assert_allclose(played_regret(means, acts, cone), g[np.arange(n), acts])


def test_f1_and_regret_inputs_validated():
    truth = np.array([[True, True, False, False]])
    assert front_f1(np.array([[True, False, False, False]]), truth)[0] == pytest.approx(2 / 3)
    assert front_f1(np.array([[False, False, True, True]]), truth)[0] == 0.0
    with pytest.raises(ValueError, match="support must hold at least one arm"):
        preference_regret(np.ones((1, 4, 2)), np.zeros((1, 4), bool), Cone.orthant(2))
    with pytest.raises(ValueError, match="means must be strictly positive"):
        round_gaps(np.zeros((1, 3, 2)), Cone.orthant(2))
    with pytest.raises(ValueError, match="kind"):
        preference_regret(np.ones((1, 4, 2)), np.ones((1, 4), bool), Cone.orthant(2), kind="x")


# ----------------------------------------------------------------------------- baselines
def test_simplex_weights():
    w = simplex_weights(3, 6)
    assert w.shape == (28, 3)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert np.all(w > 0)


@pytest.mark.parametrize("scalarization", ["linear", "chebyshev"])
def test_scalarised_linucb_matches_closed_forms(scalarization, tmp_path):
    K, m, D = 4, 2, 2
    env = PeaksShiftEnv(n_actions=K, n_features=D, change_points=(50,))
    p = ScalarisedLinUCB(
        n_actions=K, n_features=D, scalarization=scalarization, alpha=0.5, lam=2.0, seed=0
    )
    rng = np.random.default_rng(1)
    X = env.contexts(200, rng)
    A = rng.integers(K, size=200)
    R = env.outcomes(X, A, rng)
    p.update(X[:120], A[:120], R[:120])
    for t in range(120, 200):  # batch and one-by-one updates mix
        p.update(X[t : t + 1], A[t : t + 1], R[t : t + 1])
    phi = np.hstack([np.ones((200, 1)), X])
    Xq = rng.uniform(size=(7, D))
    phq = np.hstack([np.ones((7, 1)), Xq])
    ucb = np.zeros((7, K, m))
    mean = np.zeros((7, K, m))
    for k in range(K):
        Ak = 2.0 * np.eye(D + 1) + phi[A == k].T @ phi[A == k]
        for j in range(m):
            theta = np.linalg.solve(Ak, phi[A == k].T @ R[A == k, j])
            mean[:, k, j] = phq @ theta
            var = np.einsum("nd,de,ne->n", phq, np.linalg.inv(Ak), phq)
            ucb[:, k, j] = mean[:, k, j] + 0.5 * np.sqrt(var)
    W = p.weights_
    if scalarization == "linear":
        s = np.einsum("gj,nkj->ngk", W, ucb)
    else:
        s = (W[None, :, None, :] * ucb[:, None, :, :]).min(axis=3)
    wins = s.argmax(axis=2)
    expected = np.stack([np.bincount(w, minlength=K) / W.shape[0] for w in wins])
    np.testing.assert_allclose(p.action_probabilities(Xq), expected, atol=1e-12)
    d = p.decide(Xq)
    np.testing.assert_allclose(d.scores, expected, atol=1e-12)
    assert np.all(expected[np.arange(7), d.actions] > 0)
    est = p.pareto_estimate(Xq)
    for i in range(7):
        np.testing.assert_array_equal(est[i], pareto_mask(mean[i], Cone.orthant(2)))
    p.save(tmp_path / "lin")
    q = load(tmp_path / "lin")
    np.testing.assert_array_equal(q.decide(Xq).actions, p.decide(Xq).actions)
    with pytest.raises(ValueError, match="scalarization"):
        ScalarisedLinUCB(n_actions=2, n_features=1, scalarization="max").decide([[0.5]])
    with pytest.raises(ValueError, match=r"weights must have shape \(G, 2\)"):
        ScalarisedLinUCB(n_actions=2, n_features=1, weights=np.ones((3, 3))).decide([[0.5]])


def test_random_support_is_every_eligible_arm():
    p = ParetoRandom(n_actions=4, n_features=1, seed=0)
    X = np.full((2000, 1), 0.5)
    d = p.decide(X)
    np.testing.assert_allclose(np.bincount(d.actions, minlength=4) / 2000, 0.25, atol=0.03)
    assert np.all(p.play_set(X[:3]))
    elig = np.array([True, False, True, False])
    assert set(p.decide(X[:50], eligible=elig).actions.tolist()) <= {0, 2}
    p.update(X[:2], [0, 1], np.ones((2, 2)))


# ----------------------------------------------------------------------------- experiment
def test_pareto_shift_experiment_writes_the_contract(tmp_path):
    from scarce.sim.experiments import EXPERIMENTS, load_capability_experiments, run_experiment

    load_capability_experiments()
    assert "pareto-shift" in EXPERIMENTS
    summary, paths = run_experiment("pareto-shift", out=tmp_path, horizon=64, seeds=1, n_jobs=1)
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    written = pd.read_csv(tmp_path / "summary.csv")
    assert tuple(written.columns) == SUMMARY_COLUMNS
    assert set(written["policy"]) == {
        "PCBShift",
        "PCBShift-hoeffding",
        "StaticGridPCB",
        "ParetoUCB",
        "LinUCB-linear",
        "LinUCB-chebyshev",
        "Random",
    }
    assert {"preference_regret", "played_pareto_regret", "front_f1", "n_leaves"} <= set(
        written["metric"]
    )
    assert written["value"].notna().all()
    for name in ("traces", "regret_vs_T", "regret_curves", "tree_growth", "front_f1", "fronts"):
        assert paths[name].exists() and paths[name].stat().st_size > 0
    traces = pd.read_parquet(tmp_path / "traces.parquet")
    assert {"env", "T", "policy", "seed", "preference_regret", "n_leaves"} <= set(traces.columns)
