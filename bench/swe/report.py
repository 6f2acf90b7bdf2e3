"""Summaries of result records, and the markdown tables written to ``bench/RESULTS.md``."""

from __future__ import annotations

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
            f"injected {s['resolved_injected']}/{s['injected']}); tokens in {s['input_tokens']:,} "
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
