"""`appgw serve` as a real process: first start, restarts, kill -9, secrets at rest, keys."""

from __future__ import annotations

import base64
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import trustme

from appgw.serve import ServeOptions, admin_tls
from backends import wait_until
from helpers import (
    TOKEN,
    Pfx,
    ServeProcess,
    gateway_id,
    gateway_url,
    run_cli,
    skeleton,
    start_serve,
)

pytestmark = pytest.mark.slow


def client(server: ServeProcess, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_first_start_prints_a_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_serve(data_dir)
    try:
        token = server.banner.split("admin token (shown once, keep it): ")[1].split()[0]
        assert token.startswith("appgw_") and len(token) > 40
        with client(server, token) as api:
            assert api.get(gateway_url()).status_code == 404  # authenticated, nothing there
    finally:
        server.stop()
    assert (data_dir / "master.key").stat().st_mode & 0o777 == 0o600
    assert token.encode() not in (data_dir / "appgw.db").read_bytes()
    again = start_serve(data_dir)
    try:
        assert "shown once" not in again.banner
        with client(again, token) as api:
            assert api.get(gateway_url()).status_code == 404
    finally:
        again.stop()


def test_configuration_survives_a_restart(tmp_path: Path, pfx: Pfx, root_cer: str) -> None:
    data_dir = tmp_path / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN})
    try:
        with client(server) as api:
            before = api.put(gateway_url(), json=skeleton(pfx, root_cer))
            assert before.status_code == 201, before.text
    finally:
        server.stop()
    server = start_serve(data_dir)
    try:
        with client(server) as api:
            after = api.get(gateway_url()).json()
            assert after == before.json()
            # The stored PFX and password are still usable: a GET -> PUT keeps the certificate.
            assert api.put(gateway_url(), json=after).status_code == 200
    finally:
        server.stop()


def test_kill_9_during_writes_loses_nothing_acknowledged(
    tmp_path: Path, pfx: Pfx, root_cer: str
) -> None:
    data_dir = tmp_path / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN})
    acknowledged: list[tuple[int, str]] = []  # (counter tag, etag)
    stop = threading.Event()

    def writer() -> None:
        document = skeleton(pfx, root_cer)
        with client(server) as api:
            for counter in range(10_000):  # bounded; the kill ends it long before
                if stop.is_set():
                    return
                document["tags"] = {"counter": str(counter)}
                try:
                    response = api.put(gateway_url(), json=document)
                except httpx.TransportError:
                    return
                if response.status_code in (200, 201):
                    acknowledged.append((counter, response.json()["etag"]))
                    document["properties"]["sslCertificates"][0]["properties"] = {}

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 15 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    stop.set()
    thread.join(30)
    assert len(acknowledged) >= 15, "the writer did not get going"

    connection = sqlite3.connect(data_dir / "appgw.db")
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    connection.close()
    server = start_serve(data_dir)
    try:
        with client(server) as api:
            current = api.get(gateway_url()).json()
            last_counter = acknowledged[-1][0]
            # The last acknowledged write, or one that committed as the process died.
            assert int(current["tags"]["counter"]) in (last_counter, last_counter + 1)
            revisions = api.get(f"{gateway_id()}/revisions?api-version=2026-03-01").json()["value"]
            stored = {revision["etag"] for revision in revisions}
            assert {etag for _, etag in acknowledged} <= stored
            assert all(
                r["gateway"]["properties"]["sslCertificates"][0]["properties"]["publicCertData"]
                for r in revisions
            )
    finally:
        server.stop()


def test_secrets_appear_nowhere_but_encrypted(tmp_path: Path, pfx: Pfx, root_cer: str) -> None:
    data_dir = tmp_path / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN})
    outputs: list[str] = []
    try:
        with client(server) as api:
            document = skeleton(pfx, root_cer)
            outputs.append(api.put(gateway_url(), json=document).text)
            wrong = skeleton(pfx, root_cer)
            wrong["properties"]["sslCertificates"][0]["properties"]["password"] += "x"
            outputs.append(api.put(gateway_url(), json=wrong).text)
            outputs.append(api.get(gateway_url()).text)
            outputs.append(api.get(f"{gateway_id()}/revisions?api-version=2026-03-01").text)
            outputs.append(
                api.get(
                    "/subscriptions/sub1/providers/Microsoft.Insights/eventtypes/management/values"
                    "?api-version=2015-04-01"
                ).text
            )
    finally:
        server.stop()
    outputs.append(server.log_path.read_text())
    pfx_bytes = base64.b64decode(pfx.b64)
    key_b64 = base64.b64encode(pfx.key_der).decode()
    for text in outputs:
        assert pfx.password not in text
        assert pfx.b64[40:120] not in text
        assert key_b64[40:120] not in text
        assert "PRIVATE KEY" not in text
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "appgw.db" for p in files)
    for path in files:
        raw = path.read_bytes()
        assert pfx.password.encode() not in raw, path
        assert pfx.password.encode("utf-16-le") not in raw, path
        assert pfx_bytes[40:120] not in raw, path
        assert pfx.b64[40:120].encode() not in raw, path
        assert pfx.key_der[40:120] not in raw, path
        assert b"PRIVATE KEY" not in raw, path


