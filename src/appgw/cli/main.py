"""The `appgw` command line: `serve` runs the gateway, the other commands talk to its API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from appgw.cli.cert import cert_app
from appgw.cli.children import register as register_child_groups
from appgw.cli.gateway import register as register_gateway_commands
from appgw.cli.transfer import register as register_transfer_commands
from appgw.cli.waf_policy import waf_policy_app
from appgw.defaults import (
    DEFAULT_ADMIN_LISTEN,
    DEFAULT_KEEP_SECRET_VERSIONS,
    DEFAULT_STORE_CONNECT_TIMEOUT,
    MIN_STORE_CONNECT_TIMEOUT,
    TICKET_SECRET_FILE_ENV,
)

app = typer.Typer(
    name="appgw",
    help="A self-hosted application gateway managed like Azure Application Gateway.",
    no_args_is_help=True,
    # Plain click help: rich's option table cuts long option names at 80 columns.
    rich_markup_mode=None,
    add_completion=True,
)
app.add_typer(cert_app, name="cert")


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "appgw"


@app.command("serve")
def serve_command(
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="APPGW_DATA_DIR",
            help="Where the embedded store, the master key and generated certificates live.",
            default_factory=_default_data_dir,
            show_default="$XDG_DATA_HOME/appgw",
        ),
    ],
    admin_listen: Annotated[
        str,
        typer.Option(
            envvar="APPGW_ADMIN_LISTEN",
            help="HOST:PORT of the API. Port 0 picks a free port. Off loopback it serves HTTPS.",
        ),
    ] = DEFAULT_ADMIN_LISTEN,
    store_url: Annotated[
        str | None,
        typer.Option(
            envvar="APPGW_STORE_URL",
            help="SQLAlchemy URL of a shared store (postgresql://...); default: SQLite in the "
            "data directory.",
        ),
    ] = None,
    store_connect_timeout: Annotated[
        int,
        typer.Option(
            envvar="APPGW_STORE_CONNECT_TIMEOUT",
            min=MIN_STORE_CONNECT_TIMEOUT,
            help="Seconds to wait for a PostgreSQL store to accept a connection, at start and "
            "after (then the API answers 503). A connect_timeout in --store-url wins.",
        ),
    ] = DEFAULT_STORE_CONNECT_TIMEOUT,
    admin_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate (chain) for the HTTPS admin listener.")
    ] = None,
    admin_key: Annotated[
        Path | None, typer.Option(help="PEM private key for the HTTPS admin listener.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            envvar="APPGW_WORKERS", min=0, help="Data-plane worker processes; 0 = one per CPU."
        ),
    ] = 0,
    frontend_address: Annotated[
        str,
        typer.Option(
            envvar="APPGW_FRONTEND_ADDRESS",
            help="Address that frontend IP configurations without a private IP (public ones) "
            "bind; frontends with privateIPAddress bind that address.",
        ),
    ] = "0.0.0.0",
    client_header_timeout: Annotated[
        float,
        typer.Option(
            envvar="APPGW_CLIENT_HEADER_TIMEOUT",
            min=1,
            help="Seconds a client has to send a whole request head (then 408), on every "
            "listener, the admin one included.",
        ),
    ] = 60.0,
    client_send_timeout: Annotated[
        float,
        typer.Option(
            envvar="APPGW_CLIENT_SEND_TIMEOUT",
            min=1,
            help="Seconds a client may take no byte of a response before it is dropped.",
        ),
    ] = 60.0,
    max_connections: Annotated[
        int,
        typer.Option(
            envvar="APPGW_MAX_CONNECTIONS",
            min=1,
            help="Client connections per worker; when full, the oldest idle one is closed.",
        ),
    ] = 20_000,
    max_connections_per_ip: Annotated[
        int,
        typer.Option(
            envvar="APPGW_MAX_CONNECTIONS_PER_IP",
            min=1,
            help="Client connections per worker from one address; the oldest idle goes first.",
        ),
    ] = 1_000,
    http2_limits: Annotated[
        str,
        typer.Option(
            envvar="APPGW_HTTP2_LIMITS",
            help="HTTP/2 client limits as name=value,... (docs/http2.md lists them), e.g. "
            "max_concurrent_streams=200,max_resets=100.",
        ),
    ] = "",
    access_log_max_mb: Annotated[
        int,
        typer.Option(
            envvar="APPGW_ACCESS_LOG_MAX_MB",
            min=1,
            help="Size in MiB past which access.log is rotated to access.log.1.",
        ),
    ] = 100,
    access_log_files: Annotated[
        int,
        typer.Option(
            envvar="APPGW_ACCESS_LOG_FILES",
            min=1,
            help="Rotated access logs kept (access.log.1 ... access.log.N).",
        ),
    ] = 5,
    demo: Annotated[
        bool,
        typer.Option(
            help="On an empty store, set up the Azure article's end-to-end TLS gateway with test "
            "certificates and a local HTTPS backend, and print a curl command that uses it."
        ),
    ] = False,
    demo_port: Annotated[
        int | None,
        typer.Option(min=1, max=65199, help="Listener port of the demo gateway (default: free)."),
    ] = None,
    keep_secret_versions: Annotated[
        int,
        typer.Option(
            envvar="APPGW_KEEP_SECRET_VERSIONS",
            min=1,
            help="Keep the secrets (listener private keys) of this many newest versions of a "
            "gateway; older versions keep their documents (revisions) but lose their secrets.",
        ),
    ] = DEFAULT_KEEP_SECRET_VERSIONS,
    session_ticket_secret_file: Annotated[
        Path | None,
        typer.Option(
            envvar=TICKET_SECRET_FILE_ENV,
            help="A file of 32+ random bytes (mode 0600) that every instance sharing TLS "
            "session tickets is given; default: this instance's own keys, in memory only.",
        ),
    ] = None,
) -> None:
    """Run the gateway: the management API on --admin-listen.

    Example: appgw serve --data-dir ./appgw-data --admin-listen 127.0.0.1:0
    """
    # Imported here: the server's dependencies (FastAPI, uvicorn, SQLAlchemy) cost the other
    # commands most of their start-up time.
    from appgw.serve import ServeError, ServeOptions, serve

    try:
        serve(
            ServeOptions(
                data_dir=data_dir,
                admin_listen=admin_listen,
                store_url=store_url,
                store_connect_timeout=store_connect_timeout,
                admin_cert=admin_cert,
                admin_key=admin_key,
                workers=workers,
                frontend_address=frontend_address,
                demo=demo,
                demo_port=demo_port,
                client_header_timeout=client_header_timeout,
                client_send_timeout=client_send_timeout,
                max_connections=max_connections,
                max_connections_per_ip=max_connections_per_ip,
                http2_limits=http2_limits,
                access_log_max_bytes=access_log_max_mb * 1024 * 1024,
                access_log_files=access_log_files,
                keep_secret_versions=keep_secret_versions,
                session_ticket_secret_file=session_ticket_secret_file,
            )
        )
    except ServeError as error:
        typer.echo(f"appgw: {error}", err=True)
        raise typer.Exit(2) from None


register_gateway_commands(app)
register_transfer_commands(app)
register_child_groups(app)
app.add_typer(waf_policy_app(), name="waf-policy")


@app.callback()
def _root() -> None:
    """appgw: Azure Application Gateway, on your own machines."""


def main() -> None:
    # Named, so `python -m appgw` completes (_APPGW_COMPLETE) and shows usage as `appgw` too.
    app(prog_name="appgw")
