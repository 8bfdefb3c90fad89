"""`appgw cert` as the installed executable: the article's test root, a server certificate, the
listener PFX and the backend .cer, read back with appgw's own certificate parsing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from appgw.certificates import load_pfx, load_public_certificate
from appgw.cli.main import app
from backends import free_port
from helpers import TOKEN, run_cli
from pfx_forge import Forged

pytestmark = pytest.mark.slow

PASSWORD = "Contoso4Pfx9Test"  # alphanumeric, as Azure requires
SITE = "www.contoso.com"


def _executable() -> list[str]:
    found = shutil.which("appgw", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "appgw"]


def appgw(
    cwd: Path, *args: str, stdin: str | None = None, expect: int | None = 0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*_executable(), *args],
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    if expect is not None:
        assert result.returncode == expect, (result.stdout, result.stderr)
    return result


@dataclass(frozen=True)
class Made:
    directory: Path
    outputs: list[subprocess.CompletedProcess[str]]

    def path(self, name: str) -> Path:
        return self.directory / name

    def cert(self, name: str) -> x509.Certificate:
        return load_public_certificate(self.path(name).read_bytes())


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    """The article's flow once: root, server certificate, listener PFX, backend .cer."""
    directory = tmp_path_factory.mktemp("cert")
    run = [
        appgw(
            directory,
            *("cert", "create-root", "--name", "Contoso Root"),
            *("--out-cert", "root.cer", "--out-key", "root.key"),
        ),
        appgw(
            directory,
            *("cert", "create-server", "--root-cert", "root.cer", "--root-key", "root.key"),
            *("--dns-name", SITE, "--dns-name", "contoso.com"),
            *("--out-cert", "server.crt", "--out-key", "server.key"),
        ),
        appgw(
            directory,
            *("cert", "export-pfx", "--cert", "server.crt", "--key", "server.key"),
            *("--chain", "root.cer", "--out", "site.pfx", "--password-stdin"),
            stdin=PASSWORD + "\n",
        ),
        appgw(directory, "cert", "export-cer", "--cert", "server.crt", "--out", "server.cer"),
    ]
    return Made(directory, run)


def test_root_and_server_certificate(made: Made) -> None:
    root, server = made.cert("root.cer"), made.cert("server.crt")
    assert made.path("root.cer").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.subject == root.issuer
    server.verify_directly_issued_by(root)
    assert server.subject.rfc4514_string() == f"CN={SITE}"
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [SITE, "contoso.com"]
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in ("root.key", "server.key"):
        assert stat.S_IMODE(made.path(key).stat().st_mode) == 0o600
        assert b"PRIVATE KEY" in made.path(key).read_bytes()
    for output in made.outputs:
        assert "PRIVATE KEY" not in output.stdout + output.stderr
        assert PASSWORD not in output.stdout + output.stderr


def test_listener_pfx_holds_the_chain(made: Made) -> None:
    pfx = made.path("site.pfx")
    assert stat.S_IMODE(pfx.stat().st_mode) == 0o600
    listener = load_pfx(pfx.read_bytes(), PASSWORD)
    assert listener.leaf == made.cert("server.crt")
    assert listener.chain == (made.cert("root.cer"),)
    assert listener.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == made.cert("server.crt").public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_backend_cer_is_base64_x509(made: Made) -> None:
    data = made.path("server.cer").read_bytes()
    assert data.startswith(b"-----BEGIN CERTIFICATE-----")
    assert load_public_certificate(data) == made.cert("server.crt")


def test_self_signed_listener_pfx_is_rsa_2048(tmp_path: Path) -> None:
    result = appgw(
        tmp_path,
        *("cert", "create-self-signed", "--dns-name", SITE, "--out-pfx", "self.pfx"),
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert PASSWORD not in result.stdout + result.stderr
    assert stat.S_IMODE((tmp_path / "self.pfx").stat().st_mode) == 0o600
    listener = load_pfx((tmp_path / "self.pfx").read_bytes(), PASSWORD)
    assert isinstance(listener.private_key, rsa.RSAPrivateKey)
    assert listener.private_key.key_size == 2048
    assert listener.leaf.subject == listener.leaf.issuer
    assert listener.chain == ()


def _inspect_json(cwd: Path, *args: str, stdin: str | None = None) -> dict[str, Any]:
    result = appgw(cwd, "cert", "inspect", *args, "-o", "json", stdin=stdin)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _expected(cert: x509.Certificate) -> dict[str, object]:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "subject": cert.subject.rfc4514_string(),
        "sha256Fingerprint": cert.fingerprint(hashes.SHA256()).hex().upper(),
        "sha1Thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),
        "spkiSha256": base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    }


