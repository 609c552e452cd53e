"""Online decision deferral under a budget (Reid, Sühr, Vernade, Samadi, 2024; spec A.5).

Two actions: ``0 = MODEL`` (a fixed ML model, free) and ``1 = HUMAN`` (defer to a costly
expert). :class:`Deferral` is :class:`~scarce.budget.knapsack.KnapsackBandit` with ``K = 2``,
one resource and the model as the free action, plus the paper's feedback regimes:

* ``feedback="full"``: the model's reward is seen every round (pass it as
  ``update(..., model_rewards=...)``; the deferral environments report it in
  ``Outcome.extras["model_rewards"]``), the human's reward and the cost only when deferring;
* ``feedback="bandit"``: only the chosen arm's reward (``model_rewards`` is then ignored, so
  one simulation loop drives both regimes).

:class:`NeuralDeferral` replaces each linear model by a neural-linear one (spec A.6).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.budget.estimators import LINKS, NeuralBank
from scarce.budget.knapsack import KnapsackBandit
from scarce.budget.replicated import BudgetedReplicas
from scarce.budget.specs import ConfidenceSpec, DualSpec, NetworkSpec, as_spec, spec_dict
from scarce.core.decision import Decision
from scarce.core.random import SeedLike
from scarce.core.validation import check_scalar
from scarce.policies import register_policy

MODEL = 0
HUMAN = 1
FEEDBACKS = ("full", "bandit")
_BOTH = np.array([MODEL, HUMAN])
_MODEL_ONLY = np.array([MODEL])


@register_policy
class Deferral(KnapsackBandit):
    """Algorithm 1 of the deferral paper: defer iff ``UCB_H - Z lambda_t LCB_c > UCB_M``.

    Parameters
    ----------
    n_actions:
        must be 2 (``0`` = the model, ``1`` = the human); a parameter so that the loop, the
        configs and the service build it like any policy.
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
    confidence, dual, backend, seed:
        as in :class:`~scarce.budget.knapsack.KnapsackBandit`.

    Notes
    -----
    ``update(X, actions, rewards, costs=..., model_rewards=..., info=...)``: ``costs``
    ``(n,)`` is the realised cost (0 where the model was used); ``model_rewards`` ``(n,)`` the
    model's reward on every case (needed with ``feedback="full"``; ``full_rewards``, when
    given, supersede it).
    """

    def __init__(
        self,
        *,
        n_actions: int = 2,
        n_features: int,
        budget: float,
        horizon: int,
        feedback: str = "full",
        model_link: str = "identity",
        human_link: str = "identity",
        cost_link: str = "identity",
        cost_bound: float = 1.0,
        confidence: ConfidenceSpec | dict[str, Any] | None = None,
        dual: DualSpec | dict[str, Any] | None = None,
        backend: str = "numpy",
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            budget=budget,
            horizon=horizon,
            n_resources=1,
            free_action=MODEL,
            cost_bound=cost_bound,
            reward_link=[model_link, human_link],
            cost_link=cost_link,
            confidence=confidence,
            dual=dual,
            backend=backend,
            seed=seed,
        )
        self.feedback = feedback
        self.model_link = model_link
        self.human_link = human_link

    def _reward_links(self) -> list[str]:
        for name in ("model_link", "human_link"):
            if getattr(self, name) not in LINKS:
                raise ValueError(f"{name} must be one of {LINKS}; got {getattr(self, name)!r}")
        return [self.model_link, self.human_link]

    def _check_params(self) -> None:
        if isinstance(self.n_actions, bool) or self.n_actions != 2:
            raise ValueError(
                f"n_actions must be 2 for {type(self).__name__} (0 = the model, 1 = the human); "
                f"got {self.n_actions!r}"
            )
        if self.feedback not in FEEDBACKS:
            raise ValueError(f"feedback must be one of {FEEDBACKS}; got {self.feedback!r}")
        check_scalar(self.cost_bound, "cost_bound", low=0.0, low_inclusive=False)
        super()._check_params()

    def _extra_keywords(self) -> tuple[str, ...]:
        return ("costs", "model_rewards", "info")

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
        lo, hi = self._conf.reward_range
        if not (lo <= mr[0] <= hi if n == 1 else ((mr >= lo) & (mr <= hi)).all()):  # NaN fails
            raise ValueError(f"model_rewards must be finite and in [{lo}, {hi}]")
        if n == 1:  # the common online case, without the general concatenations
            if actions[0] == HUMAN:
                return np.concatenate([X, X]), np.array([mr[0], rewards[0]]), _BOTH
            if mr[0] != rewards[0]:
                raise ValueError("model_rewards must equal rewards where the model was used")
            return X, mr, _MODEL_ONLY
        deferred = actions == HUMAN
        if ((mr != rewards) & ~deferred).any():
            raise ValueError("model_rewards must equal rewards where the model was used")
        feats = np.concatenate([X, X[deferred]])
        y = np.concatenate([mr, rewards[deferred]])
        ids = np.concatenate([np.full(n, MODEL), np.full(int(deferred.sum()), HUMAN)])
        return feats, y, ids

    # ------------------------------------------------------------------ contract hooks
    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [
            {"n_actions": 2, "budget": 500.0, "horizon": 1000, "dual": {"warmup_rounds": 5}},
            {
                "n_actions": 2,
                "budget": 2.0,
                "horizon": 50,
                "feedback": "bandit",
                "human_link": "logistic",
                "dual": {"z_method": "fixed", "Z": 1.0},
            },
        ]

    @classmethod
    def _unit_test_feedback(
        cls, rng: np.random.Generator, X: np.ndarray, decision: Decision, params: dict[str, Any]
    ) -> dict[str, Any]:
        feedback = super()._unit_test_feedback(rng, X, decision, params)
        model = np.where(decision.actions == MODEL, feedback["rewards"], rng.random(X.shape[0]))
        feedback["model_rewards"] = model
        return feedback

    @classmethod
    def _replicated(cls, policies: Any, action_features: bool) -> Any:
        """Replicated-simulation hook (:mod:`scarce.budget.replicated`)."""
        return BudgetedReplicas(policies, action_features)


@register_policy
class NeuralDeferral(Deferral):
    """Deferral with NeuralLinear / NeuralLogistic estimates (spec A.6): one small network
    per target (model reward, human reward, cost), each trained only on the rounds where its
    target was observed; its last hidden layer replaces ``x`` in the GLM estimates, and after
    each retraining every stored context is re-embedded and the linear model refitted.

    Parameters
    ----------
    network:
        :class:`~scarce.budget.specs.NetworkSpec` (or a dict of its fields): widths, the
        retraining schedule, Adam's settings and the output head.
    n_actions, n_features, budget, horizon, feedback, seed:
        as in :class:`Deferral`.
    model_link, human_link, cost_link, cost_bound, confidence, dual:
        as in :class:`Deferral` (the confidence radius uses the embedding dimension).

    Notes
    -----
    Needs PyTorch (``pip install 'scarce[neural]'``).
    """

    # one network per target: targets cannot share a design
    _multi_target_models = False

    def __init__(
        self,
        *,
        n_actions: int = 2,
        n_features: int,
        budget: float,
        horizon: int,
        feedback: str = "full",
        model_link: str = "identity",
        human_link: str = "identity",
        cost_link: str = "identity",
        cost_bound: float = 1.0,
        confidence: ConfidenceSpec | dict[str, Any] | None = None,
        dual: DualSpec | dict[str, Any] | None = None,
        network: NetworkSpec | dict[str, Any] | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            budget=budget,
            horizon=horizon,
            feedback=feedback,
            model_link=model_link,
            human_link=human_link,
            cost_link=cost_link,
            cost_bound=cost_bound,
            confidence=confidence,
            dual=dual,
            seed=seed,
        )
        self.network = network

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        try:
            params["network"] = spec_dict(as_spec(NetworkSpec, params["network"], "network"))
        except (TypeError, ValueError):
            pass
        return params

    def _check_params(self) -> None:
        super()._check_params()
        net = as_spec(NetworkSpec, self.network, "network")
        net.check("network")
        if net.output == "sigmoid":
            lo, hi = self._conf.reward_range
            if lo < 0 or hi > 1 or self.cost_bound > 1:
                raise ValueError(
                    "network.output='sigmoid' needs targets in [0, 1]: confidence.reward_range "
                    f"inside [0, 1] and cost_bound <= 1; got {(lo, hi)!r} and {self.cost_bound!r}"
                )
        self._net = net

    def _make_bank(
        self, n_models: int, link: str, seeds: np.ndarray, n_targets: int | None = None
    ) -> Any:
        lam = self._conf.lam if link == "identity" else self._conf.lam_logistic
        net = self._net
        return NeuralBank(
            n_models,
            self.n_features,
            link,
            lam,
            [int(s) for s in seeds],
            net.net_params(),
            output=net.output,
        )

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        tiny = {"hidden": [4], "retrain_every": 4, "min_train": 3, "batch_size": 16}
        return [{**p, "network": tiny} for p in super()._unit_test_params()]
