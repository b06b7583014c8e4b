"""HL7 v2 DTM/TS values to FHIR date and dateTime strings."""

import re
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_TIMESTAMP = re.compile(
    r"^(?P<year>\d{4})(?P<month>\d{2})?(?P<day>\d{2})?(?P<hour>\d{2})?(?P<minute>\d{2})?(?P<second>\d{2})?"
    r"(?:\.(?P<fraction>\d{1,4}))?(?P<offset>[+-]\d{4})?$"
)


class InvalidDate(ValueError):
    """The value is not an HL7 date/time or names a day or time that does not exist (no value quoted)."""


def offset_read(value: str) -> str | None:
    """The +hhmm/-hhmm offset a timestamp carries, as FHIR writes it (+hh:mm), or None."""
    match = _TIMESTAMP.match(value.strip())
    if match is None or match.group("offset") is None:
        return None
    offset = match.group("offset")
    return f"{offset[:3]}:{offset[3:]}"


def _zone_offset(moment: datetime, zone_name: str) -> str:
    try:
        zone: timezone | ZoneInfo = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    offset = moment.replace(tzinfo=zone).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def fhir_datetime(value: str, *, default_offset: str | None, default_timezone: str) -> str:
    """A FHIR dateTime of the same precision; a time without offset gets the message's (or the zone's)."""
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        raise InvalidDate("is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")
    parts = match.groupdict()
    year = int(parts["year"])
    month = int(parts["month"] or 1)
    day = int(parts["day"] or 1)
    try:
        date(year, month, day)
    except ValueError as error:
        raise InvalidDate("names a day that does not exist") from error
    if parts["hour"] is None:
        text = parts["year"]
        if parts["month"]:
            text += f"-{parts['month']}"
        if parts["day"]:
            text += f"-{parts['day']}"
        return text
    hour, minute, second = int(parts["hour"]), int(parts["minute"] or 0), int(parts["second"] or 0)
    if parts["day"] is None or hour > 23 or minute > 59 or second > 59:
        raise InvalidDate("names a time that does not exist")
    moment = datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 - the offset is applied as text below
    if parts["offset"]:
        offset = f"{parts['offset'][:3]}:{parts['offset'][3:]}"
        if int(parts["offset"][3:]) > 59 or int(parts["offset"][1:3]) > 14:
            raise InvalidDate("has a time-zone offset that does not exist")
    else:
        # HL7 v2: a time without offset is in the sender's zone, which MSH-7's offset states when present.
        offset = default_offset or _zone_offset(moment, default_timezone)
    fraction = f".{parts['fraction']}" if parts["fraction"] else ""
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}{fraction}{offset}"


def fhir_date(value: str) -> str:
    """The date part only (a birth date), whatever the precision sent."""
    text = fhir_datetime(value, default_offset="+00:00", default_timezone="UTC")
    return text[:10]


def datetime_parse(text: str) -> datetime | None:
    """A FHIR dateTime with time and offset back to an aware datetime (for durations); None otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
