"""Issue 13's done-when for the budget: a TOML config runs Deferral beside LinUCB on
deferral-synthetic through the one loop, reporting budget and budget_spent per run, never
overspent; the budgeted policies build from flat dicts as the service builds them."""

import numpy as np
import pandas as pd
import pytest

from scarce.policies import get_policies
from scarce.sim.experiments import run_experiment

CONFIG = """
name = "deferral-vs-linucb"
horizon = 150
seeds = 2
n_checkpoints = 10

[[envs]]
name = "deferral-synthetic"
regime = "heterogeneous"
budget_rate = 0.1

[[envs]]
name = "deferral-digits"
label = "digits"
budget_rate = 0.05

[[policies]]
name = "Deferral"

[[policies]]
name = "Deferral"
label = "Deferral-tight"
confidence = { beta_scale = 0.5 }
dual = { warmup_rounds = 10 }

[[policies]]
name = "LinUCB"

[[policies]]
name = "KnapsackBandit"
"""


def test_toml_config_runs_deferral_beside_linucb_within_budget(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text(CONFIG)
    summary, paths = run_experiment(path, out=tmp_path / "out", n_jobs=1)
    assert set(summary["policy"]) == {"Deferral", "Deferral-tight", "LinUCB", "KnapsackBandit"}
    wide = summary.pivot_table(index=["env", "policy", "seed"], columns="metric", values="value")
    assert len(wide) == 2 * 4 * 2
    assert {"budget", "budget_spent"} <= set(wide.columns)
    assert wide["budget"].loc["deferral-synthetic"].eq(15.0).all()
    assert wide["budget"].loc["digits"].eq(7.5).all()
    assert (wide["budget_spent"] <= wide["budget"] + 1e-9).all()
    assert (wide["budget_spent"] > 0).any()
    assert len(pd.read_parquet(paths["traces"])) > 0


@pytest.mark.parametrize("name", ["KnapsackBandit", "Deferral", "NeuralDeferral"])
def test_budget_policies_build_from_a_flat_dict(name):
    if name == "NeuralDeferral":
        pytest.importorskip("torch")
    cls = get_policies()[name]
    params = {"n_actions": 3 if name == "KnapsackBandit" else 2, "n_features": 4}
    params.update({"budget": 20.0, "horizon": 200})
    pol = cls(**params)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(size=(1, 4))
        d = pol.decide(x)
        cost = np.zeros(1) if d.actions[0] == 0 else np.array([0.5])
        extra = {"model_rewards": [0.5]} if name != "KnapsackBandit" else {}
        reward = [0.5] if name == "KnapsackBandit" or d.actions[0] == 1 else extra["model_rewards"]
        pol.update(x, d.actions, reward, costs=cost, info=d.info, **extra)
    assert cls(**pol.get_params()).get_params() == pol.get_params()
