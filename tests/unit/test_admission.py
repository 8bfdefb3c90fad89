"""Connection caps of a worker (dataplane/admission.py): the oldest idle connection makes room,
a new one is refused only when every connection in the way is busy."""

from __future__ import annotations

from dataclasses import dataclass

from appgw.core.limits import ClientLimits
from appgw.dataplane.admission import Admission


@dataclass(eq=False)
class Fake:
    client_ip: str
    closed: bool = False

    def close(self) -> None:
        self.closed = True


def test_the_oldest_idle_connection_of_an_address_makes_room() -> None:
    admission = Admission(ClientLimits(max_connections=100, max_connections_per_ip=3))
    first, second, third = (Fake("192.0.2.1") for _ in range(3))
    for connection in (first, second, third):
        assert admission.admit(connection)
    admission.busy(first)  # a request in progress is never the one closed
    fourth = Fake("192.0.2.1")
    assert admission.admit(fourth)
    assert (first.closed, second.closed, third.closed) == (False, True, False)
    assert admission.admit(Fake("198.51.100.7")), "another address is not affected"


def test_when_every_connection_is_busy_the_new_one_is_refused() -> None:
    admission = Admission(ClientLimits(max_connections=2, max_connections_per_ip=10))
    a, b = Fake("192.0.2.1"), Fake("192.0.2.2")
    assert admission.admit(a) and admission.admit(b)
    admission.busy(a)
    admission.busy(b)
    refused = Fake("192.0.2.3")
    assert not admission.admit(refused)
    assert not (a.closed or b.closed)
    admission.idle(b)
    assert admission.admit(Fake("192.0.2.4")) and b.closed
    admission.gone(a)
    admission.gone(a)  # twice: connection_lost after an eviction counted it out already
    assert admission.count == 1
