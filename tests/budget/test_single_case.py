"""The single-case path of the budgeted learners (issue 18) is the general path, bit for bit,
and still refuses bad feedback with the general path's errors."""

import numpy as np
import pytest
from budget_states import assert_same_state

from scarce.budget import Deferral, KnapsackBandit
from scarce.budget.specs import ConfidenceSpec


def _make(kind):
    if kind == "deferral":
        return Deferral(n_features=3, budget=8.0, horizon=120, dual={"warmup_rounds": 10}, seed=0)
    return KnapsackBandit(
        n_actions=4,
        n_features=3,
        budget=[6.0, 9.0],
        horizon=120,
        n_resources=2,
        free_action=1,
        dual={"warmup_rounds": 10},
        seed=0,
    )


@pytest.mark.parametrize("kind", ["deferral", "knapsack"])
def test_one_case_arrays_learn_exactly_as_the_general_path(kind):
    """The same run with ``(1, d)`` float arrays (the single-case paths of ``decide`` and
    ``update``) and with nested lists and an all-True eligibility mask (every check of
    ``decide`` and ``update``, and ``_learn`` after the general validation): the same
    decisions, scores and info, and the same learned state and ledger, bit for bit, through
    warm-up, pricing and a binding budget. (That the single-case decisions are those of the
    general decision loop is pinned by ``test_trajectory.py``, recorded before it existed.)"""
    fast, slow = _make(kind), _make(kind)
    K, m = fast.n_actions, fast.n_resources
    rng = np.random.default_rng(3)
    for _ in range(120):
        X = rng.uniform(-1, 1, (1, 3))
        d_fast, d_slow = fast.decide(X), slow.decide(X.tolist(), eligible=[True] * K)
        np.testing.assert_array_equal(d_fast.actions, d_slow.actions)
        np.testing.assert_array_equal(d_fast.scores, d_slow.scores)
        for key in d_slow.info:
            np.testing.assert_array_equal(d_fast.info[key], d_slow.info[key])
        a = int(d_fast.actions[0])
        R = rng.uniform(0, 1, K)
        C = np.zeros((1, m)) if a == fast.free_action else rng.uniform(0, 1, (1, m))
        kw = {"model_rewards": R[:1]} if kind == "deferral" else {}
        fast.update(X, d_fast.actions, R[[a]], costs=C, info=d_fast.info, **kw)
        info = {k: v.tolist() for k, v in d_slow.info.items()}
        kw = {k: v.tolist() for k, v in kw.items()}
        slow.update(X.tolist(), [a], [float(R[a])], costs=C.tolist(), info=info, **kw)
    assert fast.spent_.max() > 0.7 * 6.0  # the budget was used
    s_fast, s_slow = fast._get_state(), slow._get_state()
    assert s_fast["n_updates"] == s_slow["n_updates"] == 120
    assert_same_state(s_fast["learned"], s_slow["learned"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"costs": np.array([[2.0, 0.1]])}, ValueError, "exceeds the cost bound"),
        ({"costs": np.array([[np.nan, 0.1]])}, ValueError, "finite and >= 0"),
        ({"costs": np.array([[0.1, 0.1, 0.1]])}, ValueError, "costs must have shape"),
        ({"costs": np.array([[0.1, 0.1]]), "colour": 1}, TypeError, "unexpected keyword"),
        ({"costs": np.array([[0.1, 0.1]]), "info": {"priced": np.ones(2)}}, ValueError, "info"),
        ({"costs": np.array([[0.1, 0.1]]), "info": [1]}, ValueError, "info must be a dict"),
        ({}, ValueError, "update needs costs"),
    ],
)
def test_bad_feedback_of_one_case_is_refused(kwargs, error, match):
    policy = _make("knapsack")
    X = np.array([[0.1, 0.2, 0.3]])
    for _ in range(12):  # past the warm-up
        d = policy.decide(X)
        a = d.actions
        C = np.zeros((1, 2)) if a[0] == 1 else np.full((1, 2), 0.01)
        policy.update(X, a, [0.5], costs=C, info=d.info)
    a = np.array([0])  # a costly action
    policy.ledger_.reserve(a)
    before = policy._get_state()
    with pytest.raises(error, match=match):
        policy.update(X, a, [0.5], **kwargs)
    assert_same_state(policy._get_state()["learned"]["models"], before["learned"]["models"])


def test_one_case_with_a_mask_takes_the_best_eligible_affordable_action():
    """Brute force: the chosen action maximises the Lagrangian scores over the actions that
    are eligible and affordable (ties to the free action); ineligible scores show -inf."""
    policy = _make("knapsack")
    K, free = policy.n_actions, policy.free_action
    rng = np.random.default_rng(8)
    for t in range(100):
        X = rng.uniform(-1, 1, (1, 3))
        mask = rng.random(K) < 0.6
        mask[free] = True
        if t:  # (the first decision initialises the policy)
            expected_scores = policy.scores(X)[0]
            ok = policy.ledger_.affordable() & mask
        d = policy.decide(X, eligible=mask)
        a = int(d.actions[0])
        if t >= 10:  # priced
            best = np.where(ok, expected_scores, -np.inf)
            want = free if best[free] >= best.max() else int(best.argmax())
            assert a == want
            np.testing.assert_array_equal(d.scores[0], np.where(mask, expected_scores, -np.inf))
        C = np.zeros((1, 2)) if a == free else rng.uniform(0, 1, (1, 2))
        policy.update(X, d.actions, [0.5], costs=C, info=d.info)
    assert policy.spent_.max() > 0.5 * 6.0


