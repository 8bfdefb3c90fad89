"""Session tickets under keys derived from a shared secret (appgw.tls.tickets): independent
contexts resume each other's tickets in TLS 1.2 and 1.3, keys rotate by period with the
previous one still accepted, and a worker falls back to OpenSSL's own keys when the ctypes
path fails. Handshakes run over memory BIOs; the certificate is generated here."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterator

import pytest

from appgw.certificates.factory import certificate_pem, create_server_certificate, private_key_pem
from appgw.dataplane import worker
from appgw.store.secrets import MasterKey
from appgw.tls import server, tickets
from appgw.tls.server import new_context, policy_from_model
from appgw.tls.tickets import ROTATION_SECONDS, TicketKeys, memory_handshake

VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
START = 1_800_000_000.0  # any instant; periods are counted from the epoch


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance_periods(self, periods: int) -> None:
        self.now += periods * ROTATION_SECONDS


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> str:
    cert, key = create_server_certificate(["tickets.test"], 1)
    path = tmp_path_factory.mktemp("tickets") / "chain.pem"
    path.write_bytes(certificate_pem(cert) + private_key_pem(key))
    return str(path)


@pytest.fixture
def no_process_keys() -> Iterator[None]:
    """Tests that set the process's keys leave none behind."""
    yield
    server.use_ticket_keys(None)


