"""Session tickets under keys derived from a one-way chain (appgw.tls.tickets): independent
contexts given the same chain value resume each other's tickets in TLS 1.2 and 1.3, keys
rotate by period with the previous one still accepted, keys of older periods cannot be derived
from what a process holds once it moved on, a worker started later from serve's chain resumes
the tickets of one started earlier, and a worker falls back to OpenSSL's own keys when the
ctypes path fails. Handshakes run over memory BIOs; the certificate is generated here."""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appgw.certificates.factory import certificate_pem, create_server_certificate, private_key_pem
from appgw.dataplane import worker
from appgw.serve import ServeError, Supervisor, instance_ticket_keys
from appgw.tls import server, tickets
from appgw.tls.server import new_context, policy_from_model
from appgw.tls.tickets import (
    ROTATION_SECONDS,
    TicketKeys,
    decode_handover,
    encode_handover,
    memory_handshake,
)

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


def test_a_resumed_tls13_handshake_gets_a_fresh_ticket_as_with_openssls_own_keys(
    chain: str,
) -> None:
    """After a resumed TLS 1.3 handshake the server sends a new ticket, as it does with
    OpenSSL's own keys. Without one it sends nothing after the client's Finished, and a client
    whose request waits on Nagle for the server's delayed ACK lost 40 ms per connection."""
    version = ssl.TLSVersion.TLSv1_3
    for keys in (None, TicketKeys(os.urandom(tickets.SECRET_BYTES))):
        server = server_context(chain, version, keys)
        c = client()
        offered = ticket(server, c)
        after, resumed = memory_handshake(c, server, offered)
        assert resumed
        assert after is not None and after.has_ticket
        assert after.id != offered.id, f"no fresh ticket with {'our' if keys else 'own'} keys"


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
    start = behind.now // ROTATION_SECONDS
    ahead.advance_periods(1)
    issued = TicketKeys(secret, int(start), clock=ahead).encrypting()
    found = TicketKeys(secret, int(start), clock=behind).decrypting(issued.name)
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


def test_keys_of_a_period_before_the_previous_cannot_be_derived_once_moved_on() -> None:
    clock = Clock()
    secret = os.urandom(tickets.SECRET_BYTES)
    keys = TicketKeys(secret, clock=clock)
    start = keys.period()
    old = keys.encrypting()
    clock.advance_periods(1)
    keys.advance()
    assert keys.held_periods() == [start, start + 1]
    assert keys.decrypting(old.name) is not None  # the previous period's still decrypts
    clock.advance_periods(1)
    keys.advance()
    assert keys.held_periods() == [start + 1, start + 2]
    with pytest.raises(KeyError):
        keys.key(start)
    assert keys.decrypting(old.name) is None
    # Nothing the object holds is the start's chain value or any of its keys, and what it
    # hands a new process does not give them either.
    held = [*keys._chains.values()]
    for key in keys._keys.values():
        held += [key.name, key.aes_key, key.hmac_key]
    assert not {secret, old.name, old.aes_key, old.hmac_key} & set(held)
    handed = decode_handover(encode_handover(keys), clock=clock)
    assert secret not in encode_handover(keys)
    with pytest.raises(KeyError):
        handed.key(start)
    # A later value does not give an earlier one: a fresh chain from the start's successor
    # matches the moved-on object, and knows nothing before it.
    successor = TicketKeys(keys._chains[start + 1], start + 1, clock=clock)
    assert successor.key(start + 2) == keys.key(start + 2)
    with pytest.raises(KeyError):
        successor.key(start)


def test_two_processes_given_the_same_period_and_chain_value_agree() -> None:
    clock = Clock()
    chain_value = os.urandom(tickets.SECRET_BYTES)
    period = int(clock() // ROTATION_SECONDS)
    first, second = (TicketKeys(chain_value, period, clock=clock) for _ in range(2))
    assert first.encrypting() == second.encrypting()
    clock.advance_periods(3)  # each moves on by itself and still agrees
    assert first.encrypting() == second.encrypting()
    data = encode_handover(first)
    assert decode_handover(data, clock=clock).encrypting() == first.encrypting()


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.name)
def test_a_worker_started_later_from_serves_chain_resumes_an_earlier_workers_tickets(
    chain: str, version: ssl.TLSVersion
) -> None:
    clock = Clock()
    serve = TicketKeys(os.urandom(tickets.SECRET_BYTES), clock=clock)  # as `appgw serve`
    earlier = server_context(chain, version, decode_handover(encode_handover(serve), clock=clock))
    c = client()
    issued = ticket(earlier, c)
    clock.advance_periods(1)
    serve.advance()  # as serve's supervisor does every half second
    later_keys = decode_handover(encode_handover(serve), clock=clock)
    later = server_context(chain, version, later_keys)
    assert resumes(later, c, issued)  # issued in the previous period, before it started
    assert resumes(later, c, ticket(earlier, c))
    assert resumes(earlier, c, ticket(later, c))


def test_a_handover_is_checked_and_never_holds_more_than_two_chain_values() -> None:
    keys = TicketKeys(os.urandom(tickets.SECRET_BYTES))
    data = encode_handover(keys)
    assert len(data) <= 16 + 2 * tickets.SECRET_BYTES
    for bad in (
        b"",
        data[:-1],
        b"XX" + data[2:],
        data + b"\0",
        data + bytes(2 * tickets.SECRET_BYTES),
    ):
        with pytest.raises(ValueError):
            decode_handover(bad)


