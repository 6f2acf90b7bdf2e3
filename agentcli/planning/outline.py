"""Outlines of source files for the repository map: each file's definitions (classes, functions,
methods, types, with their one-line signatures and line numbers), and the imports of its head.

Python, JavaScript (with JSX, ``.mjs``/``.cjs``), TypeScript (with TSX), Go, Rust and Java are
parsed with tree-sitter (one grammar wheel per language). The walk visits only the places
definitions live (the module, class and interface bodies, exported objects, namespaces, impl and
trait blocks), and a function's body only when the function is long (:data:`LONG_FUNCTION_LINES`):
the functions defined at its top level (Python's nested ``def``, JavaScript's and TypeScript's
``function f`` and ``const f = () =>``) are listed under it as ``inner`` symbols, since a long
function that holds its helpers (a parser's ``parse`` with its 28 closures) is otherwise one line
hiding most of the file. A short function's locals stay out. So the walk costs little beyond the
parse. It knows the forms
real code uses: ``const f = (...) =>``, ``var f = function f(...)``, class members and fields that
hold functions, ``export default``, ``module.exports = {...}`` and ``exports.f = ...``,
``X.prototype.f = ...``, TypeScript's interfaces, types, enums, namespaces and ``declare``, Go's
methods and types, Rust's impl and trait blocks. A signature is the source's own text from the
definition's start (decorators and annotations left out) to its body, on one line.

A definition the language's test runner collects is marked ``test`` (:func:`_mark_tests`: by its
name, or for Rust and Java by its ``#[test]``/``@Test`` attribute), for the map to sum up a test
file's tests in a line.

Other languages (Ruby, PHP, C, C#, Kotlin, Swift, Scala, shell) fall back to a line pattern of
definition keywords, which finds most top-level definitions but not all.

Imports are read from a file's head only (:func:`head_imports`): they rank files by how much
other files use them, and reading every file whole would cost what the map must not.
"""

from __future__ import annotations

import bisect
import importlib
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

__all__ = ["LANGUAGES", "OUTLINER_VERSION", "Outline", "Symbol", "head_imports", "language_of", "outline_source"]

#: Bumped whenever what an outline holds changes: persisted outlines of another version are dropped.
OUTLINER_VERSION = 5
#: The longest signature shown; longer ones end in "...".
SIG_MAX = 140
#: A function whose body spans at least this many lines has the functions it defines listed under it.
LONG_FUNCTION_LINES = 60

#: Extension -> language. The first six are parsed with tree-sitter; the rest by pattern.
LANGUAGES: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".kt": "other", ".rb": "other", ".php": "other", ".c": "other", ".h": "other", ".cc": "other",
    ".cpp": "other", ".hpp": "other", ".cs": "other", ".swift": "other", ".scala": "other", ".sh": "other",
}
# Language -> (grammar module, the function returning its language pointer).
_GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
}


def language_of(rel: str) -> str | None:
    """The language of a workspace path by its extension (``None``: not a source file)."""
    return LANGUAGES.get(os.path.splitext(rel)[1].lower())


@dataclass
class Symbol:
    """One definition: its line, nesting depth, one-line signature and name. ``const`` marks a
    module constant (shown only for the best-ranked files), ``inner`` a function defined inside a
    long function (the first definitions a map short of room leaves out), ``test`` a test the
    language's test runner collects (see :func:`_mark_tests`; a map summarises them in test files)."""

    line: int
    depth: int
    text: str
    name: str
    const: bool = False
    inner: bool = False
    test: bool = False

    def to_list(self) -> list[Any]:
        return [self.line, self.depth, self.text, self.name, self.const, self.inner, self.test]

    @classmethod
    def from_list(cls, v: list[Any]) -> Symbol:
        return cls(int(v[0]), int(v[1]), str(v[2]), str(v[3]), bool(v[4]), bool(v[5]) if len(v) > 5 else False,
                   bool(v[6]) if len(v) > 6 else False)


@dataclass
class Outline:
    """A file's definitions in source order, or why it has none (``error``)."""

    symbols: list[Symbol] = field(default_factory=list)
    error: str = ""


