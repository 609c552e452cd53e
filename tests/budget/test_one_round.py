"""The single-case path of one round (issue 18: ``OutcomeModels.priced_one`` for the scores,
``oneround.OneRoundFeedback`` for the feedback) against the general path, over long seeded
runs with a budget that binds: the same decisions, scores, consumption bounds and learned
state, bit for bit; and feedback the fast path does not take still gets the general path's
errors."""

import numpy as np
import pytest
from budget_states import assert_same_state

from scarce.budget import Deferral, KnapsackBandit
from scarce.budget.oneround import OneRoundFeedback

T = 1500


def _make(kind):
    if kind == "deferral-full":
        return Deferral(n_features=4, budget=0.1 * T, horizon=T, seed=0)
    if kind == "deferral-bandit":
        return Deferral(n_features=4, budget=0.1 * T, horizon=T, feedback="bandit", seed=1)
    if kind == "knapsack-1":
        return KnapsackBandit(
            n_actions=3, n_features=4, budget=0.15 * T, horizon=T, seed=2, free_action=2
        )
    if kind == "knapsack-3":  # the free action first: the costly models are a slice
        return KnapsackBandit(
            n_actions=5, n_features=4, budget=[0.1 * T, 0.2 * T, 0.3 * T], horizon=T,
            n_resources=3, seed=3,
        )  # fmt: skip
    # the free action in the middle: the costly models are picked by index
    return KnapsackBandit(
        n_actions=4, n_features=3, budget=[0.1 * T, 0.2 * T], horizon=T, n_resources=2,
        free_action=2, seed=4,
    )  # fmt: skip


KINDS = ["deferral-full", "deferral-bandit", "knapsack-1", "knapsack-3", "knapsack-2-middle"]


@pytest.mark.parametrize("kind", KINDS)
def test_fast_round_is_the_general_path_bit_for_bit(kind, monkeypatch):
    """``fast`` gets ``(1, d)`` float64 arrays and its decisions' own ``info`` (the single-case
    path); ``slow`` the same cases as nested lists (``update``'s full validation and
    ``_learn``). Every round the fast decision's scores and ``cost_lcb`` equal the general
    bounds (``scores``/``cost_lcb`` of the general estimates) of the slow twin, and at the
    end the learned states, ledgers and prices are equal."""
    taken = {"fast": 0, "slow": 0}
    original = OneRoundFeedback._learn_one_fast

    def counting(self, *args):
        done = original(self, *args)
        taken[self._tag] += done
        return done

    monkeypatch.setattr(OneRoundFeedback, "_learn_one_fast", counting)
    fast, slow = _make(kind), _make(kind)
    fast._tag, slow._tag = "fast", "slow"
    K, m, free = fast.n_actions, fast.n_resources, fast.free_action
    deferral = isinstance(fast, Deferral)
    rng = np.random.default_rng(11)
    for t in range(T):
        X = rng.uniform(-1, 1, (1, fast.n_features))
        R = rng.uniform(0, 1, K)
        C = rng.uniform(0, 1, (1, m))
        priced = getattr(slow, "Z_", None) is not None
        if priced:  # the general estimates, from the same state
            want_scores, want_c = slow.scores(X), slow.cost_lcb(X)
        d_fast, d_slow = fast.decide(X), slow.decide(X.tolist())
        a = int(d_fast.actions[0])
        assert a == int(d_slow.actions[0])
        np.testing.assert_array_equal(d_fast.scores, d_slow.scores)
        if priced:
            np.testing.assert_array_equal(d_fast.scores, want_scores)
            np.testing.assert_array_equal(d_fast.info["cost_lcb"], want_c[:, a])
        cost = np.zeros((1, m)) if a == free else C
        if m == 1 and t % 2:
            cost = cost[:, 0]  # the (1,) form of one resource
        kw = {}
        if deferral:
            kw["model_rewards"] = R[[a]] if a == 0 else R[:1]
        fast.update(X, d_fast.actions, R[[a]], costs=cost, info=d_fast.info, **kw)
        slow_info = {k: v.tolist() for k, v in d_slow.info.items()}
        slow_kw = {k: v.tolist() for k, v in kw.items()}
        slow.update(X.tolist(), [a], [float(R[a])], costs=cost.tolist(), info=slow_info, **slow_kw)
    assert taken == {"fast": T, "slow": 0}
    # the budget bound: the ledger stopped the costly actions for a while
    assert np.max(fast.spent_ / fast.ledger_.budget) > 0.95
    assert_same_state(fast._get_state(), slow._get_state())


