"""Sessions through the CLI with the scripted model: `agent run --continue` / `--session`, `agent
sessions`, the typed ledger a later turn's planner gets (and its folding to the budget), `agent replay
SESSION`, `agent undo --session S --to TURN`, and a session recorded by an earlier commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from records import SESSION_TURNS
from typer.testing import CliRunner

from agentcli import __version__
from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models import tokens
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.prompt import LEDGER_HEADING
from agentcli.record.ledger import FORMS
from agentcli.record.reader import RunRecord, find_run
from agentcli.record.sessions import SessionRecord

runner = CliRunner()
ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
FIXTURES = Path(__file__).parent / "fixtures" / "sessions"


def complete(answer: str) -> dict[str, str]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def write(path: str, content: str, title: str = "Write") -> dict[str, Any]:
    return {"steps": {"s1": {"call": {"tool": "write_file", "args": {"path": path, "content": content}},
                             "depends_on": [], "title": title}}}


def edit(path: str, search: str, replace: str) -> dict[str, Any]:
    return {"steps": {"s1": {"call": {"tool": "edit_file", "args": {"path": path, "search": search,
                                                                     "replace": replace}},
                             "depends_on": [], "title": "Edit"}}}


LIST = {"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "*.py"}}, "depends_on": [],
                         "title": "List"}}}


def invoke(args: list[str], model: ScriptedModel, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, args, obj=State(backend=model, environ={**ENV, **(env or {})}))


def planner_requests(model: ScriptedModel) -> list[str]:
    """The user message of every planner request the model saw (the ledger and the task are there)."""
    return [str(r.messages[-1]["content"]) for r in model.requests if "# Budgets" in str(r.messages[0]["content"])]


def ledger_of(request: str) -> str:
    """The ledger section of a planner request ("" when it has none)."""
    if LEDGER_HEADING not in request:
        return ""
    after = request.split(LEDGER_HEADING + "\n", 1)[1]
    return after.split("\n\n# ", 1)[0]


def two_turns(ws: Path) -> tuple[ScriptedModel, str]:
    """The committed session's two turns (tests/records.py makes the fixture the same way)."""
    m = ScriptedModel([answer for _, answers in SESSION_TURNS for answer in answers])
    for args, _ in SESSION_TURNS:
        r = invoke(args, m)
        assert r.exit_code == 0, r.output
    [session] = json.loads(invoke(["sessions", "--json"], m).stdout)
    return m, session["session_id"]


def test_continue_makes_a_session_and_turn_2_planner_sees_turn_1(workspace: Path) -> None:
    m, sid = two_turns(workspace)
    assert (workspace / "greet.py").read_text().startswith("def welcome(")
    first, second = planner_requests(m)
    assert LEDGER_HEADING not in first  # a lone run's request is as it always was
    ledger = ledger_of(second)
    # What turn 1 did, typed: its words, its plan and step status, the file and diff, the answer.
    assert 'user: "add a function greet to greet.py"' in ledger
    assert "s1 write_file [ok] Add greet" in ledger and "files changed: greet.py" in ledger
    assert "+def greet(name):" in ledger and "answer: Added greet() to greet.py." in ledger
    # Late in the request: after the workspace and the map, before the task; the system message (the
    # cached prefix) is the same bytes in both turns.
    assert second.index("# Workspace") < second.index(LEDGER_HEADING) < second.index("# Task")
    sys1, sys2 = (r.messages[0]["content"] for r in m.requests if "# Budgets" in str(r.messages[0]["content"]))
    assert sys1 == sys2

    listed = json.loads(invoke(["sessions", "--json"], m).stdout)
    assert [(s["session_id"], s["turns"], s["last_task"], s["status"]) for s in listed] == [
        (sid, 2, "rename the function you just added to welcome", "COMPLETE")]
    assert listed[0]["cost_usd"] > 0 and listed[0]["workspace"] == str(workspace)
    shown = json.loads(invoke(["sessions", sid, "--json"], m).stdout)
    assert [t["turn"] for t in shown["turn_list"]] == [1, 2] and shown["turn_list"][1]["ledger_tokens"] > 0
    table = invoke(["sessions"], m)
    assert table.exit_code == 0 and sid in table.stdout

    replayed = invoke(["replay", sid, "--json"], m)
    assert replayed.exit_code == 0, replayed.output
    out = json.loads(replayed.stdout)
    assert out["identical"] and [t["turn"] for t in out["turns"]] == [1, 2]


