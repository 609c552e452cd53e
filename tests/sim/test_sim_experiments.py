import textwrap

import pandas as pd
import pytest
from simtools import make_toy

from scarce.sim import (
    EXPERIMENTS,
    SUMMARY_COLUMNS,
    EnvSpec,
    Experiment,
    ExperimentError,
    PolicySpec,
    aggregate,
    get_experiment,
    load_config,
    run_experiment,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_experiment(**kw):
    def build():
        return (
            {"LinUCB": PolicySpec("LinUCB", {"alpha": 0.5}), "Random": PolicySpec("Random")},
            {
                "toy": EnvSpec(make_toy),
                "logistic": EnvSpec("logistic", {"n_actions": 3, "n_features": 2}),
            },
        )

    args = dict(name="tiny", description="test", build=build, horizon=30, seeds=2)
    args.update(kw)
    return Experiment(**args)


def check_outputs(paths, n_rows):
    assert set(paths) == {"summary", "traces", "regret"}
    summary = pd.read_csv(paths["summary"])
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert len(summary) == n_rows
    assert {"cumulative_reward", "cumulative_regret", "mean_reward"} <= set(summary["metric"])
    traces = pd.read_parquet(paths["traces"])
    assert "experiment" in traces.columns and "cumulative_regret" in traces.columns
    assert paths["regret"].read_bytes()[:8] == PNG_MAGIC
    return summary, traces


def test_run_experiment_writes_the_contract(tmp_path):
    summary, paths = run_experiment(tiny_experiment(), out=tmp_path / "o", n_jobs=1)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    n_metrics = summary["metric"].nunique()
    saved, traces = check_outputs(paths, 2 * 2 * 2 * n_metrics)
    assert (saved["experiment"] == "tiny").all()
    # the summary agrees with the traces' last step
    last = traces[traces["step"] == 30].set_index(["env", "policy", "seed"])["cumulative_regret"]
    regret = saved[saved["metric"] == "cumulative_regret"].set_index(["env", "policy", "seed"])[
        "value"
    ]
    pd.testing.assert_series_equal(regret.sort_index(), last.sort_index(), check_names=False)
    table = aggregate(summary)
    assert len(table) == 4 and (table["n_seeds"] == 2).all()
    assert {"cumulative_reward_mean", "cumulative_regret_sd"} <= set(table.columns)


def test_overrides(tmp_path):
    summary, paths = run_experiment(tiny_experiment(), out=tmp_path, horizon=12, seeds=1, n_jobs=1)
    assert summary["seed"].nunique() == 1
    assert pd.read_parquet(paths["traces"])["step"].max() == 12


def test_quickstart_is_registered():
    exp = EXPERIMENTS["quickstart"]
    policies, envs = exp.build()
    assert set(policies) == {"Random", "EpsilonGreedy", "LinUCB", "LinTS", "GLMUCB", "GLMTS"}
    assert "digits" in envs and len(envs) == 2
    assert get_experiment("quickstart", horizon=10).horizon == 10


def test_unknown_experiment_lists_registered():
    with pytest.raises(ExperimentError, match="unknown experiment 'nope'.*quickstart"):
        get_experiment("nope")


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
name = "my-experiment"
horizon = 25
seeds = 2
batch_size = 2
[[envs]]
name = "linear"
n_actions = 3
n_features = 2
[[envs]]
name = "wine"
[[policies]]
name = "LinUCB"
alpha = 0.5
[[policies]]
name = "LinTS"
label = "LinTS-v0.3"
v = 0.3
"""


def test_config_runs(tmp_path):
    path = write(tmp_path, GOOD)
    exp = load_config(path)
    assert exp.name == "my-experiment" and exp.horizon == 25 and exp.batch_size == 2
    summary, paths = run_experiment(str(path), out=tmp_path / "out", n_jobs=1)
    assert set(summary["policy"]) == {"LinUCB", "LinTS-v0.3"}
    assert set(summary["env"]) == {"linear", "wine"}
    check_outputs(paths, len(summary))


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            ("horizon = 25", "horizon = 25\ncolour = 'red'"),
            r"unknown key\(s\) \['colour'\]; valid top-level keys: name",
        ),
        (
            ('name = "LinUCB"', 'name = "LinUBC"'),
            r"unknown policy 'LinUBC'; valid policies: .*GLMTS",
        ),
        (
            ('name = "linear"', 'name = "lineer"'),
            r"unknown environment 'lineer'; valid environments: .*linear",
        ),
        (
            ("alpha = 0.5", "alpah = 0.5"),
            r"unknown key\(s\) \['alpah'\]; valid keys for LinUCB: label, alpha, lam",
        ),
        (
            ("n_actions = 3", "n_actoins = 3"),
            r"unknown key\(s\) \['n_actoins'\]; valid keys for linear: .*n_actions",
        ),
        (("alpha = 0.5", "n_actions = 4"), r"set by the experiment"),
        (('label = "LinTS-v0.3"', 'label = "LinUCB"'), r"label 'LinUCB' is used twice"),
        (("horizon = 25", "horizon = 'long'"), r"horizon must be int"),
        (("horizon = 25", "horizon = 0"), r"horizon must be an int >= 1"),
        (("alpha = 0.5", "alpha = -1.0"), r"policy 'LinUCB'.*alpha"),
        (
            ('name = "LinUCB"', 'name = "GLMUCB"'),
            r"'GLMUCB' needs rewards in \[0.0, 1.0\].*'linear'",
        ),
        (("horizon = 25", "horizon = = 25"), r"invalid TOML"),
    ],
)
def test_config_errors_are_clear(tmp_path, edit, match):
    old, new = edit
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ExperimentError, match=match):
        run_experiment(path, out=tmp_path / "out", n_jobs=1)


def test_config_needs_envs_and_policies(tmp_path):
    path = write(tmp_path, 'horizon = 10\n[[policies]]\nname = "LinUCB"\n')
    with pytest.raises(ExperimentError, match=r"needs at least one \[\[envs\]\]"):
        load_config(path)
    with pytest.raises(ExperimentError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_environment_without_oracle_and_single_seed(tmp_path):
    from simtools import make_no_oracle

    exp = tiny_experiment(
        build=lambda: ({"Random": PolicySpec("Random")}, {"blind": EnvSpec(make_no_oracle)}),
        seeds=1,
    )
    summary, paths = run_experiment(exp, out=tmp_path, n_jobs=1)
    values = summary.set_index("metric")["value"]
    assert pd.isna(values["cumulative_regret"]) and values["cumulative_reward"] >= 0
    table = aggregate(summary)
    assert len(table) == 1 and pd.isna(table["cumulative_reward_sd"].iloc[0])
    assert paths["regret"].read_bytes()[:8] == PNG_MAGIC
