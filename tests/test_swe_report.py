"""The SWE benchmark's report with prompt caching counted (``python -m bench.swe --report DIRS
--transcripts TDIRS``): each run's transcripts priced by the prefix rule of bench/cache.py, the
ratios of the ReAct baseline to each run, and per agentcli task its calls, survey rounds, re-plans
and investigate steps. Transcripts and results are written here as a run writes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agentcli.models.cache import cacheable, request_tokens, shared_prefix

ROOT = Path(__file__).resolve().parents[1]
#: A system message long enough that two requests sharing it share a cacheable prefix (> 1,024 tokens).
RULES = "Follow the rules of the project carefully. " * 200
PLANNER = "You are the planner of a developer agent. " + RULES
INVESTIGATE = "You investigate one question for a plan that carries out this task: fix it\n" + RULES


def _req(messages: list[dict[str, Any]], tools: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": messages}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    return body


def _write(folder: Path, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    folder.mkdir(parents=True)
    for i, (req, resp) in enumerate(pairs, 1):
        (folder / f"{i:04d}.req.json").write_text(json.dumps(req))
        (folder / f"{i:04d}.resp.json").write_text(json.dumps(resp))


def _results(folder: Path, agent: str, replans: int = 0) -> None:
    folder.mkdir(parents=True)
    rec = {"schema_version": 1, "instance_id": "calc-add", "project": "calc", "language": "javascript",
           "kind": "upstream", "agent": agent, "model": "openai/gpt-4o-mini", "resolved": True, "tampered": [],
           "agent_result": {"calls": 3, "input_tokens": 1, "replans": replans}}
    (folder / "results.jsonl").write_text(json.dumps(rec) + "\n")


def _seq(req: dict[str, Any]) -> list[int]:
    return request_tokens(req["messages"], req["model"], tools=req.get("tools"))


def report(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    return subprocess.run([sys.executable, "-m", "bench.swe", "--report", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_transcripts_are_priced_with_caching_and_agentcli_calls_are_counted(tmp_path: Path) -> None:
    user = {"role": "user", "content": "Task: fix calc.add"}
    look = {"tool_calls": [{"name": "read_file", "arguments": {"path": "calc.js"}}]}
    # agentcli: a planner request, its survey round (the same start, grown), an investigate step's two calls.
    survey = [{"role": "system", "content": PLANNER}, user]
    call = {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
    grown = [*survey, {"role": "assistant", "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "c1", "content": "x"}]
    question = [{"role": "system", "content": INVESTIGATE}, {"role": "user", "content": "why does add fail?"}]
    agentcli = [(_req(survey, tools=True), look), (_req(grown, tools=True), {"content": "{\"steps\": []}"}),
                (_req(question, tools=True), look), (_req(question + grown[2:], tools=True), {"content": "{}"})]
    _write(tmp_path / "tr-agentcli" / "calc-add", agentcli)
    # The ReAct loop: one conversation re-sent whole, growing.
    react = [{"role": "system", "content": RULES}, user]
    mini = [(_req(react), look), (_req(react + grown[2:]), {"content": "done"})]
    _write(tmp_path / "tr-mini" / "calc-add", mini)
    # A task only one run has is left out of the comparison (the runs are compared on the same tasks).
    _write(tmp_path / "tr-mini" / "other-task", mini)
    _results(tmp_path / "agentcli--openai_gpt-4o-mini--abc1234", "agentcli", replans=1)
    _results(tmp_path / "mini--openai_gpt-4o-mini", "mini")

    r = report(str(tmp_path / "agentcli--openai_gpt-4o-mini--abc1234"), str(tmp_path / "mini--openai_gpt-4o-mini"),
               "--transcripts", str(tmp_path / "tr-agentcli"), str(tmp_path / "tr-mini"))
    assert r.returncode == 0, r.stderr

    def bill(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> tuple[int, int]:
        seqs = [_seq(q) for q, _ in pairs]
        total = sum(len(s) for s in seqs)
        cached = sum(cacheable(max((shared_prefix(o, s) for o in seqs[:i]), default=0)) for i, s in enumerate(seqs))
        return total, cached

    a_in, a_cached = bill(agentcli)
    m_in, m_cached = bill(mini)
    assert a_cached > 0 and m_cached > 0
    assert "on the 1 tasks every run has a transcript of" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("| agentcli openai/gpt-4o-mini abc1234 | 4 |"))
    assert f"| {a_in:,} | {a_cached:,} ({a_cached / a_in:.0%}) | {a_in - a_cached:,} |" in row
    row = next(line for line in r.stdout.splitlines() if line.startswith("| mini openai/gpt-4o-mini | 2 |"))
    assert f"| {m_in:,} | {m_cached:,} ({m_cached / m_in:.0%}) | {m_in - m_cached:,} | " \
           f"{m_in - m_cached + 0.5 * m_cached:,.0f} |" in row
    ratio = next(line for line in r.stdout.splitlines()
                 if line.startswith("| agentcli openai/gpt-4o-mini abc1234 | ") and "x |" in line)
    assert f"| {m_in / a_in:.2f}x | {(m_in - m_cached) / (a_in - a_cached):.2f}x |" in ratio
    # With one cache across the tasks (one task here): the same requests, the same bill.
    across = r.stdout.split("one cache across the tasks", 1)[1]
    assert f"| agentcli openai/gpt-4o-mini abc1234 | 4 | {a_in:,} | {a_cached:,} " in across
    # Per task, the runs side by side, and the ReAct run's bill over agentcli's.
    assert "| task | agentcli openai/gpt-4o-mini abc1234: requests | input tokens | cacheable | Anthropic units | " \
           "mini openai/gpt-4o-mini: requests |" in r.stdout
    assert f"| calc-add | 4 | {a_in:,} | {a_cached / a_in:.0%} |" in r.stdout
    # --tasks: the runs compared on the tasks picked (mini's other task is picked, agentcli has none).
    picked = report(str(tmp_path / "agentcli--openai_gpt-4o-mini--abc1234"), "--tasks", "calc-*",
                    "--transcripts", str(tmp_path / "tr-agentcli"))
    assert picked.returncode == 0 and "on the 1 tasks every run has" in picked.stdout
    # Per agentcli task: resolved, 4 calls, 1 survey round (the planner's tool call), 1 re-plan (from the
    # results), 1 investigate step (two calls of one investigation).
    assert "| calc-add | yes | 4 | 1 | 1 | 1 |" in r.stdout
    assert "- javascript tasks: 1, survey rounds 1 (1.00 a task), calls 4, investigate steps 1" in r.stdout
    # Named runs: the agent is read from the records, not the name.
    named = report(str(tmp_path / "agentcli--openai_gpt-4o-mini--abc1234"), str(tmp_path / "mini--openai_gpt-4o-mini"),
                   "--transcripts", str(tmp_path / "tr-agentcli"), str(tmp_path / "tr-mini"),
                   "--labels", "agentcli now", "the ReAct loop")
    assert named.returncode == 0, named.stderr
    assert "| ratio the ReAct loop / run |" in named.stdout and "agentcli now, per task:" in named.stdout


def test_transcripts_that_do_not_match_the_runs_are_a_usage_error(tmp_path: Path) -> None:
    _results(tmp_path / "res", "agentcli")
    for args in (["--transcripts", str(tmp_path / "a"), str(tmp_path / "b")], ["--labels", "a", "b"],
                 ["--transcripts", str(tmp_path / "missing")]):
        r = report(str(tmp_path / "res"), *args)
        assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    # --tasks picks the tasks of the report; none picked is a usage error.
    r = report(str(tmp_path / "res"), "--tasks", "other-*")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "other-*" in r.stderr
    # '-': a run with no transcripts; the table of results alone.
    r = report(str(tmp_path / "res"), "--transcripts", "-")
    assert r.returncode == 0 and "Prompt caching counted" not in r.stdout and "| calc-add |" in r.stdout


def test_a_transcript_priced_as_one_conversation_continues_each_request_from_the_last(tmp_path: Path) -> None:
    """``python -m bench.cache TDIR``: the layout weighed and not adopted (each role's request continuing
    the last one) is priced beside the requests as sent; the task is held once, by the conversation."""
    task = tmp_path / "agentcli" / "calc-add"
    first = [{"role": "system", "content": PLANNER}, {"role": "user", "content": "# Task\nfix it"}]
    review = [{"role": "system", "content": "You review the results of a plan run. " + RULES},
              {"role": "user", "content": "# Task\nfix it\n\n# Steps\ns1 ok"}]
    _write(task, [(_req(first, tools=True), {"content": '{"steps": {}}'}),
                  (_req(review), {"content": '{"outcome": "complete"}'})])
    out = subprocess.run([sys.executable, "-m", "bench.cache", str(task.parent)], cwd=ROOT, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    row = next(line for line in out.splitlines() if line.startswith("| calc-add"))
    sent, talk = (cell.split(" / ") for cell in row.strip("| ").split(" | ")[1:])
    assert sent[1] == "0%" and talk[1] != "0%"  # the review now starts with the planner's request
    assert int(talk[0].replace(",", "")) > int(sent[0].replace(",", ""))  # ...and re-sends it
