"""``python -m bench.tasks.agent ARGS``: the `agent` command with the task suite's lever set.

The suite measures lever sets of the small-model planner against each other; which set a
subprocess plans with comes from ``AGENTCLI_LOCAL_PLANNER`` (a benchmark switch, read here and
nowhere in agentcli).
"""

from __future__ import annotations

import os

from agentcli.planning.local import parse_levers
from agentcli.planning.strategy import use_levers

LEVERS_ENV = "AGENTCLI_LOCAL_PLANNER"

if __name__ == "__main__":
    use_levers(parse_levers(os.environ.get(LEVERS_ENV, "")))
    from agentcli.cli.app import main

    main()
