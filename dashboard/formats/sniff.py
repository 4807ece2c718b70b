"""Tell the CLI's input formats apart from a file's first bytes: SCIM request log, Entra
provisioning logs (four formats, see parse.py) or a synchronizationJob status document."""
from __future__ import annotations

import re

import orjson

from dashboard.formats.entra.parse import UNKNOWN, detect_format
from dashboard.formats.gunzip import MAGIC as GZIP_MAGIC
from dashboard.formats.gunzip import gunzip_head

SCIM = "scim"
JOB_STATUS = "entra-job-status"
ALL = (SCIM, "entra-graph", "entra-portal-json", "entra-csv", "log-analytics", JOB_STATUS)
_JOB_FIELDS = re.compile(rb'"(?:templateId|steadyStateFirstAchievedTime|synchronizationJobSettings|'
                         rb'countSuccessiveCompleteFailures|lastSuccessfulExecution)"\s*:')
_EVENT_FIELDS = re.compile(rb'"(?:activityDateTime|provisioningAction|changeId|cycleId)"\s*:')


def sniff(head: bytes) -> str:
    """One of ALL, or parse.UNKNOWN. 64 KiB of the file is plenty."""
    if head[:2] == GZIP_MAGIC:
        head = gunzip_head(head, 1 << 20)  # as far as it goes: damaged data is the reader's to report
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text[:1] == b"{":
        first = text.split(b"\n", 1)[0].split(b"\r", 1)[0]  # (lines may end in CRLF or a bare CR)
        try:
            line = orjson.loads(first)
        except orjson.JSONDecodeError:
            line = None
        if isinstance(line, dict) and "method" in line and ("path" in line or "url" in line):
            return SCIM
        if _JOB_FIELDS.search(text) and not _EVENT_FIELDS.search(text):
            return JOB_STATUS
    return detect_format(head)


__all__ = ["ALL", "JOB_STATUS", "SCIM", "UNKNOWN", "sniff"]
