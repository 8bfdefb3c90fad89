"""Certificate files a command uploads: read, checked here (a wrong PFX password is named before
anything is sent), and turned into the API's base64 `data`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from appgw.cli.client import fail, read_secret_stdin
from appgw.model.document import certificate_field


def read_file(path: Path, flag: str = "--cert-file") -> bytes:
    """A file named by a flag; an unreadable or empty one fails naming both."""
    try:
        data = path.read_bytes()
    except OSError as error:
        fail(f"{flag} {path}: {(error.strerror or str(error)).lower()}")
    if not data.strip():
        fail(f"{flag} {path}: the file is empty")
    return data


def read_pfx(
    path: Path, password: str | None, password_stdin: bool, flag: str = "--cert-file"
) -> tuple[str, str | None]:
    """The PFX as base64 and its password: from --cert-password, the first line of standard
    input (--cert-password-stdin), or a prompt on a terminal when the PFX needs one."""
    # Imported here: cryptography costs the commands that upload nothing their start-up time.
    from appgw.certificates import CODE_INVALID_PASSWORD, CertificateError, load_pfx

    if password_stdin:
        if password is not None:
            fail("give either --cert-password or --cert-password-stdin, not both", 2)
        password = read_secret_stdin()
    data = read_file(path, flag)
    while True:
        try:
            # Expiry is the API's to judge (it refuses with its own message).
            load_pfx(data, password, check_validity=False)
            break
        except CertificateError as error:
            if error.code == CODE_INVALID_PASSWORD and password is None and sys.stdin.isatty():
                password = typer.prompt("PFX password", hide_input=True, err=True)
                continue
            hint = ""
            if error.code == CODE_INVALID_PASSWORD and password is None:
                hint = " Give it with --cert-password or --cert-password-stdin."
            fail(f"{flag} {path}: {error.message}{hint}")
    return certificate_field(data), password or None
