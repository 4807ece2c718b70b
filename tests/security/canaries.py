"""Canary secrets and every input form they arrive in (issue 12): SCIM log lines, accepted and
rejected, and Entra's provisioning logs as Graph JSON and as the portal's CSV download.

Each form carries its own canary, so a hit names the form as well as the place it leaked to.
"""
from __future__ import annotations

import csv
import io
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

URN = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)  # the notification helpers' first cycle
ROOT = Path(__file__).resolve().parents[2]


def canary(form: str, channel: str = "") -> str:
    """The canary of one input form: letters and digits only, so that no encoding changes it."""
    return "Cnry" + "".join(c for c in (channel + form).title() if c.isalnum()) + "Z9q"


def _ts(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(detail: str, status: int = 400) -> dict:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status),
            "scimType": "invalidValue", "detail": detail}


def accepted_forms(channel: str) -> dict[str, dict]:
    """Valid log lines, each hiding its canary in one form (the issue's "accepted lines")."""
    c = lambda form: canary(form, channel)  # noqa: E731
    base = {"method": "PATCH", "path": "/scim/v2/Users/id-1", "status": 200, "job": "uniflow-prod"}
    patch = lambda ops: {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}  # noqa: E731
    return {
        "header-bearer": {**base, "request_headers": {"authorization": f"Bearer {c('header-bearer')}"}},
        "header-upper-case": {**base, "request_headers": {"AUTHORIZATION": c("header-upper-case")}},
        "header-api-key": {**base, "request_headers": {"X-Api-Key": c("header-api-key")}},
        "path-access-token": {**base, "method": "GET", "path": f"/scim/v2/Users?access_token={c('path-access-token')}"},
        "url-access-token": {"method": "GET", "status": 200, "url": f"/scim/v2/Users?access_token={c('url-access-token')}"},
        "query-semicolon": {**base, "method": "GET", "path": "/scim/v2/Users", "query": f"a=1;token={c('query-semicolon')}"},
        "query-pin": {**base, "method": "GET", "path": "/scim/v2/Users", "query": f"pin={c('query-pin')}"},
        "query-password": {**base, "method": "GET", "path": "/scim/v2/Users", "query": f"password={c('query-password')}"},
        "query-filter": {**base, "method": "GET", "path": "/scim/v2/Users",
                         "query": f'filter={URN}:pin eq "{c("query-filter")}"'},
        "query-filter-encoded": {**base, "method": "GET", "path": "/scim/v2/Users",
                                 "query": f"filter={URN}%3Apin%20eq%20%22{c('query-filter-encoded')}%22"},
        "detail-json": {**base, "status": 400, "response_body": _error(
            orjson.dumps({"pin": c("detail-json"), "authorization": f"Bearer {c('detail-json-bearer')}"}).decode())},
        "detail-password": {**base, "status": 400, "response_body": _error(
            f"Invalid attribute value: password={c('detail-password')} does not meet the policy")},
        "detail-patch": {**base, "status": 400, "response_body": _error(
            "Invalid request: " + orjson.dumps(patch([{"op": "replace", "path": f"{URN}:pin",
                                                        "value": c("detail-patch")}])).decode())},
        "unknown-headers": {**base, "headers": {"Authorization": f"Bearer {c('unknown-headers')}"}},
        "unknown-response-headers": {**base, "response_headers": {"set-cookie": f"session={c('unknown-response-headers')}"}},
        "body-pin": {**base, "request_body": {URN: {"pin": c("body-pin"), "cardRegistrationCode": c("body-code")}}},
        "body-password": {**base, "method": "POST", "path": "/scim/v2/Users",
                          "request_body": {"userName": "canary@contoso.com", "password": c("body-password")}},
        "patch-value-first": {**base, "request_body": patch([{"value": c("patch-value-first"), "op": "replace",
                                                               "path": f"{URN}:pin"}])},
        "response-echo": {**base, "response_body": {"id": "id-1", "password": c("response-echo")}},
        "client-bearer": {**base, "client": f"shipper Bearer {c('client-bearer')}"},
        # found in clear by an adversarial pass (December 2026): see tests/formats/scim/test_redact_wild.py
        "header-x-auth": {**base, "request_headers": {"X-Auth": c("header-x-auth")}},
        "header-subscription-key": {**base, "request_headers": {"Ocp-Apim-Subscription-Key": c("header-subscription-key")}},
        "query-api-key": {**base, "method": "GET", "path": "/scim/v2/Users", "query": f"api-key={c('query-api-key')}"},
        "detail-echo-quoted": {**base, "status": 400, "response_body": _error(
            f"Invalid value '{c('detail-echo-quoted')}' for attribute pin")},
        "detail-echo-bare": {**base, "status": 400, "response_body": _error(f"pin {c('detail-echo-bare')} is too short")},
        "body-json-in-string": {**base, "request_body": {"note": orjson.dumps({"pin": {"v": c("body-json-in-string")}}).decode()}},
        "body-api-key": {**base, "request_body": {"apiKey": c("body-api-key")}},
        "body-look-alike": {**base, "request_body": {"\uff50\uff49\uff4e": c("body-look-alike")}},
    }


