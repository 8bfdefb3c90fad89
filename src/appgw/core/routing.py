"""Routing: endpoint -> site (listener by Host) -> route (rule, path rule) -> forward or redirect.

The path is the normalized one (core/path.py). The matched path prefix is found once here and
travels with the decision (a path override and a retry both need it). On HTTPS, a Host whose
listener presents another certificate than the one the client's SNI got is misdirected (421,
RFC 9110 §15.5.20): the client checked a certificate for another site.
"""

from __future__ import annotations

from dataclasses import dataclass

from appgw.compile.snapshot import (
    Endpoint,
    ForwardTarget,
    ListenerTls,
    PathRoute,
    RedirectTarget,
    Site,
    Target,
)
from appgw.core.request import Reject


@dataclass(frozen=True, slots=True)
class Forward:
    site: Site
    target: ForwardTarget
    matched_prefix: str  # the path rule's prefix a path override replaces ("" for none)


@dataclass(frozen=True, slots=True)
class Redirect:
    site: Site
    target: RedirectTarget
    location: bytes


Decision = Forward | Redirect | Reject


def route(
    endpoint: Endpoint,
    host: str,
    path: bytes,
    query: bytes,
    negotiated: ListenerTls | None = None,
) -> Decision:
    """`negotiated`: the certificate and SSL profile the TLS handshake chose (None: plain
    HTTP, or not known)."""
    site = endpoint.sites.match(host)
    if site is None:
        # Azure answers an unknown host on a multi-site port with 404 and keeps the connection.
        return Reject(404, "ERRORINFO_INVALID_HOST", close=False)
    if (
        negotiated is not None
        and site.certificate is not None
        and (site.certificate, site.ssl_profile) != negotiated
    ):
        return Reject(421, "ERRORINFO_MISDIRECTED_REQUEST", close=False)
    chosen = site.route
    matched_prefix = ""
    target: Target
    if isinstance(chosen, PathRoute):
        match = chosen.paths.match(path.decode("latin-1"))
        target, matched_prefix = match.value, match.matched_prefix
    else:
        target = chosen
    if isinstance(target, RedirectTarget):
        return Redirect(site, target, redirect_location(target, host, path, query))
    return Forward(site, target, matched_prefix)


def redirect_location(target: RedirectTarget, host: str, path: bytes, query: bytes) -> bytes:
    """Azure's Location: an external URL, or the target listener's scheme, host and port."""
    if target.target_url is not None:
        location = target.target_url.encode()
        if target.include_path:
            location = location.rstrip(b"/") + path
    else:
        scheme = (target.target_scheme or "https").encode()
        location = scheme + b"://" + (target.target_host or host).encode()
        default_port = 443 if scheme == b"https" else 80
        if target.target_port is not None and target.target_port != default_port:
            location += b":%d" % target.target_port
        location += path if target.include_path else b"/"
    if target.include_query and query:
        location += b"?" + query
    return location
