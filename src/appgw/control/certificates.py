"""Certificate uploads in a gateway PUT: check them, keep their secrets, compute public data.

An uploaded PFX is decrypted here, once (the API runs the PUT in a worker thread), and the
version keeps its key and chain (appgw.compile.stored_certificates), not the PFX.
Azure's tools change a gateway by GET -> modify -> PUT and send write-only fields back empty:
an `sslCertificates` entry without `data` keeps the certificate stored under its name; one
stored by an older appgw as PFX and password is rewritten in the current form.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from cryptography.hazmat.primitives import serialization

from appgw import certificates
from appgw.compile import stored_certificates
from appgw.model.diagnostics import Diagnostic
from appgw.model.ids import GatewayId
from appgw.model.resource import ApplicationGateway
from appgw.tls.client_auth import issuer_dn_of_upload

# Azure's maximum listener certificate (PFX) size: 10 KB on v1, 16 KB on v2.
MAX_PFX_BYTES_V1 = 10 * 1024
MAX_PFX_BYTES_V2 = 16 * 1024
_CLIENT_CA_CODE = "ApplicationGatewayTrustedClientCertificateInvalidData"

_PFX_CODES = {
    certificates.CODE_INVALID_DATA: "ApplicationGatewaySslCertificateInvalidData",
    certificates.CODE_INVALID_PASSWORD: "ApplicationGatewaySslCertificateInvalidPassword",
    certificates.CODE_MISSING_PRIVATE_KEY: "ApplicationGatewaySslCertificateMissingPrivateKey",
    certificates.CODE_MISSING_CERTIFICATE: "ApplicationGatewaySslCertificateInvalidData",
    certificates.CODE_KEY_MISMATCH: "ApplicationGatewaySslCertificateKeyMismatch",
    certificates.CODE_EXPIRED: "ApplicationGatewaySslCertificateExpired",
    certificates.CODE_NOT_YET_VALID: "ApplicationGatewaySslCertificateNotYetValid",
    certificates.CODE_UNSUPPORTED_KEY: "ApplicationGatewaySslCertificateUnsupportedKey",
    certificates.CODE_ITERATION_COUNT_TOO_HIGH: (
        "ApplicationGatewaySslCertificateIterationCountTooHigh"
    ),
    certificates.CODE_UNSUPPORTED_PROTECTION: "ApplicationGatewaySslCertificateInvalidData",
}
_PUBLIC_CODES = {
    "authenticationCertificates": "ApplicationGatewayAuthenticationCertificateInvalidData",
    "trustedRootCertificates": "ApplicationGatewayTrustedRootCertificateInvalidData",
}


@dataclass
class CertificateOutcome:
    """What the certificate pass found: problems, secrets to store, public fields to show."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    # {"sslCertificates": {folded name: stored_certificates.entry(...)}}
    secrets: dict[str, Any] = field(default_factory=lambda: {"sslCertificates": {}})
    public_cert_data: dict[str, str] = field(default_factory=dict)  # folded ssl cert name -> data
    normalized_data: dict[tuple[str, str], str] = field(default_factory=dict)  # .cer -> base64 DER
    # folded trusted client certificate name -> (data as stored, clientCertIssuerDN)
    client_chains: dict[str, tuple[str, str]] = field(default_factory=dict)


