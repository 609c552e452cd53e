"""Covariate-shift environments, regrets against the set-level definitions, the scalarised
LinUCB baseline against closed forms, and the pareto-shift experiment's contract."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta as beta_law
from scipy.stats import kstest

from scarce.core.decision import Decision
from scarce.core.policy import load
from scarce.envs import get_envs, make_env
from scarce.pareto import (
    Cone,
    PCBShift,
    PeaksShiftEnv,
    PreferenceMetric,
    ScalarisedLinUCB,
    decision_support,
    front_f1,
    gaps,
    pareto_mask,
    pareto_sets,
    played_regret,
    preference_regret,
    round_gaps,
    simplex_weights,
)
from scarce.policies import Random, get_policies
from scarce.sim import PolicySpec, run
from scarce.sim.experiments import SUMMARY_COLUMNS

C3 = Cone.from_generators([[1.0, 0.6], [0.6, 1.0]])


# ----------------------------------------------------------------------------- environment
def test_env_phases_follow_the_schedule_across_calls():
    env = PeaksShiftEnv(
        n_actions=5,
        n_features=2,
        change_points=(300, 600),
        distributions=((1, 4), (1, 1), (6, 1)),
    )
    assert env.phase(np.array([1, 300, 301, 600, 601])).tolist() == [0, 0, 1, 1, 2]
    assert env.target_start == 601
    rng = np.random.default_rng(0)
    # the clock runs over calls: batches of 100 follow the schedule of rounds 1..900
    X = np.vstack([env.contexts(100, rng) for _ in range(9)])
    assert env.t == 900
    for (lo, hi), (a, b) in zip(((0, 300), (300, 600), (600, 900)), env.distributions, strict=True):
        for d in range(2):
            assert kstest(X[lo:hi, d], beta_law(a, b).cdf).pvalue > 1e-3
    env.reset()
    assert env.t == 0 and env.contexts(5, rng).shape == (5, 2)
    with pytest.raises(ValueError, match="distributions must have len"):
        PeaksShiftEnv(change_points=(10, 20), distributions=((1, 1), (2, 1)))
    with pytest.raises(ValueError, match="strictly increasing"):
        PeaksShiftEnv(change_points=(20, 10), distributions=((1, 1), (2, 1), (3, 1)))


def test_env_is_registered_with_its_variants_and_suggests_policy_parameters():
    envs = get_envs()
    assert {"peaks-shift", "peaks-shift-multi"} <= set(envs)
    env = make_env("peaks-shift", seed=0)
    assert isinstance(env, PeaksShiftEnv) and env.n_objectives == 2
    assert env.distributions == ((1.0, 6.0), (6.0, 1.0)) and env.change_points == (1500,)
    multi = make_env("peaks-shift-multi", seed=0, n_actions=5)
    assert multi.change_points == (1000, 2000) and multi.n_actions == 5
    with pytest.raises(ValueError, match="change_points is fixed"):
        make_env("peaks-shift-multi", change_points=(5,))
    params = env.policy_params(800)
    assert params == {
        "n_objectives": 2,
        "cone": None,
        "c_beta": pytest.approx(3.2),
        "beta": 1.0,
        "horizon": 800,
        "sigma": 0.1,
    }
    c3 = PeaksShiftEnv(cone=C3.W)
    assert np.allclose(c3.policy_params(10)["cone"], C3.W)
    # every vector policy is built from them (each takes what it accepts)
    for name in ("PCBShift", "StaticGridPCB", "ParetoUCB", "ScalarisedLinUCB", "Random"):
        policy = PolicySpec(name).build_for(c3, 0, 500)
        if name != "Random":
            assert np.allclose(policy.get_params()["cone"], C3.W)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(2, 3), st.floats(0.3, 1.0), st.integers(0, 1000))
def test_env_means_are_positive_and_hoelder(D, m, beta, seed):
    env = PeaksShiftEnv(n_actions=6, n_features=D, n_objectives=m, beta=beta)
    rng = np.random.default_rng(seed)
    X, Y = rng.uniform(size=(200, D)), rng.uniform(size=(200, D))
    mx, my = env.expected_rewards(X), env.expected_rewards(Y)
    assert mx.shape == (200, 6, m) and np.all(mx >= 1e-3)
    dist = np.abs(X - Y).max(axis=1)[:, None, None] ** beta
    assert np.all(np.abs(mx - my) <= env.holder_constant * dist + 1e-12)


def test_env_oracle_pareto_sets_and_noise():
    env = PeaksShiftEnv(n_actions=10, seed=0)
    X = np.linspace(0, 1, 11)[:, None]
    mu = env.expected_rewards(X)
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
    out = env.outcomes(Xr, acts, np.random.default_rng(1))
    y = out.rewards
    assert y.shape == (20000, 2) and out.extras == {}
    np.testing.assert_allclose(y.mean(axis=0), env.expected_rewards([[0.4]])[0, 0], atol=0.004)
    np.testing.assert_allclose(y.std(axis=0), 0.1, atol=0.003)
    full = env.full_outcomes(Xr[:3], np.random.default_rng(2))
    assert full.shape == (3, 10, 2)


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
    R = env.outcomes(X, A, rng).rewards
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
    np.testing.assert_array_equal(d.info["support"], expected > 0)
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


def test_scalarised_linucb_learns_every_arm_from_full_information():
    p = ScalarisedLinUCB(n_actions=3, n_features=1, lam=1.0, seed=0)
    X = np.random.default_rng(0).random((20, 1))
    p.update(X, full_rewards=np.ones((20, 3, 2)))
    assert np.all(p.model_.n_obs == 20)


# ----------------------------------------------------------------------------- one loop
def test_case_metrics_score_the_support_each_decision_reports():
    env = PeaksShiftEnv(n_actions=6, change_points=(30,), seed=0)
    policy = PCBShift(n_actions=6, n_features=1, **env.policy_params(60), warmup=12, seed=1)
    trace = run(policy, env, 60, seed=2, record_contexts=True)
    X, support = trace.contexts, trace.info["support"]
    assert support.shape == (60, 6) and support.dtype == bool
    mu = env.expected_rewards(X)
    cone = Cone.orthant(2)
    m = trace.extras
    np.testing.assert_allclose(m["metric_preference_regret"], preference_regret(mu, support, cone))
    np.testing.assert_allclose(
        m["metric_preference_regret_filtered"],
        preference_regret(mu, support, cone, filtered=True),
    )
    np.testing.assert_allclose(
        m["metric_log_hausdorff_regret"],
        preference_regret(mu, support, cone, kind="log_hausdorff"),
    )
    np.testing.assert_allclose(
        m["metric_played_pareto_regret"], played_regret(mu, trace.action, cone)
    )
    target = np.arange(1, 61) > 30
    np.testing.assert_allclose(
        m["metric_target_preference_regret"],
        np.where(target, m["metric_preference_regret"], 0.0),
    )
    np.testing.assert_allclose(trace.extras["vector_rewards"].shape, (60, 2))
    summary = trace.summary()
    assert summary["target_preference_regret"] == pytest.approx(
        m["metric_preference_regret"][target].sum()
    )
    # in the warm-up the support is the round-robin arm alone
    assert np.all(support[:12].sum(axis=1) == 1)


def test_decision_support_without_a_reported_support():
    n, K = 3, 4
    scores = np.array([[0.0, 0.0, -np.inf, 0.0], [1.0, 2.0, 3.0, 4.0], [0.0] * 4])
    d = Decision(np.array([0, 3, 1]), np.array([1 / 3, 1.0, 0.25]), scores)
    got = decision_support(d)
    # uniform over its finite scores where the choice had probability < 1; the action alone
    # where it had probability 1
    np.testing.assert_array_equal(
        got, [[True, True, False, True], [False, False, False, True], [True] * 4]
    )
    d = Decision(np.zeros(n, int), np.ones(n), np.zeros((n, K)), info={"support": np.eye(3, K) > 0})
    np.testing.assert_array_equal(decision_support(d), np.eye(3, K) > 0)


def test_random_runs_on_vector_rewards_with_every_arm_as_its_support():
    env = PeaksShiftEnv(n_actions=4, change_points=(10,), seed=0)
    trace = run(Random(n_actions=4, n_features=1, seed=0), env, 40, seed=1, record_contexts=True)
    mu = env.expected_rewards(trace.contexts)
    full = np.ones((40, 4), dtype=bool)
    np.testing.assert_allclose(
        trace.extras["metric_preference_regret"], preference_regret(mu, full, Cone.orthant(2))
    )
    assert get_policies()["Random"].reward_kind == "any"


def test_vector_policies_are_registered():
    registry = get_policies()
    for name in ("PCBShift", "StaticGridPCB", "ParetoUCB", "ScalarisedLinUCB"):
        assert registry[name].reward_kind == "vector"


def test_a_toml_config_runs_pcbshift_beside_random_on_peaks_shift(tmp_path):
    """Issue 13's done-when, tiny: ``scarce run CONFIG.toml`` with peaks-shift, PCBShift and
    Random reports the preference regret from the environment's case metrics."""
    from typer.testing import CliRunner

    from scarce.cli import app

    config = tmp_path / "vector.toml"
    config.write_text(
        """
name = "vector"
horizon = 120
seeds = 2
n_checkpoints = 10

[[envs]]
name = "peaks-shift"
n_actions = 5
change_points = [60]

[[policies]]
name = "PCBShift"
warmup = 20

[[policies]]
name = "Random"
"""
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    wide = summary.pivot_table(index=["policy", "seed"], columns="metric", values="value")
    for name in ("preference_regret", "target_preference_regret", "played_pareto_regret"):
        assert wide[name].notna().all() and (wide[name] > 0).all()
    pref = wide["target_preference_regret"]
    # PCBShift plays its estimated front, random play every arm
    assert pref["PCBShift"].max() < 0.5 * pref["Random"].min()
    # no scalar oracle for vector rewards
    assert summary.loc[summary["metric"] == "cumulative_regret", "value"].isna().all()


# ----------------------------------------------------------------------------- experiment
def test_pareto_shift_experiment_returns_its_result(tmp_path):
    from scarce.pareto.experiments import _run_one
    from scarce.sim.experiments import EXPERIMENTS, load_capability_experiments, write_result

    one = _run_one(("nu=1", 200, "PCBShift", 7, 123))
    assert one["metrics"] == _run_one(("nu=1", 200, "PCBShift", 7, 123))["metrics"]
    assert one["metrics"] != _run_one(("nu=1", 200, "PCBShift", 7, 124))["metrics"]
    load_capability_experiments()
    result = EXPERIMENTS["pareto-shift"].run(horizon=64, seeds=[(7, 123)], n_jobs=1, progress=None)
    assert not list(tmp_path.iterdir())  # it wrote nothing
    assert set(result.summary["seed"]) == {7}  # the label, not the root
    summary, paths = write_result(result, "pareto-shift", tmp_path, [7])
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    written = pd.read_csv(tmp_path / "summary.csv")
    assert tuple(written.columns) == SUMMARY_COLUMNS
    assert set(written["policy"]) == {
        "PCBShift",
        "StaticGridPCB-8",
        "StaticGridPCB-16",
        "StaticGridPCB-32",
        "ParetoUCB",
        "LinUCB-linear",
        "LinUCB-chebyshev",
        "Random",
    }
    assert set(written["env"]) == {
        f"{e}/T={T}" for e in ("nu=0", "nu=1", "nu=3", "multi") for T in (16, 32, 64)
    }
    assert {"preference_regret", "played_pareto_regret", "front_f1", "n_leaves"} <= set(
        written["metric"]
    )
    assert written["value"].notna().all()
    for name in ("traces", "regret_vs_T", "regret_curves", "tree_growth", "front_f1", "fronts"):
        assert paths[name].exists() and paths[name].stat().st_size > 0
    traces = pd.read_parquet(tmp_path / "traces.parquet")
    assert {"env", "T", "policy", "seed", "preference_regret", "n_leaves"} <= set(traces.columns)
