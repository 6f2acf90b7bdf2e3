"""The offline task suite: developer tasks on a fixture repository, through ``agent run --yes --json``.

``python -m bench.tasks [--limit N] [--lever L ...] [--subprocess] [--timeout S]``

Each task gets a fresh copy of ``fixture/`` in a temp dir (``git init`` + one commit, then the
task's ``setup`` edits), and runs through the real ``agent run --yes --json`` command with the
default model (``local/smollm2``) and ``AGENT_ALLOW_MODEL_REQUESTS=1``: in this process through
the CLI app (the model and litellm load once) or, with ``--subprocess``, as a child process.
A task passes when its effect (file contents) or its answer matches ``tasks.toml``; the plan's
text is never compared. From each run's event log: was the first plan valid (one planner call),
re-asks per plan, planning time (PLANNING -> plan recorded).

``--lever`` values (repeatable; each is one full pass over the suite) set
``AGENTCLI_LOCAL_PLANNER``: ``default`` (what `agent run` uses: all but narrow), ``all``,
``none`` (the hosted-model prompt and grammar, the reviewer's answer), or a comma list of
compact, examples, narrow, patterns, choices, answer.

``--memory`` (repeatable, each a pass per lever) says what episodic memory a task plans with:
``fresh`` (none: every task has its own empty memory, as on a new machine), ``online`` (one
memory shared by the pass, tasks in file order: each task can recall the runs before it, as a
user's history grows), ``loo`` (leave-one-out: the memory an ``online`` pass of the same
invocation left, less the episode of the task itself, so no task is shown its own plan),
``repeat`` (that memory as it is: every task has been run once before, as when a user repeats one).
The section ``## Offline default: task suite`` of bench/RESULTS.md is replaced (or added).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcli.planning.local import DEFAULT_LEVERS, parse_levers
from agentcli.planning.strategy import use_levers
from bench.report import write_section
from bench.tasks.agent import LEVERS_ENV

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixture"
TASKS = HERE / "tasks.toml"
RESULTS = HERE.parent / "RESULTS.md"
SECTION = "## Offline default: task suite"
#: Passes with episodic memory (--memory other than fresh) get a section of their own, so that the
#: levers' table and the memory table can be measured (and kept) apart.
MEMORY_SECTION = "## Offline default: task suite, episodic memory as examples"


def section_of(memory: list[str] | None) -> str:
    return MEMORY_SECTION if any(m != "fresh" for m in memory or []) else SECTION


@dataclass
class TaskResult:
    id: str
    task: str
    ok: bool
    why: str
    status: str
    answer: str
    first_try_valid: bool | None
    reasks: int | None
    planning_s: float | None
    seconds: float
    tools: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    heldout: bool = False
    run_id: str = ""
    #: Past runs whose plans the planner was shown as examples (from the run's events).
    recalled: list[str] = field(default_factory=list)


def load_tasks(path: Path = TASKS) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        tasks: list[dict[str, Any]] = tomllib.load(f)["task"]
    return tasks


def _git(ws: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", *args],
                   cwd=ws, check=True, capture_output=True)


def prepare(task: dict[str, Any], root: Path) -> Path:
    ws = root / task["id"]
    shutil.copytree(FIXTURE, ws)
    _git(ws, "init", "-q")
    _git(ws, "add", "-A")
    _git(ws, "commit", "-q", "-m", "fixture")
    for rel, text in task.get("setup", {}).items():
        with (ws / rel).open("a", encoding="utf-8") as f:
            f.write(text)
    return ws


def check(task: dict[str, Any], ws: Path, outcome: dict[str, Any]) -> tuple[bool, str]:
    answer = str(outcome.get("answer", ""))
    if outcome.get("status") != "COMPLETE":
        return False, f"run {outcome.get('status')}: {answer[:160]}"
    low = answer.lower()
    for want in task.get("answer", []):
        if want.lower() not in low:
            return False, f"answer lacks {want!r}"
    for rel, want in task.get("files", {}).items():
        p = ws / rel
        if not p.is_file() or want not in p.read_text(encoding="utf-8"):
            return False, f"{rel} lacks {want!r}"
    for rel, gone in task.get("absent", {}).items():
        p = ws / rel
        if p.is_file() and gone in p.read_text(encoding="utf-8"):
            return False, f"{rel} still has {gone!r}"
    return True, "ok"


def _record(ws: Path, run_id: str) -> Any:
    """The run's record (agentcli's one reader), or None if there is no log."""
    from agentcli.record.reader import RunRecord

    path = ws / ".agent" / "runs" / run_id / "events.jsonl"
    return RunRecord.read(path) if run_id and path.is_file() else None


def recalled_runs(ws: Path, run_id: str, task_of: dict[str, str]) -> list[str]:
    """The past runs whose plans the planner was shown: of those the first ``memory_recall`` of
    past plans offered, the ones whose task is an example (a user message before the task's own)
    in the first planner request. ``task_of`` maps run ids to their tasks."""
    from agentcli.record.events import LlmCall, MemoryRecalled

    rec = _record(ws, run_id)
    offered: list[str] | None = None
    for t in rec or []:
        d = t.data
        if offered is None and isinstance(d, MemoryRecalled) and d.purpose == "plans":
            offered = [str(h.get("id")) for h in d.hits]
        elif offered and isinstance(d, LlmCall) and d.role == "planner":
            msgs = d.request.messages
            examples = {m.get("content") for m in msgs[:-1] if m.get("role") == "user"}
            return [r for r in offered if task_of.get(r) in examples]
    return []


def plan_stats(ws: Path, run_id: str) -> tuple[bool | None, int | None, float | None, list[str]]:
    """(first plan valid, re-asks, planning seconds, the first plan's steps) from the run's record."""
    from agentcli.record.events import LlmCall, TransitionMade

    rec = _record(ws, run_id)
    calls: set[str] = set()
    steps: list[str] = []
    start = end = None
    plans = iter(rec.plans) if rec is not None else iter(())
    for t in rec or []:
        d = t.data
        if isinstance(d, TransitionMade) and d.to == "PLANNING" and start is None:
            start = t.time
        elif isinstance(d, LlmCall) and d.role == "planner" and end is None:
            calls.add(d.call_id)
        elif t.type == "plan_created" and end is None:
            end = t.time
            first = next(plans, None)
            for st in first.plan.steps if first is not None else []:
                what = st.tool or "llm"
                args = json.dumps(st.args or {}, ensure_ascii=False) if st.tool else ""
                steps.append(f"{what}{args}"[:90])
    if not calls:
        return None, None, None, steps
    planning = round(end - start, 3) if start is not None and end is not None else None
    valid = end is not None
    return valid and len(calls) == 1, len(calls) - 1, planning, steps


def _args(task: str, timeout: float) -> list[str]:
    return ["run", "--yes", "--json", "--max-seconds", f"{timeout:g}", task]


def run_inprocess(task: str, ws: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    from typer.testing import CliRunner

    from agentcli.cli.app import app

    res = CliRunner().invoke(app, _args(task, timeout), env=env, catch_exceptions=True)
    return _parse(res.stdout, res.stderr if hasattr(res, "stderr") else "")


def run_subprocess(task: str, ws: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    try:
        root = str(Path(__file__).resolve().parents[2])  # bench.tasks.agent runs from the workspace
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        p = subprocess.run([sys.executable, "-m", "bench.tasks.agent", *_args(task, timeout)], cwd=ws,
                           env={**os.environ, **env, "PYTHONPATH": path}, capture_output=True, text=True,
                           timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return {"status": "TIMEOUT", "answer": f"no result within {timeout + 30:g} s"}
    return _parse(p.stdout, p.stderr)


def _parse(stdout: str, stderr: str) -> dict[str, Any]:
    i = stdout.find("{")
    try:
        out: dict[str, Any] = json.loads(stdout[i:]) if i >= 0 else {}
    except json.JSONDecodeError:
        out = {}
    if not out:
        out = {"status": "ERROR", "answer": (stderr or stdout).strip().splitlines()[-1:] or [""]}
        out["answer"] = str(out["answer"][0])
    return out


MEMORY_MODES = ("fresh", "online", "loo", "repeat")
#: Between the levers and the memory mode in a pass's label.
MEMORY_SEP = " · memory "


def pass_label(lever: str, memory: str) -> str:
    return lever if memory == "fresh" else f"{lever}{MEMORY_SEP}{memory}"


def _forget_task(uri: Path, task: str, ws: Path, task_of: dict[str, str]) -> None:
    """Delete every episode of ``task`` (the runs ``task_of`` maps to it) from the memory at ``uri``."""
    from agentcli.config import MemoryConfig
    from agentcli.memory import Memory

    mem = Memory(uri=str(uri), config=MemoryConfig(), workspace=ws)
    for run_id, t in task_of.items():
        if t == task:
            mem.forget(run_id)


def run_suite(tasks: list[dict[str, Any]], lever: str, *, timeout: float, subproc: bool,
              verbose: bool = True, memory: str = "fresh", seed: Path | None = None,
              keep: Path | None = None, task_of: dict[str, str] | None = None) -> list[TaskResult]:
    """One pass. ``memory``: see the module docstring; ``seed``: the memory ``loo`` starts from;
    ``keep``: where an ``online`` pass leaves its memory (for a later ``loo`` pass)."""
    results: list[TaskResult] = []
    task_of = {} if task_of is None else task_of  # run id -> task, over the passes (what was shown)
    with tempfile.TemporaryDirectory(prefix="agent-tasks-") as tmp:
        shared = keep or Path(tmp) / "memory"
        for task in tasks:
            ws = prepare(task, Path(tmp))
            env = {"AGENT_ALLOW_MODEL_REQUESTS": "1", "AGENT_WORKSPACE": str(ws), LEVERS_ENV: lever}
            if memory == "online":
                env["AGENT_MEMORY__URI"] = str(shared)
            elif memory in ("loo", "repeat"):
                if seed is None:
                    raise SystemExit(f"--memory {memory} needs an online pass before it (it starts from its memory)")
                mine = Path(tmp) / f"memory-{task['id']}"
                if seed.is_dir():
                    shutil.copytree(seed, mine)
                    if memory == "loo":
                        _forget_task(mine, task["task"], ws, task_of)
                env["AGENT_MEMORY__URI"] = str(mine)
            t0 = time.monotonic()
            runner = run_subprocess if subproc else run_inprocess
            use_levers(parse_levers(lever))  # in-process runs; a subprocess reads LEVERS_ENV (bench.tasks.agent)
            try:
                outcome = runner(task["task"], ws, env, timeout)
            finally:
                use_levers(DEFAULT_LEVERS)
            seconds = time.monotonic() - t0
            ok, why = check(task, ws, outcome)
            run_id = str(outcome.get("run_id", ""))
            task_of[run_id] = task["task"]
            valid, reasks, planning, plan = plan_stats(ws, run_id)
            r = TaskResult(task["id"], task["task"], ok, why, str(outcome.get("status")),
                           str(outcome.get("answer", ""))[:300], valid, reasks, planning, round(seconds, 2),
                           [str(s.get("tool") or "llm") for s in outcome.get("steps", [])], plan,
                           bool(task.get("heldout")), run_id, recalled_runs(ws, run_id, task_of))
            results.append(r)
            if memory in ("loo", "repeat"):
                shutil.rmtree(Path(tmp) / f"memory-{task['id']}", ignore_errors=True)
            if verbose:
                print(f"[{lever}/{memory}] {'PASS' if ok else 'FAIL'} {r.id:<20} {seconds:6.1f}s plan {planning}s "
                      f"reasks {reasks} shown {len(r.recalled)} {' ; '.join(plan)} - {why}",
                      file=sys.stderr, flush=True)
    return results


def summary(results: list[TaskResult]) -> dict[str, Any]:
    n = len(results)
    planned = [r for r in results if r.reasks is not None]
    times = [r.planning_s for r in results if r.planning_s is not None]
    return {
        "passed": sum(r.ok for r in results), "n": n,
        "first_try": sum(bool(r.first_try_valid) for r in planned), "planned": len(planned),
        "mean_planning_s": round(statistics.mean(times), 2) if times else None,
        "median_planning_s": round(statistics.median(times), 2) if times else None,
        "reasks_per_plan": round(sum(r.reasks or 0 for r in planned) / len(planned), 2) if planned else None,
        "mean_task_s": round(statistics.mean(r.seconds for r in results), 2) if results else None,
    }


def cpu_model() -> str:
    """The CPU's model name (scores of the small model differ between CPUs: same code and plans,
    other floating-point paths in llama.cpp)."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "-"


def render(by_lever: dict[str, list[TaskResult]], *, mode: str, limit: int | None,
           memory: list[str] | None = None) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    lines = [section_of(memory), "",
             f"Command: `python -m bench.tasks{' --limit ' + str(limit) if limit else ''} "
             + " ".join(f"--lever {x}" for x in dict.fromkeys(k.partition(MEMORY_SEP)[0] for k in by_lever))
             + "".join(f" --memory {m}" for m in memory or [])
             + f"` ({mode}); {now}; CPU: {cpu_model()} ({os.cpu_count()} cores); load average at the end: {load}.",
             "Model `local/smollm2` (SmolLM2-135M, llama.cpp, temperature 0, seed 0), offline. Each task runs "
             "`agent run --yes --json` on a fresh git copy of bench/tasks/fixture and is checked by its effect "
             "or its answer (bench/tasks/tasks.toml), never by the plan text. Planning time = PLANNING -> plan "
             "recorded, from the run's event log (the machine was shared: times are noisy).", "",
             "| levers (AGENTCLI_LOCAL_PLANNER) | tasks correct | first plan valid | re-asks / plan "
             "| mean planning s | median planning s | mean task s | shown a past plan |",
             "|---|---|---|---|---|---|---|---|"]

    for lever, results in by_lever.items():
        s = summary(results)
        held = [r for r in results if r.heldout]
        lever_part, _, mode = lever.partition(MEMORY_SEP)
        is_default = parse_levers(lever_part) == DEFAULT_LEVERS and mode in ("", "fresh")
        label = lever + (" **= default**" if is_default else "")
        if held:
            hs = summary(held)
            tuned = f"{s['passed'] - hs['passed']}/{s['n'] - hs['n']}"
            label = f"{label} (held-out {hs['passed']}/{hs['n']}; tuned-on {tuned})"
        lines.append(f"| {label} | {_pct(s['passed'], s['n'])} | {_pct(s['first_try'], s['planned'])} | "
                     f"{s['reasks_per_plan']} | {s['mean_planning_s']} | {s['median_planning_s']} | "
                     f"{s['mean_task_s']} | {sum(bool(r.recalled) for r in results)} |")
    lines += ["", "Per task (`+` correct, `-` not; `(m)`: shown a past run's plan; the tools the plan used; the "
              "task's wall time, `agent run` start to end):", "",
              "| task | " + " | ".join(by_lever) + " |", "|---|" + "---|" * len(by_lever)]
    ids = [r.id for r in next(iter(by_lever.values()))]
    for tid in ids:
        cells = []
        for results in by_lever.values():
            r_ = next((x for x in results if x.id == tid), None)
            if r_ is None:
                cells.append("(not run)")
                continue
            r = r_
            cells.append(f"{'+' if r.ok else '-'}{' (m)' if r.recalled else ''} {','.join(r.tools) or '(no plan)'}"
                         + ("" if r.ok else f" ({r.why[:60]})".replace("|", "/")) + f" {r.seconds:.1f} s")
        lines.append(f"| {tid} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tasks", description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N tasks")
    ap.add_argument("--only", default=None, help="comma list of task ids")
    ap.add_argument("--lever", action="append", default=None,
                    help="levers for one pass: default, all, none, or a comma list (repeatable)")
    ap.add_argument("--memory", action="append", default=None, choices=MEMORY_MODES,
                    help="episodic memory of a pass: fresh (default), online, loo or repeat (after an online pass); "
                         "repeatable")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per task (the run's wall budget)")
    ap.add_argument("--subprocess", action="store_true", help="one `python -m agentcli` process per task")
    ap.add_argument("--threads", type=int, default=None,
                    help="llama.cpp threads (in-process only; 1 avoids stalls when other work shares 2 cores)")
    ap.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    ap.add_argument("--json", default=None, help="also write every result to this JSON file")
    ap.add_argument("--render", default=None, help="only write the section from a --json file of an earlier run")
    ns = ap.parse_args(argv)
    if ns.render:
        saved = json.loads(Path(ns.render).read_text())
        by = {k: [TaskResult(**r) for r in v] for k, v in saved.items()}
        modes = list(dict.fromkeys(k.partition(MEMORY_SEP)[2] or "fresh" for k in by))
        text = render(by, mode="in-process CLI, --threads 1" if not ns.subprocess else "subprocess", limit=ns.limit,
                      memory=modes if modes != ["fresh"] else None)
        print(text)
        if not ns.no_write:
            write_section(text, RESULTS)
        return 0
    os.environ.setdefault("AGENT_ALLOW_MODEL_REQUESTS", "1")
    if ns.threads:
        from agentcli.models.local import loader as local_loader

        local_loader.configure(n_threads=ns.threads)
    tasks = load_tasks()
    if ns.only:
        wanted = set(ns.only.split(","))
        tasks = [t for t in tasks if t["id"] in wanted]
    if ns.limit:
        tasks = tasks[: ns.limit]
    by_lever: dict[str, list[TaskResult]] = {}
    keep = Path(tempfile.mkdtemp(prefix="agent-tasks-memory-"))
    task_of: dict[str, str] = {}
    try:
        for lever in ns.lever or ["default"]:
            seed: Path | None = None
            for mode in ns.memory or ["fresh"]:
                label = pass_label(lever, mode)
                mine = keep / label.replace(" ", "_").replace("/", "_") if mode == "online" else None
                by_lever[label] = run_suite(tasks, lever, timeout=ns.timeout, subproc=ns.subprocess,
                                            memory=mode, seed=seed, keep=mine, task_of=task_of)
                if mine is not None:
                    seed = mine
                s = summary(by_lever[label])
                print(f"[{label}] {s}", file=sys.stderr, flush=True)
                if ns.json:  # after every pass, so a cut-short run keeps what it measured
                    Path(ns.json).write_text(json.dumps({k: [r.__dict__ for r in v] for k, v in by_lever.items()},
                                                        indent=1))
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    mode = ("subprocess per task" if ns.subprocess else "in-process CLI") + (f", --threads {ns.threads}"
                                                                             if ns.threads else "")
    text = render(by_lever, mode=mode, limit=ns.limit, memory=ns.memory)
    print(text)
    if not ns.no_write:
        write_section(text, RESULTS)
    return 0
