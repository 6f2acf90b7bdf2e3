"""Memory takes any file name, and one bad episode never breaks it.

A name that is not valid UTF-8 (``caf\\xe9.txt`` on a Linux file system) is stored with its
undecodable bytes as ``\\xNN`` escapes, found by search, forgotten when the file goes; a run whose
answer names such a file leaves an episode that is written; a pending episode that can never be
written is moved aside with one warning, and the commands after it work without one. Through the
CLI (CliRunner), on a real workspace and LanceDB directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel

runner = CliRunner()
CAFE = os.fsdecode(b"caf\xe9.txt")   # as Python sees the name: a lone surrogate for the byte
DIR = os.fsdecode(b"d\xff")


def invoke(args: list[str], script: list[Any] | None = None, **env: str) -> Any:
    return runner.invoke(app, args, obj=State(backend=ScriptedModel(list(script or [])), environ={
        "AGENT_MODEL": "test/scripted", **env}, use_user_config=False))


@pytest.fixture
def ws(workspace: Path) -> Path:
    (workspace / CAFE).write_text("the café opens at nine\n")
    (workspace / DIR).mkdir()
    (workspace / DIR / "notes.md").write_text("# Notes\n\nthe deploy runs on Fridays\n")
    (workspace / "plain.txt").write_text("plain text\n")
    return workspace


def test_names_that_are_not_utf8_are_stored_escaped_and_found_again(ws: Path) -> None:
    res = invoke(["memory", "add", ".", "--json"])
    assert res.exit_code == 0, res.output
    written = json.loads(res.stdout)
    assert sorted(written["sources"]) == ["caf\\xe9.txt", "d\\xff/notes.md", "plain.txt"]
    assert written["skipped"] == [] and written["inserted"] == 3

    res = invoke(["memory", "search", "when does the café open", "--json", "-k", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["hits"][0]["source"] == "caf\\xe9.txt:1-1"

    res = invoke(["memory", "add", "."])  # nothing changed
    assert res.exit_code == 0 and "0 sources written" in res.stdout, res.output

    (ws / CAFE).unlink()  # the escaped name leads back to the file: its chunks go with it
    res = invoke(["memory", "add", ".", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sources"] == ["caf\\xe9.txt"] and json.loads(res.stdout)["deleted"] == 1

    res = invoke(["memory", "forget", "--source", DIR])  # a name given on the command line: the same form
    assert res.exit_code == 2 and "not valid UTF-8" in res.stderr  # argv refuses such bytes, one line
    res = invoke(["memory", "forget", "--source", "plain.txt"])
    assert res.exit_code == 0, res.output


def test_an_episode_whose_answer_names_such_a_file_is_written(ws: Path) -> None:
    # What a run does at its end (the embedded model's answer is built from the tool outputs, a
    # file list included): the episode waits in memory-pending/ for the next command.
    from agentcli.config import load_settings
    from agentcli.memory import open_memory

    settings = load_settings(workspace=ws, environ={"AGENT_MODEL": "test/scripted"}, use_user_config=False)
    queued = open_memory(settings).record_episode(
        run_id="20261207-000000-abcdef", task="which text files are there", plan_summary="s1 list_files",
        status="COMPLETE", reason="", answer=f"2 files:\n{CAFE}\nplain.txt", cost_usd=0.0, wait=False)
    assert queued.queued
    res = invoke(["memory", "search", "which text files are there", "--tier", "episodic", "--json"])
    assert res.exit_code == 0 and "warning" not in res.stderr, res.output
    [hit] = json.loads(res.stdout)["hits"]
    assert "caf\\xe9.txt" in hit["text"]
    assert not list((ws / ".agent" / "memory-pending").glob("*.json"))


@pytest.mark.parametrize("damage", ["not json", "missing fields"])
def test_a_pending_episode_that_cannot_be_written_is_set_aside_with_one_warning(ws: Path, damage: str) -> None:
    res = invoke(["memory", "add", "plain.txt"])
    assert res.exit_code == 0, res.output
    pending = ws / ".agent" / "memory-pending"
    pending.mkdir()
    bad = pending / "20261207-000000-abcdef.json"
    if damage == "not json":
        bad.write_bytes(b'{"schema_version": 1, "run_id": "20261207-0')
    else:
        bad.write_text(json.dumps({"schema_version": 1, "uri": str(ws / ".agent" / "memory"), "run_id": "r1"}))

    res = invoke(["memory", "search", "plain", "--json"])
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "20261207-000000-abcdef.json could not be written to memory" in warnings[0]
    assert json.loads(res.stdout)["hits"]  # the search itself worked
    assert not bad.exists() and (pending / "failed" / bad.name).is_file()

    res = invoke(["memory", "search", "plain"])  # set aside for good: no second warning
    assert res.exit_code == 0 and "warning" not in res.stderr, res.output
