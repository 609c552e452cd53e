"""Served means registered: a neural policy from a TOML file (its network as an inline table)
decides, learns from rewards through the service's join, retrains, and its snapshot restores
the same learner."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")

from scarce.serve import DecisionService, EventStore, load_config  # noqa: E402

TOML = """
type = "NeuralLinearTS"
n_actions = 3
n_features = 2
v = 0.5
seed = 4
network = { hidden = [8], first_train = 10, retrain_every = 10, train_steps = 5 }

[service]
name = "neural"
sync_interval = 0.0
snapshot_every = 0
"""


def test_neural_policy_served_from_toml(tmp_path):
    path = tmp_path / "neural.toml"
    path.write_text(TOML)
    cfg = load_config(path)
    store = EventStore(tmp_path / "events.db")
    try:
        svc = DecisionService(cfg, store)
        rng = np.random.default_rng(0)
        for i in range(30):
            x = rng.normal(size=2)
            d = svc.decide(x, event_id=f"e{i}")
            svc.reward(f"e{i}", float(d.action == int(x[0] > 0)))
        svc.sync()
        assert svc.n_learned == 30 and svc.policy.n_retrains == 3
        svc.publish_snapshot()
        again = DecisionService(cfg, store)
        again.sync()
        x = rng.normal(size=(1, 2))
        np.testing.assert_array_equal(
            again.policy.action_probabilities(x), svc.policy.action_probabilities(x)
        )
    finally:
        store.close()


def test_a_table_the_policy_does_not_take_is_still_rejected(tmp_path):
    from scarce.serve import ConfigError

    path = tmp_path / "linucb.toml"
    path.write_text(
        TOML.replace('type = "NeuralLinearTS"', 'type = "LinUCB"').replace("v = 0.5\n", "")
    )
    with pytest.raises(ConfigError, match=r"unknown table \[network\]"):
        load_config(path)
