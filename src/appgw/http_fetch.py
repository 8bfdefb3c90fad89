"""One HTTP/1.1 exchange with a small server the gateway itself asks something: a backend's
health page (health/probe.py), an OCSP responder or a CRL (dataplane/revocation.py).

A protocol rather than asyncio's streams: a large pool is probed thousands of times a second,
and the streams' objects were a third of a probe's CPU. Bounded: at most `max_body` bytes of
body are kept, and the caller's timeout bounds the wait.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes  # at most max_body bytes
    complete: bool  # the whole message came: not cut by the limit or by the connection's end


class FetchError(Exception):
    """The exchange failed; the text says how, for an operator."""


class ResponseReader(asyncio.Protocol):
    """Reads one response into `answered`: an HttpAnswer, or None when what came is not
    HTTP. Past `max_body` bytes the answer is given at once, incomplete."""

    def __init__(self, answered: asyncio.Future[HttpAnswer | None], max_body: int) -> None:
        self.answered = answered
        self.max_body = max_body
        self.parser = httptools.HttpResponseParser(self)
        self.body = bytearray()
        self.received = 0

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.answered.set_result(None)
            return
        if not self.answered.done() and self.received > self.max_body:
            self._answer(complete=False)

    def eof_received(self) -> bool | None:
        self._answer(complete=False)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answered.done():
            return
        if exc is not None and self.received == 0:
            self.answered.set_exception(exc)
        else:
            self._answer(complete=False)

    # httptools callbacks
    def on_body(self, data: bytes) -> None:
        room = self.max_body - len(self.body)
        if room > 0:
            self.body.extend(data[:room])

    def on_message_complete(self) -> None:
        self._answer(complete=True)

    def _answer(self, *, complete: bool) -> None:
        if self.answered.done():
            return
        try:
            status = self.parser.get_status_code()
        except httptools.HttpParserError:
            status = 0
        self.answered.set_result(HttpAnswer(status, bytes(self.body), complete) if status else None)


async def fetch(
    url: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    timeout: float,
    max_body: int,
) -> HttpAnswer:
    """GET `url` (POST with `body`), http:// only. Raises FetchError."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise FetchError(f"'{url}' is not an http:// URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    head = f"{'POST' if body is not None else 'GET'} {target} HTTP/1.1\r\nHost: {host}\r\n"
    if body is not None:
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    request = (head + "Connection: close\r\n\r\n").encode("latin-1") + (body or b"")
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[HttpAnswer | None] = loop.create_future()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(
                lambda: ResponseReader(answered, max_body), parts.hostname, parts.port or 80
            )
            try:
                transport.write(request)
                answer = await answered
            finally:
                transport.close()
    except TimeoutError:
        raise FetchError(f"{url} did not answer within {timeout:g} s") from None
    except OSError as error:
        raise FetchError(f"{url} could not be reached ({error.strerror or error})") from None
    if answer is None:
        raise FetchError(f"{url} did not answer with HTTP")
    return answer
