"""`appgw serve`: open the store, make sure an admin token exists, run the control plane.

The admin listener speaks plain HTTP only on loopback; bound anywhere else it serves HTTPS with
a certificate given by flag or one generated on first start.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import FastAPI

from appgw import __version__
from appgw.api import common as api
from appgw.api.listener import bounded_protocol
from appgw.api.routers import ROUTERS
from appgw.certificates.factory import certificate_pem, create_server_certificate, private_key_pem
from appgw.control.auth import TokenError, ensure_admin_token
from appgw.control.service import GatewayService, ServiceError
from appgw.core.limits import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP,
    DEFAULT_SEND_TIMEOUT,
    ClientLimits,
    Http2Limits,
)
from appgw.data_directory import UMASK, DataDirectoryError, prepare as prepare_data_dir
from appgw.dataplane.access_log import DEFAULT_FILES, DEFAULT_MAX_BYTES
from appgw.dataplane.firewall_log import FIREWALL_LOG_FILE
from appgw.dataplane.worker import ACCESS_LOG_FILE, TICKET_KEYS_FD_ENV
from appgw.defaults import (
    DEFAULT_ADMIN_LISTEN,
    DEFAULT_KEEP_SECRET_VERSIONS,
    DEFAULT_STORE_CONNECT_TIMEOUT,
)
from appgw.demo import (
    DEMO_DIR,
    DEMO_GATEWAY,
    DemoError,
    prepare as prepare_demo,
    start_backend as start_demo_backend,
)
from appgw.health.process import HealthChannel, HealthClient
from appgw.observability import configure_multiprocess, mark_process_dead, metrics_directory
from appgw.portal.app import mount_portal
from appgw.portal.common import Portal
from appgw.state.applied import AppliedVersions
from appgw.state.files import STATE_DIR, state_dir
from appgw.store.secrets import MasterKey, SecretsError
from appgw.store.sql import (
    SqlStore,
    StoreError,
    connect_timeout,
    shown_url,
    with_connect_timeout,
)
from appgw.supervised import PARENT_PID_ENV
from appgw.tls import tickets
from appgw.tls.server import OPENSSL_CONFIG

DB_FILE = "appgw.db"
ADMIN_TLS_DIR = "admin-tls"
# What appgw keeps in the data directory (with the -wal, -shm and .1, .2 files these names
# begin), made private at start if it is not. The master key is not among them: a key others
# could read is refused (appgw.store.secrets), not quietly fixed.
DATA_DIR_ENTRIES = frozenset(
    {
        DB_FILE,
        "metrics",  # where metric files go without shared memory (observability)
        ADMIN_TLS_DIR,
        STATE_DIR,
        DEMO_DIR,
        ACCESS_LOG_FILE,
        FIREWALL_LOG_FILE,
    }
)
# The generated admin certificate is for first use; operators should bring their own.
ADMIN_CERT_DAYS = 825  # the longest validity browsers still accept for a server certificate
WORKER_CHECK_INTERVAL = 0.5  # how soon a dead worker is noticed and replaced
WORKER_STOP_TIMEOUT = 15.0  # in-flight requests get the worker's own grace period, plus margin
# How long serve waits for its workers and monitor to serve before it says so instead of
# "ready": a gateway at Azure's limits compiles in about a second per process.
OPENSSL_CONF = "OPENSSL_CONF"  # the variable OpenSSL reads its configuration file from
READY_TIMEOUT = 60.0
READY_CHECK_INTERVAL = 0.05  # how often serve looks whether every process serves yet
TICKET_SECRET_FILE_OPTION = "--session-ticket-secret-file"  # named in its errors
# The least the file must hold: 256 bits, the strength of the keys derived from it.
TICKET_SECRET_FILE_MIN_BYTES = 32
# Read no more: a secret file is small; a wrong path (a disk image, /dev/zero) is refused.
TICKET_SECRET_FILE_MAX_BYTES = 4096
_TICKET_FILE_INFO = b"appgw session ticket secret file v1"  # HKDF info for the file's bytes


class ServeError(Exception):
    """A start-up problem the operator must fix; its text says how."""


def create_app(service: GatewayService) -> FastAPI:
    """The control plane's web app: the ARM API's routers, then the portal."""
    app = FastAPI(
        title="appgw",
        version=__version__,
        description="Azure Application Gateway's management API, self-hosted.",
        # FastAPI's Swagger UI loads unpinned scripts from a public CDN, which would run on the
        # portal's origin; appgw ships no copy of them. /openapi.json stays: any viewer opens it.
        docs_url=None,
        redoc_url=None,
    )
    api.configure(app, service, ROUTERS)
    mount_portal(app, Portal(service))
    return app


@dataclass(frozen=True, slots=True)
class ServeOptions:
    data_dir: Path
    admin_listen: str = DEFAULT_ADMIN_LISTEN
    store_url: str | None = None
    # Seconds to wait for PostgreSQL to accept a connection (a connect_timeout in the URL wins).
    store_connect_timeout: int = DEFAULT_STORE_CONNECT_TIMEOUT
    admin_cert: Path | None = None
    admin_key: Path | None = None
    workers: int = 0  # 0: one per CPU
    frontend_address: str = "0.0.0.0"
    demo: bool = False
    demo_port: int | None = None
    client_header_timeout: float = DEFAULT_HEADER_TIMEOUT
    client_send_timeout: float = DEFAULT_SEND_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP
    http2_limits: str = ""  # name=value,... over Http2Limits' defaults
    access_log_max_bytes: int = DEFAULT_MAX_BYTES
    access_log_files: int = DEFAULT_FILES
    keep_secret_versions: int = DEFAULT_KEEP_SECRET_VERSIONS
    # Shared by the instances that should share session tickets; None: this instance's own.
    session_ticket_secret_file: Path | None = None

    def client_limits(self) -> ClientLimits:
        return ClientLimits(
            self.client_header_timeout,
            self.client_send_timeout,
            self.max_connections,
            self.max_connections_per_ip,
            Http2Limits.parse(self.http2_limits),
        )


class Supervisor:
    """Runs the data-plane workers (or the health monitor) and replaces any that dies."""

    def __init__(
        self,
        command: list[str],
        names: list[str],
        *,
        name: str = "data-plane worker",
        environment: dict[str, str] | None = None,
        ticket_keys: tickets.TicketKeys | None = None,
    ) -> None:
        self.command = command
        # Handed to each process at spawn through a pipe, moved on every period by _watch.
        self.ticket_keys = ticket_keys
        self.names = names  # each process's name in state/applied.py
        self.count = len(names)
        self.name = name
        self.environment = environment
        self.workers: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="appgw-supervisor", daemon=True)

    def start(self) -> None:
        self.workers = [self._spawn(index) for index in range(self.count)]
        self.thread.start()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        # The child compares its parent with this pid: reading its own parent once started
        # would miss a serve killed while the child was still starting.
        env = {**os.environ, **(self.environment or {}), PARENT_PID_ENV: str(os.getpid())}
        command = [*self.command, "--instance-id", f"{index}"]
        if self.ticket_keys is None:
            return subprocess.Popen(command, env=env)
        # The chain's current values reach the child through an inherited pipe, never argv,
        # the environment (only the fd number goes there) or a file. A handover is far below
        # the pipe's buffer, so the write cannot block before the child reads.
        read_end, write_end = os.pipe()
        try:
            try:
                os.write(write_end, tickets.encode_handover(self.ticket_keys))
            finally:
                os.close(write_end)
            env[TICKET_KEYS_FD_ENV] = str(read_end)
            return subprocess.Popen(command, env=env, pass_fds=(read_end,))
        finally:
            os.close(read_end)

    def _watch(self) -> None:
        while not self.stopping.wait(WORKER_CHECK_INTERVAL):
            if self.ticket_keys is not None:
                self.ticket_keys.advance()  # a past period's chain value leaves memory
            for index, worker in enumerate(self.workers):
                code = worker.poll()
                if code is not None and not self.stopping.is_set():
                    mark_process_dead(worker.pid)
                    print(
                        f"appgw: {self.name} {index} (pid {worker.pid}) exited with "
                        f"{code}; starting a new one",
                        file=sys.stderr,
                        flush=True,
                    )
                    self.workers[index] = self._spawn(index)

    def live(self) -> list[tuple[str, int]]:
        """(name, pid) of each process this supervisor runs now."""
        return [(name, worker.pid) for name, worker in zip(self.names, self.workers, strict=False)]

    def stop(self) -> None:
        self.stopping.set()
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            mark_process_dead(worker.pid)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"--admin-listen '{text}' is not HOST:PORT (port 0-65535)")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(options: ServeOptions, environ: dict[str, str] | None = None) -> None:
    """Run until stopped (this is the process's main: it sets the umask). Problems with the
    data directory, the master key, the store or the admin token are ServeErrors, so callers
    need not know the store's exceptions."""
    try:
        options.client_limits()
    except ValueError as error:  # names the option and the part that is wrong
        raise ServeError(str(error)) from None
    try:
        _serve(options, environ)
    except (DataDirectoryError, SecretsError, StoreError, TokenError) as error:
        raise ServeError(str(error)) from None


def _serve(options: ServeOptions, environ: dict[str, str] | None) -> None:
    env = dict(os.environ if environ is None else environ)
    # Before anything is created: every file of serve and of its children is private.
    os.umask(UMASK)
    data_dir = options.data_dir.expanduser().resolve()
    changed = prepare_data_dir(data_dir, DATA_DIR_ENTRIES)
    if changed:
        print(
            f"appgw: made the data directory private: {len(changed)} file(s) or folder(s) in "
            f"{data_dir} were open to other users; they are now 0600 and 0700",
            file=sys.stderr,
            flush=True,
        )
    # Workers and the prober write metrics to files there; /metrics adds them up.
    configure_multiprocess(metrics_directory(data_dir), reset=True)
    master_key = MasterKey.load_or_create(data_dir, env)
    # With the connect timeout in it: the workers and the monitor are handed this URL.
    store_url = with_connect_timeout(
        options.store_url or f"sqlite:///{data_dir / DB_FILE}", options.store_connect_timeout
    )
    waited = connect_timeout(store_url)
    if waited is not None:  # a server that may not answer: say what start-up waits for
        print(
            f"appgw: waiting for the store {shown_url(store_url)} (connect timeout {waited} s)",
            flush=True,
        )
    store = SqlStore(store_url, master_key, keep_secret_versions=options.keep_secret_versions)
    # A damaged page would otherwise surface later, as failed requests; before serving, the
    # operator learns which file and how to restore it.
    store.check_integrity()
    # Versions written before this start (by an older appgw, or with a larger count) too.
    store.purge_superseded_secrets()
    token = ensure_admin_token(store, env)
    host, port = parse_listen(options.admin_listen)
    tls = admin_tls(options, data_dir, host)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    scheme = "https" if tls else "http"
    shown_host = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown_host}:{bound_port}"
    lines = [
        "appgw control plane is running",
        f"  data directory: {data_dir}",
        f"  API:            {url}/  (ARM paths under /subscriptions/...; OpenAPI at "
        f"{url}/openapi.json)",
        f"  portal:         {url}/  (sign in with the admin token)",
    ]
    if tls:
        lines.append(f"  admin TLS certificate SHA-256: {tls.fingerprint}")
    if token is not None:
        lines.append(f"  admin token (shown once, keep it): {token}")
    else:
        lines.append("  admin token: created on first start (set APPGW_TOKEN for the CLI)")
    workers = options.workers or os.cpu_count() or 1
    supervisor = Supervisor(
        [
            sys.executable,
            "-m",
            "appgw.dataplane.worker",
            "--data-dir",
            str(data_dir),
            "--store-url",
            store_url,
            "--frontend-address",
            options.frontend_address,
            *options.client_limits().arguments(),
            "--access-log-max-bytes",
            str(options.access_log_max_bytes),
            "--access-log-files",
            str(options.access_log_files),
        ],
        [f"worker-{index}" for index in range(workers)],
        environment={OPENSSL_CONF: str(OPENSSL_CONFIG)},
        ticket_keys=instance_ticket_keys(options.session_ticket_secret_file),
    )
    access_log = data_dir / ACCESS_LOG_FILE
    lines.append(f"  data plane:     {workers} worker(s); access log {access_log}")
    service = GatewayService(store, frontend_address=options.frontend_address)
    channel = HealthChannel.create()
    monitor = Supervisor(
        [
            sys.executable,
            "-m",
            "appgw.health.process",
            "--data-dir",
            str(data_dir),
            "--store-url",
            store_url,
            "--frontend-address",
            options.frontend_address,
            "--socket",
            str(channel.socket_path),
        ],
        ["health"],
        name="health monitor",
        environment={**channel.environment(), OPENSSL_CONF: str(OPENSSL_CONFIG)},
    )
    service.health = HealthClient(channel)
    applied = AppliedVersions(state_dir(data_dir), lambda: [*supervisor.live(), *monitor.live()])
    applied.clear()
    service.operations.applied = applied
    if options.demo:
        try:
            demo = prepare_demo(data_dir, service, options.demo_port)
        except (DemoError, ServiceError) as error:
            raise ServeError(f"--demo: {error}") from None
        start_demo_backend(demo)
        lines += [
            f"  demo:           gateway {DEMO_GATEWAY} with end-to-end TLS to an HTTPS backend",
            "                  on 127.0.0.1:"
            f"{demo.backend_port}; try it once appgw says it is ready:",
            f"    {demo.curl_command()}",
        ]
    app = create_app(service)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
        # uvloop when importable: the same loop the data plane uses.
        loop="auto",
        # httptools, with the request head bounded in size and time (see appgw.api.listener).
        http=bounded_protocol(options.client_header_timeout),
    )
    print("\n".join(lines), flush=True)
    monitor.start()
    supervisor.start()
    threading.Thread(
        target=_announce_ready, args=(applied, workers), name="appgw-ready", daemon=True
    ).start()
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default
    # SIGTERM action that would kill this process before it stops its workers.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except (KeyboardInterrupt, SystemExit):
        pass  # a requested stop: shut down below, exit 0
    finally:
        supervisor.stop()
        monitor.stop()
        channel.remove()
        service.write_pending_activity()
        store.close()


