"""Sessions through the CLI with the scripted model: `agent run --continue` / `--session`, `agent
sessions`, the typed ledger a later turn's planner gets (and its folding to the budget), `agent replay
SESSION`, `agent undo --session S --to TURN`, and a session recorded by an earlier commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

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
    m = ScriptedModel([write("greet.py", "def greet(name):\n    return 'hi ' + name\n", "Add greet"),
                       complete("Added greet() to greet.py."),
                       edit("greet.py", "def greet(", "def welcome("), complete("Renamed greet to welcome.")])
    r = invoke(["run", "add a function greet to greet.py", "--yes"], m)
    assert r.exit_code == 0, r.output
    r = invoke(["run", "--continue", "rename the function you just added to welcome", "--yes"], m)
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
    sid = install_fixture(workspace, "0.2.0-two-turns")
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
