"""Mixed-effect Thompson sampling (Aouali, Kveton and Katariya, AISTATS 2023) and hierarchical
Thompson sampling (Hong et al. 2022) as its one-effect case.

Model (linear-Gaussian, the paper's Eq. 2, with the general matrix mixing of its App. E.2)::

    Psi ~ N(mu_Psi, Sigma_Psi)                      stacked effects, (L d,)
    theta_i | Psi ~ N(C_i Psi, Sigma_0i)            action i, C_i (d, L d)
    Y | x, A = i ~ N(x^T theta_i, sigma^2)          or Bernoulli(sigmoid(x^T theta_i))

Mixing weights ``b`` ``(K, L)`` give ``C_i = b_i^T (x) I_d`` (so ``C_i Psi = sum_l b_il psi_l``);
the code works with ``C_i`` throughout and derives that case from it.

Each action's data enter the effect posterior as one Gaussian observation of ``C_i Psi``
(Proposition 1) with precision ``P_i = (Sigma_0i + G_i^{-1})^{-1}``, written in the exact
Woodbury form ``P_i = L0_i - L0_i (G_i + L0_i)^{-1} L0_i`` (``L0_i = Sigma_0i^{-1}``), and mean
term ``h_i = L0_i (G_i + L0_i)^{-1} B_i``; a never-pulled action contributes nothing, with no
jitter. Updates are incremental: only the pulled action's ``P_i, h_i`` change, and the
``(L d, L d)`` effect precision is corrected by ``C_i^T (P_i^new - P_i^old) C_i``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.glm import LogisticRegression
from scarce.policies import register_policy
from scarce.policies.base import masked
from scarce.structured.replicated import MixedEffectReplicas

_LIKELIHOODS = ("linear", "logistic")
_EFFECTS = ("joint", "factored", "factored-exact")
# bytes of the (chunk, K, K, nodes) array built for all-action choice probabilities
_PROB_CHUNK_BYTES = 64 << 20


def _as_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric; could not convert: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _spd_inverse(S: np.ndarray, name: str) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix (or a stack of them) via Cholesky."""
    if not np.allclose(S, np.swapaxes(S, -1, -2), rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    try:
        chol = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite") from None
    eye = np.broadcast_to(np.eye(S.shape[-1]), S.shape)
    Linv = np.linalg.solve(chol, eye)
    return np.swapaxes(Linv, -1, -2) @ Linv


def mixing_matrices(mixing: np.ndarray, n_features: int) -> np.ndarray:
    """``(K, d, L d)`` mixing matrices ``C_i``.

    Parameters
    ----------
    mixing:
        ``(K, L)`` weights ``b`` (then ``C_i = b_i^T (x) I_d``, the Kronecker product, so that
        ``C_i Psi = sum_l b_il psi_l``) or ``(K, d, L d)`` general matrices (returned as is).
    n_features:
        ``d``.
    """
    if mixing.ndim == 2:
        K, L = mixing.shape
        eye = np.eye(n_features)
        return np.einsum("kl,de->kdle", mixing, eye).reshape(K, n_features, L * n_features)
    return mixing


@register_policy
class MixedEffectTS(Policy):
    """Mixed-effect Thompson sampling (meTS; Aouali, Kveton and Katariya 2023).

    Each round samples the stacked effects ``Psi`` from their posterior, then each action's
    parameter ``theta_i`` from its conditional posterior given ``Psi``, and picks the largest
    ``x^T theta_i``; this two-stage draw is a draw from the exact marginal posterior of
    ``theta_i``. The action posterior given ``Psi`` (Proposition 2) is
    ``N(S_i (L0_i C_i Psi + B_i), S_i)`` with ``S_i = (L0_i + G_i)^{-1}``.

    Parameters
    ----------
    n_actions:
        ``K``.
    n_features:
        ``d``.
    mixing:
        ``(K, L)`` mixing weights ``b`` or ``(K, d, L d)`` mixing matrices ``C_i``. Default
        None: one effect shared by every action with weight 1 (hierarchical TS).
    effect_mean:
        ``(L d,)`` prior mean ``mu_Psi`` of the stacked effects (effect by effect); default 0.
    effect_cov:
        ``(L d, L d)`` prior covariance ``Sigma_Psi``; default identity. With
        ``effects="factored"`` only its ``d x d`` diagonal blocks are used.
    action_cov:
        ``(d, d)`` (all actions) or ``(K, d, d)`` prior covariance ``Sigma_0i`` of an action
        around its effects' mixture; default identity.
    noise_std:
        reward noise ``sigma`` of the linear-Gaussian likelihood, > 0 (unused when logistic).
    likelihood:
        ``"linear"`` (Gaussian rewards, exact posteriors) or ``"logistic"`` (rewards in
        [0, 1]; meTS-GLM: each action's likelihood is replaced by its Laplace approximation
        ``N(mu_i^LAP, (G_i^LAP)^{-1})`` at the maximum-likelihood estimate).
    effects:
        ``"joint"`` (Proposition 1), ``"factored"`` (meTS-Fa, App. E.1) or
        ``"factored-exact"``. ``"factored"`` follows the paper's printed Eqs. 43-44 (as its
        code does): effect ``l`` has precision ``Lbar_ll`` (the ``l``-th diagonal block of the
        joint precision, prior blocks only) and mean ``Lbar_ll^{-1} hbar_l``, which drops the
        cross-effect terms of the joint mean. ``"factored-exact"`` is the E.1 proof's
        mean-field posterior: the same block precisions ``Lbar_ll`` (full prior) around the
        exact joint mean (it costs what ``"joint"`` costs). The E.1 prose instead takes the
        diagonal blocks of the joint *covariance*. All agree when ``Lbar`` is block diagonal.
    jitter:
        >= 0. When > 0, the effect posterior uses ``(G_i + jitter I)^{-1}`` in place of
        ``G_i^{-1}``, as the paper and its code do (1e-3 in the paper, 1e-5 in the GLM code);
        then a never-pulled action contributes ``(Sigma_0i + I / jitter)^{-1}``, not 0.
        The default 0 is the exact Woodbury form.
    laplace_batch:
        logistic only. None (default): ``mu^LAP`` and ``G^LAP`` from the action's full
        history (the paper). An int ``k``: once an action has more than ``k`` observations,
        both come from a random sample of ``k`` of them drawn with replacement at each refit,
        so the precision stops growing after about ``k`` observations (parity with the
        official code, which draws a fresh sample at every IRLS iteration instead).
    laplace_ridge:
        logistic only: L2 penalty > 0 that makes the MLE exist on separable data (the code
        uses 1e-5). It enters the mode only; ``G^LAP`` is the likelihood's curvature.
    max_iter:
        logistic only: damped-Newton iterations per refit.
    propensity_samples:
        effect draws used for choice probabilities (given ``Psi`` the actions' scores are
        independent, so each draw is integrated exactly by quadrature; Rao-Blackwellised
        Monte Carlo over ``Psi``).
    seed:
        int, Generator or None.

    Notes
    -----
    Contexts: ``(n, d)`` (one context per round, the paper) or ``(n, K, d)`` (one context per
    action, the official code). In both layouts every action keeps its own ``theta_i``.
    """

    #: quadrature over independent per-action scores; Monte Carlo when they are correlated
    probability_method = {"shared_context": "quadrature", "action_features": "monte_carlo"}
    #: full recomputation of the effect precision every this many incremental corrections
    resync_every = 1000
    _replicated = staticmethod(MixedEffectReplicas)  # the scarce.sim.replicated hook

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        mixing: Any = None,
        effect_mean: Any = None,
        effect_cov: Any = None,
        action_cov: Any = None,
        noise_std: float = 1.0,
        likelihood: str = "linear",
        effects: str = "joint",
        jitter: float = 0.0,
        laplace_batch: int | None = None,
        laplace_ridge: float = 1e-5,
        max_iter: int = 100,
        propensity_samples: int = 256,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.mixing = mixing
        self.effect_mean = effect_mean
        self.effect_cov = effect_cov
        self.action_cov = action_cov
        self.noise_std = noise_std
        self.likelihood = likelihood
        self.effects = effects
        self.jitter = jitter
        self.laplace_batch = laplace_batch
        self.laplace_ridge = laplace_ridge
        self.max_iter = max_iter
        self.propensity_samples = propensity_samples

    # ------------------------------------------------------------------ parameters
    @property
    def reward_bounds(self) -> tuple[float, float] | None:  # type: ignore[override]
        return (0.0, 1.0) if self.likelihood == "logistic" else None

    def _mixing_array(self) -> Any:
        """The mixing argument (a hook: :class:`HierarchicalTS` supplies all-ones weights)."""
        if self.mixing is None:
            check_positive_int(self.n_actions, "n_actions")
            return np.ones((self.n_actions, 1))
        return self.mixing

    def _check_params(self) -> None:
        super()._check_params()
        K, d = self.n_actions, self.n_features
        if self.likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {_LIKELIHOODS}; got {self.likelihood!r}")
        if self.effects not in _EFFECTS:
            raise ValueError(f"effects must be one of {_EFFECTS}; got {self.effects!r}")
        check_scalar(self.noise_std, "noise_std", low=0.0, low_inclusive=False)
        check_scalar(self.jitter, "jitter", low=0.0)
        check_scalar(self.laplace_ridge, "laplace_ridge", low=0.0, low_inclusive=False)
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.propensity_samples, "propensity_samples")
        if self.laplace_batch is not None:
            check_positive_int(self.laplace_batch, "laplace_batch")
        mix = _as_array(self._mixing_array(), "mixing")
        if mix.ndim == 2 and mix.shape[0] == K:
            L = mix.shape[1]
        elif mix.ndim == 3 and mix.shape[:2] == (K, d) and mix.shape[2] % d == 0:
            L = mix.shape[2] // d
        else:
            raise ValueError(
                f"mixing must have shape ({K}, L) (weights b) or ({K}, {d}, L*{d}) (matrices C_i); "
                f"got {mix.shape}"
            )
        if L < 1:
            raise ValueError(f"mixing must have at least one effect; got shape {mix.shape}")
        Ld = L * d
        mean = (
            np.zeros(Ld) if self.effect_mean is None else _as_array(self.effect_mean, "effect_mean")
        )
        if mean.shape != (Ld,):
            raise ValueError(f"effect_mean must have shape ({Ld},) = (L*d,); got {mean.shape}")
        cov = np.eye(Ld) if self.effect_cov is None else _as_array(self.effect_cov, "effect_cov")
        if cov.shape != (Ld, Ld):
            raise ValueError(
                f"effect_cov must have shape ({Ld}, {Ld}) = (L*d, L*d); got {cov.shape}"
            )
        acov = np.eye(d) if self.action_cov is None else _as_array(self.action_cov, "action_cov")
        if acov.shape == (d, d):
            acov = np.broadcast_to(acov, (K, d, d))
        elif acov.shape != (K, d, d):
            raise ValueError(
                f"action_cov must have shape ({d}, {d}) or ({K}, {d}, {d}); got {acov.shape}"
            )
        self.n_effects_ = L
        self.C_ = mixing_matrices(mix, d)
        self.effect_mean_ = mean
        self.action_prec_ = _spd_inverse(np.ascontiguousarray(acov), "action_cov")
        # the effect posterior as independent blocks: one (Ld x Ld) block when joint, L (d x d)
        # blocks when factored; C_i split into the matching column blocks, (K, nb, d, bs)
        nb, bs = (L, d) if self.effects == "factored" else (1, L * d)
        self._nb, self._bs = nb, bs
        self.Cb_ = self.C_.reshape(K, d, nb, bs).transpose(0, 2, 1, 3).copy()
        prior_blocks = np.stack(
            [cov[j * bs : (j + 1) * bs, j * bs : (j + 1) * bs] for j in range(nb)]
        )
        self.effect_prior_prec_ = _spd_inverse(prior_blocks, "effect_cov")

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        K, d = self.n_actions, self.n_features
        self.G_ = np.zeros((K, d, d))  # likelihood precision (sigma^-2 sum x x^T, or G^LAP)
        self.B_ = np.zeros((K, d))  # sigma^-2 sum y x, or G^LAP mu^LAP
        if self.likelihood == "logistic":
            self.glm_ = LogisticRegression(
                K, d, lam=float(self.laplace_ridge), max_iter=int(self.max_iter)
            )
            self.mu_lap_ = np.zeros((K, d))
        self._refresh_all()

    def _action_terms(self, ids: np.ndarray) -> None:
        """Recompute the cached per-action quantities of actions ``ids`` from ``G``, ``B``."""
        d = self.n_features
        L0 = self.action_prec_[ids]
        G, B = self.G_[ids], self.B_[ids]
        S = np.linalg.inv(L0 + G)
        S = 0.5 * (S + np.swapaxes(S, 1, 2))
        Se = S if self.jitter == 0 else np.linalg.inv(L0 + G + self.jitter * np.eye(d))
        P = L0 - L0 @ Se @ L0
        self.P_[ids] = 0.5 * (P + np.swapaxes(P, 1, 2))
        self.h_[ids] = (L0 @ (Se @ B[..., None]))[..., 0]
        self.S_[ids] = S
        self.W_[ids] = S @ L0 @ self.C_[ids]
        self.u_[ids] = (S @ B[..., None])[..., 0]

    def _effect_data_terms(
        self, ids: np.ndarray, P: np.ndarray, h: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sum over actions ``ids`` of ``C_i^T P_i C_i`` (as ``(nb, bs, bs)`` diagonal blocks)
        and of ``C_i^T h_i`` (``(nb, bs)``)."""
        Cb = self.Cb_[ids]  # (k, nb, d, bs)
        CbT = np.swapaxes(Cb, 2, 3)
        prec = (CbT @ (P[:, None] @ Cb)).sum(axis=0)
        hs = (CbT @ h[:, None, :, None])[..., 0].sum(axis=0)
        return prec, hs

    def _refresh_all(self) -> None:
        K, d, L = self.n_actions, self.n_features, self.n_effects_
        self.P_ = np.zeros((K, d, d))
        self.h_ = np.zeros((K, d))
        self.S_ = np.zeros((K, d, d))
        # W stored as (d, K, Ld) so that X @ W is one GEMM for shared contexts; W_ is the
        # (K, d, Ld) view of the same memory
        self.WT_ = np.zeros((d, K, L * d))
        self.W_ = self.WT_.transpose(1, 0, 2)
        self.u_ = np.zeros((K, d))
        self._action_terms(np.arange(K))
        self._recompute_effect_precision()

    def _recompute_effect_precision(self) -> None:
        prec, h = self._effect_data_terms(np.arange(self.n_actions), self.P_, self.h_)
        prior_mean = self.effect_mean_.reshape(self._nb, self._bs, 1)
        self.effect_prec_ = self.effect_prior_prec_ + prec
        self.effect_h_ = (self.effect_prior_prec_ @ prior_mean)[..., 0] + h
        self._since_resync = 0
        self._factor = None

    def _update_actions(self, ids: np.ndarray) -> None:
        """Incremental update after new data for actions ``ids`` (``G``, ``B`` already set)."""
        P_old, h_old = self.P_[ids].copy(), self.h_[ids].copy()
        self._action_terms(ids)
        self._since_resync += len(ids)
        if self._since_resync >= self.resync_every:
            self._recompute_effect_precision()
            return
        dprec, dh = self._effect_data_terms(ids, self.P_[ids] - P_old, self.h_[ids] - h_old)
        self.effect_prec_ = self.effect_prec_ + dprec
        self.effect_h_ = self.effect_h_ + dh
        self._factor = None

    def _effect_factor(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``(Ld,)`` of the effects and the lower Cholesky factors
        ``(nb, bs, bs)`` of their block precisions (cached until the next update)."""
        if self._factor is None:
            prec = 0.5 * (self.effect_prec_ + np.swapaxes(self.effect_prec_, 1, 2))
            mean = np.linalg.solve(prec, self.effect_h_[..., None])[..., 0].reshape(-1)
            if self.effects == "factored-exact":  # mean-field: the joint's diagonal blocks
                d = self.n_features
                prec = np.stack([prec[0, j : j + d, j : j + d] for j in range(0, prec.shape[1], d)])
            self._factor = (mean, np.linalg.cholesky(prec))
        return self._factor

    # ------------------------------------------------------------------ inspection
    def effect_posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(mean (Ld,), cov (Ld, Ld))`` of the stacked effects (block diagonal
        with ``effects="factored"``). Before any data: the prior."""
        self._require_initialized()
        mean, chol = self._effect_factor()
        nb, bs = chol.shape[:2]
        cov = np.zeros((mean.shape[0], mean.shape[0]))
        Linv = np.linalg.solve(chol, np.broadcast_to(np.eye(bs), chol.shape))
        blocks = np.swapaxes(Linv, 1, 2) @ Linv  # (chol chol^T)^{-1}
        for j in range(nb):
            cov[j * bs : (j + 1) * bs, j * bs : (j + 1) * bs] = 0.5 * (blocks[j] + blocks[j].T)
        return mean.copy(), cov

    def action_posterior(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Marginal posterior ``(mean (d,), cov (d, d))`` of action ``i``'s parameter:
        ``mean = S_i (L0_i C_i mu_bar + B_i)`` and, by the total-covariance law (Lemma 3),
        ``cov = S_i + W_i Sigma_bar W_i^T`` with ``W_i = S_i L0_i C_i``."""
        self._require_initialized()
        i = int(i)
        if not 0 <= i < self.n_actions:
            raise ValueError(f"i must be an action id in [0, {self.n_actions}); got {i}")
        mean, cov = self.effect_posterior()
        W = self.W_[i]
        return W @ mean + self.u_[i], self.S_[i] + W @ cov @ W.T

    def conditional_action_posterior(self, i: int, effects: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(mean (d,), cov (d, d))`` of action ``i`` given the stacked effects
        ``effects`` ``(Ld,)`` (Proposition 2)."""
        self._require_initialized()
        psi = _as_array(effects, "effects")
        if psi.shape != (self.n_effects_ * self.n_features,):
            raise ValueError(
                f"effects must have shape ({self.n_effects_ * self.n_features},); got {psi.shape}"
            )
        return self.W_[i] @ psi + self.u_[i], self.S_[i].copy()

    def _require_initialized(self) -> None:
        # before the first decide/update: the prior, without fixing the context layout
        if not self._initialized and not hasattr(self, "G_"):
            self._check_params()
            self._init_state()

    # ------------------------------------------------------------------ deciding
    def _projections(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For contexts ``X``: ``XW`` ``(n, K, Ld)``, ``xu`` ``(n, K)`` and ``var`` ``(n, K)``,
        so that given effects ``Psi`` the score of action ``k`` is ``N(XW[:, k] Psi + xu[:, k],
        var[:, k])``, independently over actions."""
        if self.context_mode_ == SHARED_CONTEXT:
            n, K = X.shape[0], self.n_actions
            XW = (X @ self.WT_.reshape(self.n_features, -1)).reshape(n, K, -1)
            xu = X @ self.u_.T
            var = linear.predict_variance(X, self.S_)
        else:
            XW = (X[:, :, None, :] @ self.W_[None])[:, :, 0, :]
            xu = np.einsum("nkd,kd->nk", X, self.u_)
            var = np.einsum("nkd,nkd->nk", (X[:, :, None, :] @ self.S_[None])[:, :, 0, :], X)
        return XW, xu, np.maximum(var, 0.0)

    def _sample_effects(
        self, n: int, rng: np.random.Generator, factor: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """``(n, Ld)`` draws from the effect posterior (or from ``factor = (mean, chol)``)."""
        mean, chol = self._effect_factor() if factor is None else factor
        z = rng.standard_normal((n, mean.shape[0]))
        zb = z.reshape(n, *chol.shape[:2]).transpose(1, 2, 0)  # (blocks, block size, n)
        # precision = chol chol^T, so chol^{-T} z has covariance precision^{-1}
        draws = np.linalg.solve(np.swapaxes(chol, 1, 2), zb)
        return mean + draws.transpose(2, 0, 1).reshape(n, -1)

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        n = X.shape[0]
        XW, xu, var = self._projections(X)
        psi = self._sample_effects(n, self.rng_)
        std = np.sqrt(var)
        scores = (XW @ psi[:, :, None])[..., 0] + xu + std * self.rng_.standard_normal(xu.shape)
        scores = masked(scores, eligible)
        actions = np.argmax(scores, axis=1)
        mean, chol = self._effect_factor()
        state = (XW, xu, std, mean.copy(), chol.copy(), self.n_updates_)

        def probabilities() -> np.ndarray:
            return self._rb_probabilities(state, eligible, actions)

        out = expit(scores) if self.likelihood == "logistic" else scores
        return Decision(actions, None, out, probability_fn=probabilities)

    def _rb_probabilities(self, state, eligible, actions) -> np.ndarray:
        """Choice probabilities: Monte Carlo over effect draws from a separate deterministic
        stream, each integrated exactly over the (conditionally independent) action draws."""
        XW, xu, std, mean, chol, n_updates = state
        n, K = xu.shape
        M = int(self.propensity_samples)
        rng = np.random.default_rng([int(n_updates), n, 7919])
        psi = self._sample_effects(M, rng, (mean, chol))  # (M, Ld)
        cond_mean = (XW @ psi.T).transpose(2, 0, 1) + xu[None]
        flat_mean = cond_mean.reshape(M * n, K)
        flat_std = np.broadcast_to(std, (M, n, K)).reshape(M * n, K)
        elig = None if eligible is None else np.broadcast_to(eligible, (M, n, K)).reshape(M * n, K)
        if actions is None:
            out = np.zeros((n, K))
            step = max(1, _PROB_CHUNK_BYTES // (8 * K * K * 48))
            for start in range(0, M * n, step):
                sl = slice(start, start + step)
                p = linear.gaussian_argmax_probabilities(
                    flat_mean[sl], flat_std[sl], None if elig is None else elig[sl]
                )
                rows = np.arange(start, min(start + step, M * n)) % n
                np.add.at(out, rows, p)
            return out / M
        acts = np.broadcast_to(actions, (M, n)).reshape(-1)
        p = linear.gaussian_argmax_probability_of(flat_mean, flat_std, acts, elig)
        return p.reshape(M, n).mean(axis=0)

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        XW, xu, var = self._projections(X)
        mean, chol = self._effect_factor()
        state = (XW, xu, np.sqrt(var), mean, chol, self.n_updates_)
        return self._rb_probabilities(state, eligible, None)

    # ------------------------------------------------------------------ learning
    def _learn(self, X, actions, rewards, full_rewards, **extra):  # type: ignore[override]
        n, K = X.shape[0], self.n_actions
        if full_rewards is not None:
            ids = np.tile(np.arange(K), n)
            feats = np.repeat(X, K, axis=0) if X.ndim == 2 else X.reshape(n * K, -1)
            targets = full_rewards.reshape(-1)
        else:
            ids = actions
            feats = X if X.ndim == 2 else X[np.arange(n), actions]
            targets = rewards
        touched = np.unique(ids)
        if self.likelihood == "linear":
            s2 = float(self.noise_std) ** 2
            np.add.at(self.G_, ids, np.einsum("nd,ne->nde", feats, feats) / s2)
            np.add.at(self.B_, ids, feats * (targets / s2)[:, None])
        else:
            self.glm_.partial_fit(feats, targets, ids)
            for m in touched:
                self._laplace(int(m))
        self._update_actions(touched)

    def _laplace(self, m: int) -> None:
        """Laplace approximation of action ``m``'s likelihood: mode ``mu^LAP`` (the ridge-
        penalised MLE) and curvature ``G^LAP = sum sigmoid'(x^T mu) x x^T`` there."""
        Xh, yh = self.glm_.history(m)
        batch = self.laplace_batch
        if batch is None or Xh.shape[0] <= batch:
            mu = self.glm_.theta[m].copy()
        else:
            rows = self.rng_.integers(Xh.shape[0], size=int(batch))
            Xh, yh = Xh[rows], yh[rows]
            sub = LogisticRegression(
                1, self.n_features, lam=float(self.laplace_ridge), max_iter=int(self.max_iter)
            )
            sub.theta[0] = self.mu_lap_[m]
            sub.partial_fit(Xh, yh)
            mu = sub.theta[0].copy()
        p = expit(Xh @ mu)
        G = (Xh * (p * (1.0 - p))[:, None]).T @ Xh
        self.mu_lap_[m] = mu
        self.G_[m] = 0.5 * (G + G.T)
        self.B_[m] = self.G_[m] @ mu

    # ------------------------------------------------------------------ persistence
    def _get_learned_state(self) -> dict[str, Any]:
        # the caches are saved too (not recomputed on load), so a loaded policy continues
        # bit for bit like the original after its incremental updates
        state: dict[str, Any] = {
            "G": self.G_,
            "B": self.B_,
            "P": self.P_,
            "h": self.h_,
            "S": self.S_,
            "WT": self.WT_,
            "u": self.u_,
            "effect_prec": self.effect_prec_,
            "effect_h": self.effect_h_,
            "since_resync": int(self._since_resync),
        }
        if self.likelihood == "logistic":
            state["glm"] = self.glm_.get_state()
            state["mu_lap"] = self.mu_lap_
        return state

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        for key, attr in (
            ("G", "G_"), ("B", "B_"), ("P", "P_"), ("h", "h_"), ("S", "S_"), ("WT", "WT_"),
            ("u", "u_"), ("effect_prec", "effect_prec_"), ("effect_h", "effect_h_"),
        ):  # fmt: skip
            setattr(self, attr, np.array(state[key], dtype=float))
        self.W_ = self.WT_.transpose(1, 0, 2)
        self._since_resync = int(state["since_resync"])
        self._factor = None
        if self.likelihood == "logistic":
            self.glm_.set_state(state["glm"])
            self.mu_lap_ = np.array(state["mu_lap"], dtype=float)


@register_policy
class HierarchicalTS(MixedEffectTS):
    """Hierarchical Thompson sampling (Hong et al. 2022): one shared effect ``psi`` ``(d,)``
    with ``theta_i | psi ~ N(psi, Sigma_0i)``. This is :class:`MixedEffectTS` with ``L = 1``
    and every mixing weight 1, and runs the same code.

    Parameters
    ----------
    effect_mean:
        ``(d,)`` prior mean of ``psi``; default 0.
    effect_cov:
        ``(d, d)`` prior covariance of ``psi``; default identity.
    n_actions, n_features, action_cov, noise_std, likelihood, jitter, laplace_batch,
    laplace_ridge, max_iter, propensity_samples, seed:
        as in :class:`MixedEffectTS`.
    """

    _replicated = staticmethod(MixedEffectReplicas)

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        effect_mean: Any = None,
        effect_cov: Any = None,
        action_cov: Any = None,
        noise_std: float = 1.0,
        likelihood: str = "linear",
        jitter: float = 0.0,
        laplace_batch: int | None = None,
        laplace_ridge: float = 1e-5,
        max_iter: int = 100,
        propensity_samples: int = 256,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            mixing=None,
            effect_mean=effect_mean,
            effect_cov=effect_cov,
            action_cov=action_cov,
            noise_std=noise_std,
            likelihood=likelihood,
            effects="joint",
            jitter=jitter,
            laplace_batch=laplace_batch,
            laplace_ridge=laplace_ridge,
            max_iter=max_iter,
            propensity_samples=propensity_samples,
            seed=seed,
        )
