"""``backend="numba"`` of the budgeted learners: the compiled priced decision, booking and
model step (``scarce.models.numba_kernels``) against their NumPy counterparts, and whole
runs against the NumPy backend (the same decisions and spending, models equal to
rounding)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.budget import Deferral, KnapsackBandit
from scarce.budget.dual import DualPrices
from scarce.budget.models import OutcomeModels
from scarce.checks import check_policy
from scarce.models import compiled, ridge
from scarce.models.ridge import RidgeRegression
from scarce.models.row_step import RowStep

pytest.importorskip("numba")


def _make(kind, backend, budget_scale=1.0, horizon=400):
    if kind == "deferral":
        return Deferral(
            n_features=3,
            budget=8.0 * budget_scale,
            horizon=horizon,
            dual={"warmup_rounds": 10},
            backend=backend,
            seed=0,
        )
    return KnapsackBandit(
        n_actions=4,
        n_features=3,
        budget=[6.0 * budget_scale, 9.0 * budget_scale],
        horizon=horizon,
        n_resources=2,
        free_action=1,
        dual={"warmup_rounds": 10},
        backend=backend,
        seed=0,
    )


def _play(policy, rounds, seed=3):
    """``rounds`` one-case decisions and updates on a fixed random stream; the actions."""
    kind = "deferral" if isinstance(policy, Deferral) else "knapsack"
    K, m = policy.n_actions, policy.n_resources
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(K, 3))
    actions = []
    for _ in range(rounds):
        X = rng.uniform(-1, 1, (1, 3))
        d = policy.decide(X)
        a = int(d.actions[0])
        R = np.clip(0.5 + 0.3 * (W @ X[0]) + 0.1 * rng.normal(size=K), 0.0, 1.0)
        C = np.zeros((1, m)) if a == policy.free_action else rng.uniform(0, 1, (1, m))
        kw = {"model_rewards": R[:1]} if kind == "deferral" else {}
        policy.update(X, d.actions, R[[a]], costs=C, info=d.info, **kw)
        actions.append(a)
    return np.array(actions)


@pytest.mark.parametrize("kind", ["deferral", "knapsack"])
@pytest.mark.parametrize("budget_scale", [1.0, 8.0])
def test_runs_decide_and_spend_as_the_numpy_backend(kind, budget_scale, monkeypatch):
    """The compiled one-case path (asserted taken: the NumPy scoring is disabled during its
    run) makes every decision of the NumPy backend, through the warm-up, pricing and a
    binding budget (``budget_scale=1``), spends bitwise the same and ends with models and
    prices equal to rounding."""
    ref = _make(kind, "numpy", budget_scale)
    ref_actions = _play(ref, 400)
    got = _make(kind, "numba", budget_scale)

    def numpy_scoring(*args, **kwargs):
        raise AssertionError("the compiled backend took a NumPy step")

    for name in ("priced_one", "priced_one_scalar"):
        monkeypatch.setattr(OutcomeModels, name, numpy_scoring)
    monkeypatch.setattr(ridge, "step_targets", numpy_scoring)  # the NumPy paired step
    monkeypatch.setattr(RowStep, "add", numpy_scoring)  # the NumPy one-row step
    got_actions = _play(got, 400)
    np.testing.assert_array_equal(got_actions, ref_actions)
    np.testing.assert_array_equal(got.spent_, ref.spent_)
    np.testing.assert_array_equal(got.ledger_.reserved, ref.ledger_.reserved)
    assert (got.spent_ <= got.ledger_.budget).all()
    if budget_scale == 1.0:
        assert ref.spent_.max() > 0.7 * ref.ledger_.budget.min()  # the budget was binding
    np.testing.assert_allclose(got.prices_.weights, ref.prices_.weights, rtol=1e-12)
    for (_, _, rb, _), (_, _, gb, _) in zip(
        ref.models_.reward_groups, got.models_.reward_groups, strict=True
    ):
        np.testing.assert_allclose(gb.model.theta, rb.model.theta, atol=1e-10)
        np.testing.assert_allclose(gb.model.A_inv, rb.model.A_inv, atol=1e-12)
        np.testing.assert_array_equal(gb.model.A, rb.model.A)
        np.testing.assert_array_equal(gb.model.n_obs, rb.model.n_obs)
    (_, _, rc, _), (_, _, gc, _) = ref.models_.cost_groups[0], got.models_.cost_groups[0]
    np.testing.assert_allclose(gc.model.theta, rc.model.theta, atol=1e-10)
    np.testing.assert_array_equal(gc.model.A, rc.model.A)
    assert got.models_.paired() and ref.models_.paired()


@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 5), Z=st.floats(0.0, 5.0))
@settings(max_examples=40, deadline=None)
def test_priced_choice_scores_as_the_numpy_bounds(seed, rows, Z):
    """The compiled priced decision's scores and consumption bounds equal the NumPy ones
    (``OutcomeModels.bounds`` and the dual prices) to rounding; its choice follows the
    rules (the best affordable action, the free action winning ties) and it reserves the
    chosen action's bound."""
    rng = np.random.default_rng(seed)
    policy = _make("knapsack", "numba")
    _play(policy, 12 + rows, seed=seed % 1000)  # past the warm-up, so Z_ and the prices exist
    models = policy.models_
    X = rng.uniform(-2, 2, (1, 3))
    ok = rng.random(4) < 0.7
    ok[policy.free_action] = True
    r, c_ref = models.bounds(X, True)
    scores_ref = r - c_ref @ policy.prices_.prices(Z)
    K, m = 4, 2
    scores, c = np.empty((1, K)), np.zeros((1, K, m))
    reserved = policy.ledger_.reserved.copy()
    before = reserved.copy()
    a = compiled.kernels().priced_choice(
        *models.priced_operands(),
        X,
        Z,
        policy.prices_.weights,
        policy.prices_.scale,
        ok,
        policy.free_action,
        reserved,
        scores,
        c,
        np.empty(3),
    )
    np.testing.assert_allclose(scores, scores_ref, atol=1e-12)
    np.testing.assert_allclose(c, c_ref, atol=1e-12)
    s = np.where(ok, scores[0], -np.inf)
    best = int(np.argmax(s))
    free = policy.free_action
    assert a == (free if s[free] >= s[best] else best)
    expect = before if a == free else before + policy.ledger_.cost_bound[a]
    np.testing.assert_array_equal(reserved, expect)


