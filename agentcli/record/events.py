"""The append-only run log: one ``events.jsonl`` per run, the record that explains it.

Every run has a sortable id and a folder ``<data_dir>/runs/<run_id>/`` holding:

* ``events.jsonl``: typed events, one JSON object per line, each with
  ``schema_version``, a sequence number ``seq``, a ``time`` and a ``type``;
* ``llm_calls.jsonl``: the LLM client's per-request records (:mod:`agentcli.models.calllog`),
  which share ``run_id``, ``step_id`` and ``call_id`` with the ``llm_call`` events.

Durability, cheapest first:

* every event is written with one ``write`` call straight to the OS (no user-space
  buffer), so ``kill -9`` of the agent loses nothing already appended;
* at step boundaries the file is fsynced by a background thread (group commit,
  so a step does not wait ~150 us for the disk);
* before a side-effecting tool runs, its ``tool_intent`` is appended and fsynced
  synchronously: after a crash, a resume can see which side effects may have
  happened.

Reading tolerates a torn last line (a crash mid-write): it is skipped with a
warning and nothing else breaks. Secrets are redacted before anything is written.

Lines are compact JSON in the field order of :class:`Event`. Most are encoded by orjson
(non-ASCII text as UTF-8), the rest by the standard library (non-ASCII as ``\\u`` escapes):
both are plain JSON, read back the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from agentcli.errors import AgentError
from agentcli.models.types import CallOutcome, Role
from agentcli.planning.plan import PlanSource, StepKind, StepStatus
from agentcli.redact import Redactor, is_secret_field, might_hold_token, secret_values

EVENT_SCHEMA_VERSION = 1
#: How a run ended (``run_finished``).
RunStatus = Literal["COMPLETE", "FAILED"]
#: A ``review`` event: the reviewer's verdict, a grounded completion, a tool call's arguments
#: corrected by the model, or a "complete" verdict overruled by the record (no step succeeded and
#: the answer quotes no step's output).
ReviewKind = Literal["verdict", "grounded", "facts", "args_corrected", "overruled", "investigated"]
EVENTS_NAME = "events.jsonl"

EventType = Literal[
    "run_started",
    "plan_created",
    "transition",
    "step_started",
    "llm_call",
    "tool_intent",
    "args_checked",
    "tool_call",
    "step_finished",
    "approval",
    "budget_check",
    "memory_recall",
    "memory_write",
    "review",
    "resume_decision",
    "workspace_changes",
    "verify",
    "hook",
    "run_finished",
    "checkpoint",
    "undo",
    "session_started",
    "turn_started",
    "session_rolled_back",
    "user_message",
]


#: The last second of year 9999: an event time past it (or before 1970) cannot be a real one, and
#: ``datetime`` cannot show it (a record edited by hand or damaged: ``1e300``, ``-1``, ``NaN``).
MAX_EVENT_TIME = 253_402_300_799.0


class Event(BaseModel):
    """One line of ``events.jsonl``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = EVENT_SCHEMA_VERSION
    seq: int
    #: Seconds since the epoch (``time.time()`` when the event was written).
    time: float = Field(ge=0, le=MAX_EVENT_TIME, allow_inf_nan=False, strict=True)
    type: EventType
    run_id: str
    step_id: str | None = None
    data: dict[str, Any] = {}


_EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))


# ------------------------------------------------------------------ typed payloads
#
# One model per event type: the writers build them (:meth:`EventLog.emit`), and the record reader
# (:mod:`agentcli.record.reader`) validates ``Event.data`` into them. Fields are declared in the
# order the line has always had, with defaults wherever an older writer may have left a key out,
# so a schema-1 line reads as it is. Unknown keys are kept (``extra="allow"``): a newer writer's
# additive field survives a read, and a replay compares it.


#: A payload class's keys in the line, in declaration order (its ``_KEYS`` applied), once known.
_LINE_KEYS: dict[type, tuple[str, ...]] = {}


