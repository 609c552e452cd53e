"""The speed paths give bitwise the results of the plain ones (issue 18): the validated
single-case path of ``decide``/``update``, ``RidgeRegression.add_one`` and its batched
learning, the batched kernels of ``models.linear`` and ``models.ridge``."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce import checks
from scarce.models import RidgeRegression, linear
from scarce.models.ridge import REFACTOR_ROWS
from scarce.models.row_step import rank_one_update
from scarce.policies import LinTS, LinUCB, get_policies

POLICIES = get_policies()


def _same(a, b, path="state"):
    """Nested states (dicts, lists, arrays, numbers) equal bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)
    else:
        assert a == b or (a != a and b != b), path


fast_cases = [
    pytest.param(cls, layout, id=f"{name}-{layout}")
    for name, cls in POLICIES.items()
    for layout in checks.layouts(cls)
]


@pytest.mark.parametrize(("cls", "layout"), fast_cases)
def test_single_case_path_equals_general_path(cls, layout):
    """Every registered policy, one case at a time: a float64 ``ndarray`` case (the fast
    path) and the same case as a nested list (full validation) give the same decisions,
    scores, probabilities and learned state, bit for bit."""
    params = {"n_actions": 4, "n_features": 3, "seed": 5, **cls._unit_test_params()[0]}
    fast, slow = cls(**params), cls(**params)
    rng = np.random.default_rng(11)
    for _ in range(10):
        X = np.ascontiguousarray(cls._unit_test_contexts(rng, 1, layout, params), dtype=float)
        d_fast, d_slow = fast.decide(X), slow.decide(X.tolist())
        np.testing.assert_array_equal(d_fast.actions, d_slow.actions)
        np.testing.assert_array_equal(d_fast.scores, d_slow.scores)
        np.testing.assert_array_equal(d_fast.probabilities, d_slow.probabilities)
        feedback = cls._unit_test_feedback(rng, X, d_fast, params)
        fast.update(X, **feedback)
        slow.update(X.tolist(), **feedback)
    _same(fast._get_state(), slow._get_state())


@pytest.mark.parametrize(("cls", "layout"), fast_cases)
def test_single_case_probabilities_equal_general_path(cls, layout):
    """``action_probabilities`` of one float64 ``ndarray`` case (the fast path, no checks
    repeated) equals that of the same case as a nested list (validated in full), bit for bit,
    before and after learning, for every registered policy that reports probabilities."""
    params = {"n_actions": 4, "n_features": 3, "seed": 5, **cls._unit_test_params()[0]}
    fast, slow = cls(**params), cls(**params)
    rng = np.random.default_rng(3)
    for _ in range(6):
        X = np.ascontiguousarray(cls._unit_test_contexts(rng, 1, layout, params), dtype=float)
        d_fast = fast.decide(X)
        slow.decide(X.tolist())
        try:
            slow_p = slow.action_probabilities(X.tolist())
        except NotImplementedError:
            pytest.skip(f"{cls.__name__} reports no probabilities")
        np.testing.assert_array_equal(fast.action_probabilities(X), slow_p)
        feedback = cls._unit_test_feedback(rng, X, d_fast, params)
        fast.update(X, **feedback)
        slow.update(X.tolist(), **feedback)
    _same(fast._get_state(), slow._get_state())


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 5), K=st.integers(1, 6), ties=st.booleans(), seed=st.integers(0, 10**6))
def test_ucb_one_case_probabilities_are_the_batch_row(d, K, ties, seed):
    """LinUCB's one-case one-hot is the row of the same case in a two-case call (the general
    path's greedy argmax), ties going to the lowest id (integer contexts and an untrained
    model give exact ties)."""
    rng = np.random.default_rng(seed)
    pol = LinUCB(n_actions=K, n_features=d, seed=0)
    if not ties:
        X = rng.normal(size=(8, d))
        pol.update(X, rng.integers(0, K, 8), rng.normal(size=8))
    x = rng.integers(-2, 3, size=(1, d)).astype(float) if ties else rng.normal(size=(1, d))
    both = np.vstack([x, rng.normal(size=(1, d))])
    one = pol.action_probabilities(x)
    np.testing.assert_array_equal(one, pol.action_probabilities(both)[:1])
    assert one.sum() == 1.0 and one[0, pol.decide(x).actions[0]] == 1.0