def check_certificates(
    gateway: ApplicationGateway,
    gateway_id: GatewayId,
    previous_secrets: dict[str, Any],
    *,
    v1: bool,
    now: datetime | None = None,
) -> CertificateOutcome:
    outcome = CertificateOutcome()
    stored: dict[str, Any] = previous_secrets.get("sslCertificates", {})
    limit = MAX_PFX_BYTES_V1 if v1 else MAX_PFX_BYTES_V2
    for cert in gateway.properties.ssl_certificates:
        owner = gateway_id.child("sslCertificates", cert.name)
        folded = cert.name.casefold()
        data, password = cert.properties.data, cert.properties.password
        load: Callable[[], certificates.ListenerCertificate]
        if data:
            try:
                raw = base64.b64decode("".join(data.split()), validate=True)
            except (binascii.Error, ValueError):
                outcome.diagnostics.append(
                    Diagnostic(
                        "ApplicationGatewaySslCertificateInvalidData",
                        owner,
                        "properties.data",
                        "'data' is not base64; send the PFX file's bytes base64-encoded",
                    )
                )
                continue
            size = len(raw)
            load = partial(certificates.load_pfx, raw, password, now=now)
        elif cert.properties.key_vault_secret_id:
            continue  # refused by validation with its own message
        elif folded in stored:
            size = stored_certificates.pfx_size(stored[folded])
            load = partial(stored_certificates.load, stored[folded], now=now, check_validity=True)
        else:
            outcome.diagnostics.append(
                Diagnostic(
                    "ApplicationGatewaySslCertificateDataMissing",
                    owner,
                    "properties.data",
                    "a new SSL certificate needs 'data' (the base64 PFX) and 'password'",
                )
            )
            continue
        if size > limit:
            outcome.diagnostics.append(
                Diagnostic(
                    "ApplicationGatewaySslCertificateTooLarge",
                    owner,
                    "properties.data",
                    f"the PFX is {size} bytes; this SKU accepts at most {limit} bytes",
                )
            )
            continue
        try:
            loaded = load()
        except certificates.CertificateError as error:
            outcome.diagnostics.append(
                Diagnostic(
                    _PFX_CODES.get(error.code, "ApplicationGatewaySslCertificateInvalidData"),
                    owner,
                    "properties.password"
                    if error.code == certificates.CODE_INVALID_PASSWORD
                    else "properties.data",
                    error.message,
                )
            )
            continue
        outcome.secrets["sslCertificates"][folded] = stored_certificates.entry(
            cert.name, loaded, size
        )
        outcome.public_cert_data[folded] = certificates.public_cert_data_for_pfx(loaded)
    for collection, children in (
        ("authenticationCertificates", gateway.properties.authentication_certificates),
        ("trustedRootCertificates", gateway.properties.trusted_root_certificates),
    ):
        for child in children:
            if not child.properties.data:
                continue  # validation reports the missing field
            try:
                parsed = certificates.load_public_certificate(child.properties.data)
            except certificates.CertificateError as error:
                outcome.diagnostics.append(
                    Diagnostic(
                        _PUBLIC_CODES[collection],
                        gateway_id.child(collection, child.name),
                        "properties.data",
                        error.message,
                    )
                )
                continue
            outcome.normalized_data[(collection, child.name.casefold())] = (
                certificates.public_certificate_data(parsed)
            )
    for entry in gateway.properties.trusted_client_certificates:
        if entry.properties.data:
            _check_client_chain(
                outcome,
                gateway_id.child("trustedClientCertificates", entry.name),
                entry.name,
                entry.properties.data,
                now or datetime.now(UTC),
            )
    return outcome


def _check_client_chain(
    outcome: CertificateOutcome, owner: str, name: str, data: str, now: datetime
) -> None:
    """A trusted client CA upload (Azure: the root, and optionally intermediates, in one
    file): CA certificates only, a root among them, within 25 KB; stored as a PEM bundle."""

    def refuse(message: str) -> None:
        outcome.diagnostics.append(Diagnostic(_CLIENT_CA_CODE, owner, "properties.data", message))

    try:
        chain = certificates.load_certificate_chain(data)
    except certificates.CertificateError as error:
        refuse(error.message)
        return
    pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    if len(pem) > certificates.MAX_TRUSTED_CLIENT_CHAIN_BYTES:
        refuse(
            f"the chain is {len(pem)} bytes; a trusted client certificate file holds at most "
            f"{certificates.MAX_TRUSTED_CLIENT_CHAIN_BYTES} bytes"
        )
        return
    for cert in chain:
        info = certificates.inspect_certificate(cert)
        if not info.is_ca:
            refuse(
                f"'{info.subject}' is not a CA certificate: upload the CA that issues the "
                "clients' certificates (its root, and intermediates if any), not a client's own"
            )
            return
        if info.not_after < now:
            refuse(f"the CA certificate '{info.subject}' expired on {info.not_after:%Y-%m-%d}")
            return
    if not any(cert.issuer == cert.subject for cert in chain):
        refuse(
            "the chain has no root certificate (self-signed CA); Azure needs the root, with "
            "the intermediates optional"
        )
        return
    outcome.client_chains[name.casefold()] = (
        base64.b64encode(pem).decode("ascii"),
        issuer_dn_of_upload(chain),
    )