# --------------------------------------------------------------------------- tree-sitter

_PARSERS: dict[str, Parser] = {}


def _parser(lang: str) -> Parser:
    if lang not in _PARSERS:
        from tree_sitter import Language, Parser

        module, fn = _GRAMMARS[lang]
        _PARSERS[lang] = Parser(Language(getattr(importlib.import_module(module), fn)()))
    return _PARSERS[lang]


_OPEN_RE = re.compile(r"([(\[<]) ")
_CLOSE_RE = re.compile(r",? ([)\]>])")


def _one_line(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    text = _CLOSE_RE.sub(r"\1", _OPEN_RE.sub(r"\1", text))
    return text if len(text) <= SIG_MAX else text[: SIG_MAX - 3] + "..."


_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_ANNOTATIONS = frozenset({"decorator", "annotation", "marker_annotation", "attribute_item", "comment"})


class _Walk:
    """One file's walk: the source, and the symbols found so far."""

    def __init__(self, src: bytes, *, colon: bool = False) -> None:
        self.src = src
        self.colon = colon
        self.out: list[Symbol] = []
        self._newlines: list[int] | None = None
        #: True while the walk is inside a long function's body (its symbols are ``inner``).
        self.inner = False

    def add(self, node: Node, start: int, stop: int, depth: int, name: str, *, const: bool = False,
            prefix: str = "", suffix: str = "") -> None:
        """A symbol whose text is the source from ``start`` to ``stop`` on one line (with a
        ``prefix`` and ``suffix`` around it)."""
        text = _one_line(self.src[start:stop]).rstrip(" {:;,").rstrip()
        if prefix or suffix:
            text = _one_line(f"{prefix}{text}{suffix}".encode())
        line = node.start_point[0] + 1 if start == node.start_byte else self.line_of(start)
        self.out.append(Symbol(line, min(depth, 3), text, name, const, self.inner))

    def line_of(self, offset: int) -> int:
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer(b"\n", self.src)]
        return bisect.bisect_left(self._newlines, offset) + 1

    def head(self, node: Node, depth: int, name: str, *, body: str = "body", start: int | None = None,
             const: bool = False) -> None:
        """A definition shown from ``start`` (the node's, after decorators) to its body."""
        b = node.child_by_field_name(body) if body else None
        first = start if start is not None else _after_annotations(node)
        stop = b.start_byte if b is not None else node.end_byte
        if self.colon:  # Python: up to the colon, not to the body (comments between them stay out)
            stop = next((c.start_byte for c in reversed(node.children) if c.type == ":" and c.start_byte < stop), stop)
        self.add(node, first, stop, depth, name, const=const)


def _long_body(fn: Node) -> Node | None:
    """A function's body when the function is long enough for its inner functions to be listed."""
    body = fn.child_by_field_name("body")
    if body is None or body.end_point[0] - body.start_point[0] < LONG_FUNCTION_LINES:
        return None
    return body


def _inner(w: _Walk, fn: Node, depth: int, walk: Any) -> None:
    """The functions a long function ``fn`` defines at its top level, at ``depth`` (by ``walk``)."""
    body = _long_body(fn)
    if body is None or depth > 3:
        return
    was, w.inner = w.inner, True
    try:
        walk(w, body, depth)
    finally:
        w.inner = was


def _after_annotations(node: Node) -> int:
    """Where a definition's own text starts: after decorators, annotations and attributes."""
    for child in node.children:
        if child.type in _ANNOTATIONS:
            continue
        if child.type == "modifiers":  # Java: annotations inside the modifiers
            for m in child.children:
                if m.type not in _ANNOTATIONS:
                    return m.start_byte
            continue
        return child.start_byte
    return node.start_byte


def _name(node: Node | None, src: bytes) -> str:
    if node is None:
        return ""
    return src[node.start_byte:node.end_byte].decode("utf-8", "replace")


# ----- Python