@pytest.mark.tampered_record  # rewrites a record on purpose
def test_a_changed_record_makes_the_session_replay_say_which_turn(workspace: Path) -> None:
    m, sid = two_turns(workspace)
    s = SessionRecord.open(workspace / ".agent", sid)
    path = find_run(workspace / ".agent", s.turns[0].run_id)
    # The answer turn 2's ledger quoted is rewritten: turn 2's ledger no longer builds the same.
    path.write_text(path.read_text().replace("Added greet() to greet.py.", "Something else."))
    out = invoke(["replay", sid], m)
    assert out.exit_code == 1 and "turn 2: its ledger builds to other bytes now" in out.stderr


def test_bad_session_input_is_one_line_exit_2(workspace: Path) -> None:
    m = ScriptedModel([])
    for args in (["run", "--continue", "nosuchrun", "x"], ["sessions", "s-nosuch"], ["replay", "s-nosuch"],
                 ["undo", "--session", "last"], ["run", "--session", "last", "--resume", "x"],
                 ["chat"]):
        r = invoke(args, m)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1, r.output


def test_undo_last_and_rolling_a_session_back(workspace: Path) -> None:
    m = ScriptedModel([write("a.py", "A = 1\n"), complete("a"), write("b.py", "B = 1\n"), complete("b"),
                       write("c.py", "C = 1\n"), complete("c"), LIST, complete("listed")])
    assert invoke(["run", "write a.py", "--yes"], m).exit_code == 0
    assert invoke(["run", "--continue", "write b.py", "--yes"], m).exit_code == 0
    assert invoke(["run", "--continue", "last", "write c.py", "--yes"], m).exit_code == 0
    # `agent undo last`: the last turn.
    r = invoke(["undo", "last", "--yes"], m)
    assert r.exit_code == 0, r.output
    assert not (workspace / "c.py").exists() and (workspace / "b.py").exists()
    # Back to turn 1: turn 2 undone (turn 3 already was); the next turn follows turn 1.
    r = invoke(["undo", "--session", "last", "--to", "1", "--yes", "--json"], m)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["to_turn"] == 1
    assert (workspace / "a.py").exists() and not (workspace / "b.py").exists()
    r = invoke(["run", "--session", "last", "list the python files", "--yes"], m)
    assert r.exit_code == 0, r.output
    ledger = ledger_of(planner_requests(m)[-1])
    assert '"write a.py"' in ledger and '"write b.py"' not in ledger and '"write c.py"' not in ledger
    s = SessionRecord.open(workspace / ".agent", "last")
    assert [t.turn for t in s.chain()] == [1, 4] and s.chain()[-1].after == 1
    assert json.loads(invoke(["replay", s.session_id, "--json"], m).stdout)["identical"]


def test_a_turn_undone_shows_so_in_the_next_ledger(workspace: Path) -> None:
    m = ScriptedModel([write("a.py", "A = 1\n"), complete("a"), LIST, complete("listed")])
    assert invoke(["run", "write a.py", "--yes"], m).exit_code == 0
    assert invoke(["undo", "last", "--yes"], m).exit_code == 0
    assert invoke(["run", "--continue", "list the python files", "--yes"], m).exit_code == 0
    assert "## Turn 1 (COMPLETE, undone since: its changes were reverted)" in ledger_of(planner_requests(m)[-1])


