"""Seeded learning tests of the issue's acceptance section.

The experiment settings (``beta_scale=0.2``, a ``sqrt(T)`` warm-up) were chosen while looking
at env seeds 1-3 and 11; these tests use other seeds (20-22) so they check them out of sample.
"""

import functools
import math

import numpy as np
import pytest

from scarce.budget import (
    Deferral,
    DigitsDeferral,
    SyntheticDeferral,
    arbitrary_human,
    best_reject,
    model_only,
    run_learner,
)
from scarce.budget.experiments import learner_settings

pytestmark = pytest.mark.statistical
SEEDS = (20, 21, 22)


@functools.cache  # the T = 10,000 runs serve two tests
def _ratios(T, frac, regime, seed, feedback="full"):
    kw = {"feedback": feedback}
    env = SyntheticDeferral(regime, seed=seed)
    opt = T * env.static_opt(frac)
    s = env.sample(T, seed + 1000)
    B = frac * T
    pol = Deferral(n_features=20, budget=B, horizon=T, seed=seed, **{**learner_settings(T), **kw})
    out = {
        "Deferral": run_learner(pol, s),
        "BestReject": best_reject(s, B, 1.0)[0],
        "ArbitraryHuman": arbitrary_human(s, B, 1.0, seed),
        "ModelOnly": model_only(s),
    }
    assert out["Deferral"].spent <= B
    return {k: o.expected_reward / opt for k, o in out.items()}, opt


def test_human_better_ratio_to_opt_and_baselines():
    ratios = [_ratios(10_000, 0.25, "human_better", s)[0] for s in SEEDS]
    mean = {k: float(np.mean([r[k] for r in ratios])) for k in ratios[0]}
    for r in ratios:
        assert r["Deferral"] >= 0.90
        assert r["Deferral"] > r["ArbitraryHuman"] + 0.01
        assert r["Deferral"] > r["ModelOnly"] + 0.2
    # BestReject knows mu_M exactly and gets its threshold picked in sample, so its gap to
    # Deferral is small (0.005-0.03 of OPT on these seeds): each seed must be above it, and
    # the mean by 0.01
    for r in ratios:
        assert r["Deferral"] > r["BestReject"], r
    assert mean["Deferral"] > mean["BestReject"] + 0.01, mean


def test_regret_grows_sublinearly():
    # the expected regret, estimated by the mean over the three seeds at each T: single-seed
    # curves are not power laws (seed 22: 10, 25, 151, 148), their fitted slopes range over
    # 0.52-0.86; the mean's slope is about 0.6
    Ts = (1000, 3000, 10_000, 30_000)
    regrets = []
    for T in Ts:
        per_seed = []
        for seed in SEEDS:
            r, opt = _ratios(T, 0.25, "human_better", seed)
            per_seed.append(opt * (1.0 - r["Deferral"]))
        regrets.append(np.mean(per_seed))
    assert all(r > 0 for r in regrets)
    slope = np.polyfit(np.log(Ts), np.log(regrets), 1)[0]
    assert slope < 0.85, (slope, regrets)


def test_bandit_feedback_learns_too():
    r, _ = _ratios(5000, 0.25, "complementary", 20, feedback="bandit")
    assert r["Deferral"] > r["ArbitraryHuman"] + 0.01
    assert r["Deferral"] >= 0.9


def test_digits_deferral_beats_model_only_and_arbitrary():
    env = DigitsDeferral(seed=5)
    T, frac = 1500, 0.1
    B = frac * T
    s = env.sample(T, 6)
    kw = {**learner_settings(T), "z_gamma": 0.0}  # as in the deferral-real experiment
    pol = Deferral(n_features=env.n_features, budget=B, horizon=T, seed=0, **kw)
    out = run_learner(pol, s)
    assert out.spent <= B
    assert out.expected_reward > model_only(s).expected_reward + 0.01 * T
    assert out.expected_reward > arbitrary_human(s, B, 1.0, 0).expected_reward + 0.01 * T
    assert math.isfinite(env.static_opt(frac))


def test_knapsack_bandit_several_resources_against_the_lp_opt():
    from scarce.budget import KnapsackBandit, static_opt_lp

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

    def run(warmup):
        g = np.random.default_rng(5)
        pol = KnapsackBandit(
            n_actions=K,
            n_features=d,
            budget=rate * T,
            horizon=T,
            n_resources=m,
            beta_scale=0.2,
            warmup_rounds=warmup,
            seed=0,
        )
        total, spent = 0.0, np.zeros(m)
        for x in contexts(T, g):
            a = pol.decide(x).actions[0]
            mu = theta[a] @ x
            c = (g.random(m) < W[a] @ x).astype(float)
            pol.update(x[None], [a], [float(g.random() < mu)], costs=c[None])
            total, spent = total + mu, spent + c
        assert np.all(spent <= rate * T)
        return total / opt

    learned = run(math.ceil(math.sqrt(T)))
    uniform = run(T)  # a warm-up as long as the horizon: uniformly random affordable actions
    assert learned >= 0.8, learned
    assert learned > uniform + 0.1, (learned, uniform)
