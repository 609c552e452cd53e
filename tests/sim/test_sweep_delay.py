"""Delay in sweeps, and runs that skip recording choice probabilities."""

import numpy as np
from simtools import ToyEnv, make_toy

from scarce.core.random import spawn_seeds
from scarce.feedback import FixedDelay, GeometricDelay
from scarce.policies import LinTS, LinUCB
from scarce.sim import EnvSpec, PolicySpec, run, sweep
from scarce.sim.sweep import Task, run_key


def test_sweep_passes_the_delay_to_each_run():
    delay = GeometricDelay(0.3, max_lag=10)
    df = sweep(
        {"LinUCB": PolicySpec(LinUCB, {"alpha": 0.5})},
        {"toy": EnvSpec(make_toy, {"n_actions": 3})},
        [7],
        60,
        n_checkpoints=None,
        n_jobs=1,
        delay=delay,
    )
    env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(7), 3)
    trace = run(
        LinUCB(n_actions=3, n_features=2, alpha=0.5, seed=policy_seed),
        ToyEnv(n_actions=3, seed=env_seed),
        60,
        seed=stream_seed,
        delay=delay,
    )
    np.testing.assert_array_equal(df["cumulative_regret"], trace.cumulative_regret)
    undelayed = run(
        LinUCB(n_actions=3, n_features=2, alpha=0.5, seed=policy_seed),
        ToyEnv(n_actions=3, seed=env_seed),
        60,
        seed=stream_seed,
    )
    assert not np.array_equal(trace.action, undelayed.action)


def test_delay_is_part_of_the_resume_key():
    base = dict(
        index=0, env="toy", policy="LinUCB", seed=0, root_seed=1,
        env_spec=EnvSpec(make_toy, {}), policy_spec=PolicySpec(LinUCB, {}),
        horizon=10, batch_size=1, feedback="bandit", steps=np.arange(1, 11),
    )  # fmt: skip
    plain = run_key(Task(**base))
    assert run_key(Task(**base, delay=None)) == plain
    assert run_key(Task(**base, delay=FixedDelay(2))) == run_key(Task(**base, delay=FixedDelay(2)))
    assert run_key(Task(**base, delay=FixedDelay(2))) != run_key(Task(**base, delay=FixedDelay(3)))
    assert run_key(Task(**base, delay=FixedDelay(2))) != plain


def test_skipping_probabilities_changes_nothing_else():
    args = dict(horizon=50, batch_size=2, seed=3)
    a = run(LinTS(n_actions=3, n_features=2, seed=1), ToyEnv(seed=0), **args)
    b = run(
        LinTS(n_actions=3, n_features=2, seed=1),
        ToyEnv(seed=0),
        record_probabilities=False,
        **args,
    )
    assert np.all(np.isnan(b.probability)) and np.all(a.probability > 0)
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.reward, b.reward)
