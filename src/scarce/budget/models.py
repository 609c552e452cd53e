"""The reward and consumption models of a budgeted learner and their confidence bounds.

:class:`OutcomeModels` holds, for every action, a model of its reward and, for every costly
action, a model of its consumption of each resource, each with its own link (spec A.1: "a
separate link per estimated quantity"). Models of one link and one kind live in one bank
(:mod:`scarce.budget.estimators`):

* rewards: one bank per link over the actions with that link (model ``i`` = ``actions[i]``);
* consumption: the identity-link resources of a costly action share one multi-target ridge
  (they are observed together, on the rounds the action is played: one design, one width);
  logistic-link resources get one model per (costly action, resource).

:meth:`OutcomeModels.bounds` gives the optimistic rewards and the pessimistic consumptions
(spec A.3), each model with the radius of its own observation count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from scarce.budget.estimators import LINKS, LinearBank
from scarce.budget.specs import ConfidenceSpec
from scarce.models.linear import row_dots
from scarce.models.ridge import RidgeRegression

#: ``make_bank(n_models, link, seeds, n_targets) -> bank``
BankFactory = Callable[[int, str, np.ndarray, "int | None"], Any]


class OutcomeModels:
    """Rewards of ``K`` actions and consumptions of ``m`` resources by the costly actions.

    Parameters
    ----------
    n_actions, n_resources:
        ``K`` and ``m``.
    free_action:
        the action that consumes nothing (no consumption model).
    reward_links:
        ``K`` links, one per action.
    cost_links:
        ``m`` links, one per resource.
    cost_bound:
        ``(K, m)`` largest consumption (pessimistic bounds are clipped to ``[0, cost_bound]``).
    confidence:
        radius parameters and ``reward_range`` (optimistic rewards are clipped to it).
    make_bank:
        ``make_bank(n_models, link, seeds, n_targets)`` builds one bank; ``n_targets`` is the
        number of targets sharing each model's design (None: one).
    seeds:
        ``(K + K m,)`` ints, one per potential model (used by banks that draw, e.g. networks).
    multi_target:
        whether the bank can hold several targets per design (False: one model per target).
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_resources: int,
        free_action: int,
        reward_links: list[str],
        cost_links: list[str],
        cost_bound: np.ndarray,
        confidence: ConfidenceSpec,
        make_bank: BankFactory,
        seeds: np.ndarray,
        multi_target: bool = True,
    ) -> None:
        K, m = n_actions, n_resources
        self.n_actions, self.n_resources = K, m
        self.free_action = free_action
        self.cost_bound = cost_bound
        self.confidence = confidence
        self.reward_range = tuple(float(v) for v in confidence.reward_range)
        self.costly = np.array([a for a in range(K) if a != free_action], dtype=np.int64)
        self.costly_rank = np.full(K, -1, dtype=np.int64)
        self.costly_rank[self.costly] = np.arange(self.costly.size)
        self._ranks = self.costly_rank.tolist()
        nc = self.costly.size
        # (link, actions, bank, action -> index in the bank or -1)
        self.reward_groups: list[tuple[str, np.ndarray, Any, np.ndarray]] = []
        for link in LINKS:
            acts = np.array([a for a in range(K) if reward_links[a] == link], dtype=np.int64)
            if acts.size:
                local = np.full(K, -1, dtype=np.int64)
                local[acts] = np.arange(acts.size)
                bank = make_bank(acts.size, link, seeds[acts], None)
                self.reward_groups.append((link, acts, bank, local))
        # (link, resources, bank, multi): multi: one model per costly action with the
        # resources as targets; else nc * |resources| one-target models, action-major
        self.cost_groups: list[tuple[str, np.ndarray, Any, bool]] = []
        for link in LINKS:
            res = np.array([j for j in range(m) if cost_links[j] == link], dtype=np.int64)
            if not res.size:
                continue
            multi = link == "identity" and multi_target
            if multi:
                bank = make_bank(nc, link, seeds[K + np.arange(nc)], res.size)
            else:
                bank = make_bank(nc * res.size, link, seeds[K + np.arange(nc * res.size)], None)
            self.cost_groups.append((link, res, bank, multi))
        self._one_reward_bank = len(self.reward_groups) == 1
        self._betas: dict[int, np.ndarray] = {}
        # radius of one model by its observation count, per (link, dim): radius() on
        # 0, 1, 2, ... (elementwise, so each entry is what radius() gives for that count)
        self._radius_tables: dict[tuple[str, int], np.ndarray] = {}
        # the common configuration (identity links, ridge banks: one for the rewards, one
        # multi-target bank for all resources) has a single-case path in bounds()
        self._ridge_pair = None
        if (
            len(self.reward_groups) == 1
            and len(self.cost_groups) == 1
            and self.reward_groups[0][0] == "identity"
            and self.cost_groups[0][3]
            and self.cost_groups[0][1].size == m
            and all(
                type(g[2]) is LinearBank and type(g[2].model) is RidgeRegression
                for g in (self.reward_groups[0], self.cost_groups[0])
            )
        ):
            self._ridge_pair = (self.reward_groups[0][2], self.cost_groups[0][2])
        # whether each costly action's reward model and consumption model have seen the same
        # rows (bitwise the same design, A^{-1} included): then one width serves both and one
        # Sherman-Morrison step updates both. None: not known (checked on next use); a
        # learning step that may part the designs makes True unknown, and False stays False
        # (designs fed different rows do not meet again) until set_state
        self._paired: bool | None = None
        lo = int(self.costly[0]) if nc else 0
        contiguous = nc and np.array_equal(self.costly, np.arange(lo, lo + nc))
        self._costly_index: Any = slice(lo, lo + nc) if contiguous else self.costly
        self._kept_one: tuple[np.ndarray, ...] | None = None  # priced_one's buffers
        self._bound_c = np.ascontiguousarray(cost_bound, dtype=np.float64)  # (K, m)
        self._bound_list = cost_bound[:, 0].tolist()  # (one resource: priced_one_scalar)

    @property
    def paired_ridge(self) -> bool:
        """Whether rewards and consumptions are the two ridge banks of the common
        configuration (identity links, one multi-target bank for all resources)."""
        return self._ridge_pair is not None

    # ------------------------------------------------------------------ bounds
    def _beta(self, bank: Any, link: str) -> np.ndarray:
        """``(M,)`` radius of each model of ``bank`` from its own observation count (kept
        until the bank learns)."""
        beta = self._betas.get(id(bank))
        if beta is None:
            beta = self.confidence.radius(bank.n_obs, bank.dim, link)
            self._betas[id(bank)] = beta
        return beta

    def _radius_at(self, bank: Any, link: str, count: float) -> Any:
        """The radius of one model of ``bank`` with ``count`` observations (what
        :meth:`ConfidenceSpec.radius` gives for it), or None for a count that is not a
        whole number."""
        t = int(count)
        if t != count or t < 0:
            return None
        key = (link, bank.dim)
        table = self._radius_tables.get(key)
        if table is None or t >= table.shape[0]:
            size = max(1024, 2 * t + 2)
            table = self.confidence.radius(np.arange(size, dtype=np.float64), bank.dim, link)
            self._radius_tables[key] = table
        return table[t]

    def _learned_one(self, bank: Any, link: str, model: int) -> None:
        """Model ``model`` of ``bank`` learned one row: update its kept radius."""
        beta = self._betas.get(id(bank))
        if beta is None:
            return
        value = self._radius_at(bank, link, bank.n_obs[model])
        if value is None:
            del self._betas[id(bank)]
        else:
            beta[model] = value

    def paired(self) -> bool:
        """Whether the reward and consumption models of every costly action have bitwise the
        same design (see ``_paired``); checked from the models' state when not known."""
        if self._paired is None:
            self._paired = self._check_paired()
        return self._paired

    def _check_paired(self) -> bool:
        if self._ridge_pair is None:
            return False
        rstate = self._ridge_pair[0].get_state()
        cstate = self._ridge_pair[1].get_state()
        costly = self.costly
        return all(
            np.array_equal(rstate[key][costly], cstate[key])
            for key in ("A", "A_inv", "n_obs", "since_resync")
        ) and np.array_equal(
            np.broadcast_to(self._ridge_pair[0].model.resync_every, (self.n_actions,))[costly],
            np.broadcast_to(self._ridge_pair[1].model.resync_every, (costly.size,)),
        )

    def _bounds_one(self, X: np.ndarray, costs: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`bounds` of one case with the two ridge banks: the same NumPy calls as the
        general path (``LinearBank.bounds`` and ``models.linear``), fewer Python steps. With
        paired designs the products ``A^{-1} x`` of the reward models serve the consumption
        models too."""
        rbank, cbank = self._ridge_pair  # type: ignore[misc]
        x = X[0]
        model = rbank.model
        Ax = model.A_inv @ x  # (K, d): one GEMV per action
        var = row_dots(Ax, x)[None, :]
        r = row_dots(model.theta, x)[None, :]
        np.maximum(var, 0.0, out=var)
        width = np.sqrt(var)
        width *= self._beta(rbank, "identity")
        r = r + width
        lo, hi = self.reward_range
        np.minimum(r, hi, out=r)
        np.maximum(r, lo, out=r)
        if not costs:
            return r, None
        model = cbank.model
        # with paired designs the costly actions' rows of Ax are the consumption models' own
        # (the GEMVs of the same matrices)
        Ac = Ax[self._costly_index] if self._paired or self.paired() else model.A_inv @ x
        var = np.maximum(row_dots(Ac, x)[None, :], 0.0)
        mean = np.matmul(X, model.theta).transpose(1, 0, 2)
        width = np.sqrt(var)
        width *= self._beta(cbank, "identity")
        c = np.zeros((1, self.n_actions, self.n_resources))
        c[:, self._costly_index, :] = mean - width[..., None]
        np.maximum(c, 0.0, out=c)
        np.minimum(c, self.cost_bound, out=c)
        return r, c

    def priced_one(self, X: np.ndarray, prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Lagrangian scores ``r - c @ prices`` ``(1, K)`` of one case ``X`` ``(1, d)``
        with the two ridge banks (:attr:`paired_ridge`), and the pessimistic consumptions
        ``c`` ``(1, K, m)`` they used: :meth:`_bounds_one`'s arithmetic (the same operations
        on the same operands) into kept buffers. ``c`` is overwritten by the next call (copy
        what is kept)."""
        if self.n_resources == 1:
            return self.priced_one_scalar(X, float(prices[0]))
        rbank, cbank = self._ridge_pair  # type: ignore[misc]
        kept = self._kept_one
        if kept is None:
            kept = self._kept_one = self._make_kept_one()
        zeros, zeros_c, lo, hi, c, zeros_3, bound = kept
        x = X[0]
        model = rbank.model
        Ax = model.A_inv @ x  # (K, d): one GEMV per action
        var = row_dots(Ax, x)
        r = row_dots(model.theta, x)[None, :]
        # (the constants as kept arrays of the operands' shapes: the same values, without
        # a scalar's conversion and broadcasting)
        np.maximum(var, zeros, out=var)
        np.sqrt(var, out=var)
        var *= self._beta(rbank, "identity")
        row = r[0]
        row += var
        np.minimum(row, hi, out=row)
        np.maximum(row, lo, out=row)
        model = cbank.model
        Ac = Ax[self._costly_index] if self._paired or self.paired() else model.A_inv @ x
        var = row_dots(Ac, x)
        np.maximum(var, zeros_c, out=var)
        np.sqrt(var, out=var)
        var *= self._beta(cbank, "identity")
        # (nc, m): the one-row products of np.matmul(X, theta) (the same GEMV per model)
        low = x @ model.theta
        if type(self._costly_index) is slice:
            np.subtract(low, var[:, None], out=c[0, self._costly_index])
        else:
            c[0, self._costly_index] = low - var[:, None]
        np.maximum(c, zeros_3, out=c)
        np.minimum(c, bound, out=c)
        scores = c @ prices
        np.subtract(r, scores, out=scores)
        return scores, c

    @property
    def compiled(self) -> bool:
        """Whether the ridge models use the compiled backend (``backend="numba"``; the
        banks of :attr:`paired_ridge`)."""
        pair = self._ridge_pair
        return pair is not None and pair[0].model.backend == "numba"

    def priced_operands(self) -> tuple[Any, ...] | None:
        """The models' part of the arguments of the compiled priced decision
        (:func:`~scarce.models.numba_kernels.priced_choice`): ``(A_inv, theta_r, theta_c,
        beta_r, beta_c, rank, bound, lo, hi)``; None unless :attr:`compiled` and the
        designs are paired (then :meth:`priced_one` applies)."""
        if not self.compiled or not (self._paired or self.paired()):
            return None
        rbank, cbank = self._ridge_pair  # type: ignore[misc]
        lo, hi = self.reward_range
        return (
            rbank.model.A_inv,
            rbank.model.theta,
            cbank.model.theta,
            self._beta(rbank, "identity"),
            self._beta(cbank, "identity"),
            self.costly_rank,
            self._bound_c,
            lo,
            hi,
        )

    def _make_kept_one(self) -> tuple[np.ndarray, ...]:
        """:meth:`priced_one`'s constants and its consumption buffer (the free action's row
        stays 0)."""
        K, m, nc = self.n_actions, self.n_resources, self.costly.size
        lo, hi = self.reward_range
        return (
            np.zeros(K),
            np.zeros(nc),
            np.full(K, lo),
            np.full(K, hi),
            np.zeros((1, K, m)),
            np.zeros((1, K, m)),
            np.ascontiguousarray(self.cost_bound[None, :, :], dtype=np.float64),
        )

    def priced_one_scalar(self, X: np.ndarray, price: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`priced_one` with one resource (``price`` its price, a float): the products in NumPy,
        the rest (clipping, widths, ``r - c price``) on Python floats, which round as
        NumPy's elementwise operations do (IEEE ``+ - * sqrt``, exact ``min``/``max``; a
        one-term ``c @ prices`` is the product)."""
        rbank, cbank = self._ridge_pair  # type: ignore[misc]
        x = X[0]
        model = rbank.model
        Ax = model.A_inv @ x
        var = row_dots(Ax, x).tolist()
        mean = row_dots(model.theta, x).tolist()
        beta = self._beta(rbank, "identity").tolist()
        lo, hi = self.reward_range
        model = cbank.model
        Ac = Ax[self._costly_index] if self._paired or self.paired() else model.A_inv @ x
        var_c = row_dots(Ac, x).tolist()
        mean_c = np.matmul(X, model.theta).ravel().tolist()  # (nc,) of (nc, 1, 1)
        beta_c = self._beta(cbank, "identity").tolist()
        bound, ranks, sqrt = self._bound_list, self._ranks, math.sqrt
        scores, c = [], []
        for k in range(self.n_actions):
            v = var[k]
            w = sqrt(v if v > 0.0 else 0.0) * beta[k]
            r = min(mean[k] + w, hi)
            r = max(r, lo)
            j = ranks[k]
            if j < 0:  # the free action: 0
                low = 0.0
            else:
                v = var_c[j]
                low = mean_c[j] - sqrt(v if v > 0.0 else 0.0) * beta_c[j]
                low = min(low if low > 0.0 else 0.0, bound[k])
            c.append(low)
            scores.append(r - low * price)
        return np.array([scores]), np.array(c).reshape(1, -1, 1)

    def bounds(self, X: np.ndarray, costs: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Optimistic rewards ``(n, K)`` clipped to ``reward_range`` and, with ``costs``,
        pessimistic consumptions ``(n, K, m)`` clipped to ``[0, cost_bound]`` (0 for the free
        action); each model's radius from its own observation count."""
        n, K, m = X.shape[0], self.n_actions, self.n_resources
        if n == 1 and self._ridge_pair is not None:
            return self._bounds_one(X, costs)
        if self._one_reward_bank:
            link, _, bank, _ = self.reward_groups[0]
            r = bank.bounds(X, self._beta(bank, link), upper=True)
        else:
            r = np.empty((n, K))
            for link, acts, bank, _ in self.reward_groups:
                r[:, acts] = bank.bounds(X, self._beta(bank, link), upper=True)
        lo, hi = self.reward_range
        np.minimum(r, hi, out=r)
        np.maximum(r, lo, out=r)
        if not costs:
            return r, None
        costly = self.costly
        c = np.zeros((n, K, m))
        for link, res, bank, multi in self.cost_groups:
            low = bank.bounds(X, self._beta(bank, link), upper=False)
            if not multi:
                low = low.reshape(n, costly.size, res.size)
            if res.size == m:
                c[:, costly, :] = low
            else:
                c[:, costly[:, None], res[None, :]] = low
        np.maximum(c, 0.0, out=c)
        np.minimum(c, self.cost_bound, out=c)
        return r, c

    def reward_lcb(self, X: np.ndarray, action: int) -> np.ndarray:
        """``(n,)`` pessimistic reward of ``action``, clipped to ``reward_range``."""
        for link, _, bank, local in self.reward_groups:
            if local[action] >= 0:
                low = bank.bounds(X, self._beta(bank, link), upper=False)[:, local[action]]
                return np.clip(low, *self.reward_range)
        raise ValueError(f"action must be in [0, {self.n_actions}); got {action!r}")

    # ------------------------------------------------------------------ learning
    def learn_rewards(self, X: np.ndarray, y: np.ndarray, actions: np.ndarray) -> None:
        """Add reward observations: row ``i`` of ``X`` ``(n, d)`` with reward ``y[i]`` of
        action ``actions[i]``."""
        if X.shape[0] == 1 and self._one_reward_bank:
            link, _, bank, _ = self.reward_groups[0]  # every action, model k = action k
            bank.partial_fit(X, y, actions)
            self._learned_one(bank, link, int(actions[0]))
            if actions[0] != self.free_action and self._paired:
                self._paired = None
            return
        if self._paired:
            self._paired = None
        for _, _, bank, _ in self.reward_groups:
            self._betas.pop(id(bank), None)  # recomputed from the new counts on next use
        for _, acts, bank, local in self.reward_groups:
            if acts.size == self.n_actions:
                bank.partial_fit(X, y, actions)
                continue
            ids = local[actions]
            keep = ids >= 0
            if keep.all():
                bank.partial_fit(X, y, ids)
            elif keep.any():
                bank.partial_fit(X[keep], y[keep], ids[keep])

    def learn_costs(self, X: np.ndarray, C: np.ndarray, actions: np.ndarray) -> None:
        """Add consumption observations: ``C[i]`` ``(m,)`` consumed by the costly action
        ``actions[i]`` on context ``X[i]``."""
        if not X.shape[0]:
            return
        rank = self.costly_rank[actions]
        if self._paired:
            self._paired = None
        if X.shape[0] == 1 and self._ridge_pair is not None:  # one multi-target bank
            bank = self._ridge_pair[1]
            bank.partial_fit(X, C, rank)
            self._learned_one(bank, "identity", int(rank[0]))
            return
        for _, _, bank, _ in self.cost_groups:
            self._betas.pop(id(bank), None)
        for _, res, bank, multi in self.cost_groups:
            q = res.size
            targets = C if q == self.n_resources else C[:, res]
            if multi:
                bank.partial_fit(X, targets, rank)
            else:
                feats = np.repeat(X, q, axis=0)
                ids = (rank[:, None] * q + np.arange(q)[None, :]).reshape(-1)
                bank.partial_fit(feats, targets.reshape(-1), ids)

    def learn_one_paired(self, x: np.ndarray, reward: float, cost: np.ndarray, action: int) -> bool:
        """One row ``x`` ``(d,)`` with the reward ``reward`` and consumption ``cost`` ``(m,)``
        of the costly action ``action``, learned by both of its models in one shared step
        (:meth:`RidgeRegression.add_one_paired`: bitwise :meth:`learn_rewards` then
        :meth:`learn_costs`). False (nothing learned) unless the designs are paired."""
        if not (self._paired or self.paired()):
            return False
        rbank, cbank = self._ridge_pair  # type: ignore[misc]
        rank = self._ranks[action]
        rbank.model.add_one_paired(action, x, reward, cbank.model, rank, cost)
        # _learned_one of both: paired models have the same count, hence the same radius
        value = self._radius_at(rbank, "identity", rbank.n_obs[action])
        for bank, model in ((rbank, action), (cbank, rank)):
            beta = self._betas.get(id(bank))
            if beta is None:
                continue
            if value is None:
                del self._betas[id(bank)]
            else:
                beta[model] = value
        return True

    def reward_counts(self) -> np.ndarray:
        """``(K,)`` reward observations of each action."""
        out = np.zeros(self.n_actions)
        for _, acts, bank, _ in self.reward_groups:
            out[acts] = bank.n_obs
        return out

    def cost_counts(self) -> np.ndarray:
        """``(K,)`` consumption observations of each action (0 for the free action)."""
        out = np.zeros(self.n_actions)
        for _, res, bank, multi in self.cost_groups:
            counts = np.asarray(bank.n_obs)
            if not multi:
                counts = counts.reshape(self.costly.size, res.size)[:, 0]
            out[self.costly] = counts
        return out

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        return {
            "reward": {link: bank.get_state() for link, _, bank, _ in self.reward_groups},
            "cost": {link: bank.get_state() for link, _, bank, _ in self.cost_groups},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._betas.clear()
        self._paired = None
        for link, _, bank, _ in self.reward_groups:
            bank.set_state(state["reward"][link])
        for link, _, bank, _ in self.cost_groups:
            bank.set_state(state["cost"][link])
