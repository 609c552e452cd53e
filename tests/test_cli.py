"""The ``scarce`` command line (Typer), through typer.testing.CliRunner."""

from typer.testing import CliRunner

from scarce.cli import app

runner = CliRunner()


def test_list():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for word in ("quickstart", "LinUCB", "GLMTS", "digits", "logistic", "[[policies]]"):
        assert word in result.output


def test_run_quickstart_writes_outputs(tmp_path):
    out = tmp_path / "qs"
    result = runner.invoke(
        app, ["run", "quickstart", "--horizon", "200", "--seeds", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for name in ("summary.csv", "traces.parquet", "regret.png"):
        assert (out / name).is_file()
        assert str(out / name) in result.output.replace("\n", "")
    assert "GLMUCB" in result.output and "±" in result.output
    header = (out / "summary.csv").read_text().splitlines()[0]
    assert header == "experiment,env,policy,seed,metric,value"


def test_run_from_config(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        'name = "c"\nhorizon = 20\nseeds = 1\n[[envs]]\nname = "iris"\n[[policies]]\nname = "LinUCB"\n'
    )
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "o"), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "summary.csv").is_file()


def test_unknown_experiment_exit_code_2():
    result = runner.invoke(app, ["run", "no-such-experiment"])
    assert result.exit_code == 2
    assert "unknown experiment" in result.output and "quickstart" in result.output
    assert "Traceback" not in result.output


def test_bad_settings_exit_code_2(tmp_path):
    result = runner.invoke(app, ["run", "quickstart", "--horizon", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "horizon" in result.output
    config = tmp_path / "bad.toml"
    config.write_text('[[envs]]\nname = "linear"\n[[policies]]\nname = "Nope"\n')
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "valid policies" in result.output
    assert not (tmp_path / "summary.csv").exists()
