"""mkdocs hooks (``hooks:`` in mkdocs.yml).

Docstrings cross-reference with Sphinx roles (``:class:`~scarce.envs.Environment```), which
mkdocstrings renders literally. After a page is converted, each role becomes an optional
cross-reference: a link when the target is documented under that name, plain code otherwise
(``optional``: never a warning). ``~`` shows only the last component, as in Sphinx.
"""

from __future__ import annotations

import html
import re
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


def on_page_content(html_text: str, **kwargs: Any) -> str:
    return _ROLE.sub(_autoref, html_text)
