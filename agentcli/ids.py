"""Identifiers of runs and plans: sortable by time, unique enough for one data dir."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_run_id"]


def new_run_id() -> str:
    """A sortable id: UTC time to the second, then random hex (e.g. 20261124-013000-a1b2c3)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
