"""``scarce ope LOGS.parquet --policy ...``: off-policy estimates with intervals, as a table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

#: ``--policy`` values that name a built-in target instead of a saved policy
BUILTIN_TARGETS = ("uniform",)


def _target(spec: str, data: Any) -> tuple[str, Any]:
    import numpy as np

    if spec == "uniform":
        return spec, np.full((data.n, data.n_actions), 1.0 / data.n_actions)
    path = Path(spec)
    if not path.exists():
        raise ValueError(
            f"--policy {spec!r} is neither a built-in target ({', '.join(BUILTIN_TARGETS)}) nor "
            "the folder of a saved scarce policy (policy.save(path))"
        )
    from scarce.core.policy import load

    policy = load(path)
    if not hasattr(policy, "action_probabilities"):
        raise ValueError(f"{spec!r} holds a {type(policy).__name__}, not a scarce policy")
    return path.name, policy


def register(app: typer.Typer) -> None:
    """Add the ``ope`` command to the ``scarce`` app."""

    @app.command("ope")
    def ope_command(
        logs: Annotated[Path, typer.Argument(help="Logged data (.parquet, scarce.ope schema).")],
        policy: Annotated[
            list[str],
            typer.Option(
                help="Target policy: 'uniform' or the folder of a saved scarce policy "
                "(repeat for several).",
            ),
        ],
        estimator: Annotated[
            list[str] | None,
            typer.Option(help="Estimator(s); default all (replay only for deterministic)."),
        ] = None,
        ci: Annotated[str, typer.Option(help="Interval: normal or bootstrap.")] = "normal",
        alpha: Annotated[float, typer.Option(help="Miscoverage of the intervals.")] = 0.05,
        n_bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
        max_weight: Annotated[float, typer.Option(help="Clipping level of clipped IPS.")] = 100.0,
        tau: Annotated[float, typer.Option(help="Weight threshold of switch-DR.")] = 100.0,
        folds: Annotated[int, typer.Option(help="Cross-fitting folds of the reward model.")] = 2,
        seed: Annotated[int, typer.Option(help="Seed of folds and bootstrap.")] = 0,
    ) -> None:
        """Estimate target policies' values from logged data; print a table with intervals."""
        from rich.console import Console
        from rich.table import Table

        from scarce.ope.data import LoggedData
        from scarce.ope.estimators import evaluate

        console, err = Console(), Console(stderr=True)

        def fail(message: str) -> None:
            err.print(f"[bold red]Error:[/] {message}", highlight=False)
            raise typer.Exit(code=2)

        if not logs.is_file():
            fail(f"no such file: {logs}")
        try:
            data = LoggedData.from_parquet(logs)
        except (ValueError, OSError) as exc:
            fail(f"{logs}: {exc}")
            return
        table = Table(
            title=f"{logs.name}: {data.n} logged decisions, {data.n_actions} actions; "
            f"{100 * (1 - alpha):.0f}% {ci} intervals"
        )
        for col in ("policy", "estimator", "value", "ci low", "ci high", "se", "notes"):
            table.add_column(col, justify="left" if col in ("policy", "estimator") else "right")
        for spec in policy:
            try:
                name, target = _target(spec, data)
                results = evaluate(
                    data,
                    target,
                    estimator or None,
                    ci=ci,
                    alpha=alpha,
                    n_bootstrap=n_bootstrap,
                    seed=seed,
                    max_weight=max_weight,
                    tau=tau,
                    n_folds=folds,
                )
            except (ValueError, TypeError, FileNotFoundError) as exc:
                fail(str(exc))
                return
            for est in results.values():
                notes = []
                if "effective_sample_size" in est.details:
                    notes.append(f"ESS {est.details['effective_sample_size']:.0f}")
                if "n_matched" in est.details:
                    notes.append(f"matched {est.details['n_matched']}")

                def fmt(v: float) -> str:
                    return "n/a" if math.isnan(v) else f"{v:.5g}"

                table.add_row(
                    name,
                    est.estimator,
                    fmt(est.value),
                    fmt(est.ci[0]),
                    fmt(est.ci[1]),
                    fmt(est.se),
                    ", ".join(notes),
                )
        console.print(table)
