"""Pack an exchange's bodies and headers into one small blob, and unpack it.

Format: one version byte, then zlib-deflated orjson. Version 1 primes zlib with a preset
dictionary of the strings SCIM traffic repeats (schema URNs, attribute names, Entra's headers),
which is what makes a 600-byte exchange shrink to a fraction of its size: plain zlib cannot
compress a short message well because it has not seen any of it before. Version 2 (an Entra
provisioning event's details, ingest/entra_prepare.py) adds to it the layout of those details,
Entra's documented step names, types and some descriptions, and a few phrasings of the demo
simulator's steps (EntryImportObject, "Retrieved User ... from", "is in scope", "was processed
in"), which real logs may not use: a Graph sample's details (1.8 KB of JSON) pack to 500 bytes
instead of 700, a simulated one's (2 KB) to 330 instead of 660 (that figure flatters the
simulator's own text). Both versions are read; a blob keeps the version it was written with.
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
_DICT_V2 = _DICT_V1 + b"".join(
    s.encode()
    for s in (
        # the layout of an Entra event's details (ingest/entra_prepare.py `_details`), keys in order
        '{"source":{"id":"","display_name":"","type":"User","details":{"UserPrincipalName":"@contoso.com"}},',
        '"target":{"id":"","display_name":null,"type":"User","details":{}},"error_category":null,',
        # Entra's provisioning steps (the shared reference/entra-provisioning.md, provisioningSteps),
        # with some of the demo simulator's descriptions (dashboard/demo/entra_pages.py)
        '"steps":[{"name":"EntryImport","type":"import","status":"success","description":"","details":{}},',
        '{"name":"EntryImportAdd","type":"import","status":"success","description":"Received User \'',
        '\' change of type (Add) from Azure Active Directory","details":{}},',
        '{"name":"EntryEscrowRetry","type":"import","status":"success",',
        '"description":"We are retrying an operation that previously failed.","details":{}},',
        '{"name":"EntrySynchronizationScoping","type":"scoping","status":"success","description":"User \'',
        '\' is in scope","details":{"Active in the source system":"True"}},',
        '{"name":"EntrySynchronizationAdd","type":"matching","status":"success","description":"',
        '\' will be created in uniFLOW Online","details":{}},{"name":"EntrySynchronizationSkip","type":"processing",',
        '"status":"skipped","description":"","details":{"SkipReason":"RedundantExport"}},',
        '{"name":"EntryImportObject","type":"matching","status":"success","description":"Retrieved User \'',
        '\' from Microsoft Entra ID","details":{}},',
        '{"name":"EntryExportAdd","type":"export","status":"failure","description":"Failed to create User \'',
        '{"name":"EntryExportUpdateSoftDelete","type":"export","status":"warning",',
        '{"name":"EntryExportDelete","type":"referenceResolution","status":"success",',
        '{"name":"EntryExportUpdate","type":"export","status":"success","description":"User \'',
        '\' was processed in uniFLOW Online","details":{"ReportableIdentifier":"@contoso.com",',
        '"userName":"@contoso.com","externalId":"","active":"True","displayName":"",',
        '"urnietfparamsscimschemasextensionuniFLOWOnline20Userpin":"[REDACTED]"}}],',
        # modified properties: the SCIM attributes Entra sends uniFLOW Online (redacted, masked)
        '"modified_properties":[{"name":"userName","old":null,"new":"@contoso.com"},',
        '{"name":"displayName","old":null,"new":""},{"name":"active","old":null,"new":"True"},',
        '{"name":"externalId","old":null,"new":""},{"name":"mail","old":null,"new":"@contoso.com"},',
        '{"name":"urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:pin","old":null,"new":"[REDACTED]"},',
        '{"name":"urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:cardNumber","old":null,',
        '"new":"********"}],"service_principal":{"id":"","display_name":"uniFLOW Online"},"format":"entra-graph",',
        '"record_no":,"extra":{}}',
    )
)
VERSION = 1  # what `pack` writes unless told
ENTRA_VERSION = 2  # an Entra event's details
_DICTS = {1: _DICT_V1, 2: _DICT_V2}


# One compressor per version, primed with its dictionary once and copied for each blob: priming
# a new one per blob cost more than compressing the blob. Memory level 8 (zlib's default, 9 was
# used until December 2026) keeps each of the copy's buffers under glibc's 128 KiB mmap threshold:
# at level 9 every blob mapped, zeroed and unmapped about 400 KiB (89 -> 75 us per line for the
# whole of a worker's preparation; docs/ingest.md "Speed"). Blobs written either way read the same.
_PRIMED = {v: zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, d) for v, d in _DICTS.items()}


def pack(record: dict[str, Any], version: int = VERSION) -> bytes:
    compressor = _PRIMED[version].copy()
    return bytes((version,)) + compressor.compress(orjson.dumps(record)) + compressor.flush()


def unpack(blob: bytes) -> dict[str, Any]:
    if not blob:
        return {}
    dictionary = _DICTS.get(blob[0])
    if dictionary is None:
        raise ValueError(f"unknown blob version {blob[0]}")
    decompressor = zlib.decompressobj(-15, dictionary)
    return orjson.loads(decompressor.decompress(blob[1:]) + decompressor.flush())
