"""The error hierarchy of agentcli, and the exit code each error maps to.

Every error a user can cause or meet is an :class:`AgentError`. The CLI catches
``AgentError`` at one place and prints ``error: <message>`` on one line, then
exits with the error's ``exit_code``. Anything else escaping is a bug.

::

    AgentError                      exit 1
    ├── UsageError                  exit 2   bad flag or argument
    ├── ConfigError                 exit 2   broken config file, env var or flag value
    ├── WorkspaceError              exit 2   a path outside the workspace root, a data dir we cannot write
    ├── LLMError                    exit 1   a model call that failed for good
    │   ├── LLMTransientError                429, 5xx, timeout, connection error (retried first)
    │   ├── LLMFatalError                    auth, bad request, context too long (not retried)
    │   │   └── ModelSetupError      exit 2   a missing key, a refused connection, an unknown model,
    │   │                                     an authentication failure, a 404: fix the set-up
    │   ├── StructuredOutputError            still invalid after the bounded re-asks
    │   ├── OutputTruncated                  the answer was cut by the output limit, even at the largest
    │   └── ModelRequestsBlocked             a real provider call under tests without opt-in
    ├── BudgetExceeded              exit 3   a budget would be crossed
    ├── ApprovalDenied              exit 4   denied or aborted by the user or the policy
    ├── DependencyMissing           exit 5   the verify command's environment lacks a dependency
    └── Interrupted                 exit 130 Ctrl-C
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (see the README)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    BUDGET = 3
    DENIED = 4
    #: The verify command failed for a dependency its environment lacks (not the change's fault).
    ENVIRONMENT = 5
    INTERRUPTED = 130


class AgentError(Exception):
    """Base class: a clear, one-line, user-facing failure."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def one_line(self) -> str:
        """The message folded onto a single line, as the CLI prints it."""
        return " ".join(self.message.split())


class UsageError(AgentError):
    exit_code = ExitCode.USAGE


class ConfigError(AgentError):
    exit_code = ExitCode.USAGE


class WorkspaceError(AgentError):
    exit_code = ExitCode.USAGE


class LLMError(AgentError):
    """A model call failed for good. ``error_type`` is a short stable name used in logs."""

    error_type = "llm_error"

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class LLMTransientError(LLMError):
    error_type = "transient"


class LLMFatalError(LLMError):
    error_type = "fatal"


class ModelSetupError(LLMFatalError):
    """The model cannot be reached as configured: a missing key, a refused connection, an unknown
    model name, an authentication failure, a 404. Never retried; the message names the cause (the
    variable to set, ``host:port``, the names that resemble the model's). Exit 2: the set-up, not
    the task, is what to fix."""

    exit_code = ExitCode.USAGE
    error_type = "setup"


class StructuredOutputError(LLMError):
    error_type = "invalid_output"


class OutputTruncated(LLMError):
    """The model's answer was cut by the output limit (``finish_reason: length``), also when asked
    again with the largest limit the model and the budget allow. A cut answer is never used."""

    error_type = "output_truncated"


class ModelRequestsBlocked(LLMError):
    error_type = "blocked"


class BudgetExceeded(AgentError):
    """A budget would be crossed; ``which`` is steps, cost, tokens, seconds or replans."""

    exit_code = ExitCode.BUDGET

    def __init__(self, which: str, message: str) -> None:
        super().__init__(message)
        self.which = which

    @property
    def reason(self) -> str:
        return f"budget_exceeded:{self.which}"


class ApprovalDenied(AgentError):
    exit_code = ExitCode.DENIED


class Interrupted(AgentError):
    exit_code = ExitCode.INTERRUPTED


class PlanningError(AgentError):
    """No valid plan: the planner's output still failed validation after the bounded re-asks,
    or a plan file is unreadable or invalid. The message lists what was wrong."""


class DependencyMissing(AgentError):
    """The verify command failed because its environment lacks a dependency (a Python module, a
    Node package, a command) that is not the run's own work: no new plan can install it, so the
    run stops (reason ``missing_dependency``) instead of re-planning."""

    exit_code = ExitCode.ENVIRONMENT
