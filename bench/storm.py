"""A kill -9 storm: runs with side effects killed at random moments, then resumed; side effects counted.

``python -m bench.storm --runs 50 [--seed N]`` prints one JSON line per run and a summary. The
test suite runs a small one (tests/test_storm.py). Each run executes a chain of shell steps, each
appending its id to ``side.txt`` once, between random sleeps; the agent is killed with SIGKILL at a
random moment after its plan is recorded, then resumed with ``--yes`` alone (which must stop, exit
4, if a step is uncertain) and, if so, with ``--rerun-uncertain``. Counted per run:

* ``unasked_repeats``: a step's side effect happened more often than once plus the re-runs someone
  asked for (the recorded ``resume_decision``s): must be 0;
* ``missing``: a step whose side effect never happened after the final resume: must be 0;
* ``not_replayable``: runs whose ``agent replay`` is not identical after the last resume: must be 0;
* ``orphans``: side effects that landed after the kill and before any resume, i.e. a shell child
  that outlived the agent;
* ``unreadable``: records that ``agent runs show`` could not read.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REVIEW = {"outcome": "complete", "answer": "all steps done", "reason": ""}


def _plan(rnd: random.Random, steps: int) -> dict[str, Any]:
    out = []
    for i in range(1, steps + 1):
        before, after = round(rnd.uniform(0, 0.4), 2), round(rnd.uniform(0, 0.4), 2)
        out.append({"title": f"side effect {i}", "tool": "run_shell",
                    "args": {"command": f"sleep {before}; echo s{i} >> side.txt; sleep {after}"},
                    **({"depends_on": [f"s{i - 1}"]} if i > 1 else {})})
    return {"steps": out}


def _agent(ws: Path, script: list[Any], *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    script_file = ws.parent / f"script-{time.monotonic_ns()}.json"
    script_file.write_text(json.dumps(script))
    full = {**env, "AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script_file),
            "AGENT_MEMORY__ENABLED": "false"}
    return subprocess.Popen([sys.executable, "-m", "agentcli", *args], cwd=ws, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _lines(ws: Path) -> list[str]:
    p = ws / "side.txt"
    return p.read_text().split() if p.exists() else []


def one_run(root: Path, rnd: random.Random, *, steps: int = 3, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One run killed at a random moment and resumed until done; what happened, counted."""
    env = dict(os.environ if env is None else env)
    ws = root / f"ws-{time.monotonic_ns()}"
    ws.mkdir(parents=True)
    proc = _agent(ws, [_plan(rnd, steps), REVIEW], "run", "storm", "--yes", "--json", env=env)
    runs = ws / ".agent" / "runs"
    deadline = time.monotonic() + 120
    events: Path | None = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(runs.glob("*/events.jsonl")) if runs.is_dir() else []
        if found and '"type":"plan_created"' in found[0].read_text():
            events = found[0]
            break
        time.sleep(0.01)
    time.sleep(rnd.uniform(0, 0.45 * steps))
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    if events is None:
        found = list(runs.glob("*/events.jsonl")) if runs.is_dir() else []
        events = found[0] if found else None
    at_kill = _lines(ws)
    time.sleep(1.0)  # longer than any step's remaining sleep: an orphaned child would be done by now
    orphans = len(_lines(ws)) - len(at_kill)
    result: dict[str, Any] = {"killed": killed, "at_kill": len(at_kill), "orphans": orphans,
                              "stopped_uncertain": 0, "resumes": 0, "unreadable": 0}
    if events is None:
        result.update(unasked_repeats=0, missing=steps, rerun=0, no_record=True)
        return result
    run_id = events.parent.name
    for flags in (("--yes",), ("--yes", "--rerun-uncertain")):
        p = _agent(ws, [REVIEW, REVIEW], "run", "--resume", run_id, *flags, "--json", env=env)
        out, _ = p.communicate(timeout=180)
        result["resumes"] += 1
        if p.returncode == 4 and "--rerun-uncertain" in out:  # --json: the reason is in the answer
            result["stopped_uncertain"] += 1
            continue
        result["exit"] = p.returncode
        break
    show = subprocess.run([sys.executable, "-m", "agentcli", "runs", "show", run_id, "--json"], cwd=ws,
                          env=env, capture_output=True, text=True, timeout=120)
    result["unreadable"] = int(show.returncode != 0)
    # Killed, stopped and resumed, the run must still replay as it ran.
    replay = subprocess.run([sys.executable, "-m", "agentcli", "replay", run_id, "--json"], cwd=ws,
                            env=env, capture_output=True, text=True, timeout=120)
    result["not_replayable"] = int(replay.returncode != 0)
    if replay.returncode != 0:
        result["replay"] = (replay.stdout or replay.stderr)[-600:]
    from agentcli.record.events import ResumeDecided
    from agentcli.record.reader import RunRecord

    reruns: dict[str, int] = {}
    for t in RunRecord.read(events).of(ResumeDecided):
        if t.data.decision == "rerun" and t.step_id:
            reruns[t.step_id] = reruns.get(t.step_id, 0) + 1
    final = _lines(ws)
    counts = {f"s{i}": final.count(f"s{i}") for i in range(1, steps + 1)}
    result["rerun"] = sum(reruns.values())
    result["unasked_repeats"] = sum(max(0, n - 1 - reruns.get(sid, 0)) for sid, n in counts.items())
    result["missing"] = sum(1 for n in counts.values() if n == 0)
    return result


