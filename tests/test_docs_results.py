"""Figures quoted in the docs come from result files (tools/docs.py, docs/contributing-docs.md).

A page's result block must be exactly what ``python tools/docs.py render`` writes from the
result files, and every result file says when, where and by what command it was measured.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_tool():
    spec = importlib.util.spec_from_file_location("scarce_docs_tool", ROOT / "tools" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs_tool = _load_tool()


def test_every_result_block_matches_its_result_files() -> None:
    pages = docs_tool.pages_with_results()
    assert pages, "no page quotes a result file"
    stale = docs_tool.render_all(check=True)
    assert stale == [], (
        f"{stale}: a result block differs from its result files; "
        "run `python tools/docs.py render` (and re-record the result if the code changed)"
    )


def test_every_result_has_its_provenance() -> None:
    names = sorted(p.name for p in docs_tool.RESULTS.iterdir() if p.is_dir())
    assert names
    for name in names:
        meta = docs_tool.load_meta(name)
        assert meta["command"] and meta["date"][:2] == "20", name
        assert meta["machine"]["cpus"] >= 1 and len(meta["machine"]["load_average_start"]) == 3
        for f in meta["files"]:
            assert (docs_tool.RESULTS / name / f).is_file(), (name, f)


def _result(tmp_path: Path) -> Path:
    """A two-seed experiment summary, by hand."""
    d = tmp_path / "toy"
    d.mkdir()
    (d / "summary.csv").write_text(
        "experiment,env,policy,seed,metric,value\n"
        "toy,a,P,0,regret,1.0\n"
        "toy,a,P,1,regret,3.0\n"
        "toy,a,Q,0,regret,10.0\n"
        "toy,a,Q,1,regret,10.0\n"
        "toy,b,P,0,regret,2.0\n"
        "toy,b,P,1,regret,2.5\n"
        "toy,a,P,0,reward,7.0\n"
    )
    return tmp_path


def test_view_mean_and_sd_by_hand(tmp_path: Path) -> None:
    results = _result(tmp_path)
    spec = {"where": {"metric": "regret"}, "index": ["env"], "columns": "policy", "digits": 2}
    table = docs_tool.render_view("toy", spec, results)
    # P at a: mean 2, sd sqrt(2) = 1.41; Q at a: sd 0; Q never ran on b
    assert table.splitlines() == [
        "| env | P | Q |",
        "|---|---|---|",
        "| a | 2.00 ± 1.41 | 10.00 ± 0.00 |",
        "| b | 2.25 ± 0.35 | — |",
    ]


def test_view_order_headers_scale_and_single(tmp_path: Path) -> None:
    results = _result(tmp_path)
    spec = {
        "where": {"env": "a", "seed": 0},
        "index": ["policy"],
        "columns": "metric",
        "order": {"policy": ["Q", "P"], "metric": ["reward", "regret"]},
        "headers": {"policy": "who", "regret": "regret x 10"},
        "aggregate": "single",
        "scale": 10,
        "digits": {"*": 0, "reward": 1},
    }
    assert docs_tool.render_view("toy", spec, results).splitlines() == [
        "| who | reward | regret x 10 |",
        "|---|---|---|",
        "| Q | — | 100 |",
        "| P | 70.0 | 10 |",
    ]
    with pytest.raises(docs_tool.ResultError, match="single"):
        docs_tool.render_view("toy", {**spec, "where": {"env": "a"}}, results)
    with pytest.raises(docs_tool.ResultError, match="unknown view key"):
        docs_tool.render_view("toy", {"index": ["env"], "colums": "policy"}, results)


def test_record_then_render_a_page(tmp_path: Path) -> None:
    results = tmp_path / "results"
    script = (
        "import sys, pathlib; out = pathlib.Path(sys.argv[1]); "
        "(out / 'summary.csv').write_text('env,policy,seed,metric,value\\n"
        "e,P,0,m,1.5\\ne,P,1,m,2.5\\n')"
    )
    docs_tool.record("toy", [sys.executable, "-c", script, "{out}"], ["summary.csv"], results)
    meta = json.loads((results / "toy" / "meta.json").read_text())
    assert meta["command"].endswith(" OUT") and meta["wall_seconds"] >= 0
    (results / "toy" / "tables.json").write_text(
        json.dumps({"m": {"index": ["env"], "columns": "metric", "digits": 1}})
    )
    page = tmp_path / "page.md"
    page.write_text("Before.\n\n<!-- result: toy/m -->\nstale\n<!-- /result -->\n\nAfter.\n")
    text = docs_tool.render_page(page, results)
    assert "| e | 2.0 ± 0.7 |" in text and "stale" not in text
    assert text.startswith("Before.\n\n<!-- result: toy/m -->\n| env | m |")
    assert text.endswith("<!-- /result -->\n\nAfter.\n")
    assert f"({meta['wall_seconds']:.0f} s wall" in text and meta["date"][:10] in text
    # rendering is idempotent: a rendered page is up to date
    page.write_text(text)
    assert docs_tool.render_page(page, results) == text
    # a marker inside a fenced code block is an example, left alone
    example = "```text\n<!-- result: toy/m -->\n<!-- /result -->\n```\n"
    page.write_text(example + text)
    assert docs_tool.render_page(page, results) == example + text


def test_record_refuses_a_failing_command(tmp_path: Path) -> None:
    with pytest.raises(docs_tool.ResultError, match="exit code 3"):
        docs_tool.record("bad", [sys.executable, "-c", "raise SystemExit(3)"], [], tmp_path)
    assert not (tmp_path / "bad").exists()
