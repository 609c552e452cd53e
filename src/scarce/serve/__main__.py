"""``python -m scarce.serve [serve|export-logs|replay|api-key] ...``: the service commands
without loading the rest of the ``scarce`` CLI (faster start for service processes)."""

import typer

from scarce.serve.commands import register

app = typer.Typer(name="scarce.serve", no_args_is_help=True, add_completion=False)
register(app)

if __name__ == "__main__":  # pragma: no cover
    app(prog_name="python -m scarce.serve")
