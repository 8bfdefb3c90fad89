"""Prometheus metrics across processes: real child processes write, a fresh process scrapes.

The test process itself never records a metric (its default registry stays clean); it only
configures the directory, runs the children and parses what a scrape returns.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appgw.observability import configure_multiprocess, mark_process_dead, metrics_directory
from appgw.observability.metrics import ENV

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]

POOL1 = "pool1~http1"
GATEWAYS = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/"
GW = GATEWAYS + "gw1"


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ) if env is None else env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _parse(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def _scrape() -> tuple[Series, str]:
    """GET /metrics as the control plane answers it, from a fresh process."""
    out = _run(
        """
        import sys
        from appgw.observability import metrics_response
        body, content_type = metrics_response()
        print(content_type)
        sys.stdout.write(body.decode())
        """
    )
    content_type, _, body = out.partition("\n")
    return _parse(body), content_type


def _value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


def _names(series: Series, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in series if sample == name]


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Recorded by monkeypatch first, so the variable configure_multiprocess sets is undone.
    monkeypatch.setenv(ENV, str(tmp_path / "unused"))
    directory = tmp_path / "metrics"
    configure_multiprocess(directory, reset=True)
    return directory


WORKER_A = """
    import os, sys
    from appgw.observability import RequestMetrics

    GW = sys.argv[1]
    backend = dict(gateway=GW, listener="web", pool="pool1", settings="http1", server="10.0.0.1:80")
    m = RequestMetrics()  # no event loop: every call writes at once
    for _ in range(3):
        m.connection_opened(GW)
    m.connection_closed(GW)
    m.tls_handshake(GW, "web", "TLSv1.3")
    m.tls_handshake(GW, "web", "TLSv1.3")
    m.tls_handshake(GW, "web", "TLSv1.2")
    for _ in range(10):  # new backend connections
        m.request_finished(**backend, status=200, server_status=200, bytes_received=100,
                           bytes_sent=1000, total_seconds=0.004, connect_seconds=0.0005,
                           first_byte_seconds=0.002, last_byte_seconds=0.003)
    # the backend answered 503
    m.request_finished(**backend, status=503, server_status=503, bytes_received=100,
                       bytes_sent=50, total_seconds=0.3, connect_seconds=0.0005,
                       first_byte_seconds=0.2, last_byte_seconds=0.2)
    # the backend could not be reached: the gateway's own 502
    m.request_finished(gateway=GW, listener="web", pool="pool1", settings="http1",
                       server="10.0.0.2:80", status=502, server_status=None,
                       bytes_received=100, bytes_sent=200,
                       total_seconds=1.5, connect_seconds=None, first_byte_seconds=None,
                       last_byte_seconds=None)
    # answered by the gateway itself: no backend at all
    for status in (404, 301):
        m.request_finished(gateway=GW, listener="web", pool="", settings="", server="",
                           status=status,
                           server_status=None, bytes_received=80, bytes_sent=100,
                           total_seconds=0.0001, connect_seconds=None,
                           first_byte_seconds=None, last_byte_seconds=None)
    print(os.getpid())
"""

# A worker as it really runs: inside an event loop, so values are written by the flush timer
# and, for what is left at exit, by the atexit hook.
WORKER_B = """
    import asyncio, os, sys
    from appgw.observability import RequestMetrics, metrics_response
    from appgw.observability.metrics import FLUSH_INTERVAL
    from prometheus_client.parser import text_string_to_metric_families

    GW = sys.argv[1]
    backend = dict(gateway=GW, listener="web", pool="pool1", settings="http1", server="10.0.0.1:80")

    def total():
        body = metrics_response()[0].decode()
        labels = {"Gateway": GW, "BackendSettingsPool": "pool1~http1"}
        return [
            sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
            if sample.name == "appgw_TotalRequests_total" and sample.labels == labels
        ]

    def request(m):  # a reused pooled connection: no connect time
        m.request_finished(**backend, status=200, server_status=200, bytes_received=10,
                           bytes_sent=20, total_seconds=0.004, connect_seconds=None,
                           first_byte_seconds=0.002, last_byte_seconds=0.003)

    async def main():
        m = RequestMetrics()
        m.connection_opened(GW)
        m.connection_opened(GW)
        for _ in range(5):
            request(m)
        before = total()
        await asyncio.sleep(FLUSH_INTERVAL * 3)
        after = total()
        for _ in range(4):
            request(m)  # written at exit
        print(before[0], after[0], os.getpid())

    asyncio.run(main())