def test_fifty_turns_stay_in_budget_keep_every_feedback_and_replay_identical(workspace: Path) -> None:
    budget = 2500
    env = {"AGENT_SESSION__LEDGER_TOKENS": str(budget)}
    n = 50
    answers: list[Any] = []
    for i in range(1, n + 1):
        answers += [write(f"m{i}.py", f"VALUE_{i} = {i}\n" * 3, f"Write m{i}"), complete(f"wrote m{i}.py " * 8)]
    m = ScriptedModel(answers)
    feedback = [f"fb-{i:02d}: no, keep VALUE_{i} in its own module" for i in range(1, n + 1)]
    for i in range(n):
        args = ["run", feedback[i], "--yes"] if i == 0 else ["run", "--continue", feedback[i], "--yes"]
        r = invoke(args, m, env)
        assert r.exit_code == 0, r.output
    requests = planner_requests(m)
    assert len(requests) == n
    s = SessionRecord.open(workspace / ".agent", "last")
    assert len(s.chain()) == n
    sizes = []
    for k, (request, turn) in enumerate(zip(requests, s.turns, strict=True)):
        ledger = ledger_of(request)
        size = tokens.count_text(ledger, "test/scripted")
        sizes.append(size)
        assert size <= budget and turn.ledger.tokens == size
        # Every earlier turn's words reach this planner whole (none was left out at this budget).
        for words in feedback[:k]:
            assert json.dumps(words) in ledger, (k, words)
        forms = [FORMS.index(f) for f in turn.ledger.forms.values()]
        assert forms == sorted(forms, reverse=True)  # the oldest are folded furthest
        assert "dropped" not in turn.ledger.forms.values()
    assert max(sizes) > budget * 0.7  # the budget was reached: older turns folded
    folded = s.turns[-1].ledger.forms
    assert folded["1"] == "words" and folded[str(n - 1)] == "full"  # the turn just before stays whole
    out = invoke(["replay", s.session_id, "--json"], m)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["identical"]


# ------------------------------------------------------------------ a session recorded by an earlier commit


def install_fixture(workspace: Path, name: str) -> str:
    src = FIXTURES / name
    data = workspace / ".agent"
    shutil.copytree(src / "sessions", data / "sessions")
    shutil.copytree(src / "runs", data / "runs")
    [sid] = [p.name for p in (data / "sessions").iterdir()]
    return sid


def test_a_session_recorded_by_an_earlier_commit_reads_replays_and_resumes(workspace: Path) -> None:
    sid = install_fixture(workspace, f"{__version__}-two-turns")
    (workspace / "greet.py").write_text("def welcome(name):\n    return 'hi ' + name\n")
    m = ScriptedModel([LIST, complete("greet.py")])
    listed = json.loads(invoke(["sessions", "--json"], m).stdout)
    assert [(s["session_id"], s["turns"], s["status"]) for s in listed] == [(sid, 2, "COMPLETE")]
    out = invoke(["replay", sid, "--json"], m)
    assert out.exit_code == 0 and json.loads(out.stdout)["identical"], out.output
    r = invoke(["run", "--session", sid, "list the python files", "--yes"], m)
    assert r.exit_code == 0, r.output
    ledger = ledger_of(planner_requests(m)[-1])
    assert '"rename the function you just added to welcome"' in ledger and "-def greet(name):" in ledger
    s = SessionRecord.open(workspace / ".agent", sid)
    assert [t.turn for t in s.chain()] == [1, 2, 3]
    rec = RunRecord.read(find_run(workspace / ".agent", s.chain()[-1].run_id))
    assert rec.status == "COMPLETE"


# ------------------------------------------------------------------ agent chat in this process


