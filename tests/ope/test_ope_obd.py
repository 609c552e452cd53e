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


def _rank_probabilities_by_enumeration(alpha, beta):
    """P(item k at rank p) for few items: integrate f_k against the exact probability that
    exactly p of the others exceed x (every subset enumerated), with adaptive quadrature."""
    from itertools import combinations

    from scipy import integrate, stats

    K = len(alpha)
    dists = [stats.beta(a, b) for a, b in zip(alpha, beta, strict=True)]
    out = np.zeros((K, 3))
    for k in range(K):
        others = [j for j in range(K) if j != k]
        for p in range(3):

            def exactly_p(x, k=k, p=p, others=others):
                total = 0.0
                for above in combinations(others, p):
                    term = 1.0
                    for j in others:
                        term *= dists[j].sf(x) if j in above else dists[j].cdf(x)
                    total += term
                return dists[k].pdf(x) * total

            out[k, p] = integrate.quad(exactly_p, 0, 1, limit=200, epsabs=1e-12, points=[
                d.mean() for d in dists
            ])[0]  # fmt: skip
    return out


def test_beta_rank_probabilities_equal_brute_force():
    from scarce.ope.obd import beta_rank_probabilities

    alpha = np.array([2.0, 5.0, 9.0, 3.0, 30.0])
    beta = np.array([20.0, 40.0, 60.0, 10.0, 300.0])
    got = beta_rank_probabilities(alpha, beta, 3)
    np.testing.assert_allclose(got, _rank_probabilities_by_enumeration(alpha, beta), atol=2e-6)
    np.testing.assert_allclose(got.sum(axis=0), 1.0, atol=1e-12)
    # identical items are exchangeable: 1/K at every position
    same = beta_rank_probabilities(np.full(6, 4.0), np.full(6, 50.0), 3)
    np.testing.assert_allclose(same, 1 / 6, atol=1e-6)
    with pytest.raises(ValueError, match="alpha and beta must be"):
        beta_rank_probabilities(alpha, beta[:3])
    with pytest.raises(ValueError, match="n_grid must be an int >= 1"):
        beta_rank_probabilities(alpha, beta, n_grid=0)


@pytest.mark.data
def test_bts_prior_ranks_match_a_monte_carlo_of_bernoulli_ts(no_network):
    """obp's BernoulliTS.compute_batch_action_dist draws theta ~ Beta(alpha, beta) and shows
    the 3 largest; 200,000 such draws agree with the exact ranks within 5 standard errors."""
    from scarce.ope.obd import beta_rank_probabilities, bts_prior

    alpha, beta = bts_prior("men")
    assert alpha.shape == beta.shape == (34,)
    exact = beta_rank_probabilities(alpha, beta, 3)
    rng = np.random.default_rng(0)
    n = 200_000
    top = np.argsort(-rng.beta(alpha, beta, size=(n, 34)), axis=1)[:, :3]
    freq = np.stack([np.bincount(top[:, p], minlength=34) / n for p in range(3)], axis=1)
    se = np.sqrt(exact * (1 - exact) / n) + 1e-6
    assert np.all(np.abs(freq - exact) < 5 * se)
    assert [bts_prior(c)[0].size for c in ("all", "women")] == [80, 46]
    with pytest.raises(ValueError, match="campaign"):
        bts_prior("kids")
    assert "obp" not in sys.modules


@pytest.mark.data
def test_obp_protocol_target_differs_from_the_logged_frequencies(no_network):
    from scarce.ope.experiments import policy_distribution

    for campaign in ("men", "women"):
        empirical, truth, se = policy_distribution("bts", campaign)
        prior, truth2, se2 = policy_distribution("bts-obp", campaign)
        assert (truth, se) == (truth2, se2)  # the same BTS click rate is the truth
        np.testing.assert_allclose(prior.sum(axis=0), 1.0, atol=1e-12)
        tv = 0.5 * np.abs(empirical - prior).sum(axis=0)
        assert np.all(tv > 0.25)  # measured 0.30-0.53 per position
    with pytest.raises(ValueError, match="target must be one of"):
        policy_distribution("ucb", "men")