"""


def test_request_metrics_aggregate_across_worker_processes(metrics_dir: Path) -> None:
    pid_a = int(_run(WORKER_A, GW))
    before, after, pid_b = _run(WORKER_B, GW).split()
    # Worker B's first requests waited for its flush timer, then were in the shared files.
    assert (float(before), float(after)) == (12, 17)
    assert int(pid_b) != pid_a

    series, content_type = _scrape()
    assert content_type.startswith("text/plain")

    # Summed across both processes: A 10 + 503 + 502 on the pool, 404 + 301 without; B 9.
    assert _value(series, "appgw_TotalRequests_total", Gateway=GW, BackendSettingsPool=POOL1) == 21
    assert _value(series, "appgw_TotalRequests_total", Gateway=GW, BackendSettingsPool="") == 2
    # 5xx whoever produced it: the backend's 503 and the gateway's 502
    assert _value(series, "appgw_FailedRequests_total", Gateway=GW, BackendSettingsPool=POOL1) == 2
    assert _value(series, "appgw_FailedRequests_total", Gateway=GW, BackendSettingsPool="") is None
    groups = {"2xx": 19, "3xx": 1, "4xx": 1, "5xx": 2}
    for group, count in groups.items():
        status = _value(series, "appgw_ResponseStatus_total", Gateway=GW, HttpStatusGroup=group)
        assert status == count
    assert len(_names(series, "appgw_ResponseStatus_total")) == len(groups)

    # Only what backends answered: not the gateway's 502, 404 or redirect.
    backend = dict(
        Gateway=GW, BackendServer="10.0.0.1:80", BackendPool="pool1", BackendHttpSetting="http1"
    )
    status = "appgw_BackendResponseStatus_total"
    assert _value(series, status, **backend, HttpStatusGroup="2xx") == 19
    assert _value(series, status, **backend, HttpStatusGroup="5xx") == 1
    assert len(_names(series, status)) == 2

    assert _value(series, "appgw_BytesSent_total", Gateway=GW, Listener="web") == (
        10 * 1000 + 50 + 200 + 2 * 100 + 9 * 20
    )
    assert _value(series, "appgw_BytesReceived_total", Gateway=GW, Listener="web") == (
        10 * 100 + 100 + 100 + 2 * 80 + 9 * 10
    )
    assert _value(series, "appgw_NewConnections_total", Gateway=GW) == 5
    assert _value(series, "appgw_CurrentConnections", Gateway=GW) == 4  # A: 3 - 1, B: 2
    web = dict(Gateway=GW, Listener="web")
    assert _value(series, "appgw_TlsProtocol_total", **web, TlsProtocol="TLSv1.3") == 2
    assert _value(series, "appgw_TlsProtocol_total", **web, TlsProtocol="TLSv1.2") == 1

    # Histograms in milliseconds. Connect time only for new connections (A's 11).
    timing = dict(Listener="web", **backend)
    connect = "appgw_BackendConnectTime"
    assert _value(series, connect + "_count", **timing) == 11
    assert _value(series, connect + "_sum", **timing) == pytest.approx(11 * 0.5)
    assert _value(series, connect + "_bucket", **timing, le="1.0") == 11
    first = "appgw_BackendFirstByteResponseTime"
    assert _value(series, first + "_count", **timing) == 20
    assert _value(series, first + "_sum", **timing) == pytest.approx(19 * 2 + 200)
    assert _value(series, first + "_bucket", **timing, le="1.0") == 0
    assert _value(series, first + "_bucket", **timing, le="2.5") == 19
    assert _value(series, first + "_bucket", **timing, le="250.0") == 20
    assert _value(series, first + "_bucket", **timing, le="+Inf") == 20
    last = "appgw_BackendLastByteResponseTime"
    assert _value(series, last + "_count", **timing) == 20
    # No backend times for requests no backend answered.
    assert _names(series, connect + "_count") == [timing]
    total = "appgw_ApplicationGatewayTotalTime"
    assert _value(series, total + "_count", Gateway=GW, Listener="web") == 23
    assert _value(series, total + "_sum", Gateway=GW, Listener="web") == pytest.approx(
        19 * 4 + 300 + 1500 + 2 * 0.1
    )
    assert _value(series, total + "_bucket", Gateway=GW, Listener="web", le="2500.0") == 23
    assert _value(series, total + "_bucket", Gateway=GW, Listener="web", le="1000.0") == 22

    # A worker that exited: its open connections no longer count, its counters still do.
    mark_process_dead(pid_a)
    series, _ = _scrape()
    assert _value(series, "appgw_CurrentConnections", Gateway=GW) == 2
    assert _value(series, "appgw_TotalRequests_total", Gateway=GW, BackendSettingsPool=POOL1) == 21


PROBER = """
    import sys
    from appgw.observability import HealthMetrics

    h = HealthMetrics()
    step, GW = sys.argv[1:]
    if step == "first":
        h.set_host_counts(GW, "pool1", "http1", 4, 4)
        h.set_host_counts(GW, "pool1", "http1", 5, 3)  # the latest value of a series counts
        h.set_host_counts(GW, "pool2", "http2", 1, 1)
        h.set_certificate_days(GW, "pool1", "http1", "10.0.0.1:443", 30)
        h.set_certificate_days(GW, "pool1", "http1", "10.0.0.2:443", 5)
        h.set_certificate_days(GW, "pool2", "http2", "10.0.0.3:443", 9)
        h.set_certificate_days(GW, "pool1", "http1", "10.0.0.2:443", None)  # removed
        h.forget({(GW, "pool1", "http1")})  # pool2 is no longer configured
    else:  # a later prober (e.g. after a restart): its values replace, not add to, the first's
        h.set_host_counts(GW, "pool1", "http1", 2, 1)
        h.set_certificate_days(GW, "pool1", "http1", "10.0.0.1:443", 29)
        h.set_certificate_days(GW, "pool1", "http1", "10.0.0.4:443", None)  # never set: no-op
