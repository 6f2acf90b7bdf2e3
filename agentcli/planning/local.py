"""The planner for a small local model (the embedded ``local/smollm2``, 135M parameters).

A hosted model plans from the general prompt and schema (:mod:`agentcli.planning.prompt`). A
model this small, given the same, writes valid JSON under the grammar but rarely the right plan:
it picks a wrong tool, writes prose into a glob, invents a path. What helps it is a set of
*levers*, each one switchable (:data:`LOCAL_LEVERS`), so that each is
measured on its own and in combination by the task suite (bench/tasks: ``agent run`` on a copy of
bench/tasks/fixture, checked by effect or answer, with held-out tasks; results in bench/RESULTS.md):

* ``compact``: a short prompt, a one-line catalogue entry per tool (:func:`build_local_messages`);
* ``examples``: few-shot (task -> draft) examples from the bundled library, chosen by similarity,
  most similar last (:func:`choose_examples`, :mod:`agentcli.planning.examples`);
* ``memory``: past runs' plans for similar tasks compete with the bundled examples
  (:func:`recalled_examples`);
* ``narrow``: the grammar cut to the nearest example's tools and step count;
* ``patterns``: globs and paths bounded by regex patterns (:func:`local_draft_schema`);
* ``choices``: enums of values grounded in the task and the workspace (:func:`task_choices`,
  :func:`apply_choices`): a small model picks among them far better than it writes them;
* ``answer``: when every step succeeded, the answer is the tool outputs themselves, with no
  review call (:mod:`agentcli.engine.runner`, :func:`agentcli.engine.reviewer.grounded_answer`);
* ``intent``: no write tools in the grammar for a task that asks for no change
  (:func:`without_writes`).

:data:`DEFAULT_LEVERS` is the best measured set; :func:`local_request` builds the schema and
messages of one planning request from the levers in force, and :func:`agentcli.planning.planner.make_plan`
sends it (the validation, re-asks and estimates are the planner's own, as for any model).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentcli.config import Config
from agentcli.planning.examples import PlanExample, select_examples
from agentcli.planning.prompt import PastPlans, build_messages, draft_schema
from agentcli.tools import Tool

# --------------------------------------------------------------------------- small local models

#: Levers of the local-model planner (see DEFAULT_LEVERS), given to
#: :class:`~agentcli.planning.strategy.SmallModelPlanner`. The task-suite benchmark
#: (``python -m bench.tasks --lever ...``) measures sets of them against each other; they are not config.
LOCAL_LEVERS = ("compact", "examples", "memory", "narrow", "patterns", "choices", "answer", "intent")
#: Examples put in a local model's prompt; their tools make the narrowed grammar.
LOCAL_EXAMPLES = 3
LOCAL_TITLE_MAX = 40

# Patterns for arg strings a small model gets wrong in characteristic ways: spaces and prose in
# globs and paths. Anchored, in the regex subset local_grammar's converter handles.
_ARG_PATTERNS = {
    "pattern": "^[A-Za-z0-9_.*/{},-]+$",
    "path": "^[A-Za-z0-9_][A-Za-z0-9_./-]*$",
    "cwd": "^[A-Za-z0-9_.][A-Za-z0-9_./-]*$",
}


#: The default: ``narrow`` (the grammar cut to the nearest example's tools) is left out. On the task
#: suite it gained one task on the tasks the example library was tuned on and lost two of ten
#: held-out tasks, where the nearest example was the wrong tool (bench/RESULTS.md). ``intent`` too:
#: fewer tools in the grammar changed what the 135M model wrote for unrelated reads (36/44 against
#: 38/44, first plan valid 42/44 against 44/44); approvals keep writes in check instead.
DEFAULT_LEVERS = frozenset(LOCAL_LEVERS) - {"narrow", "intent"}


def parse_levers(text: str) -> frozenset[str]:
    """A lever set by name (see :data:`LOCAL_LEVERS`): empty or ``default`` = :data:`DEFAULT_LEVERS`,
    ``all``, ``none``, or a comma list (unknown names are ignored)."""
    raw = text.strip()
    if not raw or raw == "default":
        return DEFAULT_LEVERS
    if raw == "all":
        return frozenset(LOCAL_LEVERS)
    if raw == "none":
        return frozenset()
    return frozenset(x.strip() for x in raw.split(",") if x.strip() in LOCAL_LEVERS)


#: Words that ask for a change to the workspace. A task with none of them is a question: the
#: ``intent`` lever then leaves the write tools out of a small model's grammar, which otherwise
#: reaches for write_file while re-planning a lookup it got wrong. Measured, and off by default
#: (see DEFAULT_LEVERS).
_WRITE_WORDS = """add append bump change create delete disable edit enable fix generate implement increase decrease
insert make modify move put refactor remove rename replace rewrite save set toggle uncomment update write"""
WRITE_WORDS = frozenset(_WRITE_WORDS.split())


#: A task that opens with one of these and ends with "?" asks about something ("which files did I
#: modify?", "how do I add a flag?"): no change, whatever its verbs.
QUESTION_WORDS = frozenset(["which", "what", "where", "who", "when", "why", "how", "did", "does", "do", "is", "are",
                            "was", "were"])


#: A write word right after one of these is a verb ("find the cause and fix it", "I want you to
#: add", "please rename"); elsewhere it may be a name ("find where add is defined").
_VERB_BEFORE = frozenset(["and", "then", "to", "please", "also", "can", "could", "would", "should", "must", "i",
                          "we", "you", "let's", "lets"])
_PATH_RE = re.compile(r"\w[./]\w")


def wants_writes(task: str) -> bool:
    """Whether ``task`` asks for a change: one of :data:`WRITE_WORDS` used as a verb (the first
    word; after "and", "to", "please"...; after a clause's punctuation; after a path, as in "in
    config.yaml change ...") and not phrased as a question (see :data:`QUESTION_WORDS`)."""
    raw = task.split()
    words = [w.strip(_EDGE).lower() for w in raw]
    if words and words[0] in QUESTION_WORDS and task.rstrip().endswith("?"):
        return False
    for i, w in enumerate(words):
        if w not in WRITE_WORDS:
            continue
        prev = raw[i - 1] if i else ""
        if i == 0 or words[i - 1] in _VERB_BEFORE or prev[-1:] in ":,;.!" or _PATH_RE.search(prev):
            return True
    return False


def without_writes(tools: list[Tool], task: str) -> list[Tool]:
    """``tools`` less the write-risk ones when ``task`` asks for no change (see :data:`WRITE_WORDS`)."""
    if wants_writes(task):
        return tools
    kept = [t for t in tools if t.risk != "write"]
    return kept or tools


def _with_patterns(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    props = node.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            if name in _ARG_PATTERNS and isinstance(sub, dict):
                types = sub.get("type")
                if types == "string" or (isinstance(types, list) and "string" in types):
                    sub["pattern"] = _ARG_PATTERNS[name]
                for alt in sub.get("anyOf", []) if isinstance(sub.get("anyOf"), list) else []:
                    if isinstance(alt, dict) and alt.get("type") == "string":
                        alt["pattern"] = _ARG_PATTERNS[name]
                if name == "pattern" and "pattern" not in node.get("required", []):
                    # list_files' glob has a default; a small model then writes "args": {}.
                    node["required"] = [*node.get("required", []), "pattern"]
    return node


def local_draft_schema(tools: list[Tool], max_steps: int, *, allow_prompt: bool,
                       patterns: bool) -> dict[str, Any]:
    """:func:`draft_schema` for a small local model: optionally only tool steps, shorter titles,
    and ``pattern``-bounded globs and paths."""
    schema = draft_schema(tools, max_steps)
    defs = schema["$defs"]
    defs["title"]["maxLength"] = LOCAL_TITLE_MAX
    if patterns:
        for i in range(len(tools)):
            _with_patterns(defs[f"args{i}"])
    if not allow_prompt and tools:
        for k in range(1, max_steps + 1):
            slot = schema["properties"]["steps"]["properties"][f"s{k}"]
            slot["anyOf"] = [b for b in slot["anyOf"] if "call" in b["properties"]]
        defs.pop("prompt", None)
    return schema


def _signature(tool: Tool) -> str:
    schema = tool.parameters_schema()
    required = set(schema.get("required", []))
    names = [n if n in required else f"{n}?" for n in schema.get("properties", {})]
    return f"{tool.name}({', '.join(names)})"


def compact_catalogue(tools: list[Tool]) -> str:
    """One short line per tool: signature and the first sentence of its description."""
    out = []
    for t in tools:
        first = " ".join(t.description.split()).split(". ")[0].rstrip(".")
        out.append(f"- {_signature(t)}: {first[:110]}")
    return "\n".join(out)


_LOCAL_SYSTEM = """You turn a developer task into a JSON plan of tool calls.
Tools:
{tools}
Copy names, paths and text from the task exactly. Reply with JSON only."""


def build_local_messages(task: str, tools: list[Tool], examples: list[Any],
                         context: str | None = None) -> list[dict[str, Any]]:
    """A short prompt for a small local model: a compact catalogue, then each example as a
    user/assistant exchange (most similar last), then the task. About 300-500 tokens."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": _LOCAL_SYSTEM.format(tools=compact_catalogue(tools))}]
    for ex in examples:
        msgs.append({"role": "user", "content": ex.task})
        msgs.append({"role": "assistant", "content": ex.draft_json()})
    text = task
    if context:
        cut = context if len(context) <= 1500 else context[:1500] + " [...]"
        text = f"{task}\n(Earlier attempt: {cut})"
    msgs.append({"role": "user", "content": text})
    return msgs


# --------------------------------------------------------------------------- task-grounded choices

#: Words for kinds of file -> extensions (a small model cannot map "markdown" to ".md" itself).
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "python": (".py",), "py": (".py",), "markdown": (".md",), "md": (".md",), "yaml": (".yaml", ".yml"),
    "yml": (".yaml", ".yml"), "json": (".json",), "toml": (".toml",), "shell": (".sh",), "sh": (".sh",),
    "bash": (".sh",), "text": (".txt",), "txt": (".txt",), "javascript": (".js",), "js": (".js",),
    "typescript": (".ts", ".tsx"), "ts": (".ts",), "rust": (".rs",), "go": (".go",), "html": (".html",),
    "css": (".css",), "csv": (".csv",), "ini": (".ini",), "cfg": (".cfg",), "java": (".java",),
    "c": (".c", ".h"), "cpp": (".cpp", ".hpp"), "ruby": (".rb",), "config": (".toml", ".yaml", ".yml", ".json",
                                                                              ".ini", ".cfg"),
}
_STOP_WORDS = """a an the of in on to for from with and or is are was be do does did what which where who how
many much show list find me my all any every file files there this that it its i you we please tell give
see get let lines line contains containing defined define defines definition used use uses called say says
change set into by at as are directory folder under class def function method import constant variable
comment comments defines"""
_STOP = frozenset(_STOP_WORDS.split())
_EDGE = "?!.,;:'\"`()[]"
_FILE_LIKE = re.compile(r"^[A-Za-z0-9_][\w./-]*\.[A-Za-z0-9]+$")
_BACKTICKS = re.compile(r"`([^`]+)`")
MAX_CHOICES = 40  # every enum value is a grammar alternative: more slow decoding down


def _words(task: str) -> list[str]:
    out = []
    for raw in task.split():
        w = raw.strip(_EDGE) if not raw.endswith(("()", "(")) else raw.strip("?!,;:'\"`")
        if w:
            out.append(w)
    return out


def _identifiers(words: list[str]) -> list[str]:
    return [w for w in words if len(w) >= 3 and w.lower() not in _STOP and "/" not in w
            and w.replace("_", "").replace(".", "").isalnum()]


def _ngrams(words: list[str], n_max: int = 4) -> list[str]:
    out = []
    for n in range(1, n_max + 1):
        for i in range(len(words) - n + 1):
            gram = words[i:i + n]
            if n == 1 and gram[0].lower() in _STOP:
                continue
            out.append(" ".join(gram))
    return out


def _dedupe(items: list[str], min_len: int = 1, cap: int = MAX_CHOICES) -> list[str]:
    return [x for x in dict.fromkeys(items) if len(x) >= min_len][:cap]


def task_choices(task: str, files: list[str],
                 read: Callable[[str], str] | None = None) -> dict[str, dict[str, list[str]]]:
    """Per tool and argument, the values the grammar allows for this task: globs built from
    the workspace's extensions and directories (only those the task names, when it names
    any), files the task mentions, and search queries and edit strings made of the task's
    own words. A small model picks among them far better than it writes them."""
    words = _words(task)
    low = {w.lower() for w in words}
    exts = sorted({os.path.splitext(f)[1] for f in files if os.path.splitext(f)[1]})
    dirs = sorted({f.rsplit("/", i)[0] for f in files for i in range(1, f.count("/") + 1)})[:60]
    wanted = {e for w in low for e in KIND_WORDS.get(w, ()) if e in exts}
    wanted |= {w if w.startswith(".") else f".{w}" for w in low if (w if w.startswith(".") else f".{w}") in exts}
    named_dirs = [d for d in dirs if d.lower() in low or d.lower().rstrip("/") in {w.rstrip("/") for w in low}]
    use_exts = sorted(wanted) or exts
    globs: list[str] = []
    for d in named_dirs:
        globs += [f"{d}/**/*"] + [f"{d}/**/*{e}" for e in use_exts if wanted]
    if not named_dirs or not globs:
        globs += [f"**/*{e}" for e in use_exts]
    if not wanted:
        globs += ["**/*"] + [f"{d}/**/*" for d in dirs if d not in named_dirs]
    mentioned = [f for f in files if f in task or os.path.basename(f) in low or f in words]
    idents = _identifiers(words)
    queries = []
    for w in idents:
        # The forms a name of that shape is defined with: CONSTANT =, class CamelCase, def snake_case.
        if w.isupper():
            queries += [w, f"{w} ="]
        elif w[:1].isupper():
            queries += [w, f"class {w}"]
        else:
            queries += [w, f"def {w}", f"import {w}", f"{w}("]
    queries += [g for g in _ngrams(words, 2) if " " in g]
    raw = [w.strip("`'\"") for w in task.strip().rstrip("?!.").split()]
    grams = _ngrams(raw) + _ngrams(words) + [f"def {w}" for w in idents] + [f"{w}(" for w in idents]
    out: dict[str, dict[str, list[str]]] = {
        "list_files": {"pattern": _dedupe(globs, cap=16)},
        "search_code": {"query": _dedupe(queries, 3)},
        "edit_file": {"search": _dedupe(grams), "replace": _dedupe(grams)},
        "write_file": {"content": _dedupe(grams)},
    }
    if mentioned:
        for tool in ("read_file", "edit_file", "git_diff"):
            out.setdefault(tool, {})["path"] = _dedupe(mentioned)
        if read is not None:
            # An edit replaces text that is in the file with text that is not.
            text = "\n".join(_safe_read(read, f) for f in mentioned[:3])
            present = [g for g in grams if g in text]
            absent = [g for g in grams if g not in text]
            out["edit_file"]["search"] = _dedupe(present or grams)
            out["edit_file"]["replace"] = _dedupe(absent or grams)
    new_files = [w for w in words if _FILE_LIKE.match(w) and w not in files]
    if new_files:
        out["write_file"]["path"] = _dedupe(new_files)
    quoted = _BACKTICKS.findall(task)
    runs = bool(low & {"run", "execute", "start"})
    commands = quoted + [c for f in mentioned for c in (
        (f"sh {f}",) if f.endswith(".sh") else (f"python {f}",) if f.endswith(".py") and runs else ())
        + (f"wc -l {f}",)]
    if commands:
        out["run_shell"] = {"command": _dedupe(commands)}
    return {t: {a: v for a, v in args.items() if v} for t, args in out.items()}


def _safe_read(read: Callable[[str], str], rel: str) -> str:
    try:
        return read(rel)[:65536]
    except (OSError, UnicodeDecodeError):
        return ""


def apply_choices(schema: dict[str, Any], tools: list[Tool], choices: dict[str, dict[str, list[str]]]) -> None:
    """Put :func:`task_choices` into a draft schema as enums (in place)."""
    defs = schema["$defs"]
    for i, t in enumerate(tools):
        props = defs.get(f"args{i}", {}).get("properties", {})
        if t.name == "search_code":  # optional filters a small model fills with noise
            for extra in ("glob", "regex"):
                props.pop(extra, None)
        for arg, values in choices.get(t.name, {}).items():
            if arg in props and values:
                props[arg] = {"enum": values}


# --------------------------------------------------------------------------- the request


def _example_embedder(config: Config) -> str:
    # The remote embedders cost a network call per plan; the examples need only the builtin one.
    from agentcli.memory.embeddings import is_offline_embedder

    name = config.memory.embedding_model
    return name if is_offline_embedder(name) else "builtin"


def _workspace_files(workspace: Path, data_dir: Path | None, limit: int = 2000) -> list[str]:
    from agentcli.tools.paths import WorkspaceWalker

    out = []
    for _path, rel in WorkspaceWalker(workspace, data_dir).iter_files():
        out.append(rel)
        if len(out) >= limit:
            break
    return out


def _same_task(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def recalled_examples(task: str, past_plans: PastPlans | None, tools: list[Tool],
                      agree_with: set[str] | None = None) -> list[PlanExample]:
    """Past runs' plans for tasks like ``task``, as examples: only those whose tools still exist
    and, unless it is the very same task again, use the same tools as ``agree_with`` (the nearest
    bundled example's). Embedding similarity is mostly shared words: "set the version in
    pyproject.toml ..." sits close to "what is the version in pyproject.toml?", and a small model
    copies the nearest example's tool, so a past *read* plan must not steer an *edit* task
    (measured on the task suite, bench/RESULTS.md). The library settles which tools; a past plan
    adds this workspace's paths, globs and shapes.

    Memory that cannot be read (an embedder mismatch, a broken store) means no examples from it:
    planning goes on with the bundled library."""
    if past_plans is None:
        return []
    names = {t.name for t in tools}

    def example(p: Any) -> PlanExample | None:
        return PlanExample.from_episode(p.task, p.plan, source=f"run {p.run_id}")

    def usable(p: Any) -> bool:
        ex = example(p)
        return ex is not None and ex.tools <= names and (
            agree_with is None or ex.tools == agree_with or _same_task(ex.task, task))

    try:
        found = past_plans(task, usable)
    except Exception:
        return []
    return [ex for ex in map(example, found) if ex is not None]


def choose_examples(task: str, tools: list[Tool], config: Config, *, memory: bool,
                    past_plans: PastPlans | None = None) -> list[PlanExample]:
    """The local planner's few-shot examples, most similar last: the bundled library's nearest,
    and with ``memory``, past runs' plans competing with them (:func:`recalled_examples`).
    No embedder: no examples (planning goes on without them)."""
    embedder = _example_embedder(config)
    try:
        library = select_examples(task, LOCAL_EXAMPLES, embedding_model=embedder)
        if not memory or past_plans is None:
            return library
        recalled = recalled_examples(task, past_plans, tools, library[-1].tools if library else None)
        if not recalled:
            return library
        return select_examples(task, LOCAL_EXAMPLES, embedding_model=embedder, recalled=recalled)
    except Exception:
        return []


def local_request(task: str, tools: list[Tool], config: Config, levers: frozenset[str],
                  context: str | None, workspace: Path | None = None,
                  data_dir: Path | None = None,
                  past_plans: PastPlans | None = None) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The schema and messages for a small local planner model, per the levers in force:
    ``examples`` (few-shot chosen by similarity), ``memory`` (past runs' plans for similar
    tasks compete with the bundled examples), ``narrow`` (only the most similar example's
    tools, as many steps as it has at most, llm steps only if it has one), ``patterns``
    (bounded globs and paths), ``choices`` (enums of values grounded in the task and the
    workspace, :func:`task_choices`), ``compact`` (a short prompt), ``intent`` (no write tools
    for a task that asks for no change, :func:`without_writes`). ``(None, None)``: the
    default request."""
    examples: list[PlanExample] = []
    if "examples" in levers or "narrow" in levers:
        examples = choose_examples(task, tools, config, memory="memory" in levers, past_plans=past_plans)
    shown = examples if "examples" in levers else []
    grammar_tools, max_steps, allow_prompt = tools, config.budget.max_steps, True
    if "intent" in levers:
        grammar_tools = without_writes(tools, task)
    if "narrow" in levers and examples:
        # The most similar example's tools only: measured on the task suite, the nearest example's
        # tool was right for 32 of 34 tasks, and a 135M model given a choice of tools often picks wrong.
        used = examples[-1].tools
        grammar_tools = [t for t in grammar_tools if t.name in used] or grammar_tools
        max_steps = min(max_steps, len(examples[-1].steps))  # as many steps as the most similar one
        allow_prompt = examples[-1].uses_llm
    if "compact" not in levers and "narrow" not in levers and "patterns" not in levers and not shown:
        return None, None
    schema = local_draft_schema(grammar_tools, max_steps, allow_prompt=allow_prompt,
                                patterns="patterns" in levers)
    if "choices" in levers and workspace is not None:
        root = workspace

        def read(rel: str) -> str:
            return (root / rel).read_text(encoding="utf-8", errors="replace")

        apply_choices(schema, grammar_tools, task_choices(task, _workspace_files(workspace, data_dir), read))
    if "compact" in levers:
        messages = build_local_messages(task, grammar_tools, shown, context)
    else:
        messages = build_messages(task, tools, config, "", [], context)
        for ex in reversed(shown):
            messages.insert(1, {"role": "assistant", "content": ex.draft_json()})
            messages.insert(1, {"role": "user", "content": ex.task})
    return schema, messages
