"""Campaign templates: the starting designs shipped with listmgr (read-only) and the templates
people save (name, content format, body). A body is checked as a campaign template when it is
saved, so a campaign started from one saves cleanly."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import resource_dir
from listmgr.errors import Conflict, NotFound, ValidationError
from listmgr.mail import content
from listmgr.models import CampaignTemplate, id_of, utcnow
from listmgr.runtime import Runtime
from listmgr.services import audit, campaign_preview, settings_store
from listmgr.services.campaign_setup import checked, sample_list
from listmgr.settings import Settings

DESIGNS = "campaign_designs"
NAME_LIMIT = 200


@dataclass(frozen=True)
class Design:
    """A starting design shipped with listmgr."""

    key: str
    name: str
    description: str
    content_format: str
    body: str


@dataclass(frozen=True)
class TemplateInfo:
    id: int
    name: str
    content_format: str
    body: str
    created_at: str
    updated_at: str
    created_by: str


@cache
def designs() -> tuple[Design, ...]:
    """The shipped designs, in the order designs.toml lists them."""
    folder = resource_dir("templates") / DESIGNS
    index = tomllib.loads((folder / "designs.toml").read_text(encoding="utf-8"))
    return tuple(
        Design(
            key,
            meta["name"],
            meta["description"],
            "html",
            (folder / f"{key}.html").read_text(encoding="utf-8"),
        )
        for key, meta in index.items()
    )


def design(key: str) -> Design:
    for d in designs():
        if d.key == key:
            return d
    raise NotFound(f"there is no design {key!r}", field="design")


def _info(row: CampaignTemplate) -> TemplateInfo:
    return TemplateInfo(
        id_of(row),
        row.name,
        row.content_format,
        row.body,
        row.created_at.isoformat(timespec="seconds"),
        row.updated_at.isoformat(timespec="seconds"),
        row.created_by,
    )


def _row(s: Session, template_id: int, *, lock: bool = False) -> CampaignTemplate:
    query = select(CampaignTemplate).where(col(CampaignTemplate.id) == template_id)
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"there is no template {template_id}")
    return row


def _clean(s: Session, settings: Settings, values: dict[str, Any]) -> dict[str, str]:
    """Checked values; raises naming the first bad field."""
    unknown = sorted(set(values) - {"name", "content_format", "body"})
    if unknown:
        raise ValidationError(f"unknown property {unknown[0]!r}", field=unknown[0])
    name, fmt, body = (values.get(k) for k in ("name", "content_format", "body"))
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("give the template a name", field="name")
    name = " ".join(name.split())
    if len(name) > NAME_LIMIT or not name.isprintable():
        raise ValidationError(
            f"the name must be one line of at most {NAME_LIMIT} characters", field="name"
        )
    if fmt not in content.FORMATS:
        raise ValidationError(content.FORMAT_ERROR, field="content_format")
    if not isinstance(body, str) or not body.strip():
        raise ValidationError("the template body is required", field="body")
    if len(body) > campaign_preview.MAX_TEXT:
        raise ValidationError("the template body is too large", field="body")
    checked(
        s,
        settings,
        campaign_id=None,
        name=name,
        source=content.Content(subject=name, body=body, content_format=fmt),
        views=sample_list(settings),
    )
    return {"name": name, "content_format": fmt, "body": body}


def _taken(s: Session, name: str, but: int | None = None) -> None:
    query = select(col(CampaignTemplate.id)).where(col(CampaignTemplate.name) == name)
    if but is not None:
        query = query.where(col(CampaignTemplate.id) != but)
    if s.scalar(query) is not None:
        raise Conflict(f"there is already a template named {name!r}", field="name")


def _audit(s: Session, actor: str, action: str, template_id: int, **detail: Any) -> None:
    s.add(
        audit.entry(
            actor=actor or "system",
            action=action,
            target_type="template",
            target_id=template_id,
            detail=detail,
        )
    )


def all_templates(rt: Runtime) -> list[TemplateInfo]:
    """Saved templates by name."""
    with rt.db.session() as s:
        rows = s.scalars(select(CampaignTemplate).order_by(col(CampaignTemplate.name)))
        return [_info(r) for r in rows]


def get(rt: Runtime, template_id: int) -> TemplateInfo:
    with rt.db.session() as s:
        return _info(_row(s, template_id))


def create(rt: Runtime, *, actor: str = "", **values: Any) -> int:
    """Save a new template (its body checked now)."""
    settings = settings_store.effective(rt)  # before the session opens (SQLite: one writer)
    with rt.db.session() as s:
        clean = _clean(s, settings, values)
        _taken(s, clean["name"])
        row = CampaignTemplate(
            name=clean["name"],
            content_format=clean["content_format"],
            body=clean["body"],
            created_by=actor[:200],
        )
        s.add(row)
        s.flush()
        _audit(s, actor, "template.create", id_of(row), name=clean["name"])
        return id_of(row)


def update(rt: Runtime, template_id: int, *, actor: str = "", **values: Any) -> None:
    """Change a template's name, format or body (all checked again together)."""
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        row = _row(s, template_id, lock=True)
        clean = _clean(s, settings, values)
        _taken(s, clean["name"], but=template_id)
        changed = sorted(k for k, v in clean.items() if getattr(row, k) != v)
        for key, value in clean.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        _audit(s, actor, "template.edit", template_id, fields=changed)


def delete(rt: Runtime, template_id: int, *, actor: str = "") -> None:
    """Delete a template (campaigns started from it keep their own copy of the body)."""
    with rt.db.session() as s:
        row = _row(s, template_id, lock=True)
        name = row.name
        s.delete(row)
        _audit(s, actor, "template.delete", template_id, name=name)


def preview(rt: Runtime, *, body: str, content_format: str, name: str) -> campaign_preview.Preview:
    """The message a sample person would get from this body, in the built-in layout."""
    return campaign_preview.preview_values(
        rt, {"name": name, "subject": name, "body": body, "content_format": content_format}
    )
