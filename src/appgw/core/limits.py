"""What one worker allows its clients: time to send a request head, time to take a response,
and how many connections it holds. Set with `appgw serve` options; defaults below."""

from __future__ import annotations

from dataclasses import dataclass

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
class ClientLimits:
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # total, from a head's first byte
    send_timeout: float = DEFAULT_SEND_TIMEOUT  # a write blocked this long ends the connection
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per worker
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP  # per worker and address

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
        ]
