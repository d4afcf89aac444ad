"""The preference center's form (templates/pages/public/preferences.html and _profile.html) read
into plain values for services.subscriptions.update_profile and update_lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from listmgr.errors import ValidationError

FORM_MARKER = "profile_form"  # a hidden input, sent only when the profile section was on the page
TICKED = ("1", "on", "true", "yes")


@dataclass(frozen=True)
class ProfileAnswers:
    """The profile section as sent: the name (None: not on the form), values of the fields
    shown (one value, or a list of several), the interests ticked, the pause (None: keep, 0:
    end, or days) and consents."""

    name: str | None
    fields: dict[str, Any]
    interests: list[str]
    pause: int | None
    consents: dict[str, bool]


@dataclass(frozen=True)
class PreferenceAnswers:
    lists: list[str]  # the slugs of the lists ticked
    levels: dict[str, str]  # list slug -> the frequency chosen
    profile: ProfileAnswers | None  # None: the page had no profile section


def _ticked(form: MultiDict[str, str], name: str) -> bool:
    return str(form.get(name, "")).strip().lower() in TICKED


def _pause(raw: str | None) -> int | None:
    """The pause select: "keep" (or absent), "" (no pause) or a number of days."""
    if raw is None or raw == "keep":
        return None
    if raw == "":
        return 0
    if raw.isascii() and raw.isdigit() and raw[0] != "0":
        return int(raw)
    raise ValidationError("Please choose how long to pause from the list.", field="pause")


def read(form: MultiDict[str, str]) -> PreferenceAnswers:
    """The answers of one post of the preference form (absent checkboxes of a page without the
    profile section mean nothing, so that section is then None)."""
    lists = form.getlist("lists")
    levels = {name[6:]: value for name, value in form.items() if name.startswith("level_")}
    if form.get(FORM_MARKER) != "1":
        return PreferenceAnswers(lists, levels, None)
    fields: dict[str, Any] = {}
    for name in form:
        if name.startswith("field_"):
            values = form.getlist(name)
            fields[name[6:]] = values if len(values) > 1 else values[0]
    profile = ProfileAnswers(
        name=form.get("name"),
        fields=fields,
        interests=form.getlist("interests"),
        pause=_pause(form.get("pause")),
        consents={
            "profiling": _ticked(form, "consent_profiling"),
            "tracking": _ticked(form, "consent_tracking"),
        },
    )
    return PreferenceAnswers(lists, levels, profile)