def rejected_forms(channel: str) -> dict[str, bytes]:
    """Lines that are rejected, each hiding its canary (the issue's "rejected lines")."""
    c = lambda form: canary(form, channel)  # noqa: E731
    line = lambda **f: orjson.dumps(f)  # noqa: E731
    padding = "x" * 2500
    return {
        "reject-missing-ts": line(method="GET", path="/scim/v2/Users", status=200,
                                  request_headers={"AUTHORIZATION": c("reject-missing-ts")}),
        "reject-bad-status": line(ts=_ts(1), method="GET", path="/scim/v2/Users", status="teapot",
                                  query=f"access_token={c('reject-bad-status-query')}",
                                  request_headers={"authorization": f"Bearer {c('reject-bad-status')}"}),
        "reject-header-list": line(ts=_ts(1), method="GET", path="/scim/v2/Users", status=200,
                                   request_headers=[{"name": "Authorization", "value": c("reject-header-list")},
                                                    ["X-Api-Key", c("reject-header-pair")]]),
        "reject-body-string": line(ts=_ts(1), method="PATCH", path="/scim/v2/Users/1", status=200,
                                   request_body=f"pin={c('reject-body-string')}&userName=x"),
        "reject-value-before-key": (
            b'{"ts":"' + _ts(1).encode() + b'","method":"PATCH","request_body":{"Operations":[{"op":"replace","value":"'
            + c("reject-value-before-key").encode() + b'","path":"' + URN.encode() + b':pin"}]'),
        "reject-cut-patch": (b'{"method":"PATCH","request_body":{"Operations":[{"op":"replace","value":"'
                             + c("reject-cut-patch").encode()),
        "reject-escaped-json": orjson.dumps(orjson.dumps({"ts": _ts(1), "pin": c("reject-escaped-json"),
                                                          "authorization": "Bearer " + c("reject-escaped-bearer")}).decode()),
        "reject-cut-at-2000": line(method="PATCH", path="/scim/v2/Users/1", status=200, request_body={
            "Operations": [{"op": "replace", "value": c("reject-cut-at-2000"), "note": padding, "path": f"{URN}:pin"}]}),
        "reject-plain-text": f"pin={c('reject-plain-text')} authorization: Bearer {c('reject-plain-bearer')}".encode(),
        "reject-cut-bearer": b'{"ts":"' + _ts(1).encode() + b'","request_headers":{"authorization":"Bearer '
                             + c("reject-cut-bearer").encode(),
        "reject-cut-before-op": (b'{"ts":"' + _ts(1).encode() + b'","method":"PATCH","request_body":{"Operations":[{"value":"'
                                 + c("reject-cut-before-op").encode() + b'","o'),
        "reject-cut-in-path": (b'{"ts":"' + _ts(1).encode() + b'","method":"PATCH","request_body":{"Operations":[{"value":"'
                               + c("reject-cut-in-path").encode() + b'","op":"replace","path":"urn:ietf:params:sc'),
    }


def scim_lines(channel: str) -> list[bytes]:
    lines = []
    for number, (form, record) in enumerate(accepted_forms(channel).items()):
        record = {"ts": _ts(number * 2), "request_id": f"{channel}-{form}", **record}
        lines.append(orjson.dumps(record))
    lines += list(rejected_forms(channel).values())
    return lines


