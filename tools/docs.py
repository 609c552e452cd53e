"""Documentation tooling: the API reference pages, and tables rendered from result files.

Run from the repository root, with scarce importable::

    python tools/docs.py api        # (re)write docs/api/*.md from the packages' contents
    python tools/docs.py render     # (re)write every result block of README.md and docs/*.md
    python tools/docs.py check      # exit 1 if either is out of date (the test suite checks it)
    python tools/docs.py build      # check, then ``mkdocs build --strict`` (what CI does)
    python tools/docs.py record drift -- scarce run drift --out {out}
                                    # run a command; keep what it wrote, with date, load, command

A result is a folder ``docs/results/NAME/``: the files a command wrote (``summary.csv`` by
default), ``meta.json`` (command, date, machine, load, wall and CPU time, commit; written by
``record``) and ``tables.json`` (named views of the files, written by hand). A page quotes a
view between two comments, and ``render`` writes the table between them::

    <!-- result: drift/regret -->
    ... (written by render: the table, then a line saying where and when it was measured)
    <!-- /result -->

``docs/contributing-docs.md`` describes the views and the workflow.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import inspect
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API_DIR = DOCS / "api"
RESULTS = DOCS / "results"

# ---------------------------------------------------------------------------------- API pages

#: the order of the API pages; a package or module of ``scarce`` not named here comes after
#: them, alphabetically. An object exported by several packages is documented at the first.
API_ORDER: tuple[str, ...] = (
    "core", "models", "policies", "envs", "sim", "budget", "structured", "fair", "feedback",
    "pareto", "ope", "drift", "combinatorial", "neural", "serve", "checks", "cli",
)  # fmt: skip


def api_modules() -> list[tuple[str, str]]:
    """(page stem, module name) of every public package and module of ``scarce``."""
    import pkgutil

    import scarce

    found = [m.name for m in pkgutil.iter_modules(scarce.__path__) if not m.name.startswith("_")]
    rank = {name: i for i, name in enumerate(API_ORDER)}
    found.sort(key=lambda n: (rank.get(n, len(rank)), n))
    return [(name, f"scarce.{name}") for name in found]


#: packages whose docstrings still make griffe warn (prose inside numpy sections): the site's
#: hook (tools/mkdocs_hooks.py) drops griffe's warnings about their source files, so that
#: ``mkdocs build --strict`` passes meanwhile. Remove an entry once ``mkdocs build`` shows no
#: griffe warning for that package.
DOCSTRING_WARNINGS_OFF: dict[str, str] = {}


def _defined_here(module: Any) -> list[str]:
    """Public classes and functions a module defines itself (not imported ones), in order."""
    return [
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]


def _submodules(package: Any) -> list[str]:
    import pkgutil

    path = getattr(package, "__path__", None)
    if path is None:
        return []
    return [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(path) if m.name[0] != "_"]


def _directive(module: str, members: list[str] | None, heading_level: int) -> str:
    lines = [f"::: {module}", "    options:", f"      heading_level: {heading_level}"]
    if members is None:
        lines.append("      members: false")
    elif members:
        lines.append("      members:")
        lines += [f"        - {m}" for m in members]
    return "\n".join(lines)


def _first_line(module: Any) -> str:
    """The first paragraph of a docstring as Markdown: Sphinx roles become code."""
    doc = " ".join((inspect.getdoc(module) or "").split("\n\n")[0].split())
    doc = re.sub(r":\w+:`~?([^`]+)`", lambda m: f"`{m.group(1)}`", doc)
    return doc.replace("``", "`")


def api_pages() -> dict[str, str]:
    """The text of every API page: file name -> markdown.

    A package's page renders its ``__all__`` (the names users import), then, per submodule,
    the public classes and functions the submodule defines that no package exports. A module
    without ``__all__`` renders the public classes and functions it defines.
    """
    modules = {stem: importlib.import_module(name) for stem, name in api_modules()}
    exported: set[int] = set()
    for module in modules.values():
        for n in getattr(module, "__all__", ()):
            exported.add(id(getattr(module, n)))
    documented: set[int] = set()
    header = "<!-- written by `python tools/docs.py api`; do not edit by hand -->\n"
    index = [
        header,
        "# API reference",
        "",
        "Generated from the docstrings (numpy style). Each package's page shows what it",
        "exports (`from scarce.policies import LinUCB`), then the public classes and functions",
        "of its modules that the package does not export. `scarce.Decision`, `scarce.Policy`",
        "and `scarce.load` are `scarce.core`'s.",
        "",
        "| module | what it holds |",
        "|---|---|",
    ]
    pages: dict[str, str] = {}
    for stem, module in modules.items():
        name = module.__name__
        own = getattr(module, "__all__", None)
        if own is None:
            own = _defined_here(module)
        members = []
        shadowed = []  # exported under a submodule's name: griffe sees the module there
        submodule_names = {s.rsplit(".", 1)[1] for s in _submodules(module)}
        for n in own:
            obj = getattr(module, n)
            if id(obj) not in documented:
                documented.add(id(obj))
                if n in submodule_names:
                    shadowed.append(f"{obj.__module__}.{obj.__qualname__}")
                else:
                    members.append(n)
        parts = [header, _directive(name, members or None, 1)]
        for path in shadowed:
            parts += ["", _directive(path, [], 2)]
        for sub_name in _submodules(module):
            sub = importlib.import_module(sub_name)
            extra = []
            for n in _defined_here(sub):
                obj = getattr(sub, n)
                if id(obj) not in exported and id(obj) not in documented:
                    documented.add(id(obj))
                    extra.append(n)
            if extra:
                parts += ["", _directive(sub_name, extra, 2)]
        pages[f"{stem}.md"] = "\n".join(parts) + "\n"
        index.append(f"| [`{name}`]({stem}.md) | {_first_line(module)} |")
    pages["index.md"] = "\n".join(index) + "\n"
    return pages


def write_api(check: bool = False) -> list[str]:
    """Write (or, with ``check``, only compare) docs/api/*.md; returns the files that differ."""
    stale = []
    pages = api_pages()
    for fname, text in pages.items():
        path = API_DIR / fname
        if not path.is_file() or path.read_text() != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not check:
                API_DIR.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    for path in sorted(API_DIR.glob("*.md")):
        if path.name not in pages:
            stale.append(path.relative_to(ROOT).as_posix())
            if not check:
                path.unlink()
    return stale


# ------------------------------------------------------------------------------ result files

BLOCK = re.compile(
    r"(<!-- result: (?P<ref>[\w.-]+)/(?P<view>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /result -->)", re.S
)
#: what ``meta.json`` must say (``record`` writes all of it)
META_KEYS = ("command", "date", "machine", "wall_seconds", "cpu_seconds", "commit")


class ResultError(ValueError):
    """A result block, view or file is malformed."""


def _show(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def load_meta(name: str, results: Path = RESULTS) -> dict[str, Any]:
    path = results / name / "meta.json"
    if not path.is_file():
        raise ResultError(f"{_show(path)} is missing: record the result first")
    meta = json.loads(path.read_text())
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ResultError(f"{_show(path)} lacks {missing}")
    return meta


def load_view(name: str, view: str, results: Path = RESULTS) -> dict[str, Any]:
    path = results / name / "tables.json"
    if not path.is_file():
        raise ResultError(f"{_show(path)} is missing")
    views = json.loads(path.read_text())
    if view not in views:
        raise ResultError(f"{_show(path)} has no view {view!r}; it has {sorted(views)}")
    return views[view]


def _ordered(values: Any, wanted: list[Any] | None) -> list[Any]:
    seen = list(dict.fromkeys(values))
    if wanted is None:
        return seen
    return [v for v in wanted if v in seen]


def _fmt(x: float, digits: int) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{x:.{digits}f}"


def render_view(name: str, spec: dict[str, Any], results: Path = RESULTS) -> str:
    """The markdown table of one view of result ``name`` (see docs/contributing-docs.md)."""
    import pandas as pd

    known = {"source", "where", "rename", "index", "columns", "values", "aggregate", "digits",
             "scale", "headers", "order", "note"}  # fmt: skip
    unknown = set(spec) - known
    if unknown:
        raise ResultError(f"{name}: unknown view key(s) {sorted(unknown)}; known: {sorted(known)}")
    path = results / name / spec.get("source", "summary.csv")
    if not path.is_file():
        raise ResultError(f"{_show(path)} is missing")
    df = pd.read_csv(path)
    for col, val in spec.get("where", {}).items():
        df = df[df[col].isin(val if isinstance(val, list) else [val])]
    for col, mapping in spec.get("rename", {}).items():
        df = df.assign(**{col: df[col].map(lambda v, m=mapping: m.get(str(v), v))})
    index: list[str] = list(spec["index"])
    columns: str | None = spec.get("columns")
    values = spec.get("values", "value")
    value_cols = [values] if isinstance(values, str) else list(values)
    order: dict[str, list[Any]] = spec.get("order", {})
    headers: dict[str, str] = spec.get("headers", {})
    digits = spec.get("digits", 1)
    scale = float(spec.get("scale", 1.0))
    aggregate = spec.get("aggregate", "mean_sd")
    for how in aggregate.values() if isinstance(aggregate, dict) else [aggregate]:
        if how not in ("mean_sd", "mean", "single"):
            raise ResultError(f"{name}: aggregate must be mean_sd, mean or single; got {how!r}")
    for col in index:
        if col in order:
            df = df[df[col].isin(order[col])]
    if columns is not None and columns in order:
        df = df[df[columns].isin(order[columns])]
    if df.empty:
        raise ResultError(f"{name}: the view selects no rows of {path.name}")

    if columns is not None:
        if len(value_cols) != 1:
            raise ResultError(f"{name}: with columns, values must name one column")
        col_keys = _ordered(df[columns], order.get(columns))
    else:
        col_keys = value_cols

    def per_column(setting: Any, key: Any, default: Any) -> Any:
        if isinstance(setting, dict):
            return setting.get(str(key), setting.get("*", default))
        return setting

    def cell(rows: Any, key: Any) -> str:
        col = values if columns is not None else key
        sel = rows[rows[columns] == key] if columns is not None else rows
        x = pd.to_numeric(sel[col], errors="coerce").dropna() * scale
        if x.empty:
            return "—"
        d = int(per_column(digits, key, 1))
        how = per_column(aggregate, key, "mean_sd")
        if how == "single":
            if len(x) != 1:
                raise ResultError(f"{name}: aggregate 'single' found {len(x)} values for {key!r}")
            return _fmt(float(x.iloc[0]), d)
        mean = float(x.mean())
        if how == "mean" or len(x) < 2:
            return _fmt(mean, d)
        return f"{_fmt(mean, d)} ± {_fmt(float(x.std()), d)}"

    keys = df[index].drop_duplicates()
    for col in reversed(index):
        if col in order:
            rank = {v: i for i, v in enumerate(order[col])}
            keys = keys.iloc[keys[col].map(rank).argsort(kind="stable")]
    head = [headers.get(c, c) for c in index] + [headers.get(str(k), str(k)) for k in col_keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys.itertuples(index=False):
        mask = (df[index] == pd.Series(key, index=index)).all(axis=1)
        rows = df[mask]
        labels = [headers.get(str(v), str(v)) for v in key]
        lines.append("| " + " | ".join(labels + [cell(rows, k) for k in col_keys]) + " |")
    return "\n".join(lines)


def provenance(name: str, page: Path, results: Path = RESULTS) -> str:
    """One line: where the figures come from, when and how they were measured."""
    meta = load_meta(name, results)
    machine = meta["machine"]
    load = machine.get("load_average_start", [float("nan")])[0]
    link = os.path.relpath(results / name / "meta.json", page.parent).replace(os.sep, "/")
    return (
        f"*Measured {meta['date'][:10]} by `{meta['command']}` on {machine.get('cpus', '?')} "
        f"CPUs at load average {load:.1f} ({meta['wall_seconds']:.0f} s wall, "
        f"{meta['cpu_seconds']:.0f} s CPU; commit {meta['commit']}): "
        f"[`{_show(results / name)}`]({link}).*"
    )


def render_page(path: Path, results: Path = RESULTS) -> str:
    """The page with every result block re-rendered from its result files."""
    text = path.read_text()

    def fill(match: re.Match[str]) -> str:
        name, view = match["ref"], match["view"]
        spec = load_view(name, view, results)
        body = render_view(name, spec, results) + "\n"
        if spec.get("note"):
            body += "\n" + spec["note"] + "\n"
        body += "\n" + provenance(name, path, results) + "\n"
        return match.group(1) + body + match.group(5)

    # markers inside fenced code blocks are examples (docs/contributing-docs.md), not blocks
    parts = re.split(r"(^(?:```|~~~).*?^(?:```|~~~)[^\n]*$)", text, flags=re.S | re.M)
    return "".join(p if i % 2 else BLOCK.sub(fill, p) for i, p in enumerate(parts))


def pages_with_results() -> list[Path]:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    return [p for p in pages if BLOCK.search(p.read_text())]


def render_all(check: bool = False) -> list[str]:
    """Re-render (or, with ``check``, only compare) every page; returns the pages that differ."""
    stale = []
    for page in pages_with_results():
        new = render_page(page)
        if new != page.read_text():
            stale.append(page.relative_to(ROOT).as_posix())
            if not check:
                page.write_text(new)
    return stale


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.strip()


def record(name: str, command: list[str], keep: list[str], results: Path = RESULTS) -> Path:
    """Run ``command`` (``{out}`` in it becomes a fresh folder), keep the files ``keep`` it
    wrote there, and write ``meta.json`` next to them (``tables.json`` is left as it is)."""
    if not re.fullmatch(r"[\w.-]+", name):
        raise ResultError(f"name must be letters, digits, '.', '_' or '-'; got {name!r}")
    target = results / name
    with tempfile.TemporaryDirectory() as tmp:
        argv = [a.replace("{out}", tmp) for a in command]
        shown = shlex.join([a.replace("{out}", "OUT") for a in command])
        load_start = list(os.getloadavg())
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        date = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        proc = subprocess.run(argv, cwd=ROOT)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise ResultError(f"{shown} failed with exit code {proc.returncode}")
        missing = [f for f in keep if not (Path(tmp) / f).is_file()]
        if missing:
            raise ResultError(f"{shown} did not write {missing} into {{out}}")
        target.mkdir(parents=True, exist_ok=True)
        for f in keep:
            shutil.copyfile(Path(tmp) / f, target / f)
    dirty = bool(_git("status", "--porcelain", "--", "src", "benchmarks"))
    meta = {
        "command": shown,
        "date": date,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(
            (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime), 1
        ),
        "commit": (_git("rev-parse", "--short", "HEAD") or "unknown") + ("+dirty" if dirty else ""),
        "files": keep,
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return target


# -------------------------------------------------------------------------------------- main


def report_stale() -> bool:
    """Print the API pages and rendered results that are out of date; True if any is."""
    stale = write_api(check=True) + render_all(check=True)
    for f in stale:
        print("out of date:", f)
    if stale:
        print("run: python tools/docs.py api && python tools/docs.py render")
    return bool(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="API pages and result tables of the documentation."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="write docs/api/*.md")
    sub.add_parser("render", help="re-render the result blocks of README.md and docs/*.md")
    sub.add_parser("check", help="exit 1 when the API pages or a result block are out of date")
    bld = sub.add_parser("build", help="check, then mkdocs build --strict (warnings fail)")
    bld.add_argument(
        "--site-dir", default=None, help="where to write the site (default: a temp dir)"
    )
    rec = sub.add_parser("record", help="run a command and keep its output as a result")
    rec.add_argument("name", help="the result's folder under docs/results/")
    rec.add_argument(
        "--keep", action="append", help="file the command writes into {out} (default summary.csv)"
    )
    rec.add_argument("cmd", nargs="*", help="-- then the command; {out}: its folder")
    argv = sys.argv[1:] if argv is None else list(argv)
    # ``record NAME [--keep F]... -- CMD``: the command after ``--`` is taken as it is (given
    # to argparse, its options would be read as record's)
    cmd_after: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd_after = argv[:i], argv[i + 1 :]
    args = parser.parse_args(argv)
    if args.command == "api":
        for f in write_api():
            print("wrote", f)
    elif args.command == "render":
        for f in render_all():
            print("rendered", f)
    elif args.command == "check":
        if report_stale():
            return 1
    elif args.command == "build":
        if report_stale():
            return 1
        with tempfile.TemporaryDirectory() as tmp:
            site = args.site_dir or tmp
            cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", site]
            env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
            code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        print("site built" + (f" in {site}" if args.site_dir else "") if code == 0 else "failed")
        return code
    elif args.command == "record":
        cmd = cmd_after or args.cmd
        if not cmd:
            parser.error("record needs a command after --")
        path = record(args.name, cmd, args.keep or ["summary.csv"])
        print("recorded", path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
