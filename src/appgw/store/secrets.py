"""Encryption at rest for private keys, PFX data and passwords (AES-256-GCM).

The master key lives outside the database: in a 0600 file created on first start, or in
`APPGW_MASTER_KEY` (base64 of 32 bytes). Every blob is bound to its row by the associated data,
so a ciphertext copied to another gateway or version does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_ENV = "APPGW_MASTER_KEY"
MASTER_KEY_FILE = "master.key"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce size; random nonces are safe far beyond our write rate
_FORMAT = b"\x01"  # blob format version, so the scheme can change without guessing


class SecretsError(Exception):
    """The master key is missing, malformed, or not the one the data was written with."""


class MasterKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretsError(f"the master key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"

    @classmethod
    def load_or_create(cls, data_dir: Path, environ: dict[str, str] | None = None) -> MasterKey:
        env = os.environ if environ is None else environ
        if env.get(MASTER_KEY_ENV):
            return cls(_decode_key(env[MASTER_KEY_ENV], MASTER_KEY_ENV))
        path = data_dir / MASTER_KEY_FILE
        if path.exists():
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise SecretsError(
                    f"{path} is readable by others (mode {mode:o}); run 'chmod 600 {path}'"
                )
            return cls(_decode_key(path.read_text().strip(), str(path)))
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        # O_EXCL: two processes starting at once must not each create a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(key).decode() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return cls(key)

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return _FORMAT + nonce + self._aead.encrypt(nonce, plaintext, _FORMAT + associated_data)

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes:
        if blob[:1] != _FORMAT or len(blob) < 1 + NONCE_BYTES:
            raise SecretsError("stored secret has an unknown format")
        nonce = blob[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[1 + NONCE_BYTES :], _FORMAT + associated_data)
        except InvalidTag:
            raise SecretsError(
                "stored secrets do not decrypt with this master key; start with the key the "
                f"data was written with (file {MASTER_KEY_FILE} in the data directory or "
                f"{MASTER_KEY_ENV})"
            ) from None


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretsError(f"{source} is not base64") from None
    if len(key) != KEY_BYTES:
        raise SecretsError(f"{source} must hold {KEY_BYTES} bytes of key, base64-encoded")
    return key
