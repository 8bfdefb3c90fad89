"""ARM's asynchronous operations of this instance: what a client polls after a 201/202.

* A write (PUT, PATCH, DELETE, start, stop) is committed at once; its operation reports
  `InProgress` until every process of this instance (each data-plane worker and the health
  monitor) serves the committed version, then `Succeeded`, as Azure's provisioning state turns
  Succeeded once every instance applied the change. An instance without a data plane (the
  service used on its own) reports the stored status.
* Backend health, asked while the health monitor is not reachable (starting, or being
  restarted by `appgw serve`), becomes an operation too: it is asked again on every poll and its
  result is the operation's result once the monitor answers (Azure's backend health is a
  long-running operation; the Azure SDK's poller follows Location to the result).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appgw.health.report import MonitorNotReachable
from appgw.state.applied import AppliedVersions

IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
# Operations remembered in memory; older ones answer with their stored status (writes) or are
# gone (backend health). Clients poll for seconds, not for thousands of operations.
MAX_REMEMBERED = 1000
# How long a backend-health operation waits for the monitor before it fails: `appgw serve`
# restarts a monitor within a second; one that is not up after this will not come up soon.
HEALTH_WAIT_SECONDS = 120.0


@dataclass
class HealthOperation:
    ask: Callable[[], dict[str, Any]]  # raises MonitorNotReachable while it cannot answer
    started: float
    result: dict[str, Any] | None = None
    failure: Exception | None = None

    @property
    def status(self) -> str:
        if self.result is not None:
            return SUCCEEDED
        return FAILED if self.failure is not None else IN_PROGRESS


class Operations:
    def __init__(self, applied: AppliedVersions | None = None) -> None:
        self.applied = applied  # set by `appgw serve`: what its processes serve
        self._writes: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._health: OrderedDict[str, HealthOperation] = OrderedDict()
        self._lock = threading.Lock()

    # --- writes -----------------------------------------------------------------------------

    def committed(self, operation_id: str, gateway_key: str, seq: int) -> None:
        with self._lock:
            self._writes[operation_id] = (gateway_key, seq)
            _bound(self._writes)

    def write_status(self, operation_id: str, stored: str) -> str:
        """The status of a write whose stored status is `stored`."""
        with self._lock:
            pending = self._writes.get(operation_id)
        if pending is None or self.applied is None or stored != SUCCEEDED:
            return stored
        status = self.applied.status(*pending)
        if status != IN_PROGRESS:
            with self._lock:
                self._writes.pop(operation_id, None)
        return status

    # --- backend health ---------------------------------------------------------------------

    def start_health(self, ask: Callable[[], dict[str, Any]]) -> str:
        operation_id = str(uuid.uuid4())
        with self._lock:
            self._health[operation_id] = HealthOperation(ask, time.monotonic())
            _bound(self._health)
        return operation_id

    def health(self, operation_id: str) -> HealthOperation | None:
        """The operation, asked again first while it is in progress (None: unknown id)."""
        with self._lock:
            operation = self._health.get(operation_id)
        if operation is None or operation.status != IN_PROGRESS:
            return operation
        try:
            operation.result = operation.ask()
        except MonitorNotReachable as error:
            if time.monotonic() - operation.started > HEALTH_WAIT_SECONDS:
                operation.failure = error
        except Exception as error:  # the answer is an error: the operation failed with it
            operation.failure = error
        return operation


def _bound(entries: OrderedDict[str, Any]) -> None:
    while len(entries) > MAX_REMEMBERED:
        entries.popitem(last=False)