def _python(w: _Walk, container: Node, depth: int) -> None:
    for node in container.named_children:
        t = node.type
        if t == "decorated_definition":
            inner = node.child_by_field_name("definition")
            if inner is None:
                continue
            node, t = inner, inner.type
        if t == "function_definition":
            w.head(node, depth, _name(node.child_by_field_name("name"), w.src))
            _inner(w, node, depth + 1, _python_inner)
        elif t == "class_definition":
            w.head(node, depth, _name(node.child_by_field_name("name"), w.src))
            body = node.child_by_field_name("body")
            if body is not None and depth < 2:
                _python(w, body, depth + 1)
        elif depth == 0 and t == "expression_statement" and node.named_child_count == 1:
            a = node.named_children[0]
            left = a.child_by_field_name("left") if a.type == "assignment" else None
            if left is not None and left.type == "identifier":
                n = _name(left, w.src)
                if n.isupper() and len(n) > 1:
                    w.out.append(Symbol(node.start_point[0] + 1, 0, f"{n} = ...", n, True))
        elif depth == 0 and t in ("if_statement", "try_statement"):
            # Definitions under `if TYPE_CHECKING:` or `try:` are the module's too.
            body = node.child_by_field_name("consequence" if t == "if_statement" else "body")
            if body is not None:
                _python(w, body, depth)


def _python_inner(w: _Walk, body: Node, depth: int) -> None:
    """A long function's nested ``def``s (and theirs, when they are long too)."""
    for node in body.named_children:
        if node.type == "decorated_definition":
            node = node.child_by_field_name("definition") or node
        if node.type == "function_definition":
            w.head(node, depth, _name(node.child_by_field_name("name"), w.src))
            _inner(w, node, depth + 1, _python_inner)


# ----- JavaScript, TypeScript, TSX


def _function_body(value: Node) -> Node | None:
    return value.child_by_field_name("body")


def _js_inner(w: _Walk, body: Node, depth: int) -> None:
    """A long function's own functions: ``function f()`` and ``const f = () =>`` (or ``= function``)
    at its top level; not what its statements compute (``const xs = list.map(x => ...)``)."""
    for node in body.named_children:
        start = _after_annotations(node)
        if node.type in ("function_declaration", "generator_function_declaration"):
            w.head(node, depth, _name(node.child_by_field_name("name"), w.src), start=start)
            _inner(w, node, depth + 1, _js_inner)
        elif node.type in ("lexical_declaration", "variable_declaration"):
            for i, d in enumerate(c for c in node.named_children if c.type == "variable_declarator"):
                name_node = d.child_by_field_name("name")
                value = d.child_by_field_name("value")
                if name_node is None or name_node.type != "identifier" or value is None or \
                        value.type not in _FUNCTION_VALUES:
                    continue
                _js_value(w, node, start if i == 0 else d.start_byte, value, depth, _name(name_node, w.src),
                          exported=False)


def _js_members(w: _Walk, body: Node, depth: int) -> None:
    """A class body's, interface body's or object's definitions."""
    for m in body.named_children:
        t = m.type
        if t == "method_definition":
            w.head(m, depth, _name(m.child_by_field_name("name"), w.src))
            _inner(w, m, depth + 1, _js_inner)
        elif t in ("method_signature", "abstract_method_signature", "property_signature",
                   "construct_signature", "call_signature", "index_signature"):
            w.head(m, depth, _name(m.child_by_field_name("name"), w.src), body="")
        elif t in ("field_definition", "public_field_definition", "pair"):
            value = m.child_by_field_name("value")
            key = m.child_by_field_name("property" if t == "field_definition" else
                                        "key" if t == "pair" else "name")
            if t == "pair" and value is not None and value.type == "object" and _object_summary(w, value)[1]:
                _js_object(w, m, m.start_byte, value, depth, _name(key, w.src))  # `formatters: {RFC1738() {...}}`
            elif value is not None and value.type in _FUNCTION_VALUES:
                fb = _function_body(value)
                w.add(m, _after_annotations(m), fb.start_byte if fb is not None else value.end_byte, depth,
                      _name(key, w.src))
                _inner(w, value, depth + 1, _js_inner)


