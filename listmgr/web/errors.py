"""One place that turns errors into a page for people or JSON for clients."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from listmgr.errors import ListmgrError, TokenExpired, TokenInvalid


def wants_json() -> bool:
    path = request.path
    if path.startswith(("/api/", "/hooks/")) or path == "/api":
        return True
    if path.startswith("/privacy/") and path.endswith(".json"):
        return True
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    title: str | None = None,
    token: str | None = None,
    detail: object = None,
) -> ResponseReturnValue:
    if wants_json():
        body: dict[str, object] = {"code": code, "message": message}
        if field:
            body["field"] = field
        if detail is not None:  # e.g. a template error's part and line, a blocked checklist
            body["detail"] = detail
        return jsonify(error=body), status
    return render_template(
        "pages/error.html", status=status, code=code, message=message, title=title, token=token
    ), status


def register(app: Flask) -> None:
    @app.errorhandler(ListmgrError)
    def domain_error(exc: ListmgrError) -> ResponseReturnValue:
        token = None
        if isinstance(exc, (TokenExpired, TokenInvalid)) and request.view_args:
            token = request.view_args.get("token")
        return error_response(
            exc.status, exc.code, exc.message, exc.field, token=token, detail=exc.detail
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        messages = {
            400: "The request could not be understood.",
            401: "Please sign in.",
            403: "You are not allowed to do this.",
            404: "There is nothing at this address.",
            405: "This address does not accept that method.",
            413: "The request is too large.",
            429: "Too many requests. Please wait a while and try again.",
        }
        codes = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
            429: "rate_limited",
        }
        message = messages.get(status, exc.description or "Something went wrong.")
        if status == 400 and exc.description and "CSRF" in exc.description:
            message = "The form expired or was sent from elsewhere. Please reload and try again."
        resp = error_response(status, codes.get(status, "http_error"), message)
        return resp

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        app.logger.exception("unhandled error")
        return error_response(
            500,
            "internal",
            "Something went wrong on our side. Nothing was changed; please try again later.",
        )
