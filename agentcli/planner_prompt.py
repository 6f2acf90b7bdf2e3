"""What the planner model is given: the draft JSON Schema, the tool catalogue, a bounded
workspace summary, recalled memory and the rules. See :mod:`agentcli.planner` for the design
of the draft (steps keyed ``s1, s2, ...``, dependencies only on earlier steps).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentcli.config import Config
from agentcli.errors import WorkspaceError
from agentcli.plan import STEP_ID_RE
from agentcli.tools import Tool
from agentcli.tools.paths import WorkspaceWalker

# Bounds keep the grammar small (a local model's decoding slows down with every long string)
# and stop a small model from looping inside a string until max_tokens.
TITLE_MAX = 60
PROMPT_MAX = 400
ARG_STRING_MAX = 200
ARRAY_MAX = 8
#: An llm step's prompt for a hosted planner: room for real instructions (the local grammar keeps PROMPT_MAX).
HOSTED_PROMPT_MAX = 4000
MEMORY_MAX_ITEMS = 5
MEMORY_ITEM_CHARS = 400
CONTEXT_MAX_CHARS = 6000

#: ``recall(task)`` returns remembered snippets relevant to the task (the memory hook).
Recall = Callable[[str], list[str]]
#: ``past_plans(task, accept)`` returns plans of past runs of similar tasks that completed and
#: that ``accept`` takes (:meth:`agentcli.memory.Memory.recall_plans`): the local planner's
#: few-shot examples from memory.
PastPlans = Callable[[str, Callable[[Any], bool]], list[Any]]


# --------------------------------------------------------------------------- the draft schema


def _deref(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    # Tool schemas may use $defs; inlined, a tool's args can sit inside the bigger draft schema.
    if isinstance(node, list):
        return [_deref(x, defs, depth) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if target is None or depth > 8:  # unknown or recursive: accept anything there
            return {}
        return _deref({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs, depth + 1)
    return {k: _deref(v, defs, depth) for k, v in node.items() if k not in ("$defs", "description", "title")}


def _bound(node: Any) -> Any:
    if isinstance(node, list):
        return [_bound(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _bound(v) for k, v in node.items()}
    types = out.get("type")
    types = {types} if isinstance(types, str) else set(types or [])
    if "string" in types and "enum" not in out and "const" not in out:
        out["maxLength"] = min(int(out.get("maxLength", ARG_STRING_MAX)), ARG_STRING_MAX)
    if "array" in types:
        out["maxItems"] = min(int(out.get("maxItems", ARRAY_MAX)), ARRAY_MAX)
    return out


def tool_args_schema(tool: Tool, *, bounded: bool = True) -> dict[str, Any]:
    """A tool's args schema as it appears in the draft: refs inlined, descriptions dropped
    (the prompt's catalogue has them), strings and arrays bounded unless ``bounded`` is False
    (the bounds keep a small local model's grammar finite; a hosted model gets the tool's own)."""
    schema = tool.parameters_schema()
    inlined: dict[str, Any] = _deref(schema, schema.get("$defs", {}))
    return _bound(inlined) if bounded else inlined


def _deps_schema(k: int) -> dict[str, Any]:
    # Step k may only name s1..s(k-1): a self- or forward dependency cannot even be written.
    if k == 1:
        return {"const": []}
    return {"type": "array", "items": {"enum": [f"s{i}" for i in range(1, k)]},
            "maxItems": min(k - 1, ARRAY_MAX)}


def draft_schema(tools: list[Tool], max_steps: int) -> dict[str, Any]:
    """The JSON Schema of the planner's reply (see the module docstring)::

        {"steps": {"s1": {"call": {"tool": "list_files", "args": {...}}, "depends_on": [], "title": "..."},
                   "s2": {"prompt": "...", "depends_on": ["s1"], "title": "..."}}}

    Everything but ``depends_on`` is shared through ``$defs``, so the schema grows with
    tools + steps, not tools x steps.
    """
    defs: dict[str, Any] = {
        "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
        "prompt": {"type": "string", "minLength": 1, "maxLength": PROMPT_MAX},
        "approval": {"type": "boolean"},
    }
    calls: list[dict[str, Any]] = []
    for i, t in enumerate(tools):
        defs[f"args{i}"] = tool_args_schema(t)
        calls.append({
            "type": "object",
            "properties": {"tool": {"const": t.name}, "args": {"$ref": f"#/$defs/args{i}"}},
            "required": ["tool", "args"],
            "additionalProperties": False,
        })
    defs["call"] = {"anyOf": calls}
    heads = ("call", "prompt") if calls else ("prompt",)  # an empty anyOf is no valid grammar
    slots: dict[str, Any] = {}
    for k in range(1, max_steps + 1):
        defs[f"deps{k}"] = _deps_schema(k)
        # The call (or prompt) comes first: the model commits to what the step does before
        # anything else, and the grammar's branches part at the first key (fast decoding).
        slots[f"s{k}"] = {"anyOf": [
            {
                "type": "object",
                "properties": {
                    head: {"$ref": f"#/$defs/{head}"},
                    "depends_on": {"$ref": f"#/$defs/deps{k}"},
                    "title": {"$ref": "#/$defs/title"},
                    "requires_approval": {"$ref": "#/$defs/approval"},
                },
                "required": [head, "depends_on", "title"],
                "additionalProperties": False,
            }
            for head in heads
        ]}
    return {
        "$defs": defs,
        "type": "object",
        "properties": {
            "steps": {"type": "object", "properties": slots, "required": ["s1"], "additionalProperties": False}
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


def hosted_draft_schema(tools: list[Tool], max_steps: int) -> dict[str, Any]:
    """The draft schema for a hosted model: the same draft shape as :func:`draft_schema` (slots
    ``s1..s<max_steps>``, ``s1`` required, a call or a prompt per step, one branch per tool with
    typed args), but every slot refers to one shared ``$defs/step`` and ``depends_on`` is a
    bounded list of step ids, so the schema grows with the tools, not with tools + steps x
    structure (about 4x fewer tokens at 20 steps with the built-in tools). The per-slot
    dependency enums are a grammar aid for the local model; a hosted model's self- and dangling
    dependencies and cycles are caught by :func:`agentcli.planner.interpret_draft` and re-asked.
    As strict as :func:`draft_schema`: every object closed (``additionalProperties: false``),
    the same ``required`` lists; but the args are the tools' own (not cut to the grammar's
    bounds: a hosted model writes a whole file), and a prompt may be longer.
    """
    common: dict[str, Any] = {
        "depends_on": {"type": "array", "items": {"type": "string", "pattern": STEP_ID_RE.pattern},
                       "maxItems": min(max(max_steps - 1, 0), ARRAY_MAX)},
        "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
        "requires_approval": {"type": "boolean"},
    }
    heads: dict[str, Any] = {}
    if tools:  # an empty anyOf is no valid schema
        heads["call"] = {"anyOf": [{
            "type": "object",
            "properties": {"tool": {"const": t.name}, "args": tool_args_schema(t, bounded=False)},
            "required": ["tool", "args"],
            "additionalProperties": False,
        } for t in tools]}
    heads["prompt"] = {"type": "string", "minLength": 1, "maxLength": HOSTED_PROMPT_MAX}
    step = {"anyOf": [{
        "type": "object",
        "properties": {head: sub, **common},
        "required": [head, "depends_on", "title"],
        "additionalProperties": False,
    } for head, sub in heads.items()]}
    slots = {f"s{k}": {"$ref": "#/$defs/step"} for k in range(1, max_steps + 1)}
    return {
        "$defs": {"step": step},
        "type": "object",
        "properties": {
            "steps": {"type": "object", "properties": slots, "required": ["s1"], "additionalProperties": False}
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------- the workspace

_LANGUAGES = {
    ".py": "Python", ".js": "JavaScript", ".jsx": "JavaScript", ".ts": "TypeScript", ".tsx": "TypeScript",
    ".rs": "Rust", ".go": "Go", ".java": "Java", ".kt": "Kotlin", ".rb": "Ruby", ".php": "PHP",
    ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++", ".hpp": "C++", ".cs": "C#", ".swift": "Swift",
    ".sh": "Shell", ".md": "Markdown", ".html": "HTML", ".css": "CSS", ".toml": "TOML",
    ".yaml": "YAML", ".yml": "YAML", ".json": "JSON", ".sql": "SQL",
}
_KEY_FILES = ("README.md", "README.rst", "README", "pyproject.toml", "package.json", "Cargo.toml",
              "go.mod", "setup.py", "requirements.txt", "Makefile")


def _head(path: Path, max_chars: int, max_lines: int) -> str:
    # Only the first few KB are read: a key file may be huge (a generated README).
    with path.open("rb") as f:
        raw = f.read(max_chars * 4)
    lines = raw.decode("utf-8", errors="replace").splitlines()[:max_lines]
    text = "\n".join(line.rstrip() for line in lines)
    return text[:max_chars]


def workspace_summary(
    workspace: Path, data_dir: Path | None = None, *, max_chars: int = 1800, max_files: int = 2000
) -> str:
    """A compact, bounded description of the workspace for the planner: top-level entries,
    file count and languages (from extensions; .gitignored, .git and .venv skipped, at most
    ``max_files`` visited), and the head of up to three key files."""
    walker = WorkspaceWalker(workspace, data_dir)
    root = walker.root
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        raise WorkspaceError(f"cannot list workspace {root}: {e.strerror}") from None
    top = [f"{e.name}/" if e.is_dir() else e.name for e in entries
           if not walker.is_ignored(e.name, is_dir=e.is_dir())]
    shown = ", ".join(top[:40]) + (f", ... ({len(top)} in all)" if len(top) > 40 else "")
    langs: Counter[str] = Counter()
    count = 0
    for _path, rel in walker.iter_files():
        count += 1
        lang = _LANGUAGES.get(os.path.splitext(rel)[1].lower())
        if lang:
            langs[lang] += 1
        if count >= max_files:
            break
    more = "+" if count >= max_files else ""
    lines = [
        f"top level: {shown or '(empty)'}",
        f"files: {count}{more}",
        "languages: " + (", ".join(f"{k} ({v})" for k, v in langs.most_common(6)) or "none detected"),
    ]
    keys = [n for n in _KEY_FILES if (root / n).is_file() and not walker.is_ignored(n, is_dir=False)][:3]
    for name in keys:
        try:
            head = _head(root / name, 300, 12)
        except OSError:
            continue
        lines.append(f"--- {name} (head)\n{head}")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max_chars - 15] + "\n[... cut ...]"


# --------------------------------------------------------------------------- the prompt

_SYSTEM = """You are the planner of a developer agent. Turn the task into a short plan.
Reply with only a JSON object: {"steps": {"s1": {...}, "s2": {...}, ...}}.
Steps are named s1, s2, s3, ... in order. Each step is either
- a tool step: {"call": {"tool": "<tool name>", "args": {...}}, "depends_on": [], "title": "..."}
- or an llm step: {"prompt": "...", "depends_on": [], "title": "..."}, for work whose content
  depends on earlier results (writing code, summarising findings); another model answers it.
