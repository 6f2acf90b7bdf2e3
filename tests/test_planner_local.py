"""The planner on the real embedded model (local/smollm2): a plan that validates, under a grammar."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentcli.config import load_settings
from agentcli.models.client import LLMClient
from agentcli.models.types import CallRecord
from agentcli.planning.plan import Plan, validate_steps
from agentcli.planning.planner import make_plan
from agentcli.tools import build_registry


@pytest.mark.local_model
def test_local_model_plans_list_the_python_files(tmp_path: Path, allow_model_requests: None) -> None:
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

    async def go() -> tuple[Plan, list[object]]:
        registry = await build_registry(settings, plugins=False, mcp=False)
        try:
            plan = await make_plan("list the python files", settings=settings, registry=registry,
                                   client=client, plan_id="local-1", now=datetime.now(UTC), save=False)
            assert validate_steps(plan.steps, registry, max_steps=settings.config.budget.max_steps) == []
            # What the plan's listing steps give when they run: the plan does what was asked.
            listed = [(await registry.call(s.tool, s.args)).output for s in plan.steps if s.tool == "list_files"]
            return plan, listed
        finally:
            await registry.aclose()

    plan, listed = asyncio.run(go())
    assert plan.verify_hash()
    assert [r.outcome for r in records] == ["ok"]  # one grammar-constrained call, no re-ask
    assert [s.tool for s in plan.steps] == ["list_files"], plan.to_json()
    assert [sorted(out) for out in listed] == [["app.py", "util.py"]], listed
