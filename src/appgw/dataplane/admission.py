"""Which client connections a worker keeps: at most `max_connections`, and at most
`max_connections_per_ip` from one address.

When a new connection would cross a cap, the oldest idle connection (of that address, or of
the worker) is closed to make room: an idle keep-alive connection costs its client one new
handshake, while refusing the new one would let idle connections lock everyone out. When every
connection counted against the cap is busy, the new one is refused (closed at once).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from appgw.core.limits import ClientLimits


class Connection(Protocol):
    client_ip: str

    def close(self) -> None: ...


class Admission:
    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self._per_ip: dict[str, int] = {}
        self._counted: set[Connection] = set()
        # Idle connections, oldest first: of the worker, and of each address.
        self._idle: OrderedDict[Connection, None] = OrderedDict()
        self._idle_by_ip: dict[str, OrderedDict[Connection, None]] = {}

    @property
    def count(self) -> int:
        return len(self._counted)

    def admit(self, connection: Connection) -> bool:
        """Count `connection` (it starts idle), closing older idle ones to make room; False:
        refused, every connection in the way is busy."""
        ip = connection.client_ip
        if self._per_ip.get(ip, 0) >= self.limits.max_connections_per_ip and not self._evict(
            self._idle_by_ip.get(ip)
        ):
            return False
        if len(self._counted) >= self.limits.max_connections and not self._evict(self._idle):
            return False
        self._counted.add(connection)
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self.idle(connection)
        return True

    def idle(self, connection: Connection) -> None:
        if connection in self._counted:
            self._idle[connection] = None
            self._idle_by_ip.setdefault(connection.client_ip, OrderedDict())[connection] = None

    def busy(self, connection: Connection) -> None:
        if self._idle.pop(connection, 0) is None:  # it was idle
            by_ip = self._idle_by_ip[connection.client_ip]
            del by_ip[connection]
            if not by_ip:
                del self._idle_by_ip[connection.client_ip]

    def gone(self, connection: Connection) -> None:
        if connection not in self._counted:
            return
        self.busy(connection)
        self._counted.discard(connection)
        ip = connection.client_ip
        left = self._per_ip[ip] - 1
        if left:
            self._per_ip[ip] = left
        else:
            del self._per_ip[ip]

    def _evict(self, idle: OrderedDict[Connection, None] | None) -> bool:
        if not idle:
            return False
        oldest = next(iter(idle))
        self.gone(oldest)  # counted out now: its close completes later
        oldest.close()
        return True
