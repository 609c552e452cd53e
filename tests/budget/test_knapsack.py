"""KnapsackBandit and Deferral: the hard budget guarantee (property test), exact bounds, the
dual step, what travels in ``Decision.info``, read-only methods, validation, parameter groups
and persistence, feedback regimes."""

import numpy as np
import pytest
from budget_states import assert_same_state
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.budget import (
    HUMAN,
    MODEL,
    ConfidenceSpec,
    Deferral,
    DualSpec,
    KnapsackBandit,
    SyntheticDeferral,
)
from scarce.core.policy import load
from scarce.models import RidgeRegression
from scarce.sim import PolicySpec, run


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    K=st.integers(2, 4),
    m=st.integers(1, 3),
    frac=st.floats(0.0, 1.2),
    dist=st.sampled_from(["uniform", "bernoulli", "heavy", "constant_max"]),
    batch=st.integers(1, 5),
    z_method=st.sampled_from(["warmup_estimate", "fixed"]),
    due=st.booleans(),
    cost_link=st.sampled_from(["identity", "logistic"]),
    give_info=st.booleans(),
)
def test_budget_is_never_exceeded(
    seed, K, m, frac, dist, batch, z_method, due, cost_link, give_info
):
    rng = np.random.default_rng(seed)
    d, T = 3, 120
    bound = rng.uniform(0.2, 1.0 if cost_link == "logistic" else 2.0, (K, m))
    budget = np.maximum(frac * T * bound.mean(axis=0) * rng.uniform(0.1, 0.6, m), 1e-3)
    dual = {"z_method": z_method, "warmup_rounds": int(rng.integers(0, 40))}
    if z_method == "fixed":
        dual["Z"] = 0.0
    pol = KnapsackBandit(
        n_actions=K,
        n_features=d,
        budget=budget,
        horizon=T,
        n_resources=m,
        free_action=int(rng.integers(K)),
        cost_bound=bound,
        cost_link=cost_link,
        dual={**dual, "dual_uses_estimate": due},
        seed=seed,
    )
    spent = np.zeros(m)
    t = 0
    while t < T:
        n = min(batch, T - t)
        X = rng.normal(size=(n, d))
        decision = pol.decide(X)
        acts = decision.actions
        rewards = rng.uniform(size=n)
        b = bound[acts]
        if dist == "uniform":
            c = rng.uniform(0, 1, (n, m)) * b
        elif dist == "bernoulli":
            c = (rng.random((n, m)) < 0.7) * b
        elif dist == "heavy":
            c = np.minimum(rng.pareto(1.2, (n, m)) * 0.3, 1.0) * b
        else:
            c = b.copy()
        c[acts == pol.free_action] = 0.0
        spent += c.sum(axis=0)
        assert np.all(spent <= budget + 1e-9), (spent, budget)
        pol.update(X, acts, rewards, costs=c, info=decision.info if give_info else None)
        t += n
    np.testing.assert_allclose(pol.spent_, spent)


def test_decisions_reserve_budget_until_updates_arrive():
    pol = KnapsackBandit(
        n_actions=2,
        n_features=2,
        budget=3.0,
        horizon=100,
        dual={"z_method": "fixed", "Z": 0.0},
        seed=0,
    )
    X = np.ones((10, 2))
    acts = pol.decide(X).actions
    # only 3 cases can be deferred to the costly action without feedback
    assert (acts == 1).sum() <= 3
    assert pol.decide(X).actions.sum() == 0  # everything reserved: only the free action
    assert pol.remaining_[0] == pytest.approx(3.0 - (acts == 1).sum())


def _ridge_bounds(X, y, x, beta, lam=1.0):
    """Brute force: ridge from scratch and the closed-form ellipsoid bound."""
    d = X.shape[1]
    V = lam * np.eye(d) + X.T @ X
    th = np.linalg.solve(V, X.T @ y)
    width = np.sqrt(np.einsum("nd,de,ne->n", x, np.linalg.inv(V), x))
    return x @ th, beta * width, V, th


