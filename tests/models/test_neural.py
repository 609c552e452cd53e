"""MLPEmbedding and NeuralLinear: determinism, retraining schedule, shapes and validation,
state round trip, and that the neural mean fits a nonlinear function better than ridge."""

import numpy as np
import pytest

pytest.importorskip("torch")

from scarce.models.neural import MLPEmbedding, NeuralLinear  # noqa: E402
from scarce.models.ridge import RidgeRegression  # noqa: E402


def _data(n=400, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, d))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.standard_normal(n)
    return X, y


def test_same_seed_same_network_and_predictions():
    X, y = _data()
    a = MLPEmbedding(3, hidden=(16,), epochs=5, seed=7).fit(X, y)
    b = MLPEmbedding(3, hidden=(16,), epochs=5, seed=7).fit(X, y)
    c = MLPEmbedding(3, hidden=(16,), epochs=5, seed=8).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.embed(X), b.embed(X))
    assert not np.allclose(a.predict(X), c.predict(X))
    n1 = NeuralLinear(3, hidden=(8,), retrain_every=50, min_train=20, epochs=3, seed=1)
    n2 = NeuralLinear(3, hidden=(8,), retrain_every=50, min_train=20, epochs=3, seed=1)
    for m in (n1, n2):
        m.partial_fit(X[:120], y[:120])
    for u, v in zip(n1.predict(X[:10]), n2.predict(X[:10]), strict=True):
        np.testing.assert_array_equal(u, v)


def test_torch_global_rng_is_untouched():
    import torch

    torch.manual_seed(123)
    before = torch.random.get_rng_state().clone()
    X, y = _data(100)
    MLPEmbedding(3, hidden=(8,), epochs=2, dropout=0.2, seed=0).fit(X, y).sample_outputs(X, 3)
    assert torch.equal(before, torch.random.get_rng_state())


def test_retrain_schedule():
    X, y = _data(300)
    m = NeuralLinear(3, hidden=(8,), retrain_every=25, min_train=20, epochs=1, seed=0)
    retrains = []
    for i in range(100):
        m.partial_fit(X[i : i + 1], y[i : i + 1])
        retrains.append(m.n_retrains)
    # first training at 20 observations, then every 25 new ones
    assert retrains[18] == 0 and retrains[19] == 1
    assert retrains[43] == 1 and retrains[44] == 2
    assert retrains[68] == 2 and retrains[69] == 3
    assert m.n_obs == 100
    # between retrainings the linear head is updated online on the current embedding, which
    # equals a from-scratch ridge fit on the recomputed embeddings
    Z = m.net.embed(m._X)
    ref = RidgeRegression(1, Z.shape[1], lam=m.lam)
    ref.partial_fit(Z, m._y)
    np.testing.assert_allclose(m.linear.theta, ref.theta, atol=1e-8)


def test_shapes_and_validation():
    X, y = _data(60)
    net = MLPEmbedding(3, hidden=(12, 6), seed=0).fit(X, y)
    assert net.embed(X).shape == (60, 6)
    assert net.predict(X).shape == (60,)
    assert net.embedding_dim == 6
    m = NeuralLinear(3, hidden=(5,), min_train=10, epochs=1, seed=0)
    m.partial_fit(X, y)
    mean, var = m.predict(X[:7])
    assert mean.shape == (7,) and var.shape == (7,) and np.all(var >= 0)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        net.embed(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="finite"):
        net.predict(np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match="y must have shape"):
        net.fit(X, y[:-1])
    with pytest.raises(ValueError, match="link"):
        MLPEmbedding(3, link="probit")
    with pytest.raises(ValueError, match="hidden"):
        MLPEmbedding(3, hidden=())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MLPEmbedding(3, link="logistic").fit(X, y + 5)
    with pytest.raises(ValueError, match="dropout"):
        MLPEmbedding(3).sample_outputs(X, 2)
    with pytest.raises(ValueError, match="gaussian"):
        MLPEmbedding(3).predict_variance(X)
    logistic = NeuralLinear(3, link="logistic", hidden=(5,), min_train=10, epochs=1, seed=0)
    logistic.partial_fit(X, (y > 0).astype(float))
    p, v = logistic.predict(X[:4])
    assert np.all((p > 0) & (p < 1)) and np.all(v >= 0)


def test_state_round_trip_restores_weights_and_generator():
    X, y = _data(200)
    a = MLPEmbedding(3, hidden=(10,), epochs=3, seed=4).fit(X, y)
    state = a.get_state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    b = MLPEmbedding(3, hidden=(10,), epochs=3, seed=99)
    b.set_state(state)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    # the generator state travels too: further training stays identical
    a.fit(X, y)
    b.fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_neural_linear_fits_a_nonlinear_function_better_than_ridge():
    X, y = _data(1500, seed=1)
    Xt, yt = _data(500, seed=2)
    truth = np.sin(3 * Xt[:, 0]) + Xt[:, 1] ** 2
    nl = NeuralLinear(
        3, hidden=(32, 16), retrain_every=10_000, min_train=1, epochs=60, lr=1e-2, seed=0
    )
    nl.partial_fit(X, y)
    ridge = RidgeRegression(1, 4, lam=1.0)
    ridge.partial_fit(np.column_stack([X, np.ones(len(X))]), y)
    mse_nl = np.mean((nl.predict(Xt)[0] - truth) ** 2)
    mse_ridge = np.mean(
        (ridge.predict(np.column_stack([Xt, np.ones(len(Xt))]))[0][:, 0] - truth) ** 2
    )
    assert mse_nl < 0.5 * mse_ridge, (mse_nl, mse_ridge)


def test_dropout_training_is_reproducible_with_a_seed():
    import torch

    X, y = _data(100)
    torch.manual_seed(1)
    a = MLPEmbedding(3, hidden=(8,), epochs=2, dropout=0.3, seed=5).fit(X, y)
    torch.manual_seed(2)
    b = MLPEmbedding(3, hidden=(8,), epochs=2, dropout=0.3, seed=5).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