class Payload(BaseModel):
    """The ``data`` of one event type. ``TYPE`` names it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    TYPE: ClassVar[EventType]
    # Payloads with an alias or a nested model are dumped by pydantic; the others straight from
    # their fields (a step's events stay on EventLog.append's fast path).
    _DUMPED: ClassVar[bool] = False
    # Field name -> key in the line, for a payload of plain values whose only need of pydantic's
    # dump was an alias (a transition's ``from``: two per step).
    _KEYS: ClassVar[dict[str, str]] = {}

    def event_data(self) -> dict[str, Any]:
        """The payload as the line's ``data``: the fields the writer set (and required ones), in
        declaration order, then any extra keys."""
        cls = type(self)
        if cls._DUMPED:
            data = self.model_dump(by_alias=True, exclude_unset=True)
        else:
            fields = self.__pydantic_fields_set__
            values = self.__dict__
            keys = cls._KEYS
            if fields.issuperset(values):  # every field set (a step's events): no filtering
                if keys:
                    line_keys = _LINE_KEYS.get(cls)
                    if line_keys is None:
                        line_keys = _LINE_KEYS[cls] = tuple(keys.get(k, k) for k in cls.model_fields)
                    data = dict(zip(line_keys, values.values(), strict=True))
                else:
                    data = dict(values)
            elif keys:
                data = {keys.get(k, k): v for k, v in values.items() if k in fields}
            else:
                data = {k: v for k, v in values.items() if k in fields}
        extra = self.__pydantic_extra__
        if extra:
            data.update(extra)
        return data


class RunStarted(Payload):
    """A run (or a resumption of it) starts: the task, the config and where the run comes from."""

    TYPE: ClassVar[EventType] = "run_started"
    task: str = ""
    config_digest: str = ""
    versions: dict[str, str] = {}
    model: str = ""
    #: The whole effective config (a replay runs with it).
    config: dict[str, Any] | None = None
    #: The recorded run this one replays.
    replay_of: str | None = None
    #: The run this one was forked from, and the step it was forked at.
    parent: str | None = None
    fork_from: str | None = None
    #: A second ``run_started`` in the same log: the run was resumed.
    resumed: bool = False
    #: The JSON Schema the final answer had to validate against (``--output-schema``).
    output_schema: dict[str, Any] | None = None
    #: The project instructions (AGENTS.md) the run was given (a replay uses these).
    instructions: dict[str, Any] | None = None
    #: The run was started with ``--no-project-instructions``.
    no_project_instructions: bool = False
    #: The command run to verify the changes before the run ends COMPLETE (``[verify] command``).
    verify_command: str = ""
    #: Prompt template or schema name -> short sha256 of it (``agentcli.engine.prompts``): what a
    #: replay compares to name the prompt that changed since. Absent (empty) in records made before
    #: 0.2.0; an added optional field keeps ``schema_version`` 1, so those still read.
    prompts: dict[str, str] = {}


class PlanCreated(Payload):
    """A plan was made (``replan``: after a failure, merged with the steps kept)."""

    TYPE: ClassVar[EventType] = "plan_created"
    replan: bool = False
    #: The plan as executed (a re-plan: already merged, kept steps first).
    plan: dict[str, Any]
    #: A re-plan the user asked for (feedback or a steer, see the ``user_message`` before it): it
    #: does not count against ``budget.max_replans``. Written only when true.
    by_user: bool = False
    #: Where the steps came from: ``review`` when they are the check commands the review gave (no
    #: planner call). Written only then.
    source: PlanSource = "planner"


class TransitionMade(Payload):
    """A move of the state machine."""

    TYPE: ClassVar[EventType] = "transition"
    _KEYS: ClassVar[dict[str, str]] = {"src": "from"}
    src: str = Field(alias="from")
    to: str
    reason: str = ""


class StepStarted(Payload):
    TYPE: ClassVar[EventType] = "step_started"
    title: str = ""
    kind: StepKind = "tool"
    tool: str | None = None


class RecordedRequest(BaseModel):
    """An LLM request as recorded: what determines its hash (and ``tool_choice``, an extra field,
    when the request set it)."""

    model_config = ConfigDict(extra="allow")
    messages: list[dict[str, Any]] = []
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    max_tokens: int = 0
    temperature: float = 0.0
    seed: int | None = None


class RecordedResponse(BaseModel):
    """An LLM response as recorded."""

    model_config = ConfigDict(extra="allow")
    text: str = ""
    tool_calls: list[dict[str, Any]] = []
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: Input tokens the provider served from its prompt cache / wrote to it (None: not reported).
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    model: str | None = None
    #: Why generation stopped (``length``: cut at max_tokens), as the provider said.
    finish_reason: str | None = None


class RecordedUsage(BaseModel):
    """Tokens a call used; the cache counts are parts of ``input_tokens`` (0 in records made before
    they were kept)."""

    model_config = ConfigDict(extra="allow")
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0


class RecordedPrice(BaseModel):
    """USD per token, as the run priced the model; the cache prices when the model has them."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


