"""`agent tools list | show | call` through Typer's CliRunner, against the sub-app alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.commands.tools import app
from agentcli.config import load_settings


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "hello.txt").write_text("hello\nworld\n")
    return tmp_path


def invoke(ws: Path, *args: str, overrides: dict[str, Any] | None = None, stdin: str | None = None) -> Any:
    settings = load_settings(workspace=ws, use_user_config=False, environ={}, overrides=overrides)
    return CliRunner().invoke(app, list(args), obj={"settings": settings}, input=stdin)


def test_list_json(ws: Path) -> None:
    result = invoke(ws, "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["read_file"]["risk"] == "read" and by_name["read_file"]["source"] == "builtin"
    assert by_name["run_shell"]["risk"] == "exec" and by_name["write_file"]["risk"] == "write"
    assert all(r["description"] and len(r["schema_version"]) == 12 for r in rows)


def test_list_table(ws: Path) -> None:
    result = invoke(ws, "list")
    assert result.exit_code == 0
    for word in ("name", "risk", "source", "read_file", "builtin", "exec"):
        assert word in result.stdout


def test_show(ws: Path) -> None:
    result = invoke(ws, "show", "search_code")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["risk"] == "read" and payload["source"] == "builtin"
    assert payload["schema"]["function"]["parameters"]["required"] == ["query"]
    assert payload["returns"]["type"] == "array"  # of {file, line, snippet, from_line}
    assert set(payload["returns"]["$defs"]["SearchMatch"]["properties"]) == {"file", "line", "snippet", "from_line"}


def test_show_unknown_tool(ws: Path) -> None:
    result = invoke(ws, "show", "read_fiel")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "read_file" in result.stderr


def test_call_success(ws: Path) -> None:
    result = invoke(ws, "call", "read_file", "--args", '{"path": "hello.txt", "end_line": 1}')
    assert result.exit_code == 0 and result.stdout == "hello\n"
    result = invoke(ws, "call", "read_file", "--args", '{"path": "hello.txt"}', "--json")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["output"] == "hello\nworld\n" and payload["tool"] == "read_file"


def test_call_invalid_args_exit_2(ws: Path) -> None:
    result = invoke(ws, "call", "read_file", "--args", '{"path": "hello.txt", "lines": 3}', "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "invalid_args"
    assert error["details"] == [
        {"loc": ["lines"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
    ]
    result = invoke(ws, "call", "read_file", "--args", "{}")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: invalid_args:") and len(result.stderr.strip().splitlines()) == 1


def test_call_bad_json_exit_2(ws: Path) -> None:
    result = invoke(ws, "call", "read_file", "--args", "{path: x}")
    assert result.exit_code == 2 and "not valid JSON" in result.stderr
    result = invoke(ws, "call", "read_file", "--args", "[1]", "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["type"] == "invalid_json"


def test_call_unknown_tool_and_tool_error(ws: Path) -> None:
    result = invoke(ws, "call", "raed_file", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["suggestions"][0] == "read_file"
    result = invoke(ws, "call", "read_file", "--args", '{"path": "../../etc/passwd"}')
    # A path outside the workspace is bad input, exit 2, as every command refuses one (README).
    assert result.exit_code == 2 and "path_outside_workspace" in result.stderr


def test_write_denied_without_tty(ws: Path) -> None:
    args = '{"path": "new.txt", "content": "x"}'
    result = invoke(ws, "call", "write_file", "--args", args)
    assert result.exit_code == 4
    assert "--yes" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (ws / "new.txt").exists()
    result = invoke(ws, "call", "run_shell", "--args", '{"command": "touch made"}', "--json")
    assert result.exit_code == 4 and json.loads(result.stdout)["error"]["type"] == "approval_denied"
    assert not (ws / "made").exists()


def test_write_with_yes(ws: Path) -> None:
    result = invoke(ws, "call", "write_file", "--args", '{"path": "new.txt", "content": "x"}', "--yes")
    assert result.exit_code == 0 and "created new.txt" in result.stdout
    assert (ws / "new.txt").read_text() == "x"


def test_policies_auto_and_deny(ws: Path) -> None:
    result = invoke(
        ws,
        "call",
        "run_shell",
        "--args",
        '{"command": "echo hi"}',
        "--json",
        overrides={"approval.exec": "auto"},
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["output"]["output"] == "hi\n"
    result = invoke(
        ws,
        "call",
        "write_file",
        "--args",
        '{"path": "n.txt", "content": "x"}',
        "--yes",
        overrides={"approval.write": "deny"},
    )
    assert result.exit_code == 4 and "deny" in result.stderr and not (ws / "n.txt").exists()


def test_prompt_on_a_terminal(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentcli.cli.commands.tools as tools_cmd

    monkeypatch.setattr(tools_cmd, "_stdin_is_tty", lambda: True)
    args = '{"path": "hello.txt", "search": "world", "replace": "there"}'
    result = invoke(ws, "call", "edit_file", "--args", args, stdin="n\n")
    assert result.exit_code == 4 and "+there" in result.stderr and "not approved" in result.stderr
    assert (ws / "hello.txt").read_text() == "hello\nworld\n"
    result = invoke(ws, "call", "edit_file", "--args", args, stdin="y\n")
    assert result.exit_code == 0, result.stderr
    assert (ws / "hello.txt").read_text() == "hello\nthere\n"


def test_warnings_go_to_stderr(ws: Path) -> None:
    servers = [{"name": "ghost", "command": "agentcli-no-such-mcp-server"}]
    result = invoke(ws, "list", "--json", overrides={"mcp.servers": servers})
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "ghost" in result.stderr
    json.loads(result.stdout)
