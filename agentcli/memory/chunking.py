"""Files into chunks: which files, read how, cut where.

Chunks are whole lines, sized in tokens (tiktoken's cl100k_base, offline via
:mod:`agentcli.models.tokens`). They follow the text's structure where it shows: a markdown
heading or a top-level definition in code starts a new chunk, because an embedding
of a whole file blurs what each section is about (a question about a document's
"Rollback" section scores 0.43 cosine against that section, 0.19 against the whole
document). A full chunk overlaps the next by a few lines so a passage cut there is
still found whole in one of the two, and prefers to end at a blank line in its last
quarter rather than mid-block. A single line longer than a chunk is cut by tokens and
keeps its line number.

Sizes: the built-in embedder reads at most 256 WordPiece tokens, and code costs
about 1.3-1.5 WordPieces per cl100k token, so 160-token chunks are embedded whole.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcli.errors import UsageError, WorkspaceError
from agentcli.models import tokens
from agentcli.redact import Redactor

CHUNK_TOKENS = 160
OVERLAP_TOKENS = 32
#: A chunk this small is not ended at a section start (a lone heading stays with its text).
MIN_CHUNK_TOKENS = 8
#: Extensions ingested when a directory is given (a file named explicitly only has to be text).
TEXT_EXTENSIONS = frozenset({
    ".py", ".pyi", ".md", ".rst", ".txt", ".toml", ".json", ".yaml", ".yml", ".cfg", ".ini",
    ".js", ".jsx", ".ts", ".tsx", ".rs", ".go", ".java", ".kt", ".rb", ".php", ".c", ".h", ".cc",
    ".cpp", ".hpp", ".cs", ".swift", ".sh", ".sql", ".html", ".css", ".scala", ".lua", ".r",
})
_CODE_EXTENSIONS = frozenset({
    ".py", ".pyi", ".js", ".jsx", ".ts", ".tsx", ".rs", ".go", ".java", ".kt", ".rb", ".php", ".c", ".h",
    ".cc", ".cpp", ".hpp", ".cs", ".swift", ".scala", ".lua",
})
_TEXT_NAMES = frozenset({"Makefile", "Dockerfile", "README", "LICENSE", "CHANGELOG"})
_ENCODING_MODEL = ""  # cl100k_base: a neutral estimate for any embedder


#: ``boundary(line)``: does a new section (heading, top-level definition) start at this line?
Boundary = Callable[[str], bool]


@dataclass(frozen=True)
class Chunk:
    """Lines ``start_line..end_line`` (1-based, inclusive) of a text."""

    start_line: int
    end_line: int
    text: str

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)


def content_hash(text: str) -> str:
    """sha256 of the text with line endings and trailing blanks normalised."""
    norm = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def _encoder() -> Any:
    # tokens owns the offline tiktoken set-up; chunking needs the encoder itself (encode/decode).
    return tokens._encoding(tokens.encoding_name_for(_ENCODING_MODEL))


def count_tokens(text: str) -> int:
    """cl100k tokens in ``text`` (offline)."""
    return tokens.count_text(text, _ENCODING_MODEL)


def _split_long_line(line: str, start: int, max_tokens: int) -> list[Chunk]:
    enc = _encoder()
    ids = enc.encode(line, disallowed_special=())
    out = []
    for i in range(0, len(ids), max_tokens):
        piece = enc.decode(ids[i:i + max_tokens])
        if piece.strip():
            out.append(Chunk(start, start, piece))
    return out


def chunk_text(text: str, *, max_tokens: int = CHUNK_TOKENS, overlap_tokens: int = OVERLAP_TOKENS,
               boundary: Boundary | None = None) -> list[Chunk]:
    """Cut ``text`` into line-aligned chunks of at most ``max_tokens`` (see the module docstring).

    ``boundary(line)`` marks lines that start a section (a heading, a top-level def): a chunk
    holding at least MIN_CHUNK_TOKENS ends before one, and the next starts there with no
    overlap (nothing was cut). A chunk that ends because it is full overlaps the next.
    """
    if max_tokens <= 0 or overlap_tokens < 0 or overlap_tokens >= max_tokens:
        raise UsageError("chunking needs 0 <= overlap < max tokens")
    lines = text.splitlines()
    enc = _encoder()
    # +1 for the newline that joins the line to the next. Lines repeat (blank lines, braces,
    # imports): each distinct one is encoded once.
    counts: dict[str, int] = {}
    sizes = []
    for line in lines:
        size = counts.get(line)
        if size is None:
            size = counts[line] = len(enc.encode(line, disallowed_special=())) + 1
        sizes.append(size)
    chunks: list[Chunk] = []
    i, n = 0, len(lines)
    while i < n:
        if sizes[i] > max_tokens:
            chunks.extend(_split_long_line(lines[i], i + 1, max_tokens))
            i += 1
            continue
        j, total, at_boundary = i, 0, False
        while j < n and sizes[j] <= max_tokens and total + sizes[j] <= max_tokens:
            if (boundary is not None and j > i and total >= MIN_CHUNK_TOKENS and boundary(lines[j])
                    and not lines[j - 1].startswith("@")):  # a decorator stays with its function
                at_boundary = True
                break
            total += sizes[j]
            j += 1
        end = j  # exclusive
        if j < n and not at_boundary:
            # Prefer ending just after a blank line in the last quarter of the window.
            floor = i + max(1, (3 * (j - i)) // 4)
            for k in range(j - 1, floor - 1, -1):
                if not lines[k].strip():
                    end = k + 1
                    break
        body = "\n".join(lines[i:end])
        if body.strip():
            chunks.append(Chunk(i + 1, end, body))
        if end >= n:
            break
        if at_boundary:
            i = end
            continue
        # Next chunk starts far enough back to repeat ~overlap_tokens, but always moves on.
        back, k = 0, end
        while k - 1 > i and back + sizes[k - 1] <= overlap_tokens:
            back += sizes[k - 1]
            k -= 1
        i = max(k, i + 1)
    return chunks


_MD_HEADING = re.compile(r"^#{1,6}\s")
_CODE_START = re.compile(
    r"^(@|(async\s+)?def\s|class\s|(export\s+)?(default\s+)?(async\s+)?function\b|(pub(\(\w+\))?\s+)?"
    r"(fn|struct|enum|impl|trait|mod)\b|func\s|type\s|interface\s|const\s+\w+\s*=\s*(async\s*)?\()")


def boundary_for(name: str) -> Boundary | None:
    """Section starts for a file, by extension: markdown headings, top-level definitions in code."""
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    if suffix in (".md", ".markdown", ".rst"):
        return lambda line: bool(_MD_HEADING.match(line))
    if suffix in _CODE_EXTENSIONS:
        return lambda line: bool(_CODE_START.match(line))
    return None


def is_text_file(path: Path, *, sniff: int = 8192) -> bool:
    """No NUL byte in the head and valid UTF-8 there (binary files are skipped)."""
    try:
        with path.open("rb") as f:
            head = f.read(sniff)
    except OSError:
        return False
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut by the sniff window is fine.
        return e.start >= len(head) - 3
    return True


def wanted_in_directory(rel: str) -> bool:
    """Whether a file met while walking a directory is ingested (by extension or name)."""
    name = rel.rsplit("/", 1)[-1]
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    return suffix in TEXT_EXTENSIONS or name in _TEXT_NAMES


def resolve_sources(workspace: Path, raw_paths: Sequence[str | Path], data_dir: Path | None,
                    *, max_file_bytes: int, stats: dict[str, os.stat_result] | None = None,
                    known: Callable[[str, os.stat_result], bool] | None = None,
                    ) -> tuple[list[tuple[Path, str]], list[str]]:
    """The files to ingest for ``raw_paths``: ``([(absolute, workspace-relative)], skipped)``.

    Every path is confined to the workspace (after resolving ``..`` and symlinks); one
    outside is a :class:`WorkspaceError`, before anything is read. Directories are walked
    with the workspace's ``.gitignore`` rules and keep only text extensions; a file named
    explicitly is taken if it is text. ``skipped`` explains what was left out and why.

    ``stats``, if given, receives each taken file's stat (taken before anything reads it);
    a file ``known(rel, stat)`` says is as it was when last ingested is not sniffed again.
    """
    from agentcli.tools.paths import WorkspaceWalker

    root = workspace.resolve()
    resolved = check_paths(root, raw_paths)
    walker = WorkspaceWalker(root, data_dir)
    redact = Redactor()
    seen: dict[str, Path] = {}
    skipped: list[str] = []

    def take(path: Path, raw_rel: str, explicit: bool) -> None:
        rel = stored_name(raw_rel, redact)
        if rel in seen:
            if seen[rel] != path:  # two names alike once their secrets are masked: the first one stays
                skipped.append(f"{rel}: the same name as another file once its secret is masked")
            return
        try:
            st = path.stat()
        except OSError as e:
            skipped.append(f"{rel}: {e.strerror}")
            return
        size = st.st_size
        if size > max_file_bytes:
            skipped.append(f"{rel}: larger than {max_file_bytes} bytes")
        elif not explicit and not wanted_in_directory(rel):
            return
        elif not (known is not None and known(rel, st)) and not is_text_file(path):
            skipped.append(f"{rel}: not a UTF-8 text file")
        else:
            seen[rel] = path
            if stats is not None:
                stats[rel] = st

    for p in resolved:
        if p.is_dir():
            for path, rel in walker.iter_files(p):
                take(path, rel, explicit=False)
        else:
            take(p, p.relative_to(root).as_posix(), explicit=True)
    return sorted(((path, rel) for rel, path in seen.items()), key=lambda t: t[1]), skipped


_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def escape_undecodable(text: str) -> str:
    """``text`` as valid UTF-8: each byte of a file name that is not UTF-8 (a lone surrogate
    U+DC80-U+DCFF, as ``os.fsdecode`` gives it) as ``\\xNN``, any other lone surrogate as
    ``\\uNNNN``; anything else as it is."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    return "".join(f"\\x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff"
                   else f"\\u{ord(ch):04x}" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def stored_name(rel: str, redact: Redactor | None = None) -> str:
    """A workspace-relative path as memory stores it (a chunk's ``source``, the ingest manifest,
    events): valid UTF-8 (:func:`escape_undecodable`, reversible: :func:`name_path`), and secrets
    in it masked (:mod:`agentcli.redact`; a masked name is not reversible: its file is found by
    walking its directory again)."""
    return (redact or Redactor()).text(escape_undecodable(rel))