def test_one_case_with_no_eligible_affordable_action_is_refused():
    policy = _make("knapsack")
    X = np.array([[0.1, 0.2, 0.3]])
    for _ in range(10):
        d = policy.decide(X)
        a = d.actions
        C = np.zeros((1, 2)) if a[0] == 1 else np.full((1, 2), 0.01)
        policy.update(X, a, [0.5], costs=C, info=d.info)
    mask = np.ones(4, dtype=bool)
    mask[1] = False
    policy.ledger_.reserve(np.array([0] * 6))  # nothing costly fits any more
    with pytest.raises(ValueError, match="no eligible action is affordable"):
        policy.decide(X, eligible=mask)


def test_deferral_needs_the_model_reward_on_the_single_case_path():
    policy = _make("deferral")
    X = np.array([[0.1, 0.2, 0.3]])
    d = policy.decide(X)
    with pytest.raises(ValueError, match="model_rewards"):
        policy.update(X, d.actions, [0.5], costs=np.zeros((1, 1)), info=d.info)


def test_kept_radii_equal_the_radius_formula():
    """The radius kept per model (looked up by its count) is bit for bit the formula's on the
    whole count vector, for any counts (the elementwise NumPy functions give each entry the
    same value in any array)."""
    spec = ConfidenceSpec()
    rng = np.random.default_rng(0)
    for dim, link in [(20, "identity"), (3, "logistic")]:
        table = spec.radius(np.arange(5000, dtype=float), dim, link)
        for M in (1, 2, 3, 9, 10):
            counts = rng.integers(0, 5000, M).astype(float)
            np.testing.assert_array_equal(spec.radius(counts, dim, link), table[counts.astype(int)])


def _paired_run(policy, K, m, seed, T=260, break_at=(90, 91)):
    """A seeded single-case loop; at ``break_at`` rounds an update with every action's costs
    (full information on costs: the reward and consumption designs part) then one offline
    row (rewards of every action); returns the final learned state and the scores."""
    rng = np.random.default_rng(seed)
    d = policy.n_features
    free = int(policy.free_action)
    scores, paired = [], []
    for t in range(T):
        X = rng.uniform(-1, 1, (1, d))
        R = rng.uniform(0, 1, K)
        C = rng.uniform(0, 1, (1, K, m))
        C[:, free] = 0.0
        dec = policy.decide(X)
        a = dec.actions
        kw = {"costs": C if t == break_at[0] else C[:, a[0]], "info": dec.info}
        if isinstance(policy, Deferral):
            kw["model_rewards"] = R[:1]
        policy.update(X, a, R[a], **kw)
        if t == break_at[1]:
            policy.update(X, full_rewards=R[None, :], costs=C)
        scores.append(dec.scores)
        paired.append(policy.models_.paired())
    return policy._get_state()["learned"], np.concatenate(scores), paired


@pytest.mark.parametrize("kind", ["knapsack", "deferral"])
def test_paired_models_learn_bit_for_bit_as_separate_steps(kind, monkeypatch):
    """A costly action's reward and consumption models share their products and rank-1 step
    while their designs are equal (OutcomeModels.paired); the results are bitwise those of
    the separate steps, through resyncs, and after updates that part the designs."""
    from scarce.budget.models import OutcomeModels

    def make():
        if kind == "knapsack":
            p = KnapsackBandit(
                n_actions=4,
                n_features=3,
                budget=[200.0, 300.0],
                horizon=300,
                n_resources=2,
                free_action=1,
                dual={"warmup_rounds": 10},
                seed=3,
            )
        else:
            p = Deferral(n_features=4, budget=200.0, horizon=300, seed=4)
        p._ensure_initialized(np.zeros((1, p.n_features)))
        for group in (p.models_.reward_groups, p.models_.cost_groups):
            group[0][2].model.resync_every = 23  # refactorisations inside the run
        return p

    K, m = (4, 2) if kind == "knapsack" else (2, 1)
    shared = make()
    got_state, got_scores, paired = _paired_run(shared, K, m, 7)
    # paired until the full-information costs part the designs (a knapsack's: every costly
    # action's consumption model learns the row; a deferral's part only if the model was used)
    assert all(paired[:90])
    assert kind == "deferral" or not any(paired[90:])
    monkeypatch.setattr(OutcomeModels, "paired", lambda self: False)
    separate = make()
    separate.models_._paired = False
    want_state, want_scores, _ = _paired_run(separate, K, m, 7)
    np.testing.assert_array_equal(got_scores, want_scores)
    for part in ("reward", "cost"):
        for key, value in want_state["models"][part]["identity"].items():
            np.testing.assert_array_equal(got_state["models"][part]["identity"][key], value)
    np.testing.assert_array_equal(got_state["dual"]["weights"], want_state["dual"]["weights"])


def test_add_one_paired_is_two_add_ones():
    from scarce.models.ridge import RidgeRegression

    rng = np.random.default_rng(0)
    a1, b1 = RidgeRegression(3, 4, lam=0.5), RidgeRegression(2, 4, lam=0.5, n_targets=2)
    a2, b2 = RidgeRegression(3, 4, lam=0.5), RidgeRegression(2, 4, lam=0.5, n_targets=2)
    for r in (a1, b1, a2, b2):
        r.resync_every = 5
    for _ in range(40):
        x, y, z = rng.normal(size=4), rng.normal(), rng.normal(size=2)
        a1.add_one_paired(2, x, y, b1, 1, z)
        a2.add_one(2, x, y)
        b2.add_one(1, x, z)
    for one, two in ((a1, a2), (b1, b2)):
        for key, value in two.get_state().items():
            np.testing.assert_array_equal(one.get_state()[key], value)
