"""gunicorn's settings for the dashboard (`make serve`, deploy/dashboard-web.service).

Several worker processes serve the pages, the API and the pushes; none of them runs the scheduler
(that is `flask --app app scheduler`, one process, deploy/dashboard-scheduler.service). Each
worker builds its own app and its own database connections (no preload: a connection pool must
not be shared across a fork).
"""
import os

# Loopback only: the reverse proxy (deploy/nginx-dashboard.conf) is the door from outside.
bind = os.environ.get("DASHBOARD_BIND", "127.0.0.1:8000")
# WEB_CONCURRENCY is gunicorn's own variable for the number of workers.
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# A push of [ingest] push_max_bytes (10 MiB) is ingested before it is answered.
timeout = 120
graceful_timeout = 30
# The proxy's X-Forwarded-Proto is trusted from this machine only.
forwarded_allow_ips = "127.0.0.1"
# To the journal (stdout/stderr); secrets in request lines are redacted (dashboard/logredact.py).
accesslog = "-"
errorlog = "-"
