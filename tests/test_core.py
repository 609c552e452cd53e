"""Validation, seeding and persistence of the core."""

import json

import numpy as np
import pytest

import scarce
from scarce.core import persist
from scarce.core.random import (
    as_generator,
    generator_from_state,
    generator_state,
    spawn,
    spawn_seeds,
)
from scarce.core.validation import check_actions, check_contexts, check_eligible, check_vector
from scarce.policies import LinTS, LinUCB


def test_check_contexts_shapes_and_messages():
    assert check_contexts(np.ones(3), 3).shape == (1, 3)
    assert check_contexts(np.ones((2, 4, 3)), 3, 4).shape == (2, 4, 3)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 3\).*got \(2, 5\)"):
        check_contexts(np.ones((2, 5)), 3)
    with pytest.raises(ValueError, match=r"\(n, 4, 3\); got \(2, 5, 3\)"):
        check_contexts(np.ones((2, 5, 3)), 3, 4)
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        check_contexts([[1.0, np.inf, 0.0]], 3)
    with pytest.raises(ValueError, match="numeric"):
        check_contexts([["a", "b", "c"]], 3)
    with pytest.raises(ValueError, match="at least one case"):
        check_contexts(np.ones((0, 3)), 3)


def test_check_actions_and_vectors():
    np.testing.assert_array_equal(check_actions([0, 2], 2, 3), [0, 2])
    np.testing.assert_array_equal(check_actions(np.array([1.0, 2.0]), 2, 3), [1, 2])
    with pytest.raises(ValueError, match=r"actions must be in \[0, 3\); got -1"):
        check_actions([0, -1], 2, 3)
    with pytest.raises(ValueError, match="integer"):
        check_actions(["a", "b"], 2, 3)
    with pytest.raises(ValueError, match=r"rewards must be <= 1.0"):
        check_vector([0.5, 2.0], 2, "rewards", low=0.0, high=1.0)


def test_check_eligible_broadcasts_and_rejects():
    assert check_eligible([True, False], 3, 2).shape == (3, 2)
    assert check_eligible(np.array([[1, 0]]), 1, 2).dtype == bool
    with pytest.raises(ValueError, match="no eligible action for case 1"):
        check_eligible([[True, False], [False, False]], 2, 2)
    with pytest.raises(ValueError, match="boolean"):
        check_eligible([[0.5, 1.0]], 1, 2)


def test_seeding_helpers_reproducible():
    a = [g.random() for g in spawn(42, 3)]
    b = [g.random() for g in spawn(42, 3)]
    assert a == b and len(set(a)) == 3
    assert spawn_seeds(7, 4) == spawn_seeds(7, 4)
    g = as_generator(5)
    g.random()
    clone = generator_from_state(json.loads(json.dumps(generator_state(g))))
    assert clone.random() == g.random()
    with pytest.raises(ValueError, match="seed"):
        as_generator(-1)
    with pytest.raises(TypeError, match="seed"):
        as_generator("seed")


def test_generator_seed_is_used_not_copied():
    rng = np.random.default_rng(0)
    p = LinTS(n_actions=3, n_features=2, seed=rng)
    p.decide(np.zeros((1, 2)))
    assert p.rng_ is rng
    assert p.get_params()["seed"] is None  # a Generator is not a parameter; its state is saved


def test_save_format_is_json_plus_npz_without_pickle(tmp_path):
    p = LinUCB(n_actions=3, n_features=2, alpha=0.5, seed=1)
    p.update(np.ones((2, 2)), [0, 1], [1.0, 0.0])
    path = p.save(tmp_path / "model")
    assert sorted(f.name for f in path.iterdir()) == ["arrays.npz", "scarce.json"]
    doc = json.loads((path / "scarce.json").read_text())
    assert doc["class"] == "scarce.policies.linear.LinUCB"
    assert doc["params"]["alpha"] == 0.5
    assert doc["format_version"] == persist.FORMAT_VERSION
    with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[k].dtype != object for k in arrays.files)
    # overwriting an existing save works; overwriting something else does not
    p.save(tmp_path / "model")
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError):
        p.save(tmp_path / "other")


def test_load_refuses_foreign_classes_and_newer_formats(tmp_path):
    path = LinUCB(n_actions=2, n_features=2).save(tmp_path / "m")
    doc = json.loads((path / "scarce.json").read_text())
    doc["class"] = "os.system"
    (path / "scarce.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="only scarce classes"):
        scarce.load(path)
    doc["class"] = "scarce.policies.linear.LinUCB"
    doc["format_version"] = 99
    (path / "scarce.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="newer"):
        scarce.load(path)
    with pytest.raises(FileNotFoundError):
        scarce.load(tmp_path / "missing")


def test_window_and_forgetting_state_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for kwargs in ({"window": 5}, {"forgetting": 0.95}):
        p = LinUCB(n_actions=3, n_features=2, **kwargs)
        for _ in range(12):
            X = rng.normal(size=(1, 2))
            p.update(X, p.decide(X).actions, rng.normal(size=1))
        q = scarce.load(p.save(tmp_path / str(kwargs)))
        X = rng.normal(size=(1, 2))
        for _ in range(8):
            a = p.decide(X).actions
            np.testing.assert_array_equal(a, q.decide(X).actions)
            r = rng.normal(size=1)
            p.update(X, a, r)
            q.update(X, a, r)
        np.testing.assert_allclose(p.model_.theta, q.model_.theta)


def test_import_if_present_skips_only_an_absent_capability(tmp_path, monkeypatch):
    from scarce.core.plugins import import_if_present

    assert import_if_present("scarce.no_such_capability.experiments") is None
    assert import_if_present("scarce.policies") is not None
    (tmp_path / "needs_missing_dep.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        import_if_present("needs_missing_dep")
