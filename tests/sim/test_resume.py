"""Sweeps stream finished runs to Parquet parts, and an interrupted sweep resumes without
redoing finished runs (interruption simulated by a progress callback that raises)."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest

from scarce.policies import LinTS, LinUCB
from scarce.sim import EnvSpec, PolicySpec, sweep

sweep_mod = importlib.import_module("scarce.sim.sweep")

POLICIES = {"LinUCB": PolicySpec(LinUCB, {"alpha": 0.5}), "LinTS": (LinTS, {"v": 0.3})}
ENVS = {"logistic": EnvSpec("logistic", {"n_actions": 3, "n_features": 2})}
KW = dict(seeds=3, horizon=30, batch_size=2, n_checkpoints=8)
TOTAL = 6


class Interrupt(Exception):
    pass


def _stop_after(k):
    def progress(done, total):
        assert total == TOTAL
        if done == k:
            raise Interrupt

    return progress


@pytest.fixture(scope="module")
def reference():
    return sweep(POLICIES, ENVS, n_jobs=1, **KW)


def _parts(out):
    return sorted(sweep_mod.parts_dir(out).glob("*.parquet"))


@pytest.mark.parametrize(("n_jobs", "k"), [(1, 2), (1, 5), (2, 3)])
def test_interrupted_sweep_resumes_without_redoing_runs(tmp_path, reference, n_jobs, k):
    out = tmp_path / "sweep.parquet"
    with pytest.raises(Interrupt):
        sweep(POLICIES, ENVS, n_jobs=n_jobs, out=out, progress=_stop_after(k), **KW)
    assert not out.exists()
    done_before = len(_parts(out))
    # every finished run was streamed before progress was told; with n_jobs=1 nothing else ran
    assert done_before == k if n_jobs == 1 else k <= done_before <= TOTAL
    mtimes = {p.name: p.stat().st_mtime_ns for p in _parts(out)}

    executed = []

    def progress(done, total):
        executed.append(done)

    table = sweep(POLICIES, ENVS, n_jobs=1, out=out, resume=True, progress=progress, **KW)
    # the first report is the number of runs already done; only the rest ran
    assert executed[0] == done_before
    assert executed == list(range(done_before, TOTAL + 1))
    pd.testing.assert_frame_equal(table, reference)
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference)
    assert len(_parts(out)) == TOTAL
    for p in _parts(out):  # finished parts were read, not rewritten
        if p.name in mtimes:
            assert p.stat().st_mtime_ns == mtimes[p.name]


def test_resume_of_a_finished_sweep_runs_nothing(tmp_path, reference):
    out = tmp_path / "s.parquet"
    sweep(POLICIES, ENVS, n_jobs=1, out=out, **KW)
    seen = []
    table = sweep(
        POLICIES, ENVS, n_jobs=1, out=out, resume=True, progress=lambda d, t: seen.append(d), **KW
    )
    assert seen == [TOTAL]
    pd.testing.assert_frame_equal(table, reference)


def test_changed_settings_do_not_reuse_parts(tmp_path):
    out = tmp_path / "s.parquet"
    sweep(POLICIES, ENVS, n_jobs=1, out=out, **KW)
    seen = []
    longer = dict(KW, horizon=31)
    table = sweep(
        POLICIES,
        ENVS,
        n_jobs=1,
        out=out,
        resume=True,
        progress=lambda d, t: seen.append(d),
        **longer,
    )
    assert seen[0] == 0  # nothing reused
    pd.testing.assert_frame_equal(table, sweep(POLICIES, ENVS, n_jobs=1, **longer))
    other = {"LinTS": (LinTS, {"v": 0.5})}  # a changed parameter under the same label
    seen.clear()
    sweep(other, ENVS, n_jobs=1, out=out, resume=True, progress=lambda d, t: seen.append(d), **KW)
    assert seen[0] == 0


def test_unreadable_part_is_redone(tmp_path, reference):
    out = tmp_path / "s.parquet"
    sweep(POLICIES, ENVS, n_jobs=1, out=out, **KW)
    _parts(out)[0].write_bytes(b"not parquet")
    seen = []
    table = sweep(
        POLICIES, ENVS, n_jobs=1, out=out, resume=True, progress=lambda d, t: seen.append(d), **KW
    )
    assert seen == [TOTAL - 1, TOTAL]
    pd.testing.assert_frame_equal(table, reference)


def test_resume_needs_out():
    with pytest.raises(ValueError, match="resume=True needs out"):
        sweep(POLICIES, ENVS, resume=True, **KW)
    with pytest.raises(TypeError, match="resume must be a bool"):
        sweep(POLICIES, ENVS, resume="yes", out="x.parquet", **KW)
    with pytest.raises(ValueError, match="backend must be one of"):
        sweep(POLICIES, ENVS, backend="dask", **KW)
    with pytest.raises(ValueError, match="address is only used"):
        sweep(POLICIES, ENVS, backend="local", address="auto", **KW)