def entra_records(channel: str) -> list[dict]:
    """Graph provisioning events hiding canaries in the reason, modified properties and steps."""
    c = lambda form: canary(form, channel)  # noqa: E731
    answer = orjson.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                           "Operations": [{"op": "replace", "path": f"{URN}:pin", "value": c("entra-reason")}]}).decode()
    at = (T0 + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{
        "id": f"{channel}-event-1", "activityDateTime": at, "cycleId": "cycle-1", "changeId": f"{channel}-change-1",
        "jobId": "scim.tenant.job", "provisioningAction": "update",
        "provisioningStatusInfo": {"status": "failure", "errorInformation": {
            "errorCode": "SystemForCrossDomainIdentityManagementBadRequest",
            "reason": f"StatusCode: BadRequest Message: Processing of the HTTP request resulted in an exception. "
                      f"Request body: {answer} access_token={c('entra-reason-token')}",
            "recommendedAction": f"Check the value. Bearer {c('entra-recommended')}"}},
        "sourceIdentity": {"id": "src-1", "displayName": "canary@contoso.com", "identityType": "User",
                           "details": {"UserPrincipalName": "canary@contoso.com"}},
        "targetIdentity": {"id": "tgt-1", "displayName": "canary@contoso.com", "identityType": "User", "details": {}},
        "modifiedProperties": [
            {"displayName": f"{URN}:pin", "oldValue": None, "newValue": c("entra-modified-pin")},
            {"displayName": "description", "oldValue": None,
             "newValue": orjson.dumps({"pin": c("entra-modified-json")}).decode()},
        ],
        "provisioningSteps": [{"name": "EntryExportUpdate", "provisioningStepType": "export", "status": "failure",
                               "description": f"Failed: {answer.replace(c('entra-reason'), c('entra-step'))}",
                               "details": {"urnietfparamsscimschemasextensionuniFLOWOnline20Userpin": c("entra-step-detail")}}],
    }]


def write_entra_page(path: Path, channel: str) -> Path:
    path.write_bytes(orjson.dumps({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning",
                                   "value": entra_records(channel)}))
    return path


def write_entra_csv(folder: Path, channel: str) -> Path:
    """The portal's three-file CSV download (from tests/data), with canaries added to each file."""
    c = lambda form: canary(form, channel)  # noqa: E731
    folder.mkdir(parents=True, exist_ok=True)
    source = ROOT / "tests" / "data" / "entra" / "csv"
    for file in source.iterdir():
        shutil.copy(file, folder / file.name)
    logs, = folder.glob("ProvisioningLogs_2*.csv")
    answer = orjson.dumps({"Operations": [{"op": "replace", "path": f"{URN}:pin", "value": c("csv-reason")}]}).decode()
    row = io.StringIO()
    csv.writer(row, lineterminator="\n").writerow([
        "2026-03-28T06:00:09Z", "csv-canary", "uniFLOWOnline.t.j", "c-5", "CH-CANARY", "Update", "Failure",
        f"StatusCode: BadRequest Web Response: {answer}", "SomeError", f"Authorization: Bearer {c('csv-action')}",
        "s-zed", "Zed", "User", "t-zed", "", "5", "uniFLOW Online", "Microsoft Entra ID", "uniFLOW Online", "7584ba9c"])
    header = logs.read_text(encoding="utf-8-sig").splitlines()[0]
    logs.write_text(header + "\n" + row.getvalue(), encoding="utf-8")  # the sample's last row is cut off: not kept
    modified, = folder.glob("*ModifiedProperties*.csv")
    with open(modified, "a", encoding="utf-8") as out:
        out.write(f"CH-CANARY;{URN}:pin;;{c('csv-modified-pin')}\n")
        out.write(f"CH-CANARY;description;;pin={c('csv-modified-text')}\n")
    steps, = folder.glob("*ProvisioningSteps*.csv")
    with open(steps, "a", encoding="utf-8") as out:
        details = orjson.dumps({"urnietfparamsscimschemasextensionuniFLOWOnline20Userpin": c("csv-step")}).decode()
        out.write('CH-CANARY,1,EntryExportUpdate,Export,Failure,Failed,"' + details.replace('"', '""') + '"\n')
    return folder


def all_canaries(channels: tuple[str, ...]) -> dict[str, str]:
    """Every canary value of these channels, by a name that says which form it came in."""
    forms = set()
    for channel in channels:
        for form in accepted_forms(channel):
            forms.add(form)
    names = [
        *forms, "body-code", "detail-json-bearer", "reject-missing-ts", "reject-bad-status", "reject-bad-status-query",
        "reject-header-list", "reject-header-pair", "reject-body-string", "reject-value-before-key",
        "reject-cut-patch", "reject-escaped-json", "reject-escaped-bearer", "reject-cut-at-2000", "reject-plain-text",
        "reject-plain-bearer", "reject-cut-bearer", "entra-reason", "entra-reason-token", "entra-recommended",
        "entra-modified-pin", "entra-modified-json", "entra-step", "entra-step-detail", "csv-reason", "csv-action",
        "csv-modified-pin", "csv-modified-text", "csv-step",
    ]
    return {f"{channel}:{name}": canary(name, channel) for channel in channels for name in names}
