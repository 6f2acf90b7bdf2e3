"""Few-shot plan examples chosen per task by similarity, for small (local) planner models.

A fixed list of examples in the prompt gets copied verbatim by a 135M model; the examples
most similar to the task (cosine of the builtin MiniLM embeddings, or whichever embedder
``memory.embedding_model`` names) show it the right tool *and* phrasing. The library
below covers every built-in tool and the common ways of asking; its vectors are computed
once per process (about 0.2 s with the builtin embedder) and kept.

An example is ``(task, steps)``; a step is ``(tool, args)`` or ``("llm", prompt)``. Step
``k`` of a multi-step example depends on step ``k - 1``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when examples are selected: a hosted run never loads the memory package
    from agentcli.memory.embeddings import Embedder

StepSpec = tuple[str, Any]


@dataclass(frozen=True)
class PlanExample:
    """One (task -> plan) example: from the bundled library, or a past run's plan recalled from
    episodic memory (:meth:`from_episode`; ``source`` is then ``run <id>``)."""

    task: str
    steps: tuple[StepSpec, ...]
    #: Each step's dependencies as step numbers (1-based); None: each step on the one before.
    deps: tuple[tuple[int, ...], ...] | None = None
    #: Each step's title; None: made from the tool and its first argument.
    titles: tuple[str, ...] | None = None
    source: str = "library"

    @classmethod
    def from_episode(cls, task: str, plan_json: str, source: str = "memory") -> PlanExample | None:
        """The example a past run's plan makes (:func:`agentcli.engine.runner.episode_plan`'s JSON),
        or None if it cannot be read. Step ids are renumbered s1..sN in plan order."""
        try:
            data = json.loads(plan_json)
            rows = data["steps"]
            index = {str(r["id"]): k for k, r in enumerate(rows, 1)}
            steps: list[StepSpec] = []
            deps: list[tuple[int, ...]] = []
            titles: list[str] = []
            for r in rows:
                if r.get("kind") == "investigate":
                    return None  # a step kind the small planner's examples cannot show
                if r.get("tool"):
                    steps.append((str(r["tool"]), dict(r.get("args") or {})))
                else:
                    steps.append(("llm", str(r.get("prompt") or "")))
                deps.append(tuple(index[str(d)] for d in r.get("depends_on") or []))
                titles.append(str(r.get("title") or ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if not steps:
            return None
        return cls(task, tuple(steps), tuple(deps), tuple(titles), source)

    @property
    def tools(self) -> set[str]:
        return {name for name, _ in self.steps if name != "llm"}

    @property
    def uses_llm(self) -> bool:
        return any(name == "llm" for name, _ in self.steps)

    def draft(self) -> dict[str, Any]:
        """The example as the planner's draft JSON (see :mod:`agentcli.planning.planner`)."""
        out: dict[str, Any] = {}
        for k, (name, spec) in enumerate(self.steps, 1):
            chain = (k - 1,) if k > 1 else ()
            deps = [f"s{d}" for d in (self.deps[k - 1] if self.deps is not None else chain)]
            given = self.titles[k - 1] if self.titles is not None else ""
            if name == "llm":
                out[f"s{k}"] = {"prompt": spec, "depends_on": deps, "title": given or "Answer from the results"}
            else:
                out[f"s{k}"] = {"call": {"tool": name, "args": spec}, "depends_on": deps,
                                "title": given or _title(name, spec)}
        return {"steps": out}

    def draft_json(self) -> str:
        return json.dumps(self.draft(), ensure_ascii=False, separators=(", ", ": "))


def _title(tool: str, args: dict[str, Any]) -> str:
    first = next((str(v) for v in args.values()), "")
    return f"{tool} {first}".strip()[:60]


def _ex(task: str, *steps: StepSpec) -> PlanExample:
    return PlanExample(task, tuple(steps))


