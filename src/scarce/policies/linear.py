"""LinUCB and linear Thompson sampling on online ridge regression, and their replicated
form for :mod:`scarce.sim.replicated` (:class:`LinearReplicas`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, NamedTuple

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import ACTION_FEATURES, SHARED_CONTEXT
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.compiled import check_backend
from scarce.models.ridge import RidgeRegression
from scarce.policies.base import ModelPolicy, greedy_decision, masked, one_hot


class OnRidge:
    """The ridge models of :class:`LinUCB` and :class:`LinTS`: one
    :class:`~scarce.models.ridge.RidgeRegression` per action (or one shared) with the
    policy's ``lam``, ``forgetting``, ``window`` and ``backend``."""

    def _check_params(self) -> None:
        super()._check_params()  # type: ignore[misc]
        check_backend(self.backend)  # type: ignore[attr-defined]

    def _make_model(self, n_models):
        return RidgeRegression(
            n_models,
            self.n_features,  # type: ignore[attr-defined]
            lam=self.lam,  # type: ignore[attr-defined]
            forgetting=self.forgetting,  # type: ignore[attr-defined]
            window=self.window,  # type: ignore[attr-defined]
            backend=self.backend,  # type: ignore[attr-defined]
        )


class UCBPolicy(ModelPolicy):
    """Upper-confidence-bound rule on a linear-in-parameters model: pick the largest
    ``x^T theta + alpha * sqrt(x^T S x)``, where :meth:`_confidence` gives ``(theta, S)``."""

    deterministic = True

    def _confidence(self) -> tuple[np.ndarray, np.ndarray]:
        """Estimate ``(M, d)`` and the matrix ``(M, d, d)`` whose norm is the confidence width."""
        raise NotImplementedError

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.alpha, "alpha", low=0.0)

    def _ucb(self, X):
        theta, cov = self._confidence()
        if X.shape[0] == 1 and X.ndim == 2 and cov.ndim == 3:  # one shared context
            mean, width = linear.one_case_widths(X, theta, cov)
            width *= self.alpha
            row = mean[0]
            np.add(row, width, out=row)  # as below, without broadcasting (1, K) and (K,)
            return mean
        mean, var = linear.predict(X, theta, cov)
        width = np.sqrt(var, out=var)  # fresh arrays: combined in place, no temporaries
        width *= self.alpha
        mean += width
        return mean

    def _decide(self, X, eligible):
        return greedy_decision(self._ucb(X), eligible)

    def _action_probabilities(self, X, eligible):
        # greedy_decision's argmax, without building its Decision
        return one_hot(masked(self._ucb(X), eligible).argmax(axis=1), self.n_actions)


