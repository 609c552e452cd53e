"""The neural policies' own equations, checked against brute force, and their learning at a
small, seeded scale: NeuralUCB's diagonal widths and U against torch's per-row gradients,
EnsembleTS's exact choice probabilities against the members' greedy choices, NeuralLinearTS
as LinTS on the embedding, torch's global RNG untouched, and every neural policy ahead of
LinUCB on a problem a linear model cannot express (rings)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scarce.envs import SupervisedEnv  # noqa: E402
from scarce.models import linear  # noqa: E402
from scarce.policies import LinUCB  # noqa: E402
from scarce.policies.neural import (  # noqa: E402
    UNIT_TEST_NETWORK,
    DropoutTS,
    EnsembleTS,
    NeuralLinearTS,
    NeuralLinearUCB,
    NeuralUCB,
)
from scarce.sim import run  # noqa: E402

NET = {"hidden": [7, 5], "first_train": 8, "retrain_every": 10, "train_steps": 5}


def _play(policy, layout="shared_context", rounds=8, n=4, seed=0):
    rng = np.random.default_rng(seed)
    K, d = policy.n_actions, policy.n_features
    for _ in range(rounds):
        X = rng.normal(size=(n, d) if layout == "shared_context" else (n, K, d))
        dec = policy.decide(X)
        policy.update(X, dec.actions, rng.random(n))
    return rng


def _grads(mlp, x, head):
    """Per-parameter gradient (member 0) of output ``head`` at row ``x``, by autograd (on
    float64 copies of the float32 weights, the values the NumPy evaluation uses)."""
    params = [p.detach().double().requires_grad_(True) for p in mlp.params]
    h = torch.from_numpy(x[None, None])
    for layer in range(len(mlp.hidden)):
        h = torch.relu(h @ params[2 * layer] + params[2 * layer + 1])
    out = (h @ params[-2] + params[-1])[0, 0, head]
    out.backward()
    return [p.grad[0].numpy().copy() for p in params]


@pytest.mark.parametrize("layout", ["shared_context", "action_features"])
def test_neural_ucb_widths_and_u_match_autograd(layout):
    K, d = 3, 4
    policy = NeuralUCB(n_actions=K, n_features=d, alpha=0.7, lam=0.5, network=NET, seed=0)
    rng = np.random.default_rng(1)
    U = None
    # brute force: U = lam + sum of squared gradients of the observed rows, at the weights
    # they were decided with
    for _ in range(6):
        X = rng.normal(size=(3, d) if layout == "shared_context" else (3, K, d))
        dec = policy.decide(X)
        if U is None:
            U = [np.full(g.shape, 0.5) for g in _grads(policy.model_.mlp, np.zeros(d), 0)]
        for i, a in enumerate(dec.actions):
            x, head = (X[i], a) if layout == "shared_context" else (X[i, a], 0)
            for u, g in zip(U, _grads(policy.model_.mlp, x, head), strict=True):
                u += g**2
        policy.update(X, dec.actions, rng.random(3))
    assert policy.n_retrains >= 1
    for u, mine in zip(U, policy.U_, strict=True):
        np.testing.assert_allclose(mine, u, rtol=1e-10)
    X = rng.normal(size=(2, d) if layout == "shared_context" else (2, K, d))
    widths = policy.widths(X)
    mlp = policy.model_.mlp
    for i in range(2):
        for a in range(K):
            x, head = (X[i], a) if layout == "shared_context" else (X[i, a], 0)
            g = _grads(mlp, x, head)
            w2 = sum((gi**2 / ui).sum() for gi, ui in zip(g, policy.U_, strict=True))
            np.testing.assert_allclose(widths[i, a], np.sqrt(0.5 * w2), rtol=1e-10)
    mean = policy._predict(X)[0]
    np.testing.assert_allclose(policy.decide(X).scores, mean + 0.7 * mlp.scale[0] * widths)


def test_ensemble_probabilities_are_the_members_share():
    policy = EnsembleTS(n_actions=4, n_features=3, n_members=5, network=NET, seed=0)
    rng = _play(policy)
    X = rng.normal(size=(6, 3))
    eligible = rng.random((6, 4)) < 0.7
    eligible[:, 0] = True
    preds = policy._predict(X)  # (M, n, K)
    greedy = np.argmax(np.where(eligible, preds, -np.inf), axis=2)
    expected = np.stack([(greedy == a).mean(axis=0) for a in range(4)], axis=1)
    np.testing.assert_array_equal(policy.action_probabilities(X, eligible=eligible), expected)
    dec = policy.decide(X, eligible=eligible)
    np.testing.assert_array_equal(dec.probabilities, expected[np.arange(6), dec.actions])
    assert np.all(greedy.T[np.arange(6)].T.shape == (5, 6))
    # members are diverse (bootstrap and initial weights), so some cases are uncertain
    assert np.any((expected > 0) & (expected < 1))


def test_neural_linear_ts_is_lin_ts_on_the_embedding():
    policy = NeuralLinearTS(n_actions=3, n_features=2, v=0.5, network=NET, seed=0)
    rng = _play(policy)
    X = rng.normal(size=(5, 2))
    Z = policy.model_.transform(X)
    mean, var = linear.predict(Z, policy.model_.theta, policy.model_.A_inv)
    np.testing.assert_allclose(
        policy.action_probabilities(X),
        linear.gaussian_argmax_probabilities(mean, 0.5 * np.sqrt(var)),
    )
    ucb = NeuralLinearUCB(n_actions=3, n_features=2, alpha=0.3, network=NET, seed=0)
    _play(ucb)
    Z = ucb.model_.transform(X)
    mean, var = linear.predict(Z, ucb.model_.theta, ucb.model_.A_inv)
    np.testing.assert_allclose(ucb.decide(X).scores, mean + 0.3 * np.sqrt(var))


@pytest.mark.parametrize("append", [False, True])
def test_inverse_gamma_posterior_is_the_ridge_fit_by_hand(append):
    # b = b0 + (RSS + lam |theta|^2) / 2 per action, a = a0 + n / 2, before and after a refit
    policy = NeuralLinearTS(
        n_actions=3,
        n_features=2,
        lam=0.7,
        network=NET,
        append_inputs=append,
        noise_prior=[6, 2],
        seed=0,
    )
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(9):  # crosses the first training (8) with online updates after it
        X = rng.normal(size=(2, 2))
        dec = policy.decide(X)
        y = rng.normal(size=2) + 3
        policy.update(X, dec.actions, y)
        rows += list(zip(X, dec.actions, y, strict=True))
        model = policy.model_
        a, b = model.noise_posterior(6.0, 2.0)
        for k in range(3):
            mine = [(x, r) for x, act, r in rows if act == k]
            Z = model.transform(np.array([x for x, _ in mine]).reshape(-1, 2))
            yk = np.array([r for _, r in mine])
            theta = np.linalg.solve(Z.T @ Z + 0.7 * np.eye(model.dim), Z.T @ yk)
            rss = ((yk - Z @ theta) ** 2).sum() + 0.7 * theta @ theta
            assert a[k] == pytest.approx(6 + len(mine) / 2)
            assert b[k] == pytest.approx(2 + rss / 2, rel=1e-6, abs=1e-8)
    assert policy.n_retrains >= 1 and policy.model_.dim == 5 + 2 * append


@pytest.mark.statistical
@pytest.mark.parametrize("layout", ["shared_context", "action_features"])
def test_inverse_gamma_choice_probabilities_match_the_decisions(layout):
    policy = NeuralLinearTS(
        n_actions=3,
        n_features=2,
        network=NET,
        noise_prior=[3, 1],
        v=2.0,
        propensity_samples=4000,
        seed=0,
    )
    rng = _play(policy, layout, rounds=6)
    shape = (1, 2) if layout == "shared_context" else (1, 3, 2)
    x = rng.normal(size=shape)
    X = np.repeat(x, 3000, axis=0)
    freq = np.bincount(policy.decide(X).actions, minlength=3) / 3000
    probs = policy.action_probabilities(x)[0]
    assert probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(freq, probs, atol=0.035)  # 4 sd of a 3000-draw share
    assert np.sum(probs > 0.02) >= 2  # the draws are spread, not one sure action
    dec = policy.decide(x)
    assert dec.probabilities[0] == pytest.approx(probs[dec.actions[0]], abs=0.035)
    with pytest.raises(ValueError, match="noise_prior"):
        NeuralLinearTS(n_actions=3, n_features=2, noise_prior=[0, 1]).decide(x[:, :])


@pytest.mark.parametrize("cls", [NeuralLinearTS, NeuralLinearUCB, NeuralUCB, EnsembleTS, DropoutTS])
def test_torch_global_rng_untouched(cls):
    torch.manual_seed(5)
    before = torch.random.get_rng_state().clone()
    policy = cls(n_actions=3, n_features=2, network=UNIT_TEST_NETWORK, seed=0)
    rng = _play(policy, rounds=5)
    policy.action_probabilities(rng.normal(size=(2, 2)))
    assert policy.n_retrains >= 2
    assert torch.equal(before, torch.random.get_rng_state())


def test_bad_network_settings_named_on_first_use():
    policy = NeuralLinearTS(n_actions=3, n_features=2, network={"hidden": [0]})
    with pytest.raises(ValueError, match=r"network\['hidden'\]"):
        policy.decide(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="unknown key"):
        EnsembleTS(n_actions=3, n_features=2, network={"layers": [4]}).decide(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="n_members"):
        EnsembleTS(n_actions=3, n_features=2, n_members=1).decide(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="dropout"):
        DropoutTS(n_actions=3, n_features=2, dropout=1.0).decide(np.zeros((1, 2)))


def _rings(seed=0, n=3000):
    """Three classes by radius band on the plane: no linear model separates them."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    r = np.hypot(X[:, 0], X[:, 1])
    return X, np.digitize(r, [0.45, 0.8])