def test_inspect_pem_der_and_pfx(made: Made) -> None:
    server, root = made.cert("server.crt"), made.cert("root.cer")
    (made.directory / "server.der").write_bytes(server.public_bytes(serialization.Encoding.DER))

    pem = _inspect_json(made.directory, "server.crt")
    der = _inspect_json(made.directory, "server.der")
    pfx = _inspect_json(made.directory, "site.pfx", "--password-stdin", stdin=PASSWORD + "\n")

    assert (pem["format"], der["format"], pfx["format"]) == ("PEM", "DER", "PFX (PKCS#12)")
    for document in (pem, der, pfx):
        leaf = document["certificates"][0]
        assert {key: leaf[key] for key in _expected(server)} == _expected(server)
        assert leaf["subjectAlternativeNames"] == [SITE, "contoso.com"]
        assert leaf["issuer"] == "CN=Contoso Root"
        assert leaf["isCa"] is False
        assert leaf["keyDescription"] == "EC P-256 (secp256r1)"
        assert document["chainProblems"] == []
    assert len(pfx["certificates"]) == 2
    assert {k: pfx["certificates"][1][k] for k in _expected(root)} == _expected(root)
    assert pfx["certificates"][1]["isCa"] is True
    assert pfx["privateKey"] == "EC P-256 (secp256r1), matches certificate 1"


def test_inspect_reports_a_reversed_chain(made: Made) -> None:
    reversed_chain = made.directory / "reversed.pem"
    reversed_chain.write_bytes(
        made.path("root.cer").read_bytes() + made.path("server.crt").read_bytes()
    )
    document = _inspect_json(made.directory, "reversed.pem")
    assert [p["code"] for p in document["chainProblems"]] == ["LeafNotFirst", "ChainOutOfOrder"]
    table = appgw(made.directory, "cert", "inspect", "reversed.pem").stdout
    assert "the leaf must be first" in table
    assert "Certificate 2 of 2" in table and f"CN={SITE}" in table


def test_wrong_password_and_garbage_exit_2_naming_the_file(made: Made) -> None:
    wrong = appgw(
        made.directory,
        *("cert", "inspect", "site.pfx", "--password-stdin"),
        stdin="NotThePassword\n",
        expect=2,
    )
    assert wrong.stderr.startswith("appgw: site.pfx: ")
    assert "password" in wrong.stderr and "incorrect" in wrong.stderr
    assert "NotThePassword" not in wrong.stderr + wrong.stdout

    (made.directory / "garbage.bin").write_bytes(bytes(range(256)) * 3)
    garbage = appgw(made.directory, "cert", "inspect", "garbage.bin", expect=2)
    assert garbage.stderr.startswith("appgw: garbage.bin: not a certificate file")
    assert garbage.stdout == ""


def test_a_pfx_asking_for_too_many_iterations_is_refused_before_decrypting(made: Made) -> None:
    """Issue 12: OpenSSL would spend seconds on this key bag's 20 million iterations; the CLI
    refuses the file with the server's message, locally, before any request."""
    hostile = Forged.of(made.path("site.pfx").read_bytes(), PASSWORD).set_key_iterations(20_000_000)
    made.path("hostile.pfx").write_bytes(hostile.der())

    inspected = appgw(
        made.directory,
        *("cert", "inspect", "hostile.pfx", "--password-stdin"),
        stdin=PASSWORD + "\n",
        expect=2,
    )
    # No API listens at this address: an upload that got as far as a request would say so.
    uploaded = run_cli(
        *("ssl-cert", "create", "-g", "rg1", "--gateway-name", "appgw", "-n", "hostile"),
        *("--cert-file", str(made.path("hostile.pfx")), "--cert-password-stdin"),
        config=Path("/nonexistent/appgw-config.json"),
        stdin=PASSWORD + "\n",
        env={"APPGW_SERVER": f"http://127.0.0.1:{free_port()}", "APPGW_TOKEN": TOKEN},
    )

    assert inspected.stderr.startswith("appgw: hostile.pfx: the PFX asks for 20,000,000 ")
    assert "at most 100,000" in inspected.stderr
    assert uploaded.returncode != 0, uploaded.stderr
    assert "Traceback" not in uploaded.stderr and "cannot reach" not in uploaded.stderr
    assert f"--cert-file {made.path('hostile.pfx')}: The PFX asks for 20,000,000 " in (
        uploaded.stderr
    )
    for output in (inspected, uploaded):
        assert PASSWORD not in output.stdout + output.stderr


def test_outputs_are_not_overwritten_and_argv_password_warns(made: Made) -> None:
    exists = appgw(
        made.directory,
        *("cert", "create-root", "--name", "Other", "--out-cert", "new.cer"),
        *("--out-key", "root.key"),
        expect=2,
    )
    assert exists.stderr == "appgw: root.key: already exists; use --force to overwrite it\n"
    assert not (made.directory / "new.cer").exists()

    argv = appgw(
        made.directory,
        *("cert", "export-pfx", "--cert", "server.crt", "--key", "server.key"),
        *("--chain", "root.cer", "--out", "argv.pfx", "--password", PASSWORD),
    )
    assert "--password exposes the password" in argv.stderr
    assert PASSWORD not in argv.stdout + argv.stderr
    assert load_pfx((made.directory / "argv.pfx").read_bytes(), PASSWORD).chain


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    commands = [
        "create-root",
        "create-server",
        "create-self-signed",
        "export-pfx",
        "export-cer",
        "inspect",
    ]
    for command in [[], *([c] for c in commands)]:
        result = runner.invoke(app, ["cert", *command, "--help"])
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())  # undo the help's line wrapping
        example = text.partition("Example: ")[2]
        assert f"appgw cert {' '.join(command)}".strip() in example, command
