"""The paper's baselines on the library's policies, and the two registered experiments."""

import numpy as np
import pandas as pd
import pytest

from scarce.sim.experiments import SUMMARY_COLUMNS, load_capability_experiments, write_result
from scarce.structured.baselines import PriorLinTS, PriorLinUCB, linucb_width, ucb_glm_width
from scarce.structured.experiments import (
    LINEAR_POLICIES,
    LOGISTIC_POLICIES,
    MOVIELENS_LINEAR,
    hier_prior,
    run_movielens,
    run_synthetic,
)


def test_prior_lints_is_the_exact_gaussian_posterior():
    rng = np.random.default_rng(0)
    K, d, noise = 3, 2, 0.7
    mean = rng.standard_normal((K, d))
    cov = np.stack([np.eye(d) * (1 + k) for k in range(K)])
    pol = PriorLinTS(n_actions=K, n_features=d, prior_mean=mean, prior_cov=cov, noise_std=noise)
    X, a, y = rng.standard_normal((15, d)), rng.integers(K, size=15), rng.standard_normal(15)
    for t in range(15):
        pol.update(X[t : t + 1], a[t : t + 1], y[t : t + 1])
    for k in range(K):
        Xk, yk = X[a == k], y[a == k]
        prec = np.linalg.inv(cov[k]) + Xk.T @ Xk / noise**2
        post_cov = np.linalg.inv(prec)
        post_mean = post_cov @ (np.linalg.inv(cov[k]) @ mean[k] + Xk.T @ yk / noise**2)
        np.testing.assert_allclose(pol.model_.theta[k], post_mean, atol=1e-10)
        np.testing.assert_allclose(noise**2 * pol.model_.A_inv[k], post_cov, atol=1e-10)
    ucb = PriorLinUCB(n_actions=K, n_features=d, alpha=0.0, prior_mean=mean, prior_cov=cov)
    np.testing.assert_allclose(ucb.decide(X[:4]).scores, X[:4] @ mean.T)
    # per-action contexts: action k learns from and is scored on its own context X[:, k]
    Z = rng.standard_normal((15, K, d))
    per = PriorLinTS(n_actions=K, n_features=d, prior_mean=mean, prior_cov=cov, noise_std=noise)
    per.update(Z, a, y)
    for k in range(K):
        Zk, yk = Z[a == k, k], y[a == k]
        prec = np.linalg.inv(cov[k]) + Zk.T @ Zk / noise**2
        post_mean = np.linalg.solve(prec, np.linalg.inv(cov[k]) @ mean[k] + Zk.T @ yk / noise**2)
        np.testing.assert_allclose(per.model_.theta[k], post_mean, atol=1e-10)
    probs = per.action_probabilities(Z[:3])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match=r"prior_cov must have shape"):
        PriorLinTS(n_actions=K, n_features=d, prior_cov=np.eye(3)).decide(np.zeros((1, d)))


def test_widths_follow_the_papers_code():
    n, d = 5000, 2
    expected = 1.0 * np.sqrt(d) + 1.0 * np.sqrt(d * np.log((1 + n * 2 / 1.0) * n))
    assert linucb_width(n, d, np.sqrt(2), 1.0, 1.0) == pytest.approx(expected)
    assert ucb_glm_width(n, d) == pytest.approx(2.0 * np.sqrt(np.log(1 + n) + np.log(n)))


def test_hier_prior_is_the_codes_average():
    d = 2
    prior = {
        "effect_mean": np.arange(6.0),
        "effect_cov": 3 * np.eye(6),
        "action_cov": np.eye(2),
    }
    h = hier_prior(prior, d)
    np.testing.assert_allclose(h["effect_mean"], [2.0, 3.0])
    np.testing.assert_allclose(h["effect_cov"], np.eye(2))  # (1/L^2) sum of 3 I = I for L = 3


def _check_outputs(summary, paths, policies_by_env):
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    written = pd.read_csv(paths["summary"])
    assert tuple(written.columns) == SUMMARY_COLUMNS and len(written) == len(summary)
    for env, policies in policies_by_env.items():
        got = set(written.loc[written["env"] == env, "policy"])
        assert got == set(policies), (env, got)
    traces = pd.read_parquet(paths["traces"])
    assert {"env", "policy", "seed", "step", "cumulative_regret"} <= set(traces.columns)
    assert paths["regret"].stat().st_size > 0
    regret = written[written["metric"] == "cumulative_regret"]["value"]
    assert np.all(regret >= -1e-9)


