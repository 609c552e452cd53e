"""One configured policy as the service runs it: a model learned from the join log (in join
order, one event at a time, with the quarantine of :mod:`scarce.serve.learner`) that answers
choices. The served policy, every shadow and every candidate of a promotion is one.

Its model is a function of the join log only: every replica at the same ``watermark`` holds a
bit-identical one, and ``scarce replay`` rebuilds it. Choices never change it: the policy's
random stream is swapped for the event's own (derived from the seed and the event id), and a
policy whose ``decide`` keeps decision-time state decides on a copy.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from scarce.core.policy import Policy
from scarce.serve import snapshot as snap
from scarce.serve.config import ServiceConfig
from scarce.serve.learner import Feedback, copy_policy, ensure_initialized, learn_events
from scarce.serve.store import EventStore
from scarce.serve.validation import RequestError, event_generator, json_text

_LOG = logging.getLogger("scarce.serve")
_CHUNK = 64  # joined events learned on a copy before it replaces the served model
_PYTHON_CHECKS = 64  # distributions over at most this many actions are checked on floats
_SUM_TOL = 1e-6  # how far a reported distribution's sum may be from 1


def _cannot_score() -> RequestError:
    """The error of a distribution that is not finite or does not sum to 1 (every path)."""
    return RequestError("context", "the model cannot score this context (numerical overflow)")


class Choice(NamedTuple):
    """A policy's answer for one case.

    ``action``: the action id (-1 for a structured action, given in ``action_value``);
    ``probability``: its probability (None where the policy cannot say); ``probabilities``:
    the full distribution over the actions (None for structured actions, and for policies
    that report a sparse ``support`` instead); ``info``: the case's ``Decision.info`` as
    plain Python (None when empty); ``model_version``: the watermark of the model that
    chose; ``support``: for policies with ``action_support`` (catalog policies), the
    actions with positive probability (ascending ids) and their probabilities, in place of
    a ``(K,)`` list (8 MB of JSON per decision at a million actions).
    """

    action: int
    probability: float | None
    probabilities: list[float] | None
    info: dict[str, Any] | None
    model_version: int
    action_value: list[int] | None = None
    support: tuple[list[int], list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action if self.action_value is None else self.action_value,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "model_version": self.model_version,
        }
        if self.support is not None:
            out["support"] = support_dict(self.support)
        return out

    def distribution_json(self) -> str:
        """The logged form of the distribution (the ``probabilities`` column): a JSON list
        of ``K`` probabilities, ``{"support": ids, "probabilities": ps}`` for a sparse
        support, or ``null``; :func:`read_distribution` reads it back."""
        if self.support is not None:
            return json_text(support_dict(self.support))
        return json_text(self.probabilities)


def support_dict(support: tuple[list[int], list[float]]) -> dict[str, list]:
    """``{"support": ids, "probabilities": ps}``: the JSON form of a sparse distribution."""
    return {"support": support[0], "probabilities": support[1]}


def read_distribution(
    value: str | list | dict | None,
) -> tuple[list[float] | None, tuple[list[int], list[float]] | None]:
    """``(probabilities, support)`` of a logged distribution (the JSON text of
    :meth:`Choice.distribution_json` or its parsed value): a dense list and None, None and
    ``(ids, probabilities)``, or ``(None, None)``."""
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, dict):
        return None, (
            [int(a) for a in value["support"]],
            [float(p) for p in value["probabilities"]],
        )
    return value, None


def dense_distribution(value: str | list | dict | None, n_actions: int) -> list[float] | None:
    """The logged distribution as ``n_actions`` probabilities (zeros off a sparse support);
    None where none was logged."""
    probs, support = read_distribution(value)
    if support is None:
        return probs
    out = np.zeros(n_actions)
    out[np.asarray(support[0], dtype=np.int64)] = support[1]
    return out.tolist()


class ServedPolicy:
    """A configured policy learning from the join log.

    Parameters
    ----------
    config:
        its configuration.
    version:
        its policy version in the store (1 for the first configuration).
    name:
        its name (the served policy's ``service.name``, a shadow's file stem).
    """

    def __init__(self, config: ServiceConfig, version: int = 1, name: str | None = None) -> None:
        self.config = config
        self.version = version
        self.name = name or config.name
        self.traits = config.traits
        self.feedback = Feedback(config.traits, config.seed)
        self.lock = threading.RLock()
        self.policy: Policy = config.make_policy()
        self.watermark = 0  # joined events applied
        self.n_learned = 0
        self.n_quarantined = 0  # quarantined by this process
        self.snapshot_version: int | None = None
        self.since_snapshot = 0
        needs_decide = not self.traits.deterministic or self.traits.has_info
        self._decide = (
            needs_decide or self.traits.stateful_decide or not self.traits.has_probabilities
        )

    # ------------------------------------------------------------------ choices
    def choose(
        self, X: np.ndarray, allowed: np.ndarray | None, event_id: str, context: dict[str, Any]
    ) -> Choice:
        """The policy's choice for one case (nothing of the model changes).

        Parameters
        ----------
        X:
            ``(1, d)`` or ``(1, K, d)``.
        allowed:
            ``(K,)`` actions that may be chosen (eligible and affordable), or None.
        event_id:
            the case's id: the random stream of the choice is derived from it.
        context:
            the decision-time keywords (per-case values; a leading axis is added).
        """
        traits = self.traits
        mask = None if allowed is None else allowed[None, :]
        ctx = {k: np.asarray([v]) for k, v in context.items()} if context else {}
        with self.lock:
            policy = self.policy
            version = self.watermark
            if not traits.stateful_decide:
                return self._choose(policy, X, mask, event_id, ctx, version, swap=True)
        # decide changes this policy's state: decide on a copy (the served model may be
        # replaced meanwhile, never modified, so it can be copied outside the lock)
        work = copy_policy(policy)
        return self._choose(work, X, mask, event_id, ctx, version, swap=False)

    def _choose(
        self,
        policy: Policy,
        X: np.ndarray,
        mask: np.ndarray | None,
        event_id: str,
        ctx: dict[str, Any],
        version: int,
        *,
        swap: bool,
    ) -> Choice:
        traits = self.traits
        probs = None
        info = None
        sparse = traits.action_type == "discrete" and callable(
            getattr(policy, "action_support", None)
        )
        with np.errstate(all="ignore"):
            if sparse and not self._decide:  # the actions with positive probability only
                probs = policy.action_support(X, eligible=mask)
            elif traits.has_probabilities and not sparse:
                # the full distribution first: it also initialises the policy without its rng
                probs = policy.action_probabilities(X, eligible=mask, **ctx)[0]
            if self._decide:
                ensure_initialized(policy, X)
                saved = policy.rng_
                policy.rng_ = event_generator(self.config.seed, event_id)
                try:
                    decision = policy.decide(X, eligible=mask, **ctx)
                finally:
                    if swap:
                        policy.rng_ = saved
                actions = decision.actions[0]
                info = decision.case_info(0) or None
                if sparse:  # (a catalog decision carries its support: no second search)
                    probs = getattr(decision, "support", None)
                    if probs is None:  # (per-action features: a plain Decision)
                        probs = policy.action_support(X, eligible=mask)
                if traits.action_type != "discrete":
                    p = float(decision.probabilities[0])
                    return Choice(
                        -1,
                        p if np.isfinite(p) else None,
                        None,
                        info,
                        version,
                        action_value=[int(a) for a in np.ravel(actions)],
                    )
                action = int(actions)
                if probs is None:
                    p = float(decision.probabilities[0])
                    return Choice(action, p if np.isfinite(p) else None, None, info, version)
            elif sparse:  # the most probable supported action (ties: lowest id)
                action = int(probs[0][0, np.argmax(probs[1][0])])
            elif mask is None and probs.shape[0] <= _PYTHON_CHECKS:
                return self._full_choice(probs.tolist(), info, version)
            else:
                # the rule is the argmax its one-hot distribution reports (ties: lowest id)
                action = int(np.argmax(probs if mask is None else np.where(mask[0], probs, -1.0)))
        if sparse:
            return self._sparse_choice(action, probs, info, version)
        if mask is not None:
            probs = np.where(mask[0], probs, 0.0)
        # (a Monte-Carlo propensity, per-action Thompson sampling, can be 0 for a rare action:
        # it is logged as the policy reports it)
        if not np.isfinite(probs).all() or abs(probs.sum() - 1.0) > _SUM_TOL:
            raise _cannot_score()
        plist = probs.tolist()
        return Choice(action, plist[action], plist, info, version)

    @staticmethod
    def _full_choice(plist: list[float], info: Any, version: int) -> Choice:
        """The most probable action of a distribution over a few actions (ties: lowest id)
        and its checks on Python floats (NumPy's calls cost more at this size): the same
        answer, and the same error, as the general path."""
        total = sum(plist)  # NaN or inf when any entry is (or when the sum overflows)
        if not math.isfinite(total) or abs(total - 1.0) > _SUM_TOL:
            raise _cannot_score()
        action = plist.index(max(plist))  # the first maximum, as np.argmax
        return Choice(action, plist[action], plist, info, version)

    @staticmethod
    def _sparse_choice(
        action: int, support: tuple[np.ndarray, np.ndarray], info: Any, version: int
    ) -> Choice:
        """The choice of a policy with ``action_support``: ``support`` ``(1, s)`` ids
        (``-1`` padding) and probabilities."""
        ok = support[0][0] >= 0
        ids, ps = support[0][0][ok], support[1][0][ok]
        if not np.isfinite(ps).all() or abs(ps.sum() - 1.0) > _SUM_TOL:
            raise _cannot_score()
        at = np.flatnonzero(ids == action)  # (a Monte-Carlo support may miss the action: 0)
        p = float(ps[at[0]]) if at.size else 0.0
        return Choice(action, p, None, info, version, support=(ids.tolist(), ps.tolist()))

    # ------------------------------------------------------------------ learning
    def catch_up(
        self, store: EventStore, on_quarantine: Callable[[Any, str], None] | None = None
    ) -> int:
        """Apply the joined events after the watermark, in join order, one at a time; updates
        run on a copy that replaces the served model every 64 events. Events the model cannot
        learn are skipped and reported to ``on_quarantine(event, reason)``. Returns the number
        of events applied."""
        applied = 0
        while True:
            batch = store.joined_since(self.watermark)
            if not batch:
                return applied
            applied += self.apply_events(batch, on_quarantine)

    def apply_events(
        self, events: list[Any], on_quarantine: Callable[[Any, str], None] | None = None
    ) -> int:
        """Learn ``events`` (joined events after the watermark, in join order), 64 at a time
        on a copy that then replaces the served model; returns how many were applied."""
        applied = 0
        for start in range(0, len(events), _CHUNK):
            chunk = events[start : start + _CHUNK]
            model, bad = learn_events(self._model_copy, chunk, self.feedback)
            with self.lock:
                self.policy = model
                self.watermark = chunk[-1].seq
                self.n_learned += sum(ev.reward is not None for ev in chunk) - len(bad)
                self.n_quarantined += len(bad)
                self.since_snapshot += len(chunk)
            applied += len(chunk)
            for ev, reason in bad:
                _LOG.warning(
                    "policy %r: event %r (join seq %d) quarantined: the model cannot learn it (%s)",
                    self.name,
                    ev.event_id,
                    ev.seq,
                    reason,
                )
                if on_quarantine is not None:
                    on_quarantine(ev, reason)
        return applied

    def _model_copy(self) -> Policy:
        with self.lock:
            return copy_policy(self.policy)

    # ------------------------------------------------------------------ snapshots
    def load_latest_snapshot(self, store: EventStore) -> bool:
        """Load this version's latest published snapshot if it is ahead of the model
        (checksum, class and parameters verified before anything is constructed)."""
        head = store.latest_snapshot(with_data=False, policy_version=self.version)
        if head is None or head.watermark <= self.watermark:
            return False
        s = store.latest_snapshot(policy_version=self.version)
        assert s is not None
        policy = snap.decode(s.state_json, s.arrays_npz, s.checksum, self.config.make_policy())
        with self.lock:
            self.policy = policy
            self.watermark = s.watermark
            self.n_learned = int(getattr(policy, "n_updates_", 0))
            self.snapshot_version = s.version
            self.since_snapshot = 0
        return True

    def publish_snapshot(self, store: EventStore, now: float) -> dict[str, Any]:
        """Store the model as a snapshot; returns its version, checksum and watermark."""
        with self.lock:
            state_json, arrays_npz, checksum = snap.encode(self.policy)
            watermark = self.watermark
        version, checksum = store.publish_snapshot(
            watermark=watermark,
            created_at=now,
            checksum=checksum,
            state_json=state_json,
            arrays_npz=arrays_npz,
            policy_version=self.version,
        )
        self.snapshot_version = version
        self.since_snapshot = 0
        return {"version": version, "model_version": watermark, "checksum": checksum}


def shadow_record(choices: dict[str, Choice | str]) -> str | None:
    """The JSON logged with a decision: each shadow's choice (or the error it raised)."""
    if not choices:
        return None
    out: dict[str, Any] = {}
    for name, c in choices.items():
        out[name] = {"error": c} if isinstance(c, str) else c.to_dict()
    return json.dumps(out)
