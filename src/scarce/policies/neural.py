"""Neural contextual bandits (extra ``neural``: PyTorch).

Five policies, each a :class:`~scarce.core.policy.Policy` on one
:class:`~scarce.models.mlp.OnlineNetwork` (replay buffer, retrain schedule, a fixed number of
warm-started minibatch steps per retraining). Shared contexts ``(n, d)`` get one network body
with ``K`` output heads (each observation trains its action's head); per-action features
``(n, K, d)`` get a network with one output applied to every action's features.

* :class:`NeuralLinearTS`, :class:`NeuralLinearUCB` (Riquelme, Tucker and Snoek 2018):
  LinTS / LinUCB on the network's last hidden layer, a Bayesian linear regression per action
  refitted on the re-embedded buffer after each retraining
  (:class:`~scarce.models.neural_linear.NeuralLinearRegression`).
* :class:`NeuralUCB` (Zhou, Li and Gu 2020), with the diagonal approximation of its
  experiments: score ``f(x) + alpha * sqrt(lam * sum_i g_i(x)^2 / U_i)`` with ``g`` the
  gradient of the output in the network's parameters and ``U = lam + sum g^2`` over the
  observed rows (gradients at decision-time weights).
* :class:`EnsembleTS` (Osband et al. 2016, bootstrapped networks): ``n_members`` networks,
  each trained on a Bernoulli(``bootstrap``) subsample of the rows; each case follows a
  uniformly drawn member. Choice probabilities are exact (the share of members choosing).
* :class:`DropoutTS` (Monte-Carlo dropout as an approximate posterior, Gal and Ghahramani
  2016; Riquelme et al.'s ``Dropout``): each case draws one dropout mask and follows that
  network. Choice probabilities are Monte-Carlo (``propensity_samples`` masks from a
  separate, deterministic stream).

Each policy's constructor takes ``network``: None or a mapping of
:class:`~scarce.models.mlp.NetworkConfig` fields (``hidden``, ``lr``, ``train_steps``,
``retrain_every``, ``retrain_growth``, ``first_train``, ``batch_size``, ``buffer_size``,
``weight_decay``), e.g. in TOML ``network = {hidden = [64, 64], retrain_growth = 0.1}``.
The network's ``torch.Generator`` is seeded from the policy's generator; decision-time draws
(posterior samples, members, masks) come from the policy's NumPy generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike, generator_from_state
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.mlp import NetworkConfig, OnlineNetwork
from scarce.models.neural_linear import (
    NeuralLinearRegression,
    student_argmax_probabilities,
    student_scores,
)
from scarce.policies.base import ModelPolicy, greedy_decision, masked, one_hot
from scarce.policies.linear import ThompsonPolicy, UCBPolicy

#: a tiny network and a short schedule for the contract checks (training happens within them)
UNIT_TEST_NETWORK: dict[str, Any] = {
    "hidden": [6],
    "train_steps": 3,
    "first_train": 4,
    "retrain_every": 5,
    "batch_size": 8,
}


class _NeuralMixin:
    """What every neural policy shares: the ``network`` setting, the network's seed, and
    keeping the policy's generator exact across save/load."""

    network: Mapping[str, Any] | None

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"network": dict(UNIT_TEST_NETWORK)}]

    def _network_config(self) -> NetworkConfig:
        return NetworkConfig.from_mapping(self.network)

    def _network_seed(self) -> int:
        return int(self.rng_.integers(2**62))  # type: ignore[attr-defined]

    def _set_state(self, state: dict[str, Any]) -> None:
        # building the network draws its seed from rng_; the saved network state replaces it,
        # and the saved generator state is restored after it
        super()._set_state(state)  # type: ignore[misc]
        if state.get("initialized"):
            self.rng_ = generator_from_state(state["rng"])

    @property
    def n_retrains(self) -> int:
        """Retrainings of the network so far (0 before first use)."""
        model = getattr(self, "model_", None)
        return 0 if model is None else int(model.n_retrains)


def _flatten(X: np.ndarray) -> np.ndarray:
    """``(n, d)`` as is; ``(n, K, d)`` as ``(n K, d)``."""
    return X if X.ndim == 2 else X.reshape(-1, X.shape[2])