def _object_summary(w: _Walk, obj: Node) -> tuple[list[str], bool]:
    """The plain members' names of an object literal, and whether any member holds a function."""
    names: list[str] = []
    functions = False
    for m in obj.named_children:
        if m.type == "shorthand_property_identifier":
            names.append(_name(m, w.src))
        elif m.type == "pair":
            value = m.child_by_field_name("value")
            if value is not None and (value.type in _FUNCTION_VALUES or (
                    value.type == "object" and _object_summary(w, value)[1])):
                functions = True
            else:
                names.append(_name(m.child_by_field_name("key"), w.src))
        elif m.type == "method_definition":
            functions = True
        elif m.type == "spread_element":
            names.append(_name(m, w.src))
    return names, functions


def _js_object(w: _Walk, stmt: Node, start: int, obj: Node, depth: int, name: str) -> None:
    """``module.exports = {...}``, ``export default {...}``, ``const api = {...}``: one line with
    the plain members' names, then the members that hold functions."""
    names, functions = _object_summary(w, obj)
    if not names and not functions:
        return
    listed = ", ".join(names)
    if functions:  # the members that hold functions follow, one a line
        listed = f"{listed}, ..." if listed else "..."
    head = _one_line(w.src[start:obj.start_byte]).rstrip(" {").rstrip()
    w.add(stmt, start, start, depth, name, prefix=f"{head} {{{listed}}}")
    if functions and depth < 3:
        _js_members(w, obj, depth + 1)


def _js_value(w: _Walk, stmt: Node, start: int, value: Node, depth: int, name: str, *, exported: bool) -> bool:
    """A definition whose value is an expression: a function, a class, an object, a call that wraps
    a function (``memo((props) => ...)``). False when the value is none of these."""
    t = value.type
    if t in _FUNCTION_VALUES:
        fb = _function_body(value)
        w.add(stmt, start, fb.start_byte if fb is not None else value.end_byte, depth, name)
        _inner(w, value, depth + 1, _js_inner)
        return True
    if t == "class":
        body = value.child_by_field_name("body")
        w.add(stmt, start, body.start_byte if body is not None else value.end_byte, depth, name)
        if body is not None and depth < 2:
            _js_members(w, body, depth + 1)
        return True
    if t == "object" and (exported or depth == 0):
        before = len(w.out)
        _js_object(w, stmt, start, value, depth, name)
        return len(w.out) > before
    if t == "call_expression":
        args = value.child_by_field_name("arguments")
        for a in args.named_children if args is not None else []:
            if a.type in _FUNCTION_VALUES:
                fb = _function_body(a)
                w.add(stmt, start, fb.start_byte if fb is not None else a.end_byte, depth, name)
                _inner(w, a, depth + 1, _js_inner)
                return True
    return False


def _js_declaration(w: _Walk, node: Node, start: int, depth: int, *, exported: bool) -> None:
    t = node.type
    if t in ("function_declaration", "generator_function_declaration", "function_signature"):
        w.head(node, depth, _name(node.child_by_field_name("name"), w.src), start=start)
        _inner(w, node, depth + 1, _js_inner)
    elif t in ("class_declaration", "abstract_class_declaration", "class"):
        w.head(node, depth, _name(node.child_by_field_name("name"), w.src) or "default", start=start)
        body = node.child_by_field_name("body")
        if body is not None and depth < 2:
            _js_members(w, body, depth + 1)
    elif t in ("lexical_declaration", "variable_declaration"):
        declarators = [d for d in node.named_children if d.type == "variable_declarator"]
        for i, d in enumerate(declarators):
            name_node = d.child_by_field_name("name")
            value = d.child_by_field_name("value")
            if name_node is None or name_node.type != "identifier" or value is None:
                continue
            name = _name(name_node, w.src)
            first = start if i == 0 else d.start_byte
            if _js_value(w, node, first, value, depth, name, exported=exported):
                continue
            if depth == 0 and (exported or (name.isupper() and len(name) > 1)):
                head = _one_line(w.src[first:value.start_byte]).rstrip(" =")
                w.add(node, first, first, depth, name, const=True, prefix=f"{head} = ...")
    elif t == "interface_declaration":
        w.head(node, depth, _name(node.child_by_field_name("name"), w.src), start=start)
        body = node.child_by_field_name("body")
        if body is not None and depth < 2:
            _js_members(w, body, depth + 1)
    elif t in ("type_alias_declaration", "enum_declaration"):
        w.head(node, depth, _name(node.child_by_field_name("name"), w.src), start=start,
               body="body" if t == "enum_declaration" else "")
    elif t in ("internal_module", "module"):
        w.head(node, depth, _name(node.child_by_field_name("name"), w.src).strip("'\""), start=start)
        body = node.child_by_field_name("body")
        if body is not None and depth < 2:
            _js(w, body, depth + 1)
    elif t == "ambient_declaration":  # `declare ...`
        for child in node.named_children:
            _js_declaration(w, child, start, depth, exported=exported)
    elif t == "expression_statement":
        expr = node.named_children[0] if node.named_child_count else None
        if expr is None:
            return
        if expr.type in ("internal_module", "module"):
            _js_declaration(w, expr, start, depth, exported=exported)
        elif expr.type == "assignment_expression":
            _js_assignment(w, node, start, expr, depth)


