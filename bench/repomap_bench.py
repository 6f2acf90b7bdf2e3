"""The repository map (``python -m bench --only map``): what it costs, cold and warm, and how much
of a real project's definitions it outlines.

Every figure is CPU time (user + system) of ``repo_map`` in a fresh process (``python -m
bench.worker map``), after the tokenizer is loaded (a run has it loaded before it plans):

- **cold**: an empty data dir (no persisted outlines): what the first map of a workspace costs;
- **warm, new process**: the data dir the cold map left (what the next ``agent run`` pays);
- **warm, same process**: a second map in the process (a re-plan).

Workspaces: the standard library of the running Python (CPython's ``Lib/``, copied without
``site-packages``), a generated Python package of 2,000 modules, this repository, and real
projects from the package registries when they can be fetched (npm: ``qs`` (JavaScript),
``rxjs`` (TypeScript sources in ``src/``), ``yargs-parser`` (JavaScript whose parse method holds
~30 inner functions); Debian: ``golang-github-spf13-cobra-dev`` (Go),
``librust-anyhow-dev`` (Rust)), kept in ``$AGENTCLI_BENCH_CACHE/projects`` (default: the temp
dir's ``agentcli-bench-cache``). With
``--baseline DIR`` the same maps are made by the agentcli package in DIR (e.g. ``git archive
0810ea0 agentcli | tar -x -C DIR``), side by side. The default budget (2,000 tokens) is used.

Coverage (:mod:`bench.mapcover`): of the top-level definitions each grammar's tags query finds in
the project's source folder, the share the outliner shows in the outline of each file (whatever
the budget), and, within the budget, the share shown of the files the map outlines whole.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from bench.context import Context, WorkerError
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "repository map"
BUDGET = 2000
MODEL = "openai/gpt-4o-mini"
#: A task on CPython's Lib/ that names an identifier (its defining file is looked for in every file).
IDENTIFIER_TASK = "make parse_qsl keep blank values by default"
COLD_TARGET_S = 0.5
WARM_TARGET_S = 0.1


def _projects_dir() -> Path:
    """Where fetched projects are kept between runs (as the other benches keep their downloads)."""
    return Path(os.environ.get("AGENTCLI_BENCH_CACHE", Path(tempfile.gettempdir()) / "agentcli-bench-cache")) / \
        "projects"


# --------------------------------------------------------------------------- the worker


def worker(workspace: str, data_dir: str, task: str, repeat: int) -> dict[str, Any]:
    """``repo_map`` timed in this process: ``repeat`` maps, CPU seconds each, and the first's text."""
    import time

    from agentcli.models import tokens
    from agentcli.planning.repomap import repo_map

    tokens.count_text("load the tokenizer", MODEL)
    out: list[float] = []
    text = ""
    for _ in range(repeat):
        t0 = time.process_time()
        got = repo_map(Path(workspace), Path(data_dir), task, max_tokens=BUDGET, model=MODEL)
        out.append(time.process_time() - t0)
        text = text or got
    return {"cpu": out, "text": text, "tokens": tokens.count_text(text, MODEL)}


# --------------------------------------------------------------------------- workspaces


def _generate(root: Path, modules: int) -> Path:
    ws = root / f"gen{modules}"
    for i in range(modules):
        pkg = ws / "pkg" / f"sub{i // 100:03}"
        pkg.mkdir(parents=True, exist_ok=True)
        body = "".join(f"def function_{i}_{j}(value: int, *, scale: float = 1.0) -> float:\n"
                       f"    return value * scale\n\n\n" for j in range(20))
        (pkg / f"mod{i:05}.py").write_text(f"from pkg.sub000 import mod00000\n\n\n{body}")
    return ws


def _stdlib(root: Path) -> Path:
    ws = root / "cpython-Lib"
    shutil.copytree(sysconfig.get_paths()["stdlib"], ws, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc"))
    return ws


def _fetch(name: str) -> Path | None:
    """A real project, fetched once with the registry's own client; None when it cannot be."""
    dest = _projects_dir() / name
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if name in ("qs-6.13.0", "rxjs-7.8.1", "yargs-parser-21.1.1"):
                subprocess.run(["npm", "pack", "@".join(name.rsplit("-", 1)), "--silent"], cwd=tmp, check=True,
                               capture_output=True, timeout=120)
                with tarfile.open(next(Path(tmp).glob("*.tgz"))) as tar:
                    tar.extractall(tmp, filter="data")
                shutil.move(str(Path(tmp) / "package"), dest)
            else:
                package, inner = {
                    "cobra": ("golang-github-spf13-cobra-dev", "usr/share/gocode/src/github.com/spf13/cobra"),
                    "anyhow": ("librust-anyhow-dev", "usr/share/cargo/registry/anyhow-*"),
                }[name]
                subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, capture_output=True,
                               timeout=120)
                deb = next(Path(tmp).glob("*.deb"))
                subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True, capture_output=True)
                shutil.move(str(next((Path(tmp) / "x").glob(inner))), dest)
        except (OSError, subprocess.SubprocessError, StopIteration, KeyError, tarfile.TarError):
            return None
    return dest


