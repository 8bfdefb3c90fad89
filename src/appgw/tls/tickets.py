"""Session-ticket keys shared by every process that holds the same secret.

OpenSSL gives each SSL_CTX random ticket keys, so a ticket issued by one worker does not
decrypt on another: with N workers behind SO_REUSEPORT only about 1/N of returning clients
resume. Here every period's keys (key name, AES-256-CBC key, HMAC-SHA256 key) are derived with
HKDF from a secret and the period number (hours since the epoch), so every process holding the
secret computes the same keys without talking to the others, and they change every period.
Tickets are issued under the current period's key; the previous period's key (and the next
one, for clocks a little ahead across a period boundary) still decrypts, and OpenSSL is told
to renew such a ticket. Keys live in this process's memory only.

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
import sys
import threading
import time
from _ctypes import CFuncPtr
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appgw.certificates.factory import certificate_pem, create_server_certificate, private_key_pem

__all__ = ["ROTATION_SECONDS", "TicketKeys", "TicketKeysUnavailable", "install", "self_test"]

# How long one key issues tickets: an hour bounds what a leaked key decrypts, and with the
# previous key still accepted a ticket stays usable for 1-2 hours, like OpenSSL's 2 h timeout.
ROTATION_SECONDS = 3600
SECRET_BYTES = 32  # HKDF-SHA256 input; the derived secret callers hand in
KEY_NAME_BYTES = 16  # fixed by OpenSSL's ticket format (the callback's key_name)
AES_KEY_BYTES = 32  # AES-256-CBC, the cipher OpenSSL's own ticket keys use
HMAC_KEY_BYTES = 32  # HMAC-SHA256 over the ticket, as OpenSSL's own
IV_BYTES = 16  # the AES block size; EVP_MAX_IV_LENGTH is 16, the buffer OpenSSL passes
_INFO = b"appgw tls session ticket keys v1 period "  # HKDF info; the period number follows
# Periods whose keys are kept derived: previous, current, next, and one spare for the turn.
_CACHED_PERIODS = 4

# OpenSSL constants (ssl.h / tls1.h, stable ABI since 1.0).
_SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB = 72
# The callback's answers (SSL_CTX_set_tlsext_ticket_key_cb(3)).
_TICKET_FAILED = -1  # an internal error: abort the handshake
_TICKET_UNKNOWN = 0  # decrypt: no such key; the client gets a full handshake
_TICKET_OK = 1  # encrypt: set up; decrypt: valid under the current key
_TICKET_RENEW = 2  # decrypt: valid under an older key; OpenSSL issues a fresh ticket

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
    """The ticket keys of every period, derived from `secret` (32 bytes that every process
    sharing tickets holds; never the store's master key itself)."""

    def __init__(
        self,
        secret: bytes,
        *,
        rotation_seconds: int = ROTATION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"the ticket secret must be {SECRET_BYTES} bytes")
        self._secret = secret
        self.rotation_seconds = rotation_seconds
        self.clock = clock
        self._cache: dict[int, PeriodKey] = {}
        self._lock = threading.Lock()  # the callback may run on any thread holding a handshake

    def __repr__(self) -> str:
        return "TicketKeys(<hidden>)"

    def period(self) -> int:
        return int(self.clock() // self.rotation_seconds)

    def key(self, period: int) -> PeriodKey:
        with self._lock:
            found = self._cache.get(period)
            if found is None:
                material = HKDF(
                    algorithm=hashes.SHA256(),
                    length=KEY_NAME_BYTES + AES_KEY_BYTES + HMAC_KEY_BYTES,
                    salt=None,
                    info=_INFO + str(period).encode(),
                ).derive(self._secret)
                found = PeriodKey(
                    period,
                    material[:KEY_NAME_BYTES],
                    material[KEY_NAME_BYTES : KEY_NAME_BYTES + AES_KEY_BYTES],
                    material[KEY_NAME_BYTES + AES_KEY_BYTES :],
                )
                if len(self._cache) >= _CACHED_PERIODS:
                    self._cache = {p: k for p, k in self._cache.items() if abs(p - period) <= 1}
                self._cache[period] = found
            return found

    def encrypting(self) -> PeriodKey:
        """The key new tickets are issued under."""
        return self.key(self.period())

    def decrypting(self, name: bytes) -> tuple[PeriodKey, bool] | None:
        """The key named `name` if it may still decrypt, and whether it is the current one."""
        current = self.period()
        for period in (current, current - 1, current + 1):
            key = self.key(period)
            if hmac.compare_digest(key.name, name):
                return key, period == current
        return None


# --- OpenSSL through ctypes ---------------------------------------------------------------------


class _LibSsl:
    """The libssl and libcrypto functions of the OpenSSL Python's _ssl module runs on."""

    def __init__(self) -> None:
        if sys.implementation.name != "cpython":
            raise TicketKeysUnavailable("not CPython (the SSLContext layout is CPython's)")
        import _ssl

        path = getattr(_ssl, "__file__", None)
        if path is None:
            raise TicketKeysUnavailable("Python's _ssl module is built in; its libssl is unknown")
        # dlsym on the _ssl module's handle searches the libraries it was linked with, in load
        # order: the libssl (and libcrypto) Python uses, whatever else the process loaded.
        lib = ctypes.CDLL(path)
        try:
            version = lib.OpenSSL_version_num
            self.ctx_callback_ctrl = lib.SSL_CTX_callback_ctrl
            self.ctx_get_options = lib.SSL_CTX_get_options
            self.encrypt_init = lib.EVP_EncryptInit_ex
            self.decrypt_init = lib.EVP_DecryptInit_ex
            self.aes_256_cbc = lib.EVP_aes_256_cbc
            self.sha256 = lib.EVP_sha256
            self.hmac_init = lib.HMAC_Init_ex
        except AttributeError as missing:
            raise TicketKeysUnavailable(f"libssl lacks a function: {missing}") from None
        version.restype = ctypes.c_ulong
        version.argtypes = []
        if version() != ssl.OPENSSL_VERSION_NUMBER:
            raise TicketKeysUnavailable(
                f"the libssl found is {version():#x}, Python's ssl uses "
                f"{ssl.OPENSSL_VERSION_NUMBER:#x}"
            )
        self.ctx_callback_ctrl.restype = ctypes.c_long
        self.ctx_callback_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self.ctx_get_options.restype = ctypes.c_uint64
        self.ctx_get_options.argtypes = [ctypes.c_void_p]
        for init in (self.encrypt_init, self.decrypt_init):
            init.restype = ctypes.c_int
            init.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_char_p, ctypes.c_void_p]
        for getter in (self.aes_256_cbc, self.sha256):
            getter.restype = ctypes.c_void_p
            getter.argtypes = []
        self.hmac_init.restype = ctypes.c_int
        self.hmac_init.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.cipher = self.aes_256_cbc()
        self.digest = self.sha256()

    def ssl_ctx(self, context: ssl.SSLContext) -> int:
        """The SSL_CTX* of `context`: PySSLContext's first field after PyObject_HEAD."""
        if not isinstance(context, ssl.SSLContext):
            raise TicketKeysUnavailable("not an ssl.SSLContext")
        pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
        # A layout change would put another pointer there: the options must read back.
        if not pointer or self.ctx_get_options(pointer) != int(context.options):
            raise TicketKeysUnavailable("the SSL_CTX of an SSLContext is not where expected")
        return pointer


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
                key, current = found
                if not lib.hmac_init(hmac_ctx, key.hmac_key, HMAC_KEY_BYTES, lib.digest, None):
                    return _TICKET_FAILED
                if not lib.decrypt_init(cipher_ctx, lib.cipher, None, key.aes_key, iv):
                    return _TICKET_FAILED
                return _TICKET_OK if current else _TICKET_RENEW
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
