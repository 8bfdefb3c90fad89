"""The health monitor in a process of its own, and the API's client for its reports.

Probing runs beside the API in a process of its own: at Azure's limits (120,000 pool members)
the probes keep a core busy, and sharing the API's interpreter lock made a PUT of such a gateway
take 2-5 s instead of 0.8 s. `appgw serve` starts this process like a worker (and restarts it
if it dies); the API asks it for backend health and on-demand probes over a Unix socket that
only the holder of a per-start key may use.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from appgw.health.monitor import HealthMonitor
from appgw.health.report import HealthReportError, MonitorNotReachable, backend_health, on_demand
from appgw.model.ids import GatewayId
from appgw.model.resource import OnDemandProbe
from appgw.store.secrets import MasterKey
from appgw.store.sql import SqlStore
from appgw.supervised import supervisor_gone, supervisor_pid

log = logging.getLogger(__name__)

AUTHKEY_ENV = "APPGW_HEALTH_AUTHKEY"
SOCKET_NAME = "health.sock"
# A report is a dictionary lookup; an on-demand probe waits for its own timeout (at most the
# portal's 30 s default, or what the caller asked, plus this margin).
REPORT_TIMEOUT = 30.0
PROBE_MARGIN = 10.0
PARENT_CHECK_INTERVAL = 1.0  # seconds, as a worker checks it


@dataclass(frozen=True)
class HealthChannel:
    """Where the monitor process listens, and the key that opens it."""

    socket_path: Path
    authkey: bytes

    @classmethod
    def create(cls) -> HealthChannel:
        # A fresh 0700 directory: short enough for a socket path, private to this user.
        directory = Path(tempfile.mkdtemp(prefix="appgw-health-"))
        return cls(directory / SOCKET_NAME, secrets.token_bytes(32))

    def environment(self) -> dict[str, str]:
        return {AUTHKEY_ENV: self.authkey.hex()}

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.socket_path.unlink()
        with contextlib.suppress(OSError):
            self.socket_path.parent.rmdir()


class HealthClient:
    """What the API calls for backend health: the same reports, computed in the monitor."""

    def __init__(self, channel: HealthChannel) -> None:
        self.channel = channel

    def backend_health(self, gateway_id: GatewayId, view: dict[str, Any] | None) -> dict[str, Any]:
        return self._ask(("report", str(gateway_id), view), REPORT_TIMEOUT)

    def on_demand(self, gateway_id: GatewayId, probe: OnDemandProbe) -> dict[str, Any]:
        timeout = float(probe.timeout or REPORT_TIMEOUT) + PROBE_MARGIN
        return self._ask(
            (
                "on_demand",
                str(gateway_id),
                probe.model_dump(mode="json", by_alias=True, exclude_none=True),
            ),
            timeout,
        )

    def _ask(self, request: tuple[Any, ...], timeout: float) -> dict[str, Any]:
        try:
            with Client(str(self.channel.socket_path), "AF_UNIX", self.channel.authkey) as conn:
                conn.send(request)
                if not conn.poll(timeout):
                    raise HealthReportError(
                        503, "BackendHealthUnavailable", "the health monitor did not answer in time"
                    )
                reply = conn.recv()
        except (OSError, EOFError) as error:
            raise MonitorNotReachable(f"the health monitor is not reachable ({error})") from None
        if reply[0] == "error":
            _kind, status, code, message = reply
            raise HealthReportError(status, code, message)
        result: dict[str, Any] = reply[1]
        return result


def _answer(monitor: HealthMonitor, request: tuple[Any, ...]) -> tuple[Any, ...]:
    kind, gateway_text, argument = request
    gateway_id = GatewayId.parse(gateway_text)
    if gateway_id is None:
        return ("error", 400, "InvalidResourceId", f"'{gateway_text}' is not a gateway id")
    try:
        if kind == "report":
            return ("ok", backend_health(monitor, gateway_id, argument))
        if kind == "on_demand":
            probe = OnDemandProbe.model_validate(argument)
            return ("ok", on_demand(monitor, gateway_id, probe))
    except HealthReportError as error:
        return ("error", error.status, error.code, error.message)
    return ("error", 400, "InvalidRequest", f"unknown health request {kind!r}")


def _serve_connection(monitor: HealthMonitor, conn: Connection) -> None:
    with conn:
        try:
            conn.send(_answer(monitor, conn.recv()))
        except (OSError, EOFError):
            pass  # the API gave up waiting; nothing to answer
        except Exception:  # one bad request must not stop the monitor
            log.exception("health monitor: answering a request failed")
            with contextlib.suppress(OSError):
                conn.send(("error", 500, "InternalError", "the health report failed"))


def run(data_dir: Path, store_url: str, frontend_address: str, socket_path: Path) -> None:
    authkey = bytes.fromhex(os.environ.pop(AUTHKEY_ENV))
    # serve set the store up; without waiting for the database this process serves from the
    # instance's copy while it is away (state/sources.py)
    store = SqlStore(store_url, MasterKey.load_or_create(data_dir), set_up=False)
    monitor = HealthMonitor(store, data_dir, frontend_address)
    monitor.start()
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # left by a monitor process that died
    listener = Listener(str(socket_path), "AF_UNIX", authkey=authkey)
    os.chmod(socket_path, 0o600)
    parent = supervisor_pid()

    def stop(_signum: int, _frame: object) -> None:
        listener.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watchdog = threading.Thread(target=_stop_with_parent, args=(parent,), daemon=True)
    watchdog.start()
    print(f"appgw health monitor (pid {os.getpid()}) listening", flush=True)
    try:
        while True:
            try:
                conn = listener.accept()
            except OSError:
                break  # closed: stop
            except Exception:  # a client with the wrong key: refuse it, keep serving
                log.warning("health monitor: refused a connection that failed authentication")
                continue
            threading.Thread(target=_serve_connection, args=(monitor, conn), daemon=True).start()
    finally:
        monitor.stop()
        store.close()
        # Also after a kill -9 of serve, which then cannot remove the socket's directory.
        HealthChannel(socket_path, authkey).remove()


def _stop_with_parent(parent: int) -> None:
    # Like a worker: without the `appgw serve` that started it, the monitor must not run on.
    # (A signal, not listener.close(): closing a socket does not wake a thread in accept().)
    while not supervisor_gone(parent):
        threading.Event().wait(PARENT_CHECK_INTERVAL)
    log.error("the supervising appgw serve process exited; stopping")
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appgw-health")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--store-url", required=True)
    parser.add_argument("--frontend-address", default="0.0.0.0")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--instance-id", default="health")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [health] %(name)s: %(message)s",
    )
    run(args.data_dir, args.store_url, args.frontend_address, args.socket)


if __name__ == "__main__":
    main()
