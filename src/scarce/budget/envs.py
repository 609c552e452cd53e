"""Deferral problems: the spec's synthetic generator (A.8) and a real-data problem built on
scikit-learn's bundled digits.

A problem produces a :class:`DeferralStream`, the whole realised sequence of one run (contexts,
both arms' realised rewards, the deferral cost) together with the expected values, so that
every learner and baseline of a run sees the same cases and outcomes (common random numbers)
and ratio-to-OPT is exact.

Arms: ``0 = MODEL`` (free), ``1 = HUMAN`` (costly), as in :mod:`scarce.budget.deferral`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int

REGIMES = ("complementary", "human_better")


@dataclass(frozen=True)
class DeferralStream:
    """One realised sequence of ``T`` cases.

    Attributes
    ----------
    X:
        ``(T, d)`` contexts.
    rewards:
        ``(T, 2)`` realised rewards of ``[MODEL, HUMAN]``.
    costs:
        ``(T,)`` realised cost of deferring (paid only when the human is chosen).
    mean_rewards:
        ``(T, 2)`` expected rewards given the context.
    mean_costs:
        ``(T,)`` expected deferral cost given the context.
    model_score:
        ``(T,)`` what BestReject thresholds: the model's expected reward where it is known
        (synthetic; None means ``mean_rewards[:, 0]``), the model's own confidence on real data.
    """

    X: np.ndarray
    rewards: np.ndarray
    costs: np.ndarray
    mean_rewards: np.ndarray
    mean_costs: np.ndarray
    model_score: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        return int(self.X.shape[0])


class SyntheticDeferral:
    """The synthetic deferral generator of spec A.8.

    Contexts: ``k ~ Binomial(d, 1/2)`` conditioned on ``k >= 1`` positions chosen uniformly,
    ``x = 1_S / k`` (``norm="l1"``, the default here: with ``theta in [0, 1]^d`` every linear
    mean is in [0, 1], as Bernoulli outcomes need) or ``x = 1_S / sqrt(k)`` (``"l2"``).
    Parameters (drawn once from ``seed``): ``complementary``: ``theta_M ~ U[0, 1]^d``,
    ``theta_H = 1 - theta_M``; ``human_better``: ``theta_H ~ U[0.5, 1]^d``,
    ``theta_M ~ U[0, 0.5]^d``; cost ``theta_c ~ U[0, 1]^d`` in both. Linear links.
    Outcomes: ``noise="bernoulli"`` (rewards and cost are Bernoulli with the linear mean;
    needs ``norm="l1"``) or ``"gaussian"`` (mean plus ``N(0, noise_sd^2)``; the cost is
    clipped to ``[0, cost_bound]``, the rewards are not clipped).

    Parameters
    ----------
    regime:
        ``"complementary"`` or ``"human_better"``.
    n_features:
        ``d`` (paper: 20).
    norm, noise, noise_sd, cost_bound:
        as above.
    seed:
        seed of the true parameters.
    """

    def __init__(
        self,
        regime: str = "human_better",
        *,
        n_features: int = 20,
        norm: str = "l1",
        noise: str = "bernoulli",
        noise_sd: float = 0.1,
        cost_bound: float = 1.0,
        seed: SeedLike = 0,
    ) -> None:
        if regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}; got {regime!r}")
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2'; got {norm!r}")
        if noise not in ("bernoulli", "gaussian"):
            raise ValueError(f"noise must be 'bernoulli' or 'gaussian'; got {noise!r}")
        if noise == "bernoulli" and norm != "l1":
            raise ValueError("noise='bernoulli' needs norm='l1' (means must lie in [0, 1])")
        self.regime = regime
        self.n_features = check_positive_int(n_features, "n_features")
        self.norm = norm
        self.noise = noise
        self.noise_sd = float(noise_sd)
        self.cost_bound = float(cost_bound)
        rng = as_generator(seed)
        d = self.n_features
        if regime == "complementary":
            theta_m = rng.uniform(0.0, 1.0, d)
            theta_h = 1.0 - theta_m
        else:
            theta_h = rng.uniform(0.5, 1.0, d)
            theta_m = rng.uniform(0.0, 0.5, d)
        self.theta = np.stack([theta_m, theta_h])  # (2, d): [MODEL, HUMAN]
        self.theta_cost = rng.uniform(0.0, 1.0, d)

    def contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, d)`` contexts."""
        d = self.n_features
        k = rng.binomial(d, 0.5, size=n)
        while np.any(k == 0):  # conditioning on k >= 1 by rejection
            bad = k == 0
            k[bad] = rng.binomial(d, 0.5, size=int(bad.sum()))
        # k positions uniformly: the k smallest of d uniform keys
        keys = rng.random((n, d))
        ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
        S = ranks < k[:, None]
        scale = k if self.norm == "l1" else np.sqrt(k)
        return S / scale[:, None]

    def means(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected rewards ``(n, 2)`` and expected costs ``(n,)``."""
        return X @ self.theta.T, np.clip(X @ self.theta_cost, 0.0, self.cost_bound)

    def sample(self, horizon: int, rng: SeedLike) -> DeferralStream:
        """A realised sequence of ``horizon`` cases."""
        T = check_positive_int(horizon, "horizon")
        g = as_generator(rng)
        X = self.contexts(T, g)
        mu, mc = self.means(X)
        if self.noise == "bernoulli":
            r = (g.random((T, 2)) < mu).astype(float)
            c = (g.random(T) < mc).astype(float) * self.cost_bound
            mc = mc * self.cost_bound
        else:
            r = mu + self.noise_sd * g.standard_normal((T, 2))
            c = np.clip(mc + self.noise_sd * g.standard_normal(T), 0.0, self.cost_bound)
        return DeferralStream(X, r, c, mu, mc)

    def static_opt(
        self, budget_rate: float, *, n_samples: int = 100_000, seed: SeedLike = 12345
    ) -> float:
        """Expected reward per round of the optimal static policy (spec A.2), by a Monte
        Carlo sample of ``n_samples`` contexts; ``OPT = T * value``."""
        from scarce.budget.opt import static_opt_deferral

        X = self.contexts(n_samples, as_generator(seed))
        mu, mc = self.means(X)
        if self.noise == "gaussian":
            # E[clip(mc + noise)] differs from mc near the clip points; use the realised law
            mc = _clipped_normal_mean(mc, self.noise_sd, self.cost_bound)
        return static_opt_deferral(mu[:, 1], mu[:, 0], mc, budget_rate).value


def _clipped_normal_mean(mean: np.ndarray, sd: float, high: float) -> np.ndarray:
    """``E[clip(mean + sd Z, 0, high)]`` for ``Z ~ N(0, 1)``."""
    from scipy.stats import norm

    a, b = (0.0 - mean) / sd, (high - mean) / sd
    inside = mean * (ndtr(b) - ndtr(a)) + sd * (norm.pdf(a) - norm.pdf(b))
    return inside + high * (1.0 - ndtr(b))


class DigitsDeferral:
    """A real-data deferral problem from scikit-learn's bundled digits (1,797 images, 10
    classes; no download).

    Construction (all draws from ``seed``):

    1. A stratified split: ``model_fraction`` of the images train the "model", a
       scikit-learn Gaussian naive Bayes classifier on the 64 pixels (weak on purpose, about
       80% accurate, so that deferring matters); it is then fixed. The other images form the
       pool the stream samples from (with replacement).
    2. Context of a case (``d = 22``): the model's class probabilities (10), the one-hot
       predicted class (10), the largest probability (1) and a constant 1.
    3. Model reward: 1 if the model's prediction is right, else 0 (deterministic per case).
       BestReject thresholds the model's confidence (its largest probability), the
       real-data stand-in for the unknown ``mu_M(x)``.
    4. Simulated human expert: per-class accuracy ``acc_k ~ U[acc_low, acc_high]``; the reward
       on a case of class ``k`` is ``Bernoulli(acc_k)``.
    5. Human cost: the time spent, long-tailed: ``min(1, LogNormal(log m_k, time_sigma))``
       with a per-class median ``m_k ~ U[median_low, median_high]`` (hard classes take longer),
       capped at 1 (the time limit; ``cost_bound = 1``). Its mean per class is computed in
       closed form, so OPT for known means is exact.

    Parameters
    ----------
    model_fraction:
        share of the images used to fit the model.
    acc_low, acc_high, median_low, median_high, time_sigma:
        the expert simulation above.
    seed:
        seed of the split and of the expert.
    """

    n_features = 22
    cost_bound = 1.0

    def __init__(
        self,
        *,
        model_fraction: float = 0.3,
        acc_low: float = 0.7,
        acc_high: float = 0.99,
        median_low: float = 0.1,
        median_high: float = 0.4,
        time_sigma: float = 0.8,
        seed: SeedLike = 0,
    ) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.naive_bayes import GaussianNB

        rng = as_generator(seed)
        data = load_digits()
        X_all, y_all = data.data, data.target
        X_fit, X_pool, y_fit, y_pool = train_test_split(
            X_all,
            y_all,
            train_size=model_fraction,
            stratify=y_all,
            random_state=int(rng.integers(2**31 - 1)),
        )
        model = GaussianNB().fit(X_fit, y_fit)
        proba = model.predict_proba(X_pool)
        pred = proba.argmax(axis=1)
        self.model_accuracy = float(np.mean(pred == y_pool))
        one_hot = np.eye(10)[pred]
        self.features = np.column_stack([proba, one_hot, proba.max(axis=1), np.ones(len(pred))])
        self.labels = y_pool
        self.model_correct = (pred == y_pool).astype(float)
        self.human_accuracy = rng.uniform(acc_low, acc_high, 10)
        self.time_median = rng.uniform(median_low, median_high, 10)
        self.time_sigma = float(time_sigma)
        mu, s = np.log(self.time_median), self.time_sigma
        # E[min(1, X)] for X ~ LogNormal(mu, s): E[X; X < 1] + P(X >= 1)
        self.class_mean_cost = np.exp(mu + s * s / 2) * ndtr((-mu - s * s) / s) + (
            1.0 - ndtr(-mu / s)
        )

    @property
    def pool_size(self) -> int:
        return int(self.labels.shape[0])

    def sample(self, horizon: int, rng: SeedLike) -> DeferralStream:
        """``horizon`` cases drawn from the pool with replacement, with simulated experts."""
        T = check_positive_int(horizon, "horizon")
        g = as_generator(rng)
        idx = g.integers(self.pool_size, size=T)
        y = self.labels[idx]
        acc = self.human_accuracy[y]
        human = (g.random(T) < acc).astype(float)
        times = np.exp(np.log(self.time_median[y]) + self.time_sigma * g.standard_normal(T))
        costs = np.minimum(times, 1.0)
        rewards = np.column_stack([self.model_correct[idx], human])
        means = np.column_stack([self.model_correct[idx], acc])
        return DeferralStream(
            self.features[idx],
            rewards,
            costs,
            means,
            self.class_mean_cost[y],
            self.features[idx, 20],
        )

    def static_opt(self, budget_rate: float) -> float:
        """Expected reward per round of the optimal static policy, exact over the pool (the
        context distribution is uniform on it)."""
        from scarce.budget.opt import static_opt_deferral

        y = self.labels
        return static_opt_deferral(
            self.human_accuracy[y], self.model_correct, self.class_mean_cost[y], budget_rate
        ).value
