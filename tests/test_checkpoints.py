"""Checkpoints and undo through the CLI, with real files, real shell commands and real git:
a run that writes, edits, runs sed -i, rm and mv is undone to a byte-identical tree; undo stops
at files changed after the run; an undo can be undone; a kill -9 mid-run leaves a usable
checkpoint; the user's .git is never touched."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel

runner = CliRunner()
ENV = {"AGENT_MODEL": "test/scripted"}
COMPLETE = {"outcome": "complete", "answer": "done", "reason": ""}


def invoke(args: list[str], *responses: Any) -> Any:
    return runner.invoke(app, args, obj=State(backend=ScriptedModel(list(responses)), environ=ENV))


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, check=True, capture_output=True, text=True).stdout


def tree_hashes(ws: Path) -> dict[str, str]:
    """sha256 of every file under ws except the user's .git and the data dir."""
    out = {}
    for p in sorted(ws.rglob("*")):
        rel = p.relative_to(ws).as_posix()
        if rel.split("/")[0] in (".git", ".agent") or not p.is_file():
            continue
        # git, and so a checkpoint, records the executable bit of a file, not the rest of its mode.
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + ("+x" if p.stat().st_mode & 0o100 else "")
    return out


def user_git_state(ws: Path) -> tuple[str, str, str]:
    index = hashlib.sha256((ws / ".git" / "index").read_bytes()).hexdigest()
    return index, git(ws, "stash", "list"), git(ws, "rev-parse", "HEAD")