@pytest.mark.parametrize("cls", [LinUCB, LinTS])
def test_single_case_update_takes_every_plain_form(cls):
    """Actions and rewards as ints, floats, one-element lists and arrays all learn the same."""
    forms = [(2, 0.5), ([2], [0.5]), (np.array([2]), np.array([0.5])), (np.int64(2), 1 / 2)]
    X = np.array([[0.3, -1.0, 2.0]])
    states = []
    for action, reward in forms:
        p = cls(n_actions=4, n_features=3, seed=0)
        p.decide(X)
        p.update(X, action, reward)
        states.append(p._get_state())
    for state in states[1:]:
        _same(states[0], state)


@pytest.mark.parametrize(
    ("X", "kwargs", "match"),
    [
        (np.array([[np.nan, 0.0, 1.0]]), {}, "X contains NaN or inf"),
        (np.array([[np.inf, 0.0, 1.0]]), {}, "X contains NaN or inf"),
        (np.array([[0.0, 0.0, 1.0]]), {"actions": [4], "rewards": [1.0]}, r"actions must be in"),
        (np.array([[0.0, 0.0, 1.0]]), {"actions": [-1], "rewards": [1.0]}, r"actions must be in"),
        (np.array([[0.0, 0.0, 1.0]]), {"actions": [1], "rewards": [np.nan]}, "rewards contains"),
        (np.array([[0.0, 0.0, 1.0]]), {"actions": [True], "rewards": [1.0]}, "integer action"),
        (np.array([[0.0, 0.0, 1.0]]), {"actions": [1, 2], "rewards": [1.0]}, r"shape \(1,\)"),
        (np.array([[0.0, 1.0]]), {"actions": [1], "rewards": [1.0]}, r"shape \(n, 3\)"),
    ],
)
def test_single_case_inputs_are_still_validated(X, kwargs, match):
    """Bad single cases reach the full checks and their messages (decide and update)."""
    p = LinUCB(n_actions=4, n_features=3, seed=0)
    p.decide(np.zeros((1, 3)))  # initialised: the fast path is armed
    with pytest.raises(ValueError, match=match):
        if kwargs:
            p.update(X, **kwargs)
        else:
            p.decide(X)


def test_reward_bounds_checked_on_the_single_case_path():
    cls = POLICIES["GLMUCB"]
    p = cls(n_actions=3, n_features=2, seed=0)
    X = np.array([[0.5, -0.5]])
    p.decide(X)
    with pytest.raises(ValueError, match="rewards must be <= 1"):
        p.update(X, [0], [1.5])


def test_finite_case_with_overflowing_norm_takes_the_general_path():
    """``x.x`` overflows for huge finite contexts: the case is validated in full, not refused."""
    a, b = LinUCB(n_actions=3, n_features=2, seed=0), LinUCB(n_actions=3, n_features=2, seed=0)
    X = np.array([[1e200, 0.0]])
    a.decide(np.zeros((1, 2)))
    b.decide(np.zeros((1, 2)))
    np.testing.assert_array_equal(a.decide(X).actions, b.decide(X.tolist()).actions)


def test_thompson_probabilities_are_those_of_decision_time():
    """LinTS keeps the decision's means and spreads (no copy of the posterior): reading the
    probabilities after an update gives what reading them at once gives."""
    X = np.random.default_rng(0).normal(size=(5, 3))
    early, late = LinTS(n_actions=4, n_features=3, seed=1), LinTS(n_actions=4, n_features=3, seed=1)
    for p in (early, late):
        p.update(X, [0, 1, 2, 3, 0], [1.0, 0.0, 0.5, 0.2, 0.9])
    now = early.decide(X).probabilities
    dec = late.decide(X)
    late.update(X, dec.actions, np.ones(5))
    np.testing.assert_array_equal(dec.probabilities, now)


