"""`flask ops token`: a scraper token shown once, and the hash that opens /metrics with it."""
from __future__ import annotations

import re
from dataclasses import replace

from dashboard.settings import settings_from_dict


def test_it_prints_a_token_and_the_hash_line_that_makes_it_work(app, runner, client, settings):
    result = runner.invoke(args=["ops", "token"])

    token = re.search(r"token \(give it to the scraper, shown once\): (pms_\S+)", result.output).group(1)  # type: ignore[union-attr]
    line = re.search(r'^scraper_token_hash = "([0-9a-f]{64})"$', result.output, re.M).group(0)  # type: ignore[union-attr]
    configured = settings_from_dict({"ops": {"scraper_token_hash": line.split('"')[1]}})
    app.extensions["dashboard"] = replace(settings, ops=configured.ops)

    assert result.exit_code == 0
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token[:-1]}"}).status_code == 403
