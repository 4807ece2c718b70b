#!/usr/bin/env bash
# `make serve`: production serving on this machine, as deploy/ runs it under systemd: gunicorn with
# WEB_CONCURRENCY workers (default 4) on DASHBOARD_BIND (default 127.0.0.1:8000), none of them with
# a scheduler, and one `flask --app app scheduler` process (it takes the lease in the database).
# Put a reverse proxy in front (deploy/nginx-dashboard.conf). Ctrl-C or SIGTERM stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
"$BIN/flask" --app app init-db
"$BIN/flask" --app app scheduler &
scheduler=$!
"$BIN/gunicorn" --config deploy/gunicorn.conf.py app:app &
web=$!
stop() { kill -TERM "$web" "$scheduler" 2>/dev/null || true; wait "$web" "$scheduler" 2>/dev/null || true; }
trap stop INT TERM
wait -n "$web" "$scheduler" || true  # either one ending (or a signal) stops both
stop
