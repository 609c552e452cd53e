"""Python wrappers of :mod:`compiled_kernels` for :mod:`bench_compiled`: the state of a
learner in the kernels' packed arrays, the library's fast-path input checks, and (the
``API`` forms) the library's ``Decision`` and feedback calls. Importing it needs numba."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from compiled_kernels import (
    all_products,
    knapsack_decide,
    knapsack_update,
    ridge_update,
    ts_decide,
    ucb_decide,
)

from scarce.core.decision import Decision
from scarce.models.linear import gaussian_argmax_probability_of

__all__ = ["NumbaKnapsack", "NumbaKnapsackAPI", "NumbaLinear", "all_products", "pack_ridge"]

# ---------------------------------------------------------------------- Python wrappers

_F64 = np.dtype(np.float64)


def check_case(X: object, d: int) -> np.ndarray:
    """The library's fast-path check of one context (``Policy._single_case``): a ``(1, d)``
    float64 array whose entries are finite; raises ``ValueError`` otherwise."""
    if type(X) is np.ndarray and X.shape == (1, d) and X.dtype == _F64:
        x = X.ravel()
        if math.isfinite(x.dot(x)):
            return X
    raise ValueError(f"X must be a finite float64 array of shape (1, {d})")


def _certain() -> np.ndarray:
    return np.ones(1)


def check_feedback(action: object, reward: object, K: int) -> tuple[int, float]:
    """The library's fast-path checks of one action id in ``[0, K)`` and one finite reward
    (``_one_action`` / ``_one_reward``: a number, or a one-element list, tuple or array)."""
    if type(action) is list or type(action) is tuple or type(action) is np.ndarray:
        if len(action) != 1:
            raise ValueError("one case needs one action")
        action = action[0]
    if type(reward) is list or type(reward) is tuple or type(reward) is np.ndarray:
        if len(reward) != 1:
            raise ValueError("one case needs one reward")
        reward = reward[0]
    if not (type(action) is int or isinstance(action, np.integer)) or not 0 <= action < K:
        raise ValueError(f"action must be an int in [0, {K}); got {action!r}")
    r = float(reward)  # type: ignore[arg-type]
    if not math.isfinite(r):
        raise ValueError(f"reward must be finite; got {reward!r}")
    return int(action), r


def pack_ridge(A_inv: np.ndarray, A: np.ndarray, theta: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The packed ``(K, 2 d + 2, d)`` state of ``K`` single-target ridge models."""
    return np.ascontiguousarray(np.concatenate([A_inv, A, theta[:, None], b[:, None]], axis=1))


class NumbaLinear:
    """Disjoint LinUCB or LinTS on the kernels above (the state and arithmetic of scarce's
    ``LinUCB`` / ``LinTS`` with ``RidgeRegression``, ``forgetting=1``, no window).

    ``checks``: validate the context, action and reward as the library's fast path does
    (False: the kernels alone); ``api``: also return what the library's ``decide`` returns,
    a :class:`~scarce.core.decision.Decision` with fresh arrays (actions, scores and, for
    LinTS, the lazy choice probability over the kept means and deviations). LinTS draws its normals with ``rng.standard_normal(K)``
    from ``np.random.default_rng(seed)`` outside the kernel (the library's stream; passing
    the Generator into a kernel costs numba about 7 us of unboxing per call).
    """

    def __init__(
        self,
        algorithm: str,
        d: int,
        K: int,
        width: float,
        lam: float,
        seed: int,
        checks: bool,
        api: bool = False,
    ) -> None:
        self.algorithm, self.d, self.K, self.width, self.checks = algorithm, d, K, width, checks
        self.api = api
        self.out = np.zeros((3, K))
        eye = np.broadcast_to(np.eye(d), (K, d, d))
        zeros = np.zeros((K, d))
        self.S = pack_ridge(eye / lam, eye * lam, zeros, zeros)
        self.counts = np.zeros((2, K))
        self.Z = np.zeros((K, d))
        self.rng = np.random.default_rng(seed)
        self.resync = 2000.0  # RidgeRegression's resync_every
        self._last: np.ndarray | None = None

    def decide(self, X: np.ndarray) -> Any:
        if self.checks:
            check_case(X, self.d)
        self._last = X
        out = np.empty((3, self.K)) if self.api else self.out
        if self.algorithm == "LinUCB":
            a = ucb_decide(self.S, X, self.Z, self.width, out)
        else:
            z = self.rng.standard_normal(self.K)
            a = ts_decide(self.S, X, self.Z, self.width, z, out)
        if not self.api:
            return a
        actions = np.array([a])
        if self.algorithm == "LinUCB":
            return Decision(actions, None, out[2:], probability_fn=_certain)
        mean, std = out[:1], out[1:2]

        def probabilities() -> np.ndarray:
            return gaussian_argmax_probability_of(mean, std, actions)

        return Decision(actions, None, out[2:], probability_fn=probabilities)

    def update(self, X: np.ndarray, action: int, reward: float) -> None:
        if self.checks:
            check_case(X, self.d)
            action, reward = check_feedback(action, reward, self.K)
        kept = X is self._last
        self._last = None
        ridge_update(self.S, self.counts, X, action, reward, self.Z, kept, self.resync)

    @property
    def A_inv(self) -> np.ndarray:
        return self.S[:, : self.d]

    @property
    def theta(self) -> np.ndarray:
        return self.S[:, 2 * self.d]