@pytest.fixture
def repo(workspace: Path) -> Path:
    ws = workspace
    (ws / "keep.txt").write_text("keep me\n")
    (ws / "edit.txt").write_text("alpha\nbeta\n")
    (ws / "sed.txt").write_text("colour colour\n")
    (ws / "gone.txt").write_text("to be removed\n")
    (ws / "old_name.txt").write_text("moved\n")
    (ws / "sub").mkdir()
    (ws / "sub" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (ws / "sub" / "script.sh").chmod(0o755)
    (ws / ".gitignore").write_text(".agent/\nbuild/\n")
    (ws / "build").mkdir()
    (ws / "build" / "out.bin").write_bytes(b"\0" * 10)
    git(ws, "init", "-q")
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return ws


SIDE_EFFECTS = {"steps": [
    {"title": "write", "tool": "write_file", "args": {"path": "new/created.txt", "content": "fresh\n"}},
    {"title": "edit", "tool": "edit_file", "depends_on": ["s1"],
     "args": {"path": "edit.txt", "search": "beta", "replace": "gamma"}},
    {"title": "shell", "tool": "run_shell", "depends_on": ["s2"], "args": {
        "command": "sed -i 's/colour/color/g' sed.txt && rm gone.txt && mv old_name.txt new_name.txt "
                   "&& chmod -x sub/script.sh && echo ignored > build/junk.o"}},
]}


def _run(ws: Path) -> str:
    r = invoke(["run", "make the changes", "--yes", "--json"], SIDE_EFFECTS, COMPLETE)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [s["status"] for s in out["steps"]] == ["ok", "ok", "ok"], out["steps"]
    assert out["undo"] == f"agent undo {out['run_id']}"
    return str(out["run_id"])


def test_undo_restores_a_byte_identical_tree(repo: Path) -> None:
    before, git_before = tree_hashes(repo), user_git_state(repo)
    run_id = _run(repo)
    assert (repo / "new_name.txt").exists() and not (repo / "gone.txt").exists()
    assert (repo / "sed.txt").read_text() == "color color\n"

    d = invoke(["runs", "diff", run_id, "--json"])
    assert d.exit_code == 0, d.output
    changed = {f["path"]: f["status"] for f in json.loads(d.stdout)["files"]}
    assert changed == {"new/created.txt": "A", "edit.txt": "M", "sed.txt": "M", "gone.txt": "D",
                       "old_name.txt": "D", "new_name.txt": "A", "sub/script.sh": "M"}
    step3 = json.loads(invoke(["runs", "diff", run_id, "--step", "s3", "--json"]).stdout)
    assert "edit.txt" not in {f["path"] for f in step3["files"]} and "sed.txt" in {f["path"] for f in step3["files"]}
    text = invoke(["runs", "diff", run_id]).stdout
    assert "-colour colour" in text and "+color color" in text

    u = invoke(["undo", run_id, "--yes", "--json"])
    assert u.exit_code == 0, u.output
    res = json.loads(u.stdout)
    assert res["applied"] and not res["conflicts"]
    assert tree_hashes(repo) == {**before, "build/junk.o": tree_hashes(repo)["build/junk.o"]}
    assert user_git_state(repo) == git_before  # the user's index, stash and HEAD untouched
    assert git(repo, "status", "--porcelain") == ""
    assert not (repo / "new").exists()
    events = [json.loads(line) for line in (repo / ".agent" / "runs" / run_id / "events.jsonl").open()]
    assert [e["data"]["kind"] for e in events if e["type"] == "undo"] == ["undo"]
    assert sum(e["type"] == "checkpoint" for e in events) >= 4

    again = invoke(["undo", run_id, "--yes"])
    assert again.exit_code == 2 and "--redo" in again.stderr


def test_undo_of_undo_restores_the_runs_result(repo: Path) -> None:
    run_id = _run(repo)
    after_run = tree_hashes(repo)
    assert invoke(["undo", run_id, "--yes"]).exit_code == 0
    assert tree_hashes(repo) != after_run
    r = invoke(["undo", run_id, "--redo", "--yes", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["kind"] == "redo"
    assert tree_hashes(repo) == after_run
    # ... and undone again, from what the redo left.
    assert invoke(["undo", run_id, "--yes"]).exit_code == 0
    assert git(repo, "status", "--porcelain", "--untracked-files=all").strip() == "?? build/junk.o" or \
        git(repo, "status", "--porcelain") == ""


def test_undo_refuses_when_a_changed_file_was_edited_afterwards(repo: Path) -> None:
    run_id = _run(repo)
    (repo / "sed.txt").write_text("the user's own edit\n")
    (repo / "keep.txt").write_text("unrelated edit: not a conflict\n")
    snapshot = tree_hashes(repo)
    r = invoke(["undo", run_id, "--yes", "--json"])
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["conflicts"] == ["sed.txt"] and not out["applied"]
    assert "sed.txt" in r.stderr and "--force" in r.stderr
    assert tree_hashes(repo) == snapshot  # nothing touched
    forced = invoke(["undo", run_id, "--yes", "--force"])
    assert forced.exit_code == 0, forced.output
    assert (repo / "sed.txt").read_text() == "colour colour\n"
    assert (repo / "keep.txt").read_text() == "unrelated edit: not a conflict\n"  # not the run's


def test_undo_without_terminal_or_yes_is_denied(repo: Path) -> None:
    run_id = _run(repo)
    r = invoke(["undo", run_id])
    assert r.exit_code == 4 and "--yes" in r.stderr
    assert (repo / "new_name.txt").exists()


def test_undo_to_step_keeps_earlier_steps(repo: Path) -> None:
    run_id = _run(repo)
    bad = invoke(["undo", run_id, "--to-step", "s9", "--yes"])
    assert bad.exit_code == 2 and "s9" in bad.stderr
    assert invoke(["undo", run_id, "--to-step", "s3", "--yes"]).exit_code == 0
    assert (repo / "new" / "created.txt").exists() and "gamma" in (repo / "edit.txt").read_text()
    assert (repo / "gone.txt").exists() and (repo / "sed.txt").read_text() == "colour colour\n"


def test_big_files_are_skipped_recorded_and_never_deleted(repo: Path) -> None:
    (repo / "big.dat").write_bytes(b"x" * 5000)
    (repo / "agent.toml").write_text("[tools]\nmax_file_bytes = 4096\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "big")
    plan = {"steps": [{"title": "shell", "tool": "run_shell", "args": {
        "command": "head -c 100 big.dat > big.tmp && mv big.tmp big.dat && echo y > small.txt"}}]}
    r = invoke(["run", "shrink", "--yes", "--json"], plan, COMPLETE)
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.stdout)["run_id"]
    events = [json.loads(line) for line in (repo / ".agent" / "runs" / run_id / "events.jsonl").open()]
    first = next(e for e in events if e["type"] == "checkpoint")
    assert first["data"]["skipped"] == ["big.dat"]
    u = invoke(["undo", run_id, "--yes", "--json"])
    assert u.exit_code == 0, u.output
    res = json.loads(u.stdout)
    assert "big.dat" in res["not_restorable"]
    assert (repo / "big.dat").exists()  # never recorded, so never deleted
    assert not (repo / "small.txt").exists()


def test_kill_9_mid_run_leaves_a_checkpoint_undo_can_use(repo: Path, tmp_path: Path) -> None:
    before = tree_hashes(repo)
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"steps": [
        {"title": "write", "tool": "write_file", "args": {"path": "made.txt", "content": "made\n"}},
        {"title": "shell", "tool": "run_shell", "depends_on": ["s1"], "args": {
            "command": "echo half > edit.txt; echo started > started.txt; sleep 60", "timeout": 120}},
    ]}, COMPLETE]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env.update({"AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script)})
    agent = subprocess.Popen([sys.executable, "-m", "agentcli", "run", "change things", "--yes"], cwd=repo,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (repo / "started.txt").exists():
            assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(10)
    finally:
        if agent.poll() is None:
            agent.kill()
    run_id = next((repo / ".agent" / "runs").iterdir()).name
    # As if the kill had come in the middle of a checkpoint: git's lock file of the shadow index.
    (repo / ".agent" / "checkpoints" / "index.lock").write_text("")
    r = invoke(["undo", run_id, "--yes", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["unfinished"] and res["applied"]
    assert tree_hashes(repo) == before
    assert git(repo, "status", "--porcelain") == ""


# ---------------------------------------------------------------- what git alone does not keep


def fs_state(ws: Path) -> dict[str, str]:
    """Everything under ws but the user's .git and the data dir: each path's kind, full mode and
    content (a link's target), empty directories included."""
    out: dict[str, str] = {}
    for p in sorted(ws.rglob("*")):
        rel = p.relative_to(ws).as_posix()
        if rel.split("/")[0] in (".git", ".agent"):
            continue
        st = p.lstat()
        if p.is_symlink():
            out[rel] = f"link -> {os.readlink(p)}"
        elif p.is_dir():
            out[rel] = f"dir {oct(st.st_mode & 0o7777)}"
        else:
            out[rel] = f"file {oct(st.st_mode & 0o7777)} {hashlib.sha256(p.read_bytes()).hexdigest()[:12]}"
    return out


@pytest.fixture
def shapes(workspace: Path) -> Path:
    ws = workspace
    (ws / ".gitignore").write_text(".agent/\nbuild/\n")
    (ws / "lib").mkdir()
    (ws / "lib" / "a.py").write_text("a = 1\n")
    (ws / "lib" / "deep").mkdir()
    (ws / "lib" / "deep" / "b.py").write_text("b = 2\n")
    (ws / "other").mkdir()
    (ws / "other" / "a.py").write_text("a = 'other'\n")
    (ws / "conf").write_text("key = 1\n")
    (ws / "link").symlink_to("other")
    (ws / "secret.txt").write_text("private\n")
    (ws / "secret.txt").chmod(0o600)
    (ws / "tool.sh").write_text("#!/bin/sh\n")
    (ws / "private").mkdir(mode=0o700)
    (ws / "private" / "p.txt").write_text("p\n")
    (ws / "empty_old" / "nested").mkdir(parents=True)
    (ws / "empty_old").chmod(0o750)
    (ws / "build" / "cache").mkdir(parents=True)  # ignored: never recorded, never touched
    (ws / "private").chmod(0o700)
    return ws


#: A command that makes every kind of change git's tree alone cannot undo.
SHAPE_CHANGES = (
    "rm -rf lib && ln -s other lib"  # a directory becomes a symlink
    " && rm link && mkdir link && echo in > link/file.txt"  # a symlink becomes a directory
    " && rm conf && mkdir conf && echo x > conf/x"  # a file becomes a directory
    " && rm -r empty_old && mkdir -p empty_new/sub"  # empty directories removed and created
    " && chmod 644 secret.txt && chmod 755 private && chmod 640 other/a.py && chmod +x tool.sh"  # modes
)


def _shape_run(ws: Path, command: str = SHAPE_CHANGES) -> str:
    plan = {"steps": [{"title": "reshape", "tool": "run_shell", "args": {"command": command}}]}
    r = invoke(["run", "reshape the tree", "--yes", "--json"], plan, COMPLETE)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [s["status"] for s in out["steps"]] == ["ok"], out["steps"]
    return str(out["run_id"])


def test_undo_restores_symlinks_empty_directories_and_modes_byte_for_byte(shapes: Path) -> None:
    before = fs_state(shapes)
    run_id = _shape_run(shapes)
    after_run = fs_state(shapes)
    assert after_run["lib"] == "link -> other" and after_run["empty_new/sub"].startswith("dir")
    assert after_run["link"].startswith("dir") and "empty_old" not in after_run

    u = invoke(["undo", run_id, "--yes", "--json"])
    assert u.exit_code == 0, u.output
    res = json.loads(u.stdout)
    assert res["applied"] and not res["conflicts"]
    changed = {f["path"]: f["status"] for f in res["files"]}
    # What the run did, as undo lists it: directories with a trailing slash, modes as M.
    assert changed["empty_new/sub/"] == "A" and changed["empty_old/nested/"] == "D"
    assert changed["secret.txt"] == "M" and changed["private/"] == "M"
    assert fs_state(shapes) == before

    # The undo can be undone, and the run's tree comes back just as exactly.
    r = invoke(["undo", run_id, "--redo", "--yes"])
    assert r.exit_code == 0, r.output
    assert fs_state(shapes) == after_run


def test_checkpoints_keep_working_after_a_directory_became_a_symlink(shapes: Path) -> None:
    first = _shape_run(shapes, "rm -rf lib && ln -s other lib")
    # The next runs checkpoint the same workspace: the shadow index must take the change.
    second = _shape_run(shapes, "echo more > lib/more.py && rm lib && mkdir lib && echo back > lib/a.py")
    third = _shape_run(shapes, "echo three > three.txt")
    events = [json.loads(line) for run in (first, second, third)
              for line in (shapes / ".agent" / "runs" / run / "events.jsonl").open()]
    cps = [e["data"] for e in events if e["type"] == "checkpoint"]
    assert cps and all(cp.get("commit") and not cp.get("error") for cp in cps), cps
    state = fs_state(shapes)
    for run in (third, second):
        assert invoke(["undo", run, "--yes"]).exit_code == 0
    assert fs_state(shapes)["lib"] == "link -> other" and "three.txt" not in fs_state(shapes)
    assert invoke(["undo", second, "--redo", "--yes"]).exit_code == 0
    assert fs_state(shapes) == {k: v for k, v in state.items() if k != "three.txt"}


def test_a_broken_shadow_index_is_rebuilt(shapes: Path) -> None:
    before = fs_state(shapes)
    first = _shape_run(shapes, "echo one > one.txt")
    (shapes / ".agent" / "checkpoints" / "index").write_bytes(b"DIRC garbage, not an index")
    run_id = _shape_run(shapes, "mkdir -p made/empty && echo two > two.txt && chmod 600 one.txt")
    events = [json.loads(line) for line in (shapes / ".agent" / "runs" / run_id / "events.jsonl").open()]
    assert all(e["data"].get("commit") for e in events if e["type"] == "checkpoint")
    for run in (run_id, first):
        u = invoke(["undo", run, "--yes"])
        assert u.exit_code == 0, u.output
    assert fs_state(shapes) == before


def test_a_mode_changed_after_the_run_is_a_conflict(shapes: Path) -> None:
    run_id = _shape_run(shapes, "chmod 644 secret.txt && mkdir fresh")
    (shapes / "secret.txt").chmod(0o400)
    r = invoke(["undo", run_id, "--yes", "--json"])
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["conflicts"] == ["secret.txt"]
    assert (shapes / "fresh").is_dir()  # nothing touched
