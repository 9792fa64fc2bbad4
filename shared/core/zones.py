"""Dime.Scheduler's time zone: its name (IANA or Windows), and local wall-clock time read in it.

Dime.Scheduler is a .NET product: its administrators know their zone by its Windows name
("Romance Standard Time") as often as by its IANA name ("Europe/Brussels"). Both are accepted;
a Windows name is mapped through CLDR's windowsZones table (as packaged by `tzlocal`, kept in
step with CLDR) to its IANA zone, whose rules `zoneinfo` then reads from the host's zone database
(a host without one is named in the error, rather than every zone being "unknown").

Wall-clock times at a change of offset (Python's zoneinfo, PEP 495 `fold`):

* A time that does not exist (spring forward: 02:30 on 2026-03-29 in Europe/Brussels) is read
  with the offset in force before the change, so it lands as far after the change as it was
  after the last valid time: 02:30 → 03:30 CEST (01:30Z). Nothing is refused: refusing would
  lose a planned appointment over a board entry a planner can see.
* A time that exists twice (fall back: 02:30 on 2026-10-25) is read as standard time, the later
  of the two (02:30 CET, 01:30Z), as .NET's `TimeZoneInfo.ConvertTimeToUtc` assumes for an
  ambiguous time ("assumes that it is the standard time of the source time zone").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_UTC_NAMES = ("UTC", "Z", "ETC/UTC", "GMT", "ETC/GMT", "COORDINATED UNIVERSAL TIME")


class UnknownZone(ValueError):
    """Neither an IANA zone nor a Windows zone name this app knows."""


@lru_cache(maxsize=1)
def _windows_zones() -> dict[str, str]:
    from tzlocal.windows_tz import win_tz  # CLDR windowsZones.xml: Windows name → IANA name

    return {name.lower(): iana for name, iana in win_tz.items()}


def canonical_zone(name: str) -> str:
    """The IANA name of a zone given by its IANA or Windows name; UnknownZone otherwise."""
    raw = name.strip()
    if raw.upper() in _UTC_NAMES:
        return "UTC"
    iana = _windows_zones().get(raw.lower(), raw)
    if iana.upper() in _UTC_NAMES:
        return "UTC"
    try:
        ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        if not available_timezones():
            raise UnknownZone(f"time zone {raw[:60]!r}: this host has no time zone database (tzdata)") from None
        raise UnknownZone(f"unknown time zone {raw[:60]!r}") from None
    return iana


@lru_cache(maxsize=16)
def zone_named(name: str) -> tzinfo:
    """The tzinfo of a zone name (IANA or Windows); UnknownZone when it has none."""
    iana = canonical_zone(name)
    return UTC if iana == "UTC" else ZoneInfo(iana)


def localize(wall_clock: datetime, zone: tzinfo) -> datetime:
    """A naive wall-clock time in `zone` as an aware datetime (see the module doc for the edges)."""
    early = wall_clock.replace(tzinfo=zone, fold=0)
    late = wall_clock.replace(tzinfo=zone, fold=1)
    if early.utcoffset() == late.utcoffset():
        return early  # the usual case: one reading
    if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall_clock:
        return early  # does not exist: fold=0 is the offset before the change (02:30 → 03:30)
    # Exists twice: standard time, as .NET assumes (the reading without daylight saving).
    return early if early.dst() == timedelta(0) else late


def local_midnight_utc(day: datetime, zone: tzinfo) -> datetime:
    """Midnight at the start of `day`'s date in `zone`, in UTC (an all-day event on the board)."""
    return localize(datetime(day.year, day.month, day.day), zone).astimezone(UTC)
