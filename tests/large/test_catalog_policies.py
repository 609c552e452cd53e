"""CatalogTS and CatalogUCB: the contract, agreement with the exact rules they approximate,
the catalog kept in step, honest probabilities, persistence, and regret of index search
against exact search."""

from __future__ import annotations

import numpy as np
import pytest

import scarce
from scarce import checks
from scarce.envs.catalog import CatalogEnv
from scarce.models import linear
from scarce.policies import get_policies
from scarce.policies.catalog import CatalogTS, CatalogUCB
from scarce.policies.spanner import SpannerCB
from scarce.sim import run

CLASSES = (CatalogTS, CatalogUCB, SpannerCB)


def test_registered_and_checked_with_their_unit_test_params():
    policies = get_policies()
    for cls in CLASSES:
        assert policies[cls.__name__] is cls
        params = cls._unit_test_params()[0]
        assert np.shape(params["actions"]) == (checks.K, checks.D)
        checks.check_policy(cls)  # both layouts, with the catalog from _unit_test_params


def _trained(cls, K=300, d=5, n=200, seed=0, **kw):
    env = CatalogEnv(K, d, seed=seed)
    p = cls(n_actions=K, n_features=d, seed=1, **kw)
    p.set_actions(env.action_features)
    rng = np.random.default_rng(seed)
    X = env.contexts(n, rng=rng)
    a = rng.integers(0, K, n)
    p.update(X, a, env.outcomes(X, a, rng=rng).rewards)
    return p, env, rng


def test_catalog_on_user_vectors_equals_per_action_features():
    """(n, d) users against the catalog decide as (n, K, d) features x * f_a do."""
    for cls, kw in ((CatalogTS, {"v": 0.5}), (CatalogUCB, {"alpha": 1.0, "n_candidates": 300})):
        a, env, rng = _trained(cls, **kw)
        X = env.contexts(20, rng=rng)
        Xk = X[:, None, :] * env.action_features.astype(np.float64)[None]
        b = cls(n_actions=300, n_features=5, seed=1, **kw)
        b.update(Xk[:, :1].repeat(300, axis=1), np.zeros(20, dtype=int), np.zeros(20))  # init
        b._set_learned_state(a._get_learned_state())
        b.rng_ = np.random.default_rng(3)
        a.rng_ = np.random.default_rng(3)
        np.testing.assert_array_equal(a.decide(X).actions, b.decide(Xk).actions)


def _brute_ucb(p, X, alpha):
    Xk = X[:, None, :] * p.catalog.features.astype(np.float64)[None]
    mean, var = linear.predict(Xk, p.ridge_.theta, p.ridge_.A_inv)
    return np.where(p.catalog.active, mean + alpha * np.sqrt(var), -np.inf)


@pytest.mark.parametrize("seed", range(6))
def test_ucb_certified_decisions_are_the_exact_argmax(seed):
    p, env, rng = _trained(CatalogUCB, K=400, d=4, n=30, seed=seed, alpha=2.0, n_candidates=8)
    X = env.contexts(50, rng=rng)
    d = p.decide(X)
    exact = np.argmax(_brute_ucb(p, X, 2.0), axis=1)
    certified = d.info["certified"] > 0 if hasattr(d, "info") else p._rule(X, None)[3]
    assert np.all(d.actions[certified] == exact[certified])
    # with every action a candidate the rule is exact LinUCB
    full = CatalogUCB(n_actions=400, n_features=4, alpha=2.0, n_candidates=400, seed=1)
    full.set_actions(p.catalog.features)
    full.update(X[:1], d.actions[:1], np.zeros(1))
    full._set_learned_state(p._get_learned_state())
    np.testing.assert_array_equal(full.decide(X).actions, exact)


def test_ucb_candidates_from_the_ellipsoid_axes_find_wide_actions():
    """Early on the widths dominate: the mean query alone misses most UCB maximisers."""
    agree = {}
    for n_dir in (0, 3):
        p, env, rng = _trained(
            CatalogUCB, K=2000, d=6, n=5, alpha=3.0, n_candidates=4, n_directions=n_dir
        )
        X = env.contexts(200, rng=np.random.default_rng(9))
        agree[n_dir] = np.mean(p.decide(X).actions == np.argmax(_brute_ucb(p, X, 3.0), axis=1))
    assert agree[3] > agree[0] + 0.1


