"""Pack an exchange's bodies and headers into one small blob, and unpack it.

Format: one version byte, then zlib-deflated orjson. Version 1 primes zlib with a preset
dictionary of the strings SCIM traffic repeats (schema URNs, attribute names, Entra's headers),
which is what makes a 600-byte exchange shrink to a fraction of its size: plain zlib cannot
compress a short message well because it has not seen any of it before.
"""
from __future__ import annotations

import zlib
from typing import Any

import orjson

_DICT_V1 = b"".join(
    s.encode()
    for s in (
        '{"path":"/scim/v2/Users","query":"filter=userName eq \\"","client":"Microsoft Entra SCIM Client",',
        '"request_headers":{"authorization":"[REDACTED]","content-type":"application/scim+json",',
        '"accept":"application/scim+json","user-agent":"Microsoft Entra SCIM Client"},',
        '"response_body":{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],',
        '"totalResults":0,"Resources":[],"startIndex":1,"itemsPerPage":0},',
        '{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409",',
        '"scimType":"uniqueness","detail":"User already exists","invalidValue","mutability",',
        '"request_body":{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],',
        '"Operations":[{"op":"Replace","path":"active","value":"False"},{"op":"Add","path":"',
        'emails[type eq \\"work\\"].value","name.givenName","name.familyName","displayName","title"',
        '"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",',
        '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",',
        '"urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"],',
        '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"',
        '"urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User":{"cardNumber":"',
        '"cardRegistrationCode":"[REDACTED]","localUsername":"","pin":"[REDACTED]"},',
        '"id":"","externalId":"","userName":"","active":true,"active":false,',
        '"emails":[{"primary":true,"type":"work","value":"@contoso.com"}],',
        '"name":{"formatted":"","familyName":"","givenName":""},',
        '"addresses":[{"type":"work","streetAddress":""}],"phoneNumbers":[{"type":"work","value":"+',
        '"meta":{"resourceType":"User","created":"2026-11-28T","lastModified":"","location":"https://',
        '/scim/v2/Users/","version":"W/\\""}',
    )
)
VERSION = 1


def pack(record: dict[str, Any]) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICT_V1)
    return bytes((VERSION,)) + compressor.compress(orjson.dumps(record)) + compressor.flush()


def unpack(blob: bytes) -> dict[str, Any]:
    if not blob:
        return {}
    if blob[0] != VERSION:
        raise ValueError(f"unknown blob version {blob[0]}")
    decompressor = zlib.decompressobj(-15, _DICT_V1)
    return orjson.loads(decompressor.decompress(blob[1:]) + decompressor.flush())
