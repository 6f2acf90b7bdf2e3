"""The reviewer: after the steps (or when one fails for good), judge how the run goes on.

One structured call to the reviewer model, which sees the task, the plan, every step's
outcome (see :func:`step_digest`) and the workspace's changes so far, and answers one of
four verdicts:

* ``complete``, with the final answer for the user;
* ``continue``: accept the failed steps as failed and run what can still run;
* ``replan``, with a reason the planner gets; or, when the work is done and only its check must
  run differently (an environment problem), with the ``commands`` that run it: the re-plan is then
  those commands as ``run_shell`` steps, with no planner call (see :meth:`Review.checks`);
* ``stop``: end the run now, with the reason (after the user declined a step the task needs,
  re-planning would only ask again).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentcli.engine.executor import StepRun, summarize_output
from agentcli.engine.workspace import DIFF_CHARS, WorkspaceChanges
from agentcli.models.client import LLMClient
from agentcli.planning.plan import Plan
from agentcli.redact import current as current_redactor
from agentcli.tools.text import brief_value, head_tail, strip_ansi


class Review(BaseModel):
    """The reviewer's verdict."""

    outcome: Literal["complete", "continue", "replan", "stop"] = Field(
        ..., description="complete: the task is done; continue: go on without the failed steps; "
        "replan: a new plan is needed; stop: end the run (e.g. the user declined a step the task needs)."
    )
    answer: str = Field("", max_length=4000, description="The final answer for the user (for complete).")
    reason: str = Field("", max_length=2000, description="Why (for continue, replan and stop).")
    #: Taken as given (any JSON value): commands that are not usable are not an error of the review,
    #: they only mean the planner re-plans as without them (see :meth:`checks`). None: not given.
    commands: Any = Field(None, description="For replan: shell commands that check the "
                                "work, run in order, instead of a new plan (the work done, only its check to run "
                                "differently).")

    def checks(self) -> tuple[str, ...]:
        """The commands of a ``replan`` verdict as the re-plan's steps, or ``()`` when there are none
        or they are not usable: not a list of 1 to :data:`MAX_CHECKS` strings, each non-blank,
        single-line and at most :data:`CHECK_CHARS` characters. Then the planner re-plans."""
        cmds = self.commands
        if self.outcome != "replan" or not isinstance(cmds, list) or not 0 < len(cmds) <= MAX_CHECKS:
            return ()
        if not all(isinstance(c, str) and c.strip() and len(c) <= CHECK_CHARS and "\n" not in c
                   and "\x00" not in c for c in cmds):
            return ()
        return tuple(c.strip() for c in cmds)


#: The most commands a review may give as the check steps of a re-plan, and the longest one.
MAX_CHECKS = 3
CHECK_CHARS = 300


#: The reply's schema as sent: :class:`Review`'s constraints without its titles, descriptions and
#: defaults (the system message says what each outcome and field is for), a third of the tokens of
#: ``Review.model_json_schema()``. The reply is still validated into :class:`Review`.
REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "outcome": {"enum": ["complete", "continue", "replan", "stop"]},
        "answer": {"type": "string", "maxLength": 4000},
        "reason": {"type": "string", "maxLength": 2000},
        "commands": {"type": "array", "items": {"type": "string", "maxLength": CHECK_CHARS}, "maxItems": MAX_CHECKS},
    },
    "required": ["outcome"],
}


_SYSTEM = (
    "You review the results of a plan run for a developer task. Decide:\n"
    '- "complete": the results answer or accomplish the task; "answer": the final answer for the user, from '
    "the results only;\n"
    '- "continue": some steps failed but the rest can still accomplish the task;\n'
    '- "replan": this plan cannot accomplish the task; "reason": why; if only the check must run differently, '
    '"commands": the shell commands to run it (never edits);\n'
    '- "stop": end with no other plan: the user declined a step the task needs (status "denied"), or going '
    'on could not help; "reason": why.\n'
    "A step whose command exited with an unexpected code failed: read its error. A long output shows its head "
    "and tail. The workspace's changes so far follow the steps.\n"
    "Reply with one JSON object."
)


#: The most one step's output (or error) shows in a review or a re-plan: its head and tail.
STEP_CHARS = 4000
#: All the steps' outputs together; past it, older successful steps are shortened first.
DIGEST_CHARS = 16000
#: About the most of a tool step's args (as compact JSON) a review or a re-plan shows: long strings
#: keep their start and say how much is left out (an edit's text is in the workspace changes the
#: reviewer also gets).
ARGS_CHARS = 300
#: A step given less room than this shows a note instead of a useless sliver.
_MIN_SHARE = 240


