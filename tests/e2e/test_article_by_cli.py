"""Azure's article "Configure end-to-end TLS by using Application Gateway", done entirely with
the `appgw` command line (the README walks through the same commands): certificates made by
`appgw cert`, the gateway made by `appgw create`, the listener switched to HTTPS with a PFX, the
backend settings switched to HTTPS with the backend's root .cer; then real traffic flows over
TLS on both legs, and a wrong root shows up in backend health."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from backends import free_port, wait_until
from e2e.harness import Gateway, backend_presenting
from helpers import RG, SUB, TOKEN, run_cli

pytestmark = pytest.mark.slow

PASSWORD = "Article4Cli"
SITE = "www.contoso.com"
BACKEND = "backend.contoso.com"


def test_the_article_by_cli(gateway: Gateway, tmp_path: Path) -> None:
    def appgw(*args: str, stdin: str = "") -> str:
        done = run_cli(
            *args,
            config=tmp_path / "config.json",
            stdin=stdin,
            env={
                "APPGW_SERVER": gateway.server.base_url,
                "APPGW_TOKEN": TOKEN,
                "APPGW_SUBSCRIPTION": SUB,
            },
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    files = tmp_path

    def at(name: str) -> str:
        return str(files / name)

    # 1. The article's test certificates: a backend root and the backend's certificate, and a
    #    self-signed listener PFX ("for testing purposes, you can use a self-signed certificate").
    appgw("cert", "create-root", "--name", "Contoso Backend Root",
          "--out-cert", at("root.pem"), "--out-key", at("root.key"))  # fmt: skip
    appgw("cert", "create-server", "--root-cert", at("root.pem"),
          "--root-key", at("root.key"), "--dns-name", BACKEND,
          "--out-cert", at("backend.crt"), "--out-key", at("backend.key"))  # fmt: skip
    appgw("cert", "export-cer", "--cert", at("root.pem"), "--out", at("root.cer"),
          "--format", "base64-der")  # fmt: skip
    appgw("cert", "create-self-signed", "--dns-name", SITE, "--out-pfx", at("site.pfx"),
          "--out-cert", at("site.crt"), "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    chain = [(files / "backend.crt").read_bytes()]
    backend = backend_presenting("article", chain, (files / "backend.key").read_bytes())
    try:
        # 2. A gateway with Azure's defaults: HTTP listener, HTTP backend settings.
        common = ("-g", RG, "--gateway-name", "appgw")
        http_port, https_port = free_port(), free_port()
        appgw("create", "-g", RG, "-n", "appgw", "--sku", "Standard_v2", "--priority", "100",
              "--servers", "127.0.0.1", "--private-ip-address", "127.0.0.1",
              "--frontend-port", str(http_port),
              "--http-settings-port", str(backend.port))  # fmt: skip

        # 3. The listener to HTTPS: upload the PFX, add port 443's stand-in, switch the listener.
        appgw("ssl-cert", "create", *common, "-n", "contosoSslCert",
              "--cert-file", at("site.pfx"), "--cert-password", PASSWORD)  # fmt: skip
        appgw("frontend-port", "create", *common, "-n", "httpsPort", "--port", str(https_port))
        appgw("http-listener", "update", *common, "-n", "appGatewayHttpListener",
              "--frontend-port", "httpsPort", "--ssl-cert", "contosoSslCert")  # fmt: skip

        # 4. The backend settings to HTTPS, trusting the backend's root (v2).
        appgw("root-cert", "create", *common, "-n", "backendRoot",
              "--cert-file", at("root.cer"))  # fmt: skip
        appgw("http-settings", "update", *common, "-n", "appGatewayBackendHttpSettings",
              "--protocol", "Https", "--port", str(backend.port), "--host-name", BACKEND,
              "--root-certs", "backendRoot")  # fmt: skip
        gateway.wait_current()

        # 5. Traffic: TLS from the client (trusting the self-signed site certificate), re-encrypted
        #    to the backend, whose certificate the gateway verified against the uploaded root.
        client_context = ssl.create_default_context(cafile=at("site.crt"))
        with httpx.Client(verify=client_context, timeout=15) as client:
            response = client.get(
                f"https://127.0.0.1:{https_port}/article",
                headers={"Host": SITE},
                extensions={"sni_hostname": SITE},
            )
        assert response.status_code == 200, response.text
        # (Health probes of "/" reach the backend too, before or after this request.)
        seen = next(request for request in backend.seen if request.target == "/article")
        assert seen.tls and seen.sni == BACKEND
        health = json.loads(
            appgw("show-backend-health", "-g", RG, "-n", "appgw",
                  "--query", "backendAddressPools[0].backendHttpSettingsCollection[0].servers[0]")
        )  # fmt: skip
        assert health["health"] == "Healthy", health

        # 6. Trust another root instead: the backend is refused, and backend health says why.
        appgw("cert", "create-root", "--name", "Some Other Root",
              "--out-cert", at("other.pem"), "--out-key", at("other.key"))  # fmt: skip
        appgw("root-cert", "update", *common, "-n", "backendRoot",
              "--cert-file", at("other.pem"))  # fmt: skip
        gateway.wait_current()

        def unhealthy() -> bool:
            server = json.loads(
                appgw("show-backend-health", "-g", RG, "-n", "appgw", "--query",
                      "backendAddressPools[0].backendHttpSettingsCollection[0].servers[0]")
            )  # fmt: skip
            return bool(server["health"] == "Unhealthy" and "root" in server["healthProbeLog"])

        wait_until(unhealthy, what="backend health to report the untrusted root")
    finally:
        backend.stop()
