"""The base of the vector-reward policies, on the library's one protocol.

A vector policy is a :class:`~scarce.core.policy.Policy` with the tag ``reward_kind =
"vector"`` and an ``n_objectives`` parameter: the core's ``update`` validates its rewards as
``(n, m)`` (``full_rewards`` as ``(n, K, m)``) and calls the usual hooks, and
:func:`scarce.sim.run` feeds it from any environment with ``n_objectives`` (vector rewards).

What a decision says
--------------------
These policies play uniformly on a set of arms, their *support* (for the tree policies: the
estimated Pareto front of the context's bin). A :class:`~scarce.core.decision.Decision` of a
vector policy carries

* ``scores``: ``(n, K)``, the index the actions were chosen by, which for a uniform draw on a
  set is each action's choice probability (``-inf`` on ineligible actions, as every policy's
  scores); ranking by it ranks the support first;
* ``info["support"]``: ``(n, K)`` bool, the set the action was drawn from (the environment's
  :meth:`~scarce.envs.Environment.case_metrics` scores it: the preference regret is a
  distance between that set and the true Pareto set). It comes back to ``update`` only where
  a policy asks for it, and :func:`scarce.sim.run` records it in ``Trace.info``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_contexts, check_positive_int
from scarce.pareto.cones import Cone


def as_cone(cone: Any, m: int) -> Cone:
    """``cone`` (a :class:`Cone`, a halfspace matrix ``W`` ``(rows, m)`` or None for the
    orthant) as a :class:`Cone` in ``R^m``."""
    if cone is None:
        return Cone.orthant(m)
    c = cone if isinstance(cone, Cone) else Cone.from_halfspaces(cone)
    if c.dim != m:
        raise ValueError(f"cone must live in R^{m} (n_objectives); got a cone in R^{c.dim}")
    return c


class VectorPolicy(Policy):
    """A policy learning from ``(n, m)`` reward vectors, on contexts ``(n, D)``.

    Parameters
    ----------
    n_actions:
        ``K``.
    n_features:
        context dimension ``D``.
    n_objectives:
        ``m``, the length of a reward vector.
    cone:
        the preference cone: a :class:`~scarce.pareto.Cone`, a halfspace matrix ``W``
        (``(rows, m)`` nested lists or array, ``C = {x : W x >= 0}``) or None for the orthant
        ``R^m_+``. ``get_params`` reports it as nested lists (savable, and a TOML value).
    seed:
        int, Generator or None.
    """

    reward_kind = "vector"
    layouts = (SHARED_CONTEXT,)

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        n_objectives: int = 2,
        cone: Any = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.n_objectives = n_objectives
        self.cone = cone

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        cone = params.get("cone")
        if isinstance(cone, Cone):
            params["cone"] = cone.W.tolist()  # the same cone, in a savable form
        elif isinstance(cone, np.ndarray):
            params["cone"] = cone.tolist()
        return params

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.n_objectives, "n_objectives")
        self.cone_ = as_cone(self.cone, int(self.n_objectives))

    def _ensure_initialized(self, X: np.ndarray) -> None:
        if X.ndim != 2:
            raise ValueError(
                f"X must have shape (n, {self.n_features}) (shared contexts); got {X.shape}"
            )
        super()._ensure_initialized(X)

    def play_set(self, X: Any) -> np.ndarray:
        """``(n, K)`` bool: the support of the policy at each context, the next decisions
        being the next rounds (does not change state or the random stream)."""
        return self.action_probabilities(X) > 0

    def pareto_estimate(self, X: Any) -> np.ndarray:
        """``(n, K)`` bool: the policy's estimate of the Pareto set at each context."""
        X = check_contexts(X, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        return self._pareto_estimate(X)

    def _pareto_estimate(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ contract hooks
    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        # the checks feed every configuration the first one's rewards, so m is the same
        return [{"n_objectives": 2}, {"n_objectives": 2, "cone": [[-0.6, 1.0], [1.0, -0.6]]}]

    @classmethod
    def _unit_test_contexts(
        cls, rng: np.random.Generator, n: int, layout: str, params: dict[str, Any]
    ) -> np.ndarray:
        """Contexts in the unit cube ``[0, 1]^D`` (where the tree policies live)."""
        return rng.random((n, params["n_features"]))


def restrict(support: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
    """``support`` ``(n, K)`` restricted to the eligible actions; a row left empty falls back
    to all its eligible actions (a policy must choose among them)."""
    if eligible is None:
        return support
    s = support & eligible
    empty = ~s.any(axis=1)
    s[empty] = eligible[empty]
    return s


def support_decision(
    rng: np.random.Generator, support: np.ndarray, eligible: np.ndarray | None
) -> Decision:
    """A uniform draw on each row's support (restricted by :func:`restrict`): the
    ``floor(u * size)``-th arm of the set, ``u`` uniform. Scores are the choice probabilities
    (``-inf`` where ineligible); ``info["support"]`` is the set drawn from."""
    support = restrict(support, eligible)
    n = support.shape[0]
    size = support.sum(axis=1)
    probs = support / size[:, None]
    k = np.floor(rng.random(n) * size).astype(np.int64)
    if n == 1:  # the hot path of one case per round
        actions = np.flatnonzero(support[0])[k]
    else:
        actions = np.argmax(np.cumsum(support, axis=1) > k[:, None], axis=1)
    scores = probs if eligible is None else np.where(eligible, probs, -np.inf)
    return Decision(actions, 1.0 / size, scores, info={"support": support})
