"""Deferral baselines (spec A.7) as policies, so that they run in :func:`scarce.sim.run`, in
sweeps, TOML configs and the decision service like the learners.

None of them learns, and none keeps a budget of its own: the hard budget is the loop's (or
the service's) :class:`~scarce.core.ledger.Ledger`, which makes deferring ineligible once its
``cost_bound`` no longer fits, so no rule can overspend. Each is built from ``n_actions`` (2:
``0`` = the model, ``1`` = the human), ``n_features``, its own parameters and ``seed``; the
deferral environments suggest the parameters that need the truth
(:meth:`~scarce.envs.Environment.policy_params`).

* :class:`ModelOnly`: never defer.
* :class:`HumanOnly`: always defer (while the budget lasts).
* :class:`ArbitraryHuman`: defer on arbitrary cases: ``mode="random"`` (default) defers each
  case with probability ``min(1, B / (T E[c]))``; ``mode="first"`` defers on the first cases.
* :class:`BestReject`: knows the model's expected reward ``mu_M(x) = x^T score_weights`` (on
  real data: the model's confidence) and defers iff it is below ``threshold``. The paper
  reports the best threshold of a grid in hindsight: :func:`scarce.budget.opt.best_threshold`
  finds it on a run's realised sequence.
* :class:`StaticOPT`: an oracle that plays the optimal static policy of spec A.2 computed from
  the true means (a linear rule for the synthetic problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_scalar
from scarce.policies import register_policy

MODEL, HUMAN = 0, 1
ARBITRARY_MODES = ("random", "first")


class DeferralRule(Policy):
    """A fixed rule choosing between the model (0) and the human (1): subclasses give the
    probability of deferring each case (:meth:`_defer_probability`). An ineligible arm is
    never chosen (the other one is). Learns nothing."""

    deterministic = True
    layouts = (SHARED_CONTEXT,)

    def _check_params(self) -> None:
        if isinstance(self.n_actions, bool) or self.n_actions != 2:
            raise ValueError(
                f"n_actions must be 2 for {type(self).__name__} (0 = the model, 1 = the human); "
                f"got {self.n_actions!r}"
            )
        super()._check_params()

    def _defer_probability(self, X: np.ndarray) -> np.ndarray:
        """``(n,)`` probability of deferring each case when both arms are eligible."""
        raise NotImplementedError

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        p = self._defer_probability(X)
        out = np.column_stack([1.0 - p, p])
        if eligible is not None:
            out = np.where(eligible, out, 0.0)
            only = eligible.sum(axis=1) == 1
            out[only] = eligible[only]
        return out

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        probs = self._action_probabilities(X, eligible)
        n = X.shape[0]
        if self.deterministic:
            actions = (probs[:, HUMAN] > 0.5).astype(np.int64)
        else:
            actions = (self.rng_.random(n) < probs[:, HUMAN]).astype(np.int64)
        chosen = probs[np.arange(n), actions]
        scores = np.where(probs > 0, np.log(np.maximum(probs, 1e-300)), -np.inf)
        return Decision(actions, chosen, scores)

    def _learn(self, X, actions, rewards, full_rewards, **extra):  # type: ignore[override]
        pass

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"n_actions": 2}]


@register_policy
class ModelOnly(DeferralRule):
    """Never defer: the free model decides every case."""

    def __init__(self, *, n_actions: int = 2, n_features: int, seed: SeedLike = None) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)

    def _defer_probability(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(X.shape[0])


@register_policy
class HumanOnly(DeferralRule):
    """Always defer while the budget lasts (the ledger then leaves only the model)."""

    def __init__(self, *, n_actions: int = 2, n_features: int, seed: SeedLike = None) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)

    def _defer_probability(self, X: np.ndarray) -> np.ndarray:
        return np.ones(X.shape[0])


@register_policy
class ArbitraryHuman(DeferralRule):
    """Defer on arbitrary cases until the budget is used up (spec A.7).

    Parameters
    ----------
    budget, horizon, mean_cost:
        ``B``, ``T`` and the expected cost of one deferral ``E[c]`` (the deferral
        environments suggest all three); ``mode="random"`` defers each case with probability
        ``min(1, B / (T E[c]))``, so that the budget lasts about the whole horizon.
    mode:
        ``"random"`` or ``"first"`` (always defer: the first cases take the budget).
    """

    def __init__(
        self,
        *,
        n_actions: int = 2,
        n_features: int,
        budget: float | None = None,
        horizon: int | None = None,
        mean_cost: float | None = None,
        mode: str = "random",
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.budget = budget
        self.horizon = horizon
        self.mean_cost = mean_cost
        self.mode = mode

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.mode == "first"

    def _check_params(self) -> None:
        super()._check_params()
        if self.mode not in ARBITRARY_MODES:
            raise ValueError(f"mode must be one of {ARBITRARY_MODES}; got {self.mode!r}")
        if self.mode == "random":
            if self.budget is None or self.horizon is None or self.mean_cost is None:
                raise ValueError(
                    "mode='random' needs budget, horizon and mean_cost (the deferral "
                    "environments suggest them)"
                )
            check_scalar(self.budget, "budget", low=0.0)
            check_scalar(self.horizon, "horizon", low=0.0, low_inclusive=False)
            check_scalar(self.mean_cost, "mean_cost", low=0.0)

    def _init_state(self) -> None:
        if self.mode == "first":
            self._p = 1.0
            return
        total = float(self.horizon) * float(self.mean_cost)  # type: ignore[arg-type]
        self._p = 1.0 if total <= 0 else min(1.0, float(self.budget) / total)  # type: ignore[arg-type]

    def _defer_probability(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], self._p)

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [
            {"n_actions": 2, "budget": 10.0, "horizon": 100, "mean_cost": 0.4},
            {"n_actions": 2, "mode": "first"},
        ]


@register_policy
class BestReject(DeferralRule):
    """Defer iff the model's expected reward is below ``threshold`` (spec A.7): the best rule
    that uses no information about the human.

    Parameters
    ----------
    threshold:
        ``tau``.
    score_weights:
        ``(d,)``: the model's expected reward is ``x^T score_weights`` (the deferral
        environments suggest it: the true ``theta_M`` of the synthetic problem, the model's
        confidence feature on real data).
    """

    def __init__(
        self,
        *,
        n_actions: int = 2,
        n_features: int,
        threshold: float = 0.5,
        score_weights: Sequence[float] | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.threshold = threshold
        self.score_weights = score_weights

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        if isinstance(params["score_weights"], np.ndarray):
            params["score_weights"] = params["score_weights"].tolist()
        return params

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.threshold, "threshold")
        if self.score_weights is None:
            raise ValueError(
                "score_weights must be given: (n_features,) weights of the model's expected "
                "reward (the deferral environments suggest them)"
            )
        w = np.asarray(self.score_weights, dtype=np.float64)
        if w.shape != (self.n_features,) or not np.all(np.isfinite(w)):
            raise ValueError(
                f"score_weights must be {self.n_features} finite floats; got shape {w.shape}"
            )
        self._w = w

    def model_scores(self, X: np.ndarray) -> np.ndarray:
        """``(n,)`` the model's expected reward (or confidence) ``X @ score_weights``."""
        if not self._initialized:
            self._check_params()  # validates the weights (read-only otherwise)
        return np.asarray(X, dtype=np.float64) @ self._w

    def _defer_probability(self, X: np.ndarray) -> np.ndarray:
        return (self.model_scores(X) < self.threshold).astype(np.float64)

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"n_actions": 2, "threshold": 0.1, "score_weights": [1.0, -0.5, 0.25]}]


