"""No secret leaves through the capture: a request carrying a password, a uniFLOW pin and card
registration code, a bearer token and a token in the query goes through the proxy while the
database is down (so it is spooled to disk), then is drained; the secrets are searched for in the
spool files, every stored exchange (blobs decoded), the captured log and the proxy's log."""
from __future__ import annotations

import logging

import orjson
import urllib3
from sqlalchemy import select

from dashboard.db import db
from dashboard.formats import codec
from dashboard.models import Exchange
from tests.capture.conftest import Capture

URN = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"
SECRETS = {"password": "canary-password-91f2", "pin": "canary-pin-4711", "code": "canary-regcode-5c3e",
           "bearer": "canary-bearer-77aa", "query": "canary-query-token-0d1e"}


def test_no_secret_reaches_the_spool_the_database_or_the_log(capture: Capture, caplog):
    caplog.set_level(logging.DEBUG)
    capture.database.cut()
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", URN], "userName": "canary@contoso.com",
            "password": SECRETS["password"], URN: {"pin": SECRETS["pin"], "cardRegistrationCode": SECRETS["code"],
                                                   "cardNumber": "4111111111111111"}}
    http = urllib3.PoolManager()
    try:
        answer = http.request("POST", f"{capture.proxy.url}/scim/v2/Users?access_token={SECRETS['query']}",
                              body=orjson.dumps(body), headers={"Authorization": f"Bearer {SECRETS['bearer']}",
                                                                "Content-Type": "application/scim+json"})
    finally:
        http.clear()
    assert answer.status == 401  # scim2-server refused the canary token: the header was passed through
    assert capture.writer.flush(60)
    spooled = b"".join(path.read_bytes() for path in capture.writer.spool_files()).decode()
    capture.database.restore()
    assert capture.writer.flush(60)
    db.session.rollback()
    stored = [orjson.dumps(codec.unpack(blob)).decode() for blob in db.session.scalars(select(Exchange.blob))]

    assert spooled and len(stored) == 1
    for name, value in SECRETS.items():
        assert value not in spooled, f"{name} in the spool"
        assert value not in stored[0], f"{name} in the database"
        assert value not in caplog.text, f"{name} in the log"
    assert "************1111" in stored[0] or "1111" in stored[0]  # cardNumber masked to its last four
    assert "4111111111111111" not in stored[0] and "4111111111111111" not in spooled
