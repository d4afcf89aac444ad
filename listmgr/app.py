"""create_app(overrides): the Flask application, its extensions, blueprints and error pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import IntegerConverter

from listmgr import jsonin, resource_dir, runtime
from listmgr.errors import NotFound, ValidationError
from listmgr.runtime import Runtime

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


class DatabaseId(IntegerConverter):
    """Ids in paths fit the database's integer columns; a larger number simply matches nothing."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


class BodyJSON(DefaultJSONProvider):
    """Request bodies are read through jsonin: what no database or code path can take gets a
    clear 422 naming the part (malformed JSON stays a ValueError for get_json to handle)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return jsonin.loads(s)
        except jsonin.BadJSON as exc:
            raise ValidationError(
                f"{exc.path or 'body'}: {exc.msg}", field=exc.path or None
            ) from None


def create_app(
    overrides: Mapping[str, Any] | None = None, *, rt: Runtime | None = None, migrate: bool = True
) -> Flask:
    """Build the web application for these settings (tests pass a mapping or a runtime)."""
    rt = rt or runtime.build(overrides, migrate=migrate)
    runtime.set_current(rt)
    settings = rt.settings
    app = Flask(
        "listmgr",
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
        static_url_path="/static",
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=max(settings.max_inbound_bytes, settings.max_form_bytes),
        MAX_FORM_MEMORY_SIZE=settings.max_form_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.base_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        RATELIMIT_ENABLED=settings.ratelimit_enabled,
        JSON_SORT_KEYS=False,
    )
    app.json = BodyJSON(app)
    app.extensions["listmgr"] = rt
    if settings.trusted_proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Believe X-Forwarded-For/-Proto only as far as the operator's own proxies wrote them
        # (the rightmost N entries); with none trusted the header is ignored.
        proxied = ProxyFix(
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=0,
            x_port=0,
            x_prefix=0,
        )
        app.wsgi_app = proxied  # type: ignore[method-assign]  # Flask's way to add WSGI middleware
    from listmgr.web import errors, extensions, observe

    observe.init_app(app)  # first: the request id is bound before any other hook logs
    extensions.csrf.init_app(app)
    extensions.limiter.init_app(app)
    errors.register(app)
    app.url_map.converters["int"] = DatabaseId  # before the routes are added
    _register_blueprints(app)

    app.before_request(extensions.note_audit_ip)
    app.teardown_request(extensions.forget_audit_ip)

    @app.before_request
    def _no_nul_in_paths() -> None:
        # No name of ours holds a NUL, and PostgreSQL refuses one in any text it compares.
        if "\x00" in request.path:
            raise NotFound("There is no such page.")

    @app.before_request
    def _limit_body() -> None:
        # Inbound mail and event batches (up to 10,000 events) may be large; forms may not.
        if not request.path.startswith(("/hooks/", "/api/events")):
            request.max_content_length = settings.max_form_bytes

    @app.after_request
    def _security_headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    def embedded_outbox() -> bool:  # a function: only pages that show the link read it
        return extensions.settings_in_force().dev_outbox_shown

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"embedded_outbox": embedded_outbox, "base_url": settings.base_url}

    return app


def _register_blueprints(app: Flask) -> None:
    from listmgr.web import admin, api, data_rights, dev, engagement, hooks, public

    for bp in (public.bp, engagement.bp, data_rights.bp, hooks.bp, dev.bp, api.bp, admin.bp):
        app.register_blueprint(bp)
