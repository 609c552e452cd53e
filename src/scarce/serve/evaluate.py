"""``scarce evaluate``: would another configuration have done better on the service's own logs?

Each candidate (a policy TOML, as ``scarce serve`` takes it) is replayed *progressively* over
the logged events (:mod:`scarce.ope.progressive`): at each logged decision it gives its action
distribution after learning exactly the joined events the served model had learned when it
decided (the decision's ``model_version``: the join log up to that sequence number), learning
them as the service's learner does (:class:`~scarce.serve.learner.Feedback`: ``Decision.info``,
feedback keywords, decision-time state). Its value is then estimated by IPS, SNIPS and DR
(:func:`scarce.ope.evaluate`) with confidence intervals. A budgeted candidate is evaluated
under its budget: its expected spend (its probabilities times each action's cost, or cost
bound for a learned cost) is booked in a :class:`~scarce.core.ledger.Ledger`, and the actions
it can no longer afford are masked.

Logs come from the event store or from ``scarce export-logs`` Parquet; bad logs (a missing or
zero propensity, an unknown action, a context of the wrong size) are an error naming the row.
Shadows (policies run beside the served one) are evaluated from their logged probabilities,
with the reward where their choice agreed with the served one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scarce.core.ledger import Ledger
from scarce.serve.config import ServiceConfig, config_from_dict
from scarce.serve.learner import Feedback, case_arrays
from scarce.serve.schema import JoinedEvent
from scarce.serve.served import dense_distribution
from scarce.serve.store import LOG_COLUMNS, EventStore

ESTIMATORS = ("ips", "snips", "dr")
COLUMNS = ["candidate", "estimator", "value", "ci_low", "ci_high", "n_events"]


class LogError(ValueError):
    """The logs cannot be evaluated (the message names the row)."""


@dataclass(frozen=True)
class ServiceLogs:
    """Learned events of a service log, in decision order, as arrays.

    ``events``: the joined events (what the learner is fed); ``clock``/``learned_at``: when
    each was decided and when its outcome joined, on one clock (the served model's version
    and the join sequence number for logs of this service); ``config``: the served
    configuration (candidates inherit its ``[service]`` and budgets), None if unknown.
    """

    events: list[JoinedEvent]
    contexts: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    eligible: np.ndarray
    clock: np.ndarray
    learned_at: np.ndarray
    learn_rank: np.ndarray
    timestamps: np.ndarray
    n_actions: int
    config: ServiceConfig | None = None
    shadows: list[dict[str, Any] | None] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.actions.shape[0])


def _row_error(i: int, event_id: Any, message: str) -> LogError:
    return LogError(f"row {i} (event {event_id!r}): {message}")


def _logs_from_records(
    records: list[dict[str, Any]],
    n_actions: int,
    shape: tuple[int, ...],
    config: ServiceConfig | None,
) -> ServiceLogs:
    """Validate rows (``LOG_COLUMNS`` dicts, in join order) and build :class:`ServiceLogs`."""
    if not records:
        raise LogError("the logs hold no joined event with a reward")
    d = int(np.prod(shape))
    X, events, shadows = [], [], []
    acts, rews, props, elig, clock, learned, rank, ts = [], [], [], [], [], [], [], []
    for i, r in enumerate(records):
        eid = r.get("event_id")
        ctx = r.get("context")
        flat = np.asarray(ctx if not isinstance(ctx, str) else json.loads(ctx), dtype=np.float64)
        if flat.size != d:
            raise _row_error(i, eid, f"context has {flat.size} numbers; expected {d}")
        if not np.isfinite(flat).all():
            raise _row_error(i, eid, "context has NaN or infinite numbers")
        a = r.get("action")
        if r.get("action_value") is not None:
            raise _row_error(i, eid, "a structured action ('levels') cannot be evaluated here")
        kw = r.get("extras", r.get("keywords"))
        if isinstance(kw, str) and '"cohort"' in kw and "cohort" in json.loads(kw):
            raise _row_error(
                i,
                eid,
                "a case of a cohort (an 'allocation' policy, coupled by capacities) "
                "cannot be evaluated here",
            )
        if a is None or isinstance(a, bool) or not float(a).is_integer() or not 0 <= a < n_actions:
            raise _row_error(i, eid, f"action {a!r} is not an action id in [0, {n_actions})")
        p = r.get("propensity")
        if p is None or (isinstance(p, float) and math.isnan(p)):
            raise _row_error(i, eid, "the propensity (probability of the logged action) is missing")
        if not 0.0 < float(p) <= 1.0:
            raise _row_error(i, eid, f"the propensity must be in (0, 1]; got {p!r}")
        rew = r.get("reward")
        if rew is None or not math.isfinite(float(rew)):
            raise _row_error(i, eid, f"the reward must be a finite number; got {rew!r}")
        mask = np.ones(n_actions, dtype=bool)
        el = r.get("eligible")
        if el is not None:
            ids = json.loads(el) if isinstance(el, str) else list(el)
            if any(not 0 <= int(e) < n_actions for e in ids):
                raise _row_error(i, eid, f"eligible ids {ids} are not all in [0, {n_actions})")
            mask[:] = False
            mask[[int(e) for e in ids]] = True
        X.append(flat.reshape(shape))
        acts.append(int(a))
        rews.append(float(rew))
        props.append(float(p))
        elig.append(mask)
        seq = r.get("seq")
        seq = i + 1 if seq is None else int(seq)
        mv = r.get("model_version")
        # the decision's clock: the served model had learned the events with seq <= its
        # model_version; without it, the outcome is learned right after its own row
        clock.append(float(mv) + 0.5 if mv is not None else float(seq) - 0.5)
        learned.append(float(seq))
        rank.append(seq)
        ts.append(float(r.get("timestamp") or 0.0))
        value = r.get("value")
        if value is not None and not isinstance(value, str):
            value = json.dumps([float(v) for v in value])
        cost = r.get("cost")
        if cost is not None and not isinstance(cost, str):
            cost = json.dumps([float(c) for c in cost])
        events.append(
            JoinedEvent(
                seq,
                str(eid),
                json.dumps(X[-1].tolist()),
                int(a),
                float(rew),
                value=value or json.dumps([float(rew)]),
                cost=cost,
                info=r.get("info"),
                extras=r.get("extras"),
                reward_extras=r.get("reward_extras"),
            )
        )
        sh = r.get("shadow")
        shadows.append(json.loads(sh) if isinstance(sh, str) else sh)
    order = np.lexsort((np.asarray(ts), np.asarray(clock)))  # decision order
    take = [int(k) for k in order]
    return ServiceLogs(
        events=[events[k] for k in take],
        contexts=np.asarray(X, dtype=np.float64)[order],
        actions=np.asarray(acts, dtype=np.int64)[order],
        rewards=np.asarray(rews)[order],
        propensities=np.asarray(props)[order],
        eligible=np.asarray(elig, dtype=bool)[order],
        clock=np.asarray(clock)[order],
        learned_at=np.asarray(learned)[order],
        learn_rank=np.asarray(rank)[order],
        timestamps=np.asarray(ts)[order],
        n_actions=n_actions,
        config=config,
        shadows=[shadows[k] for k in take],
    )


def read_store(store: EventStore, config: ServiceConfig | None = None) -> ServiceLogs:
    """The learned events of an event store (``config``: the served configuration; default
    the store's active version)."""
    if config is None:
        from scarce.serve.versions import stored_config

        config = stored_config(store)
        if config is None:
            raise LogError("the store has no policy configuration; pass the served --policy")
    shape = (
        (config.n_features,)
        if config.features == "shared"
        else (
            config.n_actions,
            config.n_features,
        )
    )
    records = [dict(zip(LOG_COLUMNS, row, strict=True)) for row in store.logged_rows()]
    return _logs_from_records(records, config.n_actions, shape, config)


def read_parquet(path: str | Path) -> ServiceLogs:
    """Logs from a Parquet file of ``scarce export-logs`` (or any logged-bandit Parquet with
    ``context, action, reward, propensity``; without ``seq``/``model_version`` each outcome is
    learned right after its own row)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = {"context", "action", "reward", "propensity"} - set(table.column_names)
    if missing:
        raise LogError(f"{str(path)!r} lacks the column(s) {sorted(missing)}")
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    config = None
    if "scarce.config" in meta:
        config = config_from_dict(json.loads(meta["scarce.config"]))
    rename = {"reward_vector": "value", "keywords": "extras", "feedback": "reward_extras"}
    records = [{rename.get(k, k): v for k, v in row.items()} for row in table.to_pylist()]
    if config is not None:
        n_actions = config.n_actions
    elif "scarce.n_actions" in meta:
        n_actions = int(meta["scarce.n_actions"])
    else:
        n_actions = 1 + max(int(r["action"]) for r in records if r.get("action") is not None)
    if "scarce.context_shape" in meta:
        shape = tuple(int(v) for v in meta["scarce.context_shape"].split(","))
    else:
        shape = (len(records[0]["context"]),) if records else (0,)
    return _logs_from_records(records, n_actions, shape, config)


def _candidate_ledger(config: ServiceConfig) -> Ledger | None:
    from scarce.serve.active import budget_rules

    rules = budget_rules(config)
    if not rules.active:
        return None
    return Ledger(np.asarray(rules.totals), rules.cost_bound)


def progressive_pi(logs: ServiceLogs, config: ServiceConfig) -> tuple[np.ndarray, int]:
    """``(pi (n, K), number of events the candidate failed to learn)``: the candidate's
    distribution at every logged row, learning as it would have beside the served policy."""
    from scarce.ope.progressive import progressive_distributions

    traits = config.traits
    if traits.action_type != "discrete" or not traits.has_probabilities:
        raise ValueError(
            f"{config.policy_type} does not report action probabilities; it cannot be evaluated"
        )
    if config.n_actions != logs.n_actions:
        raise ValueError(f"n_actions = {config.n_actions}; the logs have {logs.n_actions} actions")
    want = logs.contexts.shape[1:]
    have = (
        (config.n_features,)
        if config.features == "shared"
        else (
            config.n_actions,
            config.n_features,
        )
    )
    if tuple(want) != have:
        raise ValueError(
            f"contexts of the logs have shape {list(want)}; the candidate takes {list(have)}"
        )
    policy = config.make_policy()
    feedback = Feedback(traits, config.seed)
    ledger = _candidate_ledger(config)
    failed = [0]

    def learn(j: int) -> None:
        try:
            with np.errstate(all="ignore"):
                feedback.learn(policy, logs.events[j])
        except Exception:  # noqa: BLE001 - the service would quarantine it: count and go on
            failed[0] += 1

    def distribution(i: int) -> np.ndarray:
        mask = logs.eligible[i].copy()
        if ledger is not None:
            mask &= ledger.affordable()
        ctx = case_arrays(logs.events[i].extras)
        with np.errstate(all="ignore"):
            p = policy.action_probabilities(logs.contexts[i][None], eligible=mask[None], **ctx)[0]
        p = np.where(mask, p, 0.0)
        if ledger is not None:  # book the expected spend of this decision
            K = logs.n_actions
            ledger.settle(np.arange(K), p[:, None] * ledger.cost_bound, reserved=False)
        return p

    pi = progressive_distributions(
        logs.n_actions, logs.clock, logs.learned_at, distribution, learn, logs.learn_rank
    )
    return pi, failed[0]


def _logged_data(logs: ServiceLogs, rows: np.ndarray | None = None) -> Any:
    from scarce.ope import LoggedData

    idx = np.arange(logs.n) if rows is None else rows
    return LoggedData(
        contexts=logs.contexts[idx],
        actions=logs.actions[idx],
        rewards=logs.rewards[idx],
        propensities=logs.propensities[idx],
        n_actions=logs.n_actions,
        timestamps=logs.timestamps[idx],
    )


@dataclass
class Evaluation:
    """What :func:`evaluate_candidates` found: ``table`` (the columns of
    ``evaluation.csv``), ``curves`` (running estimates: ``candidate, n_events, estimator,
    value, ci_low, ci_high``) and per-candidate notes (events it failed to learn, shadow
    agreement)."""

    table: pd.DataFrame
    curves: pd.DataFrame
    notes: dict[str, dict[str, Any]]
    estimators: tuple[str, ...]


def _on_policy(logs: ServiceLogs, alpha: float) -> dict[str, Any]:
    from scipy.stats import norm

    r = logs.rewards
    se = float(r.std(ddof=1) / math.sqrt(r.size)) if r.size > 1 else float("nan")
    z = float(norm.ppf(1 - alpha / 2))
    m = float(r.mean())
    return {"value": m, "ci_low": m - z * se, "ci_high": m + z * se, "n_events": int(r.size)}


def evaluate_candidates(
    logs: ServiceLogs,
    candidates: dict[str, ServiceConfig],
    *,
    estimators: Sequence[str] = ESTIMATORS,
    alpha: float = 0.05,
    seed: int = 0,
    n_points: int = 20,
    shadows: bool = True,
) -> Evaluation:
    """Estimate each candidate's value on ``logs`` (see the module doc), plus the logged
    policy's own (``(logged)``, estimator ``on_policy``: the mean logged reward) and, with
    ``shadows``, each logged shadow's (``shadow:NAME``)."""
    from scarce.ope import evaluate
    from scarce.ope.progressive import running_estimates

    estimators = tuple(estimators)
    data = _logged_data(logs)
    rows: list[dict[str, Any]] = []
    curves = []
    notes: dict[str, dict[str, Any]] = {}
    kw = {"alpha": alpha, "seed": seed}
    for name, config in candidates.items():
        pi, failed = progressive_pi(logs, config)
        for est_name, e in evaluate(data, pi, list(estimators), **kw).items():
            rows.append(
                {
                    "candidate": name,
                    "estimator": est_name,
                    "value": e.value,
                    "ci_low": e.ci[0],
                    "ci_high": e.ci[1],
                    "n_events": e.n,
                }
            )
        c = running_estimates(data, pi, estimators, n_points=n_points, **kw)
        c.insert(0, "candidate", name)
        curves.append(c)
        notes[name] = {"failed_to_learn": failed, "type": config.policy_type}
    rows.append({"candidate": "(logged)", "estimator": "on_policy", **_on_policy(logs, alpha)})
    if shadows:
        rows.extend(_shadow_rows(logs, estimators, notes, kw))
    table = pd.DataFrame(rows, columns=COLUMNS)
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return Evaluation(table, curves_df, notes, estimators)


def _shadow_rows(
    logs: ServiceLogs, estimators: tuple[str, ...], notes: dict[str, dict[str, Any]], kw: dict
) -> list[dict[str, Any]]:
    from scarce.ope import evaluate

    names = sorted({n for s in logs.shadows if s for n in s})
    out = []
    for name in names:
        rows, pis, agree = [], [], []
        for i, s in enumerate(logs.shadows):
            entry = (s or {}).get(name)
            if not entry:
                continue
            # (a catalog shadow logs the support of its distribution, not K probabilities)
            pi = dense_distribution(
                entry.get("support", entry.get("probabilities")), logs.n_actions
            )
            if pi is None:
                continue
            rows.append(i)
            pis.append(pi)
            agree.append(entry.get("action") == int(logs.actions[i]))
        if len(rows) < 2:
            continue
        idx = np.asarray(rows)
        pi = np.asarray(pis, dtype=np.float64)
        for est_name, e in evaluate(_logged_data(logs, idx), pi, list(estimators), **kw).items():
            out.append(
                {
                    "candidate": f"shadow:{name}",
                    "estimator": est_name,
                    "value": e.value,
                    "ci_low": e.ci[0],
                    "ci_high": e.ci[1],
                    "n_events": e.n,
                }
            )
        same = idx[np.asarray(agree, dtype=bool)]
        if same.size > 1:
            r = logs.rewards[same]
            from scipy.stats import norm

            se = float(r.std(ddof=1) / math.sqrt(r.size))
            z = float(norm.ppf(1 - kw["alpha"] / 2))
            out.append(
                {
                    "candidate": f"shadow:{name}",
                    "estimator": "where_agreed",
                    "value": float(r.mean()),
                    "ci_low": float(r.mean()) - z * se,
                    "ci_high": float(r.mean()) + z * se,
                    "n_events": int(same.size),
                }
            )
        notes[f"shadow:{name}"] = {"agreement": float(np.mean(agree)), "n_events": len(rows)}
    return out


def candidates_from_files(
    paths: Sequence[str | Path], served: ServiceConfig | None
) -> dict[str, ServiceConfig]:
    """Candidate configurations by name (the file's stem), each on the served configuration's
    ``[service]`` and budgets when those are known."""
    import tomllib

    from scarce.serve.versions import candidate_config

    out: dict[str, ServiceConfig] = {}
    for p in paths:
        path = Path(p)
        doc = tomllib.loads(path.read_text())
        if path.stem in out:
            raise ValueError(f"two candidates are named {path.stem!r}; rename one file")
        cfg = candidate_config(served, doc) if served is not None else config_from_dict(doc)
        if cfg.traits.action_type == "allocation":
            raise ValueError(
                f"candidate {path.stem!r} is an 'allocation' policy: its decisions are coupled "
                "across a cohort, which per-case estimators cannot judge"
            )
        out[path.stem] = cfg
    return out


def evaluation_figure(result: Evaluation) -> Any:
    """Each candidate's running estimate over the log with its interval (one panel per
    estimator), the logged policy's on-policy value dashed."""
    from scarce.sim.plot import new_figure

    ests = list(result.estimators)
    fig, axes = new_figure(1, len(ests), width=4.5, height=3.4)
    logged = result.table[result.table["candidate"] == "(logged)"]
    for ax, est in zip(axes[0], ests, strict=True):
        if not result.curves.empty:
            curves = result.curves[result.curves["estimator"] == est]
            for name, c in curves.groupby("candidate", sort=False):
                line = ax.plot(c["n_events"], c["value"], label=name)[0]
                ax.fill_between(
                    c["n_events"], c["ci_low"], c["ci_high"], color=line.get_color(), alpha=0.15
                )
        if not logged.empty:
            value = float(logged["value"].iloc[0])
            ax.axhline(value, color="k", ls="--", lw=1, label="logged policy")
        ax.set_title(est.upper())
        ax.set_xlabel("logged events")
        ax.set_ylabel("estimated value")
    axes[0][0].legend(fontsize="small")
    return fig


def write_evaluation(result: Evaluation, out: str | Path) -> dict[str, Path]:
    """Write ``evaluation.csv``, ``curves.csv`` and ``evaluation.png``
    (:func:`evaluation_figure`) to the directory ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "evaluation": out / "evaluation.csv",
        "curves": out / "curves.csv",
        "plot": out / "evaluation.png",
    }
    result.table.to_csv(paths["evaluation"], index=False)
    result.curves.to_csv(paths["curves"], index=False)
    evaluation_figure(result).savefig(paths["plot"], dpi=110)
    return paths


def guard_check(
    store: EventStore,
    current: ServiceConfig,
    candidate: ServiceConfig,
    *,
    estimator: str = "snips",
    alpha: float = 0.05,
    min_events: int = 30,
) -> dict[str, Any]:
    """Whether ``candidate`` may replace ``current``: on the store's logs, the candidate's
    lower confidence bound must beat the current configuration's estimate (same estimator,
    both evaluated progressively). Returns ``passed``, ``reason`` and the figures."""
    logs = read_store(store, current)
    if logs.n < min_events:
        return {
            "passed": False,
            "reason": f"only {logs.n} learned events in the logs (the guard needs {min_events})",
            "estimator": estimator,
            "n_events": logs.n,
        }
    ev = evaluate_candidates(
        logs,
        {"current": current, "candidate": candidate},
        estimators=[estimator],
        alpha=alpha,
        n_points=2,
        shadows=False,
    )
    t = ev.table.set_index("candidate")
    cand, cur = t.loc["candidate"], t.loc["current"]
    passed = bool(cand["ci_low"] > cur["value"])
    figures = {
        "candidate": {k: float(cand[k]) for k in ("value", "ci_low", "ci_high")},
        "current": {k: float(cur[k]) for k in ("value", "ci_low", "ci_high")},
    }
    reason = (
        f"{estimator}: the candidate's lower bound {cand['ci_low']:.4g} "
        + ("beats" if passed else "does not beat")
        + f" the current policy's estimate {cur['value']:.4g} ({logs.n} events)"
    )
    return {
        "passed": passed,
        "reason": reason,
        "estimator": estimator,
        "n_events": logs.n,
        **figures,
    }