def name_path(root: Path, name: str) -> Path:
    """The file a stored name stands for (see :func:`stored_name`)."""
    if "\\x" in name:
        raw = _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m[1], 16)), name)
        if not (root / name).exists():
            return root / raw
    return root / name


def check_paths(workspace: Path, raw_paths: Sequence[str | Path]) -> list[Path]:
    """The paths resolved, each confined to the workspace and existing (else a one-line error)."""
    from agentcli.tools.paths import PathOutsideWorkspace, resolve_in_workspace

    root = workspace.resolve()
    resolved: list[Path] = []
    for raw in raw_paths:
        try:
            p = resolve_in_workspace(root, str(raw))
        except PathOutsideWorkspace as e:
            raise WorkspaceError(e.message) from None
        if not p.exists():
            raise UsageError(f"no such file or directory: {raw}")
        resolved.append(p)
    return resolved


def source_key(workspace: Path, raw: str) -> str:
    """The stored ``source`` of a path argument: workspace-relative POSIX, without resolving
    symlinks (the file may be gone already: ``forget --source`` of a deleted file)."""
    root = workspace.resolve()
    p = Path(raw)
    p = p if p.is_absolute() else root / p
    norm = Path(os.path.normpath(p))
    if norm == root:
        return "."
    if not norm.is_relative_to(root):
        raise WorkspaceError(f"path {stored_name(raw)!r} is refused: it is outside the workspace ({root})")
    return stored_name(norm.relative_to(root).as_posix())


def read_text(path: Path) -> str:
    """A text file's contents (undecodable bytes replaced; the file was sniffed as UTF-8)."""
    return path.read_text(encoding="utf-8", errors="replace")
