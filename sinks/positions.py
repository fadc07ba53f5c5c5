"""Positions in the statement store: where a statement sits in store order.

A position is ``(stored, seq, tenant)`` of a statement, written as a fixed-width string so
positions compare as strings: ``"<microseconds since epoch, 17 digits>.<seq, 19 digits>"``, and
for a tenant other than the default ``".<tenant>"`` after it. So the order is ``stored``, then
``seq``, then the tenant (the default tenant's first): every tenant's statements in one order,
the default tenant's positions as they were before tenants. The empty string is before
everything.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lrs.store.ports import DEFAULT_TENANT

START = ""
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def encode(stored: datetime, seq: int, tenant: str = DEFAULT_TENANT) -> str:
    delta = stored - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    suffix = "" if tenant == DEFAULT_TENANT else f".{tenant}"
    return f"{micros:017d}.{seq:019d}{suffix}"


def decode(position: str) -> tuple[datetime, int, str]:
    """``(stored, seq, tenant)`` of a position."""
    micros, _, rest = position.partition(".")
    seq, _, tenant = rest.partition(".")
    return EPOCH + timedelta(microseconds=int(micros)), int(seq), tenant or DEFAULT_TENANT


def stored_of(position: str) -> datetime | None:
    return decode(position)[0] if position else None


def since_position(since: datetime) -> str:
    """The position just before every statement stored at or after ``since``."""
    return encode(since, 0)