def test_removed_actions_are_never_chosen_and_added_ones_are():
    p, env, rng = _trained(CatalogTS, v=0.0)
    X = env.contexts(30, rng=rng)
    first = p.decide(X).actions
    p.remove_actions(np.unique(first))
    probs = p.action_probabilities(X)
    assert np.all(probs[:, np.unique(first)] == 0)
    assert not np.isin(p.decide(X).actions, first).any()
    with pytest.raises(ValueError, match="actions must be in the catalog"):
        p.update(X[:1], first[:1], np.zeros(1))
    star = 50 * p.ridge_.theta[0]  # far along the learned direction: best for users near 1
    new = p.add_actions(star[None, :])
    assert np.mean(p.decide(X).actions == new[0]) > 0.8


def test_ts_probabilities_are_monte_carlo_estimates_of_the_rule_as_run():
    p, env, rng = _trained(CatalogTS, K=50, d=3, n=40, v=1.0, propensity_samples=3000)
    x = env.contexts(1, rng=rng)
    d = p.decide(np.repeat(x, 4000, axis=0))
    freq = np.bincount(d.actions, minlength=50) / 4000
    expected = p.action_probabilities(x)[0]
    np.testing.assert_allclose(freq, expected, atol=0.03)
    # a decision on the same case reports the same estimate (the stream depends on the state
    # and the batch size only)
    one = p.decide(x)
    assert one.probabilities[0] == expected[one.actions[0]]
    # the catalog changed: probabilities of an earlier decision cannot be estimated any more
    d2 = p.decide(x)
    p.remove_actions([int(np.argmin(expected))])
    with pytest.raises(RuntimeError, match="catalog changed"):
        d2.probabilities  # noqa: B018


