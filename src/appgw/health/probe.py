"""One health probe: connect, verify the backend exactly as traffic does, GET, judge the answer.

Every way a probe can fail has its own category and a message in the spirit of Azure's
backend-health catalogue (spec §3.3), naming what was expected and what was found.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from appgw.compile.identity import BackendIdentity, backend_identity
from appgw.compile.snapshot import BackendMember, ProbeSpec
from appgw.http_fetch import HttpAnswer, ResponseReader
from appgw.tls.client import client_context, presented_chain
from appgw.tls.trust import BackendCertificateVerdict, verify_presented_chain

# Bytes of a probe response that are read: Azure's body match is at most 4090 characters, and
# a health page bigger than this is not read further (the match looks at this much only).
MAX_PROBE_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProbeResult:
    healthy: bool
    category: str  # "Success", "Timeout", "DnsFailure", "ConnectFailure", "StatusMismatch",
    # "BodyMismatch", "TlsHandshakeFailed", "Tls:<check>", "InvalidResponse"
    message: str  # Azure's healthProbeLog
    identity: BackendIdentity  # the Host header, SNI and verified name the probe used
    port: int
    at: dt.datetime
    duration: float
    status: int | None = None
    verdict: BackendCertificateVerdict | None = None
    resolved_address: str | None = None


async def run_probe(spec: ProbeSpec, member: BackendMember, *, sku_v1: bool) -> ProbeResult:
    identity = backend_identity(spec.settings, member, sku_v1=sku_v1, probe=spec.host_rule)
    started = time.monotonic()
    at = dt.datetime.now(dt.UTC)

    def result(healthy: bool, category: str, message: str, **extra: object) -> ProbeResult:
        return ProbeResult(
            healthy,
            category,
            message,
            identity,
            spec.port,
            at,
            time.monotonic() - started,
            **extra,  # type: ignore[arg-type]
        )

    where = f"{member.address}:{spec.port}"
    try:
        async with asyncio.timeout(spec.timeout):
            return await _probe(spec, member, identity, where, result)
    except TimeoutError:
        return result(
            False,
            "Timeout",
            f"The backend {where} did not answer the health probe within the probe's timeout of "
            f"{spec.timeout:g} seconds. Check that the application answers "
            f"'{spec.path}' in time, or raise the timeout of the probe.",
        )


async def _probe(
    spec: ProbeSpec,
    member: BackendMember,
    identity: BackendIdentity,
    where: str,
    result: Callable[..., ProbeResult],
) -> ProbeResult:
    loop = asyncio.get_running_loop()
    address = member.address
    if member.is_fqdn:
        try:
            infos = await loop.getaddrinfo(member.address, spec.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            return result(
                False,
                "DnsFailure",
                f"The backend's FQDN '{member.address}' could not be resolved ({error.strerror}); "
                "no probe could be sent. Check the name in the backend pool and the DNS servers.",
            )
        address = str(infos[0][4][0])
        where = f"{member.address} ({address}):{spec.port}"
    trust = spec.settings.trust
    context: ssl.SSLContext | None = client_context(trust) if trust is not None else None
    answered: asyncio.Future[HttpAnswer | None] = loop.create_future()
    try:
        transport, _protocol = await loop.create_connection(
            lambda: ResponseReader(answered, MAX_PROBE_RESPONSE_BYTES),
            address,
            spec.port,
            ssl=context,
            server_hostname=(identity.sni or "") if context is not None else None,
        )
    except ssl.SSLError as error:
        return result(
            False,
            "TlsHandshakeFailed",
            f"The TLS handshake with the backend {where} failed: {error.reason or error}. Check "
            "that the backend serves HTTPS on this port with TLS 1.2 or newer.",
            resolved_address=address,
        )
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return result(
            False,
            "ConnectFailure",
            f"The gateway could not connect to the backend {where} ({reason}). Check that the "
            "backend is up and listens on the probe port, and that no firewall blocks it.",
            resolved_address=address,
        )
    try:
        verdict = None
        if trust is not None:
            verdict = verify_presented_chain(
                trust,
                presented_chain(transport.get_extra_info("ssl_object")),
                verify_name=identity.verify_name,
            )
            if not verdict.ok:
                return result(
                    False,
                    f"Tls:{verdict.check}",
                    verdict.message,
                    verdict=verdict,
                    resolved_address=address,
                )
        transport.write(
            (
                f"GET {spec.path} HTTP/1.1\r\nHost: {identity.host_header}\r\n"
                "User-Agent: appgw-health-probe/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        answer = await answered
    except (OSError, ConnectionError) as error:
        return result(
            False,
            "ConnectionClosed",
            f"The backend {where} closed the connection before answering the health probe "
            f"({error}).",
            resolved_address=address,
        )
    finally:
        transport.close()
    if answer is None:
        return result(
            False,
            "InvalidResponse",
            f"The backend {where} did not send a valid HTTP response to the health probe.",
            resolved_address=address,
        )
    # Judged on what came: the status and the first bytes of the body.
    status, body = answer.status, answer.body
    expected = ", ".join(
        f"{low}-{high}" if low != high else f"{low}" for low, high in spec.status_ranges
    )
    if not any(low <= status <= high for low, high in spec.status_ranges):
        return result(
            False,
            "StatusMismatch",
            f"The backend's HTTP response status code for the health probe did not match the "
            f"probe's. Expected:{expected} Received:{status}",
            status=status,
            verdict=verdict,
            resolved_address=address,
        )
    if spec.body is not None and spec.body not in body.decode("utf-8", "replace"):
        return result(
            False,
            "BodyMismatch",
            f"The backend's response to the health probe does not contain the probe's match "
            f"string '{spec.body}'.",
            status=status,
            verdict=verdict,
            resolved_address=address,
        )
    return result(
        True,
        "Success",
        f"Success. Received {status} status code",
        status=status,
        verdict=verdict,
        resolved_address=address,
    )