def _per_action(values: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Network outputs ``(..., m, H)`` as ``(..., n, K)`` (``H = K`` heads for shared
    contexts; one head over ``m = n K`` rows for per-action features)."""
    if X.ndim == 2:
        return values
    return values.reshape(*values.shape[:-2], X.shape[0], X.shape[1])


class NeuralLinearTS(_NeuralMixin, ThompsonPolicy):
    """Neural-linear Thompson sampling (Riquelme, Tucker and Snoek 2018): linear Thompson
    sampling (:class:`~scarce.policies.LinTS`) on the last hidden layer ``phi(x)`` of a
    network retrained on a schedule; draw ``theta~ ~ N(theta_hat, v^2 A^{-1})`` per action on
    ``phi`` and pick the largest ``phi(x)^T theta~``.

    Parameters
    ----------
    v:
        posterior scale (the reward noise standard deviation), >= 0.
    lam:
        ridge penalty (prior precision) on the embedding, > 0.
    network:
        None or a mapping of :class:`~scarce.models.mlp.NetworkConfig` fields.
    append_inputs:
        regress on ``[phi(x), x]`` (see :class:`~scarce.models.neural_linear.
        NeuralLinearRegression`).
    noise_prior:
        None: the noise scale is ``v``. ``[a0, b0]`` (both > 0): Riquelme et al.'s
        normal-inverse-gamma posterior, the noise variance of action ``k`` drawn per case from
        ``IG(a0 + n_k / 2, b0 + r_k / 2)`` (``r_k`` the ridge fit's residual sum of squares
        plus penalty), then ``theta~ ~ N(theta_hat, v^2 sigma^2 A^{-1})``; each score is then
        a Student t, and choice probabilities are Monte Carlo (``propensity_samples`` draws).
    propensity_samples:
        Monte-Carlo draws for choice probabilities (per-action features, or ``noise_prior``).
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        v: float = 1.0,
        lam: float = 1.0,
        network: Mapping[str, Any] | None = None,
        append_inputs: bool = False,
        noise_prior: Sequence[float] | None = None,
        propensity_samples: int = 1000,
        seed: SeedLike = None,
    ) -> None:
        Policy.__init__(self, n_actions=n_actions, n_features=n_features, seed=seed)
        self.v = v
        self.lam = lam
        self.network = network
        self.append_inputs = append_inputs
        self.noise_prior = noise_prior
        self.propensity_samples = propensity_samples

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        net = dict(UNIT_TEST_NETWORK)
        return [
            {"network": net},
            {"network": net, "noise_prior": [6.0, 6.0], "append_inputs": True},
        ]

    def _check_params(self) -> None:
        super()._check_params()
        self._network_config()
        self._noise_prior()

    def _noise_prior(self) -> tuple[float, float] | None:
        if self.noise_prior is None:
            return None
        prior = self.noise_prior
        if isinstance(prior, (str, bytes)) or not isinstance(prior, Sequence) or len(prior) != 2:
            raise ValueError(f"noise_prior must be None or [a0, b0]; got {prior!r}")
        a0 = check_scalar(prior[0], "noise_prior[0] (a0)", low=0.0, low_inclusive=False)
        b0 = check_scalar(prior[1], "noise_prior[1] (b0)", low=0.0, low_inclusive=False)
        return float(a0), float(b0)

    def _make_model(self, n_models: int) -> NeuralLinearRegression:
        return NeuralLinearRegression(
            n_models,
            self.n_features,
            lam=self.lam,
            network=self._network_config(),
            append_inputs=self.append_inputs,
            seed=self._network_seed(),
        )

    def _ig_probabilities(self, view, eligible, seed: list[int]) -> np.ndarray:
        # a separate deterministic stream: asking never moves rng_
        n = int(self.propensity_samples)
        return student_argmax_probabilities(view, self.v, eligible, n, np.random.default_rng(seed))

    def _posterior(self):
        return self.model_.theta, self.model_.A_inv

    def _decide(self, X, eligible):
        Z = self.model_.transform(X)
        if self.noise_prior is not None:
            view = self.model_.student_view(Z, *self._noise_prior())
            sampled = masked(student_scores(view, self.v, self.rng_), eligible)
            actions = np.argmax(sampled, axis=1)
            seed = [int(self.n_updates_), X.shape[0], 7919]
            rows = np.arange(X.shape[0])
            return Decision(
                actions,
                None,
                sampled,
                probability_fn=lambda: self._ig_probabilities(view, eligible, seed)[rows, actions],
            )
        if self.context_mode_ != SHARED_CONTEXT:
            return super()._decide(Z, eligible)
        # independent per-action posteriors: the sample's marginals are all that is needed,
        # and the decision keeps (n, K) means and widths instead of copying K covariances
        mean, var = linear.predict(Z, self.model_.theta, self.model_.A_inv)
        std = float(self.v) * np.sqrt(var)
        sampled = masked(mean + std * self.rng_.standard_normal(mean.shape), eligible)
        actions = np.argmax(sampled, axis=1)
        return Decision(
            actions,
            None,
            sampled,
            probability_fn=lambda: linear.gaussian_argmax_probability_of(
                mean, std, actions, eligible
            ),
        )

    def _action_probabilities(self, X, eligible):
        if self.noise_prior is not None:
            seed = [int(self.n_updates_), X.shape[0], 7919]
            return self._ig_probabilities(
                self.model_.student_view(self.model_.transform(X), *self._noise_prior()),
                eligible,
                seed,
            )
        return super()._action_probabilities(self.model_.transform(X), eligible)