"""


def test_prober_gauges_are_not_summed_and_can_be_removed(metrics_dir: Path) -> None:
    _run(PROBER, "first", GW)
    series, _ = _scrape()
    assert _value(series, "appgw_HealthyHostCount", Gateway=GW, BackendSettingsPool=POOL1) == 5
    assert _value(series, "appgw_UnhealthyHostCount", Gateway=GW, BackendSettingsPool=POOL1) == 3
    assert _names(series, "appgw_HealthyHostCount") == [
        {"Gateway": GW, "BackendSettingsPool": POOL1}
    ]
    assert _names(series, "appgw_UnhealthyHostCount") == [
        {"Gateway": GW, "BackendSettingsPool": POOL1}
    ]
    days = "appgw_BackendCertificateDaysToExpiry"
    server = dict(
        Gateway=GW, BackendServer="10.0.0.1:443", BackendPool="pool1", BackendHttpSetting="http1"
    )
    assert _value(series, days, **server) == 30
    assert _names(series, days) == [server]

    _run(PROBER, "second", GW)
    series, _ = _scrape()
    assert _value(series, "appgw_HealthyHostCount", Gateway=GW, BackendSettingsPool=POOL1) == 2
    assert _value(series, "appgw_UnhealthyHostCount", Gateway=GW, BackendSettingsPool=POOL1) == 1
    assert _value(series, days, **server) == 29
    assert _names(series, days) == [server]


# Two gateways created with Azure's default names (as `appgw create` and the portal do).
TWO_GATEWAYS = """
    import sys
    from appgw.observability import HealthMetrics, RequestMetrics

    a, b = sys.argv[1:]
    names = dict(listener="appGatewayHttpListener", pool="appGatewayBackendPool",
                 settings="appGatewayBackendHttpSettings", server="10.0.0.1:80")
    m = RequestMetrics()
    for gateway, count, status in ((a, 3, 200), (b, 2, 503)):
        m.connection_opened(gateway)
        m.tls_handshake(gateway, "appGatewayHttpListener", "TLSv1.3")
        for _ in range(count):
            m.request_finished(gateway=gateway, **names, status=status, server_status=status,
                               bytes_received=10, bytes_sent=100 * count, total_seconds=0.004,
                               connect_seconds=0.001, first_byte_seconds=0.002,
                               last_byte_seconds=0.003)
    h = HealthMetrics()
    for gateway, healthy in ((a, 2), (b, 1)):
        h.set_host_counts(gateway, "appGatewayBackendPool", "appGatewayBackendHttpSettings",
                          healthy, 0)
        h.set_certificate_days(gateway, "appGatewayBackendPool", "appGatewayBackendHttpSettings",
                               "10.0.0.1:443", 10 * healthy)
