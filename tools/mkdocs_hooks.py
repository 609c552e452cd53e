"""mkdocs hooks (``hooks:`` in mkdocs.yml).

Docstrings cross-reference with Sphinx roles (``:class:`~scarce.envs.Environment```), which
mkdocstrings renders literally. After a page is converted, each role becomes an optional
cross-reference: a link when the target is documented under that name, plain code otherwise
(``optional``: never a warning). ``~`` shows only the last component, as in Sphinx.

Griffe's warnings about the docstrings of a package listed in ``DOCSTRING_WARNINGS_OFF``
(``tools/docs.py``) are dropped, so that the strict build passes while they are being fixed;
every other package's warnings fail the build. (mkdocstrings parses every docstring of
``scarce`` with the options of the first directive it collects, so a per-directive
``warnings: false`` would silence all packages or none.)
"""

from __future__ import annotations

import html
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|data|mod|obj|exc|const):<code>(~?)([^<]+)</code>"
)


def _autoref(match: re.Match[str]) -> str:
    short, target = match.group(1), html.unescape(match.group(2)).strip()
    shown = target.rsplit(".", 1)[-1] if short else target
    ident = target.lstrip(".")
    return (
        f'<autoref identifier="{html.escape(ident)}" optional>'
        f"<code>{html.escape(shown)}</code></autoref>"
    )


def _quiet_paths() -> tuple[str, ...]:
    """Source paths (``scarce/policies/``) of the packages whose docstring warnings are off."""
    spec = importlib.util.spec_from_file_location(
        "scarce_docs_tool", Path(__file__).with_name("docs.py")
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tuple(name.replace(".", "/") + "/" for name in tool.DOCSTRING_WARNINGS_OFF)


class _QuietPackages(logging.Filter):
    def __init__(self, paths: tuple[str, ...]) -> None:
        super().__init__()
        self.paths = paths

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f"src/{p}" in message for p in self.paths)


def on_config(config: Any, **kwargs: Any) -> None:
    griffe_log = logging.getLogger("mkdocs.plugins.griffe")
    for old in [f for f in griffe_log.filters if isinstance(f, _QuietPackages)]:
        griffe_log.removeFilter(old)
    paths = _quiet_paths()
    if paths:
        griffe_log.addFilter(_QuietPackages(paths))


def on_page_content(html_text: str, **kwargs: Any) -> str:
    return _ROLE.sub(_autoref, html_text)
