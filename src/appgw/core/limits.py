"""What one worker allows its clients: time to send a request head, time to take a response,
and how many connections it holds. Set with `appgw serve` options; defaults below."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

# Azure answers 408 when a request head is not complete after 60 s (nginx: 60 s too).
DEFAULT_HEADER_TIMEOUT = 60.0
# A client that takes no byte of a response for this long is gone or hostile (nginx send_timeout).
DEFAULT_SEND_TIMEOUT = 60.0
# Each client connection is a descriptor and ~10 KiB: 20,000 per worker stays well inside the
# descriptor limit a worker raises itself to, and inside memory.
DEFAULT_MAX_CONNECTIONS = 20_000
# Many users can share one address (NAT, proxies); 1,000 serves them and still stops one host
# from taking a worker's every connection.
DEFAULT_MAX_CONNECTIONS_PER_IP = 1_000


@dataclass(frozen=True, slots=True)
class Http2Limits:
    """What one HTTP/2 client connection may ask of a worker (enableHttp2 gateways). Set with
    `appgw serve --http2-limits name=value,...`; each default says why below."""

    # Streams open at once: RFC 9113 recommends at least 100; nginx 128, Envoy 100 (and each
    # stream may hold a backend connection).
    max_concurrent_streams: int = 100
    # Requests on one connection, then GOAWAY and the client opens another (Azure: 1,000;
    # nginx's keepalive_requests too): spreads clients over workers, bounds per-connection state.
    max_requests: int = 1000
    # Decoded header list (RFC 9113 SETTINGS_MAX_HEADER_LIST_SIZE): a request's URL and
    # headers limits (32 KiB each) plus pseudo-headers; beyond it the connection ends.
    max_header_list_size: int = 66 * 1024
    # The header block as sent (HPACK-encoded HEADERS and CONTINUATION payloads): Azure's
    # 16 KB. It must be decoded to keep HPACK in step, so past it the connection ends.
    max_header_block_size: int = 16 * 1024
    # HPACK dynamic table the client may make the gateway keep (the RFC's default).
    header_table_size: int = 4096
    # CONTINUATION frames after one HEADERS (CVE-2024-27316): a header list at the limit
    # needs 5 frames of the default 16 KiB; 32 leaves clients that send small frames room.
    max_continuation_frames: int = 32
    # Request body a stream may send before the gateway acknowledges it: the bytes held per
    # stream while its backend connects (the HTTP/1.1 side buffers as much).
    initial_window_size: int = 256 * 1024
    # All streams' unacknowledged body bytes together: bounds a connection's request buffers.
    connection_window_size: int = 1024 * 1024
    # Per flood window: more resets than this (and than streams completed) is Rapid Reset
    # (CVE-2023-44487); browsers cancel dozens, not hundreds, per 10 s.
    max_resets: int = 200
    # SETTINGS and PING frames each cost an acknowledgement (CVE-2019-9515/-9512); clients
    # send a handful per connection.
    max_settings: int = 100
    max_pings: int = 100
    # Frames that carry nothing: empty DATA, PRIORITY, unknown types (CVE-2019-9518/-9513).
    max_empty_frames: int = 1000
    # The window the counts above are per, in seconds.
    flood_window: float = 10.0
    # A connection without streams is closed (GOAWAY) after this: Azure's HTTP/2 idle timeout.
    idle_timeout: float = 180.0

    def spec(self) -> str:
        """The `--http2-limits` form of these limits."""
        return ",".join(f"{item.name}={getattr(self, item.name)}" for item in fields(self))

    @classmethod
    def parse(cls, spec: str) -> Http2Limits:
        """`name=value,...` over the defaults; ValueError names the part that is wrong."""
        known = {item.name: item for item in fields(cls)}
        changes: dict[str, Any] = {}
        for part in filter(None, (piece.strip() for piece in spec.split(","))):
            name, equals, text = part.partition("=")
            item = known.get(name.strip())
            if item is None or not equals:
                raise ValueError(
                    f"--http2-limits: {part!r} is not name=value with a name of {', '.join(known)}"
                )
            try:
                value = float(text) if item.type == "float" else int(text)
            except ValueError:
                raise ValueError(f"--http2-limits: {name} wants a number, not {text!r}") from None
            if value <= 0:
                raise ValueError(f"--http2-limits: {name} must be positive, not {text!r}")
            changes[item.name] = value
        return replace(cls(), **changes)


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # total, from a head's first byte
    send_timeout: float = DEFAULT_SEND_TIMEOUT  # a write blocked this long ends the connection
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per worker
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP  # per worker and address
    http2: Http2Limits = field(default_factory=Http2Limits)

    def arguments(self) -> list[str]:
        """The worker's command-line form (serve passes them on)."""
        return [
            "--client-header-timeout",
            f"{self.header_timeout:g}",
            "--client-send-timeout",
            f"{self.send_timeout:g}",
            "--max-connections",
            str(self.max_connections),
            "--max-connections-per-ip",
            str(self.max_connections_per_ip),
            "--http2-limits",
            self.http2.spec(),
        ]
