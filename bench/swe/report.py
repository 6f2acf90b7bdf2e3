"""Summaries of result records, and the markdown tables written to ``bench/RESULTS.md``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of one agent's records."""
    graded = [r for r in records if "infra_error" not in r]
    res = [r.get("agent_result") or {} for r in graded]
    resolved = [r for r in graded if r.get("resolved")]
    cost = sum(float(a.get("cost_usd") or 0.0) for a in res)
    calls = sum(int(a.get("calls") or 0) for a in res)
    agent_times = [float(a["agent_s"]) for a in res if a.get("agent_s") is not None]
    return {
        "tasks": len(records), "graded": len(graded), "infra_errors": len(records) - len(graded),
        "resolved": len(resolved),
        "resolved_upstream": sum(1 for r in resolved if r.get("kind") == "upstream"),
        "upstream": sum(1 for r in graded if r.get("kind") == "upstream"),
        "resolved_injected": sum(1 for r in resolved if r.get("kind") == "injected"),
        "injected": sum(1 for r in graded if r.get("kind") == "injected"),
        "resolved_feature": sum(1 for r in resolved if r.get("kind") == "feature"),
        "feature": sum(1 for r in graded if r.get("kind") == "feature"),
        "tampered": sum(1 for r in graded if r.get("tampered")),
        "agent_errors": sum(1 for a in res if a.get("error")),
        "input_tokens": sum(int(a.get("input_tokens") or 0) for a in res),
        "cached_tokens": sum(int(a.get("cached_tokens") or 0) for a in res),
        "output_tokens": sum(int(a.get("output_tokens") or 0) for a in res),
        "cost_usd": round(cost, 6),
        "cost_per_resolved_usd": round(cost / len(resolved), 6) if resolved else None,
        "calls": calls, "calls_per_task": round(calls / len(graded), 2) if graded else 0.0,
        "replans": sum(int(a.get("replans") or 0) for a in res),
        "wall_s": round(sum(float(a.get("wall_s") or 0.0) for a in res), 1),
        "agent_s": round(sum(agent_times), 1) if agent_times else None,
    }


def summary_line(label: str, s: dict[str, Any]) -> str:
    per = f"${s['cost_per_resolved_usd']:.4f}" if s["cost_per_resolved_usd"] is not None else "-"
    return (f"{label}: resolved {s['resolved']}/{s['graded']} (upstream {s['resolved_upstream']}/{s['upstream']}, "
            f"injected {s['resolved_injected']}/{s['injected']}"
            + (f", feature {s['resolved_feature']}/{s['feature']}" if s.get("feature") else "")
            + f"); tokens in {s['input_tokens']:,} "
            f"(cached {s['cached_tokens']:,}) out {s['output_tokens']:,}; cost ${s['cost_usd']:.4f}, per resolved "
            f"{per}; calls/task {s['calls_per_task']}; re-plans {s['replans']}; wall {s['wall_s']} s; "
            f"tampered {s['tampered']}; agent errors {s['agent_errors']}; harness errors {s['infra_errors']}")


def _cell(r: dict[str, Any] | None) -> list[str]:
    if r is None:
        return ["", "", "", "", ""]
    if "infra_error" in r:
        return ["error", "", "", "", ""]
    a = r.get("agent_result") or {}
    mark = "yes" if r.get("resolved") else ("no (tampered)" if r.get("tampered") else "no")
    tokens = f"{int(a.get('input_tokens') or 0):,} / {int(a.get('cached_tokens') or 0):,} / " \
             f"{int(a.get('output_tokens') or 0):,}"
    return [mark, str(a.get("calls", 0)), tokens, f"{float(a.get('cost_usd') or 0.0):.4f}",
            f"{float(a.get('wall_s') or 0.0):.0f}"]


