"""Times in a chosen zone: reading what was typed, the wall clock of a zone to UTC across
daylight saving changes, and a UTC time shown back in its zone."""

from __future__ import annotations

from datetime import datetime

import pytest

from listmgr import zonetimes
from listmgr.errors import ValidationError


@pytest.mark.parametrize(
    ("local", "zone", "utc"),
    [
        ("2030-07-01T09:00", "Europe/Berlin", "2030-07-01 07:00"),  # summer: UTC+2
        ("2030-01-15T09:00", "Europe/Berlin", "2030-01-15 08:00"),  # winter: UTC+1
        ("2030-07-01T09:00", "America/New_York", "2030-07-01 13:00"),
        ("2030-07-01T09:00", "Asia/Kolkata", "2030-07-01 03:30"),  # half-hour offset
        ("2030-07-01T09:00", "Australia/Sydney", "2030-06-30 23:00"),  # southern winter
        ("2030-12-31T23:30", "Pacific/Kiritimati", "2030-12-31 09:30"),  # UTC+14
        ("2030-07-01T09:00", "UTC", "2030-07-01 09:00"),
    ],
)
def test_a_wall_clock_time_in_a_zone_becomes_utc(local, zone, utc):
    assert f"{zonetimes.to_utc(zonetimes.read(local), zone):%Y-%m-%d %H:%M}" == utc


def test_a_time_the_clocks_skip_is_refused_naming_what_it_would_be():
    # Europe/Berlin springs forward from 02:00 to 03:00 on 2030-03-31.
    with pytest.raises(ValidationError) as err:
        zonetimes.to_utc(datetime(2030, 3, 31, 2, 30), "Europe/Berlin")
    assert err.value.field == "at"
    assert "does not exist in Europe/Berlin" in err.value.message and "03:30" in err.value.message
    # the minutes either side exist
    assert zonetimes.to_utc(datetime(2030, 3, 31, 1, 59), "Europe/Berlin") == datetime(
        2030, 3, 31, 0, 59
    )
    assert zonetimes.to_utc(datetime(2030, 3, 31, 3, 0), "Europe/Berlin") == datetime(
        2030, 3, 31, 1, 0
    )
    with pytest.raises(ValidationError):  # New York: 2030-03-10 02:00 -> 03:00
        zonetimes.to_utc(datetime(2030, 3, 10, 2, 15), "America/New_York")


def test_a_time_that_happens_twice_means_the_first_one():
    # Europe/Berlin falls back from 03:00 CEST to 02:00 CET on 2030-10-27: 02:30 happens twice,
    # first at 00:30 UTC (UTC+2), then at 01:30 UTC (UTC+1).
    assert zonetimes.to_utc(datetime(2030, 10, 27, 2, 30), "Europe/Berlin") == datetime(
        2030, 10, 27, 0, 30
    )
    assert zonetimes.to_utc(datetime(2030, 11, 3, 1, 30), "America/New_York") == datetime(
        2030, 11, 3, 5, 30
    )
    shown = zonetimes.shown(datetime(2030, 10, 27, 0, 30), "Europe/Berlin")
    assert (shown.local, shown.offset, shown.abbreviation) == (
        "2030-10-27 02:30",
        "UTC+02:00",
        "CEST",
    )


def test_a_time_with_an_offset_is_that_instant_whatever_the_zone():
    at = zonetimes.read("2030-07-01T09:00:00+05:30")
    assert zonetimes.to_utc(at, "America/New_York") == datetime(2030, 7, 1, 3, 30)
    assert zonetimes.to_utc(zonetimes.read("2030-07-01T09:00Z"), "Asia/Tokyo") == datetime(
        2030, 7, 1, 9, 0
    )


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "tomorrow",
        "1900000000",  # a Unix time is not a date
        "2030-07-01",  # a day without a time
        "2030-02-30T10:00",  # no such day
        "2030-07-01T25:00",
        "2030-07-01T09:00+25:00",
        "2030-W27-1T09:00",
        "２０３０-07-01T09:00",  # full-width digits
        "2030-07-01T09:00\x00",
        "2030-07-01T09:00 Europe/Berlin",
    ],
)
def test_what_is_not_an_iso_date_and_time_is_refused(raw):
    with pytest.raises(ValidationError) as err:
        zonetimes.read(raw)
    assert err.value.field == "at"


def test_times_beyond_what_a_zone_can_show_are_refused():
    for raw, zone in (("9999-12-31T23:59", "Asia/Tokyo"), ("0001-01-01T00:00+14:00", "UTC")):
        with pytest.raises(ValidationError) as err:
            zonetimes.to_utc(zonetimes.read(raw), zone)
        assert err.value.field == "at" and "year 9000" in err.value.message


@pytest.mark.parametrize(
    "name",
    ["Mars/Olympus", "europe/berlin", "../../etc/passwd", "/etc/localtime", "Europe/", "x" * 500],
)
def test_only_known_iana_names_are_zones(name):
    with pytest.raises(ValidationError) as err:
        zonetimes.zone_name(name)
    assert err.value.field == "timezone" and len(err.value.message) < 200


def test_no_zone_means_utc_and_known_names_pass():
    assert zonetimes.zone_name("") == zonetimes.zone_name(None) == "UTC"
    assert zonetimes.zone_name(" Europe/Berlin ") == "Europe/Berlin"
    assert {"UTC", "Europe/Berlin", "America/New_York"} <= set(zonetimes.zones())


def test_a_utc_time_is_shown_in_its_zone_and_in_utc():
    shown = zonetimes.shown(datetime(2030, 7, 1, 13, 0), "America/New_York")
    assert shown.label == "2030-07-01 09:00 America/New_York (UTC-04:00) · 2030-07-01 13:00 UTC"
    assert shown.input_value == "2030-07-01T09:00" and shown.abbreviation == "EDT"
    assert zonetimes.shown(datetime(2030, 7, 1, 13, 0), "").label == "2030-07-01 13:00 UTC"
    assert zonetimes.local_iso(datetime(2030, 7, 1, 13, 0), "Asia/Kolkata") == (
        "2030-07-01T18:30:00+05:30"
    )
