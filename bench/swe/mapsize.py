"""The repository map of each graded task's workspace, and what it weighs in the planner's first request.

``python -m bench.swe.mapsize TRANSCRIPTS... --json OUT [--baseline BEFORE.json]``: for every task
that has a recorded first planner request (``TRANSCRIPTS/<task id>/0001.req.json``), the task's
workspace is prepared as a run prepares it (the base release, committed once), the map is built
for the task's problem statement as the hosted planner builds it (``planner.context_tokens``, the
recorded request's model's tokenizer, the data dir inside the workspace), and spliced into the
recorded request in place of the map it carries, so the request's size differs by the map alone.
Tokens: the map's, and the request's (every message's text and the tool schemas, counted with the
same tokenizer). With ``--baseline`` (the JSON of an earlier run, e.g. of main's code) a table of
both is printed. Needs the releases in the fetch cache (or the registry).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentcli.config import Config
from agentcli.models import tokens
from agentcli.planning.repomap import repo_map
from bench.swe import harness
from bench.swe.tasks import TASKS_DIR, load

_MAP_HEAD = "# Repository map\n"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _splice(request: dict[str, Any], new_map: str) -> dict[str, Any]:
    """The request with the map its user message carries replaced by ``new_map``."""
    messages = []
    for m in request["messages"]:
        text = _text(m["content"])
        start = text.find(_MAP_HEAD)
        if m["role"] == "user" and start >= 0:
            end = text.find("\n\n# ", start + len(_MAP_HEAD))
            text = text[:start] + _MAP_HEAD + new_map + (text[end:] if end >= 0 else "")
        messages.append({"role": m["role"], "content": text})
    return {**request, "messages": messages}


def _request_tokens(request: dict[str, Any], model: str) -> int:
    n = sum(tokens.count_text(_text(m["content"]), model) for m in request["messages"])
    if request.get("tools"):
        n += tokens.count_text(json.dumps(request["tools"], sort_keys=True), model)
    return n


def measure(transcripts: list[Path], work: Path) -> list[dict[str, Any]]:
    budget = Config().planner.context_tokens
    out = []
    for root in transcripts:
        for req_path in sorted(root.glob("*/0001.req.json")):
            task_id = req_path.parent.name
            if not (TASKS_DIR / task_id).is_dir():
                continue
            task = load(TASKS_DIR / task_id)
            request = json.loads(req_path.read_text())
            model = str(request.get("model") or "")
            ws = work / task_id / "workspace"
            harness.make_workspace(task, ws)
            text = repo_map(ws, ws / ".agent", task.problem, max_tokens=budget, model=model)
            again = repo_map(ws, ws / ".agent", task.problem, max_tokens=budget, model=model)
            out.append({"task": task_id, "kind": task.kind, "language": task.language, "model": model,
                        "map_tokens": tokens.count_text(text, model),
                        "request_tokens": _request_tokens(_splice(request, text), model),
                        "warm_same": again == text, "map": text})
    return out


def _table(rows: list[dict[str, Any]], base: dict[str, dict[str, Any]]) -> str:
    lines = ["| task | kind | map tokens before | after | change | request tokens before | after | change |",
             "|---|---|---|---|---|---|---|---|"]
    sums = [0, 0, 0, 0]
    for r in rows:
        b = base.get(r["task"])
        if b is None:
            continue
        mb, ma, rb, ra = b["map_tokens"], r["map_tokens"], b["request_tokens"], r["request_tokens"]
        sums = [sums[0] + mb, sums[1] + ma, sums[2] + rb, sums[3] + ra]
        lines.append(f"| {r['task']} | {r['kind']} | {mb} | {ma} | {ma - mb:+d} ({(ma - mb) / mb:+.1%}) | {rb} | {ra} "
                     f"| {ra - rb:+d} ({(ra - rb) / rb:+.1%}) |")
    mb, ma, rb, ra = sums
    if mb and rb:
        lines.append(f"| all | | {mb} | {ma} | {ma - mb:+d} ({(ma - mb) / mb:+.1%}) | {rb} | {ra} "
                     f"| {ra - rb:+d} ({(ra - rb) / rb:+.1%}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.swe.mapsize", description=__doc__.split("\n\n")[0])
    ap.add_argument("transcripts", nargs="+", type=Path, help="folders of recorded runs (<task id>/0001.req.json)")
    ap.add_argument("--json", type=Path, required=True, help="where the measures (and each map's text) go")
    ap.add_argument("--baseline", type=Path, help="an earlier run's JSON: print a before/after table")
    ap.add_argument("--work", type=Path, help="where the workspaces are prepared (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.work is not None:
        rows = measure(args.transcripts, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="mapsize-") as tmp:
            rows = measure(args.transcripts, Path(tmp))
    args.json.write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(f"{r['task']}: map {r['map_tokens']} tokens, request {r['request_tokens']} tokens"
              f"{'' if r['warm_same'] else ' (a warm map differs from the cold one!)'}")
    if args.baseline is not None:
        base = {r["task"]: r for r in json.loads(args.baseline.read_text())}
        print(_table(rows, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
