"""[[hooks]]: pre_tool blocks with exit 2, post_tool and run_finished see the events, warnings and
timeouts do not stop a run, hooks run confined, are recorded, and are never re-run by a replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel

ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
WRITE = {"steps": [{"title": "Write the note", "tool": "write_file", "args": {"path": "note.txt", "content": "hi"}}]}
LIST = {"steps": [{"title": "List files", "tool": "list_files", "args": {"pattern": "*.md"}}]}


def complete(answer: str) -> dict[str, str]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def hooks_toml(ws: Path, *hooks: dict[str, Any]) -> None:
    lines = []
    for h in hooks:
        lines.append("[[hooks]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in h.items()]
    (ws / "agent.toml").write_text("\n".join(lines) + "\n")


def invoke(args: list[str], *responses: Any, env: dict[str, str] | None = None) -> Any:
    return CliRunner(env=env).invoke(app, args, obj=State(backend=ScriptedModel(list(responses)), environ=ENV))


def events_of(ws: Path, run_id: str) -> list[dict[str, Any]]:
    path = ws / ".agent" / "runs" / run_id / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_pre_tool_exit_2_blocks_the_call_with_its_reason(workspace: Path) -> None:
    hooks_toml(workspace,
               {"event": "pre_tool", "tools": ["write_*"],
                "command": "cat > pre.json; echo 'notes are read-only here' >&2; exit 2"},
               {"event": "pre_tool", "command": "echo never >> other.txt"})  # after a block: not run
    r = invoke(["run", "write a note", "--yes", "--json"], WRITE, complete("could not write it"))
    assert r.exit_code == 1, r.output  # the only step was blocked: not done, whatever the reviewer says
    assert not (workspace / "note.txt").exists() and not (workspace / "other.txt").exists()
    seen = json.loads((workspace / "pre.json").read_text())
    assert seen["type"] == "pre_tool" and seen["step_id"] == "s1"
    assert seen["data"] == {"tool": "write_file", "args": {"path": "note.txt", "content": "hi"}}
    out = json.loads(r.stdout)
    error = out["steps"][0]["error"]
    assert error["type"] == "blocked" and "notes are read-only here" in error["message"]
    events = events_of(workspace, out["run_id"])
    hook = next(e for e in events if e["type"] == "hook")
    assert hook["step_id"] == "s1" and hook["data"]["outcome"] == "blocked" and hook["data"]["exit_code"] == 2
    assert not any(e["type"] == "tool_call" for e in events)  # the tool never ran
    shown = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["runs", "show", out["run_id"]], obj=State(environ=ENV))
    assert "pre_tool `cat > pre.json" in shown.stdout and "blocked: notes are read-only here" in shown.stdout


def test_post_tool_and_run_finished_get_the_events_warnings_go_on(workspace: Path) -> None:
    (workspace / "README.md").write_text("# r\n")
    hooks_toml(workspace,
               {"event": "post_tool", "command": "cat > post.json"},
               {"event": "post_tool", "tools": ["run_shell"], "command": "echo not for list_files > x.txt"},
               {"event": "post_tool", "command": "echo lint failed >&2; exit 1"},
               {"event": "run_finished", "command": "cat > finished.json"})
    r = invoke(["run", "list the markdown files", "--yes"], LIST, complete("README.md"))
    assert r.exit_code == 0, r.output
    assert "warning: hook `echo lint failed >&2; exit 1` (post_tool): hook exited with 1: lint failed" in r.stderr
    post = json.loads((workspace / "post.json").read_text())
    assert post["type"] == "post_tool" and post["data"]["tool"] == "list_files"
    assert post["data"]["result"]["ok"] is True and post["data"]["result"]["output"]
    assert not (workspace / "x.txt").exists()
    finished = json.loads((workspace / "finished.json").read_text())
    assert finished["type"] == "run_finished" and finished["data"]["status"] == "COMPLETE"
    run_id = finished["run_id"]
    outcomes = [(e["data"]["event"], e["data"]["outcome"]) for e in events_of(workspace, run_id)
                if e["type"] == "hook"]
    assert outcomes == [("post_tool", "ok"), ("post_tool", "warning"), ("run_finished", "ok")]


def test_a_slow_guard_is_killed_at_its_timeout_and_blocks(workspace: Path) -> None:
    (workspace / "README.md").write_text("# r\n")
    hooks_toml(workspace, {"event": "pre_tool", "command": "sleep 30; exit 0", "timeout_seconds": 0.5})
    r = invoke(["run", "list the markdown files", "--yes", "--json"], LIST, complete("could not list"))
    assert r.exit_code == 1, r.output  # the only step was blocked: not done, whatever the reviewer says
    out = json.loads(r.stdout)
    error = out["steps"][0]["error"]  # a guard that gave no verdict does not let the call through
    assert error["type"] == "blocked" and "timed out after 0.5 s" in error["message"]
    hook = next(e for e in events_of(workspace, out["run_id"]) if e["type"] == "hook")
    assert hook["data"]["outcome"] == "blocked"


def test_a_slow_hook_that_may_fail_open_only_warns(workspace: Path) -> None:
    (workspace / "README.md").write_text("# r\n")
    hooks_toml(workspace, {"event": "pre_tool", "command": "sleep 30; exit 2", "timeout_seconds": 0.5,
                           "fail_closed": False})
    r = invoke(["run", "list the markdown files", "--yes", "--json"], LIST, complete("README.md"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["steps"][0]["status"] == "ok"  # fail_closed = false: a timeout warns, it does not block
    hook = next(e for e in events_of(workspace, out["run_id"]) if e["type"] == "hook")
    assert hook["data"]["outcome"] == "warning" and "timed out after 0.5 s" in hook["data"]["message"]


def test_a_guard_that_cannot_be_sandboxed_blocks(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine without bubblewrap: PATH without it (a real lookup, nothing patched inside agentcli).
    from agentcli.tools.sandbox import sandbox_status

    (workspace / "README.md").write_text("# r\n")
    hooks_toml(workspace, {"event": "pre_tool", "command": "echo ran > ran.txt"},
               {"event": "post_tool", "command": "echo ran > post.txt"})
    bare = workspace.parent / "bin"
    bare.mkdir()
    for tool in ("sh", "echo", "git"):
        if Path(f"/usr/bin/{tool}").exists() or Path(f"/bin/{tool}").exists():
            (bare / tool).symlink_to(f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else f"/bin/{tool}")
    monkeypatch.setenv("PATH", str(bare))
    sandbox_status.cache_clear()
    try:
        r = invoke(["run", "list the markdown files", "--yes", "--json"], LIST, complete("could not list"))
    finally:
        monkeypatch.undo()
        sandbox_status.cache_clear()
    assert r.exit_code == 1, r.output  # the only step was blocked: not done
    out = json.loads(r.stdout)
    error = out["steps"][0]["error"]
    assert error["type"] == "blocked" and "hook not run: refused: no OS sandbox" in error["message"]
    assert not (workspace / "ran.txt").exists() and not (workspace / "post.txt").exists()


def test_hooks_get_no_credentials(workspace: Path) -> None:
    (workspace / "README.md").write_text("# r\n")
    hooks_toml(workspace, {"event": "pre_tool", "command": "env > env.txt"})
    r = invoke(["run", "list", "--yes"], LIST, complete("ok"),
               env={"OPENAI_API_KEY": "sk-test-hook-secret", "MY_SERVICE_TOKEN": "tok-123"})
    assert r.exit_code == 0, r.output
    env = (workspace / "env.txt").read_text()
    assert "sk-test-hook-secret" not in env and "tok-123" not in env and "PATH=" in env


def test_hooks_get_the_shell_allow_list_and_their_own_env(workspace: Path) -> None:
    # The same allow-list as run_shell's commands (tools.shell_env_allow), plus each hook's `env`.
    (workspace / "README.md").write_text("# r\n")
    hooks_toml(workspace, {"event": "pre_tool", "command": "env > shared.txt"},
               {"event": "run_finished", "command": "env > notifier.txt", "env": ["NOTIFY_*"]})
    with (workspace / "agent.toml").open("a") as f:
        f.write('[tools]\nshell_env_allow = ["PROJECT_*"]\n')
    secrets = {"OPENAI_API_KEY": "sk-test-hook-secret-1", "NOTIFY_WEBHOOK_TOKEN": "notify-token-7f3a9c"}
    r = invoke(["run", "list", "--yes", "--json"], LIST, complete("ok"),
               env={**secrets, "PROJECT_ROOT_NAME": "demo-project"})
    assert r.exit_code == 0, r.output
    shared = (workspace / "shared.txt").read_text().splitlines()
    notifier = (workspace / "notifier.txt").read_text().splitlines()
    assert "PROJECT_ROOT_NAME=demo-project" in shared and "PROJECT_ROOT_NAME=demo-project" in notifier
    assert "NOTIFY_WEBHOOK_TOKEN=notify-token-7f3a9c" in notifier  # its own env: only this hook
    assert not any(v in line for v in secrets.values() for line in shared)
    assert not any("sk-test-hook-secret-1" in line for line in notifier)
    events = (workspace / ".agent" / "runs" / json.loads(r.stdout)["run_id"] / "events.jsonl").read_text()
    assert "notify-token-7f3a9c" not in events  # a secret a hook may see is still never recorded


def test_replay_uses_the_recorded_hook_results(workspace: Path) -> None:
    hooks_toml(workspace,
               {"event": "pre_tool", "command": "echo run >> count.txt; echo 'no' >&2; exit 2"},
               {"event": "run_finished", "command": "echo run >> count.txt"})
    r = invoke(["run", "write a note", "--yes", "--json"], WRITE, complete("blocked"))
    assert r.exit_code == 1, r.output  # the only step was blocked: not done, whatever the reviewer says
    assert (workspace / "count.txt").read_text() == "run\nrun\n"
    run_id = json.loads(r.stdout)["run_id"]
    replayed = invoke(["replay", run_id])
    assert replayed.exit_code == 0 and replayed.stdout.startswith("identical"), replayed.output
    assert (workspace / "count.txt").read_text() == "run\nrun\n"  # not re-run


def test_a_bad_hook_config_is_one_line(workspace: Path) -> None:
    hooks_toml(workspace, {"event": "before_everything", "command": "true"})
    r = invoke(["run", "x", "--yes"])
    assert r.exit_code == 2 and "hooks" in r.stderr and "Traceback" not in r.output


def test_hooks_run_in_the_sandbox_unless_told_otherwise(workspace: Path, tmp_path: Path) -> None:
    from agentcli.tools.sandbox import sandbox_status

    if not sandbox_status().available:
        import pytest

        pytest.skip(f"no OS sandbox here: {sandbox_status().reason}")
    (workspace / "README.md").write_text("# r\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    hooks_toml(workspace,
               {"event": "pre_tool", "command": f"echo x > {outside}/confined.txt || exit 1"},  # sh alone exits 2
               {"event": "pre_tool", "command": f"echo x > {outside}/free.txt", "sandbox": False})
    r = invoke(["run", "list", "--yes", "--json"], LIST, complete("ok"))
    assert r.exit_code == 0, r.output
    hooks = [e["data"] for e in events_of(workspace, json.loads(r.stdout)["run_id"]) if e["type"] == "hook"]
    assert not (outside / "confined.txt").exists() and (outside / "free.txt").exists(), hooks
    assert hooks[0]["outcome"] == "warning" and hooks[0]["sandbox"].startswith("bubblewrap workspace-write")
    assert hooks[1]["outcome"] == "ok" and hooks[1]["sandbox"].startswith("none")
