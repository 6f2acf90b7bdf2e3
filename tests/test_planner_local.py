"""The planner on the real embedded model (local/smollm2): a plan that validates, under a grammar."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentcli.config import load_settings
from agentcli.models.client import LLMClient
from agentcli.models.types import CallRecord
from agentcli.planning.plan import validate_steps
from agentcli.planning.planner import make_plan
from agentcli.tools import build_registry


@pytest.mark.local_model
def test_local_model_plans_list_the_python_files(
    tmp_path: Path, allow_model_requests: None, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text("print('hello')\n")
    (ws / "util.py").write_text("def add(a, b):\n    return a + b\n")
    (ws / "README.md").write_text("# Tiny project\n")
    settings = load_settings(workspace=ws, environ={}, use_user_config=False,
                             overrides={"model": "local/smollm2"})
    records: list[CallRecord] = []
    client = LLMClient(settings.config)
    client.observers.append(records.append)

    async def go() -> tuple[object, float]:
        registry = await build_registry(settings, plugins=False, mcp=False)
        try:
            t0 = time.perf_counter()
            plan = await make_plan("list the python files", settings=settings, registry=registry,
                                   client=client, plan_id="local-1", now=datetime.now(UTC), save=False)
            elapsed = time.perf_counter() - t0
            assert validate_steps(plan.steps, registry, max_steps=settings.config.budget.max_steps) == []
            return plan, elapsed
        finally:
            await registry.aclose()

    plan, elapsed = asyncio.run(go())
    assert plan.verify_hash() and plan.steps  # type: ignore[attr-defined]
    with capsys.disabled():
        print(f"\nlocal/smollm2 planned in {elapsed:.1f} s with {len(records)} call(s):")
        for r in records:
            print(f"  {r.outcome} {r.latency_ms / 1000:.1f} s {r.usage.input_tokens}+{r.usage.output_tokens} tok: "
                  f"{r.response.text if r.response else ''}")
        print(plan.to_json())  # type: ignore[attr-defined]
