"""Online decision deferral under a budget (Reid, Sühr, Vernade, Samadi, 2024; spec A.5).

Two actions: ``0 = MODEL`` (a fixed ML model, free) and ``1 = HUMAN`` (defer to a costly
expert). :class:`Deferral` is :class:`~scarce.budget.knapsack.KnapsackBandit` with ``K = 2``,
one resource and the model as the free action, plus the paper's feedback regimes:

* ``feedback="full"``: the model's reward is seen every round (pass it as
  ``update(..., model_rewards=...)``), the human's reward and the cost only when deferring;
* ``feedback="bandit"``: only the chosen arm's reward (``model_rewards`` is then ignored, so
  one simulation loop drives both regimes).

:class:`NeuralDeferral` replaces each linear model by a neural-linear one (spec A.6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.budget.estimators import NeuralBank
from scarce.budget.knapsack import KnapsackBandit
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar

MODEL = 0
HUMAN = 1
FEEDBACKS = ("full", "bandit")
_BOTH = np.array([MODEL, HUMAN])
_MODEL_ONLY = np.array([MODEL])


class Deferral(KnapsackBandit):
    """Algorithm 1 of the deferral paper: defer iff ``UCB_H - Z lambda_t LCB_c > UCB_M``.

    Parameters
    ----------
    n_features:
        context dimension ``d``.
    budget, horizon:
        total budget ``B`` (> 0) and the known horizon ``T``.
    feedback:
        ``"full"`` (default, the paper's main setting) or ``"bandit"``.
    model_link, human_link, cost_link:
        link of each estimated quantity, ``"identity"`` or ``"logistic"`` (spec: one link per
        target).
    cost_bound:
        the largest cost one deferral can have (default 1.0); deferring is allowed only while
        at least this much budget is left, so the budget is never exceeded.
    lam, lam_logistic, beta_scale, delta, sigma, kappa, reward_range, z_method, Z,
    warmup_rounds, c_z, z_gamma, eta, dual_uses_estimate, seed:
        as in :class:`~scarce.budget.knapsack.KnapsackBandit`.

    ``update(X, actions, rewards, costs=..., model_rewards=...)``: ``costs`` ``(n,)`` is the
    realised cost (0 where the model was used); ``model_rewards`` ``(n,)`` the model's reward
    on every case (needed with ``feedback="full"``).
    """

    def __init__(
        self,
        *,
        n_features: int,
        budget: float,
        horizon: int,
        feedback: str = "full",
        model_link: str = "identity",
        human_link: str = "identity",
        cost_link: str = "identity",
        cost_bound: float = 1.0,
        lam: float = 1.0,
        lam_logistic: float = 1e-3,
        beta_scale: float = 1.0,
        delta: float = 0.05,
        sigma: float = 0.5,
        kappa: float | None = None,
        reward_range: tuple[float, float] = (0.0, 1.0),
        z_method: str = "warmup_estimate",
        Z: float | None = None,
        warmup_rounds: int | None = None,
        c_z: float = 1.0,
        z_gamma: float | None = None,
        eta: float | None = None,
        dual_uses_estimate: bool = True,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=2,
            n_features=n_features,
            budget=budget,
            horizon=horizon,
            n_resources=1,
            free_action=MODEL,
            cost_bound=cost_bound,
            reward_link=[model_link, human_link],
            cost_link=cost_link,
            lam=lam,
            lam_logistic=lam_logistic,
            beta_scale=beta_scale,
            delta=delta,
            sigma=sigma,
            kappa=kappa,
            reward_range=reward_range,
            z_method=z_method,
            Z=Z,
            warmup_rounds=warmup_rounds,
            c_z=c_z,
            z_gamma=z_gamma,
            eta=eta,
            dual_uses_estimate=dual_uses_estimate,
            seed=seed,
        )
        self.feedback = feedback
        self.model_link = model_link
        self.human_link = human_link

    def _check_params(self) -> None:
        if self.feedback not in FEEDBACKS:
            raise ValueError(f"feedback must be one of {FEEDBACKS}; got {self.feedback!r}")
        check_scalar(self.cost_bound, "cost_bound", low=0.0, low_inclusive=False)
        self.reward_link = [self.model_link, self.human_link]
        super()._check_params()

    def _extra_keywords(self) -> tuple[str, ...]:
        return ("costs", "model_rewards")

    def _reward_rows(self, X, actions, rewards, full_rewards, extra):  # type: ignore[override]
        if full_rewards is not None or self.feedback == "bandit":
            return super()._reward_rows(X, actions, rewards, full_rewards, extra)
        mr = extra.get("model_rewards")
        if mr is None:
            raise ValueError(
                "feedback='full' needs update(..., model_rewards=(n,)), the model's reward on every case"
            )
        n = X.shape[0]
        mr = np.asarray(mr, dtype=np.float64).reshape(-1)
        if mr.shape[0] != n:
            raise ValueError(f"model_rewards must have shape ({n},); got {mr.shape}")
        lo, hi = self.reward_range
        if not (lo <= mr[0] <= hi if n == 1 else ((mr >= lo) & (mr <= hi)).all()):  # NaN fails
            raise ValueError(f"model_rewards must be finite and in [{lo}, {hi}]")
        if n == 1:  # the common online case, without the general concatenations
            if actions[0] == HUMAN:
                return np.concatenate([X, X]), np.array([mr[0], rewards[0]]), _BOTH
            if rewards is not None and mr[0] != rewards[0]:
                raise ValueError("model_rewards must equal rewards where the model was used")
            return X, mr, _MODEL_ONLY
        deferred = actions == HUMAN
        if rewards is not None and ((mr != rewards) & ~deferred).any():
            raise ValueError("model_rewards must equal rewards where the model was used")
        feats = np.concatenate([X, X[deferred]])
        y = np.concatenate([mr, rewards[deferred]])
        ids = np.concatenate([np.full(n, MODEL), np.full(int(deferred.sum()), HUMAN)])
        return feats, y, ids


class NeuralDeferral(Deferral):
    """Deferral with NeuralLinear / NeuralLogistic estimates (spec A.6): one small network
    per target (model reward, human reward, cost), each trained only on the rounds where its
    target was observed; its last hidden layer replaces ``x`` in the GLM estimates, and after
    each retraining every stored context is re-embedded and the linear model refitted.

    Extra parameters (defaults: the paper's Knapsack settings, one epoch per retraining)
    ----------------------------------------------------------------------------------
    hidden:
        hidden widths (paper: one layer of 50 ReLU units).
    retrain_every:
        retrain each network after this many new observations of its target (paper: 10).
    min_train:
        observations before the first training.
    epochs, batch_size, lr, weight_decay:
        Adam settings per retraining (paper: batch 500, lr 5e-4; epochs not stated: 1).

    The other parameters are those of :class:`Deferral`; the confidence radius uses the
    embedding dimension.
    """

    def __init__(
        self,
        *,
        n_features: int,
        budget: float,
        horizon: int,
        feedback: str = "full",
        model_link: str = "identity",
        human_link: str = "identity",
        cost_link: str = "identity",
        cost_bound: float = 1.0,
        lam: float = 1.0,
        lam_logistic: float = 1e-3,
        beta_scale: float = 1.0,
        delta: float = 0.05,
        sigma: float = 0.5,
        kappa: float | None = None,
        reward_range: tuple[float, float] = (0.0, 1.0),
        z_method: str = "warmup_estimate",
        Z: float | None = None,
        warmup_rounds: int | None = None,
        c_z: float = 1.0,
        z_gamma: float | None = None,
        eta: float | None = None,
        dual_uses_estimate: bool = True,
        hidden: Sequence[int] = (50,),
        retrain_every: int = 10,
        min_train: int = 20,
        epochs: int = 1,
        batch_size: int = 500,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_features=n_features,
            budget=budget,
            horizon=horizon,
            feedback=feedback,
            model_link=model_link,
            human_link=human_link,
            cost_link=cost_link,
            cost_bound=cost_bound,
            lam=lam,
            lam_logistic=lam_logistic,
            beta_scale=beta_scale,
            delta=delta,
            sigma=sigma,
            kappa=kappa,
            reward_range=reward_range,
            z_method=z_method,
            Z=Z,
            warmup_rounds=warmup_rounds,
            c_z=c_z,
            z_gamma=z_gamma,
            eta=eta,
            dual_uses_estimate=dual_uses_estimate,
            seed=seed,
        )
        self.hidden = hidden
        self.retrain_every = retrain_every
        self.min_train = min_train
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params["hidden"] = [int(h) for h in params["hidden"]]
        return params

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("retrain_every", "min_train", "epochs", "batch_size"):
            check_positive_int(getattr(self, name), name)
        if not list(self.hidden):
            raise ValueError("hidden must list at least one width, e.g. (50,)")
        check_scalar(self.lr, "lr", low=0.0, low_inclusive=False)
        check_scalar(self.weight_decay, "weight_decay", low=0.0)

    # one network per target: targets cannot share a design
    _multi_target_models = False

    def _make_bank(
        self, n_models: int, link: str, seeds: np.ndarray, n_targets: int | None = None
    ) -> Any:
        lam = self.lam if link == "identity" else self.lam_logistic
        net_params = dict(
            hidden=tuple(int(h) for h in self.hidden),
            retrain_every=self.retrain_every,
            min_train=self.min_train,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
        )
        return NeuralBank(n_models, self.n_features, link, lam, [int(s) for s in seeds], net_params)