def test_a_wrong_master_key_refuses_to_start(tmp_path: Path, pfx: Pfx, root_cer: str) -> None:
    data_dir = tmp_path / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN})
    server.stop()
    other_key = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(AssertionError, match="do not decrypt with this master key"):
        start_serve(data_dir, {"APPGW_MASTER_KEY": other_key})
    os.chmod(data_dir / "master.key", 0o644)
    with pytest.raises(AssertionError, match="readable by others"):
        start_serve(data_dir)


def test_admin_listener_serves_https_with_a_given_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "admin.pem", tmp_path / "admin.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    data_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "appgw", "serve", "--data-dir", str(data_dir),
            "--admin-listen", "127.0.0.1:0", "--admin-cert", str(cert), "--admin-key", str(key),
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "APPGW_ADMIN_TOKEN": TOKEN},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "https://127.0.0.1:" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        text = log.read_text()
        base = "https://127.0.0.1:" + text.split("https://127.0.0.1:")[1].split("/")[0]
        assert "admin TLS certificate SHA-256:" in text
        context = ssl.create_default_context()
        ca.configure_trust(context)
        response = None
        while response is None:
            try:
                response = httpx.get(f"{base}/healthz", verify=context)
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(10)


def test_off_loopback_the_admin_listener_gets_a_generated_certificate(tmp_path: Path) -> None:
    options = ServeOptions(data_dir=tmp_path)
    assert admin_tls(options, tmp_path, "127.0.0.1") is None
    tls = admin_tls(options, tmp_path, "0.0.0.0")
    assert tls is not None and tls.cert.exists()
    assert tls.key.stat().st_mode & 0o777 == 0o600
    assert len(tls.fingerprint.split(":")) == 32
    # Generated once, then reused: the fingerprint operators pinned stays valid.
    assert admin_tls(options, tmp_path, "0.0.0.0") == tls


def _worker_pids(server: ServeProcess) -> list[int]:
    return [int(p) for p in re.findall(r"\(pid (\d+)\) ready", server.log_path.read_text())]


def _health_monitor_pid(server: ServeProcess) -> int:
    pattern = r"health monitor \(pid (\d+)\) listening"
    wait_until(lambda: re.search(pattern, server.log_path.read_text()) is not None)
    found = re.search(pattern, server.log_path.read_text())
    assert found is not None
    return int(found[1])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes once it no longer runs.
    with open(f"/proc/{pid}/status") as status:
        return "State:\tZ" in status.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopping_serve_stops_its_workers(tmp_path: Path, sig: int) -> None:
    server = start_serve(tmp_path / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, workers=2)
    pids = _worker_pids(server)
    assert len(pids) == 2
    pids.append(_health_monitor_pid(server))
    server.stop(sig)
    if sig != signal.SIGKILL:
        assert server.process.returncode == 0
    deadline = time.monotonic() + 15
    while not all(_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers or the health monitor outlived appgw serve"
        time.sleep(0.1)


def test_start_up_problems_are_serve_errors(tmp_path: Path) -> None:
    """A bad master key, store URL, admin token or HTTP/2 limit is a ServeError naming it, so
    the CLI prints it without knowing the store's own exceptions."""
    script = """
import sys
from pathlib import Path
from appgw.serve import ServeError, ServeOptions, serve
data = Path(sys.argv[1])
for name, store_url, environ in (
    ("key", None, {"APPGW_MASTER_KEY": "not base64!"}),
    ("store", "nonsense", {}),
    ("token", None, {"APPGW_ADMIN_TOKEN": "short"}),
    ("http2", None, {}),
):
    try:
        options = ServeOptions(
            data / name,
            admin_listen="127.0.0.1:0",
            store_url=store_url,
            http2_limits="max_resets=lots" if name == "http2" else "",
        )
        serve(options, environ)
    except ServeError as error:
        print(name, "ServeError:", error)
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4, done.stdout
    assert lines[0].startswith("key ServeError:") and "base64" in lines[0]
    assert lines[1].startswith("store ServeError:") and "not a database URL" in lines[1]
    assert lines[2].startswith("token ServeError:") and "at least 24" in lines[2]
    assert lines[3] == "http2 ServeError: --http2-limits: max_resets wants a number, not 'lots'"


def test_a_session_ticket_secret_file_others_can_read_is_refused_by_option_and_variable(
    tmp_path: Path,
) -> None:
    """`appgw serve` exits 2 with one line naming the option, before it serves anything."""
    secret = tmp_path / "tickets.key"
    secret.write_bytes(os.urandom(48))
    secret.chmod(0o644)
    base = ["serve", "--admin-listen", "127.0.0.1:0", "--workers", "1"]
    for args, env in (
        (
            [*base, "--data-dir", str(tmp_path / "a"), "--session-ticket-secret-file", str(secret)],
            {},
        ),
        (
            [*base, "--data-dir", str(tmp_path / "b")],
            {"APPGW_SESSION_TICKET_SECRET_FILE": str(secret)},
        ),
    ):
        done = run_cli(*args, config=tmp_path / "cli.json", env=env)
        assert done.returncode == 2, done.stderr
        assert f"--session-ticket-secret-file: {secret} is readable by others" in done.stderr
        assert f"chmod 600 {secret}" in done.stderr
