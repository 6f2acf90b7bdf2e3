"""The ingest manifest, through `agent memory add`: an unchanged re-add is a stat per file and
leaves the store untouched, and the manifest never makes an ingest skip or forget what it would
without it (edits, deletions, `forget`, another workspace writing the same memory, a manifest
that is missing, corrupt or of another schema)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State

runner = CliRunner()
HASH = {"AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}


def invoke(ws: Path, args: list[str], **env: str) -> Any:
    old = Path.cwd()
    os.chdir(ws)
    try:
        return runner.invoke(app, args, obj=State(environ={**HASH, **env}, use_user_config=False))
    finally:
        os.chdir(old)


def add(ws: Path, *paths: str, **env: str) -> dict[str, Any]:
    res = invoke(ws, ["memory", "add", *(paths or (".",)), "--json"], **env)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def chunks_version(ws: Path) -> int:
    res = invoke(ws, ["memory", "stats", "--json"])
    assert res.exit_code == 0, res.output
    return int(json.loads(res.stdout)["tables"]["chunks"]["version"])


def sources(ws: Path) -> set[str]:
    res = invoke(ws, ["memory", "list", "--tier", "semantic", "--json", "-n", "1000"])
    assert res.exit_code == 0, res.output
    return {item["source"].rsplit(":", 1)[0] for item in json.loads(res.stdout)}


def age(ws: Path) -> None:
    """Files last modified a minute ago: a file modified within seconds of being read is not
    trusted by its stat (racy timestamps), so fresh test files would always be re-read."""
    past = time.time() - 60
    for p in ws.rglob("*"):
        if p.is_file() and ".agent" not in p.parts:
            os.utime(p, (past, past))


def manifest_file(ws: Path) -> Path:
    [path] = (ws / ".agent" / "memory-manifest").glob("*.json")
    return path


def project(root: Path, name: str = "ws", origin: str | None = None) -> Path:
    ws = root / name
    (ws / "docs").mkdir(parents=True)
    for i in range(6):
        (ws / "docs" / f"topic-{i}.md").write_text(f"# Topic {i}\n\nThe {i}th procedure: run step {i} twice.\n")
    (ws / "tool.py").write_text("def slugify(text):\n    return text.lower().replace(' ', '-')\n")
    (ws / "empty.txt").write_text("")
    if origin is not None:
        (ws / ".git").mkdir()
        (ws / ".git" / "config").write_text(f'[remote "origin"]\n\turl = {origin}\n')
    age(ws)
    return ws


def test_an_unchanged_readd_is_recognised_by_stat_and_writes_nothing(tmp_path: Path) -> None:
    ws = project(tmp_path)
    first = add(ws)
    assert first["inserted"] >= 7 and first["unchanged"] == 1  # the empty file: nothing to store
    version = chunks_version(ws)
    again = add(ws)
    assert (again["unchanged"], again["inserted"], again["embedded"], again["sources"]) == (8, 0, 0, [])
    assert chunks_version(ws) == version
    body = json.loads(manifest_file(ws).read_text())
    assert body["schema_version"] == 3 and "docs/topic-3.md" in body["files"]

    # A real process: the unchanged re-add does not even import LanceDB.
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "agentcli", "memory", "add", ".", "--json"],
                          cwd=ws, env={**os.environ, **HASH}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["unchanged"] == 8
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "lancedb" not in imported and "agentcli.memory.manifest" in imported


def test_edits_touches_and_deletions_still_reach_the_store(tmp_path: Path) -> None:
    ws = project(tmp_path)
    add(ws)
    (ws / "docs" / "topic-1.md").write_text("# Topic 1\n\nRewritten: the first procedure is now automatic.\n")
    os.utime(ws / "tool.py")  # touched, same content: read again, nothing written
    (ws / "docs" / "topic-5.md").unlink()
    res = add(ws)
    assert res["sources"] == ["docs/topic-1.md", "docs/topic-5.md"] and res["embedded"] >= 1
    assert res["deleted"] >= 2 and res["unchanged"] == 6
    assert "docs/topic-5.md" not in sources(ws)
    age(ws)
    add(ws)  # the manifest now vouches for the new state
    version = chunks_version(ws)
    assert add(ws)["inserted"] == 0 and chunks_version(ws) == version


def test_a_forgotten_file_is_added_again_although_it_did_not_change(tmp_path: Path) -> None:
    ws = project(tmp_path)
    add(ws)
    assert invoke(ws, ["memory", "forget", "--source", "tool.py"]).exit_code == 0
    res = add(ws)
    assert res["sources"] == ["tool.py"] and res["inserted"] >= 1 and "tool.py" in sources(ws)
    shutil.rmtree(ws / ".agent" / "memory")  # the whole store gone, the manifest left behind
    res = add(ws)
    assert res["inserted"] >= 7 and "docs/topic-4.md" in sources(ws)


def test_another_workspace_writing_the_memory_is_never_skipped_or_lost(tmp_path: Path) -> None:
    """Two clones of one repository (one origin) on two "machines" sharing one memory: when the
    other deletes a file and re-adds, this one's unchanged re-add must put the file back, as it
    would without a manifest; a third workspace of another origin keeps all its rows."""
    shared = {"AGENT_MEMORY__URI": str(tmp_path / "team-memory")}
    url = "https://example.com/team/repo.git"
    a, b = project(tmp_path, "a", url), project(tmp_path, "b", url)
    c = project(tmp_path, "c", "https://example.com/team/other.git")
    (c / "docs" / "only-in-c.md").write_text("# C\n\nThis file exists only in workspace c.\n")
    age(c)
    add(a, **shared)
    add(c, **shared)
    add(a, **shared)  # the manifest of a is current now
    (b / "docs" / "topic-2.md").unlink()
    res = add(b, **shared)
    assert res["sources"] == ["docs/topic-2.md"] and res["deleted"] >= 1  # gone for the shared origin
    back = add(a, **shared)
    assert back["sources"] == ["docs/topic-2.md"] and back["inserted"] >= 1
    listed = invoke(a, ["memory", "list", "--tier", "semantic", "--json", "-n", "1000"], **shared)
    names = [item["source"].rsplit(":", 1)[0] for item in json.loads(listed.stdout)]
    assert "docs/topic-2.md" in names and "docs/only-in-c.md" in names
    assert names.count("tool.py") == 2  # one per origin


@pytest.mark.parametrize("damage", [
    b"\x00\xff not json",
    b'{"schema_version": 1, "files": {"tool.py": "oops"}}',
    b"[1, 2, 3]",
    b'{"schema_version": 0, "uri": "x", "origin": "y", "files": {}}',
    b"OLD-SCHEMA",
])
def test_a_corrupt_or_older_manifest_is_rebuilt_never_a_traceback(tmp_path: Path, damage: bytes) -> None:
    ws = project(tmp_path)
    add(ws)
    (ws / "tool.py").write_text("def slugify(text):\n    return '-'.join(text.lower().split())\n")
    age(ws)
    if damage == b"OLD-SCHEMA":  # schema 1 trusted entries by the manifest's write time
        body = json.loads(manifest_file(ws).read_text())
        damage = json.dumps({**body, "schema_version": 1, "written_ns": time.time_ns()}).encode()
    manifest_file(ws).write_bytes(damage)
    res = add(ws)
    assert res["sources"] == ["tool.py"] and res["inserted"] >= 1
    body = json.loads(manifest_file(ws).read_text())
    assert body["schema_version"] == 3 and set(body["files"]) >= {"tool.py", "docs/topic-0.md"}
    manifest_file(ws).unlink()  # missing: the store is asked, nothing rewritten
    version = chunks_version(ws)
    assert add(ws)["unchanged"] == 8 and chunks_version(ws) == version and manifest_file(ws).is_file()


def test_a_file_modified_seconds_before_it_was_read_is_not_vouched_for(tmp_path: Path) -> None:
    """Racy timestamps: a second edit within the file system's timestamp granularity could keep
    the size and mtime, so a just-modified file is read again by the next ingest."""
    ws = project(tmp_path)
    (ws / "docs" / "fresh.md").write_text("# Fresh\n\nWritten a moment ago.\n")
    add(ws)
    files = json.loads(manifest_file(ws).read_text())["files"]
    assert files["docs/fresh.md"][1] == -1 and files["docs/topic-0.md"][1] > 0  # listed, not vouched for
    (ws / "docs" / "fresh.md").write_text("# Fresh\n\nWritten a moment ag0.\n")  # same size, same tick
    res = add(ws)
    assert res["sources"] == ["docs/fresh.md"] and res["inserted"] >= 1
    age(ws)
    add(ws)
    assert "docs/fresh.md" in json.loads(manifest_file(ws).read_text())["files"]


def test_a_stored_file_no_longer_ingested_is_still_forgotten_once_deleted(tmp_path: Path) -> None:
    """A file stored before it was ignored stays stored while it exists (as without a manifest);
    the unchanged path must still notice when it is deleted."""
    ws = project(tmp_path)
    (ws / "docs" / "new.md").write_text("# New\n\nJust written, so not vouched for yet.\n")
    add(ws)
    (ws / ".gitignore").write_text("tool.py\n")
    age(ws)
    add(ws)
    add(ws)
    assert "tool.py" in sources(ws)
    (ws / "tool.py").unlink()
    res = add(ws)
    assert res["sources"] == ["tool.py"] and "tool.py" not in sources(ws)
    (ws / "docs" / "new.md").unlink()
    assert add(ws)["sources"] == ["docs/new.md"]


def test_the_manifest_can_be_turned_off(tmp_path: Path) -> None:
    ws = project(tmp_path)
    off = {"AGENT_MEMORY__INGEST_MANIFEST": "false"}
    add(ws, **off)
    assert add(ws, **off)["unchanged"] == 8
    assert not (ws / ".agent" / "memory-manifest").exists()
