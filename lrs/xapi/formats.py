"""Checks and parsers for the formatted strings xAPI defines.

IRIs are checked with ``rfc3986-validator`` after the RFC 3987 §3.1 mapping of an IRI to a URI
(non-ASCII characters percent-encoded), language tags with ``langcodes`` (RFC 5646 validity).
Timestamps and durations use the profile of ISO 8601 that xAPI allows, which is narrower than
what general ISO 8601 parsers accept (``P4W1D``, ``PT``, week dates and ``-00:00`` offsets must be
rejected), so they are matched by the expressions below and converted with the standard library.

Every check is a pure function of its string and most are cached: statements repeat the same
verbs, activity ids and language tags, so validation cost stays flat under load. Only strings
of up to ``CACHED_UP_TO`` characters are cached, so hostile long values cannot fill memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache, wraps

import langcodes
from rfc3986_validator import validate_rfc3986

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")

CACHED_UP_TO = 512
"""Longest string whose check result is cached (a cache holds at most maxsize × this much)."""


def cached_when_short(maxsize: int) -> Callable[[Callable[[str], bool]], Callable[[str], bool]]:
    """``lru_cache`` for the short strings a check sees; longer ones are checked each time."""

    def decorate(check: Callable[[str], bool]) -> Callable[[str], bool]:
        cached = lru_cache(maxsize=maxsize)(check)

        @wraps(check)
        def checked(value: str) -> bool:
            return cached(value) if len(value) <= CACHED_UP_TO else check(value)

        checked.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return checked

    return decorate


def _iri_to_uri(value: str) -> str:
    if value.isascii():
        return value
    return "".join(ch if ord(ch) < 128 else "".join(f"%{b:02X}" for b in ch.encode()) for ch in value)


@cached_when_short(maxsize=65536)
def is_iri(value: str) -> bool:
    """An absolute IRI (RFC 3987): a scheme, then characters an IRI may hold."""
    if not value or not _SCHEME.match(value):
        return False
    return bool(validate_rfc3986(_iri_to_uri(value), rule="URI"))


def is_mailto(value: str) -> bool:
    """``mailto:`` followed by an e-mail address, as agents' ``mbox`` requires."""
    if not value.startswith("mailto:") or not is_iri(value):
        return False
    local, at, domain = value[7:].partition("@")
    return bool(local and at and domain) and "@" not in domain


_SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")


def is_sha1_hex(value: str) -> bool:
    return bool(_SHA1_HEX.fullmatch(value))


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")


def is_uuid(value: str) -> bool:
    """A UUID in its hyphenated form with the RFC 4122 variant bits."""
    return bool(_UUID.fullmatch(value))


_TAG_CHARACTERS = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*")


@cached_when_short(maxsize=4096)
def is_language_tag(value: str) -> bool:
    """A valid RFC 5646 language tag (registered subtags, well-formed extensions)."""
    if not _TAG_CHARACTERS.fullmatch(value):  # langcodes would quietly accept "en_US"
        return False
    try:
        return langcodes.tag_is_valid(value)
    except Exception:  # langcodes raises on some malformed private-use forms
        return False


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*(\s*;.*)?", re.S)


def is_media_type(value: str) -> bool:
    return bool(_MEDIA_TYPE.fullmatch(value))


# --- timestamps ---------------------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?"
    r"(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_NEGATIVE_ZERO_OFFSETS = frozenset({"-00", "-0000", "-00:00"})


def parse_timestamp(value: str) -> datetime | None:
    """Parse an xAPI timestamp to an aware UTC datetime, or ``None`` when it is not one.

    RFC 3339 date-times are accepted, with the common ISO 8601 offset spellings ``+hhmm`` and
    ``+hh``; ``-00:00`` and its variants ("unknown local offset") are rejected as xAPI asks.
    A missing offset is read as UTC. Fractions beyond microseconds are truncated.
    """
    m = _TIMESTAMP.fullmatch(value)
    if m is None:
        return None
    zone = m["zone"]
    if zone in _NEGATIVE_ZERO_OFFSETS:
        return None
    frac = (m["frac"] or "")[:7]
    if zone is None or zone in ("Z", "z"):
        offset = "+00:00"
    elif len(zone) == 3:
        offset = zone + ":00"
    elif len(zone) == 5:
        offset = zone[:3] + ":" + zone[3:]
    else:
        offset = zone
    if int(offset[1:3]) > 23 or int(offset[4:6]) > 59:
        return None
    try:
        return datetime.fromisoformat(f"{m['date']}T{m['time']}{frac}{offset}").astimezone(timezone.utc)
    except (ValueError, OverflowError):  # out of the calendar, or of it once moved to UTC
        return None


def format_timestamp(value: datetime) -> str:
    """UTC, ``Z`` suffix, microsecond precision (xAPI asks for at least milliseconds)."""
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


# --- durations ----------------------------------------------------------------------------------

_NUM = r"(\d+(?:[.,]\d+)?)"
_DURATION = re.compile(
    rf"P(?:(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?|{_NUM}W)"
)
_SECONDS_PER = (365.2425 * 86400, 30.436875 * 86400, 86400, 3600, 60, 1)


def _duration_parts(value: str) -> tuple[str | None, ...] | None:
    m = _DURATION.fullmatch(value)
    if m is None or value in ("P", "PT") or value.endswith("T"):
        return None
    present = [p for p in m.groups() if p is not None]
    if any("." in p or "," in p for p in present[:-1]):  # a fraction only on the smallest unit given
        return None
    return m.groups()


def is_duration(value: str) -> bool:
    """An ISO 8601 duration in the forms xAPI allows: ``PnYnMnDTnHnMnS`` (any part) or ``PnW``."""
    return _duration_parts(value) is not None


def duration_seconds(value: str) -> float | None:
    """Length of a duration in seconds (years and months at their Gregorian average)."""
    parts = _duration_parts(value)
    if parts is None:
        return None
    *ymdhms, weeks = parts
    if weeks is not None:
        return float(weeks.replace(",", ".")) * 7 * 86400
    return sum(
        float(p.replace(",", ".")) * k for p, k in zip(ymdhms, _SECONDS_PER, strict=True) if p is not None
    )


def truncate_duration(value: str) -> str:
    """Drop second fractions beyond hundredths (xAPI 2.0 compares durations at 0.01 s)."""
    m = re.search(r"(\d+)[.,](\d+)S$", value)
    if m is None or len(m.group(2)) <= 2:
        return value
    return value[: m.start(2)] + m.group(2)[:2] + "S"
