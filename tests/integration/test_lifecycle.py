"""The processes of one `appgw serve` linked explicitly: "ready" only once every worker and the
health monitor serve, a PUT's operation Succeeded only once every worker serves its version,
and backend health as a long-running operation while the monitor (re)starts, never a raw
error. Real `appgw serve`, real processes, real signals."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from helpers import API_VERSION, TOKEN, ServeProcess, gateway_id, gateway_url, start_serve

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    server = start_serve(
        tmp_path_factory.mktemp("lifecycle") / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, workers=2
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    running = Backend("lifecycle").start()
    yield running
    running.stop()


def api(server: ServeProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


def gateway(backend: Backend, port: int) -> dict[str, object]:
    return (
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("settings", backend.port, "Http")
        .listener("listener", port, "Http")
        .rule("rule1", "listener", pool="pool", settings="settings", priority=10)
        .build()
    )


def pids(server: ServeProcess, pattern: str) -> list[int]:
    return [int(pid) for pid in re.findall(pattern, server.log_path.read_text())]


def health_url() -> str:
    return f"{gateway_id('appgw')}/backendhealth?api-version={API_VERSION}"


def test_ready_means_backend_health_answers_at_once(served: ServeProcess, backend: Backend) -> None:
    assert "appgw is ready: 2 worker(s) and the health monitor serve" in served.log_path.read_text()
    with api(served) as client:
        assert client.put(gateway_url("appgw"), json=gateway(backend, free_port())).is_success
        # No sleep: the report waits until the monitor applied the PUT.
        answer = client.post(health_url())
    assert answer.status_code == 200, answer.text
    [pool] = answer.json()["backendAddressPools"]
    [server] = pool["backendHttpSettingsCollection"][0]["servers"]
    assert server["address"] == "127.0.0.1"


def test_a_put_succeeds_once_every_worker_serves_it(served: ServeProcess, backend: Backend) -> None:
    port = free_port()
    workers = pids(served, r"appgw worker \d+ \(pid (\d+)\) ready")
    assert len(workers) == 2
    with api(served) as client:
        os.kill(workers[1], signal.SIGSTOP)  # this worker cannot apply anything for now
        try:
            created = client.put(gateway_url("appgw"), json=gateway(backend, port))
            assert created.status_code == 201, created.text
            operation = created.headers["Azure-AsyncOperation"]
            time.sleep(1.0)  # far longer than a running worker needs to apply it
            assert client.get(operation).json()["status"] == "InProgress"
            result_url = operation.replace("/operations/", "/operationResults/")
            result = client.get(result_url)
            assert result.status_code == 202 and result.headers["Retry-After"]
        finally:
            os.kill(workers[1], signal.SIGCONT)
        wait_until(lambda: client.get(operation).json()["status"] == "Succeeded")
        assert client.get(result_url).status_code == 204
    # Succeeded means served, by every worker: each connection is answered, none refused.
    for _ in range(6):
        assert httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": "x"}).status_code == 200


def test_backend_health_while_the_monitor_restarts_is_an_operation(
    served: ServeProcess, backend: Backend
) -> None:
    with api(served) as client:
        assert client.put(gateway_url("appgw"), json=gateway(backend, free_port())).is_success
        [monitor] = pids(served, r"appgw health monitor \(pid (\d+)\) listening")
        os.kill(monitor, signal.SIGKILL)  # serve starts a new one; until then: 202, not 503
        wait_until(lambda: _gone(monitor), what="the monitor to exit")
        answer = client.post(health_url())
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"status": "InProgress"}
        location, operation = answer.headers["Location"], answer.headers["Azure-AsyncOperation"]
        assert "/operationResults/" in location and "/operations/" in operation

        # The portal's Overview says the monitor is starting, in a page (not JSON).
        with httpx.Client(base_url=served.base_url, timeout=30) as portal:
            assert portal.post("/portal/signin", data={"token": TOKEN}).status_code == 303
            overview = portal.get("/portal/gateways/sub1/rg1/appgw/overview")
            assert overview.status_code == 200
            assert overview.headers["content-type"].startswith("text/html")
            # A new monitor needs the supervisor's check (0.5 s) and a Python start (~1 s).
            assert "health monitor is starting" in overview.text
            assert '<meta http-equiv="refresh"' in overview.text

        def finished() -> bool:
            return client.get(location).status_code == 200

        wait_until(finished, timeout=30, what="the backend-health operation to finish")
        report = client.get(location).json()
        assert report["backendAddressPools"][0]["backendHttpSettingsCollection"]
        assert client.get(operation).json()["status"] == "Succeeded"
        assert client.post(health_url()).status_code == 200  # the new monitor answers at once


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until serve reaps it: exited all the same.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] == "Z"