#: Real projects: (name, language, the folder its sources are in, a task).
REAL = [
    ("qs-6.13.0", "JavaScript", "lib/", "fix parseKeys in lib/parse.js so that empty keys are kept"),
    ("rxjs-7.8.1", "TypeScript", "src/", "make debounceTime in src/internal/operators/debounceTime.ts take a "
                                        "leading option"),
    ("cobra", "Go", "", "add a flag to turn off the completion command in completions.go"),
    ("anyhow", "Rust", "src/", "add a method to Chain in src/chain.rs that counts the errors"),
    # Most of its code is the ~30 functions YargsParser.parse defines inside itself (an 850-line method).
    ("yargs-parser-21.1.1", "JavaScript", "build/lib/", "unknown options given after -- must stay positional "
                                                        "when unknown-options-as-args is set"),
]
#: The file of a real project whose long function holds its inner functions, and that function's indent.
INNER = {"yargs-parser-21.1.1": ("build/lib/yargs-parser.js", " " * 8)}


def _inner_shown(ws: Path, rel: str, indent: str, text: str) -> tuple[int, int]:
    """(the functions a long function defines that the map shows, how many it defines)."""
    import re

    names = re.findall(rf"^{indent}function (\w+)\(", (ws / rel).read_text(), re.MULTILINE)
    shown = [n for n in names if re.search(rf"^ +\d+ +function {n}\(", text, re.MULTILINE)]
    return len(shown), len(names)


# --------------------------------------------------------------------------- measuring


def _maps(ctx: Context, ws: Path, task: str, reps: int, *, baseline: bool = False) -> dict[str, Any]:
    """cold (fresh data dir each), warm in a new process, warm in the same process."""
    first_on_path = ctx.baseline if baseline else None
    cold: list[float] = []
    same: list[float] = []
    text = ""
    tokens = 0
    data = ctx.tmp / f"map-data-{ws.name}{'-baseline' if baseline else ''}"
    for _ in range(reps):
        shutil.rmtree(data, ignore_errors=True)
        r = ctx.worker("map", str(ws), str(data), task, "2", first_on_path=first_on_path)
        cold.append(r["cpu"][0])
        same.append(r["cpu"][1])
        text, tokens = r["text"], r["tokens"]
    out: dict[str, Any] = {"cold": cold, "same": same, "text": text, "tokens": tokens}
    if not baseline:  # the baseline keeps nothing on disk: its every new process is cold
        out["warm"] = [ctx.worker("map", str(ws), str(data), task, "1")["cpu"][0] for _ in range(reps)]
    return out


def _coverage(ws: Path, text: str, under: str) -> dict[str, str]:
    from agentcli.tools.paths import WorkspaceWalker
    from bench.mapcover import map_coverage, outline_coverage

    files = [rel for _, rel in WorkspaceWalker(ws).iter_files() if rel.startswith(under)]
    outlined = outline_coverage(ws, files)
    in_map = map_coverage(ws, text, files)
    whole = [f for f in in_map.found if in_map.shown[f] and f != _cut(text)]
    found = sum(len(s) for s in outlined.found.values())
    return {
        "files": str(len(outlined.found)), "definitions": str(found),
        "outlined": f"{outlined.share():.1%}",
        "shown whole": f"{len(whole)} files, {in_map.share(whole):.1%}",
        "in the map": f"{sum(len(in_map.shown[f]) for f in in_map.found)} of {found}",
    }


def _files_shown(text: str) -> int:
    """How many files a map outlines (each outline starts with the file's path, unindented)."""
    body = text.partition("most relevant first:\n")[2]
    return sum(1 for line in body.splitlines() if line and not line.startswith(" "))


def _test_runs(text: str) -> int:
    """How many lines of a map sum up consecutive tests (``   12-761 49 tests: ...``)."""
    return sum(1 for line in text.splitlines() if re.match(r"\s*\d+-\d+ +\d+ tests: ", line))


