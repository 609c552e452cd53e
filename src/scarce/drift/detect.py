"""Change detection on the reward stream, and a wrapper that restarts any policy on a change.

The detector watches the rewards *given the context*: after each (re)start it fits a reference
ridge model per action on the first ``warmup`` observations of that action (per-action
features: one shared model), estimates the noise variance ``sigma^2`` from that fit, and from
then on monitors the standardised squared residuals ``z = (r - x^T theta_ref)^2 / sigma^2``
(``chi^2_1``, mean 1, while nothing changes) with a one-sided CUSUM (Page 1954):

    ``S <- max(0, S + z - 1 - drift)``, alarm when ``S > threshold``,

or (``detector="glr"``) a generalised likelihood ratio test for an increase of the residual
variance over the last ``window`` observations: for Gaussian residuals with known variance
before a change, the GLR of "the last ``k`` observations have variance ratio ``rho > 1``" is
``k / 2 * (m_k - 1 - log m_k)`` with ``m_k`` the mean of the last ``k`` values of ``z``
(the maximum-likelihood ``rho``); alarm when its maximum over ``k`` exceeds ``threshold``.
CUSUM needs the size of the change it is tuned for (``drift``); GLR adapts to it, at
``O(window)`` work per observation.

A change of the reward parameters of a played action raises the mean of ``z`` to
``1 + ||x^T (theta_new - theta_ref)||^2 / sigma^2`` whatever the sign of the change, which a
test on the raw reward mean would miss (with centred contexts the mean reward of an action
need not move). Only the actions being played are watched: a change confined to actions the
policy never plays is invisible to any detector on the reward stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike, generator_from_state, generator_state
from scarce.core.validation import check_positive_int, check_scalar
from scarce.policies import register_policy


def _policy_class(name: str) -> type[Policy]:
    from scarce.policies import get_policies

    POLICIES = get_policies()
    if name not in POLICIES or name == "ChangeDetecting":
        valid = ", ".join(p for p in POLICIES if p != "ChangeDetecting")
        raise ValueError(f"base must be the name of a policy in POLICIES ({valid}); got {name!r}")
    return POLICIES[name]


@register_policy
class ChangeDetecting(Policy):
    """Any ``scarce`` policy, restarted from scratch when a CUSUM or GLR test on the reward
    stream raises an alarm (module docstring).

    Parameters
    ----------
    n_actions, n_features, seed:
        as for every policy; the wrapped policy gets the same ``n_actions`` and ``n_features``
        and a seed drawn from this policy's generator at each (re)start.
    base:
        name of the wrapped policy in :data:`scarce.policies.POLICIES`.
    base_params:
        constructor keywords of the wrapped policy (besides ``n_actions``, ``n_features``,
        ``seed``).
    detector:
        ``"cusum"`` or ``"glr"`` (module docstring).
    threshold:
        alarm level (> 0) of the CUSUM or GLR statistic; larger means fewer false alarms and
        longer delays.
    drift:
        CUSUM slack ``k`` (>= 0) subtracted per observation beyond the null mean of ``z``
        (unused by GLR).
    window:
        observations per reference model the GLR scans (>= 1; unused by CUSUM).
    warmup:
        observations per reference model before monitoring starts (>= 2; at least
        ``n_features + 2`` is sensible).
    lam:
        ridge penalty of the reference models (> 0).

    Attributes
    ----------
    base_policy_:
        the wrapped policy currently in use.
    alarms_:
        list of ``n_updates_`` values (observations seen) at which alarms were raised.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        base: str = "LinUCB",
        base_params: dict[str, Any] | None = None,
        detector: str = "cusum",
        threshold: float = 30.0,
        drift: float = 2.0,
        window: int = 200,
        warmup: int = 50,
        lam: float = 0.01,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.base = base
        self.base_params = base_params
        self.detector = detector
        self.threshold = threshold
        self.drift = drift
        self.window = window
        self.warmup = warmup
        self.lam = lam

    # ------------------------------------------------------------------ wrapped policy traits
    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return bool(_policy_class(self.base).deterministic)

    @property
    def reward_bounds(self) -> tuple[float, float] | None:  # type: ignore[override]
        return _policy_class(self.base).reward_bounds

    def _check_params(self) -> None:
        super()._check_params()
        cls = _policy_class(self.base)
        if self.base_params is not None and not isinstance(self.base_params, dict):
            raise ValueError(f"base_params must be a dict or None; got {self.base_params!r}")
        reserved = {"n_actions", "n_features", "seed"} & set(self.base_params or {})
        if reserved:
            raise ValueError(f"base_params must not set {sorted(reserved)} (set by the wrapper)")
        if self.detector not in ("cusum", "glr"):
            raise ValueError(f"detector must be 'cusum' or 'glr'; got {self.detector!r}")
        check_scalar(self.threshold, "threshold", low=0.0, low_inclusive=False)
        check_scalar(self.drift, "drift", low=0.0)
        check_positive_int(self.window, "window")
        check_positive_int(self.warmup, "warmup", minimum=2)
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)
        self._base_cls = cls

    def _new_base(self) -> Policy:
        seed = int(self.rng_.integers(2**63 - 1))
        return self._base_cls(
            n_actions=self.n_actions,
            n_features=self.n_features,
            seed=seed,
            **(self.base_params or {}),
        )

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        M = self.n_actions if self.context_mode_ == SHARED_CONTEXT else 1
        d = self.n_features
        self.base_policy_ = self._new_base()
        self.alarms_: list[int] = []
        self._xtx = np.zeros((M, d, d))
        self._xty = np.zeros((M, d))
        self._yty = np.zeros(M)
        self._count = np.zeros(M, dtype=np.int64)
        self._theta_ref = np.zeros((M, d))
        self._A_inv = np.zeros((M, d, d))
        self._sigma2 = np.full(M, np.nan)  # NaN until the model's warmup is complete
        self._cusum = np.zeros(M)  # the CUSUM statistic, or the last GLR statistic
        W = int(self.window)
        self._zbuf = np.zeros((M, W))  # GLR: ring buffer of the last W values of z
        self._zlen = np.zeros(M, dtype=np.int64)
        self._zpos = np.zeros(M, dtype=np.int64)

    def _restart(self, at: int) -> None:
        """Forget everything learned; record an alarm after ``at`` observations."""
        alarms = [*self.alarms_, int(at)]
        self._init_state()
        self.alarms_ = alarms

    @property
    def statistic_(self) -> np.ndarray:
        """``(M,)`` current CUSUM (or GLR) statistic of each reference model (0 during warmup)."""
        return self._cusum.copy()

    # ------------------------------------------------------------------ decisions
    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        return self.base_policy_.decide(X, eligible=eligible)

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        return self.base_policy_.action_probabilities(X, eligible=eligible)

    # ------------------------------------------------------------------ learning
    def _rows(
        self, X: np.ndarray, actions: np.ndarray | None, rewards: np.ndarray | None,
        full: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Monitored rows: features ``(m, d)``, rewards ``(m,)``, model ids ``(m,)`` and the
        case each row belongs to ``(m,)``."""
        n, K = X.shape[0], self.n_actions
        shared = self.context_mode_ == SHARED_CONTEXT
        if full is not None:
            case = np.repeat(np.arange(n), K)
            acts = np.tile(np.arange(K), n)
            y = full.reshape(-1)
        else:
            assert actions is not None and rewards is not None
            case, acts, y = np.arange(n), actions, rewards
        feats = X[case] if shared else X[case, acts]
        ids = acts if shared else np.zeros_like(acts)
        return feats, y, ids, case

    def _learn(self, X, actions, rewards, full_rewards, **extra):  # type: ignore[override]
        self._offset = 0  # cases of this update already handled (before an alarm)
        self._learn_rows(X, actions, rewards, full_rewards)

    def _learn_rows(self, X, actions, rewards, full_rewards) -> None:
        feats, y, ids, case = self._rows(X, actions, rewards, full_rewards)
        alarm_case = self._monitor(feats, y, ids, case)
        if alarm_case is None:
            self._update_base(X, actions, rewards, full_rewards, slice(None))
            return
        # the cases before the alarm taught the old policy; the rest start the new one
        self._update_base(X, actions, rewards, full_rewards, slice(0, alarm_case))
        self._restart(self.n_updates_ + self._offset + alarm_case)
        self._offset += alarm_case
        rest = slice(alarm_case, None)
        n_rest = X.shape[0] - alarm_case
        if n_rest > 0:
            sub = (
                X[rest],
                None if actions is None else actions[rest],
                None if rewards is None else rewards[rest],
                None if full_rewards is None else full_rewards[rest],
            )
            self._learn_rows(*sub)

    def _update_base(self, X, actions, rewards, full_rewards, rows: slice) -> None:
        Xs = X[rows]
        if Xs.shape[0] == 0:
            return
        if full_rewards is not None:
            self.base_policy_.update(Xs, full_rewards=full_rewards[rows])
        else:
            self.base_policy_.update(Xs, actions[rows], rewards[rows])

    def _monitor(
        self, feats: np.ndarray, y: np.ndarray, ids: np.ndarray, case: np.ndarray
    ) -> int | None:
        """Feed the rows to the reference models / CUSUMs in order; the case index of the first
        alarm, or None."""
        d = self.n_features
        eye = self.lam * np.eye(d)
        for x, r, m, c in zip(feats, y, ids, case, strict=True):
            if self._count[m] < self.warmup:
                self._xtx[m] += np.outer(x, x)
                self._xty[m] += r * x
                self._yty[m] += r * r
                self._count[m] += 1
                if self._count[m] == self.warmup:
                    A_inv = np.linalg.inv(self._xtx[m] + eye)
                    theta = A_inv @ self._xty[m]
                    rss = self._yty[m] - 2 * theta @ self._xty[m] + theta @ self._xtx[m] @ theta
                    scale = self._yty[m] / self.warmup
                    self._theta_ref[m] = theta
                    self._A_inv[m] = A_inv
                    self._sigma2[m] = max(rss / max(self.warmup - d, 1), 1e-8 * scale, 1e-12)
                continue
            # standardise by the predictive variance sigma^2 (1 + x^T A^-1 x) of a new residual
            var = self._sigma2[m] * (1.0 + x @ self._A_inv[m] @ x)
            z = (r - x @ self._theta_ref[m]) ** 2 / var
            if self.detector == "cusum":
                self._cusum[m] = max(0.0, self._cusum[m] + z - 1.0 - self.drift)
            else:
                self._cusum[m] = self._glr(m, z)
            if self._cusum[m] > self.threshold:
                return int(c)
        return None

    def _glr(self, m: int, z: float) -> float:
        """Push ``z`` into model ``m``'s window; the GLR statistic of a variance increase."""
        W = self._zbuf.shape[1]
        self._zbuf[m, self._zpos[m]] = z
        self._zpos[m] = (self._zpos[m] + 1) % W
        self._zlen[m] = min(self._zlen[m] + 1, W)
        n = int(self._zlen[m])
        recent = self._zbuf[m, (self._zpos[m] - 1 - np.arange(n)) % W]  # newest first
        k = np.arange(1, n + 1)
        mean = np.cumsum(recent) / k
        up = mean > 1.0
        if not up.any():
            return 0.0
        mu = mean[up]
        return float(np.max(k[up] / 2.0 * (mu - 1.0 - np.log(mu))))

    def _extra_keywords(self) -> tuple[str, ...]:
        return ()

    # ------------------------------------------------------------------ persistence
    def _get_learned_state(self) -> dict[str, Any]:
        return {
            "base_state": self.base_policy_._get_state(),
            # _init_state draws the wrapped policy's seed when loading: restore the stream after
            "rng_now": generator_state(self.rng_),
            "alarms": list(self.alarms_),
            "xtx": self._xtx,
            "xty": self._xty,
            "yty": self._yty,
            "count": self._count,
            "theta_ref": self._theta_ref,
            "A_inv": self._A_inv,
            "sigma2": self._sigma2,
            "cusum": self._cusum,
            "zbuf": self._zbuf,
            "zlen": self._zlen,
            "zpos": self._zpos,
        }

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.base_policy_._set_state(state["base_state"])
        self.alarms_ = [int(a) for a in state["alarms"]]
        self._xtx = np.asarray(state["xtx"], dtype=np.float64)
        self._xty = np.asarray(state["xty"], dtype=np.float64)
        self._yty = np.asarray(state["yty"], dtype=np.float64)
        self._count = np.asarray(state["count"], dtype=np.int64)
        self._theta_ref = np.asarray(state["theta_ref"], dtype=np.float64)
        self._A_inv = np.asarray(state["A_inv"], dtype=np.float64)
        self._sigma2 = np.asarray(state["sigma2"], dtype=np.float64)
        self._cusum = np.asarray(state["cusum"], dtype=np.float64)
        self._zbuf = np.asarray(state["zbuf"], dtype=np.float64)
        self._zlen = np.asarray(state["zlen"], dtype=np.int64)
        self._zpos = np.asarray(state["zpos"], dtype=np.int64)
        self.rng_ = generator_from_state(state["rng_now"])
