"""A map of the repository for a hosted planner: the file tree and the outlines of the files that
matter to the task, ranked and bounded by a token budget (``planner.context_tokens``).

The design follows Aider's repo map. Files are outlined with tree-sitter
(:mod:`agentcli.planning.outline`: classes, functions, methods, types with their signatures and
line numbers, and the functions a long function defines, indented under it), ranked, and as many
outlines as fit the budget are shown, best first (a file short of room drops a long function's
inner functions before its own definitions). A file ranks for being named by the task (its path
or its file name), for path parts the task (or recalled memory) uses, for defining an identifier
the task names (``parseKeys``, ``slugify_cli``), for being a dependency or a user (a caller, a
test) of a file the task names, and for being used by other files: the references across files
are the imports of every source file, resolved to workspace files (Python modules,
JavaScript/TypeScript relative paths, Go packages, Rust modules, Java classes), and a file many
others import ranks high, as in Aider's map.

A test file's list of tests says little the planner needs beyond how many there are and where:
in a test file (:func:`_is_test_file`: under a ``test``/``tests``/``__tests__``/``spec`` folder,
or named ``test_*.py``, ``*_test.py``, ``*_test.go``, ``*.test.js``, ``*.spec.ts``, ``*Test.java``
and the like), each run of three or more consecutive tests (as the outliner marks them: Python's
``test*`` functions and ``Test*`` classes' ``test*`` methods, Go's ``Test*``/``Benchmark*``,
Rust's ``#[test]`` functions, JUnit's ``@Test`` methods, JavaScript's ``test...`` functions and
members) is one line: the first and last test's lines, the count and a few names
(``   12-761 49 tests: test_no_match, test_nothing, ... test_parser_format``). Everything else in
the file (fixtures, helpers, classes, constants) is shown as it is, and so is a test whose name
the task uses. The room saved goes to the next files' outlines.

The cost is bounded for a large repository: ranking needs only each file's head (its imports),
and files are outlined in rank order until the budget is full, so a map parses the few files it
shows, not the repository. Both the head's imports and the outlines persist in
``<data_dir>/cache/repomap.json`` keyed by path, size and mtime (:class:`MapCache`), so a map of
an unchanged workspace reads no file at all. The map is a function of the files and the task
alone: a cold map and a warm one are the same text.

The walk is the workspace walker's: ``.git``, ``.venv``, the data dir and whatever ``.gitignore``
and ``.git/info/exclude`` ignore are never shown. At most 5,000 files are walked; files over
512 KB and minified ones are listed, not outlined.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcli.models import tokens
from agentcli.planning.outline import (
    HEAD_BYTES,
    LANGUAGES,
    OUTLINER_VERSION,
    Outline,
    Symbol,
    head_imports,
    language_of,
    outline_source,
)
from agentcli.tools.paths import WorkspaceWalker

__all__ = ["CACHE_SCHEMA_VERSION", "MapCache", "Outline", "repo_map"]

#: Files visited at most (a huge monorepo is mapped from its first files in walk order).
MAX_FILES = 5000
#: Files larger than this are listed but not parsed.
MAX_PARSE_BYTES = 512_000
#: Files outlined that show nothing (no definitions) before the map stops parsing.
MAX_EMPTY_OUTLINES = 100
#: The most a file's use by other files adds to its rank (a path part the task names adds 8).
CENTRALITY_MAX = 10.0
#: Share of the budget the file tree may take; the outlines get the rest (and what the tree leaves).
TREE_SHARE = 0.35
TOP_FILES_WITH_CONSTANTS = 2
#: The version of the persisted cache's layout (2: a symbol says whether it is a test).
CACHE_SCHEMA_VERSION = 2
#: Consecutive tests of a test file shown as one line when there are at least this many (two
#: tests' lines cost about what their summary does).
TEST_RUN_MIN = 3
#: The names a test summary shows: the first ones, then "...", then the last.
TEST_RUN_NAMES = 2
CACHE_FILE = Path("cache") / "repomap.json"

_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATHISH_RE = re.compile(r"[\w./-]+\.[A-Za-z0-9]+")
# Identifiers a task names as code: snake_case, camelCase, `name(`, or the last part of a.b.c.
_CODE_WORD_RE = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*(?:\s*\()?")
_STOP_WORDS = """a an and are as at be by can do does for from how i in into is it its make me my
not of on or so that the then this to use using was what when where which who why will with you your
add fix file files code function functions class test tests new change update write read show all
each every should would could there their them they it's"""
_STOP = frozenset(_STOP_WORDS.split())
# Path parts of generated or vendored code: listed, ranked last.
_GENERATED = frozenset({"dist", "build", "vendor", "vendored", "node_modules", "third_party", "__generated__",
                        "generated", "out", "target", "coverage"})