class NeuralLinearUCB(_NeuralMixin, UCBPolicy):
    """Neural-linear UCB: LinUCB on the last hidden layer of a network retrained on a
    schedule: pick the largest ``phi(x)^T theta_hat + alpha * sqrt(phi^T A^{-1} phi)``.

    Parameters
    ----------
    alpha:
        width multiplier, >= 0.
    lam:
        ridge penalty on the embedding, > 0.
    network:
        None or a mapping of :class:`~scarce.models.mlp.NetworkConfig` fields.
    append_inputs:
        regress on ``[phi(x), x]`` (see :class:`~scarce.models.neural_linear.
        NeuralLinearRegression`).
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        lam: float = 1.0,
        network: Mapping[str, Any] | None = None,
        append_inputs: bool = False,
        seed: SeedLike = None,
    ) -> None:
        Policy.__init__(self, n_actions=n_actions, n_features=n_features, seed=seed)
        self.alpha = alpha
        self.lam = lam
        self.network = network
        self.append_inputs = append_inputs

    def _check_params(self) -> None:
        super()._check_params()
        self._network_config()

    def _make_model(self, n_models: int) -> NeuralLinearRegression:
        return NeuralLinearRegression(
            n_models,
            self.n_features,
            lam=self.lam,
            network=self._network_config(),
            append_inputs=self.append_inputs,
            seed=self._network_seed(),
        )

    def _confidence(self):
        return self.model_.theta, self.model_.A_inv

    def _decide(self, X, eligible):
        return super()._decide(self.model_.transform(X), eligible)

    def _action_probabilities(self, X, eligible):
        return super()._action_probabilities(self.model_.transform(X), eligible)


class _NetworkPolicy(_NeuralMixin, ModelPolicy):
    """A policy whose model is an :class:`~scarce.models.mlp.OnlineNetwork` (no ridge)."""

    _n_members = 1
    _dropout = 0.0
    _bootstrap = 1.0

    def _check_params(self) -> None:
        Policy._check_params(self)  # no ridge penalty to check (ModelPolicy checks lam)
        self._network_config()

    def _make_model(self, n_models: int) -> OnlineNetwork:
        return OnlineNetwork(
            self.n_features,
            n_models,
            self._network_config(),
            n_members=self._n_members,
            dropout=self._dropout,
            bootstrap=self._bootstrap,
            seed=self._network_seed(),
        )

    def _learn(self, X, actions, rewards, full_rewards, **extra):
        feats, targets, heads = self._training_rows(X, actions, rewards, full_rewards)
        self._observe(feats, heads)
        self.model_.add(feats, targets, heads)

    def _observe(self, feats: np.ndarray, heads: np.ndarray) -> None:
        """Hook: rows about to be added (before any retraining they trigger)."""

    def _predict(self, X: np.ndarray, masks: list[np.ndarray] | None = None) -> np.ndarray:
        """``(M, n, K)`` every member's predicted rewards."""
        return _per_action(self.model_.mlp.predict(_flatten(X), masks), X)


def _backprop(weights: list[np.ndarray], a: list[np.ndarray], heads: np.ndarray | None):
    """Per-row gradient factors of outputs w.r.t. the hidden layers' parameters of member 0.

    ``a[l]`` ``(m, in_l)`` is the input of layer ``l`` (``a[0] = x``). Yields ``(l, delta)``
    from the last hidden layer down: ``delta`` ``(m, H, out_l)`` is the derivative of output
    head ``h`` w.r.t. layer ``l``'s pre-activation (every head, or ``heads[i]`` only with
    ``H = 1``); the gradient of ``W_l`` is ``outer(a[l], delta)``, of ``b_l`` ``delta``.
    """
    L = len(a) - 1
    W_out = weights[2 * L][0]  # (h_L, n_heads)
    head_w = W_out.T[None] if heads is None else W_out.T[heads][:, None, :]
    delta = head_w * (a[L] > 0)[:, None, :]
    for layer in range(L - 1, -1, -1):
        yield layer, delta
        if layer:
            delta = (delta @ weights[2 * layer][0].T) * (a[layer] > 0)[:, None, :]