class LinUCB(OnRidge, UCBPolicy):
    """LinUCB (Li, Chu, Langford, Schapire 2010): pick the largest
    ``x^T theta_hat + alpha * sqrt(x^T A^{-1} x)``; disjoint per-action models on shared contexts,
    one shared model on per-action features (the "hybrid-free" variants of the paper).

    Parameters
    ----------
    alpha:
        width multiplier of the confidence bound, >= 0.
    lam:
        ridge penalty, > 0.
    forgetting:
        exponential forgetting factor in (0, 1] for drifting problems (1 = none).
    window:
        sliding window length in observations for drifting problems (None = all).
    backend:
        ``"numpy"`` (default) or ``"numba"``: one shared context at a time (``decide`` on
        ``(1, d)`` without ``eligible``, and ``update`` of one case) runs compiled kernels
        (:mod:`scarce.models.compiled`; needs numba, the ``fast`` extra), about 2x faster
        per round at ``d = 20``. Scores and models agree with the NumPy backend to rounding,
        not bit for bit, so two actions tied up to rounding may be decided the other way;
        exactly tied (identical) models still go to the lowest id. Batches, masks,
        per-action features and saved state are the NumPy backend's.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        lam: float = 1.0,
        forgetting: float = 1.0,
        window: int | None = None,
        backend: str = "numpy",
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.alpha = alpha
        self.lam = lam
        self.forgetting = forgetting
        self.window = window
        self.backend = backend

    def _confidence(self):
        return self.model_.theta, self.model_.A_inv

    def _one_case(self, X, eligible) -> bool:
        """Whether ``X`` is one shared context without a mask, scored as this class scores
        it (the one-case paths below apply)."""
        return eligible is None and X.shape[0] == 1 and X.ndim == 2 and _plain(type(self))

    def _compiled_choice(self, X) -> tuple[int, np.ndarray]:
        """``backend="numba"``: the choice and the ``(1, K)`` scores of one shared context."""
        scores = np.empty((1, self.n_actions))
        return self.model_.one_case_ucb(X, float(self.alpha), scores), scores

    def _decide(self, X, eligible):
        if self._one_case(X, eligible):
            model = self.model_
            if model.backend == "numba":
                action, scores = self._compiled_choice(X)
                return Decision(np.array([action]), None, scores, probability_fn=_certain)
            # one shared context, no mask: UCBPolicy's arithmetic, bit for bit, in fewer
            # calls; the ridge model keeps the products A^{-1} x for this case's update
            products = model.one_case_products(X[0])
            mean, width = linear.one_case_widths(X, model.theta, model.A_inv, products)
            alpha = self.alpha
            if alpha != 1:  # (a product with 1 changes nothing)
                width *= alpha
            row = mean[0]
            np.add(row, width, out=row)
            # a deterministic rule's probability, 1, made when it is read
            return Decision(mean.argmax(axis=1), None, mean, probability_fn=_certain)
        return super()._decide(X, eligible)

    def _action_probabilities(self, X, eligible):
        if self.model_.backend == "numba" and self._one_case(X, eligible):
            out = np.zeros((1, self.n_actions))  # the compiled choice, as a one-hot row
            out[0, self._compiled_choice(X)[0]] = 1.0
            return out
        return super()._action_probabilities(X, eligible)

    @classmethod
    def _replicated(cls, policies: Sequence[LinUCB], action_features: bool) -> LinearReplicas:
        """Replicated-simulation hook (see :mod:`scarce.sim.replicated`)."""
        return LinearReplicas(policies, action_features)


class ThompsonPolicy(ModelPolicy):
    """Thompson sampling on a Gaussian (or Laplace-approximated) posterior.

    Choice probabilities: exact (48-node Gauss-Hermite) for disjoint models on shared
    contexts, where the actions' scores are independent; Monte-Carlo with
    ``propensity_samples`` draws from a separate, deterministic stream for per-action
    features, where they are correlated.
    """

    #: quadrature over independent per-action scores; Monte Carlo when they are correlated
    probability_method = {"shared_context": "quadrature", "action_features": "monte_carlo"}

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``(M, d)`` and covariance ``(M, d, d)`` (before the ``v^2`` scale)."""
        raise NotImplementedError

    def _link(self, scores: np.ndarray) -> np.ndarray:
        return scores

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.v, "v", low=0.0)
        check_positive_int(self.propensity_samples, "propensity_samples")

    def _decide(self, X, eligible):
        theta, cov = self._posterior()
        one = eligible is None and X.shape[0] == 1 and cov.ndim == 3
        if one and self.context_mode_ == SHARED_CONTEXT:
            return self._decide_one(X, theta, cov)
        if self.context_mode_ == SHARED_CONTEXT:
            # independent per-action scores: draw each from its marginal (as
            # linear.sample_scores does); their mean and spread also give the probabilities
            mean, var = linear.predict(X, theta, cov)
            std = np.sqrt(var, out=var)
            std *= self.v
            # mean + std * z, in place (the same products and sums, bit for bit)
            sampled = self.rng_.standard_normal(mean.shape)
            sampled *= std
            sampled += mean
            sampled = masked(sampled, eligible)
            actions = np.argmax(sampled, axis=1)

            def probabilities():
                return linear.gaussian_argmax_probability_of(mean, std, actions, eligible)

        else:
            sampled = linear.sample_scores(X, theta, cov, float(self.v), self.rng_)
            sampled = masked(sampled, eligible)
            actions = np.argmax(sampled, axis=1)
            # the posterior is copied only when the model updates in place (ridge rank-1)
            theta, cov, n_updates = theta.copy(), cov.copy(), self.n_updates_

            def probabilities():
                mc = self._mc_probabilities(X, theta, cov, eligible, n_updates)
                return mc[np.arange(X.shape[0]), actions]

        return Decision(actions, None, self._link(sampled), probability_fn=probabilities)

    def _decide_one(self, X, theta, cov, products=None):
        """The shared-context branch of :meth:`_decide` for one case and no mask: the same
        draws and arithmetic, bit for bit, in fewer calls (``products``: ``cov @ x`` per
        action when the model keeps them, see ``linear.one_case_widths``)."""
        mean, std = linear.one_case_widths(X, theta, cov, products)  # (1, K), (K,)
        std *= self.v
        sampled = self.rng_.standard_normal(mean.shape)
        row = sampled[0]
        np.multiply(std, row, out=row)
        np.add(mean[0], row, out=row)  # mean + std * z, in place
        actions = sampled.argmax(axis=1)

        def probabilities():
            return linear.gaussian_argmax_probability_of(mean, std[None, :], actions)

        return Decision(actions, None, self._link(sampled), probability_fn=probabilities)

    def _mc_probabilities(self, X, theta, cov, eligible, n_updates=None):
        # separate deterministic stream so asking for probabilities never moves self.rng_
        n_updates = self.n_updates_ if n_updates is None else n_updates
        rng = np.random.default_rng([int(n_updates), X.shape[0], 7919])
        return linear.monte_carlo_argmax_probabilities(
            X, theta, cov, float(self.v), rng, int(self.propensity_samples), eligible
        )

    def _action_probabilities(self, X, eligible):
        theta, cov = self._posterior()
        if self.context_mode_ == SHARED_CONTEXT:
            mean, var = linear.predict(X, theta, cov)
            if self.v == 0:
                return one_hot(greedy_decision(mean, eligible).actions, self.n_actions)
            return linear.gaussian_argmax_probabilities(mean, self.v * np.sqrt(var), eligible)
        return self._mc_probabilities(X, theta, cov, eligible)


