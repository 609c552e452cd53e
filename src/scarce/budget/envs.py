"""Deferral problems as registered environments: the spec's synthetic generator (A.8, plus a
``heterogeneous`` regime) and a real-data problem built on scikit-learn's bundled digits.

Arms: ``0 = MODEL`` (free), ``1 = HUMAN`` (costly), as in :mod:`scarce.budget.deferral`.
Both environments have one resource, a budget ``budget_rate * horizon``
(:meth:`~scarce.envs.Environment.budget`; :func:`scarce.sim.run` enforces it on any policy)
and report in :class:`~scarce.core.outcome.Outcome` ``extras``:

* ``costs`` ``(n, 1)``: what each case consumed (the deferral cost, 0 where the model was
  used);
* ``model_rewards`` ``(n,)``: the model's realised reward, which the paper's full-information
  regime shows on every case (:class:`~scarce.budget.deferral.Deferral` learns from it);
* for hindsight benchmarks, which no learner declares: ``human_rewards`` ``(n,)`` and
  ``deferral_costs`` ``(n,)`` (what deferring gave and cost, realised whichever arm was
  chosen), ``mean_rewards`` ``(n, 2)`` and ``mean_costs`` ``(n,)`` (the expected values).

Outcomes of both arms are drawn on every case, so the random streams do not depend on the
actions: every policy run with the same ``run(..., seed=...)`` meets the same cases and the
same outcomes (common random numbers), and any run's trace holds the whole realised sequence
(the empirical OPT and BestReject's hindsight threshold are computed from it).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
from scipy.special import ndtr

from scarce.budget.opt import KnapsackSolution, static_opt_deferral
from scarce.core.outcome import Outcome
from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar
from scarce.envs.base import Environment
from scarce.envs.registry import register_env

REGIMES = ("complementary", "human_better", "heterogeneous")
#: shared Monte Carlo context samples of SyntheticDeferral (see SyntheticDeferral._sample)
_SAMPLES: dict[tuple, np.ndarray] = {}
#: digits: log-probabilities below -LOGIT_CLIP are clipped (naive Bayes gives -1000s)
LOGIT_CLIP = 20.0
MODEL, HUMAN = 0, 1


class _DeferralEnv(Environment):
    """What both deferral problems share: two arms, one resource, the budget, the outcome
    extras and the parameters they suggest to a policy."""

    n_actions = 2
    n_resources = 1
    budget_rate: float | None
    cost_max: float

    def _check_rate(self, budget_rate: float | None) -> float | None:
        if budget_rate is None:
            return None
        return check_scalar(budget_rate, "budget_rate", low=0.0, low_inclusive=False)

    def budget(self, horizon: int) -> np.ndarray | None:
        """``[budget_rate * horizon]`` (None without a budget rate)."""
        if self.budget_rate is None:
            return None
        return np.array([self.budget_rate * horizon])

    @property
    def cost_bound(self) -> np.ndarray:
        return np.array([[0.0], [self.cost_max]])

    def expected_costs(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((np.shape(X)[0], 2, 1))
        out[:, HUMAN, 0] = self._mean_costs(X)
        return out

    def _mean_costs(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Realised rewards ``(n, 2)`` of both arms and deferral costs ``(n,)``."""
        raise NotImplementedError

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._draw(X, rng)[0]

    def _outcome(self, X: np.ndarray, actions: np.ndarray, r: np.ndarray, c: np.ndarray) -> Outcome:
        rows = np.arange(r.shape[0])
        extras = {
            "costs": np.where(actions == HUMAN, c, 0.0)[:, None],
            "model_rewards": r[:, MODEL],
            "human_rewards": r[:, HUMAN],
            "deferral_costs": c,
            "mean_rewards": self.expected_rewards(X),
            "mean_costs": self._mean_costs(X),
        }
        return Outcome(r[rows, actions], extras)

    def _outcomes(self, X: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> Outcome:
        r, c = self._draw(X, rng)
        return self._outcome(X, actions, r, c)

    def full_information(
        self, X: np.ndarray, actions: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[Outcome, np.ndarray]:
        """The outcome and both arms' realised rewards, from one draw."""
        from scarce.core.validation import check_actions

        acts = check_actions(actions, np.shape(X)[0], self.n_actions)
        r, c = self._draw(X, self._gen(rng))
        return self._outcome(X, acts, r, c), r

    def mean_cost(self) -> float:
        """Expected cost of deferring one case drawn from the context distribution."""
        raise NotImplementedError

    def score_weights(self) -> np.ndarray:
        """``(d,)`` what BestReject thresholds is ``X @ score_weights``: the model's expected
        reward (synthetic) or its confidence (real data)."""
        raise NotImplementedError

    def policy_params(self, horizon: int, names: Collection[str] | None = None) -> dict[str, Any]:
        """``budget``, ``horizon`` and ``cost_bound`` for the learners; ``mean_cost`` for
        ArbitraryHuman and ``score_weights`` for BestReject (computed only when in ``names``,
        or when ``names`` is None)."""
        out: dict[str, Any] = {"horizon": int(horizon), "cost_bound": self.cost_max}
        if self.budget_rate is not None:
            out["budget"] = float(self.budget_rate * horizon)
        if names is None or "mean_cost" in names:
            out["mean_cost"] = self.mean_cost()
        if names is None or "score_weights" in names:
            out["score_weights"] = self.score_weights().tolist()
        return out


class SyntheticDeferral(_DeferralEnv):
    """The synthetic deferral generator of spec A.8, with a third regime.

    Contexts: ``k ~ Binomial(d, 1/2)`` conditioned on ``k >= 1`` positions chosen uniformly,
    ``x = 1_S / k`` (``norm="l1"``, the default here: with ``theta in [0, 1]^d`` every linear
    mean is in [0, 1], as Bernoulli outcomes need) or ``x = 1_S / sqrt(k)`` (``"l2"``).
    Parameters (drawn once from ``seed``): ``complementary``: ``theta_M ~ U[0, 1]^d``,
    ``theta_H = 1 - theta_M``; ``human_better``: ``theta_H ~ U[0.5, 1]^d``,
    ``theta_M ~ U[0, 0.5]^d``; cost ``theta_c ~ U[0, 1]^d`` in both.
    ``heterogeneous`` (not in the paper; built so that a threshold on the model's reward is far
    from optimal): sparse contexts, ``k`` uniform on ``{1, 2, 3}``, and two kinds of
    features in random positions. Routine ones (half): ``theta_M ~ U[0.3, 0.6]``, the human
    better by ``U[0.25, 0.4]``, cheap ``theta_c ~ U[0.05, 0.15]``. Hard ones:
    ``theta_M ~ U[0, 0.4]``, the human better by ``U[0, 0.15]``, slow ``theta_c ~ U[0.8, 1]``.
    The best use of the budget is on routine cases; a rule that defers where the model is
    worst spends it on hard ones, and deferring everything runs out early (BestReject gets
    about 0.85 of OPT at ``B = 0.25 T``).
    Linear links. Outcomes: ``noise="bernoulli"`` (rewards are Bernoulli with the linear
    mean; the cost is ``cost_bound`` with probability ``clip(x^T theta_c, 0, 1)``, else 0;
    needs ``norm="l1"``) or ``"gaussian"`` (mean plus ``N(0, noise_sd^2)``; the cost is
    ``clip(clip(x^T theta_c, 0, cost_bound) + noise, 0, cost_bound)``, the rewards are not
    clipped).

    Parameters
    ----------
    regime:
        ``"complementary"``, ``"human_better"`` or ``"heterogeneous"``.
    n_features:
        ``d`` (paper: 20).
    norm, noise, noise_sd, cost_bound:
        as above.
    budget_rate:
        ``B / T`` (None: no budget).
    seed:
        seed of the true parameters (and of draws made without an explicit ``rng``).
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
        budget_rate: float | None = 0.25,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed)
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
        self.noise_sd = check_scalar(noise_sd, "noise_sd", low=0.0, low_inclusive=False)
        self.cost_max = check_scalar(cost_bound, "cost_bound", low=0.0, low_inclusive=False)
        self.budget_rate = self._check_rate(budget_rate)
        self.name = f"deferral-{regime.replace('_', '-')}"
        rng = self._rng
        d = self.n_features
        if regime == "complementary":
            theta_m = rng.uniform(0.0, 1.0, d)
            theta_h = 1.0 - theta_m
            theta_c = rng.uniform(0.0, 1.0, d)
        elif regime == "human_better":
            theta_h = rng.uniform(0.5, 1.0, d)
            theta_m = rng.uniform(0.0, 0.5, d)
            theta_c = rng.uniform(0.0, 1.0, d)
        else:  # half routine, half hard features, in random positions
            h = d // 2
            theta_m = np.concatenate([rng.uniform(0.3, 0.6, h), rng.uniform(0.0, 0.4, d - h)])
            gain = np.concatenate([rng.uniform(0.25, 0.4, h), rng.uniform(0.0, 0.15, d - h)])
            theta_c = np.concatenate([rng.uniform(0.05, 0.15, h), rng.uniform(0.8, 1.0, d - h)])
            perm = rng.permutation(d)
            theta_m, theta_c = theta_m[perm], theta_c[perm]
            theta_h = np.minimum(theta_m + gain[perm], 1.0)
        self.theta = np.stack([theta_m, theta_h])  # (2, d): [MODEL, HUMAN]
        self.theta_cost = theta_c
        self._solutions: dict[tuple, tuple[KnapsackSolution, np.ndarray]] = {}
        self._mean_cost: float | None = None

    def _sample(self, n: int, seed: SeedLike) -> np.ndarray:
        """``self.contexts(n, as_generator(seed))``: the Monte Carlo sample of the static
        OPT and the mean cost. Contexts do not depend on the true parameters, so a sample
        for an int seed is drawn once per (regime, d, norm, n, seed) and shared (read-only)
        by every instance: building one environment per run seed stays cheap."""
        if not isinstance(seed, int):
            return self.contexts(n, as_generator(seed))
        key = (self.regime, self.n_features, self.norm, n, seed)
        X = _SAMPLES.get(key)
        if X is None:
            X = self.contexts(n, as_generator(seed))
            X.flags.writeable = False
            if len(_SAMPLES) >= 4:
                _SAMPLES.pop(next(iter(_SAMPLES)))
            _SAMPLES[key] = X
        return X

    @classmethod
    def _replicated_env(cls, envs: Any, seeds: Any) -> Any:
        """Replicated-simulation hook (:mod:`scarce.budget.replicated`)."""
        from scarce.budget.replicated import DeferralEnvReplicas

        return DeferralEnvReplicas(envs, seeds)

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = self._sizes(n, rng)
        return self._place(k, rng.random((n, self.n_features)))

    def contexts_one_by_one(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, d)``: what ``n`` calls of ``contexts(1, rng)`` give, one row each (the same
        draws from ``rng``, in the same order), with the positions placed for all rows at once
        (the replicated simulator draws a block of rounds so)."""
        d = self.n_features
        k = np.empty(n, dtype=np.int64)
        keys = np.empty((n, d))
        uniform = self.regime == "heterogeneous"
        # _sizes(1, rng) and rng.random((1, d)) per row, on scalars (the calls that draw are
        # the same, so the stream is)
        for i in range(n):
            if uniform:
                k[i] = rng.integers(1, 4, size=1)[0]
            else:
                size = rng.binomial(d, 0.5, size=1)[0]
                while size == 0:
                    size = rng.binomial(d, 0.5, size=1)[0]
                k[i] = size
            keys[i] = rng.random(d)
        return self._place(k, keys)

    def _sizes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` numbers of active features."""
        if self.regime == "heterogeneous":
            return rng.integers(1, 4, size=n)
        k = rng.binomial(self.n_features, 0.5, size=n)
        while (k == 0).any():  # conditioning on k >= 1 by rejection
            bad = k == 0
            k[bad] = rng.binomial(self.n_features, 0.5, size=int(bad.sum()))
        return k

    def _place(self, k: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Contexts with ``k[i]`` positions of row ``i`` chosen by the uniform ``keys``
        ``(n, d)``: the ``k`` smallest keys, each active feature ``1/k`` (``l1``) or
        ``1/sqrt(k)`` (``l2``)."""
        n = k.shape[0]
        # the k smallest of the keys (by rank; for a large sample, those at most the k-th
        # smallest: the same set when a row's keys are distinct, which fails with probability
        # ~1e-14, and then the rank test decides)
        S = None
        if n > 64:
            ordered = np.sort(keys, axis=1)
            if not (ordered[:, 1:] == ordered[:, :-1]).any():
                S = keys <= np.take_along_axis(ordered, k[:, None] - 1, axis=1)
        if S is None:
            S = keys.argsort(axis=1).argsort(axis=1) < k[:, None]
        scale = k if self.norm == "l1" else np.sqrt(k)
        return S / scale[:, None]

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` expected rewards ``x^T theta`` of ``[MODEL, HUMAN]``."""
        return np.asarray(X) @ self.theta.T

    def _cost_level(self, X: np.ndarray) -> np.ndarray:
        """Bernoulli: the probability of paying ``cost_bound``; Gaussian: the noise-free cost."""
        z = np.asarray(X) @ self.theta_cost
        return np.clip(z, 0.0, 1.0) if self.noise == "bernoulli" else np.clip(z, 0.0, self.cost_max)

    def _mean_costs(self, X: np.ndarray) -> np.ndarray:
        level = self._cost_level(X)
        if self.noise == "bernoulli":
            return self.cost_max * level
        # E[clip(level + noise)] differs from level near the clip points
        return _clipped_normal_mean(level, self.noise_sd, self.cost_max)

    def _draw(self, X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        mu = self.expected_rewards(X)
        level = self._cost_level(X)
        if self.noise == "bernoulli":
            r = (rng.random(mu.shape) < mu).astype(float)
            c = (rng.random(level.shape) < level) * self.cost_max
        else:
            r = mu + self.noise_sd * rng.standard_normal(mu.shape)
            noise = self.noise_sd * rng.standard_normal(level.shape)
            c = np.clip(level + noise, 0.0, self.cost_max)
        return r, c

    def static_solution(
        self, budget_rate: float | None = None, *, n_samples: int = 100_000, seed: SeedLike = 12345
    ) -> tuple[KnapsackSolution, np.ndarray]:
        """The optimal static policy (spec A.2) on a Monte Carlo sample of ``n_samples``
        contexts: the knapsack solution (``value`` per round, ``z`` the deferral probability
        of each sampled context, ``price`` ``lambda*``) and the sample ``(n_samples, d)``."""
        rate = self.budget_rate if budget_rate is None else budget_rate
        rate = np.inf if rate is None else float(rate)
        key = (rate, n_samples, seed) if isinstance(seed, int) else None
        if key is not None and key in self._solutions:
            return self._solutions[key]
        X = self._sample(n_samples, seed)
        mu = self.expected_rewards(X)
        sol = static_opt_deferral(mu[:, HUMAN], mu[:, MODEL], self._mean_costs(X), rate)
        if key is not None:
            self._solutions[key] = (sol, X)
        return sol, X

    def static_opt(
        self, budget_rate: float | None = None, *, n_samples: int = 100_000, seed: SeedLike = 12345
    ) -> float:
        """Expected reward per round of the optimal static policy (spec A.2), by a Monte
        Carlo sample of ``n_samples`` contexts; ``OPT = T * value``. ``budget_rate``: ``B / T``
        (default the environment's)."""
        return self.static_solution(budget_rate, n_samples=n_samples, seed=seed)[0].value

    def mean_cost(self) -> float:
        if self._mean_cost is None:  # a Monte Carlo sample, as for the static OPT
            X = self._sample(100_000, 12345)
            self._mean_cost = float(self._mean_costs(X).mean())
        return self._mean_cost

    def score_weights(self) -> np.ndarray:
        return self.theta[MODEL].copy()

    def oracle_rule(self, budget_rate: float | None = None) -> tuple[np.ndarray, float]:
        """The optimal static policy (spec A.2) as a linear rule, for
        :class:`~scarce.budget.baselines.StaticOPT`: weights ``w`` ``(d,)`` (defer iff
        ``x^T w > 0``) and the deferral probability on ``x^T w = 0``. Bernoulli outcomes only
        (their means are linear in ``x``)."""
        if self.noise != "bernoulli":
            raise ValueError("oracle_rule needs noise='bernoulli' (linear expected costs)")
        sol, X = self.static_solution(budget_rate)
        w = self.theta[HUMAN] - self.theta[MODEL] - sol.price * self.cost_max * self.theta_cost
        on = np.abs(X @ w) <= 1e-12
        return w, float(sol.z[on].mean()) if on.any() else 0.0

    def policy_params(self, horizon: int, names: Collection[str] | None = None) -> dict[str, Any]:
        """As for every deferral environment, plus ``oracle_weights`` and ``oracle_boundary``
        for :class:`~scarce.budget.baselines.StaticOPT` (Bernoulli outcomes; computed only
        when wanted: the static optimum is solved on a large sample)."""
        out = super().policy_params(horizon, names)
        wanted = names is None or bool({"oracle_weights", "oracle_boundary"} & set(names))
        if self.noise == "bernoulli" and wanted:
            w, q = self.oracle_rule()
            out["oracle_weights"] = w.tolist()
            out["oracle_boundary"] = q
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "regime": self.regime, "budget_rate": self.budget_rate}


def _clipped_normal_mean(mean: np.ndarray, sd: float, high: float) -> np.ndarray:
    """``E[clip(mean + sd Z, 0, high)]`` for ``Z ~ N(0, 1)``."""
    from scipy.stats import norm

    a, b = (0.0 - mean) / sd, (high - mean) / sd
    inside = mean * (ndtr(b) - ndtr(a)) + sd * (norm.pdf(a) - norm.pdf(b))
    return inside + high * (1.0 - ndtr(b))


class DigitsDeferral(_DeferralEnv):
    """A real-data deferral problem from scikit-learn's bundled digits (1,797 images, 10
    classes; no download).

    Construction (all draws from ``seed``):

    1. A stratified split: ``model_fraction`` of the images train the "model", a
       scikit-learn Gaussian naive Bayes classifier on the 64 pixels (weak on purpose, about
       80% accurate, so that deferring matters); it is then fixed. The other images form the
       pool the cases are drawn from (with replacement).
    2. Context of a case (``d = 22``): the model's class probabilities (10), the one-hot
       predicted class (10), the largest probability (1) and a constant 1.
    3. Model reward: 1 if the model's prediction is right, else 0 (deterministic per case).
       BestReject thresholds the model's confidence (its largest probability, feature 20),
       the real-data stand-in for the unknown ``mu_M(x)``.
    4. Simulated human expert: per-class accuracy ``acc_k ~ U[acc_low, acc_high]``; the reward
       on a case of class ``k`` is ``Bernoulli(acc_k)``.
    5. Human cost: the time spent, long-tailed: ``min(1, LogNormal(log m_k, time_sigma))``
       with a per-class median ``m_k ~ U[median_low, median_high]`` (hard classes take longer),
       capped at 1 (the time limit; ``cost_bound = 1``). Its mean per class is computed in
       closed form, so OPT for known means is exact.

    Like every supervised environment, :meth:`outcomes` and :meth:`expected_rewards` refer to
    the most recent :meth:`contexts` batch.

    Parameters
    ----------
    budget_rate:
        ``B / T`` (None: no budget).
    model_fraction:
        share of the images used to fit the model.
    acc_low, acc_high, median_low, median_high, time_sigma:
        the expert simulation above.
    seed:
        seed of the split and of the expert.
    """

    name = "deferral-digits"
    n_features = 23
    cost_max = 1.0
    has_oracle = True

    def __init__(
        self,
        *,
        budget_rate: float | None = 0.05,
        model_fraction: float = 0.3,
        acc_low: float = 0.7,
        acc_high: float = 0.99,
        median_low: float = 0.1,
        median_high: float = 0.4,
        time_sigma: float = 0.8,
        seed: SeedLike = None,
    ) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.naive_bayes import GaussianNB

        super().__init__(seed)
        self.budget_rate = self._check_rate(budget_rate)
        rng = self._rng
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
        # the paper's features are the model's logits: log-probabilities here, clipped at
        # -LOGIT_CLIP and scaled to [-1, 0], with the margin between the two largest
        log_p = np.maximum(model.predict_log_proba(X_pool), -LOGIT_CLIP)
        top2 = np.sort(log_p, axis=1)[:, -2:]
        margin = (top2[:, 1] - top2[:, 0]) / LOGIT_CLIP
        self.features = np.column_stack(
            [log_p / LOGIT_CLIP, one_hot, proba.max(axis=1), margin, np.ones(len(pred))]
        )
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
        self._last_idx: np.ndarray | None = None

    @property
    def pool_size(self) -> int:
        return int(self.labels.shape[0])

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.integers(self.pool_size, size=n)
        self._last_idx = idx
        return self.features[idx]

    def _batch(self, X: np.ndarray) -> np.ndarray:
        """Pool indices of the most recent batch, after checking that ``X`` is that batch."""
        idx = self._last_idx
        if idx is None or np.shape(X)[0] != idx.shape[0]:
            raise ValueError(
                f"{self.name}: X must be the most recent contexts batch (a supervised "
                "environment can only score the batch it last returned)"
            )
        return idx

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` expected rewards of the most recent batch: the model's correctness and
        the expert's accuracy on the case's class."""
        idx = self._batch(X)
        return np.column_stack([self.model_correct[idx], self.human_accuracy[self.labels[idx]]])

    def _mean_costs(self, X: np.ndarray) -> np.ndarray:
        return self.class_mean_cost[self.labels[self._batch(X)]]

    def _draw(self, X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = self._batch(X)
        y = self.labels[idx]
        n = idx.shape[0]
        human = (rng.random(n) < self.human_accuracy[y]).astype(float)
        times = np.exp(np.log(self.time_median[y]) + self.time_sigma * rng.standard_normal(n))
        return np.column_stack([self.model_correct[idx], human]), np.minimum(times, 1.0)

    def static_opt(self, budget_rate: float | None = None) -> float:
        """Expected reward per round of the optimal static policy, exact over the pool (the
        context distribution is uniform on it)."""
        rate = self.budget_rate if budget_rate is None else budget_rate
        y = self.labels
        return static_opt_deferral(
            self.human_accuracy[y],
            self.model_correct,
            self.class_mean_cost[y],
            np.inf if rate is None else rate,
        ).value

    def mean_cost(self) -> float:
        return float(self.class_mean_cost[self.labels].mean())

    def score_weights(self) -> np.ndarray:
        w = np.zeros(self.n_features)
        w[20] = 1.0  # the model's confidence
        return w

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "budget_rate": self.budget_rate}


def make_synthetic(seed: SeedLike = None, **kwargs: Any) -> SyntheticDeferral:
    """Factory of ``deferral-synthetic`` (and of the regime names)."""
    return SyntheticDeferral(seed=seed, **kwargs)


def make_digits(seed: SeedLike = None, **kwargs: Any) -> DigitsDeferral:
    """Factory of ``deferral-digits``."""
    return DigitsDeferral(seed=seed, **kwargs)


register_env(
    "deferral-synthetic",
    make_synthetic,
    "deferral to a costly human under a budget (spec A.8): 2 arms, d=20 binary features; "
    "regime complementary | human_better | heterogeneous, budget_rate = B/T",
)
for _regime in REGIMES:
    register_env(
        f"deferral-{_regime.replace('_', '-')}",
        make_synthetic,
        f"deferral-synthetic with regime={_regime!r}",
        fixed={"regime": _regime},
    )
register_env(
    "deferral-digits",
    make_digits,
    "deferral on handwritten digits: a fixed naive-Bayes model, simulated experts with "
    "long-tailed time costs; budget_rate = B/T",
)
