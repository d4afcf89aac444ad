"""The OpenAPI 3.1 document, generated from the route registry's schemas, and its pages."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import jsonify, render_template, send_from_directory
from flask.typing import ResponseReturnValue
from openapi_ui_bundles import swagger_ui
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import listmgr
from listmgr.errors import NotFound
from listmgr.web.api.base import ROUTES, RouteDoc, bp
from listmgr.web.auth import PUBLIC, require

REF = "#/components/schemas/{model}"
PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "detail": {},
            },
        }
    },
}
_cache: dict[int, dict[str, Any]] = {}
DOCS_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js"})


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """Flask's /x/<int:id> as OpenAPI's /api/x/{id} with its path parameters."""
    params = []
    for converter, name in PARAM.findall(rule):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
            if converter == "int"
            else {"type": "string", "minLength": 1}
        )
        if converter not in ("int", "path"):
            schema["pattern"] = "^[^/]+$"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return "/api" + PARAM.sub(lambda m: "{" + m.group(2) + "}", rule), params


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Query strings cannot carry null: `X | None` is documented as plain X (optional)."""
    options = schema.get("anyOf")
    if options and any(o.get("type") == "null" for o in options):
        rest = [o for o in options if o.get("type") != "null"]
        out = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        out.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        return out
    return schema


def _query_params(
    model: type[BaseModel], schema: dict[str, Any], defs: dict[str, Any]
) -> list[dict[str, Any]]:
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}") for w in path.split("/")[2:] if w]
    return method.lower() + "_" + "_".join(words).replace("-", "_")


def build() -> dict[str, Any]:
    """The document for every registered API route (cached until the registry grows)."""
    if len(ROUTES) in _cache:
        return _cache[len(ROUTES)]
    wanted: list[tuple[type[BaseModel], Any]] = []
    for r in ROUTES:
        for model, mode in (
            (r.body, "validation"),
            (r.query, "validation"),
            (r.response, "serialization"),
        ):
            if model is not None and (model, mode) not in wanted:
                wanted.append((model, mode))
    refs, top = models_json_schema(wanted, ref_template=REF)
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    defs["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        path, params = _path(r.rule)
        for method in r.methods:
            paths.setdefault(path, {})[method.lower()] = _operation(
                r, method, path, params, refs, defs
            )
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "listmgr API",
            "version": listmgr.__version__,
            "description": "JSON API of listmgr. Authenticate with "
            "`Authorization: Bearer <token>` (create tokens in the admin "
            "or with `listmgr token create`). Errors are "
            '`{"error": {"code", "message", "field"?}}`. Lists are paged '
            "with `page` and `per_page` and answer `{items, page, "
            "per_page, total}`.",
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    _cache.clear()
    _cache[len(ROUTES)] = doc
    return doc


def _operation(
    r: RouteDoc,
    method: str,
    path: str,
    params: list[dict[str, Any]],
    refs: dict[Any, Any],
    defs: dict[str, Any],
) -> dict[str, Any]:
    summary = r.summary.splitlines()[0] if r.summary else ""
    op: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": summary,
        "tags": r.tags or [path.split("/")[2]],
        "parameters": list(params),
        "x-permission": r.permission or "public",
    }
    if r.permission is None:
        op["security"] = []
    if r.query is not None:
        op["parameters"] += _query_params(r.query, refs[(r.query, "validation")], defs)
    if r.body is not None and method in ("POST", "PUT", "PATCH"):
        kind = "multipart/form-data" if r.form else "application/json"
        op["requestBody"] = {
            "required": True,
            "content": {kind: {"schema": refs[(r.body, "validation")]}},
        }
    ok: dict[str, Any] = {"description": "Success"}
    if r.response is not None:
        ok["content"] = {"application/json": {"schema": refs[(r.response, "serialization")]}}
    elif r.status != 204:
        ok["content"] = {"application/json": {"schema": {}}}
    error = {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    op["responses"] = {str(r.status): ok, "default": error}
    if r.permission is not None:
        op["description"] = f"Needs the `{r.permission}` permission."
    return op


def openapi_json() -> ResponseReturnValue:
    """The OpenAPI document."""
    return jsonify(build())


def docs() -> ResponseReturnValue:
    """The interactive page: every operation can be tried from the browser."""
    return render_template("pages/admin/api_try.html")


def docs_asset(name: str) -> ResponseReturnValue:
    """Swagger UI's own files, served by the app from the installed package."""
    if name not in DOCS_ASSETS:
        raise NotFound(f"there is no file {name!r}")
    return send_from_directory(swagger_ui.static_path, name, max_age=86400)


def reference() -> ResponseReturnValue:
    """Browsable reference of every operation, rendered from the document (no scripts)."""
    doc = build()
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            resp = op["responses"]
            ok_code = next(k for k in resp if k != "default")
            out = resp[ok_code].get("content", {}).get("application/json", {}).get("schema")
            groups.setdefault(op["tags"][0], []).append(
                {
                    "method": method.upper(),
                    "path": path,
                    "op": op,
                    "ok": ok_code,
                    "body": _resolve(body.get("schema"), doc),
                    "response": _resolve(out, doc),
                }
            )
    return render_template(
        "pages/admin/api_docs.html", doc=doc, groups=sorted(groups.items()), title="API reference"
    )


def _resolve(schema: Any, doc: dict[str, Any]) -> str:
    """A schema as indented JSON, with its top-level reference expanded for reading."""
    if not schema:
        return ""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return json.dumps(schema, indent=2, ensure_ascii=False)


for _view, _rule in (
    (openapi_json, "/openapi.json"),
    (docs, "/docs"),
    (reference, "/docs/reference"),
    (docs_asset, "/docs/ui/<name>"),
):
    # public: describes, reveals no data
    bp.add_url_rule(
        _rule, endpoint=_view.__name__, view_func=require(PUBLIC)(_view), methods=["GET"]
    )
