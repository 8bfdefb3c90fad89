"""Health probes and the backend health view: every failure category from a backend built to
fail that way, rotation on failure and recovery, and the on-demand probe."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from backends import Backend, free_port, wait_until
from builders import GatewayBuilder
from e2e.harness import Gateway, backend_presenting, get, issued, self_signed_leaf
from helpers import API_VERSION, cer_b64, gateway_id, gateway_url

pytestmark = pytest.mark.slow

NAME = "backend.contoso.test"


def probe(name: str, **properties: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "protocol": "Http",
        "path": "/health",
        "interval": 1,
        # generous: a loaded 2-core CI machine must not turn a healthy backend into a timeout
        "timeout": 4,
        "unhealthyThreshold": 1,
        "pickHostNameFromBackendHttpSettings": False,
        "host": "probe.contoso.test",
    }
    values.update(properties)
    return {"name": name, "properties": values}


def health(gateway: Gateway, name: str = "appgw", expand: bool = False) -> dict[str, Any]:
    query = f"api-version={API_VERSION}" + ("&$expand=*" if expand else "")
    with gateway.api() as api:
        response = api.post(f"{gateway_id(name)}/backendhealth?{query}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def servers(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(pool, settings, address) -> server entry."""
    found = {}
    for pool in report["backendAddressPools"]:
        pool_name = pool["backendAddressPool"]["id"].rsplit("/", 1)[-1]
        for settings in pool["backendHttpSettingsCollection"]:
            settings_name = settings["backendHttpSettings"]["id"].rsplit("/", 1)[-1]
            for server in settings["servers"]:
                found[(pool_name, settings_name, server["address"])] = server
    return found


def wait_for_state(
    gateway: Gateway, key: tuple[str, str, str], state: str, name: str = "appgw"
) -> dict[str, Any]:
    entry: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal entry
        entry = servers(health(gateway, name)).get(key, {})
        return entry.get("health") == state

    wait_until(reached, timeout=15, what=f"{key} to be {state}")
    return entry


@pytest.fixture(scope="module")
def up() -> Iterator[Backend]:
    backend = Backend("up").start()
    yield backend
    backend.stop()


def test_unhealthy_member_leaves_rotation_and_one_success_brings_it_back(
    gateway: Gateway, up: Backend
) -> None:
    port = free_port()
    builder = (
        GatewayBuilder()
        .pool("pool", "127.0.0.1", "127.0.0.2")
        .settings("settings", up.port, "Http", probe=None)
        .listener("listener", port, "Http")
        .rule("rule1", "listener", pool="pool", settings="settings")
    )
    builder.props["probes"] = [probe("fast")]
    builder.props["backendHttpSettingsCollection"][0]["properties"]["probe"] = builder.ref(
        "probes", "fast"
    )
    gateway.apply(builder.build())
    down = wait_for_state(gateway, ("pool", "settings", "127.0.0.2"), "Unhealthy")
    assert "could not connect" in down["healthProbeLog"]
    assert down["appgwProbeDetails"]["category"] == "ConnectFailure"
    assert wait_for_state(gateway, ("pool", "settings", "127.0.0.1"), "Healthy")[
        "healthProbeLog"
    ] == ("Success. Received 200 status code")
    time.sleep(0.6)  # workers re-read the board within a quarter second
    answers = [get(port, "x").json()["backend"] for _ in range(10)]
    assert answers == ["up"] * 10
    revived = Backend("revived", bind="127.0.0.2", port=up.port).start()
    try:
        wait_for_state(gateway, ("pool", "settings", "127.0.0.2"), "Healthy")
        time.sleep(0.6)
        assert {get(port, "x").json()["backend"] for _ in range(10)} == {"up", "revived"}
    finally:
        revived.stop()
    wait_for_state(gateway, ("pool", "settings", "127.0.0.2"), "Unhealthy")
    # No healthy member at all: 502, and the access log says why.
    builder.props["backendAddressPools"][0]["properties"]["backendAddresses"] = [
        {"ipAddress": "127.0.0.2"}
    ]
    gateway.apply(builder.build())
    wait_for_state(gateway, ("pool", "settings", "127.0.0.2"), "Unhealthy")
    time.sleep(0.6)
    response = get(port, "x")
    assert response.status_code == 502
    access_log = gateway.server.log_path.parent / "data" / "access.log"
    wait_until(lambda: "ERRORINFO_UPSTREAM_NO_LIVE" in access_log.read_text(), what="log line")