def _priced_deferral():
    policy = Deferral(n_features=3, budget=50.0, horizon=200, dual={"warmup_rounds": 5}, seed=0)
    X = np.array([[0.1, 0.2, 0.3]])
    for _ in range(8):
        d = policy.decide(X)
        a = d.actions
        c = np.zeros((1, 1)) if a[0] == 0 else np.full((1, 1), 0.1)
        policy.update(X, a, [0.5], costs=c, model_rewards=np.array([0.5]), info=d.info)
    return policy, X


@pytest.mark.parametrize(
    ("action", "kwargs", "match"),
    [
        (0, {"model_rewards": np.array([0.4])}, "model_rewards must equal rewards"),
        (1, {"model_rewards": np.array([1.5])}, "model_rewards must be finite and in"),
        (1, {"model_rewards": np.array([np.nan])}, "model_rewards must be finite and in"),
        (0, {"model_rewards": np.array([0.5]), "costs": np.array([[0.2]])}, "exceeds the cost"),
        (1, {"model_rewards": np.array([0.5]), "costs": np.array([[-0.1]])}, "finite and >= 0"),
        (1, {"model_rewards": np.array([0.5]), "costs": np.array([[2.0]])}, "exceeds the cost"),
        (1, {"model_rewards": np.array([0.5]), "costs": None}, "update needs costs"),
    ],
)
def test_feedback_the_fast_round_refuses_gets_the_general_error(action, kwargs, match):
    """The fast round checks before anything changes and leaves such feedback to the general
    path, whose error it gets; the models have not learned from it. (The general path may
    have booked the costs and stepped the prices before it finds a bad ``model_rewards``.)"""
    policy, X = _priced_deferral()
    d = policy.decide(X)
    kwargs = dict(kwargs)
    kwargs.setdefault("costs", np.zeros((1, 1)) if action == 0 else np.full((1, 1), 0.1))
    if kwargs["costs"] is None:
        del kwargs["costs"]
    before = policy._get_state()
    with pytest.raises(ValueError, match=match):
        policy.update(X, np.array([action]), np.array([0.5]), info=d.info, **kwargs)
    assert_same_state(policy._get_state()["learned"]["models"], before["learned"]["models"])


@pytest.mark.parametrize("kind", ["deferral-full", "knapsack-3", "knapsack-2-middle"])
def test_kept_affordability_is_the_ledgers_every_round(kind):
    """The single-case path keeps "every action affordable" across ledger changes while a
    counted margin holds (``SingleCasePath._ledger_changed``): every round, before each
    decision and after each update, the kept answer equals the ledger's own test, through a
    budget that binds (spending up to the last cost bound), with costs at their bounds."""
    pol = _make(kind)
    m, free = pol.n_resources, pol.free_action
    rng = np.random.default_rng(5)
    kept_rounds = 0

    def check():
        if "ledger_" not in pol.__dict__:  # (the state is made by the first decision)
            return
        ok = pol._affordable()
        want = pol.ledger_.affordable()
        np.testing.assert_array_equal(ok, want)
        assert (ok is pol._ok_all) == bool(want.all())

    for _ in range(T):
        X = rng.uniform(-1, 1, (1, pol.n_features))
        check()
        d = pol.decide(X)
        a = int(d.actions[0])
        check()
        bound = pol.ledger_.cost_bound[a]
        # costs at the bound half of the time (the largest change the margin allows for)
        C = (bound if rng.random() < 0.5 else rng.uniform(0, 1, m) * bound)[None, :]
        kw = {"model_rewards": np.array([0.5])} if isinstance(pol, Deferral) else {}
        spare = pol.__dict__.get("_spare")
        pol.update(X, d.actions, np.array([0.5]), costs=C if a != free else np.zeros((1, m)),
                   info=d.info, **kw)  # fmt: skip
        kept_rounds += spare is not None and spare[1] > 0 and pol._ok is pol._ok_all
        check()
    assert kept_rounds > T // 10  # the margin was used
    assert np.max(pol.spent_ / pol.ledger_.budget) > 0.97  # and the budget bound
    assert np.all(pol.spent_ <= pol.ledger_.budget + 1e-9)
