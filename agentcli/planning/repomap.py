"""A map of the repository for a hosted planner: the file tree and an outline of the files that
matter to the task, ranked and bounded by a token budget (``planner.context_tokens``).

The design follows Aider's repo map: every source file is outlined (classes, functions and
methods with their signatures and line numbers), files are ranked by how much they have to do
with the task, and as many outlines as fit the budget are shown, best first. The ranking here is
simpler than Aider's PageRank over references: a file scores for being named by the task (its
path or its file name), for path parts and defined names the task (or recalled memory) uses, and
for being referred to by other files (its module or file name appearing in their imports).

Python files are outlined with :mod:`ast` (exact: the signatures are the source's own); other
languages with a small set of definition patterns (``function``/``class``/``def``/``fn``/
``func``/``struct``...), which finds most top-level definitions but not all. The walk is the
workspace walker's: ``.git``, ``.venv``, the data dir and whatever ``.gitignore`` and
``.git/info/exclude`` ignore are never shown. Files over 512 KB are listed, not outlined, and at
most 1,500 source files are outlined (those the task's words meet by path first).
"""

from __future__ import annotations

import ast
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agentcli.models import tokens
from agentcli.tools.paths import WorkspaceWalker

__all__ = ["Outline", "outline_file", "repo_map"]

#: Files visited at most (a huge monorepo is mapped from its first files in walk order).
MAX_FILES = 5000
#: Source files outlined at most (parsing is most of the map's cost): past it, those the task's
#: words meet by path, then the shallowest.
MAX_OUTLINED = 1500
#: Files larger than this are listed but not parsed.
MAX_PARSE_BYTES = 512_000
#: Share of the budget the file tree may take; the outlines get the rest (and what the tree leaves).
TREE_SHARE = 0.35
_SIG_MAX = 140
TOP_FILES_WITH_CONSTANTS = 2

_SOURCE = {".py", ".pyi", ".js", ".jsx", ".mjs", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".rb",
           ".php", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".swift", ".scala", ".sh"}
# One pattern per line of a definition in the C-like and scripting languages: group 1 is the kind,
# group 2 the name. Anchored at the line start (indentation allowed), so calls are not matched.
_DEF_RE = re.compile(
    r"^[ \t]*(?:export\s+)?(?:default\s+)?(?:pub(?:\([a-z]+\))?\s+)?(?:public\s+|private\s+|protected\s+)?"
    r"(?:static\s+)?(?:async\s+)?(?:abstract\s+)?(?:final\s+)?"
    r"(function\*?|class|interface|type|enum|struct|trait|impl|fn|func|def|module|object)\s+"
    r"([A-Za-z_$][\w$]*)", re.MULTILINE)
_PY_IMPORT_RE = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+([^\n#]+)|import[ \t]+([\w., \t]+))",
                           re.MULTILINE)
_DYNAMIC_IMPORT_RE = re.compile(r"""import_module\(\s*['"]([\w.]+)['"]""")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATHISH_RE = re.compile(r"[\w./-]+\.[A-Za-z0-9]+")
_STOP_WORDS = """a an and are as at be by can do does for from how i in into is it its make me my
not of on or so that the then this to use using was what when where which who why will with you your
add fix file files code function functions class test tests new change update write read show all
each every should would could there their them they it's"""
_STOP = frozenset(_STOP_WORDS.split())


@dataclass
class Symbol:
    """One definition: its line, nesting depth and one-line signature."""

    line: int
    depth: int
    text: str
    name: str


@dataclass
class Outline:
    """A file's definitions, in source order, and the names it imports."""

    symbols: list[Symbol] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)
    error: str = ""


# --------------------------------------------------------------------------- outlines


def _expr(node: ast.AST | None) -> str:
    if node is None:
        return ""
    try:
        text = ast.unparse(node)
    except Exception:  # a node ast cannot unparse: shown as ...
        return "..."
    return text if len(text) <= 40 else text[:37] + "..."


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    a = node.args
    parts: list[str] = []
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for i, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        text = arg.arg + (f": {_expr(arg.annotation)}" if arg.annotation else "")
        if default is not None:
            text += f" = {_expr(default)}"
        parts.append(text)
        if a.posonlyargs and i == len(a.posonlyargs) - 1:
            parts.append("/")
    if a.vararg:
        parts.append("*" + a.vararg.arg + (f": {_expr(a.vararg.annotation)}" if a.vararg.annotation else ""))
    elif a.kwonlyargs:
        parts.append("*")
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        text = arg.arg + (f": {_expr(arg.annotation)}" if arg.annotation else "")
        if kw_default is not None:
            text += f" = {_expr(kw_default)}"
        parts.append(text)
    if a.kwarg:
        parts.append("**" + a.kwarg.arg + (f": {_expr(a.kwarg.annotation)}" if a.kwarg.annotation else ""))
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    ret = f" -> {_expr(node.returns)}" if node.returns else ""
    text = f"{prefix} {node.name}({', '.join(parts)}){ret}"
    return text if len(text) <= _SIG_MAX else text[: _SIG_MAX - 4] + "...)"


