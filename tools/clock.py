"""Clock and time zone tools backed by the IANA database (zoneinfo)."""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from expressway.toolbox import read_only

_CITY_ALIASES = {
    zone.rsplit("/", 1)[-1].replace("_", " ").lower(): zone
    for zone in available_timezones()
    if "/" in zone
}


class ClockError(ValueError):
    """The time zone or the time is not understood."""


def _zone(name: str) -> ZoneInfo:
    key = _CITY_ALIASES.get(name.strip().lower(), name.strip())
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ClockError(
            f"unknown time zone {name!r}; use an IANA name like 'Europe/Berlin' "
            "or a city like 'Tokyo'"
        ) from error


@read_only
def current_time(timezone: str = "UTC") -> str:
    """The current date and time in an IANA time zone ("Asia/Tokyo") or a major city ("Tokyo")."""
    zone = _zone(timezone)
    now = datetime.now(zone)
    return f"{now:%Y-%m-%d %H:%M} {now.tzname()} ({zone.key}), {now:%A}"


@read_only
def convert_time(time: str, from_timezone: str, to_timezone: str) -> str:
    """Convert a time "HH:MM" or "YYYY-MM-DD HH:MM" from one time zone to another."""
    source, target = _zone(from_timezone), _zone(to_timezone)
    try:
        if len(time.strip()) <= 5:
            clock = datetime.strptime(time.strip(), "%H:%M").time()
            moment = datetime.combine(datetime.now(source).date(), clock, tzinfo=source)
        else:
            moment = datetime.strptime(time.strip(), "%Y-%m-%d %H:%M").replace(tzinfo=source)
    except ValueError as error:
        raise ClockError(f"time {time!r} is not 'HH:MM' or 'YYYY-MM-DD HH:MM'") from error
    converted = moment.astimezone(target)
    return f"{moment:%Y-%m-%d %H:%M} {source.key} = {converted:%Y-%m-%d %H:%M} {target.key}"
