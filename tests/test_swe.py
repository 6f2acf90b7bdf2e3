"""The SWE-style benchmark's harness (bench/swe), offline: a local registry of fixture releases and
scripted models. A run's scripted answers that are the upstream fix resolve the task; a wrong fix
does not; a run that edits the tests the grading replaces is caught."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "swe"
COMPLETE = {"outcome": "complete", "answer": "done", "reason": ""}
FIXED = (FIXTURES / "swecalc-1.0.1" / "swecalc" / "__init__.py").read_text()

# Each test runs the harness (and an agent) in subprocesses: seconds each, so CI's slow part.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("bwrap") is None, reason="grading needs bubblewrap")]


@pytest.fixture
def bench(tmp_path: Path) -> dict[str, Path]:
    """A local registry with the fixture releases, the fixture tasks, and an empty cache."""
    reg = tmp_path / "registry"
    for name, registry, suffix in (("swecalc-1.0.0", "pypi", ".tar.gz"), ("swecalc-1.0.1", "pypi", ".tar.gz"),
                                   ("jscalc-1.0.0", "npm", ".tgz")):
        (reg / registry).mkdir(parents=True, exist_ok=True)
        with tarfile.open(reg / registry / f"{name}{suffix}", "w:gz") as tf:
            tf.add(FIXTURES / name, arcname="package" if registry == "npm" else name)
    tasks = tmp_path / "tasks"
    shutil.copytree(FIXTURES / "tasks", tasks)
    return {"registry": reg, "tasks": tasks, "cache": tmp_path / "cache", "out": tmp_path / "out", "tmp": tmp_path}


def swe(bench: dict[str, Path], *args: str, script: list[Any] | None = None,
        cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update({"BENCH_SWE_REGISTRY": str(bench["registry"]), "BENCH_SWE_CACHE": str(bench["cache"]),
                "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
    if script is not None:
        path = bench["tmp"] / "script.json"
        path.write_text(json.dumps(script))
        env["AGENT_TEST_SCRIPT"] = str(path)
    return subprocess.run([sys.executable, "-m", "bench.swe", "--tasks-dir", str(bench["tasks"]), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def write_plan(path: str, content: str) -> dict[str, Any]:
    return {"steps": [{"title": f"write {path}", "tool": "write_file", "args": {"path": path, "content": content}}]}


def results(bench: dict[str, Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (bench["out"] / "results.jsonl").read_text().splitlines()]


def test_list_prints_one_line_per_task(bench: dict[str, Path]) -> None:
    r = swe(bench, "--list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["jscalc-inject jscalc javascript injected", "swecalc-add swecalc python upstream",
                                     "swecalc-sub swecalc python feature"]
    assert swe(bench, "--list", "--shard", "2/3").stdout.splitlines() == ["swecalc-add swecalc python upstream"]
    bad = swe(bench, "--list", "--shard", "4/3")
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_check_verifies_the_test_lists_on_base_and_fix(bench: dict[str, Path]) -> None:
    tasks = "swecalc-*" if shutil.which("node") is None else "*"
    r = swe(bench, "--check", "--tasks", tasks)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok   swecalc-add (1 fail-to-pass, 1 pass-to-pass)" in r.stdout
    # A feature request: its reference is the solution patch written with the task.
    assert "ok   swecalc-sub (1 fail-to-pass, 1 pass-to-pass)" in r.stdout
    # A list that is wrong: a pass-to-pass test that fails on the base.
    toml = bench["tasks"] / "swecalc-add" / "task.toml"
    toml.write_text(toml.read_text().replace('pass_to_pass = ["tests/test_calc.py::test_mul"]',
                                             'pass_to_pass = ["tests/test_calc.py::test_mul", '
                                             '"tests/test_calc.py::test_add"]'))
    r = swe(bench, "--check", "--tasks", "swecalc-*")
    assert r.returncode == 1
    assert "FAIL swecalc-add: base: pass-to-pass tests/test_calc.py::test_add fails" in r.stdout


def test_scripted_upstream_fix_resolves_and_a_rerun_resumes(bench: dict[str, Path]) -> None:
    plan = write_plan("swecalc/__init__.py", FIXED)
    # Bytecode a run's commands leave behind is not part of its patch.
    plan["steps"] += write_plan("swecalc/__pycache__/__init__.cpython-311.pyc", "bytecode")["steps"]
    r = swe(bench, "--model", "test/script", "--tasks", "swecalc-add", "--out", str(bench["out"]),
            script=[plan, COMPLETE])
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = results(bench)
    assert rec["resolved"] is True and rec["tampered"] == [] and rec["schema_version"] == 1
    assert rec["grade"]["fail_to_pass"] == {"tests/test_calc.py::test_add": True}
    assert rec["changed_files"] == ["swecalc/__init__.py"]
    a = rec["agent_result"]
    assert a["status"] == "COMPLETE" and a["calls"] == 2 and a["input_tokens"] > 0 and a["cost_usd"] > 0
    assert a["replans"] == 0 and a["wall_s"] > 0 and a["agent_s"] is not None
    assert "resolved 1/1" in r.stdout
    (pred,) = [json.loads(x) for x in (bench["out"] / "predictions.jsonl").read_text().splitlines()]
    assert pred["instance_id"] == "swecalc-add" and "+    return a + b" in pred["model_patch"]
    # No hidden test reached the workspace the agent saw: its patch is the run's edit alone.
    assert "test_add" not in pred["model_patch"]
    # A re-run resumes: the task is done, so the agent is not run again (its script is empty).
    again = swe(bench, "--model", "test/script", "--tasks", "swecalc-add", "--out", str(bench["out"]), script=[])
    assert again.returncode == 0 and len(results(bench)) == 1
    table = swe(bench, "--report", str(bench["out"]))
    assert table.returncode == 0, table.stderr
    assert "| swecalc-add | swecalc | upstream | yes | 2 |" in table.stdout
    assert "| **total** |  |  | 1/1 | 2 |" in table.stdout


def test_a_relative_results_directory_is_taken_from_where_the_command_runs(bench: dict[str, Path]) -> None:
    # The agent runs inside its workspace (under the results directory): a relative --out must not be
    # read from there.
    r = swe(bench, "--model", "test/script", "--tasks", "swecalc-add", "--out", "rel-out",
            script=[write_plan("swecalc/__init__.py", FIXED), COMPLETE], cwd=bench["tmp"])
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = [json.loads(x) for x in (bench["tmp"] / "rel-out" / "results.jsonl").read_text().splitlines()]
    assert rec["resolved"] is True and not rec["agent_result"]["error"]


def test_a_wrong_fix_is_not_resolved(bench: dict[str, Path]) -> None:
    wrong = FIXED.replace("return a + b", "return a * b")
    r = swe(bench, "--model", "test/script", "--tasks", "swecalc-add", "--out", str(bench["out"]),
            script=[write_plan("swecalc/__init__.py", wrong), COMPLETE])
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = results(bench)
    assert rec["resolved"] is False and rec["tampered"] == []
    assert rec["grade"]["fail_to_pass"] == {"tests/test_calc.py::test_add": False}
    assert rec["grade"]["pass_to_pass_passed"] == 1 and rec["grade"]["pass_to_pass_failed"] == []
    assert "resolved 0/1" in r.stdout


def test_a_run_that_edits_the_tests_is_caught(bench: dict[str, Path]) -> None:
    cheat = "def test_add():\n    pass\n\n\ndef test_mul():\n    pass\n"
    r = swe(bench, "--model", "test/script", "--tasks", "swecalc-add", "--out", str(bench["out"]),
            script=[write_plan("tests/test_calc.py", cheat), COMPLETE])
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = results(bench)
    assert rec["tampered"] == ["tests/test_calc.py"] and rec["resolved"] is False
    # The grading ran the hidden tests, not the edited ones.
    assert rec["grade"]["fail_to_pass"] == {"tests/test_calc.py::test_add": False}
    assert "(tampered with tests)" in r.stderr


def test_a_feature_task_is_graded_with_its_hidden_tests_and_reported_apart(bench: dict[str, Path]) -> None:
    gold = json.loads(swe(bench, "--gold", "--tasks", "swecalc-sub").stdout)
    assert "+def sub(a, b):\n+    return a - b" in gold["model_patch"]
    solved = (FIXTURES / "swecalc-1.0.1" / "swecalc" / "__init__.py").read_text()
    solved += "\n\ndef sub(a, b):\n    return a - b\n"
    # The run also writes a test of its own whose name happens to be the hidden test's: not tampering
    # (the file is not in the base release; the grading puts the hidden test in its place).
    plan = write_plan("swecalc/__init__.py", solved)
    plan["steps"] += write_plan("tests/test_sub.py", "def test_sub():\n    assert False\n")["steps"]
    r = swe(bench, "--model", "test/script", "--tasks", "swecalc-sub", "--out", str(bench["out"]), "--keep",
            script=[plan, COMPLETE])
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = results(bench)
    assert rec["kind"] == "feature" and rec["resolved"] is True and rec["tampered"] == []
    assert rec["grade"]["fail_to_pass"] == {"tests/test_sub.py::test_sub": True}
    # The hidden test never reached the workspace: the run's own test file is its own.
    assert rec["changed_files"] == ["swecalc/__init__.py", "tests/test_sub.py"]
    assert "assert False" in rec["model_patch"] and "swecalc.sub(5, 3)" not in rec["model_patch"]
    assert "feature 1/1" in r.stdout
    # The workspace is outside the checkout and the results (a tool that looks upward for a project's
    # configuration, like pytest, must not find the checkout's).
    ws = Path(rec["workspace"])
    assert (ws / "swecalc" / "__init__.py").read_text() == solved
    assert ws.is_relative_to(bench["cache"]) and not ws.is_relative_to(ROOT) and not ws.is_relative_to(bench["out"])
    table = swe(bench, "--report", str(bench["out"]))
    assert "| swecalc-sub | swecalc | feature | yes | 2 |" in table.stdout


def test_a_feature_task_needs_its_solution(bench: dict[str, Path]) -> None:
    (bench["tasks"] / "swecalc-sub" / "solution.patch").unlink()
    r = swe(bench, "--list")
    assert r.returncode == 2 and "a feature task needs" in r.stderr and "Traceback" not in r.stderr


def test_gold_patch_and_bad_input(bench: dict[str, Path]) -> None:
    r = swe(bench, "--gold", "--tasks", "swecalc-add")
    assert r.returncode == 0, r.stderr
    pred = json.loads(r.stdout)
    assert "-    return a - b\n+    return a + b" in pred["model_patch"]
    for args in (["--model", "test/script", "--tasks", "nope-*"], ["--tasks", "swecalc-add"]):
        bad = swe(bench, *args)
        assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def _mini_python() -> str | None:
    """The interpreter with mini-SWE-agent: $BENCH_SWE_MINI_PYTHON, else this one if it has it."""
    python = os.environ.get("BENCH_SWE_MINI_PYTHON") or sys.executable
    ok = subprocess.run([python, "-c", "import minisweagent"], capture_output=True).returncode == 0
    return python if ok else None


@pytest.mark.skipif(_mini_python() is None, reason="mini-SWE-agent is not installed (the swe-baseline extra)")
def test_the_mini_baseline_runs_on_the_same_endpoint_and_is_graded_alike(bench: dict[str, Path],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    commands = ['sed -i "s/return a - b/return a + b/" swecalc/__init__.py',
                "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"]
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # an OpenAI-compatible endpoint answering with bash tool calls
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            cmd = commands[min(len(seen), len(commands)) - 1]
            call = {"id": f"c{len(seen)}", "type": "function",
                    "function": {"name": "bash", "arguments": json.dumps({"command": cmd})}}
            body = json.dumps({"id": "r", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                               "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                                   "role": "assistant", "content": "", "tool_calls": [call]}}],
                               "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110,
                                         "prompt_tokens_details": {"cached_tokens": 40}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("BENCH_SWE_MINI_PYTHON", str(_mini_python()))
    try:
        r = swe(bench, "--agent", "mini", "--model", "openai/gpt-4o-mini", "--api-base",
                f"http://127.0.0.1:{server.server_port}/v1", "--tasks", "swecalc-add", "--out", str(bench["out"]))
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = results(bench)
    assert rec["agent"] == "mini" and rec["resolved"] is True
    a = rec["agent_result"]
    assert (a["calls"], a["input_tokens"], a["cached_tokens"], a["output_tokens"]) == (2, 200, 80, 20)
    assert len(seen) == 2 and seen[0]["model"] == "gpt-4o-mini"
