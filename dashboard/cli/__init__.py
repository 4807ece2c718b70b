"""Command-line interface: `flask --app app <command>`, one module per command group."""
from __future__ import annotations

from flask import Flask

from dashboard.cli import admin, analysis, backup, capture, demo, entra, ingest, notify, ops, scheduler


def init_app(app: Flask) -> None:
    for command in (admin.init_db_command, admin.JOB_GROUP, admin.TOKEN_GROUP, admin.USER_GROUP,
                    ingest.ingest_command, ingest.rejects_command, ingest.export_command,
                    demo.simulate_command, demo.demo_command, analysis.report_command, analysis.recompute_command,
                    entra.entra_group, notify.notify_group, scheduler.scheduler_command, ops.ops_group,
                    capture.capture_command, capture.probe_command, backup.backup_command, backup.restore_command):
        app.cli.add_command(command)