def instance_ticket_keys(secret_file: Path | None) -> tickets.TicketKeys:
    """The session-ticket chain this instance's workers share: from random bytes made now (in
    memory only), or, when the operator names one, from the shared secret file."""
    if secret_file is None:
        return tickets.TicketKeys(secrets.token_bytes(tickets.SECRET_BYTES))
    path = secret_file.expanduser()
    try:
        mode = path.stat().st_mode & 0o777
        with path.open("rb") as handle:
            content = handle.read(TICKET_SECRET_FILE_MAX_BYTES + 1)
    except OSError as error:
        raise ServeError(f"{TICKET_SECRET_FILE_OPTION}: cannot read {path}: {error}") from None
    if mode & 0o077:
        raise ServeError(
            f"{TICKET_SECRET_FILE_OPTION}: {path} is readable by others (mode {mode:o}); "
            f"run 'chmod 600 {path}'"
        )
    if not TICKET_SECRET_FILE_MIN_BYTES <= len(content) <= TICKET_SECRET_FILE_MAX_BYTES:
        raise ServeError(
            f"{TICKET_SECRET_FILE_OPTION}: {path} must hold {TICKET_SECRET_FILE_MIN_BYTES} to "
            f"{TICKET_SECRET_FILE_MAX_BYTES} random bytes (e.g. 'head -c 48 /dev/urandom > "
            f"{path}'), not {len(content)}"
        )
    secret = HKDF(
        algorithm=hashes.SHA256(), length=tickets.SECRET_BYTES, salt=None, info=_TICKET_FILE_INFO
    ).derive(content)
    return tickets.TicketKeys(secret, static=True)