"""

FORGET_ONE = """
    import sys
    from appgw.observability import HealthMetrics

    a, b = sys.argv[1:]
    h = HealthMetrics()
    pair = ("appGatewayBackendPool", "appGatewayBackendHttpSettings")
    for gateway in (a, b):
        h.set_host_counts(gateway, *pair, 1, 1)
        h.set_certificate_days(gateway, *pair, "10.0.0.1:443", 7)
    h.forget({(b, *pair)})  # the pool was removed from gateway a only
"""


def test_gateways_with_the_same_names_have_separate_series(metrics_dir: Path) -> None:
    a, b = GATEWAYS + "gateway-a", GATEWAYS + "gateway-b"
    _run(TWO_GATEWAYS, a, b)
    series, _ = _scrape()
    bsp = "appGatewayBackendPool~appGatewayBackendHttpSettings"
    listener = "appGatewayHttpListener"
    backend = dict(
        BackendServer="10.0.0.1:80",
        BackendPool="appGatewayBackendPool",
        BackendHttpSetting="appGatewayBackendHttpSettings",
    )
    for gateway, count, group in ((a, 3, "2xx"), (b, 2, "5xx")):
        pool = dict(Gateway=gateway, BackendSettingsPool=bsp)
        at = dict(Gateway=gateway, Listener=listener)
        timing = dict(**at, **backend)
        assert _value(series, "appgw_TotalRequests_total", **pool) == count
        status = dict(Gateway=gateway, HttpStatusGroup=group)
        assert _value(series, "appgw_ResponseStatus_total", **status) == count
        assert _value(series, "appgw_BackendResponseStatus_total", **status, **backend) == count
        assert _value(series, "appgw_BytesSent_total", **at) == 100 * count * count
        assert _value(series, "appgw_BytesReceived_total", **at) == 10 * count
        for name in ("Connect", "FirstByteResponse", "LastByteResponse"):
            assert _value(series, f"appgw_Backend{name}Time_count", **timing) == count
        assert _value(series, "appgw_ApplicationGatewayTotalTime_count", **at) == count
        assert _value(series, "appgw_TlsProtocol_total", **at, TlsProtocol="TLSv1.3") == 1
        assert _value(series, "appgw_CurrentConnections", Gateway=gateway) == 1
        assert _value(series, "appgw_NewConnections_total", Gateway=gateway) == 1
    assert _value(series, "appgw_FailedRequests_total", Gateway=a, BackendSettingsPool=bsp) is None
    assert _value(series, "appgw_FailedRequests_total", Gateway=b, BackendSettingsPool=bsp) == 2
    assert _value(series, "appgw_HealthyHostCount", Gateway=a, BackendSettingsPool=bsp) == 2
    assert _value(series, "appgw_HealthyHostCount", Gateway=b, BackendSettingsPool=bsp) == 1
    days = "appgw_BackendCertificateDaysToExpiry"
    server = dict(
        BackendServer="10.0.0.1:443",
        BackendPool="appGatewayBackendPool",
        BackendHttpSetting="appGatewayBackendHttpSettings",
    )
    assert _value(series, days, Gateway=a, **server) == 20
    assert _value(series, days, Gateway=b, **server) == 10


def test_forgetting_one_gateways_pool_keeps_another_gateways_series(metrics_dir: Path) -> None:
    a, b = GATEWAYS + "gateway-a", GATEWAYS + "gateway-b"
    _run(FORGET_ONE, a, b)
    series, _ = _scrape()
    bsp = "appGatewayBackendPool~appGatewayBackendHttpSettings"
    for name in ("appgw_HealthyHostCount", "appgw_UnhealthyHostCount"):
        assert _names(series, name) == [{"Gateway": b, "BackendSettingsPool": bsp}]
    assert [
        labels["Gateway"] for labels in _names(series, "appgw_BackendCertificateDaysToExpiry")
    ] == [b]


def test_configure_creates_a_private_directory_and_reset_removes_only_metric_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "unused"))
    directory = tmp_path / "data" / "metrics"
    configure_multiprocess(directory, reset=True)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert os.environ[ENV] == str(directory.resolve())
    for name in ("counter_123.db", "gauge_livesum_123.db", "histogram_9.db", "appgw.db", "x.txt"):
        (directory / name).write_bytes(b"")
    configure_multiprocess(directory, reset=False)
    assert len(list(directory.iterdir())) == 5
    configure_multiprocess(directory, reset=True)
    assert sorted(p.name for p in directory.iterdir()) == ["appgw.db", "x.txt"]


def test_import_order_is_safe_and_late_configuration_is_refused(tmp_path: Path) -> None:
    """As in `appgw serve`: prometheus_client is imported before the directory is configured."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = _run(
        """
        import sys
        from pathlib import Path
        import prometheus_client  # decides its value storage now, without the variable
        from appgw.observability import HealthMetrics, configure_multiprocess, metrics_response

        directory = Path(sys.argv[1])
        configure_multiprocess(directory, reset=True)
        HealthMetrics().set_host_counts(sys.argv[2], "pool1", "http1", 3, 0)
        try:
            configure_multiprocess(directory, reset=True)
        except RuntimeError:
            print("refused")
        sys.stdout.write(metrics_response()[0].decode())
        """,
        str(tmp_path / "metrics"),
        GW,
        env=env,
    )
    first, _, body = out.partition("\n")
    assert first == "refused"
    assert any(p.name.startswith("gauge_livemostrecent_") for p in (tmp_path / "metrics").iterdir())
    series = _parse(body)
    assert _value(series, "appgw_HealthyHostCount", Gateway=GW, BackendSettingsPool=POOL1) == 3