# ---------------------------------------------------------------------------------- ridge
@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, 6),
    M=st.integers(1, 5),
    T=st.sampled_from([None, 2]),
    seed=st.integers(0, 2**16),
)
def test_rank_one_update_batched_equals_separate_and_brute_force(d, M, T, seed):
    """The batched kernel is bitwise the one-model kernel on each slice, and both equal the
    direct ridge solution."""
    rng = np.random.default_rng(seed)
    tshape = () if T is None else (T,)
    batched = RidgeRegression(M, d, n_targets=T)
    single = [RidgeRegression(1, d, n_targets=T) for _ in range(M)]
    rows = []
    for _ in range(5):
        x, y = rng.normal(size=(M, d)), rng.normal(size=(M, *tshape))
        m = batched
        rank_one_update(m.A, m.A_inv, m.b, m.theta, x, y, index=np.arange(M))
        for k, s in enumerate(single):
            rank_one_update(s.A[0], s.A_inv[0], s.b[0], s.theta[0], x[k], y[k])
        rows.append((x, y))
    for k, s in enumerate(single):
        for name in ("A", "A_inv", "b", "theta"):
            np.testing.assert_array_equal(getattr(batched, name)[k], getattr(s, name)[0])
    Xk = np.stack([x for x, _ in rows], axis=1)  # (M, 5, d)
    Yk = np.stack([y for _, y in rows], axis=1)
    for k in range(M):
        A = np.eye(d) + Xk[k].T @ Xk[k]
        np.testing.assert_allclose(batched.A_inv[k], np.linalg.inv(A), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(
            batched.theta[k], np.linalg.solve(A, Xk[k].T @ Yk[k]), rtol=1e-8, atol=1e-10
        )


@pytest.mark.parametrize("n_targets", [None, 3])
@pytest.mark.parametrize("resync_every", [3, 2000])
def test_add_one_equals_partial_fit(resync_every, n_targets):
    rng = np.random.default_rng(3)
    a = RidgeRegression(4, 3, resync_every=resync_every, n_targets=n_targets)
    b = RidgeRegression(4, 3, resync_every=resync_every, n_targets=n_targets)
    for _ in range(40):
        x, m = rng.normal(size=3), int(rng.integers(4))
        y = float(rng.normal()) if n_targets is None else rng.normal(size=n_targets)
        a.add_one(m, x, y)
        b.partial_fit(x[None], np.array([y]), np.array([m]))
    for name in ("A", "A_inv", "b", "theta", "n_obs", "_since_resync"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("n", [2, 5, 3 * REFACTOR_ROWS])
def test_stacked_models_learn_as_each_alone(n):
    """``RidgeRegression.stack``: one partial_fit over several sets' rows is each set's own
    partial_fit, bit for bit (rank-1 rounds and refactorisations alike)."""
    rng = np.random.default_rng(n)
    sets = [RidgeRegression(3, 4, lam=1.0 + r, resync_every=5 + r) for r in range(3)]
    alone = [RidgeRegression(3, 4, lam=1.0 + r, resync_every=5 + r) for r in range(3)]
    for _ in range(6):
        X, y, ids = (
            rng.normal(size=(3, n, 4)),
            rng.normal(size=(3, n)),
            rng.integers(3, size=(3, n)),
        )
        stack = RidgeRegression.stack(sets)
        stack.partial_fit(
            X.reshape(-1, 4), y.reshape(-1), (ids + 3 * np.arange(3)[:, None]).ravel()
        )
        stack.unstack(sets)
        for r, m in enumerate(alone):
            m.partial_fit(X[r], y[r], ids[r])
    for s, m in zip(sets, alone, strict=True):
        for name in ("A", "A_inv", "b", "theta", "n_obs", "_since_resync"):
            np.testing.assert_array_equal(getattr(s, name), getattr(m, name))


def test_stack_rejects_mismatched_sets():
    with pytest.raises(ValueError, match="cannot be stacked"):
        RidgeRegression.stack([RidgeRegression(2, 3), RidgeRegression(3, 3)])
    with pytest.raises(ValueError, match="cannot be stacked"):
        RidgeRegression.stack([RidgeRegression(2, 3), RidgeRegression(2, 3, window=4)])


# ---------------------------------------------------------------------------------- linear
def _covariances(rng, K, d):
    M = rng.normal(size=(K, d, d + 2))
    return np.linalg.inv(M @ M.swapaxes(1, 2) + np.eye(d))


@pytest.mark.parametrize(("n", "d"), [(1, 4), (7, 4), (63, 5), (64, 5), (300, 3), (100, 70)])
def test_predict_variance_paths_equal_brute_force(n, d):
    """One case, stacked GEMM (small batches, d > 64) and quadratic features (>= 64 cases)."""
    rng = np.random.default_rng(n + d)
    K = 6
    cov, X = _covariances(rng, K, d), rng.normal(size=(n, d))
    expected = np.einsum("nd,kde,ne->nk", X, cov, X)
    np.testing.assert_allclose(linear.predict_variance(X, cov), expected, rtol=1e-10)


@pytest.mark.parametrize(
    ("n", "features"), [(1, False), (9, False), (80, False), (1, True), (6, True)]
)
def test_batched_kernels_equal_each_slice_bitwise(n, features):
    rng = np.random.default_rng(n)
    S, K, d = 3, 5, 4
    if features:
        X, cov = (
            rng.normal(size=(S, n, K, d)),
            np.stack([_covariances(rng, 1, d) for _ in range(S)]),
        )
        theta = rng.normal(size=(S, 1, d))
    else:
        X, cov = rng.normal(size=(S, n, d)), np.stack([_covariances(rng, K, d) for _ in range(S)])
        theta = rng.normal(size=(S, K, d))
    var = linear.predict_variance(X, cov)
    mean = linear.predict_mean(X, theta, batch_axes=1)
    for s in range(S):
        np.testing.assert_array_equal(var[s], linear.predict_variance(X[s], cov[s]))
        np.testing.assert_array_equal(mean[s], linear.predict_mean(X[s], theta[s]))
    std = np.sqrt(np.maximum(var, 0.0))
    acts = rng.integers(K, size=(S, n))
    probs = linear.gaussian_argmax_probability_of(mean, std, acts)
    for s in range(S):
        np.testing.assert_array_equal(
            probs[s], linear.gaussian_argmax_probability_of(mean[s], std[s], acts[s])
        )


class _ScaledRewards(LinUCB):
    """Changes how feedback becomes rows (and builds its model without ModelPolicy's
    ``_init_state``): the single-case path must still learn what ``_learn`` learns."""

    def _init_state(self):
        self.model_ = self._make_model(self.n_actions)

    def _training_rows(self, X, actions, rewards, full_rewards):
        feats, targets, ids = super()._training_rows(X, actions, rewards, full_rewards)
        return feats, 2.0 * targets, ids


def test_subclass_with_its_own_rows_learns_through_learn():
    fast = _ScaledRewards(n_actions=3, n_features=2, seed=0)
    slow = _ScaledRewards(n_actions=3, n_features=2, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        X = rng.normal(size=(1, 2))
        a = int(fast.decide(X).actions[0])
        assert a == int(slow.decide(X.tolist()).actions[0])
        fast.update(X, [a], [0.5])
        slow.update(X.tolist(), [a], [0.5])
    _same(fast._get_state(), slow._get_state())
    plain = LinUCB(n_actions=3, n_features=2, seed=0)
    plain.update(np.ones((1, 2)), [0], [0.5])
    fast.update(np.ones((1, 2)), [0], [0.5])
    # the doubled target reached the model (b gains 2 * 0.5 * x, not 0.5 * x)
    np.testing.assert_array_equal(fast.model_.b[0] - slow.model_.b[0], 2 * plain.model_.b[0])


# ------------------------------------------------------------------ online LinUCB / LinTS kernels
def _random_state(rng, K, d, indefinite):
    """Means ``(K, d)`` and covariances ``(K, d, d)``: positive definite, or (``indefinite``)
    with some negative quadratic forms, to exercise the clipping of the variance."""
    G = rng.normal(size=(K, d, d))
    cov = G @ np.swapaxes(G, 1, 2) / d + 0.1 * np.eye(d)
    if indefinite:
        cov -= 2.0 * np.eye(d)
    return rng.normal(size=(K, d)), cov


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 30),
    K=st.integers(1, 12),
    indefinite=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_one_case_widths_equal_predict_bitwise(d, K, indefinite, seed):
    """``linear.one_case_widths`` is ``predict`` and a square root of the clipped variance,
    bit for bit."""
    rng = np.random.default_rng(seed)
    theta, cov = _random_state(rng, K, d, indefinite)
    X = rng.normal(size=(1, d))
    mean, std = linear.one_case_widths(X, theta, cov)
    ref_mean, ref_var = linear.predict(X, theta, cov)
    np.testing.assert_array_equal(mean, ref_mean)
    np.testing.assert_array_equal(std[None, :], np.sqrt(ref_var))
    assert std.shape == (K,) and mean.shape == (1, K)


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, 12),
    K=st.integers(1, 8),
    alpha=st.sampled_from([0.0, 0.5, 1, 2.5]),
    seed=st.integers(0, 2**16),
)
def test_linucb_single_case_scores_equal_the_general_formula(d, K, alpha, seed):
    """LinUCB's single-case scores are ``mean + alpha * sqrt(max(var, 0))`` from
    ``linear.predict``, bit for bit, after learning a random sequence."""
    rng = np.random.default_rng(seed)
    p = LinUCB(n_actions=K, n_features=d, alpha=alpha, seed=0)
    for _ in range(6):
        X = rng.normal(size=(1, d))
        dec = p.decide(X)
        mean, var = linear.predict(X, p.model_.theta, p.model_.A_inv)
        np.testing.assert_array_equal(dec.scores, mean + alpha * np.sqrt(var))
        np.testing.assert_array_equal(dec.actions, np.argmax(dec.scores, axis=1))
        p.update(X, dec.actions, rng.normal(size=1))


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 12), K=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_lints_single_case_path_equals_masked_path(d, K, seed):
    """LinTS on one case without a mask (the single-case branch) and with an all-True mask
    (the general branch) draw the same normals and give the same actions, scores,
    probabilities and learned state, bit for bit."""
    rng = np.random.default_rng(seed)
    fast, slow = (LinTS(n_actions=K, n_features=d, v=0.7, seed=3) for _ in range(2))
    everyone = np.ones(K, dtype=bool)
    for _ in range(6):
        X = rng.normal(size=(1, d))
        a, b = fast.decide(X), slow.decide(X, eligible=everyone)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        reward = rng.normal(size=1)
        fast.update(X, a.actions, reward)
        slow.update(X.tolist(), b.actions.tolist(), reward.tolist())
    _same(fast._get_state(), slow._get_state())


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_add_one_row_kernel_equals_rank_one_update(d, seed):
    """``add_one``'s kernel (outer products into a scratch matrix) is ``rank_one_update``
    bit for bit, over a sequence of rows."""
    rng = np.random.default_rng(seed)
    fast, ref = RidgeRegression(2, d, lam=0.5), RidgeRegression(2, d, lam=0.5)
    for _ in range(5):
        x, y, m = rng.normal(size=d), float(rng.normal()), int(rng.integers(2))
        fast.add_one(m, x, y)
        rank_one_update(ref.A[m], ref.A_inv[m], ref.b[m], ref.theta[m], x, y)
    for name in ("A", "A_inv", "b", "theta"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name))