def output_text(output: Any) -> str:
    """A step output as text for a model, whole: a string as it is, a command result as its
    exit code and output, search matches and file lists one per line, anything else as JSON.
    Terminal colour codes are removed."""
    if isinstance(output, str):
        text = output
    elif isinstance(output, dict) and set(output) >= {"exit_code", "output"}:
        text = f"exit code {output['exit_code']}\n{output['output']}"
    elif isinstance(output, list) and output and all(isinstance(x, str) for x in output):
        text = "\n".join([f"{len(output)} file{'s' if len(output) != 1 else ''}:", *output])
    elif isinstance(output, list) and output and all(isinstance(x, dict) and "file" in x for x in output):
        lines = [f"{len(output)} match{'es' if len(output) != 1 else ''}:"]
        lines += [f"{x.get('file')}:{x.get('line')}: {x.get('snippet', '')}" for x in output]
        text = "\n".join(lines)
    else:
        text = json.dumps(output, default=str, ensure_ascii=False)
    return strip_ansi(text)


def _error_text(run: StepRun) -> str:
    err = run.error or {}
    message = str(err.get("message", err))
    if run.status == "denied" and run.approval is not None and run.approval.decided_by == "user":
        return f"the user declined this step ({message})"
    return strip_ansi(message)


def consumed_notes(runs: dict[str, StepRun]) -> dict[str, str]:
    """The successful steps whose output a review shows as a one-line note (by id), when the
    workspace's changes are in the same message: what they held went into a change the diff shows.

    * an ``llm`` step whose output later steps consumed (a ``{{sN.output...}}`` reference in their
      args or prompt), all of them successful and at least one a ``write`` tool step that applied or
      wrote it: ``[2,480 chars: applied by s5 apply_edits: see the workspace changes]``;
    * a ``read`` tool step (not a command: its result is evidence, not workspace content) whose
      consumers all succeeded and each is a ``write`` tool step or such a noted llm step: the read
      served the change: ``[1,212 chars: read for s3]``.

    A step nothing consumed keeps its output (a question's reads are the answer's material), as does
    one whose consumer failed, was skipped or feeds something else (an answer the reviewer checks
    against the read)."""
    consumers: dict[str, list[StepRun]] = {}
    for run in runs.values():
        for sid in dict.fromkeys(ref.step_id for ref in run.step.references()):
            if sid in runs and sid != run.step.id:
                consumers.setdefault(sid, []).append(run)

    def writes(run: StepRun) -> bool:
        return run.status == "ok" and run.step.kind == "tool" and run.step.risk == "write"

    def has_output(run: StepRun) -> bool:
        return run.status == "ok" and run.output not in (None, "") and bool(consumers.get(run.step.id))

    notes: dict[str, str] = {}
    for run in runs.values():  # llm steps first: a read's note depends on its consumers' notes
        users = consumers.get(run.step.id, [])
        if (run.step.kind == "llm" and has_output(run) and all(u.status == "ok" for u in users)
                and any(writes(u) for u in users)):
            applied = ", ".join(f"{u.step.id} {u.step.tool}" for u in users if writes(u))
            notes[run.step.id] = (f"[{len(output_text(run.output)):,} chars: applied by {applied}: "
                                  "see the workspace changes]")
    for run in runs.values():
        users = consumers.get(run.step.id, [])
        command = isinstance(run.output, dict) and "exit_code" in run.output
        if (run.step.kind == "tool" and run.step.risk == "read" and not command and has_output(run)
                and all(writes(u) or u.step.id in notes for u in users)):
            readers = ", ".join(u.step.id for u in users)
            notes[run.step.id] = f"[{len(output_text(run.output)):,} chars: read for {readers}]"
    return notes


#: The most characters of the diff a review shows when outputs that went into the change are notes:
#: the room those outputs leave goes to the change itself, so a long change is shown whole once
#: instead of as the edits and a diff cut to its head and tail.
DIFF_MAX_CHARS = 18000


def review_changes(runs: dict[str, StepRun], changes: WorkspaceChanges | None,
                   notes: Mapping[str, str]) -> tuple[str | None, bool]:
    """The workspace's changes as a review shows them (``None``: unknown), and whether that is the
    whole diff. The diff gets :data:`~agentcli.engine.workspace.DIFF_CHARS`, plus the room of what
    the steps show shorter because the diff shows it (the outputs that become ``notes``, see
    :func:`consumed_notes`; a write step's arguments past :data:`ARGS_CHARS`), up to
    :data:`DIFF_MAX_CHARS`; a diff that is still longer is shown as its head and tail, and then no
    output becomes a note."""
    if changes is None:
        return None, True
    written = sum(max(0, len(_COMPACT.encode(r.step.args)) - ARGS_CHARS) for r in runs.values()
                  if r.status == "ok" and r.step.kind == "tool" and r.step.risk == "write")
    room = DIFF_CHARS + written + sum(min(len(output_text(runs[sid].output)), STEP_CHARS) for sid in notes)
    limit = min(room, DIFF_MAX_CHARS)
    if changes.whole(limit):
        return changes.text(limit), True
    return changes.text(), False


