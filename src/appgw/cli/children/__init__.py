"""Child groups shaped like `az network application-gateway <group> <verb>`: ssl-cert,
auth-cert, root-cert, ssl-policy, http-settings, http-listener, frontend-port, frontend-ip,
address-pool, probe, rule, url-path-map (and its rules), redirect-config.

Every command that writes does GET -> change -> PUT with If-Match (`edit.edit_gateway`)."""

from __future__ import annotations

import typer

from appgw.cli.children.commands import group_app
from appgw.cli.children.groups import GROUPS, URL_PATH_MAP, URL_PATH_MAP_RULE
from appgw.cli.children.ssl_policy import ssl_policy_app


def register(app: typer.Typer) -> None:
    for group, help_text in GROUPS:
        app.add_typer(group_app(group, help_text), name=group.path)
    path_maps = group_app(URL_PATH_MAP, "URL path maps.")
    path_maps.add_typer(group_app(URL_PATH_MAP_RULE, "Rules of a URL path map."), name="rule")
    app.add_typer(path_maps, name=URL_PATH_MAP.path)
    app.add_typer(ssl_policy_app(), name="ssl-policy")
