"""Layered, validated configuration.

Layers, lowest to highest precedence::

    built-in defaults
    < user config      $XDG_CONFIG_HOME/agentcli/config.toml (or ~/.config/...)
    < project config   --config FILE, else ./agent.toml in the workspace
    < environment      AGENT_<KEY>, nested keys joined by "__" (AGENT_BUDGET__MAX_COST_USD)
    < CLI flags

Every layer is validated on its own first, so an unknown key or a wrong type is
reported against the file (or variable, or flag) it came from. The merged result
remembers the source of every leaf value, which ``agent config show`` prints.

Provider API keys are *not* configuration: they are read by the providers from
their usual environment variables (OPENAI_API_KEY, ...) and never stored here.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentcli.errors import ConfigError
from agentcli.redact import is_secret_field, is_secret_name, register_environ, register_secret, short_secret_sources
from agentcli.untrusted import InputError, check_depth, check_text, read_text_file

#: Config is a few tables deep; anything much deeper is not a config file.
CONFIG_MAX_DEPTH = 32

ENV_PREFIX = "AGENT_"
PROJECT_CONFIG_NAME = "agent.toml"
Policy = Literal["auto", "ask", "deny"]
RiskClass = Literal["read", "write", "exec", "network"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RolesConfig(_Section):
    """Per-role model overrides; an empty string means "use the top-level model"."""

    planner: str = Field("", description="Model that writes plans.")
    executor: str = Field("", description="Model for `llm` steps and for correcting invalid tool args.")
    reviewer: str = Field("", description="Model that judges the results: complete, continue or replan.")


class LLMConfig(_Section):
    """How model calls are made: timeouts, retries, structured-output re-asks, decoding."""

    timeout_seconds: float = Field(120.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of a transient error (429, 5xx, timeout).")
    backoff_base_seconds: float = Field(
        1.0, ge=0, description="First retry delay; doubles each time, with jitter."
    )
    backoff_max_seconds: float = Field(30.0, ge=0, description="Cap on one retry delay (Retry-After too).")
    max_reasks: int = Field(2, ge=0, le=10, description="Re-asks when structured output fails validation.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature; 0 for reproducible runs.")
    seed: int = Field(0, description="Sampling seed, where the provider supports one.")
    transport: Literal["auto", "litellm"] = Field(
        "auto", description="How `openai/NAME` models on an OpenAI-compatible server (`api_base`) are reached: "
        "`auto` sends the chat-completions request over plain HTTP without importing litellm (a hosted run's "
        "fixed cost falls from ~5 s to ~0.5 s CPU); `litellm` sends it through litellm like every other provider.")
    max_output_tokens: int = Field(
        0, ge=0, description="Cap on tokens generated per call, for every role. 0: sized per role (planner, "
        "step, reviewer) from the model's own maximum, within the budget; a cut answer is asked for again "
        "once with the model's maximum.")


class BudgetConfig(_Section):
    """Hard limits on every run. All finite by default: no run is unbounded."""

    # Bounded: the hosted planner's schema has a slot per step (an unbounded value once grew one
    # process to 23 GB); agentcli.cli.commands.common.MAX_STEPS is the same number.
    max_steps: int = Field(20, gt=0, le=1000, description="Plan steps executed per run (retries not counted).")
    max_cost_usd: float = Field(1.0, ge=0, description="Total model spend per run, in USD.")
    max_tokens: int = Field(200_000, gt=0, description="Total input+output tokens per run.")
    max_seconds: float = Field(900.0, gt=0, description="Wall time per run.")
    max_replans: int = Field(2, ge=0, description="How many times a run may re-plan.")
    allow_unknown_price: bool = Field(
        True, description="Allow calls to a model whose price is unknown (a model on your own server): they count "
        "at $0 against the cost budget, or at the price its [models.\"NAME\"] table sets, and the run says so "
        "(a warning, and the totals). false refuses them (the run fails as budget_exceeded:cost)."
    )


class ApprovalConfig(_Section):
    """Policy per risk class: auto (run), ask (prompt; deny without a TTY) or deny."""

    read: Policy = Field("auto", description="Reading files, listing, searching, git status/diff.")
    write: Policy = Field("ask", description="Creating, overwriting or editing files.")
    exec: Policy = Field("ask", description="Running shell commands and exec-class MCP tools.")
    network: Policy = Field("ask", description="Tools that reach the network.")


class ToolsConfig(_Section):
    """Built-in tool limits."""

    default_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of a tool that sets none.")
    output_limit_chars: int = Field(20_000, gt=0, description="Tool output is truncated past this.")
    max_file_bytes: int = Field(2_000_000, gt=0, description="Larger files are not read whole.")
    search_extensions: list[str] = Field(
        default_factory=lambda: [
            ".py", ".md", ".txt", ".toml", ".json", ".yaml", ".yml", ".cfg", ".ini",
            ".js", ".ts", ".rs", ".go", ".sh", ".html", ".css",
        ],
        description="Not used any more: search_code searches every text file that .gitignore does not exclude "
        "(its `glob` argument narrows it). Kept so that older config files and run records still load.",
    )
    plugins: bool = Field(True, description="Load third-party tools from the `agentcli.tools` entry points.")
    shell_env_allow: list[str] = Field(
        default_factory=list, description="Environment variables run_shell, git commands and hooks may see, besides "
        "PATH, HOME, LANG, LC_*, TERM, TZ, USER, LOGNAME, SHELL and TMPDIR (names, or patterns like `PYTHON*`). "
        "Everything else, credentials above all, is withheld."
    )


SandboxMode = Literal["workspace-write", "read-only", "off"]


class SandboxConfig(_Section):
    """The OS sandbox around the processes agentcli starts (run_shell, MCP servers); Linux, bubblewrap."""

    mode: SandboxMode = Field(
        "workspace-write", description="workspace-write: write only the workspace and a private /tmp; "
        "read-only: write only the private /tmp; off: no sandbox (the only way to run commands where "
        "no sandbox is available, e.g. macOS)."
    )
    network: bool = Field(
        False, description="Give every sandboxed command the network. Off: only a run_shell call asking "
        "for `network` (which needs the `network` approval too) gets it."
    )
    max_processes: int = Field(
        512, ge=0, le=1_000_000, description="Processes and threads one command may have at once (a fork bomb "
        "stops there): a pids cgroup when agentcli runs as root and one is writable, else RLIMIT_NPROC in the "
        "command's user namespace (root is exempt from it). 0: no limit.")
    tmp_size_mb: int = Field(
        1024, ge=0, le=1_048_576, description="Size of the private /tmp (a tmpfs, so it is memory) in MiB. "
        "0: the kernel's default (half the RAM).")
    max_file_size_mb: int = Field(
        1024, ge=0, le=1_048_576, description="Largest file one command may write, in MiB (RLIMIT_FSIZE: a "
        "write past it fails; it bounds each file, not the sum of all files). 0: no limit.")
    unix_sockets: bool = Field(
        False, description="Let commands create unix sockets. Off (the default): socket(AF_UNIX) fails with "
        "EPERM (a seccomp filter), so no host socket (docker, databases, ssh/gpg agents) is reachable; "
        "socketpair() and pipes still work. Servers on unix sockets and Python's forkserver need it on.")
    writable_paths: list[str] = Field(
        default_factory=list, description="Host paths outside the workspace that commands may write, e.g. "
        "`~/.cargo/registry` or `~/.m2/repository` (package homes stay read-only otherwise; caches are "
        "private). Paths that do not exist are skipped.")
    read_paths: list[str] = Field(
        default_factory=list, description="Paths under /tmp that commands may read (the private /tmp hides "
        "the host's). The agent's own interpreter, the virtualenv and the PATH entries under /tmp are "
        "added by themselves.")


class CheckpointsConfig(_Section):
    """Snapshots of the workspace around every step that may change it, for `agent undo`."""

    enabled: bool = Field(
        True, description="Checkpoint the workspace (in a shadow git repository in the data dir) before the "
        "first write/exec step of a run and after each; files over tools.max_file_bytes are skipped."
    )
    max_files: int = Field(
        50_000, ge=0, le=100_000_000,
        description="A run's checkpoint that would read more files than this (the first one in a workspace "
        "reads every file) is skipped with a warning, and that run cannot be undone; 0: no limit. Undo's own "
        "checkpoints are never skipped."
    )


class McpServerConfig(_Section):
    """One MCP server, started over stdio (`command`) or reached over Streamable HTTP (`url`);
    its tools appear as `name.tool`."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]+$", description="Prefix of the server's tools.")
    command: str = Field("", description="Executable to start (stdio); empty for a `url` server.")
    url: str = Field("", description="Streamable HTTP endpoint (http://... or https://...) instead of a command.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers of a `url` server. `${VAR}` is replaced by the "
        "environment variable VAR; a credential header (Authorization, *token*, *key*...) must come from one.")
    args: list[str] = Field(default_factory=list, description="Arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    risk: RiskClass = Field("exec", description="Risk class of every tool of this server.")
    timeout_seconds: float = Field(30.0, gt=0, description="Start-up and per-call timeout.")
    sandbox: bool = Field(
        True, description="Run the server inside the OS sandbox ([sandbox] mode; network only for risk "
        "\"network\"). false: unconfined, for a server that must write elsewhere (e.g. npx's cache)."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError(f"MCP server {self.name!r}: give either command (stdio) or url (Streamable HTTP)")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"MCP server {self.name!r}: url must start with http:// or https://")
        for header, value in self.headers.items():
            if (is_secret_name(header) or is_secret_field(header)) and "${" not in value:
                raise ValueError(f"MCP server {self.name!r}: header {header!r} is a credential: write it as "
                                 "${VAR} and set the environment variable VAR (never the secret in a file)")
        return self


class McpConfig(_Section):
    servers: list[McpServerConfig] = Field(default_factory=list, description="MCP servers to start.")


class ExecutorConfig(_Section):
    max_parallel: int = Field(4, ge=1, le=64, description="Independent ready steps run at once.")
    max_arg_corrections: int = Field(2, ge=0, description="Times the model may correct invalid tool args.")


class PlannerConfig(_Section):
    """What a hosted planner is shown of the workspace."""

    context_tokens: int = Field(
        2000, ge=0, le=100_000, description="Token budget of the repository map (file tree and an outline "
        "of the files the task names) in a hosted planner's prompt; 0 turns the map off.")
    survey_calls: int = Field(
        6, ge=0, le=50, description="Read-only tool calls (read_file, list_files, search_code, git status...) a "
        "hosted planner may make to look at the workspace before it writes the plan; each is validated and "
        "runs as a read step does. 0: it plans from the repository map alone.")


class SessionConfig(_Section):
    """Sessions (`agent chat`, `agent run --continue`): what a later turn's planner is told of the
    earlier turns."""

    ledger_tokens: int = Field(
        4000, ge=200, le=200_000, description="Token budget of the ledger of earlier turns in a later turn's "
        "planner request. Past it, the oldest turns fold, in a fixed order, to shorter typed forms: first "
        "without the plan and the diff (task, feedback, files changed, answer), then to the user's own words "
        "and the files changed (the newest earlier turn last); a turn is left out only when all of them are "
        "in their shortest form.")
    output_chars: int = Field(
        240, ge=0, le=20_000, description="Characters of each step's output (its head and tail) a turn's "
        "full form in the ledger keeps.")
    diff_chars: int = Field(
        1500, ge=0, le=100_000, description="Characters of a turn's diff (head and tail) its full form in the "
        "ledger keeps.")


class InvestigateConfig(_Section):
    """Investigate steps: the executor's model answers a question with read tools and read-only commands
    (the workspace mounted read-only in the sandbox), within these limits and the run's budgets."""

    enabled: bool = Field(True, description="A hosted planner may plan investigate steps (it is taught them "
                          "and its draft schema offers them). Off: plans have tool and llm steps only.")
    max_calls: int = Field(12, ge=1, le=200, description="Tool calls per investigate step; when they are used "
                           "up, the model is asked once more, with no tools, for its findings.")
    max_tokens: int = Field(60_000, ge=1000, description="Model tokens (input + output) per investigate step, "
                            "checked before each of its model calls; reached, the step fails with what it found.")
    max_seconds: float = Field(300.0, gt=0, le=7200, description="Wall time per investigate step, checked "
                               "before each of its model calls; reached, the step fails with what it found.")
    output_chars: int = Field(8000, ge=500, le=100_000, description="Characters of one tool result the model "
                              "is shown (a command's output: its head and tail).")
    before_replan: bool = Field(False, description="After a failed step or verify command, investigate the "
                                "failure (the reason as the question) before asking for a new plan; the "
                                "findings go into the re-planner's context.")


class VerifyConfig(_Section):
    """The check that runs before a run that changed files can end COMPLETE."""

    command: str = Field(
        "", description="Shell command run in the workspace after the reviewer judges a run complete "
        "if the run changed files (e.g. `pytest -q`); a non-zero exit is fed to the re-planner. Empty: "
        "the project instructions' command if they state one, else no check.")
    timeout_seconds: float = Field(600.0, gt=0, le=7200, description="Seconds before the command is killed.")


class ReviewConfig(_Section):
    """How the end of a run is judged."""

    mode: Literal["auto", "always"] = Field(
        "auto", description="auto: a run whose outcome the facts decide ends COMPLETE without a reviewer "
        "call (every step a tool step that succeeded at its first try, no re-plan, the task asks for a "
        "change and no answer, files changed and the verify command passed), with a summary of the "
        "steps and files as its answer; anything else is reviewed. always: every run is reviewed by "
        "the reviewer model.")


class MemoryConfig(_Section):
    """Episodic and semantic memory (LanceDB)."""

    enabled: bool = Field(True, description="Recall into planning and record episodes.")
    uri: str = Field("", description="LanceDB URI; empty means <data_dir>/memory. s3://bucket/path shares it "
                     "(credentials and endpoint from the AWS_* environment variables).")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="Object-store options for a remote uri (region, endpoint, allow_http, "
        "timeout...); credentials are refused here: they come from the environment."
    )
    embedding_model: str = Field(
        "builtin", description="Embedder of episodes (past runs' tasks) and working memory: `builtin` (offline "
        "MiniLM) or any litellm embedding model."
    )
    chunk_embedding_model: str = Field(
        "auto", description="Embedder of ingested files and notes: `builtin-static` (offline, distilled from the "
        "builtin MiniLM, ~40x faster to ingest), `builtin` (MiniLM), a litellm embedding model, or `auto`: "
        "builtin-static when embedding_model is builtin, else embedding_model's."
    )
    ingest_manifest: bool = Field(
        True, description="Keep a per-machine manifest of ingested files (size, mtime, hash) in the data dir, "
        "so re-adding unchanged files is a stat each and leaves the store untouched; false: every "
        "`agent memory add` reads and hashes each file and asks the store."
    )
    episodic_k: int = Field(3, ge=0, le=1000, description="Episodes recalled per query.")
    episodic_threshold: float = Field(0.75, ge=0, le=1, description="Minimum score of a recalled episode.")
    semantic_k: int = Field(5, ge=0, le=1000, description="Knowledge chunks recalled per query.")
    semantic_threshold: float = Field(0.70, ge=0, le=1, description="Minimum score of a recalled chunk.")
    past_plans: int = Field(
        3, ge=0, le=10, description="Plans of past completed runs of similar tasks that compete with the "
        "bundled examples in a local planner model's prompt (0: none)."
    )
    past_plan_threshold: float = Field(
        0.85, ge=0, le=1, description="Minimum similarity of a past run's task for its plan to be an example."
    )