def step_digest(runs: dict[str, StepRun], limit: int = STEP_CHARS,
                total: int = DIGEST_CHARS, *, notes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """What the reviewer (and a re-planner) sees of each step, in plan order: id, title,
    status, action (a tool step's tool, with its ``args``: an object, long strings and lists in it
    shortened by :func:`brief_value` so it stays readable JSON; else the step's kind), and the
    output (or the error) as head and tail of at most ``limit`` characters, colour codes removed.
    When all of them exceed ``total``, failed steps and the newest ones keep their room first;
    older successful outputs are shortened, then replaced by a note of their size.
    ``notes``: the outputs shown as a note instead, by step id (:func:`consumed_notes`, where the
    workspace's whole diff follows the steps in the same message)."""
    out: list[dict[str, Any]] = []
    texts: list[tuple[str, str]] = []  # (field, text) per step
    notes = notes or {}
    for run in runs.values():
        s = run.step
        item: dict[str, Any] = {"id": s.id, "title": s.title, "status": run.status,
                                "action": s.tool if s.kind == "tool" else s.kind}
        if s.kind == "tool":
            # The args as a JSON object (no quotes escaped inside a string: about 30% fewer tokens),
            # long values shortened where they stay readable (a long edit's text is in the
            # workspace changes the reviewer also gets).
            item["args"] = brief_value(s.args, ARGS_CHARS)
        out.append(item)
        if s.id in notes:
            item["output"] = notes[s.id]  # a line, never shortened: it takes no room from the others
            texts.append(("", ""))
        elif run.status == "ok":
            texts.append(("output", output_text(run.output)))
        elif run.error:
            texts.append(("error", _error_text(run)))
        else:
            texts.append(("", ""))
    # Room is handed out failed steps first, then newest first.
    order = sorted(range(len(out)), key=lambda i: (texts[i][0] != "error", -i))
    left = total
    for i in order:
        key, text = texts[i]
        if not key:
            continue
        room = min(limit, left)
        if len(text) <= room:
            out[i][key] = text
            left -= len(text)
        elif room >= _MIN_SHARE:
            out[i][key] = head_tail(text, room)
            left -= room
        else:
            out[i][key] = f"[{len(text)} chars, left out for room: newer and failed steps come first]"
    return out


def fallback_answer(runs: dict[str, StepRun]) -> str:
    """The last successful step's output: the answer when the reviewer gives none."""
    for run in reversed(list(runs.values())):
        if run.status == "ok" and run.output not in (None, ""):
            return summarize_output(run.output, 4000)
    return ""


def decided_by_facts(runs: dict[str, StepRun]) -> bool:
    """Whether the steps leave nothing for a reviewer to judge: every one a tool step that succeeded
    at its first attempt with its arguments as planned (no llm or investigate step, whose content a
    model made; no retry, no corrected arguments, nothing skipped or declined). With a task that asks
    for a change and no answer, the verify command's result then decides the run (the engine's
    ``review.mode = "auto"``)."""
    return bool(runs) and all(r.status == "ok" and r.step.kind == "tool" and r.attempts <= 1 and not r.corrections
                              for r in runs.values())


def facts_answer(runs: dict[str, StepRun], changed: list[str], command: str) -> str:
    """The answer of a run decided by facts: its steps, the files it changed and the check that passed."""
    n = len(runs)
    files = ", ".join(changed[:20]) + (f" and {len(changed) - 20} more" if len(changed) > 20 else "")
    return (f"Done: the plan's {n} step{'s' if n != 1 else ''} succeeded, changing {files}; "
            f"`{command}` passed.")


_TOKEN = re.compile(r"[\w./-]{4,}")


def answer_is_grounded(answer: str, runs: dict[str, StepRun]) -> bool:
    """Whether ``answer`` quotes something a step returned: one of its words of 4 characters or
    more (a path, a name, a number) is in some step's output, whatever the step's status (a
    failed command's output counts). The engine's check of a "complete" verdict when no step
    succeeded: an answer with nothing from the steps in it was not found by the run."""
    words = {w.lower() for w in _TOKEN.findall(answer)}
    if not words:
        return False
    for run in runs.values():
        if run.output in (None, ""):
            continue
        text = run.output if isinstance(run.output, str) else json.dumps(run.output, default=str,
                                                                          ensure_ascii=False)
        if words & {w.lower() for w in _TOKEN.findall(text)}:
            return True
    return False


def _render(output: Any, limit: int) -> str:
    # Lists of paths and search matches are shown one per line, with a count, so the answer
    # to "how many ..." is in it; anything else as summarize_output renders it.
    if isinstance(output, list) and output and all(isinstance(x, str) for x in output):
        lines = [f"{len(output)} file{'s' if len(output) != 1 else ''}:", *output]
        return summarize_output("\n".join(lines), limit)
    if isinstance(output, list) and not output:
        return "nothing found"
    if isinstance(output, list) and all(isinstance(x, dict) and "file" in x for x in output):
        if not output:
            return "no matches"
        lines = [f"{len(output)} match{'es' if len(output) != 1 else ''}:"]
        lines += [f"{x.get('file')}:{x.get('line')}: {x.get('snippet', '')}" for x in output]
        return summarize_output("\n".join(lines), limit)
    if isinstance(output, list) and not output:
        return "nothing found"
    if isinstance(output, dict) and set(output) >= {"exit_code", "output"}:
        return summarize_output(f"exit code {output['exit_code']}\n{output['output']}", limit)
    return summarize_output(output, limit)


def grounded_answer(runs: dict[str, StepRun], limit: int = 4000) -> str:
    """The answer built from the tool outputs themselves (no model): each successful tool
    step's output (the last ones first to go when over ``limit``), then the last llm step's
    reply if there is one. For small models, whose free-text reviews are unreliable."""
    parts: list[str] = []
    ok = [r for r in runs.values() if r.status == "ok"]
    for run in ok:
        s = run.step
        if s.kind != "tool":
            continue
        text = _render(run.output, limit)
        if s.tool in ("write_file", "edit_file"):
            text = f"{s.tool} {s.args.get('path', '')}: done" + (f" ({text})" if text and text != "null" else "")
        parts.append(text if len(ok) == 1 else f"[{s.id} {s.tool}]\n{text}")
    last = ok[-1] if ok else None
    if last is not None and last.step.kind == "llm" and last.output not in (None, ""):
        parts.append(summarize_output(last.output, limit))
    return "\n".join(parts)[:limit] if parts else fallback_answer(runs)


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)

