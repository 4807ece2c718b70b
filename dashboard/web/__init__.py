"""HTTP: blueprints and error handlers."""
from __future__ import annotations

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..db import db


def init_app(app: Flask) -> None:
    from . import api

    app.register_blueprint(api.bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/"):
            return jsonify(error=exc.description or exc.name), exc.code
        return exc

    @app.errorhandler(500)
    def _server_error(exc: Exception):  # type: ignore[no-untyped-def]
        db.session.rollback()
        if request.path.startswith("/api/"):
            return jsonify(error="internal server error"), 500
        return "Internal server error", 500