To use the output of an earlier step, write {{s1.output}} in args or a prompt, or a path into
JSON output: {{s2.output[0]}}, {{s3.output.matches[1].path}}.
depends_on lists the earlier steps whose output a step uses; it is [] for s1.
Add "requires_approval": true to a step the user should confirm first.
Use only the tools listed, with their exact argument names. Use as few steps as the task needs."""


def tool_catalogue(tools: list[Tool], config: Config) -> str:
    """One entry per tool: name, risk and approval policy, description, args JSON Schema."""
    out = []
    for t in tools:
        policy = getattr(config.approval, t.risk, "ask")
        note = {"auto": "runs without asking", "ask": "needs approval", "deny": "denied: do not use"}[policy]
        schema = json.dumps(t.parameters_schema(), separators=(",", ":"))
        out.append(f"- {t.name} [{t.risk}, {note}]: {' '.join(t.description.split())}\n  args: {schema}")
    return "\n".join(out)


def build_messages(task: str, tools: list[Tool], config: Config, summary: str,
                   memories: list[str], context: str | None = None) -> list[dict[str, Any]]:
    """The planner's request: rules, then task, tools, budgets, workspace, recalled memory
    and (when re-planning) what happened so far."""
    b = config.budget
    budgets = (f"at most {b.max_steps} steps; model spend <= ${b.max_cost_usd:g}; "
               f"<= {b.max_tokens} tokens; <= {b.max_seconds:g} s")
    parts = [f"# Task\n{task}", f"# Tools\n{tool_catalogue(tools, config)}", f"# Budgets\n{budgets}",
             f"# Workspace\n{summary}"]
    if memories:
        parts.append("# Recalled from earlier runs\n" + "\n".join(f"- {m}" for m in memories))
    if context:
        cut = context if len(context) <= CONTEXT_MAX_CHARS else context[:CONTEXT_MAX_CHARS] + "\n[... cut ...]"
        parts.append(f"# Context\n{cut}")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def recall_snippets(recall: Recall | None, task: str) -> list[str]:
    """What the memory hook recalls for ``task``, bounded: at most 5 snippets of 400 chars."""
    if recall is None:
        return []
    out = []
    for item in recall(task)[:MEMORY_MAX_ITEMS]:
        text = " ".join(str(item).split())
        out.append(text if len(text) <= MEMORY_ITEM_CHARS else text[:MEMORY_ITEM_CHARS] + "...")
    return out


# --------------------------------------------------------------------------- small local models

#: Levers of the local-model planner (see DEFAULT_LEVERS). ``AGENTCLI_LOCAL_PLANNER`` names the
#: ones to use (comma-separated; ``none`` = the hosted-model prompt and grammar, as before), for
#: the task-suite benchmark (``python -m bench.tasks --lever ...``). It is not a config key.
LOCAL_LEVERS = ("compact", "examples", "memory", "narrow", "patterns", "choices", "answer", "intent")
LEVERS_ENV = "AGENTCLI_LOCAL_PLANNER"
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


def local_levers(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The local-planner levers in force (see :data:`LOCAL_LEVERS`): unset or ``default`` =
    :data:`DEFAULT_LEVERS`, ``all``, ``none``, or a comma list."""
    raw = (os.environ if environ is None else environ).get(LEVERS_ENV, "").strip()
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


def wants_writes(task: str) -> bool:
    """Whether ``task`` asks for a change: one of :data:`WRITE_WORDS`, as a word, and not phrased
    as a question (see :data:`QUESTION_WORDS`)."""
    words = [w.strip(_EDGE).lower() for w in task.split()]
    if words and words[0] in QUESTION_WORDS and task.rstrip().endswith("?"):
        return False
    return any(w in WRITE_WORDS for w in words)


def without_writes(tools: list[Tool], task: str) -> list[Tool]:
    """``tools`` less the write-risk ones when ``task`` asks for no change (see :data:`WRITE_WORDS`)."""
    if wants_writes(task):
        return tools
    kept = [t for t in tools if t.risk != "write"]
    return kept or tools


def is_local(model: str) -> bool:
    return model.startswith("local/")


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
            for extra in ("extensions", "regex"):
                props.pop(extra, None)
        for arg, values in choices.get(t.name, {}).items():
            if arg in props and values:
                props[arg] = {"enum": values}