@pytest.mark.parametrize("per_action_context", [False, True])
def test_synthetic_experiment_writes_the_contract(tmp_path, per_action_context):
    summary, paths = write_result(
        run_synthetic(
            horizon=25,
            seeds=(3,),
            n_jobs=1,
            n_actions=8,
            per_action_context=per_action_context,
            factored_exact=per_action_context,
        ),
        "mets-synthetic",
        tmp_path,
    )
    linear, logistic = LINEAR_POLICIES, LOGISTIC_POLICIES
    if per_action_context:
        linear, logistic = (*linear, "meTS-Fa-exact"), (*logistic, "meTS-GLM-Fa-exact")
    _check_outputs(summary, paths, {"synthetic-linear": linear, "synthetic-logistic": logistic})


def test_seed_column_is_the_seed_label(tmp_path):
    kw = dict(horizon=10, n_jobs=1, n_actions=6, likelihoods=("linear",), n_checkpoints=2)
    counted, paths = write_result(run_synthetic(seeds=2, **kw), "s", tmp_path / "a")
    assert set(counted["seed"]) == {0, 1}
    assert set(pd.read_parquet(paths["traces"])["seed"]) == {0, 1}
    listed = run_synthetic(seeds=(7, 3), **kw).summary
    assert set(listed["seed"]) == {3, 7}
    # the label is only a name: seeds=2 runs the same problems as before the labels
    from scarce.core.random import spawn_seeds

    roots = run_synthetic(seeds=tuple(spawn_seeds(0, 2)), **kw).summary
    by_root = roots.sort_values(["policy", "metric", "seed"])["value"].to_numpy()
    by_label = counted.sort_values(["policy", "metric", "seed"])["value"].to_numpy()
    assert sorted(by_root) == sorted(by_label)


def test_skipping_choice_probabilities_leaves_the_regret_unchanged():
    """They never touch the policies' streams, so every run's regret is the same bit for bit."""
    kw = dict(horizon=40, seeds=(5,), n_jobs=1, n_actions=8, n_checkpoints=2, factored_exact=True)
    kept = run_synthetic(**kw)
    skipped = run_synthetic(record_probabilities=False, **kw)
    pd.testing.assert_frame_equal(kept.summary, skipped.summary)
    pd.testing.assert_frame_equal(kept.tables["traces"], skipped.tables["traces"])


@pytest.mark.data
def test_movielens_experiment_writes_the_contract(tmp_path, no_network):
    summary, paths = write_result(
        run_movielens(
            horizon=20,
            seeds=(1,),
            n_jobs=1,
            n_actions=10,
            likelihoods=("linear",),
            min_item_ratings=20,
            factored_exact=True,
        ),
        "mets-movielens",
        tmp_path,
    )
    exact = ("meTS", "meTS-Fa", "meTS-Fa-exact", "HierTS", "LinTS")
    assert MOVIELENS_LINEAR == ("meTS", "meTS-Fa", "HierTS", "LinTS")
    _check_outputs(summary, paths, {"movielens-linear": exact})


def test_movielens_contexts_come_from_every_user(monkeypatch):
    """The paper samples each context "uniformly from user vectors x_j" (all users); the
    authors' code draws a pool of 100 users per run, kept as ``user_pool=100``."""
    from scarce.structured import experiments

    rng = np.random.default_rng(0)
    users, items = rng.standard_normal((150, 3)), rng.standard_normal((60, 3))
    monkeypatch.setattr(
        "scarce.structured.learn.movielens_embeddings", lambda *a, **k: (users, items, 0.0)
    )
    pools = []

    def spy(*args, **kwargs):
        env = real(*args, **kwargs)
        pools.append(env.pool.shape[0])
        return env

    real = experiments.MovieLensEnv
    monkeypatch.setattr(experiments, "MovieLensEnv", spy)
    kw = dict(horizon=5, seeds=(1,), n_jobs=1, n_actions=10, n_effects=2, likelihoods=("linear",))
    run_movielens(record_probabilities=False, **kw)
    run_movielens(record_probabilities=False, user_pool=100, **kw)
    assert pools == [150, 100]


def test_experiments_are_registered():
    experiments = load_capability_experiments()
    assert {"mets-synthetic", "mets-movielens"} <= set(experiments)


def test_scarce_run_cli_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from scarce.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "mets-synthetic",
            "--horizon",
            "15",
            "--seeds",
            "1",
            "--jobs",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "meTS-GLM-Fa" in result.output
    assert (out / "summary.csv").read_text().splitlines()[
        0
    ] == "experiment,env,policy,seed,metric,value"
    for name in ("traces.parquet", "regret.png", "regret-synthetic-linear.png"):
        assert (out / name).is_file()
