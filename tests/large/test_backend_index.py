"""Array backends and the catalog's inner-product index: exact search equals brute force,
torch equals NumPy, IVF with every cell probed equals exact, the index follows adds and
removals, and a restored index searches as before."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.models.backend import ArrayBackend
from scarce.models.mips import ActionCatalog, IndexSpec


def _brute_topk(Q, F, k, allowed=None):
    S = Q @ F.T
    if allowed is not None:
        S = np.where(allowed, S, -np.inf)
    ids = np.array([np.lexsort((np.arange(F.shape[0]), -row))[:k] for row in S])
    return np.take_along_axis(S, ids, axis=1), ids


def _catalog(K=500, d=6, kind="exact", seed=0, **spec):
    rng = np.random.default_rng(seed)
    cat = ActionCatalog(K, d, IndexSpec(kind=kind, **spec), ArrayBackend(), seed=1)
    cat.set(rng.normal(size=(K, d)))
    return cat, rng


@given(
    n=st.integers(1, 4),
    K=st.integers(1, 40),
    k=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    masked=st.booleans(),
)
@settings(max_examples=60)
def test_numpy_topk_equals_brute_force(n, K, k, seed, masked):
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(K, 3)).round(1)  # rounding makes ties: lower id first
    Q = rng.normal(size=(n, 3)).round(1)
    allowed = rng.random((n, K)) < 0.6 if masked else None
    s, i = ArrayBackend().topk(Q, F, k, allowed=allowed)
    es, ei = _brute_topk(Q, F, min(k, K), allowed)
    fin = np.isfinite(es)
    np.testing.assert_array_equal(i[fin], ei[fin])
    np.testing.assert_allclose(s[fin], es[fin])
    assert np.all(i[~fin] == -1)


def test_topk_over_many_chunks_equals_brute_force():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(5000, 4))
    Q = rng.normal(size=(1000, 4))  # 1000 cases: chunks of 4,194 actions
    s, i = ArrayBackend().topk(Q, F, 3)
    es, ei = _brute_topk(Q, F, 3)
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_allclose(s, es)


def test_torch_backend_equals_numpy():
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    F = rng.normal(size=(3000, 8)).astype(np.float32)
    Q = rng.normal(size=(7, 8))
    allowed = rng.random((7, 3000)) < 0.5
    tb, nb = ArrayBackend("torch", "cpu"), ArrayBackend("numpy")
    np.testing.assert_allclose(
        tb.scores(Q, tb.put(F)), nb.scores(Q, nb.put(F)), rtol=1e-5, atol=1e-5
    )
    for mask in (None, allowed, allowed[0]):
        ts, ti = tb.topk(Q, tb.put(F), 5, allowed=mask)
        ns, ni = nb.topk(Q, nb.put(F), 5, allowed=mask)
        np.testing.assert_array_equal(ti, ni)
        np.testing.assert_allclose(ts, ns, rtol=1e-5, atol=1e-5)


def test_backend_and_index_settings_errors_name_the_argument():
    with pytest.raises(ValueError, match="backend"):
        ArrayBackend("jax")
    with pytest.raises(ValueError, match="device"):
        ArrayBackend("numpy", "cuda")
    with pytest.raises(ValueError, match=r"index\['kind'\]"):
        IndexSpec.from_param({"kind": "hnsw"})
    with pytest.raises(ValueError, match="unknown key"):
        IndexSpec.from_param({"nprob": 3})
    with pytest.raises(ValueError, match=r"index\['nprobe'\]"):
        IndexSpec.from_param({"nprobe": 0})
    assert IndexSpec.from_param("ivf").kind == "ivf"


def test_exact_catalog_search_with_eligibility_and_changes():
    cat, rng = _catalog()
    Q = rng.normal(size=(5, 6))
    eligible = rng.random((5, 500)) < 0.3
    s, i = cat.search(Q, 4, eligible)
    es, ei = _brute_topk(Q, cat.features.astype(float), 4, eligible)
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_allclose(s, es, rtol=1e-6)
    best = i[:, 0]
    cat.remove(np.unique(best))
    _, i2 = cat.search(Q, 4)
    assert not np.isin(i2, best).any()
    new = cat.add(10 * Q[:1])  # a long vector along case 0's query: its new best
    assert new[0] in best  # the lowest free slot is reused
    assert cat.search(Q[:1], 1)[1][0, 0] == new[0]


def test_catalog_change_errors():
    cat, _ = _catalog(K=5, d=2)
    with pytest.raises(ValueError, match="no room"):
        cat.add(np.ones((1, 2)))
    with pytest.raises(ValueError, match="features must have shape"):
        cat.set(np.ones((2, 3)))
    with pytest.raises(ValueError, match="ids must be in"):
        cat.remove([7])
    cat.remove([1])
    with pytest.raises(ValueError, match="active"):
        cat.remove([1])
    with pytest.raises(ValueError, match="free slots"):
        cat.add(np.ones((1, 2)), ids=[0])


faiss = pytest.importorskip("faiss")


def test_ivf_probing_every_cell_is_exact_and_follows_changes():
    cat, rng = _catalog(K=3000, d=8, kind="ivf", nlist=16, nprobe=16)
    Q = rng.normal(size=(40, 8))
    s, i = cat.search(Q, 3)
    es, ei = _brute_topk(Q, cat.features.astype(float), 3)
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_allclose(s, es, rtol=1e-6)
    assert cat.kind == "ivf" and cat._ivf is not None
    # removals leave the index in place and are never returned
    cat.remove(np.unique(i[:, 0]))
    built = cat._ivf
    _, i2 = cat.search(Q, 3)
    assert cat._ivf is built and not np.isin(i2, i[:, 0]).any()
    # a short new vector is added in place; a longer one than any indexed forces a rebuild
    short = cat.add(0.01 * Q[:1])
    assert cat._ivf is built
    long = cat.add(100 * Q[1:2])
    assert cat.search(Q[1:2], 1)[1][0, 0] == long[0] and cat._ivf is not built
    assert short[0] in cat.search(Q[:1], 3000)[1][0]


def test_ivf_eligibility_falls_back_to_exact_when_candidates_run_out():
    cat, rng = _catalog(K=2000, d=8, kind="ivf", nlist=8, nprobe=8)
    Q = rng.normal(size=(3, 8))
    eligible = np.zeros((3, 2000), dtype=bool)
    eligible[:, :5] = True  # far fewer than the candidates fetched are eligible
    s, i = cat.search(Q, 2, eligible)
    es, ei = _brute_topk(Q, cat.features.astype(float), 2, eligible)
    np.testing.assert_array_equal(i, ei)


def test_ivf_state_round_trip_searches_the_same():
    cat, rng = _catalog(K=4000, d=8, kind="ivf", nprobe=2)
    Q = rng.normal(size=(200, 8))
    cat.remove([0, 5, 9])
    cat.add(rng.normal(size=(2, 8)))
    before = cat.search(Q, 5)
    again = ActionCatalog(4000, 8, cat.spec, ArrayBackend(), seed=99)
    again.set_state(cat.get_state())
    after = again.search(Q, 5)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0])
    # nprobe=2 of ~250 cells: approximate, yet the state (not a retrain) decides the answers
    exact = _brute_topk(Q, cat.features.astype(float), 1, cat.active[None, :])[1][:, 0]
    assert np.mean(before[1][:, 0] == exact) < 1.0


def test_ivf_memory_within_twice_the_features():
    cat, _ = _catalog(K=8_000, d=32, kind="ivf")
    assert cat.memory_bytes() <= 2 * cat.features.nbytes


def test_active_count_follows_changes_and_loaded_states():
    rng = np.random.default_rng(0)
    a = ActionCatalog(10, 3, IndexSpec(kind="exact"), ArrayBackend(), seed=0)
    b = ActionCatalog(10, 3, IndexSpec(kind="exact"), ArrayBackend(), seed=0)
    a.set(rng.normal(size=(5, 3)))
    b.set(rng.normal(size=(3, 3)))  # the same version number as a, fewer actions
    assert (a.n_active, b.n_active) == (5, 3)
    b.set_state(a.get_state())
    assert b.n_active == 5
    b.remove([0, 1])
    b.add(rng.normal(size=(4, 3)))
    assert b.n_active == int(b.active.sum()) == 7
