"""How every sink buckets a learning event: 5-second video segments and UTC days, hours, weeks.

Shared so that a segment, a day or a week means the same in ClickHouse, MongoDB and Cassandra.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

from .events import LearningEvent

SEGMENT_SECONDS = 5


def watched_segments(e: LearningEvent) -> list[int]:
    """Indexes of the 5-second video segments the statement's played segments touch, each once,
    ascending (a segment ending exactly on a boundary does not touch the next one)."""
    segments: set[int] = set()
    for start, end in e.video_segments:
        last = max(start, math.nextafter(end, 0.0))
        segments.update(range(int(start // SEGMENT_SECONDS), int(last // SEGMENT_SECONDS) + 1))
    return sorted(segments)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def day_of(moment: datetime) -> date:
    """The UTC calendar day of an instant."""
    return utc(moment).date()


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


def day_start(day: date) -> datetime:
    """Midnight UTC of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
