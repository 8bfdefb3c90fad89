"""The values a WAF policy's fields take (Azure's spelling), as plain data: the API's checks
(validate_firewall_policy.py) and the CLI, which loads no pydantic, share them."""

from __future__ import annotations

STATES = ("Enabled", "Disabled")
MODES = ("Prevention", "Detection")
# Azure's customBlockResponseStatusCode values.
BLOCK_STATUSES = (200, 403, 405, 406, 429)
ACTIONS = ("Allow", "Block", "Log")
RULE_TYPES = ("MatchRule", "RateLimitRule")
VARIABLES = (
    "RemoteAddr",
    "RequestMethod",
    "QueryString",
    "PostArgs",
    "RequestUri",
    "RequestHeaders",
    "RequestBody",
    "RequestCookies",
)
SELECTOR_REQUIRED = ("RequestHeaders", "RequestCookies")  # the header or cookie to look at
SELECTOR_ALLOWED = (*SELECTOR_REQUIRED, "PostArgs")
STRING_OPERATORS = ("Equal", "Contains", "BeginsWith", "EndsWith", "Regex")
NUMERIC_OPERATORS = ("LessThan", "GreaterThan", "LessThanOrEqual", "GreaterThanOrEqual")
OPERATORS = ("IPMatch", "Any", *STRING_OPERATORS, *NUMERIC_OPERATORS, "GeoMatch")
TRANSFORMS = (
    "Lowercase",
    "Uppercase",
    "Trim",
    "UrlDecode",
    "UrlEncode",
    "RemoveNulls",
    "HtmlEntityDecode",
)
