"""Statement-writing rules every adapter applies the same way, free of any database.

An adapter reads what a group of submissions needs from its database (stored documents with
the same ids, keys of StatementRef targets) and hands it to these functions, which decide what
to write: which submissions conflict or repeat stored statements (``settle``), which lookup
keys StatementRef statements inherit (``inherit_keys``), and which canonical definitions and
agent names are new (``SeenCache``, ``pending_upserts``, ``merge_definition``). Paging cursors
(``encode_cursor`` / ``parse_cursor``) are positions ``(stored, seq)`` in the store's order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from lrs.xapi.statements import INHERITED_PREFIXES, PreparedStatement

from .coalesce import Submission, WriteCoalescer
from .ports import AttachmentContent, ConflictError, InvalidCursor, SameStatement


def inheritable(keys: Iterable[str]) -> set[str]:
    """The keys a statement referring to one with ``keys`` inherits."""
    return {k for k in keys if k.startswith(INHERITED_PREFIXES)}


def settle(
    group: list[Submission], stored_docs: dict[str, dict[str, Any]]
) -> tuple[list[PreparedStatement], list[AttachmentContent], list[PreparedStatement]]:
    """Decide each submission: conflicting ones fail alone, identical re-sends are dropped.

    ``stored_docs``: the stored statements sharing an id with the group. Returns the
    statements to insert, their attachments, and those whose definitions count (``define``).
    """
    accepted: dict[str, PreparedStatement] = {}
    attachments: list[AttachmentContent] = []
    defining: list[PreparedStatement] = []
    for sub in group:
        sub.error = None
        keep = []
        for s in sub.statements:
            earlier = stored_docs.get(s.id) or (accepted[s.id].document if s.id in accepted else None)
            if earlier is None:
                keep.append(s)
            elif not sub.same(earlier, s.document):
                sub.error = ConflictError(s.id)
                break
        if sub.error is not None:
            continue
        accepted.update((s.id, s) for s in keep)
        attachments.extend(sub.attachments)
        if sub.define:
            defining.extend(keep)
    return list(accepted.values()), attachments, defining


def inherit_keys(statements: list[PreparedStatement], target_keys: dict[str, set[str]]) -> None:
    """Statements whose object is a StatementRef match the filters their target matches.

    ``target_keys``: the stored keys of targets outside ``statements``. Chains inside one batch
    resolve in a few rounds (keys only grow).
    """
    referring = [s for s in statements if s.ref_target]
    in_batch = {s.id: s for s in statements}
    changed = True
    while changed:
        changed = False
        for s in referring:
            target = in_batch.get(s.ref_target)
            inherited = inheritable(target.keys) if target else inheritable(target_keys.get(s.ref_target, ()))
            if not inherited <= s.keys:
                s.keys |= inherited
                changed = True


def stamped(document: dict[str, Any], stored: str) -> dict[str, Any]:
    """The statement as stored: with ``stored``, and ``timestamp`` when it had none.

    A copy: a write that is tried again must compare the statement as it was sent.
    """
    doc = {**document, "stored": stored}
    doc.setdefault("timestamp", stored)
    return doc


def voided_in_batch(statements: list[PreparedStatement]) -> tuple[set[str], list[str]]:
    """Targets of the batch's voiding statements: (ids in the batch, ids outside it).

    A voiding statement cannot be voided, so a voiding target in the batch that is itself a
    voiding statement is left out.
    """
    by_id = {s.id: s for s in statements}
    inside, outside = set(), []
    for s in statements:
        if s.is_voiding and s.ref_target:
            if s.ref_target not in by_id:
                outside.append(s.ref_target)
            elif not by_id[s.ref_target].is_voiding:
                inside.add(s.ref_target)
    return inside, outside


def merge_definition(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A canonical activity definition updated by a newer one: language maps and extensions
    merge per key, other properties are replaced."""
    merged = {**old, **new}
    for part in ("name", "description", "extensions"):
        if isinstance(old.get(part), dict) and isinstance(new.get(part), dict):
            merged[part] = {**old[part], **new[part]}
    return merged


# --- canonical definitions and agent names -------------------------------------------------------