class ModelOverride(_Section):
    """Overrides of what a model can do (its profile, see agentcli.models.profile); unset keys keep
    what the model's backend reports."""

    structured_output: Literal["json_schema", "json_object", "prompted"] | None = Field(
        None, description="How JSON is asked for: json_schema (response_format), json_object (JSON mode "
        "plus the schema in the prompt) or prompted (the schema in the prompt only)."
    )
    uses_api_base: bool | None = Field(None, description="Whether `api_base` applies to this model.")
    pricing: Literal["metered", "free", "unknown"] | None = Field(
        None, description="Whether the model's price is known (metered), zero (free) or unknown."
    )
    planner_style: Literal["hosted", "small"] | None = Field(
        None, description="hosted: the full planner prompt and a reviewer; small: the compact planner "
        "tuned for small local models, answers grounded in step outputs."
    )
    grounded_answers: bool | None = Field(
        None, description="Build the final answer from the step outputs instead of the reviewer's."
    )
    context_tokens: int | None = Field(None, gt=0, description="Input context window in tokens.")
    max_output_tokens: int | None = Field(None, gt=0, description="Most tokens the model generates per reply.")
    cache_breakpoints: bool | None = Field(
        None, description="Mark the end of each request's stable prefix (cache_control), for a provider that "
        "caches only marked prefixes (Anthropic); read from the model's info when unset.")
    streaming: bool | None = Field(
        None, description="Whether the model's answers are streamed (shown live on a terminal as they are "
        "generated); false for a server that cannot stream.")
    input_cost_per_mtok: float | None = Field(
        None, ge=0, description="Price in USD per million input tokens, for a model whose price litellm does not "
        "know (a model on your own server); the cost budget counts its calls at it.")
    output_cost_per_mtok: float | None = Field(
        None, ge=0, description="Price in USD per million output tokens (see input_cost_per_mtok).")


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("warning", description="stderr log level.")
    json_stderr: bool = Field(False, description="Also write LLM-call records to stderr as JSON.")


