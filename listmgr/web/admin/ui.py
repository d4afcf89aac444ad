"""Small helpers shared by the admin views: paging, form values, flash after a change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request, url_for

from listmgr.errors import ValidationError

PER_PAGE = 50


@dataclass(frozen=True)
class Pager:
    """Where a paged table is; builds links that keep the current filters."""

    page: int
    per_page: int
    total: int
    endpoint: str
    args: dict[str, Any]
    more: bool = False  # the total is a lower bound: there are more rows than counted

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def url(self, page: int) -> str:
        args = {k: v for k, v in self.args.items() if v not in (None, "")}
        return url_for(self.endpoint, **{**args, "page": page})

    @property
    def prev_url(self) -> str | None:
        return self.url(self.page - 1) if self.page > 1 else None

    @property
    def next_url(self) -> str | None:
        return self.url(self.page + 1) if self.page < self.pages or self.more else None


def page_number() -> int:
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        raise ValidationError("page must be a number", field="page") from None
    if not 1 <= page <= 1_000_000:
        raise ValidationError("page must be between 1 and 1000000", field="page")
    return page


def pager(
    total: int, endpoint: str, page: int, per_page: int = PER_PAGE, more: bool = False, **args: Any
) -> Pager:
    return Pager(page, per_page, total, endpoint, {**(request.view_args or {}), **args}, more)


def text(name: str, default: str = "") -> str:
    """A trimmed form field."""
    return (request.form.get(name) or default).strip()


def lines(name: str) -> list[str]:
    """A textarea or comma list as clean items."""
    raw = request.form.get(name) or ""
    return [x.strip() for x in raw.replace(",", "\n").splitlines() if x.strip()]


def checked(name: str) -> bool:
    return request.form.get(name) in ("1", "on", "true", "yes")