def test_log_lines_name_the_gateway_and_a_member_coming_back_is_info(
    gateway: Gateway, up: Backend
) -> None:
    """Two gateways with Azure's default child names: every line about a backend says which
    gateway it is about; losing a member is a WARNING, getting it back an INFO."""
    member = "127.0.0.4"  # nothing listens on it at first: the probe's connection is refused
    backend = f"backend http://{member}:{up.port}"
    pair = "pool 'appGatewayBackendPool', settings 'appGatewayBackendHttpSettings'"
    names = ("logged", "logged-twin")
    ports: dict[str, int] = {}
    before = len(gateway.log())
    for name in names:
        ports[name] = free_port()
        builder = (
            GatewayBuilder(name)
            .pool("appGatewayBackendPool", member)
            .settings("appGatewayBackendHttpSettings", up.port, "Http", requestTimeout=1)
            .listener("appGatewayHttpListener", ports[name], "Http")
            .rule("rule1", "appGatewayHttpListener", pool="appGatewayBackendPool",
                  settings="appGatewayBackendHttpSettings")
        )  # fmt: skip
        builder.props["probes"] = [probe("fast")]
        settings = builder.props["backendHttpSettingsCollection"][0]["properties"]
        settings["probe"] = builder.ref("probes", "fast")
        gateway.apply(builder.build(), name=name)

    def logged(level: str, text: str) -> bool:
        return any(
            f" {level} " in line and text in line for line in gateway.log()[before:].splitlines()
        )

    def wait_logged(level: str, text: str) -> None:
        wait_until(lambda: logged(level, text), what=f"the {level} line '{text}'")

    for name in names:
        wait_logged("WARNING", f"{backend} (gateway 'rg1/{name}', {pair}) is Unhealthy: ")
    # It answers probes (timeout 4 s) but not within the settings' requestTimeout of 1 s.
    slow = Backend("slow", bind=member, port=up.port, delay=2).start()
    try:
        for name in names:
            wait_logged("INFO", f"{backend} (gateway 'rg1/{name}', {pair}) is Healthy: ")
        assert not logged("WARNING", "is Healthy")
        # Back in rotation once the workers read the monitor's board (within 0.25 s of it).
        wait_until(
            lambda: get(ports["logged"], "x").status_code == 504,
            timeout=20,
            what="a 504 from the slow member back in rotation",
        )
        wait_logged(
            "ERROR",
            f"{backend} (gateway 'rg1/logged', {pair}, rule 'rule1') did not answer within 1s "
            "(the settings' request timeout)",
        )
    finally:
        slow.stop()
        with gateway.api() as api:
            for name in names:
                assert api.delete(gateway_url(name)).status_code in (200, 202, 204)


