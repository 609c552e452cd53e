"""Supervised-to-bandit conversion: exact 0/1 rewards of the most recent batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.envs import Environment, SupervisedEnv


def _data(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    X = np.hstack([X, np.full((n, 1), 7.0)])  # a constant column
    y = np.array(["cat", "dog", "bird"])[np.arange(n) % 3]
    return X, y


def test_classes_are_actions_and_features_get_bias():
    X, y = _data()
    env = SupervisedEnv(X, y, name="toy", seed=0)
    assert isinstance(env, Environment)
    assert env.name == "toy"
    assert env.n_actions == 3
    assert env.n_features == X.shape[1] + 1
    assert list(env.classes) == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(env.classes[env.labels], y)


def test_standardisation_and_constant_columns():
    X, y = _data()
    env = SupervisedEnv(X, y, seed=0)
    F = env.features
    np.testing.assert_allclose(F[:, :3].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(F[:, :3].std(axis=0), 1.0)
    np.testing.assert_array_equal(F[:, 3], 0.0)  # the constant column
    np.testing.assert_array_equal(F[:, 4], 1.0)  # the bias column
    raw = SupervisedEnv(X, y, standardize=False, seed=0)
    np.testing.assert_array_equal(raw.features[:, :-1], X)
    np.testing.assert_array_equal(raw.features[:, -1], 1.0)


@given(n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_reward_is_one_exactly_for_the_true_label(n, seed):
    X, y = _data(seed=seed % 1000)
    env = SupervisedEnv(X, y, seed=seed)
    Xb = env.contexts(n)
    labels = env.last_labels
    assert Xb.shape == (n, env.n_features)
    assert labels.shape == (n,)
    expected = env.expected_rewards(Xb)
    assert expected.shape == (n, 3)
    np.testing.assert_array_equal(expected.sum(axis=1), 1.0)
    np.testing.assert_array_equal(expected.argmax(axis=1), labels)
    np.testing.assert_array_equal(env.full_outcomes(Xb), expected)
    np.testing.assert_array_equal(env.outcomes(Xb, labels).rewards, np.ones(n))
    np.testing.assert_array_equal(env.outcomes(Xb, (labels + 1) % 3).rewards, np.zeros(n))


def test_contexts_are_rows_sampled_with_replacement():
    X, y = _data(n=6)
    env = SupervisedEnv(X, y, seed=0)
    Xb = env.contexts(100)  # more than the data set: sampling is with replacement
    rows = {tuple(r) for r in env.features}
    assert all(tuple(r) in rows for r in Xb)
    # each row of the batch carries the label of the example it came from
    for row, label in zip(Xb, env.last_labels, strict=True):
        idx = np.flatnonzero((env.features == row).all(axis=1))
        assert label in env.labels[idx]


def test_scoring_needs_the_most_recent_batch():
    X, y = _data()
    env = SupervisedEnv(X, y, seed=0)
    with pytest.raises(ValueError, match="contexts"):
        env.expected_rewards(env.features[:3])
    first = env.contexts(5)
    second = env.contexts(4)
    with pytest.raises(ValueError, match="rows"):
        env.expected_rewards(first)
    with pytest.raises(ValueError, match="rows"):
        env.outcomes(second[:3], np.zeros(3, dtype=int))
    other = second.copy()
    other[0, 0] += 1.0
    with pytest.raises(ValueError, match="differs"):
        env.full_outcomes(other)
    with pytest.raises(ValueError, match="X"):
        env.expected_rewards(second[:, :-1])
    # modifying the returned batch in place does not change what the env scores
    expected = env.expected_rewards(second)
    second[:] = 0.0
    with pytest.raises(ValueError, match="differs"):
        env.expected_rewards(second)
    assert expected.shape == (4, 3)


def test_same_seed_same_contexts_and_rng_override():
    X, y = _data()
    a, b = SupervisedEnv(X, y, seed=5), SupervisedEnv(X, y, seed=5)
    np.testing.assert_array_equal(a.contexts(20), b.contexts(20))
    np.testing.assert_array_equal(a.last_labels, b.last_labels)
    c = SupervisedEnv(X, y, seed=6)
    Xa = a.contexts(20, rng=np.random.default_rng(1))
    Xc = c.contexts(20, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(Xa, Xc)
    # the own stream was not advanced by the call given an rng
    np.testing.assert_array_equal(a.contexts(20), b.contexts(20))


def test_integer_labels_are_mapped_to_consecutive_actions():
    X = np.arange(12.0).reshape(6, 2)
    y = np.array([10, 30, 10, 20, 30, 20])
    env = SupervisedEnv(X, y, seed=0)
    np.testing.assert_array_equal(env.classes, [10, 20, 30])
    np.testing.assert_array_equal(env.labels, [0, 2, 0, 1, 2, 1])


@pytest.mark.parametrize(
    "X,y,kwargs,argname",
    [
        (np.zeros(5), np.arange(5) % 2, {}, "X"),
        (np.zeros((5, 2, 1)), np.arange(5) % 2, {}, "X"),
        (np.zeros((0, 2)), np.zeros(0), {}, "X"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], {}, "X"),
        (np.array([["a", "b"], ["c", "d"]]), [0, 1], {}, "X"),
        (np.zeros((5, 2)), np.arange(4) % 2, {}, "y"),
        (np.zeros((5, 2)), (np.arange(10) % 2).reshape(5, 2), {}, "y"),
        (np.zeros((5, 2)), np.ones(5), {}, "y"),
        (np.zeros((5, 2)), np.arange(5) % 2, {"name": ""}, "name"),
        (np.zeros((5, 2)), np.arange(5) % 2, {"standardize": "no"}, "standardize"),
    ],
)
def test_bad_constructor_args_name_the_argument(X, y, kwargs, argname):
    with pytest.raises(ValueError, match=argname):
        SupervisedEnv(X, y, **kwargs)
