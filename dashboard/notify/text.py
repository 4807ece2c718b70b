"""Render the report's JSON (overview.report) as plain text for the terminal and emails."""
from __future__ import annotations

from typing import Any

from dashboard.analysis.outcomes import BUCKETS


def render_text(report: dict[str, Any]) -> str:
    health = report["health"]
    lines = [
        f"Provisioning report: {report['job']['title']} ({report['job']['name']})",
        f"As of {report['as_of']} (generated {report['generated_at']})",
        "",
        f"Health: {health['state'].upper()}" + (f" [{health['reason']}]" if health.get("reason") else ""),
    ]
    if health.get("explanation"):
        lines.append(f"  {health['explanation']}")
    if health.get("since"):
        lines.append(f"  since {health['since']}")
    if health.get("next_expected_attempt"):
        lines.append(f"  next expected attempt {health['next_expected_attempt']}")
    if health.get("recommended_action"):
        lines.append(f"  action: {health['recommended_action']['action']}")
    lines.append("")
    for cycle in report["cycles"]:
        t = cycle["totals"]
        lines.append(f"Cycle {cycle['id']} ({cycle['kind']}, {cycle['state']}) {cycle['started_at']} .. {cycle['ended_at']}: "
                     f"{cycle['users']} users, {t['success']} succeeded, {t['failure']} failed, {t['skipped']} skipped, "
                     + ", ".join(part for part in (
                         f"{cycle['requests']} requests" if cycle['requests'] or not cycle.get('entra_events') else "",
                         f"{cycle['entra_events']} Entra events" if cycle.get('entra_events') else "",
                         f"{cycle['staged_deletes']} deletes held by Entra" if cycle.get('staged_deletes') else "",
                     ) if part))
        lines.append(f"  {'operation':<9}  {'success':>7}  {'failure':>7}  {'skipped':>7}")
        for bucket in BUCKETS:
            row = cycle["counts"].get(bucket, {})
            if any(row.values()):
                lines.append(f"  {bucket:<9}  {row.get('success', 0):>7}  {row.get('failure', 0):>7}  {row.get('skipped', 0):>7}")
    lines.append("")
    lines.append(f"Failing users ({len(report['failing_users'])} shown):")
    for user in report["failing_users"][:20]:
        lines.append(f"  {user['userName'] or user['externalId'] or user['scim_id']}: failing since "
                     f"{user['failing_since']}, {user['streak']} cycles")
    lines.append("")
    lines.append("Error signatures:")
    for sig in report["signatures"][:10]:
        lines.append(f"  {sig['operation']} {sig['status']} {sig['scimType'] or ''} '{sig['detail']}': "
                     f"{sig['users']} users, last {sig['last_seen']}")
        lines.append(f"    -> {sig['action']['title']}: {sig['action']['action']}")
    return "\n".join(lines)
