"""Served means registered (issue 13, item 5): every registered policy is served from the TOML
keys its constructor takes, learns through the service and replays to the same state; what a
decision knew (``Decision.info``) is logged and handed back to ``update``; decision-time and
feedback keywords, vector rewards and a policy's own hard budget go through the API."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from registered import case, cohort, cohort_rewards, config_doc, reward_of, write_config
from servetools import ThreadServer, toml_text

from scarce.policies import get_policies
from scarce.serve import (
    DecisionService,
    EventStore,
    RequestError,
    config_from_dict,
    create_app,
    load_config,
    models_equal,
    replay,
)
from scarce.serve import served as served_module
from scarce.serve.budgets import LEDGER_PREFIX
from scarce.serve.served import ServedPolicy
from scarce.serve.traits import SERVED_ACTION_TYPES

POLICIES = get_policies()
N_EVENTS = 12


def _serve_and_learn(cls, tmp_path, clock, n=N_EVENTS):
    path, config = write_config(tmp_path, cls)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    svc = DecisionService(config, store, clock=clock)
    rng = np.random.default_rng(1)
    versions = []
    for i in range(n):
        X, kw = case(cls, config, rng)
        answer = svc.decide(event_id=f"e{i}", **kw).to_dict()
        versions.append(answer["model_version"])
        svc.reward(f"e{i}", **reward_of(cls, config, rng, X, answer))
        clock.advance(1.0)
        if i % 3 == 2:
            svc.sync()
    svc.sync()
    return svc, config, versions


def _allocate_and_learn(cls, tmp_path, clock, n=N_EVENTS, size=4):
    """An ``"allocation"`` policy served cohort by cohort (``size`` cases, the same units for
    two rounds), each case rewarded through the reward path with the round's total."""
    path, config = write_config(tmp_path, cls)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    svc = DecisionService(config, store, clock=clock)
    rng = np.random.default_rng(1)
    versions = []
    for t in range(n // size):
        units = [size * (t // 2) + i for i in range(size)]
        X, cases, caps = cohort(cls, config, rng, size, units)
        result = svc.allocate(cases, capacities=caps, cohort_id=f"c{t}")
        versions.append(result.model_version)
        for kw in cohort_rewards(cls, config, rng, X, result):
            svc.reward(**kw)
        clock.advance(1.0)
        svc.sync()
    return svc, config, versions


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_registered_policy_is_served_learns_and_replays(name, tmp_path, clock):
    cls = POLICIES[name]
    assert cls.action_type in SERVED_ACTION_TYPES  # no variant is refused
    if cls.action_type == "allocation":
        svc, config, versions = _allocate_and_learn(cls, tmp_path, clock)
    else:
        svc, config, versions = _serve_and_learn(cls, tmp_path, clock)
    try:
        assert svc.watermark == N_EVENTS and versions[-1] > 0  # the model moved under load
        assert svc.store.counts()["quarantined"] == 0 and svc.n_learned == N_EVENTS
        assert not models_equal(svc.policy, config.make_policy())  # it learned
        assert models_equal(replay(config, svc.store), svc.policy)
        if cls.action_type == "allocation":  # every case's outcome is in its history
            assert svc.policy.n_updates_ == N_EVENTS and svc.policy.rounds_ == N_EVENTS // 4
    finally:
        svc.store.close()


@pytest.mark.parametrize(
    "name", sorted(n for n, c in POLICIES.items() if c.action_type != "allocation")
)
def test_small_distributions_are_checked_on_floats_as_in_numpy(name, tmp_path, clock, monkeypatch):
    """The choice of a policy over a few actions (``ServedPolicy._full_choice``: checks and
    argmax on Python floats) equals the general path's (NumPy) for every served policy."""
    cls = POLICIES[name]
    svc, config, _ = _serve_and_learn(cls, tmp_path, clock, n=6)
    try:
        rng = np.random.default_rng(4)
        if config.traits.decide_keywords:
            pytest.skip(f"{name} needs decision-time keywords")
        # an untrained model (uniform or tied distributions: ties go to the lowest id) and
        # the learned one
        for served in (ServedPolicy(config), svc.active.served):
            for i in range(5):
                X, _ = case(cls, config, rng)
                X = np.asarray(X, dtype=float)
                small = served.choose(X, None, f"c{i}", {})
                monkeypatch.setattr(served_module, "_PYTHON_CHECKS", 0)
                general = served.choose(X, None, f"c{i}", {})
                monkeypatch.undo()
                assert small == general
    finally:
        svc.store.close()


def test_small_distribution_ties_go_to_the_lowest_id():
    """As ``np.argmax``: the first of equal maxima (a deterministic policy's one-hot has
    none, so the served policies above cannot show it)."""
    for probs in ([0.5, 0.5, 0.0], [0.0, 0.25, 0.25, 0.25, 0.25], [1 / 3] * 3):
        choice = ServedPolicy._full_choice(list(probs), None, 1)
        assert choice.action == int(np.argmax(probs)) and choice.probability == max(probs)


@pytest.mark.parametrize(
    "probs",
    [[np.nan, 0.0, 1.0], [np.inf, 0.0, 0.0], [0.5, 0.2, 0.2], [1e308, 1e308, -1e308], [0.0] * 3],
)
@pytest.mark.parametrize("limit", [64, 0])
@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_a_distribution_that_is_not_one_is_refused_on_either_path(probs, limit, monkeypatch):
    """NaN, infinity, an overflowing sum or a sum other than 1: the same 422 error from the
    float checks and from NumPy's."""
    served = ServedPolicy(config_from_dict({"type": "LinUCB", "n_actions": 3, "n_features": 2}))
    monkeypatch.setattr(served_module, "_PYTHON_CHECKS", limit)
    monkeypatch.setattr(
        served.policy, "action_probabilities", lambda X, **kw: np.array([probs], dtype=float)
    )
    with pytest.raises(RequestError, match="cannot score this context"):
        served.choose(np.zeros((1, 2)), None, "e", {})


@pytest.mark.usefixtures("protocol_policies")
@pytest.mark.parametrize("name", ["TinyKnapsack", "TinyVector", "TinyGrouped"])
def test_protocol_test_policies_are_served_learn_and_replay(name, tmp_path, clock):
    svc, config, _ = _serve_and_learn(get_policies()[name], tmp_path, clock, n=30)
    try:
        assert svc.watermark == 30 and svc.store.counts()["quarantined"] == 0
        assert models_equal(replay(config, svc.store), svc.policy)
    finally:
        svc.store.close()


@pytest.mark.usefixtures("protocol_policies")
def test_info_is_logged_and_handed_back_to_update(tmp_path, clock, monkeypatch):
    from protocol_policies import TinyGrouped

    _, config = write_config(tmp_path, TinyGrouped)
    svc = DecisionService(config, EventStore(f"sqlite:///{tmp_path / 'e.db'}"), clock=clock)
    svc.decide([0.1, 0.2, 0.3], event_id="a", keywords={"groups": 2})
    rec = svc.store.get_decision("a")
    assert json.loads(rec.info) == {"group": 2} and json.loads(rec.extras) == {"groups": 2}
    seen = []
    original = TinyGrouped._learn

    def spy(self, X, actions, rewards, full_rewards, **extra):
        seen.append({k: np.asarray(v).tolist() for k, v in extra.items()})
        return original(self, X, actions, rewards, full_rewards, **extra)

    monkeypatch.setattr(TinyGrouped, "_learn", spy)
    svc.reward("a", 1.0, extras={"model_rewards": 0.25})
    svc.sync()
    assert seen == [{"info": {"group": [2]}, "model_rewards": [0.25]}]
    # the group the decision was made for is what it learns under
    assert svc.policy.counts_[2].sum() >= 1 and svc.policy.counts_[0].sum() == 0
    svc.store.close()


@pytest.mark.usefixtures("protocol_policies")
def test_keywords_are_validated_per_config(tmp_path, clock):
    _, config = write_config(tmp_path, get_policies()["TinyGrouped"])
    svc = DecisionService(config, EventStore(f"sqlite:///{tmp_path / 'e.db'}"), clock=clock)
    for kw, field in [
        ({"groups": -1}, "groups"),
        ({"groups": 1.5}, "groups"),
        ({"colour": 1}, "colour"),
    ]:
        with pytest.raises(RequestError) as err:
            svc.decide([0.0, 0.0, 0.0], keywords=kw)
        assert err.value.field == field
    svc.decide([0.0, 0.0, 0.0], event_id="x", keywords={"groups": 1})
    with pytest.raises(RequestError) as err:
        svc.reward("x", 1.0, extras={"model_rewards": [1.0, 2.0]})
    assert err.value.field == "model_rewards"
    with pytest.raises(RequestError) as err:
        svc.reward("x", 1.0, extras={"item_rewards": [1.0]})
    assert err.value.field == "item_rewards"
    # a retry with other keywords is another request
    from scarce.serve import EventConflictError

    with pytest.raises(EventConflictError):
        svc.decide([0.0, 0.0, 0.0], event_id="x", keywords={"groups": 2})
    svc.store.close()


@pytest.mark.usefixtures("protocol_policies")
def test_vector_rewards_are_lists_of_m_numbers(tmp_path, clock):
    _, config = write_config(tmp_path, get_policies()["TinyVector"])
    assert config.reward_dim == 2 and config.reward_weights == (0.5, 0.5)
    svc = DecisionService(config, EventStore(f"sqlite:///{tmp_path / 'e.db'}"), clock=clock)
    svc.decide([0.0, 0.0, 0.0], event_id="v")
    with pytest.raises(RequestError, match="2 component"):
        svc.reward("v", 1.0)
    svc.reward("v", [1.0, 3.0])
    svc.sync()
    assert svc.policy.sums_.sum(axis=0).tolist() == [1.0, 3.0]  # the vector was learned
    assert svc.store.logged_rows()[0][3] == 2.0  # the scalar summary: the mean
    doc = config_doc(get_policies()["TinyVector"])
    doc["service"]["reward_dim"] = 3
    with pytest.raises(Exception, match="n_objectives"):
        config_from_dict(doc)
    svc.store.close()


# ---------------------------------------------------------------------- the policy's own budget
def _budgeted(tmp_path, clock, **params):
    doc = config_doc(get_policies()["TinyKnapsack"])
    doc.update({"budget": 3.0, "horizon": 20, "warmup": 2, **params})
    config = config_from_dict(doc)
    return DecisionService(config, EventStore(f"sqlite:///{tmp_path / 'b.db'}"), clock=clock)


@pytest.mark.usefixtures("protocol_policies")
def test_the_database_ledger_reserves_settles_and_refunds(tmp_path, clock):
    svc = _budgeted(tmp_path, clock, cost_bound=1.0)
    traits = svc.config.traits
    assert traits.stateful_decide and traits.learns_costs and traits.budget.tolist() == [3.0]
    row = {r: v for r, g, _, v in svc.store.budget_rows()}
    assert row == {f"{LEDGER_PREFIX}0": 3.0}
    costly = []
    i = 0
    while len(costly) < 3:
        r = svc.decide([0.0, 0.0, float(i)], event_id=f"c{i}")
        if r.action != 0:
            costly.append(r.event_id)
        i += 1
    # three reservations of the bound: nothing costly is affordable any more
    assert svc.store.remaining_budgets()[(f"{LEDGER_PREFIX}0", "")] == pytest.approx(0.0)
    assert all(svc.decide([1.0, 0.0, float(j)]).action == 0 for j in range(10))
    with pytest.raises(RequestError, match="exceeds the cost bound") as err:
        svc.reward(costly[0], 1.0, cost=1.5)
    assert err.value.field == "cost"
    with pytest.raises(RequestError, match="required") as err:
        svc.reward(costly[0], 1.0)
    assert svc.reward(costly[0], 1.0, cost=0.25) == "accepted"  # settles: 0.75 back
    assert svc.store.remaining_budgets()[(f"{LEDGER_PREFIX}0", "")] == pytest.approx(0.75)
    assert svc.reward(costly[0], 1.0, cost=0.25) == "duplicate"  # no second refund
    assert svc.reward(costly[0], 0.0, cost=0.0) == "ignored"  # nor for an ignored one
    assert svc.store.remaining_budgets()[(f"{LEDGER_PREFIX}0", "")] == pytest.approx(0.75)
    svc.sync()
    # the learner's own ledger books the realised cost; replay reproduces it
    assert svc.policy.ledger_.spent.tolist() == [0.25]
    assert models_equal(replay(svc.config, svc.store), svc.policy)
    svc.store.close()


@pytest.mark.usefixtures("protocol_policies")
def test_sum_aggregation_settles_at_the_join(tmp_path, clock):
    svc = _budgeted(tmp_path, clock, cost_bound=1.0, **{})
    doc = svc.config.to_doc()
    svc.store.close()
    doc["service"]["aggregation"] = "sum"
    doc["service"]["reward_window"] = 10.0
    svc = DecisionService(
        config_from_dict(doc), EventStore(f"sqlite:///{tmp_path / 's.db'}"), clock=clock
    )
    i = 0
    while True:
        r = svc.decide([0.0, 0.0, float(i)], event_id=f"s{i}")
        i += 1
        if r.action != 0:
            break
    left = svc.store.remaining_budgets()[(f"{LEDGER_PREFIX}0", "")]
    svc.reward(r.event_id, 0.5, cost=0.5)
    with pytest.raises(RequestError, match="exceeds"):
        svc.reward(r.event_id, 0.5, cost=0.75)  # 0.5 + 0.75 > the bound 1
    svc.reward(r.event_id, 0.25, cost=0.25)
    assert svc.store.remaining_budgets()[(f"{LEDGER_PREFIX}0", "")] == left  # not yet
    clock.advance(20.0)
    svc.sync()
    assert svc.store.remaining_budgets()[(f"{LEDGER_PREFIX}0", "")] == pytest.approx(left + 0.25)
    svc.store.close()


@pytest.mark.usefixtures("protocol_policies")
def test_budgeted_policy_never_overspends_and_its_learner_replays_decisions(tmp_path, clock):
    svc = _budgeted(tmp_path, clock, cost_bound=1.0)
    rng = np.random.default_rng(0)
    spent = 0.0
    for i in range(60):
        try:
            r = svc.decide(rng.normal(size=3).tolist(), event_id=f"e{i}")
        except Exception:  # noqa: BLE001
            raise
        cost = 0.0 if r.action == 0 else float(rng.uniform(0.2, 1.0))
        spent += cost
        svc.reward(f"e{i}", float(rng.random()), cost=cost)
        if i % 5 == 4:
            svc.sync()
    svc.sync()
    assert spent <= 3.0 + 1e-9
    # decisions counted in decide (the warm-up) are replayed by the learner, in join order
    assert svc.policy.n_decided_ == 60
    assert models_equal(replay(svc.config, svc.store), svc.policy)
    # the served model is never changed by a decision (it decides on a copy)
    before = svc.policy.n_decided_
    svc.decide([0.0, 0.0, 0.0], event_id="probe")
    assert svc.policy.n_decided_ == before
    svc.store.close()


def test_fixed_costs_share_the_ledger_rule(tmp_path, make_service):
    from scarce.core.ledger import affordable

    svc = make_service(budgets={"beds": {"total": 1.5, "costs": [0.0, 1.0, 2.0]}})
    rules = svc.active.rules
    remaining = svc.store.remaining_budgets()
    assert (
        rules.allowed(None, remaining).tolist()
        == affordable(np.array([[0.0], [1.0], [2.0]]), np.array([1.5])).tolist()
        == [True, True, False]
    )


# ---------------------------------------------------------------------- over real uvicorn
@pytest.mark.usefixtures("protocol_policies")
def test_keywords_vector_and_budget_over_uvicorn(tmp_path):
    import httpx

    from scarce.serve.auth import KeyVerifier, hash_key

    key = "k-" + "x" * 30
    out = {}
    for name, params in [
        ("TinyGrouped", {}),
        ("TinyVector", {}),
        ("TinyKnapsack", {"budget": 2.0, "horizon": 20, "warmup": 1}),
    ]:
        doc = config_doc(get_policies()[name])
        doc.update(params)
        path = tmp_path / f"{name}.toml"
        path.write_text(toml_text(doc))
        config = load_config(path)
        svc = DecisionService(config, EventStore(f"sqlite:///{tmp_path / (name + '.db')}"))
        app = create_app(svc, keys=KeyVerifier([hash_key(key)]))
        H = {"X-API-Key": key}
        with ThreadServer(app) as server, httpx.Client(base_url=server.url, headers=H) as c:
            schema = c.get("/openapi.json").json()["components"]["schemas"]
            body = {"context": [0.1, 0.2, 0.3], "event_id": "a"}
            if name == "TinyGrouped":
                assert "groups" in schema["DecisionRequest"]["properties"]
                assert "model_rewards" in schema["RewardRequest"]["properties"]
                bad = c.post("/v1/decisions", json={**body, "groups": "x"})
                assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "groups"
                body["groups"] = 1
            d = c.post("/v1/decisions", json=body)
            assert d.status_code == 200, d.text
            reward = {"event_id": "a", "value": 1.0}
            if name == "TinyGrouped":
                reward["model_rewards"] = 0.5
            if name == "TinyVector":
                v = schema["RewardRequest"]["properties"]["value"]
                assert v["minItems"] == v["maxItems"] == 2
                assert c.post("/v1/rewards", json=reward).status_code == 422
                reward["value"] = [1.0, 0.0]
            if name == "TinyKnapsack":
                reward["cost"] = 0.0 if d.json()["action"] == 0 else 0.5
            r = c.post("/v1/rewards", json=reward)
            assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
            assert c.post("/v1/snapshots").status_code == 201
            out[name] = c.get("/v1/policies/default").json()["model_version"]
        assert models_equal(replay(config, svc.store), svc.policy)
        svc.store.close()
    assert out == {"TinyGrouped": 1, "TinyVector": 1, "TinyKnapsack": 1}


LEARNED_BUDGETED = [n for n in ("KnapsackBandit", "Deferral") if n in POLICIES]


@pytest.mark.skipif(
    not LEARNED_BUDGETED,
    reason="KnapsackBandit and Deferral are not registered on this branch (scarce.budget is "
    "being rewritten); this test runs once they are",
)
@pytest.mark.parametrize("name", LEARNED_BUDGETED or ["KnapsackBandit"])
def test_learned_budgeted_policy_end_to_end_over_uvicorn(name, tmp_path):
    """``type = "KnapsackBandit"`` (n_actions 3, n_features 4, budget 20, horizon 200) or
    ``"Deferral"`` served over HTTP: the learned prices choose, the database ledger enforces
    the budget (never overspent), the costs reported with the rewards are learned, and the
    model replays exactly."""
    import httpx

    from scarce.serve.auth import KeyVerifier, hash_key

    K = 3 if name == "KnapsackBandit" else 2
    doc = {"type": name, "n_actions": K, "n_features": 4, "budget": 20.0, "horizon": 200}
    doc["seed"] = 0
    doc["service"] = {"sync_interval": 0.2, "snapshot_every": 50}
    path = tmp_path / "p.toml"
    path.write_text(toml_text(doc))
    config = load_config(path)
    assert config.traits.budget is not None and config.traits.learns_costs
    svc = DecisionService(config, EventStore(f"sqlite:///{tmp_path / 'k.db'}"))
    key = "k-" + "y" * 30
    app = create_app(svc, keys=KeyVerifier([hash_key(key)]), background_sync=True)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(K, 4))
    spent = 0.0
    with (
        ThreadServer(app) as server,
        httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as c,
    ):
        for i in range(200):
            x = rng.normal(size=4)
            body = {"context": x.tolist(), "event_id": f"e{i}"}
            d = c.post("/v1/decisions", json=body)
            assert d.status_code == 200, d.text
            a = d.json()["action"]
            cost = 0.0 if a == 0 else float(rng.uniform(0.2, 1.0))
            spent += cost
            reward = {
                "event_id": f"e{i}",
                "value": float(1 / (1 + np.exp(-x @ theta[a]))),
                "cost": cost,
            }
            if name == "Deferral":
                reward["model_rewards"] = float(1 / (1 + np.exp(-x @ theta[0])))
                if a == 0:
                    reward["value"] = reward["model_rewards"]
            r = c.post("/v1/rewards", json=reward)
            assert r.status_code == 200, r.text
        assert c.post("/v1/snapshots").status_code == 201
    assert spent <= 20.0 + 1e-9
    assert svc.store.counts()["quarantined"] == 0 and svc.watermark == 200
    model = svc.policy
    assert model.ledger_.spent[0] == pytest.approx(spent)  # the reported costs were learned
    assert model.Z_ is not None  # past its warm-up: the learned prices choose
    assert models_equal(replay(config, svc.store), model)
    svc.store.close()


@settings(max_examples=200, deadline=None)
@given(
    costs=st.lists(
        st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=3, max_size=3),
        min_size=1,
        max_size=2,
    ),
    left=st.lists(st.sampled_from([0.0, 0.4, 0.5, 1.0, 1.5, 2.0, 5.0]), min_size=4, max_size=4),
    ledger=st.booleans(),
)
def test_budget_rules_allow_what_the_ledger_rule_allows(costs, left, ledger):
    """The service's affordability (with its shortcut while every budget is far from spent)
    is scarce.core.ledger.affordable, for fixed costs, quotas and a policy's own ledger."""
    from scarce.core.ledger import affordable
    from scarce.serve.budgets import BudgetRules

    fixed = [(f"r{j}", 10.0, c, {"g": 1.0} if j == 0 else {}) for j, c in enumerate(costs)]
    bound = np.array([[0.0], [1.0], [0.5]]) if ledger else None
    rules = BudgetRules(3, fixed, np.array([3.0]) if ledger else None, bound)
    remaining = {(r, ""): left[j] for j, r in enumerate(rules.resources)}
    remaining[("r0", "g")] = left[-1]
    cb = rules.cost_bound
    want = affordable(cb, np.array([remaining[(r, "")] for r in rules.resources]))
    assert rules.allowed(None, remaining).tolist() == want.tolist()
    with_quota = want & affordable(cb[:, :1], np.array([left[-1]]))
    assert rules.allowed("g", remaining).tolist() == with_quota.tolist()