def _cut(text: str) -> str | None:
    """The file whose outline the budget cut short (the map's last, ending in ``...``), if any."""
    lines = text.rstrip("\n").split("\n")
    if lines[-1].strip() != "...":
        return None
    return next((line for line in reversed(lines) if line and not line.startswith(" ")), None)


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    reps = 1 if ctx.smoke else 5
    root = ctx.tmp / "map-workspaces"
    root.mkdir(parents=True, exist_ok=True)
    spaces: list[tuple[str, Path, str, str, str]] = []  # (label, ws, task, under, language)
    if not ctx.smoke:
        spaces.append(("CPython Lib/", _stdlib(root), "add a timeout parameter to urlopen in urllib/request.py",
                       "", "Python"))
    n = 50 if ctx.smoke else 2000
    spaces.append((f"{n:,} generated modules", _generate(root, n),
                   f"rename function_7_3 in pkg/sub000/mod{7:05}.py", "", "Python"))
    if not ctx.smoke:
        spaces.append(("this repository", ctx.root, "add a verify step to agentcli/engine/runner.py", "agentcli/",
                       "Python"))
        for name, lang, under, task in REAL:
            ws = _fetch(name)
            if ws is None:
                res.notes.append(f"{name} ({lang}) could not be fetched: not measured")
                continue
            spaces.append((name, ws, task, under, lang))
    rows: list[str] = []
    for label, ws, task, under, lang in spaces:
        m = _maps(ctx, ws, task, reps)
        cold, warm, same = (Summary.of(m[k], "s") for k in ("cold", "warm", "same"))
        big = label.startswith(("CPython", "2,000"))
        res.rows.append(Row(SECTION, f"{label}: cold map, CPU", cold, target=f"≤ {COLD_TARGET_S:g} s" if big else "",
                            met=cold.median <= COLD_TARGET_S if big else None))
        res.rows.append(Row(SECTION, f"{label}: warm map (new process, cache on disk), CPU", warm,
                            target=f"≤ {WARM_TARGET_S:g} s" if label.startswith("CPython") else "",
                            met=warm.median <= WARM_TARGET_S if label.startswith("CPython") else None))
        res.rows.append(Row(SECTION, f"{label}: warm map (same process, a re-plan), CPU", same))
        if label.startswith("CPython"):
            # A task that writes an identifier as code: the files that define it are searched for,
            # which reads every source file (the cache cannot answer for a word it has not seen).
            named = _maps(ctx, ws, IDENTIFIER_TASK, reps)
            res.rows.append(Row(SECTION, f"{label}: warm map (new process), a task naming an identifier, CPU",
                                Summary.of(named["warm"], "s")))
        if ctx.baseline is not None:
            try:
                b = _maps(ctx, ws, task, 1 if label.startswith("CPython") else min(reps, 3), baseline=True)
            except WorkerError as e:
                res.notes.append(f"baseline on {label}: {e}")
            else:
                res.rows.append(Row(SECTION, f"{label}: cold map, CPU (baseline)", Summary.of(b["cold"], "s")))
                res.rows.append(Row(SECTION, f"{label}: warm map (same process), CPU (baseline)",
                                    Summary.of(b["same"], "s")))
                res.rows.append(Row(SECTION, f"{label}: ratio cold baseline / cold (medians)",
                                    Summary.of([Summary.of(b["cold"], "s").median / cold.median], "x")))
                res.notes.append(f"{label}: the map is {m['tokens']} tokens, {_files_shown(m['text'])} files outlined, "
                                 f"{_test_runs(m['text'])} lines summing up a test file's tests (baseline: "
                                 f"{b['tokens']} tokens, {_files_shown(b['text'])} files, "
                                 f"{_test_runs(b['text'])} such lines).")
                if label in INNER:
                    got, of = _inner_shown(ws, *INNER[label], b["text"])
                    res.notes.append(f"{label}, baseline: the map shows {got} of the {of} functions "
                                     f"{INNER[label][0]}'s parse defines inside itself.")
        if label in INNER:
            got, of = _inner_shown(ws, *INNER[label], m["text"])
            res.notes.append(f"{label}: the map shows {got} of the {of} functions {INNER[label][0]}'s parse "
                             "defines inside itself (a long function's inner functions are outlined under it).")
        cov = _coverage(ws, m["text"], under) if lang != "Python" or label == "this repository" else None
        rows.append(f"| {label} | {lang} | {m['tokens']} of {BUDGET} | "
                    + (" | ".join(cov[k] for k in ("files", "definitions", "outlined", "shown whole", "in the map"))
                       if cov else "- | - | - | - | -") + " |")
    res.extra_markdown = "\n".join([
        "| workspace | language | map tokens | source files | top-level definitions (tags query) | outlined "
        "(every file) | files the map shows whole: share shown | shown in the map, in all |",
        "|---|---|---|---|---|---|---|---|", *rows])
    res.notes += [
        "CPU time (user + system) of repo_map in a fresh process after the tokenizer is loaded (python -m "
        "bench.worker map); cold: empty data dir; warm (new process): the cache the cold map left in the data dir; "
        "warm (same process): a second map in the process.",
        "Coverage counts each grammar's own tags query (queries/tags.scm, as Aider uses it) at the top level "
        "(not inside a function body), over the project's source folder (qs lib/, rxjs src/, anyhow src/, "
        "yargs-parser build/lib/, all of cobra). 'outlined': the share the outliner puts in each file's outline; "
        "'shown whole': within the "
        f"{BUDGET}-token budget, the files the map outlines without cutting them short.",
    ]
    return res


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.repomap_bench``: the same as ``python -m bench --only map``."""
    from bench.cli import main as bench_main

    return bench_main(["--only", "map", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())
