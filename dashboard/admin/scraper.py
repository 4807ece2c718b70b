"""The scraper token of /metrics and /healthz: made here, kept only as its SHA-256 in the settings."""
from __future__ import annotations

import hashlib
import secrets
from hmac import compare_digest

PREFIX = "pms_"  # "provisioning monitor scraper": recognisable in a secrets scanner, like pmi_/pma_


def make_token() -> tuple[str, str]:
    """A new token and its hash (the hash goes into [ops] scraper_token_hash, the token to the scraper)."""
    token = PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_scraper_token(token: str, configured_hash: str) -> bool:
    """True when `token` is the configured scraper token (never when none is configured)."""
    return bool(configured_hash) and bool(token) and compare_digest(token_hash(token), configured_hash)
