"""Prometheus metrics under Azure Application Gateway's metric names (spec §7.7).

Every data-plane worker is its own process, so the metrics use prometheus_client's multiprocess
mode: each process writes its values to memory-mapped files in the directory named by
``PROMETHEUS_MULTIPROC_DIR`` and the control plane merges them on every scrape of ``/metrics``.

Names keep Azure's (``appgw_`` + Azure's REST name) and so do label names (Azure's dimensions).
prometheus_client appends ``_total`` to counters, so ``TotalRequests`` is scraped as
``appgw_TotalRequests_total``. Azure's per-second and derived metrics are PromQL over these:

* ``Throughput`` (bytes/s) =
  ``rate(appgw_BytesSent_total[1m]) + rate(appgw_BytesReceived_total[1m])``
  (summed by Gateway over Listener for the gateway-wide figure). A gauge would need a time
  window kept by one process across all workers; rate() computes exactly that, correctly across
  restarts.
* ``NewConnectionsPerSecond`` = ``rate(appgw_NewConnections_total[1m])``.
* ``AvgRequestCountPerHealthyHost`` (per minute) =
  ``60 * rate(appgw_TotalRequests_total[1m]) / appgw_HealthyHostCount`` by Gateway and
  BackendSettingsPool.
* Azure's Avg of a timing metric = ``rate(X_sum[1m]) / rate(X_count[1m])`` of the histogram;
  its Max is approximated by ``histogram_quantile(1, ...)`` (a bucket bound, not the exact max).

Azure Monitor keeps metrics per gateway resource; here one process serves every gateway, so each
series also carries ``Gateway``, the gateway's resource id as stored: without it two gateways
using Azure's default names (appGatewayBackendPool, appGatewayHttpListener, ...) would share
series.

Semantics, as Azure documents them: ``FailedRequests`` counts 5xx answers whether the gateway or
the backend produced them; ``BackendResponseStatus`` counts only statuses a backend sent (never
the gateway's own 502/504/404/redirects). Azure calls ``TotalRequests`` "successful requests";
here it counts every request answered, whatever its status, so that
``FailedRequests / TotalRequests`` is the failure ratio.

Workers sum what they record in plain Python and write it to the shared files every
FLUSH_INTERVAL (and at exit): recording a request costs well under a microsecond.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import math
import os
import threading
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "appgw_"
# prometheus_client names its per-process files "<type>[_<gauge mode>]_<pid>.db"; a reset
# removes only these, so a directory given by mistake (the data dir) loses nothing else.
_FILE_PREFIXES = ("counter_", "gauge_", "histogram_", "summary_")

# Milliseconds, as Azure reports timings: roughly 1-2.5-5 steps per decade from a LAN round
# trip (1 ms) to Azure's default 20 s request timeout, and 60 s for the slow tail.
TIME_BUCKETS_MS = (
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    20000.0,
    60000.0,
    math.inf,
)

# Counters and histograms are summed across processes by prometheus_client. CurrentConnections
# is summed over live processes only ("livesum"): a dead worker's connections are gone, and
# mark_process_dead deletes its file. The prober's gauges are set by one process and must not
# be summed: "livemostrecent" keeps the most recently written value of each series (a restarted
# prober's newer writes win over anything an earlier prober left) and drops a dead prober's
# series with mark_process_dead. ("liveall" would add a pid label that changes on every
# restart; "max" would keep a dead prober's higher count forever.)
_CONNECTIONS_MODE: Final = "livesum"
_PROBER_MODE: Final = "livemostrecent"

# The memory-mapped files cannot delete a series; a removed prober series is written as NaN
# (the most recent value, so it wins the merge) and left out of the scrape.
_REMOVED = math.nan

_families_lock = threading.Lock()
_request_families: _RequestFamilies | None = None
_health_families: _HealthFamilies | None = None
_created_in: str | None = None  # the multiprocess directory when the first metric was created


SHARED_MEMORY = "/dev/shm"  # Linux's memory-backed file system, where it exists


def configure_multiprocess(directory: Path, *, reset: bool) -> None:
    """Called by serve before starting workers: make `directory` the multiprocess directory.

    Creates it (0700), empties it of metric files when `reset`, and sets
    ``os.environ["PROMETHEUS_MULTIPROC_DIR"]`` so child processes inherit it.

    prometheus_client fixes each metric value's storage when the value is created: a process-local
    float, or a slot in a per-process mmap file when the variable is set (the choice is even
    made once, when ``prometheus_client.values`` is first imported). So this must run before any
    metric object exists in this process; this module creates its metric objects lazily, on the
    first recording call, and switches prometheus_client to multiprocess storage then if it was
    imported before the variable was set. Importing this module early is therefore safe.
    """
    path = directory.expanduser().resolve()
    if _created_in is not None and (reset or _created_in != str(path)):
        raise RuntimeError(
            "configure_multiprocess must be called before any appgw metric is recorded in this "
            "process"
        )
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    if reset:
        for entry in path.iterdir():
            if entry.name.endswith(".db") and entry.name.startswith(_FILE_PREFIXES):
                entry.unlink(missing_ok=True)
    os.environ[ENV] = str(path)


def metrics_directory(data_dir: Path) -> Path:
    """Where the processes of the `appgw serve` of `data_dir` keep their metric files.

    Shared memory (/dev/shm) when the machine has it, not the data directory: prometheus_client
    maps its files into memory and grows them sparsely, and writing to such a page on a full
    file system is SIGBUS, which kills the process. A full data directory (access logs, a
    store that grew) must not crash the workers. One directory per data directory and user.
    """
    shared = Path(SHARED_MEMORY)
    if shared.is_dir() and os.access(shared, os.W_OK | os.X_OK):
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
        return shared / f"appgw-{os.getuid()}-{digest}"
    return data_dir / "metrics"


def mark_process_dead(pid: int) -> None:
    """Forget the live gauges (CurrentConnections, the prober's) of a process that exited."""
    path = os.environ.get(ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def metrics_response() -> tuple[bytes, str]:
    """(body, content type) for GET /metrics.

    With ``PROMETHEUS_MULTIPROC_DIR`` set: every process's files merged by a
    MultiProcessCollector in a fresh registry (this process's own in-memory registry is not
    involved). Without it: the default registry of this process.
    """
    path = os.environ.get(ENV)
    if not path:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    registry.register(_MergedFiles(path))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _MergedFiles(Collector):
    """MultiProcessCollector without the series removed by writing NaN."""

    def __init__(self, path: str) -> None:
        self._inner = multiprocess.MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for metric in self._inner.collect():  # type: ignore[no-untyped-call]
            if metric.type == "gauge":
                metric.samples = [s for s in metric.samples if not math.isnan(s.value)]
            yield metric


# --- metric families (one set per process, created on first use) --------------------------------


@dataclass(frozen=True, slots=True)
class _RequestFamilies:
    total_requests: Counter
    failed_requests: Counter
    response_status: Counter
    backend_response_status: Counter
    bytes_sent: Counter
    bytes_received: Counter
    current_connections: Gauge
    new_connections: Counter
    tls_protocol: Counter
    backend_connect_time: Histogram
    backend_first_byte: Histogram
    backend_last_byte: Histogram
    total_time: Histogram


@dataclass(frozen=True, slots=True)
class _HealthFamilies:
    healthy: Gauge
    unhealthy: Gauge
    certificate_days: Gauge


_GATEWAY = ("Gateway",)
_LISTENER = (*_GATEWAY, "Listener")
_BSP = (*_GATEWAY, "BackendSettingsPool")
_BACKEND = (*_GATEWAY, "BackendServer", "BackendPool", "BackendHttpSetting")
_TIMING = (*_LISTENER, "BackendServer", "BackendPool", "BackendHttpSetting")


def _prepare_storage() -> None:
    """Called with _families_lock held, before the first metric object of this process."""
    global _created_in
    path = os.environ.get(ENV)
    if path and values.ValueClass is values.MutexValue:
        # prometheus_client was imported before configure_multiprocess set the variable.
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _created_in = str(Path(path).resolve()) if path else ""


def _requests() -> _RequestFamilies:
    global _request_families
    with _families_lock:
        if _request_families is None:
            _prepare_storage()
            p = PREFIX
            _request_families = _RequestFamilies(
                total_requests=Counter(
                    p + "TotalRequests", "Requests the gateway answered (Azure TotalRequests)", _BSP
                ),
                failed_requests=Counter(
                    p + "FailedRequests",
                    "Requests answered with 5xx, by the gateway or the backend (Azure "
                    "FailedRequests)",
                    _BSP,
                ),
                response_status=Counter(
                    p + "ResponseStatus",
                    "Responses sent to clients by status class (Azure ResponseStatus)",
                    (*_GATEWAY, "HttpStatusGroup"),
                ),
                backend_response_status=Counter(
                    p + "BackendResponseStatus",
                    "Responses received from backends by status class; gateway-generated "
                    "responses excluded (Azure BackendResponseStatus)",
                    (*_BACKEND, "HttpStatusGroup"),
                ),
                bytes_sent=Counter(
                    p + "BytesSent", "Bytes sent to clients (Azure BytesSent)", _LISTENER
                ),
                bytes_received=Counter(
                    p + "BytesReceived",
                    "Bytes received from clients (Azure BytesReceived)",
                    _LISTENER,
                ),
                current_connections=Gauge(
                    p + "CurrentConnections",
                    "Open client connections (Azure CurrentConnections)",
                    _GATEWAY,
                    multiprocess_mode=_CONNECTIONS_MODE,
                ),
                new_connections=Counter(
                    p + "NewConnections",
                    "Client connections accepted; rate() is Azure NewConnectionsPerSecond",
                    _GATEWAY,
                ),
                tls_protocol=Counter(
                    p + "TlsProtocol",
                    "Client TLS handshakes by protocol version (Azure TlsProtocol)",
                    (*_LISTENER, "TlsProtocol"),
                ),
                backend_connect_time=Histogram(
                    p + "BackendConnectTime",
                    "Milliseconds to connect to the backend, TLS handshake included (Azure "
                    "BackendConnectTime)",
                    _TIMING,
                    buckets=TIME_BUCKETS_MS,
                ),
                backend_first_byte=Histogram(
                    p + "BackendFirstByteResponseTime",
                    "Milliseconds from starting to connect to the backend to the first byte of "
                    "its response (Azure BackendFirstByteResponseTime)",
                    _TIMING,
                    buckets=TIME_BUCKETS_MS,
                ),
                backend_last_byte=Histogram(
                    p + "BackendLastByteResponseTime",
                    "Milliseconds from starting to connect to the backend to the last byte of "
                    "its response (Azure BackendLastByteResponseTime)",
                    _TIMING,
                    buckets=TIME_BUCKETS_MS,
                ),
                total_time=Histogram(
                    p + "ApplicationGatewayTotalTime",
                    "Milliseconds from the first byte of a request to the last byte of its "
                    "response (Azure ApplicationGatewayTotalTime)",
                    _LISTENER,
                    buckets=TIME_BUCKETS_MS,
                ),
            )
        return _request_families


def _health() -> _HealthFamilies:
    global _health_families
    with _families_lock:
        if _health_families is None:
            _prepare_storage()
            p = PREFIX
            _health_families = _HealthFamilies(
                healthy=Gauge(
                    p + "HealthyHostCount",
                    "Backend members the probes find healthy (Azure HealthyHostCount)",
                    _BSP,
                    multiprocess_mode=_PROBER_MODE,
                ),
                unhealthy=Gauge(
                    p + "UnhealthyHostCount",
                    "Backend members the probes find unhealthy (Azure UnhealthyHostCount)",
                    _BSP,
                    multiprocess_mode=_PROBER_MODE,
                ),
                certificate_days=Gauge(
                    p + "BackendCertificateDaysToExpiry",
                    "Days until the backend's certificate expires",
                    _BACKEND,
                    multiprocess_mode=_PROBER_MODE,
                ),
            )
        return _health_families


def backend_settings_pool(pool: str, settings: str) -> str:
    """Azure's BackendSettingsPool dimension value: "<pool>~<settings>" ("" for none)."""
    return f"{pool}~{settings}" if pool or settings else ""


def status_group(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


# --- the data plane ------------------------------------------------------------------------------

# How long recorded values may wait in this process before they reach the shared files. Each
# file write costs ~0.6 us (a lock, a getpid() for fork detection, an mmap store) and a proxied
# request touches ~13 values, so writing per request would cost ~10 us; summing in plain Python
# and writing once per interval costs under 1 us a request. Values are per backend server, so
# with a pool of 1,200 members (Azure's limit) nearly every request is its server's only one in
# a short interval: at 0.1 s flushing took 12 % of a worker, at 1 s about 4 %. A scrape sees a
# request at most this late (Azure Monitor aggregates per minute); SIGKILL loses at most this.
FLUSH_INTERVAL = 1.0


class _HistogramValues(Protocol):
    """The per-bucket values of a prometheus_client Histogram child (private, but stable since
    0.0.x): a batch of observations is written as one add per bucket plus one to the sum."""

    _sum: _Value
    _buckets: list[_Value]


class _Value(Protocol):
    def inc(self, amount: float) -> None: ...


_BOUNDS = list(TIME_BUCKETS_MS)


class _Timing:
    """Observations of one histogram child not yet written: a sum and counts per bucket.

    The child is resolved at the first write, so a combination that never observes anything
    (a backend that could not be reached) exports no empty histogram."""

    __slots__ = ("counts", "family", "labels", "sum", "values")

    def __init__(self, family: Histogram, *labels: str) -> None:
        self.family = family
        self.labels = labels
        self.values: _HistogramValues | None = None
        self.sum = 0.0
        self.counts = [0] * len(_BOUNDS)

    def flush(self) -> None:
        counts = self.counts
        if not any(counts):
            return
        values_ = self.values
        if values_ is None:
            values_ = self.values = cast(_HistogramValues, self.family.labels(*self.labels))
            if len(values_._buckets) != len(_BOUNDS):  # pragma: no cover - library change
                raise RuntimeError("unexpected prometheus_client Histogram layout")
        values_._sum.inc(self.sum)
        self.sum = 0.0
        for index, count in enumerate(counts):
            if count:
                values_._buckets[index].inc(count)
                counts[index] = 0


class _Bundle:
    """Everything one (gateway, listener, backend, status) combination records, resolved once,
    with the amounts recorded since the last flush."""

    __slots__ = (
        "backend",
        "counters",
        "dirty",
        "received",
        "received_counter",
        "requests",
        "sent",
        "sent_counter",
        "total_time",
    )

    def __init__(
        self,
        counters: tuple[Counter, ...],
        sent: Counter,
        received: Counter,
        total_time: _Timing,
        backend: tuple[_Timing, _Timing, _Timing] | None,
    ) -> None:
        self.counters = counters  # each counts this request once
        self.sent_counter = sent
        self.received_counter = received
        self.total_time = total_time
        self.backend = backend  # connect, first byte, last byte; None: no backend
        self.requests = 0
        self.sent = 0
        self.received = 0
        self.dirty = False

    def flush(self) -> None:
        self.dirty = False
        if self.requests:
            for counter in self.counters:
                counter.inc(self.requests)
            self.requests = 0
        if self.sent:
            self.sent_counter.inc(self.sent)
            self.sent = 0
        if self.received:
            self.received_counter.inc(self.received)
            self.received = 0
        self.total_time.flush()
        if self.backend is not None:
            for timing in self.backend:
                timing.flush()


class _Connections:
    __slots__ = ("current", "delta", "dirty", "new", "opened")

    def __init__(self, current: Gauge, new: Counter) -> None:
        self.current = current
        self.new = new
        self.opened = 0
        self.delta = 0
        self.dirty = False

    def flush(self) -> None:
        self.dirty = False
        if self.delta:
            self.current.inc(self.delta)
            self.delta = 0
        if self.opened:
            self.new.inc(self.opened)
            self.opened = 0


class _Handshakes:
    __slots__ = ("count", "counter", "dirty")

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.count = 0
        self.dirty = False

    def flush(self) -> None:
        self.dirty = False
        if self.count:
            self.counter.inc(self.count)
            self.count = 0


_Pending = _Bundle | _Connections | _Handshakes
_BundleKey = tuple[str, str, str, str, str, int, int | None]
_MAX_BUNDLES = 10_000  # bounded memory if labels churn (e.g. FQDN members' addresses)


class RequestMetrics:
    """One per worker process; its methods run on the data plane's hot path.

    Label combinations are resolved to prometheus_client children once and cached. Amounts are
    summed in this process and written to the shared files FLUSH_INTERVAL after the first
    unwritten one (a timer on the running event loop), by `flush()`, and at exit. Called without
    a running event loop (a plain script, a test), every call writes at once.
    """

    def __init__(self) -> None:
        self._families: _RequestFamilies | None = None
        self._bundles: dict[_BundleKey, _Bundle] = {}
        self._tls: dict[tuple[str, str, str], _Handshakes] = {}
        self._connections: dict[str, _Connections] = {}
        self._dirty: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        atexit.register(self.flush)

    def connection_opened(self, gateway: str) -> None:
        """A client connected to a port of `gateway`; close it with the same `gateway` even if
        the port has changed hands since (one gateway owns a frontend port at a time)."""
        connections = self._connections.get(gateway) or self._new_connections(gateway)
        connections.opened += 1
        connections.delta += 1
        if not connections.dirty:
            self._mark(connections)

    def connection_closed(self, gateway: str) -> None:
        connections = self._connections.get(gateway) or self._new_connections(gateway)
        connections.delta -= 1
        if not connections.dirty:
            self._mark(connections)

    def tls_handshake(self, gateway: str, listener: str, protocol: str) -> None:
        """Count one client TLS handshake; `protocol` as ssl reports it, like "TLSv1.3"."""
        key = (gateway, listener, protocol)
        handshakes = self._tls.get(key)
        if handshakes is None:
            counter = self._get_families().tls_protocol.labels(*key)
            handshakes = self._tls[key] = _Handshakes(counter)
        handshakes.count += 1
        if not handshakes.dirty:
            self._mark(handshakes)

    def request_finished(
        self,
        *,
        gateway: str,
        listener: str,
        pool: str,
        settings: str,
        server: str,
        status: int,
        server_status: int | None,
        bytes_received: int,
        bytes_sent: int,
        total_seconds: float,
        connect_seconds: float | None,
        first_byte_seconds: float | None,
        last_byte_seconds: float | None,
    ) -> None:
        """Record one answered request.

        `gateway` is the gateway's resource id as stored (Snapshot.gateway_id). `status` is what
        the client got; `server_status` what the backend sent (None when the gateway answered
        itself: a redirect, 404, 400, or 502/504 for an unusable backend).
        pool/settings/server are "" when no backend was chosen. Times are seconds; the
        histograms record milliseconds, as Azure does. A None time is not observed (e.g. no
        connect time on a reused pooled connection); backend times need a `server`.
        """
        key = (gateway, listener, pool, settings, server, status, server_status)
        bundle = self._bundles.get(key)
        if bundle is None:
            bundle = self._new_bundle(key)
        bundle.requests += 1
        bundle.sent += bytes_sent
        bundle.received += bytes_received
        ms = total_seconds * 1000.0
        timing = bundle.total_time
        timing.sum += ms
        timing.counts[bisect_left(_BOUNDS, ms)] += 1
        backend = bundle.backend
        if backend is not None:
            if connect_seconds is not None:
                ms = connect_seconds * 1000.0
                timing = backend[0]
                timing.sum += ms
                timing.counts[bisect_left(_BOUNDS, ms)] += 1
            if first_byte_seconds is not None:
                ms = first_byte_seconds * 1000.0
                timing = backend[1]
                timing.sum += ms
                timing.counts[bisect_left(_BOUNDS, ms)] += 1
            if last_byte_seconds is not None:
                ms = last_byte_seconds * 1000.0
                timing = backend[2]
                timing.sum += ms
                timing.counts[bisect_left(_BOUNDS, ms)] += 1
        if not bundle.dirty:
            self._mark(bundle)

    def flush(self) -> None:
        """Write what was recorded to the shared files now (optional: a timer and exit do it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        dirty, self._dirty = self._dirty, []
        for pending in dirty:
            pending.flush()

    def _mark(self, pending: _Pending) -> None:
        pending.dirty = True
        self._dirty.append(pending)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_INTERVAL, self._flush_due)

    def _flush_due(self) -> None:
        self._timer = None
        self.flush()

    def _get_families(self) -> _RequestFamilies:
        if self._families is None:
            self._families = _requests()
        return self._families

    def _new_connections(self, gateway: str) -> _Connections:
        f = self._get_families()
        connections = self._connections[gateway] = _Connections(
            f.current_connections.labels(gateway), f.new_connections.labels(gateway)
        )
        return connections

    def _new_bundle(self, key: _BundleKey) -> _Bundle:
        gateway, listener, pool, settings, server, status, server_status = key
        f = self._get_families()
        bsp = backend_settings_pool(pool, settings)
        counters = [f.total_requests.labels(gateway, bsp)]
        if 500 <= status <= 599:
            counters.append(f.failed_requests.labels(gateway, bsp))
        counters.append(f.response_status.labels(gateway, status_group(status)))
        if server_status is not None:
            group = status_group(server_status)
            counters.append(
                f.backend_response_status.labels(gateway, server, pool, settings, group)
            )
        timing = (gateway, listener, server, pool, settings)
        bundle = _Bundle(
            counters=tuple(counters),
            sent=f.bytes_sent.labels(gateway, listener),
            received=f.bytes_received.labels(gateway, listener),
            total_time=_Timing(f.total_time, gateway, listener),
            backend=(
                _Timing(f.backend_connect_time, *timing),
                _Timing(f.backend_first_byte, *timing),
                _Timing(f.backend_last_byte, *timing),
            )
            if server
            else None,
        )
        if len(self._bundles) >= _MAX_BUNDLES:
            self.flush()
            self._bundles.clear()
        self._bundles[key] = bundle
        return bundle


# --- the health prober ---------------------------------------------------------------------------


class HealthMetrics:
    """Used by the single process that runs the health probes (any thread; not a hot path).

    `gateway` is the gateway's resource id as stored (Snapshot.gateway_id), as the data plane
    labels it. Values are written at once. A removed series (`set_certificate_days(..., None)`,
    `forget`) disappears from the next scrape.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: _HealthFamilies | None = None
        # (gateway, pool, settings) -> (healthy, unhealthy)
        self._hosts: dict[tuple[str, str, str], tuple[Gauge, Gauge]] = {}
        # (gateway, pool, settings, server) -> days
        self._days: dict[tuple[str, str, str, str], Gauge] = {}

    def set_host_counts(
        self, gateway: str, pool: str, settings: str, healthy: int, unhealthy: int
    ) -> None:
        key = (gateway, pool, settings)
        with self._lock:
            children = self._hosts.get(key)
            if children is None:
                f = self._get_families()
                bsp = backend_settings_pool(pool, settings)
                children = self._hosts[key] = (
                    f.healthy.labels(gateway, bsp),
                    f.unhealthy.labels(gateway, bsp),
                )
            children[0].set(healthy)
            children[1].set(unhealthy)

    def set_certificate_days(
        self, gateway: str, pool: str, settings: str, server: str, days: int | None
    ) -> None:
        """Days until the certificate `server` presents expires; None removes the series."""
        key = (gateway, pool, settings, server)
        with self._lock:
            if days is None:
                child = self._days.pop(key, None)
                if child is not None:
                    family = self._get_families().certificate_days
                    _remove(family, child, (gateway, server, pool, settings))
                return
            child = self._days.get(key)
            if child is None:
                child = self._days[key] = self._get_families().certificate_days.labels(
                    gateway, server, pool, settings
                )
            child.set(days)

    def forget(self, keep: set[tuple[str, str, str]]) -> None:
        """Drop the series of (gateway, pool, settings) that are no longer configured; another
        gateway's pair of the same names keeps its series."""
        with self._lock:
            for key in [key for key in self._hosts if key not in keep]:
                healthy, unhealthy = self._hosts.pop(key)
                gateway, pool, settings = key
                bsp = backend_settings_pool(pool, settings)
                f = self._get_families()
                _remove(f.healthy, healthy, (gateway, bsp))
                _remove(f.unhealthy, unhealthy, (gateway, bsp))
            for key4 in [key4 for key4 in self._days if key4[:3] not in keep]:
                gateway, pool, settings, server = key4
                family = self._get_families().certificate_days
                _remove(family, self._days.pop(key4), (gateway, server, pool, settings))

    def _get_families(self) -> _HealthFamilies:
        if self._families is None:
            self._families = _health()
        return self._families


def _remove(family: Gauge, child: Gauge, labels: tuple[str, ...]) -> None:
    if _created_in:
        # Multiprocess: the value stays in this process's file; NaN marks it removed (see
        # _MergedFiles). Gauge.remove() would only forget the child in memory, with a warning.
        child.set(_REMOVED)
    else:
        family.remove(*labels)


@dataclass(frozen=True)
class _WafFamilies:
    total: Counter
    sec_rule: Counter
    blocked: Counter
    matched: Counter


_waf_families: _WafFamilies | None = None


def _waf() -> _WafFamilies:
    global _waf_families
    with _families_lock:
        if _waf_families is None:
            _prepare_storage()
            p = PREFIX
            rule = (*_GATEWAY, "RuleGroup", "RuleId")
            _waf_families = _WafFamilies(
                total=Counter(
                    p + "AzwafTotalRequests",
                    "Requests the WAF inspected, by mode and action (Azure AzwafTotalRequests)",
                    (*_GATEWAY, "Mode", "Action"),
                ),
                sec_rule=Counter(
                    p + "AzwafSecRule",
                    "Managed rule matches, by mode, action and rule (Azure AzwafSecRule)",
                    (*rule, "Mode", "Action"),
                ),
                blocked=Counter(
                    p + "BlockedCount",
                    "Requests the WAF blocked, by the rule that blocked (Azure BlockedCount)",
                    rule,
                ),
                matched=Counter(
                    p + "MatchedCount",
                    "Managed rule matches, blocking or not (Azure MatchedCount)",
                    rule,
                ),
            )
        return _waf_families


class WafMetrics:
    """Azure's WAF metrics. Written at once per inspected request: inspection costs far more
    than a counter, so they need none of RequestMetrics' batching."""

    def inspected(
        self, gateway: str, *, prevention: bool, blocked: bool, rules: list[tuple[str, str]]
    ) -> None:
        """`rules`: (group, rule id) of each match, the blocking evaluation's included."""
        families = _waf()
        mode = "Prevention" if prevention else "Detection"
        action = "Block" if blocked else ("Log" if rules else "Allow")
        families.total.labels(gateway, mode, action).inc()
        for group, rule_id in rules:
            families.sec_rule.labels(gateway, group, rule_id, mode, action).inc()
            families.matched.labels(gateway, group, rule_id).inc()
            if blocked:
                families.blocked.labels(gateway, group, rule_id).inc()