#: Decimal digits of a review's step tag (about 50 bits of a SHA-256; digits take fewer tokens than
#: hex digits: 6 for the tag against 8 for 12 hex digits): see :func:`review_tag`.
TAG_DIGITS = 15


def step_block(item: dict[str, Any]) -> str:
    """One step of a review (or a re-plan's context) as text, without its tag: the header line
    ``id status action args: title`` (the args as compact JSON, the title on one line), then the
    output or error as it is, no escaping (code reads as code, about 12% fewer tokens than the same
    text in a JSON string)."""
    head = f"{item['id']} {item['status']} {item.get('action', '')}"
    if "args" in item:
        head += " " + _COMPACT.encode(item["args"])
    head += ": " + " ".join(str(item.get("title", "")).split())
    body = item.get("output", item.get("error"))
    return head if body in (None, "") else f"{head}\n{body}"


def review_tag(blocks: list[str]) -> str:
    """The tag that marks the step headers of one review message: a hash of everything the message
    shows of its steps, so no output can hold it (a file would have to contain its own hash), and an
    output's line cannot pose as another step's header. Made from the blocks as the model is sent them
    (secrets masked, as the client masks every request before it is hashed and recorded), so a replay,
    whose outputs come from the masked record, builds the same tag."""
    mask = current_redactor().text
    digest = hashlib.sha256("\n\0".join(mask(b) for b in blocks).encode("utf-8", "surrogatepass")).digest()
    return f"@{int.from_bytes(digest[:8], 'big') % 10**TAG_DIGITS:0{TAG_DIGITS}d}"


def digest_text(blocks: list[str]) -> tuple[str, str]:
    """The steps of one review message (their :func:`step_block` texts) as it shows them, and its
    tag: each header line begins with the tag, and a last line ``TAG end`` closes them (so an
    output cannot pose as the section after the steps either)."""
    tag = review_tag(blocks)
    return "\n".join([*(f"{tag} {b}" for b in blocks), f"{tag} end"]), tag


