"""A worker's revocation checks of client certificates: OCSP and CRL fetches, with answers
cached until the responder's nextUpdate (an hour at most), so a client's new connections cost
no fetch. The decisions are tls/revocation.py's.

Bounded: one fetch per certificate (or CRL) at a time whatever the number of connections
waiting for it, each within FETCH_TIMEOUT and a size limit; at most CACHE_ENTRIES answers and
CRL_ENTRIES CRLs, the oldest dropped first.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding

from appgw.http_fetch import FetchError, fetch
from appgw.tls.revocation import (
    RevocationAnswer,
    RevocationQuery,
    crl_valid_until,
    failed,
    judge_crl,
    judge_ocsp,
    no_source,
    ocsp_request,
    utc_now,
)

# A client waits for its first request while the responder answers: 5 s bounds that wait (and
# the cost of a responder that hangs), as nginx's resolver-style OCSP timeouts do.
FETCH_TIMEOUT = 5.0
MAX_OCSP_BYTES = 64 * 1024  # an OCSP answer is a few KiB; more is not an answer
MAX_CRL_BYTES = 8 * 1024 * 1024  # a large CA's CRL is a few MiB
CACHE_ENTRIES = 8192  # certificates whose answer a worker keeps
CRL_ENTRIES = 32  # CRLs a worker keeps (one per issuing CA, in practice)


class RevocationChecks:
    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self._answers: OrderedDict[tuple[bytes, int], RevocationAnswer] = OrderedDict()
        self._crls: OrderedDict[str, tuple[bytes, datetime]] = OrderedDict()
        self._pending: dict[object, asyncio.Future[object]] = {}

    async def answer(self, query: RevocationQuery) -> RevocationAnswer:
        issuer = hashlib.sha256(query.issuer.public_bytes(Encoding.DER)).digest()
        key = (issuer, query.leaf.serial_number)
        cached = self._answers.get(key)
        if cached is not None and cached.valid_until > self.clock():
            return cached
        answer = await self._once(key, lambda: self._ask(query))
        assert isinstance(answer, RevocationAnswer)
        self._answers[key] = answer
        self._answers.move_to_end(key)
        while len(self._answers) > CACHE_ENTRIES:
            self._answers.popitem(last=False)
        return answer

    async def _ask(self, query: RevocationQuery) -> RevocationAnswer:
        now = self.clock()
        try:
            if query.ocsp_url is not None:
                reply = await fetch(
                    query.ocsp_url,
                    body=ocsp_request(query),
                    content_type="application/ocsp-request",
                    timeout=FETCH_TIMEOUT,
                    max_body=MAX_OCSP_BYTES,
                )
                if reply.status != 200 or not reply.complete:
                    return failed(f"the OCSP responder answered {reply.status}", now)
                return judge_ocsp(query, reply.body, self.clock())
            if query.crl_url is not None:
                crl = await self._crl(query.crl_url)
                return judge_crl(query, crl, self.clock())
        except FetchError as error:
            return failed(str(error), now)
        return no_source(now)

    async def _crl(self, url: str) -> bytes:
        kept = self._crls.get(url)
        if kept is not None and kept[1] > self.clock():
            return kept[0]

        async def download() -> bytes:
            reply = await fetch(url, timeout=FETCH_TIMEOUT, max_body=MAX_CRL_BYTES)
            if reply.status != 200 or not reply.complete:
                raise FetchError(
                    f"{url} answered {reply.status} or more than {MAX_CRL_BYTES} bytes"
                )
            return reply.body

        body = await self._once(url, download)
        assert isinstance(body, bytes)
        self._crls[url] = (body, crl_valid_until(body, self.clock()))
        self._crls.move_to_end(url)
        while len(self._crls) > CRL_ENTRIES:
            self._crls.popitem(last=False)
        return body

    async def _once(self, key: object, make: Callable[[], Awaitable[object]]) -> object:
        """One fetch per key at a time: later callers wait for the first one's result."""
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await make()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._pending[key]