@settings(max_examples=30, deadline=None)
@given(
    d=st.integers(1, 8),
    M=st.integers(1, 4),
    resync_every=st.sampled_from([5, 40, 2000]),
    ops=st.lists(st.sampled_from(["row", "row", "row", "row", "batch", "read"]), max_size=120),
    seed=st.integers(0, 2**16),
)
def test_deferred_outer_products_keep_a_bitwise(d, M, resync_every, ops, seed):
    """``add_one`` defers ``A += x x^T`` (in buffers of ``DEFERRED_ROWS`` rows per model);
    mixed with batches, resyncs and reads of the state, every array stays bitwise what
    row-by-row ``partial_fit`` gives."""
    rng = np.random.default_rng(seed)
    fast = RidgeRegression(M, d, resync_every=resync_every)
    ref = RidgeRegression(M, d, resync_every=resync_every)
    for op in ops:
        if op == "row":
            x, y, m = rng.normal(size=d), float(rng.normal()), int(rng.integers(M))
            fast.add_one(m, x, y)
            ref.partial_fit(x[None], np.array([y]), np.array([m]))
        elif op == "batch":
            n = int(rng.integers(2, 3 * REFACTOR_ROWS))
            X, y, ids = rng.normal(size=(n, d)), rng.normal(size=n), rng.integers(M, size=n)
            fast.partial_fit(X, y, ids)
            ref.partial_fit(X, y, ids)
        else:
            _same(fast.get_state(), ref.get_state())
    _same(fast.get_state(), ref.get_state())