def markdown(runs: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """Per task and summed, each run (label, records) side by side."""
    by_label = [(label, {r["instance_id"]: r for r in recs}) for label, recs in runs]
    ids: list[str] = []
    meta: dict[str, dict[str, Any]] = {}
    for _, recs in runs:
        for r in recs:
            if r["instance_id"] not in meta:
                ids.append(r["instance_id"])
                meta[r["instance_id"]] = r
    cols = ["task", "project", "kind"]
    for label, _ in runs:
        cols += [f"{label}: resolved", "calls", "tokens in / cached / out", "cost $", "wall s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for tid in sorted(ids):
        row = [tid, str(meta[tid].get("project", "")), str(meta[tid].get("kind", ""))]
        for _, by_id in by_label:
            row += _cell(by_id.get(tid))
        lines.append("| " + " | ".join(row) + " |")
    row = ["**total**", "", ""]
    for _, recs in runs:
        s = summary(recs)
        row += [f"{s['resolved']}/{s['graded']}", str(s["calls"]),
                f"{s['input_tokens']:,} / {s['cached_tokens']:,} / {s['output_tokens']:,}", f"{s['cost_usd']:.4f}",
                f"{s['wall_s']:.0f}"]
    lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += [f"- {summary_line(label, summary(recs))}" for label, recs in runs]
    return "\n".join(lines) + "\n"


# --- Prompt caching counted, from the transcripts of a run -------------------------------------------------------
#
# A transcript is a run's every request and answer as the endpoint saw them: ``<task>/NNNN.req.json`` (the
# request body) and ``NNNN.resp.json`` (the answer), numbered from 1 per task. Both agents' requests are
# counted the same way (bench/cache.py's rule and prices: the tokens a provider's prefix cache sees), each
# task's run on its own: a request may reuse the prefix of an earlier request of the same task run only.

#: The start of an investigate step's system message (agentcli's engine/investigate.py).
_INVESTIGATE = "You investigate one question"


def transcript(folder: Path) -> list[tuple[Any, dict[str, Any]]]:
    """One task's ``(request, answer)`` pairs in the order sent (the answer ``{}`` where none was written)."""
    from agentcli.models.types import ModelRequest

    out: list[tuple[Any, dict[str, Any]]] = []
    for req_file in sorted(folder.glob("*.req.json")):
        body = json.loads(req_file.read_text())
        resp_file = req_file.with_name(req_file.name.replace(".req.json", ".resp.json"))
        answer = json.loads(resp_file.read_text()) if resp_file.is_file() else {}
        out.append((ModelRequest(model=str(body.get("model", "")), messages=list(body.get("messages") or []),
                                 max_tokens=int(body.get("max_tokens") or 0),
                                 temperature=float(body.get("temperature") or 0.0),
                                 response_format=body.get("response_format"), tools=body.get("tools")),
                    answer))
    return out


def role(req: Any) -> str:
    """planner, step, reviewer, investigate or other (bench/breakdown.py's roles, and investigate steps)."""
    from bench import breakdown

    system = str(req.messages[0].get("content", "")) if req.messages else ""
    return "investigate" if system.startswith(_INVESTIGATE) else breakdown.role_of(req)


def task_figures(pairs: list[tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    """A task run's requests priced by the prefix rule (bench/cache.py), and what its calls were for:
    survey rounds (a planner answer that calls tools: a look before the plan) and investigate steps
    (an investigation's first request: the system message and the question, nothing answered yet)."""
    from bench import cache

    reqs = [r for r, _ in pairs]
    roles = [role(r) for r in reqs]
    return {"bill": cache.bill(reqs), "calls": len(pairs),
            "survey_rounds": sum(1 for (_, a), k in zip(pairs, roles, strict=True)
                                 if k == "planner" and a.get("tool_calls")),
            "investigate_steps": sum(1 for r, k in zip(reqs, roles, strict=True)
                                     if k == "investigate" and not any(m.get("role") == "assistant"
                                                                       for m in r.messages)),
            "roles": roles}


def _sum(bills: Iterable[Any]) -> Any:
    from bench import cache

    total = cache.Bill()
    for b in bills:
        total.requests += b.requests
        total.input_tokens += b.input_tokens
        total.cacheable += b.cacheable
        total.written += b.written
    return total


def cache_figures(folder: Path, task_ids: list[str] | None = None) -> dict[str, Any]:
    """Per task (``task_ids``, or every task folder) and summed: :func:`task_figures`."""
    ids = task_ids if task_ids is not None else sorted(p.name for p in folder.iterdir() if p.is_dir())
    per = {tid: task_figures(transcript(folder / tid)) for tid in ids if (folder / tid).is_dir()}
    return {"tasks": per, "bill": _sum(f["bill"] for f in per.values())}


def _agent(label: str, records: list[dict[str, Any]]) -> str:
    """The agent of a run: its records say, else the label's first word."""
    return str(records[0].get("agent")) if records and records[0].get("agent") else label.split(" ", 1)[0]


def _units(x: float) -> str:
    return f"{x:,.0f}"


def _bill_tables(bills: list[tuple[str, Any, list[dict[str, Any]]]]) -> list[str]:
    """A row per run (label, :class:`bench.cache.Bill`, records), then the ratios of the ReAct run
    (``mini``) to each other run."""
    lines = ["| run | requests | input tokens (no cache) | cacheable (share) | not served from a cache | "
             "billed at OpenAI (cached 50%) | billed at Anthropic (read 10%, write 125%) |",
             "|---|---|---|---|---|---|---|"]
    for label, b, _ in bills:
        lines.append(f"| {label} | {b.requests} | {b.input_tokens:,} | {b.cacheable:,} ({b.share:.0%}) | "
                     f"{b.uncached:,} | {_units(b.openai)} | {_units(b.anthropic)} |")
    react = [(label, b) for label, b, recs in bills if _agent(label, recs) == "mini"]
    if react:
        rl, rb = react[0]
        lines += ["", f"| ratio {rl} / run | input tokens (no cache) | not served from a cache | OpenAI | "
                  "Anthropic |", "|---|---|---|---|---|"]
        for label, b, _ in bills:
            if label == rl:
                continue
            lines.append(f"| {label} | {rb.input_tokens / max(b.input_tokens, 1):.2f}x | "
                         f"{rb.uncached / max(b.uncached, 1):.2f}x | {rb.openai / max(b.openai, 1):.2f}x | "
                         f"{rb.anthropic / max(b.anthropic, 1):.2f}x |")
    return lines


def _per_task_table(figs: list[tuple[str, dict[str, Any], list[dict[str, Any]]]], common: list[str]) -> list[str]:
    """Per task, the runs side by side (each task run with a cache of its own): requests, input tokens,
    the cacheable share and the bill at Anthropic's prices; then the ReAct run's (``mini``) bill over
    each other run's."""
    react = next((label for label, _, recs in figs if _agent(label, recs) == "mini"), None)
    head = ["task"]
    for label, _, _ in figs:
        head += [f"{label}: requests", "input tokens", "cacheable", "Anthropic units"]
    others = [label for label, _, _ in figs if label != react] if react else []
    head += [f"{react} / {label} (Anthropic)" for label in others]
    lines = ["Per task run (each with a cache of its own):", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for tid in common:
        row = [tid]
        units: dict[str, float] = {}
        for label, f, _ in figs:
            b = f["tasks"][tid]["bill"]
            units[label] = b.anthropic
            row += [str(b.requests), f"{b.input_tokens:,}", f"{b.share:.0%}", _units(b.anthropic)]
        row += [f"{units[react] / max(units[label], 1):.2f}x" for label in others]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def cache_markdown(runs: list[tuple[str, Path, list[dict[str, Any]]]],
                   wanted: Callable[[str], bool] = lambda tid: True) -> str:
    """Each run's transcripts priced with prompt caching counted (one row a run, then the ratios of a
    ReAct run, ``mini``, to each other run; each task run with a cache of its own, then one cache across
    the tasks), then per task of each agentcli run: resolved, calls, survey
    rounds, re-plans and investigate steps. ``runs``: (label, transcripts folder, result records); only
    the tasks of every run are compared, so the runs are compared on the same tasks; ``wanted`` picks
    the tasks to take at all."""
    def task_dirs(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and wanted(p.name))

    common = sorted(set.intersection(*(set(task_dirs(t)) for _, t, _ in runs)))
    every = [(label, cache_figures(folder, task_dirs(folder)), recs) for label, folder, recs in runs]
    figs = []
    for label, f, recs in every:
        total = _sum(f["tasks"][tid]["bill"] for tid in common)
        figs.append((label, {"tasks": {tid: f["tasks"][tid] for tid in common}, "bill": total}, recs))
    lines = [f"Prompt caching counted, on the {len(common)} tasks every run has a transcript of "
             "(bench/cache.py's rule and prices: a request's cacheable part is the longest prefix it shares with "
             "an earlier request of the same task run, at least 1,024 tokens, in 128-token steps; costs in "
             "input-token units, 1 = one input token at the full price):", ""]
    lines += _bill_tables([(label, f["bill"], recs) for label, f, recs in figs])
    from bench import cache

    across = [(label, cache.bill([r for tid in common for r, _ in transcript(folder / tid)]), recs)
              for label, folder, recs in runs]
    lines += ["", "The same requests with one cache across the tasks (in task-id order: what a provider's cache "
              "holds for one user's runs in a row, where the stable start of a request is shared by every task):",
              ""]
    lines += _bill_tables(across)
    lines += ["", *_per_task_table(figs, common)]
    for (label, f, recs), (_, folder, _) in zip(every, runs, strict=True):
        if _agent(label, recs) != "agentcli":
            continue
        by_id = {r["instance_id"]: r for r in recs}
        lines += ["", f"{label}, per task:", "",
                  "| task | resolved | calls | survey rounds | re-plans | investigate steps | input tokens | "
                  "cacheable | Anthropic units |", "|---|---|---|---|---|---|---|---|---|"]
        tot = {"calls": 0, "survey_rounds": 0, "replans": 0, "investigate_steps": 0, "resolved": 0}
        for tid, t in f["tasks"].items():
            rec = by_id.get(tid, {})
            replans = int((rec.get("agent_result") or {}).get("replans") or 0)
            resolved = bool(rec.get("resolved"))
            b = t["bill"]
            lines.append(f"| {tid} | {'yes' if resolved else ('no' if rec else '?')} | {t['calls']} | "
                         f"{t['survey_rounds']} | {replans} | {t['investigate_steps']} | {b.input_tokens:,} | "
                         f"{b.share:.0%} | {_units(b.anthropic)} |")
            for k in ("calls", "survey_rounds", "investigate_steps"):
                tot[k] += t[k]
            tot["replans"] += replans
            tot["resolved"] += resolved
        n = max(len(f["tasks"]), 1)
        b = f["bill"]
        lines.append(f"| **total** ({len(f['tasks'])} tasks) | {tot['resolved']} | {tot['calls']} | "
                     f"{tot['survey_rounds']} ({tot['survey_rounds'] / n:.2f} a task) | {tot['replans']} | "
                     f"{tot['investigate_steps']} | {b.input_tokens:,} | {b.share:.0%} | {_units(b.anthropic)} |")
        lines += ["", f"{label}: where the input tokens go (the tasks of the run taken; bench/breakdown.py's "
                  "sections, tokens counted the same way):", "",
                  where_tokens_go(folder, task_dirs(folder)).rstrip("\n")]
        for lang in sorted({str(r.get("language", "")) for r in recs if r["instance_id"] in f["tasks"]} - {""}):
            ids = [r["instance_id"] for r in recs if r.get("language") == lang and r["instance_id"] in f["tasks"]]
            rounds = sum(f["tasks"][i]["survey_rounds"] for i in ids)
            lines.append(f"- {lang} tasks: {len(ids)}, survey rounds {rounds} ({rounds / len(ids):.2f} a task), "
                         f"calls {sum(f['tasks'][i]['calls'] for i in ids)}, investigate steps "
                         f"{sum(f['tasks'][i]['investigate_steps'] for i in ids)}")
    return "\n".join(lines) + "\n"


def _part(name: str) -> str:
    """A section of bench/breakdown.py, with a conversation's later messages (a survey's or an
    investigation's calls and results, a re-ask) taken as one part: their '# ' lines are code, not headings."""
    head = name.split(" ", 1)[0]
    return "conversation (calls and results)" if "#" in head else name


def where_tokens_go(folder: Path, task_ids: list[str] | None = None) -> str:
    """Per role of agentcli's requests: how many, their input tokens and share, and the biggest parts of
    a request on average (bench/breakdown.py's sections)."""
    from bench import breakdown

    ids = task_ids if task_ids is not None else sorted(p.name for p in folder.iterdir() if p.is_dir())
    reqs = [r for tid in ids if (folder / tid).is_dir() for r, _ in transcript(folder / tid)]
    by_role: dict[str, list[Any]] = {}
    for r in reqs:
        by_role.setdefault(role(r), []).append(r)
    total = 0
    rows: list[tuple[str, int, int, dict[str, int]]] = []
    for name, rs in by_role.items():
        parts: dict[str, int] = {}
        for r in rs:
            for sec, n in breakdown.sections(r):
                parts[_part(sec)] = parts.get(_part(sec), 0) + n
        tokens = sum(parts.values())
        total += tokens
        rows.append((name, len(rs), tokens, parts))
    lines = ["| role | requests | input tokens | share | a request on average: biggest parts |",
             "|---|---|---|---|---|"]
    for name, n, tokens, parts in sorted(rows, key=lambda x: -x[2]):
        top = ", ".join(f"{k} {v // n:,}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:7])
        lines.append(f"| {name} | {n} | {tokens:,} | {tokens / max(total, 1):.0%} | {tokens // n:,}: {top} |")
    return "\n".join(lines) + "\n"