class NumbaKnapsack:
    """``KnapsackBandit`` / ``Deferral`` rounds on the kernels above, from the state of a
    library policy past its warm-up (priced, identity links, paired designs). ``checks`` as in :class:`NumbaLinear`, plus the
    costs' shape and range and the deferral model's reward (``OneRoundFeedback``)."""

    def __init__(self, policy: object, checks: bool, full: bool) -> None:
        pol: object = policy
        models = pol.models_  # type: ignore[attr-defined]
        if not models.paired_ridge or not models.paired() or pol.Z_ is None:  # type: ignore[attr-defined]
            raise ValueError("the probe covers priced rounds of paired identity-link ridge models")
        rmodel = models.reward_groups[0][2].model
        cmodel = models.cost_groups[0][2].model
        rs, cs = rmodel.get_state(), cmodel.get_state()
        self.K, self.d = rmodel.n_models, rmodel.n_features
        self.m = m = pol.n_resources  # type: ignore[attr-defined]
        self.free = int(pol.free_action)  # type: ignore[attr-defined]
        self.full, self.checks = full, checks
        self.RS = pack_ridge(rs["A_inv"], rs["A"], rs["theta"], rs["b"])
        self.counts = np.stack([rs["n_obs"], rs["since_resync"].astype(float)])
        self.CT = np.ascontiguousarray(np.stack([cs["theta"], cs["b"]], axis=1))
        self.CS = np.ascontiguousarray(np.stack([cs["A_inv"], cs["A"]], axis=1))
        led = pol.ledger_  # type: ignore[attr-defined]
        self.led = np.stack([led.budget, led.spent, led.reserved]).astype(float)
        self.bound = np.ascontiguousarray(led.cost_bound, dtype=float)
        self.tol = (self.bound + 1e-12).tolist()
        prices = pol.prices_  # type: ignore[attr-defined]
        T = pol.horizon  # type: ignore[attr-defined]
        rate = float((led.budget / T).min())
        eta_scale = prices.eta * prices.scale
        eta_rate = prices.eta * rate
        self.dual = np.zeros((4, m + 1))
        self.dual[0] = prices.weights
        self.dual[1, :m] = prices.scale
        self.dual[2, :m] = eta_scale
        self.dual[3, :m] = np.exp(np.zeros(m) * eta_scale - eta_rate)
        conf = pol.confidence_  # type: ignore[attr-defined]
        self.table = conf.radius(np.arange(2 * T + 2, dtype=np.float64), self.d, "identity")
        self.beta = np.zeros((2, self.K))
        self.beta[0] = conf.radius(rs["n_obs"], self.d, "identity")
        self.rank = np.full(self.K, -1, dtype=np.int64)
        self.rank[models.costly] = np.arange(models.costly.size)
        self.beta[1, models.costly] = conf.radius(cs["n_obs"], self.d, "identity")
        lo, hi = conf.reward_range
        self.par = np.array([lo, hi, pol.Z_, eta_rate, 1e-9, float(rmodel.resync_every)])  # type: ignore[attr-defined]
        self.Z = np.zeros((self.K, self.d))
        self.c_all = np.zeros((self.K, m))
        self.c_used = np.zeros(m)
        self.scores = np.zeros(self.K)
        self._lo_hi = (float(lo), float(hi))

    def decide(self, X: np.ndarray) -> int:
        if self.checks:
            check_case(X, self.d)
        return knapsack_decide(
            self.RS, self.CT, X, self.led, self.dual, self.beta, self.bound, self.rank,
            self.Z, self.c_all, self.c_used, self.par, self.free, self.scores,
        )  # fmt: skip

    def update(
        self,
        X: np.ndarray,
        action: int,
        reward: float,
        costs: np.ndarray,
        mr: float,
        c_used: np.ndarray | None = None,
    ) -> None:
        """``costs`` ``(1, m)`` float64 (zeros for the free action); ``mr`` the deferral
        model's reward (used with ``full``); ``c_used`` the decision's pessimistic
        consumption for the dual step (None: the one kept by the last ``decide``)."""
        if self.checks:
            check_case(X, self.d)
            action, reward = check_feedback(action, reward, self.K)
            if type(costs) is not np.ndarray or costs.dtype != _F64 or costs.shape != (1, self.m):
                raise ValueError(f"costs must be a float64 array of shape (1, {self.m})")
            values = costs[0].tolist()
            if action == self.free:
                if any(v != 0.0 for v in values):
                    raise ValueError("the free action's costs must be 0")
            else:
                for v, t in zip(values, self.tol[action], strict=True):
                    if not 0.0 <= v <= t:
                        raise ValueError("costs must be finite, >= 0 and at most cost_bound")
            if self.full:
                mr = float(mr)
                lo, hi = self._lo_hi
                if not lo <= mr <= hi:
                    raise ValueError(f"model_rewards must be in [{lo}, {hi}]")
        knapsack_update(
            self.RS, self.counts, self.CT, self.CS, X, action, reward, costs[0],
            self.c_used if c_used is None else c_used, mr, self.full, self.led, self.dual, self.beta, self.bound, self.rank, self.Z,
            self.par, self.table, self.free,
        )  # fmt: skip