def test_a_settings_change_keeps_health_unless_it_changes_the_probe(
    gateway: Gateway, up: Backend
) -> None:
    """The unhealthy threshold counts failures of one probe: a change that leaves a member's
    probe as it was (the settings' request timeout, another member in the pool) keeps its
    state and count; a change of what the probe sends (the settings' port) starts it afresh,
    Unhealthy at its first failure, as Azure marks a backend unhealthy until a successful
    probe."""
    failing = Backend("failing-later").start()
    builder = (
        GatewayBuilder("threshold")
        .pool("pool", "127.0.0.1")
        .settings("settings", failing.port, "Http", requestTimeout=20)
        .listener("listener", free_port(), "Http")
        .rule("rule1", "listener", pool="pool", settings="settings")
    )
    builder.props["probes"] = [probe("eight", unhealthyThreshold=8)]
    settings = builder.props["backendHttpSettingsCollection"][0]["properties"]
    settings["probe"] = builder.ref("probes", "eight")
    key = ("pool", "settings", "127.0.0.1")
    gateway.apply(builder.build(), name="threshold")
    wait_for_state(gateway, key, "Healthy", "threshold")
    failing.stop()  # its port now refuses: every probe fails

    def failures() -> int:
        entry = servers(health(gateway, "threshold"))[key]
        assert entry["health"] in ("Healthy", "Unhealthy"), entry  # never back to Unknown
        return int(entry["appgwProbeDetails"]["consecutiveFailures"])

    wait_until(lambda: failures() >= 1, what="a first failure")
    # Not a change to the probe: the failures go on counting from where they were.
    settings["requestTimeout"] = 30
    builder.props["backendAddressPools"][0]["properties"]["backendAddresses"].append(
        {"ipAddress": "127.0.0.5"}
    )
    counted = failures()
    gateway.apply(builder.build(), name="threshold")
    history: list[tuple[str, int]] = []

    def gone() -> bool:
        entry = servers(health(gateway, "threshold"))[key]
        history.append((entry["health"], entry["appgwProbeDetails"]["consecutiveFailures"]))
        return bool(entry["health"] == "Unhealthy")

    wait_until(gone, timeout=20, what="the member to leave rotation after 8 failures")
    assert history[0][1] >= counted, history
    assert all(count >= 8 for state, count in history if state == "Unhealthy"), history
    assert all(state != "Unknown" for state, _ in history), history
    # The new member never answered: out at its first failure.
    new = wait_for_state(gateway, ("pool", "settings", "127.0.0.5"), "Unhealthy", "threshold")
    assert new["appgwProbeDetails"]["consecutiveFailures"] >= 1

    # A change to the probe: the settings' port. The old results judged another port.
    revived = Backend("revived-elsewhere").start()
    settings["port"] = revived.port
    gateway.apply(builder.build(), name="threshold")
    wait_for_state(gateway, key, "Healthy", "threshold")
    revived.stop()
    settings["port"] = free_port()  # nothing listens there
    gateway.apply(builder.build(), name="threshold")
    afresh = wait_for_state(gateway, key, "Unhealthy", "threshold")
    assert afresh["appgwProbeDetails"]["port"] == settings["port"]
    assert afresh["appgwProbeDetails"]["consecutiveFailures"] < 8, afresh


def test_probe_load_does_not_multiply_with_workers(gateway: Gateway) -> None:
    counted = Backend("counted").start()
    try:
        port = free_port()
        builder = (
            GatewayBuilder()
            .pool("pool", "127.0.0.1")
            .settings("settings", counted.port, "Http")
            .listener("listener", port, "Http")
            .rule("rule1", "listener", pool="pool", settings="settings")
        )
        builder.props["probes"] = [probe("counting", path="/count-me")]
        builder.props["backendHttpSettingsCollection"][0]["properties"]["probe"] = builder.ref(
            "probes", "counting"
        )
        gateway.apply(builder.build())
        wait_until(lambda: any(s.target == "/count-me" for s in counted.seen), what="a probe")
        start = sum(s.target == "/count-me" for s in counted.seen)
        time.sleep(3.0)
        probes = sum(s.target == "/count-me" for s in counted.seen) - start
        # One prober for the instance: about one probe a second, not one per worker.
        assert 2 <= probes <= 4, probes
        assert gateway.workers == 2
    finally:
        counted.stop()


@pytest.fixture(scope="module")
def root() -> trustme.CA:
    return trustme.CA(organization_name="Backend Root")