def _js_assignment(w: _Walk, stmt: Node, start: int, expr: Node, depth: int) -> None:
    """``module.exports = ...``, ``exports.f = ...``, ``Foo.prototype.f = function``, ``f = () =>``."""
    left = expr.child_by_field_name("left")
    right = expr.child_by_field_name("right")
    if left is None or right is None or left.type not in ("identifier", "member_expression"):
        return
    target = _name(left, w.src)
    exported = target == "module.exports" or target.startswith(("module.exports.", "exports."))
    prop = left.child_by_field_name("property") if left.type == "member_expression" else left
    name = _name(prop, w.src)
    if _js_value(w, stmt, start, right, depth, name, exported=exported):
        return
    if target == "module.exports":  # `module.exports = parse` and the like: what the module is
        w.add(stmt, start, right.end_byte, depth, name)


def _js(w: _Walk, container: Node, depth: int) -> None:
    for node in container.named_children:
        start = _after_annotations(node)
        if node.type == "export_statement":
            decl = node.child_by_field_name("declaration")
            if decl is not None:
                _js_declaration(w, decl, start, depth, exported=True)
                continue
            value = node.child_by_field_name("value")
            if value is None:  # `export default function () {}` and `export default class {}`
                value = next((c for c in node.named_children if c.type in (*_FUNCTION_VALUES, "class", "object")),
                             None)
            if value is not None:
                if not _js_value(w, node, start, value, depth, "default", exported=True):
                    w.add(node, start, value.end_byte, depth, "default")
            elif node.child_by_field_name("source") is None and any(
                    c.type == "export_clause" for c in node.named_children):
                w.add(node, start, node.end_byte, depth, "export")  # `export { a, b as c }`
        else:
            _js_declaration(w, node, start, depth, exported=False)


# ----- Go


def _go(w: _Walk, container: Node, depth: int) -> None:
    for node in container.named_children:
        t = node.type
        if t in ("function_declaration", "method_declaration"):
            w.head(node, depth, _name(node.child_by_field_name("name"), w.src))
        elif t == "type_declaration":
            for spec in node.named_children:
                if spec.type not in ("type_spec", "type_alias"):
                    continue
                name = _name(spec.child_by_field_name("name"), w.src)
                kind = spec.child_by_field_name("type")
                if kind is not None and kind.type in ("struct_type", "interface_type"):
                    w.add(spec, spec.start_byte, kind.start_byte, depth, name, prefix="type ",
                          suffix=" struct" if kind.type == "struct_type" else " interface")
                    if kind.type == "interface_type":
                        for m in kind.named_children:
                            if m.type in ("method_elem", "method_spec"):
                                w.head(m, depth + 1, _name(m.child_by_field_name("name"), w.src), body="")
                else:
                    w.add(spec, spec.start_byte, spec.end_byte, depth, name, prefix="type ")
        elif t in ("const_declaration", "var_declaration"):
            keyword = "const" if t == "const_declaration" else "var"
            specs = [s for s in node.named_children if s.type in ("const_spec", "var_spec")]
            for group in node.named_children:  # `var ( ... )` wraps its specs in a list
                if group.type == "var_spec_list":
                    specs += [s for s in group.named_children if s.type == "var_spec"]
            for spec in specs:
                for n in spec.children_by_field_name("name"):
                    name = _name(n, w.src)
                    if name[:1].isupper():  # exported
                        w.out.append(Symbol(spec.start_point[0] + 1, depth, f"{keyword} {name}", name, True))


