"""PURE: the 64-bit content hash that dedupes lines and events (signed, so it fits a BIGINT)."""
from __future__ import annotations

import hashlib


def stable_hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)