class TelemetryConfig(_Section):
    """OpenTelemetry traces of runs (needs the `otel` extra). Off by default, and then free."""

    exporter: Literal["none", "otlp", "console"] = Field(
        "none", description="Where spans go: none (off, the SDK is not even imported), otlp (OTLP/HTTP) "
        "or console (JSON on stderr)."
    )
    endpoint: str = Field(
        "", description="OTLP/HTTP endpoint, e.g. http://localhost:4318 (/v1/traces is appended unless "
        "given); empty: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else http://localhost:4318."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra OTLP request headers; empty: OTEL_EXPORTER_OTLP_(TRACES_)HEADERS."
    )
    capture_content: bool = Field(
        False, description="Put prompts, completions, tool arguments and outputs in spans (redacted)."
    )
    service_name: str = Field("agentcli", description="service.name of the traces (OTEL_SERVICE_NAME wins).")


class InstructionsConfig(_Section):
    """Project instructions (AGENTS.md) read into the planner's and the executor's prompts."""

    enabled: bool = Field(True, description="Read project instructions (`agent run --no-project-instructions` "
                          "turns them off for one run).")
    file_names: list[str] = Field(
        default_factory=lambda: ["AGENTS.md"], description="File names looked for in the workspace and each "
        "directory above it up to the repository root (the first that exists in a directory is read).")
    max_tokens: int = Field(2000, ge=0, description="Bound on the instructions' tokens; past it the farthest "
                            "files are cut first.")