def test_a_static_secret_gives_every_instance_the_same_keys_whenever_it_started() -> None:
    secret = os.urandom(tickets.SECRET_BYTES)
    early, late = Clock(), Clock()
    first = TicketKeys(secret, static=True, clock=early)
    late.advance_periods(5)
    second = TicketKeys(secret, static=True, clock=late)
    early.advance_periods(5)
    assert first.encrypting() == second.encrypting()
    handed = decode_handover(encode_handover(second), clock=late)
    assert handed.static and handed.encrypting() == second.encrypting()


def test_serve_makes_a_random_chain_per_instance_or_reads_the_shared_file(
    tmp_path: Path,
) -> None:
    assert instance_ticket_keys(None).encrypting() != instance_ticket_keys(None).encrypting()
    path = tmp_path / "tickets.key"
    path.write_bytes(os.urandom(48))
    path.chmod(0o600)
    first, second = instance_ticket_keys(path), instance_ticket_keys(path)
    assert first.static and first.encrypting() == second.encrypting()
    path.chmod(0o644)
    with pytest.raises(ServeError, match="readable by others"):
        instance_ticket_keys(path)
    path.chmod(0o600)
    path.write_bytes(os.urandom(16))
    with pytest.raises(ServeError, match="random bytes"):
        instance_ticket_keys(path)


def test_a_spawned_worker_reads_the_chain_from_an_inherited_pipe_only(tmp_path: Path) -> None:
    """Supervisor._spawn with a child that reports what it was given: the chain arrives
    through the pipe and appears neither in its argv nor in its environment."""
    keys = TicketKeys(os.urandom(tickets.SECRET_BYTES))
    report = tmp_path / "report.json"
    child = (
        "import json, os, sys\n"
        "from appgw.dataplane import worker\n"
        "keys = worker.receive_ticket_keys()\n"
        "environ = open('/proc/self/environ', 'rb').read()\n"
        f"json.dump({{'key': keys.encrypting().aes_key.hex(), 'environ': environ.hex(), "
        f"'argv': sys.argv}}, open({str(report)!r}, 'w'))\n"
    )
    supervisor = Supervisor(
        [sys.executable, "-c", child], ["worker-0"], ticket_keys=keys, environment={}
    )
    process = supervisor._spawn(0)
    assert process.wait(60) == 0
    seen = json.loads(report.read_text())
    assert seen["key"] == keys.encrypting().aes_key.hex()
    _, values = keys.handover()
    shown = seen["environ"] + bytes.fromhex(seen["environ"]).decode(errors="replace")
    shown += " ".join(seen["argv"])
    for value in values:
        for text in (value.hex(), base64.b64encode(value).decode(), value.hex().upper()):
            assert text not in shown


@pytest.mark.usefixtures("no_process_keys")
def test_a_worker_gives_every_new_server_context_the_shared_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve = TicketKeys(os.urandom(32))
    handover = encode_handover(serve)
    with caplog.at_level(logging.INFO, "appgw.dataplane"):
        assert worker.share_session_tickets(decode_handover(handover), {})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # Two workers: each handed the chain; contexts of either resume the other's.
    first = new_context(policy_from_model(None))
    server.use_ticket_keys(None)
    assert worker.share_session_tickets(decode_handover(handover), {})
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
        assert not worker.share_session_tickets(TicketKeys(os.urandom(32)), {})
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
    assert not worker.share_session_tickets(TicketKeys(os.urandom(32)), {})
    assert "RuntimeError: boom" in caplog.text and server._ticket_keys is None


@pytest.mark.usefixtures("no_process_keys")
def test_sharing_can_be_switched_off(caplog: pytest.LogCaptureFixture) -> None:
    environ = {worker.SHARED_TICKETS_ENV: "0"}
    with caplog.at_level(logging.INFO, "appgw.dataplane"):
        assert not worker.share_session_tickets(TicketKeys(os.urandom(32)), environ)
    assert server._ticket_keys is None and "per-worker keys" in caplog.text


def test_an_unusable_libssl_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> tickets._LibSsl:
        raise tickets.TicketKeysUnavailable("no libssl in this test")

    monkeypatch.setattr(tickets, "_load", unavailable)
    assert tickets.self_test(TicketKeys(os.urandom(32))) == "no libssl in this test"


def test_a_worker_reads_the_pipe_serve_passed_and_closes_it() -> None:
    keys = TicketKeys(os.urandom(32))
    read_end, write_end = os.pipe()
    os.write(write_end, encode_handover(keys))
    os.close(write_end)
    environ = {worker.TICKET_KEYS_FD_ENV: str(read_end)}
    received = worker.receive_ticket_keys(environ)
    assert received is not None and received.encrypting() == keys.encrypting()
    assert worker.TICKET_KEYS_FD_ENV not in environ
    with pytest.raises(OSError):
        os.fstat(read_end)  # closed


def test_a_worker_without_a_pipe_keeps_openssls_keys(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "appgw.dataplane"):
        assert worker.receive_ticket_keys({}) is None
        assert not worker.share_session_tickets(None, {})
    assert "no key chain from appgw serve" in caplog.text
