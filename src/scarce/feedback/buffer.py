"""Decision ids and the pending-decision buffer.

Every decision gets an integer id. Its outcome may arrive later, out of order and in pieces;
:class:`PendingBuffer` sums the pieces per id and hands a decision to the learner once it is
*due*: when all its expected pieces have arrived, when a piece marked final arrives, or when its
deadline round is reached (with whatever arrived by then). :meth:`PendingBuffer.feed` calls any
policy's ``update`` with the due decisions in id order, so a delayed-feedback learner is the
policy plus this buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scarce.core.decision import Decision


@dataclass
class Ready:
    """Decisions handed over by :meth:`PendingBuffer.pop_due`, in id order.

    Attributes
    ----------
    ids: ``(n,)`` int64 decision ids.
    X: ``(n, ...)`` the contexts they were decided on.
    actions: ``(n,)`` int64.
    rewards: ``(n,)`` float64, the sum of the pieces received.
    rounds: ``(n,)`` int64, decision rounds.
    complete: ``(n,)`` bool, False for decisions released by their deadline with pieces missing.
    extra: keyword -> ``(n, ...)`` per-decision arrays given at registration.
    info: the decisions' ``Decision.info`` given at registration (name -> ``(n, ...)``).
    """

    ids: np.ndarray
    X: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    rounds: np.ndarray
    complete: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def _per_decision(arrays: dict[str, Any], n: int, what: str) -> dict[str, np.ndarray]:
    out = {}
    for k, v in arrays.items():
        v = np.asarray(v)
        if v.ndim == 0 or v.shape[0] != n:
            raise ValueError(f"{what} {k!r} must have {n} rows; got shape {v.shape}")
        out[k] = v
    return out


def _stack(recs: list[dict[str, Any]], part: str) -> dict[str, np.ndarray]:
    return {k: np.stack([np.asarray(r[part][k]) for r in recs]) for k in recs[0][part]}


class PendingBuffer:
    """Joins late, out-of-order, piecewise outcomes to their decisions.

    Parameters
    ----------
    late:
        what to do with a piece for an id already handed over (or never registered):
        ``"raise"`` (ValueError) or ``"drop"`` (counted in ``n_dropped``).
    """

    def __init__(self, late: str = "raise") -> None:
        if late not in ("raise", "drop"):
            raise ValueError(f"late must be 'raise' or 'drop'; got {late!r}")
        self.late = late
        self.next_id = 0
        self.n_dropped = 0
        self._pending: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending_ids(self) -> np.ndarray:
        return np.array(sorted(self._pending), dtype=np.int64)

    def register(
        self,
        X: np.ndarray,
        actions: np.ndarray,
        *,
        round: int,
        expected_pieces: int | np.ndarray | None = 1,
        deadline: int | np.ndarray | None = None,
        info: dict[str, np.ndarray] | None = None,
        **extra: np.ndarray,
    ) -> np.ndarray:
        """Record ``n`` decisions and return their new ids ``(n,)``.

        Parameters
        ----------
        X: ``(n, ...)`` contexts; actions: ``(n,)`` ints.
        round: the decision round.
        expected_pieces: pieces after which a decision is complete (int or ``(n,)``, >= 1),
            or None (complete only through a final piece or the deadline).
        deadline: round at which a decision is handed over even if incomplete (int or ``(n,)``),
            or None (no deadline).
        info: the decisions' ``Decision.info`` (name -> ``(n, ...)``), handed back to
            ``update(..., info=...)`` with them.
        extra: per-decision arrays ``(n, ...)`` passed on as ``update`` keywords.
        """
        X = np.asarray(X)
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        n = actions.shape[0]
        if X.shape[0] != n:
            raise ValueError(f"X must have {n} rows (one per action); got shape {X.shape}")
        pieces = np.broadcast_to(
            np.asarray(-1 if expected_pieces is None else expected_pieces, dtype=np.int64), (n,)
        )
        if expected_pieces is not None and np.any(pieces < 1):
            raise ValueError("expected_pieces must be >= 1")
        dl = np.broadcast_to(
            np.asarray(np.iinfo(np.int64).max if deadline is None else deadline, dtype=np.int64),
            (n,),
        )
        extras = _per_decision(extra, n, "extra keyword")
        infos = _per_decision(info or {}, n, "info entry")
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        for j, i in enumerate(ids):
            self._pending[int(i)] = {
                "X": X[j],
                "action": int(actions[j]),
                "round": int(round),
                "sum": 0.0,
                "got": 0,
                "need": int(pieces[j]),
                "deadline": int(dl[j]),
                "final": False,
                "extra": {k: v[j] for k, v in extras.items()},
                "info": {k: v[j] for k, v in infos.items()},
            }
        return ids

    def add(self, ids: Any, values: Any, *, final: Any = False) -> None:
        """Add outcome pieces: ``values[j]`` for decision ``ids[j]`` (ids may repeat and come in
        any order). ``final`` (bool or ``(n,)``) marks a decision's last piece."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != ids.shape:
            raise ValueError(f"values must have shape {ids.shape}; got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("values must be finite")
        fin = np.broadcast_to(np.asarray(final, dtype=bool), ids.shape)
        for i, v, f in zip(ids.tolist(), values.tolist(), fin.tolist(), strict=True):
            rec = self._pending.get(i)
            if rec is None:
                if self.late == "raise":
                    known = 0 <= i < self.next_id
                    why = "was already handed over" if known else "was never registered"
                    raise ValueError(f"outcome piece for decision id {i}, which {why}")
                self.n_dropped += 1
                continue
            rec["sum"] += v
            rec["got"] += 1
            rec["final"] = rec["final"] or f

    def pop_due(self, round: int) -> Ready:
        """Remove and return the decisions that are due at ``round``, in id order."""
        due = []
        for i, rec in self._pending.items():
            complete = rec["final"] or (rec["need"] > 0 and rec["got"] >= rec["need"])
            if complete or round >= rec["deadline"]:
                due.append((i, complete))
        due.sort()
        recs = [self._pending.pop(i) for i, _ in due]
        if not recs:
            return Ready(
                ids=np.zeros(0, np.int64),
                X=np.zeros((0,)),
                actions=np.zeros(0, np.int64),
                rewards=np.zeros(0),
                rounds=np.zeros(0, np.int64),
                complete=np.zeros(0, bool),
            )
        return Ready(
            ids=np.array([i for i, _ in due], dtype=np.int64),
            X=np.stack([r["X"] for r in recs]),
            actions=np.array([r["action"] for r in recs], dtype=np.int64),
            rewards=np.array([r["sum"] for r in recs], dtype=np.float64),
            rounds=np.array([r["round"] for r in recs], dtype=np.int64),
            complete=np.array([c for _, c in due], dtype=bool),
            extra=_stack(recs, "extra"),
            info=_stack(recs, "info"),
        )

    # ------------------------------------------------------------------ persistence
    def get_params(self) -> dict[str, Any]:
        return {"late": self.late}

    def _get_state(self) -> dict[str, Any]:
        ids = sorted(self._pending)
        recs = [self._pending[i] for i in ids]
        state: dict[str, Any] = {
            "next_id": self.next_id,
            "n_dropped": self.n_dropped,
            "n": len(ids),
        }
        if recs:
            state.update(
                ids=np.array(ids, dtype=np.int64),
                X=np.stack([np.asarray(r["X"]) for r in recs]),
                action=np.array([r["action"] for r in recs], dtype=np.int64),
                round=np.array([r["round"] for r in recs], dtype=np.int64),
                sum=np.array([r["sum"] for r in recs], dtype=np.float64),
                got=np.array([r["got"] for r in recs], dtype=np.int64),
                need=np.array([r["need"] for r in recs], dtype=np.int64),
                deadline=np.array([r["deadline"] for r in recs], dtype=np.int64),
                final=np.array([r["final"] for r in recs], dtype=bool),
                extra=_stack(recs, "extra"),
                info=_stack(recs, "info"),
            )
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        self.next_id = int(state["next_id"])
        self.n_dropped = int(state["n_dropped"])
        self._pending = {}
        for j in range(int(state["n"])):
            self._pending[int(state["ids"][j])] = {
                "X": np.asarray(state["X"][j]),
                "action": int(state["action"][j]),
                "round": int(state["round"][j]),
                "sum": float(state["sum"][j]),
                "got": int(state["got"][j]),
                "need": int(state["need"][j]),
                "deadline": int(state["deadline"][j]),
                "final": bool(state["final"][j]),
                "extra": {k: np.asarray(v[j]) for k, v in state["extra"].items()},
                "info": {k: np.asarray(v[j]) for k, v in state.get("info", {}).items()},
            }

    def save(self, path: Any) -> Any:
        """Save the pending decisions (JSON + ``.npz``, no pickle); load with ``scarce.load``
        (or :func:`scarce.core.persist.load`)."""
        from scarce.core import persist

        return persist.save(self, path)

    def feed(self, policy: Any, round: int) -> int:
        """``policy.update`` with the decisions due at ``round`` (one batch); returns how many."""
        ready = self.pop_due(round)
        if len(ready):
            info = ready.info or None
            policy.update(ready.X, ready.actions, ready.rewards, info=info, **ready.extra)
        return len(ready)


class DelayedPolicy:
    """Any policy with a :class:`PendingBuffer` in front of its ``update``: a delayed-feedback
    learner that wraps a learner.

    ``decide`` registers the decisions and returns them with their ids in
    ``decision.info["decision_id"]``; outcome pieces are reported by id (late, out of order, in pieces) with ``report``; ``tick(round)`` hands the due decisions
    to ``policy.update``.

    Parameters
    ----------
    policy: a :class:`scarce.core.policy.Policy` (or anything with ``decide``/``update``).
    expected_pieces: pieces per decision (None: complete only by a final piece or deadline).
    max_delay: rounds after which a decision is learned with what has arrived (None: never).
    late: ``"raise"`` or ``"drop"`` for pieces of decisions already learned.
    """

    def __init__(
        self,
        policy: Any,
        *,
        expected_pieces: int | None = 1,
        max_delay: int | None = None,
        late: str = "raise",
    ) -> None:
        self.policy = policy
        self.expected_pieces = expected_pieces
        self.max_delay = max_delay
        self.buffer = PendingBuffer(late=late)

    def decide(self, X: Any, *, round: int, eligible: Any = None, **extra: Any) -> Decision:
        """The policy's decision, registered in the buffer; ``decision.info["decision_id"]``
        ``(n,)`` holds the ids to report outcome pieces against.

        ``extra``: per-decision arrays passed to ``update`` when the decisions are learned."""
        decision = self.policy.decide(X, eligible=eligible)
        deadline = None if self.max_delay is None else round + self.max_delay
        ids = self.buffer.register(
            np.asarray(X),
            decision.actions,
            round=round,
            expected_pieces=self.expected_pieces,
            deadline=deadline,
            info=decision.info,
            **extra,
        )
        decision.info = {**decision.info, "decision_id": ids}
        return decision

    def report(self, ids: Any, values: Any, *, final: Any = False) -> None:
        """Outcome pieces for decisions ``ids``."""
        self.buffer.add(ids, values, final=final)

    def tick(self, round: int) -> int:
        """Learn the decisions due at ``round``; returns how many."""
        return self.buffer.feed(self.policy, round)
