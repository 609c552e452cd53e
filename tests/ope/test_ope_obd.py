"""The Open Bandit Dataset loader reads the CSVs shipped in obp's files, offline."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

import scarce.ope as ope

if importlib.util.find_spec("obp") is None:  # pragma: no cover
    pytest.skip("obp package files not installed", allow_module_level=True)


@pytest.mark.data
@pytest.mark.parametrize(
    ("behavior", "campaign", "n_actions"),
    [("random", "all", 80), ("bts", "men", 34), ("bts", "women", 46)],
)
def test_load_obd(no_network, behavior, campaign, n_actions):
    d = ope.load_obd(behavior, campaign)
    assert d.n == 10_000 and d.n_actions == n_actions
    assert set(np.unique(d.positions)) == {0, 1, 2}
    assert set(np.unique(d.rewards)) <= {0.0, 1.0}
    assert 0.002 < d.rewards.mean() < 0.01
    assert d.contexts.shape[0] == 10_000 and np.isfinite(d.contexts).all()
    if behavior == "random":
        np.testing.assert_allclose(d.propensities, 1 / n_actions)
    else:
        assert d.propensities.min() < 0.01 and d.propensities.max() > 0.5
    assert np.all(np.diff(d.timestamps) >= -1e-6)  # logged in time order
    assert "obp" not in sys.modules  # read from the files, never imported


@pytest.mark.data
def test_on_policy_sanity_and_same_encoding_across_behaviours(no_network):
    r = ope.load_obd("random", "men")
    b = ope.load_obd("bts", "men")
    assert r.contexts.shape[1] == b.contexts.shape[1]
    # evaluating the uniform policy on its own uniform logs: IPS weights are 1
    pi = np.full((r.n, r.n_actions), 1 / r.n_actions)
    assert ope.ips(r, pi).value == pytest.approx(r.rewards.mean())
    with pytest.raises(ValueError, match="behavior"):
        ope.load_obd("ucb")
    with pytest.raises(ValueError, match="campaign"):
        ope.load_obd("random", "kids")