class HookConfig(_Section):
    """One hook: a shell command run at a point of every run, given the event as JSON on stdin."""

    event: Literal["pre_tool", "post_tool", "run_finished"] = Field(
        ..., description="When it runs: before a tool call (exit 2 blocks it, stderr the reason), after one, "
        "or when the run has finished.")
    command: str = Field(..., min_length=1, description="Command for /bin/sh -c, run in the workspace.")
    tools: list[str] = Field(default_factory=list, description="Only for these tools (names or globs such as "
                             "`fs.*`); empty: every tool. Ignored for run_finished.")
    timeout_seconds: float = Field(30.0, gt=0, le=600, description="The hook is killed past this (a warning).")
    sandbox: bool = Field(True, description="Run the hook inside the OS sandbox ([sandbox] mode and network). "
                          "false: unconfined, for a hook that must reach the network or write elsewhere.")
    env: list[str] = Field(default_factory=list, description="Environment variables this hook may see besides "
                           "the base allow-list and `tools.shell_env_allow` (names, or patterns like `SLACK_*`): "
                           "e.g. the token of a notifier. Everything else is withheld.")
    fail_closed: bool = Field(True, description="pre_tool only: a hook that gave no verdict (it could not be run, "
                              "e.g. no OS sandbox here, or it timed out) blocks the call, as a guard must. false: "
                              "a warning, and the call goes ahead.")


