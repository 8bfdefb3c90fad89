"""The OpenSSL that Python's ssl module runs on, for the few things its API does not offer.

Session-ticket keys (tls/tickets.py) and client-certificate requests per connection
(tls/client_auth.py) need OpenSSL functions that Python's ssl module does not wrap. They are
called through ctypes in the very libssl (and libcrypto) Python's _ssl module is linked with,
on the SSL_CTX of an ssl.SSLContext and the SSL of an SSL object, found in CPython's object
layout and checked before use: any mismatch raises LibSslUnavailable, and the callers fall
back or refuse with that reason.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
import threading
from typing import Any


class LibSslUnavailable(Exception):
    """This process cannot reach OpenSSL through ctypes; the text says why."""


_library: ctypes.CDLL | None = None
_problem: str | None = None
_lock = threading.Lock()


def library() -> ctypes.CDLL:
    """The _ssl module's libssl/libcrypto; raises LibSslUnavailable."""
    global _library, _problem
    with _lock:
        if _library is None and _problem is None:
            try:
                _library = _open()
            except (LibSslUnavailable, OSError) as error:
                _problem = str(error)
        if _library is None:
            raise LibSslUnavailable(_problem or "libssl not loaded")
        return _library


def function(name: str, restype: Any, argtypes: list[Any]) -> Any:
    """A libssl/libcrypto function with its C signature; raises LibSslUnavailable."""
    try:
        found = getattr(library(), name)
    except AttributeError:
        raise LibSslUnavailable(f"libssl lacks a function: {name}") from None
    found.restype = restype
    found.argtypes = argtypes
    return found


def _open() -> ctypes.CDLL:
    if sys.implementation.name != "cpython":
        raise LibSslUnavailable("not CPython (the ssl objects' layout is CPython's)")
    import _ssl

    path = getattr(_ssl, "__file__", None)
    if path is None:
        raise LibSslUnavailable("Python's _ssl module is built in; its libssl is unknown")
    # dlsym on the _ssl module's handle searches the libraries it was linked with, in load
    # order: the libssl (and libcrypto) Python uses, whatever else the process loaded.
    lib = ctypes.CDLL(path)
    try:
        version = lib.OpenSSL_version_num
    except AttributeError:
        raise LibSslUnavailable("libssl lacks OpenSSL_version_num") from None
    version.restype = ctypes.c_ulong
    version.argtypes = []
    if version() != ssl.OPENSSL_VERSION_NUMBER:
        raise LibSslUnavailable(
            f"the libssl found is {version():#x}, Python's ssl uses {ssl.OPENSSL_VERSION_NUMBER:#x}"
        )
    return lib


def ssl_ctx_pointer(context: ssl.SSLContext) -> int:
    """The SSL_CTX* of `context`: PySSLContext's first field after PyObject_HEAD."""
    if not isinstance(context, ssl.SSLContext):
        raise LibSslUnavailable("not an ssl.SSLContext")
    get_options = function("SSL_CTX_get_options", ctypes.c_uint64, [ctypes.c_void_p])
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    # A layout change would put another pointer there: the options must read back.
    if not pointer or get_options(pointer) != int(context.options):
        raise LibSslUnavailable("the SSL_CTX of an SSLContext is not where expected")
    return pointer


def ssl_pointer(connection: ssl.SSLObject | ssl.SSLSocket) -> int:
    """The SSL* of a connection: its _ssl._SSLSocket's field after PyObject_HEAD and the
    socket reference. Checked: that SSL's SSL_CTX must be the connection's context's."""
    inner = getattr(connection, "_sslobj", None)
    if inner is None:
        raise LibSslUnavailable("the connection has no _sslobj")
    get_ctx = function("SSL_get_SSL_CTX", ctypes.c_void_p, [ctypes.c_void_p])
    pointer = ctypes.c_void_p.from_address(
        id(inner) + object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)
    ).value
    if not pointer or get_ctx(pointer) != ssl_ctx_pointer(connection.context):
        raise LibSslUnavailable("the SSL of a connection is not where expected")
    return pointer