def _python_outline(source: str) -> Outline:
    out = Outline()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        out.error = f"does not parse: {getattr(e, 'msg', e)} (line {getattr(e, 'lineno', '?')})"
        return out

    def visit(body: list[ast.stmt], depth: int) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                bases = ", ".join(_expr(b) for b in node.bases)
                out.symbols.append(Symbol(node.lineno, depth, f"class {node.name}" + (f"({bases})" if bases else ""),
                                          node.name))
                if depth < 2:
                    visit(node.body, depth + 1)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                out.symbols.append(Symbol(node.lineno, depth, _signature(node), node.name))
            elif depth == 0 and isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and t.id.isupper() and len(t.id) > 1:
                        out.symbols.append(Symbol(node.lineno, 0, f"{t.id} = ...", t.id))
            elif isinstance(node, ast.If | ast.Try) and depth == 0:
                visit(node.body, depth)  # definitions under `if TYPE_CHECKING:` or `try:` still count

    visit(tree.body, 0)
    # Imports by pattern: walking every node of every file for them took most of the map's time.
    for m in _PY_IMPORT_RE.finditer(source):
        if m.group(1):
            names = [n.strip().split(" as ")[0] for n in m.group(2).strip("()\\ ").split(",")]
            out.imports.add(m.group(1))
            out.imports.update(f"{m.group(1)}.{n}" for n in names if n.isidentifier())
        else:
            out.imports.update(n.strip().split(" as ")[0] for n in m.group(3).split(","))
    out.imports.update(_DYNAMIC_IMPORT_RE.findall(source))  # importlib.import_module("pkg.mod")
    return out


