"""`appgw cert`: make and inspect the certificates a gateway needs, in the forms Azure expects.

* listener (frontend) certificates are uploaded as a password-protected PFX holding the private key
  and the whole chain (leaf, intermediates, root);
* backend certificates are uploaded as a Base-64 encoded X.509 .cer: on v1 the backend server's
  own (leaf) certificate, on v2 the root CA certificate of the backend's chain.

Generation is `appgw.certificates.factory`'s, parsing and inspection `appgw.certificates`'; this
module only reads and writes files and talks to the user. Every expected failure is reported as
`appgw: <file>: <what is wrong>` on stderr with exit code 2, never as a traceback. Passwords and
private keys are never printed; files holding a private key are created with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from appgw.certificates import (
    CODE_INVALID_DATA,
    CODE_INVALID_PASSWORD,
    CODE_ITERATION_COUNT_TOO_HIGH,
    CODE_UNSUPPORTED_PROTECTION,
    CertificateError,
    CertificateInfo,
    chain_order_problems,
    decode_certificate_blob,
    inspect_certificate,
    load_pfx,
    public_certificate_data,
)
from appgw.certificates.factory import (
    Key,
    certificate_pem,
    create_root,
    create_server_certificate,
    new_key,
    private_key_pem,
)
from appgw.cli.options import AzCommand
from appgw.hostnames import is_ip_address

EXIT_ERROR = 2

# Azure's documented upload limits for an SSL certificate (PFX): 10 KB on v1, 16 KB on v2.
PFX_LIMIT_V1 = 10 * 1024
PFX_LIMIT_V2 = 16 * 1024
# What `openssl pkcs12 -export -legacy` uses; Windows' PFXImportCertStore reads it everywhere.
PFX_KDF_ROUNDS = 2048

Command = TypeVar("Command", bound=Callable[..., None])

STDIN_LABEL = "<stdin>"
STDOUT_PATH = "-"

_DNS_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"(\*\.)?{_DNS_LABEL}(\.{_DNS_LABEL})*\.?")
_PEM_MARKER = b"-----BEGIN "
_PRIVATE_KEY_MARKER = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")

cert_app = typer.Typer(
    name="cert",
    help="Create, convert and inspect certificates in the forms Azure Application Gateway "
    "expects.\n\n"
    "Listeners take a password-protected PFX with the full chain; backend settings take a "
    "Base-64 .cer (v1: the backend's own certificate; v2: the root of its chain).\n\n"
    "Example: appgw cert create-root --name 'Contoso Root' --out-cert root.cer --out-key root.key",
    no_args_is_help=True,
    # Plain click help: rich's option table cuts long option names at 80 columns.
    rich_markup_mode=None,
)


class KeyType(StrEnum):
    ec = "ec"
    rsa = "rsa"


class CerFormat(StrEnum):
    pem = "pem"
    base64_der = "base64-der"
    der = "der"


class PfxEncryption(StrEnum):
    triple_des = "3des"
    aes256 = "aes256"


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


class CliError(Exception):
    """An expected failure: reported as `appgw: <subject>: <message>`, exit code 2."""

    def __init__(self, subject: Path | str, message: str) -> None:
        super().__init__(message)
        self.subject = str(subject)
        self.message = message


@contextmanager
def _reported() -> Iterator[None]:
    try:
        yield
    except CliError as error:
        _fail(error.subject, error.message)


def _fail(subject: str, message: str) -> NoReturn:
    typer.echo(f"appgw: {subject}: {message}", err=True)
    raise typer.Exit(EXIT_ERROR)


def _warn(message: str) -> None:
    typer.echo(f"appgw: warning: {message}", err=True)


def _clause(message: str) -> str:
    """A library sentence ("The password ... is incorrect.") as a clause after `file: `."""
    text = message.strip().removesuffix(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def _command(name: str) -> Callable[[Command], Command]:
    """Register a command; its docstring becomes the help with single line breaks removed
    (rich help keeps them), paragraphs kept."""

    def register(function: Command) -> Command:
        text = inspect.cleandoc(function.__doc__ or "")
        paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
        cert_app.command(name, help="\n\n".join(paragraphs), cls=AzCommand)(function)
        return function

    return register


# --- options shared by several commands -------------------------------------------------------

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the PFX password from the first line of standard input (recommended).",
    ),
]
PasswordArgument = Annotated[
    str | None,
    typer.Option(
        "--password",
        help="The PFX password on the command line. Discouraged: it is visible in the process "
        "list and shell history; use --password-stdin or the prompt instead.",
        show_default=False,
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite output files that exist.")]
Days = Annotated[int, typer.Option(min=1, max=36500, help="Validity in days from now.")]
DnsNames = Annotated[
    list[str],
    typer.Option(
        "--dns-name",
        help="A DNS name (or IP address) for the subject alternative names; repeat for more. "
        "The first one is also the common name (CN).",
        show_default=False,
    ),
]


# --- commands ---------------------------------------------------------------------------------


@_command("create-root")
def create_root_command(
    name: Annotated[
        str, typer.Option("--name", help="Common name (CN) of the root CA.", show_default=False)
    ],
    out_cert: Annotated[
        Path,
        typer.Option(
            "--out-cert", help="Where to write the root certificate (PEM).", show_default=False
        ),
    ],
    out_key: Annotated[
        Path,
        typer.Option(
            "--out-key",
            help="Where to write the root's private key (PEM, unencrypted, mode 0600).",
            show_default=False,
        ),
    ],
    days: Days = 3650,
    key_type: Annotated[KeyType, typer.Option("--key-type", help="Key algorithm.")] = KeyType.ec,
    force: Force = False,
) -> None:
    """Create a root CA certificate and its private key.

    Like the test root of Azure's end-to-end TLS article: CA:TRUE, keyCertSign. The .cer is
    Base-64 encoded X.509 (PEM), the form Azure uploads: use it as the trusted root
    certificate of a v2 backend setting whose backend serves a certificate issued with
    create-server. The key is written unencrypted with mode 0600.

    Example: appgw cert create-root --name "Contoso Root" --out-cert root.cer --out-key root.key
    """
    with _reported():
        if not name.strip():
            raise CliError("--name", "the common name is empty")
        _check_outputs([out_cert, out_key], force)
        cert, key = create_root(name.strip(), days, key=new_key(key_type.value))
        _write(out_cert, certificate_pem(cert), force=force)
        _write(out_key, private_key_pem(key), private=True, force=force)
        typer.echo(f"Wrote {out_cert} (root certificate {cert.subject.rfc4514_string()}).")
        typer.echo(f"Wrote {out_key} (its private key, mode 0600: keep it secret).")


@_command("create-server")
def create_server_command(
    root_cert: Annotated[
        Path,
        typer.Option(
            "--root-cert",
            help="The issuing CA certificate (PEM, DER or Base-64).",
            show_default=False,
        ),
    ],
    root_key: Annotated[
        Path,
        typer.Option(
            "--root-key",
            help="The issuing CA's private key (unencrypted PEM or DER).",
            show_default=False,
        ),
    ],
    dns_names: DnsNames,
    out_cert: Annotated[
        Path,
        typer.Option(
            "--out-cert", help="Where to write the server certificate (PEM).", show_default=False
        ),
    ],
    out_key: Annotated[
        Path,
        typer.Option(
            "--out-key",
            help="Where to write its private key (PEM, unencrypted, mode 0600).",
            show_default=False,
        ),
    ],
    days: Days = 365,
    key_type: Annotated[KeyType, typer.Option("--key-type", help="Key algorithm.")] = KeyType.ec,
    force: Force = False,
) -> None:
    """Create a TLS server certificate issued by a root made with create-root.

    The first --dns-name is the common name (CN); all of them are subject alternative names.
    Serve it on a backend (upload the root .cer to a v2 backend setting, or this certificate's
    own .cer from export-cer to a v1 one), or bundle it with its chain into a listener PFX with
    export-pfx.

    Example: appgw cert create-server --root-cert root.cer --root-key root.key
    --dns-name www.contoso.com --out-cert server.crt --out-key server.key
    """
    with _reported():
        names = _check_dns_names(dns_names)
        issuer = _load_issuer(root_cert)
        issuer_key = _load_private_key(root_key)
        if not _same_public_key(issuer.public_key(), issuer_key.public_key()):
            raise CliError(root_key, f"this key does not belong to the certificate in {root_cert}")
        issuer_names = issuer.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if any(attribute.value == names[0] for attribute in issuer_names):
            # Subject == issuer would make the server certificate look self-signed.
            raise CliError(
                "--dns-name",
                f"{names[0]} is also the common name of the issuer {root_cert}; the server "
                "certificate's CN must differ from its issuer's",
            )
        _check_outputs([out_cert, out_key], force)
        cert, key = create_server_certificate(
            names, days, issuer=issuer, issuer_key=issuer_key, key=new_key(key_type.value)
        )
        if cert.not_valid_after_utc > issuer.not_valid_after_utc:
            _warn(
                f"the certificate is valid until {_iso(cert.not_valid_after_utc)} but its issuer "
                f"only until {_iso(issuer.not_valid_after_utc)}; clients stop trusting it then"
            )
        _write(out_cert, certificate_pem(cert), force=force)
        _write(out_key, private_key_pem(key), private=True, force=force)
        typer.echo(
            f"Wrote {out_cert} ({cert.subject.rfc4514_string()}, issued by "
            f"{issuer.subject.rfc4514_string()}, for {', '.join(names)})."
        )
        typer.echo(f"Wrote {out_key} (its private key, mode 0600: keep it secret).")


@_command("create-self-signed")
def create_self_signed_command(
    dns_names: DnsNames,
    out_pfx: Annotated[
        Path,
        typer.Option(
            "--out-pfx",
            help="Where to write the PFX with the certificate and its private key (mode 0600).",
            show_default=False,
        ),
    ],
    password_stdin: PasswordStdin = False,
    password: PasswordArgument = None,
    out_cert: Annotated[
        Path | None,
        typer.Option(
            "--out-cert",
            help="Also write the certificate (PEM), e.g. for curl --cacert.",
            show_default=False,
        ),
    ] = None,
    days: Days = 365,
    key_type: Annotated[
        KeyType, typer.Option("--key-type", help="Key algorithm (RSA 2048 or EC P-256).")
    ] = KeyType.rsa,
    encryption: Annotated[
        PfxEncryption,
        typer.Option(help="PFX encryption: 3des (what Azure accepts) or aes256."),
    ] = PfxEncryption.triple_des,
    force: Force = False,
) -> None:
    """Create a self-signed listener certificate as a PFX, for testing only.

    Azure: "for testing purposes, you can use a self-signed certificate"; clients will not
    trust it. RSA 2048 by default, like Azure's documentation. The password is read with
    --password-stdin or prompted for.

    Example: echo "$PFX_PASSWORD" | appgw cert create-self-signed --dns-name www.contoso.com
    --out-pfx site.pfx --password-stdin
    """
    with _reported():
        names = _check_dns_names(dns_names)
        outputs = [out_pfx, *([out_cert] if out_cert else [])]
        _check_outputs(outputs, force)
        secret = _pfx_password_for_export(password_stdin, password)
        cert, key = create_server_certificate(names, days, key=new_key(key_type.value))
        data = _pfx_bytes(key, cert, [], secret, encryption, friendly_name=names[0])
        _write(out_pfx, data, private=True, force=force)
        if out_cert:
            _write(out_cert, certificate_pem(cert), force=force)
            typer.echo(f"Wrote {out_cert} (the certificate, PEM).")
        info = inspect_certificate(cert)
        typer.echo(
            f"Wrote {out_pfx} (self-signed {info.subject}, {info.key_description}, "
            f"SHA-1 thumbprint {info.sha1_thumbprint})."
        )


@_command("export-pfx")
def export_pfx_command(
    cert: Annotated[
        Path,
        typer.Option(
            "--cert",
            help="The certificate (PEM, DER or Base-64); a PEM may also hold its chain.",
            show_default=False,
        ),
    ],
    key: Annotated[
        Path,
        typer.Option("--key", help="Its private key (unencrypted PEM or DER).", show_default=False),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the PFX (mode 0600).", show_default=False)
    ],
    chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--chain",
            help="An intermediate or root certificate file to include; repeat for more. Azure "
            "asks for the whole chain (leaf, intermediates, root) in a listener PFX.",
            show_default=False,
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
    password: PasswordArgument = None,
    friendly_name: Annotated[
        str | None,
        typer.Option(
            help="The PFX friendly name (default: the certificate's CN).", show_default=False
        ),
    ] = None,
    encryption: Annotated[
        PfxEncryption,
        typer.Option(help="PFX encryption: 3des (what Azure accepts) or aes256."),
    ] = PfxEncryption.triple_des,
    force: Force = False,
) -> None:
    """Bundle a certificate, its key and its chain into a PFX for an HTTPS listener.

    Azure takes a listener's SSL certificate as a password-protected PFX (PKCS#12) with the
    private key and the whole chain (leaf, intermediates, root). The password is read with
    --password-stdin or prompted for (twice); Azure accepts only letters and digits in it.
    Encryption defaults to the legacy 3DES format that Azure's certificate import accepts.

    Example: echo "$PFX_PASSWORD" | appgw cert export-pfx --cert server.crt --key server.key
    --chain root.cer --out site.pfx --password-stdin
    """
    with _reported():
        certificates = _load_public_certificates(cert)
        private_key = _load_private_key(key)
        leaf = next(
            (c for c in certificates if _same_public_key(c.public_key(), private_key.public_key())),
            None,
        )
        if leaf is None:
            raise CliError(key, f"this key does not belong to the certificate in {cert}")
        extra: list[x509.Certificate] = []
        for candidate in [
            *certificates,
            *(c for path in chain or [] for c in _load_public_certificates(path)),
        ]:
            if candidate != leaf and candidate not in extra:
                extra.append(candidate)
        _check_outputs([out], force)
        secret = _pfx_password_for_export(password_stdin, password)
        name = friendly_name or inspect_certificate(leaf).common_name or "certificate"
        data = _pfx_bytes(private_key, leaf, extra, secret, encryption, friendly_name=name)
        try:
            # The file must be one appgw itself accepts: key type and size, key/certificate match.
            listener = load_pfx(data, secret, check_validity=False)
        except CertificateError as error:
            raise CliError(key, _clause(error.message)) from None
        _warn_about_listener(listener.full_chain(), len(data))
        _write(out, data, private=True, force=force)
        info = inspect_certificate(leaf)
        typer.echo(
            f"Wrote {out} ({info.subject} with {len(listener.chain)} chain certificate(s), "
            f"{_ENCRYPTION_DESCRIPTION[encryption]}, {len(data)} bytes, "
            f"SHA-1 thumbprint {info.sha1_thumbprint})."
        )


@_command("export-cer")
def export_cer_command(
    cert: Annotated[
        Path,
        typer.Option(
            "--cert",
            help="A certificate file: PEM, DER, Base-64, PKCS#7, or a PFX (needs its password).",
            show_default=False,
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out", help="Where to write the .cer; - for standard output.", show_default=False
        ),
    ],
    output_format: Annotated[
        CerFormat,
        typer.Option(
            "--format",
            help="pem: Base-64 encoded X.509 with BEGIN/END lines (Azure's .cer upload); "
            "base64-der: one line, the `data` value of the REST API; der: binary.",
        ),
    ] = CerFormat.pem,
    password_stdin: PasswordStdin = False,
    password: PasswordArgument = None,
    force: Force = False,
) -> None:
    """Write the public certificate, without its key, as a .cer for a backend setting.

    The default format is Base-64 encoded X.509 (PEM), what Azure expects: for a v1 backend
    setting upload the backend server's own certificate, for v2 the root of its chain. From a
    file holding several certificates the first one (for a PFX: the leaf) is written.

    Example: appgw cert export-cer --cert server.crt --out server.cer
    """
    with _reported():
        to_stdout = out == STDOUT_PATH
        if not to_stdout:
            _check_outputs([Path(out)], force)
        bundle = _load_any(cert, password_stdin, password)
        chosen = bundle.certificates[0]
        if len(bundle.certificates) > 1:
            _warn(
                f"{cert} holds {len(bundle.certificates)} certificates; exporting the first, "
                f"{chosen.subject.rfc4514_string()}"
            )
        data = {
            CerFormat.pem: certificate_pem(chosen),
            CerFormat.base64_der: public_certificate_data(chosen).encode("ascii") + b"\n",
            CerFormat.der: chosen.public_bytes(serialization.Encoding.DER),
        }[output_format]
        if to_stdout:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        _write(Path(out), data, force=force)
        typer.echo(f"Wrote {out} ({chosen.subject.rfc4514_string()}, {output_format.value}).")


@_command("inspect")
def inspect_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="PEM, DER, Base-64 DER, PKCS#7 (.p7b, publicCertData) or PFX file.",
            show_default=False,
        ),
    ],
    password_stdin: PasswordStdin = False,
    password: PasswordArgument = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Output format.")
    ] = OutputFormat.table,
) -> None:
    """Show what a certificate file (PEM, DER, Base-64, PKCS#7 or PFX) holds.

    For each certificate: subject, SANs, issuer, validity, SHA-256 fingerprint, SHA-1
    thumbprint (what Azure shows), SPKI pin, CA flag and key; for several certificates, any
    problem with their order (leaf first, then each one's issuer). A PFX needs its password:
    --password-stdin, or a prompt on a terminal. Exit code 2 when the file cannot be read.

    Example: appgw cert inspect site.pfx --password-stdin -o json < password.txt
    """
    with _reported():
        bundle = _load_any(file, password_stdin, password)
        certificates = bundle.certificates
        now = dt.datetime.now(dt.UTC)
        infos = [inspect_certificate(c) for c in certificates]
        problems = chain_order_problems(certificates)
        if output is OutputFormat.json:
            document = {
                "file": str(file),
                "format": bundle.format,
                "privateKey": bundle.private_key,
                "certificates": [
                    {**info.to_json(), "daysUntilExpiry": info.days_until_expiry(now)}
                    for info in infos
                ],
                "chainProblems": [{"code": p.code, "message": p.message} for p in problems],
                "problems": bundle.problems,
            }
            typer.echo(json.dumps(document, indent=2))
            return
        typer.echo(f"File:        {file}")
        typer.echo(f"Format:      {bundle.format}")
        if bundle.private_key:
            typer.echo(f"Private key: {bundle.private_key}")
        for index, info in enumerate(infos, start=1):
            typer.echo("")
            typer.echo(f"Certificate {index} of {len(infos)}")
            for label, value in _table_rows(info, now):
                typer.echo(f"  {label:<20} {value}")
        if problems or bundle.problems:
            typer.echo("")
            typer.echo("Problems:")
            for message in [*(p.message for p in problems), *bundle.problems]:
                typer.echo(f"  - {message}")


# --- reading ----------------------------------------------------------------------------------


@dataclass
class _Bundle:
    format: str
    certificates: list[x509.Certificate]
    private_key: str | None = None  # a description, never the key
    problems: list[str] = field(default_factory=list)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CliError(path, _os_reason(error)) from None


def _os_reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def _decode(path: Path, raw: bytes) -> bytes:
    try:
        return decode_certificate_blob(raw)
    except CertificateError as error:
        raise CliError(path, f"not a certificate file: {_clause(error.message)}") from None


def _parse_public(raw: bytes, blob: bytes) -> _Bundle | None:
    """Certificates from PEM, DER, Base-64 DER or PKCS#7; None when the data is none of these."""
    if _PEM_MARKER in blob:
        try:
            if b"-----BEGIN PKCS7-----" in blob:
                return _Bundle("PKCS#7 (PEM)", pkcs7.load_pem_pkcs7_certificates(blob))
            return _Bundle("PEM", x509.load_pem_x509_certificates(blob))
        except ValueError:
            return None
    encoding = "Base-64 DER" if blob != raw else "DER"
    try:
        return _Bundle(encoding, [x509.load_der_x509_certificate(blob)])
    except ValueError:
        pass
    try:
        with warnings.catch_warnings():
            # OpenSSL's crl2pkcs7 writes unsorted SETs (BER, not DER); reading them is fine.
            warnings.simplefilter("ignore", UserWarning)
            certificates = pkcs7.load_der_pkcs7_certificates(blob)
    except ValueError:
        return None
    return _Bundle(f"PKCS#7 ({encoding})", certificates) if certificates else None


def _load_public_certificates(path: Path) -> list[x509.Certificate]:
    raw = _read(path)
    bundle = _parse_public(raw, _decode(path, raw))
    if bundle is None or not bundle.certificates:
        raise CliError(
            path, "not a certificate in PEM, DER or Base-64 form (a PFX is not accepted here)"
        )
    return bundle.certificates


def _load_issuer(path: Path) -> x509.Certificate:
    certificates = _load_public_certificates(path)
    if len(certificates) > 1:
        raise CliError(path, f"holds {len(certificates)} certificates; give only the issuing CA")
    issuer = certificates[0]
    if not inspect_certificate(issuer).is_ca:
        raise CliError(
            path,
            f"{issuer.subject.rfc4514_string()} is not a CA certificate (no CA:TRUE basic "
            "constraint), so it cannot issue certificates; make one with create-root",
        )
    return issuer


def _load_any(path: Path, password_stdin: bool, password: str | None) -> _Bundle:
    """Any certificate file, a PFX included (which needs its password)."""
    raw = _read(path)
    blob = _decode(path, raw)
    bundle = _parse_public(raw, blob)
    if bundle is not None:
        bundle.private_key = _describe_pem_key(blob, bundle.certificates)
        return bundle
    if _PRIVATE_KEY_MARKER.search(blob):
        raise CliError(path, "the file holds a private key but no certificate")
    if _PEM_MARKER in blob:
        raise CliError(path, "the PEM data holds no readable certificate")
    secret = _password(password_stdin, password, prompt=False)
    try:
        return _load_pfx(path, blob, secret)
    except _WrongPassword:
        if not (secret is None and _can_prompt(password_stdin)):
            raise
    return _load_pfx(path, blob, _prompt_password(confirm=False))


class _WrongPassword(CliError):
    pass


# load_pfx's refusals of a PFX that must not be handed to OpenSSL at all.
_REFUSED_BEFORE_DECRYPTION = {CODE_ITERATION_COUNT_TOO_HIGH, CODE_UNSUPPORTED_PROTECTION}


def _load_pfx(path: Path, blob: bytes, secret: str | None) -> _Bundle:
    """The PFX's certificates, leaf first."""
    try:
        listener = load_pfx(blob, secret, check_validity=False)
    except CertificateError as error:
        if error.code == CODE_INVALID_DATA:
            raise CliError(
                path,
                "not a certificate file: neither PEM, DER, Base-64 DER, PKCS#7 nor PFX "
                "(corrupt, truncated or another format)",
            ) from None
        if error.code == CODE_INVALID_PASSWORD:
            hint = "" if secret else "; give it with --password-stdin"
            raise _WrongPassword(path, _clause(error.message) + hint) from None
        if error.code in _REFUSED_BEFORE_DECRYPTION:
            # Decrypting it to show what it holds is exactly what must not happen.
            raise CliError(path, _clause(error.message)) from None
        # A PFX appgw would refuse as a listener certificate: still show what it holds.
        return _load_unusable_pfx(path, blob, secret, error)
    return _Bundle(
        "PFX (PKCS#12)",
        list(listener.full_chain()),
        private_key=f"{inspect_certificate(listener.leaf).key_description}, matches certificate 1",
    )


def _load_unusable_pfx(
    path: Path, blob: bytes, secret: str | None, error: CertificateError
) -> _Bundle:
    try:
        content = pkcs12.load_pkcs12(blob, secret.encode("utf-8") if secret else None)
    except ValueError:
        raise CliError(path, _clause(error.message)) from None
    certificates = [
        *([content.cert.certificate] if content.cert else []),
        *(c.certificate for c in content.additional_certs),
    ]
    if not certificates:
        raise CliError(path, _clause(error.message))
    key = content.key
    return _Bundle(
        "PFX (PKCS#12)",
        certificates,
        private_key=_describe_key(key, certificates) if key is not None else None,
        problems=[f"Not usable as a listener certificate: {error.message}"],
    )


def _describe_pem_key(blob: bytes, certificates: Sequence[x509.Certificate]) -> str | None:
    if not _PRIVATE_KEY_MARKER.search(blob):
        return None
    try:
        key = serialization.load_pem_private_key(blob, None)
    except TypeError:
        return "present (encrypted)"
    except (ValueError, UnsupportedAlgorithm):
        return "present (unreadable)"
    return _describe_key(key, certificates)


def _describe_key(key: PrivateKeyTypes, certificates: Sequence[x509.Certificate]) -> str:
    for index, cert in enumerate(certificates, start=1):
        if _same_public_key(cert.public_key(), key.public_key()):
            return f"{inspect_certificate(cert).key_description}, matches certificate {index}"
    return "present, matches none of the certificates"


def _load_private_key(path: Path) -> Key:
    data = _read(path)
    try:
        if _PEM_MARKER in data:
            key = serialization.load_pem_private_key(data, None)
        else:
            key = serialization.load_der_private_key(data, None)
    except TypeError:
        raise CliError(
            path,
            "the private key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CliError(path, "not a private key in PEM or DER form") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CliError(path, f"unsupported key type {type(key).__name__}; use an RSA or EC key")
    return key


def _same_public_key(one: PublicKeyTypes, other: PublicKeyTypes) -> bool:
    form = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return one.public_bytes(*form) == other.public_bytes(*form)


# --- passwords --------------------------------------------------------------------------------


def _password(password_stdin: bool, password: str | None, *, prompt: bool) -> str | None:
    """The password from --password-stdin or --password; else a prompt when `prompt` and on a
    terminal, else None."""
    if password_stdin and password is not None:
        raise CliError("--password", "give either --password or --password-stdin, not both")
    if password is not None:
        _warn(
            "--password exposes the password in the process list and shell history; "
            "prefer --password-stdin or the interactive prompt"
        )
        return password
    if password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError(STDIN_LABEL, "no password on standard input")
        return line.rstrip("\r\n")
    if prompt and _can_prompt(password_stdin):
        return _prompt_password(confirm=True)
    return None


def _can_prompt(password_stdin: bool) -> bool:
    return not password_stdin and sys.stdin.isatty()


def _prompt_password(*, confirm: bool) -> str:
    value: str = typer.prompt(
        "PFX password", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return value


def _pfx_password_for_export(password_stdin: bool, password: str | None) -> str:
    secret = _password(password_stdin, password, prompt=True)
    if secret is None:
        raise CliError(
            STDIN_LABEL,
            "no PFX password: standard input is not a terminal, so pass it with --password-stdin",
        )
    if not secret:
        raise CliError(STDIN_LABEL if password_stdin else "--password", "the password is empty")
    if not (secret.isascii() and secret.isalnum()):
        _warn("Azure accepts only letters and digits in a PFX password; this one has others")
    return secret


# --- writing ----------------------------------------------------------------------------------

_ENCRYPTION_DESCRIPTION = {
    PfxEncryption.triple_des: "3DES/SHA-1 PKCS#12",
    PfxEncryption.aes256: "AES-256/SHA-256 PKCS#12",
}


def _pfx_bytes(
    key: Key,
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    password: str,
    encryption: PfxEncryption,
    *,
    friendly_name: str,
) -> bytes:
    # 3DES with a SHA-1 MAC by default: the legacy PKCS#12 format every Windows version imports.
    # Azure loads listener PFX files with Windows' PFXImportCertStore, and a PFX exported with
    # AES-256 was rejected there as "password is incorrect" while the TripleDES export of the
    # same certificate worked (MicrosoftDocs/azure-docs#54393, spec §2.1). appgw's own load_pfx
    # reads both.
    mac: hashes.HashAlgorithm
    if encryption is PfxEncryption.triple_des:
        algorithm, mac = pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1()
    else:
        algorithm, mac = pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256()
    protection = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(PFX_KDF_ROUNDS)
        .key_cert_algorithm(algorithm)
        .hmac_hash(mac)
        .build(password.encode("utf-8"))
    )
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode("utf-8"), key, leaf, list(chain) or None, protection
    )


def _warn_about_listener(full_chain: Sequence[x509.Certificate], size: int) -> None:
    leaf, top = full_chain[0], full_chain[-1]
    now = dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        _warn(f"the certificate expired on {_iso(leaf.not_valid_after_utc)}; Azure refuses it")
    elif leaf.not_valid_before_utc > now:
        _warn(f"the certificate is not valid before {_iso(leaf.not_valid_before_utc)}")
    for problem in chain_order_problems(full_chain):
        _warn(_clause(problem.message))
    if not inspect_certificate(top).self_signed:
        _warn(
            f"the chain ends at {top.subject.rfc4514_string()}, issued by "
            f"{top.issuer.rfc4514_string()}, which is not included; Azure asks for the whole "
            "chain (leaf, intermediates, root) in a listener PFX: add it with --chain"
        )
    if size > PFX_LIMIT_V2:
        _warn(f"the PFX is {size} bytes: above Azure's limit of 16 KB (v2) and 10 KB (v1)")
    elif size > PFX_LIMIT_V1:
        _warn(f"the PFX is {size} bytes: above Azure's v1 limit of 10 KB (v2 allows 16 KB)")


def _check_outputs(paths: Sequence[Path], force: bool) -> None:
    """Fail before anything is generated or written, so no command leaves half its output."""
    seen: set[Path] = set()
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise CliError(path, "given as more than one output file")
        seen.add(resolved)
        if path.is_dir():
            raise CliError(path, "is a directory")
        if path.exists() and not force:
            raise CliError(path, "already exists; use --force to overwrite it")
        if not path.parent.resolve().is_dir():
            raise CliError(path, "its directory does not exist")


def _write(path: Path, data: bytes, *, private: bool = False, force: bool) -> None:
    mode = 0o600 if private else 0o644
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise CliError(path, "already exists; use --force to overwrite it") from None
    except OSError as error:
        raise CliError(path, _os_reason(error)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if private:
                os.fchmod(handle.fileno(), 0o600)  # an overwritten file keeps its old mode
            handle.write(data)
    except OSError as error:
        raise CliError(path, _os_reason(error)) from None


# --- names and display ------------------------------------------------------------------------


def _check_dns_names(names: Sequence[str]) -> list[str]:
    if not names:
        raise CliError("--dns-name", "give at least one name")
    checked: list[str] = []
    for name in names:
        value = name.strip()
        if not (is_ip_address(value) or (value.isascii() and _DNS_NAME.fullmatch(value))):
            raise CliError(
                "--dns-name",
                f"{name!r} is not a DNS name (letters, digits, hyphens; a wildcard only as the "
                "whole first label; internationalised names in their xn-- form) or IP address",
            )
        if value not in checked:
            checked.append(value)
    return checked


def _table_rows(info: CertificateInfo, now: dt.datetime) -> list[tuple[str, str]]:
    days = info.days_until_expiry(now)
    if days < 0:
        state = "EXPIRED"
    elif info.not_before > now:
        state = "not yet valid"
    else:
        state = f"{days} days left"
    return [
        ("Subject:", info.subject),
        ("SANs:", ", ".join(info.subject_alternative_names) or "(none)"),
        ("Issuer:", info.issuer + (" (self-signed)" if info.self_signed else "")),
        ("Valid:", f"{_iso(info.not_before)} to {_iso(info.not_after)} ({state})"),
        ("Serial:", info.serial_number),
        ("SHA-256:", info.sha256_fingerprint),
        ("SHA-1 thumbprint:", info.sha1_thumbprint),
        ("SPKI pin (SHA-256):", info.spki_sha256),
        ("CA:", "yes" if info.is_ca else "no"),
        ("Key:", info.key_description),
        ("Signature hash:", info.signature_hash or "(none)"),
    ]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
