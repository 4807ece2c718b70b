"""HTTP: blueprints, sign-in guard, CSRF, security headers, error handlers."""
from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from dashboard.db import db

csrf = CSRFProtect()
# Plotly.js inserts two <style> elements (one empty, one with its modebar rules); they are
# allowed by hash, nothing else inline is. A Plotly upgrade that changes them fails the browser
# test that watches for CSP violations: update the hashes then.
PLOTLY_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' 'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='"
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' " + PLOTLY_STYLE_HASHES + "; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def init_app(app: Flask) -> None:
    # Here, not at the top: the blueprints import this package (csrf), a cycle at module level.
    from dashboard.web import admin, api, auth, ops, pages

    csrf.init_app(app)
    csrf.exempt(api.bp)  # JSON API: bearer tokens or read-only GETs; forms are all in pages/auth
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(ops.bp)
    app.before_request(auth.load_account)
    app.after_request(_security_headers)
    app.jinja_env.globals["csp_nonce"] = lambda: ""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/"):
            return jsonify(error=exc.description or exc.name), exc.code
        if exc.code in (403, 404, 429, 400, 413):
            return render_template("pages/error.html", error=exc), exc.code
        return exc

    @app.errorhandler(500)
    def _server_error(exc: Exception):  # type: ignore[no-untyped-def]
        db.session.rollback()
        if request.path.startswith("/api/"):
            return jsonify(error="internal server error"), 500
        return "Internal server error", 500


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/") or request.endpoint not in (None, "static"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