@register_policy
class StaticOPT(DeferralRule):
    """An oracle: the optimal static policy of spec A.2 computed from the true means, played
    under the hard budget. For linear means it defers iff
    ``x^T (theta_H - theta_M - lambda* theta_c) > 0``, and with probability ``boundary`` on
    the contexts where that is exactly 0 (the static optimum's randomisation).

    Parameters
    ----------
    oracle_weights:
        ``(d,)`` the weights above (``deferral-synthetic`` suggests them from its truth).
    oracle_boundary:
        the deferral probability on the boundary.
    """

    def __init__(
        self,
        *,
        n_actions: int = 2,
        n_features: int,
        oracle_weights: Sequence[float] | None = None,
        oracle_boundary: float = 0.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.oracle_weights = oracle_weights
        self.oracle_boundary = oracle_boundary

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.oracle_boundary in (0.0, 1.0)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        if isinstance(params["oracle_weights"], np.ndarray):
            params["oracle_weights"] = params["oracle_weights"].tolist()
        return params

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.oracle_boundary, "oracle_boundary", low=0.0, high=1.0)
        if self.oracle_weights is None:
            raise ValueError(
                "oracle_weights must be given (an environment with linear true means, such as "
                "deferral-synthetic, suggests them)"
            )
        w = np.asarray(self.oracle_weights, dtype=np.float64)
        if w.shape != (self.n_features,) or not np.all(np.isfinite(w)):
            raise ValueError(
                f"oracle_weights must be {self.n_features} finite floats; got shape {w.shape}"
            )
        self._w = w

    def _defer_probability(self, X: np.ndarray) -> np.ndarray:
        margin = X @ self._w
        return np.where(np.abs(margin) <= 1e-12, float(self.oracle_boundary), margin > 0)

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"n_actions": 2, "oracle_weights": [0.5, -1.0, 0.2]}]
