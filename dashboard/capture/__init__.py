"""Capture: the dashboard records SCIM traffic itself (docs/capture.md).

`lines` turns one HTTP exchange into a redacted v1 line; `writer` feeds those lines to the same
ingest as a file or a push, in batches, off the request path, spooling to disk while the
database is away; `proxy` is the recording reverse proxy (`flask capture`); `middleware` the
WSGI and ASGI recorders for Python SCIM servers.
"""