def test_single_process_mode_serves_the_default_registry() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = _run(
        """
        import sys
        from appgw.observability import HealthMetrics, RequestMetrics, metrics_response

        GW = sys.argv[1]
        m = RequestMetrics()
        m.connection_opened(GW)
        m.request_finished(gateway=GW, listener="web", pool="pool1", settings="http1",
                           server="10.0.0.1:80", status=200, server_status=200,
                           bytes_received=1, bytes_sent=2, total_seconds=0.01,
                           connect_seconds=0.001, first_byte_seconds=0.002,
                           last_byte_seconds=0.003)
        h = HealthMetrics()
        h.set_host_counts(GW, "pool1", "http1", 1, 0)
        h.set_certificate_days(GW, "pool1", "http1", "10.0.0.1:443", 12)
        h.set_certificate_days(GW, "pool1", "http1", "10.0.0.1:443", None)
        h.set_host_counts(GW, "pool2", "http2", 1, 0)
        h.forget({(GW, "pool1", "http1")})
        sys.stdout.write(metrics_response()[0].decode())
        """,
        GW,
        env=env,
    )
    series = _parse(out)
    assert _value(series, "appgw_TotalRequests_total", Gateway=GW, BackendSettingsPool=POOL1) == 1
    assert _value(series, "appgw_CurrentConnections", Gateway=GW) == 1
    assert _value(series, "appgw_HealthyHostCount", Gateway=GW, BackendSettingsPool=POOL1) == 1
    assert _names(series, "appgw_HealthyHostCount") == [
        {"Gateway": GW, "BackendSettingsPool": POOL1}
    ]
    assert _names(series, "appgw_BackendCertificateDaysToExpiry") == []


def test_metric_files_live_off_the_data_directory(tmp_path: Path) -> None:
    """A full data directory must not crash processes through prometheus_client's sparse
    mmap files (SIGBUS): they live in shared memory, one directory per data directory."""
    first = metrics_directory(tmp_path / "a")
    assert first == metrics_directory(tmp_path / "a")
    assert first != metrics_directory(tmp_path / "b")
    if Path("/dev/shm").is_dir():
        assert first.parent == Path("/dev/shm")
        assert not first.is_relative_to(tmp_path)