def test_hedge_and_settle_kernels_match_numpy():
    rng = np.random.default_rng(0)
    for m in (1, 3):
        ref = DualPrices(m, 0.3, rng.uniform(0.5, 2, m), 0.2)
        got = DualPrices(m, 0.3, ref.scale, 0.2, backend="numba")
        for _ in range(50):
            c = rng.uniform(0, 1, m) * (rng.random() < 0.6)
            ref.step(c)
            got.step(c)
            np.testing.assert_allclose(got.weights, ref.weights, rtol=1e-13)
        if m == 1:
            ref.step_one(0.4)
            got.step_one(0.4)
            np.testing.assert_allclose(got.weights, ref.weights, rtol=1e-13)
    reserved, spent = np.array([0.5, 2.0, 0.0]), np.array([1.0, 0.0, 3.0])
    bound, costs = np.array([1.0, 0.5, 0.0]), np.array([0.3, 0.2, 0.0])
    expect = (np.maximum(reserved - bound, 0.0), spent + costs)
    compiled.kernels().settle_one(reserved, spent, bound, costs)
    np.testing.assert_array_equal(reserved, expect[0])
    np.testing.assert_array_equal(spent, expect[1])


def test_paired_step_matches_the_numpy_step():
    """One shared compiled step of a reward model and a multi-target consumption model:
    ``A``, ``b``, counts bitwise, ``A^{-1}`` and ``theta`` to rounding, both designs still
    bitwise equal to each other."""
    rng = np.random.default_rng(1)
    d, m = 4, 3
    sets = {
        b: (RidgeRegression(3, d, backend=b), RidgeRegression(2, d, n_targets=m, backend=b))
        for b in ("numpy", "numba")
    }
    for _ in range(30):
        x, y, yc = rng.normal(size=d), float(rng.normal()), rng.uniform(0, 1, m)
        for rew, cost in sets.values():
            rew.add_one_paired(2, x, y, cost, 1, yc)
    (r0, c0), (r1, c1) = sets["numpy"], sets["numba"]
    for ref, got in ((r0, r1), (c0, c1)):
        np.testing.assert_array_equal(got.A, ref.A)
        np.testing.assert_array_equal(got.b, ref.b)
        np.testing.assert_array_equal(got.n_obs, ref.n_obs)
        np.testing.assert_allclose(got.A_inv, ref.A_inv, atol=1e-13)
        np.testing.assert_allclose(got.theta, ref.theta, atol=1e-12)
    np.testing.assert_array_equal(c1.A_inv[1], r1.A_inv[2])


def test_replicated_runs_refuse_the_compiled_backend():
    from scarce.budget.envs import SyntheticDeferral
    from scarce.sim.replicated import run_replicated

    pols = [_make("deferral", "numba") for _ in range(2)]
    envs = [SyntheticDeferral(n_features=3, seed=s) for s in range(2)]
    with pytest.raises(ValueError, match="backend='numba'"):
        run_replicated(pols, envs, 20, seeds=[0, 1])


@pytest.mark.parametrize("cls", [Deferral, KnapsackBandit])
def test_contract_checks_pass_with_the_compiled_backend(cls, monkeypatch):
    configs = [{**params, "backend": "numba"} for params in cls._unit_test_params()]
    monkeypatch.setattr(cls, "_unit_test_params", classmethod(lambda c: configs))
    check_policy(cls)
