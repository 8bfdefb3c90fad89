"""Choosing the backend member of one request: affinity, health, round robin, retry exclusion.

One call (`Balancer.choose`) takes all of it, so the data plane never half-applies the rules.
Everything is kept per gateway (its case-folded id): gateways made with Azure's default names
all have a pool "appGatewayBackendPool", and one's members must never serve another.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from appgw.compile.snapshot import BackendMember, ForwardTarget, HealthKey, Snapshot
from appgw.core.http import Header

# The Set-Cookie lines an affinity choice adds: the cookie and Azure's CORS twin.
_NO_COOKIES: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    member: BackendMember
    set_cookie: tuple[Header, ...]  # affinity cookies for the response


class Balancer:
    """Round robin per pool, cookie affinity by a one-way hash of the member, members out of
    rotation per the health board.

    A member removed from its pool drains: for the settings' drain timeout, requests that carry
    its affinity cookie still go to it (Azure), while new sessions go to the remaining members.
    """

    def __init__(self) -> None:
        self._next: dict[tuple[str, str], int] = {}
        self._cookies: dict[tuple[str, str, str, int], str] = {}
        self._draining: dict[tuple[str, str, int], list[tuple[BackendMember, float]]] = {}
        # What the health board keeps out of rotation (the probe fingerprint in each key keeps
        # a verdict about an older configuration from applying to a newer one).
        self.unhealthy: frozenset[HealthKey] = frozenset()
        # (gateway, pool, settings) -> (the `unhealthy`, members and probe fingerprint it was
        # computed from, the members in rotation): recomputed when any changes, not per
        # request: a pool has up to 1,200 members (Azure), and filtering them per request cost
        # most of the throughput. The fingerprint matters: a new version may keep the very same
        # members while its settings change what the board's verdicts apply to.
        self._in_rotation: dict[
            tuple[str, str, str],
            tuple[frozenset[HealthKey], tuple[BackendMember, ...], str, tuple[BackendMember, ...]],
        ] = {}

    # --- the choice -------------------------------------------------------------------------

    def choose(
        self,
        snapshot: Snapshot,
        target: ForwardTarget,
        headers: Sequence[Header],
        exclude: BackendMember | None = None,
    ) -> Choice | None:
        """The member for one request (None: no member in rotation). `exclude`: the member a
        retry must avoid; a retry also ignores affinity."""
        gateway = snapshot.gateway_key
        cookie_name = target.settings.affinity_cookie
        if cookie_name is not None and exclude is None:
            value = _cookie(headers, cookie_name.encode())
            if value is not None:
                member = self.by_cookie(gateway, target, value)
                if member is not None and self._healthy(snapshot, target, member):
                    return Choice(member, _NO_COOKIES)
        member = self.pick(gateway, target.pool.name, self._rotation(snapshot, target), exclude)
        if member is None:
            return None
        if cookie_name is None:
            return Choice(member, _NO_COOKIES)
        value_text = self.cookie_value(gateway, target, member)
        return Choice(
            member,
            (
                (b"Set-Cookie", f"{cookie_name}={value_text}; Path=/".encode()),
                (
                    b"Set-Cookie",
                    f"{cookie_name}CORS={value_text}; Path=/; SameSite=None; Secure".encode(),
                ),
            ),
        )

    def pick(
        self,
        gateway: str,
        pool_name: str,
        members: tuple[BackendMember, ...],
        exclude: BackendMember | None,
    ) -> BackendMember | None:
        candidates = [m for m in members if m != exclude] if exclude is not None else members
        if not candidates:
            return None
        key = (gateway, pool_name)
        index = self._next.get(key, 0)
        self._next[key] = index + 1
        return candidates[index % len(candidates)]

    # --- health -----------------------------------------------------------------------------

    def _rotation(self, snapshot: Snapshot, target: ForwardTarget) -> tuple[BackendMember, ...]:
        members = target.pool.members
        unhealthy = self.unhealthy
        if not unhealthy:
            return members
        pair = (target.pool.name, target.settings.name)
        key = (snapshot.gateway_key, *pair)
        fingerprint = snapshot.probe_fingerprints.get(pair, "")
        cached = self._in_rotation.get(key)
        if (
            cached is not None
            and cached[0] is unhealthy
            and cached[1] is members
            and cached[2] == fingerprint
        ):
            return cached[3]
        healthy = tuple(m for m in members if self._healthy(snapshot, target, m))
        self._in_rotation[key] = (unhealthy, members, fingerprint, healthy)
        return healthy

    def _healthy(self, snapshot: Snapshot, target: ForwardTarget, member: BackendMember) -> bool:
        if not self.unhealthy:
            return True
        return snapshot.health_key(target, member) not in self.unhealthy

    # --- affinity and draining --------------------------------------------------------------

    def cookie_value(self, gateway: str, target: ForwardTarget, member: BackendMember) -> str:
        key = (gateway, target.pool.name, member.address, target.settings.port)
        value = self._cookies.get(key)
        if value is None:
            value = hashlib.sha256(f"{key}".encode()).hexdigest()[:32]
            self._cookies[key] = value
        return value

    def by_cookie(self, gateway: str, target: ForwardTarget, value: bytes) -> BackendMember | None:
        text = value.decode("latin-1")
        for member in target.pool.members:
            if self.cookie_value(gateway, target, member) == text:
                return member
        draining = self._draining.get((gateway, target.pool.name, target.settings.port))
        if draining:
            now = time.monotonic()
            draining[:] = [(m, until) for m, until in draining if until > now]
            for member, _until in draining:
                if self.cookie_value(gateway, target, member) == text:
                    return member
        return None

    def drain(
        self, gateway: str, pool_name: str, port: int, member: BackendMember, seconds: float
    ) -> None:
        self._draining.setdefault((gateway, pool_name, port), []).append(
            (member, time.monotonic() + seconds)
        )

    def stop_draining(self, gateway: str, pool_name: str, port: int, member: BackendMember) -> None:
        entries = self._draining.get((gateway, pool_name, port), [])
        entries[:] = [(m, until) for m, until in entries if m != member]

    def drain_removed(self, previous: Snapshot, current: Snapshot | None) -> None:
        """Members of `previous` that `current` no longer has drain; kept ones stop draining."""
        kept = {
            (previous.gateway_key, target.pool.name, target.settings.port): set(target.pool.members)
            for target in (current.forward_targets if current is not None else ())
        }
        gateway = previous.gateway_key
        for target in previous.forward_targets:
            key = (gateway, target.pool.name, target.settings.port)
            for member in target.pool.members:
                if member in kept.get(key, set()):
                    self.stop_draining(*key, member)
                else:
                    self.drain(*key, member, target.settings.drain_timeout)


def _cookie(headers: Sequence[Header], name: bytes) -> bytes | None:
    for header, value in headers:
        if header.lower() != b"cookie":
            continue
        for part in value.split(b";"):
            key, _, cookie_value = part.strip().partition(b"=")
            if key == name:
                return cookie_value
    return None
