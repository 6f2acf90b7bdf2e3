"""What every benchmark section gets: sizes, paths, and a way to run a worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class WorkerError(RuntimeError):
    """A worker process failed; the message is the tail of its stderr."""


@dataclass
class Context:
    smoke: bool
    tmp: Path
    root: Path = ROOT
    #: A folder holding another ``agentcli`` package (e.g. a copy from before a change): the
    #: executor bench then also runs agentcli from there, as "agentcli (baseline)".
    baseline: Path | None = None

    @property
    def python(self) -> Path:
        """The venv's interpreter when there is one (what `make bench` uses), else this one."""
        venv = self.root / ".venv" / "bin" / "python"
        return venv if venv.exists() else Path(sys.executable)

    @property
    def agent(self) -> Path:
        venv = self.root / ".venv" / "bin" / "agent"
        if venv.exists():
            return venv
        return Path(sys.executable).parent / "agent"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.root), env.get("PYTHONPATH", "")) if p)
        env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        env.update(extra)
        return env

    def worker(self, *args: str, timeout: float = 1800, first_on_path: Path | None = None,
               **env: str) -> dict[str, Any]:
        """Run ``python -m bench.worker ARGS`` and return the JSON it prints last.
        ``first_on_path`` goes before everything on PYTHONPATH (a baseline agentcli)."""
        environ = self.env(**env)
        if first_on_path is not None:
            environ["PYTHONPATH"] = os.pathsep.join((str(first_on_path), environ["PYTHONPATH"]))
        # Not run from the repo: `python -m` puts the current directory first on sys.path, which
        # would shadow a baseline agentcli given on PYTHONPATH.
        proc = subprocess.run([str(self.python), "-m", "bench.worker", *args], cwd=self.tmp, env=environ,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or f"exit {proc.returncode}"
            raise WorkerError(tail)
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}"
        result: dict[str, Any] = json.loads(last)
        return result
