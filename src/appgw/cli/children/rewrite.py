"""`appgw rewrite-rule list-server-variables | list-request-headers | list-response-headers`:
what a rewrite rule can read and set, as az lists Azure's (`availableServerVariables`,
`availableRequestHeaders`, `availableResponseHeaders`). The rewrite groups themselves are in
`groups.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from appgw.cli.children.commands import add_command, keyword
from appgw.cli.client import emit
from appgw.cli.options import Output, Query

# Common request headers a rule sets or reads (http_req_<name>). Left out: those appgw never
# rewrites (Connection, Upgrade, framing and hop-by-hop headers: validate_rewrite's
# NOT_REWRITABLE); a unit test keeps the lists apart.
REQUEST_HEADERS = (
    "Accept",
    "Accept-Charset",
    "Accept-Datetime",
    "Accept-Encoding",
    "Accept-Language",
    "Access-Control-Request-Headers",
    "Access-Control-Request-Method",
    "Authorization",
    "Cache-Control",
    "Content-MD5",
    "Content-Type",
    "Cookie",
    "Date",
    "DNT",
    "Expect",
    "Forwarded",
    "From",
    "Front-End-Https",
    "Host",
    "If-Match",
    "If-Modified-Since",
    "If-None-Match",
    "If-Range",
    "If-Unmodified-Since",
    "Max-Forwards",
    "Origin",
    "Pragma",
    "Proxy-Authorization",
    "Range",
    "Referer",
    "Save-Data",
    "Upgrade-Insecure-Requests",
    "User-Agent",
    "Via",
    "Warning",
    "X-ATT-DeviceId",
    "X-Correlation-ID",
    "X-Csrf-Token",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Http-Method-Override",
    "X-Request-ID",
    "X-Requested-With",
    "X-UIDH",
    "X-Wap-Profile",
)
RESPONSE_HEADERS = (
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Origin",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
    "Age",
    "Allow",
    "Alt-Svc",
    "Cache-Control",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Location",
    "Content-MD5",
    "Content-Range",
    "Content-Security-Policy",
    "Content-Type",
    "Date",
    "ETag",
    "Expires",
    "Last-Modified",
    "Link",
    "Location",
    "P3P",
    "Permissions-Policy",
    "Pragma",
    "Proxy-Authenticate",
    "Public-Key-Pins",
    "Referrer-Policy",
    "Refresh",
    "Retry-After",
    "Server",
    "Set-Cookie",
    "Strict-Transport-Security",
    "Tk",
    "Vary",
    "Via",
    "Warning",
    "WWW-Authenticate",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-Powered-By",
    "X-XSS-Protection",
)


def server_variables() -> list[str]:
    # Imported when asked: the rewrite language loads re2, which other commands do not need.
    from appgw.model.rewrite import SERVER_VARIABLES

    return sorted(SERVER_VARIABLES)


def add_listings(app: typer.Typer) -> None:
    """The three list-* commands, on the `rewrite-rule` group's app."""
    listings: tuple[tuple[str, Callable[[], list[str]], str], ...] = (
        (
            "list-server-variables",
            server_variables,
            "server variables a condition checks (var_NAME) or a value uses ({var_NAME})",
        ),
        (
            "list-request-headers",
            lambda: list(REQUEST_HEADERS),
            "common request headers a rule sets or a condition checks (http_req_NAME)",
        ),
        (
            "list-response-headers",
            lambda: list(RESPONSE_HEADERS),
            "common response headers a rule sets or a condition checks (http_resp_NAME)",
        ),
    )
    params = [keyword("output", Output, "json"), keyword("query", Query, None)]
    for verb, names, what in listings:

        def run(arguments: dict[str, Any], names: Callable[[], list[str]] = names) -> None:
            emit(names(), arguments["output"], arguments["query"])

        doc = f"List the {what}.\n\nExample: appgw rewrite-rule {verb} -o tsv"
        add_command(app, verb, params, run, doc)