def test_every_failure_category_has_its_own_state_and_message(
    gateway: Gateway, root: trustme.CA
) -> None:
    """One gateway, one rule per broken backend; the health view explains each."""
    now = dt.datetime.now(dt.UTC)
    intermediate = root.create_child_ca()
    other_root = trustme.CA(organization_name="Other Root")
    good_chain, good_key = issued(intermediate, NAME)
    other_chain, other_key = issued(other_root, NAME)
    backends: dict[str, Backend] = {
        "ok": backend_presenting("ok", good_chain, good_key),
        "status": Backend("status", status=503).start(),
        "slow": Backend("slow", delay=5).start(),
        "wrongname": backend_presenting("wrongname", *issued(intermediate, "other.contoso.test")),
        "expired": backend_presenting(
            "expired",
            *issued(
                intermediate,
                NAME,
                not_before=now - dt.timedelta(days=30),
                not_after=now - dt.timedelta(days=1),
            ),
        ),
        "nointermediate": backend_presenting("nointermediate", good_chain[:1], good_key),
        # a server configured with its intermediate CA's certificate and key: no leaf at all
        "leafmissing": backend_presenting(
            "leafmissing", [intermediate.cert_pem.bytes()], intermediate.private_key_pem.bytes()
        ),
        "otherroot": backend_presenting("otherroot", *issued(other_root.create_child_ca(), NAME)),
        "otherrootsent": backend_presenting(
            "otherrootsent", [*other_chain, other_root.cert_pem.bytes()], other_key
        ),
        "expiring": backend_presenting(
            "expiring",
            *issued(intermediate, NAME, not_after=now + dt.timedelta(days=10)),
        ),
    }
    backends["wellknown"] = backends["ok"]
    try:
        builder = GatewayBuilder("catalogue").trusted_root("root", cer_b64(root))
        probes = []
        cases: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
            # case: (backend, settings extra, probe extra)
            "ok": ("ok", {}, {}),
            "status": ("status", {"protocol": "Http"}, {"protocol": "Http"}),
            "body": ("ok", {}, {"match": {"statusCodes": ["200-399"], "body": "no-such-text"}}),
            "timeout": ("slow", {"protocol": "Http"}, {"protocol": "Http", "timeout": 1}),
            "dns": ("ok", {}, {}),
            "connect": ("ok", {}, {}),
            "wrongname": ("wrongname", {}, {}),
            "expired": ("expired", {}, {}),
            "nointermediate": ("nointermediate", {}, {}),
            "leafmissing": ("leafmissing", {}, {}),
            "otherroot": ("otherroot", {}, {}),
            "otherrootsent": ("otherrootsent", {}, {}),
            "wellknown": ("wellknown", {"trustedRootCertificates": []}, {}),
            "expiring": ("expiring", {}, {}),
        }
        for case, (backend_name, settings_extra, probe_extra) in cases.items():
            backend = backends[backend_name]
            protocol = settings_extra.pop("protocol", "Https")
            member = {"dns": "no-such-host.invalid"}.get(case, "127.0.0.1")
            settings_port = free_port() if case == "connect" else backend.port
            builder.pool(f"pool-{case}", member)
            extra: dict[str, Any] = {"hostName": NAME}
            if protocol == "Https":
                extra["trustedRootCertificates"] = ["root"]
            extra.update(settings_extra)
            if not extra.get("trustedRootCertificates"):
                extra.pop("trustedRootCertificates", None)
            builder.settings(f"settings-{case}", settings_port, protocol, **extra)
            builder.props["backendHttpSettingsCollection"][-1]["properties"]["probe"] = builder.ref(
                "probes", f"probe-{case}"
            )
            probes.append(
                probe(
                    f"probe-{case}",
                    **{
                        "protocol": protocol,
                        "host": None,
                        "pickHostNameFromBackendHttpSettings": True,
                        **probe_extra,
                    },
                )
            )
            builder.listener(f"listener-{case}", free_port(), "Http")
            builder.rule(
                f"rule-{case}", f"listener-{case}", pool=f"pool-{case}", settings=f"settings-{case}"
            )
        for entry in probes:
            entry["properties"] = {k: v for k, v in entry["properties"].items() if v is not None}
        builder.props["probes"] = probes
        gateway.apply(builder.build(), name="catalogue")

        expected: dict[str, tuple[str, str, str]] = {
            # case: (state, category, phrase in healthProbeLog)
            "ok": ("Healthy", "Success", "Success. Received 200 status code"),
            "status": ("Unhealthy", "StatusMismatch", "Expected:200-399 Received:503"),
            "body": ("Unhealthy", "BodyMismatch", "'no-such-text'"),
            "timeout": ("Unhealthy", "Timeout", "within the probe's timeout of 1 seconds"),
            "dns": ("Unhealthy", "DnsFailure", "'no-such-host.invalid' could not be resolved"),
            "connect": ("Unhealthy", "ConnectFailure", "could not connect"),
            "wrongname": ("Unhealthy", "Tls:NameMismatch", NAME),
            "expired": ("Unhealthy", "Tls:Expired", "expired"),
            "nointermediate": ("Unhealthy", "Tls:IntermediateMissing", "intermediate"),
            "leafmissing": ("Unhealthy", "Tls:LeafMissing", "leaf"),
            "otherroot": ("Unhealthy", "Tls:TrustedRootMismatch", "Backend Root"),
            "otherrootsent": ("Unhealthy", "Tls:TrustedRootMismatchRootSent", "Other Root"),
            "wellknown": ("Unhealthy", "Tls:IntermediateNotSignedByWellKnownCA", "well-known"),
            "expiring": ("Healthy", "Success", "Success"),
        }

        def all_probed() -> bool:
            found = servers(health(gateway, "catalogue"))
            return all(
                found.get((f"pool-{case}", f"settings-{case}", addr), {}).get("health", "Unknown")
                != "Unknown"
                for case in cases
                for addr in [{"dns": "no-such-host.invalid"}.get(case, "127.0.0.1")]
            )

        wait_until(all_probed, timeout=20, what="every backend to be probed")
        time.sleep(2.5)  # the slow backend's probe times out after 1 s
        found = servers(health(gateway, "catalogue"))
        problems = []
        for case, (state, category, phrase) in expected.items():
            address = {"dns": "no-such-host.invalid"}.get(case, "127.0.0.1")
            entry = found[(f"pool-{case}", f"settings-{case}", address)]
            details = entry["appgwProbeDetails"]
            if (entry["health"], details.get("category")) != (state, category) or (
                phrase not in entry["healthProbeLog"]
            ):
                problems.append(
                    (case, entry["health"], details.get("category"), entry["healthProbeLog"])
                )
        assert problems == []
        ok = found[("pool-ok", "settings-ok", "127.0.0.1")]["appgwProbeDetails"]
        assert ok["sni"] == NAME and ok["hostHeader"] == NAME
        assert ok["presentedChain"][0]["subjectAlternativeNames"] == [NAME]
        assert ok["lastSuccessTime"].endswith("Z") and ok["failedCheck"] is None
        expiring = found[("pool-expiring", "settings-expiring", "127.0.0.1")]["appgwProbeDetails"]
        assert any("expires in" in warning for warning in expiring["warnings"])
        expanded = health(gateway, "catalogue", expand=True)
        first = expanded["backendAddressPools"][0]
        assert "properties" in first["backendAddressPool"]
        assert "properties" in first["backendHttpSettingsCollection"][0]["backendHttpSettings"]
    finally:
        for backend in {id(b): b for b in backends.values()}.values():
            backend.stop()


