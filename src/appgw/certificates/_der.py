"""Just enough of an ASN.1 DER/BER reader to recognise a PKCS#12 PFX and to cut the raw
SubjectPublicKeyInfo out of a certificate; `cryptography` exposes neither."""

from __future__ import annotations

from typing import NamedTuple

SEQUENCE = 0x30
INTEGER = 0x02
OBJECT_IDENTIFIER = 0x06
EXPLICIT_TAG_0 = 0xA0  # [0] EXPLICIT, as TBSCertificate's version field is tagged

# Four length octets address 4 GiB; anything longer is not a certificate upload.
_MAX_LENGTH_OCTETS = 4
# BER end-of-contents octets that close an indefinite-length element.
_END_OF_CONTENTS = b"\x00\x00"
# A PFX authSafe is pkcs7-data (password integrity) or pkcs7-signedData (public-key integrity).
_PKCS7_DATA = bytes.fromhex("2a864886f70d010701")  # 1.2.840.113549.1.7.1
_PKCS7_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
_PFX_VERSION = b"\x03"
# TBSCertificate fields between the optional version and subjectPublicKeyInfo: serialNumber,
# signature, issuer, validity, subject.
_FIELDS_BEFORE_SPKI = 5


class DerError(ValueError):
    """The bytes are not the ASN.1 structure being looked for."""


class Element(NamedTuple):
    tag: int
    start: int  # offset of the identifier octet
    content_start: int
    end: int | None  # offset just past the contents; None for BER indefinite length


def read_element(data: bytes, offset: int) -> Element:
    """Read the identifier and length octets of the element at `offset`."""
    if offset + 2 > len(data):
        raise DerError("truncated element header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers do not occur in the structures read here")
    first_length_octet = data[offset + 1]
    content_start = offset + 2
    if first_length_octet == 0x80:
        if not tag & 0x20:
            raise DerError("indefinite length on a primitive element")
        return Element(tag, offset, content_start, None)
    if first_length_octet < 0x80:
        length = first_length_octet
    else:
        length_octets = first_length_octet & 0x7F
        if length_octets > _MAX_LENGTH_OCTETS or content_start + length_octets > len(data):
            raise DerError("bad length")
        length = int.from_bytes(data[content_start : content_start + length_octets], "big")
        content_start += length_octets
    end = content_start + length
    if end > len(data):
        raise DerError("element runs past the end of the data")
    return Element(tag, offset, content_start, end)


def read_definite_element(data: bytes, offset: int) -> tuple[Element, int]:
    """Like read_element, but the length must be known; also returns the end offset."""
    element = read_element(data, offset)
    if element.end is None:
        raise DerError("indefinite length where a definite one is needed")
    return element, element.end


def is_pkcs12_pfx(data: bytes) -> bool:
    """Whether `data` is shaped like PFX ::= SEQUENCE { version (3), authSafe ContentInfo, ... }.

    Reads only the outer layers, which are never encrypted, so a wrong password cannot affect
    the answer. BER indefinite lengths are accepted because some exporters (Java) write them.
    """
    try:
        pfx = read_element(data, 0)
        if pfx.tag != SEQUENCE:
            return False
        if pfx.end is None:
            if not data.endswith(_END_OF_CONTENTS):
                return False
        elif pfx.end != len(data):
            return False  # truncated, or trailing bytes
        version, version_end = read_definite_element(data, pfx.content_start)
        if version.tag != INTEGER or data[version.content_start : version_end] != _PFX_VERSION:
            return False
        auth_safe = read_element(data, version_end)
        if auth_safe.tag != SEQUENCE:
            return False
        content_type, content_type_end = read_definite_element(data, auth_safe.content_start)
        return content_type.tag == OBJECT_IDENTIFIER and data[
            content_type.content_start : content_type_end
        ] in (_PKCS7_DATA, _PKCS7_SIGNED_DATA)
    except DerError:
        return False


def subject_public_key_info(tbs_certificate: bytes) -> bytes:
    """The SubjectPublicKeyInfo exactly as encoded in a DER TBSCertificate."""
    tbs, _ = read_definite_element(tbs_certificate, 0)
    offset = tbs.content_start
    first, first_end = read_definite_element(tbs_certificate, offset)
    if first.tag == EXPLICIT_TAG_0:
        offset = first_end
    for _ in range(_FIELDS_BEFORE_SPKI):
        _, offset = read_definite_element(tbs_certificate, offset)
    spki, spki_end = read_definite_element(tbs_certificate, offset)
    if spki.tag != SEQUENCE:
        raise DerError("subjectPublicKeyInfo is not a SEQUENCE")
    return tbs_certificate[spki.start : spki_end]