def steps_section(heading: str, blocks: list[str]) -> str:
    """Steps as a model is shown them, in a review and in a re-plan's context: ``heading``, a line
    saying how to read them, then their :func:`digest_text` (``(none)`` when there are none)."""
    if not blocks:
        return f"{heading}\n(none)"
    text, tag = digest_text(blocks)
    return f"{heading}\nA line `{tag} id status action args: title` begins each; its output or error follows.\n{text}"


def replan_steps(runs: dict[str, StepRun]) -> str:
    """The steps as a re-planner's context shows them: as a review does (one encoder, the same tag
    on every header line, so an output cannot pose as a step or as the context's later parts), in
    half a review's room (the context has more to say)."""
    return steps_section("Steps so far, in plan order:",
                         [step_block(item) for item in step_digest(runs, total=DIGEST_CHARS // 2)])


def _steps_section(blocks: list[str], *, first: bool) -> str:
    return steps_section("# Steps, in plan order" if first else
                         "# Steps run or changed since your last verdict (the others are as shown before)", blocks)


def review_prompt(task: str, plan: Plan, runs: dict[str, StepRun], changes: str | None = None) -> str:
    """The reviewer's user message: the task, every step's digest, then the workspace's changes
    (``None``: unknown, e.g. not a git repository; then nothing is said), taken as the whole diff."""
    notes = consumed_notes(runs) if changes is not None else {}
    return _user_message(task, [step_block(item) for item in step_digest(runs, notes=notes)], changes, first=True)


def _user_message(task: str, blocks: list[str], changes: str | None, *, first: bool) -> str:
    user = _steps_section(blocks, first=first)
    if first:
        user = f"# Task\n{task}\n\n{user}"
    if changes is not None:
        user += f"\n\n# Workspace changes so far (git diff --stat, then the diff)\n{changes}"
    return user


class ReviewHistory:
    """The reviews of one run, as one conversation: a later review re-sends the earlier requests and
    verdicts unchanged (a prefix a provider caches) and adds only the steps that are new or changed
    since the last one, and the workspace's changes. Kept by the run's loop; nothing here is read
    from outside the run, so a replay builds the same requests."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._shown: dict[str, str] = {}

    def next_messages(self, system: str, task: str, runs: dict[str, StepRun], changes: str | None,
                      notes: Mapping[str, str]) -> list[dict[str, Any]]:
        """The messages of the next review (not yet remembered: see :meth:`answered`); ``notes``: the
        outputs shown as a note (see :func:`review_changes`)."""
        digest = step_digest(runs, notes=notes)
        blocks = {item["id"]: step_block(item) for item in digest}  # each step's text, made once
        if not self.messages or self.messages[0]["content"] != system:
            self._pending = blocks
            return [{"role": "system", "content": system},
                    {"role": "user", "content": _user_message(task, list(blocks.values()), changes, first=True)}]
        fresh = [b for sid, b in blocks.items() if self._shown.get(sid) != b]
        self._pending = blocks
        return [*self.messages, {"role": "user", "content": _user_message(task, fresh, changes, first=False)}]

    def answered(self, messages: list[dict[str, Any]], reply: str) -> None:
        """Remember a review that was answered (its request and the verdict as the model wrote it)."""
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        self._shown = dict(self._pending)


def verify_note(command: str) -> str:
    """What the reviewer is told when a run's changes are verified after its verdict."""
    return (f"\nAfter a \"complete\" verdict, if files changed, `{command}` runs in the workspace; if it "
            "fails, a new plan is made with its output. Judge the results shown; you need not run it.")


async def review(client: LLMClient, task: str, plan: Plan, runs: dict[str, StepRun],
                 changes: WorkspaceChanges | None = None, verify_command: str = "",
                 history: ReviewHistory | None = None) -> Review:
    """Ask the reviewer model for its verdict (``changes``: the workspace's changes, ``None`` when
    unknown; shown as :func:`review_changes` says, an output that went into them as a note when the
    whole diff is shown; ``verify_command``: the check that runs after a complete verdict, which it is
    told of; ``history``: the run's earlier reviews, which this one continues)."""
    system = _SYSTEM + (verify_note(verify_command) if verify_command.strip() else "")
    history = history if history is not None else ReviewHistory()
    notes = consumed_notes(runs) if changes is not None else {}
    shown, whole = review_changes(runs, changes, notes)
    messages = history.next_messages(system, task, runs, shown, notes if whole else {})
    result = await client.acomplete(messages, role="reviewer", response_model=Review, json_schema=REVIEW_SCHEMA)
    history.answered(messages, result.text)
    verdict: Review = result.parsed
    return verdict
