"""``python -m bench.swe``: list, check, run and report the benchmark's tasks.

Exit codes: 0 done (a run: every task graded, resolved or not); 1 a task failed its check, or the
harness could not grade some task (see its ``infra_error``); 2 bad usage (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.swe import fetch, harness, report
from bench.swe.agents import AGENTS
from bench.swe.tasks import TASKS_DIR, Task, TaskError, load_all

DEFAULT_OUT = Path(__file__).parent / "results"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.swe", description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="Print the tasks: id project language kind.")
    mode.add_argument("--check", action="store_true",
                      help="Verify every task: fail-to-pass fails on the base and passes on the fix; "
                           "pass-to-pass passes on both.")
    mode.add_argument("--report", nargs="+", metavar="DIR", help="Print the table of these result directories.")
    mode.add_argument("--gold", action="store_true", help="Print each task's reference fix as a predictions line.")
    ap.add_argument("--model", help="The model (agentcli's name; for --agent mini, litellm's).")
    ap.add_argument("--api-base", help="The model endpoint (an OpenAI-compatible /v1 URL).")
    ap.add_argument("--agent", choices=AGENTS, default="agentcli", help="The agent under test.")
    ap.add_argument("--tasks", default="*", help="Task ids to take (globs, comma-separated).")
    ap.add_argument("--tasks-dir", type=Path, default=TASKS_DIR, help=argparse.SUPPRESS)
    ap.add_argument("--jobs", type=int, default=1, help="Tasks run at once.")
    ap.add_argument("--shard", help="Take tasks i of every n (i/n), to spread a set over machines.")
    ap.add_argument("--out", type=Path, help="Results directory (default bench/swe/results/AGENT--MODEL).")
    ap.add_argument("--timeout", type=float, default=1800.0, help="Seconds one agent run may take.")
    ap.add_argument("--keep", action="store_true", help="Keep each task's workspace after grading.")
    ap.add_argument("--transcripts", nargs="+", metavar="TDIR",
                    help="With --report: each run's transcripts (TDIR/<task>/NNNN.req.json, .resp.json), in the "
                         "order of the result directories ('-' for none): adds prompt caching counted.")
    ap.add_argument("--labels", nargs="+", metavar="LABEL",
                    help="With --report: each run's name in the tables, in the order of the result directories.")
    ap.add_argument("--write-results", metavar="TITLE",
                    help="With --report: write the table to bench/RESULTS.md under '## TITLE'.")
    return ap


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def default_out(agent: str, model: str) -> Path:
    return DEFAULT_OUT / f"{agent}--{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report:
        return _report(args.report, args.write_results, args.transcripts or [], args.labels or [], args.tasks)
    try:
        tasks = harness.select(load_all(args.tasks_dir), args.tasks)
        tasks = harness.shard(tasks, args.shard)
    except (TaskError, ValueError) as exc:
        return _fail(str(exc))
    if not tasks:
        return _fail(f"no task matches '{args.tasks}'")
    if args.list:
        for t in tasks:
            print(f"{t.id} {t.project} {t.language} {t.kind}")
        return 0
    if args.check:
        return _check(tasks, args.jobs)
    if args.gold:
        for t in tasks:
            print(json.dumps({"instance_id": t.id, "model_name_or_path": "gold", "model_patch": fetch.gold_patch(t)}))
        return 0
    if not args.model:
        return _fail("--model is needed for a run (or use --list, --check, --report)")
    if shutil.which("bwrap") is None:
        return _fail("bubblewrap (bwrap) is not installed; grading needs it")
    # Absolute: the agent runs with its workspace (under ``out``) as the current directory.
    out = (args.out or default_out(args.agent, args.model)).resolve()
    opts = harness.Options(agent=args.agent, model=args.model, api_base=args.api_base, out=out, jobs=args.jobs,
                           timeout=args.timeout, keep=args.keep)

    def progress(rec: dict[str, object]) -> None:
        state = "resolved" if rec.get("resolved") else ("harness error" if "infra_error" in rec else "not resolved")
        extra = f" ({rec['infra_error']})" if "infra_error" in rec else ""
        extra += " (tampered with tests)" if rec.get("tampered") else ""
        print(f"{rec['instance_id']}: {state}{extra}", file=sys.stderr, flush=True)

    records = harness.run_tasks(tasks, opts, on_record=progress)
    print(report.summary_line(f"{args.agent} {args.model}", report.summary(records)))
    print(f"results: {out / harness.RESULTS_NAME}\npredictions: {out / harness.PREDICTIONS_NAME}")
    return 1 if any("infra_error" in r for r in records) else 0


def _check(tasks: list[Task], jobs: int) -> int:
    bad = 0
    with tempfile.TemporaryDirectory(prefix="swe-check-") as tmp:

        def one(task: Task) -> tuple[Task, list[str]]:
            work = Path(tmp) / task.id
            work.mkdir()
            try:
                return task, harness.check_task(task, work)
            except (fetch.FetchError, RuntimeError, OSError) as exc:
                return task, [f"could not check: {exc}"]

        with ThreadPoolExecutor(max(1, jobs)) as pool:
            for task, problems in pool.map(one, tasks):
                n = len(task.fail_to_pass) + len(task.pass_to_pass)
                if problems:
                    bad += 1
                    print(f"FAIL {task.id}: " + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
                else:
                    print(f"ok   {task.id} ({len(task.fail_to_pass)} fail-to-pass, {n - len(task.fail_to_pass)}"
                          " pass-to-pass)")
                sys.stdout.flush()
    print(f"{len(tasks) - bad} of {len(tasks)} tasks verified")
    return 1 if bad else 0


def _report(dirs: list[str], title: str | None, transcripts: list[str], labels: list[str], tasks: str = "*") -> int:
    import fnmatch

    pats = [p.strip() for p in tasks.split(",") if p.strip()]

    def wanted(tid: str) -> bool:
        return any(fnmatch.fnmatch(tid, p) for p in pats)

    if transcripts and len(transcripts) != len(dirs):
        return _fail(f"--transcripts names {len(transcripts)} folders for {len(dirs)} result directories "
                     "(one each, '-' for none)")
    if labels and len(labels) != len(dirs):
        return _fail(f"--labels names {len(labels)} runs for {len(dirs)} result directories (one each)")
    runs = []
    for d in dirs:
        recs = [r for r in harness.latest(harness.read_results(Path(d))).values() if wanted(str(r["instance_id"]))]
        if not recs:
            return _fail(f"{d}: no {harness.RESULTS_NAME} with records" + (f" of '{tasks}'" if tasks != "*" else ""))
        agent, model = str(recs[0].get("agent", "?")), str(recs[0].get("model", "?"))
        # A directory named past its default (e.g. suffixed with the commit run) tells runs of one agent apart.
        extra = Path(d).resolve().name.removeprefix(default_out(agent, model).name).strip("-_ ")
        label = labels[len(runs)] if labels else f"{agent} {model}" + (f" {extra}" if extra else "")
        runs.append((label, recs))
    text = report.markdown(runs)
    priced = [(label, Path(t), recs) for (label, recs), t in zip(runs, transcripts, strict=False) if t != "-"]
    for _, t, _ in priced:
        if not t.is_dir() or not any(p.is_dir() for p in t.iterdir()):
            return _fail(f"{t}: not a folder of task transcripts")
    if priced:
        text += "\n" + report.cache_markdown(priced, wanted)
    if title:
        import datetime
        import subprocess

        from bench.report import write_section

        root = Path(__file__).parents[2]
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True).stdout.strip()
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        shown = " ".join(dirs) + (f" --tasks '{tasks}'" if tasks != "*" else "")
        shown += f" --transcripts {' '.join(transcripts)}" if transcripts else ""
        shown += " --labels " + " ".join(f"'{x}'" for x in labels) if labels else ""
        head = (f"Command: `python -m bench.swe --report {shown}` (results of `python -m bench.swe`, "
                f"bench/swe/README.md); written {when} at commit {commit}. Tokens: input / cached / output. "
                "A task is resolved when all its fail-to-pass tests pass and all its pass-to-pass tests still "
                "pass (hidden tests, bubblewrap, no network); injected bugs and feature requests are counted "
                "apart.\n\n")
        write_section(f"## {title}\n\n{head}{text}", root / "bench" / "RESULTS.md")
    print(text, end="")
    return 0