def test_deferred_rows_are_dropped_when_a_is_replaced():
    """Setting ``A`` (``set_state``) replaces the rows still waiting, as a loaded state must."""
    rng = np.random.default_rng(0)
    saved = RidgeRegression(2, 3)
    state = {k: np.copy(v) for k, v in saved.get_state().items()}
    m = RidgeRegression(2, 3)
    for _ in range(5):
        m.add_one(1, rng.normal(size=3), 1.0)
    m.set_state(state)
    _same(m.get_state(), saved.get_state())


# ------------------------------------------- the products A^{-1} x kept from decide to update
@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 64),
    M=st.integers(1, 12),
    strided=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_one_case_products_are_each_models_own_product(d, M, strided, seed):
    """Each row of ``one_case_products(x)`` is bitwise ``A_inv[m].dot(x)``: what ``add_one``
    would compute, so reusing it changes nothing."""
    rng = np.random.default_rng(seed)
    m = RidgeRegression(M, d)
    m.A_inv = _covariances(rng, M, d)
    x = rng.normal(size=(d, 2))[:, 0] if strided else rng.normal(size=d)
    Z = m.one_case_products(x)
    for k in range(M):
        np.testing.assert_array_equal(Z[k], m.A_inv[k].dot(x))


@settings(max_examples=30, deadline=None)
@given(
    d=st.integers(1, 24),
    M=st.integers(1, 6),
    resync_every=st.sampled_from([3, 7, 2000]),
    ops=st.lists(
        st.sampled_from(["pair", "pair", "pair", "other", "mutate", "batch", "read", "twice"]),
        max_size=60,
    ),
    seed=st.integers(0, 2**16),
)
def test_kept_products_learn_as_partial_fit(d, M, resync_every, ops, seed):
    """``one_case_products`` then ``add_one`` of the same row is row-by-row ``partial_fit``
    bit for bit, and the kept products are never used for another row or a changed model:
    a different row, the row changed in place, another model update, a batch, a read of the
    state or a second product in between."""
    rng = np.random.default_rng(seed)
    fast = RidgeRegression(M, d, resync_every=resync_every)
    ref = RidgeRegression(M, d, resync_every=resync_every)

    def learn(x, y, k):
        fast.add_one(k, x, y)
        ref.partial_fit(x[None], np.array([y]), np.array([k]))

    for op in ops:
        x, y, k = rng.normal(size=d), float(rng.normal()), int(rng.integers(M))
        fast.one_case_products(x)
        if op == "other":  # another row learned between the products and their row
            learn(rng.normal(size=d), float(rng.normal()), int(rng.integers(M)))
        elif op == "mutate":  # the row changed in place after its products
            x[0] += 1.0
        elif op == "batch":
            n = int(rng.integers(2, 3 * REFACTOR_ROWS))
            X, yb, ids = rng.normal(size=(n, d)), rng.normal(size=n), rng.integers(M, size=n)
            fast.partial_fit(X, yb, ids)
            ref.partial_fit(X, yb, ids)
        elif op == "read":
            _same(fast.get_state(), ref.get_state())
        elif op == "twice":  # the products of another row replace these
            fast.one_case_products(rng.normal(size=d))
        learn(x, y, k)
    _same(fast.get_state(), ref.get_state())


