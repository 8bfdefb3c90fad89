"""`make bench`: appgw against nginx and HAProxy, same layout, same configuration.

One HTTPS origin (nginx) serves a ~100 B and a 64 KiB file. Three proxies sit in front of it,
each configured identically: TLS termination for one site, re-encryption to the origin with
verification against a test root and SNI, upstream keep-alive, access logging on; plus a plain
HTTP listener for an HTTP->HTTP reference. The proxy under test is pinned to one CPU, the load
generator and the origin to the other(s). Targets alternate within every repeat, so slow
drifts of a shared machine hit all three alike; the table shows medians.

Cases (what each measures exactly):
  ka-small   keep-alive client connections, ~100 B body            wrk -c32
  ka-64k     keep-alive client connections, 64 KiB body            wrk -c32
  full-hs    a new TLS connection per request, full handshake       openssl s_time -new x8
             (HTTP/1.0 GET; s_time gives no latency percentiles)
  resumed    a new TLS connection per request, resumed session      wrk -c32 + Connection: close
             (wrk 4.1 offers the previous connection's session on every reconnect: checked
             with nginx's $ssl_session_reused; every proxy's resumption is also checked with
             s_time -reuse, which prints 'r' per resumed connection; so is a second appgw
             with 2 workers, which resumes every connection only if they share ticket keys)
  paced-1k   ~1k req/s paced (10 conns x 10 ms think time), ~100 B  wrk -c10 + delay()
  http-small HTTP->HTTP (plain both legs), keep-alive, ~100 B      wrk -c32
  full-hs-mtls full-hs to a listener that requires a client certificate (mutual TLS; the
             client presents one issued by the test root): what verifying it costs per new
             connection (nginx ssl_verify_client on, HAProxy verify required, appgw an SSL
             profile with the root as trusted client certificate)  openssl s_time -new -cert
  ka-rewrite5 ka-small to a second site (Host rw.bench.test) whose responses get five header
             rewrites: four set (HSTS, X-Content-Type-Options, X-Frame-Options,
             Referrer-Policy) and the origin's Server removed (nginx: add_header +
             proxy_hide_header; HAProxy: http-response set-header/del-header; appgw: a rewrite
             rule set on that site's rule)                         wrk -c32
  h2-small   HTTP/2 from the client (TLS, ALPN h2 only), many streams on few connections,
             ~100 B body; the origin leg stays HTTP/1.1 for every proxy  h2load -c4 -m8
  h2-64k     the same, 64 KiB body                                  h2load -c4 -m8
             (each proxy's h2 site has its own port: nginx 1.22 `listen ... ssl http2`,
             HAProxy `alpn h2,http/1.1`, appgw a listener of a gateway with enableHttp2; p50/p99
             from h2load's per-request log; a proxy that does not negotiate h2 or answers
             nothing is reported as failed for the case, the rest of the run goes on)
  waf-small  ka-small through a site with a WAF in Prevention mode: ModSecurity v3 with the
             OWASP CRS 3.3.4 (Debian's modsecurity-crs) at paranoia level 1, anomaly threshold
             5; clean requests that pass (a query string, browser-like headers and cookies for
             the CRS to parse). nginx: Debian's ModSecurity connector on a port of its own,
             its rules file the same directives and CRS files as appgw's (appgw.waf.seclang);
             appgw: a second gateway (WAF_v2, webApplicationFirewallConfiguration) in the same
             `appgw serve`. HAProxy has no ModSecurity: not applicable. Before measuring, an
             SQL injection must get 403 and the clean request 200 from each WAF site
                                                                    wrk -c32

CPU us/req comes from /proc/<pid>/stat (utime+stime) of every process of the proxy: nginx
master+worker, the haproxy process, `appgw serve` + its children (workers and the health
monitor process; the serve process, which runs the API, is also shown separately).

Environment: BENCH_QUICK=1 (one repeat, 3 s runs), BENCH_CASES=ka-small,full-hs,...,
BENCH_TARGETS=nginx,appgw,..., BENCH_SECONDS, BENCH_REPEATS, BENCH_WORKERS (appgw workers,
default 1), BENCH_PROXY_CPUS (default "0"), BENCH_LOAD_CPUS (default: the others),
BENCH_KEEP=1 keeps the work directory.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
FRONT_NAME = "www.bench.test"
ORIGIN_NAME = "origin.bench.test"
SMALL_BODY = b"x" * 99 + b"\n"  # ~100 B, like a small JSON answer
LARGE_BODY = os.urandom(32 * 1024).hex().encode()  # 64 KiB, incompressible
TOKEN = "appgw_bench-token-0123456789abcdef"
PFX_PASSWORD = "bench-pfx-password"
TICK = os.sysconf("SC_CLK_TCK")
CASES = (
    "ka-small",
    "ka-64k",
    "full-hs",
    "resumed",
    "paced-1k",
    "http-small",
    "ka-rewrite5",
    "full-hs-mtls",
    "h2-small",
    "h2-64k",
    "waf-small",
)
# Cases a target cannot run by design (not failures): HAProxy has no ModSecurity.
NOT_APPLICABLE = {("haproxy", "waf-small"): "no ModSecurity"}
WAF_APPGW_GATEWAY = "bench-waf"  # the second gateway, with the WAF, of the waf-small case
# waf-small's request: ka-small's ~100 B file with a query string and the headers a browser
# sends (Host a name, not an IP: the CRS scores a numeric Host, rule 920350), so the CRS's
# argument, header and cookie rules all have something to parse; nothing in it matches.
WAF_PATH = "/small?id=42&sort=price"
WAF_HEADERS = {
    "Host": FRONT_NAME,
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "Accept-Encoding": "gzip, deflate, br",
    "Referer": f"https://{FRONT_NAME}/products",
    "Cookie": "session=3f6c2a9e8b1d4c7f; theme=dark",
}
# The sanity check's attack: a classic SQL injection in the query (CRS 942100 and others).
WAF_ATTACK_PATH = "/small?id=1%27%20OR%20%271%27%3D%271"
# Debian's ModSecurity connector for nginx (libnginx-mod-http-modsecurity) and the NDK module
# its package depends on; the bench's nginx loads them only when waf-small runs.
NGINX_MODULES = Path("/usr/lib/nginx/modules")
NGINX_WAF_MODULES = ("ndk_http_module.so", "ngx_http_modsecurity_module.so")
REWRITE_HOST = "rw.bench.test"  # the ka-rewrite5 site
# The five rewrites of ka-rewrite5: header -> value; None: removed.
REWRITES: dict[str, str | None] = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Server": None,
}
TARGETS = ("nginx", "haproxy", "appgw")
APT_PACKAGES = {
    "nginx": "nginx-light",
    "haproxy": "haproxy",
    "wrk": "wrk",
    "openssl": "openssl",
    "h2load": "nghttp2-client",
}
# h2 cases: 4 connections x 8 streams = the 32 requests in flight of the wrk cases (so h2-small
# vs ka-small is the protocol alone), within every proxy's 64 idle origin connections and under
# the proxies' concurrent-stream caps (nginx 128, HAProxy 100).
H2_CONNECTIONS = 4
H2_STREAMS = 8
# appgw's HTTP/2 requests per connection in the bench: nginx's keepalive_requests here (HAProxy
# has no such limit). h2load 1.52 does not reconnect after a GOAWAY in a timed run, so appgw's
# default (Azure's 1,000) would end its 4 connections after 4,000 requests and idle the rest.
APPGW_HTTP2_LIMITS = "max_requests=10000000"

# wrk script: one JSON line with what the table needs (wrk's own summary rounds too much).
REPORT_LUA = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %f, "errors": %d, "p50": %d, "p99": %d, "p999": %d}\\n',
    summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""
PACED_LUA = REPORT_LUA + "\nfunction delay() return 10 end\n"
CLOSE_LUA = REPORT_LUA + '\nwrk.headers["Connection"] = "close"\n'
REWRITE_LUA = REPORT_LUA + f'\nwrk.headers["Host"] = "{REWRITE_HOST}"\n'
WAF_LUA = REPORT_LUA + "".join(
    f'wrk.headers["{name}"] = "{value}"\n' for name, value in WAF_HEADERS.items()
)


# --- processes ----------------------------------------------------------------------------------


class Processes:
    """Every process the bench starts; all are stopped on exit, Ctrl-C or failure."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: list[str], *, cpus: str, log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(
                ["taskset", "-c", cpus, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group: stopped as a whole
            )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in reversed(self.started):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.started.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    raise SystemExit(f"bench: {what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for current in pids:
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def tree_of(pid: int) -> Callable[[], list[int]]:
    return lambda: process_tree(pid)


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    ticks: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


# --- certificates -------------------------------------------------------------------------------


@dataclass
class Certs:
    root_pem: Path
    front_cert: Path
    front_key: Path
    front_combined: Path  # HAProxy wants cert + key in one file
    origin_cert: Path
    origin_key: Path
    client_cert: Path  # full-hs-mtls: the client's certificate and key, issued by the root
    client_key: Path
    front_pfx_b64: str
    root_der_b64: str


def make_certs(directory: Path) -> Certs:
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    # RSA 2048: what most sites still serve, so handshake costs are the usual ones.
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = (
        x509.CertificateBuilder()
        .subject_name(name("appgw bench root"))
        .issuer_name(name("appgw bench root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(root_key, hashes.SHA256())
    )

    def leaf(host: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(host))
            .issuer_name(root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                # clientAuth too: the client certificate of full-hs-mtls is made the same way.
                x509.ExtendedKeyUsage(
                    [
                        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
                    ]
                ),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )
        return key, cert

    def pem_key(key: rsa.RSAPrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    pem = serialization.Encoding.PEM
    front_key, front = leaf(FRONT_NAME)
    origin_key, origin = leaf(ORIGIN_NAME)
    client_key, client = leaf("client.bench.test")
    paths = {
        "root.pem": root.public_bytes(pem),
        "front.pem": front.public_bytes(pem) + root.public_bytes(pem),
        "front.key": pem_key(front_key),
        "front-combined.pem": front.public_bytes(pem) + pem_key(front_key),
        "origin.pem": origin.public_bytes(pem) + root.public_bytes(pem),
        "origin.key": pem_key(origin_key),
        "client.pem": client.public_bytes(pem),
        "client.key": pem_key(client_key),
    }
    for file_name, data in paths.items():
        (directory / file_name).write_bytes(data)
        (directory / file_name).chmod(0o644)
    pfx = pkcs12.serialize_key_and_certificates(
        b"front",
        front_key,
        front,
        [root],
        serialization.BestAvailableEncryption(PFX_PASSWORD.encode()),
    )
    return Certs(
        root_pem=directory / "root.pem",
        front_cert=directory / "front.pem",
        front_key=directory / "front.key",
        front_combined=directory / "front-combined.pem",
        origin_cert=directory / "origin.pem",
        origin_key=directory / "origin.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        front_pfx_b64=base64.b64encode(pfx).decode(),
        root_der_b64=base64.b64encode(root.public_bytes(serialization.Encoding.DER)).decode(),
    )


# --- the servers --------------------------------------------------------------------------------


@dataclass
class Ports:
    origin_tls: int = field(default_factory=free_port)
    origin_http: int = field(default_factory=free_port)
    proxies: dict[str, tuple[int, int, int, int]] = field(
        default_factory=lambda: {t: free_ports() for t in TARGETS}
    )  # target -> (https port, http port, mutual TLS port, h2 port)
    # waf-small: each WAF site's HTTPS port (nginx's server, appgw's second gateway).
    waf: dict[str, int] = field(default_factory=lambda: {t: free_port() for t in TARGETS})


def free_ports() -> tuple[int, int, int, int]:
    """One proxy's ports: HTTPS, HTTP, mutual TLS, and HTTPS offering h2 (the h2 cases)."""
    return free_port(), free_port(), free_port(), free_port()


def nginx_common(prefix: Path) -> str:
    return f"""
daemon off;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 16384; }}
"""


def nginx_temp_paths(prefix: Path) -> str:
    return "".join(
        f"{kind}_temp_path {prefix}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def origin_config(work: Path, certs: Certs, ports: Ports) -> Path:
    prefix = work / "origin"
    (prefix / "www").mkdir(parents=True)
    (prefix / "www" / "small").write_bytes(SMALL_BODY)
    (prefix / "www" / "large").write_bytes(LARGE_BODY)
    config = prefix / "nginx.conf"
    config.write_text(
        nginx_common(prefix)
        + f"""
worker_processes 1;
http {{
  {nginx_temp_paths(prefix)}
  # $connection_requests is 1 on a new connection: the proxies' backend connection reuse.
  log_format reuse '$connection_requests';
  access_log {prefix}/access.log reuse buffer=64k flush=100ms;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{ports.origin_tls} ssl;
    listen 127.0.0.1:{ports.origin_http};
    ssl_certificate {certs.origin_cert};
    ssl_certificate_key {certs.origin_key};
    root {prefix}/www;
  }}
}}
"""
    )
    return config


def waf_rules_text() -> str:
    """The WAF directives appgw gives ModSecurity for the bench's gateway (Prevention, OWASP
    3.2, no exclusions), as one SecLanguage file: appgw's own before-rules text, the CRS files
    appgw loads, in its order, then its after-rules text (empty here)."""
    sys.path.insert(0, str(ROOT / "src"))  # this tree's appgw, as `appgw serve` runs it
    from appgw.waf.engine import CRS_RULES
    from appgw.waf.seclang import CRS_FILES, WafSettings, after_rules, before_rules

    settings = WafSettings(prevention=True, rule_set_version="3.2")
    return (
        before_rules(settings)
        + "".join(f"Include {CRS_RULES / name}\n" for name in CRS_FILES)
        + after_rules(settings)
    )


def nginx_proxy_config(work: Path, certs: Certs, ports: Ports, waf: bool = False) -> Path:
    """`waf`: also the waf-small site (ModSecurity on), on a port of its own."""
    prefix = work / "nginx"
    prefix.mkdir()
    https, http, mtls, h2 = ports.proxies["nginx"]
    config = prefix / "nginx.conf"
    nginx_rewrites = "\n      ".join(
        f'add_header {name} "{value}" always;'
        if value is not None
        else f"proxy_hide_header {name};"
        for name, value in REWRITES.items()
    )
    proxy_common = """
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host origin.bench.test;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
"""
    # Every TLS site proxies to the origin alike: re-encrypted, verified, SNI, sessions kept.
    to_origin = f"""proxy_pass https://origin_tls;
      {proxy_common}
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {certs.root_pem};
      proxy_ssl_name {ORIGIN_NAME};
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;"""
    modules = waf_site = ""
    if waf:
        rules = prefix / "modsecurity.conf"
        rules.write_text(waf_rules_text())
        modules = "".join(f"load_module {NGINX_MODULES / m};\n" for m in NGINX_WAF_MODULES)
        # The connector's default is off: only this server inspects requests.
        waf_site = f"""
  server {{
    listen 127.0.0.1:{ports.waf["nginx"]} ssl;
    ssl_certificate {certs.front_cert};
    ssl_certificate_key {certs.front_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    modsecurity on;
    modsecurity_rules_file {rules};
    location / {{
      {to_origin}
    }}
  }}"""
    config.write_text(
        modules
        + nginx_common(prefix)
        + f"""
worker_processes 1;
http {{
  {nginx_temp_paths(prefix)}
  log_format bench '$remote_addr - [$time_iso8601] "$request" $status $body_bytes_sent '
                   '$request_time $upstream_addr $upstream_status reused=$ssl_session_reused';
  # buffered like appgw's (which writes at most every 0.2 s or per 64 KiB)
  access_log {prefix}/access.log bench buffer=64k flush=1s;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  upstream origin_tls {{ server 127.0.0.1:{ports.origin_tls}; keepalive 64; }}
  upstream origin_http {{ server 127.0.0.1:{ports.origin_http}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{https} ssl;
    ssl_certificate {certs.front_cert};
    ssl_certificate_key {certs.front_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      {to_origin}
    }}
  }}
  server {{
    listen 127.0.0.1:{https} ssl;
    server_name {REWRITE_HOST};
    ssl_certificate {certs.front_cert};
    ssl_certificate_key {certs.front_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      {to_origin}
      {nginx_rewrites}
    }}
  }}
  server {{
    listen 127.0.0.1:{mtls} ssl;
    ssl_certificate {certs.front_cert};
    ssl_certificate_key {certs.front_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_verify_client on;
    ssl_client_certificate {certs.root_pem};
    location / {{
      {to_origin}
    }}
  }}
  server {{
    # h2 cases. nginx 1.22 has no `http2 on;`: the listen parameter is its equivalent (it
    # applies to the whole address:port, hence a port of its own).
    listen 127.0.0.1:{h2} ssl http2;
    ssl_certificate {certs.front_cert};
    ssl_certificate_key {certs.front_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      {to_origin}
    }}
  }}
  server {{
    listen 127.0.0.1:{http};
    location / {{ proxy_pass http://origin_http; {proxy_common} }}
  }}{waf_site}
}}
"""
    )
    return config


def haproxy_config(work: Path, certs: Certs, ports: Ports) -> Path:
    prefix = work / "haproxy"
    prefix.mkdir()
    https, http, mtls, h2 = ports.proxies["haproxy"]
    config = prefix / "haproxy.cfg"
    haproxy_rewrites = "\n  ".join(
        f'http-response set-header {name} "{value}" if {{ var(txn.rewrite) -m bool }}'
        if value is not None
        else f"http-response del-header {name} if {{ var(txn.rewrite) -m bool }}"
        for name, value in REWRITES.items()
    )
    config.write_text(
        f"""
global
  nbthread 1
  maxconn 8000
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
frontend fe_tls
  bind 127.0.0.1:{https} ssl crt {certs.front_combined} alpn http/1.1
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-var(txn.rewrite) bool(true) if {{ hdr(host) -i {REWRITE_HOST} }}
  http-request set-header Host {ORIGIN_NAME}
  {haproxy_rewrites}
  default_backend be_tls
frontend fe_mtls
  bind 127.0.0.1:{mtls} ssl crt {certs.front_combined} alpn http/1.1 ca-file {certs.root_pem} \
    verify required
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-header Host {ORIGIN_NAME}
  default_backend be_tls
frontend fe_h2
  bind 127.0.0.1:{h2} ssl crt {certs.front_combined} alpn h2,http/1.1
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-header Host {ORIGIN_NAME}
  default_backend be_tls
frontend fe_http
  bind 127.0.0.1:{http}
  option forwardfor
  http-request set-header Host {ORIGIN_NAME}
  default_backend be_http
backend be_tls
  server origin 127.0.0.1:{ports.origin_tls} ssl verify required ca-file {certs.root_pem} \
    sni str({ORIGIN_NAME}) verifyhost {ORIGIN_NAME} alpn http/1.1 pool-max-conn 64
backend be_http
  server origin 127.0.0.1:{ports.origin_http} pool-max-conn 64
"""
    )
    return config


def appgw_document(
    certs: Certs, ports: Ports, name: str = "bench", waf: bool = False
) -> dict[str, Any]:
    """The benched gateway; `waf`: the waf-small gateway instead, the same HTTPS site (port
    ports.waf) with the WAF on in Prevention mode and nothing else."""
    gid = (
        "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.Network/"
        f"applicationGateways/{name}"
    )
    https, http, mtls, h2 = ports.proxies["appgw"]

    def ref(kind: str, name: str) -> dict[str, str]:
        return {"id": f"{gid}/{kind}/{name}"}

    def settings(name: str, protocol: str, port: int) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "port": port,
            "protocol": protocol,
            "cookieBasedAffinity": "Disabled",
            "requestTimeout": 30,
            "hostName": ORIGIN_NAME,
            "pickHostNameFromBackendAddress": False,
            "probe": ref("probes", f"{name}Probe"),
        }
        if protocol == "Https":
            properties["trustedRootCertificates"] = [ref("trustedRootCertificates", "benchRoot")]
        return {"name": name, "properties": properties}

    def probe(name: str, protocol: str) -> dict[str, Any]:
        # Rare probes: the health monitor must not weigh on the measurement.
        return {
            "name": f"{name}Probe",
            "properties": {
                "protocol": protocol,
                "host": ORIGIN_NAME,
                "path": "/small",
                "interval": 3600,
                "timeout": 30,
                "unhealthyThreshold": 3,
                "pickHostNameFromBackendHttpSettings": False,
                "match": {"statusCodes": ["200-399"]},
            },
        }

    def listener(name: str, protocol: str, port_name: str) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "frontendIPConfiguration": ref("frontendIPConfigurations", "front"),
            "frontendPort": ref("frontendPorts", port_name),
            "protocol": protocol,
        }
        if protocol == "Https":
            properties["sslCertificate"] = ref("sslCertificates", "front")
        return {"name": name, "properties": properties}

    def rule(
        name: str, priority: int, listener_name: str, settings_name: str, rewrites: bool = False
    ) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "ruleType": "Basic",
            "priority": priority,
            "httpListener": ref("httpListeners", listener_name),
            "backendAddressPool": ref("backendAddressPools", "origin"),
            "backendHttpSettings": ref("backendHttpSettingsCollection", settings_name),
        }
        if rewrites:
            properties["rewriteRuleSet"] = ref("rewriteRuleSets", "fiveRewrites")
        return {"name": name, "properties": properties}

    rewrite_site = listener("rewriteListener", "Https", "https")
    rewrite_site["properties"]["hostName"] = REWRITE_HOST
    mutual_site = listener("mtlsListener", "Https", "mtls")
    mutual_site["properties"]["sslProfile"] = ref("sslProfiles", "mutual")

    document: dict[str, Any] = {
        "location": "local",
        "properties": {
            "sku": {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 1},
            "sslPolicy": {"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101"},
            # The h2 cases. It makes every HTTPS listener offer h2 in ALPN; the other cases'
            # clients (wrk 4.1, openssl s_time, http.client) offer no ALPN, so they keep
            # HTTP/1.1 (checked against a server offering h2: none negotiated it).
            "enableHttp2": True,
            "gatewayIPConfigurations": [
                {
                    "name": "ipconfig",
                    "properties": {
                        "subnet": {
                            "id": "/subscriptions/bench/resourceGroups/bench/providers/"
                            "Microsoft.Network/virtualNetworks/vnet/subnets/appgw"
                        }
                    },
                }
            ],
            "sslCertificates": [
                {
                    "name": "front",
                    "properties": {"data": certs.front_pfx_b64, "password": PFX_PASSWORD},
                }
            ],
            "trustedRootCertificates": [
                {"name": "benchRoot", "properties": {"data": certs.root_der_b64}}
            ],
            "frontendIPConfigurations": [
                {
                    "name": "front",
                    "properties": {
                        "publicIPAddress": {
                            "id": "/subscriptions/bench/resourceGroups/bench/providers/"
                            "Microsoft.Network/publicIPAddresses/pip"
                        }
                    },
                }
            ],
            "frontendPorts": [
                {"name": "https", "properties": {"port": https}},
                {"name": "http", "properties": {"port": http}},
                {"name": "mtls", "properties": {"port": mtls}},
                {"name": "h2", "properties": {"port": h2}},
            ],
            "trustedClientCertificates": [
                {"name": "benchClients", "properties": {"data": certs.root_der_b64}}
            ],
            "sslProfiles": [
                {
                    "name": "mutual",
                    "properties": {
                        "trustedClientCertificates": [
                            ref("trustedClientCertificates", "benchClients")
                        ]
                    },
                }
            ],
            "backendAddressPools": [
                {
                    "name": "origin",
                    "properties": {"backendAddresses": [{"ipAddress": "127.0.0.1"}]},
                }
            ],
            "backendHttpSettingsCollection": [
                settings("originTls", "Https", ports.origin_tls),
                settings("originHttp", "Http", ports.origin_http),
            ],
            "probes": [probe("originTls", "Https"), probe("originHttp", "Http")],
            "httpListeners": [
                listener("httpsListener", "Https", "https"),
                listener("httpListener", "Http", "http"),
                rewrite_site,
                mutual_site,
                listener("h2Listener", "Https", "h2"),
            ],
            "requestRoutingRules": [
                # The multi-site listener first: the basic one takes every other host.
                rule("rewriteRule", 50, "rewriteListener", "originTls", rewrites=True),
                rule("tlsRule", 100, "httpsListener", "originTls"),
                rule("httpRule", 200, "httpListener", "originHttp"),
                rule("mtlsRule", 300, "mtlsListener", "originTls"),
                rule("h2Rule", 400, "h2Listener", "originTls"),
            ],
            "rewriteRuleSets": [
                {
                    "name": "fiveRewrites",
                    "properties": {
                        "rewriteRules": [
                            {
                                "name": "securityHeaders",
                                "ruleSequence": 100,
                                "actionSet": {
                                    "responseHeaderConfigurations": [
                                        {"headerName": name, "headerValue": value or ""}
                                        for name, value in REWRITES.items()
                                    ]
                                },
                            }
                        ]
                    },
                }
            ],
        },
    }
    if waf:
        props = document["properties"]
        props["sku"] = {"name": "WAF_v2", "tier": "WAF_v2", "capacity": 1}
        props["webApplicationFirewallConfiguration"] = {
            "enabled": True,
            "firewallMode": "Prevention",
            "ruleSetType": "OWASP",
            "ruleSetVersion": "3.2",
        }
        props["frontendPorts"] = [{"name": "https", "properties": {"port": ports.waf["appgw"]}}]
        props["httpListeners"] = [listener("httpsListener", "Https", "https")]
        props["requestRoutingRules"] = [rule("tlsRule", 100, "httpsListener", "originTls")]
        props["backendHttpSettingsCollection"] = [settings("originTls", "Https", ports.origin_tls)]
        props["probes"] = [probe("originTls", "Https")]
        for unused in ("trustedClientCertificates", "sslProfiles", "rewriteRuleSets"):
            del props[unused]
    return document


def serve_command(data_dir: Path, workers: int) -> list[str]:
    """`appgw serve` on loopback: API on a free port, frontends on 127.0.0.1 (scale.py too)."""
    return [
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
    ]


API_ADDRESS = re.compile(r"API:\s+(http://127\.0\.0\.1:\d+)/")  # as `appgw serve` prints it


def start_appgw(
    processes: Processes,
    work: Path,
    certs: Certs,
    ports: Ports,
    cpus: str,
    workers: int,
    name: str = "appgw",
    waf: bool = False,
) -> subprocess.Popen[bytes]:
    """`waf`: also the waf-small gateway (a second one, WAF_v2, on ports.waf)."""
    import httpx  # appgw's own dependency; imported late so `--help` needs nothing

    data_dir = work / name
    data_dir.mkdir()
    log = work / f"{name}.log"
    process = processes.start(
        serve_command(data_dir, workers),
        cpus=cpus,
        log=log,
        env={
            "APPGW_ADMIN_TOKEN": TOKEN,
            "PYTHONPATH": str(ROOT / "src"),
            "APPGW_HTTP2_LIMITS": APPGW_HTTP2_LIMITS,
        },
    )
    deadline = time.monotonic() + 60
    base = ""
    while not base:
        text = log.read_text(errors="replace")
        match = API_ADDRESS.search(text)
        if match and text.count("ready") >= workers:
            base = match[1]
        elif process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: appgw serve did not start:\n{text[-3000:]}")
        time.sleep(0.1)
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    gateways = [("bench", appgw_document(certs, ports))]
    if waf:
        gateways.append(
            (WAF_APPGW_GATEWAY, appgw_document(certs, ports, WAF_APPGW_GATEWAY, waf=True))
        )
    for gateway, document in gateways:
        url = (
            "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.Network/"
            f"applicationGateways/{gateway}?api-version=2026-03-01"
        )
        response = client.put(url, json=document)
        if response.status_code >= 300:
            raise SystemExit(
                f"bench: appgw refused gateway {gateway}: {response.status_code} {response.text}"
            )
    client.close()
    for port in [*ports.proxies["appgw"], *([ports.waf["appgw"]] if waf else [])]:
        wait_port(port, "appgw")
    return process


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    requests: int
    seconds: float
    errors: int
    p50_us: float | None
    p99_us: float | None
    p999_us: float | None
    cpu_seconds: float
    cpu_serve_seconds: float  # appgw: the serve process's share (API, health monitor)
    resumed: int | None = None  # connections s_time saw resumed (resumed case only)
    # What reached the origin meanwhile: requests, and those on a new connection.
    origin_requests: int = 0
    origin_new_connections: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / self.requests if self.requests else float("nan")


def run_wrk(script: Path, url: str, connections: int, seconds: int, cpus: str) -> dict[str, Any]:
    command = [
        "taskset", "-c", cpus, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--timeout", "5s", "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    match = re.search(r"^RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"bench: wrk gave no result for {url}:\n{output}")
    return dict(json.loads(match[1]))


def run_s_time(
    port: int,
    seconds: int,
    cpus: str,
    *,
    reuse: bool,
    clients: int = 8,
    client_certificate: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """`client_certificate`: (certificate, key) files the client presents."""
    command = [
        "taskset", "-c", cpus, "openssl", "s_time", "-connect", f"127.0.0.1:{port}",
        "-reuse" if reuse else "-new", "-www", "/small", "-time", str(seconds),
    ]  # fmt: skip
    if client_certificate is not None:
        command += ["-cert", str(client_certificate[0]), "-key", str(client_certificate[1])]
    started = time.monotonic()
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(clients)
    ]
    outputs = []
    try:
        outputs = [run.communicate()[0] for run in runs]
    finally:
        for run in runs:  # interrupted: no client outlives the bench
            if run.poll() is None:
                run.kill()
                run.wait()
    total = reused = 0
    for output in outputs:
        # "N connections in T real seconds, ..." (of the section asked for)
        counts = re.findall(r"(\d+) connections in [\d.]+ real seconds", output)
        if not counts:
            raise SystemExit(f"bench: openssl s_time gave no result:\n{output}")
        total += int(counts[-1])
        # one character per connection: 'r' when the session was resumed
        section = output.split("Collecting connection statistics", 1)[-1]
        reused += sum(
            line.count("r") for line in section.splitlines() if re.fullmatch(r"[r*]+", line)
        )
    return {
        "requests": total,
        "resumed": reused,
        "seconds": time.monotonic() - started,
        "errors": 0,
        "p50": None,
        "p99": None,
        "p999": None,
    }


class CaseFailed(Exception):
    """A proxy could not run a case (e.g. no h2 yet): reported for it, the run goes on."""


# Beyond -D: h2load's start-up and the end of its last streams; a hung run is then killed.
H2LOAD_GRACE_SECONDS = 20
# h2load's "finished in" duration: its unit varies with the length.
DURATION_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def run_h2load(url: str, seconds: int, cpus: str, log: Path) -> dict[str, Any]:
    """h2load for `seconds` on H2_CONNECTIONS x H2_STREAMS, offering h2 only in ALPN (so a
    proxy without h2 fails instead of quietly serving HTTP/1.1). h2load prints no latency
    percentiles: they come from its per-request log (start, status, microseconds)."""
    command = [
        "taskset", "-c", cpus, "h2load", "-t1", f"-c{H2_CONNECTIONS}", f"-m{H2_STREAMS}",
        "-D", str(seconds), "--npn-list=h2", f"--log-file={log}", url,
    ]  # fmt: skip
    log.unlink(missing_ok=True)
    try:
        run = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + H2LOAD_GRACE_SECONDS,
        )
    except subprocess.TimeoutExpired as error:
        raise CaseFailed(
            f"h2load did not finish within {seconds + H2LOAD_GRACE_SECONDS} s"
        ) from error
    output = run.stdout + run.stderr
    # What a failure shows: h2load's counts and whatever it wrote to stderr.
    tail = " / ".join(
        [
            line.strip()
            for line in run.stdout.splitlines()
            if line.startswith(("requests:", "status codes:"))
        ]
        + run.stderr.strip().splitlines()[:3]
    )
    protocol = re.search(r"^Application protocol: (\S+)", output, re.MULTILINE)
    if protocol is None or protocol[1] != "h2":
        raise CaseFailed(f"no h2 negotiated ({protocol[1] if protocol else 'none'}): {tail}")
    counts = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
        re.MULTILINE,
    )
    finished = re.search(r"^finished in ([\d.]+)(s|ms|us),", output, re.MULTILINE)
    if counts is None or finished is None:
        raise CaseFailed(f"h2load gave no result: {tail}")
    succeeded, failed, errored, timeouts = (int(counts[i]) for i in (4, 5, 6, 7))
    if succeeded == 0:
        raise CaseFailed(f"h2load: no request succeeded: {tail}")
    latencies = sorted(
        int(columns[2])
        for columns in (line.split("\t") for line in log.read_text().splitlines())
        if len(columns) >= 3 and columns[1] != "-1"
    )

    def percentile(share: float) -> float | None:
        if not latencies:
            return None
        return float(latencies[min(len(latencies) - 1, int(share * len(latencies)))])

    return {
        "requests": succeeded,
        "seconds": float(finished[1]) * DURATION_UNITS[finished[2]],
        "errors": failed + errored + timeouts,
        "p50": percentile(0.50),
        "p99": percentile(0.99),
        "p999": percentile(0.999),
    }


# Seconds of `s_time -reuse` for the 2-worker resumption line: a few thousand connections.
TWO_WORKER_CHECK_SECONDS = 2


def check_two_worker_resumption(
    processes: Processes, work: Path, certs: Certs, ports: Ports, proxy_cpus: str, load_cpus: str
) -> str:
    """Session resumption with 2 appgw workers (a second appgw, same origin): the kernel
    spreads s_time's connections over both, so every one resumes only if the workers share
    ticket keys; with per-worker keys (APPGW_SHARED_SESSION_TICKETS=0) about half do."""
    fresh = free_ports()
    two = Ports(ports.origin_tls, ports.origin_http, {**ports.proxies, "appgw": fresh})
    start_appgw(processes, work, certs, two, proxy_cpus, 2, name="appgw-2-workers")
    check = run_s_time(
        two.proxies["appgw"][0], TWO_WORKER_CHECK_SECONDS, load_cpus, reuse=True, clients=1
    )
    share = check["resumed"] / check["requests"] if check["requests"] else 0.0
    return (
        f"session resumption: appgw, 2 workers: s_time -reuse resumed {check['resumed']} of "
        f"{check['requests']} connections ({share:.0%})."
    )


@dataclass
class Target:
    name: str
    pids: Callable[[], list[int]]
    serve_pid: int | None = None


def measure(
    target: Target,
    case: str,
    ports: Ports,
    scripts: dict[str, Path],
    seconds: int,
    cpus: str,
    origin_log: Path | None = None,
) -> Sample:
    https, http, mtls, h2 = ports.proxies[target.name]
    pids = target.pids()
    origin_from = origin_log.stat().st_size if origin_log and origin_log.exists() else 0
    if case == "waf-small":
        check_waf(target.name, ports.waf[target.name])  # before the count: not measured
    before = cpu_ticks(pids)
    if case == "ka-rewrite5":
        check_rewrites(target.name, https)
    if case in ("h2-small", "h2-64k"):
        path = "/small" if case == "h2-small" else "/large"
        log = scripts["h2load-log"]
        result = run_h2load(f"https://127.0.0.1:{h2}{path}", seconds, cpus, log)
    elif case == "full-hs":
        result = run_s_time(https, seconds, cpus, reuse=False)
    elif case == "full-hs-mtls":
        result = run_s_time(
            mtls,
            seconds,
            cpus,
            reuse=False,
            client_certificate=(scripts["client-cert"], scripts["client-key"]),
        )
    else:
        script, path, connections, scheme, port = {
            "ka-small": ("report", "/small", 32, "https", https),
            "ka-64k": ("report", "/large", 32, "https", https),
            "resumed": ("close", "/small?resumed", 32, "https", https),
            "paced-1k": ("paced", "/small", 10, "https", https),
            "http-small": ("report", "/small", 32, "http", http),
            "ka-rewrite5": ("rewrite", "/small", 32, "https", https),
            "waf-small": ("waf", WAF_PATH, 32, "https", ports.waf[target.name]),
        }[case]
        result = run_wrk(
            scripts[script], f"{scheme}://127.0.0.1:{port}{path}", connections, seconds, cpus
        )
    after = cpu_ticks(pids)
    used = {pid: after.get(pid, 0) - before.get(pid, 0) for pid in after}
    origin = origin_requests_since(origin_log, origin_from) if origin_log else []
    serve = used.get(target.serve_pid, 0) if target.serve_pid is not None else 0
    return Sample(
        requests=int(result["requests"]),
        seconds=float(result["seconds"]),
        errors=int(result["errors"]),
        p50_us=result["p50"],
        p99_us=result["p99"],
        p999_us=result["p999"],
        cpu_seconds=sum(used.values()) / TICK,
        cpu_serve_seconds=serve / TICK,
        resumed=result.get("resumed"),
        origin_requests=len(origin),
        origin_new_connections=origin.count("1"),
    )


def check_rewrites(name: str, port: int) -> None:
    """One request to the rewrite site before ka-rewrite5 measures it: the four headers set.
    (nginx adds its own Server header whatever is hidden; the others remove the origin's.)"""
    import ssl
    from http.client import HTTPSConnection

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    connection = HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/small", headers={"Host": REWRITE_HOST})
        response = connection.getresponse()
        response.read()
        headers = {key.lower(): value for key, value in response.getheaders()}
    finally:
        connection.close()
    wanted = {key.lower(): value for key, value in REWRITES.items() if value is not None}
    missing = {key: value for key, value in wanted.items() if headers.get(key) != value}
    if response.status != 200 or missing:
        raise SystemExit(f"bench: {name} did not rewrite ({response.status}): {missing}")
    if name != "nginx" and "server" in headers:
        raise SystemExit(f"bench: {name} kept the origin's Server header: {headers['server']}")


def check_waf(name: str, port: int) -> str:
    """The WAF site must be inspecting: the SQL injection answered 403, the clean request of
    the case 200 (else the case would measure a WAF that is off, or blocking everything)."""
    import ssl
    from http.client import HTTPSConnection

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    statuses = []
    for path in (WAF_ATTACK_PATH, WAF_PATH):
        connection = HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        try:
            connection.request("GET", path, headers=WAF_HEADERS)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        finally:
            connection.close()
    attack, clean = statuses
    if (attack, clean) != (403, 200):
        raise CaseFailed(f"WAF check: the SQL injection got {attack}, the clean request {clean}")
    return f"waf: {name}: the SQL injection ({WAF_ATTACK_PATH}) got {attack}, {WAF_PATH} {clean}."


def origin_requests_since(log: Path, offset: int) -> list[str]:
    """The origin's `$connection_requests` of each request logged after `offset`."""
    time.sleep(0.3)  # the origin flushes its buffered log every 100 ms
    if not log.exists():
        return []
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace").split()


# --- set-up and report --------------------------------------------------------------------------


def ensure_tools(waf: bool = False) -> None:
    """`waf`: also nginx's ModSecurity connector and the CRS (waf-small; appgw's WAF gateway is
    refused without the CRS)."""
    missing = [package for tool, package in APT_PACKAGES.items() if shutil.which(tool) is None]
    if shutil.which("taskset") is None:
        missing.append("util-linux")
    if waf and not all((NGINX_MODULES / module).is_file() for module in NGINX_WAF_MODULES):
        missing.append("libnginx-mod-http-modsecurity")
    if waf and not Path("/usr/share/modsecurity-crs/rules").is_dir():
        missing.append("modsecurity-crs")
    if not missing:
        return
    print(f"bench: installing {' '.join(missing)} from Debian", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def versions() -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        return (result.stdout or result.stderr).strip().splitlines()[0]

    return {
        "nginx": first_line(["nginx", "-v"]).split("/")[-1],
        "haproxy": first_line(["haproxy", "-v"]).split()[2],
        "wrk": first_line(["wrk", "-v"]).split()[1],
        "openssl": first_line(["openssl", "version"]).split()[1],
        "h2load": first_line(["h2load", "--version"]).split("/")[-1],
        "python": sys.version.split()[0],
        "appgw": subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def report(
    results: dict[tuple[str, str], list[Sample]],
    cases: list[str],
    targets: list[str],
    info: dict[str, str],
    failed: dict[tuple[str, str], str] | None = None,
) -> str:
    lines = [
        f"{info['when']}; {info['cores']} cores ({info['cpu']}); "
        f"proxy on CPU {info['proxy_cpus']}, "
        f"load generator + origin on CPU {info['load_cpus']}; appgw workers: {info['workers']}; "
        f"{info['seconds']} s per run, median of {info['repeats']} alternating runs.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",  # type: ignore[attr-defined]
        "",
        "| case | proxy | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | req/s vs nginx "
        "| CPU/req: nginx ÷ this | CPU util | backend reuse | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        baseline = baseline_cpu = None
        if ("nginx", case) in results:
            baseline = statistics.median(s.rate for s in results[("nginx", case)])
            baseline_cpu = statistics.median(s.cpu_us_per_request for s in results[("nginx", case)])
        for target in targets:
            samples = results.get((target, case))
            if not samples:
                if (target, case) in NOT_APPLICABLE:
                    why = NOT_APPLICABLE[(target, case)]
                    lines.append(f"| {case} | {target} | n/a ({why}) |" + " - |" * 9)
                elif (target, case) in (failed or {}):
                    lines.append(f"| {case} | {target} | failed |" + " - |" * 8 + " see below |")
                continue
            rate = statistics.median(s.rate for s in samples)
            p50s = [s.p50_us for s in samples if s.p50_us is not None]
            p99s = [s.p99_us for s in samples if s.p99_us is not None]
            p999s = [s.p999_us for s in samples if s.p999_us is not None]
            origin = sum(s.origin_requests for s in samples)
            fresh = sum(s.origin_new_connections for s in samples)
            # Share of the backend requests sent on a connection that served one before.
            reuse = f"{1 - fresh / origin:.1%}" if origin else "-"
            cpu = statistics.median(s.cpu_us_per_request for s in samples)
            util = statistics.median(s.cpu_seconds / s.seconds for s in samples if s.seconds)
            serve = statistics.median(
                s.cpu_serve_seconds * 1e6 / max(s.requests, 1) for s in samples
            )
            cpu_text = fmt(cpu)
            if target == "appgw":
                cpu_text += f" (serve {fmt(serve, 1)})"
            ratio = "" if not baseline else f"{rate / baseline:.2f}x"
            efficiency = "" if not baseline_cpu else f"{baseline_cpu / cpu:.2f}x"
            if case == "paced-1k" and baseline is not None and p99s and target != "nginx":
                nginx_p99 = statistics.median(
                    s.p99_us for s in results[("nginx", case)] if s.p99_us is not None
                )
                ratio += f" (p99 {statistics.median(p99s) / nginx_p99:.2f}x)"
            lines.append(
                f"| {case} | {target} | {fmt(rate)} | "
                f"{fmt(statistics.median(p50s) / 1000, 2) if p50s else '-'} | "
                f"{fmt(statistics.median(p99s) / 1000, 2) if p99s else '-'} | "
                f"{fmt(statistics.median(p999s) / 1000, 2) if p999s else '-'} | {cpu_text} | "
                f"{ratio} | {efficiency} | {util:.0%} | {reuse} | "
                f"{sum(s.errors for s in samples)} |"
            )
    for (target, case), why in (failed or {}).items():
        lines.append(f"\n{case}: {target} failed: {why}")
    if "waf-small" in cases and "ka-small" in cases:
        lines.append("")
        for target in targets:
            waf, plain = results.get((target, "waf-small")), results.get((target, "ka-small"))
            if waf and plain:
                with_waf = statistics.median(s.cpu_us_per_request for s in waf)
                without = statistics.median(s.cpu_us_per_request for s in plain)
                lines.append(
                    f"WAF cost: {target}: {fmt(with_waf)} µs CPU/req with the WAF (waf-small), "
                    f"{fmt(without)} without (ka-small): +{fmt(with_waf - without)} µs per "
                    f"request ({with_waf / without:.2f}x)."
                )
    return "\n".join(lines)


def check_resumed(work: Path) -> str:
    """wrk must resume sessions in `resumed`: nginx logs $ssl_session_reused per request."""
    log = work / "nginx" / "access.log"
    if not log.exists():
        return ""
    lines = [line for line in log.read_text(errors="replace").splitlines() if "?resumed" in line]
    reused = sum("reused=r" in line for line in lines)
    return f"resumed: nginx logged {reused} of {len(lines)} wrk requests on a resumed TLS session."


@contextlib.contextmanager
def signals_to_exceptions() -> Iterator[None]:
    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell that backgrounds `make bench` leaves SIGINT ignored.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> int:
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
        return 0
    quick = os.environ.get("BENCH_QUICK") == "1"
    seconds = int(os.environ.get("BENCH_SECONDS", "3" if quick else "6"))
    repeats = int(os.environ.get("BENCH_REPEATS", "1" if quick else "3"))
    workers = int(os.environ.get("BENCH_WORKERS", "1"))
    cases = os.environ.get("BENCH_CASES", ",".join(CASES)).split(",")
    targets = os.environ.get("BENCH_TARGETS", ",".join(TARGETS)).split(",")
    for name, allowed, chosen in (("case", CASES, cases), ("target", TARGETS, targets)):
        unknown = set(chosen) - set(allowed)
        if unknown:
            raise SystemExit(f"bench: unknown {name}(s) {', '.join(sorted(unknown))}")
    cores = os.cpu_count() or 1
    proxy_cpus = os.environ.get("BENCH_PROXY_CPUS", "0")
    taken = {int(c) for c in proxy_cpus.split(",")}
    load_cpus = os.environ.get(
        "BENCH_LOAD_CPUS", ",".join(str(c) for c in range(cores) if c not in taken) or "0"
    )
    waf = "waf-small" in cases
    ensure_tools(waf)
    work = Path(tempfile.mkdtemp(prefix="appgw-perf-bench-"))
    processes = Processes()
    results: dict[tuple[str, str], list[Sample]] = {}
    failed: dict[tuple[str, str], str] = {}  # (target, case) -> why it could not run
    try:
        with signals_to_exceptions():
            certs = make_certs(work)
            ports = Ports()
            # Files the load generators use: wrk scripts, the mutual-TLS client's certificate.
            scripts = {
                "client-cert": certs.client_cert,
                "client-key": certs.client_key,
                "h2load-log": work / "h2load.log",  # h2load's per-request log (latencies)
            }
            for name, text in (
                ("report", REPORT_LUA),
                ("paced", PACED_LUA),
                ("close", CLOSE_LUA),
                ("rewrite", REWRITE_LUA),
                ("waf", WAF_LUA),
            ):
                scripts[name] = work / f"{name}.lua"
                scripts[name].write_text(text)
            processes.start(
                ["nginx", "-p", str(work / "origin"), "-c", str(origin_config(work, certs, ports))],
                cpus=load_cpus,
                log=work / "origin.log",
            )
            wait_port(ports.origin_tls, "origin nginx")
            running: dict[str, Target] = {}
            if "nginx" in targets:
                config = nginx_proxy_config(work, certs, ports, waf=waf)
                nginx = processes.start(
                    ["nginx", "-p", str(work / "nginx"), "-c", str(config)],
                    cpus=proxy_cpus,
                    log=work / "nginx.log",
                )
                running["nginx"] = Target("nginx", tree_of(nginx.pid))
            if "haproxy" in targets:
                haproxy = processes.start(
                    ["haproxy", "-db", "-f", str(haproxy_config(work, certs, ports))],
                    cpus=proxy_cpus,
                    log=work / "haproxy" / "access.log",
                )
                running["haproxy"] = Target("haproxy", tree_of(haproxy.pid))
            if "appgw" in targets:
                appgw = start_appgw(processes, work, certs, ports, proxy_cpus, workers, waf=waf)
                running["appgw"] = Target("appgw", tree_of(appgw.pid), serve_pid=appgw.pid)
            for name in running:
                for port in ports.proxies[name]:
                    wait_port(port, name)
                if waf and (name, "waf-small") not in NOT_APPLICABLE:
                    wait_port(ports.waf[name], name)
            # taskset runs the program itself (exec), so the pids are the servers'.
            for case in cases:
                # A short warm-up per target: pools filled, caches and JITs (none) settled.
                for name, target in running.items():
                    if (name, case) in NOT_APPLICABLE:
                        continue
                    try:
                        measure(target, case, ports, scripts, 1, load_cpus)
                    except CaseFailed as error:
                        failed[(name, case)] = str(error)
                        print(f"bench: {case:<10} {name:<7} failed: {error}", file=sys.stderr)
                for repeat in range(repeats):
                    order = list(running)
                    shift = repeat % len(order)
                    order = order[shift:] + order[:shift]
                    for name in order:
                        if (name, case) in failed or (name, case) in NOT_APPLICABLE:
                            continue
                        try:
                            sample = measure(
                                running[name],
                                case,
                                ports,
                                scripts,
                                seconds,
                                load_cpus,
                                origin_log=work / "origin" / "access.log",
                            )
                        except CaseFailed as error:
                            failed[(name, case)] = str(error)
                            print(f"bench: {case:<10} {name:<7} failed: {error}", file=sys.stderr)
                            continue
                        results.setdefault((name, case), []).append(sample)
                        print(
                            f"bench: {case:<10} {name:<7} {sample.rate:9,.0f} req/s "
                            f"{sample.cpu_us_per_request:6.0f} µs CPU/req "
                            f"errors {sample.errors}",
                            file=sys.stderr,
                            flush=True,
                        )
            info: dict[str, Any] = {
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "cores": cores,
                "cpu": _cpu_model(),
                "proxy_cpus": proxy_cpus,
                "load_cpus": load_cpus,
                "workers": workers,
                "seconds": seconds,
                "repeats": repeats,
                "versions": versions(),
            }
            print(report(results, cases, [t for t in TARGETS if t in running], info, failed))
            print()
            if "resumed" in cases and "nginx" in running:
                time.sleep(1.5)  # nginx flushes its buffered log every second
                print(check_resumed(work))
            for name in running:
                check = run_s_time(ports.proxies[name][0], 1, load_cpus, reuse=True, clients=1)
                print(
                    f"session resumption: {name}: s_time -reuse resumed {check['resumed']} of "
                    f"{check['requests']} connections."
                )
            for name in running:
                if waf and (name, "waf-small") not in NOT_APPLICABLE:
                    try:
                        print(check_waf(name, ports.waf[name]))
                    except CaseFailed as error:
                        print(f"waf: {name}: {error}")
            if "appgw" in running:
                print(
                    check_two_worker_resumption(
                        processes, work, certs, ports, proxy_cpus, load_cpus
                    )
                )
            for (name, case), samples in results.items():
                if case == "full-hs":
                    resumed = sum(s.resumed or 0 for s in samples)
                    total = sum(s.requests for s in samples)
                    print(f"full-hs: {name}: s_time -new resumed {resumed} of {total} connections.")
            print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    finally:
        processes.stop_all()
        if os.environ.get("BENCH_KEEP") == "1":
            print(f"bench: work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
