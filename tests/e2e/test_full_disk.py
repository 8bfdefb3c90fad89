"""A full data directory must not take the data plane down (issue 12, item 16).

The data directory is a small tmpfs of its own (mounting one needs root, as the machines that
run these tests have; elsewhere the test says so and is skipped). It is filled to the last byte
while a gateway serves; requests must keep being answered by the same workers, and once space
is freed the gateway works as before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway
from helpers import TOKEN, fill, gateway_url, small_file_system, start_serve

pytestmark = pytest.mark.slow

SIZE = "48m"  # room for the store, the metrics files and a few MB of logs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_file_system(tmp_path / "disk", SIZE) as mount:
        yield mount


def worker_pids(server_log: Path) -> list[int]:
    return [
        int(pid)
        for pid in re.findall(r"appgw worker \d+ \(pid (\d+)\) ready", server_log.read_text())
    ]


def test_a_full_data_directory_does_not_stop_traffic(small_disk: Path) -> None:
    backend = Backend("full-disk").start()
    # The mount is the data directory itself: serve's own log stays outside, writable.
    server = start_serve(small_disk, {"APPGW_ADMIN_TOKEN": TOKEN}, workers=2)
    try:
        gateway = Gateway(server, workers=2)
        port = free_port()
        document = (
            GatewayBuilder()
            .pool("pool", "127.0.0.1")
            .settings("settings", backend.port)
            .listener("listener", port, "Http")
            .rule("rule1", "listener", pool="pool", settings="settings")
            .build()
        )
        gateway.apply(document)
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(url, headers={"Host": "x"}).status_code == 200
        workers = worker_pids(server.log_path)

        filler = fill(small_disk)
        answered = 0
        for index in range(150):
            with httpx.Client(timeout=10) as client:  # a new connection each time
                response = client.get(f"{url}full-{index}", headers={"Host": "x"})
            answered += response.status_code == 200
        assert answered == 150, f"{150 - answered} of 150 requests failed with a full disk"

        with gateway.api() as api:
            refused = api.put(gateway_url("appgw"), json=document)
        assert refused.status_code in (503, 507), refused.text
        assert refused.json()["error"]["code"]
        assert worker_pids(server.log_path) == workers, "a worker died (and was replaced)"
        for pid in workers:
            os.kill(pid, 0)  # still running

        filler.unlink()
        gateway.apply(document)  # the store works again once there is room
        wait_until(lambda: httpx.get(url, headers={"Host": "x"}).status_code == 200)
    finally:
        server.stop()
        backend.stop()
        print(server.log_path.read_text()[-20000:])  # shown when the test fails
