"""Mailing lists: create, read, update, and what a list's public sign-up form shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import segments as compiler
from listmgr.addresses import normalize_email
from listmgr.errors import Conflict, NotFound, ValidationError
from listmgr.mail.compose import clean_header
from listmgr.models import SLUG, FieldDef, Interest, MailingList, Membership, OptIn
from listmgr.runtime import Runtime
from listmgr.services import segments
from listmgr.services.fielddefs import FieldInfo, InterestInfo, field_info, interest_info
from listmgr.services.notice_follow import changes_notices

LEVEL_LENGTH = 64  # col(Membership.opt_in_level)
MAX_LEVELS = 20
EDITABLE = (
    "name",
    "description",
    "opt_in",
    "from_name",
    "from_email",
    "reply_to",
    "postal_address",
    "consent_wording",
    "form_fields",
    "form_interests",
    "opt_in_levels",
    "archive",
    "welcome_mail",
    "welcome_text",
)
WELCOME_TEXT_LENGTH = 5000


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "slug" in out and (not isinstance(out["slug"], str) or not SLUG.match(out["slug"])):
        raise ValidationError("slug: lower-case letters, digits and dashes, up to 63", field="slug")
    if "name" in out:
        if not isinstance(out["name"], str) or not out["name"].strip():
            raise ValidationError("name is required", field="name")
        out["name"] = clean_header(out["name"].strip(), "name")
    if "opt_in" in out and out["opt_in"] not in (OptIn.double.value, OptIn.single.value):
        raise ValidationError("opt_in must be 'double' or 'single'", field="opt_in")
    for key in ("from_email", "reply_to"):
        if out.get(key):
            out[key] = normalize_email(out[key])
    if out.get("from_name"):
        out["from_name"] = clean_header(out["from_name"], "from_name")
    for key in ("form_fields", "form_interests", "opt_in_levels"):
        if key in out and (
            not isinstance(out[key], list) or not all(isinstance(x, str) for x in out[key])
        ):
            raise ValidationError(f"{key} must be a list of strings", field=key)
    if "opt_in_levels" in out:
        out["opt_in_levels"] = _levels(out["opt_in_levels"])
    if "archive" in out and not isinstance(out["archive"], bool):
        raise ValidationError("archive takes true or false", field="archive")
    if "welcome_mail" in out and not isinstance(out["welcome_mail"], bool):
        raise ValidationError("welcome_mail takes true or false", field="welcome_mail")
    if "welcome_text" in out:
        if not isinstance(out["welcome_text"], str):
            raise ValidationError("welcome_text must be text", field="welcome_text")
        out["welcome_text"] = out["welcome_text"].strip()
        if len(out["welcome_text"]) > WELCOME_TEXT_LENGTH:
            raise ValidationError(
                f"welcome_text: at most {WELCOME_TEXT_LENGTH} characters", field="welcome_text"
            )
    return out


def _levels(levels: list[str]) -> list[str]:
    """Opt-in levels: distinct single lines that fit a membership's opt_in_level."""
    out: list[str] = []
    if len(levels) > MAX_LEVELS:
        raise ValidationError(
            f"a list offers at most {MAX_LEVELS} opt-in levels", field="opt_in_levels"
        )
    for i, raw in enumerate(levels):
        level = raw.strip()
        if not level or len(level) > LEVEL_LENGTH or not level.isprintable():
            raise ValidationError(
                f"an opt-in level must be one line of 1 to {LEVEL_LENGTH} characters",
                field=f"opt_in_levels[{i}]",
            )
        if level in out:
            raise ValidationError(
                f"opt-in levels must be unique: {level!r} appears twice",
                field=f"opt_in_levels[{i}]",
            )
        out.append(level)
    return out


def _known(key: str, items: list[str], known: set[str], noun: str) -> None:
    """Each item names a defined field (or interest), once."""
    for i, item in enumerate(items):
        if item not in known:
            raise ValidationError(f"there is no {noun} {item!r}", field=f"{key}[{i}]")
        if item in items[:i]:
            raise ValidationError(f"the {noun} {item!r} appears twice", field=f"{key}[{i}]")


def _check_offered(s: Session, values: dict[str, Any]) -> None:
    """The sign-up form offers only fields and interests that exist."""
    if values.get("form_fields"):
        _known(
            "form_fields", values["form_fields"], set(s.scalars(select(col(FieldDef.key)))), "field"
        )
    if values.get("form_interests"):
        _known(
            "form_interests",
            values["form_interests"],
            set(s.scalars(select(col(Interest.key)))),
            "interest",
        )


@dataclass(frozen=True)
class ListInfo:
    id: int
    slug: str
    name: str
    opt_in: str
    description: str
    from_name: str
    from_email: str
    reply_to: str
    postal_address: str
    consent_wording: str
    form_fields: list[str]
    form_interests: list[str]
    opt_in_levels: list[str]
    counts: dict[str, int]
    archive: bool = False  # past campaigns shown at /archive/<slug>
    welcome_mail: bool = False  # a welcome mail to each person who confirms
    welcome_text: str = ""  # its own words (plain text; empty: a short standard welcome)


def _info(lst: MailingList, counts: dict[int, dict[str, int]]) -> ListInfo:
    assert lst.id is not None  # a stored row
    return ListInfo(
        lst.id,
        lst.slug,
        lst.name,
        lst.opt_in,
        lst.description,
        lst.from_name,
        lst.from_email,
        lst.reply_to,
        lst.postal_address,
        lst.consent_wording,
        list(lst.form_fields or []),
        list(lst.form_interests or []),
        list(lst.opt_in_levels or []),
        counts[lst.id],
        bool(lst.archive),
        bool(lst.welcome_mail),
        lst.welcome_text,
    )


