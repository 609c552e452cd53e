"""The compiled backend (``backend="numba"``, :mod:`scarce.models.compiled`): its kernels
against brute force, its ridge step against the NumPy step, and LinUCB / LinTS with it
against the NumPy backend on seeded problems (same decisions, state equal to rounding)."""

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scarce.models
from scarce.checks import check_policy
from scarce.core.policy import load
from scarce.envs import LinearGaussianEnv
from scarce.models import compiled
from scarce.models.ridge import RidgeRegression
from scarce.policies import LinTS, LinUCB
from scarce.sim import run
from scarce.sim.replicated import run_replicated

pytest.importorskip("numba")


def _state(rng, K, d, rows):
    """A ridge model set of ``K`` models in ``d`` features after ``rows`` random rows each
    (through the NumPy backend), scaled so entries span several magnitudes."""
    model = RidgeRegression(K, d, lam=0.5)
    for _ in range(rows):
        for k in range(K):
            model.add_one(k, rng.normal(size=d) * rng.uniform(0.1, 3.0), float(rng.normal()))
    return model


def _brute(model, x):
    """``(means, variances)`` of context ``x`` under every model, by NumPy ``einsum``."""
    return model.theta @ x, np.einsum("i,kij,j->k", x, model.A_inv, x)


@given(
    seed=st.integers(0, 2**32 - 1),
    K=st.integers(1, 12),
    d=st.integers(1, 24),
    rows=st.integers(0, 6),
    width=st.floats(0.0, 10.0),
)
@settings(max_examples=60, deadline=None)
def test_kernels_score_as_brute_force(seed, K, d, rows, width):
    """UCB and Thompson scores of one context equal the formulas, evaluated by NumPy, to
    rounding; the returned action is the first largest score."""
    rng = np.random.default_rng(seed)
    model = _state(rng, K, d, rows)
    model.backend, model._kernels = "numba", compiled.kernels()
    X = rng.normal(size=(1, d))
    mean, var = _brute(model, X[0])
    tol = 1e-12 * (1.0 + np.abs(mean).max() + np.sqrt(np.abs(var).max()) * (1.0 + width))

    scores = np.empty((1, K))
    a = model.one_case_ucb(X, width, scores)
    np.testing.assert_allclose(scores[0], mean + width * np.sqrt(np.maximum(var, 0)), atol=tol)
    assert a == int(np.argmax(scores[0]))

    Z = rng.standard_normal((1, K))
    z = Z.copy()
    out = np.empty((2, K))
    a = model.one_case_thompson(X, width, Z, out)
    std = width * np.sqrt(np.maximum(var, 0))
    np.testing.assert_allclose(out[0], mean, atol=tol)
    np.testing.assert_allclose(out[1], std, atol=tol)
    np.testing.assert_allclose(Z[0], mean + std * z[0], atol=tol * (1 + np.abs(z).max()))
    assert a == int(np.argmax(Z[0]))


def test_kernels_break_ties_and_nans_as_argmax():
    """Bitwise equal models score bitwise equal (the lowest id wins); a NaN score wins, the
    first one (``numpy.argmax``)."""
    rng = np.random.default_rng(0)
    model = RidgeRegression(6, 5, backend="numba")
    X = rng.normal(size=(1, 5))
    scores = np.empty((1, 6))
    assert model.one_case_ucb(X, 1.0, scores) == 0  # untried: all equal
    assert (scores == scores[0, 0]).all()
    model.theta[3] = rng.normal(size=5)
    model.theta[5] = model.theta[3]
    best = 3 if X[0] @ model.theta[3] > 0 else 0
    assert model.one_case_ucb(X, 1.0, scores) == best
    assert scores[0, 3] == scores[0, 5]
    model.theta[4] = np.nan
    model.theta[5] = np.nan
    assert model.one_case_ucb(X, 1.0, scores) == 4
    assert np.argmax(scores[0]) == 4


