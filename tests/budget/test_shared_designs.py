"""Shared designs: the budgeted learners group the targets observed on the same rows into one
multi-target ridge (an action's costs, and its reward under bandit feedback). Estimates and
decisions must be those of the reference layout, one single-target model per (action,
target), up to round-off; full-information rewards must leave the joint layout exactly."""

import numpy as np
import pytest

from scarce.budget import Deferral, KnapsackBandit
from scarce.budget.estimators import glm_radius
from scarce.core.policy import load
from scarce.models import RidgeRegression

TOL = dict(rtol=1e-9, atol=1e-9)


class SeparateKnapsack(KnapsackBandit):
    _multi_target_models = False


class SeparateDeferral(Deferral):
    _multi_target_models = False


def _stream(seed, T, K, m, d):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (T, d)) / np.sqrt(d)
    W = rng.uniform(0, 1, (K, d))
    R = np.clip(X @ W.T / np.sqrt(d) + rng.normal(0, 0.1, (T, K)), 0, 1)
    C = rng.uniform(0, 1, (T, K, m))
    return X, R, C


def _knapsack(cls, K, m, T, d, **kw):
    return cls(
        n_actions=K,
        n_features=d,
        budget=[0.3 * T] * m,
        horizon=T,
        n_resources=m,
        free_action=1,
        warmup_rounds=20,
        seed=3,
        **kw,
    )


def _play(pols, X, R, C, free, batches, full_from=None, deferral=False):
    """Drive the policies on the same stream; return their decisions, checking every round
    that they agree and that their estimates match."""
    probe = X[:7]
    t, T = 0, X.shape[0]
    chosen = []
    for size in batches:
        if t >= T:
            break
        sl = slice(t, min(t + size, T))
        x = X[sl]
        acts = [p.decide(x).actions for p in pols]
        for a in acts[1:]:
            np.testing.assert_array_equal(a, acts[0])
        a = acts[0]
        rows = np.arange(x.shape[0])
        costs = C[sl][rows, a]
        costs[a == free] = 0.0
        for p in pols:
            kw = {}
            if deferral:
                kw["model_rewards"] = R[sl, free]
                costs_p = costs[:, 0]
            else:
                costs_p = costs
            if full_from is not None and t >= full_from:
                p.update(x, a, R[sl][rows, a], full_rewards=R[sl], costs=costs_p, **kw)
            else:
                p.update(x, a, R[sl][rows, a], costs=costs_p, **kw)
        ref, new = pols[0], pols[1]
        np.testing.assert_allclose(new.reward_ucb(probe), ref.reward_ucb(probe), **TOL)
        np.testing.assert_allclose(new.cost_lcb(probe), ref.cost_lcb(probe), **TOL)
        np.testing.assert_allclose(new.dual_, ref.dual_, **TOL)
        chosen.append(a)
        t = sl.stop
    return np.concatenate(chosen)


BATCHES = [1] * 150 + [3, 1, 12, 2] * 10 + [1] * 100


@pytest.mark.parametrize(
    "case",
    ["identity", "identity_full_info", "mixed_cost_links", "logistic_free", "logistic_costly"],
)
def test_knapsack_joint_layout_matches_separate_models(case):
    K, m, d, T = 4, 2, 4, 350
    kw: dict = {}
    full_from = None
    if case == "identity_full_info":
        full_from = 200  # leaves the joint layout mid-run
    elif case == "mixed_cost_links":
        kw["cost_link"] = ["identity", "logistic"]
    elif case == "logistic_free":
        kw["reward_link"] = ["identity", "logistic", "identity", "identity"]
    elif case == "logistic_costly":  # a costly action's reward cannot join its costs
        kw["reward_link"] = ["identity", "identity", "logistic", "identity"]
    X, R, C = _stream(11, T, K, m, d)
    pols = [
        _knapsack(SeparateKnapsack, K, m, T, d, **kw),
        _knapsack(KnapsackBandit, K, m, T, d, **kw),
    ]
    acts = _play(pols, X, R, C, 1, BATCHES, full_from=full_from)
    new = pols[1]
    assert new._joint == (case in ("identity", "mixed_cost_links", "logistic_free"))
    assert not pols[0]._joint
    assert len(np.unique(acts)) == K  # every action was played: every model was exercised
    if full_from is None and case != "logistic_costly":
        # one ridge design per costly action (reward + identity costs), plus the free one
        assert new._joint_bank is not None
        assert new._joint_bank.model.A.shape[0] == (K if case != "logistic_free" else K - 1)
        assert all(link != "identity" for link, *_ in new._cost_groups)