def test_bounds_equal_the_closed_forms():
    rng = np.random.default_rng(0)
    d = 4
    pol = Deferral(
        n_features=d, budget=50.0, horizon=500, dual={"z_method": "fixed", "Z": 1.0}, seed=0
    )
    X = rng.normal(size=(30, d))
    acts = rng.integers(0, 2, 30)
    c = np.where(acts == HUMAN, rng.uniform(0, 1, 30), 0.0)
    r = rng.uniform(0, 1, 30)
    model_r = np.where(acts == MODEL, r, rng.uniform(0, 1, 30))
    pol.decide(X[:1])
    pol.update(X, acts, r, costs=c, model_rewards=model_r)
    x = rng.normal(size=(5, d))
    conf = pol.confidence_
    counts = pol.models_.reward_counts()
    assert counts.tolist() == [30, (acts == HUMAN).sum()]  # full feedback: the model sees all
    h = acts == HUMAN
    # each model's radius from its own count: the model 30 rows, the human and cost h.sum()
    beta = conf.radius(np.array([h.sum()]), d, "identity")[0]
    beta_m = conf.radius(np.array([30]), d, "identity")[0]
    assert beta_m > beta
    mean, width, V, th = _ridge_bounds(X[h], r[h], x, beta)
    np.testing.assert_allclose(pol.reward_ucb(x)[:, HUMAN], np.clip(mean + width, 0, 1), atol=1e-10)
    mean_m, width_m, _, _ = _ridge_bounds(X, model_r, x, beta_m)
    np.testing.assert_allclose(
        pol.reward_ucb(x)[:, MODEL], np.clip(mean_m + width_m, 0, 1), atol=1e-10
    )
    mean_c, width_c, _, _ = _ridge_bounds(X[h], c[h], x, beta)
    lcb = np.clip(mean_c - width_c, 0, 1)
    np.testing.assert_allclose(pol.cost_lcb(x)[:, HUMAN, 0], lcb, atol=1e-10)
    assert np.all(pol.cost_lcb(x)[:, MODEL] == 0)
    # the ellipsoid maximum equals the closed form: check on random boundary points
    L = np.linalg.cholesky(np.linalg.inv(V))
    u = rng.normal(size=(20000, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    thetas = th + beta * u @ L.T
    assert np.all((thetas @ x.T).max(axis=0) <= mean + width + 1e-9)


def test_knapsack_bounds_equal_independent_ridge_models():
    """One single-target ridge per (action, target), fed the rows that target was observed
    on, gives the policy's bounds (the costs of an action share one multi-target design)."""
    K, m, d, T = 3, 2, 3, 150
    rng = np.random.default_rng(8)
    X = rng.uniform(0, 1, (T, d)) / np.sqrt(d)
    R = np.clip(X @ rng.uniform(0, 1, (K, d)).T / np.sqrt(d) + rng.normal(0, 0.1, (T, K)), 0, 1)
    C = rng.uniform(0, 1, (T, K, m))
    free = 1
    pol = KnapsackBandit(
        n_actions=K,
        n_features=d,
        budget=[0.3 * T] * m,
        horizon=T,
        n_resources=m,
        free_action=free,
        dual={"warmup_rounds": 20},
        seed=3,
    )
    ref_r = [RidgeRegression(1, d) for _ in range(K)]
    ref_c = [[RidgeRegression(1, d) for _ in range(m)] for _ in range(K)]
    for t in range(T):
        x = X[t : t + 1]
        a = int(pol.decide(x).actions[0])
        c = np.zeros(m) if a == free else C[t, a]
        pol.update(x, [a], [R[t, a]], costs=c[None, :])
        ref_r[a].partial_fit(x, R[t, a : a + 1])
        for j in range(m):
            if a != free:
                ref_c[a][j].partial_fit(x, c[j : j + 1])
    probe = X[:9]
    ucb = np.empty((9, K))
    lcb = np.zeros((9, K, m))
    for a in range(K):
        # each model's radius from its own observation count
        beta = pol.confidence_.radius(ref_r[a].n_obs, d, "identity")[0]
        mean, var = ref_r[a].predict(probe)
        ucb[:, a] = np.clip(mean[:, 0] + beta * np.sqrt(var[:, 0]), 0, 1)
        for j in range(m):
            if a != free:
                mean, var = ref_c[a][j].predict(probe)
                lcb[:, a, j] = np.clip(mean[:, 0] - beta * np.sqrt(var[:, 0]), 0, 1)
    np.testing.assert_allclose(pol.reward_ucb(probe), ucb, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pol.cost_lcb(probe), lcb, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("estimate", [True, False])
def test_dual_step_is_multiplicative_weights_on_the_chosen_cost_estimates(batch, estimate):
    K, m, d, T = 3, 3, 3, 100
    rng = np.random.default_rng(6)
    X = rng.uniform(0, 1, (T, d))
    R = rng.uniform(0, 1, (T, K))
    C = rng.uniform(0, 1, (T, K, m))
    rates = np.array([20.0, 40.0, 60.0]) / T
    pol = KnapsackBandit(
        n_actions=K,
        n_features=d,
        budget=rates * T,
        horizon=T,
        n_resources=m,
        dual={"z_method": "fixed", "Z": 0.5, "dual_uses_estimate": estimate},
        seed=0,
    )
    for t in range(0, 60, batch):
        x = X[t : t + batch]
        decision = pol.decide(x)
        a = decision.actions
        est = pol.cost_lcb(x)[np.arange(x.shape[0]), a]  # the decision-time estimates
        np.testing.assert_array_equal(decision.info["cost_lcb"], est)
        assert decision.info["priced"].all()
        costs = C[t : t + batch][np.arange(x.shape[0]), a]
        costs[a == 0] = 0.0
        if not estimate:  # the realised consumption
            est = costs
        w = pol.prices_.weights.copy()
        for e in est:
            gains = np.append(e * rates.min() / rates - rates.min(), 0.0)
            w = w * np.exp(pol.prices_.eta * gains)
            w /= w.sum()
        pol.update(
            x, a, R[t : t + batch][np.arange(x.shape[0]), a], costs=costs, info=decision.info
        )
        np.testing.assert_allclose(pol.prices_.weights, w, rtol=1e-12)
    assert not np.allclose(pol.prices_.weights, 1 / (m + 1))  # the prices moved


def test_info_given_back_equals_recomputing_it_and_no_hidden_stash():
    env = SyntheticDeferral("human_better", n_features=5, seed=0, budget_rate=0.3)
    pols = [
        PolicySpec("Deferral", {"dual": {"warmup_rounds": 10}}).build_for(env, 1, 200)
        for _ in range(2)
    ]
    rng = np.random.default_rng(2)
    for _ in range(200):
        X = env.contexts(1, rng)
        d0, d1 = pols[0].decide(X), pols[1].decide(X)
        np.testing.assert_array_equal(d0.actions, d1.actions)
        out = env.outcomes(X, d0.actions, rng)
        kw = {"costs": out.costs, "model_rewards": out.extras["model_rewards"]}
        pols[0].update(X, d0.actions, out.rewards, info=d0.info, **kw)
        pols[1].update(X, d1.actions, out.rewards, **kw)  # info recomputed from the state
    np.testing.assert_allclose(pols[0].prices_.weights, pols[1].prices_.weights, rtol=1e-12)
    assert not any("bytes" in type(v).__name__ for v in vars(pols[0]).values())


def test_read_only_methods_write_nothing():
    env = SyntheticDeferral("human_better", n_features=4, seed=0, budget_rate=0.3)
    for warmup in (5, 40):  # after and during the warm-up
        pol = PolicySpec("Deferral", {"dual": {"warmup_rounds": warmup}}).build_for(env, 3, 100)
        run(pol, env, 20, seed=1)
        before = pol._get_state()
        x = env.contexts(6, np.random.default_rng(0))
        p = pol.action_probabilities(x)
        for method in (pol.scores, pol.reward_ucb, pol.cost_lcb):
            method(x)
        after = pol._get_state()
        assert_same_state(before, after)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        if pol.Z_ is not None:
            np.testing.assert_array_equal(pol.decide(x[:1]).actions, [int(np.argmax(p[0]))])


def test_price_rises_when_spending_too_fast():
    pol = Deferral(
        n_features=2,
        budget=100.0,
        horizon=1000,
        dual={"z_method": "fixed", "Z": 1.0, "dual_uses_estimate": False},
        seed=0,
    )
    X = np.array([[1.0, 0.0]])
    start = None
    for _ in range(20):
        d = pol.decide(X)
        pol.update(X, [HUMAN], [1.0], costs=[1.0], model_rewards=[0.0], info=d.info)
        start = pol.prices_.weights[0] if start is None else start
    assert pol.prices_.weights[0] > start
    assert pol.prices_.weights.sum() == pytest.approx(1.0)


def test_validation_errors():
    X = np.zeros((1, 3))
    with pytest.raises(ValueError, match="budget"):
        Deferral(n_features=3, budget=-1.0, horizon=10).decide(X)
    with pytest.raises(ValueError, match="n_actions must be 2"):
        Deferral(n_actions=3, n_features=3, budget=1.0, horizon=10).decide(X)
    with pytest.raises(ValueError, match="feedback"):
        Deferral(n_features=3, budget=1.0, horizon=10, feedback="partial").decide(X)
    with pytest.raises(ValueError, match=r"dual.z_method='fixed' needs dual.Z"):
        Deferral(n_features=3, budget=1.0, horizon=10, dual={"z_method": "fixed"}).decide(X)
    with pytest.raises(ValueError, match="dual.z_method"):
        Deferral(n_features=3, budget=1.0, horizon=10, dual={"z_method": "guess"}).decide(X)
    with pytest.raises(ValueError, match=r"dual has unknown key\(s\) \['zeta'\]"):
        Deferral(n_features=3, budget=1.0, horizon=10, dual={"zeta": 1}).decide(X)
    with pytest.raises(ValueError, match="confidence.beta_scale"):
        Deferral(n_features=3, budget=1.0, horizon=10, confidence={"beta_scale": -1}).decide(X)
    with pytest.raises(ValueError, match="human_link"):
        Deferral(n_features=3, budget=1.0, horizon=10, human_link="probit").decide(X)
    with pytest.raises(ValueError, match="cost_bound <= 1"):
        Deferral(n_features=3, budget=1.0, horizon=10, cost_bound=2.0, cost_link="logistic").decide(
            X
        )
    with pytest.raises(ValueError, match="reward_range"):
        Deferral(
            n_features=3,
            budget=1.0,
            horizon=10,
            model_link="logistic",
            confidence={"reward_range": (0, 2)},
        ).decide(X)
    with pytest.raises(ValueError, match="cost_bound"):
        KnapsackBandit(
            n_actions=3, n_features=3, budget=1.0, horizon=10, cost_bound=np.ones((2, 2))
        ).decide(X)
    pol = Deferral(n_features=3, budget=5.0, horizon=10, seed=0)
    pol.decide(X)
    with pytest.raises(ValueError, match="exceeds the cost bound"):
        pol.update(X, [HUMAN], [1.0], costs=[1.5], model_rewards=[1.0])
    with pytest.raises(ValueError, match="needs costs"):
        pol.update(X, [HUMAN], [1.0], model_rewards=[1.0])
    with pytest.raises(ValueError, match="cost bound 0.0 of action 0"):
        pol.update(X, [MODEL], [1.0], costs=[0.3], model_rewards=[1.0])
    with pytest.raises(ValueError, match="model_rewards"):
        pol.update(X, [HUMAN], [1.0], costs=[0.5])
    with pytest.raises(TypeError, match="unexpected keyword"):
        pol.update(X, [HUMAN], [1.0], costs=[0.5], groups=[1])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        pol.decide(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="without actions"):
        pol.update(X, full_rewards=np.ones((1, 2)), costs=[0.5])


def test_parameter_groups_from_dicts_specs_and_flat_configs(tmp_path):
    flat = {"n_actions": 3, "n_features": 4, "budget": 20.0, "horizon": 200}  # the service's
    pol = KnapsackBandit(**flat)
    params = pol.get_params()
    assert params["confidence"] == {
        "beta_scale": None,
        "delta": 0.05,
        "sigma": 0.5,
        "kappa": None,
        "lam": 1.0,
        "lam_logistic": 1e-3,
        "reward_range": [0.0, 1.0],
    }
    assert params["dual"]["z_method"] == "warmup_estimate"
    same = KnapsackBandit(
        **flat, confidence=ConfidenceSpec(beta_scale=0.5), dual=DualSpec(warmup_rounds=7)
    )
    partial = KnapsackBandit(**flat, confidence={"beta_scale": 0.5}, dual={"warmup_rounds": 7})
    assert same.get_params() == partial.get_params()
    assert KnapsackBandit(**partial.get_params()).get_params() == partial.get_params()
    rng = np.random.default_rng(0)
    for _ in range(30):
        x = rng.normal(size=(1, 4))
        d = partial.decide(x)
        c = np.zeros(1) if d.actions[0] == 0 else rng.uniform(0, 1, 1)
        partial.update(x, d.actions, rng.uniform(size=1), costs=c, info=d.info)
    partial.save(tmp_path / "k")
    back = load(tmp_path / "k")
    assert back.get_params() == partial.get_params()
    assert back.confidence_.beta_scale == 0.5 and back.warmup_rounds_ == 7
    x = rng.normal(size=(5, 4))
    np.testing.assert_array_equal(back.scores(x), partial.scores(x))


def test_full_and_bandit_feedback_both_run_and_differ_in_what_they_learn():
    env = SyntheticDeferral("complementary", n_features=5, seed=0, budget_rate=0.25)
    pols = {
        fb: PolicySpec("Deferral", {"feedback": fb}).build_for(env, 0, 400)
        for fb in ("full", "bandit")
    }
    traces = {fb: run(p, env, 400, seed=1) for fb, p in pols.items()}
    counts = {fb: pols[fb].models_.reward_counts() for fb in pols}
    assert counts["full"][MODEL] == 400
    assert counts["bandit"][MODEL] == 400 - traces["bandit"].action.sum()
    for fb, tr in traces.items():
        assert tr.budget_spent[0] <= 100.0
        assert counts[fb][HUMAN] == tr.action.sum()
        np.testing.assert_array_equal(pols[fb].models_.cost_counts(), [0, tr.action.sum()])


def test_save_load_round_trip_mid_run(tmp_path):
    env = SyntheticDeferral("human_better", n_features=4, seed=0, budget_rate=0.2)
    spec = PolicySpec("Deferral", {"dual": {"warmup_rounds": 20}, "human_link": "logistic"})
    pol = spec.build_for(env, 3, 300)
    run(pol, env, 150, seed=2)
    pol.save(tmp_path / "p")
    back = load(tmp_path / "p")
    assert back.get_params() == pol.get_params()
    X = env.contexts(20, np.random.default_rng(5))
    np.testing.assert_allclose(back.scores(X), pol.scores(X))
    assert [back.decide(x).actions[0] for x in X] == [pol.decide(x).actions[0] for x in X]
    np.testing.assert_allclose(back.spent_, pol.spent_)
    np.testing.assert_allclose(back.remaining_, pol.remaining_)


def test_full_information_on_costs_and_offline_updates():
    pol = KnapsackBandit(n_actions=3, n_features=2, budget=5.0, horizon=50, seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 2))
    d = pol.decide(X)
    costs = rng.uniform(0, 1, (4, 3, 1))
    costs[:, 0] = 0.0
    pol.update(X, d.actions, rng.uniform(size=4), costs=costs, info=d.info)
    assert pol.models_.cost_counts().tolist() == [0, 4, 4]  # every costly action learned
    chosen = costs[np.arange(4), d.actions, 0]
    assert pol.spent_[0] == pytest.approx(chosen.sum())
    # cases this policy did not decide: learned, nothing booked
    pol.update(X, full_rewards=rng.uniform(size=(4, 3)), costs=costs)
    assert pol.models_.cost_counts().tolist() == [0, 8, 8]
    assert pol.models_.reward_counts().tolist() == [4 + (d.actions == a).sum() for a in range(3)]
    assert pol.spent_[0] == pytest.approx(chosen.sum())


def test_neural_deferral_runs_retrains_and_round_trips(tmp_path):
    pytest.importorskip("torch")
    env = SyntheticDeferral("human_better", n_features=4, seed=0, budget_rate=0.2)
    spec = PolicySpec(
        "NeuralDeferral",
        {
            "network": {"hidden": [8], "retrain_every": 20, "min_train": 10},
            "dual": {"warmup_rounds": 10},
            "human_link": "logistic",
        },
    )
    pol = spec.build_for(env, 1, 160)
    trace = run(pol, env, 120, seed=2)
    assert trace.budget_spent[0] <= 32.0
    model_net = pol.models_.reward_groups[0][2].nets[0]  # identity group: the model arm
    assert model_net.n_retrains >= 5  # full feedback: 120 observations, retrain every 20
    assert pol.models_.reward_groups[0][2].dim == 8
    pol.save(tmp_path / "n")
    back = load(tmp_path / "n")
    X = env.contexts(40, np.random.default_rng(4))
    np.testing.assert_allclose(back.scores(X), pol.scores(X))
    assert [back.decide(x).actions[0] for x in X] == [pol.decide(x).actions[0] for x in X]


def test_default_radius_is_the_theorems_over_sqrt_dim_with_each_models_own_count():
    conf = ConfidenceSpec()
    counts = np.array([0.0, 10.0, 1000.0])
    theory = ConfidenceSpec(beta_scale=1.0).radius(counts, 20, "identity")
    np.testing.assert_allclose(conf.radius(counts, 20, "identity"), theory / np.sqrt(20))
    # Li, Lu and Zhou: sigma / kappa sqrt(d/2 log(1 + 2t/d) + log(1/delta)), t >= 1
    by_hand = 0.5 * np.sqrt(10 * np.log1p(2 * np.maximum(counts, 1) / 20) + np.log(20))
    np.testing.assert_allclose(theory, by_hand)
    assert conf.radius(counts, 20, "logistic")[0] == pytest.approx(
        4 * conf.radius(counts, 20, "identity")[0]
    )


def test_z_is_the_gain_over_the_free_action_per_unit_of_budget():
    from scarce.budget import estimate_z, static_opt_lp

    rng = np.random.default_rng(0)
    n, K, T, B = 50, 3, 1000, 120.0
    R = rng.uniform(0.3, 1.0, (n, K))
    C = rng.uniform(0.1, 1.0, (n, K, 1))
    C[:, 0] = 0.0
    fallback = R[:, 0] - 0.1  # a pessimistic estimate of the free action's reward
    z = estimate_z(R, C, free_action=0, fallback=fallback, budget=B, horizon=T, gamma=0.0, c_z=1.0)
    gains = R - fallback[:, None]
    gains[:, 0] = 0.0
    value, _ = static_opt_lp(gains, C, B / T)
    assert z == pytest.approx(T * value / B)
    # subtracting the free action's reward removes what it earns anyway: far below OPT / B
    opt, _ = static_opt_lp(R, C, B / T)
    assert z < 0.5 * T * opt / B
    # the two-action shortcut agrees with the LP
    z2 = estimate_z(R[:, :2], C[:, :2], free_action=0, budget=B, horizon=T, gamma=0.0, c_z=2.0)
    g2 = R[:, :2] - R[:, :1]
    v2, _ = static_opt_lp(g2, C[:, :2], B / T)
    assert z2 == pytest.approx(2.0 * T * v2 / B)


def test_default_dual_step_is_variance_adaptive():
    from scarce.budget.dual import default_eta

    pol = Deferral(n_features=2, budget=40.0, horizon=2000, cost_bound=1.0, seed=0)
    pol.decide(np.zeros((1, 2)))
    assert pol.prices_.eta == pytest.approx(np.sqrt(np.log(2) / 40.0))
    assert default_eta(1, 2000, 40.0) == pytest.approx(
        np.sqrt(np.log(2) / 2000) * np.sqrt(2000 / 40)
    )
    assert pol.warmup_rounds_ == 45  # ceil(sqrt(T))


def test_neural_deferral_networks_have_a_sigmoid_head_for_bernoulli_outcomes():
    pytest.importorskip("torch")
    from scarce.budget import NeuralDeferral

    pol = NeuralDeferral(
        n_features=3, budget=5.0, horizon=50, network={"hidden": [4], "min_train": 3}, seed=0
    )
    pol.decide(np.zeros((1, 3)))
    for _, _, bank, _ in pol.models_.reward_groups + pol.models_.cost_groups:
        for net in bank.nets:
            assert net.mlp.loss == "logistic"  # sigmoid output, cross-entropy loss
        assert bank.link == "identity"  # the linear model on the embedding keeps its link
    with pytest.raises(ValueError, match="network.output='sigmoid' needs targets in"):
        NeuralDeferral(n_features=3, budget=5.0, horizon=50, cost_bound=2.0).decide(
            np.zeros((1, 3))
        )
    identity = NeuralDeferral(
        n_features=3, budget=5.0, horizon=50, network={"output": "identity"}, seed=0
    )
    identity.decide(np.zeros((1, 3)))
    assert identity.models_.reward_groups[0][2].nets[0].mlp.loss == "squared"
