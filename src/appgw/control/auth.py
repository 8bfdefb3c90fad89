"""API tokens: only their SHA-256 is stored; the admin token is shown once, on first start."""

from __future__ import annotations

import hashlib
import secrets

from appgw.store.sql import SqlStore

ADMIN_TOKEN_ENV = "APPGW_ADMIN_TOKEN"
TOKEN_PREFIX = "appgw_"
MIN_TOKEN_LENGTH = 24  # below this a token set by hand is guessable; refuse it
ADMIN = "admin"


class TokenError(Exception):
    pass


def hash_token(token: str) -> str:
    # Tokens are 256-bit random values, so a plain hash (no salt, no stretching) is enough.
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_admin_token(store: SqlStore, environ: dict[str, str]) -> str | None:
    """Create the admin token on first start; returns it then (to print once), else None."""
    if store.has_tokens():
        return None
    token = environ.get(ADMIN_TOKEN_ENV) or TOKEN_PREFIX + secrets.token_urlsafe(32)
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"{ADMIN_TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters long")
    store.add_token(hash_token(token), ADMIN)
    return token


def caller_for_token(store: SqlStore, token: str) -> str | None:
    return store.token_name(hash_token(token))