class NumbaKnapsackAPI(NumbaKnapsack):
    """:class:`NumbaKnapsack` with the library's calls: ``decide`` returns a
    :class:`~scarce.core.decision.Decision` (fresh actions, probabilities, scores and the
    ``info`` the library gives: ``cost_lcb`` ``(1, m)``, ``priced`` ``(1,)``), ``update``
    takes ``(X, actions, rewards, costs=..., info=..., model_rewards=...)`` and uses the
    info's ``cost_lcb`` for the dual step, as ``OneRoundFeedback`` does (always checked)."""

    def __init__(self, policy: object, full: bool) -> None:
        super().__init__(policy, True, full)

    def decide(self, X: np.ndarray) -> Any:  # type: ignore[override]
        check_case(X, self.d)
        scores = np.empty((1, self.K))
        a = knapsack_decide(
            self.RS, self.CT, X, self.led, self.dual, self.beta, self.bound, self.rank, self.Z,
            self.c_all, self.c_used, self.par, self.free, scores[0],
        )  # fmt: skip
        info = {"cost_lcb": self.c_used[None].copy(), "priced": np.ones(1, dtype=bool)}
        return Decision(actions=np.array([a]), probabilities=np.ones(1), scores=scores, info=info)

    def update(  # type: ignore[override]
        self,
        X: np.ndarray,
        actions: Any,
        rewards: Any,
        *,
        costs: np.ndarray,
        info: dict[str, np.ndarray],
        model_rewards: Any = None,
    ) -> None:
        if type(info) is not dict or len(info) != 2:
            raise ValueError("info must be the decision's info")
        used, priced = info["cost_lcb"], info["priced"]
        if used.shape != (1, self.m) or used.dtype != _F64 or priced.shape != (1,):
            raise ValueError("info must be the decision's info")
        if not priced[0]:
            raise NotImplementedError("the probe covers priced decisions")
        mr = 0.0 if model_rewards is None else model_rewards[0]
        NumbaKnapsack.update(self, X, actions, rewards, costs, mr, used[0])
