"""Certificates appgw makes itself: the admin listener's, the demo's and `appgw cert`'s.

EC P-256 keys by default: fast to generate and accepted everywhere appgw serves them. RSA 2048
on request: the key Azure's documentation uses as its reference for listener certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appgw.hostnames import is_ip_address

# Backdating covers clocks a few minutes apart between the machine that issues and the peer.
BACKDATE = dt.timedelta(minutes=5)

Key: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KeyType = Literal["ec", "rsa"]

RSA_KEY_BITS = 2048


def new_key(key_type: KeyType = "ec") -> Key:
    """An EC P-256 key, or an RSA 2048 key (public exponent 65537)."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return ec.generate_private_key(ec.SECP256R1())


def create_root(
    common_name: str, days: int, key: Key | None = None
) -> tuple[x509.Certificate, Key]:
    """A self-signed CA certificate (CA:TRUE, keyCertSign, cRLSign)."""
    key = key or new_key()
    subject = _name(common_name)
    builder = (
        _builder(subject, subject, key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


def create_server_certificate(
    names: Sequence[str],
    days: int,
    *,
    issuer: x509.Certificate | None = None,
    issuer_key: Key | None = None,
    common_name: str | None = None,
    key: Key | None = None,
) -> tuple[x509.Certificate, Key]:
    """A TLS server certificate for `names` (DNS names or IP literals), issued by `issuer`,
    or self-signed (and then not a CA: Azure v2 treats such a certificate as a leaf).
    `key` defaults to a new EC P-256 key."""
    key = key or new_key()
    subject = _name(common_name or names[0])
    alternative: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if is_ip_address(n) else x509.DNSName(n)
        for n in names
    ]
    builder = (
        _builder(subject, issuer.subject if issuer else subject, key, days)
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return builder.sign(issuer_key or key, hashes.SHA256()), key


def private_key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, key: Key, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
    )
