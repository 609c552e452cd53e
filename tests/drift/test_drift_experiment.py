"""Discounted and windowed learners after a change, and the ``drift`` experiment's outputs."""

from __future__ import annotations

import pandas as pd
import pytest

from scarce.drift import PiecewiseLinearEnv
from scarce.policies import LinUCB
from scarce.sim import run


@pytest.mark.statistical
def test_forgetting_and_window_recover_after_a_change():
    regret = {}
    for label, kw in (("stationary", {}), ("discounted", {"forgetting": 0.99}),
                      ("window", {"window": 300})):  # fmt: skip
        env = PiecewiseLinearEnv(change_every=1000, n_segments=2, seed=11)
        pol = LinUCB(n_actions=5, n_features=5, alpha=0.5, seed=0, **kw)
        regret[label] = run(pol, env, 2000, seed=3).regret[1000:].sum()
    assert regret["discounted"] < 0.5 * regret["stationary"]
    assert regret["window"] < 0.5 * regret["stationary"]


def test_drift_experiment_writes_contract_outputs(tmp_path):
    from scarce.sim.experiments import SUMMARY_COLUMNS, run_experiment

    summary, paths = run_experiment("drift", out=tmp_path, horizon=40, seeds=1, n_jobs=1)
    written = pd.read_csv(tmp_path / "summary.csv")
    assert tuple(written.columns) == SUMMARY_COLUMNS
    assert set(written["env"]) == {"piecewise", "drifting"}
    assert {"LinUCB-CUSUM", "LinTS-GLR", "LinTS-window", "LinUCB"} <= set(written["policy"])
    assert paths["regret"].is_file() and paths["traces"].is_file()
