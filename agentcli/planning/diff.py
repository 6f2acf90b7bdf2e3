"""How one plan differs from the next: the steps added, removed and changed, for people.

A re-plan renumbers steps (a revised plan's new steps are numbered after the old ones), so steps
are matched by what they do, not by id: first a step that does exactly the same (kind, tool,
arguments or prompt, answer shape) is the same step, whatever its id; then the rest are paired in
order by kind and tool with similar titles or arguments (a *changed* step, with the fields that
differ); what is left is *removed* (only in the old plan) or *added* (only in the new one).

:func:`plan_diff` is pure: the command line renders it (``agent run`` after feedback or a steer,
``agent runs show``), and so can any other front end.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from agentcli.planning.plan import Plan, Step

__all__ = ["PlanDiff", "StepChange", "plan_diff"]

#: The fields of a step a person decides on (ids, dependencies and estimates are bookkeeping).
_FIELDS = ("title", "tool", "args", "prompt", "answer", "requires_approval")
#: Two titles at least this similar (difflib's ratio) pair an old and a new step of the same tool.
_SIMILAR = 0.5


def _what(s: Step) -> str:
    """What a step does, as one comparable string."""
    return json.dumps([s.kind, s.tool, s.args, s.prompt, s.answer], sort_keys=True, default=str)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class StepChange:
    """A step in both plans that changed: the old and the new step, and the fields that differ."""

    old: Step
    new: Step
    fields: tuple[str, ...]

    def describe(self) -> str:
        """``s2 -> s5 edit_file: args.path: "a.py" -> "utils.py"`` (at most three fields)."""
        parts: list[str] = []
        for f in self.fields[:3]:
            a, b = getattr(self.old, f), getattr(self.new, f)
            if isinstance(a, dict) and isinstance(b, dict):
                keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
                parts.extend(f"args.{k}: {_short(a.get(k))} -> {_short(b.get(k))}" for k in keys[:2])
            else:
                parts.append(f"{f}: {_short(a)} -> {_short(b)}")
        ids = self.old.id if self.old.id == self.new.id else f"{self.old.id} -> {self.new.id}"
        return f"{ids} {self.new.tool or 'llm'}: " + "; ".join(parts)


@dataclass(frozen=True)
class PlanDiff:
    """The difference between two plans (see the module docstring)."""

    added: list[Step] = field(default_factory=list)
    removed: list[Step] = field(default_factory=list)
    changed: list[StepChange] = field(default_factory=list)
    #: Steps that do the same in both (old, new): kept as they were, or renumbered.
    same: list[tuple[Step, Step]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        """One line per difference, ``+`` added, ``-`` removed, ``~`` changed; in new-plan order
        for added and changed steps, removed ones first."""
        out = [f"- {s.id} {s.tool or 'llm'}: {s.title}" for s in self.removed]
        changed = {c.new.id: c for c in self.changed}
        added = {s.id for s in self.added}
        order = [s for _, s in self.same] + [c.new for c in self.changed] + list(self.added)
        for s in sorted(order, key=lambda s: int(s.id[1:])):
            if s.id in changed:
                out.append(f"~ {changed[s.id].describe()}")
            elif s.id in added:
                out.append(f"+ {s.id} {s.tool or 'llm'}: {s.title}")
        return out or ["(no change to the steps)"]

    def summary(self) -> str:
        """``+2 -1 ~1`` (added, removed, changed)."""
        return f"+{len(self.added)} -{len(self.removed)} ~{len(self.changed)}"

    def as_dict(self) -> dict[str, Any]:
        return {"added": [s.id for s in self.added], "removed": [s.id for s in self.removed],
                "changed": [{"old": c.old.id, "new": c.new.id, "fields": list(c.fields)} for c in self.changed],
                "same": [[a.id, b.id] for a, b in self.same]}


def _similar(a: Step, b: Step) -> bool:
    if (a.kind, a.tool) != (b.kind, b.tool):
        return False
    if difflib.SequenceMatcher(None, a.title.lower(), b.title.lower()).ratio() >= _SIMILAR:
        return True
    # Same target (a file's path, a command): the same step with other details.
    return any(key in a.args and a.args.get(key) == b.args.get(key) for key in ("path", "command", "pattern"))


def plan_diff(old: Plan, new: Plan) -> PlanDiff:
    """What changed from ``old`` to ``new`` (see the module docstring)."""
    olds, news = list(old.steps), list(new.steps)
    same: list[tuple[Step, Step]] = []
    # Exactly the same work, in order (ids may differ).
    by_what: dict[str, list[Step]] = {}
    for s in olds:
        by_what.setdefault(_what(s), []).append(s)
    rest_new: list[Step] = []
    for s in news:
        match = by_what.get(_what(s))
        if match:
            same.append((match.pop(0), s))
        else:
            rest_new.append(s)
    matched = {a.id for a, _ in same}
    rest_old = [s for s in olds if s.id not in matched]
    changed: list[StepChange] = []
    added: list[Step] = []
    for s in rest_new:
        pair = next((o for o in rest_old if _similar(o, s)), None)
        if pair is None:
            added.append(s)
            continue
        rest_old.remove(pair)
        fields = tuple(f for f in _FIELDS if getattr(pair, f) != getattr(s, f))
        changed.append(StepChange(pair, s, fields))
    return PlanDiff(added=added, removed=rest_old, changed=changed, same=same)
