"""Telling the CLI's input formats apart from a file's first bytes, gzip damage included."""
from __future__ import annotations

import gzip

import pytest

from dashboard.formats.sniff import JOB_STATUS, SCIM, UNKNOWN, sniff
from tests.factories import jsonl_line
from tests.formats.entra.conftest import DATA


def _crc_damaged(data: bytes) -> bytes:
    zipped = bytearray(gzip.compress(data))
    zipped[-8] ^= 0xFF  # the trailer's CRC-32: zlib finds it only once it has decompressed everything
    return bytes(zipped)


def test_it_recognises_a_small_request_log_whose_gzip_crc_is_damaged():
    assert sniff(_crc_damaged(jsonl_line() * 3)) == SCIM


def test_it_recognises_entra_files_whose_gzip_data_is_damaged_or_cut_off():
    portal = (DATA / "portal-download.json").read_bytes()
    zipped = gzip.compress(portal)

    assert sniff(_crc_damaged(portal)) == "entra-portal-json"
    assert sniff(zipped[: len(zipped) // 2]) == "entra-portal-json"


@pytest.mark.parametrize("head", [b"\x1f\x8b", b"\x1f\x8b\x08\x00garbage", gzip.compress(b"")[:-3]])
def test_it_says_unknown_for_gzip_data_too_damaged_to_read(head):
    assert sniff(head) == UNKNOWN


def test_it_still_recognises_a_job_status_document_in_gzip():
    assert sniff(gzip.compress(b'{"id": "x", "templateId": "scim", "schedule": {}}')) == JOB_STATUS


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_it_recognises_a_request_log_whatever_its_lines_end_in(end):
    assert sniff((jsonl_line().rstrip(b"\n") + end) * 2) == SCIM
