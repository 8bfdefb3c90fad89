"""Child groups shaped like `az network application-gateway <group> <verb>`: ssl-cert,
auth-cert, root-cert, client-cert, ssl-profile, ssl-policy, http-settings, http-listener,
frontend-port, frontend-ip, address-pool, probe, rule, url-path-map (and its rules),
redirect-config, rewrite-rule (its sets and conditions); waf-config.

Every command that writes does GET -> change -> PUT with If-Match (`edit.edit_gateway`)."""

from __future__ import annotations

import typer

from appgw.cli.children.commands import group_app
from appgw.cli.children.groups import GROUPS, REWRITE_RULE
from appgw.cli.children.rewrite import add_listings
from appgw.cli.children.ssl_policy import ssl_policy_app
from appgw.cli.children.waf_config import waf_config_app


def register(app: typer.Typer) -> None:
    # A group's path names where it goes: "url-path-map rule" is `rule` of url-path-map's app.
    apps: dict[str, typer.Typer] = {}
    for group, help_text in GROUPS:
        child = group_app(group, help_text)
        *above, name = group.path.split()
        (apps[" ".join(above)] if above else app).add_typer(child, name=name)
        apps[group.path] = child
    add_listings(apps[REWRITE_RULE.path])
    app.add_typer(ssl_policy_app(), name="ssl-policy")
    app.add_typer(waf_config_app(), name="waf-config")