class LlmCall(Payload):
    """One request to a model (one attempt), with its whole request and response, for replay."""

    TYPE: ClassVar[EventType] = "llm_call"
    _DUMPED: ClassVar[bool] = True
    call_id: str = ""
    attempt: int = 1
    role: Role = "executor"
    outcome: CallOutcome = "ok"
    request_hash: str = ""
    model: str = ""
    request: RecordedRequest = RecordedRequest()
    response: RecordedResponse | None = None
    usage: RecordedUsage = RecordedUsage()
    cost_usd: float | None = None
    latency_ms: float = 0.0
    error_type: str | None = None
    error: str | None = None
    price: RecordedPrice | None = None
    #: The :class:`~agentcli.models.profile.ModelProfile` the call was made with (a replay uses it).
    profile: dict[str, Any] | None = None
    #: The request's prefix shared with an earlier request of the run that a provider's prefix
    #: cache could serve, in tokens (:mod:`agentcli.models.cache`).
    cacheable_tokens: int = 0


class ToolIntent(Payload):
    """A side-effecting tool is about to run (fsynced first)."""

    TYPE: ClassVar[EventType] = "tool_intent"
    tool: str
    args: Any = None
    attempt: int = 1


class ArgsChecked(Payload):
    """A tool call's arguments checked against the workspace (an edit's search text must be in
    its file): the answer, as the step got it. Written for the tools whose check reads the
    workspace; a replay serves it (the run has changed the workspace since)."""

    TYPE: ClassVar[EventType] = "args_checked"
    tool: str
    ok: bool
    #: The refusal (a :class:`~agentcli.tools.ToolError` as JSON, secrets masked); None when ok.
    error: dict[str, Any] | None = None


class ToolCalled(Payload):
    """A tool call and its result (a :class:`~agentcli.tools.ToolResult` as JSON)."""

    TYPE: ClassVar[EventType] = "tool_call"
    tool: str
    args: Any = None
    attempt: int = 1
    result: dict[str, Any]


class StepFinished(Payload):
    TYPE: ClassVar[EventType] = "step_finished"
    status: StepStatus
    attempts: int = 0
    output: Any = None
    error: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


class ApprovalMade(Payload):
    """The decision on a step's approval, and who made it."""

    TYPE: ClassVar[EventType] = "approval"
    tool: str = ""
    args_hash: str = ""
    plan_hash: str = ""
    decided_by: str = ""
    decision: Literal["approved", "denied", "aborted"]
    message: str = ""
    risk: str | None = None
    #: Denied with the user's words instead of a plain no: the plan is revised with them (see
    #: :mod:`agentcli.engine.steering`). Written only when given.
    feedback: str | None = None


class BudgetChecked(Payload):
    """A budget check (the limit's numbers as extra keys)."""

    TYPE: ClassVar[EventType] = "budget_check"
    kind: str
    ok: bool
    which: str | None = None
    #: For an ``llm_call`` check: the model, and the price the check used (a refused call leaves no
    #: ``llm_call`` event, so a replay checks with this one).
    model: str | None = None
    #: ``{"input", "output"}`` (and the cache prices when known): USD per token (None: unknown).
    price: dict[str, float | None] | None = None


class MemoryRecalled(Payload):
    """A recall from memory (the memory package's payload, kept whole)."""

    TYPE: ClassVar[EventType] = "memory_recall"
    query: str = ""
    hits: list[dict[str, Any]] = []
    purpose: str | None = None


class MemoryWritten(Payload):
    """A write to memory, or why it failed (``error``)."""

    TYPE: ClassVar[EventType] = "memory_write"
    tier: str = ""
    error: str | None = None