@changes_notices
def create(rt: Runtime, **values: Any) -> int:
    """A new list; the slug is its public name in URLs."""
    values = _validate({"opt_in": OptIn.double.value, **values})
    unknown = set(values) - set(EDITABLE) - {"slug"}
    if unknown:
        raise ValidationError(f"unknown property {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    if "slug" not in values or "name" not in values:
        raise ValidationError(
            "slug and name are required", field="slug" if "slug" not in values else "name"
        )
    with rt.db.session() as s:
        if s.scalar(select(col(MailingList.id)).where(col(MailingList.slug) == values["slug"])):
            raise Conflict(f"a list {values['slug']!r} already exists", field="slug")
        _check_offered(s, values)
        lst = MailingList(**values)
        s.add(lst)
        s.flush()
        assert lst.id is not None  # set by the flush
        return lst.id


@changes_notices
def update(rt: Runtime, slug: str, **values: Any) -> None:
    values = _validate(values)
    bad = set(values) - set(EDITABLE)
    if bad:
        raise ValidationError(f"cannot change {sorted(bad)[0]!r}", field=sorted(bad)[0])
    with rt.db.session() as s:
        lst = s.scalar(select(MailingList).where(col(MailingList.slug) == slug))
        if lst is None:
            raise NotFound(f"no list {slug!r}", field="slug")
        _check_offered(s, values)
        if "opt_in_levels" in values:
            _check_levels_removed(
                s, lst, set(lst.opt_in_levels or []) - set(values["opt_in_levels"])
            )
        for key, value in values.items():
            setattr(lst, key, value)


def _check_levels_removed(s: Session, lst: MailingList, removed: set[str]) -> None:
    """A level members chose, or that rules name, stays (their choice would silently read as
    something else, and the rules would stop working)."""
    if not removed:
        return
    named = ", ".join(repr(x) for x in sorted(removed))
    held = (
        s.scalar(
            select(func.count())
            .select_from(Membership)
            .where(col(Membership.list_id) == lst.id, col(Membership.opt_in_level).in_(removed))
        )
        or 0
    )
    if held:
        raise Conflict(
            f"{held} member(s) chose a level you removed ({named}); they keep "
            "their choice until they change it",
            field="opt_in_levels",
        )
    gone = {("list:" + lst.slug, level) for level in removed}
    users = segments.users_of(s, lambda rules: bool(gone & compiler.values_named(rules)))
    if users:
        raise Conflict(
            f"{users} name a level you removed ({named}): change their rules first",
            field="opt_in_levels",
        )


def _counts(s: Session, list_ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {i: {} for i in list_ids}
    rows = s.execute(
        select(col(Membership.list_id), col(Membership.status), func.count())
        .where(col(Membership.list_id).in_(list_ids))
        .group_by(col(Membership.list_id), col(Membership.status))
    )
    for lid, status, n in rows:
        out[lid][status] = n
    return out


def all_lists(rt: Runtime) -> list[ListInfo]:
    with rt.db.session() as s:
        lists = list(s.scalars(select(MailingList).order_by(col(MailingList.name))))
        counts = _counts(s, [lst.id for lst in lists if lst.id is not None])
        return [_info(lst, counts) for lst in lists]


def get(rt: Runtime, slug: str) -> ListInfo:
    with rt.db.session() as s:
        lst = s.scalar(select(MailingList).where(col(MailingList.slug) == slug))
        if lst is None:
            raise NotFound(f"no list {slug!r}", field="slug")
        assert lst.id is not None  # a stored row
        return _info(lst, _counts(s, [lst.id]))


def names(rt: Runtime) -> list[tuple[str, str]]:
    """(slug, name) of every list, by name: for pickers, without counting members."""
    with rt.db.session() as s:
        return [
            (slug, name)
            for slug, name in s.execute(
                select(col(MailingList.slug), col(MailingList.name)).order_by(col(MailingList.name))
            )
        ]


@dataclass(frozen=True)
class SignupList:
    """A list as its public sign-up form names it."""

    slug: str
    name: str
    description: str
    consent_wording: str


@dataclass(frozen=True)
class SignupForm:
    """What a list's public sign-up form shows: the fields and interests it offers, in the
    order the list chose them."""

    lst: SignupList
    fields: list[FieldInfo]
    interests: list[InterestInfo]


def signup_form(rt: Runtime, slug: str) -> SignupForm:
    """The public sign-up form of a list; NotFound for a slug no list has."""
    with rt.db.session() as s:
        lst = s.scalar(select(MailingList).where(col(MailingList.slug) == slug))
        if lst is None:
            raise NotFound(f"There is no list called {slug!r}.", field="list")
        offered_fields = list(lst.form_fields or [])
        offered_interests = list(lst.form_interests or [])
        fields = sorted(
            s.scalars(select(FieldDef).where(col(FieldDef.key).in_(offered_fields))),
            key=lambda f: offered_fields.index(f.key),
        )
        interests = sorted(
            s.scalars(select(Interest).where(col(Interest.key).in_(offered_interests))),
            key=lambda i: offered_interests.index(i.key),
        )
        return SignupForm(
            SignupList(lst.slug, lst.name, lst.description, lst.consent_wording),
            [field_info(f) for f in fields],
            [interest_info(i) for i in interests],
        )
