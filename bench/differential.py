"""`make differential`: the same hostile requests to nginx, HAProxy and appgw, side by side.

Each proxy is configured as `make bench` configures it (bench.py), its plain HTTP listener in
front of one recording origin that keeps every byte it receives. Every case is sent as raw
bytes on a new connection; the table says what the client got (status, or how the connection
ended) and whether any byte of the case reached the origin. docs/security.md quotes the table.

Loopback only; every wait is bounded; everything started is stopped, on Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bench

ANSWER_TIMEOUT = 3.0  # how long a client waits for a proxy to answer or close
SETTLE = 0.3  # time for anything a proxy might still forward to reach the origin
HOST = "differential.test"
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def request(target: str, *headers: str, method: str = "GET", version: str = "HTTP/1.1") -> str:
    return "\r\n".join([f"{method} {target} {version}", f"Host: {HOST}", *headers]) + "\r\n\r\n"


CHUNKED_BODY = "5\r\nhello\r\n0\r\n\r\n"
# name -> the bytes sent ("{m}" is a marker unique to each send; the origin is searched for it)
CASES: dict[str, Callable[[], str]] = {
    "TE: xchunked": lambda: (
        request("/{m}", "Transfer-Encoding: xchunked", method="POST") + CHUNKED_BODY
    ),
    "TE: gzip, chunked": lambda: (
        request("/{m}", "Transfer-Encoding: gzip, chunked", method="POST") + CHUNKED_BODY
    ),
    "TE: chunked, identity": lambda: (
        request("/{m}", "Transfer-Encoding: chunked, identity", method="POST") + CHUNKED_BODY
    ),
    "TE on HTTP/1.0": lambda: (
        request("/{m}", "Transfer-Encoding: chunked", method="POST", version="HTTP/1.0")
        + CHUNKED_BODY
    ),
    "CL and TE": lambda: (
        request("/{m}", "Content-Length: 5", "Transfer-Encoding: chunked", method="POST")
        + CHUNKED_BODY
    ),
    "two Content-Lengths": lambda: (
        request("/{m}", "Content-Length: 5", "Content-Length: 6", method="POST") + "hello!"
    ),
    "Content-Length: +5": lambda: request("/{m}", "Content-Length: +5", method="POST") + "hello",
    "chunk size overflow": lambda: (
        request("/{m}", "Transfer-Encoding: chunked", method="POST")
        + "10000000000000001\r\nx\r\n0\r\n\r\n"
    ),
    "chunk size 0x5": lambda: (
        request("/{m}", "Transfer-Encoding: chunked", method="POST") + "0x5\r\nhello\r\n0\r\n\r\n"
    ),
    "TRACE + pipelined GET": lambda: request("/", method="TRACE") + request("/{m}"),
    "no Host + pipelined GET": lambda: "GET / HTTP/1.1\r\n\r\n" + request("/{m}"),
    "two Hosts + pipelined GET": lambda: request("/", "Host: other.test") + request("/{m}"),
    "Host: a b + pipelined GET": lambda: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n" + request("/{m}"),
    "absolute-form to another host": lambda: request("http://elsewhere.test/{m}"),
    "obs-fold after a valid GET": lambda: (
        request("/ok") + "GET /{m} HTTP/1.1\r\nHost: " + HOST + "\r\nX: a\r\n b\r\n\r\n"
    ),
    "/a/../../{m}": lambda: request("/a/../../{m}"),
    "/%2e%2e/{m}": lambda: request("/%2e%2e/{m}"),
    "/{m}/%zz": lambda: request("/{m}/%zz"),
    "/{m}/%00": lambda: request("/{m}/%00"),
    "GET * (asterisk form)": lambda: request("*", "X-Mark: {m}"),
    "/{m}#fragment": lambda: request("/{m}#fragment"),
    "backslash /{m}\\..\\x": lambda: request("/{m}\\..\\x"),
    "URL of 40 KiB": lambda: request("/{m}/" + "a" * 40960),
    "header value of 40 KiB": lambda: request("/{m}", "X-Big: " + "b" * 40960),
    "190 headers of 200 B": lambda: request(
        "/{m}", *(f"X-Filler-{i}: {'v' * 200}" for i in range(190))
    ),
}


class RecordingOrigin:
    """Answers every request head it can find with 200, keeps every byte it receives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received = bytearray()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def saw(self, marker: str) -> bool:
        with self._lock:
            return marker.encode() in self.received

    def start(self) -> RecordingOrigin:
        ready = threading.Event()
        self._thread.start()
        self._loop.call_soon_threadsafe(ready.set)
        ready.wait(10)
        bench.wait_port(self.port, "the recording origin")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending = b""
        with contextlib.suppress(OSError, asyncio.TimeoutError, asyncio.CancelledError):
            while data := await asyncio.wait_for(reader.read(65536), 10):
                with self._lock:
                    self.received += data
                pending += data
                while b"\r\n\r\n" in pending:
                    pending = pending.split(b"\r\n\r\n", 1)[1]
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
        writer.close()


@dataclass
class Outcome:
    statuses: list[str]
    closed: bool
    reached_origin: bool

    def cell(self) -> str:
        answer = " + ".join(self.statuses) or "no answer"
        origin = "**reached the origin**" if self.reached_origin else "nothing forwarded"
        return f"{answer}{', closed' if self.closed else ''}; {origin}"


def send(port: int, data: bytes) -> tuple[list[str], bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        received, closed = b"", False
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while time.monotonic() < deadline:
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not piece:
                closed = True
                break
            received += piece
    statuses = [status.decode() for status in STATUS_LINE.findall(received)]
    return statuses, closed


def run() -> dict[str, dict[str, Outcome]]:
    processes = bench.Processes()
    work = Path(tempfile.mkdtemp(prefix="appgw-differential-"))
    try:
        certs = bench.make_certs(work)
        ports = bench.Ports()
        origin = RecordingOrigin(ports.origin_http).start()
        processes.start(
            ["nginx", "-c", str(bench.nginx_proxy_config(work, certs, ports))],
            cpus="0",
            log=work / "nginx.out",
        )
        processes.start(
            ["haproxy", "-f", str(bench.haproxy_config(work, certs, ports))],
            cpus="0",
            log=work / "haproxy.out",
        )
        bench.start_appgw(processes, work, certs, ports, "0", 1)
        for target in bench.TARGETS:
            bench.wait_port(ports.proxies[target][1], target)
        results: dict[str, dict[str, Outcome]] = {}
        for name, make in CASES.items():
            results[name] = {}
            for target in bench.TARGETS:
                marker = uuid.uuid4().hex[:16]
                statuses, closed = send(
                    ports.proxies[target][1], make().replace("{m}", marker).encode("latin-1")
                )
                time.sleep(SETTLE)
                results[name][target] = Outcome(statuses, closed, origin.saw(marker))
        origin.stop()
        return results
    finally:
        processes.stop_all()


def table(results: dict[str, dict[str, Outcome]]) -> str:
    lines = [
        "| case | nginx | HAProxy | appgw |",
        "|---|---|---|---|",
    ]
    for name, outcomes in results.items():
        cells = [outcomes[target].cell() for target in bench.TARGETS]
        lines.append(f"| {name.replace('{m}', 'm')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    bench.ensure_tools()
    versions = bench.versions()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        + ", ".join(f"{name} {version}" for name, version in versions.items())
    )
    print(table(run()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
