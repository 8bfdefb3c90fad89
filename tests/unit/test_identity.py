"""The one backend TLS identity rule (compile/identity.py), over every combination that decides
it: probes and traffic agree wherever Azure's rule says they should, and every case where they
can differ is reported."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings, strategies as st

from appgw.compile.identity import (
    DEFAULT_PROBE,
    FROM_REQUEST_HOST,
    BackendIdentity,
    ProbeHost,
    backend_identity,
    difference,
)
from appgw.compile.snapshot import BackendMember, BackendSettings
from appgw.tls.trust import BackendTrust

NAMES = st.sampled_from(["www.contoso.com", "www.fabrikam.com", "backend.internal", "10.0.0.7"])
MAYBE_NAME = st.none() | NAMES
REQUEST_HOSTS = st.sampled_from(["www.contoso.com", "app.contoso.com", "192.0.2.1", ""])


def settings_of(
    *,
    https: bool = True,
    host_name: str | None = None,
    pick_from_member: bool = False,
    sni_name: str | None = None,
    validate_sni: bool = True,
    sku_v1: bool = False,
) -> BackendSettings:
    return BackendSettings(
        name="settings",
        port=443,
        https=https,
        host_override=host_name,
        pick_host_from_member=pick_from_member,
        path_override=None,
        request_timeout=20.0,
        affinity_cookie=None,
        drain_timeout=30.0,
        trust=BackendTrust(sku_v1=sku_v1, validate_name=validate_sni) if https else None,
        sni_name=sni_name,
    )


@dataclass(frozen=True)
class Case:
    settings: BackendSettings
    member: BackendMember
    sku_v1: bool
    probe: ProbeHost


@st.composite
def cases(draw: st.DrawFn) -> Case:
    sku_v1 = draw(st.booleans())
    address = draw(st.sampled_from(["10.0.0.4", "backend.internal", "www.fabrikam.com"]))
    member = BackendMember(address, is_fqdn=not address[0].isdigit())
    settings = settings_of(
        https=draw(st.booleans()),
        host_name=draw(MAYBE_NAME),
        pick_from_member=draw(st.booleans()),
        sni_name=None if sku_v1 else draw(MAYBE_NAME),
        validate_sni=draw(st.booleans()),
        sku_v1=sku_v1,
    )
    custom = draw(st.booleans())
    probe = ProbeHost(True, draw(MAYBE_NAME), draw(st.booleans())) if custom else DEFAULT_PROBE
    return Case(settings, member, sku_v1, probe)


def resolved(identity: BackendIdentity, request_host: str) -> tuple[str | None, str | None]:
    applied = identity.with_request_host(request_host)
    return applied.sni, applied.verify_name


@settings(max_examples=600, deadline=None)
@given(cases(), REQUEST_HOSTS)
def test_probe_and_traffic_agree_or_the_difference_is_reported(
    case: Case, request_host: str
) -> None:
    traffic = backend_identity(case.settings, case.member, sku_v1=case.sku_v1)
    probe = backend_identity(case.settings, case.member, sku_v1=case.sku_v1, probe=case.probe)
    assert not probe.from_request, "a probe has no request: its names never depend on one"
    reported = difference(traffic, probe)
    if resolved(traffic, request_host) != (probe.sni, probe.verify_name):
        assert reported is not None, (case, request_host)
    # Azure's rule: without a probe host of its own, the probe checks what traffic checks,
    # unless traffic takes the request's Host (the case the article's IMPORTANT note is about).
    own_host = case.probe.custom and case.probe.host and not case.sku_v1
    if not own_host and not traffic.from_request:
        assert (probe.sni, probe.verify_name) == (traffic.sni, traffic.verify_name)
        assert reported is None
    if traffic.from_request and traffic.https:
        assert reported is not None and FROM_REQUEST_HOST in reported


@settings(max_examples=300, deadline=None)
@given(cases())
def test_an_ip_literal_is_never_sent_as_sni(case: Case) -> None:
    for identity in (
        backend_identity(case.settings, case.member, sku_v1=case.sku_v1),
        backend_identity(case.settings, case.member, sku_v1=case.sku_v1, probe=case.probe),
    ):
        for host in ("10.1.2.3", "::1", "www.contoso.com"):
            sni = identity.with_request_host(host).sni
            assert sni is None or (not sni[0].isdigit() and ":" not in sni)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_plain_http_has_no_tls_name(case: Case) -> None:
    plain = settings_of(https=False, host_name=case.settings.host_override)
    identity = backend_identity(plain, case.member, sku_v1=case.sku_v1)
    assert (identity.sni, identity.verify_name, identity.https) == (None, None, False)
    assert difference(identity, identity) is None


def test_the_article_trap_v2_ip_member_without_host_name() -> None:
    """Issue 11's repro: traffic takes the request's Host, the default probe no name at all."""
    member = BackendMember("10.0.0.4", is_fqdn=False)
    for pick in (False, True):
        settings = settings_of(pick_from_member=pick)
        traffic = backend_identity(settings, member, sku_v1=False)
        probe = backend_identity(settings, member, sku_v1=False, probe=DEFAULT_PROBE)
        assert traffic.from_request
        assert resolved(traffic, "www.contoso.com") == ("www.contoso.com", "www.contoso.com")
        assert (probe.sni, probe.verify_name, probe.host_header) == (None, None, "127.0.0.1")
        assert "request's Host" in (difference(traffic, probe) or "")


def test_a_request_without_host_verifies_a_name_that_matches_nothing() -> None:
    member = BackendMember("10.0.0.4", is_fqdn=False)
    traffic = backend_identity(settings_of(), member, sku_v1=False)
    assert resolved(traffic, "") == (None, "")


def test_v1_uses_the_member_fqdn_for_both_and_the_probe_host_only_as_host_header() -> None:
    member = BackendMember("backend.internal", is_fqdn=True)
    settings = settings_of(sku_v1=True, host_name="www.contoso.com")
    probe = backend_identity(
        settings, member, sku_v1=True, probe=ProbeHost(True, "probe.contoso.com")
    )
    traffic = backend_identity(settings, member, sku_v1=True)
    assert (probe.sni, probe.host_header) == ("backend.internal", "probe.contoso.com")
    assert (traffic.sni, traffic.host_header) == ("backend.internal", "www.contoso.com")
    assert difference(traffic, probe) is None


def test_v2_precedence_probe_host_then_sni_name_then_host_name_then_fqdn() -> None:
    member = BackendMember("backend.internal", is_fqdn=True)
    full = settings_of(sni_name="sni.contoso.com", host_name="host.contoso.com")
    custom = ProbeHost(True, "probe.contoso.com")
    assert backend_identity(full, member, sku_v1=False, probe=custom).sni == "probe.contoso.com"
    assert backend_identity(full, member, sku_v1=False).sni == "sni.contoso.com"
    no_sni = settings_of(host_name="host.contoso.com")
    assert backend_identity(no_sni, member, sku_v1=False).sni == "host.contoso.com"
    assert backend_identity(settings_of(), member, sku_v1=False).sni == "backend.internal"
