"""Every error of the app as one JSON line: ``{"error": "..."}``, never an HTML page or a traceback.

* the user's mistakes — a library ``ValueError`` or ``TypeError`` raised while a route reads or
  checks its request (an :class:`~striate.serve.preprocess.ImageError` is a ``ValueError``) — are
  HTTP 400 with the library's one-line message;
* HTTP errors keep their code (404, 405, ...); a body over the app's size limit is a 400 that
  names the limit;
* anything else is a 500 whose line names only the exception's type; the traceback goes to the
  server's log (logger ``striate.serve``).

:func:`install` puts these on the app (errors outside every blueprint: unknown URLs, wrong
methods); :func:`api_errors` on each API blueprint, whose own handlers Flask consults first.
"""
from __future__ import annotations

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .state import current

log = logging.getLogger("striate.serve")


def one_line(message) -> str:
    """A message on one line (library messages may wrap long texts)."""
    return " ".join(str(message).split())


def error(message: str, status: int = 400):
    """The JSON answer of a failed request: ``({"error": message}, status)``."""
    return jsonify(error=one_line(message)), status


def bad_request(e: Exception):
    return error(str(e) or type(e).__name__, 400)


def http_error(e: HTTPException):
    if isinstance(e, RequestEntityTooLarge):
        return error(f"the request body is too large: at most {current().max_bytes:,} bytes are accepted.", 400)
    if e.code and e.code >= 500:
        return error("internal error", e.code)
    return error(f"{e.name}: {e.description}", e.code or 400)


def unexpected(e: Exception):
    if isinstance(e, HTTPException):
        return http_error(e)
    log.exception("unexpected error")  # the traceback goes to the server's log, not the client
    return error(f"internal error ({type(e).__name__}); see the server's log.", 500)


def install(app) -> None:
    """App-wide handlers: HTTP errors and unexpected failures outside the API blueprints."""
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)


def api_errors(bp):
    """Give an API blueprint its handlers: ValueError/TypeError -> 400, HTTP codes kept, the rest 500."""
    bp.register_error_handler(ValueError, bad_request)
    bp.register_error_handler(TypeError, bad_request)
    bp.register_error_handler(HTTPException, http_error)
    bp.register_error_handler(Exception, unexpected)
    return bp
