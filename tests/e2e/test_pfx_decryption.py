"""Issue 12, item 2, in the data plane: workers apply new versions without deriving any PFX key,
and a hostile PFX in a version stored by an older appgw cannot stall them: traffic for another
gateway keeps flowing meanwhile."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import pytest
import trustme

from appgw.certificates import MAX_PFX_ITERATIONS
from appgw.store.secrets import MasterKey
from appgw.store.sql import SqlStore
from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway, get, served_certificate
from helpers import Pfx, commit_as_stored_before, gateway_id, make_pfx
from pfx_forge import Forged, b64

pytestmark = pytest.mark.slow

UNRELATED = "www.unrelated.test"
OTHER = "www.other.test"
# Seconds a request may take while the versions apply: a handshake and a request take
# milliseconds; before the caps, each worker spent ~3 s holding the GIL on the hostile PFX.
RESPONSIVE = 1.0


def https_gateway(name: str, pfx: Pfx, port: int, backend_port: int) -> GatewayBuilder:
    return (
        GatewayBuilder(name)
        .certificate("appGatewaySslCert", pfx.b64, pfx.password)
        .pool("pool", "127.0.0.1")
        .settings("settings", backend_port)
        .listener("listener", port, "Https", certificate="appGatewaySslCert")
        .rule("rule1", "listener", pool="pool", settings="settings")
    )


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    started = Backend("plain").start()
    yield started
    started.stop()


def test_traffic_flows_while_versions_with_certificates_are_applied(
    gateway: Gateway, backend: Backend
) -> None:
    ca = trustme.CA()
    unrelated_port, other_port = free_port(), free_port()
    gateway.apply(
        https_gateway("unrelated", make_pfx(ca, UNRELATED), unrelated_port, backend.port).build(),
        "unrelated",
    )
    other = make_pfx(ca, OTHER)
    gateway.apply(https_gateway("other", other, other_port, backend.port).build(), "other")
    data_dir = gateway.server.log_path.parent / "data"
    store = SqlStore(f"sqlite:///{data_dir / 'appgw.db'}", MasterKey.load_or_create(data_dir))

    latencies: list[float] = []
    statuses: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            started = time.perf_counter()
            # A new connection each time: whichever worker takes it must answer.
            statuses.append(get(unrelated_port, UNRELATED, https=True, ca=ca).status_code)
            latencies.append(time.perf_counter() - started)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        # A version an older appgw stored, its PFX asking for 20 million iterations.
        hostile = Forged.of(base64.b64decode(other.b64), other.password).set_key_iterations(
            20_000_000
        )
        version = commit_as_stored_before(
            store, b64(hostile.der()), other.password, "other", "appGatewaySslCert"
        )
        marker = f"gateway {gateway_id('other')} version {version.version} does not compile here"
        wait_until(
            lambda: gateway.log().count(marker) >= gateway.workers,
            what="the workers to refuse the hostile version",
        )
        # A new gateway whose PFX takes the most iterations allowed: decrypted by the PUT only.
        slow = make_pfx(ca, "www.slow.test", rounds=MAX_PFX_ITERATIONS)
        gateway.apply(https_gateway("slow", slow, free_port(), backend.port).build(), "slow")
    finally:
        done.set()
        poller.join(30)
        store.close()

    assert set(statuses) == {200} and len(statuses) > 5
    assert max(latencies) < RESPONSIVE, f"a request took {max(latencies):.2f} s"
    assert "20,000,000" in gateway.log()
    # The refused version is not served: the previous one is.
    assert served_certificate(other_port, OTHER) == other.leaf
