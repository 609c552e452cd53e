"""KnapsackBandit and Deferral: the hard budget guarantee (property test), exact bounds,
validation, persistence, feedback regimes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.budget import HUMAN, MODEL, Deferral, KnapsackBandit, SyntheticDeferral, run_learner
from scarce.core.policy import load


@settings(max_examples=100)
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
)
def test_budget_is_never_exceeded(seed, K, m, frac, dist, batch, z_method, due, cost_link):
    rng = np.random.default_rng(seed)
    d, T = 3, 120
    bound = rng.uniform(0.2, 1.0 if cost_link == "logistic" else 2.0, (K, m))
    budget = np.maximum(frac * T * bound.mean(axis=0) * rng.uniform(0.1, 0.6, m), 1e-3)
    pol = KnapsackBandit(
        n_actions=K,
        n_features=d,
        budget=budget,
        horizon=T,
        n_resources=m,
        free_action=int(rng.integers(K)),
        cost_bound=bound,
        cost_link=cost_link,
        z_method=z_method,
        Z=0.0 if z_method == "fixed" else None,
        warmup_rounds=int(rng.integers(0, 40)),
        dual_uses_estimate=due,
        seed=seed,
    )
    spent = np.zeros(m)
    t = 0
    while t < T:
        n = min(batch, T - t)
        X = rng.normal(size=(n, d))
        acts = pol.decide(X).actions
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
        pol.update(X, acts, rewards, costs=c)
        t += n
    np.testing.assert_allclose(pol.spent_, spent)


def test_decisions_reserve_budget_until_updates_arrive():
    pol = KnapsackBandit(
        n_actions=2, n_features=2, budget=3.0, horizon=100, z_method="fixed", Z=0.0, seed=0
    )
    X = np.ones((10, 2))
    acts = pol.decide(X).actions
    # only 3 cases can be deferred to the costly action without feedback
    assert (acts == 1).sum() <= 3
    assert pol.decide(X).actions.sum() == 0  # everything reserved: only the free action


def test_bounds_equal_the_closed_forms():
    rng = np.random.default_rng(0)
    d = 4
    pol = Deferral(n_features=d, budget=50.0, horizon=500, z_method="fixed", Z=1.0, seed=0)
    X = rng.normal(size=(30, d))
    acts = rng.integers(0, 2, 30)
    c = np.where(acts == HUMAN, rng.uniform(0, 1, 30), 0.0)
    r = rng.uniform(0, 1, 30)
    pol.update(X, acts, r, costs=c, model_rewards=np.where(acts == MODEL, r, rng.uniform(0, 1, 30)))
    x = rng.normal(size=(5, d))
    beta = pol._beta("identity", d)
    # brute force: ridge from scratch on the human's data, and the max over the ellipsoid
    Xh, yh = X[acts == HUMAN], r[acts == HUMAN]
    V = np.eye(d) + Xh.T @ Xh
    th = np.linalg.solve(V, Xh.T @ yh)
    width = np.sqrt(np.einsum("nd,de,ne->n", x, np.linalg.inv(V), x))
    np.testing.assert_allclose(
        pol.reward_ucb(x)[:, HUMAN], np.clip(x @ th + beta * width, 0, 1), atol=1e-10
    )
    Vc = np.eye(d) + Xh.T @ Xh
    thc = np.linalg.solve(Vc, Xh.T @ c[acts == HUMAN])
    lcb = np.clip(x @ thc - beta * width, 0, 1)
    np.testing.assert_allclose(pol.cost_lcb(x)[:, HUMAN, 0], lcb, atol=1e-10)
    assert np.all(pol.cost_lcb(x)[:, MODEL] == 0)
    # the ellipsoid maximum equals the closed form: check on random boundary points
    L = np.linalg.cholesky(np.linalg.inv(V))
    u = rng.normal(size=(20000, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    thetas = th + beta * u @ L.T
    assert np.all((thetas @ x.T).max(axis=0) <= x @ th + beta * width + 1e-9)


def test_price_rises_when_spending_too_fast():
    pol = Deferral(
        n_features=2,
        budget=100.0,
        horizon=1000,
        z_method="fixed",
        Z=1.0,
        dual_uses_estimate=False,
        seed=0,
    )
    X = np.array([[1.0, 0.0]])
    start = None
    for _ in range(20):
        pol.decide(X)
        pol.update(X, [HUMAN], [1.0], costs=[1.0], model_rewards=[0.0])
        start = pol.dual_[0] if start is None else start
    assert pol.dual_[0] > start
    assert pol.dual_.sum() == pytest.approx(1.0)


def test_validation_errors():
    X = np.zeros((1, 3))
    with pytest.raises(ValueError, match="budget"):
        Deferral(n_features=3, budget=-1.0, horizon=10).decide(X)
    with pytest.raises(ValueError, match="feedback"):
        Deferral(n_features=3, budget=1.0, horizon=10, feedback="partial").decide(X)
    with pytest.raises(ValueError, match="needs Z"):
        Deferral(n_features=3, budget=1.0, horizon=10, z_method="fixed").decide(X)
    with pytest.raises(ValueError, match="z_method"):
        Deferral(n_features=3, budget=1.0, horizon=10, z_method="guess").decide(X)
    with pytest.raises(ValueError, match="human_link|reward_link"):
        Deferral(n_features=3, budget=1.0, horizon=10, human_link="probit").decide(X)
    with pytest.raises(ValueError, match="cost_bound <= 1"):
        Deferral(n_features=3, budget=1.0, horizon=10, cost_bound=2.0, cost_link="logistic").decide(
            X
        )
    with pytest.raises(ValueError, match="reward_range"):
        Deferral(
            n_features=3, budget=1.0, horizon=10, model_link="logistic", reward_range=(0, 2)
        ).decide(X)
    with pytest.raises(ValueError, match="cost_bound"):
        KnapsackBandit(
            n_actions=3, n_features=3, budget=1.0, horizon=10, cost_bound=np.ones((2, 2))
        ).decide(X)
    pol = Deferral(n_features=3, budget=5.0, horizon=10, seed=0)
    pol.decide(X)
    with pytest.raises(ValueError, match="exceeds cost_bound"):
        pol.update(X, [HUMAN], [1.0], costs=[1.5], model_rewards=[1.0])
    with pytest.raises(ValueError, match="needs costs"):
        pol.update(X, [HUMAN], [1.0], model_rewards=[1.0])
    with pytest.raises(ValueError, match="free action"):
        pol.update(X, [MODEL], [1.0], costs=[0.3], model_rewards=[1.0])
    with pytest.raises(ValueError, match="model_rewards"):
        pol.update(X, [HUMAN], [1.0], costs=[0.5])
    with pytest.raises(TypeError, match="unexpected keyword"):
        pol.update(X, [HUMAN], [1.0], costs=[0.5], groups=[1])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        pol.decide(np.zeros((1, 4)))


def test_full_and_bandit_feedback_both_run_and_differ_in_what_they_learn():
    env = SyntheticDeferral("complementary", n_features=5, seed=0)
    s = env.sample(400, 1)
    pols = {
        fb: Deferral(n_features=5, budget=100.0, horizon=400, feedback=fb, seed=0)
        for fb in ("full", "bandit")
    }
    outs = {fb: run_learner(p, s) for fb, p in pols.items()}
    # all-identity links: one joint ridge, model i = action i (reward + cost targets)
    model_obs = {fb: pols[fb]._joint_bank.model.n_obs for fb in pols}
    assert model_obs["full"][MODEL] == 400
    assert model_obs["bandit"][MODEL] == 400 - outs["bandit"].defer.sum()
    for o in outs.values():
        assert o.spent <= 100.0


def test_save_load_round_trip(tmp_path):
    env = SyntheticDeferral("human_better", n_features=4, seed=0)
    s = env.sample(300, 2)
    pol = Deferral(
        n_features=4, budget=60.0, horizon=300, warmup_rounds=20, seed=3, human_link="logistic"
    )
    head = type(s)(
        s.X[:150], s.rewards[:150], s.costs[:150], s.mean_rewards[:150], s.mean_costs[:150]
    )
    run_learner(pol, head)
    pol.save(tmp_path / "p")
    back = load(tmp_path / "p")
    assert back.get_params() == pol.get_params()
    X = s.X[150:170]
    np.testing.assert_allclose(back.scores(X), pol.scores(X))
    a1 = [pol.decide(x).actions[0] for x in X]
    a2 = [back.decide(x).actions[0] for x in X]
    assert a1 == a2
    np.testing.assert_allclose(back.spent_, pol.spent_)


def test_action_probabilities_match_decisions_and_keep_state():
    env = SyntheticDeferral("human_better", n_features=4, seed=0)
    s = env.sample(100, 2)
    pol = Deferral(n_features=4, budget=30.0, horizon=100, warmup_rounds=10, seed=3)
    run_learner(
        pol, type(s)(s.X[:50], s.rewards[:50], s.costs[:50], s.mean_rewards[:50], s.mean_costs[:50])
    )
    x = s.X[60:61]
    p = pol.action_probabilities(x)
    assert p.sum() == pytest.approx(1.0)
    assert pol.decide(x).actions[0] == int(np.argmax(p))


def test_neural_deferral_runs_retrains_and_round_trips(tmp_path):
    pytest.importorskip("torch")
    from scarce.budget import NeuralDeferral

    env = SyntheticDeferral("human_better", n_features=4, seed=0)
    s = env.sample(160, 2)
    head = type(s)(
        s.X[:120], s.rewards[:120], s.costs[:120], s.mean_rewards[:120], s.mean_costs[:120]
    )
    pol = NeuralDeferral(
        n_features=4,
        budget=30.0,
        horizon=160,
        hidden=(8,),
        retrain_every=20,
        min_train=10,
        warmup_rounds=10,
        human_link="logistic",
        seed=1,
    )
    out = run_learner(pol, head)
    assert out.spent <= 30.0
    model_net = pol._reward_groups[0][2].models[0]  # identity group: the model arm
    assert model_net.n_retrains >= 5  # full feedback: 120 observations, retrain every 20
    assert pol._reward_groups[0][2].dim == 8
    pol.save(tmp_path / "n")
    back = load(tmp_path / "n")
    X = s.X[120:]
    np.testing.assert_allclose(back.scores(X), pol.scores(X))
    assert [back.decide(x).actions[0] for x in X] == [pol.decide(x).actions[0] for x in X]