def _announce_ready(applied: AppliedVersions, workers: int) -> None:
    """Say "ready" once every worker and the monitor serve the stored configuration."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not applied.ready():
        if time.monotonic() > deadline:
            print(
                f"appgw: the data plane is not serving after {READY_TIMEOUT:g} s; see the "
                "messages above",
                file=sys.stderr,
                flush=True,
            )
            return
        time.sleep(READY_CHECK_INTERVAL)
    print(f"appgw is ready: {workers} worker(s) and the health monitor serve", flush=True)


def _exit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    return sock


@dataclass(frozen=True, slots=True)
class AdminTls:
    cert: Path
    key: Path
    fingerprint: str


def admin_tls(options: ServeOptions, data_dir: Path, host: str) -> AdminTls | None:
    if is_loopback(host) and options.admin_cert is None:
        return None
    if (options.admin_cert is None) != (options.admin_key is None):
        raise ServeError("--admin-cert and --admin-key go together")
    if options.admin_cert is not None and options.admin_key is not None:
        cert_path, key_path = options.admin_cert, options.admin_key
        for path in (cert_path, key_path):
            if not path.is_file():
                raise ServeError(f"{path} does not exist")
    else:
        tls_dir = data_dir / ADMIN_TLS_DIR
        cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
        if not cert_path.exists():
            _generate_admin_certificate(tls_dir, cert_path, key_path, host)
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        raise ServeError(f"{cert_path} is not a PEM certificate") from None
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return AdminTls(cert_path, key_path, fingerprint)


def _generate_admin_certificate(tls_dir: Path, cert_path: Path, key_path: Path, host: str) -> None:
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, key = create_server_certificate(
        ["localhost", socket.gethostname(), host], ADMIN_CERT_DAYS, common_name="appgw admin"
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(key))
    cert_path.write_bytes(certificate_pem(cert))
