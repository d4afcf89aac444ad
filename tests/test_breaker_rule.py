"""The circuit breaker's rule (pure): counts in the window in, a reason or None out."""

from __future__ import annotations

import pytest

from listmgr.errors import ConfigError
from listmgr.mail.breaker import Limits, percent, verdict
from listmgr.settings import load_settings

SES = Limits(bounce_rate=0.05, complaint_rate=0.001, window=10000, min_deliveries=1000)


def test_reason_names_rate_window_and_limit():
    assert verdict(SES, handed=1000, bounces=62, complaints=0) == (
        "hard bounces 6.2 % of the last 1,000 messages (limit 5 %)"
    )
    assert verdict(SES, handed=10000, bounces=0, complaints=25) == (
        "complaints 0.25 % of the last 10,000 messages (limit 0.1 %)"
    )
    both = verdict(SES, handed=2000, bounces=200, complaints=3)
    assert both == (
        "hard bounces 10 % of the last 2,000 messages (limit 5 %); "
        "complaints 0.15 % of the last 2,000 messages (limit 0.1 %)"
    )


def test_at_or_under_the_limit_carries_on():
    assert verdict(SES, handed=1000, bounces=50, complaints=1) is None  # exactly 5 % and 0.1 %
    assert verdict(SES, handed=10000, bounces=499, complaints=9) is None


def test_just_over_the_limit_never_reads_as_the_limit():
    reason = verdict(SES, handed=10000, bounces=501, complaints=0)
    assert reason is not None and reason.startswith("hard bounces 5.01 %")
    reason = verdict(SES, handed=100000, bounces=5001, complaints=0)
    assert reason is not None and reason.startswith("hard bounces 5.001 %"), reason


def test_no_verdict_before_the_minimum():
    assert verdict(SES, handed=999, bounces=999, complaints=999) is None
    assert verdict(SES, handed=0, bounces=0, complaints=0) is None
    none_needed = Limits(0.05, 0.001, window=100, min_deliveries=0)
    assert verdict(none_needed, handed=1, bounces=1, complaints=0) is not None
    assert verdict(none_needed, handed=0, bounces=0, complaints=0) is None


@pytest.mark.parametrize(
    "limits",
    [
        Limits(0.05, 0.001, window=0, min_deliveries=10),
        Limits(0, 0, window=100, min_deliveries=10),
    ],
)
def test_switched_off(limits):
    assert not limits.enabled
    assert verdict(limits, handed=100, bounces=100, complaints=100) is None


def test_one_check_off_leaves_the_other():
    bounces_only = Limits(0.05, 0, window=100, min_deliveries=10)
    assert verdict(bounces_only, handed=100, bounces=0, complaints=100) is None
    assert verdict(bounces_only, handed=100, bounces=6, complaints=0) is not None


def test_percent():
    assert [percent(x) for x in (0.05, 0.001, 0.062, 1.0, 0.0, 0.00004)] == [
        "5",
        "0.1",
        "6.2",
        "100",
        "0",
        "0",
    ]


def test_settings_take_off_and_refuse_nonsense():
    env = {"LISTMGR_BREAKER_WINDOW": "off", "LISTMGR_BREAKER_COMPLAINT_RATE": "0"}
    settings = load_settings(environ=env)
    assert settings.breaker_window == 0 and settings.breaker_complaint_rate == 0
    assert settings.breaker_bounce_rate == 0.05 and settings.breaker_min_deliveries == 1000
    for key, bad in (("BREAKER_BOUNCE_RATE", "5"), ("BREAKER_MIN_DELIVERIES", "-1")):
        with pytest.raises(ConfigError, match=key.lower()):
            load_settings(environ={f"LISTMGR_{key}": bad})