#: The bundled library. Identifiers and file names here are deliberately generic
#: (and distinct from the task suite in bench/tasks/).
EXAMPLES: tuple[PlanExample, ...] = (
    # list_files
    _ex("list the python files", ("list_files", {"pattern": "**/*.py"})),
    _ex("show all javascript files", ("list_files", {"pattern": "**/*.js"})),
    _ex("which typescript files are there?", ("list_files", {"pattern": "**/*.ts"})),
    _ex("list the text files", ("list_files", {"pattern": "**/*.txt"})),
    _ex("find all the csv files", ("list_files", {"pattern": "**/*.csv"})),
    _ex("what files are in the lib directory?", ("list_files", {"pattern": "lib/**/*"})),
    _ex("list the files under examples", ("list_files", {"pattern": "examples/**/*"})),
    _ex("show the html files in the templates folder", ("list_files", {"pattern": "templates/**/*.html"})),
    _ex("how many rust files are there?", ("list_files", {"pattern": "**/*.rs"})),
    _ex("list every file in the project", ("list_files", {"pattern": "**/*"})),
    _ex("list the ini files", ("list_files", {"pattern": "**/*.ini"})),
    _ex("show the xml files", ("list_files", {"pattern": "**/*.xml"})),
    _ex("list the batch scripts", ("list_files", {"pattern": "**/*.bat"})),
    # search_code
    _ex("where is the class Tokenizer defined?", ("search_code", {"query": "class Tokenizer"})),
    _ex("find the definition of the class HttpClient", ("search_code", {"query": "class HttpClient"})),
    _ex("where is the function load_data defined?", ("search_code", {"query": "def load_data"})),
    _ex("which file defines render_page?", ("search_code", {"query": "def render_page"})),
    _ex("where is the method send_email?", ("search_code", {"query": "def send_email"})),
    _ex("where is MAX_RETRIES defined?", ("search_code", {"query": "MAX_RETRIES ="})),
    _ex("find the constant DEFAULT_PORT", ("search_code", {"query": "DEFAULT_PORT ="})),
    _ex("find the FIXME comments", ("search_code", {"query": "FIXME", "max_results": 20})),
    _ex("search for the string localhost", ("search_code", {"query": "localhost", "max_results": 20})),
    _ex("which files import requests?", ("search_code", {"query": "import requests", "max_results": 20})),
    _ex("which modules import os?", ("search_code", {"query": "import os", "max_results": 20})),
    _ex("how many HACK comments are there?", ("search_code", {"query": "HACK", "max_results": 20})),
    _ex("how many times is print( used?", ("search_code", {"query": "print(", "max_results": 20})),
    _ex("count the calls to open(", ("search_code", {"query": "open(", "max_results": 20})),
    _ex("find where the function validate is used", ("search_code", {"query": "validate(", "max_results": 20})),
    # read_file
    _ex("show me the README", ("read_file", {"path": "README.md"})),
    _ex("read setup.py", ("read_file", {"path": "setup.py"})),
    _ex("what is in package.json?", ("read_file", {"path": "package.json"})),
    _ex("show the contents of app/main.js", ("read_file", {"path": "app/main.js"})),
    _ex("what does the file guide/intro.md say?", ("read_file", {"path": "guide/intro.md"})),
    _ex("what is the port in deploy/server.yaml?", ("read_file", {"path": "deploy/server.yaml"})),
    _ex("what is the name in package.json?", ("read_file", {"path": "package.json"})),
    _ex("what is the name of the project in Cargo.toml?", ("read_file", {"path": "Cargo.toml"})),
    _ex("show lines 10 to 20 of lib/core.py", ("read_file", {"path": "lib/core.py", "start_line": 10,
                                                            "end_line": 20})),
    _ex("print the first 5 lines of notes.txt", ("read_file", {"path": "notes.txt", "start_line": 1,
                                                              "end_line": 5})),
    # git
    _ex("what is the git status?", ("git_status", {})),
    _ex("which files have I modified?", ("git_status", {})),
    _ex("what files did I change?", ("git_status", {})),
    _ex("are there uncommitted changes?", ("git_status", {})),
    _ex("show the diff", ("git_diff", {})),
    _ex("what did I change in lib/core.py?", ("git_diff", {"path": "lib/core.py"})),
    _ex("show the staged changes", ("git_diff", {"staged": True})),
    # run_shell
    _ex("run the tests", ("run_shell", {"command": "python -m pytest -q"})),
    _ex("run the command `npm --version`", ("run_shell", {"command": "npm --version"})),
    _ex("execute make lint", ("run_shell", {"command": "make lint"})),
    _ex("run the script tools/check.sh", ("run_shell", {"command": "sh tools/check.sh"})),
    _ex("how many lines does app.py have?", ("run_shell", {"command": "wc -l app.py"})),
    _ex("what is the current branch?", ("run_shell", {"command": "git branch --show-current"})),
    # write_file and edit_file
    _ex("create a file hello.txt containing hi there", ("write_file", {"path": "hello.txt",
                                                                      "content": "hi there\n"})),
    _ex("write a file todo.md with the text - buy milk", ("write_file", {"path": "todo.md",
                                                                        "content": "- buy milk\n"})),
    _ex('replace "port = 80" with "port = 8080" in server.cfg',
        ("edit_file", {"path": "server.cfg", "search": "port = 80", "replace": "port = 8080"})),
    _ex("in lib/util.py change timeout=5 to timeout=30",
        ("edit_file", {"path": "lib/util.py", "search": "timeout=5", "replace": "timeout=30"})),
    _ex("rename the function get_user to fetch_user in api/users.py",
        ("edit_file", {"path": "api/users.py", "search": "def get_user", "replace": "def fetch_user"})),
    _ex("set the version in setup.cfg from 1.0.0 to 1.0.1",
        ("edit_file", {"path": "setup.cfg", "search": "1.0.0", "replace": "1.0.1"})),
    # two steps
    _ex("summarise the README", ("read_file", {"path": "README.md"}),
        ("llm", "Summarise in three sentences: {{s1.output}}")),
    _ex("explain what lib/core.py does", ("read_file", {"path": "lib/core.py"}),
        ("llm", "Explain briefly what this code does: {{s1.output}}")),
)

