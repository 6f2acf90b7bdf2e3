"""Runs mini-SWE-agent (its ``DefaultAgent``, ``default.yaml`` config, local environment) on one workspace.

``python -m bench.swe.mini_driver --model M [--api-base URL] --workspace DIR --out FILE < problem``:
the problem statement on stdin; the run's figures (calls, tokens, cost, exit status) written to FILE
as JSON and the trajectory next to it (``FILE`` with ``.traj.json``). Needs ``mini-swe-agent``
(the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _usage(messages: list[dict[str, Any]]) -> dict[str, int | float]:
    inp = cached = out = 0
    for m in messages:
        usage = ((m.get("extra") or {}).get("response") or {}).get("usage") or {}
        inp += int(usage.get("prompt_tokens") or 0)
        out += int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached += int(details.get("cached_tokens") or 0)
    return {"input_tokens": inp, "cached_tokens": cached, "output_tokens": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.swe.mini_driver")
    ap.add_argument("--model", required=True)
    ap.add_argument("--api-base")
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--step-limit", type=int, default=100)
    args = ap.parse_args(argv)
    problem = sys.stdin.read()
    # A model served from a local endpoint has no price in litellm's table: count it as free.
    os.environ.setdefault("MSWEA_COST_TRACKING", "ignore_errors")
    os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")
    if args.api_base:
        os.environ.setdefault("OPENAI_API_KEY", "unused")
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
        from minisweagent import package_dir  # type: ignore[import-not-found,unused-ignore]
        from minisweagent.agents.default import DefaultAgent  # type: ignore[import-not-found,unused-ignore]
        from minisweagent.environments.local import LocalEnvironment  # type: ignore[import-not-found,unused-ignore]
        from minisweagent.models.litellm_model import LitellmModel  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        args.out.write_text(json.dumps({"status": "ERROR", "error": f"mini-SWE-agent is not installed: {exc}"}))
        return 2
    cfg = yaml.safe_load((Path(package_dir) / "config" / "default.yaml").read_text())
    agent_cfg = {**cfg["agent"], "step_limit": args.step_limit, "cost_limit": 0.0,
                 "wall_time_limit_seconds": int(args.timeout),
                 "output_path": args.out.with_suffix(".traj.json")}
    model_kwargs = {"api_base": args.api_base} if args.api_base else {}
    model = LitellmModel(model_name=args.model, model_kwargs=model_kwargs,
                         **{k: v for k, v in (cfg.get("model") or {}).items() if k != "model_kwargs"})
    env = LocalEnvironment(**{**(cfg.get("environment") or {}), "cwd": str(args.workspace), "timeout": 120})
    agent = DefaultAgent(model, env, **agent_cfg)
    t0 = time.monotonic()
    status, error = "", ""
    try:
        status = str(agent.run(problem).get("exit_status", ""))
    except Exception as exc:  # the run's end is recorded, whatever it was
        status, error = "ERROR", f"{type(exc).__name__}: {exc}"[:400]
    wall = time.monotonic() - t0
    model_s = 0.0  # mini-SWE-agent does not time its calls; its own time is left unknown
    out = {"status": status, "error": error, "calls": agent.n_calls, "cost_usd": agent.cost, "wall_s": wall,
           "agent_s": None, "model_s": model_s or None, **_usage(agent.messages)}
    args.out.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