_MINIFIED_LINE = 1000


# --------------------------------------------------------------------------- the persisted cache


@dataclass
class _Entry:
    """What the map knows of one source file, valid while its size and mtime are unchanged."""

    size: int
    mtime_ns: int
    lang: str
    imports: list[str]
    #: Why the file is not outlined ("" when it is outlined, or may be).
    skip: str = ""
    outline: Outline | None = None
    #: The workspace files its imports resolve to, each with its share of the use (several files
    #: may answer one import); valid while the set of source files is the same.
    uses: dict[str, float] | None = None
    _symbols: list[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"size": self.size, "mtime_ns": self.mtime_ns, "lang": self.lang,
                             "imports": self.imports}
        if self.skip:
            d["skip"] = self.skip
        if self.outline is not None:
            d["symbols"] = [s.to_list() for s in self.outline.symbols]
        elif self._symbols is not None:
            d["symbols"] = self._symbols
        if self.uses is not None:
            d["uses"] = self.uses
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], *, same_files: bool) -> _Entry:
        # Taken as orjson decoded it (the file is the map's own, and its schema_version was checked):
        # converting every field of thousands of entries would cost a warm map most of its time.
        e = cls(d["size"], d["mtime_ns"], d["lang"], d["imports"], d.get("skip", ""), None,
                d.get("uses") if same_files else None)
        e._symbols = d.get("symbols")
        return e

    def get_outline(self) -> Outline | None:
        """The outline, if the file was outlined (decoded from the cache on first use)."""
        if self.outline is None and self._symbols is not None:
            self.outline = Outline([Symbol.from_list(v) for v in self._symbols])
            self._symbols = None
        return self.outline


def _grammar_versions() -> str:
    from importlib import metadata

    out = []
    for name in ("tree-sitter", "tree-sitter-python", "tree-sitter-javascript", "tree-sitter-typescript",
                 "tree-sitter-go", "tree-sitter-rust", "tree-sitter-java"):
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=none")
    return ",".join(out)


class MapCache:
    """The map's knowledge of each source file (its head's imports, its outline once parsed) in
    ``<data_dir>/cache/repomap.json``, keyed by workspace path, size and mtime. A file of another
    ``schema_version``, outliner version or grammar versions is ignored (and rewritten); one that
    cannot be read or written only costs a cold map. Entries of files no longer walked are
    dropped when it is saved."""

    def __init__(self, path: Path | None, sources: list[str]) -> None:
        self.path = path
        self.entries: dict[str, _Entry] = {}
        self.dirty = False
        self._versions = ""
        # Resolved imports hold while the set of source files is the one they were resolved in.
        self.fileset = hashlib.sha1("\n".join(sources).encode()).hexdigest()
        if path is None or not path.is_file():
            return
        import orjson

        try:
            data = orjson.loads(path.read_bytes())
            if (data.get("schema_version") != CACHE_SCHEMA_VERSION or data.get("outliner") != OUTLINER_VERSION
                    or data.get("grammars") != self.versions):
                self.dirty = True
                return
            same = data.get("fileset") == self.fileset
            self.entries = {rel: _Entry.from_json(d, same_files=same) for rel, d in data["files"].items()}
            self.dirty = not same
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            self.entries, self.dirty = {}, True

    @property
    def versions(self) -> str:
        if not self._versions:
            self._versions = _grammar_versions()
        return self._versions

    def get(self, rel: str, size: int, mtime_ns: int) -> _Entry | None:
        e = self.entries.get(rel)
        return e if e is not None and e.size == size and e.mtime_ns == mtime_ns else None

    def put(self, rel: str, entry: _Entry) -> None:
        self.entries[rel] = entry
        self.dirty = True

    def save(self, keep: set[str]) -> None:
        gone = [rel for rel in self.entries if rel not in keep]
        for rel in gone:
            del self.entries[rel]
        if self.path is None or not (self.dirty or gone):
            return
        import orjson

        body = orjson.dumps({"schema_version": CACHE_SCHEMA_VERSION, "outliner": OUTLINER_VERSION,
                             "grammars": self.versions, "fileset": self.fileset,
                             "files": {rel: e.to_json() for rel, e in sorted(self.entries.items())}})
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(body)
            os.replace(tmp, self.path)  # readers see the old file or the new one, never half of one
            self.dirty = False
        except OSError:
            tmp.unlink(missing_ok=True)


