"""Pinned seeded trajectories of the budgeted learners (issue 18): the speed work on the
budget path must not change a single decision. Each case runs a short seeded loop with a
budget that binds (warm-up, ``Z`` estimate, priced rounds, the ledger's stopping rule) and
records every action, the scores and ``Decision.info`` of every round and the final learned
state; the recorded file (``data/trajectories.json``) was written by the code before the
optimisation. Actions must match exactly, floats to ``rtol = 1e-10`` (bit-identical on the
machine that wrote the file; the tolerance only absorbs a different BLAS).

Regenerate (only for an intended change of behaviour) with
``python tests/budget/test_trajectory.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scarce.budget import Deferral, KnapsackBandit, SyntheticDeferral
from scarce.sim import PolicySpec, run

DATA = Path(__file__).parent / "data" / "trajectories.json"
T = 240


def _loop(policy, K: int, m: int, seed: int, *, batch: int = 1, full_costs: bool = False):
    """Decide and update on seeded uniform contexts, rewards and costs; the deferral policies
    also get the model's reward every round."""
    rng = np.random.default_rng(seed)
    d = policy.n_features
    deferral = isinstance(policy, Deferral)
    free = int(policy.free_action)
    out: dict[str, list] = {"actions": [], "scores": [], "cost_lcb": [], "priced": []}
    for t in range(0, T, batch):
        X = rng.uniform(-1, 1, (batch, d))
        R = rng.uniform(0, 1, (batch, K))
        C = rng.uniform(0, 1, (batch, K, m))
        C[:, free] = 0.0
        eligible = None
        if batch > 1 and t % 3 == 0:
            eligible = rng.random((batch, K)) < 0.7
            eligible[:, free] = True
        dec = policy.decide(X, eligible=eligible) if eligible is not None else policy.decide(X)
        a = dec.actions
        rows = np.arange(batch)
        kw = {"costs": C if full_costs else C[rows, a], "info": dec.info}
        if deferral:
            kw["model_rewards"] = R[:, 0]
        if batch == 1 and m == 1 and not full_costs and t % 2 == 0:
            kw["costs"] = C[:, a[0], 0]  # the (n,) form of one resource
        policy.update(X, a, R[rows, a], **kw)
        out["actions"] += a.tolist()
        out["scores"] += dec.scores.tolist()
        out["cost_lcb"] += dec.info["cost_lcb"].tolist()
        out["priced"] += dec.info["priced"].tolist()
    state = policy._get_state()["learned"]
    out["weights"] = policy.prices_.weights.tolist()
    out["spent"] = state["ledger"]["spent"].tolist()
    out["reserved"] = state["ledger"]["reserved"].tolist()
    out["Z"] = policy.Z_
    out["final_scores"] = policy.scores(
        np.random.default_rng(seed + 1).uniform(-1, 1, (5, d))
    ).tolist()
    return out


def _sim(feedback: str):
    """Deferral through the simulation loop (eligible mask from the loop's ledger, costs and
    model rewards from the environment)."""
    env = SyntheticDeferral("heterogeneous", seed=3, budget_rate=0.2, n_features=4)
    policy = PolicySpec("Deferral", {"feedback": feedback}).build_for(env, 3, T)
    tr = run(policy, env, T, seed=3)
    return {
        "actions": tr.action.tolist(),
        "reward": tr.reward.tolist(),
        "cost_lcb": tr.info["cost_lcb"].tolist(),
        "weights": policy.prices_.weights.tolist(),
        "Z": policy.Z_,
    }


CASES = {
    "deferral-full": lambda: _loop(
        Deferral(n_features=5, budget=20.0, horizon=T, dual={"warmup_rounds": 20}, seed=1),
        2,
        1,
        10,
    ),
    "deferral-bandit-logistic": lambda: _loop(
        Deferral(
            n_features=4,
            budget=15.0,
            horizon=T,
            feedback="bandit",
            human_link="logistic",
            cost_link="logistic",
            seed=2,
        ),
        2,
        1,
        11,
    ),
    "knapsack-k5-m3": lambda: _loop(
        KnapsackBandit(
            n_actions=5,
            n_features=4,
            budget=[12.0, 30.0, 20.0],
            horizon=T,
            n_resources=3,
            free_action=2,
            cost_link=["identity", "logistic", "identity"],
            dual={"warmup_rounds": 15},
            seed=3,
        ),
        5,
        3,
        12,
    ),
    "knapsack-k4-m2-batches": lambda: _loop(
        KnapsackBandit(
            n_actions=4, n_features=3, budget=[15.0, 25.0], horizon=T, n_resources=2, seed=4
        ),
        4,
        2,
        13,
        batch=4,
    ),
    "knapsack-k3-m1-full-costs": lambda: _loop(
        KnapsackBandit(
            n_actions=3,
            n_features=3,
            budget=18.0,
            horizon=T,
            dual={"z_method": "fixed", "Z": 2.0},
            seed=5,
        ),
        3,
        1,
        14,
        full_costs=True,
    ),
    "sim-deferral-full": lambda: _sim("full"),
    "sim-deferral-bandit": lambda: _sim("bandit"),
}


def _compare(got, want, path):
    if isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for k in want:
            _compare(got[k], want[k], f"{path}.{k}")
    elif path.endswith(".actions") or path.endswith(".priced"):
        assert got == want, f"{path}: decisions differ"
    elif want is None:
        assert got is None, path
    else:
        np.testing.assert_allclose(
            np.asarray(got, float), np.asarray(want, float), rtol=1e-10, atol=1e-300, err_msg=path
        )


@pytest.mark.parametrize("name", list(CASES))
def test_seeded_trajectory_is_unchanged(name):
    want = json.loads(DATA.read_text())[name]
    _compare(CASES[name](), want, name)


def test_the_recorded_budgets_bind():
    """The pinned runs exercise the budget: each loop spent most of a resource's budget."""
    data = json.loads(DATA.read_text())
    assert data["deferral-full"]["spent"][0] > 0.8 * 20.0
    assert data["knapsack-k5-m3"]["spent"][0] > 0.8 * 12.0
    assert any(not p for p in data["knapsack-k5-m3"]["priced"])  # the warm-up is in it


if __name__ == "__main__":
    DATA.write_text(json.dumps({name: case() for name, case in CASES.items()}))
