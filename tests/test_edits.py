"""Edits as validated data: apply_edits' exactly-once semantics, all or nothing, the combined diff at
approval, and the correction loop when a search text does not match; ``edits`` answers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from runkit import Harness, config, plan, review, step
from toolkit import call, make_registry

from agentcli.engine.approval import ApprovalRequest
from agentcli.models.fakes import ScriptedModel

MODULE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "calc.py").write_text(MODULE)
    (root / "notes.md").write_text("# notes\nold line\n")
    return root


def edit(path: str, search: str, replace: str) -> dict[str, str]:
    return {"path": path, "search": search, "replace": replace}


def test_edits_apply_in_order_across_files(ws: Path) -> None:
    reg = make_registry(ws)
    edits = [edit("calc.py", "return a + b", "return a + b  # sum"),
             edit("calc.py", "return a + b  # sum", "return b + a  # sum"),  # sees the earlier edit
             edit("notes.md", "old line", "new line")]
    r = call(reg, "apply_edits", {"edits": edits})
    assert r.ok, r.error
    assert r.output == "edited calc.py (2 edits), notes.md (1 edit)"
    assert "return b + a  # sum" in (ws / "calc.py").read_text()
    assert (ws / "notes.md").read_text() == "# notes\nnew line\n"


def test_a_search_that_is_not_there_changes_nothing_and_shows_the_closest_text(ws: Path) -> None:
    reg = make_registry(ws)
    edits = [edit("notes.md", "old line", "new line"), edit("calc.py", "return a - c", "return a - b - 0")]
    r = call(reg, "apply_edits", {"edits": edits})
    assert not r.ok and r.error is not None and r.error.type == "invalid_args"
    [problem] = r.error.details
    assert problem["loc"] == ["edits", 1, "search"] and problem["type"] == "search_not_found"
    assert "    6|     return a - b" in problem["msg"]  # the closest line of the file, numbered
    assert (ws / "notes.md").read_text() == "# notes\nold line\n" and (ws / "calc.py").read_text() == MODULE


def _long_module(functions: int) -> str:
    return "".join(f"def handler_{i}(request):\n    value = request.get('field_{i % 97}', {i})\n"
                   f"    return value * {i % 7}\n\n" for i in range(functions))


@pytest.mark.parametrize("tool", ["apply_edits", "edit_file"])
def test_a_long_search_text_that_differs_by_a_few_words_shows_the_closest_lines(ws: Path, tool: str) -> None:
    # 5,000 lines, and a search text of ~10,000 characters copied from the middle with words
    # changed: the answer names the lines it was copied from (found in bounded time: bench/).
    (ws / "big.py").write_text(_long_module(1250))
    lines = (ws / "big.py").read_text().splitlines(keepends=True)
    chunk = lines[2400:2400 + 440]
    chunk[50] = chunk[50].replace("request", "req")
    chunk[301] = chunk[301].replace("value", "result")
    search = "".join(chunk)
    assert len(search) > 9000
    reg = make_registry(ws)
    args: dict[str, Any] = ({"edits": [edit("big.py", search, "pass\n")]} if tool == "apply_edits"
                            else {"path": "big.py", "search": search, "replace": "pass\n"})
    r = call(reg, tool, args)
    assert not r.ok and r.error is not None
    msg = str(r.error.details[0]["msg"]) if tool == "apply_edits" else r.error.message
    assert "The closest text of the file is:\n" in msg
    shown = msg.split("The closest text of the file is:\n", 1)[1]
    assert shown.startswith(f" 2401| {lines[2400]}")
    assert shown.endswith("[...]\n")  # cut: the model needs where, not all of it


def test_a_search_that_occurs_twice_is_refused(ws: Path) -> None:
    r = call(make_registry(ws), "apply_edits", {"edits": [edit("calc.py", "(a, b):", "(a: int, b: int):")]})
    assert r.error is not None and r.error.details[0]["type"] == "search_not_unique"
    assert "occurs 2 times" in r.error.details[0]["msg"] and (ws / "calc.py").read_text() == MODULE


def test_whitespace_only_differences_are_named(ws: Path) -> None:
    search = "def add(a, b):\n  return a + b\n"  # two spaces of indentation, not four
    r = call(make_registry(ws), "apply_edits", {"edits": [edit("calc.py", search, "def add(a, b):\n    return 0\n")]})
    assert r.error is not None and "only in whitespace" in r.error.details[0]["msg"]


@pytest.mark.parametrize(("path", "kind"), [("new.py", "file_missing"), ("../outside.py", "path_outside_workspace"),
                                            (".git/config", "path_not_writable")])
def test_only_existing_workspace_files(ws: Path, path: str, kind: str) -> None:
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("x\n")
    r = call(make_registry(ws), "apply_edits", {"edits": [edit(path, "x", "y")]})
    assert r.error is not None and r.error.details[0]["type"] == kind


def test_the_whole_answer_of_an_edits_step_is_accepted(ws: Path) -> None:
    r = call(make_registry(ws), "apply_edits", {"edits": {"edits": [edit("notes.md", "old", "new")]}})
    assert r.ok and (ws / "notes.md").read_text() == "# notes\nnew line\n"


def test_the_preview_is_the_combined_diff(ws: Path) -> None:
    reg = make_registry(ws)
    preview = reg.preview("apply_edits", {"edits": [edit("calc.py", "a + b", "b + a"), edit("notes.md", "old", "new")]})
    assert preview is not None
    assert "--- a/calc.py" in preview and "+    return b + a" in preview
    assert "--- a/notes.md" in preview and "+new line" in preview


# --------------------------------------------------------------------------- in a run


def edits_plan() -> Any:
    return plan(step("s1", "read_file", path="calc.py"),
                step("s2", prompt="Make add return b + a.\n{{s1.output}}", deps=["s1"]).model_copy(
                    update={"answer": "edits"}),
                step("s3", "apply_edits", deps=["s2"], edits="{{s2.output}}"))


def test_an_edits_answer_is_asked_for_as_data_and_applied(ws: Path) -> None:
    seen: list[ApprovalRequest] = []

    def approve(req: ApprovalRequest) -> Any:
        seen.append(req)
        return "yes"

    answer = {"edits": [edit("calc.py", "return a + b", "return b + a")]}
    h = Harness(ws, config(), ScriptedModel([answer, review()]), [edits_plan()])
    deps = h.deps()
    deps.approver.prompt = approve
    out = _run(h, deps)
    assert out.status == "COMPLETE", out.steps
    assert "return b + a" in (ws / "calc.py").read_text()
    rf = h.model.requests[0].response_format
    assert rf is not None and rf["json_schema"]["name"] == "EditList"
    assert '"edits"' in h.model.requests[0].messages[0]["content"]  # the step's system note says the format
    assert out.steps[1]["status"] == "ok"
    [req] = seen
    assert req.tool == "apply_edits" and req.preview is not None and "+    return b + a" in req.preview


def test_a_failed_match_goes_back_to_the_model_and_is_corrected(ws: Path) -> None:
    wrong = {"edits": [edit("calc.py", "return a+b", "return b + a")]}
    fixed = {"edits": [edit("calc.py", "return a + b", "return b + a")]}
    h = Harness(ws, config(), ScriptedModel([wrong, fixed, review()]), [edits_plan()], yes=True)
    out = h.run()
    assert out.status == "COMPLETE"
    s3 = out.steps[2]
    assert (s3["status"], s3["corrections"]) == ("ok", 1)
    correction = h.model.requests[1].messages[-1]["content"]
    assert "not in calc.py" in correction and "    2|     return a + b" in correction
    assert "return b + a" in (ws / "calc.py").read_text()


def test_an_empty_edit_list_says_nothing_needed_changing(ws: Path) -> None:
    # The model may find the file already right: {"edits": []} is an answer, not an error.
    h = Harness(ws, config(), ScriptedModel([{"edits": []}, review()]), [edits_plan()], yes=True)
    out = h.run()
    assert out.status == "COMPLETE", out.steps
    assert out.steps[2]["status"] == "ok", out.steps
    [done] = [e for e in h.recording().of_type("tool_call") if e.step_id == "s3"]
    assert done.data["result"]["output"] == "no change: the edit list is empty"
    assert (ws / "calc.py").read_text() == MODULE
    assert 'reply {"edits": []}' in h.model.requests[0].messages[0]["content"]


def test_corrections_are_bounded_and_nothing_is_written(ws: Path) -> None:
    wrong = {"edits": [edit("calc.py", "return a+b", "return b + a")]}
    h = Harness(ws, config(executor={"max_arg_corrections": 2}), ScriptedModel([wrong, wrong, wrong,
                review("complete", "could not")]), [edits_plan()], yes=True)
    out = h.run()
    s3 = out.steps[2]
    assert (s3["status"], s3["corrections"], s3["error"]["type"]) == ("failed", 2, "invalid_args")
    assert (ws / "calc.py").read_text() == MODULE


def _run(h: Harness, deps: Any) -> Any:
    import asyncio

    from agentcli.engine.runner import run

    try:
        return asyncio.run(run("the task", deps))
    finally:
        deps.events.close()


def test_the_hosted_planner_can_plan_edits_and_old_plans_keep_their_hash(ws: Path) -> None:
    from agentcli.config import load_settings
    from agentcli.models.client import LLMClient
    from agentcli.planning.planner import make_plan
    from agentcli.tools import build_registry

    settings = load_settings(workspace=ws, use_user_config=False, environ={}, overrides={"model": "test/scripted"})
    registry = asyncio.run(build_registry(settings, plugins=False, mcp=False))
    draft = {"steps": {
        "s1": {"call": {"tool": "read_file", "args": {"path": "calc.py"}}, "depends_on": [], "title": "Read"},
        "s2": {"prompt": "Make add return b + a:\n{{s1.output}}", "answer": "edits", "depends_on": ["s1"],
               "title": "Edit"},
        "s3": {"call": {"tool": "apply_edits", "args": {"edits": "{{s2.output}}"}}, "depends_on": ["s2"],
               "title": "Apply"}}}
    model = ScriptedModel([draft])
    made = asyncio.run(make_plan("make add return b + a", settings=settings, registry=registry,
                                 client=LLMClient(settings.config, backend=model), save=False))
    assert [s.answer for s in made.steps] == ["text", "edits", "text"]
    assert made.steps[2].requires_approval  # a write, like any other
    system = model.requests[0].messages[0]["content"]
    assert "Change a file: read_file it" in system and "- apply_edits(edits: list of {path: text, " in system
    # A plan without answer shapes hashes as it did before they existed.
    payload = plan(step("s1", prompt="x")).hash_payload()
    assert "answer" not in payload["steps"][0] and "answer_schema" not in payload["steps"][0]
    assert "answer" in edits_plan().hash_payload()["steps"][1]


def test_the_small_planner_is_not_offered_apply_edits(ws: Path) -> None:
    reg = make_registry(ws)
    tool = reg.get("apply_edits")
    assert tool is not None and tool.small_planner is False
    # git_history and run_readonly came after the small planner's levers were measured (run_readonly is
    # for investigate steps only): kept out of its choices too.
    assert {t.name for t in reg.tools() if not t.small_planner} == {"apply_edits", "run_readonly", "git_history"}


def test_a_small_planner_never_sees_apply_edits(ws: Path) -> None:
    from agentcli.config import load_settings
    from agentcli.models.client import LLMClient
    from agentcli.planning.planner import make_plan
    from agentcli.tools import build_registry

    settings = load_settings(workspace=ws, use_user_config=False, environ={}, overrides={"model": "local/smollm2"})
    registry = asyncio.run(build_registry(settings, plugins=False, mcp=False))
    draft = {"steps": {"s1": {"call": {"tool": "read_file", "args": {"path": "calc.py"}}, "depends_on": [],
                              "title": "Read"}}}
    model = ScriptedModel([draft])
    asyncio.run(make_plan("show calc.py", settings=settings, registry=registry,
                          client=LLMClient(settings.config, backend=model), save=False))
    [req] = model.requests
    assert req.max_tokens == 512  # what a plan of the small planner needs (SMALL_MODEL_OUTPUT_TOKENS)
    sent = json.dumps(req.messages) + json.dumps(req.response_format)
    assert "apply_edits" not in sent and "returns:" not in sent and '"answer"' not in sent


def test_the_plan_table_shows_an_llm_steps_answer_shape() -> None:
    from rich.console import Console

    from agentcli.cli.render import plan_table

    console = Console(width=120, record=True)
    console.print(plan_table(edits_plan(), 120))
    text = console.export_text()
    assert "llm:edits" in text and "apply_edits" in text


@pytest.mark.parametrize("afterwards", ["in_place", "undone", "gone"])
def test_a_replay_serves_the_recorded_checks_whatever_the_workspace_is_now(
        ws: Path, monkeypatch: pytest.MonkeyPatch, afterwards: str) -> None:
    # The search text is no longer in the file once the edit is in place, and the file may be
    # gone altogether: a replay that checked it against the live file would diverge (or search
    # for the closest text, which took minutes for a long text).
    from typer.testing import CliRunner

    from agentcli.cli.app import app
    from agentcli.cli.commands.common import State

    monkeypatch.chdir(ws)
    env = {"AGENT_MODEL": "test/scripted"}
    steps = {"steps": [{"title": "edit", "tool": "apply_edits", "args": {"edits": [
        edit("calc.py", "return a + b", "return b + a"), edit("notes.md", "old line", "new line")]}}]}
    cli = CliRunner()
    done = cli.invoke(app, ["run", "edit", "--yes", "--json"],
                      obj=State(backend=ScriptedModel([steps, review()]), environ=env))
    assert done.exit_code == 0, done.output
    run_id = json.loads(done.stdout)["run_id"]
    if afterwards == "undone":
        assert cli.invoke(app, ["undo", run_id, "--yes"], obj=State(environ=env)).exit_code == 0
        assert (ws / "calc.py").read_text() == MODULE
    elif afterwards == "gone":
        (ws / "calc.py").unlink()
    replayed = cli.invoke(app, ["replay", run_id, "--json"], obj=State(environ=env))
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["identical"] is True


def test_a_crlf_file_keeps_its_line_ends_through_every_edit_tool(ws: Path) -> None:
    # A Windows-style file edited with the LF text a model writes (or copies with CRLF) stays CRLF
    # throughout: only the edited lines change, so the diff is the edit, not the whole file.
    reg = make_registry(ws)
    crlf = "def a():\r\n    return 1\r\n\r\ndef b():\r\n    return 2\r\n"
    (ws / "win.py").write_bytes(crlf.encode())
    r = call(reg, "apply_edits", {"edits": [edit("win.py", "return 1\n", "return 10\n"),
                                            edit("win.py", "def b():\r\n", "def b(x=0):\r\n")]})
    assert r.ok, r.error
    assert (ws / "win.py").read_bytes() == crlf.replace("return 1\r", "return 10\r").replace(
        "def b():", "def b(x=0):").encode()
    r = call(reg, "edit_file", {"path": "win.py", "search": "    return 2\n", "replace": "    return 20\n    # two\n"})
    assert r.ok, r.error
    data = (ws / "win.py").read_bytes()
    assert data.endswith(b"    return 20\r\n    # two\r\n") and data.count(b"\n") == data.count(b"\r\n") == 6
    r = call(reg, "write_file", {"path": "win.py", "content": "X = 1\nY = 2\n"})
    assert r.ok, r.error
    assert (ws / "win.py").read_bytes() == b"X = 1\r\nY = 2\r\n"


def test_a_file_with_mixed_line_ends_is_edited_as_it_is(ws: Path) -> None:
    reg = make_registry(ws)
    (ws / "mixed.txt").write_bytes(b"one\r\ntwo\nthree\r\n")
    r = call(reg, "edit_file", {"path": "mixed.txt", "search": "two\n", "replace": "2\n"})
    assert r.ok, r.error
    assert (ws / "mixed.txt").read_bytes() == b"one\r\n2\nthree\r\n"
