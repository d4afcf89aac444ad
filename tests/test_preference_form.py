"""The preference form read into plain values: what each input means, and what its absence
means (an unticked box sends nothing)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from listmgr.errors import ValidationError
from listmgr.web.preference_form import FORM_MARKER, read


def test_a_page_without_the_profile_section_sends_lists_only() -> None:
    answers = read(MultiDict([("lists", "news"), ("lists", "tips"), ("level_news", "weekly")]))
    assert answers.lists == ["news", "tips"]
    assert answers.levels == {"news": "weekly"}
    assert answers.profile is None


def test_the_profile_section_as_plain_values() -> None:
    form = MultiDict(
        [
            (FORM_MARKER, "1"),
            ("field_nickname", "Ada"),
            ("field_topics", "tips"),
            ("field_topics", "events"),
            ("field_birthday", ""),
            ("interests", "rust"),
            ("interests", "python"),
            ("pause", "30"),
            ("consent_profiling", "on"),
        ]
    )
    profile = read(form).profile
    assert profile is not None
    assert profile.fields == {"nickname": "Ada", "topics": ["tips", "events"], "birthday": ""}
    assert profile.interests == ["rust", "python"]
    assert profile.pause == 30
    assert profile.consents == {"profiling": True, "tracking": False}


@pytest.mark.parametrize(("raw", "pause"), [(None, None), ("keep", None), ("", 0), ("90", 90)])
def test_the_pause_choice(raw: str | None, pause: int | None) -> None:
    form = MultiDict([(FORM_MARKER, "1")] + ([("pause", raw)] if raw is not None else []))
    profile = read(form).profile
    assert profile is not None and profile.pause == pause


@pytest.mark.parametrize("raw", ["forever", "030", "0", "-30", "7.5", "٣٠", " 30"])
def test_a_pause_not_offered_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as err:
        read(MultiDict([(FORM_MARKER, "1"), ("pause", raw)]))
    assert err.value.field == "pause"


@pytest.mark.parametrize("value", ["1", "on", "true", "YES", " yes "])
def test_ticked_consents(value: str) -> None:
    profile = read(MultiDict([(FORM_MARKER, "1"), ("consent_tracking", value)])).profile
    assert profile is not None and profile.consents == {"profiling": False, "tracking": True}
