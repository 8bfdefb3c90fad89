"""`appgw serve --demo`: the Azure article's end-to-end TLS gateway, working on first start.

On an empty store it makes test certificates (a listener certificate from a "frontend" test CA,
a backend certificate from a "backend" test root), starts a small HTTPS backend, and configures
the article's gateway through the service layer: an HTTPS listener with the PFX, backend HTTP
settings on HTTPS with the backend root as trusted root certificate. Later starts reuse it all.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from appgw.certificates.factory import (
    certificate_pem,
    create_root,
    create_server_certificate,
    private_key_pem,
)
from appgw.control.service import Caller, GatewayService
from appgw.model.ids import GatewayId
from appgw.model.quick_create import ListenerCertificate, QuickCreate, quick_create_document

DEMO_DIR = "demo"
SITE_NAME = "www.appgw.demo"
BACKEND_NAME = "backend.appgw.demo"
DEMO_GATEWAY = GatewayId("demo", "demo-rg", "myAppGateway")
CERT_DAYS = 365  # long enough that a demo set up today keeps working for a year


@dataclass(frozen=True, slots=True)
class Demo:
    directory: Path
    listener_port: int
    backend_port: int

    @property
    def frontend_root(self) -> Path:
        return self.directory / "frontend-root.pem"

    def curl_command(self) -> str:
        return (
            f"curl --cacert {self.frontend_root} --resolve "
            f"{SITE_NAME}:{self.listener_port}:127.0.0.1 https://{SITE_NAME}:{self.listener_port}/"
        )


def prepare(data_dir: Path, service: GatewayService, listener_port: int | None) -> Demo:
    """Create the demo's certificates and gateway once; afterwards return what was made."""
    directory = data_dir / DEMO_DIR
    state_file = directory / "demo.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        return Demo(directory, int(state["listenerPort"]), int(state["backendPort"]))
    if service.store.current_all():
        raise DemoError("--demo configures an empty store only; this one already has gateways")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    frontend_root, frontend_root_key = create_root("appgw demo frontend root", CERT_DAYS)
    backend_root, backend_root_key = create_root("appgw demo backend root", CERT_DAYS)
    site, site_key = create_server_certificate(
        [SITE_NAME], CERT_DAYS, issuer=frontend_root, issuer_key=frontend_root_key
    )
    backend, backend_key = create_server_certificate(
        [BACKEND_NAME], CERT_DAYS, issuer=backend_root, issuer_key=backend_root_key
    )
    _write(directory / "frontend-root.pem", certificate_pem(frontend_root))
    _write(directory / "backend-root.cer", backend_root.public_bytes(serialization.Encoding.DER))
    _write(directory / "backend.pem", certificate_pem(backend) + certificate_pem(backend_root))
    _write(directory / "backend.key", private_key_pem(backend_key), private=True)
    password = secrets.token_urlsafe(12)
    pfx = pkcs12.serialize_key_and_certificates(
        b"appgw-demo",
        site_key,
        site,
        [frontend_root],
        serialization.BestAvailableEncryption(password.encode()),
    )
    demo = Demo(directory, listener_port or _free_port(), _free_port())
    service.put(
        DEMO_GATEWAY,
        _gateway(demo, base64.b64encode(pfx).decode(), password, backend_root),
        Caller("demo"),
    )
    _write(
        state_file,
        json.dumps({"listenerPort": demo.listener_port, "backendPort": demo.backend_port}).encode(),
    )
    return demo


class DemoError(Exception):
    pass


def start_backend(demo: Demo) -> threading.Thread:
    """The article's HTTPS web server, on 127.0.0.1 in a thread of `appgw serve`."""
    config = uvicorn.Config(
        _backend_app,
        host="127.0.0.1",
        port=demo.backend_port,
        ssl_certfile=str(demo.directory / "backend.pem"),
        ssl_keyfile=str(demo.directory / "backend.key"),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    # uvicorn touches signal handlers only on the main thread, so this one leaves them alone.
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="appgw-demo-backend", daemon=True)
    thread.start()
    return thread


async def _backend_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    body = (
        "Hello from the appgw demo backend.\n"
        f"This request reached me over {scope['scheme'].upper()}, re-encrypted by the gateway,\n"
        f"which verified my certificate against the trusted root you gave it.\n"
        f"  Host:              {headers.get('host', '')}\n"
        f"  X-Forwarded-For:   {headers.get('x-forwarded-for', '')}\n"
        f"  X-Original-Host:   {headers.get('x-original-host', '')}\n"
        f"  X-AppGW-Trace-Id:  {headers.get('x-appgw-trace-id', '')}\n"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _gateway(demo: Demo, pfx_b64: str, password: str, root: x509.Certificate) -> dict[str, Any]:
    """The gateway `appgw create` would make with the article's flags."""
    root_b64 = base64.b64encode(root.public_bytes(serialization.Encoding.DER)).decode()
    options = QuickCreate(
        sku="Standard_v2",
        capacity=1,
        frontend_port=demo.listener_port,
        # Loopback: the demo is for this machine only.
        private_ip_address="127.0.0.1",
        certificate=ListenerCertificate(f"{DEMO_GATEWAY.name}SslCert", pfx_b64, password),
        servers=("127.0.0.1",),
        http_settings_port=demo.backend_port,
        http_settings_protocol="Https",
        http_settings_host_name=BACKEND_NAME,
        trusted_root_certificates=(("backendRoot", root_b64),),
        priority=100,
        tags={"createdBy": "appgw serve --demo"},
    )
    return quick_create_document(DEMO_GATEWAY, options)


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
