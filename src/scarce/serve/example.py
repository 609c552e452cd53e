"""The production loop end to end, on a real data set through the HTTP service.

1. A uniformly random policy is served (``scarce serve``'s app under uvicorn, on loopback)
   with a budget; a real data set (scikit-learn's breast-cancer diagnoses by default: action
   0 = "malignant: refer to a biopsy", which costs one unit of a limited biopsy budget,
   action 1 = "benign") is replayed through ``POST /v1/decisions``; each outcome (1 for the
   right call) is posted ``delay`` decisions later, as rewards arrive in practice; the joiner
   runs every ``sync_every`` decisions (so that a run is reproducible).
2. Candidate configurations are evaluated from the service's logs
   (:func:`scarce.serve.evaluate.evaluate_candidates`, under the budget).
3. The best (highest lower confidence bound) is promoted through ``POST /v1/promotions``,
   guarded: its lower bound must beat the served policy's estimate.
4. Serving goes on; the reward rate before and after the promotion is what the plot shows.

``scarce run serve-loop`` runs it as an experiment; :func:`run_production_loop` is the
library call (docs/serve.md has the example).
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: the candidates judged by default (a name, and the policy keys of its TOML)
DEFAULT_CANDIDATES: dict[str, dict[str, Any]] = {
    "linucb": {"type": "LinUCB", "alpha": 0.5},
    "lints": {"type": "LinTS", "v": 0.2},
    "epsilon-greedy": {"type": "EpsilonGreedy", "epsilon": 0.1},
}


@dataclass
class LoopResult:
    """What :func:`run_production_loop` found.

    Attributes
    ----------
    evaluation:
        the candidates' :class:`~scarce.serve.evaluate.Evaluation` on the phase-1 logs.
    promoted:
        the promoted candidate's name (None if the guard refused the best one).
    promotion:
        the answer of ``POST /v1/promotions`` (or its refusal).
    rewards:
        one row per decision: ``step``, ``phase`` (``before``/``after``), ``policy_version``,
        ``action``, ``reward``.
    budget, spent:
        the biopsy budget and what was spent of it.
    """

    evaluation: Any
    promoted: str | None
    promotion: dict[str, Any]
    rewards: pd.DataFrame
    budget: float
    spent: float

    def rate(self, phase: str) -> float:
        """Mean reward of the decisions of ``phase`` (``"before"`` or ``"after"``)."""
        r = self.rewards
        return float(r.loc[r["phase"] == phase, "reward"].mean())

    def figure(self, window: int = 100) -> Any:
        """Reward rate over the decisions (a moving average), the promotion marked."""
        from scarce.sim.plot import new_figure

        fig, axes = new_figure(1, 1, width=6.5, height=3.6)
        ax = axes[0][0]
        r = self.rewards
        ax.plot(r["step"], r["reward"].rolling(window, min_periods=10).mean(), lw=1.5)
        cut = int(r.loc[r["phase"] == "after", "step"].min())
        ax.axvline(cut, color="k", ls="--", lw=1)
        for phase, lo, hi in (("before", 0, cut), ("after", cut, int(r["step"].max()))):
            ax.hlines(self.rate(phase), lo, hi, colors="tab:red", lw=1)
            ax.text(
                (lo + hi) / 2, self.rate(phase), f"{self.rate(phase):.2f}", ha="center", va="bottom"
            )
        label = f"promoted: {self.promoted}" if self.promoted else "no promotion"
        ax.set_title(f"reward rate (moving mean of {window}); {label}")
        ax.set_xlabel("decision")
        ax.set_ylabel("reward")
        ax.set_ylim(0, 1.05)
        return fig


class _Server:
    """The service's app under uvicorn on a loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def run_production_loop(
    *,
    dataset: str = "breast-cancer",
    n_before: int = 600,
    n_after: int = 600,
    delay: int = 25,
    budget_share: float = 0.45,
    candidates: dict[str, dict[str, Any]] | None = None,
    estimator: str = "dr",
    seed: int = 0,
    workdir: str | Path | None = None,
    sync_every: int = 10,
) -> LoopResult:
    """Run the loop of the module docstring.

    Parameters
    ----------
    dataset:
        a registered supervised environment (``scarce list``; 0/1 rewards: the right label).
    n_before, n_after:
        decisions served before and after the promotion.
    delay:
        a decision's reward is posted this many decisions later.
    budget_share:
        the budget of action 0 (cost 1 per decision) as a share of all decisions.
    candidates:
        name -> policy keys (``type`` and its parameters); default :data:`DEFAULT_CANDIDATES`.
    estimator:
        the estimator that ranks the candidates and guards the promotion.
    seed:
        the seed of the contexts, the served policy and the candidates.
    workdir:
        where the event store is written (default: a temporary directory, removed after).
    sync_every:
        the joiner and learner run after every this many decisions (``scarce serve`` runs
        them every ``sync_interval`` seconds; counting decisions makes a run reproducible).
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="scarce-loop-") as tmp:
            return run_production_loop(
                dataset=dataset, n_before=n_before, n_after=n_after, delay=delay,
                budget_share=budget_share, candidates=candidates, estimator=estimator,
                seed=seed, workdir=tmp, sync_every=sync_every,
            )  # fmt: skip
    import httpx

    from scarce.envs import make_env
    from scarce.serve.app import create_app
    from scarce.serve.auth import KeyVerifier, hash_key, new_key
    from scarce.serve.config import config_from_dict
    from scarce.serve.evaluate import evaluate_candidates, read_store
    from scarce.serve.service import DecisionService
    from scarce.serve.store import EventStore
    from scarce.serve.versions import candidate_config

    env = make_env(dataset, seed=seed)
    K, d = env.n_actions, env.n_features
    budget = float(round(budget_share * (n_before + n_after)))
    served = config_from_dict(
        {
            "type": "Random",
            "n_actions": K,
            "n_features": d,
            "seed": seed,
            "service": {"sync_interval": 0.0, "snapshot_every": 0},
            "budgets": {"biopsies": {"total": budget, "costs": [1.0] + [0.0] * (K - 1)}},
        }
    )
    store = EventStore(f"sqlite:///{Path(workdir) / 'loop.db'}", sqlite_synchronous="NORMAL")
    service = DecisionService(served, store)
    key = new_key()
    # the joiner runs every `sync_every` decisions (not on a clock), so that a run is
    # reproducible: what the served model had learned at each decision is fixed
    app = create_app(service, keys=KeyVerifier([hash_key(key)]))
    rng = np.random.default_rng(seed)
    X = env.contexts(n_before + n_after, rng)
    truth = env.expected_rewards(X)  # one-hot of the label: the outcome of every action
    rows: list[dict[str, Any]] = []
    cands = candidates or DEFAULT_CANDIDATES
    try:
        with (
            _Server(app) as server,
            httpx.Client(
                base_url=f"http://127.0.0.1:{server.port}", headers={"X-API-Key": key}, timeout=60
            ) as client,
        ):
            pending: list[tuple[int, int]] = []

            def serve(start: int, stop: int, phase: str) -> None:
                for i in range(start, stop):
                    r = client.post(
                        "/v1/decisions", json={"context": X[i].tolist(), "event_id": f"c{i}"}
                    )
                    r.raise_for_status()
                    a = int(r.json()["action"])
                    rows.append(
                        {"step": i, "phase": phase, "policy_version": r.json()["policy_version"],
                         "action": a, "reward": float(truth[i, a])}
                    )  # fmt: skip
                    pending.append((i, a))
                    while len(pending) > delay:
                        post(*pending.pop(0))
                    if i % sync_every == sync_every - 1:
                        service.sync()

            def post(i: int, a: int) -> None:
                body = {"event_id": f"c{i}", "value": float(truth[i, a])}
                client.post("/v1/rewards", json=body).raise_for_status()

            serve(0, n_before, "before")
            while pending:  # the last outcomes of phase 1 arrive before the evaluation
                post(*pending.pop(0))
            client.post("/v1/snapshots").raise_for_status()  # join and learn what is pending
            configs = {
                name: candidate_config(
                    served, {"n_actions": K, "n_features": d, "seed": seed, **keys}
                )
                for name, keys in cands.items()
            }
            evaluation = evaluate_candidates(read_store(store), configs, estimators=[estimator])
            t = evaluation.table
            ranked = t[t["candidate"].isin(list(configs))].sort_values("ci_low", ascending=False)
            best = str(ranked["candidate"].iloc[0])
            doc = {"n_actions": K, "n_features": d, "seed": seed, **cands[best]}
            answer = client.post(
                "/v1/promotions",
                json={"config": doc, "name": best, "guard": {"estimator": estimator}},
            )
            promoted = best if answer.status_code == 201 else None
            promotion = answer.json()
            serve(n_before, n_before + n_after, "after")
            while pending:
                post(*pending.pop(0))
        spent = budget - store.remaining_budgets()[("biopsies", "")]
    finally:
        store.close()
    return LoopResult(evaluation, promoted, promotion, pd.DataFrame(rows), budget, spent)