@pytest.mark.parametrize("d", [1, 2, 7, 20])
def test_ridge_step_matches_the_numpy_step(d):
    """One compiled row step from the same state: ``A``, ``b`` and the counts bitwise equal
    to the NumPy step's, ``A^{-1}`` and ``theta`` equal to rounding; and after the
    ``resync_every``-th row (a refactorisation from ``A`` and ``b``) every array is bitwise
    equal again."""
    rng = np.random.default_rng(d)
    K, resync = 3, 5
    models = [RidgeRegression(K, d, resync_every=resync, backend=b) for b in ("numpy", "numba")]
    for t in range(2 * resync):
        k = t % 2
        x, y = rng.normal(size=d), float(rng.normal())
        for m in models:
            m.add_one(k, x, y)
        ref, got = models
        np.testing.assert_array_equal(got.A, ref.A)
        np.testing.assert_array_equal(got.b, ref.b)
        np.testing.assert_array_equal(got.n_obs, ref.n_obs)
        np.testing.assert_array_equal(got._since_resync, ref._since_resync)
        np.testing.assert_allclose(got.A_inv, ref.A_inv, rtol=0, atol=1e-14)
        np.testing.assert_allclose(got.theta, ref.theta, rtol=0, atol=1e-13)
        if ref._since_resync[k] == 0:  # just refactorised: the same Cholesky of the same A
            np.testing.assert_array_equal(got.A_inv[k], ref.A_inv[k])
            np.testing.assert_array_equal(got.theta[k], ref.theta[k])
    assert models[1].version == models[0].version


def test_ridge_step_after_numpy_rows_keeps_the_order_of_A():
    """Rows the NumPy step left waiting go into ``A`` before the compiled step's own."""
    rng = np.random.default_rng(3)
    ref = RidgeRegression(2, 4)
    got = RidgeRegression(2, 4)
    rows = [(int(rng.integers(2)), rng.normal(size=4), float(rng.normal())) for _ in range(9)]
    for k, x, y in rows[:5]:
        ref.add_one(k, x, y)
        got.add_one(k, x, y)
    got.backend, got._kernels, got._compiled_rows = "numba", compiled.kernels(), True
    for k, x, y in rows[5:]:
        ref.add_one(k, x, y)
        got.add_one(k, x, y)
    np.testing.assert_array_equal(got.A, ref.A)


@pytest.mark.parametrize(
    "cls, kw, K, d", [(LinUCB, {"alpha": 1.0}, 10, 20), (LinTS, {"v": 0.3}, 8, 6)]
)
def test_policies_decide_as_the_numpy_backend(cls, kw, K, d):
    """On a seeded linear-Gaussian problem the compiled backend makes every decision of the
    NumPy backend (1,500 rounds, the first ones among untried, tied actions), draws the same
    normals, and ends with models equal to rounding."""
    env = [LinearGaussianEnv(n_actions=K, n_features=d, noise_std=0.1, seed=4) for _ in range(2)]
    pols = [cls(n_actions=K, n_features=d, seed=9, backend=b, **kw) for b in ("numpy", "numba")]
    traces = [run(p, e, 1500, seed=1) for p, e in zip(pols, env, strict=True)]
    np.testing.assert_array_equal(traces[1].action, traces[0].action)
    np.testing.assert_allclose(traces[1].probability, traces[0].probability, atol=1e-9)
    np.testing.assert_array_equal(traces[1].reward, traces[0].reward)
    ref, got = (p.model_ for p in pols)
    np.testing.assert_allclose(got.theta, ref.theta, atol=1e-10)
    np.testing.assert_allclose(got.A_inv, ref.A_inv, atol=1e-12)
    np.testing.assert_array_equal(got.A, ref.A)
    assert pols[0].rng_.bit_generator.state == pols[1].rng_.bit_generator.state


