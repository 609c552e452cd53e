"""The shared neural pieces (scarce.models.mlp, scarce.models.neural_linear): the NumPy
evaluation equals torch's, training is seeded and leaves torch's global RNG alone, targets'
standardisation never changes a prediction, bootstrap weights and heads restrict what each
row trains, the replay buffer and the schedule keep their promises, state round-trips, and
the neural-linear posterior equals a from-scratch ridge fit on the re-embedded buffer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from scarce.models.mlp import (  # noqa: E402
    MLP,
    NetworkConfig,
    OnlineNetwork,
    ReplayBuffer,
    RetrainSchedule,
)
from scarce.models.neural_linear import NeuralLinearRegression  # noqa: E402
from scarce.models.ridge import RidgeRegression  # noqa: E402


def _data(n=300, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, d))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.standard_normal(n)
    return X, y


def _torch_forward(mlp, X, masks=None):
    """torch's evaluation of the (float32) weights in float64, in the targets' units."""
    p = [w.detach().double() for w in mlp.params]
    h = torch.from_numpy(X)[None]
    for layer in range(len(mlp.hidden)):
        h = torch.relu(h @ p[2 * layer] + p[2 * layer + 1])
        if masks is not None:
            h = h * torch.from_numpy(masks[layer])
    out = (h @ p[-2] + p[-1]).numpy()
    return out * mlp.scale[:, None, None] + mlp.shift[:, None, None]


def test_config_from_mapping_validates_and_round_trips():
    c = NetworkConfig.from_mapping({"hidden": [8, 4], "train_steps": 7}, retrain_every=9)
    assert c.hidden == (8, 4) and c.train_steps == 7 and c.retrain_every == 9
    assert NetworkConfig.from_mapping(c.to_dict()) == c
    assert NetworkConfig.from_mapping(None) == NetworkConfig()
    with pytest.raises(ValueError, match="unknown key"):
        NetworkConfig.from_mapping({"hiden": [8]})
    with pytest.raises(ValueError, match=r"network\['hidden'\]"):
        NetworkConfig.from_mapping({"hidden": []})
    with pytest.raises(ValueError, match=r"network\['lr'\]"):
        NetworkConfig.from_mapping({"lr": 0.0})
    with pytest.raises(ValueError, match="network must be a mapping"):
        NetworkConfig.from_mapping([1, 2])


def test_numpy_evaluation_equals_torch_with_members_heads_and_masks():
    X, y = _data(50)
    mlp = MLP(3, 4, hidden=(7, 5), n_members=3, dropout=0.3, seed=0)
    mlp.fit(X, y, heads=np.arange(50) % 4, n_steps=5)
    np.testing.assert_allclose(mlp.predict(X), _torch_forward(mlp, X), rtol=1e-12, atol=1e-12)
    masks = mlp.dropout_masks(50, np.random.default_rng(1))
    assert [m.shape for m in masks] == [(50, 7), (50, 5)]
    np.testing.assert_allclose(mlp.predict(X, masks), _torch_forward(mlp, X, masks), atol=1e-12)
    assert mlp.embed(X).shape == (3, 50, 5) and mlp.predict(X).shape == (3, 50, 4)


@pytest.mark.parametrize("members", [1, 3])
def test_the_float32_training_graph_computes_what_numpy_evaluates(members):
    X, y = _data(40)
    mlp = MLP(3, 4, hidden=(7, 5), n_members=members, seed=0).fit(X, y, n_steps=3)
    x = torch.from_numpy(X.astype(np.float32))
    with torch.no_grad():
        raw = mlp._forward_t(x if members == 1 else x.expand(members, -1, -1), train=False)
    raw = raw.numpy().reshape(members, 40, 4)
    np.testing.assert_allclose(raw, mlp.forward(X)[1], rtol=1e-5, atol=1e-5)


def test_same_seed_same_training_and_global_rng_untouched():
    X, y = _data()
    torch.manual_seed(123)
    before = torch.random.get_rng_state().clone()
    a = MLP(3, hidden=(16,), dropout=0.2, seed=7).fit(X, y, n_steps=30)
    b = MLP(3, hidden=(16,), dropout=0.2, seed=7).fit(X, y, n_steps=30)
    c = MLP(3, hidden=(16,), dropout=0.2, seed=8).fit(X, y, n_steps=30)
    assert torch.equal(before, torch.random.get_rng_state())
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert not np.allclose(a.predict(X), c.predict(X))


@pytest.mark.parametrize(("hidden", "batch_size"), [((16,), 32), ((8, 6), 37), ((5, 7, 4), 64)])
def test_hand_written_gradients_equal_autograd_bit_for_bit(hidden, batch_size):
    # the plain case (one member, squared loss, no dropout) trains by MLP._plain_grads: the
    # same weights, to the last bit, as the autograd step, over heads, depths and a batch
    # size whose 1 / B is not a power of two
    X, y = _data(120)
    heads = np.random.default_rng(3).integers(3, size=120)
    fast = MLP(3, 3, hidden=hidden, batch_size=batch_size, seed=5)
    slow = MLP(3, 3, hidden=hidden, batch_size=batch_size, seed=5)
    slow._hand_backward = False
    assert fast._plain() and fast._hand_backward
    for n_steps in (1, 25):
        fast.fit(X, y, heads, n_steps=n_steps)
        slow.fit(X, y, heads, n_steps=n_steps)
        for a, b in zip(fast.params, slow.params, strict=True):
            assert torch.equal(a, b)
    moved = MLP(3, 3, hidden=hidden, batch_size=batch_size, seed=5)
    assert not torch.equal(moved.params[0], fast.params[0])


@pytest.mark.parametrize("loss", ["squared", "gaussian"])
def test_restandardising_targets_keeps_every_prediction(loss):
    # the output layer is float32: predictions are kept up to its rounding
    X, y = _data(80)
    mlp = MLP(3, 2, hidden=(8,), loss=loss, seed=0).fit(X, y, n_steps=5)
    before = mlp.predict(X)
    var = mlp.predict_variance(X) if loss == "gaussian" else None
    mlp._rescale(17.0, 0.25)
    np.testing.assert_allclose(mlp.predict(X), before, rtol=1e-5, atol=1e-5)
    if var is not None:
        np.testing.assert_allclose(mlp.predict_variance(X), var, rtol=1e-5)
    # a fit on targets of another scale starts from the same predictions (0 steps impossible:
    # one step at a tiny learning rate moves them very little)
    mlp.lr = 1e-12
    mlp.fit(X, 1000 * y + 5, n_steps=1)
    np.testing.assert_allclose(mlp.predict(X), before, rtol=1e-4, atol=1e-4)


def test_training_fits_a_nonlinear_function_better_than_ridge():
    X, y = _data(600)
    mlp = MLP(3, hidden=(32, 32), lr=1e-2, seed=0).fit(X, y, n_steps=1500)
    Xt, yt = _data(400, seed=1)
    nn_mse = np.mean((mlp.predict(Xt)[0, :, 0] - yt) ** 2)
    ridge = RidgeRegression(1, 4, lam=1e-3)
    ridge.partial_fit(np.c_[X, np.ones(600)], y)
    lin_mse = np.mean((ridge.predict(np.c_[Xt, np.ones(400)])[0][:, 0] - yt) ** 2)
    assert nn_mse < 0.25 * lin_mse, (nn_mse, lin_mse)


def test_heads_learn_their_own_targets():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (600, 2))
    heads = rng.integers(2, size=600)
    truth = np.stack([X[:, 0] ** 2, -X[:, 1]], axis=1)
    y = truth[np.arange(600), heads]
    mlp = MLP(2, 2, hidden=(32,), seed=0).fit(X, y, heads, n_steps=1500)
    err = np.mean((mlp.predict(X)[0] - truth) ** 2, axis=0)
    swapped = np.mean((mlp.predict(X)[0][:, ::-1] - truth) ** 2, axis=0)
    assert np.all(err < 0.02) and np.all(swapped > 10 * err), (err, swapped)


def test_a_member_with_zero_bootstrap_weight_does_not_move():
    X, y = _data(100)
    mlp = MLP(3, hidden=(8,), n_members=3, weight_decay=0.0, seed=0)
    before = mlp.predict(X)
    w = np.ones((100, 3))
    w[:, 1] = 0.0
    mlp.fit(X, y, weights=w, n_steps=20)
    after = mlp.predict(X)
    np.testing.assert_allclose(after[1], before[1], atol=1e-10)
    assert not np.allclose(after[0], before[0]) and not np.allclose(after[0], after[2])


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=12),
    capacity=st.one_of(st.none(), st.integers(1, 20)),
)
def test_replay_buffer_keeps_the_most_recent_rows(sizes, capacity):
    buf = ReplayBuffer(2, capacity, n_weights=1)
    seen = []
    counter = 0
    for n in sizes:
        ids = np.arange(counter, counter + n, dtype=float)
        counter += n
        seen.extend(ids)
        buf.add(np.c_[ids, -ids], ids, ids.astype(np.int64), ids[:, None])
    keep = seen if capacity is None else seen[-capacity:]
    assert buf.size == len(keep)
    assert sorted(buf.y) == sorted(keep)
    np.testing.assert_array_equal(buf.X[:, 0], buf.y)
    np.testing.assert_array_equal(buf.heads, buf.y.astype(np.int64))
    np.testing.assert_array_equal(buf.weights[:, 0], buf.y)
    clone = ReplayBuffer(2, capacity, n_weights=1)
    clone.set_state(buf.get_state())
    more = np.array([1e6])
    for b in (buf, clone):
        b.add(np.c_[more, more], more, np.zeros(1, dtype=np.int64), more[:, None])
    np.testing.assert_array_equal(buf.y, clone.y)


def test_retrain_schedule_fixed_and_geometric():
    fixed = RetrainSchedule(20, 50)
    times = [n for n in range(1, 400) if fixed.due(n) and fixed.done(n) is None]
    assert times == [20, 70, 120, 170, 220, 270, 320, 370]
    geo = RetrainSchedule(32, 50, 0.1)
    times = [n for n in range(1, 100_001) if geo.due(n) and geo.done(n) is None]
    gaps = np.diff(times)
    assert times[:3] == [32, 82, 132] and np.all(gaps >= 50)
    np.testing.assert_array_equal(gaps[gaps > 50], np.ceil(0.1 * np.array(times[:-1]))[gaps > 50])
    # O(log T) retrainings: about log(T / 500) / log(1.1) after the fixed-period phase
    assert len(times) < 10 + np.log(100_000 / 500) / np.log(1.1) + 2


def test_online_network_trains_on_schedule_and_round_trips():
    X, y = _data(200)
    cfg = {"hidden": [8], "first_train": 10, "retrain_every": 30, "train_steps": 4}
    net = OnlineNetwork(3, 1, cfg, n_members=2, bootstrap=0.5, seed=3)
    trained = [net.add(X[i : i + 5], y[i : i + 5]) for i in range(0, 100, 5)]
    assert sum(trained) == net.n_retrains == 4  # at 10, 40, 70, 100 observations
    assert net.buffer.weights.shape == (100, 2) and set(np.unique(net.buffer.weights)) == {0, 1}
    clone = OnlineNetwork(3, 1, cfg, n_members=2, bootstrap=0.5, seed=99)
    clone.set_state(net.get_state())
    for i in range(100, 200, 5):
        assert net.add(X[i : i + 5], y[i : i + 5]) == clone.add(X[i : i + 5], y[i : i + 5])
    np.testing.assert_array_equal(net.mlp.predict(X), clone.mlp.predict(X))


def test_neural_linear_posterior_equals_a_fresh_ridge_on_the_reembedded_buffer():
    X, y = _data(120)
    ids = np.arange(120) % 3
    model = NeuralLinearRegression(
        3, 3, lam=0.5, network={"hidden": [6], "first_train": 16, "retrain_every": 25}, seed=0
    )
    # retrainings at 16, 44, 72 and 100 observations; then online updates only
    retrained = [
        model.partial_fit(X[i : i + 4], y[i : i + 4], ids[i : i + 4]) for i in range(0, 120, 4)
    ]
    assert sum(retrained) == model.n_retrains == 4 and not any(retrained[-5:])
    ref = RidgeRegression(3, 6, lam=0.5)
    ref.partial_fit(model.transform(X), y, ids)
    np.testing.assert_allclose(model.theta, ref.theta, atol=1e-8)
    np.testing.assert_allclose(model.A_inv, ref.A_inv, atol=1e-8)
    np.testing.assert_array_equal(model.n_obs, [40, 40, 40])
    mean, var = model.predict(X[:5])
    assert mean.shape == var.shape == (5, 3)
    Xk = np.stack([X[:5]] * 3, axis=1)  # per-action features (n, K, d)
    assert model.transform(Xk).shape == (5, 3, 6)
