"""The composer's A/B test panel: its form fields read into the campaign's ab_test settings,
and those settings (or the fields sent back after an error) shown in the panel again."""

from __future__ import annotations

from typing import Any

from flask import request

from listmgr.errors import ValidationError
from listmgr.web.admin import ui

SLOTS = 3  # alternatives B, C, D (the campaign's own subject is A)
UNITS = {"minutes": 1, "hours": 60}


def _whole(name: str, what: str, field: str) -> int:
    raw = ui.text(name)
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{what} must be a whole number", field=f"ab_test.{field}") from None


def from_form() -> dict[str, Any] | None:
    """The A/B test as the composer sent it (None: switched off); an empty slot is no variant."""
    if not ui.checked("ab_on"):
        return None
    kind = ui.text("ab_kind") or "subject"
    alternatives = []
    for i in range(1, SLOTS + 1):
        subject, body = ui.text(f"ab_subject_{i}"), request.form.get(f"ab_body_{i}") or ""
        if subject or (kind == "content" and body.strip()):
            alternatives.append(
                {"subject": subject, **({"body": body} if kind == "content" else {})}
            )
    unit = ui.text("ab_wait_unit") or "hours"
    if unit not in UNITS:
        raise ValidationError("wait in minutes or hours", field="ab_test.wait_minutes")
    return {
        "kind": kind,
        "metric": ui.text("ab_metric") or "clicks",
        "test_percent": _whole("ab_percent", "the test share", "test_percent"),
        "wait_minutes": _whole("ab_wait", "the wait", "wait_minutes") * UNITS[unit],
        "alternatives": alternatives,
    }


def panel(values: dict[str, Any]) -> dict[str, Any]:
    """What the panel shows: the form as sent (after an error) or the saved settings."""
    if "ab_kind" in values:  # the form sent back, its variants lettered as they are checked
        filled = [
            (values.get(f"ab_subject_{i}", ""), values.get(f"ab_body_{i}", ""))
            for i in range(1, SLOTS + 1)
        ]
        filled = [v for v in filled if v[0].strip() or v[1].strip()]
        filled += [("", "")] * (SLOTS - len(filled))
        return {
            "on": values.get("ab_on") in ("1", "on"),
            "kind": values.get("ab_kind") or "subject",
            "metric": values.get("ab_metric") or "clicks",
            "percent": values.get("ab_percent", ""),
            "wait": values.get("ab_wait", ""),
            "unit": values.get("ab_wait_unit") or "hours",
            "subjects": [subject for subject, _ in filled],
            "bodies": [body for _, body in filled],
        }
    saved = values.get("ab_test") or {}
    alternatives = list(saved.get("alternatives", []))
    alternatives += [{}] * (SLOTS - len(alternatives))
    wait = int(saved.get("wait_minutes", 240))
    hours = wait % 60 == 0 and wait > 0
    return {
        "on": bool(saved),
        "kind": saved.get("kind", "subject"),
        "metric": saved.get("metric", "clicks"),
        "percent": saved.get("test_percent", 20),
        "wait": wait // 60 if hours else wait,
        "unit": "hours" if hours else "minutes",
        "subjects": [v.get("subject", "") for v in alternatives],
        "bodies": [v.get("body", "") for v in alternatives],
    }