def _scan(path: str, size: int, mtime_ns: int, lang: str) -> _Entry:
    """The cheap record of a file: its head's imports (and whether it is to be outlined at all)."""
    if size > MAX_PARSE_BYTES:
        return _Entry(size, mtime_ns, lang, [], "too large to outline")
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        return _Entry(size, mtime_ns, lang, [], f"unreadable: {e.strerror}")
    text = head.decode("utf-8", "replace")
    first = text.find("\n")
    if (first < 0 and len(text) > _MINIFIED_LINE) or first > _MINIFIED_LINE:
        return _Entry(size, mtime_ns, lang, [], "minified, not outlined")
    return _Entry(size, mtime_ns, lang, head_imports(text, lang))


def _outline(path: str, e: _Entry) -> Outline:
    try:
        with open(path, "rb") as f:
            src = f.read()
    except OSError as exc:
        return Outline(error=f"unreadable: {exc.strerror}")
    return outline_source(src, e.lang)


# --------------------------------------------------------------------------- references


def _stem(rel: str) -> str:
    return os.path.splitext(rel)[0]


_INDEX_NAMES = frozenset({"__init__", "index", "mod"})


class _Index:
    """Workspace files by the keys an import can name them with: every trailing part of their
    extensionless path (``pkg/core`` for ``src/pkg/core.py``; a package's ``__init__``, ``index``
    or ``mod`` file by its folder), their whole path, and their folder's trailing parts (Go
    packages, Java ``a.b.*``)."""

    def __init__(self, rels: Iterable[str]) -> None:
        self.by_key: dict[str, list[str]] = defaultdict(list)
        self.by_path: dict[str, list[str]] = defaultdict(list)
        self.by_dir: dict[str, list[str]] = defaultdict(list)
        for rel in rels:
            stem = _stem(rel)
            self.by_path[stem].append(rel)
            parts = stem.split("/")
            if parts[-1] in _INDEX_NAMES and len(parts) > 1:
                parts = parts[:-1]
                self.by_path["/".join(parts)].append(rel)
            for i in range(len(parts)):
                self.by_key["/".join(parts[i:])].append(rel)
            dparts = rel.split("/")[:-1]
            for i in range(len(dparts)):
                self.by_dir["/".join(dparts[i:])].append(rel)

    def resolve(self, imp: str, importer: str, lang: str) -> list[str]:
        here = importer.rpartition("/")[0]
        if lang == "python":
            if imp.startswith("."):
                dots = len(imp) - len(imp.lstrip("."))
                base = here.split("/") if here else []
                base = base[: len(base) - (dots - 1)] if dots > 1 else base
                rest = imp[dots:].replace(".", "/")
                return self.by_path.get("/".join([*base, rest] if rest else base), [])
            return self.by_key.get(imp.replace(".", "/"), [])
        if lang in ("javascript", "typescript", "tsx"):
            if imp.startswith("."):
                full = os.path.normpath(os.path.join(here, imp)).replace(os.sep, "/")
                return self.by_path.get(full) or self.by_path.get(_stem(full), [])
            if imp.startswith(("@/", "~/")):
                return self.by_key.get(imp[2:], [])
            return self.by_key.get(imp, []) if "/" in imp and not imp.startswith("@") else []
        if lang == "go":
            segs = imp.split("/")
            for i in range(len(segs)):
                pkg = self.by_dir.get("/".join(segs[i:]))
                if pkg:
                    return [h for h in pkg if h.endswith(".go")]
            return []
        if lang == "rust":
            if imp.startswith("mod:"):
                name = imp[4:]
                own = _stem(importer)
                for candidate in (f"{here}/{name}" if here else name, f"{own}/{name}"):
                    if candidate in self.by_path:
                        return self.by_path[candidate]
                return []
            segs = [s for s in imp.split("::") if s not in ("crate", "self", "super", "$crate")]
            for j in range(len(segs), 0, -1):
                mod = self.by_key.get("/".join(segs[:j]))
                if mod:
                    return [h for h in mod if h.endswith(".rs")]
            return []
        if lang == "java":
            segs = imp.split(".")
            if segs[-1] == "*":
                return self.by_dir.get("/".join(segs[:-1]), [])
            return self.by_key.get("/".join(segs), []) or self.by_key.get("/".join(segs[:-1]), [])
        return self.by_key.get(_stem(imp).strip("./"), [])