class Reviewed(Payload):
    """A judgement on the run's progress: the reviewer's ``verdict``, a ``grounded`` completion, a
    ``facts`` completion (every step succeeded and the verify command passed: no reviewer call),
    ``args_corrected`` (a tool call's arguments fixed by the model), ``overruled`` (a "complete"
    the record contradicts, with the reason), or ``investigated`` (a failure investigated before a
    re-plan: ``reason`` the question, ``outcome`` ok or failed, ``after`` the findings)."""

    TYPE: ClassVar[EventType] = "review"
    kind: ReviewKind
    outcome: str | None = None
    answer: str | None = None
    reason: str | None = None
    tool: str | None = None
    before: Any = None
    after: Any = None
    error: dict[str, Any] | None = None
    #: A verdict's check commands for the re-plan, as the reviewer gave them (written only when given).
    commands: Any = None


class RunFinished(Payload):
    TYPE: ClassVar[EventType] = "run_finished"
    status: RunStatus
    reason: str = ""
    answer: str = ""
    totals: dict[str, Any] = {}
    budget: dict[str, Any] = {}
    exit_code: int = 1


class WorkspaceChanged(Payload):
    """What the run has changed in the workspace so far (``known``: False when it cannot be told)."""

    TYPE: ClassVar[EventType] = "workspace_changes"
    known: bool = False
    #: The changed paths (an older writer's entries may be objects: kept as they are).
    files: list[Any] = []
    stat: str = ""
    diff: str = ""
    #: Why the changes could not be told (``known`` is False).
    error: str | None = None


class MissingDependencyInfo(TypedDict):
    """A dependency the verify command's environment lacks (:mod:`agentcli.engine.verify`)."""

    kind: Literal["python", "node", "command"]
    name: str
    #: The output's line that says so.
    evidence: str


class Verified(Payload):
    """The verify command's outcome (``[verify] command``). ``missing``: it failed because its
    environment lacks a dependency that is not the run's own work; the run ends
    ``missing_dependency`` instead of re-planning."""

    TYPE: ClassVar[EventType] = "verify"
    command: str = ""
    status: str = ""
    exit_code: int | None = None
    output: str = ""
    duration_s: float = 0.0
    approval_wait_s: float = 0.0
    missing: MissingDependencyInfo | None = None


class Hooked(Payload):
    """A configured hook ran (``pre_tool``, ``post_tool``, ``run_finished``): its result."""

    TYPE: ClassVar[EventType] = "hook"
    hook: int = 0
    event: str = ""
    command: str = ""
    tool: str | None = None
    exit_code: int | None = None
    outcome: str = "ok"
    message: str = ""
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    #: Where it ran: the sandbox's description.
    sandbox: str = ""


class CheckpointMade(Payload):
    """A checkpoint of the workspace before or after a step (the shadow repository's commit)."""

    TYPE: ClassVar[EventType] = "checkpoint"
    schema_version: int = 1
    phase: str = ""
    commit: str | None = None
    tree: str | None = None
    #: It differs from the run's previous checkpoint.
    changed: bool = False
    #: Files over ``tools.max_file_bytes``, not recorded.
    skipped: list[str] = []
    ms: float = 0.0
    step: str | None = None
    #: The checkpoint could not be taken (the run went on without it).
    error: str | None = None
    #: It was not taken because it would read more files than ``checkpoints.max_files``: the run
    #: takes no more checkpoints and cannot be undone.
    capped: bool = False


class Undone(Payload):
    """``agent undo`` (or ``--redo``) of the run (the files restored, the commits around it)."""

    TYPE: ClassVar[EventType] = "undo"
    kind: Literal["undo", "redo"] = "undo"


class ResumeDecided(Payload):
    """On resume, what was decided about a step that may already have run (its intent recorded,
    its result not): ``rerun``, ``done`` or ``stop``, and who decided (user, flag, policy)."""

    TYPE: ClassVar[EventType] = "resume_decision"
    decision: Literal["rerun", "done", "stop"]
    decided_by: str = "policy"
    tool: str = ""
    args: Any = None
    attempt: int = 1
    reason: str = ""


# ------------------------------------------------------------------ a session's file
#
# A session (:mod:`agentcli.record.sessions`) is a file of events in the same envelope (its id in
# ``run_id``), read by the same reader: it points at the runs that are its turns.


class SessionStarted(Payload):
    """A session begins on a workspace (``forked_from``/``fork_turn``: branched from another
    session's chain after that turn; its turns up to there are the fork's first turns)."""

    TYPE: ClassVar[EventType] = "session_started"
    workspace: str = ""
    forked_from: str | None = None
    fork_turn: int | None = None


