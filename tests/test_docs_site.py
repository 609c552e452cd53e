"""The documentation site builds with warnings as errors, and its API reference is complete.

``mkdocs build --strict`` (mkdocs.yml) into a temporary folder: any warning (a broken link, a
missing page, a griffe warning on a docstring, a cross-reference that does not resolve) fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_tool():
    spec = importlib.util.spec_from_file_location("scarce_docs_tool", ROOT / "tools" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs_tool = _load_tool()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _inventory(site: Path) -> set[str]:
    """Object names in the site's objects.inv (Sphinx inventory v2: 4 text lines, then zlib)."""
    raw = (site / "objects.inv").read_bytes()
    for _ in range(4):
        raw = raw[raw.index(b"\n") + 1 :]
    return {line.split(" ", 1)[0] for line in zlib.decompress(raw).decode().splitlines() if line}


def test_api_pages_are_current() -> None:
    stale = docs_tool.write_api(check=True)
    assert stale == [], f"{stale} out of date: run `python tools/docs.py api`"


def test_site_builds_strict_with_every_page(site: Path) -> None:
    for page in ["index.html", "configs/index.html", "api/index.html", "drift/index.html"]:
        assert (site / page).is_file(), page
    home = (site / "index.html").read_text()
    assert 'id="a-tour"' in home  # the README, included as the home page
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in sorted((ROOT / "docs").rglob("*.md")):
        rel = page.relative_to(ROOT / "docs").as_posix()
        assert f" {rel}\n" in nav, f"docs/{rel} is not in mkdocs.yml's nav"


def test_api_reference_documents_every_exported_name(site: Path) -> None:
    names = _inventory(site)
    packages = [module_name for _, module_name in docs_tool.api_modules()]
    missing = []
    for module_name in packages:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", docs_tool._defined_here(module)):
            obj = getattr(module, name)
            canonical = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            # documented under the first package that exports it (tools/docs.py), or under
            # its own module when a submodule of the same name shadows it
            if canonical not in names and not any(f"{p}.{name}" in names for p in packages):
                missing.append(f"{module_name}.{name}")
    assert missing == []


def test_roles_become_code_or_links(site: Path) -> None:
    html = (site / "api" / "sim" / "index.html").read_text()
    assert ":func:" not in html and ":class:" not in html
    assert 'href="../envs/#scarce.envs.make_env"' in html  # a resolved :func: reference


def test_files_the_pages_name_exist() -> None:
    """A page that names a test, benchmark or source file names one that exists."""
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        pattern = r"`((?:tests|benchmarks|src|docs|tools)/[\w/.\-]*\w)`"
        for path in re.findall(pattern, page.read_text()):
            if re.search(r"/[A-Z]+(/|\.|$)", path):
                continue  # a placeholder such as docs/results/NAME/
            if not (ROOT / path).exists():
                missing.append(f"{page.name}: {path}")
    assert missing == []
