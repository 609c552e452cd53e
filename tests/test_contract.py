"""The contract every policy honours, applied automatically to every class in
``scarce.policies.POLICIES`` and both context layouts (River's `check_estimator` habit)."""

import numpy as np
import pytest

import scarce
from scarce.policies import POLICIES

K, D = 4, 3
LAYOUTS = ["shared_context", "action_features"]


def make(cls, seed=0):
    return cls(n_actions=K, n_features=D, seed=seed)


def contexts(rng, n, layout):
    return rng.normal(size=(n, D)) if layout == "shared_context" else rng.normal(size=(n, K, D))


def play(policy, rng, layout, rounds=6, n=3):
    """A fixed interaction script; returns the decisions made."""
    out = []
    for _ in range(rounds):
        X = contexts(rng, n, layout)
        d = policy.decide(X)
        policy.update(X, d.actions, rng.random(n))
        out.append(d)
    return out


params = pytest.mark.parametrize("cls", list(POLICIES.values()), ids=list(POLICIES))
layouts = pytest.mark.parametrize("layout", LAYOUTS)


@params
@layouts
def test_same_seed_same_run(cls, layout):
    a = play(make(cls, seed=11), np.random.default_rng(0), layout)
    b = play(make(cls, seed=11), np.random.default_rng(0), layout)
    for da, db in zip(a, b, strict=True):
        np.testing.assert_array_equal(da.actions, db.actions)
        np.testing.assert_array_equal(da.probabilities, db.probabilities)
        np.testing.assert_array_equal(da.scores, db.scores)


@params
@layouts
def test_save_load_gives_same_next_decisions(cls, layout, tmp_path):
    rng = np.random.default_rng(1)
    policy = make(cls, seed=5)
    play(policy, rng, layout)
    policy.save(tmp_path / "p")
    loaded = scarce.load(tmp_path / "p")
    assert type(loaded) is cls
    assert loaded.get_params() == policy.get_params()
    for _ in range(3):
        X = contexts(rng, 4, layout)
        d1, d2 = policy.decide(X), loaded.decide(X)
        np.testing.assert_array_equal(d1.actions, d2.actions)
        np.testing.assert_array_equal(d1.probabilities, d2.probabilities)
        np.testing.assert_array_equal(d1.scores, d2.scores)
        r = rng.random(4)
        policy.update(X, d1.actions, r)
        loaded.update(X, d2.actions, r)


@params
def test_save_load_before_first_use(cls, tmp_path):
    policy = make(cls, seed=3)
    policy.save(tmp_path / "fresh")
    loaded = scarce.load(tmp_path / "fresh")
    X = np.random.default_rng(0).normal(size=(2, D))
    np.testing.assert_array_equal(policy.decide(X).actions, loaded.decide(X).actions)


@params
@layouts
def test_inputs_not_mutated(cls, layout):
    rng = np.random.default_rng(2)
    policy = make(cls)
    X = contexts(rng, 5, layout)
    eligible = np.ones((5, K), dtype=bool)
    eligible[:, 0] = False
    X0, e0 = X.copy(), eligible.copy()
    d = policy.decide(X, eligible=eligible)
    actions, rewards = d.actions.copy(), rng.random(5)
    a0, r0 = actions.copy(), rewards.copy()
    policy.update(X, actions, rewards)
    policy.update(X, full_rewards=np.tile(rewards[:, None], (1, K)))
    for before, after in [(X0, X), (e0, eligible), (a0, actions), (r0, rewards)]:
        np.testing.assert_array_equal(before, after)


