"""The named parameter groups of the budgeted learners.

A budgeted learner has many knobs; they come in three groups, each a small frozen dataclass:

* :class:`ConfidenceSpec`: how wide the confidence ellipsoids are (spec A.3) and how the
  models are regularised;
* :class:`DualSpec`: the trade-off constant ``Z`` and the dual prices (spec A.4);
* :class:`NetworkSpec`: the networks of :class:`~scarce.budget.deferral.NeuralDeferral` (A.6).

A policy takes each group as one constructor argument given as the dataclass, as a plain dict
of some of its fields (what a TOML table or JSON gives: ``confidence = {beta_scale = 0.5}``)
or None (every default). ``get_params`` reports the group as a complete plain dict, so
``cls(**policy.get_params())`` and :func:`scarce.core.persist.save` round-trip it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import numpy as np

from scarce.core.validation import check_positive_int, check_scalar

S = TypeVar("S", "ConfidenceSpec", "DualSpec", "NetworkSpec")

Z_METHODS = ("fixed", "warmup_estimate", "oracle")
NETWORK_OUTPUTS = ("sigmoid", "identity")


@dataclass(frozen=True)
class ConfidenceSpec:
    """Confidence bounds of every estimated quantity (spec A.3).

    Attributes
    ----------
    beta_scale, delta, sigma, kappa:
        the radius of a model with ``t`` observations of its own,
        ``beta_scale * sigma / kappa * sqrt(dim / 2 * log(1 + 2 t / dim) + log(1 / delta))``
        (Li, Lu and Zhou, 2017); ``kappa=None`` uses 1 for the identity link and 0.25 for the
        logistic one (as the meTS code does). ``beta_scale=None`` (default) is
        ``1 / sqrt(dim)``: the radius bounds the error in every direction at once, which
        costs the ``sqrt(dim)``; one decision compares the estimates along one direction
        ``x``, and the theoretical radius over-explores (spec A.3). ``beta_scale=1`` gives
        the theorem's radius.
    lam:
        ridge of the identity-link models (spec default 1.0).
    lam_logistic:
        L2 penalty of the logistic-link models (spec default 1e-3).
    reward_range:
        ``(low, high)``: optimistic rewards are clipped to it (consumption bounds are
        clipped to ``[0, cost_bound]``).
    """

    beta_scale: float | None = None
    delta: float = 0.05
    sigma: float = 0.5
    kappa: float | None = None
    lam: float = 1.0
    lam_logistic: float = 1e-3
    reward_range: tuple[float, float] = (0.0, 1.0)

    def check(self, name: str = "confidence") -> None:
        """Raise ValueError naming ``name.field`` for a value out of range."""
        if self.beta_scale is not None:
            check_scalar(self.beta_scale, f"{name}.beta_scale", low=0.0)
        check_scalar(
            self.delta,
            f"{name}.delta",
            low=0.0,
            high=1.0,
            low_inclusive=False,
            high_inclusive=False,
        )
        check_scalar(self.sigma, f"{name}.sigma", low=0.0)
        if self.kappa is not None:
            check_scalar(self.kappa, f"{name}.kappa", low=0.0, low_inclusive=False)
        check_scalar(self.lam, f"{name}.lam", low=0.0, low_inclusive=False)
        check_scalar(self.lam_logistic, f"{name}.lam_logistic", low=0.0, low_inclusive=False)
        rr = self.reward_range
        if (
            len(rr) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rr)
            or not (math.isfinite(rr[0]) and math.isfinite(rr[1]) and rr[0] < rr[1])
        ):
            raise ValueError(f"{name}.reward_range must be (low, high) with low < high; got {rr!r}")

    def kappa_for(self, link: str) -> float:
        """``kappa`` of a link (the given one, or 1 / 0.25 for identity / logistic)."""
        if self.kappa is not None:
            return float(self.kappa)
        return 1.0 if link == "identity" else 0.25

    def radius(self, n_obs: np.ndarray, dim: int, link: str) -> np.ndarray:
        """``(M,)`` radius of each of ``M`` models from its own observation count ``n_obs``."""
        t = np.maximum(n_obs, 1.0)
        inner = (0.5 * dim) * np.log1p((2.0 / dim) * t) + math.log(1.0 / self.delta)
        scale = 1.0 / math.sqrt(dim) if self.beta_scale is None else self.beta_scale
        return (scale * self.sigma / self.kappa_for(link)) * np.sqrt(inner)


@dataclass(frozen=True)
class DualSpec:
    """The Lagrangian trade-off ``Z`` and the dual prices (spec A.4).

    Attributes
    ----------
    z_method:
        ``"warmup_estimate"`` (default): ``warmup_rounds`` uniformly random affordable
        decisions, then ``Z`` from the empirical static problem on their contexts (see
        :func:`scarce.budget.dual.estimate_z`); ``"fixed"``: the given ``Z``; ``"oracle"``:
        the given ``Z`` computed from the truth (an ablation, e.g.
        :func:`scarce.budget.opt.oracle_z`).
    Z:
        the trade-off constant for ``fixed`` / ``oracle`` (>= 0).
    warmup_rounds:
        ``T0`` for ``warmup_estimate``; None gives ``ceil(sqrt(T))`` (the "sqrt(T) initial
        exploration rounds" of Li and Stoltz's account of A&D; the spec's reconstruction
        ``d sqrt(T)`` is half of a 2,000-round horizon at ``d = 22``).
    paced_warmup:
        the warm-up plays a costly action with probability ``min((K - 1) / K, rho / c_max)``
        (``rho`` the budget per round, ``c_max`` the largest consumption of one round), so
        that it spends no faster than the budget allows; False: uniformly random actions
        (which can spend a small budget before the warm-up ends).
    c_z:
        multiplies the estimated ``Z``.
    z_gamma:
        the budget slack ``gamma`` of the estimate (default 0: the point estimate); None gives
        the theory's ``sqrt(d) T^(3/4)``, which dominates ``Z`` whenever ``B`` is below it
        (the theorem's range is ``B >= sqrt(d) T^(3/4)``).
    eta:
        multiplicative-weights step; None gives the default of
        :func:`scarce.budget.dual.default_eta`.
    dual_uses_estimate:
        the dual gain uses the pessimistic consumption estimate of the chosen action (A&D,
        default) or, if False, the realised consumption.
    """

    z_method: str = "warmup_estimate"
    Z: float | None = None
    warmup_rounds: int | None = None
    paced_warmup: bool = False
    c_z: float = 1.0
    z_gamma: float | None = 0.0
    eta: float | None = None
    dual_uses_estimate: bool = True

    def check(self, name: str = "dual") -> None:
        """Raise ValueError naming ``name.field`` for a value out of range."""
        if self.z_method not in Z_METHODS:
            raise ValueError(f"{name}.z_method must be one of {Z_METHODS}; got {self.z_method!r}")
        if self.z_method in ("fixed", "oracle"):
            if self.Z is None:
                raise ValueError(f"{name}.z_method={self.z_method!r} needs {name}.Z (a float >= 0)")
            check_scalar(self.Z, f"{name}.Z", low=0.0)
        if self.warmup_rounds is not None:
            check_positive_int(self.warmup_rounds, f"{name}.warmup_rounds", minimum=0)
        check_scalar(self.c_z, f"{name}.c_z", low=0.0, low_inclusive=False)
        if self.z_gamma is not None:
            check_scalar(self.z_gamma, f"{name}.z_gamma", low=0.0)
        if self.eta is not None:
            check_scalar(self.eta, f"{name}.eta", low=0.0, low_inclusive=False)
        for key in ("dual_uses_estimate", "paced_warmup"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise ValueError(f"{name}.{key} must be a bool; got {getattr(self, key)!r}")


@dataclass(frozen=True)
class NetworkSpec:
    """The networks of :class:`~scarce.budget.deferral.NeuralDeferral` (spec A.6; defaults:
    the paper's Knapsack settings, one minibatch step per retraining).

    Attributes
    ----------
    hidden:
        hidden widths (paper: one layer of 50 ReLU units); the last is the embedding dimension.
    retrain_every:
        retrain a network after this many new observations of its target (paper: 10).
    min_train:
        observations before the first training.
    epochs, batch_size, lr, weight_decay:
        Adam settings per retraining (paper: batch 500, lr 5e-4; epochs not stated). A
        retraining is ``epochs`` minibatch steps of ``batch_size`` rows drawn from the
        network's buffer (a bounded cost), not passes over the whole history; the name is
        kept for saved configurations.
    output:
        the networks' output head: ``"sigmoid"`` (the paper's, cross-entropy on targets in
        [0, 1]: Bernoulli outcomes) or ``"identity"`` (squared loss). The linear model on the
        embedding uses the target's own link either way.
    """

    hidden: tuple[int, ...] = (50,)
    retrain_every: int = 10
    min_train: int = 20
    epochs: int = 1
    batch_size: int = 500
    lr: float = 5e-4
    weight_decay: float = 0.0
    output: str = "sigmoid"

    def check(self, name: str = "network") -> None:
        """Raise ValueError naming ``name.field`` for a value out of range."""
        if not self.hidden:
            raise ValueError(f"{name}.hidden must list at least one width, e.g. (50,)")
        for h in self.hidden:
            check_positive_int(h, f"{name}.hidden[i]")
        for key in ("retrain_every", "min_train", "epochs", "batch_size"):
            check_positive_int(getattr(self, key), f"{name}.{key}")
        check_scalar(self.lr, f"{name}.lr", low=0.0, low_inclusive=False)
        check_scalar(self.weight_decay, f"{name}.weight_decay", low=0.0)
        if self.output not in NETWORK_OUTPUTS:
            raise ValueError(f"{name}.output must be one of {NETWORK_OUTPUTS}; got {self.output!r}")

    def net_params(self) -> dict[str, Any]:
        """The network settings ``scarce.budget.estimators.NeuralBank`` reads (it builds one
        ``scarce.models.mlp.OnlineNetwork`` per model from them)."""
        return {
            "hidden": tuple(int(h) for h in self.hidden),
            "retrain_every": int(self.retrain_every),
            "min_train": int(self.min_train),
            "epochs": int(self.epochs),
            "batch_size": int(self.batch_size),
            "lr": float(self.lr),
            "weight_decay": float(self.weight_decay),
        }


# fields whose JSON form (a list) becomes a tuple again
_TUPLE_FIELDS = {"reward_range", "hidden"}


def as_spec(cls: type[S], value: Any, name: str) -> S:
    """``value`` as a ``cls``: the dataclass itself, a dict of some of its fields (the others
    default) or None (all defaults).

    Raises
    ------
    ValueError
        for a key that is not a field (naming ``name`` and the valid keys) or another type.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(valid))
        if unknown:
            raise ValueError(f"{name} has unknown key(s) {unknown}; valid keys: {', '.join(valid)}")
        kwargs = {
            k: tuple(v) if k in _TUPLE_FIELDS and isinstance(v, (list, tuple)) else v
            for k, v in value.items()
        }
        return cls(**kwargs)
    raise ValueError(
        f"{name} must be a {cls.__name__}, a dict of its fields or None; got {type(value).__name__}"
    )


def spec_dict(spec: ConfidenceSpec | DualSpec | NetworkSpec) -> dict[str, Any]:
    """The plain-JSON dict of a spec (tuples as lists), what ``get_params`` reports."""
    out = asdict(spec)
    for key in _TUPLE_FIELDS & set(out):
        out[key] = [v.item() if isinstance(v, np.generic) else v for v in out[key]]
    return out


def plain_param(value: Any) -> Any:
    """A constructor argument in plain JSON form (arrays and tuples as lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [plain_param(v) for v in value]
    return value
