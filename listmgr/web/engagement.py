"""Public links in campaign mail: tracked clicks and the open pixel, web versions, and each
list's public archive (when the list shows one). No sign-in; the tokens authenticate."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.services import tracking, webview
from listmgr.web import limits
from listmgr.web.extensions import current_runtime

bp = Blueprint("engagement", __name__)

# Campaign HTML is the marketer's: shown so that nothing in it runs, in an origin of its own.
WEB_VERSION_CSP = (
    "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation;"
    " default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https:;"
    " font-src https: data:"
)
PRIVATE = "no-store, private"


def _agent() -> str:
    return request.headers.get("User-Agent", "")[:500]


def _probe() -> bool:
    """A HEAD request: link checkers and gateways send them, a person's browser never does."""
    return request.method == "HEAD"


@bp.get("/t/<ref>/<token>")
def click(ref: str, token: str) -> ResponseReturnValue:
    """Record the click (if the person allows it) and go to the campaign's link; a link that
    cannot be read leads to the campaign's web version, never to an error."""
    rt = current_runtime()
    # tracking and its windows are set in the config only: no read of the admin's settings
    target = tracking.click(rt, rt.settings, ref, token, _agent(), probe=_probe())
    if target is None:
        shown = tracking.web_version_ref(rt, ref, token)
        resp = redirect(url_for("engagement.web_version_for_no_one", ref=shown), code=302)
    else:
        resp = redirect(target, code=302)
    resp.headers["Cache-Control"] = PRIVATE
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.get("/o/<token>.gif")
def pixel(token: str) -> Response:
    rt = current_runtime()
    tracking.opened(rt, rt.settings, token, _agent(), probe=_probe())
    resp = Response(tracking.PIXEL, mimetype="image/gif")
    resp.headers["Cache-Control"] = PRIVATE
    return resp


def _page(version: webview.WebVersion) -> Response:
    resp = Response(version.html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = WEB_VERSION_CSP
    resp.headers["Cache-Control"] = PRIVATE
    resp.headers["X-Robots-Tag"] = "noindex"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.get("/w/<token>")
@limits.token_link()
def web_version(token: str) -> ResponseReturnValue:
    return _page(webview.personal(current_runtime(), token))


@bp.get("/w/c/<ref>")
@limits.token_link()
def web_version_for_no_one(ref: str) -> ResponseReturnValue:
    rt = current_runtime()
    return _page(webview.for_no_one(rt, webview.campaign_of_ref(rt, ref)))


@bp.get("/archive/<slug>")
@limits.token_link()
def archive(slug: str) -> ResponseReturnValue:
    page = request.args.get("page", "1")
    found = webview.archive(current_runtime(), slug, int(page) if page.isdigit() else 1)
    return render_template("pages/public/archive.html", archive=found, title=found.name)


@bp.get("/archive/<slug>/<int:campaign_id>")
@limits.token_link()
def archived(slug: str, campaign_id: int) -> ResponseReturnValue:
    page = _page(webview.archived(current_runtime(), slug, campaign_id))
    page.headers["Cache-Control"] = "public, max-age=300"
    return page