def chat(args: list[str], keys: str, model: ScriptedModel) -> Any:
    """`agent chat` with prompt_toolkit's line editor fed ``keys`` through a pipe (its own way of
    being given input other than a terminal's), in this process."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as keyboard, create_app_session(input=keyboard, output=DummyOutput()):
        keyboard.send_text(keys)
        return invoke(["chat", *args], model)


def test_chat_turns_and_slash_commands_in_process(workspace: Path) -> None:
    m = ScriptedModel([write("a.py", "A = 1\n", "Write a"), complete("wrote a"),
                       write("b.py", "B = 1\n", "Write b"), complete("wrote b")])
    r = chat(["--yes"], "/plan\rwrite a.py\r/cost\r/plan\r/help\r/nosuch\rwrite b.py\r/fork 1\r/fork x\r\x04", m)
    assert r.exit_code == 0, r.output
    assert "no turn yet" in r.stderr and "unknown command /nosuch" in r.stderr
    assert "wrote a" in r.stdout and "wrote b" in r.stdout and "/fork TURN" in r.stdout
    assert "turn 1: $" in r.stdout and "Write a" in r.stdout
    assert "error: /fork TURN: the turn to branch after" in r.stderr
    # Told apart by what they are (their ids may share a second, whose random tails sort either way).
    sessions = [SessionRecord(p / "session.jsonl") for p in (workspace / ".agent" / "sessions").iterdir()]
    [original] = [x for x in sessions if x.start is not None and x.start.forked_from is None]
    [fork] = [x for x in sessions if x is not original]
    assert [t.task for t in original.chain()] == ["write a.py", "write b.py"]
    assert fork.start is not None and fork.start.forked_from == original.session_id
    assert [(t.turn, t.copied) for t in fork.chain()] == [(1, True)]
    # The turn 2 planner was told of turn 1.
    assert '"write a.py"' in ledger_of(planner_requests(m)[-1])

    # Reopened, and forked from the command line; a turn there follows the fork's chain.
    m2 = ScriptedModel([LIST, complete("listed")])
    r = chat(["--resume", original.session_id], "\x04", m2)
    assert r.exit_code == 0 and f"session {original.session_id}, 2 turns" in r.stderr, r.output
    r = chat(["--fork", "1", original.session_id, "--yes"], "list the files\r\x04", m2)
    assert r.exit_code == 0, r.output
    newest = SessionRecord.open(workspace / ".agent", "last")
    assert [t.task for t in newest.chain()] == ["write a.py", "list the files"]
    assert '"write b.py"' not in ledger_of(planner_requests(m2)[-1])
    bad = chat(["--fork", "7", original.session_id], "\x04", m2)
    assert bad.exit_code == 2 and "has no turn 7" in bad.stderr
    bad = chat([original.session_id], "\x04", m2)
    assert bad.exit_code == 2 and "agent chat --resume SESSION" in bad.stderr


def test_chat_resume_offers_a_turn_stopped_on_its_budget(workspace: Path) -> None:
    again = {"steps": {"s2": {"call": {"tool": "list_files", "args": {"pattern": "*"}}, "depends_on": [],
                              "title": "List all"}}}
    m = ScriptedModel([LIST, complete("listed"), LIST, {"outcome": "replan", "answer": "", "reason": "all files"},
                       again])
    assert invoke(["run", "list", "--yes"], m).exit_code == 0
    # The re-plan's step is one more than the step budget: the turn stops on it.
    r = invoke(["run", "--continue", "list them all", "--yes", "--max-steps", "1"], m)
    assert r.exit_code == 3, r.output
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as keyboard, create_app_session(input=keyboard, output=DummyOutput()):
        keyboard.send_text("\x04")
        r = runner.invoke(app, ["chat", "--resume", "--yes"], input="y\n", obj=State(backend=m, environ=ENV))
    assert r.exit_code == 0, r.output
    assert "turn 2 (list them all) stopped on its budget (budget_exceeded:steps)" in r.stderr
    assert "resume it?" in r.stderr
    s = SessionRecord.open(workspace / ".agent", "last")
    rec = RunRecord.read(find_run(workspace / ".agent", s.chain()[-1].run_id))
    assert rec.resumed == 1  # resumed from the chat (and stopped on the same budget again)


def test_sessions_show_and_rolling_back_stops_at_a_conflict(workspace: Path) -> None:
    m = ScriptedModel([write("a.py", "A = 1\n"), complete("a"), write("b.py", "B = 1\n"), complete("b")])
    assert invoke(["run", "write a.py", "--yes"], m).exit_code == 0
    assert invoke(["run", "--continue", "write b.py", "--yes"], m).exit_code == 0
    shown = invoke(["sessions", "last"], m)
    assert shown.exit_code == 0 and "write b.py" in shown.stdout and "2 turns in the chain" in shown.stdout
    led = json.loads(invoke(["sessions", "last", "--ledger", "--json"], m).stdout)
    assert led["tokens"] > 0 and led["forms"] == {"1": "full", "2": "full"}
    assert invoke(["sessions", "--ledger"], m).exit_code == 2
    (workspace / "b.py").write_text("B = 2  # changed by hand\n")
    r = invoke(["undo", "--session", "last", "--to", "0", "--yes"], m)
    assert r.exit_code == 1 and "changed after run" in r.stderr, r.output
    assert (workspace / "b.py").read_text().startswith("B = 2") and (workspace / "a.py").exists()
    r = invoke(["undo", "--session", "last", "--to", "0", "--yes", "--force"], m)
    assert r.exit_code == 0, r.output
    assert not (workspace / "a.py").exists() and not (workspace / "b.py").exists()
    assert SessionRecord.open(workspace / ".agent", "last").chain() == []
    again = invoke(["undo", "--session", "last", "--to", "0", "--yes"], m)
    assert again.exit_code == 0 and "nothing to roll back" in again.stderr
    assert invoke(["undo", "--session", "last", "--to", "5", "--yes"], m).exit_code == 2


def test_lines_typed_during_a_turn_are_queued_as_steering(tmp_path: Path) -> None:
    import os
    import time

    from agentcli.cli.steer import TerminalSteering

    class Queue:
        def __init__(self) -> None:
            self.items: list[str] = []

        def put(self, text: str) -> None:
            if len(text) > 20:
                raise ValueError("too long")
            self.items.append(text)

    q = Queue()
    queued: list[str] = []
    errors: list[str] = []
    r, w = os.pipe()
    with TerminalSteering(q, queued.append, errors.append, fd=r):
        # A line a read, as typed keys come (the lines of one read are one message: a paste's).
        for n, line in enumerate([b"also add docs\n", b"\n\n  and a test  \n", b"x" * 30 + b"\n"], 1):
            os.write(w, line)
            deadline = time.monotonic() + 30
            while len(queued) + len(errors) < n and time.monotonic() < deadline:
                time.sleep(0.01)
        os.close(w)
    os.close(r)
    assert q.items == queued == ["also add docs", "and a test"]
    assert errors == ["not queued: too long"]


def test_a_turn_whose_run_is_gone_still_shows_its_words(workspace: Path) -> None:
    m, sid = two_turns(workspace)
    s = SessionRecord.open(workspace / ".agent", sid)
    shutil.rmtree(workspace / ".agent" / "runs" / s.turns[0].run_id)
    m.add(LIST, complete("listed"))
    r = invoke(["run", "--session", sid, "list the python files", "--yes"], m)
    assert r.exit_code == 0, r.output
    ledger = ledger_of(planner_requests(m)[-1])
    assert '## Turn 1 (MISSING: its run\'s record is gone)\nuser: "add a function greet to greet.py"' in ledger
    listed = json.loads(invoke(["sessions", "--json"], m).stdout)
    assert listed[0]["turns"] == 3 and any("turn 1" in w for w in listed[0]["warnings"])


@pytest.mark.tampered_record  # rewrites a session's record on purpose
def test_a_ledger_of_another_format_says_so_on_replay(workspace: Path) -> None:
    m, sid = two_turns(workspace)
    path = workspace / ".agent" / "sessions" / sid / "session.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for e in lines:
        if e["type"] == "turn_started" and e["data"]["turn"] == 2:
            e["data"]["ledger"].update(format=0, sha256="0" * 64)
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    out = invoke(["replay", sid], m)
    assert out.exit_code == 1 and "turn 2: its ledger was laid out by another agentcli (ledger format 0" in out.stderr


def test_no_sessions_and_no_runs_say_so_in_one_line(workspace: Path) -> None:
    """Before anything ran, `agent sessions` and `agent runs list` say there is none and how to
    start, instead of the header of an empty table; --json stays an empty list."""
    m = ScriptedModel([])
    for args, line in ((["sessions"], "no sessions yet (start one with `agent chat` or `agent run --continue TASK`)"),
                       (["runs", "list"], "no runs yet (start one with `agent run TASK` or `agent chat`)")):
        shown = invoke(args, m)
        assert shown.exit_code == 0 and shown.stdout == line + "\n", shown.output
        assert json.loads(invoke([*args, "--json"], m).stdout) == []