@pytest.mark.statistical
def test_every_neural_policy_beats_linucb_on_rings():
    X, y = _rings()
    net = {"hidden": [32], "first_train": 32, "retrain_every": 50, "train_steps": 60}
    horizon = 1200
    linucb = run(
        LinUCB(n_actions=3, n_features=3, alpha=0.3, seed=0),
        SupervisedEnv(X, y, seed=0),
        horizon,
        seed=1,
    )
    base = linucb.cumulative_reward[-1]
    policies = {
        "NeuralLinearTS": NeuralLinearTS(n_actions=3, n_features=3, v=0.3, network=net, seed=0),
        "NeuralLinearUCB": NeuralLinearUCB(
            n_actions=3, n_features=3, alpha=0.3, network=net, seed=0
        ),
        "NeuralUCB": NeuralUCB(n_actions=3, n_features=3, alpha=0.1, network=net, seed=0),
        "EnsembleTS": EnsembleTS(n_actions=3, n_features=3, n_members=5, network=net, seed=0),
        "DropoutTS": DropoutTS(n_actions=3, n_features=3, network=net, seed=0),
    }
    for name, policy in policies.items():
        trace = run(
            policy, SupervisedEnv(X, y, seed=0), horizon, seed=1, record_probabilities=False
        )
        # the linear policy is near its ceiling (about half correct); margins of 10% of the horizon
        assert trace.cumulative_reward[-1] > base + 0.1 * horizon, (
            name,
            trace.cumulative_reward[-1],
            base,
        )
