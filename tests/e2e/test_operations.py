"""Running the gateway: configuration changes under load, and workers that die."""

from __future__ import annotations

import os
import re
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway
from helpers import TOKEN, start_serve, worker_pids

pytestmark = pytest.mark.slow

LOAD_CLIENTS = 4  # concurrent keep-alive clients; the machine has 2 cores
LOAD_SECONDS = 4.0  # bounded in time ...
LOAD_MAX_REQUESTS = 20_000  # ... and in count


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[Backend, Backend]]:
    first, second = Backend("blue").start(), Backend("green").start()
    yield first, second
    first.stop()
    second.stop()


def basic(port: int, backend: Backend, **settings: object) -> GatewayBuilder:
    return (
        GatewayBuilder()
        .pool("pool", "127.0.0.1")
        .settings("settings", backend.port, "Http", **settings)
        .listener("listener", port, "Http")
        .rule("rule1", "listener", pool="pool", settings="settings")
    )


class Load:
    """Keep-alive GETs from a few threads until stopped; records every outcome."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.results: list[tuple[int, str]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(LOAD_CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                if len(self.results) >= LOAD_MAX_REQUESTS:
                    return
                try:
                    response = client.get(
                        f"http://127.0.0.1:{self.port}/load", headers={"Host": "load.test"}
                    )
                    outcome = (response.status_code, response.json().get("backend", ""))
                except (httpx.HTTPError, ValueError) as error:
                    with self.lock:
                        self.errors.append(repr(error))
                    continue
                with self.lock:
                    self.results.append(outcome)


def test_f_configuration_changes_under_load_fail_no_request(
    gateway: Gateway, backends: tuple[Backend, Backend]
) -> None:
    blue, green = backends
    port = free_port()
    gateway.apply(basic(port, blue).build())
    with Load(port) as load:
        time.sleep(0.5)
        started = time.monotonic()
        # Switch backends, change timeouts and add a site while requests flow.
        gateway.apply(basic(port, green, requestTimeout=30).build())
        gateway.apply(basic(port, blue, requestTimeout=25).build())
        builder = basic(port, green)
        builder.listener("other", free_port(), "Http").rule(
            "rule2", "other", pool="pool", settings="settings"
        )
        gateway.apply(builder.build())
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - started)))
    assert load.errors == []
    assert len(load.results) > 100, "the load did not run"
    assert {status for status, _ in load.results} == {200}
    assert {backend for _, backend in load.results} == {"blue", "green"}
    # The switches took effect in order: the last answers come from green.
    assert load.results[-1][1] == "green"


def test_g_a_killed_worker_is_replaced_and_traffic_continues(
    gateway: Gateway, backends: tuple[Backend, Backend]
) -> None:
    blue, _ = backends
    port = free_port()
    gateway.apply(basic(port, blue).build())
    before = worker_pids(gateway.log())
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    wait_until(
        lambda: worker_pids(gateway.log()).get(0, before[0]) != before[0],
        timeout=15,
        what="a replacement worker",
    )
    replacement = worker_pids(gateway.log())[0]
    assert replacement != before[0]
    # The replacement serves the current configuration on its own: stop the other worker's
    # listener by killing it too, then traffic must be served by the new one.
    os.kill(before[1], signal.SIGKILL)
    statuses: list[int] = []
    deadline = time.monotonic() + 10
    while len([s for s in statuses if s == 200]) < 20 and time.monotonic() < deadline:
        try:
            statuses.append(
                httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": "x"}, timeout=5).status_code
            )
        except httpx.TransportError:
            time.sleep(0.05)
    assert statuses.count(200) >= 20, statuses
    assert set(statuses) == {200}
    assert gateway.server.process.poll() is None


def demo_answers(ca_file: str, site: str, port: int) -> bool:
    """What the demo's printed curl command does: trust the demo root, resolve to loopback."""
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with httpx.Client(verify=context, timeout=5) as client:
            response = client.get(
                f"https://127.0.0.1:{port}/",
                headers={"Host": f"{site}:{port}"},
                extensions={"sni_hostname": site},
            )
    except httpx.TransportError:
        return False
    assert response.status_code == 200, response.text
    assert "Hello from the appgw demo backend" in response.text
    assert "over HTTPS" in response.text
    return True


def test_demo_shows_end_to_end_tls_working_and_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    commands: list[tuple[str, str, int]] = []
    for _start in range(2):  # the first start creates the demo; the second reuses it
        server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, args=("--demo",))
        try:
            found = re.search(
                r"curl --cacert (\S+) --resolve (\S+):(\d+):127\.0\.0\.1", server.banner
            )
            assert found is not None, server.banner
            command = (found[1], found[2], int(found[3]))
            commands.append(command)
            # 30 s: under the full suite's load (three test processes, each with gateways)
            # the first handshake once took longer than the default 10 s; alone it is instant.
            wait_until(
                lambda: demo_answers(*command),  # noqa: B023
                timeout=30,
                what="the demo gateway",
            )
        finally:
            server.stop()
    assert commands[0] == commands[1]


def test_removed_member_drains_for_its_affinity_sessions(gateway: Gateway) -> None:
    # One settings object means one backend port: the two members differ by address instead,
    # 127.0.0.1 and 127.0.0.2 (both loopback).
    stay = Backend("stay").start()
    leave = Backend("leave", bind="127.0.0.2", port=stay.port).start()
    try:
        port = free_port()

        def configured(*addresses: str) -> GatewayBuilder:
            return (
                GatewayBuilder()
                .pool("pool", *addresses)
                .settings(
                    "settings",
                    stay.port,
                    "Http",
                    cookieBasedAffinity="Enabled",
                    connectionDraining={"enabled": True, "drainTimeoutInSec": 30},
                )
                .listener("listener", port, "Http")
                .rule("rule1", "listener", pool="pool", settings="settings")
            )

        gateway.apply(configured("127.0.0.1", "127.0.0.2").build())
        cookies: dict[str, str] = {}
        for _ in range(4):
            response = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": "x"})
            cookies[response.json()["backend"]] = response.cookies["ApplicationGatewayAffinity"]
        assert set(cookies) == {"stay", "leave"}
        gateway.apply(configured("127.0.0.1").build())
        sticky = httpx.get(
            f"http://127.0.0.1:{port}/",
            headers={"Host": "x", "Cookie": f"ApplicationGatewayAffinity={cookies['leave']}"},
        )
        assert sticky.json()["backend"] == "leave"  # its session drains there
        fresh = [
            httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": "x"}).json()["backend"]
            for _ in range(4)
        ]
        assert set(fresh) == {"stay"}  # new sessions only go to the remaining member
    finally:
        leave.stop()
        stay.stop()
