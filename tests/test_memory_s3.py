"""A team's shared memory on object storage: a real S3-compatible server (moto) on loopback.

Two workspaces with their own data dirs ("two machines") add to and recall from one
``s3://`` memory at the same time, through four real ``agent`` processes; the checks after
that (listing, recall, re-adds, doctor) run the CLI in this process, which pays lancedb's
import once instead of once per command. Credentials and the endpoint come from the AWS_*
environment variables only. An unreachable store fails `agent memory` commands with one line
and lets a run go on without memory.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.memory import flush
from agentcli.models.fakes import ScriptedModel

BUCKET = "team-memory"
URI = f"s3://{BUCKET}/agent"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="team",
                 aws_secret_access_key="team-secret").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "team", "AWS_SECRET_ACCESS_KEY": "team-secret", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}


def machine(root: Path, name: str, topics: list[str]) -> Path:
    """A workspace with its own files and data dir (.agent inside it), its files last modified a
    minute ago (the ingest manifest does not trust a file's stat for seconds after it changed)."""
    ws = root / name
    (ws / "docs").mkdir(parents=True)
    for i, topic in enumerate(topics):
        (ws / "docs" / f"{name}-{i:02d}.md").write_text(
            f"# {topic}\n\nOn machine {name}, the {topic} procedure is documented here.\n\n"
            f"## Steps\n\nRun the {topic} script, then check the {topic} dashboard.\n")
    (ws / "README.md").write_text(f"# {name}\n\nShared README of {name}.\n")  # the same path on both
    past = time.time() - 60
    for p in ws.rglob("*"):
        os.utime(p, (past, past))
    return ws


def agent(ws: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full = {**os.environ, **env, "AGENT_MEMORY__URI": URI, "AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}
    return subprocess.Popen([sys.executable, "-m", "agentcli", *args], cwd=ws, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def done(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out


def in_process(ws: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """One `agent` command on machine ``ws``, in this process (after the concurrent part, the
    checks need no process of their own: each would pay lancedb's import again)."""
    monkeypatch.chdir(ws)
    for k, v in aws_env(endpoint).items():
        monkeypatch.setenv(k, v)
    env = {"AGENT_MEMORY__URI": URI, "AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}
    res = CliRunner().invoke(app, list(args), obj=State(environ=env, use_user_config=False))
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res.stdout


@pytest.mark.slow
def test_two_machines_share_one_memory_concurrently(tmp_path: Path, s3_endpoint: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    env = aws_env(s3_endpoint)
    a = machine(tmp_path, "alpha", [f"deploy-{i}" for i in range(8)])
    b = machine(tmp_path, "beta", [f"backup-{i}" for i in range(8)])
    # Both machines ingest and take notes at the same time: four real processes.
    procs = [agent(a, env, "memory", "add", ".", "--json"), agent(b, env, "memory", "add", ".", "--json"),
             agent(a, env, "memory", "add", "--text", "alpha note: the staging password rotates monthly"),
             agent(b, env, "memory", "add", "--text", "beta note: backups run at 02:00 UTC")]
    added = [done(p) for p in procs]
    inserted = [json.loads(added[i])["inserted"] for i in (0, 1)]
    assert all(n > 0 for n in inserted)

    def run(ws: Path, *args: str) -> str:
        return in_process(ws, s3_endpoint, monkeypatch, *args)

    listed = json.loads(run(a, "memory", "list", "--tier", "semantic", "--json", "-n", "1000"))
    sources = {item["source"].split(":")[0] for item in listed}
    assert {f"docs/alpha-{i:02d}.md" for i in range(8)} <= sources
    assert {f"docs/beta-{i:02d}.md" for i in range(8)} <= sources
    assert len(listed) == sum(inserted) + 2  # every chunk of both machines, and both notes

    # Each recalls what the other wrote.
    hits = json.loads(run(a, "memory", "search", "backup-3 dashboard", "--json", "-k", "3"))["hits"]
    assert hits and hits[0]["source"].startswith("docs/beta-03.md")
    hits = json.loads(run(b, "memory", "search", "staging password", "--json", "-k", "3"))["hits"]
    assert any("alpha note" in h["text"] for h in hits)

    # Each machine's ingest manifest: an unchanged re-add writes nothing; once the other
    # machine has written, it is checked against the store again, and still writes nothing.
    version = json.loads(run(a, "memory", "stats", "--json"))["tables"]["chunks"]["version"]
    for ws in (a, a, b, a):
        again = json.loads(run(ws, "memory", "add", ".", "--json"))
        assert (again["inserted"], again["deleted"], again["embedded"]) == (0, 0, 0)
    run(b, "memory", "add", "--text", "beta note: the dashboard moved")
    assert json.loads(run(a, "memory", "add", ".", "--json"))["unchanged"] == 9
    assert json.loads(run(a, "memory", "stats", "--json"))["tables"]["chunks"]["version"] == version + 1

    # Re-adding on one machine, after a file was deleted there, forgets only that machine's file.
    (a / "docs" / "alpha-00.md").unlink()
    again = json.loads(run(a, "memory", "add", ".", "--json"))
    assert again["embedded"] == 0 and again["sources"] == ["docs/alpha-00.md"]
    listed = json.loads(run(b, "memory", "list", "--tier", "semantic", "--json", "-n", "1000"))
    sources = [item["source"].split(":")[0] for item in listed]
    assert "docs/alpha-00.md" not in sources and sources.count("README.md") == 2
    assert {f"docs/beta-{i:02d}.md" for i in range(8)} <= set(sources)

    assert f"{URI} (object storage) opens" in run(b, "doctor")


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


def test_unreachable_store_fails_memory_commands_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = machine(tmp_path, "gamma", ["deploy"])
    monkeypatch.chdir(ws)
    for k, v in aws_env(dead_endpoint()).items():
        monkeypatch.setenv(k, v)
    state = State(environ={"AGENT_MEMORY__URI": URI, "AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"},
                  use_user_config=False)
    res = CliRunner().invoke(app, ["memory", "search", "deploy"], obj=state)
    assert res.exit_code == 1
    assert "unreachable" in res.stderr and URI in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1
    res = CliRunner().invoke(app, ["doctor"], obj=state)
    assert res.exit_code == 1 and "memory" in res.stdout and "unreachable" in res.stdout


LIST_PY = {"steps": [{"tool": "list_files", "args": {"pattern": "**/*.md"}, "title": "list the docs"}]}


def _complete(answer: str) -> dict[str, Any]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def test_a_run_goes_on_without_an_unreachable_store(tmp_path: Path, s3_endpoint: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ws = machine(tmp_path, "delta", ["deploy"])
    monkeypatch.chdir(ws)
    for k, v in aws_env(dead_endpoint()).items():
        monkeypatch.setenv(k, v)
    env = {"AGENT_MEMORY__URI": URI, "AGENT_MEMORY__EMBEDDING_MODEL": "test/hash", "AGENT_MODEL": "test/scripted"}
    result = CliRunner().invoke(app, ["run", "list the docs", "--yes", "--json"],
                                obj=State(backend=ScriptedModel([LIST_PY, _complete("two docs")]), environ=env))
    flush()
    assert result.exit_code == 0, result.output
    assert "unreachable" in result.stderr and "going on without memory" in result.stderr
    assert "Traceback" not in result.output
    run_id = json.loads(result.stdout)["run_id"]
    events = [json.loads(x) for x in (ws / ".agent" / "runs" / run_id / "events.jsonl").read_text().splitlines()]
    recalls = [e["data"] for e in events if e["type"] == "memory_recall"]
    assert recalls and recalls[0]["unavailable"] is True and "unreachable" in recalls[0]["error"]
    assert events[-1]["type"] == "run_finished" and events[-1]["data"]["status"] == "COMPLETE"
    # The episode could not be written: it waits in the data dir, and goes in once the store answers.
    assert (ws / ".agent" / "memory-pending" / f"{run_id}.json").is_file()
    for k, v in aws_env(s3_endpoint).items():
        monkeypatch.setenv(k, v)
    listed = CliRunner().invoke(app, ["memory", "list", "--tier", "episodic", "--json"],
                                obj=State(environ=env))
    assert listed.exit_code == 0, listed.output
    assert run_id in [item["id"] for item in json.loads(listed.stdout)]
    assert not (ws / ".agent" / "memory-pending" / f"{run_id}.json").exists()
