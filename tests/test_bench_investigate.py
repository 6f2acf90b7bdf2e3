"""`python -m bench.investigate --model M --api-base URL`: the failing-suite task against a real model
server (here one on loopback answering from a queue), with investigate steps offered and turned off."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from httpkit import MODEL, ModelServer
from pytest_httpserver import HTTPServer

from agentcli.tools.sandbox import sandbox_status

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import investigate as bench  # noqa: E402


@pytest.mark.skipif(not sandbox_status().available, reason="needs bwrap")
def test_the_capable_model_entry_runs_both_ways(httpserver: HTTPServer, allow_model_requests: None,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")
    with_step = bench.investigate_then_fix("Why do the tests fail?", "Fix it:\n{{s1.output}}")
    without = bench.read_then_fix(1, "shop/money.py", "Read money.py", "Fix it:")
    review = {"outcome": "complete", "answer": "fixed", "reason": ""}
    ModelServer(httpserver).add(with_step, bench._FINDINGS, bench._FIX_EDITS, review,
                                without, bench._FIX_EDITS, review)
    code = bench.main(["--model", MODEL, "--api-base", httpserver.url_for("/v1"),
                       "--agent", str(Path(sys.executable).parent / "agent")])
    assert code == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| investigate")]
    assert len(rows) == 2, rows
    offered, off = rows
    assert "| COMPLETE | 4 (1/2/1) | 0 |" in offered and "| 1 | 0 | passed | identical |" in offered
    assert "| COMPLETE | 3 (1/1/1) | 0 |" in off and "| 0 | 0 | passed | identical |" in off


needs_js = pytest.mark.skipif(not bench.js_available() or not sandbox_status().available,
                              reason="needs node, npm (and the npm registry on first use) and bwrap")


@pytest.mark.slow
@needs_js
@pytest.mark.parametrize("bug", sorted(bench.JS_BUGS))
def test_each_planted_js_bug_fails_the_suite_and_its_line_fixes_it(bug: str, tmp_path: Path) -> None:
    import subprocess

    bench.planted_js(tmp_path, bug)
    planted = bench.JS_BUGS[bug]
    assert subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path, capture_output=True, text=True).stdout == ""
    failed = subprocess.run(bench.JS_TEST_COMMAND, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert failed.returncode != 0 and "\nnot ok " in failed.stdout
    # The failure names the test file, never the file to fix.
    assert planted.fix_edit[0] not in "\n".join(ln for ln in failed.stdout.splitlines() if " at: " in ln)
    rel, search, replace = planted.fix_edit
    path = tmp_path / rel
    assert path.read_text().count(search) == 1
    path.write_text(path.read_text().replace(search, replace))
    passed = subprocess.run(bench.JS_TEST_COMMAND, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout[-500:]


@pytest.mark.slow
@needs_js
def test_the_capable_model_entry_runs_the_js_project_one_way(httpserver: HTTPServer, allow_model_requests: None,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")
    with_step = bench.investigate_then_fix("Run the suite: which code makes it fail?", "Fix it:\n{{s1.output}}")
    review = {"outcome": "complete", "answer": "fixed", "reason": ""}
    ModelServer(httpserver).add(with_step, bench._call("run_readonly", command=bench.JS_TEST_COMMAND),
                                bench._JS_FINDINGS, bench._JS_FIX_EDITS, review)
    code = bench.main(["--model", MODEL, "--api-base", httpserver.url_for("/v1"), "--project", "js",
                       "--way", "offered", "--agent", str(Path(sys.executable).parent / "agent")])
    assert code == 0
    out = capsys.readouterr().out
    assert "qs 6.13.0" in out and "bug array-limit in lib/parse.js" in out
    rows = [line for line in out.splitlines() if line.startswith("| investigate")]
    assert len(rows) == 1, rows
    assert rows[0].startswith("| investigate offered | 1 | COMPLETE | 5 (1/3/1) | 0 |"), rows
    assert "| 1 | 0 | passed | identical |" in rows[0]
