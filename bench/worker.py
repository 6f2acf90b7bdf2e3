"""Measurements that run in a fresh process: ``python -m bench.worker KIND ARGS...``.

Prints one JSON object on the last line of stdout. A fresh process per framework keeps
the frameworks from sharing a heap, a garbage collector or an event loop policy, and
gives each one's first-import time.

* ``steps NAME N REPS WARMUP``: ``{"import_s": .., "runs": [[t_N, t_1], ...]}`` (seconds)
* ``local TASKS_JSON MAX_TASKS``: see :mod:`bench.local`
* ``map WORKSPACE DATA_DIR TASK REPEAT``: see :mod:`bench.repomap_bench`
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def steps(name: str, n: int, reps: int, warmup: int) -> dict[str, Any]:
    from bench.frameworks import EXECUTE_SECONDS, PREPARE

    t0 = time.perf_counter()
    run = PREPARE[name]()
    import_s = time.perf_counter() - t0
    for _ in range(warmup):
        run(n)
        run(1)
    runs = []
    execute = []  # agentcli only: seconds inside Executor.execute() in the N-step and 1-step runs
    cpu = []  # process CPU seconds of the N-step and 1-step runs
    for i in range(reps):
        # Alternate the order so that neither size always runs right after the other.
        sizes = (n, 1) if i % 2 == 0 else (1, n)
        out: dict[int, tuple[float, float, float]] = {}
        for size in sizes:
            c0 = time.process_time()
            wall = run(size)
            out[size] = (wall, EXECUTE_SECONDS[0], time.process_time() - c0)
        runs.append([out[n][0], out[1][0]])
        execute.append([out[n][1], out[1][1]])
        cpu.append([out[n][2], out[1][2]])
    agentcli = sys.modules.get("agentcli")
    where = str(Path(agentcli.__file__).parent) if agentcli is not None and agentcli.__file__ else None
    return {"name": name, "n": n, "import_s": import_s, "runs": runs, "execute": execute, "cpu": cpu,
            "agentcli": where}


def main(argv: list[str]) -> int:
    kind, *args = argv
    if kind == "steps":
        out = steps(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif kind == "map":
        from bench.repomap_bench import worker as map_worker

        out = map_worker(args[0], args[1], args[2], int(args[3]))
    elif kind == "local":
        from bench.local import worker

        out = worker(json.loads(args[0]), int(args[1]))
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
