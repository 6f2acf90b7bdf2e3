"""Human approval before high-stakes actions.

Policy per risk class comes from config (``auto``, ``ask`` or ``deny``); a plan
step may *raise* its requirement but never lower it (see :mod:`agentcli.planning.plan`).
:class:`Approver` turns a request into a decision and records who made it:

* ``deny`` policy: denied by policy (``--approve-all`` overrides, explicitly);
* ``auto`` policy on a step that does not require approval: approved by policy;
* otherwise: an ``always`` answer given earlier for this tool in this run,
  ``--yes`` (approves ``ask`` steps for one run), or the interactive prompt.
  With no TTY and no flag, ``ask`` means deny, with a message saying how to approve.

The prompt may answer with the person's words instead (:class:`~agentcli.engine.steering.Feedback`):
the step is denied with them as ``feedback``, and the run revises its plan with them.

The prompt itself is a callable supplied by the CLI, so the core never prints.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from agentcli.config import ApprovalConfig
from agentcli.engine.steering import Feedback
from agentcli.redact import Redactor, current

Answer = Literal["yes", "no", "always", "abort"]
DecidedBy = Literal["policy", "user", "flag"]

# json.dumps(args, sort_keys=True, default=str), whose text the recorded hashes are of, without
# building an encoder per call (this runs for every step).
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, default=str)


#: How strict each policy is: deny > ask > auto.
_STRICTNESS = {"auto": 0, "ask": 1, "deny": 2}


@dataclass  # not frozen: one is built for every step, and a frozen dataclass costs ~4x to build
class ApprovalRequest:
    """What the user is asked to approve (nothing changes one once built)."""

    step_id: str
    tool: str
    risk: str
    args: dict[str, Any]
    plan_hash: str
    requires_approval: bool
    #: Every risk class of this call when it has more than the tool's own (run_shell asking for
    #: the network: exec and network); the strictest policy among them applies.
    risks: tuple[str, ...] = ()
    #: Makes the preview, only when somebody reads it (a policy decision or a replay needs none,
    #: and a preview reads the live workspace: an edit's diff, its closest-match search).
    show: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def preview(self) -> str | None:
        """A diff for writes, the command, cwd and sandbox for shell; None: nothing to show."""
        return self.show() if self.show is not None else None

    @property
    def args_hash(self) -> str:
        return self.hash_args(current())

    def hash_args(self, redact: Redactor) -> str:
        """Short sha256 of the args as recorded (secrets masked by ``redact``): a replay, which has
        only the record, hashes the same, and the hash of a secret is never written."""
        blob = _HASH_ENCODER.encode(redact.strings(self.args))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass  # not frozen: one is made for every step, and a frozen dataclass costs ~4x to build
class ApprovalDecision:
    """Recorded for every request: step, tool, args hash, plan hash, who decided, what, when
    (nothing changes one once made)."""

    step_id: str
    tool: str
    args_hash: str
    plan_hash: str
    decided_by: DecidedBy
    decision: Literal["approved", "denied", "aborted"]
    time: float
    message: str = ""
    #: Denied with the user's words: what to do instead (the plan is revised with them).
    feedback: str | None = None

    @property
    def approved(self) -> bool:
        return self.decision == "approved"


@dataclass
class Approver:
    """Decides approval requests for one run."""

    policy: ApprovalConfig
    #: Asks a person: an answer, or their words instead (:class:`Feedback`).
    prompt: Callable[[ApprovalRequest], Answer | Feedback] | None = None
    yes: bool = False
    approve_all: bool = False
    always: set[str] = field(default_factory=set)
    def args_hash(self, req: ApprovalRequest) -> str:
        """``req``'s args hash (:meth:`ApprovalRequest.hash_args`) with the shared redactor."""
        return req.hash_args(current())

    def _decision(self, req: ApprovalRequest, by: DecidedBy, decision: str, message: str = ""
                  ) -> ApprovalDecision:
        return ApprovalDecision(req.step_id, req.tool, self.args_hash(req), req.plan_hash, by,
                                decision, time.time(), message)  # type: ignore[arg-type]

    def strictest(self, risks: tuple[str, ...]) -> tuple[str, str]:
        """(risk, policy) of the strictest policy among ``risks``: deny > ask > auto."""
        if len(risks) == 1:  # the usual case: one risk class, its policy
            return risks[0], getattr(self.policy, risks[0], "ask")
        ranked = [(_STRICTNESS.get(getattr(self.policy, r, "ask"), 1), r) for r in risks]
        _, risk = max(ranked)
        return risk, getattr(self.policy, risk, "ask")

    def asks(self, req: ApprovalRequest) -> bool:
        """Whether :meth:`decide` would ask a person (and so block until answered): the caller
        then decides in a thread, and other steps go on meanwhile."""
        if self.approve_all or self.yes or self.prompt is None or req.tool in self.always:
            return False
        _, policy = self.strictest(req.risks or (req.risk,))
        return policy == "ask" or (policy == "auto" and req.requires_approval)

    def decide(self, req: ApprovalRequest) -> ApprovalDecision:
        risk, policy = self.strictest(req.risks or (req.risk,))
        if self.approve_all:
            return self._decision(req, "flag", "approved", "--approve-all")
        if policy == "deny":
            return self._decision(req, "policy", "denied",
                                  f"{risk} tools are denied by policy (approval.{risk} = \"deny\")")
        if policy == "auto" and not req.requires_approval:
            return self._decision(req, "policy", "approved")
        if req.tool in self.always:
            return self._decision(req, "user", "approved", "always (this tool, this run)")
        if self.yes:
            return self._decision(req, "flag", "approved", "--yes")
        if self.prompt is None:
            return self._decision(req, "policy", "denied",
                                  f"step {req.step_id} ({req.tool}) needs approval and there is no terminal "
                                  "to ask; re-run with --yes to approve it")
        _ = req.preview  # made now, from the files as they are before the call, for the person asked
        answer = self.prompt(req)
        if isinstance(answer, Feedback):
            return ApprovalDecision(req.step_id, req.tool, self.args_hash(req), req.plan_hash, "user", "denied",
                                    time.time(), "declined with feedback", feedback=answer.text)
        if answer == "always":
            self.always.add(req.tool)
            return self._decision(req, "user", "approved", "always (this tool, this run)")
        if answer == "yes":
            return self._decision(req, "user", "approved")
        if answer == "abort":
            return self._decision(req, "user", "aborted", "aborted by the user")
        return self._decision(req, "user", "denied", "denied by the user")