# ----- Rust


def _rust(w: _Walk, container: Node, depth: int) -> None:
    for node in container.named_children:
        t = node.type
        name = _name(node.child_by_field_name("name"), w.src)
        if t == "function_item":
            w.head(node, depth, name)
            w.out[-1].test = _rust_test(node, w.src)
        elif t in ("function_signature_item", "type_item", "macro_definition", "associated_type"):
            if t == "macro_definition":
                w.add(node, node.start_byte, node.start_byte, depth, name, prefix=f"macro_rules! {name}")
            else:
                w.head(node, depth, name, body="")
        elif t in ("struct_item", "enum_item", "union_item"):
            body = node.child_by_field_name("body")
            w.head(node, depth, name, body="body" if body is not None and body.type != "ordered_field_declaration_list"
                   else "")
        elif t in ("trait_item", "impl_item", "mod_item"):
            body = node.child_by_field_name("body")
            if body is None:  # `mod parser;`: the module is its own file, its line says it is one
                w.head(node, depth, name, body="")
                continue
            if t == "impl_item":  # named by its type, without generics: `impl<T> Shape for Point<T>` is Point's
                name = _name(node.child_by_field_name("type"), w.src).split("<")[0]
            w.head(node, depth, name)
            if depth < 2:
                _rust(w, body, depth + 1)
        elif t in ("const_item", "static_item") and depth == 0:
            value = node.child_by_field_name("value")
            first = _after_annotations(node)
            head = _one_line(w.src[first:value.start_byte if value is not None else node.end_byte]).rstrip(" =;")
            w.add(node, first, first, depth, name, const=True, prefix=head)


_RUST_TEST_ATTR_RE = re.compile(rb"#\[\s*(?:[\w:]*::)?(?:test|bench|rstest|test_case|quickcheck)\b")


def _rust_test(fn: Node, src: bytes) -> bool:
    """Whether an attribute before a Rust function marks it a test (``#[test]``, ``#[tokio::test]``,
    ``#[rstest]``, ``#[test_case(...)]``, ``#[bench]``)."""
    node = fn.prev_named_sibling
    while node is not None and node.type in ("attribute_item", "line_comment", "block_comment"):
        if node.type == "attribute_item" and _RUST_TEST_ATTR_RE.match(src[node.start_byte:node.end_byte]):
            return True
        node = node.prev_named_sibling
    return False


# ----- Java

_JAVA_TEST_ANNOTATION_RE = re.compile(rb"@(?:[\w.]*\.)?(?:\w*Test|TestFactory|TestTemplate)\b")


def _java_test(method: Node, src: bytes) -> bool:
    """Whether a JUnit annotation (``@Test``, ``@ParameterizedTest``, ``@RepeatedTest``...) marks a method a test."""
    mods = next((c for c in method.children if c.type == "modifiers"), None)
    return mods is not None and any(
        c.type in ("annotation", "marker_annotation") and _JAVA_TEST_ANNOTATION_RE.match(src[c.start_byte:c.end_byte])
        for c in mods.children)


_JAVA_TYPES = frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
                         "annotation_type_declaration"})