@pytest.mark.parametrize("feedback", ["full", "bandit"])
def test_deferral_joint_layout_matches_separate_models(feedback):
    d, T = 5, 400
    X, R, C = _stream(4, T, 2, 1, d)
    pols = [
        cls(n_features=d, budget=0.25 * T, horizon=T, feedback=feedback, warmup_rounds=30, seed=1)
        for cls in (SeparateDeferral, Deferral)
    ]
    acts = _play(pols, X, R, C, 0, [1] * 300 + [5] * 20, deferral=True)
    assert pols[1]._joint and pols[1]._joint_bank.model.n_targets == 2
    assert 0.1 < acts.mean() < 0.9  # both arms played, the budget bound


def test_joint_bounds_equal_independent_ridge_models():
    """The bounds from the joint ridge equal those built by hand from one single-target
    ridge per (action, target) fed the rows that target was observed on."""
    K, m, d, T = 3, 2, 3, 150
    X, R, C = _stream(8, T, K, m, d)
    free = 1
    pol = _knapsack(KnapsackBandit, K, m, T, d)
    ref_r = [RidgeRegression(1, d) for _ in range(K)]
    ref_c = [[RidgeRegression(1, d) for _ in range(m)] for _ in range(K)]
    for t in range(T):
        x = X[t : t + 1]
        a = int(pol.decide(x).actions[0])
        c = np.zeros(m) if a == free else C[t, a]
        pol.update(x, [a], [R[t, a]], costs=c[None, :])
        ref_r[a].partial_fit(x, R[t, a : a + 1])
        for j in range(m):
            if a != free:
                ref_c[a][j].partial_fit(x, c[j : j + 1])
    beta = glm_radius(T, d, sigma=0.5, kappa=1.0, delta=0.05)
    probe = X[:9]
    ucb = np.empty((9, K))
    lcb = np.zeros((9, K, m))
    for a in range(K):
        mean, var = ref_r[a].predict(probe)
        ucb[:, a] = np.clip(mean[:, 0] + beta * np.sqrt(var[:, 0]), 0, 1)
        for j in range(m):
            if a != free:
                mean, var = ref_c[a][j].predict(probe)
                lcb[:, a, j] = np.clip(mean[:, 0] - beta * np.sqrt(var[:, 0]), 0, 1)
    np.testing.assert_allclose(pol.reward_ucb(probe), ucb, **TOL)
    np.testing.assert_allclose(pol.cost_lcb(probe), lcb, **TOL)


@pytest.mark.parametrize("unshare", [False, True])
def test_joint_layout_save_load_round_trip(tmp_path, unshare):
    K, m, d, T = 3, 2, 3, 120
    X, R, C = _stream(2, T, K, m, d)
    pol = _knapsack(KnapsackBandit, K, m, T, d)
    for t in range(60):
        x = X[t : t + 1]
        a = pol.decide(x).actions
        c = np.zeros((1, m)) if a[0] == 1 else C[t, a]
        kw = {"full_rewards": R[t : t + 1]} if unshare and t >= 40 else {}
        pol.update(x, a, R[t, a], costs=c, **kw)
    assert pol._joint != unshare
    pol.save(tmp_path / "p")
    back = load(tmp_path / "p")
    assert back._joint == pol._joint
    for t in range(60, T):
        x = X[t : t + 1]
        a = pol.decide(x).actions
        np.testing.assert_array_equal(back.decide(x).actions, a)
        c = np.zeros((1, m)) if a[0] == 1 else C[t, a]
        for p in (pol, back):
            p.update(x, a, R[t, a], costs=c)
    np.testing.assert_array_equal(back.reward_ucb(X[:5]), pol.reward_ucb(X[:5]))
    np.testing.assert_array_equal(back.cost_lcb(X[:5]), pol.cost_lcb(X[:5]))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("estimate", [True, False])
def test_dual_step_is_multiplicative_weights_on_the_chosen_cost_estimates(batch, estimate):
    K, m, d, T = 3, 3, 3, 100
    X, R, C = _stream(6, T, K, m, d)
    pol = KnapsackBandit(
        n_actions=K, n_features=d, budget=[20.0, 40.0, 60.0], horizon=T, n_resources=m,
        free_action=0, z_method="fixed", Z=0.5, dual_uses_estimate=estimate, seed=0,
    )  # fmt: skip
    for t in range(0, 60, batch):
        x = X[t : t + batch]
        a = pol.decide(x).actions
        est = pol.cost_lcb(x)[np.arange(x.shape[0]), a]  # the decision-time estimates
        costs = C[t : t + batch][np.arange(x.shape[0]), a]
        costs[a == 0] = 0.0
        if not estimate:  # the realised consumption
            est = costs
        w = pol.dual_.copy()
        rates = np.array([20.0, 40.0, 60.0]) / T
        for e in est:
            gains = np.append(e * rates.min() / rates - rates.min(), 0.0)
            w = w * np.exp(pol.eta_ * gains)
            w /= w.sum()
        pol.update(x, a, R[t : t + batch][np.arange(x.shape[0]), a], costs=costs)
        np.testing.assert_allclose(pol.dual_, w, rtol=1e-12)
    assert not np.allclose(pol.dual_, 1 / (m + 1))  # the prices moved