def test_kept_products_follow_a_replaced_state():
    """``set_state`` after the products: the update uses the loaded posterior."""
    rng = np.random.default_rng(1)
    source = RidgeRegression(3, 4)
    for _ in range(20):
        source.add_one(int(rng.integers(3)), rng.normal(size=4), float(rng.normal()))
    state = {k: np.copy(v) for k, v in source.get_state().items()}
    fast, ref = RidgeRegression(3, 4), RidgeRegression(3, 4)
    ref.set_state(state)
    x = rng.normal(size=4)
    fast.one_case_products(x)
    fast.set_state(state)
    fast.add_one(1, x, 0.5)
    ref.partial_fit(x[None], np.array([0.5]), np.array([1]))
    _same(fast.get_state(), ref.get_state())


def _reference_linucb(rng, K, d, alpha, rounds, resync_every, strided):
    """LinUCB written from the documented formula on the general paths: scores from
    ``linear.predict``, learning by ``RidgeRegression.partial_fit`` (rank_one_update)."""
    ref = RidgeRegression(K, d, resync_every=resync_every)
    cases = []
    for _ in range(rounds):
        X = rng.normal(size=(1, 2 * d))[:, ::2] if strided else rng.normal(size=(1, d))
        mean, var = linear.predict(X, ref.theta, ref.A_inv)
        scores = mean + alpha * np.sqrt(var)
        a = int(np.argmax(scores[0]))
        r = float(rng.normal())
        ref.partial_fit(X, np.array([r]), np.array([a]))
        cases.append((X, scores, a, r))
    return ref, cases


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, 24),
    K=st.integers(1, 12),
    alpha=st.sampled_from([0.0, 1.0, 1, 2.5]),
    resync_every=st.sampled_from([4, 2000]),
    strided=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_online_linucb_equals_the_reference_loop(d, K, alpha, resync_every, strided, seed):
    """One case at a time (decide, then update with the same context: the kept products,
    the one-row step, the deferred precisions, resyncs), LinUCB's scores, actions and
    learned model equal the general-path reference, bit for bit."""
    ref, cases = _reference_linucb(
        np.random.default_rng(seed), K, d, alpha, 40, resync_every, strided
    )
    p = LinUCB(n_actions=K, n_features=d, alpha=alpha, seed=0)
    p.decide(np.zeros((1, d)))
    p.model_.resync_every = resync_every
    for X, scores, a, r in cases:
        dec = p.decide(X)
        np.testing.assert_array_equal(dec.scores, scores)
        assert int(dec.actions[0]) == a
        np.testing.assert_array_equal(dec.probabilities, [1.0])
        p.update(X, dec.actions, [r])
    _same(p.model_.get_state(), ref.get_state())
    assert p.n_updates_ == len(cases)


