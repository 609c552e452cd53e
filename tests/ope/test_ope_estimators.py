"""Off-policy estimators: hand computations, identities between estimators, unbiasedness and
interval coverage on logs with an exactly known target value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opelogs import GREEDY, LOGGING, TARGET, draw, true_value
from sklearn.dummy import DummyRegressor

import scarce.ope as ope
from scarce.ope import LoggedData
from scarce.policies import LinUCB

# ---------------------------------------------------------------------------- tiny logs by hand
TINY = LoggedData(
    contexts=np.zeros((4, 1)),
    actions=[0, 1, 1, 0],
    rewards=[1.0, 0.0, 2.0, 3.0],
    propensities=[0.5, 0.25, 0.5, 1.0],
    n_actions=2,
)
PI = np.array([[0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.2, 0.8]])
# weights w = pi(a)/p: 0.5/0.5=1, 1/0.25=4, 0/0.5=0, 0.2/1=0.2
W = np.array([1.0, 4.0, 0.0, 0.2])
R = np.array([1.0, 0.0, 2.0, 3.0])
Q = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [2.0, 1.0]])


def test_hand_computations():
    assert ope.ips(TINY, PI).value == pytest.approx((1 + 0 + 0 + 0.6) / 4)
    assert ope.snips(TINY, PI).value == pytest.approx(1.6 / 5.2)
    assert ope.clipped_ips(TINY, PI, max_weight=2).value == pytest.approx((1 + 0 + 0 + 0.6) / 4)
    # clipping bites on a reward-carrying row: reward 1 at row 1
    t2 = LoggedData(np.zeros((4, 1)), [0, 1, 1, 0], [1.0, 1.0, 2.0, 3.0], [0.5, 0.25, 0.5, 1.0])
    assert ope.clipped_ips(t2, PI, max_weight=2).value == pytest.approx((1 + 2 + 0 + 0.6) / 4)
    dm_terms = (PI * Q).sum(axis=1)  # 0.5, 0.5, 0, 1.0
    assert ope.dm(TINY, PI, reward_model=Q).value == pytest.approx(dm_terms.mean())
    q_logged = Q[np.arange(4), TINY.actions]  # 1, 0.5, 1, 2
    dr_terms = dm_terms + W * (R - q_logged)  # 0.5, -1.5, 0, 1.2
    assert ope.dr(TINY, PI, reward_model=Q).value == pytest.approx(dr_terms.mean())
    sw_terms = dm_terms + np.where(W <= 1, W, 0) * (R - q_logged)  # drops row 1
    assert ope.switch_dr(TINY, PI, tau=1.0, reward_model=Q).value == pytest.approx(sw_terms.mean())
    det = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # matches every row
    assert ope.replay(TINY, det).value == pytest.approx(R.mean())
    det2 = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # rows 0 and 2 match
    est = ope.replay(TINY, det2)
    assert est.value == pytest.approx(1.5) and est.details["n_matched"] == 2


def test_normal_interval_by_hand():
    est = ope.ips(TINY, PI, alpha=0.1)
    terms = W * R
    se = terms.std(ddof=1) / 2
    z = 1.6448536269514722
    assert est.se == pytest.approx(se)
    assert est.ci == pytest.approx((terms.mean() - z * se, terms.mean() + z * se))
    # snips: delta method, influence (w r - V w) / mean(w)
    v = 1.6 / 5.2
    infl = (W * R - v * W) / W.mean()
    assert ope.snips(TINY, PI).se == pytest.approx(infl.std(ddof=1) / 2)


def test_bootstrap_interval_brackets_estimate_and_is_seeded():
    data, _ = draw(500, 0)
    a = ope.ips(data, TARGET[np.argmax(data.contexts, 1)], ci="bootstrap", n_bootstrap=400, seed=3)
    b = ope.ips(data, TARGET[np.argmax(data.contexts, 1)], ci="bootstrap", n_bootstrap=400, seed=3)
    assert a.ci == b.ci and a.ci[0] < a.value < a.ci[1]
    normal = ope.ips(data, TARGET[np.argmax(data.contexts, 1)])
    # both intervals estimate the same sampling spread
    assert a.se == pytest.approx(normal.se, rel=0.15)


def test_per_position_targets_use_the_logged_position():
    data = LoggedData(
        np.zeros((2, 1)), [0, 1], [1.0, 1.0], [0.5, 0.5], n_actions=2, positions=[0, 1]
    )
    target = np.zeros((2, 2, 2))
    target[:, :, 0] = [1.0, 0.0]  # position 0: always action 0
    target[:, :, 1] = [0.5, 0.5]  # position 1: uniform
    # row 0 (position 0, action 0): w = 1/0.5 = 2; row 1 (position 1, action 1): w = 0.5/0.5 = 1
    np.testing.assert_allclose(ope.importance_weights(data, target), [2.0, 1.0])
    with pytest.raises(ValueError, match="no positions"):
        ope.ips(LoggedData(np.zeros((2, 1)), [0, 1], [1.0, 1.0], [0.5, 0.5]), target)


def test_policy_as_target_asks_for_action_probabilities():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    pol = LinUCB(n_actions=2, n_features=3, seed=0)
    pol.update(X, rng.integers(0, 2, 50), rng.random(50))
    data = LoggedData(X, rng.integers(0, 2, 50), rng.random(50), np.full(50, 0.5), n_actions=2)
    probs = pol.action_probabilities(X)
    assert ope.ips(data, pol).value == pytest.approx(ope.ips(data, probs).value)
    assert ope.replay(data, pol).value == pytest.approx(ope.replay(data, probs).value)


def test_bad_targets_and_arguments_rejected():
    with pytest.raises(ValueError, match=r"target must have shape \(4, 2\)"):
        ope.ips(TINY, np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="sum to 1"):
        ope.ips(TINY, np.full((4, 2), 0.4))
    with pytest.raises(ValueError, match="non-negative"):
        ope.ips(TINY, np.array([[1.5, -0.5]] * 4))
    with pytest.raises(ValueError, match="deterministic"):
        ope.replay(TINY, PI)
    with pytest.raises(ValueError, match="ci must be"):
        ope.ips(TINY, PI, ci="exact")
    with pytest.raises(ValueError, match="alpha"):
        ope.ips(TINY, PI, alpha=1.5)
    with pytest.raises(ValueError, match="max_weight"):
        ope.clipped_ips(TINY, PI, max_weight=0)
    with pytest.raises(ValueError, match="tau"):
        ope.switch_dr(TINY, PI, tau=-1.0, reward_model=Q)
    with pytest.raises(ValueError, match="reward_model"):
        ope.dr(TINY, PI, reward_model=np.zeros((4, 3)))
    with pytest.raises(TypeError, match="LoggedData"):
        ope.ips({"actions": [0]}, PI)
    with pytest.raises(ValueError, match="estimators must be among"):
        ope.evaluate(TINY, PI, ["ips", "magic"])


# ---------------------------------------------------------------------------- identities
@st.composite
def logs_and_target(draw_):
    n = draw_(st.integers(2, 30))
    K = draw_(st.integers(1, 4))
    seed = draw_(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    logging = rng.dirichlet(np.ones(K), size=n)
    actions = np.array([rng.choice(K, p=p) for p in logging])
    rewards = rng.normal(size=n)
    data = LoggedData(rng.normal(size=(n, 2)), actions, rewards, logging[np.arange(n), actions], K)
    target = rng.dirichlet(np.ones(K), size=n)
    q = rng.normal(size=(n, K))
    return data, target, q, logging


@given(logs_and_target(), st.floats(-5, 5))
def test_estimator_identities(case, shift):
    data, target, q, logging = case
    ips = ope.ips(data, target).value
    dm = ope.dm(data, target, reward_model=q).value
    dr = ope.dr(data, target, reward_model=q).value
    # DR with a zero model is IPS; switch-DR interpolates DR (tau=inf) and DM (tau=0)
    assert ope.dr(data, target, reward_model=np.zeros_like(q)).value == pytest.approx(ips)
    assert ope.switch_dr(data, target, tau=np.inf, reward_model=q).value == pytest.approx(dr)
    w = ope.importance_weights(data, target)
    if (w > 0).all():
        assert ope.switch_dr(data, target, tau=0.0, reward_model=q).value == pytest.approx(dm)
    # clipping above the largest weight changes nothing
    assert ope.clipped_ips(data, target, max_weight=w.max() + 1).value == pytest.approx(ips)
    # SNIPS is equivariant to shifting every reward (when some weight is positive)
    if w.sum() > 0:
        shifted = LoggedData(
            data.contexts, data.actions, data.rewards + shift, data.propensities, data.n_actions
        )
        assert ope.snips(shifted, target).value == pytest.approx(
            ope.snips(data, target).value + shift, abs=1e-9
        )
    # on-policy: target = logging policy gives weights 1, so IPS = SNIPS = mean reward
    assert ope.ips(data, logging).value == pytest.approx(data.rewards.mean())
    assert ope.snips(data, logging).value == pytest.approx(data.rewards.mean())
    # every interval contains its estimate
    for est in ope.evaluate(data, target, reward_model=q).values():
        lo, hi = est.ci
        assert np.isnan(est.se) or lo - 1e-12 <= est.value <= hi + 1e-12


def test_cross_fitting_never_uses_a_rows_own_reward():
    """A regressor that memorises its training rows predicts exactly their rewards in-sample;
    cross-fitted predictions for a row must come from the other fold, not from its own reward."""
    from sklearn.neighbors import KNeighborsRegressor

    rng = np.random.default_rng(1)
    n = 40
    X = rng.normal(size=(n, 2))
    data = LoggedData(X, np.zeros(n, int), rng.normal(size=n), np.ones(n), n_actions=1)
    q = ope.cross_fit_rewards(data, KNeighborsRegressor(n_neighbors=1), n_folds=2, seed=0)
    assert not np.any(np.isclose(q[:, 0], data.rewards))


# ---------------------------------------------------------------------------- unbiasedness
@pytest.mark.statistical
def test_unbiased_estimators_average_to_the_true_value_and_intervals_cover():
    """300 independent logs of 300 rows: the mean over logs of IPS and DR (with a useless and a
    decent reward model) is within 4 standard errors of the exact target value; replay is
    unbiased for a deterministic target under uniform logging; the 95% normal intervals cover
    the truth in 90-99% of logs."""
    truth = true_value(TARGET)
    S, n = 300, 300
    est = {"ips": [], "dr_dummy": [], "dr_ridge": [], "snips": []}
    cover = {"ips": 0, "dr_ridge": 0}
    for s in range(S):
        data, types = draw(n, s)
        pi = TARGET[types]
        e_ips = ope.ips(data, pi)
        e_dr = ope.dr(data, pi, seed=s)
        est["ips"].append(e_ips.value)
        est["dr_dummy"].append(ope.dr(data, pi, reward_model=DummyRegressor(), seed=s).value)
        est["dr_ridge"].append(e_dr.value)
        est["snips"].append(ope.snips(data, pi).value)
        cover["ips"] += e_ips.ci[0] <= truth <= e_ips.ci[1]
        cover["dr_ridge"] += e_dr.ci[0] <= truth <= e_dr.ci[1]
    for name, values in est.items():
        v = np.asarray(values)
        se = v.std(ddof=1) / np.sqrt(S)
        assert abs(v.mean() - truth) < 4 * se, (name, v.mean(), truth, se)
    for name, c in cover.items():
        assert 0.90 <= c / S <= 0.99, (name, c / S)
    # DR with a sensible model has lower variance than IPS
    assert np.var(est["dr_ridge"]) < np.var(est["ips"])

    uniform = np.full_like(LOGGING, 1 / 3)
    truth_greedy = true_value(GREEDY)
    rep = []
    for s in range(S):
        data, types = draw(n, 10_000 + s, logging=uniform)
        rep.append(ope.replay(data, GREEDY[types]).value)
    rep = np.asarray(rep)
    assert abs(rep.mean() - truth_greedy) < 4 * rep.std(ddof=1) / np.sqrt(S)


@pytest.mark.statistical
def test_clipping_biases_towards_zero_and_dm_with_the_true_model_is_exact():
    data, types = draw(4000, 7)
    pi = TARGET[types]
    assert ope.clipped_ips(data, pi, max_weight=1.0).value < ope.ips(data, pi).value
    from opelogs import MU, P_CONTEXT

    q = MU[types]
    exact_given_contexts = float((pi * q).sum(axis=1).mean())
    assert ope.dm(data, pi, reward_model=q).value == pytest.approx(exact_given_contexts)
    assert abs(exact_given_contexts - true_value(TARGET)) < 0.02
    assert P_CONTEXT.sum() == pytest.approx(1.0)
