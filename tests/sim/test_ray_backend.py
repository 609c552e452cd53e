"""Sweeps on a local Ray cluster give exactly the local backend's results.

One module-scoped Ray cluster (2 CPUs, no dashboard) serves every test here; horizons are small.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scarce.cli import app
from scarce.policies import LinTS, LinUCB
from scarce.sim import (
    CustomExperiment,
    EnvSpec,
    ExperimentResult,
    PolicySpec,
    backend,
    current_backend,
    parallel_map,
    run_experiment,
    sweep,
)
from scarce.sim.replicated import sweep_replicated

ray = pytest.importorskip("ray")
sweep_mod = importlib.import_module("scarce.sim.sweep")  # scarce.sim.sweep the function shadows it
parallel_mod = importlib.import_module("scarce.sim.parallel")

POLICIES = {
    "LinUCB": PolicySpec(LinUCB, {"alpha": 0.5}),
    "LinTS": (LinTS, {"v": 0.3}),
    "Random": "Random",
}
ENVS = {
    "logistic": EnvSpec("logistic", {"n_actions": 3, "n_features": 2}),
    "linear": ("linear", {"n_actions": 3, "n_features": 4}),
}
KW = dict(seeds=2, horizon=40, batch_size=2, n_checkpoints=10)


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def ray_calls(monkeypatch):
    """Count the maps that really went to Ray."""
    calls = []
    original = parallel_mod._ray_map

    def counting(fn, items, *args):
        calls.append(len(items))
        return original(fn, items, *args)

    monkeypatch.setattr(parallel_mod, "_ray_map", counting)
    return calls


def test_sweep_on_ray_equals_local(ray_cluster, ray_calls):
    local = sweep(POLICIES, ENVS, n_jobs=2, **KW)
    on_ray = sweep(POLICIES, ENVS, backend="ray", **KW)
    assert ray_calls == [12]
    pd.testing.assert_frame_equal(on_ray, local)


def test_streaming_and_resume_on_ray(ray_cluster, ray_calls, tmp_path):
    out = tmp_path / "t.parquet"
    seen = []

    def stop_after_5(done, total):
        seen.append(done)
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(POLICIES, ENVS, backend="ray", out=out, progress=stop_after_5, **KW)
    assert len(list(sweep_mod.parts_dir(out).glob("*.parquet"))) >= 5
    resumed = []
    table = sweep(
        POLICIES,
        ENVS,
        backend="ray",
        out=out,
        resume=True,
        progress=lambda d, t: resumed.append(d),
        **KW,
    )
    assert resumed[0] >= 5 and resumed[-1] == 12
    pd.testing.assert_frame_equal(table, sweep(POLICIES, ENVS, n_jobs=1, **KW))
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)


def test_backend_context_reaches_parallel_map_and_custom_experiments(
    ray_cluster, ray_calls, tmp_path
):
    assert current_backend() == ("local", None)
    with backend("ray"):
        assert current_backend() == ("ray", None)
        assert parallel_map(np.sqrt, [1.0, 4.0, 9.0]) == [1.0, 2.0, 3.0]
        # an explicit argument wins over the context
        assert parallel_map(np.sqrt, [16.0], backend="local", n_jobs=1) == [4.0]
    assert current_backend() == ("local", None)
    assert ray_calls == [3]

    def custom_run(horizon, seeds, n_jobs, progress):
        values = parallel_map(np.square, [1.0, 2.0], n_jobs=n_jobs, progress=progress)
        summary = pd.DataFrame(
            {
                "env": "e",
                "policy": "p",
                "seed": [label for label, _ in seeds],
                "metric": "x",
                "value": values,
            }
        )
        return ExperimentResult(summary)

    exp = CustomExperiment(name="c", description="", run=custom_run, horizon=1, seeds=2)
    summary, _ = run_experiment(exp, out=tmp_path / "c", backend="ray")
    assert summary["value"].tolist() == [1.0, 4.0]
    assert ray_calls == [3, 2]


def test_replicated_sweep_on_ray(ray_cluster, ray_calls):
    spec, env = (LinTS, {"v": 0.4}), ("logistic", {"n_actions": 3, "n_features": 2})
    a = sweep_replicated(spec, env, 5, 60, n_checkpoints=8, n_jobs=2, backend="ray")
    b = sweep_replicated(spec, env, 5, 60, n_checkpoints=8, n_jobs=1)
    assert ray_calls == [2]
    pd.testing.assert_frame_equal(a, b)


def test_cli_backend_ray_gives_the_local_summary(ray_cluster, ray_calls, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        'name = "c"\nhorizon = 30\nseeds = 2\nn_checkpoints = 5\n'
        '[[envs]]\nname = "logistic"\nn_actions = 3\nn_features = 2\n'
        '[[policies]]\nname = "LinTS"\n[[policies]]\nname = "LinUCB"\n'
    )
    runner = CliRunner()
    outs = {}
    for name in ("local", "ray"):
        outs[name] = tmp_path / name
        result = runner.invoke(
            app, ["run", str(config), "--out", str(outs[name]), "--backend", name]
        )
        assert result.exit_code == 0, result.output
    assert ray_calls == [4]
    pd.testing.assert_frame_equal(
        pd.read_csv(outs["ray"] / "summary.csv"), pd.read_csv(outs["local"] / "summary.csv")
    )
    bad = runner.invoke(app, ["run", str(config), "--backend", "spark"])
    assert bad.exit_code == 2 and "backend must be one of" in bad.output


def test_local_workers_do_not_fork_a_process_running_ray(ray_cluster):
    """A local map after Ray started in the same process: workers come from a forkserver (a
    forked child inherits Ray's client threads half-made and hung or crashed), and the table
    is still the one-process table."""
    assert parallel_mod._pool_context().get_start_method() == "forkserver"
    two = sweep(POLICIES, ENVS, n_jobs=2, **KW)
    one = sweep(POLICIES, ENVS, n_jobs=1, **KW)
    pd.testing.assert_frame_equal(two, one)


def test_local_workers_keep_the_default_start_method_without_ray(monkeypatch):
    class NotStarted:
        @staticmethod
        def is_initialized() -> bool:
            return False

    monkeypatch.setitem(__import__("sys").modules, "ray", NotStarted)
    assert parallel_mod._pool_context() is None
