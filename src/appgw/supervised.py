"""What a process that `appgw serve` supervises (a worker, the health monitor) needs to know
about its supervisor: it must stop when the supervisor is gone, even after a kill -9."""

from __future__ import annotations

import os

PARENT_PID_ENV = "APPGW_PARENT_PID"


def supervisor_pid() -> int:
    """The `appgw serve` that started this process (its parent, for a process run by hand)."""
    try:
        return int(os.environ[PARENT_PID_ENV])
    except (KeyError, ValueError):
        return os.getppid()


def supervisor_gone(supervisor: int) -> bool:
    # Orphans are adopted by init or a subreaper, so the parent changes when serve dies.
    return os.getppid() != supervisor
