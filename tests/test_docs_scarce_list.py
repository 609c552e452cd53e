"""``scarce list`` names the extra a data set needs (issue 20, item 4)."""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

import scarce.cli as cli
from scarce.envs import DATASETS, get_envs


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # wide enough that no table cell wraps, so a cell's text can be searched for whole
    monkeypatch.setattr(cli, "console", Console(width=400))


def test_list_says_which_extra_a_dataset_needs(wide_console: None) -> None:
    needing = {name: info["needs_extra"] for name, info in DATASETS.items() if info["needs_extra"]}
    assert needing, "no bundled data set needs an extra any more; this test needs a new case"
    result = CliRunner().invoke(cli.app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name, extra in needing.items():
        install = f"pip install 'scarce[{extra}]'"
        rows = [line for line in lines if line.startswith(f"│ {name} ")]
        # one row in the environments table, one in the data sets table
        assert len(rows) == 2, rows
        for row in rows:
            assert install in row, row
    assert "pip install 'scarce'" not in result.output


def test_registry_line_names_the_extra() -> None:
    entry = get_envs()["mnist-small"]
    assert entry.needs_extra == "data"
    assert entry.line().endswith("(needs: pip install 'scarce[data]')")