def storm(runs: int, *, seed: int = 0, steps: int = 3, root: Path | None = None) -> dict[str, Any]:
    """``runs`` killed runs; the per-run results and their totals."""
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="agentcli-storm-") as tmp:
        base = root or Path(tmp)
        results = [one_run(base, rnd, steps=steps) for _ in range(runs)]
    keys = ("killed", "orphans", "stopped_uncertain", "rerun", "unasked_repeats", "missing", "unreadable",
            "not_replayable")
    return {"runs": runs, "results": results, "totals": {k: sum(int(r.get(k, 0)) for r in results) for k in keys}}


HEADING = "## Kill -9 storm (bench/storm.py)"

#: The totals, in the order of the table, with what each one means.
_COLUMNS = (("killed", "killed mid-run"), ("stopped_uncertain", "resumes stopped as uncertain (exit 4)"),
            ("rerun", "re-runs asked for (--rerun-uncertain)"), ("unasked_repeats", "unasked repeats"),
            ("missing", "missing side effects"), ("orphans", "orphaned children"),
            ("unreadable", "unreadable records"))


def section(report: dict[str, Any], *, seed: int, steps: int, seconds: float) -> str:
    """The RESULTS.md section of one storm: its totals and how it was run."""
    t = report["totals"]
    lines = [HEADING, "", "| measure | count |", "|---|---|", f"| runs | {report['runs']} |"]
    lines += [f"| {label} | {t[key]} |" for key, label in _COLUMNS]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += ["", f"`python -m bench.storm --runs {report['runs']} --seed {seed} --steps {steps} --write`: each run "
              f"is a chain of {steps} `run_shell` steps, each appending its id to a file once between random "
              "sleeps, killed with SIGKILL at a random moment after its plan is recorded, then resumed with "
              "`--yes` alone (which must stop with exit 4 when a step is uncertain) and, if it did, with "
              "`--rerun-uncertain`. Unasked repeats, missing side effects and unreadable records must be 0; "
              "an orphan is a side effect that landed after the kill (a child that outlived the agent). "
              f"Wall time {seconds:.0f} s; machine: {os.cpu_count()} cores, load average {load}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="replace this section of bench/RESULTS.md")
    args = ap.parse_args(argv)
    started = time.monotonic()
    report = storm(args.runs, seed=args.seed, steps=args.steps)
    for r in report["results"]:
        print(json.dumps(r))
    print(json.dumps({"runs": report["runs"], **report["totals"]}))
    if args.write:
        from bench.report import write_section

        text = section(report, seed=args.seed, steps=args.steps, seconds=time.monotonic() - started)
        print(text)
        write_section(text, Path(__file__).resolve().parent / "RESULTS.md")
    t = report["totals"]
    ok = t["unasked_repeats"] == 0 and t["missing"] == 0 and t["unreadable"] == 0 and t["not_replayable"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