def test_untried_actions_go_in_id_order():
    """With a large width the compiled LinUCB tries the actions 0, 1, 2, ... in turn."""
    K, d = 12, 9
    pol = LinUCB(n_actions=K, n_features=d, alpha=100.0, backend="numba", seed=0)
    rng = np.random.default_rng(0)
    for k in range(K):
        x = rng.normal(size=(1, d))
        assert pol.decide(x).actions[0] == k
        pol.update(x, [k], [0.0])


def test_backend_saves_loads_and_validates(tmp_path):
    """``backend`` is a parameter like the others: saved and loaded with the policy, named
    in the error for a wrong value."""
    rng = np.random.default_rng(2)
    pol = LinUCB(n_actions=3, n_features=4, backend="numba", seed=1)
    X = rng.normal(size=(1, 4))
    for _ in range(20):
        pol.update(X, pol.decide(X).actions, [1.0])
    back = load(pol.save(tmp_path / "p"))
    assert back.backend == "numba" and back.get_params() == pol.get_params()
    assert back.decide(X).actions[0] == pol.decide(X).actions[0]
    np.testing.assert_array_equal(back.model_.A_inv, pol.model_.A_inv)
    with pytest.raises(ValueError, match="backend must be one of"):
        LinUCB(n_actions=3, n_features=4, backend="cuda").decide(X)
    with pytest.raises(ValueError, match="backend must be one of"):
        RidgeRegression(2, 2, backend="fortran")


def test_missing_numba_is_a_clear_error(monkeypatch):
    """Without numba, asking for the backend names the extra to install."""
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.delitem(sys.modules, "scarce.models.numba_kernels", raising=False)
    monkeypatch.delattr(scarce.models, "numba_kernels", raising=False)
    compiled.kernels.cache_clear()
    try:
        with pytest.raises(ModuleNotFoundError, match=r"scarce\[fast\]"):
            LinTS(n_actions=2, n_features=2, backend="numba").decide(np.ones((1, 2)))
    finally:
        compiled.kernels.cache_clear()


def test_replicated_simulation_refuses_the_compiled_backend():
    pols = [LinUCB(n_actions=3, n_features=2, backend="numba", seed=s) for s in range(2)]
    envs = [LinearGaussianEnv(n_actions=3, n_features=2, seed=s) for s in range(2)]
    with pytest.raises(ValueError, match="backend='numba'"):
        run_replicated(pols, envs, 10, seeds=[0, 1])


@pytest.mark.parametrize("cls", [LinUCB, LinTS])
def test_contract_checks_pass_with_the_compiled_backend(cls, monkeypatch):
    """The contract suite (:mod:`scarce.checks`) with ``backend="numba"`` in every
    configuration: batches (the NumPy backend) and single cases (compiled) agree, saved
    state round-trips, bad input is refused as with the NumPy backend."""
    configs = [{**params, "backend": "numba"} for params in cls._unit_test_params()]
    monkeypatch.setattr(cls, "_unit_test_params", classmethod(lambda c: configs))
    check_policy(cls)


def test_one_case_probabilities_are_the_compiled_choice():
    """LinUCB's ``action_probabilities`` of one context (the service's question) is the
    one-hot row of the compiled choice, the choice ``decide`` makes; with a mask or a batch
    it is the NumPy backend's."""
    rng = np.random.default_rng(5)
    pol = LinUCB(n_actions=6, n_features=4, backend="numba", seed=0)
    ref = LinUCB(n_actions=6, n_features=4, seed=0)
    for _ in range(60):
        X = rng.normal(size=(1, 4))
        p = pol.action_probabilities(X)
        a = int(pol.decide(X).actions[0])
        np.testing.assert_array_equal(p, np.eye(6)[[a]])
        np.testing.assert_array_equal(p, ref.action_probabilities(X))
        r = float(rng.normal())
        for q in (pol, ref):
            q.update(X, [a], [r])
    mask = np.array([[False, True, True, False, True, True]])
    np.testing.assert_array_equal(
        pol.action_probabilities(X, eligible=mask), ref.action_probabilities(X, eligible=mask)
    )
