"""The failing-suite task with and without investigate steps: re-plans, calls, tokens, wall time.

A small Python project (:func:`planted`) whose test fails because of a bug in another module than the
one the test imports: a plan written before anything runs can only guess where the bug is. The task
is "the test suite fails; find the cause and fix it", with ``[verify] command`` = the project's tests.

Offline (``python -m bench --only investigate``): ``agent run`` in fresh processes, real sandbox, on the
scripted model (``test/script``), three ways:

- ``investigate step``: the plan investigates first (runs the tests read-only, reads the module the
  failure points at), then writes the fix from the findings; verify passes; no re-plan.
- ``no investigate step``: the plan reads the tested module and guesses a fix there; verify fails; the
  re-planner gets the failing output, reads the right module and fixes it: one re-plan.
- ``no investigate step, investigate before the re-plan``: as above, with
  ``[investigate] before_replan``: the failure is investigated before the re-plan.

The scripted answers encode what each kind of plan does (they are not a model's choices): the figures
are the calls, the real token counts (tiktoken) of the requests agentcli builds for them, and the wall
time of the runs, each checked COMPLETE and replayed ``identical``.

A capable model through an OpenAI-compatible server (the lead's llmbox, say)::

    python -m bench.investigate --model openai/x --api-base http://127.0.0.1:8000/v1 [--runs 1]

plants the project in a fresh folder per run and runs the task with investigate steps offered and with
them turned off (``[investigate] enabled = false``), printing one Markdown row per run: status, calls
by role, re-plans, input / output tokens, investigate steps planned, replay. The time limits are set for
a server whose answers are written by hand (:data:`_PATIENT`: an hour a request, four hours a run, no
retries); the run's other budgets are the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SECTION = "investigate"
TASK = "the test suite fails; find the cause and fix it"
TEST_COMMAND = "python -m pytest -q"

_FILES = {
    "shop/__init__.py": "",
    "shop/money.py": ("def to_cents(amount):\n"
                      "    \"\"\"An amount in euros as whole cents, rounded half up.\"\"\"\n"
                      "    return int(amount * 100)\n"),
    "shop/cart.py": ("from shop.money import to_cents\n\n\n"
                     "def total_cents(prices, quantity=1):\n"
                     "    \"\"\"The cart's total in cents.\"\"\"\n"
                     "    return sum(to_cents(p) * quantity for p in prices)\n"),
    "tests/test_cart.py": ("from shop.cart import total_cents\n\n\n"
                           "def test_total():\n    assert total_cents([1.10, 2.20]) == 330\n\n\n"
                           "def test_quantity():\n    assert total_cents([0.29], quantity=2) == 58\n"),
}
_BUG = "    return int(amount * 100)\n"
_FIX = "    return int(round(amount * 100))\n"


def planted(ws: Path) -> None:
    """The project, under git: `python -m pytest -q` fails (1.10 * 100 is 110.00000000000001, 0.29 *
    100 is 28.999999999999996: truncated, not rounded, in shop/money.py)."""
    for rel, text in _FILES.items():
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (ws / ".gitignore").write_text(".agent/\n__pycache__/\n.pytest_cache/\n")
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm",
                                              "shop"]):
        subprocess.run(["git", *cmd], cwd=ws, check=True, capture_output=True)


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_call": {"id": f"c-{name}-{len(json.dumps(args))}", "name": name, "arguments": args}}


_REVIEW = {"outcome": "complete", "answer": "to_cents now rounds: the suite passes", "reason": ""}
_FINDINGS = {"established": "shop.money.to_cents truncates amount * 100 with int(): 0.29 * 100 is "
                            "28.999999999999996, so 29 cents become 28; it must round.",
             "evidence": ["shop/money.py:3:     return int(amount * 100)", "E       assert 56 == 58"]}
_FIX_EDITS = {"edits": [{"path": "shop/money.py", "search": _BUG, "replace": _FIX}]}


def _steps_fix(first: int, after: list[str], fix_prompt: str) -> dict[str, Any]:
    a, b = f"s{first}", f"s{first + 1}"
    return {a: {"prompt": fix_prompt, "answer": "edits", "depends_on": after, "title": "Write the fix"},
            b: {"call": {"tool": "apply_edits", "args": {"edits": "{{" + a + ".output}}"}}, "depends_on": [a],
                "title": "Apply the fix"}}


def scripts() -> dict[str, list[Any]]:
    """What the scripted model answers, per way (see the module docstring)."""
    investigate = {"steps": {
        "s1": {"investigate": "Run the tests and find the line that makes them fail.", "depends_on": [],
               "title": "Find the cause"},
        **_steps_fix(2, ["s1"], "Fix the cause these findings establish:\n{{s1.output}}"),
    }}
    guess = {"steps": {
        "s1": {"call": {"tool": "read_file", "args": {"path": "shop/cart.py"}}, "depends_on": [],
               "title": "Read the cart"},
        **_steps_fix(2, ["s1"], "The cart's tests fail. Fix shop/cart.py:\n{{s1.output}}"),
    }}
    wrong = {"edits": [{"path": "shop/cart.py", "search": "    return sum(to_cents(p) * quantity for p in prices)\n",
                        "replace": "    return sum(to_cents(p * quantity) for p in prices)\n"}]}
    replan = {"steps": {
        "s4": {"call": {"tool": "read_file", "args": {"path": "shop/money.py"}}, "depends_on": [],
               "title": "Read money.py"},
        **_steps_fix(5, ["s4"], "to_cents truncates; make it round:\n{{s4.output}}"),
    }}
    look = [_call("run_readonly", command=TEST_COMMAND), _call("read_file", path="shop/money.py")]
    return {
        "investigate step": [investigate, *look, _FINDINGS, _FIX_EDITS, _REVIEW],
        "no investigate step": [guess, wrong, _REVIEW, replan, _FIX_EDITS, _REVIEW],
        "no investigate step, investigate before the re-plan": [guess, wrong, _REVIEW, *look, _FINDINGS, replan,
                                                                _FIX_EDITS, _REVIEW],
    }


_ENV = {"AGENT_MEMORY__ENABLED": "false", "AGENT_VERIFY__COMMAND": TEST_COMMAND}
#: Offline, the scripted planner does not survey (a capable model may: the default 6 calls).
_OFFLINE = {"AGENT_PLANNER__SURVEY_CALLS": "0"}
_WAY_ENV = {"no investigate step, investigate before the re-plan": {"AGENT_INVESTIGATE__BEFORE_REPLAN": "true"}}


def _path(python: Path) -> str:
    """PATH with this interpreter's folder first: the project's `python -m pytest` finds pytest."""
    return f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"


#: Limits for a server whose answers are written by hand.
_PATIENT = {"AGENT_LLM__TIMEOUT_SECONDS": "3600", "AGENT_LLM__MAX_RETRIES": "0", "AGENT_BUDGET__MAX_SECONDS": "14400",
            "AGENT_INVESTIGATE__MAX_SECONDS": "7200", "AGENT_VERIFY__TIMEOUT_SECONDS": "600"}


def _agent(agent: str, ws: Path, env: dict[str, str], *args: str, timeout: float = 900
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([agent, *args], cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)


def outcome(ws: Path, out: dict[str, Any]) -> dict[str, Any]:
    """What one run did: status, calls by role, re-plans, tokens, investigate steps planned."""
    from agentcli.record.events import Reviewed
    from agentcli.record.reader import RunRecord

    rec = RunRecord.read(ws / ".agent" / "runs" / out["run_id"] / "events.jsonl")
    roles = [c.data.role for c in rec.calls]
    investigates = {s.id for p in rec.plans for s in p.plan.steps if s.kind == "investigate"}
    before = sum(1 for r in rec.of(Reviewed) if r.data.kind == "investigated")
    return {"status": out["status"], "calls": len(roles), "planner": roles.count("planner"),
            "step": roles.count("executor"), "reviewer": roles.count("reviewer"),
            "replans": out["budget"]["replans"], "input_tokens": out["totals"]["input_tokens"],
            "output_tokens": out["totals"]["output_tokens"], "investigate_steps": len(investigates),
            "investigated_before_replan": before,
            "verify": (out.get("verify") or {}).get("status")}


def run(ctx: Any) -> Any:
    """The offline section (``python -m bench --only investigate``)."""
    from bench.report import Row, SectionResult
    from bench.stats import Summary

    res = SectionResult(SECTION)
    agent = str(ctx.agent)
    reps = 1 if ctx.smoke else 5
    seconds: dict[str, list[float]] = {}
    last: dict[str, dict[str, Any]] = {}
    replayed: dict[str, str] = {}
    for n in range(reps):
        for way, script in scripts().items():
            ws = ctx.tmp / f"investigate-{n}-{len(seconds.get(way, []))}-{abs(hash(way)) % 10_000}"
            ws.mkdir(parents=True)
            planted(ws)
            script_path = ws.parent / f"{ws.name}.json"
            script_path.write_text(json.dumps(script))
            env = ctx.env(AGENT_MODEL="test/script", AGENT_TEST_SCRIPT=str(script_path), **_ENV, **_OFFLINE,
                          **_WAY_ENV.get(way, {}), PATH=_path(Path(ctx.python)))
            t0 = time.perf_counter()
            r = _agent(agent, ws, env, "run", TASK, "--yes", "--json")
            seconds.setdefault(way, []).append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise RuntimeError(f"{way}: agent run exited {r.returncode}: {(r.stderr or r.stdout)[-400:]}")
            out = json.loads(r.stdout)
            last[way] = outcome(ws, out)
            if way not in replayed:
                rep = _agent(agent, ws, env, "replay", out["run_id"])
                replayed[way] = rep.stdout.split()[0] if rep.stdout.strip() else f"exit {rep.returncode}"
    for way, o in last.items():
        res.rows.append(Row(SECTION, f"wall time of the run, {way}", Summary.of(seconds[way], "s")))
        res.rows.append(Row(SECTION, f"outcome, {way}", text=(
            f"{o['status']}, verify {o['verify']}; {o['replans']} re-plan(s); {o['calls']} calls "
            f"({o['planner']}/{o['step']}/{o['reviewer']} planner/step/reviewer); {o['input_tokens']:,} / "
            f"{o['output_tokens']:,} tokens in / out; replay {replayed[way]}")))
    a, b = last["investigate step"], last["no investigate step"]
    res.rows.append(Row(SECTION, "ratio input tokens, no investigate step / investigate step",
                        Summary.of([b["input_tokens"] / a["input_tokens"]], "x")))
    res.rows.append(Row(SECTION, "ratio wall time, no investigate step / investigate step",
                        Summary.of([Summary.of(seconds["no investigate step"], "s").median
                                    / Summary.of(seconds["investigate step"], "s").median], "x")))
    res.notes.append(
        f"{reps} fresh `agent run` processes per way, interleaved, real bwrap sandbox, [verify] command = "
        f"`{TEST_COMMAND}`; the scripted model's answers encode each kind of plan (module docstring of "
        "bench/investigate.py), so calls and re-plans follow from the script; tokens are tiktoken counts of the "
        "requests agentcli built. For a capable model: `python -m bench.investigate --model openai/x "
        "--api-base URL`.")
    return res


# --------------------------------------------------------------------------- a capable model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.investigate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the model, e.g. openai/x")
    p.add_argument("--api-base", required=True, help="the OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--runs", type=int, default=1, help="runs per way (default 1)")
    p.add_argument("--agent", default=str(Path(sys.executable).parent / "agent"), help="the agent executable")
    p.add_argument("--keep", action="store_true", help="keep the workspaces (printed) for a look")
    args = p.parse_args(argv)
    ways = {"investigate offered": {}, "investigate off": {"AGENT_INVESTIGATE__ENABLED": "false"}}
    print("| way | run | status | calls (planner/step/reviewer) | re-plans | input / output tokens | "
          "investigate steps | investigated before re-plan | verify | replay | workspace |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    root = Path(tempfile.mkdtemp(prefix="agentcli-investigate-"))
    for n in range(args.runs):
        for way, extra in ways.items():
            ws = root / f"{way.replace(' ', '-')}-{n}"
            ws.mkdir()
            planted(ws)
            env = {**os.environ, **_ENV, **_PATIENT, **extra, "AGENT_ALLOW_MODEL_REQUESTS": "1",
                   "PATH": _path(Path(sys.executable)),
                   "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "sk-bench-0000")}
            r = _agent(args.agent, ws, env, "--model", args.model, "--api-base", args.api_base, "run", TASK,
                       "--yes", "--json", timeout=4 * 3600 + 60)
            try:
                out = json.loads(r.stdout)
            except json.JSONDecodeError:
                print(f"| {way} | {n + 1} | error: {(r.stderr or r.stdout).strip()[-200:]} |")
                continue
            o = outcome(ws, out)
            rep = _agent(args.agent, ws, env, "replay", out["run_id"])
            print(f"| {way} | {n + 1} | {o['status']} | {o['calls']} ({o['planner']}/{o['step']}/{o['reviewer']}) | "
                  f"{o['replans']} | {o['input_tokens']:,} / {o['output_tokens']:,} | {o['investigate_steps']} | "
                  f"{o['investigated_before_replan']} | {o['verify']} | "
                  f"{rep.stdout.split()[0] if rep.stdout.strip() else rep.returncode} | {ws if args.keep else '-'} |",
                  flush=True)
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