class LedgerMade(BaseModel):
    """What a turn's planner was given of the earlier turns: the ledger's sha256 and size, the form
    each earlier turn was folded to, and the record it was built from (each run's last event)."""

    model_config = ConfigDict(extra="allow")
    #: The ledger's layout (``agentcli.record.ledger.LEDGER_FORMAT``): a replay that builds other bytes
    #: from a ledger of another format says so instead of calling it a divergence of the records.
    format: int = 1
    sha256: str = ""
    tokens: int = 0
    budget: int = 0
    #: Turn number -> form (``full``, ``short``, ``words``, ``dropped``), oldest first.
    forms: dict[str, str] = {}
    #: Run id -> the last event ``seq`` of its record the ledger read (a later undo is not in it).
    basis: dict[str, int] = {}


class TurnStarted(Payload):
    """A turn of the session: its number, the run that carries it, the user's words, the turn it
    follows in the chain (0: the first), and the ledger its planner got. Written (fsynced) before
    the run starts, so a turn killed at once still belongs to its session."""

    TYPE: ClassVar[EventType] = "turn_started"
    _DUMPED: ClassVar[bool] = True
    turn: int
    run_id: str
    task: str = ""
    after: int = 0
    #: Copied from the session this one was forked from (not run in this session).
    copied: bool = False
    ledger: LedgerMade = LedgerMade()


class SessionRolledBack(Payload):
    """``agent undo --session S --to TURN``: the chain goes back to ``to_turn``; the turns after it
    were undone (``undone``: their run ids) and are no longer in later turns' ledgers."""

    TYPE: ClassVar[EventType] = "session_rolled_back"
    to_turn: int
    undone: list[str] = []


class UserSaid(Payload):
    """The user's words changed the plan (:mod:`agentcli.engine.steering`): ``feedback`` at the
    plan's confirmation (``at="plan"``) or at a step's approval (``at="approval"``, the event's
    step), or a ``steer`` taken at a step boundary (``at="boundary"``, ``done``: the steps finished
    then). ``plan_hash``: the plan the words were about. A re-plan follows."""

    TYPE: ClassVar[EventType] = "user_message"
    kind: Literal["feedback", "steer"]
    text: str
    at: Literal["plan", "approval", "boundary"]
    plan_hash: str = ""
    done: list[str] = []
    #: A steer's boundary: between steps (``step``), after the review judged the task complete
    #: (``review``) or after the verify command (``verify``).
    boundary: Literal["step", "review", "verify"] = "step"


#: The payload model of every event type.
PAYLOADS: dict[str, type[Payload]] = {
    m.TYPE: m for m in (RunStarted, PlanCreated, TransitionMade, StepStarted, LlmCall, ToolIntent, ArgsChecked,
                        ToolCalled,
                        StepFinished, ApprovalMade, BudgetChecked, MemoryRecalled, MemoryWritten, Reviewed,
                        WorkspaceChanged, Verified, Hooked, RunFinished, CheckpointMade, Undone, ResumeDecided,
                        SessionStarted, TurnStarted, SessionRolledBack, UserSaid)
}

# The general path's encoder, built once: the same output as json.dumps(..., separators=(",", ":"),
# default=str).
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)

# The fast path's orjson options. orjson encodes dict, list, tuple, str, int, bool, None and float
# natively, as pydantic's JSON mode dumps them (inf and nan as null included); anything else (a
# subclass, a datetime, a dataclass, a model, a non-str key, an int past 64 bits, a string that is
# not valid UTF-8) reaches _not_plain or makes orjson raise, and the event takes the general path.
_FAST_OPTIONS = (orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
                 | orjson.OPT_PASSTHROUGH_DATACLASS)


def _not_plain(value: Any) -> Any:
    raise TypeError(type(value).__name__)


# Keys already known not to name a credential, and short strings already known to hold nothing
# shaped like a credential (state names, tool names, paths, reasons): a set lookup instead of a
# regex match or a dozen substring searches. Bounded, as tool outputs can bring any number.
_SAFE_KEYS: set[str] = set()
_SAFE_KEYS_MAX = 4096
_SAFE_STRINGS: set[str] = set()
_SAFE_STRINGS_MAX = 4096
_SAFE_STRING_LEN = 256
_CONTAINERS = (dict, list, tuple)


