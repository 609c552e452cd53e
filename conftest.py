"""Runs the Python blocks of README.md and docs/*.md as tests (pytest-markdown-docs).

``python -m pytest`` collects ``README.md`` and ``docs/`` (``testpaths`` in pyproject.toml).
The plugin's own switch, ``--markdown-docs``, would also collect the docstrings of every
``.py`` file, importing each test helper a second time under another name (which breaks the
suite's imports); here only Markdown files are collected, with the plugin's collector, so its
fence options hold: a block whose info string says ``python notest`` is a sketch and is not
run; ``python continuation`` runs after the page's previous block, in the same namespace.

Each block runs in its own empty temporary working directory, so the files a page writes
(saved policies, Parquet logs, results folders) never land in the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_markdown_docs.plugin import MarkdownTextFile

#: pages whose blocks do not run as written yet: skipped (shown by ``-ra``) until they are fixed.
#: Remove a page from here as soon as its blocks run; never add a page you can fix.
NOT_YET_RUNNABLE: dict[str, str] = {}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".md" and not parent.config.option.markdowndocs:
        return MarkdownTextFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        if item.get_closest_marker("markdown-docs") is None:
            continue
        try:
            page = item.path.relative_to(root).as_posix()
        except ValueError:
            continue
        if page in NOT_YET_RUNNABLE:
            item.add_marker(pytest.mark.skip(reason=NOT_YET_RUNNABLE[page]))


@pytest.fixture(autouse=True)
def _markdown_block_in_tmp_dir(request: pytest.FixtureRequest) -> None:
    """Documentation blocks run in a fresh temporary working directory."""
    if request.node.get_closest_marker("markdown-docs") is not None:
        tmp = request.getfixturevalue("tmp_path")
        request.getfixturevalue("monkeypatch").chdir(tmp)
