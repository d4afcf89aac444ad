"""Date-times in a chosen IANA time zone: reading one as typed, turning a wall-clock time of a
zone into UTC, and showing a stored UTC time in a zone. Pure.

Daylight saving time, one rule for the admin and the API alike:
- a wall-clock time the clocks skip (spring forward, e.g. 02:30 in Europe/Berlin on the last
  Sunday of March) does not exist: it is refused, and the error names the time it would be
  after the jump;
- a wall-clock time that happens twice (fall back) means its first occurrence, the earlier
  instant (PEP 495 fold=0); the time is shown back with its UTC offset, so it is visible which.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from listmgr.errors import ValidationError

DEFAULT_ZONE = "UTC"
# ISO 8601: a date, "T" (or a space), hours and minutes, optional seconds and fraction, and an
# optional offset ("Z" or ±HH:MM). No bare dates, week dates or Unix timestamps.
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?", re.ASCII
)
EXAMPLE = "2030-05-31T09:00"
LAST_YEAR = 9000  # later times would not fit a date once shown in a zone ahead of UTC


@functools.cache
def zones() -> tuple[str, ...]:
    """Every IANA zone name this system knows, sorted; UTC is always one."""
    return tuple(sorted(zoneinfo.available_timezones() | {DEFAULT_ZONE}))


def zone_name(name: str | None) -> str:
    """The IANA name as given, checked; empty means UTC."""
    name = (name or "").strip()
    if not name:
        return DEFAULT_ZONE
    if name not in zones():
        raise ValidationError(
            f"unknown time zone {name[:64]!r}: choose an IANA name such as Europe/Berlin",
            field="timezone",
        )
    return name


def _zone(name: str) -> tzinfo:
    return UTC if name == DEFAULT_ZONE else zoneinfo.ZoneInfo(name)


def read(raw: str, field: str = "at") -> datetime:
    """An ISO 8601 date-time as typed (naive, or aware when it carries an offset)."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not _ISO.fullmatch(text):
        raise ValidationError(
            f"give a date and time such as {EXAMPLE} (ISO 8601, an offset is optional)",
            field=field,
        )
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"there is no such date and time: {text}", field=field) from None


def to_utc(at: datetime, zone: str) -> datetime:
    """A naive UTC datetime for `at`: an aware time is that instant (the zone is then only how
    it is shown); a naive one is a wall-clock time in the zone (DST rules: module docstring)."""
    tz = _zone(zone)
    out_of_range = ValidationError(
        f"choose a time between now and the year {LAST_YEAR}", field="at"
    )
    try:
        instant = (at if at.tzinfo is not None else at.replace(tzinfo=tz, fold=0)).astimezone(UTC)
        back = at if at.tzinfo is not None else instant.astimezone(tz).replace(tzinfo=None)
    except OverflowError:
        raise out_of_range from None
    if instant.year > LAST_YEAR:
        raise out_of_range
    if back != at:
        raise ValidationError(
            f"{at:%Y-%m-%d %H:%M} does not exist in {zone}: the clocks go forward then "
            f"(that moment reads {back:%H:%M}); choose another time",
            field="at",
        )
    return instant.replace(tzinfo=None)


@dataclass(frozen=True)
class Shown:
    """A UTC time as read in a zone."""

    zone: str
    local: str  # "2030-05-31 09:00"
    offset: str  # "UTC+02:00"
    abbreviation: str  # "CEST" (or the offset again where the zone has no abbreviation)
    utc: str  # "2030-05-31 07:00"
    input_value: str  # "2030-05-31T09:00", for a datetime-local input

    @property
    def label(self) -> str:
        if self.zone == DEFAULT_ZONE:
            return f"{self.utc} UTC"
        return f"{self.local} {self.zone} ({self.offset}) · {self.utc} UTC"


def shown(utc: datetime, zone: str) -> Shown:
    """A naive UTC time as read in the zone (an unknown zone: UTC)."""
    name = zone if zone in zones() else DEFAULT_ZONE
    instant = utc.replace(tzinfo=UTC) if utc.tzinfo is None else utc.astimezone(UTC)
    local = instant.astimezone(_zone(name))
    delta = local.utcoffset()
    minutes = int(delta.total_seconds()) // 60 if delta else 0
    sign = "+" if minutes >= 0 else "-"
    offset = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    abbreviation = local.tzname() or offset
    return Shown(
        name,
        f"{local:%Y-%m-%d %H:%M}",
        offset,
        offset if abbreviation[:1] in "+-" else abbreviation,
        f"{instant:%Y-%m-%d %H:%M}",
        f"{local:%Y-%m-%dT%H:%M}",
    )


def local_iso(utc: datetime, zone: str) -> str:
    """A naive UTC time as ISO 8601 in the zone, with its offset."""
    name = zone if zone in zones() else DEFAULT_ZONE
    return utc.replace(tzinfo=UTC).astimezone(_zone(name)).isoformat()