@pytest.mark.parametrize(
    "cls, kw",
    [(CatalogTS, {"v": 1.0, "propensity_samples": 300}), (CatalogUCB, {}), (SpannerCB, {})],
)
def test_action_support_is_the_sparse_form_of_action_probabilities(cls, kw):
    p, env, rng = _trained(cls, **kw)
    X = env.contexts(6, rng=rng)
    eligible = rng.random((6, 300)) < 0.5
    state = p.rng_.bit_generator.state
    for mask in (None, eligible):
        ids, probs = p.action_support(X, eligible=mask)
        dense = p.action_probabilities(X, eligible=mask)
        assert ids.shape == probs.shape and ids.shape[0] == 6
        for i in range(6):
            ok = ids[i] >= 0
            assert np.all(np.diff(ids[i][ok]) > 0) and np.all(ids[i][~ok] == -1)
            np.testing.assert_array_equal(ids[i][ok], np.flatnonzero(dense[i] > 0))
            np.testing.assert_allclose(probs[i][ok], dense[i][ids[i][ok]], rtol=1e-12)
            assert np.all(probs[i][~ok] == 0) and abs(probs[i].sum() - 1.0) < 1e-9
            if mask is not None:
                assert mask[i, ids[i][ok]].all()
    assert p.rng_.bit_generator.state == state  # no draw from the decision stream
    # a decision carries the same sparse distribution (no (n, K) array behind it)
    expected = p.action_support(X)
    d = p.decide(X)
    for got, want in zip(d.support, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert d._dense is None


def test_ucb_decisions_follow_updates_between_them():
    """Decisions reuse the eigendecomposition of A^-1 only while the model is unchanged."""
    p, env, rng = _trained(CatalogUCB, alpha=3.0, n_candidates=4, n=5)
    X = env.contexts(40, rng=rng)
    p.decide(X)
    a = rng.integers(0, 300, 100)
    Xu = env.contexts(100, rng=rng)
    p.update(Xu, a, env.outcomes(Xu, a, rng=rng).rewards)
    fresh = CatalogUCB(n_actions=300, n_features=5, alpha=3.0, n_candidates=4, seed=1)
    fresh.set_actions(env.action_features)
    fresh.update(X[:1], np.zeros(1, dtype=int), np.zeros(1))
    fresh._set_learned_state(p._get_learned_state())
    np.testing.assert_array_equal(p.decide(X).actions, fresh.decide(X).actions)
    np.testing.assert_array_equal(p.decide(X).info["certified"], fresh.decide(X).info["certified"])


def test_scores_are_built_lazily_from_the_scored_candidates():
    p, env, rng = _trained(CatalogUCB, n_candidates=5)
    d = p.decide(env.contexts(3, rng=rng))
    assert d.scores.shape == (3, 300)
    finite = np.isfinite(d.scores)
    assert 1 <= finite.sum(axis=1).min() and finite.sum(axis=1).max() <= 5 * 3
    assert np.all(d.scores[np.arange(3), d.actions] == d.scores.max(axis=1))


def test_missing_catalog_and_bad_parameters_are_named():
    p = CatalogTS(n_actions=5, n_features=2)
    with pytest.raises(ValueError, match="set_actions"):
        p.decide(np.ones((1, 2)))
    with pytest.raises(ValueError, match="actions: no file"):
        CatalogTS(n_actions=5, n_features=2, actions="/nonexistent.npy").decide(np.ones((1, 2)))
    with pytest.raises(ValueError, match="more than n_actions"):
        CatalogTS(n_actions=1, n_features=2, actions=[[1, 2], [3, 4]]).decide(np.ones((1, 2)))
    with pytest.raises(ValueError, match="n_candidates"):
        CatalogUCB(n_actions=2, n_features=2, n_candidates=0).decide(np.ones((1, 2)))
    with pytest.raises(ValueError, match="index"):
        CatalogUCB(n_actions=2, n_features=2, index={"kind": "lsh"}).decide(np.ones((1, 2)))
    with pytest.raises(ValueError, match="eligible has no active action"):
        q = CatalogTS(n_actions=3, n_features=2, actions=[[1, 0], [0, 1]])
        q.decide(np.ones((1, 2)), eligible=np.array([[False, False, True]]))


def test_npy_catalog_path_and_save_load_without_the_file(tmp_path):
    pytest.importorskip("faiss")
    env = CatalogEnv(3000, 6, seed=2)
    path = tmp_path / "items.npy"
    np.save(path, env.action_features)
    p = CatalogTS(
        n_actions=3100, n_features=6, actions=str(path), index={"kind": "ivf", "nprobe": 2}, seed=4
    )
    rng = np.random.default_rng(0)
    for _ in range(3):
        X = env.contexts(20, rng=rng)
        a = p.decide(X).actions
        p.update(X, a, env.outcomes(X, a, rng=rng).rewards)
    p.remove_actions([1, 2])
    p.add_actions(np.ones((3, 6)))
    p.save(tmp_path / "saved")
    path.unlink()  # the saved state holds the catalog; the path is not read again
    q = scarce.load(tmp_path / "saved")
    X = env.contexts(100, rng=rng)
    d1, d2 = p.decide(X), q.decide(X)
    np.testing.assert_array_equal(d1.actions, d2.actions)
    np.testing.assert_array_equal(d1.probabilities, d2.probabilities)
    assert q.catalog.kind == "ivf" and q.catalog.n_active == 3001


@pytest.mark.statistical
def test_index_search_regret_within_ten_percent_of_exact_search():
    pytest.importorskip("faiss")
    env = CatalogEnv(20_000, 16, seed=3)
    regret = {}
    for kind in ("exact", "ivf"):
        total = 0.0
        for seed in range(2):
            p = CatalogTS(
                n_actions=20_000, n_features=16, v=0.1, index={"kind": kind, "nprobe": 8}, seed=seed
            )
            p.set_actions(env.action_features)
            total += run(
                p, env, 1000, batch_size=20, seed=seed, record_probabilities=False
            ).regret.sum()
        regret[kind] = total
    assert regret["ivf"] <= 1.10 * regret["exact"]
    # and both learn: far below a uniformly random choice
    X = env.contexts(500, rng=np.random.default_rng(0))
    mu = env.expected_rewards(X)
    random_regret = 2 * 1000 * np.mean(mu.max(axis=1) - mu.mean(axis=1))
    assert regret["ivf"] < 0.1 * random_regret