def _safe_string(s: str) -> bool:
    if s in _SAFE_STRINGS:
        return True
    if might_hold_token(s):
        return False
    if len(s) <= _SAFE_STRING_LEN and len(_SAFE_STRINGS) < _SAFE_STRINGS_MAX:
        _SAFE_STRINGS.add(s)
    return True


def _needs_redaction(value: Any) -> bool:
    """Whether the redactor would change ``value``'s keys or strings, as far as keys that name a
    credential and strings that may hold a credential-shaped token go (secret values are looked
    for in the encoded line). Only the containers orjson encodes natively are walked: anything
    else sends the event down the general path."""
    t = type(value)
    if t is dict:
        if not _SAFE_KEYS.issuperset(value):  # one C-level pass in the usual case: keys seen before
            for k in value:
                if k not in _SAFE_KEYS:
                    if type(k) is not str or is_secret_field(k) or might_hold_token(k):
                        return True
                    if len(_SAFE_KEYS) < _SAFE_KEYS_MAX:
                        _SAFE_KEYS.add(k)
        items: Any = value.values()
    elif t is list or t is tuple:
        items = value
    elif t is str:
        return not _safe_string(value)
    else:
        return False
    # A string seen before is a set lookup here, without a call (a step writes ~30 strings, most
    # of them the same from step to step: states, tool names, statuses).
    for v in items:
        c = v.__class__
        if c is str:
            if v not in _SAFE_STRINGS and not _safe_string(v):
                return True
        elif (c is dict or c is list or c is tuple) and v and _needs_redaction(v):
            return True
    return False


def _encoded_secrets(values: list[str]) -> tuple[bytes, ...]:
    """The secret values as orjson writes them inside a JSON string. Escaping is per character, so
    the encoding of a string holding a secret holds this. A value orjson cannot encode (not valid
    UTF-8) is left out: a string holding it cannot be encoded either, so never takes the fast path."""
    out = []
    for v in values:
        with contextlib.suppress(orjson.JSONEncodeError):
            out.append(orjson.dumps(v)[1:-1])
    return tuple(out)


class IncompatibleRecording(AgentError):
    """A run recorded by a schema this version cannot read."""


#: At most one background fsync per this many seconds (a power loss may lose that window).
GROUP_COMMIT_SECONDS = 0.02