def _pattern_outline(source: str) -> Outline:
    out = Outline()
    starts = [0]
    for m in re.finditer("\n", source):
        starts.append(m.end())
    import bisect

    for m in _DEF_RE.finditer(source):
        line_no = bisect.bisect_right(starts, m.start())
        begin = starts[line_no - 1]
        end = source.find("\n", m.start())
        text = source[begin: end if end >= 0 else len(source)]
        indent = len(text) - len(text.lstrip())
        text = " ".join(text.split()).rstrip("{").rstrip()
        text = text if len(text) <= _SIG_MAX else text[: _SIG_MAX - 3] + "..."
        out.symbols.append(Symbol(line_no, min(indent // 2, 3), text, m.group(2)))
    for m in re.finditer(r"""(?:import|require|from|use)\s*\(?\s*['"]?([\w./@:-]+)""", source):
        out.imports.add(m.group(1))
    return out


_CACHE: dict[tuple[str, int, int], Outline] = {}
_CACHE_MAX = 20_000


def outline_file(path: Path, rel: str) -> Outline:
    """The outline of one source file (empty for other files or one too large to parse).
    Kept in memory by path, size and mtime: a re-plan maps the same files again."""
    ext = os.path.splitext(rel)[1].lower()
    if ext not in _SOURCE:
        return Outline()
    try:
        st = path.stat()
        if st.st_size > MAX_PARSE_BYTES:
            return Outline(error="too large to outline")
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key in _CACHE:
            return _CACHE[key]
        source = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return Outline(error=f"unreadable: {e.strerror}")
    out = _python_outline(source) if ext in (".py", ".pyi") else _pattern_outline(source)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = out
    return out


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


def _path_score(rel: str, words: set[str], paths: set[str]) -> float:
    low = rel.lower()
    if any(low == p or low.endswith("/" + p) for p in paths):
        return 100.0
    parts = set(re.split(r"[/._-]+", os.path.splitext(low)[0]))
    return 8.0 * len(parts & words)


def _module_names(rel: str) -> set[str]:
    stem, _ = os.path.splitext(rel)
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    names = {".".join(parts[i:]) for i in range(len(parts))} if parts else set()
    return {n for n in names if n} | ({parts[-1]} if parts else set())


def _rank(files: list[str], outlines: dict[str, Outline], task: str, memories: list[str]) -> list[str]:
    words, paths = _terms([task])
    mem_words, _ = _terms(memories)
    referenced: Counter[str] = Counter()
    by_module: dict[str, list[str]] = defaultdict(list)
    for rel in outlines:
        for name in _module_names(rel):
            by_module[name].append(rel)
    for rel, o in outlines.items():
        for imp in o.imports:
            for target in by_module.get(imp, ()):
                if target != rel:
                    referenced[target] += 1

    def named(rel: str) -> float:
        low = rel.lower()
        if any(low == p or low.endswith("/" + p) for p in paths):
            return 100.0
        if any(os.path.basename(low) == os.path.basename(p) for p in paths):
            return 40.0
        return 0.0

    # A file that imports a file the task names (its tests, its callers) is likely to matter too:
    # the test that pins what the task changes is what a planner misses when it cannot see it.
    named_files = {rel for rel in outlines if named(rel) > 0}
    wants_tests = bool({"test", "tests"} & {w.lower() for w in _WORD_RE.findall(task)})
    near: Counter[str] = Counter()
    for rel, o in outlines.items():
        for imp in o.imports:
            for target in by_module.get(imp, ()):
                if target in named_files and target != rel:
                    near[rel] += 1

    def score(rel: str) -> float:
        low = rel.lower()
        s = named(rel)
        if near[rel]:
            s += 12.0 if wants_tests and "test" in low else 6.0
        parts = set(re.split(r"[/._-]+", os.path.splitext(low)[0]))
        s += 8.0 * len(parts & words) + 2.0 * len(parts & mem_words)
        o = outlines.get(rel)
        if o is not None:
            names = {sym.name.lower() for sym in o.symbols}
            s += 6.0 * len(names & words) + 1.5 * len(names & mem_words)
            s += min(referenced[rel], 10) * 0.5
            s += 1.0 if o.symbols else 0.0
        if "test" in low and not ({"test", "tests"} & words):
            s -= 0.5
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


def _outline_text(rel: str, o: Outline, *, constants: bool = True) -> str:
    head = rel + (f"  ({o.error})" if o.error else "")
    symbols = [s for s in o.symbols if constants or not s.text.endswith(" = ...")]
    return "\n".join([head, *(f"{s.line:>5} {'  ' * s.depth}{s.text}" for s in symbols)])


def repo_map(workspace: Path, data_dir: Path | None, task: str, *, max_tokens: int,
             memories: list[str] | None = None, model: str = "") -> str:
    """The map (see the module docstring): ``files: N`` and the tree, then ``outline`` with the
    best-ranked files' definitions, within ``max_tokens`` (counted with the model's tokenizer);
    ``""`` for a budget of 0 or an empty workspace."""
    if max_tokens <= 0:
        return ""
    walker = WorkspaceWalker(workspace, data_dir)
    files: list[str] = []
    abs_paths: dict[str, Path] = {}
    for path, rel in walker.iter_files():
        files.append(rel)
        abs_paths[rel] = path
        if len(files) >= MAX_FILES:
            break
    if not files:
        return ""
    sources = [rel for rel in files if os.path.splitext(rel)[1].lower() in _SOURCE]
    if len(sources) > MAX_OUTLINED:
        # Parsing is most of the cost: in a big repository only the files whose paths the task's
        # words meet, then the shallowest, are outlined (and so can rank by their definitions).
        words, paths = _terms([task])
        sources = sorted(sources, key=lambda r: (-_path_score(r, words, paths), r.count("/"), r))[:MAX_OUTLINED]
    outlines = {rel: outline_file(abs_paths[rel], rel) for rel in sources}
    ranked = _rank(files, outlines, task, memories or [])
    order = {rel: i for i, rel in enumerate(ranked)}
    more = "+" if len(files) >= MAX_FILES else ""
    head = f"files: {len(files)}{more} (.gitignored and ignored files not shown)"
    tree_budget = int(max_tokens * TREE_SHARE)
    tree = _tree(files, order, tree_budget, model)
    used = tokens.count_text(f"{head}\n{tree}\n\noutline (line, definition), most relevant first:\n", model)
    parts: list[str] = []
    for rel in ranked:
        o = outlines.get(rel)
        if o is None or not (o.symbols or o.error):
            continue
        # Module constants only for the best files: elsewhere they crowd out the definitions.
        text = _outline_text(rel, o, constants=len(parts) < TOP_FILES_WITH_CONSTANTS)
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
    while True:
        body = f"{head}\n{tree}"
        if parts:
            body += "\n\noutline (line, definition), most relevant first:\n" + "\n".join(parts)
        if not parts or tokens.count_text(body, model) <= max_tokens:
            return body
        parts.pop()  # the per-part counts are a hair off the whole's: never over the budget