class NeuralUCB(_NetworkPolicy):
    """NeuralUCB (Zhou, Li and Gu 2020) with its diagonal approximation: pick the largest
    ``f(x) + alpha * sqrt(lam * sum_i g_i^2 / U_i)``, where ``g`` is the gradient of the
    network's output for the action in its parameters and ``U = lam + sum g^2`` accumulates
    the squared gradients of the observed (case, action) rows at the weights they were
    decided with. ``alpha^2`` is the ``nu`` of the authors' code; gradients are taken in the
    network's standardised output and widths rescaled to reward units.

    Parameters
    ----------
    alpha:
        width multiplier, >= 0.
    lam:
        initial value of ``U`` (the prior precision of every parameter), > 0.
    network:
        None or a mapping of :class:`~scarce.models.mlp.NetworkConfig` fields.
    """

    deterministic = True

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        lam: float = 1.0,
        network: Mapping[str, Any] | None = None,
        seed: SeedLike = None,
    ) -> None:
        Policy.__init__(self, n_actions=n_actions, n_features=n_features, seed=seed)
        self.alpha = alpha
        self.lam = lam
        self.network = network

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.alpha, "alpha", low=0.0)
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)

    def _init_state(self) -> None:
        super()._init_state()
        self.U_ = [np.full(p.shape[1:], float(self.lam)) for p in self.model_.mlp.weights()]

    def _inputs(self, x: np.ndarray) -> list[np.ndarray]:
        acts, _ = self.model_.mlp.forward(x)
        return [x] + [h[0] for h in acts]

    def widths(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` ``sqrt(lam * sum_i g_i^2 / U_i)`` in the network's standardised units."""
        x = _flatten(X)
        a = self._inputs(x)
        inv = [1.0 / U for U in self.U_]
        L = len(a) - 1
        total = (a[L] ** 2) @ inv[2 * L] + inv[2 * L + 1]
        for layer, delta in _backprop(self.model_.mlp.weights(), a, None):
            d2 = delta**2  # (m, H, out)
            total += np.einsum("mho,mo->mh", d2, (a[layer] ** 2) @ inv[2 * layer])
            total += d2 @ inv[2 * layer + 1][0]
        return _per_action(np.sqrt(self.lam * total), X)

    def _ucb(self, X: np.ndarray) -> np.ndarray:
        mean = self._predict(X)[0]
        return mean + float(self.alpha) * self.model_.mlp.scale[0] * self.widths(X)

    def _decide(self, X, eligible):
        return greedy_decision(self._ucb(X), eligible)

    def _action_probabilities(self, X, eligible):
        return one_hot(greedy_decision(self._ucb(X), eligible).actions, self.n_actions)

    def _observe(self, feats, heads):
        a = self._inputs(feats)
        L = len(a) - 1
        onehot = one_hot(heads, self.U_[2 * L].shape[1])
        self.U_[2 * L] += (a[L] ** 2).T @ onehot
        self.U_[2 * L + 1] += onehot.sum(axis=0)
        for layer, delta in _backprop(self.model_.mlp.weights(), a, heads):
            d2 = delta[:, 0, :] ** 2
            self.U_[2 * layer] += (a[layer] ** 2).T @ d2
            self.U_[2 * layer + 1] += d2.sum(axis=0)

    def _get_learned_state(self):
        state = super()._get_learned_state()
        state["U"] = [U.copy() for U in self.U_]
        return state

    def _set_learned_state(self, state):
        super()._set_learned_state(state)
        self.U_ = [np.array(U, dtype=np.float64) for U in state["U"]]


class EnsembleTS(_NetworkPolicy):
    """Thompson sampling with an ensemble of bootstrapped networks (Osband, Blundell, Pritzel
    and Van Roy 2016): member ``m`` trains on the rows its Bernoulli(``bootstrap``) mask keeps;
    each case follows one uniformly drawn member's greedy action. The probability of an action
    is exactly the share of members whose greedy choice it is.

    Parameters
    ----------
    n_members:
        networks in the ensemble, >= 2.
    bootstrap:
        probability that a row is in a member's training set, in (0, 1] (1: the members
        differ only by their initial weights and minibatches).
    network:
        None or a mapping of :class:`~scarce.models.mlp.NetworkConfig` fields.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        n_members: int = 10,
        bootstrap: float = 0.5,
        network: Mapping[str, Any] | None = None,
        seed: SeedLike = None,
    ) -> None:
        Policy.__init__(self, n_actions=n_actions, n_features=n_features, seed=seed)
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.network = network

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.n_members, "n_members", minimum=2)
        check_scalar(self.bootstrap, "bootstrap", low=0.0, high=1.0, low_inclusive=False)

    @property
    def _n_members(self) -> int:  # type: ignore[override]
        return int(self.n_members)

    @property
    def _bootstrap(self) -> float:  # type: ignore[override]
        return float(self.bootstrap)

    def _decide(self, X, eligible):
        preds = self._predict(X)  # (M, n, K)
        n = X.shape[0]
        members = self.rng_.integers(preds.shape[0], size=n)
        scores = masked(preds[members, np.arange(n)], eligible)
        actions = np.argmax(scores, axis=1)

        def probabilities() -> np.ndarray:
            return (np.argmax(masked(preds, eligible), axis=2) == actions).mean(axis=0)

        return Decision(actions, None, scores, probability_fn=probabilities)

    def _action_probabilities(self, X, eligible):
        greedy = np.argmax(masked(self._predict(X), eligible), axis=2)  # (M, n)
        return (
            one_hot(greedy.reshape(-1), self.n_actions)
            .reshape(*greedy.shape, self.n_actions)
            .mean(axis=0)
        )


class DropoutTS(_NetworkPolicy):
    """Thompson sampling with Monte-Carlo dropout (Gal and Ghahramani 2016; the ``Dropout``
    baseline of Riquelme et al. 2018): the network trains with dropout; each case draws one
    dropout mask (shared by its actions) and picks the largest output of that thinned network.

    Parameters
    ----------
    dropout:
        probability of dropping a hidden unit, in (0, 1).
    network:
        None or a mapping of :class:`~scarce.models.mlp.NetworkConfig` fields.
    propensity_samples:
        masks for the Monte-Carlo choice probabilities (drawn from a separate stream fixed by
        the number of updates, so reporting probabilities never moves the policy's draws).
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        dropout: float = 0.1,
        network: Mapping[str, Any] | None = None,
        propensity_samples: int = 1000,
        seed: SeedLike = None,
    ) -> None:
        Policy.__init__(self, n_actions=n_actions, n_features=n_features, seed=seed)
        self.dropout = dropout
        self.network = network
        self.propensity_samples = propensity_samples

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"network": dict(UNIT_TEST_NETWORK), "propensity_samples": 4000}]

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(
            self.dropout, "dropout", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
        )
        check_positive_int(self.propensity_samples, "propensity_samples")

    @property
    def _dropout(self) -> float:  # type: ignore[override]
        return float(self.dropout)

    def _masks(self, n: int, K: int | None, rng: np.random.Generator) -> list[np.ndarray]:
        masks = self.model_.mlp.dropout_masks(n, rng)
        return masks if K is None else [np.repeat(m, K, axis=0) for m in masks]

    def _sample(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(n, K)`` one dropout sample per case."""
        K = None if X.ndim == 2 else X.shape[1]
        return self._predict(X, self._masks(X.shape[0], K, rng))[0]

    def _decide(self, X, eligible):
        scores = masked(self._sample(X, self.rng_), eligible)
        actions = np.argmax(scores, axis=1)
        n_updates = self.n_updates_

        def probabilities() -> np.ndarray:
            mc = self._mc_probabilities(X, eligible, n_updates)
            return mc[np.arange(X.shape[0]), actions]

        return Decision(actions, None, scores, probability_fn=probabilities)

    def _mc_probabilities(self, X, eligible, n_updates=None):
        n_updates = self.n_updates_ if n_updates is None else n_updates
        rng = np.random.default_rng([int(n_updates), X.shape[0], 7919])
        n, S = X.shape[0], int(self.propensity_samples)
        counts = np.zeros((n, self.n_actions))
        chunk = max(1, 20000 // n)
        for start in range(0, S, chunk):
            s = min(chunk, S - start)
            Xs = np.concatenate([X] * s)  # s copies of the batch, one mask per copy and case
            scores = self._sample(Xs, rng).reshape(s, n, self.n_actions)
            if eligible is not None:
                scores = np.where(eligible, scores, -np.inf)
            best = np.argmax(scores, axis=2)
            np.add.at(counts, (np.tile(np.arange(n), s), best.reshape(-1)), 1.0)
        return counts / S

    def _action_probabilities(self, X, eligible):
        return self._mc_probabilities(X, eligible)


__all__ = [
    "UNIT_TEST_NETWORK",
    "DropoutTS",
    "EnsembleTS",
    "NeuralLinearTS",
    "NeuralLinearUCB",
    "NeuralUCB",
]
