"""Brute-force references for the structured tests: the exact joint Gaussian over
(effects, actions) conditioned on linear-Gaussian observations."""

from __future__ import annotations

import numpy as np
from scipy.linalg import block_diag

from scarce.structured import mixing_matrices


def random_instance(rng: np.random.Generator, K: int, L: int, d: int, general: bool = False):
    """Random priors: mixing (K, L) or (K, d, L d), SPD covariances, per-action action_cov."""

    def spd(m):
        A = rng.standard_normal((m, m))
        return A @ A.T / m + 0.5 * np.eye(m)

    mixing = rng.standard_normal((K, d, L * d)) if general else rng.uniform(-1, 1, (K, L))
    return dict(
        mixing=mixing,
        effect_mean=rng.standard_normal(L * d),
        effect_cov=spd(L * d),
        action_cov=np.stack([spd(d) for _ in range(K)]),
    )


def joint_posterior(params, X, actions, y, noise_std):
    """Condition the joint Gaussian of (Psi (Ld,), theta (K d,)) on ``y_t = x_t^T theta_{a_t} +
    N(0, noise_std^2)``; ``X`` is ``(n, d)`` or ``(n, K, d)``. Returns (mean, cov) of the
    stacked vector ``(Psi, theta_1, ..., theta_K)``."""
    Sa = params["action_cov"]
    K, d, _ = Sa.shape
    C = mixing_matrices(np.asarray(params["mixing"], dtype=float), d).reshape(K * d, -1)
    mu, S = params["effect_mean"], params["effect_cov"]
    D = block_diag(*Sa)
    mean = np.concatenate([mu, C @ mu])
    cov = np.block([[S, S @ C.T], [C @ S, C @ S @ C.T + D]])
    Ld = mu.shape[0]
    n = len(actions)
    H = np.zeros((n, Ld + K * d))
    for t, a in enumerate(actions):
        x = X[t] if X.ndim == 2 else X[t, a]
        H[t, Ld + a * d : Ld + (a + 1) * d] = x
    if n == 0:
        return mean, cov
    Syy = H @ cov @ H.T + noise_std**2 * np.eye(n)
    gain = np.linalg.solve(Syy, H @ cov).T
    post_mean = mean + gain @ (y - H @ mean)
    post_cov = cov - gain @ H @ cov
    return post_mean, 0.5 * (post_cov + post_cov.T)
