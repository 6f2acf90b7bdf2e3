"""Retrieval quality vs ingest speed of the memory's embedder options, on a real project.

    .venv/bin/python -m bench.memory_quality            # ~3-5 minutes on 2 cores
    .venv/bin/python -m bench.memory_quality --smoke    # 8 questions, the fast options only

The corpus is a real project's docs and code: the sdist of click 8.5.1 from PyPI
(``pip download --no-binary :all:``, cached under the bench cache dir), ingested whole
by ``Memory.add_paths(["."])`` as ``agent memory add .`` would: every text file the walker
keeps, chunked the way memory chunks (~1,400 chunks). The questions (:data:`QUESTIONS`,
written by hand from the docs and code, in a user's words rather than the docs' headings)
each name their answer: a markdown section (``path#Heading``) or a code definition
(``path::name``); a retrieved chunk counts if it overlaps that section by 2+ lines.

Per option: recall@5 (some answer chunk in the top 5), MRR@10, ingest chunks/s of the
embedder alone on the corpus' chunks, and the end-to-end ``add_paths`` rate for the
options that a user can configure. Options:

* ``minilm``: the built-in all-MiniLM-L6-v2 int8, vectors only / hybrid (vectors + BM25);
* ``minilm-128``: the same, truncated at 128 WordPieces (faster, reads half a chunk);
* ``static``: the static table distilled from MiniLM (agentcli.memory.static), vectors / hybrid;
* ``tokenlearn``: ``tokenlearn-static-model`` 0.1.1 (64-d model2vec-format, PyPI; the ``bench``
  extra), if installed (``--no-tokenlearn`` leaves it out);
* ``fts``: LanceDB's BM25 full-text search alone (no embedder);
* ``static>minilm``: two-stage: hybrid static recall of 20 candidates, re-ranked by MiniLM
  cosine of the candidates embedded at query time (the cost is per query, measured).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LANCEDB_LOG", "error")

import numpy as np

from agentcli.config import MemoryConfig
from agentcli.memory import Memory, chunking, ingest
from agentcli.memory.embeddings import BuiltinEmbedder, get_embedder

SDIST = "click==8.5.1"
#: (question, answers): ``path#Heading`` (a markdown section) or ``path::name`` (a def or class).
QUESTIONS: list[tuple[str, list[str]]] = [
    ("how do I make -v count how many times it was given", ["docs/options.md#Counting"]),
    ("read an option's value from an environment variable", ["docs/options.md#Values from Environment Variables"]),
    ("option that takes two values, like a point x y", ["docs/options.md#Multi Value Options",
                                                        "docs/options.md#Multi Value Options as Tuples"]),
    ("on/off switch flag like --shout/--no-shout", ["docs/options.md#Boolean"]),
    ("accept any number of file names as arguments", ["docs/arguments.md#Multiple Arguments"]),
    ("pass a file name that starts with a dash", ["docs/arguments.md#Argument Escape Sequences"]),
    ("ask for a password without showing what is typed", ["docs/option-decorators.md#Password Option",
                                                         "src/click/decorators.py::password_option"]),
    ("ask the user yes or no before going on", ["docs/prompts.md#Confirmation Prompts",
                                               "src/click/termui.py::confirm"]),
    ("test a command and check its output and exit code", ["docs/testing.md#Basic Example"]),
    ("tests that create files in a temporary directory", ["docs/testing.md#File System Isolation"]),
    ("feed input to a prompt from a test", ["docs/testing.md#Input Streams"]),
    ("print text in red or bold in the terminal", ["docs/utils.md#ANSI Colors", "src/click/termui.py::style",
                                                  "src/click/termui.py::secho"]),
    ("show long output page by page like less", ["docs/utils.md#Pager Support",
                                                "src/click/termui.py::echo_via_pager"]),
    ("open the user's text editor to write a message", ["docs/utils.md#Launching Editors",
                                                       "src/click/termui.py::edit"]),
    ("where should an application keep its config files on each platform",
     ["docs/utils.md#Finding Application Folders", "src/click/utils.py::get_app_dir"]),
    ("show a progress bar while processing items", ["docs/utils.md#Showing Progress Bars",
                                                   "src/click/termui.py::progressbar"]),
    ("read a single key press from the terminal", ["docs/utils.md#Getting Characters from Terminal",
                                                  "docs/utils.md#Waiting for Key Press",
                                                  "src/click/termui.py::getchar"]),
    ("enable tab completion in bash and zsh", ["docs/shell-completion.md#Enabling Completion"]),
    ("suggest completions for my own parameter type", ["docs/shell-completion.md#Custom Type Completion",
                                                      "docs/shell-completion.md#Overriding Value Completion"]),
    ("which exit code is used for a usage error", ["docs/exceptions.md#Help Pages and Exit Codes",
                                                  "src/click/exceptions.py::UsageError"]),
    ("handle exceptions myself instead of click printing them", ["docs/exceptions.md#What if I Don't Want That?"]),
    ("only create the output file when something is written to it", ["docs/handling-files.md#File Opening Behaviors"]),
    ("argument that must be a path that exists", ["docs/handling-files.md#File Path Arguments"]),
    ("a --version option that exits before other parameters are processed",
     ["docs/advanced.md#Callbacks and Eager Options", "src/click/decorators.py::version_option"]),
    ("validate an option's value and reject bad ones", ["docs/advanced.md#Callbacks for Validation"]),
    ("make command names case insensitive", ["docs/advanced.md#Token Normalization"]),
    ("call one command from another command", ["docs/advanced.md#Invoking Other Commands"]),
    ("pass unknown options through to another program", ["docs/advanced.md#Forwarding Unknown Options"]),
    ("close a database connection when the command finishes", ["docs/advanced.md#Managing Resources"]),
    ("run the group's function even when no subcommand is given",
     ["docs/commands-and-groups.md#Group Invocation Without Command"]),
    ("load subcommands lazily so the tool starts faster", ["docs/commands-and-groups.md#Lazily Attaching Commands"]),
    ("find out whether a value came from the default or the command line",
     ["docs/commands-and-groups.md#Detecting the Source of a Parameter",
      "src/click/core.py::get_parameter_source"]),
    ("restrict an option to a fixed set of values", ["docs/parameter-types.md#Choice",
                                                    "src/click/types.py::Choice"]),
    ("an integer option limited to a range", ["docs/parameter-types.md#Int and Float Ranges",
                                             "src/click/types.py::IntRange"]),
    ("write my own type that converts the value", ["docs/parameter-types.md#How to Implement Custom Types"]),
    ("install my script as a command with pyproject.toml", ["docs/entry-points.md#Project Files"]),
    ("mark a command as deprecated", ["docs/commands-and-groups.md#Deprecating Commands"]),
    ("get the current context from anywhere", ["src/click/globals.py::get_current_context",
                                              "docs/commands-and-groups.md#Global Context Access"]),
    ("decorator that passes an object of a given type from the context",
     ["src/click/decorators.py::make_pass_decorator"]),
    ("how is text wrapped to the terminal width in help pages", ["src/click/formatting.py::wrap_text",
                                                                "src/click/formatting.py::HelpFormatter"]),
    ("the test runner invoke catches SystemExit", ["src/click/testing.py::invoke"]),
    ("error for a bad value of a parameter", ["src/click/exceptions.py::BadParameter"]),
    ("convert yes/no/1/0 strings to a boolean", ["src/click/types.py::BoolParamType"]),
]


@dataclass(frozen=True)
class Span:
    source: str
    start: int
    end: int


def cache_root() -> Path:
    return Path(os.environ.get("AGENTCLI_BENCH_CACHE", Path(tempfile.gettempdir()) / "agentcli-bench-cache"))


def corpus_dir() -> Path:
    """The unpacked sdist (downloaded once with pip, from the package index)."""
    root = cache_root() / "click-sdist"
    done = root / "unpacked"
    if done.is_dir():
        return next(done.iterdir())
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                    "-d", str(root), SDIST], check=True)
    archive = next(root.glob("click-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(done, filter="data")
    return next(done.iterdir())


def _md_section(path: Path, heading: str) -> tuple[int, int]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pat = re.compile(r"^(#{1,6})\s+(.*)$")
    start = level = None
    for i, line in enumerate(lines, 1):
        m = pat.match(line)
        if not m:
            continue
        if start is None and m.group(2).strip() == heading:
            start, level = i, len(m.group(1))
        elif start is not None and level is not None and len(m.group(1)) <= level:
            return start, i - 1
    if start is None:
        raise KeyError(f"{path}: no heading {heading!r}")
    return start, len(lines)


def _code_def(path: Path, name: str) -> tuple[int, int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [n for n in ast.walk(tree)
             if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and n.name == name]
    if not found:
        raise KeyError(f"{path}: no def {name!r}")
    node = max(found, key=lambda n: (n.end_lineno or n.lineno) - n.lineno)  # the body, not an @overload
    return node.lineno, node.end_lineno or node.lineno


def answer_spans(root: Path) -> list[list[Span]]:
    out = []
    for _q, answers in QUESTIONS:
        spans = []
        for a in answers:
            if "#" in a:
                rel, heading = a.split("#", 1)
                s, e = _md_section(root / rel, heading)
            else:
                rel, name = a.split("::", 1)
                s, e = _code_def(root / rel, name)
            spans.append(Span(rel, s, e))
        out.append(spans)
    return out


def relevant(hit: tuple[str, int, int], spans: list[Span]) -> bool:
    src, s, e = hit
    for sp in spans:
        if sp.source != src:
            continue
        overlap = min(e, sp.end) - max(s, sp.start) + 1
        if overlap >= min(2, sp.end - sp.start + 1):
            return True
    return False


def metrics(ranked: list[list[tuple[str, int, int]]], answers: list[list[Span]]) -> tuple[float, float]:
    """(recall@5, MRR@10) over the questions."""
    r5, rr = 0, 0.0
    for hits, spans in zip(ranked, answers, strict=True):
        ranks = [i for i, h in enumerate(hits[:10], 1) if relevant(h, spans)]
        if ranks and ranks[0] <= 5:
            r5 += 1
        if ranks:
            rr += 1.0 / ranks[0]
    return r5 / len(answers), rr / len(answers)


class FixedEmbedder:
    """An embedder under another name (a variant of the built-in one)."""

    def __init__(self, name: str, dim: int, fn: Callable[[Sequence[str]], Any]) -> None:
        self._name, self._dim, self._fn = name, dim, fn

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Any:
        return self._fn(texts)


def tokenlearn_embedder() -> FixedEmbedder | None:
    try:
        from static_model import get_embeddings  # type: ignore[import-not-found]
    except ImportError:
        return None

    def fn(texts: Sequence[str]) -> Any:
        m = np.asarray(get_embeddings(list(texts)) if texts else np.zeros((0, 64)), dtype=np.float32)
        n = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.clip(n, 1e-12, None)

    return FixedEmbedder("bench/tokenlearn-static-64", 64, fn)


class LookupEmbedder:
    """Serves the vectors computed (and cached) for the corpus' chunks; anything else is
    embedded by the wrapped embedder. Lets ``add_paths`` build the real table without paying
    for the slow embedders twice."""

    def __init__(self, inner: Any, known: dict[str, Any]) -> None:
        self._inner, self._known = inner, known

    @property
    def name(self) -> str:
        return str(self._inner.name)

    @property
    def dim(self) -> int:
        return int(self._inner.dim)

    def embed(self, texts: Sequence[str]) -> Any:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing = [i for i, t in enumerate(texts) if t not in self._known]
        for i, t in enumerate(texts):
            if t in self._known:
                out[i] = self._known[t]
        if missing:
            out[missing] = self._inner.embed([texts[i] for i in missing])
        return out


def corpus_vectors(emb: Any, texts: list[str], *, fresh: bool = False) -> tuple[Any, float | None]:
    """The chunks' vectors and the embedder's chunks/s as measured when they were computed
    (cached per embedder and corpus under the bench cache dir: MiniLM takes minutes)."""
    import hashlib

    key = hashlib.sha256(("\0".join(texts) + emb.name).encode()).hexdigest()[:16]
    path = cache_root() / f"vectors-{key}.npz"
    if path.is_file() and not fresh:
        data = np.load(path)
        return data["vectors"], float(data["cps"])
    emb.embed(["warm up"])
    vecs, secs = _timed(lambda: emb.embed(texts))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=vecs, cps=np.float64(len(texts) / secs))
    return vecs, len(texts) / secs


def run_option(label: str, emb: Any, root: Path, tmp: Path, questions: list[str],
               answers: list[list[Span]], texts: list[str], *, measure_add: bool) -> list[dict[str, Any]]:
    """Ingest the corpus with ``emb`` and score vectors-only and hybrid recall."""
    from agentcli.memory.recall import CHUNK_COLUMNS
    from agentcli.memory.store import CHUNKS

    vecs, embed_cps = corpus_vectors(emb, texts, fresh=measure_add)
    print(f"[bench]   vectors ready ({embed_cps:.0f} chunks/s)", file=sys.stderr, flush=True)
    add_emb = emb if measure_add else LookupEmbedder(emb, dict(zip(texts, vecs, strict=True)))
    mem = Memory(uri=str(tmp / f"db-{len(os.listdir(tmp))}"), config=MemoryConfig(), workspace=root,
                 embedder=add_emb)
    emb.embed(["warm up"])
    res, add_s = _timed(lambda: mem.add_paths(["."]))
    print(f"[bench]   add_paths {add_s:.1f} s", file=sys.stderr, flush=True)
    table = mem.store.open(CHUNKS)
    assert table is not None
    vec_ranked, hyb_ranked, lat = [], [], []
    for q in questions:
        qv = emb.embed([q])[0]
        rows = (table.search(qv, vector_column_name="vector").distance_type("cosine").limit(10)
                .select(CHUNK_COLUMNS).to_list())
        vec_ranked.append([(r["source"], r["start_line"], r["end_line"]) for r in rows])
        t0 = time.perf_counter()
        hits = mem.recall(q, tiers=("semantic",), k=10, min_score=0.0).hits
        lat.append((time.perf_counter() - t0) * 1000)
        hyb_ranked.append([(h.meta["path"], h.meta["start_line"], h.meta["end_line"]) for h in hits])
    out = []
    for kind, ranked in (("vectors", vec_ranked), ("hybrid (vectors + BM25)", hyb_ranked)):
        r5, mrr = metrics(ranked, answers)
        out.append({"option": f"{label}, {kind}", "embedder": emb.name, "recall@5": r5, "mrr": mrr,
                    "embed_cps": embed_cps, "add_cps": res.inserted / add_s if measure_add else None,
                    "query_ms": statistics.median(lat) if kind.startswith("hybrid") else None})
    out[0]["_mem"] = mem
    return out


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def fts_only(mem: Memory, questions: list[str], answers: list[list[Span]]) -> dict[str, Any]:
    from lancedb.query import MatchQuery

    from agentcli.memory.store import CHUNKS

    table = mem.store.open(CHUNKS)
    assert table is not None
    ranked = []
    for q in questions:
        rows = table.search(MatchQuery(q, "text"), query_type="fts").limit(10).select(
            ["source", "start_line", "end_line"]).to_list()
        ranked.append([(r["source"], r["start_line"], r["end_line"]) for r in rows])
    r5, mrr = metrics(ranked, answers)
    return {"option": "BM25 full-text only", "embedder": "-", "recall@5": r5, "mrr": mrr,
            "embed_cps": None, "add_cps": None, "query_ms": None}


def rerank(static_mem: Memory, minilm: Any, questions: list[str], answers: list[list[Span]],
           candidates: int = 20) -> dict[str, Any]:
    ranked, lat = [], []
    for q in questions:
        t0 = time.perf_counter()
        hits = static_mem.recall(q, tiers=("semantic",), k=candidates, min_score=0.0).hits
        vecs = minilm.embed([ingest.chunk_embed_text(h.meta["path"], "file", h.text) for h in hits] or ["-"])
        qv = minilm.embed([q])[0]
        order = np.argsort(-(vecs @ qv))[: len(hits)]
        lat.append((time.perf_counter() - t0) * 1000)
        ranked.append([(hits[i].meta["path"], hits[i].meta["start_line"], hits[i].meta["end_line"]) for i in order])
    r5, mrr = metrics(ranked, answers)
    return {"option": f"two-stage: static hybrid top {candidates}, MiniLM re-rank at query time",
            "embedder": "static + MiniLM", "recall@5": r5, "mrr": mrr, "embed_cps": None, "add_cps": None,
            "query_ms": statistics.median(lat)}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="8 questions, the fast options only")
    ap.add_argument("--no-tokenlearn", dest="tokenlearn", action="store_false",
                    help="leave out tokenlearn-static-model (measured when installed: ~5 s)")
    args = ap.parse_args(argv)
    root = corpus_dir()
    answers_all = answer_spans(root)
    n_q = 8 if args.smoke else len(QUESTIONS)
    questions = [q for q, _ in QUESTIONS][:n_q]
    answers = answers_all[:n_q]
    files, _skipped = chunking.resolve_sources(root, ["."], None, max_file_bytes=2_000_000)
    planned = ingest.plan_files(files, "2026-01-01T00:00:00+00:00")
    texts = [ingest.chunk_embed_text(rel, "file", r["text"]) for rel, (_h, rows) in planned.items()
             for r in rows or []]
    print(f"[bench] corpus {root.name}: {len(files)} files, {len(texts)} chunks, {n_q} questions",
          file=sys.stderr)
    minilm = get_embedder("builtin")
    static = get_embedder("builtin-static")
    options: list[tuple[str, Any]] = [("static (distilled from MiniLM, 384-d)", static)]
    if not args.smoke:
        short = BuiltinEmbedder(max_wordpieces=128)
        options += [("MiniLM int8, 256 WordPieces", minilm),
                    ("MiniLM int8, 128 WordPieces", FixedEmbedder("bench/minilm-128", 384, short.embed))]
        tl = tokenlearn_embedder() if args.tokenlearn else None
        if tl is not None:
            options.append(("tokenlearn-static-model (64-d)", tl))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="memory-quality-") as d:
        tmp = Path(d)
        static_mem = None
        for label, emb in options:
            print(f"[bench] {label} ...", file=sys.stderr)
            got = run_option(label, emb, root, tmp, questions, answers, texts, measure_add=emb is static)
            mem = got[0].pop("_mem")
            if emb is static:
                static_mem = mem
            rows += got
        assert static_mem is not None
        rows.append(fts_only(static_mem, questions, answers))
        if not args.smoke:
            rows.append(rerank(static_mem, minilm, questions, answers))
    print(f"Corpus: {SDIST} sdist from PyPI, `Memory.add_paths(['.'])`: {len(files)} files, {len(texts)} chunks; "
          f"{n_q} questions with known answers (bench/memory_quality.py). Load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n")
    print("| option | recall@5 | MRR@10 | embed chunks/s | `add_paths` chunks/s | recall p50 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        def f(v: Any, spec: str) -> str:
            return "-" if v is None else format(v, spec)
        print(f"| {r['option']} | {r['recall@5']:.2f} | {r['mrr']:.3f} | {f(r['embed_cps'], '.0f')} | "
              f"{f(r['add_cps'], '.0f')} | {f(r['query_ms'], '.1f')} |")
    return rows


if __name__ == "__main__":
    main()
