"""PFX files that ask for chosen key-derivation iteration counts, made without running them.

`cryptography` derives with whatever count it writes, so a PFX asking for 20 million
iterations would take seconds to make. Instead a real PFX is rewritten here: its DER is decoded
(independently of appgw's reader), counts are replaced, and the MAC is computed again with the
PKCS#12 key derivation (cheaply, with the MAC's own small count) so that OpenSSL gets as far as
each count before it fails. Nothing here depends on appgw.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs12

OID_DATA = "1.2.840.113549.1.7.1"
OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
OID_SAFE_CONTENTS_BAG = "1.2.840.113549.1.12.10.1.6"
OID_X509_CERTIFICATE = "1.2.840.113549.1.9.22.1"
OID_PBES2 = "1.2.840.113549.1.5.13"
OID_PBKDF2 = "1.2.840.113549.1.5.12"
OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
OID_HMAC_SHA256 = "1.2.840.113549.2.9"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
_MAC_HASHES = {"1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.1": "sha256"}
# Counts above this are written, never run: the content they protect will not decrypt.
REAL_ENCRYPTION_LIMIT = 200_000

Count = int | bytes  # an INTEGER's value, or its raw content octets (for malformed ones)


# --- DER ----------------------------------------------------------------------------------------


@dataclass
class Tlv:
    tag: int
    value: bytes = b""
    children: list[Tlv] = field(default_factory=list)  # of a constructed element

    def oid(self) -> str:
        assert self.tag == 0x06
        arcs, value = [], 0
        for octet in self.value:
            value = value << 7 | octet & 0x7F
            if not octet & 0x80:
                arcs.append(value)
                value = 0
        return ".".join(map(str, [arcs[0] // 40, arcs[0] % 40, *arcs[1:]]))


def decode(data: bytes) -> Tlv:
    node, end = _decode(data, 0)
    assert end == len(data)
    return node


def _decode(data: bytes, offset: int) -> tuple[Tlv, int]:
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        octets = length & 0x7F
        length = int.from_bytes(data[start : start + octets], "big")
        start += octets
    end = start + length
    if not tag & 0x20:
        return Tlv(tag, data[start:end]), end
    children, position = [], start
    while position < end:
        child, position = _decode(data, position)
        children.append(child)
    return Tlv(tag, children=children), end


def encode(node: Tlv, *, ber: bool = False) -> bytes:
    """DER, or with `ber` the forms BER exporters (Java) write: indefinite lengths, and long
    strings in 100-byte segments."""
    if not node.tag & 0x20:
        if ber and node.tag in (0x04, 0x80) and len(node.value) > 100:
            segments = [Tlv(0x04, node.value[i : i + 100]) for i in range(0, len(node.value), 100)]
            return encode(Tlv(node.tag | 0x20, children=segments), ber=True)
        return bytes([node.tag]) + _length(len(node.value)) + node.value
    content = b"".join(encode(child, ber=ber) for child in node.children)
    if ber:
        return bytes([node.tag, 0x80]) + content + b"\0\0"
    return bytes([node.tag]) + _length(len(content)) + content


def _length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def integer(count: Count) -> Tlv:
    if isinstance(count, bytes):
        return Tlv(0x02, count)
    return Tlv(0x02, count.to_bytes(count.bit_length() // 8 + 1, "big"))


def oid(dotted: str) -> Tlv:
    """An OBJECT IDENTIFIER as cryptography encodes it (in a Name: its only public way to)."""
    name = x509.Name([x509.NameAttribute(x509.ObjectIdentifier(dotted), "x")])
    return decode(name.public_bytes()).children[0].children[0].children[0]


def seq(*children: Tlv) -> Tlv:
    return Tlv(0x30, children=list(children))


def octets(value: bytes) -> Tlv:
    return Tlv(0x04, value)


def explicit(child: Tlv) -> Tlv:
    return Tlv(0xA0, children=[child])


NULL = Tlv(0x05)


# --- PKCS#12 ----------------------------------------------------------------------------------


def pkcs12_kdf(
    secret: bytes, salt: bytes, purpose: int, iterations: int, size: int, name: str
) -> bytes:
    """RFC 7292 appendix B.2."""
    u, v = hashlib.new(name).digest_size, hashlib.new(name).block_size

    def stretched(value: bytes) -> bytes:
        length = -(-len(value) // v) * v
        return (value * (length // max(len(value), 1) + 1))[:length]

    inputs = bytearray(stretched(salt) + stretched(secret))
    output = b""
    while len(output) < size:
        block = hashlib.new(name, bytes([purpose]) * v + inputs).digest()
        for _ in range(iterations - 1):
            block = hashlib.new(name, block).digest()
        output += block
        addend = int.from_bytes((block * (v // u + 1))[:v], "big") + 1
        for start in range(0, len(inputs), v):
            total = int.from_bytes(inputs[start : start + v], "big") + addend
            inputs[start : start + v] = (total % (1 << 8 * v)).to_bytes(v, "big")
    return output[:size]


@dataclass
class Forged:
    """A decoded PFX: rewrite its parts, then `der()` it with a recomputed MAC."""

    password: str
    root: Tlv
    contents: list[Tlv] = field(default_factory=list)  # AuthenticatedSafe's ContentInfos
    plain_bags: dict[int, list[Tlv]] = field(default_factory=dict)  # by content index
    mac_iterations: Count | None = None

    @classmethod
    def of(cls, pfx: bytes, password: str) -> Forged:
        root = decode(pfx)
        authenticated_safe = decode(root.children[1].children[1].children[0].value)
        forged = cls(password, root, authenticated_safe.children)
        for index, info in enumerate(forged.contents):
            if info.children[0].oid() == OID_DATA:
                safe = decode(info.children[1].children[0].value)
                forged.plain_bags[index] = safe.children
        return forged

    def encrypted_contents(self) -> list[Tlv]:
        return [c for c in self.contents if c.children[0].oid() == OID_ENCRYPTED_DATA]

    def shrouded_keys(self) -> list[Tlv]:
        return [
            bag
            for bags in self.plain_bags.values()
            for bag in bags
            if bag.children[0].oid() == OID_SHROUDED_KEY_BAG
        ]

    def set_certificate_iterations(self, count: Count) -> Forged:
        for info in self.encrypted_contents():
            # ContentInfo [0] -> EncryptedData -> EncryptedContentInfo -> algorithm
            _set_count(info.children[1].children[0].children[1].children[1], count)
        return self

    def set_key_iterations(self, count: Count) -> Forged:
        for bag in self.shrouded_keys():
            _set_count(bag.children[1].children[0].children[0], count)
        return self

    def set_mac_iterations(self, count: Count) -> Forged:
        self.mac_iterations = count
        return self

    def der(self, *, ber: bool = False) -> bytes:
        for index, bags in self.plain_bags.items():
            info = self.contents[index]
            info.children[1].children[0] = octets(encode(seq(*bags), ber=ber))
        safe = encode(seq(*self.contents), ber=ber)
        self.root.children[1].children[1].children[0] = octets(safe)
        mac = self.root.children[2]
        if self.mac_iterations is not None:
            # Not recomputed: the count is the point, and the reader must refuse before the MAC.
            mac.children[2] = integer(self.mac_iterations)
        else:
            digest_info, salt, iterations = mac.children
            name = _MAC_HASHES[digest_info.children[0].children[0].oid()]
            count = int.from_bytes(iterations.value, "big")
            key = pkcs12_kdf(
                _bmp(self.password), salt.value, 3, count, hashlib.new(name).digest_size, name
            )
            digest_info.children[1] = octets(hmac.new(key, safe, name).digest())
        return encode(self.root, ber=ber)


def _bmp(password: str) -> bytes:
    return password.encode("utf-16-be") + b"\0\0" if password else b""


def _set_count(algorithm: Tlv, count: Count) -> None:
    parameters = algorithm.children[1]
    if algorithm.children[0].oid() == OID_PBES2:
        parameters.children[0].children[1].children[1] = integer(count)
    else:  # a PKCS#12 PBE scheme: salt, iterations
        parameters.children[1] = integer(count)


def pbes2(
    password: str, iterations: int, plaintext: bytes, *, kdf: str = OID_PBKDF2
) -> tuple[Tlv, bytes]:
    """An AES-256-CBC PBES2 AlgorithmIdentifier and the ciphertext. Above
    REAL_ENCRYPTION_LIMIT the count is only written: the ciphertext is random."""
    salt, iv = os.urandom(16), os.urandom(16)
    kdf_parameters = seq(octets(salt), integer(iterations), seq(oid(OID_HMAC_SHA256), NULL))
    algorithm = seq(
        oid(OID_PBES2),
        seq(seq(oid(kdf), kdf_parameters), seq(oid(OID_AES256_CBC), octets(iv))),
    )
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    if iterations > REAL_ENCRYPTION_LIMIT or kdf != OID_PBKDF2:
        return algorithm, os.urandom(len(padded))
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return algorithm, encryptor.update(padded) + encryptor.finalize()


def shrouded_key_bag(
    key: pkcs12.PKCS12PrivateKeyTypes, password: str, iterations: int, **kw: str
) -> Tlv:
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    algorithm, ciphertext = pbes2(password, iterations, pkcs8, **kw)
    return seq(oid(OID_SHROUDED_KEY_BAG), explicit(seq(algorithm, octets(ciphertext))))


def cert_bag(cert: x509.Certificate) -> Tlv:
    der = cert.public_bytes(serialization.Encoding.DER)
    return seq(oid(OID_CERT_BAG), explicit(seq(oid(OID_X509_CERTIFICATE), explicit(octets(der)))))


def encrypted_content(password: str, iterations: int, *bags: Tlv) -> Tlv:
    """A ContentInfo of type encryptedData holding these bags (PBES2, AES-256)."""
    algorithm, ciphertext = pbes2(password, iterations, encode(seq(*bags)))
    encrypted_data = seq(integer(0), seq(oid(OID_DATA), algorithm, Tlv(0x80, ciphertext)))
    return seq(oid(OID_ENCRYPTED_DATA), explicit(encrypted_data))


def hidden_key_pfx(
    key: pkcs12.PKCS12PrivateKeyTypes, cert: x509.Certificate, password: str, key_iterations: int
) -> bytes:
    """The key's shrouded bag inside the encrypted contents (2,048 iterations), where its count
    cannot be read without decrypting them; OpenSSL decrypts both."""
    content = encrypted_content(
        password, 2048, shrouded_key_bag(key, password, key_iterations), cert_bag(cert)
    )
    mac = seq(
        seq(seq(oid("2.16.840.1.101.3.4.2.1"), NULL), octets(b"")),
        octets(os.urandom(8)),
        integer(2048),
    )
    root = seq(integer(3), seq(oid(OID_DATA), explicit(octets(b""))), mac)
    return Forged(password, root, [content]).der()


# --- made with cryptography or OpenSSL ------------------------------------------------------


def made_pfx(
    key: pkcs12.PKCS12PrivateKeyTypes,
    cert: x509.Certificate,
    password: str,
    *,
    rounds: int = 2048,
    legacy: bool = False,
) -> bytes:
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(rounds)
    if legacy:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(
            hashes.SHA1()
        )
    return pkcs12.serialize_key_and_certificates(
        b"listener", key, cert, None, builder.build(password.encode())
    )


def openssl_pfx(
    directory: Path, key_pem: bytes, cert_pem: bytes, password: str, *options: str
) -> bytes:
    """`openssl pkcs12 -export` with these options (the test is skipped without openssl)."""
    binary = shutil.which("openssl")
    if binary is None:
        pytest.skip("needs the openssl command")
    (directory / "key.pem").write_bytes(key_pem)
    (directory / "cert.pem").write_bytes(cert_pem)
    out = directory / "out.pfx"
    subprocess.run(
        [
            binary,
            "pkcs12",
            "-export",
            "-in",
            "cert.pem",
            "-inkey",
            "key.pem",
            "-out",
            "out.pfx",
            "-passout",
            f"pass:{password}",
            *options,
        ],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out.read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
