"""API plumbing: bearer auth, one permission per route (fail closed), schemas, pagination."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, get_type_hints

from flask import Blueprint, g, jsonify, request
from flask.typing import RouteCallable
from pydantic import BaseModel, Field, create_model
from pydantic import ValidationError as PydanticError

from listmgr.errors import Forbidden, ValidationError
from listmgr.models import MAX_ID
from listmgr.services import accounts
from listmgr.web.auth import authorize, require
from listmgr.web.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)
M = TypeVar("M", bound=BaseModel)


def schema_of(info: type[Any]) -> Callable[[type[M]], type[M]]:
    """Give an (empty) response model the fields of a service's dataclass, so they cannot
    drift: `@schema_of(Info) class InfoOut(BaseModel): ...` keeps the class's name and base."""
    hints = get_type_hints(info)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(info)}

    def make(cls: type[M]) -> type[M]:
        return create_model(cls.__name__, __base__=cls, __module__=cls.__module__, **fields)

    return make


@dataclass
class RouteDoc:
    """What a route promises: for enforcement and for the OpenAPI document."""

    rule: str
    methods: list[str]
    permission: str | None
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    tags: list[str] = field(default_factory=list)
    form: bool = False  # the body comes as multipart/form-data, not JSON


ROUTES: list[RouteDoc] = []
PUBLIC = None  # permission value for routes anyone may call


def route(
    rule: str,
    methods: list[str] | None = None,
    *,
    permission: str | None,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    tag: str = "",
    form: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an API route with its permission and schemas."""
    methods = methods or ["GET"]

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        require(permission)(fn)
        ROUTES.append(
            RouteDoc(
                rule,
                methods,
                permission,
                (fn.__doc__ or "").strip(),
                body,
                query,
                response,
                status,
                [tag] if tag else [],
                form,
            )
        )
        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=fn, methods=methods)
        return fn

    return wrap


@bp.before_request
def _authenticate() -> None:
    view: object = current_app_view()  # require() gave it the attribute typing cannot see
    if view is None:
        return  # 404/405 answered by Flask
    if not hasattr(view, "permission"):
        raise Forbidden("this route has no access rule")  # fail closed
    # The one check shared with the admin pages: a bearer token, or the admin's own session
    # (for its scripts; unsafe methods then need the CSRF token).
    authorize(view.permission, api=True)


def current_app_view() -> RouteCallable | None:
    from flask import current_app

    if request.url_rule is None:
        return None
    return current_app.view_functions.get(request.endpoint or "")


def principal() -> accounts.Principal:
    p: accounts.Principal = g.principal
    return p


def actor() -> str:
    p = getattr(g, "principal", None)
    return p.label if p else "anonymous"


def _pydantic_error(exc: PydanticError) -> ValidationError:
    first = exc.errors()[0]
    loc = ".".join(str(x) for x in first.get("loc", ()) if x != "__root__")
    return ValidationError(f"{loc or 'body'}: {first.get('msg', 'invalid')}", field=loc or None)


def refuse_nul(value: Any, path: str = "") -> None:
    """NUL characters never reach the database (PostgreSQL cannot store them): a clear 422."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(
                f"{path or 'body'}: text must not contain NUL characters", field=path or None
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(str(key), path)
            refuse_nul(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            refuse_nul(item, f"{path}[{i}]")


def parse_body(model: type[M]) -> M:
    """The JSON body validated against a schema; a clear error naming the field otherwise."""
    data = request.get_json(silent=True)
    if data is None:
        raise ValidationError("send a JSON object body with Content-Type: application/json")
    refuse_nul(data)
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        raise _pydantic_error(exc) from None


def parse_query(model: type[M]) -> M:
    refuse_nul(request.args.to_dict())
    try:
        return model.model_validate(request.args.to_dict())
    except PydanticError as exc:
        raise _pydantic_error(exc) from None


DbId = Annotated[int, Field(ge=1, le=MAX_ID)]  # an id: a larger number matches nothing anyway


class Page(BaseModel):
    page: int = Field(1, ge=1, le=10_000_000)
    per_page: int = 50

    def bounds(self) -> tuple[int, int]:
        if self.page < 1 or not 1 <= self.per_page <= 500:
            raise ValidationError("page must be >= 1 and per_page between 1 and 500", field="page")
        return (self.page - 1) * self.per_page, self.per_page


def paginated(items: list[Any], total: int, page: Page) -> Any:
    return jsonify(items=items, page=page.page, per_page=page.per_page, total=total)
