"""`agent memory ...` through Typer's CliRunner, on a real workspace and LanceDB directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands import memory as memory_cmd
from agentcli.cli.commands.common import State
from agentcli.memory import Memory

runner = CliRunner()

NOTES = """\
# Release notes

## Rollback

To roll back a bad release, redeploy the previous image tag and restart the workers.

## Logging

Logs are written as JSON lines to stdout and shipped by the platform agent.
"""


def invoke(args: list[str], **env: str) -> Any:
    return runner.invoke(app, args, obj=State(environ=env, use_user_config=False))


@pytest.fixture
def ws(workspace: Path) -> Path:
    (workspace / "docs").mkdir()
    (workspace / "docs" / "release.md").write_text(NOTES)
    (workspace / "tool.py").write_text("def slugify(text):\n    return text.lower().replace(' ', '-')\n")
    return workspace


def test_add_search_list_forget_stats(ws: Path) -> None:
    res = invoke(["memory", "add", "docs", "tool.py", "--json"])
    assert res.exit_code == 0, res.output
    written = json.loads(res.stdout)
    assert written["inserted"] >= 3 and sorted(written["sources"]) == ["docs/release.md", "tool.py"]

    res = invoke(["memory", "add", "--text", "The staging host is staging.example.com"])
    assert res.exit_code == 0 and "1 chunk added" in res.stdout

    res = invoke(["memory", "search", "how do I roll back a release", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["hits"]
    assert hits[0]["tier"] == "semantic" and hits[0]["source"].startswith("docs/release.md:")
    assert 0 <= hits[0]["score"] <= 1

    res = invoke(["memory", "search", "how do I roll back a release", "--tier", "semantic", "-k", "1"])
    assert res.exit_code == 0
    assert "docs/release.md" in res.stdout and "semantic" in res.stdout

    res = invoke(["memory", "search", "where is staging", "--tier", "episodic"])
    assert res.exit_code == 0 and res.stdout == ""  # nothing recalled: said on stderr only

    res = invoke(["memory", "list", "--tier", "semantic", "--json"])
    items = json.loads(res.stdout)
    assert {i["source"].split(":")[0] for i in items} == {"docs/release.md", "tool.py", "text"}

    res = invoke(["memory", "forget", "--source", "tool.py"])
    assert res.exit_code == 0 and "forgot 1 item" in res.stdout
    res = invoke(["memory", "forget", items[0]["id"]])
    assert res.exit_code == 0
    res = invoke(["memory", "forget", "no-such-id"])
    assert res.exit_code == 2 and "nothing in memory matches" in res.stderr

    res = invoke(["memory", "stats", "--json"])
    stats = json.loads(res.stdout)
    # Files and notes: the static embedder distilled from the built-in MiniLM (episodes: MiniLM).
    assert stats["chunk_embedder"].startswith("builtin:static-") and stats["chunk_dim"] == 384
    assert stats["embedder"] == "builtin:all-MiniLM-L6-v2-onnx-int8"
    assert stats["tables"]["chunks"]["rows"] == len(items) - 2
    assert stats["size_on_disk"] > 0 and stats["tables"]["chunks"]["versions"] >= 1
    res = invoke(["memory", "stats"])
    assert res.exit_code == 0 and "static" in res.stdout and "chunks" in res.stdout


def test_episodes_show_up_in_search_and_list(ws: Path) -> None:
    from agentcli.config import load_settings

    mem = Memory.from_settings(load_settings(workspace=ws, environ={}, use_user_config=False))
    mem.record_episode(run_id="20261124-010000-abcdef", task="add a slugify helper", plan_summary="s1 write",
                       status="COMPLETE", reason="complete", answer="added tool.py", cost_usd=0.002)
    res = invoke(["memory", "search", "what happened when I added the slugify helper", "--json"])
    hits = json.loads(res.stdout)["hits"]
    assert hits[0]["tier"] == "episodic" and hits[0]["id"] == "20261124-010000-abcdef"
    res = invoke(["memory", "list", "--tier", "episodic", "--json"])
    [item] = json.loads(res.stdout)
    assert item["id"] == "20261124-010000-abcdef" and item["status"] == "COMPLETE"
    assert invoke(["memory", "list", "--tier", "episodic"]).exit_code == 0


def test_path_outside_workspace_and_bad_usage_exit_2(ws: Path, tmp_path: Path) -> None:
    res = invoke(["memory", "add", "../elsewhere"])
    assert res.exit_code == 2 and "refused" in res.stderr
    res = invoke(["memory", "add", str(tmp_path)])
    assert res.exit_code == 2 and "outside the workspace" in res.stderr
    res = invoke(["memory", "add"])
    assert res.exit_code == 2 and "PATH... or --text" in res.stderr
    res = invoke(["memory", "search", "x", "--tier", "procedural"])
    assert res.exit_code == 2 and "--tier" in res.stderr
    res = invoke(["memory", "forget"])
    assert res.exit_code == 2


def test_embedder_mismatch_exits_2_and_reindex_fixes_it(ws: Path) -> None:
    assert invoke(["memory", "add", "docs"]).exit_code == 0
    env = {"AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}
    res = invoke(["memory", "search", "rollback"], **env)
    assert res.exit_code == 2
    assert "agent memory reindex" in res.stderr and res.stderr.startswith("error: ")
    res = invoke(["memory", "reindex", "--json"], **env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"embedder": "test/hash-256", "rows": {"chunks": 2}}
    res = invoke(["memory", "search", "roll back a bad release", "--json", "--min-score", "0"], **env)
    assert res.exit_code == 0 and json.loads(res.stdout)["hits"]
    assert invoke(["memory", "search", "rollback"]).exit_code == 2  # the built-in one is now the stranger


def test_large_ingests_draw_a_progress_bar_on_a_terminal_only(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    big = ws / "big"
    big.mkdir()
    for i in range(40):
        (big / f"n{i:02d}.md").write_text(f"# Note {i}\n\nFact number {i}: the value of key{i} is {i * 17}.\n")
    (big / "blob.md").write_bytes(b"\x00\x01binary")  # skipped, and said so
    res = invoke(["memory", "add", "big"])  # stderr is not a terminal here: no bar, the summary only
    assert res.exit_code == 0, res.output
    assert "embedding" not in res.stderr and "skipped big/blob.md: not a UTF-8 text file" in res.stderr
    assert "40 sources written" in res.stdout

    terminal = io.StringIO()
    monkeypatch.setattr(memory_cmd, "err_console", Console(file=terminal, force_terminal=True, width=100))
    for i in range(40):
        (big / f"n{i:02d}.md").write_text(f"# Note {i}\n\nFact {i} changed: key{i} is now {i * 19}.\n")
    res = invoke(["memory", "add", "big"])
    assert res.exit_code == 0, res.output
    drawn = terminal.getvalue()
    assert "embedding" in drawn and "40/40" in drawn
