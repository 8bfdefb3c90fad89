"""Two real `appgw serve` instances on one real PostgreSQL cluster that goes away and comes back
(issue 13): the data planes serve throughout, the logs say so in a few lines, a worker started
during the outage serves from the instance's copy of what it applied, and once the store is back
a change made through one instance is served by the other."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from backends import Backend, free_port, wait_until
from helpers import TOKEN, ServeProcess, gateway_url, worker_pids
from instances import ADDRESSES, answered_by, gateway_document, start_both
from postgresql import running_postgres, stopped

pytestmark = pytest.mark.slow

OUTAGE = 8.0  # seconds of load with the store stopped: several retries of every follower
# Lines one instance (serve, two workers, the health monitor) may log for such an outage: one
# per process and reason, a few for the LISTEN connections. A traceback per retry was ~90 each.
OUTAGE_LINES = 12
LOAD_CAP = 3000  # requests at most: loopback only, and bounded


class Load:
    """Requests through both instances' listeners, one after another, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        clients = [httpx.Client(base_url=f"http://{a}:{self.port}", timeout=5) for a in ADDRESSES]
        try:
            while not self.stopping.is_set() and self.sent < LOAD_CAP:
                client = clients[self.sent % len(clients)]
                self.sent += 1
                try:
                    response = client.get(f"/load-{self.sent}")
                    if response.status_code != 200:
                        self.failures.append(f"{client.base_url}: {response.status_code}")
                except httpx.HTTPError as error:
                    self.failures.append(f"{client.base_url}: {error!r}")
                time.sleep(0.01)
        finally:
            for client in clients:
                client.close()

    @contextmanager
    def running(self) -> Iterator[None]:
        self.thread.start()
        try:
            yield
        finally:
            self.stopping.set()
            self.thread.join(10)


def log_lines(server: ServeProcess) -> list[str]:
    return server.log_path.read_text().splitlines()


def serves(backend: str, port: int) -> None:
    """Wait until both instances' listeners on `port` answer from `backend`."""
    wait_until(
        lambda: all(answered_by(address, port) == backend for address in ADDRESSES),
        timeout=30,
        what=f"both instances to serve {backend}",
    )


def test_both_data_planes_ride_out_a_store_outage(tmp_path: Path) -> None:
    before, after = Backend("before").start(), Backend("after").start()
    with running_postgres() as cluster:
        servers = start_both(cluster.new_database(), tmp_path, workers=2)
        a, b = (
            httpx.Client(base_url=s.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
            for s in servers
        )
        try:
            port = free_port()
            document = gateway_document(before.port, port)
            assert a.put(gateway_url(), json=document).status_code == 201
            serves("before", port)

            # The store goes away under load: no request fails, a few lines are logged.
            load = Load(port)
            with load.running():
                time.sleep(1)
                lines_before = [len(log_lines(s)) for s in servers]
                with stopped(cluster):
                    time.sleep(OUTAGE)
                    load.stopping.set()
                    for api in (a, b):  # the API says why it cannot answer
                        answer = api.get(gateway_url())
                        assert answer.status_code == 503, answer.text
                        assert answer.json()["error"]["code"] == "StoreUnavailable"
                    assert load.failures == [], load.failures[:5]
                    assert load.sent > 200, load.sent
                    for server, count in zip(servers, lines_before, strict=True):
                        outage_lines = log_lines(server)[count:]
                        text = "\n".join(outage_lines)
                        assert len(outage_lines) <= OUTAGE_LINES, text
                        assert "Traceback" not in text
                        # the two workers and the health monitor each say it once
                        assert text.count("store is unreachable") == 3, text

                    # Every worker of instance A dies; their replacements start without a store.
                    old = worker_pids(servers[0].log_path.read_text())
                    for pid in old.values():
                        os.kill(pid, signal.SIGKILL)

                    def replaced() -> bool:
                        now = worker_pids(servers[0].log_path.read_text())
                        return len(now) == 2 and not set(now.values()) & set(old.values())

                    wait_until(replaced, timeout=30, what="replacement workers")
                    text = servers[0].log_path.read_text()
                    assert "serving the 1 gateway(s) this instance last applied" in text
                    served = [answered_by(ADDRESSES[0], port) for _ in range(20)]
                    assert served == ["before"] * 20, served

            # The store is back: a change through A is served by B (and A's new workers).
            wait_until(lambda: a.get(gateway_url()).status_code == 200, timeout=30, what="API")
            current = a.get(gateway_url()).json()
            current["properties"]["backendHttpSettingsCollection"][0]["properties"]["port"] = (
                after.port
            )
            assert a.put(gateway_url(), json=current).status_code == 200
            serves("after", port)
            for server in servers:
                assert "store is reachable again" in server.log_path.read_text()
        finally:
            a.close()
            b.close()
            for server in servers:
                server.stop()
            before.stop()
            after.stop()