def test_v1_health_messages(gateway: Gateway) -> None:
    chain, key, leaf_der = self_signed_leaf(NAME)
    allowed = backend_presenting("allowed", chain, key)
    other_chain, other_key, _ = self_signed_leaf(NAME)
    impostor = backend_presenting("impostor", other_chain, other_key)
    try:
        builder = GatewayBuilder("version1", v1=True).authentication_certificate(
            "leaf", base64.b64encode(leaf_der).decode()
        )
        cases = (("allowed", allowed, "127.0.0.1"), ("impostor", impostor, "127.0.0.1"),
                 ("cn", allowed, "localhost"))  # fmt: skip
        for case, backend, member in cases:
            builder.pool(f"pool-{case}", member)
            builder.settings(
                f"settings-{case}", backend.port, "Https", authenticationCertificates=["leaf"]
            )
            builder.listener(f"listener-{case}", free_port(), "Http")
            builder.rule(
                f"rule-{case}", f"listener-{case}", pool=f"pool-{case}", settings=f"settings-{case}"
            )
        gateway.apply(builder.build(), name="version1")
        wait_for_state(
            gateway, ("pool-allowed", "settings-allowed", "127.0.0.1"), "Healthy", "version1"
        )

        # Never allow-listed, it is Unhealthy at its first failure (the threshold protects only
        # a member that has answered correctly); the message is there from the first probe.
        def explained() -> bool:
            entry = servers(health(gateway, "version1"))[
                ("pool-impostor", "settings-impostor", "127.0.0.1")
            ]
            return "not allow-listed" in entry["healthProbeLog"]

        wait_until(explained, what="the v1 allow-list message")

        # An FQDN member: v1 checks the allow-listed certificate's name against the FQDN.
        def name_checked() -> bool:
            entry = servers(health(gateway, "version1"))[("pool-cn", "settings-cn", "localhost")]
            details = entry["appgwProbeDetails"]
            return (
                details.get("failedCheck") == "NameMismatch"
                and "localhost" in entry["healthProbeLog"]
            )

        wait_until(name_checked, what="the v1 name mismatch message")
    finally:
        allowed.stop()
        impostor.stop()