def _java(w: _Walk, container: Node, depth: int) -> None:
    for node in container.named_children:
        t = node.type
        if t in _JAVA_TYPES:
            w.head(node, depth, _name(node.child_by_field_name("name"), w.src))
            body = node.child_by_field_name("body")
            if body is not None and depth < 2:
                _java(w, body, depth + 1)
        elif t == "enum_body_declarations":
            _java(w, node, depth)
        elif t in ("method_declaration", "constructor_declaration", "compact_constructor_declaration",
                   "annotation_type_element_declaration"):
            w.head(node, depth, _name(node.child_by_field_name("name"), w.src))
            w.out[-1].test = t == "method_declaration" and _java_test(node, w.src)
        elif t in ("field_declaration", "constant_declaration") and depth == 1:
            mods = node.named_children[0] if node.named_child_count and node.named_children[0].type == "modifiers" \
                else None
            static_final = mods is not None and {"static", "final"} <= {c.type for c in mods.children}
            for d in node.children_by_field_name("declarator"):
                name = _name(d.child_by_field_name("name"), w.src)
                if (static_final or t == "constant_declaration") and name.isupper() and len(name) > 1:
                    w.out.append(Symbol(node.start_point[0] + 1, depth, f"{name} = ...", name, True))


_WALKS = {"python": _python, "javascript": _js, "typescript": _js, "tsx": _js, "go": _go, "rust": _rust,
          "java": _java}


# --------------------------------------------------------------------------- other languages

# One pattern per line of a definition in the C-like and scripting languages: group 1 is the kind,
# group 2 the name. Anchored at the line start (indentation allowed), so calls are not matched.
_DEF_RE = re.compile(
    r"^[ \t]*(?:export\s+)?(?:default\s+)?(?:pub(?:\([a-z]+\))?\s+)?(?:public\s+|private\s+|protected\s+)?"
    r"(?:static\s+)?(?:async\s+)?(?:abstract\s+)?(?:final\s+)?"
    r"(function\*?|class|interface|type|enum|struct|trait|impl|fn|func|def|module|object)\s+"
    r"([A-Za-z_$][\w$]*)", re.MULTILINE)


