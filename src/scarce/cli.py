"""``scarce`` command line: thin, it parses, calls the library and prints.

* ``scarce run NAME|CONFIG.toml [--horizon INT] [--seeds INT] [--out DIR] [--jobs INT]
  [--backend local|ray] [--address ADDR]``
* ``scarce list``
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(
    name="scarce",
    help="Contextual bandits for scarce resources: run experiments, list what is available.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
err_console = Console(stderr=True)

#: exit code for bad names and settings (like a usage error)
USAGE_ERROR = 2


def _fail(message: str) -> None:
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False)
    raise typer.Exit(code=USAGE_ERROR)


def _pm(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "n/a"
    digits = 1 if abs(mean) >= 10 else 3
    return f"{mean:.{digits}f}" if math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


@app.command("run")
def run_command(
    experiment: Annotated[
        str, typer.Argument(help="Registered experiment name or path of a .toml config.")
    ],
    horizon: Annotated[
        int | None, typer.Option(help="Cases decided per run (default: the experiment's).")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="Number of seeds (default: the experiment's).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: results/NAME).")] = None,
    jobs: Annotated[
        int | None, typer.Option(help="Worker processes (default: min(2, CPUs)).")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(help="Where runs execute: 'local' processes or 'ray' (pip install ray)."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster address ('auto', 'ray://host:10001'); default: a local Ray cluster."
        ),
    ] = None,
) -> None:
    """Run an experiment; write summary.csv, its tables (.parquet) and figures (.png)."""
    from scarce.sim.experiments import ExperimentError, aggregate, get_experiment, run_experiment

    try:
        exp = get_experiment(experiment, horizon=horizon, seeds=seeds)
    except ExperimentError as exc:
        _fail(str(exc))
        return
    out_dir = out if out is not None else Path("results") / exp.name
    bar = Progress(
        TextColumn(f"[bold]{escape(exp.name)}[/] runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )
    task = bar.add_task("runs", total=None)

    def progress(done: int, total: int) -> None:
        # started on the first report, so that errors found before the runs show no bar
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)

    try:
        summary, paths = run_experiment(
            exp, out=out_dir, n_jobs=jobs, progress=progress, backend=backend, address=address
        )
    except ExperimentError as exc:
        _fail(str(exc))
        return
    finally:
        bar.stop()

    metrics = getattr(exp, "table_metrics", ("cumulative_reward", "cumulative_regret"))
    table = Table(title=f"{exp.name}: mean ± sd over seeds")
    for col in ("env", "policy", "seeds", *(m.replace("_", " ") for m in metrics)):
        table.add_column(col, justify="left" if col in ("env", "policy") else "right")
    for row in aggregate(summary, tuple(metrics)).to_dict("records"):
        if all(math.isnan(row[f"{m}_mean"]) for m in metrics):
            continue  # e.g. a baseline that only some of the experiment's grids include
        table.add_row(
            str(row["env"]),
            str(row["policy"]),
            str(row["n_seeds"]),
            *(_pm(row[f"{m}_mean"], row[f"{m}_sd"]) for m in metrics),
        )
    console.print(table)
    for kind, path in paths.items():
        console.print(f"{kind:>8}: {path}", highlight=False)


@app.command("list")
def list_command() -> None:
    """List experiments, policies, environments and data sets."""
    from scarce.envs import DATASETS, get_envs
    from scarce.policies import get_policies
    from scarce.sim.experiments import load_capability_experiments

    t = Table(title="Experiments (scarce run NAME)")
    t.add_column("name")
    t.add_column("horizon", justify="right")
    t.add_column("seeds", justify="right")
    t.add_column("description")
    for name, exp in load_capability_experiments().items():
        t.add_row(escape(name), str(exp.horizon), str(exp.seeds), escape(exp.description))
    console.print(t)

    t = Table(title=escape("Policies ([[policies]] name = ...)"))
    t.add_column("name")
    t.add_column("parameters (defaults)")
    t.add_column("summary")
    for name, cls in get_policies().items():
        params = [
            f"{p.name}={p.default!r}"
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name not in ("self", "n_actions", "n_features", "seed")
        ]
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        t.add_row(escape(name), escape(", ".join(params)), escape(doc))
    console.print(t)

    t = Table(title=escape("Environments ([[envs]] name = ...)"))
    t.add_column("name")
    t.add_column("description")
    for name, entry in get_envs().items():
        # escaped: rich would read "[data]" in "scarce[data]" as a style tag and drop it
        t.add_row(escape(name), escape(entry.line()))
    console.print(t)

    t = Table(title="Data sets")
    t.add_column("name")
    t.add_column("n", justify="right")
    t.add_column("d", justify="right")
    t.add_column("K", justify="right")
    t.add_column("needs")
    t.add_column("licence")
    for name, info in DATASETS.items():
        extra = info.get("needs_extra")
        t.add_row(
            name,
            str(info.get("n", "")),
            str(info.get("d", "")),
            str(info.get("K", "")),
            escape(f"pip install 'scarce[{extra}]'") if extra else "-",
            str(info.get("licence", "")),
        )
    console.print(t)


#: modules that add sub-commands: each defines ``register(app: typer.Typer) -> None`` and
#: imports its heavy dependencies inside the commands, so ``scarce --help`` stays fast. A module
#: that is not there (capability not built) is skipped.
COMMAND_MODULES: tuple[str, ...] = (
    "scarce.ope.commands",
    "scarce.serve.commands",
)


def _register_commands() -> None:
    from scarce.core.plugins import import_if_present

    for name in COMMAND_MODULES:
        module = import_if_present(name)
        if module is not None:
            module.register(app)


_register_commands()


def main() -> None:
    """Entry point for ``python -m scarce``."""
    app(prog_name="scarce")


if __name__ == "__main__":  # pragma: no cover
    main()
