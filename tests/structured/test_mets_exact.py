"""meTS posteriors against the exact joint Gaussian over (effects, actions), the factored
variant against its printed equations, and the policy plumbing (sampling law, choice
probabilities, persistence, validation)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structured_tools import joint_posterior, random_instance

import scarce
from scarce.structured import HierarchicalTS, MixedEffectTS, mixing_matrices

TOL = 1e-8


def _feed(policy, X, actions, y, one_by_one=True):
    if one_by_one:
        for t in range(len(actions)):
            policy.update(X[t : t + 1], actions[t : t + 1], y[t : t + 1])
    else:
        policy.update(X, actions, y)


def _check_against_joint(policy, params, X, actions, y, noise_std):
    K, d = policy.n_actions, policy.n_features
    mean, cov = joint_posterior(params, X, actions, y, noise_std)
    Ld = mean.shape[0] - K * d
    em, ec = policy.effect_posterior()
    np.testing.assert_allclose(em, mean[:Ld], atol=TOL, rtol=0)
    np.testing.assert_allclose(ec, cov[:Ld, :Ld], atol=TOL, rtol=0)
    rng = np.random.default_rng(1)
    psi = rng.standard_normal(Ld)
    for i in range(K):
        sl = slice(Ld + i * d, Ld + (i + 1) * d)
        am, ac = policy.action_posterior(i)
        np.testing.assert_allclose(am, mean[sl], atol=TOL, rtol=0)
        np.testing.assert_allclose(ac, cov[sl, sl], atol=TOL, rtol=0)
        # conditional on Psi: Gaussian conditioning of the joint posterior
        S_tp, S_pp = cov[sl, :Ld], cov[:Ld, :Ld]
        gain = np.linalg.solve(S_pp, S_tp.T).T
        cm_ref = mean[sl] + gain @ (psi - mean[:Ld])
        cc_ref = cov[sl, sl] - gain @ S_tp.T
        cm, cc = policy.conditional_action_posterior(i, psi)
        np.testing.assert_allclose(cm, cm_ref, atol=TOL, rtol=0)
        np.testing.assert_allclose(cc, cc_ref, atol=TOL, rtol=0)


@settings(max_examples=25)
@given(
    K=st.integers(1, 6),
    L=st.integers(1, 3),
    d=st.integers(1, 3),
    n=st.integers(0, 15),
    general=st.booleans(),
    per_action=st.booleans(),
    one_by_one=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_posteriors_equal_exact_joint_gaussian(K, L, d, n, general, per_action, one_by_one, seed):
    rng = np.random.default_rng(seed)
    params = random_instance(rng, K, L, d, general)
    noise = float(rng.uniform(0.3, 2.0))
    policy = MixedEffectTS(n_actions=K, n_features=d, noise_std=noise, seed=0, **params)
    shape = (n, K, d) if per_action else (n, d)
    X = rng.standard_normal(shape)
    # some actions stay unpulled (their terms must vanish without jitter)
    actions = rng.integers(max(1, K - 1), size=n)
    y = rng.standard_normal(n)
    if n:
        policy.decide(X[:1])  # fixes the context layout; decisions must not alter the posterior
        _feed(policy, X, actions, y, one_by_one)
    _check_against_joint(policy, params, X, actions, y, noise)


def test_incremental_updates_survive_many_rounds():
    """Thousands of incremental corrections (and the periodic full recomputation) stay exact."""
    rng = np.random.default_rng(3)
    K, L, d = 5, 2, 2
    params = random_instance(rng, K, L, d)
    policy = MixedEffectTS(n_actions=K, n_features=d, noise_std=1.0, **params)
    n = 2500
    X, a, y = rng.standard_normal((n, d)), rng.integers(K, size=n), rng.standard_normal(n)
    _feed(policy, X, a, y)
    _check_against_joint(policy, params, X, a, y, 1.0)


def test_full_rewards_equal_every_action_observed():
    rng = np.random.default_rng(4)
    K, L, d = 3, 2, 2
    params = random_instance(rng, K, L, d)
    X, full = rng.standard_normal((4, d)), rng.standard_normal((4, K))
    a = MixedEffectTS(n_actions=K, n_features=d, **params).update(X, full_rewards=full)
    Xr, ar = np.repeat(X, K, axis=0), np.tile(np.arange(K), 4)
    _check_against_joint(a, params, Xr, ar, full.reshape(-1), 1.0)


def test_b_weights_are_the_kronecker_case_of_matrix_mixing():
    rng = np.random.default_rng(5)
    K, L, d = 4, 3, 2
    params = random_instance(rng, K, L, d)
    C = mixing_matrices(params["mixing"], d)
    psi = rng.standard_normal(L * d)
    for i in range(K):
        expected = sum(params["mixing"][i, j] * psi[j * d : (j + 1) * d] for j in range(L))
        np.testing.assert_allclose(C[i] @ psi, expected, atol=1e-12)
    X, a, y = rng.standard_normal((9, d)), rng.integers(K, size=9), rng.standard_normal(9)
    p1 = MixedEffectTS(n_actions=K, n_features=d, **params)
    p2 = MixedEffectTS(n_actions=K, n_features=d, **{**params, "mixing": C})
    _feed(p1, X, a, y)
    _feed(p2, X, a, y)
    for f in (lambda p: p.effect_posterior(), lambda p: p.action_posterior(1)):
        for u, v in zip(f(p1), f(p2), strict=True):
            np.testing.assert_allclose(u, v, atol=1e-12)


def test_factored_posterior_follows_printed_equations():
    """meTS-Fa (App. E.1, Eqs. 43-44) with explicit inverses, every action observed >= d times."""
    rng = np.random.default_rng(6)
    K, L, d = 5, 3, 2
    params = random_instance(rng, K, L, d)
    noise = 0.8
    n = 40
    X = rng.standard_normal((n, d))
    a = np.arange(n) % K
    y = rng.standard_normal(n)
    pol = MixedEffectTS(n_actions=K, n_features=d, noise_std=noise, effects="factored", **params)
    _feed(pol, X, a, y)
    b, S0 = params["mixing"], params["action_cov"]
    mean, cov = pol.effect_posterior()
    for j in range(L):
        blk = slice(j * d, (j + 1) * d)
        Sp = params["effect_cov"][blk, blk]
        prec = np.linalg.inv(Sp)
        h = np.linalg.inv(Sp) @ params["effect_mean"][blk]
        for i in range(K):
            Xi, yi = X[a == i], y[a == i]
            G = Xi.T @ Xi / noise**2
            B = Xi.T @ yi / noise**2
            P = np.linalg.inv(S0[i] + np.linalg.inv(G))
            prec = prec + b[i, j] ** 2 * P
            h = h + b[i, j] * P @ np.linalg.solve(G, B)
        np.testing.assert_allclose(cov[blk, blk], np.linalg.inv(prec), atol=TOL)
        np.testing.assert_allclose(mean[blk], np.linalg.solve(prec, h), atol=TOL)
        off = slice((j + 1) * d, None)
        assert np.all(cov[blk, off] == 0.0)


@settings(max_examples=15)
@given(
    K=st.integers(1, 5),
    L=st.integers(1, 3),
    d=st.integers(1, 3),
    n=st.integers(0, 12),
    seed=st.integers(0, 2**16),
)
def test_factored_exact_is_the_mean_field_posterior(K, L, d, n, seed):
    """``effects="factored-exact"`` (the E.1 proof): the exact joint mean of the effects, and
    for each effect the inverse of its diagonal block of the joint posterior precision."""
    rng = np.random.default_rng(seed)
    params = random_instance(rng, K, L, d)
    X, a, y = rng.standard_normal((n, d)), rng.integers(K, size=n), rng.standard_normal(n)
    pol = MixedEffectTS(n_actions=K, n_features=d, effects="factored-exact", seed=0, **params)
    _feed(pol, X, a, y)
    ref_mean, ref_cov = joint_posterior(params, X, a, y, 1.0)
    Ld = L * d
    prec = np.linalg.inv(ref_cov[:Ld, :Ld])
    mean, cov = pol.effect_posterior()
    np.testing.assert_allclose(mean, ref_mean[:Ld], atol=TOL, rtol=0)
    for j in range(L):
        blk = slice(j * d, (j + 1) * d)
        np.testing.assert_allclose(cov[blk, blk], np.linalg.inv(prec[blk, blk]), atol=TOL)
        assert np.all(cov[blk, (j + 1) * d :] == 0.0)
    # the action posterior given the effects is Proposition 2's, whatever the effect posterior
    joint = MixedEffectTS(n_actions=K, n_features=d, seed=0, **params)
    _feed(joint, X, a, y)
    psi = rng.standard_normal(Ld)
    for u, v in zip(
        pol.conditional_action_posterior(0, psi),
        joint.conditional_action_posterior(0, psi),
        strict=True,
    ):
        np.testing.assert_allclose(u, v, atol=TOL)


def test_jitter_reproduces_the_papers_regularised_inverse():
    rng = np.random.default_rng(7)
    K, L, d, eps = 3, 2, 2, 1e-3
    params = random_instance(rng, K, L, d)
    X, a, y = rng.standard_normal((5, d)), np.array([0, 0, 1, 0, 1]), rng.standard_normal(5)
    pol = MixedEffectTS(n_actions=K, n_features=d, jitter=eps, **params)
    _feed(pol, X, a, y)
    C = mixing_matrices(params["mixing"], d)
    prec = np.linalg.inv(params["effect_cov"])
    h = prec @ params["effect_mean"]
    for i in range(K):  # action 2 was never pulled: it still contributes (Sigma_0 + I/eps)^-1
        Xi, yi = X[a == i], y[a == i]
        Ginv = np.linalg.inv(Xi.T @ Xi + eps * np.eye(d))
        P = np.linalg.inv(params["action_cov"][i] + Ginv)
        prec += C[i].T @ P @ C[i]
        h += C[i].T @ P @ Ginv @ (Xi.T @ yi)
    mean, cov = pol.effect_posterior()
    np.testing.assert_allclose(cov, np.linalg.inv(prec), atol=TOL)
    np.testing.assert_allclose(mean, np.linalg.solve(prec, h), atol=TOL)


def test_hierarchical_ts_is_the_one_effect_case():
    rng = np.random.default_rng(8)
    K, d = 4, 2
    prior = dict(effect_mean=rng.standard_normal(d), effect_cov=2 * np.eye(d), action_cov=np.eye(d))
    X, a, y = rng.standard_normal((10, d)), rng.integers(K, size=10), rng.standard_normal(10)
    hier = HierarchicalTS(n_actions=K, n_features=d, seed=3, **prior)
    mets = MixedEffectTS(n_actions=K, n_features=d, mixing=np.ones((K, 1)), seed=3, **prior)
    assert isinstance(hier, MixedEffectTS)
    for p in (hier, mets):
        _feed(p, X, a, y)
    Z = rng.standard_normal((6, d))
    np.testing.assert_array_equal(hier.decide(Z).scores, mets.decide(Z).scores)
    params = {**prior, "mixing": np.ones((K, 1)), "action_cov": np.stack([np.eye(d)] * K)}
    _check_against_joint(hier, params, X, a, y, 1.0)


@pytest.mark.parametrize("effects", ["joint", "factored", "factored-exact"])
def test_two_stage_draws_follow_the_marginal_posterior(effects):
    """Scores drawn by decide (Psi, then theta | Psi) have the marginal posterior's law
    ``N(x^T mean_i, x^T cov_i x)`` (Eq. 4): checked on 40,000 draws with CLT margins."""
    rng = np.random.default_rng(9)
    K, L, d = 3, 2, 2
    params = random_instance(rng, K, L, d)
    pol = MixedEffectTS(n_actions=K, n_features=d, effects=effects, seed=11, **params)
    X, a, y = rng.standard_normal((12, d)), rng.integers(K, size=12), rng.standard_normal(12)
    _feed(pol, X, a, y)
    x = rng.standard_normal(d)
    n = 40_000
    scores = pol.decide(np.tile(x, (n, 1))).scores
    for i in range(K):
        m, c = pol.action_posterior(i)
        mu, var = x @ m, x @ c @ x
        assert abs(scores[:, i].mean() - mu) < 5 * np.sqrt(var / n)
        assert abs(scores[:, i].var() / var - 1.0) < 5 * np.sqrt(2.0 / n)


@pytest.mark.parametrize("per_action", [False, True])
def test_choice_probabilities_match_decision_frequencies(per_action):
    rng = np.random.default_rng(10)
    K, L, d = 4, 2, 2
    params = random_instance(rng, K, L, d)
    pol = MixedEffectTS(n_actions=K, n_features=d, seed=2, propensity_samples=2000, **params)
    x = rng.standard_normal((1, K, d) if per_action else (1, d))
    pol.decide(x)
    probs = pol.action_probabilities(x)[0]
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-9)
    n = 20_000
    dec = pol.decide(np.repeat(x, n, axis=0))
    freq = np.bincount(dec.actions, minlength=K) / n
    # MC error of the probabilities (2000 effect draws) plus the frequencies' binomial error
    assert np.all(np.abs(freq - probs) < 0.02)
    small = pol.decide(np.repeat(x, 5, axis=0))
    # same effect draws (the stream depends on the update count and the batch size only)
    ref = pol.action_probabilities(np.repeat(x, 5, axis=0))
    # (the all-action version renormalises each row to absorb quadrature error)
    np.testing.assert_allclose(small.probabilities, ref[np.arange(5), small.actions], atol=1e-5)
    elig = np.array([True, False, True, True])
    p_elig = pol.action_probabilities(x, eligible=elig)[0]
    assert p_elig[1] == 0.0 and abs(p_elig.sum() - 1.0) < 1e-9


def test_probabilities_do_not_move_the_random_stream():
    rng = np.random.default_rng(12)
    params = random_instance(rng, 3, 2, 2)
    p1 = MixedEffectTS(n_actions=3, n_features=2, seed=5, **params)
    p2 = MixedEffectTS(n_actions=3, n_features=2, seed=5, **params)
    x = rng.standard_normal((2, 2))
    d1 = p1.decide(x)
    _ = d1.probabilities
    p1.action_probabilities(x)
    p2.decide(x)
    np.testing.assert_array_equal(p1.decide(x).scores, p2.decide(x).scores)


@pytest.mark.parametrize("likelihood", ["linear", "logistic"])
def test_save_load_round_trip(tmp_path, likelihood):
    rng = np.random.default_rng(13)
    K, L, d = 4, 2, 2
    params = random_instance(rng, K, L, d)
    pol = MixedEffectTS(n_actions=K, n_features=d, likelihood=likelihood, seed=7, **params)
    X = rng.standard_normal((20, d))
    y = (rng.random(20) < 0.5).astype(float)
    pol.update(X, rng.integers(K, size=20), y)
    pol.save(tmp_path / "m")
    back = scarce.load(tmp_path / "m")
    assert type(back) is MixedEffectTS
    for u, v in zip(pol.effect_posterior(), back.effect_posterior(), strict=True):
        np.testing.assert_allclose(u, v, atol=1e-12)
    Z = rng.standard_normal((5, d))
    np.testing.assert_array_equal(pol.decide(Z).actions, back.decide(Z).actions)
    hier = HierarchicalTS(n_actions=K, n_features=d, seed=1)
    hier.update(X, rng.integers(K, size=20), y)
    hier.save(tmp_path / "h")
    np.testing.assert_array_equal(
        hier.decide(Z).scores, scarce.load(tmp_path / "h").decide(Z).scores
    )


def test_prior_is_inspectable_before_data_and_layout_stays_free():
    rng = np.random.default_rng(14)
    params = random_instance(rng, 3, 2, 2)
    pol = MixedEffectTS(n_actions=3, n_features=2, **params)
    mean, cov = pol.effect_posterior()
    np.testing.assert_allclose(mean, params["effect_mean"])
    np.testing.assert_allclose(cov, params["effect_cov"], atol=1e-12)
    pol.decide(rng.standard_normal((2, 3, 2)))  # per-action contexts are still accepted


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mixing": np.ones((4, 2))}, r"mixing must have shape \(3, L\)"),
        (
            {"mixing": np.ones((3, 2)), "effect_mean": np.zeros(3)},
            r"effect_mean must have shape \(4,\)",
        ),
        (
            {"mixing": np.ones((3, 2)), "effect_cov": np.eye(3)},
            r"effect_cov must have shape \(4, 4\)",
        ),
        (
            {"mixing": np.ones((3, 2)), "effect_cov": -np.eye(4)},
            "effect_cov must be positive definite",
        ),
        (
            {"mixing": np.ones((3, 2)), "action_cov": np.eye(3)},
            r"action_cov must have shape \(2, 2\)",
        ),
        ({"mixing": np.ones((3, 2)), "noise_std": 0.0}, "noise_std must be > 0"),
        ({"mixing": np.ones((3, 2)), "effects": "mean-field"}, "effects must be one of"),
        ({"mixing": np.ones((3, 2)), "likelihood": "probit"}, "likelihood must be one of"),
        ({"mixing": np.ones((3, 2)), "jitter": -1.0}, "jitter must be >= 0"),
        ({"mixing": np.ones((3, 2)), "laplace_batch": 0}, "laplace_batch must be an int >= 1"),
    ],
)
def test_bad_parameters_are_named(kwargs, match):
    pol = MixedEffectTS(n_actions=3, n_features=2, **kwargs)
    with pytest.raises(ValueError, match=match):
        pol.decide(np.zeros((1, 2)))


def test_logistic_rejects_rewards_outside_unit_interval():
    pol = MixedEffectTS(n_actions=2, n_features=2, mixing=np.ones((2, 1)), likelihood="logistic")
    with pytest.raises(ValueError, match="rewards must be <= 1"):
        pol.update(np.zeros((1, 2)), [0], [2.0])
