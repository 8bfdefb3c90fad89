"""Shared test helpers: certificates made on the fly, gateway documents, a real API server."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from appgw.control.auth import ensure_admin_token
from appgw.control.service import GatewayService
from appgw.serve import create_app
from appgw.store.secrets import MasterKey
from appgw.store.sql import GatewayVersion, SqlStore
from cli_runner import run_appgw

API_VERSION = "2026-03-01"
SUB = "sub1"
RG = "rg1"
TOKEN = "appgw_test-token-0123456789abcdef"
# A sentinel password: it must never show up outside the PUT that carries it.
PFX_PASSWORD = "Sentinel4Pfx9Password"


def gateway_id(name: str = "appgw", rg: str = RG, sub: str = SUB) -> str:
    return (
        f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/applicationGateways/"
        f"{name}"
    )


def gateway_url(name: str = "appgw", rg: str = RG, sub: str = SUB) -> str:
    return f"{gateway_id(name, rg, sub)}?api-version={API_VERSION}"


@dataclass
class Pfx:
    b64: str
    password: str
    key_der: bytes  # the private key, PKCS#8 DER: must never leave the PUT
    leaf: x509.Certificate


def make_pfx(
    ca: trustme.CA, *hosts: str, password: str = PFX_PASSWORD, rounds: int | None = None
) -> Pfx:
    """`rounds`: the key-derivation iteration count of the key and certificates (cryptography's
    default, 2,048, without)."""
    issued = ca.issue_cert(*(hosts or ("www.contoso.com",)))
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    chain = [x509.load_pem_x509_certificate(blob.bytes()) for blob in issued.cert_chain_pems]
    assert isinstance(key, pkcs12.PKCS12PrivateKeyTypes)  # type: ignore[misc,arg-type]
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if rounds is None
        else serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(rounds)
        .build(password.encode())
    )
    data = pkcs12.serialize_key_and_certificates(
        b"listener",
        key,  # type: ignore[arg-type]
        chain[0],
        chain[1:] or None,
        encryption,
    )
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Pfx(base64.b64encode(data).decode(), password, key_der, chain[0])


def commit_as_stored_before(
    store: SqlStore,
    pfx_b64: str,
    password: str,
    name: str = "appgw",
    certificate: str = "appgwSslCert",
) -> GatewayVersion:
    """A new version of the gateway whose SSL certificate is kept as appgw kept certificates
    before issue 12: the PFX and its password, which every compile decrypted."""
    current = store.current(gateway_id(name).casefold())
    assert current is not None
    kept = {"name": certificate, "pfx": pfx_b64, "password": password}
    return store.commit(
        current.resource_id,
        current.resource_id.casefold(),
        current.document,
        {"sslCertificates": {certificate.casefold(): kept}},
        operational_state="Running",
        actor="a test, as an older appgw",
    )


def cer_b64(ca: trustme.CA) -> str:
    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def skeleton(pfx: Pfx, root_cer: str, name: str = "appgw", port: int = 443) -> dict[str, Any]:
    """The full gateway of spec §1.6, as a client would PUT it."""
    g = gateway_id(name)
    return {
        "location": "westeurope",
        "tags": {"env": "test"},
        "properties": {
            "sku": {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 2},
            "sslPolicy": {"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101"},
            "gatewayIPConfigurations": [
                {
                    "name": "appGatewayFrontendIP",
                    "properties": {
                        "subnet": {
                            "id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                            "Microsoft.Network/virtualNetworks/vnet/subnets/appgw"
                        }
                    },
                }
            ],
            "sslCertificates": [
                {
                    "name": "appgwSslCert",
                    "properties": {"data": pfx.b64, "password": pfx.password},
                }
            ],
            "authenticationCertificates": [],
            "trustedRootCertificates": [
                {"name": "backendRoot", "properties": {"data": root_cer}},
            ],
            "trustedClientCertificates": [],
            "frontendIPConfigurations": [
                {
                    "name": "appGatewayFrontendIP",
                    "properties": {
                        "privateIPAllocationMethod": "Dynamic",
                        "publicIPAddress": {
                            "id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                            "Microsoft.Network/publicIPAddresses/appgwpip"
                        },
                    },
                }
            ],
            "frontendPorts": [{"name": "appGatewayFrontendPort", "properties": {"port": port}}],
            "backendAddressPools": [
                {
                    "name": "appGatewayBackendPool",
                    "properties": {
                        "backendAddresses": [
                            {"ipAddress": "10.0.1.4"},
                            {"fqdn": "app1.contoso.com"},
                        ]
                    },
                }
            ],
            "backendHttpSettingsCollection": [
                {
                    "name": "appGatewayBackendHttpSettings",
                    "properties": {
                        "port": 443,
                        "protocol": "Https",
                        "cookieBasedAffinity": "Disabled",
                        "requestTimeout": 20,
                        "pickHostNameFromBackendAddress": False,
                        "hostName": "app1.contoso.com",
                        "connectionDraining": {"enabled": False, "drainTimeoutInSec": 1},
                        "trustedRootCertificates": [
                            {"id": f"{g}/trustedRootCertificates/backendRoot"}
                        ],
                        "probe": {"id": f"{g}/probes/httpsProbe"},
                    },
                }
            ],
            "httpListeners": [
                {
                    "name": "appGatewayHttpListener",
                    "properties": {
                        "frontendIPConfiguration": {
                            "id": f"{g}/frontendIPConfigurations/appGatewayFrontendIP"
                        },
                        "frontendPort": {"id": f"{g}/frontendPorts/appGatewayFrontendPort"},
                        "protocol": "Https",
                        "sslCertificate": {"id": f"{g}/sslCertificates/appgwSslCert"},
                        "hostName": "www.contoso.com",
                        "requireServerNameIndication": True,
                    },
                }
            ],
            "probes": [
                {
                    "name": "httpsProbe",
                    "properties": {
                        "protocol": "Https",
                        "host": "app1.contoso.com",
                        "path": "/health",
                        "interval": 30,
                        "timeout": 30,
                        "unhealthyThreshold": 3,
                        "pickHostNameFromBackendHttpSettings": False,
                        "minServers": 0,
                        "match": {"statusCodes": ["200-399"]},
                    },
                }
            ],
            "urlPathMaps": [],
            "requestRoutingRules": [
                {
                    "name": "rule1",
                    "properties": {
                        "ruleType": "Basic",
                        "priority": 100,
                        "httpListener": {"id": f"{g}/httpListeners/appGatewayHttpListener"},
                        "backendAddressPool": {
                            "id": f"{g}/backendAddressPools/appGatewayBackendPool"
                        },
                        "backendHttpSettings": {
                            "id": f"{g}/backendHttpSettingsCollection/appGatewayBackendHttpSettings"
                        },
                    },
                }
            ],
            "redirectConfigurations": [],
            "rewriteRuleSets": [],
            "sslProfiles": [],
            "enableHttp2": False,
            "autoscaleConfiguration": None,
            "privateLinkConfigurations": [],
            "privateEndpointConnections": [],
            "customErrorConfigurations": [],
        },
    }


@contextmanager
def fresh_gateway(base_url: str, pfx: Pfx, root_cer: str, port: int) -> Iterator[httpx.Client]:
    """An admin API client of `base_url`, with the skeleton gateway created afresh on `port`
    (one of that name is deleted first)."""
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        client.delete(gateway_url())
        created = client.put(gateway_url(), json=skeleton(pfx, root_cer, port=port))
        assert created.status_code == 201, created.text
        yield client


def child(document: dict[str, Any], collection: str, index: int = 0) -> dict[str, Any]:
    return document["properties"][collection][index]  # type: ignore[no-any-return]


def clone(document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(document)


READ_ONLY_OR_SECRET = {"etag", "type", "provisioningState", "data", "password", "publicCertData"}


def assert_round_trip(sent: Any, got: Any, path: str = "") -> None:
    """Everything the client sent comes back, except read-only fields, secrets and nulls."""
    if isinstance(sent, dict):
        assert isinstance(got, dict), path
        for key, value in sent.items():
            if value is None or (key in READ_ONLY_OR_SECRET and "sslCertificates" in path):
                continue
            if key in {"etag", "type", "provisioningState"}:
                continue
            assert key in got, f"{path}.{key} missing from GET"
            assert_round_trip(value, got[key], f"{path}.{key}")
    elif isinstance(sent, list):
        assert isinstance(got, list) and len(got) == len(sent), path
        for index, (a, b) in enumerate(zip(sent, got, strict=True)):
            assert_round_trip(a, b, f"{path}[{index}]")
    else:
        assert sent == got, f"{path}: sent {sent!r}, got {got!r}"


# --- a real server in this process (a thread) ----------------------------------------------------


@dataclass
class Api:
    base_url: str
    client: httpx.Client
    store: SqlStore
    data_dir: Path


@contextmanager
def running_api(data_dir: Path, store_url: str | None = None) -> Iterator[Api]:
    url = store_url or f"sqlite:///{data_dir / 'appgw.db'}"
    store = SqlStore(url, MasterKey.load_or_create(data_dir))
    ensure_admin_token(store, {"APPGW_ADMIN_TOKEN": TOKEN})
    app = create_app(GatewayService(store))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "API did not start"
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    try:
        yield Api(base, client, store, data_dir)
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.close()


# --- `appgw serve` in a subprocess --------------------------------------------------------------


@dataclass
class ServeProcess:
    process: subprocess.Popen[str]
    base_url: str
    banner: str
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(15)


def start_serve(
    data_dir: Path,
    env: dict[str, str] | None = None,
    *,
    workers: int = 1,
    args: tuple[str, ...] = (),
    wait_ready: bool = True,
) -> ServeProcess:
    """`wait_ready`: until serve says every worker and the monitor serve (else: until the API
    answers)."""
    log_path = data_dir.parent / f"{data_dir.name}-serve-{time.monotonic_ns()}.log"
    environment = {**os.environ, **(env or {})}
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appgw",
            "serve",
            "--data-dir",
            str(data_dir),
            "--admin-listen",
            "127.0.0.1:0",
            "--workers",
            str(workers),
            "--frontend-address",
            "127.0.0.1",
            *args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    deadline = time.monotonic() + 30
    while True:
        text = log_path.read_text()
        match = re.search(r"API:\s+(http://127\.0\.0\.1:\d+)/", text)
        if match:
            base = match[1]
            try:
                ready = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                if ready and (not wait_ready or "appgw is ready" in text):
                    return ServeProcess(process, base, text, log_path)
            except httpx.TransportError:
                pass
        if process.poll() is not None:
            raise AssertionError(f"appgw serve exited with {process.returncode}:\n{text}")
        assert time.monotonic() < deadline, f"appgw serve did not start:\n{text}"
        time.sleep(0.05)


@contextmanager
def serving(
    data_dir: Path, env: dict[str, str] | None = None, **options: Any
) -> Iterator[ServeProcess]:
    """`start_serve`, stopped when the block ends (a module's server fixture)."""
    running = start_serve(data_dir, env, **options)
    try:
        yield running
    finally:
        running.stop()


# --- a small file system (root only) ------------------------------------------------------------


@contextmanager
def small_file_system(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "4m") mounted at `where`, made here. Mounting needs root, as the
    machines that run these tests have; elsewhere the test is skipped, saying so."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Write until the file system refuses: ENOSPC, down to the last byte."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for block in (1 << 20, 4096, 1):  # big pieces, then down to the last byte
            with suppress(OSError):
                while True:
                    handle.write(b"\0" * block)
    return filler


def run_cli(
    *args: str, config: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m appgw ARGS` (see cli_runner), with only the APPGW_* variables given here."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("APPGW_")},
        "APPGW_CONFIG": str(config),
        **(env or {}),
    }
    return run_appgw(list(args), environment, stdin)


def cli(
    server: str | ServeProcess, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`appgw ARGS` against `server` with the test token, and no saved login to fall back on."""
    url = server if isinstance(server, str) else server.base_url
    return run_cli(
        *args,
        config=Path("/nonexistent/appgw-config.json"),
        stdin=stdin,
        env={"APPGW_SERVER": url, "APPGW_TOKEN": TOKEN},
    )


def cli_ok(server: str | ServeProcess, *args: str, stdin: str = "") -> Any:
    """Run a command that must succeed; its JSON output (None when it prints nothing)."""
    result = cli(server, *args, stdin=stdin)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def cli_refused(server: str | ServeProcess, *args: str, stdin: str = "") -> str:
    """Run a command that must fail cleanly; its message."""
    result = cli(server, *args, stdin=stdin)
    assert result.returncode != 0, f"{args} succeeded: {result.stdout}"
    assert "Traceback" not in result.stderr
    return result.stderr


def worker_pids(serve_log: str) -> dict[int, int]:
    """Latest pid per worker index, from serve's 'appgw worker N (pid P) ready' lines."""
    found = re.findall(r"appgw worker (\d+) \(pid (\d+)\) ready", serve_log)
    return {int(index): int(pid) for index, pid in found}