class _Fsyncer:
    """Background fsync of one file descriptor, on request (group commit).

    A request is a released lock (a binary semaphore), which the thread takes before each
    fsync: requests made while an fsync runs collapse into one more fsync after it. A plain
    lock release is a fraction of a threading.Event.set(), and this runs at every step.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = threading.Lock()
        self._pending.acquire()  # held = nothing pending; released = an fsync is wanted
        self._closed = False
        self._closing = threading.Event()  # cuts the group-commit wait short: close() fsyncs itself
        self._thread = threading.Thread(target=self._loop, name="events-fsync", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._pending.acquire()
            if self._closed:
                return
            try:
                os.fsync(self._fd)
            except OSError:
                return
            # Group commit: step boundaries that arrive within the window share the next fsync,
            # so fast steps do not keep a core busy flushing the journal (kill -9 needs no fsync).
            if self._closing.wait(GROUP_COMMIT_SECONDS):
                return

    def request(self) -> None:
        try:  # noqa: SIM105 (contextlib.suppress costs more, and this runs at every step)
            self._pending.release()
        except RuntimeError:
            pass  # already pending: the coming fsync covers this request too

    def close(self) -> None:
        self._closed = True
        self._closing.set()
        self.request()
        self._thread.join(timeout=5)


class EventLog:
    """Appends events to one run's ``events.jsonl``. Not shared between processes."""

    def __init__(self, path: Path, run_id: str, *, start_seq: int = 0) -> None:
        self.path = path
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: each os.write lands whole at the end, even after a crash left a torn line.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._seq = start_seq
        self._lock = threading.Lock()
        self._redact = Redactor()
        # The secret values the redactor replaces (the same snapshot), as they appear in a fast line.
        self._encoded_secrets = _encoded_secrets(secret_values())
        self._fsyncer = _Fsyncer(self._fd)
        self._closed = False
        #: Called with every appended event, in order (telemetry builds spans from them).
        self.listeners: list[Callable[[Event], None]] = []
        # A torn tail from an earlier crash must not glue itself to our first line.
        if path.stat().st_size and not _ends_with_newline(path):
            os.write(self._fd, b"\n")

    @property
    def seq(self) -> int:
        return self._seq

    def append(self, type: EventType, data: dict[str, Any] | None = None, *, step_id: str | None = None,
               durable: bool = False) -> None:
        """Append one event. ``durable=True`` fsyncs before returning (use before side effects)."""
        data = data or {}
        event: Event | None = None
        with self._lock:
            self._seq += 1
            seq = self._seq
            now = time.time()
            line = None
            # Fast path, for the events the general path would write unchanged (no key the redactor
            # drops, no secret value, nothing shaped like a credential, only plain JSON data): the
            # line is encoded straight from the arguments, with no model built and no JSON-mode
            # dump. The checks stand in for the model's validation; whatever they do not vouch for
            # takes the general path.
            if type in _EVENT_TYPES and (step_id is None or step_id.__class__ is str) and data.__class__ is dict:
                try:
                    line = orjson.dumps({"schema_version": EVENT_SCHEMA_VERSION, "seq": seq, "time": now,
                                         "type": type, "run_id": self.run_id, "step_id": step_id, "data": data},
                                        default=_not_plain, option=_FAST_OPTIONS)
                except TypeError:  # orjson.JSONEncodeError included
                    pass
                else:
                    if _needs_redaction(data):
                        line = None  # a key to drop, or perhaps a credential by its format
                    else:
                        for secret in self._encoded_secrets:
                            if secret in line:
                                line = None  # a secret value may be in there: redact
                                break
            if line is None:
                event = Event(seq=seq, time=now, type=type, run_id=self.run_id, step_id=step_id,
                              data=self._redact(data))
                line = (_ENCODER.encode(event.model_dump(mode="json")) + "\n").encode()
            os.write(self._fd, line)
            if durable:
                os.fsync(self._fd)
        if self.listeners:
            if event is None:  # a fast line: its data needed no redaction
                event = Event(seq=seq, time=now, type=type, run_id=self.run_id, step_id=step_id, data=data)
            for listener in self.listeners:
                listener(event)

    def emit(self, payload: Payload, *, step_id: str | None = None, durable: bool = False) -> None:
        """Append one typed event (see :meth:`append`)."""
        self.append(payload.TYPE, payload.event_data(), step_id=step_id, durable=durable)

    def sync(self, *, blocking: bool = False) -> None:
        """Make everything appended so far durable (in the background unless ``blocking``)."""
        if blocking:
            os.fsync(self._fd)
        else:
            self._fsyncer.request()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fsyncer.close()
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


@dataclass
class Recording:
    """A run's events as read back, with any warnings about damaged lines."""

    run_id: str
    events: list[Event]
    warnings: list[str] = field(default_factory=list)

    def of_type(self, *types: str) -> Iterator[Event]:
        return (e for e in self.events if e.type in types)

    def first(self, type: str) -> Event | None:
        return next(self.of_type(type), None)


def first_error(err: ValidationError) -> str:
    """The first problem of a validation error, on one line: ``field.path: message (and N more)``."""
    e = err.errors()[0]
    loc = ".".join(str(x) for x in e.get("loc", ())) or "(data)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{loc}: {e.get('msg')}{more}"


def read_events(path: Path) -> Recording:
    """Read a run's events. A torn or corrupt line is skipped with a warning; a newer schema is an error."""
    run_id = path.parent.name
    events: list[Event] = []
    warnings: list[str] = []
    try:
        raw_lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise AgentError(f"cannot read {path}: {e.strerror}") from None
    last_index = len(raw_lines) - 1
    for i, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            where = "truncated last line" if i - 1 >= last_index - 1 else f"corrupt line {i}"
            warnings.append(f"{path}: {where} ignored")
            continue
        version = obj.get("schema_version") if isinstance(obj, dict) else None
        if version != EVENT_SCHEMA_VERSION:
            raise IncompatibleRecording(
                f"{path}: event schema_version {version!r} is not supported by this agentcli "
                f"(it reads version {EVENT_SCHEMA_VERSION})"
            )
        try:
            events.append(Event.model_validate(obj))
        except ValidationError as e:
            seq = obj.get("seq")
            which = f"event {seq}" if type(seq) is int else f"the event on line {i}"
            warnings.append(f"{which} of {run_id} is malformed: {first_error(e)}")
    return Recording(run_id=run_id, events=events, warnings=warnings)
