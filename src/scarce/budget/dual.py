"""The prices of the resources (spec A.4): Agrawal and Devanur's online dual learner and the
trade-off constant ``Z``.

A budgeted learner scores action ``a`` by ``UCB_r(a) - Z <theta_t, LCB_c(a)>``: ``Z theta_t``
is the price of one unit of each resource. :class:`DualPrices` keeps ``theta_t``, a point of
the simplex over the ``m`` resources and a slack coordinate, and moves it by multiplicative
weights (Hedge) on the gains ``c_t - B/T``, so a resource's price rises while it is spent
faster than its budget allows and falls while it is spent slower. :func:`estimate_z` sets
``Z`` from a warm-up sample.

Several resources are measured in one unit: consumption of resource ``j`` is multiplied by
``scale_j = rho / rho_j`` with ``rho_j = B_j / T`` and ``rho = min_j rho_j``, so one ``Z``
prices all of them and every budget reads as ``rho`` per round.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scarce.budget.opt import static_opt_deferral, static_opt_lp
from scarce.models.compiled import check_backend, kernels


def default_eta(n_resources: int, horizon: int, budget_units: float | None = None) -> float:
    """Hedge step: ``sqrt(log(m + 1) / T)`` (spec A.4: ``m`` resources and the slack) times
    ``sqrt(T / B')``, with ``B'`` the budget in units of the largest consumption of one round
    (None: no scaling).

    The scaling is Hedge's variance-adaptive step ``sqrt(log(m + 1) / V)``: the gains
    ``c_t - B/T`` have total variance about ``B'`` (deferring at the budget's rate), not
    ``T``. With ``sqrt(log(m + 1) / T)`` alone, a price that starts too high can fall by at
    most a factor ``exp(eta B) = exp(B sqrt(log 2 / T))`` over the whole horizon, which is
    less than 2 when ``B < 0.8 sqrt(T)`` (e.g. 40 of 2,000)."""
    eta = math.sqrt(math.log(n_resources + 1) / horizon)
    if budget_units is not None and budget_units > 0:
        eta *= math.sqrt(horizon / budget_units)
    return eta


def theory_gamma(n_features: int, horizon: int) -> float:
    """The estimate's budget slack ``gamma = sqrt(d) T^(3/4)`` of spec A.4 (the theory's
    guarantee needs ``B >= gamma``)."""
    return math.sqrt(n_features) * horizon**0.75


class DualPrices:
    """Multiplicative weights over ``m`` resources and a slack coordinate.

    Parameters
    ----------
    n_resources:
        ``m``.
    eta:
        the step.
    scale:
        ``(m,)`` factors bringing each resource's consumption to the common unit.
    rate:
        ``rho``, the per-round budget in that unit.
    backend:
        ``"numpy"`` (default) or ``"numba"``: a step of one row is the compiled
        :func:`~scarce.models.numba_kernels.hedge_step` (the same operations; its
        exponential is LLVM's, which may round the last bit differently from NumPy's).

    Attributes
    ----------
    weights:
        ``(m + 1,)`` the point of the simplex (resources, then slack); starts uniform.
    """

    def __init__(
        self,
        n_resources: int,
        eta: float,
        scale: np.ndarray,
        rate: float,
        backend: str = "numpy",
    ) -> None:
        self._hedge = kernels().hedge_step if check_backend(backend) == "numba" else None
        self.eta = float(eta)
        self.weights = np.full(n_resources + 1, 1.0 / (n_resources + 1))
        self.scale = np.asarray(scale, dtype=np.float64)
        self._prices: tuple[float, np.ndarray] | None = None
        # eta * gain = consumption * (eta * scale) - eta * rate, folded once
        self._eta_scale = self.eta * self.scale
        self._eta_rate = self.eta * float(rate)
        self._idle_factors = np.exp(np.zeros(n_resources) * self._eta_scale - self._eta_rate)
        # step_one's constants (one resource)
        self._eta_scale_one = float(self._eta_scale[0])
        self._idle_one = float(self._idle_factors[0])
        self._scale_one = float(self.scale[0])

    def prices(self, Z: float) -> np.ndarray:
        """``(m,)`` the price of one unit of each resource (in its own unit): ``Z theta_j scale_j``
        (kept until the next step; do not modify)."""
        if self._prices is None or self._prices[0] != Z:
            self._prices = (Z, Z * self.weights[:-1] * self.scale)
        return self._prices[1]

    def price_one(self, Z: float) -> float:
        """The price of the one resource (``m = 1``): :meth:`prices`' ``Z theta scale`` on
        Python floats (the same two products)."""
        return (Z * float(self.weights[0])) * self._scale_one

    def step(self, consumption: np.ndarray) -> None:
        """One Hedge step per row of ``consumption`` ``(n, m)`` (or one ``(m,)`` row), in
        order: ``theta_j <- theta_j exp(eta (c_j scale_j - rho))``, slack gain 0, normalised."""
        self._prices = None
        w = self.weights
        if consumption.ndim == 1:
            if self._hedge is not None:
                self._hedge(w, consumption, self._eta_scale, self._eta_rate, self._idle_factors)
                return
            if np.logical_or.reduce(consumption):
                factors = np.exp(consumption * self._eta_scale - self._eta_rate)
            else:  # nothing consumed (the free action): the same factors every time
                factors = self._idle_factors
            w[:-1] *= factors
            w /= np.add.reduce(w)  # w.sum() without its Python wrapper
            return
        factors = np.exp(consumption * self._eta_scale - self._eta_rate)
        for g in factors:
            w[:-1] *= g
            w /= w.sum()

    def step_one(self, consumption: float) -> None:
        """:meth:`step` of one row of one resource (``m = 1``), on Python floats: the same
        IEEE operations (the exponential is NumPy's; the normaliser of two weights is their
        sum, as ``np.add.reduce`` adds them)."""
        if self._hedge is not None:
            self.step(np.array([consumption]))
            return
        theta, slack = self.weights.tolist()
        if consumption != 0.0:  # (NaN too, as logical_or.reduce counts it)
            theta *= float(np.exp(consumption * self._eta_scale_one - self._eta_rate))
        else:
            theta *= self._idle_one
        total = theta + slack
        w = self.weights
        w[0] = theta / total
        w[1] = slack / total
        self._prices = None

    def get_state(self) -> dict[str, Any]:
        return {"weights": self.weights.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.weights = np.array(state["weights"], dtype=np.float64).reshape(self.weights.shape)
        self._prices = None


def warmup_probabilities(ok: np.ndarray, free_action: int, paced: float | None) -> np.ndarray:
    """``(n, K)`` the warm-up's distribution over the allowed actions ``ok`` ``(n, K)`` (bool):
    uniform (``paced=None``), or the costly actions together with probability ``paced``
    (``min((K - 1) / K, rho / c_max)``, so that the warm-up spends no faster than the budget's
    rate; ``dual.paced_warmup``), shared equally, and the free action the rest."""
    costly = ok.copy()
    costly[:, free_action] = False
    n_costly = costly.sum(axis=1, keepdims=True)
    if paced is None:
        return ok / ok.sum(axis=1, keepdims=True)
    q = np.where(ok[:, [free_action]], paced, 1.0) * (n_costly > 0)
    out = costly * (q / np.maximum(n_costly, 1))
    out[:, free_action] = np.where(ok[:, free_action], 1.0 - q[:, 0], 0.0)
    return out


def estimate_z(
    rewards: np.ndarray,
    costs: np.ndarray,
    *,
    free_action: int,
    fallback: np.ndarray | None = None,
    budget: float,
    horizon: int,
    gamma: float,
    c_z: float,
) -> float:
    """``Z`` from the estimates on a warm-up sample (spec A.4).

    Parameters
    ----------
    rewards:
        ``(n, K)`` (optimistic) reward estimates on ``n`` warm-up contexts.
    costs:
        ``(n, K, m)`` (pessimistic) consumption estimates, in the common unit.
    free_action:
        the action that consumes nothing.
    fallback:
        ``(n,)`` the free action's reward to measure gains from (its pessimistic estimate,
        so that the gains are optimistic); default ``rewards[:, free_action]``.
    budget:
        ``B``, in the common unit (``rho T``).
    horizon:
        ``T``.
    gamma:
        the budget slack.
    c_z:
        the constant.

    Returns
    -------
    float
        ``c_z (G_hat + 2 gamma) / B``.

    Notes
    -----
    ``G_hat`` is the value of the empirical static
    problem on the sample, scaled to ``T``, with budget ``B + 2 gamma``, measured as the
    *gain over the free action*: every action's reward minus the free action's, so that the
    free action is A&D's no-op with reward 0 (``OPT_hat - OPT_fallback_hat``). Subtracting
    the same number from every action of a case leaves the decision rule unchanged; it only
    keeps ``Z`` at the scale of the price a unit of budget is worth, ``OPT_gain / B``, which
    is at least the optimal dual price ``lambda*`` (LP duality: ``OPT_gain = lambda* B +
    T E[(g - lambda* c)^+]``). With ``OPT / B``, ``Z`` would also count the reward the free
    action earns anyway. 0 without a sample.
    """
    n = rewards.shape[0]
    if n == 0:
        return 0.0
    rate = (budget + 2.0 * gamma) / horizon
    K, m = rewards.shape[1], costs.shape[2]
    base = rewards[:, free_action] if fallback is None else np.asarray(fallback)
    gains = rewards - base[:, None]
    gains[:, free_action] = 0.0  # the no-op
    if K == 2 and m == 1:
        a = 1 - free_action
        value = static_opt_deferral(gains[:, a], gains[:, free_action], costs[:, a, 0], rate).value
    else:
        value, _ = static_opt_lp(gains, costs, rate)
    return float(c_z * (horizon * value + 2.0 * gamma) / budget)
