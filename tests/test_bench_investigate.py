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
    with_step = {"steps": {
        "s1": {"investigate": "Why do the tests fail?", "depends_on": [], "title": "Find the cause"},
        **bench._steps_fix(2, ["s1"], "Fix it:\n{{s1.output}}")}}
    without = {"steps": {
        "s1": {"call": {"tool": "read_file", "args": {"path": "shop/money.py"}}, "depends_on": [],
               "title": "Read money.py"},
        **bench._steps_fix(2, ["s1"], "Fix it:\n{{s1.output}}")}}
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