@params
@layouts
def test_bad_inputs_rejected_with_argument_named(cls, layout):
    rng = np.random.default_rng(3)
    policy = make(cls)
    X = contexts(rng, 3, layout)
    bad_d = rng.normal(size=(3, D + 1)) if layout == "shared_context" else rng.normal(size=(3, K, D + 1))
    with pytest.raises(ValueError, match="X"):
        policy.decide(bad_d)
    Xnan = X.copy()
    Xnan[0, ...] = np.nan
    with pytest.raises(ValueError, match="X.*NaN"):
        policy.decide(Xnan)
    with pytest.raises(ValueError, match="eligible"):
        policy.decide(X, eligible=np.zeros((3, K), dtype=bool))
    with pytest.raises(ValueError, match="eligible"):
        policy.decide(X, eligible=np.ones((2, K), dtype=bool))
    with pytest.raises(ValueError, match="actions"):
        policy.update(X, np.array([0, 1, K]), np.zeros(3))
    with pytest.raises(ValueError, match="actions"):
        policy.update(X, np.array([0.5, 1, 2]), np.zeros(3))
    with pytest.raises(ValueError, match="rewards"):
        policy.update(X, np.array([0, 1, 2]), np.zeros(2))
    with pytest.raises(ValueError, match="rewards"):
        policy.update(X, np.array([0, 1, 2]), np.array([0.0, np.inf, 0.0]))
    with pytest.raises(ValueError, match="full_rewards"):
        policy.update(X, full_rewards=np.zeros((3, K + 1)))
    with pytest.raises(TypeError, match="unexpected keyword"):
        policy.update(X, np.array([0, 1, 2]), np.zeros(3), costs=np.zeros(3))
    other = contexts(rng, 3, "action_features" if layout == "shared_context" else "shared_context")
    policy.decide(X)
    with pytest.raises(ValueError, match="X must have shape"):
        policy.decide(other)


@params
def test_bad_constructor_arguments_rejected_on_first_use(cls):
    policy = cls(n_actions=0, n_features=D)
    with pytest.raises(ValueError, match="n_actions"):
        policy.decide(np.zeros((1, D)))


@params
@layouts
def test_batched_decide_equals_one_by_one_when_deterministic(cls, layout):
    policy = make(cls)
    rng = np.random.default_rng(4)
    play(policy, rng, layout)
    if not policy.deterministic:
        pytest.skip("randomised policy")
    X = contexts(rng, 7, layout)
    batch = policy.decide(X)
    single = np.concatenate([policy.decide(X[i : i + 1]).actions for i in range(7)])
    np.testing.assert_array_equal(batch.actions, single)


@params
@layouts
def test_probabilities_consistent_and_eligibility_respected(cls, layout):
    policy = make(cls, seed=8)
    rng = np.random.default_rng(5)
    play(policy, rng, layout)
    X = contexts(rng, 6, layout)
    eligible = rng.random((6, K)) < 0.6
    eligible[np.arange(6), rng.integers(0, K, 6)] = True
    d = policy.decide(X, eligible=eligible)
    assert d.actions.dtype.kind == "i" and d.actions.shape == (6,)
    assert d.scores.shape == (6, K)
    assert np.all(eligible[np.arange(6), d.actions])
    assert np.all((d.probabilities > 0) & (d.probabilities <= 1))
    probs = policy.action_probabilities(X, eligible=eligible)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert np.all(probs[~eligible] == 0)
    # TS: quadrature (~1e-5) for independent scores, Monte Carlo for correlated ones
    tol = 1e-6 if "TS" not in cls.__name__ else (1e-4 if layout == "shared_context" else 0.06)
    np.testing.assert_allclose(probs[np.arange(6), d.actions], d.probabilities, atol=tol)


@params
def test_choice_frequencies_match_reported_probabilities(cls):
    """Deciding the same case many times (no learning) reproduces ``action_probabilities``."""
    policy = make(cls, seed=9)
    rng = np.random.default_rng(6)
    play(policy, rng, "shared_context", rounds=3)
    x = rng.normal(size=(1, D))
    expected = policy.action_probabilities(x)[0]
    X = np.repeat(x, 4000, axis=0)
    freq = np.bincount(policy.decide(X).actions, minlength=K) / 4000
    np.testing.assert_allclose(freq, expected, atol=0.03)


@params
def test_get_params_round_trip(cls):
    policy = make(cls, seed=4)
    clone = cls(**policy.get_params())
    assert clone.get_params() == policy.get_params()
    assert "n_actions" in policy.get_params() and "seed" in policy.get_params()


@params
@layouts
def test_full_information_feedback_learns_every_action(cls, layout):
    policy = make(cls)
    rng = np.random.default_rng(7)
    X = contexts(rng, 5, layout)
    policy.update(X, full_rewards=rng.random((5, K)))
    model = getattr(policy, "model_", None)
    if model is not None and layout == "shared_context":
        assert np.all(model.n_obs == 5)
