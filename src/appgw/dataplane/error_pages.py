"""Custom error pages: Azure fetches each configured page once and serves it for gateway errors.

Pages are fetched in a thread when a version is applied, never on the request path; until a
page is fetched (or if it cannot be) the built-in page is served.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.request
from collections.abc import Iterable

import certifi

log = logging.getLogger("appgw.dataplane")

MAX_PAGE_BYTES = 1024 * 1024  # Azure's limit for a custom error page
FETCH_TIMEOUT = 10.0  # seconds per page; a slow page must not hold up anything else


class ErrorPages:
    def __init__(self) -> None:
        self._pages: dict[str, bytes] = {}
        self._context = ssl.create_default_context(cafile=certifi.where())

    def get(self, url: str | None) -> bytes | None:
        return self._pages.get(url) if url else None

    async def refresh(self, urls: Iterable[str]) -> None:
        wanted = set(urls)
        for url in list(self._pages):
            if url not in wanted:
                del self._pages[url]
        for url in wanted - self._pages.keys():
            try:
                self._pages[url] = await asyncio.to_thread(self._fetch, url)
            except (OSError, ValueError) as error:
                log.error("custom error page %s could not be fetched: %s", url, error)

    def _fetch(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": "appgw"})
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT, context=self._context) as reply:
            body: bytes = reply.read(MAX_PAGE_BYTES + 1)
        if len(body) > MAX_PAGE_BYTES:
            raise ValueError(f"the page is larger than {MAX_PAGE_BYTES} bytes")
        return body
