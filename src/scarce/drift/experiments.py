"""``scarce run drift``: stationary, discounted, windowed and change-detecting LinUCB / LinTS on
a piecewise-stationary and on a smoothly drifting linear problem.

* ``piecewise``: :class:`~scarce.drift.PiecewiseLinearEnv`, K = 5, d = 5, noise 0.1, every
  action's parameters redrawn every 1000 cases;
* ``drifting``: :class:`~scarce.drift.DriftingLinearEnv`, K = 5, d = 5, noise 0.1, parameters
  turning one full circle per 4000 cases.

Policies (``alpha = 0.5`` for LinUCB, ``v = 0.1`` for LinTS, the noise scale): the stationary
model; exponential forgetting ``forgetting = 0.99`` (an effective memory of about 100 cases);
a sliding window of the last 300 cases; and :class:`~scarce.drift.ChangeDetecting` (restarts
on a CUSUM or a GLR alarm, default settings). Regret is exact: the environments know their parameters at
every step. Besides the default metrics, ``regret_second_half`` shows the steady state.
"""

from __future__ import annotations

from scarce.drift.detect import ChangeDetecting
from scarce.policies import LinTS, LinUCB
from scarce.sim.experiments import Experiment, register, regret_second_half
from scarce.sim.sweep import EnvSpec, PolicySpec


def _build() -> tuple[dict[str, PolicySpec], dict[str, EnvSpec]]:
    policies: dict[str, PolicySpec] = {}
    for name, cls, params in (("LinUCB", LinUCB, {"alpha": 0.5}), ("LinTS", LinTS, {"v": 0.1})):
        policies[name] = PolicySpec(cls, params)
        policies[f"{name}-discounted"] = PolicySpec(cls, {**params, "forgetting": 0.99})
        policies[f"{name}-window"] = PolicySpec(cls, {**params, "window": 300})
        policies[f"{name}-CUSUM"] = PolicySpec(
            ChangeDetecting, {"base": name, "base_params": dict(params)}
        )
        policies[f"{name}-GLR"] = PolicySpec(
            ChangeDetecting, {"base": name, "base_params": dict(params), "detector": "glr"}
        )
    envs = {
        "piecewise": EnvSpec(
            "piecewise-linear",
            {"n_actions": 5, "n_features": 5, "change_every": 1000, "noise_std": 0.1},
        ),
        "drifting": EnvSpec(
            "drifting-linear", {"n_actions": 5, "n_features": 5, "period": 4000.0, "noise_std": 0.1}
        ),
    }
    return policies, envs


register(
    Experiment(
        name="drift",
        description=(
            "stationary vs discounted (forgetting) vs sliding-window vs CUSUM- and GLR-restarted "
            "LinUCB and LinTS on a piecewise-stationary and a smoothly drifting linear problem "
            "(K=5, d=5)"
        ),
        build=_build,
        horizon=4000,
        seeds=3,
        metrics={"regret_second_half": regret_second_half},
    )
)
