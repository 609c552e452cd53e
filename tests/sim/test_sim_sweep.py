import numpy as np
import pandas as pd
import pytest
from simtools import ToyEnv, make_toy

from scarce.policies import LinTS, LinUCB
from scarce.sim import SWEEP_COLUMNS, EnvSpec, PolicySpec, checkpoints, final_rows, run, sweep
from scarce.sim.sweep import run_seeds

POLICIES = {
    "LinUCB": PolicySpec(LinUCB, {"alpha": 0.5}),
    "LinTS": (LinTS, {"v": 0.3}),
    "Random": "Random",
}
ENVS = {
    "toy": EnvSpec(make_toy, {"n_actions": 3}),
    "logistic": ("logistic", {"n_actions": 3, "n_features": 2}),
}


def small(**kw):
    args = dict(policies=POLICIES, envs=ENVS, seeds=2, horizon=40, batch_size=3, n_checkpoints=10)
    args.update(kw)
    return sweep(
        args.pop("policies"), args.pop("envs"), args.pop("seeds"), args.pop("horizon"), **args
    )


def test_table_shape_and_columns():
    df = small(n_jobs=1)
    steps = checkpoints(40, 10)
    assert list(df.columns) == list(SWEEP_COLUMNS)
    assert len(df) == 2 * 3 * 2 * len(steps)
    assert list(dict.fromkeys(df["env"])) == ["toy", "logistic"]
    assert list(dict.fromkeys(df["policy"])) == ["LinUCB", "LinTS", "Random"]
    last = final_rows(df)
    assert len(last) == 12 and (last["step"] == 40).all()
    assert (df["cumulative_regret"] >= -1e-9).all()
    assert (df.groupby(["env", "policy", "seed"])["cumulative_optimal"].diff().dropna() >= 0).all()


def test_independent_of_n_jobs():
    pd.testing.assert_frame_equal(small(n_jobs=1), small(n_jobs=2))


def test_independent_of_order_and_of_the_other_runs():
    full = small(n_jobs=2)
    reversed_ = small(
        policies=dict(reversed(list(POLICIES.items()))),
        envs=dict(reversed(list(ENVS.items()))),
        n_jobs=2,
    )
    key = ["env", "policy", "seed", "step"]
    pd.testing.assert_frame_equal(
        full.sort_values(key).reset_index(drop=True),
        reversed_.sort_values(key).reset_index(drop=True),
    )
    alone = small(policies={"LinTS": POLICIES["LinTS"]}, envs={"toy": ENVS["toy"]}, n_jobs=1)
    part = full[(full["policy"] == "LinTS") & (full["env"] == "toy")].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, part)


def test_matches_a_direct_run():
    """A sweep run is run() with the seeds spawned from the root seed."""
    from scarce.core.random import spawn_seeds

    df = small(
        policies={"LinUCB": POLICIES["LinUCB"]},
        envs={"toy": ENVS["toy"]},
        n_checkpoints=None,
        n_jobs=1,
    )
    root = spawn_seeds(0, 2)[1]
    env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(root), 3)
    env = ToyEnv(n_actions=3, seed=env_seed)
    trace = run(
        LinUCB(n_actions=3, n_features=2, alpha=0.5, seed=policy_seed),
        env,
        40,
        batch_size=3,
        seed=stream_seed,
    )
    got = df[df["seed"] == 1]
    np.testing.assert_allclose(got["cumulative_regret"], trace.cumulative_regret)
    np.testing.assert_allclose(got["cumulative_reward"], trace.cumulative_reward)


def test_explicit_seed_list_and_fixed_env_seed():
    df = small(seeds=[5, 9], n_jobs=1, envs={"toy": EnvSpec(make_toy, {"seed": 3})})
    assert sorted(df["seed"].unique()) == [5, 9]
    assert run_seeds([5, 9]) == ([5, 9], [5, 9])
    with pytest.raises(ValueError, match="distinct"):
        run_seeds([1, 1])


def test_progress_and_parquet(tmp_path):
    calls = []
    out = tmp_path / "sub" / "t.parquet"
    df = small(n_jobs=2, out=out, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 12) and calls[-1] == (12, 12)
    assert [c[0] for c in calls] == list(range(13))
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)


def test_checkpoints():
    steps = checkpoints(2000, 200)
    assert steps[0] == 1 and steps[-1] == 2000 and 1000 in steps
    assert np.all(np.diff(steps) > 0) and 150 <= len(steps) <= 210
    np.testing.assert_array_equal(checkpoints(7, 200), np.arange(1, 8))
    np.testing.assert_array_equal(checkpoints(50, None), np.arange(1, 51))


def test_bad_specs():
    with pytest.raises(ValueError, match="valid policies: .*LinUCB"):
        small(policies={"x": "NoSuchPolicy"})
    with pytest.raises(TypeError):
        small(policies={"x": 3})
    with pytest.raises(ValueError, match="horizon"):
        small(horizon=0)
    with pytest.raises(ValueError, match="n_jobs"):
        small(n_jobs=0)
