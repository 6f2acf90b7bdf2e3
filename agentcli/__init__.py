"""agentcli: a command-line developer agent with explicit plans, budgets, approvals and replayable runs."""

__version__ = "0.1.0"