@settings(max_examples=20, deadline=None)
@given(
    d=st.integers(1, 24),
    K=st.integers(1, 12),
    resync_every=st.sampled_from([4, 2000]),
    seed=st.integers(0, 2**16),
)
def test_online_lints_equals_the_masked_general_path(d, K, resync_every, seed):
    """LinTS one case at a time (the kept products and the one-row step) against the
    general branch (an all-True mask, list feedback: no products kept, partial_fit), over
    enough rounds to resync: the same draws, scores, probabilities and state, bit for bit."""
    rng = np.random.default_rng(seed)
    fast, slow = (LinTS(n_actions=K, n_features=d, v=0.3, seed=4) for _ in range(2))
    for p in (fast, slow):
        p.decide(np.zeros((1, d)))
        p.model_.resync_every = resync_every
    everyone = np.ones(K, dtype=bool)
    for _ in range(30):
        X = rng.normal(size=(1, d))
        a, b = fast.decide(X), slow.decide(X, eligible=everyone)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.scores, b.scores)
        reward = float(rng.normal())
        fast.update(X, a.actions, [reward])
        slow.update(X.tolist(), b.actions.tolist(), [reward])
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    _same(fast._get_state(), slow._get_state())


def test_update_after_the_context_changed_in_place_learns_the_new_values():
    """The products kept by decide belong to the values decided on: a context array
    overwritten before its update is learned as it is then."""
    rng = np.random.default_rng(2)
    p, q = LinUCB(n_actions=3, n_features=4, seed=0), LinUCB(n_actions=3, n_features=4, seed=0)
    for _ in range(10):
        X = rng.normal(size=(1, 4))
        a = p.decide(X).actions
        q.decide(X.copy())
        X[0, 1] = 7.0
        p.update(X, a, [1.0])
        q.update(X.tolist(), a.tolist(), [1.0])
    _same(p._get_state(), q._get_state())


def test_deferred_outer_products_of_one_feature_add_in_order():
    """With one feature the waiting products are a 1-D reduction (NumPy would sum it
    pairwise): they still go into ``A`` in row order, as ``partial_fit`` adds them."""
    rng = np.random.default_rng(0)
    fast, ref = RidgeRegression(1, 1), RidgeRegression(1, 1)
    for _ in range(40):
        x, y = rng.normal(size=1), float(rng.normal())
        fast.add_one(0, x, y)
        ref.partial_fit(x[None], np.array([y]), np.array([0]))
    _same(fast.get_state(), ref.get_state())
