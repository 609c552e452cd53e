"""docs/configs.md: its TOML examples run as written, and its key tables list every key the
readers accept (taken from the readers' own error messages, so a new key fails this test
until the page documents it)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scarce.cli import app
from scarce.serve import ConfigError, config_from_dict
from scarce.serve import load_config as load_service_config
from scarce.sim import ExperimentError, load_config

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configs.md"


def _block(kind: str) -> str:
    text = PAGE.read_text()
    match = re.search(rf"<!-- config: {kind} -->\n```toml\n(.*?)```", text, re.S)
    assert match, f"docs/configs.md has no `<!-- config: {kind} -->` TOML block"
    return match.group(1)


def _table_keys(after_heading: str) -> set[str]:
    """The backticked names in the first column of the first key table after a heading."""
    text = PAGE.read_text()
    section = text[text.index(after_heading) :]
    start = section.index("| key |")
    table = section[start : section.index("\n\n", start)]
    keys: set[str] = set()
    for row in table.splitlines()[2:]:
        keys.update(re.findall(r"`([^`]+)`", row.split("|")[1]))
    return keys


def test_experiment_example_runs_with_the_documented_command(tmp_path: Path) -> None:
    config = tmp_path / "linear-vs-logistic.toml"
    config.write_text(_block("experiment"))
    experiment = load_config(config)
    assert experiment.name == "linear-vs-logistic" and experiment.horizon == 2000
    text = PAGE.read_text()
    line = re.search(r"```bash\n(scarce run linear-vs-logistic\.toml .*)\n```", text)
    assert line, "the page's `scarce run` line is missing"
    args = shlex.split(line.group(1))[1:]
    args[args.index("--out") + 1] = str(tmp_path / "out")
    args[args.index("--horizon") + 1] = "40"  # the page's command, with a shorter horizon
    args[1] = str(config)
    result = CliRunner().invoke(app, [*args, "--jobs", "1"])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert summary[0] == "experiment,env,policy,seed,metric,value"
    labels = {tuple(row.split(",")[1:3]) for row in summary[1:]}
    for env in ("linear-5", "logistic"):
        for policy in ("LinUCB", "LinTS-v0.3", "LinTS-v1"):
            assert (env, policy) in labels
    for name in ("traces.parquet", "regret.png"):
        assert (tmp_path / "out" / name).is_file()


def test_experiment_table_lists_every_top_level_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('no_such_key = 1\n[[envs]]\nname = "linear"\n[[policies]]\nname = "LinUCB"\n')
    with pytest.raises(ExperimentError, match="valid top-level keys: (.*)") as info:
        load_config(bad)
    valid = re.search(r"valid top-level keys: (.*)", str(info.value)).group(1).split(", ")
    documented = _table_keys("## Experiments")
    keys = {k.strip("[]") for k in documented}
    assert set(valid) <= keys, set(valid) - keys


def test_service_example_loads_and_serves(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(_block("service"))
    config = load_service_config(path)
    assert config.policy_type == "LinTS" and config.n_actions == 3
    assert config.budgets[0].quotas == {"north": 60.0, "south": 60.0}
    policy = config.make_policy()
    decision = policy.decide([[0.1, 0.2, 0.3, 0.4]])
    assert 0 <= int(decision.actions[0]) < 3


def test_service_table_lists_every_service_key() -> None:
    with pytest.raises(ConfigError, match="known: ") as info:
        config_from_dict({"type": "LinUCB", "n_actions": 2, "n_features": 2, "service": {"x": 1}})
    known = re.findall(r"'(\w+)'", str(info.value).split("known: ")[1])
    documented = _table_keys("## The decision service's policy")
    missing = [k for k in known if f"[service] {k}" not in documented]
    assert known and missing == []
    for key in ("type", "[budgets.R] total", "[budgets.R] costs", "[quotas.R] GROUP"):
        assert key in documented