class Config(_Section):
    """The whole effective configuration. Every field has a default."""

    model: str = Field("local/smollm2", description="Default model for every role (litellm name).")
    api_base: str = Field("", description="Override the provider endpoint (OpenAI-compatible servers).")
    fallbacks: list[str] = Field(default_factory=list, description="Models tried in order if the model fails.")
    data_dir: str = Field(".agent", description="Runs, memory and logs; relative to the workspace root.")
    roles: RolesConfig = Field(default_factory=RolesConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    mcp: McpConfig = Field(default_factory=McpConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    checkpoints: CheckpointsConfig = Field(default_factory=CheckpointsConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    investigate: InvestigateConfig = Field(default_factory=InvestigateConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    hooks: list[HookConfig] = Field(default_factory=list, description="Commands run at pre_tool, post_tool "
                                    "and run_finished ([[hooks]]).")
    models: dict[str, ModelOverride] = Field(
        default_factory=dict, description='Per-model overrides of what a model can do: [models."NAME"].'
    )

    def model_for(self, role: Literal["planner", "executor", "reviewer"]) -> str:
        """The model a role uses: its override, else the default model."""
        return getattr(self.roles, role) or self.model


@dataclass
class Settings:
    """The effective config plus where it lives and where each value came from."""

    config: Config
    workspace: Path
    sources: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    workspace_origin: str = "given"
    """How the workspace was chosen: ``given`` (--workspace, AGENT_WORKSPACE), ``cwd`` (the current
    directory, outside any git repository or holding its own agent.toml) or ``git root`` (the root
    of the repository the current directory is in)."""
    start_dir: Path | None = None
    """The directory the command started in, when the workspace is the repository root above it."""

    @property
    def instructions_dir(self) -> Path:
        """Where project instructions (AGENTS.md) are read down to, from the repository root: the
        directory the command started in when the workspace is the repository around it (its
        nearer AGENTS.md files apply there), else the workspace."""
        return self.start_dir or self.workspace

    @property
    def data_dir(self) -> Path:
        p = Path(self.config.data_dir).expanduser()
        return p if p.is_absolute() else (self.workspace / p)

    def ensure_data_dir(self) -> Path:
        """The data dir, created if missing. A data dir created here gets a ``.gitignore`` of ``*``,
        so runs, memory, checkpoints and crash reports never show in ``git status`` (nor get
        committed by ``git add -A``); one the user made or emptied of it is left as it is."""
        d = self.data_dir
        created = not d.exists()
        d.mkdir(parents=True, exist_ok=True)
        if created:
            (d / ".gitignore").write_text("# agentcli's data dir: runs, memory, checkpoints, logs.\n*\n",
                                          encoding="utf-8")
        return d

    def source_of(self, dotted: str) -> str:
        return self.sources.get(dotted, "default")


def default_workspace(cwd: Path) -> tuple[Path, str]:
    """The workspace when none is given: the root of the git repository ``cwd`` is in (so runs,
    memory and AGENTS.md are the project's wherever in it a command starts), unless ``cwd``
    holds its own agent.toml; outside any repository, ``cwd``. With its origin (see
    :attr:`Settings.workspace_origin`)."""
    try:
        here = cwd.resolve()
    except (OSError, RuntimeError):
        return cwd, "cwd"
    if (here / PROJECT_CONFIG_NAME).is_file():
        return here, "cwd"
    for d in (here, *here.parents):
        try:
            if (d / ".git").exists():
                return d, "git root"
        except OSError:
            break
    return here, "cwd"


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "agentcli" / "config.toml"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), dict):
            merged[k] = _deep_merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def _describe_error(err: Mapping[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    got = err.get("input")
    got_s = "" if isinstance(got, Mapping) else f" (got {json.dumps(got, default=str)})"
    return f"key '{loc}': {err['msg'][:1].lower() + err['msg'][1:]}{got_s}"


def _validate_layer(layer: Mapping[str, Any], origin: str) -> None:
    try:
        Config.model_validate(layer)
    except ValidationError as e:
        first = e.errors()[0]
        more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{origin}: {_describe_error(first)}{more}") from None


#: A config file larger than this is refused unread (the example config is ~8 KB).
MAX_CONFIG_BYTES = 1024 * 1024


def _read_toml(path: Path) -> dict[str, Any]:
    # A config file is input like any other: bounded, strict UTF-8, no unbounded recursion.
    try:
        text = read_text_file(path, str(path), max_bytes=MAX_CONFIG_BYTES)
        data = tomllib.loads(text)
        check_depth(data, str(path), max_depth=CONFIG_MAX_DEPTH)
    except InputError as e:
        raise ConfigError(e.message) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply (more than {CONFIG_MAX_DEPTH} levels)") from None
    return data


def _env_value(raw: str, name: str = "") -> Any:
    # Lists and tables can be given as JSON; scalars stay strings and pydantic coerces them.
    s = raw.strip()
    if s[:1] in "[{":
        try:
            return json.loads(s)
        except json.JSONDecodeError:
            return raw
        except RecursionError:
            raise ConfigError(f"environment variable {name}: nested too deeply") from None
    return raw


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """AGENT_MODEL -> model, AGENT_BUDGET__MAX_COST_USD -> budget.max_cost_usd."""
    layer: dict[str, Any] = {}
    skip = {"AGENT_ALLOW_MODEL_REQUESTS", "AGENT_CONFIG", "AGENT_WORKSPACE", "AGENT_TEST_SCRIPT",
            "AGENT_TEST_SCRIPT_SHARED", "AGENT_LOCAL_THREADS"}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in skip:
            continue
        dotted = name[len(ENV_PREFIX):].lower().replace("__", ".")
        if dotted:
            try:
                check_text(raw, f"environment variable {name}")
                value = _env_value(raw, name)
                check_depth(value, f"environment variable {name}", max_depth=CONFIG_MAX_DEPTH)
            except InputError as e:
                raise ConfigError(e.message) from None
            _set_dotted(layer, dotted, value)
    return layer


def load_settings(
    *,
    workspace: Path | None = None,
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    use_user_config: bool = True,
) -> Settings:
    """Build the effective settings from every layer.

    ``overrides`` are CLI flag values keyed by dotted config key, e.g.
    ``{"model": "openai/gpt-4o-mini", "budget.max_steps": 5}``; ``None`` values are ignored.
    """
    environ = os.environ if environ is None else environ
    ws_raw: Path | str | None = workspace or environ.get("AGENT_WORKSPACE")
    ws_origin = "given"
    if not ws_raw:
        ws_raw, ws_origin = default_workspace(Path.cwd())
    try:
        ws = Path(ws_raw).expanduser().resolve()
        if not ws.is_dir():
            raise ConfigError(f"workspace '{ws}' is not a directory")
    except (OSError, ValueError, RuntimeError) as e:  # a name too long, a NUL byte, a symlink loop
        raise ConfigError(f"workspace '{str(ws_raw)[:200]}' cannot be used: {e}") from None

    layers: list[tuple[str, dict[str, Any]]] = []
    files: list[Path] = []
    user = user_config_path()
    if use_user_config and user.is_file():
        layers.append((str(user), _read_toml(user)))
        files.append(user)
    if config_file is None and environ.get("AGENT_CONFIG"):
        config_file = Path(environ["AGENT_CONFIG"])
    if config_file is not None:
        cf = config_file.expanduser()
        try:
            found = cf.is_file()
        except (OSError, ValueError):
            found = False
        if not found:
            raise ConfigError(f"config file '{str(cf)[:200]}' not found")
        layers.append((str(cf), _read_toml(cf)))
        files.append(cf)
    elif (ws / PROJECT_CONFIG_NAME).is_file():
        pf = ws / PROJECT_CONFIG_NAME
        layers.append((str(pf), _read_toml(pf)))
        files.append(pf)

    env = env_layer(environ)
    if env:
        layers.append(("environment", env))
    flags: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(flags, dotted, value)
    if flags:
        layers.append(("flags", flags))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for origin, layer in layers:
        if origin == "environment":
            _validate_env(layer)
        else:
            _validate_layer(layer, "command-line flag" if origin == "flags" else origin)
        merged = _deep_merge(merged, layer)
        for key in _flatten(layer):
            sources[key] = _source_label(origin, key)
    config = Config.model_validate(merged)
    start = Path.cwd().resolve() if ws_origin == "git root" else None
    settings = Settings(config=config, workspace=ws, sources=sources, files=files, workspace_origin=ws_origin,
                        start_dir=start if start is not None and start != ws else None)
    _check_data_dir(settings)
    register_config_secrets(config, environ)
    return settings


def configured_secrets(config: Config) -> dict[str, str]:
    """Every secret value the config holds, by key: each telemetry header (whatever its name),
    each secret-looking MCP server variable and each literal MCP header."""
    out = {f"telemetry.headers.{name}": value for name, value in config.telemetry.headers.items()}
    for server in config.mcp.servers:
        out.update({f"mcp.servers.{server.name}.env.{name}": value for name, value in server.env.items()
                    if is_secret_name(name)})
        out.update({f"mcp.servers.{server.name}.headers.{name}": value for name, value in server.headers.items()
                    if "${" not in value})
    return out


def short_secrets(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Where the secrets too short to be masked come from (config keys, variable names)."""
    return short_secret_sources(environ, configured_secrets(settings.config))


def register_config_secrets(config: Config, environ: Mapping[str, str] | None = None) -> None:
    """Every value that came from a secret source is masked from now on, wherever agentcli writes
    or shows it: the config's (:func:`configured_secrets`) and the secret-looking variables of
    ``environ``."""
    for value in configured_secrets(config).values():
        register_secret(value)
    if environ is not None and environ is not os.environ:
        register_environ(environ)


def _check_data_dir(settings: Settings) -> None:
    """A data dir the OS cannot even look up (a name too long, a NUL byte) is a config error
    here, not an OSError in whichever command first touches it."""
    try:
        os.stat(settings.data_dir)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        raise ConfigError(f"data_dir '{settings.config.data_dir}': a parent of it is a file") from None
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e)
        raise ConfigError(f"data_dir '{settings.config.data_dir[:200]}': {reason}") from None


def _env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.upper().replace(".", "__")


def _source_label(origin: str, key: str) -> str:
    if origin == "environment":
        return f"env:{_env_name(key)}"
    if origin == "flags":
        return "flag"
    return f"file:{origin}"


def _validate_env(layer: Mapping[str, Any]) -> None:
    try:
        Config.model_validate(layer)
    except ValidationError as e:
        first = e.errors()[0]
        var = _env_name(".".join(str(p) for p in first["loc"]))
        raise ConfigError(f"environment variable {var}: {_describe_error(first)}") from None


def effective_items(settings: Settings) -> list[tuple[str, Any, str]]:
    """(dotted key, value, source) for every leaf of the effective config, sorted by key."""
    dumped = settings.config.model_dump(mode="json")
    items: list[tuple[str, Any, str]] = []
    for key, value in _flatten(dumped).items():
        items.append((key, value, _leaf_source(settings, key)))
    return items


def _leaf_source(settings: Settings, key: str) -> str:
    # A list of tables (mcp.servers) is sourced as a whole, from its top key.
    probe = key
    while probe:
        if probe in settings.sources:
            return settings.sources[probe]
        probe = probe.rpartition(".")[0]
    return "default"