def _pattern_outline(source: str) -> Outline:
    out = Outline()
    starts = [0] + [m.end() for m in re.finditer("\n", source)]
    for m in _DEF_RE.finditer(source):
        line_no = bisect.bisect_right(starts, m.start())
        begin = starts[line_no - 1]
        end = source.find("\n", m.start())
        text = source[begin: end if end >= 0 else len(source)]
        indent = len(text) - len(text.lstrip())
        text = " ".join(text.split()).rstrip("{").rstrip()
        text = text if len(text) <= SIG_MAX else text[: SIG_MAX - 3] + "..."
        out.symbols.append(Symbol(line_no, min(indent // 2, 3), text, m.group(2)))
    return out


# --------------------------------------------------------------------------- tests

# A test by its name: `test`, then the end or a non-lower-case character (`testParse`, `test_parse`,
# `'test parse'`; not `testing` or `tests_dir`). Python's runner takes any `test` prefix.
_TEST_NAME_RE = re.compile(r"""['"]?test(?:[^a-z]|$)""")
_GO_TEST_RE = re.compile(r"(?:Test|Benchmark|Fuzz|Example)(?:[^a-z]|$)")
_PY_TEST_CLASS_RE = re.compile(r"class\s+(?:Test\w*|\w*Tests?|\w*TestCase)\b|\bTestCase\b")


def _is_function(s: Symbol) -> bool:
    return not s.const and not s.text.startswith(("class ", "export class ", "interface ", "type ", "enum "))


def _mark_tests(symbols: list[Symbol], lang: str) -> None:
    """Mark the definitions the language's test runner collects by their names (Rust's and Java's
    tests are marked by their attributes during the walk): Python's ``test*`` functions and the
    ``test*`` methods of ``Test*``/``*Tests``/``TestCase`` classes (pytest's and unittest's rules);
    Go's ``Test*``/``Benchmark*``/``Fuzz*``/``Example*`` functions (not ``TestMain``); JavaScript's
    and TypeScript's functions, methods and members named ``test...`` (``exports.testParse = ...``,
    ``'test parse': function``: the ``describe``/``it``/``test`` calls of most suites are calls, not
    definitions, and are not outlined at all); JUnit 3's ``test...`` methods. A function defined
    inside a long function is never a test."""
    parent: dict[int, Symbol] = {}  # the last definition at each depth: a symbol's container is parent[depth - 1]
    for s in symbols:
        if s.inner:
            continue
        parent[s.depth] = s
        if s.test or not _is_function(s):
            continue
        up = parent.get(s.depth - 1) if s.depth > 0 else None
        if lang == "python":
            s.test = s.name.startswith("test") and (s.depth == 0 or (
                up is not None and up.text.startswith("class ") and _PY_TEST_CLASS_RE.search(up.text) is not None))
        elif lang == "go":
            s.test = s.depth == 0 and s.text.startswith("func ") and not s.text.startswith("func (") and \
                s.name != "TestMain" and _GO_TEST_RE.match(s.name) is not None
        elif lang in ("javascript", "typescript", "tsx") or (lang == "java" and s.depth > 0):
            s.test = _TEST_NAME_RE.match(s.name) is not None


def outline_source(src: bytes, lang: str) -> Outline:
    """The outline of one file's source in ``lang`` (see :data:`LANGUAGES`)."""
    walk = _WALKS.get(lang)
    if walk is None:
        return _pattern_outline(src.decode("utf-8", "replace"))
    w = _Walk(src, colon=lang == "python")
    tree = _parser(lang).parse(src)
    walk(w, tree.root_node, 0)
    _mark_tests(w.out, lang)
    return Outline(symbols=w.out)


# --------------------------------------------------------------------------- imports

#: How much of a file's head is read for its imports.
HEAD_BYTES = 8192

_PY_IMPORT_RE = re.compile(r"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+\(?([^\n#)]+)|import[ \t]+([\w., \t]+))",
                           re.MULTILINE)
_JS_IMPORT_RE = re.compile(r"""(?:\bfrom\s*|\brequire\s*\(\s*|\bimport\s*\(\s*|^\s*import\s+)(['"])([^'"\n]+)\1""",
                           re.MULTILINE)
_GO_BLOCK_RE = re.compile(r"^import\s*\(([^)]*)\)", re.MULTILINE)
_GO_IMPORT_RE = re.compile(r'^import\s+(?:[\w.]+\s+)?"([^"]+)"', re.MULTILINE)
_GO_SPEC_RE = re.compile(r'"([^"\n]+)"')
_RUST_USE_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([\w:]+)", re.MULTILINE)
_RUST_MOD_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.MULTILINE)
_JAVA_IMPORT_RE = re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+(?:\.\*)?)\s*;", re.MULTILINE)
_OTHER_IMPORT_RE = re.compile(r"""(?:import|require|from|use|include)\s*\(?\s*['"<]?([\w./@:-]+)""")


def head_imports(head: str, lang: str) -> list[str]:
    """What a file's head imports, as written (``pkg.mod``, ``./utils``, ``crate::a::b``, ``mod:name``
    for Rust's ``mod name;``); resolved to workspace files by the map."""
    out: list[str] = []
    if lang == "python":
        for m in _PY_IMPORT_RE.finditer(head):
            if m.group(3):
                out += [n.strip().split(" as ")[0] for n in m.group(3).split(",") if n.strip()]
                continue
            base = m.group(1)
            out.append(base)
            names = [n.strip().split(" as ")[0] for n in m.group(2).split(",")]
            sep = "" if base.endswith(".") else "."
            out += [f"{base}{sep}{n}" for n in names if n.isidentifier()]
    elif lang in ("javascript", "typescript", "tsx"):
        out = [m.group(2) for m in _JS_IMPORT_RE.finditer(head)]
    elif lang == "go":
        for block in _GO_BLOCK_RE.findall(head):
            out += _GO_SPEC_RE.findall(block)
        out += _GO_IMPORT_RE.findall(head)
    elif lang == "rust":
        out = _RUST_USE_RE.findall(head) + [f"mod:{m}" for m in _RUST_MOD_RE.findall(head)]
    elif lang == "java":
        out = _JAVA_IMPORT_RE.findall(head)
    else:
        out = _OTHER_IMPORT_RE.findall(head)
    return list(dict.fromkeys(out))