class LinTS(OnRidge, ThompsonPolicy):
    """Linear Thompson sampling (Agrawal and Goyal 2013): draw ``theta~ ~ N(theta_hat, v^2 A^{-1})``
    and pick the largest ``x^T theta~``.

    Parameters
    ----------
    v:
        posterior scale (the paper's ``v``; the noise standard deviation for an exact
        Bayesian posterior), >= 0.
    lam:
        ridge penalty (prior precision), > 0.
    forgetting, window:
        as in :class:`LinUCB`.
    propensity_samples:
        Monte-Carlo draws for choice probabilities with per-action features.
    backend:
        as in :class:`LinUCB` (the compiled decision draws the same normals from the
        policy's generator).
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        v: float = 1.0,
        lam: float = 1.0,
        forgetting: float = 1.0,
        window: int | None = None,
        propensity_samples: int = 1000,
        backend: str = "numpy",
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.v = v
        self.lam = lam
        self.forgetting = forgetting
        self.window = window
        self.propensity_samples = propensity_samples
        self.backend = backend

    def _decide_one_compiled(self, X):
        """:meth:`_decide_one` by the model's compiled kernel: the same normals, drawn
        first, and the same formulas (to rounding)."""
        sampled = self.rng_.standard_normal((1, self.n_actions))
        out = np.empty((2, self.n_actions))
        actions = np.array([self.model_.one_case_thompson(X, float(self.v), sampled, out)])
        mean, std = out[:1], out[1:]

        def probabilities():
            return linear.gaussian_argmax_probability_of(mean, std, actions)

        return Decision(actions, None, sampled, probability_fn=probabilities)

    def _posterior(self):
        return self.model_.theta, self.model_.A_inv

    def _decide(self, X, eligible):
        if eligible is None and X.shape[0] == 1 and X.ndim == 2 and _plain(type(self)):
            # one shared context, no mask: _decide_one's draws and arithmetic, bit for bit,
            # in fewer calls; the ridge model keeps the products A^{-1} x for this case's
            # update
            model = self.model_
            if model.backend == "numba":  # the compiled scores of one context
                return self._decide_one_compiled(X)
            products = model.one_case_products(X[0])
            return self._decide_one(X, model.theta, model.A_inv, products)
        return super()._decide(X, eligible)

    @classmethod
    def _replicated(cls, policies: Sequence[LinTS], action_features: bool) -> LinearReplicas:
        """Replicated-simulation hook (see :mod:`scarce.sim.replicated`)."""
        return LinearReplicas(policies, action_features)


def _certain() -> np.ndarray:
    """The probability ``(1,)`` of a deterministic rule's choice for one case."""
    return np.ones(1)