def test_a_root_uploaded_on_v1_and_a_leaf_uploaded_on_v2_are_called_what_they_are(
    gateway: Gateway, root: trustme.CA
) -> None:
    """The backend sends leaf then root. On v1 the root was uploaded as the authentication
    certificate; on v2 the leaf as the trusted root: Backend health says so, instead of asking
    to reorder a chain that is right."""
    chain, key = issued(root, NAME)
    root_pem = root.cert_pem.bytes()
    backend = backend_presenting("leaf-then-root", [*chain, root_pem], key)
    leaf = x509.load_pem_x509_certificate(chain[0])
    leaf_subject = leaf.subject.rfc4514_string()
    root_subject = x509.load_pem_x509_certificate(root_pem).subject.rfc4514_string()
    leaf_cer = base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()
    try:
        cases = {
            "v1root": (
                GatewayBuilder("v1root", v1=True).authentication_certificate(
                    "backendRoot", cer_b64(root)
                ),
                {"authenticationCertificates": ["backendRoot"]},
                f"you uploaded the CA certificate '{root_subject}' that issued the backend's "
                f"certificate; Standard (v1) needs the backend's own certificate "
                f"'{leaf_subject}' (its .cer) as the authentication certificate",
            ),
            "v2leaf": (
                GatewayBuilder("v2leaf").trusted_root("backendLeaf", leaf_cer),
                {"trustedRootCertificates": ["backendLeaf"], "hostName": NAME},
                f"you uploaded the backend's own certificate '{leaf_subject}' as a trusted "
                "root; Standard_v2 needs the root CA certificate that issued it "
                f"('{root_subject}', the root the backend sends at the top of its chain)",
            ),
        }
        for name, (builder, settings, _) in cases.items():
            builder.pool("pool", "127.0.0.1").settings(
                "settings", backend.port, "Https", **settings
            )
            builder.listener("listener", free_port(), "Http")
            builder.rule("rule1", "listener", pool="pool", settings="settings")
            gateway.apply(builder.build(), name=name)
        for name, (_, _, expected) in cases.items():
            entry = wait_for_state(gateway, ("pool", "settings", "127.0.0.1"), "Unhealthy", name)
            assert expected in entry["healthProbeLog"], entry["healthProbeLog"]
            assert "position" not in entry["healthProbeLog"]
            # Azure's categories stay: v1 not allow-listed; v2 a root sent but not trusted.
            assert entry["appgwProbeDetails"]["failedCheck"] == (
                "LeafNotAllowListed" if name == "v1root" else "TrustedRootMismatchRootSent"
            )
        assert backend.seen == []  # refused before any request byte
    finally:
        backend.stop()


def test_on_demand_probe_runs_now_without_changing_the_configuration(
    gateway: Gateway, up: Backend
) -> None:
    builder = (
        GatewayBuilder("ondemand")
        .pool("pool", "127.0.0.1")
        .settings("settings", up.port, "Http")
        .listener("listener", free_port(), "Http")
        .rule("rule1", "listener", pool="pool", settings="settings")
    )
    version = gateway.apply(builder.build(), name="ondemand")
    url = f"{gateway_id('ondemand')}/getBackendHealthOnDemand?api-version={API_VERSION}"
    body = {
        "protocol": "Http",
        "host": "test.contoso.test",
        "path": "/on-demand",
        "timeout": 5,
        "match": {"statusCodes": ["200"], "body": '"backend": "up"'},
        "backendAddressPool": {"id": f"{gateway_id('ondemand')}/backendAddressPools/pool"},
        "backendHttpSettings": {
            "id": f"{gateway_id('ondemand')}/backendHttpSettingsCollection/settings"
        },
    }
    with gateway.api() as api:
        result = api.post(url, json=body)
        assert result.status_code == 200, result.text
        server = result.json()["backendHealthHttpSettings"]["servers"][0]
        assert server["health"] == "Healthy", server
        assert server["healthProbeLog"] == "Success. Received 200 status code"
        assert any(
            s.target == "/on-demand" and s.headers["host"] == "test.contoso.test" for s in up.seen
        )
        body["match"] = {"statusCodes": ["200"], "body": "absent-text"}
        failed = api.post(url, json=body).json()["backendHealthHttpSettings"]["servers"][0]
        assert failed["health"] == "Unhealthy" and "absent-text" in failed["healthProbeLog"]
        revisions = api.get(f"{gateway_id('ondemand')}/revisions?api-version={API_VERSION}")
        assert revisions.json()["value"][-1]["version"] == version
        wrong = api.post(url, json={**body, "backendAddressPool": {"id": "nope"}})
        assert wrong.status_code == 400
    _ = httpx


