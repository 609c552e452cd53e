"""The estimators equal Open Bandit Pipeline 0.4.1's on the six Open Bandit Dataset logs.

The reference values were computed once with obp 0.4.1 (``IPW``, ``SNIPW``, ``DirectMethod``,
``DoublyRobust``, ``SwitchDoublyRobust(tau=100)``, ``ReplayMethod``; its
``OpenBanditDataset`` arrays, which equal :func:`scarce.ope.load_obd`'s row for row) on the
inputs of ``obp_inputs`` and are stored here: obp is never imported by the library or the
tests. obp has no clipped IPS in 0.4.1, so ``clipped_ips`` is not compared.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from obp_inputs import dyadic_rewards, dyadic_target, greedy

import scarce.ope as ope

if importlib.util.find_spec("obp") is None:  # pragma: no cover
    pytest.skip("obp package files not installed", allow_module_level=True)

# fmt: off
OBP_0_4_1 = {
    ("random", "all"): {"ips": 0.0029453125, "snips": 0.0030852326199926347, "dm": 0.003912421894073486, "dr": 0.002990905475616455, "switch_dr": 0.002990905475616455, "replay": 0.0},
    ("random", "men"): {"ips": 0.006448046875, "snips": 0.006592929066601484, "dm": 0.003917851638793946, "dr": 0.006478824234008789, "switch_dr": 0.006478824234008789, "replay": 0.010752688172043012},
    ("random", "women"): {"ips": 0.004896484375, "snips": 0.004854455410268286, "dm": 0.0039063226699829106, "dr": 0.004892884254455566, "switch_dr": 0.004892884254455566, "replay": 0.004310344827586207},
    ("bts", "all"): {"ips": 0.0017426297098315632, "snips": 0.0017259643224665474, "dm": 0.0039000951766967776, "dr": 0.00158136523367617, "switch_dr": 0.002575523170830342, "replay": 0.0},
    ("bts", "men"): {"ips": 0.0034189216365460903, "snips": 0.00369667779671054, "dm": 0.0039033836364746094, "dr": 0.0036597659905757574, "switch_dr": 0.00445666807576481, "replay": 0.0070921985815602835},
    ("bts", "women"): {"ips": 0.004514676409222202, "snips": 0.0020279525797340585, "dm": 0.003905084800720215, "dr": -0.004236217955507982, "switch_dr": 0.005294077362351635, "replay": 0.0},
}
# fmt: on


@pytest.mark.data
@pytest.mark.parametrize(("behavior", "campaign"), list(OBP_0_4_1))
def test_estimators_equal_obp(no_network, behavior, campaign):
    logs = ope.load_obd(behavior, campaign, affinity=False)
    n, K = logs.n, logs.n_actions
    pi = dyadic_target(n, K)
    q = dyadic_rewards(n, K)[np.arange(n), :, logs.positions]  # at each row's position
    ours = {
        "ips": ope.ips(logs, pi),
        "snips": ope.snips(logs, pi),
        "dm": ope.dm(logs, pi, reward_model=q),
        "dr": ope.dr(logs, pi, reward_model=q),
        "switch_dr": ope.switch_dr(logs, pi, reward_model=q, tau=100.0),
        "replay": ope.replay(logs, greedy(pi)),
    }
    for name, want in OBP_0_4_1[(behavior, campaign)].items():
        assert abs(ours[name].value - want) <= 1e-18, (name, ours[name].value, want)
    assert "obp" not in sys.modules


def test_dyadic_inputs_are_exact():
    pi = dyadic_target(50, 7)
    assert np.array_equal(pi.sum(axis=1), np.ones((50, 3)))  # exactly, not approximately
    assert pi.min() > 0 and len(np.unique(pi)) > 10
    g = greedy(pi)
    assert np.array_equal(g.sum(axis=1), np.ones((50, 3))) and set(np.unique(g)) == {0.0, 1.0}
