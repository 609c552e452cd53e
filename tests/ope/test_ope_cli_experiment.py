"""``scarce ope LOGS.parquet`` and ``scarce run ope-obd``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from opelogs import draw
from typer.testing import CliRunner

import scarce.ope as ope
from scarce.cli import app
from scarce.policies import LinUCB

runner = CliRunner()


def test_ope_command_prints_estimates_with_intervals(tmp_path):
    data, types = draw(400, 0, logging=np.full((4, 3), 1 / 3))
    path = data.to_parquet(tmp_path / "logs.parquet")
    pol = LinUCB(n_actions=3, n_features=4, seed=0)
    pol.update(data.contexts, data.actions, data.rewards)
    pol.save(tmp_path / "linucb")
    result = runner.invoke(
        app,
        ["ope", str(path), "--policy", "uniform", "--policy", str(tmp_path / "linucb")],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    for word in ("uniform", "linucb", "ips", "snips", "switch_dr", "replay", "ESS", "matched"):
        assert word in result.output
    # the printed IPS value of the uniform target is the library's
    value = ope.ips(data, np.full((400, 3), 1 / 3)).value
    assert f"{value:.5g}" in result.output


def test_ope_command_errors(tmp_path):
    data, _ = draw(50, 1)
    path = data.to_parquet(tmp_path / "logs.parquet")
    bad = runner.invoke(app, ["ope", str(path), "--policy", "nonsense"])
    assert bad.exit_code == 2 and "built-in" in bad.output
    missing = runner.invoke(app, ["ope", str(tmp_path / "none.parquet"), "--policy", "uniform"])
    assert missing.exit_code == 2
    wrong = runner.invoke(app, ["ope", str(path), "--policy", "uniform", "--estimator", "replay"])
    assert wrong.exit_code == 2 and "deterministic" in wrong.output


@pytest.mark.data
def test_ope_obd_experiment_writes_contract_outputs(tmp_path, no_network):
    from scarce.sim.experiments import SUMMARY_COLUMNS, run_experiment

    summary, paths = run_experiment("ope-obd", out=tmp_path, horizon=2000, seeds=1, n_jobs=1)
    written = pd.read_csv(tmp_path / "summary.csv")
    assert tuple(written.columns) == SUMMARY_COLUMNS
    assert set(written["env"]) == {"obd-all", "obd-men", "obd-women"}
    assert paths["estimate_vs_truth"].is_file() and paths["estimates"].is_file()
    truth = written[written["metric"] == "truth"]
    assert truth["value"].between(0.003, 0.008).all()
    est = pd.read_parquet(paths["estimates"])
    assert set(est["estimator"]) == {"ips", "snips", "clipped_ips", "dm", "dr", "switch_dr"}
    assert set(est["target"]) == {"bts", "bts-obp", "random"}
    # the two BTS targets share the truth (the BTS click rate), not the estimates
    by = est[est["estimator"] == "ips"].set_index(["campaign", "target"])
    for campaign in ("all", "men", "women"):
        assert by.loc[(campaign, "bts"), "truth"] == by.loc[(campaign, "bts-obp"), "truth"]
        assert by.loc[(campaign, "bts"), "estimate"] != by.loc[(campaign, "bts-obp"), "estimate"]
    # random logs (uniform propensities 1/K): IPS of BTS is within 4 se of the truth
    bts = est[(est["target"] == "bts") & (est["estimator"] == "ips")]
    assert (np.abs(bts["estimate"] - bts["truth"]) < 4 * np.hypot(bts["se"], bts["truth_se"])).all()
