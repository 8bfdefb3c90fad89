"""TLS session resumption across the workers of `appgw serve`: the kernel spreads connections
over the workers (SO_REUSEPORT), and a returning client resumes whichever worker answers,
because every worker derives the same ticket keys from the master key. With sharing switched
off each worker has OpenSSL's own keys and about half of the connections resume; that case
runs too, so the assertion is seen to be able to fail. Real processes, real sockets."""

from __future__ import annotations

import json
import socket
import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from helpers import TOKEN, gateway_url, make_pfx, serving, worker_pids

pytestmark = pytest.mark.slow

HOST = "www.contoso.com"
RECONNECTIONS = 100  # per TLS version: enough that 98 % is not luck, and still a second or two
SHARED_MINIMUM = 0.98  # every worker decrypts every ticket; slack for a rare full handshake
# Per-worker keys: a connection resumes only on the worker that issued its ticket, about 1/2
# with 2 workers; 0.8 leaves room for an uneven spread and never passes with 2 workers in use.
PER_WORKER_MAXIMUM = 0.8
TIMEOUT = 10  # seconds for one local connection and request; they take milliseconds


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    running = Backend("resumption").start()
    yield running
    running.stop()


def put_https_gateway(base_url: str, ca: trustme.CA, backend: Backend) -> int:
    pfx = make_pfx(ca, HOST)
    port = free_port()
    document = (
        GatewayBuilder()
        .certificate("cert", pfx.b64, pfx.password)
        .pool("pool", "127.0.0.1")
        .settings("settings", backend.port, "Http")
        .listener("listener", port, "Https", certificate="cert")
        .rule("rule", "listener", pool="pool", settings="settings", priority=10)
        .build()
    )
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        created = client.put(gateway_url("appgw"), json=document)
        assert created.status_code == 201, created.text
        operation = created.headers["Azure-AsyncOperation"]
        # Succeeded once every worker serves it.
        wait_until(lambda: client.get(operation).json()["status"] == "Succeeded", timeout=60)
    return port


def request(
    port: int, client: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[ssl.SSLSession, bool]:
    """One HTTPS request on a new connection: the session to offer next, and whether this
    connection resumed."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        client.wrap_socket(raw, server_hostname=HOST, session=session) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert tls.session is not None
        return tls.session, tls.session_reused


def resumption(port: int, ca: trustme.CA, version: ssl.TLSVersion) -> float:
    """The share of RECONNECTIONS connections that resumed, each offering the latest session
    (as browsers do)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    client.minimum_version = client.maximum_version = version
    session, resumed = request(port, client, None)
    assert not resumed
    count = 0
    for _ in range(RECONNECTIONS):
        session, resumed = request(port, client, session)
        count += resumed
    return count / RECONNECTIONS


def requests_by_worker(access_log: Path) -> Counter[str]:
    """How many requests each worker (the access log's instanceId) answered."""
    if not access_log.exists():
        return Counter()
    lines = access_log.read_text().splitlines()
    return Counter(json.loads(line)["properties"]["instanceId"] for line in lines)


@pytest.mark.parametrize("shared", [True, False], ids=["shared keys", "per-worker keys"])
def test_returning_clients_resume_on_either_of_two_workers(
    tmp_path: Path, ca: trustme.CA, backend: Backend, shared: bool
) -> None:
    env = {"APPGW_ADMIN_TOKEN": TOKEN}
    if not shared:
        env["APPGW_SHARED_SESSION_TICKETS"] = "0"
    data_dir = tmp_path / "data"
    versions = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    with serving(data_dir, env, workers=2) as server:
        assert len(worker_pids(server.log_path.read_text())) == 2
        port = put_https_gateway(server.base_url, ca, backend)
        ratios = {version.name: resumption(port, ca, version) for version in versions}
        access_log = data_dir / "access.log"
        sent = len(versions) * (RECONNECTIONS + 1)
        # Workers write their access log lines within a second.
        wait_until(lambda: sum(requests_by_worker(access_log).values()) == sent)
        log = server.log_path.read_text()
    by_worker = requests_by_worker(access_log)
    print(f"resumed with {'shared' if shared else 'per-worker'} keys: {ratios}; {by_worker}")
    assert len(by_worker) == 2, f"one worker answered every connection: {by_worker}"
    for version, ratio in ratios.items():
        if shared:
            assert ratio >= SHARED_MINIMUM, (version, ratio, by_worker)
        else:
            assert ratio <= PER_WORKER_MAXIMUM, (version, ratio, by_worker)
    # Each worker passed its self-test (or was told not to share).
    assert log.count("session tickets: keys shared") == (2 if shared else 0), log
    assert "session tickets are not shared" not in log, log
