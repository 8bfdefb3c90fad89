"""Session-ticket keys shared by every process that holds the same chain value.

OpenSSL gives each SSL_CTX random ticket keys, so a ticket issued by one worker does not
decrypt on another: with N workers behind SO_REUSEPORT only about 1/N of returning clients
resume. Here the keys of each period (key name, AES-256-CBC key, HMAC-SHA256 key; a period is
an hour since the epoch) are derived with HKDF from that period's chain value, and each chain
value is a one-way HKDF step from the previous one. `appgw serve` starts the chain from random
bytes in memory and hands its current values to each worker it spawns (through a pipe), so its
workers compute the same keys without talking to each other. A process keeps the chain values
of the previous and current periods only: once the clock moves on, older keys cannot be
derived again from anything in memory, and the rotation has forward secrecy. Tickets are
issued under the current period's key; the previous period's key (and the next one, for clocks
a little ahead across a period boundary) still decrypts, and every resumption gets a fresh
ticket under the current key. Nothing of this is written to disk.

Python's ssl module has no API for ticket keys, so the keys reach OpenSSL through ctypes: the
ticket-key callback (SSL_CTX_set_tlsext_ticket_key_cb) on the SSL_CTX of an ssl.SSLContext,
in the very libssl Python's _ssl module is linked with. `self_test` proves the path works in
this process (a ticket issued by one context resumes on another); callers fall back to
OpenSSL's own keys when it does not.

With an SNI callback that switches a connection to another context, OpenSSL keeps using the
*initial* context's ticket keys (the connection's session context); tests show it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hmac
import os
import ssl
import struct
import threading
import time
from _ctypes import CFuncPtr
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appgw.certificates.factory import certificate_pem, create_server_certificate, private_key_pem
from appgw.tls import libssl

__all__ = [
    "ROTATION_SECONDS",
    "TicketKeys",
    "TicketKeysUnavailable",
    "decode_handover",
    "encode_handover",
    "install",
    "self_test",
]

# How long one key issues tickets: an hour bounds what a leaked key decrypts, and with the
# previous key still accepted a ticket stays usable for 1-2 hours, like OpenSSL's 2 h timeout.
ROTATION_SECONDS = 3600
SECRET_BYTES = 32  # a chain value: HKDF-SHA256 output and input, 256 bits
KEY_NAME_BYTES = 16  # fixed by OpenSSL's ticket format (the callback's key_name)
AES_KEY_BYTES = 32  # AES-256-CBC, the cipher OpenSSL's own ticket keys use
HMAC_KEY_BYTES = 32  # HMAC-SHA256 over the ticket, as OpenSSL's own
IV_BYTES = 16  # the AES block size; EVP_MAX_IV_LENGTH is 16, the buffer OpenSSL passes
_INFO = b"appgw tls session ticket keys v1 period "  # HKDF info; the period number follows
_NEXT = b"appgw tls session ticket chain v1 next"  # HKDF info of the one-way step between periods
# HKDF info of a period's chain value from a static shared secret; the period number follows.
_STATIC_INFO = b"appgw tls session ticket static v1 period "

# OpenSSL constants (ssl.h / tls1.h, stable ABI since 1.0).
_SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB = 72
# The callback's answers (SSL_CTX_set_tlsext_ticket_key_cb(3)).
_TICKET_FAILED = -1  # an internal error: abort the handshake
_TICKET_UNKNOWN = 0  # decrypt: no such key; the client gets a full handshake
_TICKET_OK = 1  # encrypt: set up (decrypt: valid, and OpenSSL issues no new ticket)
_TICKET_RENEW = 2  # decrypt: valid; OpenSSL issues a fresh ticket

# int cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx,
#        HMAC_CTX *hctx, int enc)
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_int,
)


class TicketKeysUnavailable(Exception):
    """This process cannot set ticket keys through ctypes; the text says why."""


@dataclass(frozen=True, slots=True)
class PeriodKey:
    period: int
    name: bytes
    aes_key: bytes
    hmac_key: bytes

    def __repr__(self) -> str:
        return f"PeriodKey(period={self.period}, <hidden>)"


class TicketKeys:
    """The ticket keys of the current period and its neighbours, from a one-way chain.

    `secret` is the chain value of `period` (default: the clock's current period). Each
    period's chain value is HKDF(the previous one, "next"), and a period's keys are derived from
    its chain value; the object keeps the chain values of the previous and current periods only
    and drops older ones as the clock moves on, so keys of a period before the previous one
    cannot be computed again from anything this process holds (forward secrecy of the
    rotation). Every process given the same (period, chain value) derives the same keys.

    `static=True` (the operator's shared ticket-secret file): every period's chain value is
    derived from `secret` directly, so instances started at any time agree, and whoever holds
    the secret can compute every period's keys (no forward secrecy, as with nginx's
    ssl_session_ticket_key)."""

    def __init__(
        self,
        secret: bytes,
        period: int | None = None,
        *,
        previous: bytes | None = None,
        static: bool = False,
        rotation_seconds: int = ROTATION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) != SECRET_BYTES or (previous is not None and len(previous) != SECRET_BYTES):
            raise ValueError(f"a ticket secret must be {SECRET_BYTES} bytes")
        self.rotation_seconds = rotation_seconds
        self.clock = clock
        self._lock = threading.Lock()  # the callback may run on any thread holding a handshake
        self._static = secret if static else None
        start = self.period() if period is None else period
        # Chain values by period: the current one and, when known, the previous one.
        self._chains: dict[int, bytes] = {start: secret if not static else _chain_of(secret, start)}
        if previous is not None and not static:
            self._chains[start - 1] = previous
        self._keys: dict[int, PeriodKey] = {}  # derived keys of the periods above and the next
        self.advance()

    def __repr__(self) -> str:
        return "TicketKeys(<hidden>)"

    @property
    def static(self) -> bool:
        return self._static is not None

    def period(self) -> int:
        return int(self.clock() // self.rotation_seconds)

    def advance(self) -> int:
        """Move the chain to the clock's period, forgetting every chain value and key older than
        the previous period's; the current period. Call it at least once a period."""
        now = self.period()
        with self._lock:
            newest = max(self._chains)
            while newest < now:
                self._chains[newest + 1] = self._next(newest)
                newest += 1
                self._forget_before(newest - 1)
            return now

    def held_periods(self) -> list[int]:
        """The periods whose chain values this object holds (the previous and current)."""
        with self._lock:
            return sorted(self._chains)

    def handover(self) -> tuple[int, list[bytes]]:
        """What a process started now needs to derive the same keys: the period of the first
        value and the chain values (previous and current period, or the static secret)."""
        now = self.advance()
        with self._lock:
            if self._static is not None:
                return now, [self._static]
            periods = sorted(self._chains)
            return periods[0], [self._chains[p] for p in periods]

    def key(self, period: int) -> PeriodKey:
        """The keys of `period`: the previous, current or next one. Raises KeyError for a period
        whose chain value is gone (or not yet reached beyond the next)."""
        with self._lock:
            found = self._keys.get(period)
            if found is None:
                found = _period_key(period, self._chain(period))
                self._keys[period] = found
            return found

    def encrypting(self) -> PeriodKey:
        """The key new tickets are issued under: the current period's, or the oldest held when
        this process was handed a chain value of a period its clock has not reached."""
        now = self.advance()
        with self._lock:
            oldest = min(self._chains)
        return self.key(max(now, oldest))

    def decrypting(self, name: bytes) -> tuple[PeriodKey, bool] | None:
        """The key named `name` if it may still decrypt, and whether it is the current one."""
        current = self.advance()
        for period in (current, current - 1, current + 1):
            try:
                key = self.key(period)
            except KeyError:  # a chain value this process never had (or no longer has)
                continue
            if hmac.compare_digest(key.name, name):
                return key, period == current
        return None

    # Under self._lock.
    def _next(self, period: int) -> bytes:
        if self._static is not None:
            return _chain_of(self._static, period + 1)
        return _ratchet(self._chains[period])

    def _chain(self, period: int) -> bytes:
        if period in self._chains:
            return self._chains[period]
        if period - 1 in self._chains:  # the next period, for a clock a little ahead
            return self._next(period - 1)
        if self._static is not None:
            return _chain_of(self._static, period)
        raise KeyError(period)

    def _forget_before(self, period: int) -> None:
        self._chains = {p: c for p, c in self._chains.items() if p >= period}
        self._keys = {p: k for p, k in self._keys.items() if p >= period}


def _ratchet(chain: bytes) -> bytes:
    """The next period's chain value; one-way, so the current one does not give the previous."""
    return HKDF(algorithm=hashes.SHA256(), length=SECRET_BYTES, salt=None, info=_NEXT).derive(chain)


def _chain_of(static: bytes, period: int) -> bytes:
    """A period's chain value from a static shared secret (the opt-in file)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=SECRET_BYTES,
        salt=None,
        info=_STATIC_INFO + str(period).encode(),
    ).derive(static)


def _period_key(period: int, chain: bytes) -> PeriodKey:
    material = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_NAME_BYTES + AES_KEY_BYTES + HMAC_KEY_BYTES,
        salt=None,
        info=_INFO + str(period).encode(),
    ).derive(chain)
    return PeriodKey(
        period,
        material[:KEY_NAME_BYTES],
        material[KEY_NAME_BYTES : KEY_NAME_BYTES + AES_KEY_BYTES],
        material[KEY_NAME_BYTES + AES_KEY_BYTES :],
    )


# --- handing the chain to another process -------------------------------------------------------

_HANDOVER_FORMAT = b"T1"  # version tag of the bytes below, so the layout can change
_RATCHET, _STATIC = b"R", b"S"
_PERIOD = struct.Struct(">q")  # the first value's period, a signed 64-bit big-endian integer


def encode_handover(keys: TicketKeys) -> bytes:
    """`keys.handover()` as bytes for a pipe to a new process (never for a file)."""
    period, values = keys.handover()
    kind = _STATIC if keys.static else _RATCHET
    return _HANDOVER_FORMAT + kind + _PERIOD.pack(period) + b"".join(values)


def decode_handover(
    data: bytes, *, rotation_seconds: int = ROTATION_SECONDS, clock: Callable[[], float] = time.time
) -> TicketKeys:
    """The TicketKeys `encode_handover` described. Raises ValueError on malformed bytes."""
    head = len(_HANDOVER_FORMAT) + 1 + _PERIOD.size
    body = data[head:]
    kind = data[len(_HANDOVER_FORMAT) : len(_HANDOVER_FORMAT) + 1]
    if (
        not data.startswith(_HANDOVER_FORMAT)
        or kind not in (_RATCHET, _STATIC)
        or len(body) not in (SECRET_BYTES, 2 * SECRET_BYTES)
        or (kind == _STATIC and len(body) != SECRET_BYTES)
    ):
        raise ValueError("malformed ticket-key handover")
    (period,) = _PERIOD.unpack_from(data, len(_HANDOVER_FORMAT) + 1)
    if kind == _STATIC:
        return TicketKeys(body, static=True, rotation_seconds=rotation_seconds, clock=clock)
    if len(body) == SECRET_BYTES:
        return TicketKeys(body, period, rotation_seconds=rotation_seconds, clock=clock)
    return TicketKeys(
        body[SECRET_BYTES:],
        period + 1,
        previous=body[:SECRET_BYTES],
        rotation_seconds=rotation_seconds,
        clock=clock,
    )


# --- OpenSSL through ctypes ---------------------------------------------------------------------


class _LibSsl:
    """The libssl and libcrypto functions the ticket-key callback needs (tls/libssl.py)."""

    def __init__(self) -> None:
        try:
            self.ctx_callback_ctrl = libssl.function(
                "SSL_CTX_callback_ctrl",
                ctypes.c_long,
                [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p],
            )
            init_args = [ctypes.c_void_p] * 3 + [ctypes.c_char_p, ctypes.c_void_p]
            self.encrypt_init = libssl.function("EVP_EncryptInit_ex", ctypes.c_int, init_args)
            self.decrypt_init = libssl.function("EVP_DecryptInit_ex", ctypes.c_int, init_args)
            self.hmac_init = libssl.function(
                "HMAC_Init_ex",
                ctypes.c_int,
                [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p],
            )
            self.cipher = libssl.function("EVP_aes_256_cbc", ctypes.c_void_p, [])()
            self.digest = libssl.function("EVP_sha256", ctypes.c_void_p, [])()
        except libssl.LibSslUnavailable as error:
            raise TicketKeysUnavailable(str(error)) from None

    def ssl_ctx(self, context: ssl.SSLContext) -> int:
        try:
            return libssl.ssl_ctx_pointer(context)
        except libssl.LibSslUnavailable as error:
            raise TicketKeysUnavailable(str(error)) from None


_libssl: _LibSsl | None = None
_libssl_problem: str | None = None
_libssl_lock = threading.Lock()
# Every callback handed to OpenSSL, kept for the life of the process: a connection holds its
# session context's SSL_CTX (and so the callback pointer) beyond the Python context object.
# One per TicketKeys object, and a process makes one.
_callbacks: dict[int, tuple[TicketKeys, CFuncPtr]] = {}


def _load() -> _LibSsl:
    global _libssl, _libssl_problem
    with _libssl_lock:
        if _libssl is None and _libssl_problem is None:
            try:
                _libssl = _LibSsl()
            except (TicketKeysUnavailable, OSError) as error:
                _libssl_problem = str(error)
        if _libssl is None:
            raise TicketKeysUnavailable(_libssl_problem or "libssl not loaded")
        return _libssl


def _callback_for(lib: _LibSsl, keys: TicketKeys) -> CFuncPtr:
    with _libssl_lock:
        kept = _callbacks.get(id(keys))
        if kept is not None:
            return kept[1]

        def ticket_key(
            _ssl: int,
            key_name: int,
            iv: int,
            cipher_ctx: int,
            hmac_ctx: int,
            enc: int,
        ) -> int:
            # An exception must not cross into C: ctypes would print it and return 0.
            try:
                if enc:
                    key = keys.encrypting()
                    ctypes.memmove(key_name, key.name, KEY_NAME_BYTES)
                    fresh_iv = os.urandom(IV_BYTES)
                    ctypes.memmove(iv, fresh_iv, IV_BYTES)
                    if not lib.encrypt_init(cipher_ctx, lib.cipher, None, key.aes_key, iv):
                        return _TICKET_FAILED
                    if not lib.hmac_init(hmac_ctx, key.hmac_key, HMAC_KEY_BYTES, lib.digest, None):
                        return _TICKET_FAILED
                    return _TICKET_OK
                found = keys.decrypting(ctypes.string_at(key_name, KEY_NAME_BYTES))
                if found is None:
                    return _TICKET_UNKNOWN
                key, _current = found
                if not lib.hmac_init(hmac_ctx, key.hmac_key, HMAC_KEY_BYTES, lib.digest, None):
                    return _TICKET_FAILED
                if not lib.decrypt_init(cipher_ctx, lib.cipher, None, key.aes_key, iv):
                    return _TICKET_FAILED
                # Always a fresh ticket, as OpenSSL's own keys give: TLS 1.3 clients use each
                # ticket once (RFC 8446 C.4), and without one after a resumed handshake the
                # server sends nothing after the client's Finished, so a client's request
                # waits on Nagle for the server's delayed ACK: 40 ms per connection, measured.
                return _TICKET_RENEW
            except Exception:  # see above; a full handshake is the safe answer
                return _TICKET_FAILED if enc else _TICKET_UNKNOWN

        callback = _CALLBACK(ticket_key)
        _callbacks[id(keys)] = (keys, callback)  # the TicketKeys too: its id stays unique
        return callback


def install(context: ssl.SSLContext, keys: TicketKeys) -> None:
    """Make `context` issue and accept tickets under `keys`. Raises TicketKeysUnavailable."""
    lib = _load()
    pointer = lib.ssl_ctx(context)
    callback = _callback_for(lib, keys)
    address = ctypes.cast(callback, ctypes.c_void_p).value
    if not lib.ctx_callback_ctrl(pointer, _SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB, address):
        raise TicketKeysUnavailable("OpenSSL refused the ticket-key callback")


# --- the self-test ------------------------------------------------------------------------------

_SELF_TEST_HOST = "ticket-self-test.invalid"  # never resolved: the handshakes run in memory
_SELF_TEST_DAYS = 1  # the throwaway certificate lives for the test only
_SELF_TEST_ROUNDS = 50  # handshake pumping steps; a local handshake needs about 4


def self_test(keys: TicketKeys) -> str | None:
    """None when a ticket one context issues under `keys` resumes on another context given
    the same keys independently (TLS 1.2 and 1.3, in memory); else what went wrong."""
    try:
        cert, key = create_server_certificate([_SELF_TEST_HOST], _SELF_TEST_DAYS)
        chain = certificate_pem(cert) + private_key_pem(key)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            issuer, resumer = (_self_test_server(chain, version, keys) for _ in range(2))
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE  # our own throwaway certificate
            session, _ = memory_handshake(client, issuer)
            if session is None:
                return f"{version.name}: the server issued no ticket"
            _, resumed = memory_handshake(client, resumer, session)
            if not resumed:
                return f"{version.name}: a ticket did not resume on a second context"
    except (TicketKeysUnavailable, ssl.SSLError, OSError, ValueError) as error:
        return str(error) or type(error).__name__
    return None


def _self_test_server(chain: bytes, version: ssl.TLSVersion, keys: TicketKeys) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = version
    # OpenSSL loads certificates from paths; a memfd is one with no disk behind it.
    fd = os.memfd_create("appgw-ticket-self-test", os.MFD_CLOEXEC)
    try:
        view = memoryview(chain)
        while view:
            view = view[os.write(fd, view) :]
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    install(context, keys)
    return context


def memory_handshake(
    client: ssl.SSLContext, server: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLSession | None, bool]:
    """A handshake over memory BIOs: the client's session afterwards (TLS 1.3 tickets
    included) and whether the server resumed one."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(client_in, to_server, server_hostname=_SELF_TEST_HOST)
    if session is not None:
        tls_client.session = session
    tls_server = server.wrap_bio(to_client, server_out, server_side=True)
    done = [False, False]
    for _ in range(_SELF_TEST_ROUNDS):
        for index, side in enumerate((tls_client, tls_server)):
            if not done[index]:
                try:
                    side.do_handshake()
                    done[index] = True
                except ssl.SSLWantReadError:
                    pass
        to_client.write(to_server.read())
        client_in.write(server_out.read())
        if all(done):
            break
    if not all(done):
        raise ssl.SSLError("the in-memory handshake did not finish")
    # TLS 1.3 tickets follow the handshake: the client takes them in on its next read.
    with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLZeroReturnError):
        tls_client.read(1)
    return tls_client.session, tls_server.session_reused
