"""Delay kernels and the pending-decision buffer: exact checks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from scarce.feedback import DelayKernel, PendingBuffer, kernel_family
from scarce.policies import LinUCB


def test_beta_kernel_matches_cdf_differences():
    k = DelayKernel.beta(2.0, 5.0, 8)
    expected = [stats.beta.cdf((t + 1) / 8, 2, 5) - stats.beta.cdf(t / 8, 2, 5) for t in range(8)]
    np.testing.assert_allclose(k.weights, expected, rtol=1e-12)
    assert k.weights.sum() == pytest.approx(1.0)
    assert kernel_family("type2", 8).support == 24
    assert kernel_family("type1", 8).support == 8
    assert kernel_family("instant").weights.tolist() == [1.0]


def test_kernel_shapes():
    early = DelayKernel.beta(0.5, 3.0, 10)
    late = DelayKernel.beta(3.0, 0.5, 10)
    assert early.weights[0] == early.weights.max() and late.weights[-1] == late.weights.max()
    g = DelayKernel.geometric(0.5, 3)
    np.testing.assert_allclose(g.weights, np.array([8, 4, 2, 1]) / 15)
    f = DelayKernel.fixed(2)
    assert f.weights.tolist() == [0, 0, 1.0]


@given(st.floats(0.2, 5), st.floats(0.2, 5), st.integers(1, 30), st.integers(-3, 40))
def test_completed_mass_is_the_cdf(a, b, D, elapsed):
    k = DelayKernel.beta(a, b, D)
    m = float(k.completed_mass(elapsed))
    assert m == pytest.approx(k.weights[: max(elapsed + 1, 0)].sum(), abs=1e-12)
    assert 0.0 <= m <= 1.0
    assert k.at(np.array([elapsed])).item() == (k.weights[elapsed] if 0 <= elapsed < D else 0.0)


def test_kernel_sampling_frequencies():
    k = DelayKernel.beta(2.0, 2.0, 5)
    lags = k.sample(20000, np.random.default_rng(0))
    freq = np.bincount(lags, minlength=5) / lags.size
    np.testing.assert_allclose(freq, k.weights, atol=0.015)


def test_kernel_validation():
    with pytest.raises(ValueError, match="sum to 1"):
        DelayKernel([0.5, 0.2])
    with pytest.raises(ValueError, match="non-negative"):
        DelayKernel([1.5, -0.5])
    with pytest.raises(ValueError, match="alpha"):
        DelayKernel.beta(0.0, 1.0, 4)
    with pytest.raises(ValueError, match="kernel family"):
        kernel_family("type3")


def test_buffer_joins_out_of_order_pieces():
    buf = PendingBuffer()
    X = np.arange(6.0).reshape(3, 2)
    ids = buf.register(X, [0, 1, 2], round=0, expected_pieces=[2, 1, 3])
    np.testing.assert_array_equal(ids, [0, 1, 2])
    buf.add([2, 0], [0.5, 1.0])
    assert len(buf.pop_due(0)) == 0
    buf.add([2, 1, 0, 2], [0.25, 7.0, 2.0, 0.25])
    ready = buf.pop_due(1)
    np.testing.assert_array_equal(ready.ids, [0, 1, 2])
    np.testing.assert_array_equal(ready.rewards, [3.0, 7.0, 1.0])
    np.testing.assert_array_equal(ready.X, X)
    assert ready.complete.all() and len(buf) == 0


def test_buffer_deadline_final_and_late_pieces():
    buf = PendingBuffer()
    buf.register(np.zeros((2, 1)), [0, 0], round=3, expected_pieces=None, deadline=[5, 9])
    buf.add([1], [4.0], final=True)
    buf.add([0], [1.0])
    r = buf.pop_due(4)
    assert r.ids.tolist() == [1] and r.rewards.tolist() == [4.0]
    r = buf.pop_due(5)
    assert r.ids.tolist() == [0] and not r.complete[0] and r.rounds.tolist() == [3]
    with pytest.raises(ValueError, match="already handed over"):
        buf.add([0], [1.0])
    with pytest.raises(ValueError, match="never registered"):
        buf.add([7], [1.0])
    drop = PendingBuffer(late="drop")
    drop.add([3], [1.0])
    assert drop.n_dropped == 1


def test_buffer_feeds_a_policy_like_direct_updates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    a = rng.integers(2, size=20)
    y = rng.normal(size=20)
    direct = LinUCB(n_actions=2, n_features=3, seed=0)
    direct.update(X, a, y)
    delayed = LinUCB(n_actions=2, n_features=3, seed=0)
    buf = PendingBuffer()
    ids = buf.register(X, a, round=0, expected_pieces=2)
    perm = rng.permutation(40)
    pid = np.concatenate([ids, ids])[perm]
    vals = np.concatenate([0.25 * y, 0.75 * y])[perm]
    buf.add(pid[:30], vals[:30])
    buf.add(pid[30:], vals[30:])
    assert buf.feed(delayed, round=1) == 20
    np.testing.assert_allclose(delayed.model_.theta, direct.model_.theta, atol=1e-12)


@given(st.integers(0, 10_000))
def test_buffer_sums_any_split_in_any_order(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    totals = rng.normal(size=n)
    pieces = rng.integers(1, 5, n)
    buf = PendingBuffer()
    ids = buf.register(
        np.zeros((n, 1)), np.zeros(n, dtype=np.int64), round=0, expected_pieces=pieces
    )
    pid, vals = [], []
    for i, (t, k) in enumerate(zip(totals, pieces, strict=True)):
        w = rng.dirichlet(np.ones(k))
        pid += [ids[i]] * k
        vals += list(t * w)
    order = rng.permutation(len(pid))
    cut = int(rng.integers(0, len(pid) + 1))
    buf.add(np.array(pid)[order[:cut]], np.array(vals)[order[:cut]])
    first = buf.pop_due(0)
    buf.add(np.array(pid)[order[cut:]], np.array(vals)[order[cut:]])
    second = buf.pop_due(1)
    got = np.zeros(n)
    got[first.ids] = first.rewards
    got[second.ids] = second.rewards
    np.testing.assert_allclose(got, totals, atol=1e-12)
    assert len(first) + len(second) == n and len(buf) == 0
    assert np.all(np.diff(second.ids) > 0)


def test_buffer_save_load_round_trip(tmp_path):
    from scarce.core import persist

    buf = PendingBuffer()
    ids = buf.register(
        np.arange(6.0).reshape(3, 2),
        [0, 1, 2],
        round=4,
        expected_pieces=2,
        deadline=[9, 10, 11],
        group=np.array([1, 0, 1]),
    )
    buf.add(ids[[0, 2]], [1.5, -2.0])
    buf.save(tmp_path / "buf")
    back = persist.load(tmp_path / "buf")
    assert back.next_id == 3 and len(back) == 3
    for b in (buf, back):
        b.add(ids, [1.0, 2.0, 3.0])
    a, b = buf.pop_due(5), back.pop_due(5)
    for f in ("ids", "X", "actions", "rewards", "rounds", "complete"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(a.extra["group"], b.extra["group"])
    empty = PendingBuffer(late="drop")
    empty.save(tmp_path / "empty")
    assert len(persist.load(tmp_path / "empty")) == 0


def test_delayed_policy_wrapper_learns_when_pieces_arrive():
    from scarce.feedback import DelayedPolicy

    rng = np.random.default_rng(1)
    X = rng.normal(size=(8, 3))
    y = rng.normal(size=8)
    wrapped = DelayedPolicy(LinUCB(n_actions=2, n_features=3, seed=0), expected_pieces=2)
    decision = wrapped.decide(X, round=0)
    ids = decision.info["decision_id"]
    direct = LinUCB(n_actions=2, n_features=3, seed=0)
    assert np.array_equal(direct.decide(X).actions, decision.actions)
    wrapped.report(ids[::-1], 0.5 * y[::-1])
    assert wrapped.tick(0) == 0  # one piece of two each
    wrapped.report(ids[:5], 0.5 * y[:5])
    assert wrapped.tick(1) == 5
    direct.update(X[:5], decision.actions[:5], y[:5])
    np.testing.assert_allclose(wrapped.policy.model_.theta, direct.model_.theta, atol=1e-12)
    # a deadline hands over incomplete decisions
    timed = DelayedPolicy(
        LinUCB(n_actions=2, n_features=3, seed=0), expected_pieces=None, max_delay=3
    )
    ids2 = timed.decide(X, round=0).info["decision_id"]
    timed.report(ids2, y)
    assert timed.tick(2) == 0 and timed.tick(3) == 8


def test_kernel_specs_round_trip_and_validate():
    from scarce.feedback import kernel_from_spec, kernel_to_spec, kernels_from_spec

    for name in ("instant", "type1", "type2"):
        k = kernel_from_spec(name, 6)
        assert kernel_to_spec(k, 6) == name and k == kernel_family(name, 6)
    custom = DelayKernel([0.25, 0.75])
    assert kernel_to_spec(custom) == [0.25, 0.75]
    assert kernel_from_spec([0.25, 0.75]) == custom
    assert (
        kernel_to_spec(kernel_family("type1", 6), 8) == kernel_family("type1", 6).weights.tolist()
    )
    assert kernels_from_spec(None, 2) == [DelayKernel.instant()] * 2
    assert kernels_from_spec("type2", 3, 4) == [kernel_family("type2", 4)] * 3
    assert kernels_from_spec([0.5, 0.5], 2) == [DelayKernel([0.5, 0.5])] * 2
    mixed = kernels_from_spec(["type1", [1.0]], 2)
    assert mixed[0] == kernel_family("type1", 8) and mixed[1] == DelayKernel.instant()
    with pytest.raises(ValueError, match="one spec or a list of 2"):
        kernels_from_spec(["type1", "type2", "instant"], 2)
    with pytest.raises(ValueError, match="kernel family must be one of"):
        kernel_from_spec("type3")