def _references(entries: dict[str, _Entry]) -> tuple[dict[str, float], dict[str, set[str]]]:
    """(how much other files use each file, each file's resolved imports). A use of an import
    that several files could satisfy is shared among them. Resolved once per set of files: the
    entries keep what their imports resolved to."""
    index: _Index | None = None
    used: dict[str, float] = defaultdict(float)
    deps: dict[str, set[str]] = {}
    for rel, e in entries.items():
        if e.uses is None:
            index = index or _Index(entries)
            e.uses = {}
            for imp in e.imports:
                hits = [h for h in index.resolve(imp, rel, e.lang) if h != rel]
                for h in hits:
                    if h not in e.uses:
                        e.uses[h] = 1.0 / len(hits)
        for h, share in e.uses.items():
            used[h] += share
        deps[rel] = set(e.uses)
    return used, deps


# --------------------------------------------------------------------------- ranking


def _terms(texts: Iterable[str]) -> tuple[set[str], set[str]]:
    """(words, path-like tokens) the task and memory use, lower-cased; identifiers are also
    split at underscores, dots and camelCase so that `slugify_cli` meets `slugify` and `cli`."""
    words: set[str] = set()
    paths: set[str] = set()
    for text in texts:
        for p in _PATHISH_RE.findall(text):
            paths.add(p.strip("./").lower())
        for w in _WORD_RE.findall(text):
            for part in {w, *w.split("_"), *re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", w)}:
                low = part.lower()
                if len(low) >= 3 and low not in _STOP:
                    words.add(low)
    return words, paths


def _code_words(task: str) -> list[str]:
    """Identifiers the task names as code: ``parseKeys``, ``slugify_cli``, ``run(``, ``qs.parse``."""
    out: list[str] = []
    for m in _CODE_WORD_RE.finditer(task):
        token = m.group(0)
        call = token.endswith("(")
        name = token.rstrip("( \t").rsplit(".", 1)[-1]
        codey = call or "." in token.rstrip("(") or "_" in name.strip("_") or re.search(r"[a-z][A-Z]", name)
        if codey and len(name) >= 3 and name.lower() not in _STOP and not _is_file_path(token.rstrip("(")):
            out.append(name)
    return list(dict.fromkeys(out))


_FILE_EXTS = frozenset({*LANGUAGES, ".md", ".rst", ".txt", ".json", ".toml", ".yaml", ".yml", ".cfg", ".ini",
                        ".html", ".css", ".scss", ".xml", ".csv", ".sql", ".lock", ".env", ".in"})


def _is_file_path(token: str) -> bool:
    """``lib/parse.js`` is a file; ``urllib.request.urlopen`` and ``qs.parse`` are not."""
    return "/" in token or os.path.splitext(token)[1].lower() in _FILE_EXTS


def _module_paths(task: str) -> set[str]:
    """The module paths a task names in dotted form: ``urllib.request.urlopen`` names
    ``urllib/request/urlopen``, ``urllib/request`` and ``urllib`` (whichever is a file)."""
    out: set[str] = set()
    for token in _PATHISH_RE.findall(task):
        token = token.strip("./")
        if _is_file_path(token) or not all(p.isidentifier() for p in token.split(".")):
            continue
        parts = token.split(".")
        out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def _defines(data: bytes, name: str) -> bool:
    n = re.escape(name.encode())
    return re.search(rb"(?:\b(?:def|function|func|fn|class|struct|interface|type|enum|trait|const|let|var|impl)"
                     rb"\s+(?:\([^)]*\)\s*)?|^[ \t]*(?:(?:public|private|protected|static|async|export|pub)\s+)*)"
                     + n + rb"\b(?:\s*[=:(]|\s*<|\s*\{)", data, re.MULTILINE) is not None


def _named_score(rel: str, paths: set[str]) -> float:
    low = rel.lower()
    if any(low == p or low.endswith("/" + p) for p in paths):
        return 100.0
    if any(os.path.basename(low) == os.path.basename(p) for p in paths):
        return 40.0
    return 0.0


def _rank(files: list[str], entries: dict[str, _Entry], abs_paths: dict[str, str], task: str,
          memories: list[str]) -> list[str]:
    words, paths = _terms([task])
    mem_words, _ = _terms(memories)
    used, deps = _references(entries)
    named = {rel: s for rel in entries if (s := _named_score(rel, paths)) > 0}
    modules = _module_paths(task)
    if modules:  # `urllib.request.urlopen` names urllib/request.py
        for rel in entries:
            stem = _stem(rel)
            if stem.endswith(("/__init__", "/index", "/mod")):
                stem = stem.rpartition("/")[0]
            if stem in modules or any(stem.endswith("/" + m) for m in modules if "/" in m):
                named[rel] = max(named.get(rel, 0.0), 30.0 + 10.0 * stem.count("/"))
    # The identifiers the task names as code: the files that define them, and those that use them.
    found: dict[str, float] = defaultdict(float)
    names = _code_words(task)
    if names:
        for rel, e in entries.items():
            if e.skip:
                continue
            try:
                with open(abs_paths[rel], "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for name in names:
                if name.encode() in data:
                    found[rel] += 30.0 if _defines(data, name) else 3.0
    wants_tests = bool({"test", "tests"} & {w.lower() for w in _WORD_RE.findall(task)})
    relevant = {rel: named.get(rel, 0.0) + found.get(rel, 0.0) for rel in entries}
    near: dict[str, float] = defaultdict(float)
    for rel, targets in deps.items():
        for t in targets:
            if relevant.get(t, 0.0) >= 30:  # a user of a named file: its caller, its test
                near[rel] = max(near[rel], 12.0 if wants_tests and "test" in rel.lower() else 6.0)
            if relevant.get(rel, 0.0) >= 30:  # a dependency of a named file: what it calls
                near[t] = max(near[t], 5.0)

    def score(rel: str) -> float:
        low = rel.lower()
        parts = set(re.split(r"[/._-]+", os.path.splitext(low)[0]))
        s = named.get(rel, 0.0) + found.get(rel, 0.0) + near.get(rel, 0.0)
        s += 8.0 * len(parts & words) + 2.0 * len(parts & mem_words)
        if rel in entries:
            # Capped: a file every test imports (a test helper, `unittest`) is not what every task is about.
            s += 1.0 + min(CENTRALITY_MAX, 2.0 * math.log2(1.0 + used.get(rel, 0.0)))
        if "test" in low and not ({"test", "tests"} & words):
            s -= 0.5
        if parts & _GENERATED or low.endswith((".min.js", ".bundle.js")):
            s -= 20.0
        return s - 0.05 * low.count("/")

    return sorted(files, key=lambda r: (-score(r), r))


# --------------------------------------------------------------------------- rendering


def _tree(files: list[str], order: dict[str, int], budget: int, model: str) -> str:
    """Directories one per line with their files, best-ranked first to keep their names; the
    others collapse to a count when the budget runs short."""
    dirs: dict[str, list[str]] = defaultdict(list)
    for rel in files:
        d, _, name = rel.rpartition("/")
        dirs[d].append(name)
    rank = {d: min(order[f"{d}/{n}" if d else n] for n in names) for d, names in dirs.items()}
    full = {d: f"{d + '/' if d else './'}: {' '.join(names)}" for d, names in dirs.items()}
    short = {d: f"{d + '/' if d else './'}: ({len(names)} files)" for d, names in dirs.items()}
    lines = {d: short[d] for d in dirs}
    used = sum(tokens.count_text(t + "\n", model) for t in lines.values())
    for d in sorted(dirs, key=lambda x: rank[x]):
        extra = tokens.count_text(full[d], model) - tokens.count_text(short[d], model)
        if used + extra <= budget:
            lines[d] = full[d]
            used += extra
    text = "\n".join(lines[d] for d in sorted(dirs))
    if used > budget:  # even the counts do not fit: the best-ranked directories only
        kept, total = [], 0
        for d in sorted(dirs, key=lambda x: rank[x]):
            n = tokens.count_text(short[d] + "\n", model)
            if total + n > budget:
                break
            kept.append(d)
            total += n
        text = "\n".join(short[d] for d in sorted(kept)) + f"\n({len(dirs) - len(kept)} more directories)"
    return text


_TEST_DIRS = frozenset({"test", "tests", "__tests__", "spec", "specs"})
_TEST_NAME_RE = re.compile(r"(?:test_.*\.pyi?|.*_test\.(?:pyi?|go)|.*\.(?:test|spec)\.[cm]?[jt]sx?"
                           r"|.*(?:Tests?|IT)\.java)$")


def _is_test_file(rel: str) -> bool:
    """A file of tests by its path: under a ``test``, ``tests``, ``__tests__``, ``spec`` or ``specs``
    folder (Python's and JavaScript's test folders, Rust's integration tests, Maven's ``src/test``),
    or named as test files are: ``test_*.py``, ``*_test.py``, ``*_test.go``, ``*.test.js``,
    ``*.spec.ts`` (any JavaScript or TypeScript extension), ``*Test.java``, ``*Tests.java``, ``*IT.java``."""
    *dirs, name = rel.split("/")
    return bool(_TEST_DIRS.intersection(dirs)) or _TEST_NAME_RE.match(name) is not None


def _test_run(first: Symbol, run: list[Symbol]) -> str:
    """One line for consecutive tests: the first's and the last's lines, how many, a few names."""
    names = [s.name for s in run]
    shown = ", ".join(names) if len(names) <= TEST_RUN_NAMES + 1 else \
        f"{', '.join(names[:TEST_RUN_NAMES])}, ... {names[-1]}"
    return f"{first.line:>5}-{run[-1].line} {'  ' * first.depth}{len(run)} tests: {shown}"


def _symbol_lines(symbols: list[Symbol], named: frozenset[str]) -> list[str]:
    """A test file's outline lines: each run of at least :data:`TEST_RUN_MIN` consecutive tests
    (with the functions a long test defines) is one line; a test the task names keeps its own."""
    out: list[str] = []
    i = 0
    while i < len(symbols):
        s = symbols[i]
        if s.test and s.name not in named:
            run, j = [s], i + 1
            while j < len(symbols):
                t = symbols[j]
                if t.inner and t.depth > s.depth:  # a test's own helpers go with it
                    j += 1
                elif t.test and t.depth == s.depth and t.name not in named:
                    run.append(t)
                    j += 1
                else:
                    break
            if len(run) >= TEST_RUN_MIN:
                out.append(_test_run(s, run))
                i = j
                continue
        out.append(_symbol_line(s))
        i += 1
    return out


def _symbol_line(s: Symbol) -> str:
    return f"{s.line:>5} {'  ' * s.depth}{s.text}"


def _outline_text(rel: str, o: Outline, *, constants: bool = True, inner: bool = True,
                  tests: frozenset[str] | None = None) -> str:
    """A file's outline as the map shows it; ``tests``: the file is a test file, and these are the
    names the task uses (a test it names keeps its own line)."""
    head = rel + (f"  ({o.error})" if o.error else "")
    symbols = [s for s in o.symbols if (constants or not s.const) and (inner or not s.inner)]
    lines = _symbol_lines(symbols, tests) if tests is not None else [_symbol_line(s) for s in symbols]
    return "\n".join([head, *lines])


def repo_map(workspace: Path, data_dir: Path | None, task: str, *, max_tokens: int,
             memories: list[str] | None = None, model: str = "") -> str:
    """The map (see the module docstring): ``files: N`` and the tree, then ``outline`` with the
    best-ranked files' definitions, within ``max_tokens`` (counted with the model's tokenizer);
    ``""`` for a budget of 0 or an empty workspace. Reads and updates the cache in ``data_dir``
    (none when it is ``None``)."""
    if max_tokens <= 0:
        return ""
    walker = WorkspaceWalker(workspace, data_dir)
    files: list[str] = []
    dir_entries: dict[str, os.DirEntry[str]] = {}
    for entry, rel in walker.iter_entries():
        files.append(rel)
        dir_entries[rel] = entry
        if len(files) >= MAX_FILES:
            break
    if not files:
        return ""
    langs = {rel: lang for rel in files if (lang := language_of(rel)) is not None}
    abs_paths = {rel: dir_entries[rel].path for rel in langs}
    cache = MapCache(None if data_dir is None else
                     (data_dir if data_dir.is_absolute() else walker.root / data_dir) / CACHE_FILE, list(langs))
    entries: dict[str, _Entry] = {}
    for rel, lang in langs.items():
        try:
            st = dir_entries[rel].stat()
        except OSError:
            continue
        e = cache.get(rel, st.st_size, st.st_mtime_ns)
        if e is None:
            e = _scan(abs_paths[rel], st.st_size, st.st_mtime_ns, lang)
            cache.put(rel, e)
        entries[rel] = e
    ranked = _rank(files, entries, abs_paths, task, memories or [])
    order = {rel: i for i, rel in enumerate(ranked)}
    more = "+" if len(files) >= MAX_FILES else ""
    head = f"files: {len(files)}{more} (.gitignored and ignored files not shown)"
    tree = _tree(files, order, int(max_tokens * TREE_SHARE), model)
    used = tokens.count_text(f"{head}\n{tree}\n\noutline (line, definition), most relevant first:\n", model)
    _, paths = _terms([task])
    named = frozenset(_WORD_RE.findall(task))
    parts: list[str] = []
    empty = 0
    # Outlined in rank order until the budget is full: a map parses the files it shows, not the repository.
    for rel in ranked:
        e = entries.get(rel)
        if e is None:
            continue
        o: Outline | None
        if e.skip:
            if _named_score(rel, paths) == 0:
                continue
            o = Outline(error=e.skip)  # a file the task names is shown, and why it has no outline
        else:
            o = e.get_outline()
            if o is None:
                o = e.outline = _outline(abs_paths[rel], e)
                cache.dirty = True
            if not o.symbols:
                empty += 1
                if empty >= MAX_EMPTY_OUTLINES:
                    break
                continue
        # Module constants only for the best files: elsewhere they crowd out the definitions.
        constants = len(parts) < TOP_FILES_WITH_CONSTANTS
        tests = named if _is_test_file(rel) else None
        text = _outline_text(rel, o, constants=constants, tests=tests)
        n = tokens.count_text(text + "\n", model)
        if used + n > max_tokens and any(s.inner for s in o.symbols):
            # A long function's inner functions are the first to go: the file's own definitions stay whole.
            text = _outline_text(rel, o, constants=constants, inner=False, tests=tests)
            n = tokens.count_text(text + "\n", model)
        if used + n > max_tokens:
            # The best file that does not fit whole still shows its first definitions.
            lines = text.splitlines()
            while len(lines) > 1 and used + tokens.count_text("\n".join(lines) + "\n", model) > max_tokens:
                lines = lines[: max(1, len(lines) * 3 // 4)]
            if len(lines) > 1 and used + tokens.count_text("\n".join(lines) + "\n", model) <= max_tokens:
                parts.append("\n".join([*lines, "      ..."]))
            break
        parts.append(text)
        used += n
    cache.save(set(entries))
    while True:
        body = f"{head}\n{tree}"
        if parts:
            body += "\n\noutline (line, definition), most relevant first:\n" + "\n".join(parts)
        if not parts or tokens.count_text(body, model) <= max_tokens:
            return body
        parts.pop()  # the per-part counts are a hair off the whole's: never over the budget
