"""Positions in the statement store: where a statement sits in store order.

A position is ``(stored, seq)`` of a statement, written as a fixed-width string so positions
compare as strings: ``"<microseconds since epoch, 17 digits>.<seq, 19 digits>"``. The empty
string is before everything.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

START = ""
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def encode(stored: datetime, seq: int) -> str:
    delta = stored - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros:017d}.{seq:019d}"


def decode(position: str) -> tuple[datetime, int]:
    micros, _, seq = position.partition(".")
    return EPOCH + timedelta(microseconds=int(micros)), int(seq)


def stored_of(position: str) -> datetime | None:
    return decode(position)[0] if position else None


def since_position(since: datetime) -> str:
    """The position just before every statement stored at or after ``since``."""
    return encode(since, 0)
