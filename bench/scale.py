#!/usr/bin/env python3
"""Scale benchmark of appgw (issue 7, deliverable 3): does the gateway slow down with work?

  (a) Throughput of ONE worker (`appgw serve --workers 1`, worker pinned to CPU 0; wrk, the
      HAProxy origin and the control plane on CPU 1) for a one-site gateway and for a gateway
      with 100 multi-site HTTPS listeners (100 certificates, SNI), 100 path rules per listener
      and a pool of 1,200 members (distinct 127/8 addresses), where the request hits the last
      listener and its last path rule. Runs alternate (one site, scaled, one site, ...); besides
      req/s the worker's CPU time per request is reported, which other load on a shared
      machine disturbs far less than req/s. --breakdown adds 100 sites with 1 member and
      1 site with 1,200 members, to tell the dimensions apart.
  (b) Config apply time: validation and `compile_gateway` in-process (cold: every stored key
      and chain loaded; warm: the certificates known), for those gateways and for one at Azure's
      limits (spec §8: 100 HTTPS + 100 redirect listeners, 100 x 100 path rules, 100 pools x
      1,200 members, 100 settings); and end to end: PUT (validation + dry-run compile + commit)
      until the worker logs "serving <gateway> version N".
  (c) Memory per idle keep-alive TLS client connection: 2,000 then 10,000 TLS connections
      (a client process on CPU 1) that completed one request and stay idle; worker RSS and
      Pss (smaps_rollup) before and after, KiB per connection; the worker's descriptors.

Usage: python bench/scale.py [--quick] [--breakdown] [--seconds S] [--rounds R]
                             [--idle 2000,10000] [--py-spy DIR] [--skip-azure-max-apply]
Run from the repository root with the project's virtualenv (`make bench-scale`); about
2.5 minutes (4 with --breakdown). Needs wrk, haproxy (the origin), taskset and unshare: wrk
resolves the listener host name through a private /etc/hosts in its own mount namespace, so
SNI and Host are the real names. Prints a markdown table on stdout, progress on stderr. Every
process it starts is stopped on exit, also on failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import re
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

TOKEN = "appgw_bench-scale-token-0123456789abcdef"
PFX_PASSWORD = "bench-scale-pfx-password"
SUB, RG, NAME = "bench", "bench", "scale"
GATEWAY_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
    f"applicationGateways/{NAME}"
)
API_VERSION = "2026-03-01"
DOMAIN = "scale.test"
HIT_HOST = f"www.{DOMAIN}"  # the host of the LAST listener in evaluation order
HIT_PATH = "/hit/x"  # matches only the LAST path rule of that listener's URL path map
WORKER_CPU, LOAD_CPU = "0", "1"
# Azure's limits (spec §8) that shape the gateways below.
AZURE_LISTENERS = 100  # active HTTP listeners (= sites, = SSL certificates)
AZURE_PATH_RULES = 100  # path-based rules per URL path map
AZURE_POOL_MEMBERS = 1200  # backend targets per pool
AZURE_POOLS = 100  # backend address pools
AZURE_SETTINGS = 100  # backend HTTP settings


# --- processes ------------------------------------------------------------------------------------


class Processes:
    """Everything this run started; stopped in reverse order however the run ends."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[Any]] = []

    def start(self, command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        # Own process group: a stop reaches the children too (appgw serve's worker, sh -> wrk).
        process = subprocess.Popen(command, start_new_session=True, **kwargs)
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process in self.started:
            self.started.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.started)):
            self.stop(process)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    """Poll every 5 ms; return the time it took."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.005)
    return time.perf_counter() - start


# --- certificates and gateway documents -----------------------------------------------------------


@dataclass
class Certificates:
    ca_pem: bytes
    pfx_b64: list[str]  # one per site, in site order


def make_certificates(hosts: list[str]) -> Certificates:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appgw bench scale CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    blobs = []
    for host in hosts:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        pfx = pkcs12.serialize_key_and_certificates(
            host.encode(),
            key,
            leaf,
            [ca],
            serialization.BestAvailableEncryption(PFX_PASSWORD.encode()),
        )
        blobs.append(base64.b64encode(pfx).decode())
    return Certificates(ca.public_bytes(serialization.Encoding.PEM), blobs)


def site_hosts(sites: int) -> list[str]:
    return [f"site{index:03d}.{DOMAIN}" for index in range(sites - 1)] + [HIT_HOST]


def member_address(index: int) -> str:
    # Distinct loopback addresses; the origin listens on 0.0.0.0 and answers all of 127/8.
    return f"127.{1 + index // 65536}.{index // 256 % 256}.{index % 256}"


@dataclass(frozen=True)
class Shape:
    label: str
    sites: int  # HTTPS listeners on one port, one certificate each, SNI required
    path_rules: int  # per URL path map (one map per listener)
    members: int  # in each pool
    pools: int = 1
    settings: int = 1
    redirect_listeners: int = 0  # extra HTTP listeners whose rule only redirects (Azure: 200)


ONE_SITE = Shape("one site: 1 listener, 1 certificate, 1 path rule, 1 member", 1, 1, 1)
SCALED = Shape(
    "100 listeners/certificates (SNI), 100 path rules, 1,200 members",
    AZURE_LISTENERS,
    AZURE_PATH_RULES,
    AZURE_POOL_MEMBERS,
)
# Re-applies of the gateway at Azure's limits after its first apply, each after a pause in
# which the health monitor probes its 120,000 members (~4,000 probes a second).
AZURE_REAPPLIES = 2
REAPPLY_PAUSE = 5.0
QUIET_PUTS = 3  # warm PUTs of that gateway to an API alone, for the PUT's own cost
# --breakdown: which of the dimensions costs what.
SITES_ONLY = Shape("100 listeners/certificates (SNI), 100 path rules, 1 member", 100, 100, 1)
MEMBERS_ONLY = Shape("1 listener, 1 path rule, 1,200 members", 1, 1, AZURE_POOL_MEMBERS)
AZURE_MAX = Shape(
    "Azure's limits: 100 HTTPS + 100 redirect listeners, 100 x 100 path rules, "
    "100 pools x 1,200 members, 100 settings",
    AZURE_LISTENERS,
    AZURE_PATH_RULES,
    AZURE_POOL_MEMBERS,
    pools=AZURE_POOLS,
    settings=AZURE_SETTINGS,
    redirect_listeners=AZURE_LISTENERS,
)


def gateway_document(
    shape: Shape, certs: Certificates, *, port: int, http_port: int, origin: int, wrong: int
) -> dict[str, Any]:
    """With one pool, every site/rule except the last listener's last path rule sends to the
    `wrong` origin port (which answers 404 but passes the default probe of "/"), so a misrouted
    request shows up as a non-2xx in wrk."""

    def ref(collection: str, name: str) -> dict[str, str]:
        return {"id": f"{GATEWAY_ID}/{collection}/{name}"}

    hosts = site_hosts(shape.sites)
    pools = [
        {
            "name": f"pool{p}",
            "properties": {
                "backendAddresses": [
                    {"ipAddress": member_address(p * shape.members + m)}
                    for m in range(shape.members)
                ]
            },
        }
        for p in range(shape.pools)
    ]
    settings = [
        {"name": f"settings{s}", "properties": {"port": origin, "protocol": "Http"}}
        for s in range(shape.settings)
    ]
    # Several pools: every rule forwards for real (and the gateway stays within Azure's 100).
    wrong_pool, wrong_settings = ("pool0", "settings0") if shape.pools > 1 else ("wrong", "wrong")
    if shape.pools == 1:
        pools.append(
            {"name": "wrong", "properties": {"backendAddresses": [{"ipAddress": "127.0.0.1"}]}}
        )
        settings.append({"name": "wrong", "properties": {"port": wrong, "protocol": "Http"}})
    listeners: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    maps: list[dict[str, Any]] = []
    for index, host in enumerate(hosts):
        last_site = index == shape.sites - 1
        path_rules = []
        for r in range(shape.path_rules):
            hit = last_site and r == shape.path_rules - 1
            pool = f"pool{(index + r) % shape.pools}" if hit or shape.pools > 1 else "wrong"
            path_rules.append(
                {
                    "name": f"path{r:03d}",
                    "properties": {
                        "paths": ["/hit/*" if r == shape.path_rules - 1 else f"/p{r:03d}/*"],
                        "backendAddressPool": ref("backendAddressPools", pool),
                        "backendHttpSettings": ref(
                            "backendHttpSettingsCollection",
                            f"settings{(index + r) % shape.settings}"
                            if hit or shape.pools > 1
                            else "wrong",
                        ),
                    },
                }
            )
        maps.append(
            {
                "name": f"map{index:03d}",
                "properties": {
                    "defaultBackendAddressPool": ref("backendAddressPools", wrong_pool),
                    "defaultBackendHttpSettings": ref(
                        "backendHttpSettingsCollection", wrong_settings
                    ),
                    "pathRules": path_rules,
                },
            }
        )
        listeners.append(
            {
                "name": f"listener{index:03d}",
                "properties": {
                    "frontendIPConfiguration": ref("frontendIPConfigurations", "frontend"),
                    "frontendPort": ref("frontendPorts", "https"),
                    "protocol": "Https",
                    "sslCertificate": ref("sslCertificates", f"cert{index:03d}"),
                    "hostName": host,
                    "requireServerNameIndication": True,
                },
            }
        )
        rules.append(
            {
                "name": f"rule{index:03d}",
                "properties": {
                    "ruleType": "PathBasedRouting",
                    "httpListener": ref("httpListeners", f"listener{index:03d}"),
                    "urlPathMap": ref("urlPathMaps", f"map{index:03d}"),
                    "priority": 10 * (index + 1),
                },
            }
        )
    redirects = []
    for index in range(shape.redirect_listeners):
        host = f"redirect{index:03d}.{DOMAIN}"
        listeners.append(
            {
                "name": f"redirect{index:03d}",
                "properties": {
                    "frontendIPConfiguration": ref("frontendIPConfigurations", "frontend"),
                    "frontendPort": ref("frontendPorts", "http"),
                    "protocol": "Http",
                    "hostName": host,
                },
            }
        )
        redirects.append(
            {
                "name": f"redirect{index:03d}",
                "properties": {
                    "redirectType": "Permanent",
                    "targetListener": ref("httpListeners", f"listener{index % shape.sites:03d}"),
                    "includePath": True,
                    "includeQueryString": True,
                },
            }
        )
        rules.append(
            {
                "name": f"redirectrule{index:03d}",
                "properties": {
                    "ruleType": "Basic",
                    "httpListener": ref("httpListeners", f"redirect{index:03d}"),
                    "redirectConfiguration": ref("redirectConfigurations", f"redirect{index:03d}"),
                    "priority": 10 * (shape.sites + index + 1),
                },
            }
        )
    ports = [{"name": "https", "properties": {"port": port}}]
    if shape.redirect_listeners:
        ports.append({"name": "http", "properties": {"port": http_port}})
    return {
        "location": "local",
        "properties": {
            "sku": {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 1},
            "gatewayIPConfigurations": [
                {
                    "name": "appGatewayIpConfig",
                    "properties": {
                        "subnet": {
                            "id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                            "Microsoft.Network/virtualNetworks/vnet/subnets/default"
                        }
                    },
                }
            ],
            "frontendIPConfigurations": [
                {
                    "name": "frontend",
                    "properties": {
                        "privateIPAddress": "127.0.0.1",
                        "privateIPAllocationMethod": "Static",
                    },
                }
            ],
            "frontendPorts": ports,
            "sslCertificates": [
                {
                    "name": f"cert{index:03d}",
                    "properties": {"data": certs.pfx_b64[index], "password": PFX_PASSWORD},
                }
                for index in range(shape.sites)
            ],
            "backendAddressPools": pools,
            "backendHttpSettingsCollection": settings,
            "httpListeners": listeners,
            "requestRoutingRules": rules,
            "urlPathMaps": maps,
            "redirectConfigurations": redirects,
        },
    }


def certs_for(shape: Shape, certs: Certificates) -> Certificates:
    """The last site is always the hit host: give it the last certificate."""
    return Certificates(certs.ca_pem, certs.pfx_b64[: shape.sites - 1] + certs.pfx_b64[-1:])


# --- (b) compile time in-process ------------------------------------------------------------------


def compile_seconds(document: dict[str, Any], repeat: int) -> tuple[float, float, float]:
    """(validation as the API does it, compile_gateway cold: every stored key and chain loaded,
    compile_gateway warm: certificates known from the previous version, best of `repeat`)."""
    from appgw.certificates import load_pfx
    from appgw.compile import gateway as compiler, stored_certificates
    from appgw.model.resource import ApplicationGateway

    blobs = {item["name"]: item["properties"] for item in document["properties"]["sslCertificates"]}
    # As the API stores them: the key and chain its PUT decrypted.
    secrets = {
        "sslCertificates": {
            name.casefold(): stored_certificates.entry(
                name,
                load_pfx(blob["data"], blob["password"], check_validity=False),
                len(base64.b64decode(blob["data"])),
            )
            for name, blob in blobs.items()
        }
    }
    start = time.perf_counter()
    ApplicationGateway.model_validate(document)
    validate = time.perf_counter() - start
    compiler._listener_contexts.clear()  # cold: as a first upload, or a process that just started
    start = time.perf_counter()
    compiler.compile_gateway(document, secrets, gateway_id=GATEWAY_ID)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeat):
        start = time.perf_counter()
        compiler.compile_gateway(document, secrets, gateway_id=GATEWAY_ID)
        warm.append(time.perf_counter() - start)
    return validate, cold, min(warm)


def quiet_put_seconds(document: dict[str, Any], work: Path, runs: int) -> list[float]:
    """PUTs of `document` (a changed tag each, as an operator's edits) over HTTP to an API alone
    in this process: no workers, no health monitor. The first, cold PUT is not counted."""
    import threading

    import httpx
    import uvicorn

    from appgw.control.auth import ensure_admin_token
    from appgw.control.service import GatewayService
    from appgw.serve import create_app
    from appgw.store.secrets import MasterKey
    from appgw.store.sql import SqlStore

    data_dir = work / "quiet-api"
    data_dir.mkdir()
    store = SqlStore(f"sqlite:///{data_dir / 'appgw.db'}", MasterKey.load_or_create(data_dir))
    ensure_admin_token(store, {"APPGW_ADMIN_TOKEN": TOKEN})
    listening = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(GatewayService(store)), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the in-process API", 10)
    url = f"http://127.0.0.1:{listening.getsockname()[1]}{GATEWAY_ID}?api-version={API_VERSION}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    seconds = []
    try:
        for index in range(runs + 1):
            body = json.dumps({**document, "tags": {"edit": str(index)}}).encode()
            start = time.perf_counter()
            response = httpx.put(url, content=body, headers=headers, timeout=120)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"PUT refused ({response.status_code}): {response.text[:2000]}")
            if index:
                seconds.append(time.perf_counter() - start)
    finally:
        server.should_exit = True
        thread.join(10)
        listening.close()
    return seconds


# --- the gateway under test -----------------------------------------------------------------------


@dataclass
class Serve:
    process: subprocess.Popen[Any]
    log_path: Path
    base_url: str
    worker_pid: int
    applied: int = 0  # versions committed so far

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def apply(self, document: dict[str, Any]) -> tuple[float, float, int]:
        """PUT; return (PUT seconds, PUT start -> worker serving it seconds, version)."""
        import httpx

        body = json.dumps(document).encode()
        url = f"{self.base_url}{GATEWAY_ID}?api-version={API_VERSION}"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        start = time.perf_counter()
        response = httpx.put(url, content=body, headers=headers, timeout=120)
        put_seconds = time.perf_counter() - start
        if response.status_code not in (200, 201):
            raise RuntimeError(f"PUT refused ({response.status_code}): {response.text[:2000]}")
        # Every accepted PUT commits one version; the worker logs each one it serves. (Not
        # GET .../revisions: it returns every version's document, megabytes each here.)
        version = self.applied = self.applied + 1
        marker = f"serving {GATEWAY_ID} version {version}\n"
        wait_for(lambda: marker in self.log(), f"the worker to serve version {version}", 120)
        serving = time.perf_counter() - start
        return put_seconds, serving, version


def start_serve(processes: Processes, work: Path) -> Serve:
    from bench import API_ADDRESS, serve_command

    data_dir = work / "data"
    log_path = work / "serve.log"
    environment = {
        **os.environ,
        "APPGW_ADMIN_TOKEN": TOKEN,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    # The control plane (API, health monitor) shares CPU 1 with the load; the worker is moved
    # to CPU 0 alone once it is up.
    process = processes.start(
        ["taskset", "-c", LOAD_CPU, *serve_command(data_dir, 1)],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        env=environment,
    )
    text = ""

    def ready() -> bool:
        nonlocal text
        if process.poll() is not None:
            raise RuntimeError(f"appgw serve exited with {process.returncode}:\n{text}")
        text = log_path.read_text(errors="replace")
        return "API:" in text and re.search(r"appgw worker \S+ \(pid \d+\) ready", text) is not None

    wait_for(ready, "appgw serve to start", 60)
    base_url = API_ADDRESS.search(text)
    worker = re.search(r"appgw worker \S+ \(pid (\d+)\) ready", text)
    assert base_url and worker
    worker_pid = int(worker[1])
    subprocess.run(
        ["taskset", "-a", "-p", "-c", WORKER_CPU, str(worker_pid)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return Serve(process, log_path, base_url[1], worker_pid)


def start_origin(processes: Processes, work: Path) -> tuple[int, int]:
    """HAProxy on CPU 1 answering every address of 127/8: `origin` 200, `wrong` 404."""
    origin, wrong = free_port(), free_port()
    config = work / "origin.cfg"
    config.write_text(
        f"""global
    nbthread 1
    maxconn 9000
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend origin
    bind 0.0.0.0:{origin}
    http-request return status 200 content-type text/plain string "hello from the origin\\n"
frontend wrong
    bind 0.0.0.0:{wrong}
    http-request return status 200 content-type text/plain string "probe\\n" if {{ path / }}
    http-request return status 404 content-type text/plain string "misrouted\\n"
"""
    )
    process = processes.start(
        ["taskset", "-c", LOAD_CPU, "haproxy", "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(work / "origin.log").open("w"),
    )

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited: {(work / 'origin.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", origin), timeout=1).close()
        except OSError:
            return False
        return True

    wait_for(listening, "the haproxy origin", 20)
    return origin, wrong


# --- (a) throughput -------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_second: float
    requests: int
    non_2xx: int
    errors: str
    latency_p50: str
    latency_p99: str


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (proc(5): fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    processes: Processes, hosts_file: Path, port: int, seconds: float, connections: int
) -> WrkResult:
    url = f"https://{HIT_HOST}:{port}{HIT_PATH}"
    script = (
        f"mount --bind {hosts_file} /etc/hosts && "
        f"exec wrk -t1 -c{connections} -d{round(seconds)}s --latency {url}"
    )
    # Not root: a user namespace makes the private mount possible.
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-r", "--mount"]
    process = processes.start(
        ["taskset", "-c", LOAD_CPU, *unshare, "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=seconds + 30)
    finally:
        processes.stop(process)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"wrk failed:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    return WrkResult(
        float(rate[1]),
        int(total[1]) if total else 0,
        int(non_2xx[1]) if non_2xx else 0,
        errors[0] if errors else "",
        p50[1] if p50 else "?",
        p99[1] if p99 else "?",
    )


# --- (c) idle TLS connections ---------------------------------------------------------------------


def memory_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            values[name] = int(rest.split()[0])
    return values


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_kernel_kib() -> int:
    """Kernel memory of all TCP sockets (sockstat counts pages)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    return 0


async def hold_connections(port: int, targets: list[int], ca_file: str) -> None:
    """Client side of (c), run in its own process: open TLS connections to HIT_HOST at the
    gateway, one GET on each, keep them idle; print "held N" after each target, then wait for a
    line on stdin before the next target (and exit after the last)."""
    context = ssl.create_default_context(cafile=ca_file)
    response_end = b"\r\n\r\n"
    request = f"GET {HIT_PATH} HTTP/1.1\r\nHost: {HIT_HOST}\r\n\r\n".encode()
    held: list[asyncio.StreamWriter] = []
    failures = 0
    gate = asyncio.Semaphore(64)  # concurrent handshakes

    async def one() -> None:
        nonlocal failures
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=context, server_hostname=HIT_HOST, limit=4096
                )
                writer.write(request)
                head = await reader.readuntil(response_end)
                length = re.search(rb"content-length:\s*(\d+)", head, re.I)
                await reader.readexactly(int(length[1]) if length else 0)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head[:40])
                held.append(writer)
            except (OSError, RuntimeError, asyncio.IncompleteReadError, ssl.SSLError):
                failures += 1

    loop = asyncio.get_running_loop()
    for target in targets:
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(target - len(held) - failures)))
        print(
            f"held {len(held)} failed {failures} in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        await loop.run_in_executor(None, sys.stdin.readline)
    alive = sum(1 for writer in held if not writer.transport.is_closing())
    print(f"alive {alive}", flush=True)


def client_main(argv: list[str]) -> None:
    port, ca_file, *targets = argv
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(hold_connections(int(port), [int(t) for t in targets], ca_file))
    else:
        uvloop.run(hold_connections(int(port), [int(t) for t in targets], ca_file))


@dataclass
class IdleResult:
    connections: int
    failed: int
    open_seconds: float
    rss_kib: int
    pss_kib: int
    rss_per_conn: float
    pss_per_conn: float
    kernel_tcp_kib_per_conn: float
    worker_fds: int


def measure_idle(
    processes: Processes, serve: Serve, port: int, ca_file: Path, targets: list[int]
) -> list[IdleResult]:
    time.sleep(1.0)  # let the last wrk connections close
    before = memory_kib(serve.worker_pid)
    kernel_before = tcp_kernel_kib()
    client = processes.start(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            sys.executable,
            __file__,
            "--hold-client",
            str(port),
            str(ca_file),
            *map(str, targets),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdin and client.stdout
    results = []
    try:
        for _target in targets:
            line = client.stdout.readline()
            found = re.match(r"held (\d+) failed (\d+) in ([\d.]+) s", line)
            if found is None:
                raise RuntimeError(f"idle client failed: {line!r}")
            time.sleep(1.0)  # the last handshakes' garbage settles
            after = memory_kib(serve.worker_pid)
            held = int(found[1])
            rss = after["Rss"] - before["Rss"]
            pss = after["Pss"] - before["Pss"]
            results.append(
                IdleResult(
                    connections=held,
                    failed=int(found[2]),
                    open_seconds=float(found[3]),
                    rss_kib=after["Rss"],
                    pss_kib=after["Pss"],
                    rss_per_conn=rss / max(held, 1),
                    pss_per_conn=pss / max(held, 1),
                    kernel_tcp_kib_per_conn=(tcp_kernel_kib() - kernel_before) / max(held, 1),
                    worker_fds=open_fds(serve.worker_pid),
                )
            )
            client.stdin.write("next\n")
            client.stdin.flush()
        alive = client.stdout.readline()
        if not alive.startswith("alive"):
            raise RuntimeError(f"idle client ended badly: {alive!r}")
        print(f"  idle client: {alive.strip()} at the end", file=sys.stderr)
    finally:
        processes.stop(client)
    return results


# --- report ---------------------------------------------------------------------------------------


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)


def progress(text: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--idle", default="2000,10000", help="idle TLS connections, cumulative")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s, 1,000 idle")
    parser.add_argument("--skip-azure-max-apply", action="store_true")
    parser.add_argument(
        "--breakdown", action="store_true", help="also 100 sites with 1 member, 1 site with 1,200"
    )
    parser.add_argument("--py-spy", metavar="DIR", help="profile the worker during each run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.idle = 3.0, 1, "1000"
    targets = [int(n) for n in args.idle.split(",") if n]
    # wrk, HAProxy and util-linux (taskset, unshare) from Debian when missing, as bench.py does.
    from bench import ensure_tools

    ensure_tools()
    processes = Processes()
    # A Ctrl-C or SIGTERM unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = Report()
    try:
        with tempfile.TemporaryDirectory(prefix="appgw-bench-scale-") as tmp:
            return run(args, targets, processes, Path(tmp), report)
    finally:
        processes.stop_all()


def run(
    args: argparse.Namespace, targets: list[int], processes: Processes, work: Path, report: Report
) -> int:
    progress("certificates")
    certs = make_certificates(site_hosts(AZURE_LISTENERS))
    ca_file = work / "ca.pem"
    ca_file.write_bytes(certs.ca_pem)
    hosts_file = work / "hosts"
    hosts_file.write_text(f"127.0.0.1 localhost\n127.0.0.1 {HIT_HOST}\n")
    origin, wrong = start_origin(processes, work)
    port, http_port = free_port(), free_port()
    documents = {
        shape: gateway_document(
            shape,
            certs_for(shape, certs),
            port=port,
            http_port=http_port,
            origin=origin,
            wrong=wrong,
        )
        for shape in (ONE_SITE, SCALED, SITES_ONLY, MEMBERS_ONLY, AZURE_MAX)
    }
    progress("compile time in-process")
    compile_rows = []
    for shape, document in documents.items():
        if shape in (SITES_ONLY, MEMBERS_ONLY):
            continue
        validate, cold, warm = compile_seconds(document, 1 if shape is AZURE_MAX else 3)
        size = len(json.dumps(document))
        compile_rows.append((shape, size, validate, cold, warm))
    quiet_puts: list[float] = []
    if not args.skip_azure_max_apply:
        progress("PUT at Azure's limits to an API alone in this process")
        quiet_puts = quiet_put_seconds(documents[AZURE_MAX], work, QUIET_PUTS)
    progress("starting appgw serve --workers 1")
    serve = start_serve(processes, work)
    measured = (ONE_SITE, SCALED, *((SITES_ONLY, MEMBERS_ONLY) if args.breakdown else ()))
    applies: dict[Shape, list[tuple[float, float]]] = {shape: [] for shape in measured}
    rates: dict[Shape, list[WrkResult]] = {shape: [] for shape in measured}
    # Worker CPU per request: what the shape costs, whatever else shares the machine.
    costs: dict[Shape, list[float]] = {shape: [] for shape in measured}
    for round_index in range(args.rounds):
        for shape in measured:
            put, total, version = serve.apply(documents[shape])
            applies[shape].append((put, total))
            progress(
                f"round {round_index + 1}: {shape.label}: v{version} applied in "
                f"{total:.2f} s (PUT {put:.2f} s); warm-up"
            )
            run_wrk(processes, hosts_file, port, 2, args.connections)
            spy = None
            if args.py_spy:
                # Sampled on the load CPU; collapsed stacks for flame graphs / grep.
                spy = processes.start(
                    [
                        "taskset",
                        "-c",
                        LOAD_CPU,
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "-p",
                        str(serve.worker_pid),
                        "-f",
                        "raw",
                        "-r",
                        "200",
                        "-d",
                        str(round(args.seconds)),
                        "-o",
                        str(Path(args.py_spy) / f"{shape.sites}-sites-round{round_index + 1}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            cpu_before = cpu_seconds(serve.worker_pid)
            result = run_wrk(processes, hosts_file, port, args.seconds, args.connections)
            cpu = cpu_seconds(serve.worker_pid) - cpu_before
            costs[shape].append(cpu / max(result.requests, 1) * 1e6)
            if spy is not None:
                spy.wait(30)
                processes.stop(spy)
            if result.non_2xx or result.errors:
                raise RuntimeError(
                    f"wrk saw failures ({result.non_2xx} non-2xx, {result.errors}): misrouted?"
                )
            rates[shape].append(result)
            progress(
                f"  {result.requests_per_second:.0f} req/s, worker {costs[shape][-1]:.0f} us CPU "
                f"per request ({cpu / args.seconds:.0%} of a CPU)"
            )
    progress(f"idle TLS connections: {targets}")
    idle = measure_idle(processes, serve, port, ca_file, targets)
    worker_limit = Path(f"/proc/{serve.worker_pid}/limits").read_text()
    nofile = re.search(r"Max open files\s+(\d+)\s+(\d+)", worker_limit)
    # Last: its 120,000 members keep the health monitor busy.
    azure_applies: list[tuple[float, float]] = []
    probing: list[float] = []  # the health monitor's share of a CPU before each re-apply
    if not args.skip_azure_max_apply:
        # The first apply is cold (its 120,000 members are new to every process); then, with
        # all of them probed every 30 s, the same document with a changed tag, as an operator's
        # next edit: what issue #15 asks to be under a second "while probing".
        document = documents[AZURE_MAX]
        health = re.search(r"appgw health monitor \(pid (\d+)\)", serve.log())
        for index in range(1 + AZURE_REAPPLIES):
            if index:
                before = cpu_seconds(int(health[1])) if health else 0.0
                time.sleep(REAPPLY_PAUSE)
                if health:
                    probing.append((cpu_seconds(int(health[1])) - before) / REAPPLY_PAUSE)
                document = {**document, "tags": {"edit": str(index)}}
            progress(f"applying the gateway at Azure's limits ({index + 1})")
            put, total, _version = serve.apply(document)
            azure_applies.append((put, total))

    # ---- the table ----
    one = [r.requests_per_second for r in rates[ONE_SITE]]
    many = [r.requests_per_second for r in rates[SCALED]]
    ratios = [b / a for a, b in zip(one, many, strict=True)]
    cost_ratios = [a / b for a, b in zip(costs[ONE_SITE], costs[SCALED], strict=True)]
    report.add("### Scale (bench/scale.py)")
    report.add()
    report.add(
        f"One worker on CPU {WORKER_CPU}; wrk (-t1 -c{args.connections}, {args.seconds:g} s, HTTPS "
        f"with SNI, keep-alive), the HAProxy origin and the control plane on CPU {LOAD_CPU}; "
        f"{args.rounds} alternating rounds (2 s warm-up each); GET https://{HIT_HOST}{HIT_PATH} "
        "(last listener, last path rule); backend HTTP."
    )
    report.add()
    report.add(
        "| gateway | req/s per round | median req/s | worker CPU us / request per round "
        "| median us / request | p50 / p99 latency (last round) |"
    )
    report.add("| --- | --- | --- | --- | --- | --- |")
    for shape in measured:
        values = [r.requests_per_second for r in rates[shape]]
        last = rates[shape][-1]
        report.add(
            f"| {shape.label} | {', '.join(f'{v:.0f}' for v in values)} | "
            f"{statistics.median(values):.0f} | {', '.join(f'{c:.0f}' for c in costs[shape])} | "
            f"{statistics.median(costs[shape]):.0f} | {last.latency_p50} / {last.latency_p99} |"
        )
    report.add(
        f"| **scaled / one site** (target >= 0.90) | {', '.join(f'{r:.3f}' for r in ratios)} | "
        f"**{statistics.median(ratios):.3f}** | {', '.join(f'{r:.3f}' for r in cost_ratios)} "
        f"| **{statistics.median(cost_ratios):.3f}** (one-site cost / scaled cost) | |"
    )
    report.add()
    report.add(
        "| config apply | JSON | pydantic validation | compile_gateway cold / warm "
        "| PUT (per apply, in order) | PUT -> worker serving (per apply) |"
    )
    report.add("| --- | --- | --- | --- | --- | --- |")
    for shape, size, validate, cold, warm in compile_rows:
        runs = applies.get(shape) or (azure_applies if shape is AZURE_MAX else [])
        puts = ", ".join(f"{put:.2f}" for put, _ in runs) or "-"
        totals = ", ".join(f"{total:.2f}" for _, total in runs) or "-"
        report.add(
            f"| {shape.label} | {size / 1e6:.1f} MB | {validate:.3f} s "
            f"| {cold:.3f} / {warm:.3f} s | {puts} s | {totals} s |"
        )
    if probing:
        report.add()
        report.add(
            "Azure's limits: the first apply is cold (every member new to every process); the "
            f"next {AZURE_REAPPLIES} change a tag, each after {REAPPLY_PAUSE:g} s in which the "
            "health monitor used "
            + ", ".join(f"{share:.0%}" for share in probing)
            + " of a CPU probing the 120,000 members. The same re-apply to an API alone in "
            "the bench's process (no workers, no monitor, a CPU of its own): "
            + ", ".join(f"{put:.2f}" for put in quiet_puts)
            + " s."
        )
    report.add()
    report.add(
        "| idle keep-alive TLS connections | opened in | worker RSS | worker Pss | "
        "RSS / conn | Pss / conn | kernel TCP / conn | worker fds |"
    )
    report.add("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for item in idle:
        report.add(
            f"| {item.connections} (failed {item.failed}) | {item.open_seconds:.1f} s | "
            f"{item.rss_kib / 1024:.0f} MiB | {item.pss_kib / 1024:.0f} MiB | "
            f"{item.rss_per_conn:.1f} KiB | {item.pss_per_conn:.1f} KiB | "
            f"{item.kernel_tcp_kib_per_conn:.1f} KiB | {item.worker_fds} |"
        )
    if nofile:
        report.add()
        report.add(f"Worker RLIMIT_NOFILE soft/hard: {nofile[1]}/{nofile[2]}.")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--hold-client":  # (c)'s client process
        client_main(sys.argv[2:])
    else:
        sys.exit(main())