def server_context(chain: str, version: ssl.TLSVersion, keys: TicketKeys | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = version
    context.load_cert_chain(chain)
    if keys is not None:
        tickets.install(context, keys)
    return context


def client() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own certificate
    return context


def ticket(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> ssl.SSLSession:
    session, resumed = memory_handshake(client_context, server_context)
    assert session is not None and session.has_ticket and not resumed
    return session


def resumes(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, session: ssl.SSLSession
) -> bool:
    return memory_handshake(client_context, server_context, session)[1]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_independent_contexts_with_the_same_secret_resume_each_others_tickets(
    chain: str, version: ssl.TLSVersion
) -> None:
    secret = os.urandom(tickets.SECRET_BYTES)
    # Two TicketKeys objects too: as two processes, which share nothing but the secret.
    first = server_context(chain, version, TicketKeys(secret))
    second = server_context(chain, version, TicketKeys(secret))
    c = client()
    assert resumes(second, c, ticket(first, c))
    assert resumes(first, c, ticket(second, c))


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_other_keys_or_openssls_own_do_not_resume(chain: str, version: ssl.TLSVersion) -> None:
    ours = server_context(chain, version, TicketKeys(os.urandom(tickets.SECRET_BYTES)))
    theirs = server_context(chain, version, TicketKeys(os.urandom(tickets.SECRET_BYTES)))
    plain = server_context(chain, version, None)
    c = client()
    issued = ticket(ours, c)
    assert resumes(ours, c, issued)  # the same context, as a control
    assert not resumes(theirs, c, issued)
    assert not resumes(plain, c, issued)
    assert not resumes(ours, c, ticket(plain, c))


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_the_previous_periods_key_still_decrypts_and_the_ticket_is_renewed(
    chain: str, version: ssl.TLSVersion
) -> None:
    secret = os.urandom(tickets.SECRET_BYTES)
    issuing_clock, resuming_clock = Clock(), Clock()
    issuer = server_context(chain, version, TicketKeys(secret, clock=issuing_clock))
    resumer = server_context(chain, version, TicketKeys(secret, clock=resuming_clock))
    c = client()
    issued = ticket(issuer, c)
    resuming_clock.advance_periods(1)
    renewed, resumed = memory_handshake(c, resumer, issued)
    assert resumed
    # Renewed under the current key: it outlives the key it was first issued under.
    assert renewed is not None and renewed.has_ticket
    resuming_clock.advance_periods(1)
    assert not resumes(resumer, c, issued)
    assert resumes(resumer, c, renewed)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_a_ticket_older_than_two_periods_does_not_resume(
    chain: str, version: ssl.TLSVersion
) -> None:
    clock = Clock()
    context = server_context(chain, version, TicketKeys(os.urandom(32), clock=clock))
    c = client()
    issued = ticket(context, c)
    clock.advance_periods(2)
    assert not resumes(context, c, issued)


def test_a_clock_one_period_behind_accepts_tickets_of_the_next() -> None:
    """Instances on different machines turn the period at slightly different moments."""
    secret = os.urandom(32)
    ahead, behind = Clock(), Clock()
    ahead.advance_periods(1)
    issued = TicketKeys(secret, clock=ahead).encrypting()
    found = TicketKeys(secret, clock=behind).decrypting(issued.name)
    assert found is not None and found[0].aes_key == issued.aes_key and not found[1]


def test_keys_differ_by_period_and_secret_and_stay_hidden() -> None:
    secret = os.urandom(32)
    keys = TicketKeys(secret)
    now = keys.period()
    assert keys.key(now) == TicketKeys(secret).key(now)
    assert keys.key(now).name != keys.key(now + 1).name
    assert keys.key(now).aes_key != TicketKeys(os.urandom(32)).key(now).aes_key
    assert secret.hex() not in repr(keys) and keys.key(now).aes_key.hex() not in repr(keys.key(now))
    with pytest.raises(ValueError):
        TicketKeys(b"short")


def test_the_self_test_passes_here() -> None:
    assert tickets.self_test(TicketKeys(os.urandom(32))) is None


def test_the_ticket_secret_comes_from_the_master_key_but_is_not_it() -> None:
    raw = os.urandom(32)
    master, again = MasterKey(raw), MasterKey(raw)
    secret = master.derive(worker.TICKET_SECRET_PURPOSE)
    assert secret == again.derive(worker.TICKET_SECRET_PURPOSE)  # another process, same key
    assert len(secret) == tickets.SECRET_BYTES and secret != raw
    assert secret != master.derive(b"another purpose")
    assert secret != MasterKey(os.urandom(32)).derive(worker.TICKET_SECRET_PURPOSE)


@pytest.mark.usefixtures("no_process_keys")
def test_a_worker_gives_every_new_server_context_the_shared_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    master = MasterKey(os.urandom(32))
    with caplog.at_level(logging.INFO, "appgw.dataplane"):
        assert worker.share_session_tickets(master, {})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # Two workers: each derives the keys itself; contexts of either resume the other's.
    first = new_context(policy_from_model(None))
    server.use_ticket_keys(None)
    assert worker.share_session_tickets(master, {})
    second = new_context(policy_from_model(None))
    cert, key = create_server_certificate(["tickets.test"], 1)
    fd = os.memfd_create("chain")
    os.write(fd, certificate_pem(cert) + private_key_pem(key))
    for context in (first, second):
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    os.close(fd)
    c = client()
    assert resumes(second, c, ticket(first, c))


@pytest.mark.usefixtures("no_process_keys")
def test_a_failed_self_test_leaves_openssls_own_keys_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tickets, "self_test", lambda _keys: "the test's own failure")
    with caplog.at_level(logging.INFO, "appgw.dataplane"):
        assert not worker.share_session_tickets(MasterKey(os.urandom(32)), {})
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "the test's own failure" in warnings[0].getMessage()
    assert server._ticket_keys is None


@pytest.mark.usefixtures("no_process_keys")
def test_an_exception_in_the_ctypes_path_never_reaches_the_worker(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_keys: TicketKeys) -> str | None:
        raise RuntimeError("boom")

    monkeypatch.setattr(tickets, "self_test", broken)
    assert not worker.share_session_tickets(MasterKey(os.urandom(32)), {})
    assert "RuntimeError: boom" in caplog.text and server._ticket_keys is None


@pytest.mark.usefixtures("no_process_keys")
def test_sharing_can_be_switched_off(caplog: pytest.LogCaptureFixture) -> None:
    environ = {worker.SHARED_TICKETS_ENV: "0"}
    with caplog.at_level(logging.INFO, "appgw.dataplane"):
        assert not worker.share_session_tickets(MasterKey(os.urandom(32)), environ)
    assert server._ticket_keys is None and "per-worker keys" in caplog.text


def test_an_unusable_libssl_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> tickets._LibSsl:
        raise tickets.TicketKeysUnavailable("no libssl in this test")

    monkeypatch.setattr(tickets, "_load", unavailable)
    assert tickets.self_test(TicketKeys(os.urandom(32))) == "no libssl in this test"
