"""Project instructions (AGENTS.md): found up to the repository root, bounded, in the planner's
and the executor's prompts, recorded in the run, replayed from the record, listed by config show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.config import InstructionsConfig
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.instructions import find_instruction_files, load_project_instructions, parse_verify_command

ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
SUMMARY = {"steps": [{"title": "Summarise", "prompt": "Say hello in the house style."}]}


def complete(answer: str) -> dict[str, str]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def invoke(args: list[str], model: ScriptedModel | None = None) -> Any:
    return CliRunner().invoke(app, args, obj=State(backend=model or ScriptedModel([]), environ=ENV))


def repo(tmp: Path) -> Path:
    """repo/.git, repo/AGENTS.md, repo/pkg/AGENTS.md; the workspace is repo/pkg/sub (none of its own)."""
    root = tmp / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "AGENTS.md").write_text("# Rules\nUse British spelling.\n\n## Testing\n```sh\n$ make test\n```\n")
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "AGENTS.md").write_text("Answers start with 'Cheers'.\n\nTest command: `pytest -q pkg`\n")
    return root


def test_files_from_the_repository_root_down_nearest_last(tmp_path: Path) -> None:
    root = repo(tmp_path)
    (tmp_path / "AGENTS.md").write_text("outside the repository: never read")
    ws = root / "pkg" / "sub"
    assert find_instruction_files(ws, ["AGENTS.md"]) == [root / "AGENTS.md", root / "pkg" / "AGENTS.md"]
    got = load_project_instructions(ws, InstructionsConfig())
    assert got is not None
    assert got.text.index("## AGENTS.md") < got.text.index("## pkg/AGENTS.md")
    assert "never read" not in got.text and not got.truncated
    assert got.verify_command == "pytest -q pkg"  # the nearest file's
    assert len(got.hash) == 16


def test_bounded_by_tokens_the_nearest_file_kept_first(tmp_path: Path) -> None:
    root = repo(tmp_path)
    (root / "AGENTS.md").write_text("# Rules\n" + "Mind the long and winding general rules. " * 400)
    got = load_project_instructions(root / "pkg", InstructionsConfig(max_tokens=120))
    assert got is not None and got.truncated
    assert got.tokens <= 140  # the bound plus the one-line note that it was cut
    assert "Cheers" in got.text and "[... cut" in got.text


def test_off_or_absent_is_none(tmp_path: Path) -> None:
    root = repo(tmp_path)
    assert load_project_instructions(root, InstructionsConfig(enabled=False)) is None
    assert load_project_instructions(tmp_path, InstructionsConfig()) is None


def test_verify_command_forms() -> None:
    assert parse_verify_command("## Running the tests\nRun `make check` before pushing.\n") == "make check"
    assert parse_verify_command("- **Test command:** `npm test`\n") == "npm test"
    assert parse_verify_command("## Checks\n```bash\n# all of them\nruff check . && pytest\n```\n") \
        == "ruff check . && pytest"
    assert parse_verify_command("# Style\nUse tabs. `gofmt` is law.\n") is None


def test_run_puts_them_in_both_prompts_records_and_replays(tmp_path: Path, monkeypatch: Any) -> None:
    root = repo(tmp_path)
    ws = root / "pkg"
    monkeypatch.chdir(ws)
    model = ScriptedModel([SUMMARY, "Cheers, hello.", complete("Cheers, hello.")])
    r = invoke(["run", "say hello", "--yes", "--json"], model)
    assert r.exit_code == 0, r.output
    planner_prompt = model.requests[0].messages[0]["content"]
    assert "# Project instructions" in planner_prompt and "British spelling" in planner_prompt
    executor_system = model.requests[1].messages[0]["content"]
    assert "Project instructions" in executor_system and "Cheers" in executor_system
    run_id = json.loads(r.stdout)["run_id"]
    # Started in pkg/ of the repository: the data dir is the repository root's, the instructions
    # are read from the root down to pkg/.
    events = [json.loads(x) for x in (root / ".agent" / "runs" / run_id / "events.jsonl").read_text().splitlines()]
    recorded = events[0]["data"]["instructions"]
    assert recorded["files"] == [str(root / "AGENTS.md"), str(ws / "AGENTS.md")]
    assert recorded["verify_command"] == "pytest -q pkg" and len(recorded["hash"]) == 16

    same = invoke(["replay", run_id])
    assert same.exit_code == 0 and same.stdout.startswith("identical"), same.output
    assert "changed since the run" not in same.stderr
    (ws / "AGENTS.md").write_text("Answers start with 'Howdy'.\n")
    changed = invoke(["replay", run_id])
    assert changed.exit_code == 0 and changed.stdout.startswith("identical"), changed.output  # recorded text used
    assert "project instructions (AGENTS.md) changed since the run" in changed.stderr


def test_no_project_instructions_flag(tmp_path: Path, monkeypatch: Any) -> None:
    root = repo(tmp_path)
    monkeypatch.chdir(root / "pkg")
    model = ScriptedModel([SUMMARY, "hello", complete("hello")])
    r = invoke(["run", "say hello", "--yes", "--json", "--no-project-instructions"], model)
    assert r.exit_code == 0, r.output
    assert all("Project instructions" not in json.dumps(req.messages) for req in model.requests)
    run_id = json.loads(r.stdout)["run_id"]
    replayed = invoke(["replay", run_id])
    assert replayed.stdout.startswith("identical") and "changed since" not in replayed.stderr


def test_without_agents_md_the_planner_request_is_unchanged(tmp_path: Path, monkeypatch: Any) -> None:
    root = repo(tmp_path)
    monkeypatch.chdir(root / "pkg")
    with_file = ScriptedModel([SUMMARY])
    invoke(["plan", "say hello", "--json"], with_file)
    without = ScriptedModel([SUMMARY])
    invoke(["plan", "say hello", "--json", "--no-project-instructions"], without)
    a, b = with_file.requests[0].messages, without.requests[0].messages
    # A hosted planner keeps them at the end of its stable system message (a cached prefix).
    assert a[1:] == b[1:]
    assert a[0]["content"].startswith(b[0]["content"] + "\n\n# Project instructions")


def test_config_show_lists_the_files_read(tmp_path: Path, monkeypatch: Any) -> None:
    root = repo(tmp_path)
    monkeypatch.chdir(root / "pkg")
    r = invoke(["config", "show", "--json"])
    got = json.loads(r.stdout)["instructions"]
    assert got["files"] == [str(root / "AGENTS.md"), str(root / "pkg" / "AGENTS.md")]
    assert got["verify_command"] == "pytest -q pkg" and "text" not in got
    text = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["config", "show"], obj=State(environ=ENV))
    assert "project instructions:" in text.stdout and str(root / "pkg" / "AGENTS.md") in text.stdout


def test_a_small_context_window_gets_a_quarter_of_it_at_most(tmp_path: Path, monkeypatch: Any) -> None:
    from agentcli.models import tokens

    root = repo(tmp_path)
    (root / "pkg" / "AGENTS.md").write_text("Answers start with 'Cheers'. " + "Keep every line short. " * 300)
    (root / "pkg" / "agent.toml").write_text('[models."test/scripted"]\ncontext_tokens = 800\n')
    monkeypatch.chdir(root / "pkg")
    model = ScriptedModel([SUMMARY, "Cheers.", complete("Cheers.")])
    r = invoke(["run", "say hello", "--yes", "--json"], model)
    assert r.exit_code == 0, r.output
    planner_part = model.requests[0].messages[0]["content"].split("# Project instructions (follow them)\n")[1]
    executor_part = model.requests[1].messages[0]["content"].split("Project instructions (follow them):\n")[1]
    for part in (planner_part, executor_part):
        assert "Cheers" in part and "[... cut" in part
        assert tokens.count_text(part, "gpt-4o-mini") <= 800 // 4 + 20  # a quarter, plus the cut note
    replayed = invoke(["replay", json.loads(r.stdout)["run_id"]])
    assert replayed.stdout.startswith("identical"), replayed.output
