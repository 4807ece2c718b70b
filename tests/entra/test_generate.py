"""The benchmark's generated pages are Graph-shaped and parse without a problem."""
from __future__ import annotations

from dashboard.entra.generate import write_pages
from dashboard.entra.parse import dedupe_key, detect_format, read_paths
from dashboard.entra.records import ProvisioningEvent


def test_it_generates_pages_that_parse_cleanly_and_redacted(tmp_path):
    paths = write_pages(tmp_path, 250, page_size=100)

    items = [item for _, item in read_paths(paths)]
    assert len(paths) == 3 and detect_format(paths[0].read_bytes()[:65536]) == "entra-graph"
    assert all(isinstance(i, ProvisioningEvent) for i in items) and len(items) == 250
    assert len({dedupe_key(i) for i in items}) == 250
    assert all(p.new_value == "[REDACTED]" for i in items for p in i.modified_properties if p.display_name.endswith("pin"))
    assert {i.action.value for i in items} >= {"create", "update", "disable", "other"}
