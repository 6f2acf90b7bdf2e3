"""Finding task candidates: a release pair's fix-release tests run on both releases.

``python -m bench.swe.mine PROJECT V1 V2 [V3 ...] [--out DIR]``: for each consecutive pair of the
given versions (pypi only), the fix release's test files that changed are run on the base release
and on the base with the fix's changed source files; tests that fail on the base and pass with the
fix are fail-to-pass candidates. Prints one line per pair and writes a draft ``task.toml`` per pair
with candidates under ``--out``. A draft still needs its problem statement written by hand and a
``--check``.

``python -m bench.swe.mine --derive TASK_DIR ...`` fills in an existing task's lists instead (for an
injected bug, or tests written here): the lists it has name the test files to run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.swe import fetch, grade
from bench.swe.tasks import Task


def _is_test(rel: str) -> bool:
    parts = rel.split("/")
    name = parts[-1]
    return rel.endswith(".py") and (any(p in ("test", "tests", "testing") for p in parts[:-1])
                                    or name.startswith("test_") or name.endswith("_test.py") or name == "test.py")


def _is_source(rel: str) -> bool:
    parts = rel.split("/")
    skip = {"docs", "doc", "examples", "benchmarks", "bench", "scripts"}
    return (rel.endswith(".py") and not _is_test(rel) and parts[-1] not in ("setup.py", "conftest.py", "noxfile.py")
            and not skip.intersection(parts) and not rel.endswith("version.py"))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def mine_pair(project: str, base: str, fix: str, out: Path, pythonpath: list[str]) -> str:
    b = fetch.release("pypi", project, base)
    f = fetch.release("pypi", project, fix)
    bf, ff = _files(b), _files(f)
    changed = [r for r in sorted(set(bf) | set(ff)) if bf.get(r) != ff.get(r)]
    tests = [r for r in changed if _is_test(r) and r in ff and not r.endswith("conftest.py")]
    src = [r for r in changed if _is_source(r)]
    if not tests or not src:
        return f"{project} {base}->{fix}: no changed tests ({len(tests)}) or sources ({len(src)})"
    pp = pythonpath or (["src"] if any(r.startswith("src/") for r in src) else ["."])
    draft = Task(id=f"{project}-{fix}", dir=out, project=project, registry="pypi", base=base, fix=fix,
                 language="python", kind="upstream", source="", problem="", fail_to_pass=tests, pass_to_pass=[],
                 fix_files=src, hidden_from_fix=tests, pythonpath=pp, test_timeout=300)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        fetch.base_tree(draft, t / "base")
        fetch.fix_tree(draft, t / "fix")
        results = {}
        for name in ("base", "fix"):
            grade.prepare(draft, t / name, t / f"g{name}")
            results[name], err, tail = grade.run_tests(draft, t / f"g{name}")
            if err:
                return f"{project} {base}->{fix}: {name}: {err} {tail[-300:]}"
    rb, rf = results["base"], results["fix"]
    f2p = sorted(k for k in rf if rf[k] in grade.PASSING and rb.get(k) not in grade.PASSING)
    p2p = sorted(k for k in rf if rf[k] in grade.PASSING and rb.get(k) in grade.PASSING)
    diff_lines = sum(len(ff.get(r, b"").splitlines()) for r in src)
    line = (f"{project} {base}->{fix}: f2p={len(f2p)} p2p={len(p2p)} src={','.join(src)} tests={','.join(tests)}"
            f" fix_lines~{diff_lines}")
    if f2p and f2p != sorted(rf):
        d = out / f"{project}-{fix}"
        d.mkdir(parents=True, exist_ok=True)

        def arr(xs: list[str]) -> str:
            return "[\n" + "".join(f"    {json.dumps(x)},\n" for x in xs) + "]"

        (d / "task.toml").write_text(
            f'project = "{project}"\nregistry = "pypi"\nbase = "{base}"\nfix = "{fix}"\nlanguage = "python"\n'
            f'kind = "upstream"\nsource = ""\nfix_files = {arr(src)}\nhidden_from_fix = {arr(tests)}\n'
            f'pythonpath = {arr(pp)}\nfail_to_pass = {arr(f2p)}\npass_to_pass = {arr(p2p)}\n')
        (d / "gold.diff").write_text(fetch.unified_diff({r: bf.get(r) for r in src}, {r: ff.get(r) for r in src}))
    return line


def derive(task_dir: Path) -> str:
    """Fill in a task's test lists from its test files: the lists it has name the files to run."""
    from bench.swe.tasks import load

    task = load(task_dir)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        fetch.base_tree(task, t / "base")
        fetch.fix_tree(task, t / "fix")
        results = {}
        for name in ("base", "fix"):
            grade.prepare(task, t / name, t / f"g{name}")
            results[name], err, tail = grade.run_tests(task, t / f"g{name}")
            if err:
                return f"{task.id}: {name}: {err} {tail[-300:]}"
    rb, rf = results["base"], results["fix"]
    f2p = sorted(k for k in rf if rf[k] in grade.PASSING and rb.get(k) not in grade.PASSING)
    p2p = sorted(k for k in rf if rf[k] in grade.PASSING and rb.get(k) in grade.PASSING)
    text = (task_dir / "task.toml").read_text()
    head = text.split("fail_to_pass =", 1)[0]

    def arr(xs: list[str]) -> str:
        return "[\n" + "".join(f"    {json.dumps(x)},\n" for x in xs) + "]"

    (task_dir / "task.toml").write_text(f"{head}fail_to_pass = {arr(f2p)}\npass_to_pass = {arr(p2p)}\n")
    return f"{task.id}: f2p={len(f2p)} p2p={len(p2p)}"


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--derive"]:
        for d in sys.argv[2:]:
            print(_safe(lambda d=d: derive(Path(d))), flush=True)
        return 0
    ap = argparse.ArgumentParser(prog="python -m bench.swe.mine")
    ap.add_argument("project")
    ap.add_argument("versions", nargs="+")
    ap.add_argument("--out", type=Path, default=Path("/tmp/swe-candidates"))
    ap.add_argument("--pythonpath", action="append", default=[])
    ap.add_argument("--jobs", type=int, default=4)
    args = ap.parse_args(argv)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda v: _safe(lambda: fetch.release("pypi", args.project, v)), args.versions))
    for base, fix in zip(args.versions, args.versions[1:], strict=False):
        print(_safe(lambda b=base, f=fix: mine_pair(args.project, b, f, args.out, args.pythonpath)), flush=True)
    shutil.rmtree(fetch.cache_dir() / "work", ignore_errors=True)
    return 0


def _safe(fn: object) -> str:
    try:
        return str(fn())  # type: ignore[operator]
    except Exception as exc:  # a miner reports and goes on
        return f"error: {type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