@dataclass(slots=True)
class Upserts:
    """Canonical data a batch adds: (agent key, name), (activity id, definition) and
    (verb id, display), the last two with their payload encoded by the adapter."""

    names: list[tuple[str, str]]
    activities: list[tuple[str, bytes]]
    verbs: list[tuple[str, bytes]]

    def __bool__(self) -> bool:
        return bool(self.names or self.activities or self.verbs)

    def applied(self) -> list[tuple]:
        """What to remember in a ``SeenCache`` once these are committed."""
        return [("name", *p) for p in self.names] + [("def", *i) for i in (*self.activities, *self.verbs)]


class SeenCache:
    """A bounded set of recently applied upserts (tag, id, payload), to skip repeating them.

    Only items of at most ``item_up_to`` characters (id and payload) are kept, so the cache's
    memory stays bounded (size × item_up_to) whatever clients send; larger ones are applied
    each time they come."""

    def __init__(self, size: int = 50_000, item_up_to: int = 4096) -> None:
        self._items: OrderedDict[tuple, None] = OrderedDict()
        self._size = size
        self._item_up_to = item_up_to

    def __contains__(self, item: tuple) -> bool:
        if item in self._items:
            self._items.move_to_end(item)
            return True
        return False

    def add(self, item: tuple) -> None:
        if sum(len(part) for part in item[1:]) > self._item_up_to:
            return
        self._items[item] = None
        if len(self._items) > self._size:
            self._items.popitem(last=False)


def pending_upserts(
    seen: SeenCache,
    statements: list[PreparedStatement],
    defining: list[PreparedStatement],
    encode: Callable[[Any], bytes],
) -> Upserts:
    """Agent names and canonical definitions these statements add (not yet applied here).

    ``encode`` serialises a definition or display (keys sorted, so equal ones compare equal).
    Sorted by key: concurrent writers then touch shared rows in one order and cannot deadlock
    (the sort is stable, so several definitions of one activity keep their batch order).
    """

    def fresh(pairs: Iterable[tuple[str, Any]]) -> list[tuple[str, bytes]]:
        items = ((i, encode(v)) for i, v in pairs)
        return sorted(dict.fromkeys(i for i in items if ("def", *i) not in seen), key=lambda i: i[0])

    names = sorted(
        {p for s in statements for p in s.names if "\x00" not in p[1] and ("name", *p) not in seen}
    )
    activities = fresh(d for s in defining for d in s.definitions)
    verbs = fresh((s.document["verb"]["id"], s.document["verb"]["display"])
                  for s in defining if "display" in s.document["verb"])  # fmt: skip
    return Upserts(names, activities, verbs)


# --- paging cursors ------------------------------------------------------------------------------


def encode_cursor(stored: datetime, seq: int) -> str:
    """The position after a statement, as an adapter hands it out (opaque to clients)."""
    return f"{stored.isoformat()}/{seq}"


def parse_cursor(cursor: str) -> tuple[datetime, int]:
    """``(stored, seq)`` of a cursor from ``encode_cursor``; ``InvalidCursor`` for anything else."""
    stored_text, sep, seq_text = cursor.partition("/")
    try:
        stored_at, seq = datetime.fromisoformat(stored_text), int(seq_text)
        if not sep or stored_at.tzinfo is None or not 0 < seq < 2**63:
            raise ValueError(cursor)
        return stored_at.astimezone(timezone.utc), seq
    except (ValueError, OverflowError):
        raise InvalidCursor(cursor) from None


class CoalescedStatementWrites:
    """What every statement store adapter does with ``store()``: hand the batch to one
    ``WriteCoalescer``, which calls the adapter's ``_write_group`` with concurrent requests'
    batches together (each keeping its own outcome)."""

    def __init__(self) -> None:
        self._seen = SeenCache()  # canonical definitions and agent names already applied
        self._coalescer = WriteCoalescer(self._write_group)

    async def store(
        self,
        statements: list[PreparedStatement],
        attachments: list[AttachmentContent],
        same: SameStatement,
        define: bool,
    ) -> None:
        await self._coalescer.submit(Submission(statements, attachments, same, define))

    async def _write_group(self, group: list[Submission]) -> None:
        raise NotImplementedError
