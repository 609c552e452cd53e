"""Seeded learning tests of issue 14's targets at small scale, with the class defaults (no
tuned settings), on seeds the defaults were not chosen on (env and stream seeds 20-22; the
defaults were looked at on the experiments' seeds and on roots 101-103).

Full-scale figures come from ``scarce run deferral-synthetic`` / ``deferral-real``."""

import math

import numpy as np
import pytest

from scarce.budget import (
    BestReject,
    DigitsDeferral,
    KnapsackBandit,
    SyntheticDeferral,
    best_threshold,
    empirical_opt_deferral,
    static_opt_lp,
)
from scarce.sim import PolicySpec, run

pytestmark = pytest.mark.statistical
SEEDS = (20, 21, 22)


def _against_best_reject(env, T, seed, real=False, feedback="full"):
    """Deferral's and BestReject's (threshold chosen in hindsight) reward over OPT, and the
    share of the budget Deferral spent, on one common stream."""
    B = env.budget(T)[0]
    first = run(
        PolicySpec("ModelOnly").build_for(env, seed, T), env, T, seed=seed, record_contexts=True
    )
    ex = first.extras
    scores = PolicySpec(BestReject).build_for(env, seed, T).model_scores(first.contexts)
    tau, _ = best_threshold(scores, ex["mean_rewards"], ex["deferral_costs"], B, 1.0)
    br = run(PolicySpec(BestReject, {"threshold": tau}).build_for(env, seed, T), env, T, seed=seed)
    policy = PolicySpec("Deferral", {"feedback": feedback}).build_for(env, seed, T)
    tr = run(policy, env, T, seed=seed)
    assert tr.budget_spent[0] <= B + 1e-9
    if real:  # realised reward over the empirical OPT of the sequence, as the paper
        opt = empirical_opt_deferral(
            ex["human_rewards"], ex["model_rewards"], ex["deferral_costs"], B
        ).value
        return tr.reward.sum() / opt, br.reward.sum() / opt, tr.budget_spent[0] / B
    opt = T * env.static_opt()
    return tr.expected_reward.sum() / opt, br.expected_reward.sum() / opt, tr.budget_spent[0] / B


def test_heterogeneous_regime_deferral_beats_best_reject_by_five_points_of_opt():
    # measured: Deferral - BestReject = 0.058, 0.070, 0.079 of OPT (T = 3,000)
    out = np.array(
        [
            _against_best_reject(
                SyntheticDeferral("heterogeneous", seed=s, budget_rate=0.25), 3000, s
            )
            for s in SEEDS
        ]
    )
    gap = out[:, 0] - out[:, 1]
    assert np.all(gap >= 0.03), gap
    assert gap.mean() >= 0.05, gap
    assert np.all(out[:, 1] <= 0.90)  # the regime's point: BestReject is far from OPT
    assert np.all(out[:, 2] >= 0.95)  # the budget is used


def test_digits_deferral_at_least_best_reject_spending_the_budget():
    # measured at B/T = 0.05: Deferral - BestReject = 0.025, 0.019, 0.023; spent 0.99 of B
    out = np.array(
        [
            _against_best_reject(DigitsDeferral(seed=s, budget_rate=0.05), 2000, s, True)
            for s in SEEDS
        ]
    )
    assert np.all(out[:, 0] >= out[:, 1]), out
    assert (out[:, 0] - out[:, 1]).mean() >= 0.01, out
    assert np.all(out[:, 2] >= 0.9), out


def test_bandit_feedback_learns_too():
    # measured (T = 3,000): 0.962 of OPT against BestReject's 0.964
    ratio, br, spent = _against_best_reject(
        SyntheticDeferral("human_better", seed=20, budget_rate=0.25), 3000, 20, feedback="bandit"
    )
    assert ratio >= 0.93 and ratio >= br - 0.02 and spent >= 0.95


def test_knapsack_bandit_several_resources_against_the_lp_opt():
    d, K, m, T = 5, 4, 2, 3000
    rng = np.random.default_rng(0)
    theta = rng.uniform(0, 1, (K, d))
    W = rng.uniform(0, 1, (K, m, d))
    theta[0], W[0] = 0.0, 0.0  # action 0: A&D's no-op
    rate = np.array([0.15, 0.25])

    def contexts(n, g):
        x = g.uniform(0, 1, (n, d))
        return x / x.sum(axis=1, keepdims=True)

    Xs = contexts(3000, np.random.default_rng(1))
    value, _ = static_opt_lp(Xs @ theta.T, np.einsum("kmd,nd->nkm", W, Xs), rate)
    opt = T * value

    def play(warmup):
        g = np.random.default_rng(5)
        pol = KnapsackBandit(
            n_actions=K,
            n_features=d,
            budget=rate * T,
            horizon=T,
            n_resources=m,
            dual={"warmup_rounds": warmup},
            seed=0,
        )
        total, spent = 0.0, np.zeros(m)
        for x in contexts(T, g):
            decision = pol.decide(x)
            a = decision.actions[0]
            mu = theta[a] @ x
            c = (g.random(m) < W[a] @ x).astype(float)
            pol.update(x[None], [a], [float(g.random() < mu)], costs=c[None], info=decision.info)
            total, spent = total + mu, spent + c
        assert np.all(spent <= rate * T)
        return total / opt

    learned = play(None)  # the default warm-up, ceil(sqrt(T))
    uniform = play(T)  # a warm-up as long as the horizon: uniformly random affordable actions
    assert learned >= 0.8, learned  # measured 0.84
    assert learned > uniform + 0.1, (learned, uniform)
    assert math.isfinite(learned)