def metric(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_metrics_count_requests_across_workers(gateway: Gateway) -> None:
    """Two gateways with the same pool/settings/listener names: each gets its own series."""
    ok, failing = Backend("ok").start(), Backend("failing", status=503).start()
    try:
        ports: dict[str, int] = {}
        for name in ("measured", "measured-twin"):
            port = ports[name] = free_port()
            builder = (
                GatewayBuilder(name)
                .pool("metrics-ok", "127.0.0.1")
                .pool("metrics-failing", "127.0.0.1")
                .settings("metrics-ok-settings", ok.port, "Http")
                .settings("metrics-failing-settings", failing.port, "Http")
                .listener("metrics-listener", port, "Http")
                .path_map(
                    "paths",
                    ("metrics-ok", "metrics-ok-settings"),
                    [("fail", ["/fail/*"], "metrics-failing", "metrics-failing-settings")],
                )
                .rule("metrics-rule", "metrics-listener", path_map="paths")
            )
            # The failing backend answers 503 to everything: its probe accepts that, so the
            # 503s reach clients as backend answers instead of the member leaving rotation.
            builder.props["probes"] = [probe("lenient", match={"statusCodes": ["200-599"]})]
            builder.props["backendHttpSettingsCollection"][1]["properties"]["probe"] = builder.ref(
                "probes", "lenient"
            )
            gateway.apply(builder.build(), name=name)
        measured, twin = gateway_id("measured"), gateway_id("measured-twin")
        for _ in range(5):  # new connections: the kernel spreads them over both workers
            assert get(ports["measured"], "x", path="/ok").status_code == 200
        for _ in range(3):
            assert get(ports["measured"], "x", path="/fail/now").status_code == 503
        for _ in range(2):
            assert get(ports["measured-twin"], "x", path="/ok").status_code == 200
        text = ""
        listener = "metrics-listener"
        total_time = "appgw_ApplicationGatewayTotalTime_count"

        def counted() -> bool:
            nonlocal text
            with gateway.api() as api:
                text = api.get("/metrics").text
            # every worker has flushed all ten requests (flushes are FLUSH_INTERVAL apart)
            return (
                metric(text, total_time, Gateway=measured, Listener=listener),
                metric(text, total_time, Gateway=twin, Listener=listener),
            ) == (8, 2)

        wait_until(counted, what="metrics to be flushed")
        pool_ok = "metrics-ok~metrics-ok-settings"
        pool_failing = "metrics-failing~metrics-failing-settings"
        for gateway_, requests in ((measured, 5), (twin, 2)):
            assert (
                metric(
                    text, "appgw_TotalRequests_total", Gateway=gateway_, BackendSettingsPool=pool_ok
                )
                == requests
            )
        assert (
            metric(
                text,
                "appgw_FailedRequests_total",
                Gateway=measured,
                BackendSettingsPool=pool_failing,
            )
            == 3
        )
        assert metric(text, "appgw_FailedRequests_total", Gateway=twin) == 0
        assert metric(text, "appgw_FailedRequests_total", BackendSettingsPool=pool_ok) == 0
        assert (
            metric(
                text,
                "appgw_BackendResponseStatus_total",
                Gateway=measured,
                BackendPool="metrics-failing",
                HttpStatusGroup="5xx",
            )
            == 3
        )
        assert metric(text, "appgw_BytesReceived_total", Gateway=measured, Listener=listener) > 0
        assert metric(text, "appgw_NewConnections_total", Gateway=twin) == 2

        # The default probe has run once per member: host counts for the pools are published.
        def host_counts_published() -> bool:
            with gateway.api() as api:
                text = api.get("/metrics").text
            return all(
                metric(text, "appgw_HealthyHostCount", Gateway=gateway_, BackendSettingsPool=bsp)
                == 1
                for gateway_ in (measured, twin)
                for bsp in (pool_ok, pool_failing)
            )

        wait_until(host_counts_published, what="host counts")
        with gateway.api() as api:
            assert api.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        ok.stop()
        failing.stop()