@cache
def _plain(cls: type) -> bool:
    """Whether ``cls`` scores and learns one shared context as :class:`LinUCB` /
    :class:`LinTS` do (none of the hooks their one-case paths inline is overridden)."""
    base = LinUCB if issubclass(cls, LinUCB) else LinTS
    hooks = ["_make_model", "_decide", "_link", "_posterior", "_ucb", "_confidence"]
    return all(
        getattr(cls, name, None) is getattr(base, name, None) for name in hooks
    ) and issubclass(cls, base)


class ReplicaDecision(NamedTuple):
    """Decisions of ``S`` replicas for ``n`` cases each (see :mod:`scarce.sim.replicated`)."""

    #: ``(S, n)`` int64 chosen actions
    actions: np.ndarray
    #: ``(S, n)`` probabilities of the chosen actions, or a function computing them (for
    #: policies whose probabilities cost more than the decision; called only when recorded)
    probabilities: np.ndarray | Callable[[], np.ndarray]
    #: what ``update`` needs back, name -> ``(S, n, ...)`` (``Decision.info`` per replica)
    info: dict[str, np.ndarray]


class LinearReplicas:
    """``S`` :class:`LinUCB` or ``S`` :class:`LinTS` policies as one computation over a
    leading replica axis, bitwise equal to running each alone (the replicated-simulation
    plug-in of this family; :mod:`scarce.sim.replicated` documents the protocol).

    The ridge models of all replicas are one :meth:`RidgeRegression.stack`, so learning is
    :meth:`RidgeRegression.partial_fit` itself; scores use the batched forms of
    :mod:`scarce.models.linear`. Hyperparameters (``alpha`` / ``v``, ``lam``,
    ``resync_every``) may differ between replicas; forgetting and windows are not covered.
    """

    def __init__(self, policies: Sequence[LinUCB | LinTS], action_features: bool) -> None:
        policies = list(policies)
        first = policies[0]
        self.thompson = isinstance(first, LinTS)
        self.features = bool(action_features)
        K, d = first.n_actions, first.n_features
        layout = ACTION_FEATURES if self.features else SHARED_CONTEXT
        for s, p in enumerate(policies):
            if p.forgetting != 1.0 or p.window is not None:
                raise ValueError(
                    f"policies[{s}] uses forgetting={p.forgetting} / window={p.window}; "
                    "replicated simulation covers forgetting=1.0 and window=None only"
                )
            if p.backend != "numpy":
                raise ValueError(
                    f"policies[{s}] uses backend={p.backend!r}; replicated simulation "
                    "computes with NumPy (bitwise the backend='numpy' runs): use "
                    "backend='numpy', or run the policies one by one (scarce.sim.run)"
                )
            if p._initialized and p.context_mode_ != layout:
                raise ValueError(
                    f"policies[{s}] was used with the other context layout ({p.context_mode_})"
                )
            # validates the parameters and seeds rng_, like a first decide
            p._ensure_initialized(np.zeros((1, K, d) if self.features else (1, d)))
        self.policies = policies
        self.S, self.K, self.d = len(policies), K, d
        self.M = 1 if self.features else K  # ridge models per replica
        self.stack = RidgeRegression.stack([p.model_ for p in policies])
        width = [float(p.v if self.thompson else p.alpha) for p in policies]
        self.width = np.array(width)[:, None, None]
        self.seen = np.array([p.n_updates_ for p in policies])  # each policy's n_updates_

    def draws(self, n_cases: int) -> np.ndarray | None:
        """``(S, n_cases, w)`` Thompson normals from each policy's own generator (``w = K``
        scores, or ``d`` parameters with per-action features), as separate runs draw them;
        None for LinUCB."""
        if not self.thompson:
            return None
        w = self.d if self.features else self.K
        return np.stack([p.rng_.standard_normal((n_cases, w)) for p in self.policies])

    def decide(self, X: np.ndarray, draws: np.ndarray | None) -> ReplicaDecision:
        """Decisions on contexts ``X`` ``(S, n, d)`` (or ``(S, n, K, d)``) with ``draws``
        ``(S, n, w)`` from :meth:`draws`."""
        S, n = X.shape[:2]
        theta = self.stack.theta.reshape(S, self.M, self.d)
        cov = self.stack.A_inv.reshape(S, self.M, self.d, self.d)
        if self.thompson and self.features:
            # linear.sample_scores per replica: the same factor and products
            L = np.stack([linear.cholesky_factor(c[0]) for c in cov])
            params = theta[:, 0][:, None, :] + self.width * draws @ L.swapaxes(1, 2)
            scores = np.einsum("snkd,snd->snk", X, params)
        else:
            mean = linear.predict_mean(X, theta, batch_axes=1)
            std = np.sqrt(np.maximum(linear.predict_variance(X, cov), 0.0))
            std *= self.width
            scores = mean + (std * draws if self.thompson else std)
        actions = np.argmax(scores, axis=2)
        if not self.thompson:
            return ReplicaDecision(actions, np.ones(actions.shape), {})
        if self.features:
            theta, cov, seen = theta.copy(), cov.copy(), self.seen.copy()

            def probabilities() -> np.ndarray:
                rows = np.arange(n)
                return np.stack(
                    [
                        p._mc_probabilities(X[s], theta[s], cov[s], None, int(seen[s]))[
                            rows, actions[s]
                        ]
                        for s, p in enumerate(self.policies)
                    ]
                )

        else:

            def probabilities() -> np.ndarray:
                return linear.gaussian_argmax_probability_of(mean, std, actions)

        return ReplicaDecision(actions, probabilities, {})

    def learn(
        self, X: np.ndarray, decision: ReplicaDecision, rewards: np.ndarray, **extras: Any
    ) -> None:
        """Bandit feedback ``rewards`` ``(S, n)`` for ``decision`` on ``X`` (as
        ``ModelPolicy._training_rows`` then ``partial_fit``, every replica at once)."""
        S, n = rewards.shape
        acts = decision.actions
        if self.features:
            rows = np.take_along_axis(X, acts[:, :, None, None], axis=2)[:, :, 0]
            ids = np.repeat(np.arange(S), n)
        else:
            rows = X
            ids = (acts + self.K * np.arange(S)[:, None]).reshape(-1)
        self.stack.partial_fit(rows.reshape(S * n, self.d), rewards.reshape(-1), ids)
        self.seen += n

    def finish(self) -> None:
        """Write the learned state back into the policies (models, ``n_updates_``)."""
        self.stack.unstack([p.model_ for p in self.policies])
        for p, seen in zip(self.policies, self.seen, strict=True):
            p.n_updates_ = int(seen)
