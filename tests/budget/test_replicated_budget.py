"""Replicated simulation of the budgeted learners equals separate runs, bit for bit
(:mod:`scarce.budget.replicated`): traces (costs, ``budget_left``, the outcome extras,
``Decision.info``), the learned state and the sweep table."""

import numpy as np
import pandas as pd
import pytest

from scarce.budget import DigitsDeferral, SyntheticDeferral
from scarce.envs import make_env
from scarce.sim import PolicySpec, run, sweep
from scarce.sim.replicated import run_replicated, sweep_replicated


def _flat(state, prefix=""):
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _build(policy, params, env_kw, S, T):
    envs = [make_env("deferral-synthetic", seed=20 + s, **env_kw) for s in range(S)]
    pols = [
        PolicySpec(policy, params[s % len(params)]).build_for(e, 50 + s, T)
        for s, e in enumerate(envs)
    ]
    return pols, envs


CASES = [
    # the paper's setting: full feedback, a Z warm-up, a budget that binds
    ("Deferral", [{}], {"budget_rate": 0.1}),
    # bandit feedback, different hyperparameters per replica, the heterogeneous regime
    (
        "Deferral",
        [{"feedback": "bandit"}, {"feedback": "full", "confidence": {"lam": 2.0}}],
        {"regime": "heterogeneous", "n_features": 6, "budget_rate": 0.3},
    ),
    # KnapsackBandit on Gaussian noise (real-valued costs), a tight budget
    ("KnapsackBandit", [{}], {"regime": "complementary", "noise": "gaussian", "budget_rate": 0.01}),
    # Z fixed from the start (no warm-up), the dual step on realised costs, frequent resyncs
    (
        "Deferral",
        [{"dual": {"z_method": "fixed", "Z": 1.5, "dual_uses_estimate": False}}],
        {"budget_rate": 0.2, "n_features": 5},
    ),
]


@pytest.mark.parametrize(("policy", "params", "env_kw"), CASES)
def test_equals_separate_runs_bit_for_bit(policy, params, env_kw):
    S, T = 4, 240
    separate, envs = _build(policy, params, env_kw, S, T)
    replicated, _ = _build(policy, params, env_kw, S, T)
    if "dual_uses_estimate" in str(params):  # refactorisations inside the run
        for p in separate + replicated:
            p._ensure_initialized(np.zeros((1, p.n_features)))
            for group in (p.models_.reward_groups, p.models_.cost_groups):
                group[0][2].model.resync_every = 37
    # (a SeedSequence is consumed by spawning: each side gets its own)
    seeds = [3, 4, np.random.SeedSequence(5), 6]
    expected = [run(p, e, T, seed=s) for p, e, s in zip(separate, envs, seeds, strict=True)]
    got = run_replicated(replicated, envs, T, [3, 4, np.random.SeedSequence(5), 6])
    spent = []  # the least budget left in each replica
    for a, b, pa, pb in zip(expected, got, separate, replicated, strict=True):
        assert a == b
        assert set(b.extras) >= {"costs", "budget_left", "model_rewards", "mean_costs"}
        assert set(b.info) == {"cost_lcb", "priced"}
        fa, fb = _flat(pa._get_state()["learned"]), _flat(pb._get_state()["learned"])
        assert fa.keys() == fb.keys()
        for key in fa:
            np.testing.assert_array_equal(np.asarray(fa[key]), np.asarray(fb[key]), err_msg=key)
        assert pa.n_updates_ == pb.n_updates_ == T
        spent.append(b.extras["budget_left"].min())
    # the runs exercise the budget: in some replica what is left falls below one deferral's
    # cost bound (1.0), and the loop's ledger stops the costly action
    assert min(spent) < 1.0


def test_continues_from_trained_policies():
    """A replicated run continues where a separate run left off (and vice versa)."""
    S, T = 3, 150
    a, envs = _build("Deferral", [{}], {"budget_rate": 0.2}, S, 2 * T)
    b, _ = _build("Deferral", [{}], {"budget_rate": 0.2}, S, 2 * T)
    first = [run(p, e, T, seed=s) for s, (p, e) in enumerate(zip(a, envs, strict=True))]
    first_rep = run_replicated(b, envs, T, list(range(S)))
    assert first == first_rep
    second = [run(p, e, T, seed=10 + s) for s, (p, e) in enumerate(zip(a, envs, strict=True))]
    assert second == run_replicated(b, envs, T, [10 + s for s in range(S)])


def test_sweep_replicated_equals_sweep():
    kw = {"seeds": 3, "horizon": 120, "n_checkpoints": 15, "base_seed": 4}
    spec = ("Deferral", {"feedback": "bandit"})
    env = ("deferral-synthetic", {"budget_rate": 0.15, "n_features": 8})
    expected = sweep({"D": spec}, {"e": env}, n_jobs=1, **kw)
    got = sweep_replicated(spec, env, policy_label="D", env_label="e", **kw)
    pd.testing.assert_frame_equal(got, expected)
    assert {"budget", "cumulative_cost"} <= set(got.columns)


def test_rejects_what_it_does_not_cover():
    pols, envs = _build("Deferral", [{}], {}, 1, 50)
    with pytest.raises(ValueError, match="batch_size=1"):
        run_replicated(pols, envs, 50, [0], batch_size=2)
    logistic, _ = _build("Deferral", [{"human_link": "logistic"}], {}, 1, 50)
    with pytest.raises(ValueError, match="identity links"):
        run_replicated(logistic, envs, 50, [0])
    no_budget = [SyntheticDeferral(seed=0, budget_rate=None)]
    with pytest.raises(ValueError, match="budget"):
        run_replicated(
            [PolicySpec("Deferral", {"budget": 5.0}).build_for(no_budget[0], 0, 50)],
            no_budget,
            50,
            [0],
        )
    with pytest.raises(ValueError, match="no replicated form for budgeted"):
        run_replicated([PolicySpec("LinUCB", {}).build_for(envs[0], 0, 50)], envs, 50, [0])
    digits = DigitsDeferral(seed=0)
    with pytest.raises(ValueError, match="_replicated_env"):
        run_replicated([PolicySpec("Deferral", {}).build_for(digits, 0, 50)], [digits], 50, [0])
    mixed = [SyntheticDeferral(seed=0), SyntheticDeferral(seed=1, noise="gaussian", norm="l1")]
    two = [PolicySpec("Deferral", {}).build_for(e, 0, 50) for e in mixed]
    with pytest.raises(ValueError, match="noise kind"):
        run_replicated(two, mixed, 50, [0, 1])