_cache_lock = threading.Lock()
_vectors: dict[str, Any] = {}


def _example_vectors(embedder: Embedder, examples: tuple[PlanExample, ...]) -> Any:
    key = f"{embedder.name}:{id(examples)}:{len(examples)}"
    with _cache_lock:
        cached = _vectors.get(key)
    if cached is None:
        cached = embedder.embed([e.task for e in examples])
        with _cache_lock:
            _vectors[key] = cached
    return cached


def select_examples(task: str, k: int = 3, *, embedder: Embedder | None = None,
                    embedding_model: str = "builtin",
                    examples: tuple[PlanExample, ...] = EXAMPLES,
                    recalled: list[PlanExample] | None = None) -> list[PlanExample]:
    """The ``k`` examples most similar to ``task``, most similar *last* (nearest the task in
    the prompt, where a small model weighs it most). Ties keep library order.

    ``recalled`` (past runs' plans from episodic memory) compete with the library on the same
    cosine; they come first among equals (they were written for this workspace, and worked)."""
    pool = [*(recalled or []), *examples]
    if not pool or k <= 0:
        return []
    from agentcli.memory.embeddings import get_embedder

    emb = embedder or get_embedder(embedding_model)
    import numpy as np

    parts = []
    if recalled:
        parts.append(np.asarray(emb.embed([e.task for e in recalled]), dtype=np.float32))
    if examples:
        parts.append(np.asarray(_example_vectors(emb, examples), dtype=np.float32))
    mat = np.concatenate(parts, axis=0)
    q = np.asarray(emb.embed([task]), dtype=np.float32)[0]
    norms = np.linalg.norm(mat, axis=1) * (float(np.linalg.norm(q)) or 1.0)
    scores = (mat @ q) / np.where(norms == 0, 1.0, norms)
    order = sorted(range(len(pool)), key=lambda i: (-float(scores[i]), i))[:k]
    return [pool[i] for i in reversed(order)]
