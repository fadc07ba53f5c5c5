"""Store contract, continued: every GET /statements filter shape and their combinations, in both
directions, with since/until windows and deep paging, on every store adapter.

Each statement below is written with the agents, verb, activities and registration it carries
spelled out, and the expected result of a query is worked out from that list here (not by the
store's key computation): statement ``i`` matches ``agent`` if the agent is its actor or a member
of it, ``related_agents`` if it is anywhere in it (instructor, team, authority ...), and so on.
Stores answer these from index walks that stop after a page; the tests page with small limits so
every page boundary and cursor is crossed.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Any

import pytest

from lrs.store.ports import StatementQuery
from lrs.xapi.indexkeys import lookup_key

from .conftest import VERBS, statement, unique_activity, unique_agent, voiding
from .test_store_contract import Harness, harness  # noqa: F401  (the per-store fixture)


class World:
    """A dozen statements over two learners, an instructor, two verbs, two lessons of one course,
    and two registrations, stored one call at a time (so each has its own ``stored``)."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.ann, self.bob, self.teacher = unique_agent("Ann"), unique_agent("Bob"), unique_agent("T")
        self.team = {"objectType": "Group", "name": "team", "member": [self.bob]}  # anonymous group
        self.lesson1, self.lesson2 = unique_activity(), unique_activity()
        self.course = unique_activity()
        self.reg1, self.reg2 = str(uuid.uuid4()), str(uuid.uuid4())
        # (actor, verb, object, registration, instructor, parent) per statement
        plan = [
            (self.ann, "completed", self.lesson1, self.reg1, None, self.course),
            (self.bob, "completed", self.lesson1, self.reg2, self.teacher, None),
            (self.ann, "attempted", self.lesson2, self.reg1, None, None),
            (self.team, "attempted", self.lesson1, None, None, self.course),
            (self.ann, "completed", self.lesson2, self.reg2, self.teacher, self.course),
            (self.bob, "attempted", self.lesson2, self.reg1, None, None),
            (self.ann, "attempted", self.lesson1, self.reg1, self.bob, None),
            (self.teacher, "completed", self.ann, None, None, None),  # an Agent as object
            (self.ann, "completed", self.course, self.reg2, None, self.lesson1),
            (self.bob, "completed", self.lesson1, self.reg1, None, self.course),
        ]
        self.rows: list[dict[str, Any]] = []
        for actor, verb, obj, reg, instructor, parent in plan:
            context: dict[str, Any] = {}
            if reg:
                context["registration"] = reg
            if instructor:
                context["instructor"] = instructor
            if parent:
                context["contextActivities"] = {"parent": [parent]}
            extra = {"context": context} if context else {}
            (sid,) = h.store(statement(actor, verb, obj, **extra))
            members = [m["mbox"] for m in actor.get("member", [])]
            agents = ([actor["mbox"]] if "mbox" in actor else []) + members
            if "mbox" in obj:
                agents.append(obj["mbox"])
            related_agents = agents + ([instructor["mbox"]] if instructor else [])
            activity = [obj["id"]] if "id" in obj else []
            self.rows.append(
                {
                    "id": sid,
                    "agent": agents,
                    "related_agent": related_agents,
                    "verb": [VERBS[verb]],
                    "activity": activity,
                    "related_activity": activity + ([parent["id"]] if parent else []),
                    "registration": [reg] if reg else [],
                }
            )
        # One more, voided: it leaves every result. Its voiding statement (a StatementRef) also
        # matches every filter its target matches, its own verb and actor besides.
        (target,) = h.store(
            statement(self.ann, "completed", self.lesson1, context={"registration": self.reg1})
        )
        (self.voider,) = h.store(voiding(target, self.teacher))
        self.rows.append(
            {
                "id": self.voider,
                "agent": [self.teacher["mbox"], self.ann["mbox"]],
                "related_agent": [self.teacher["mbox"], self.ann["mbox"]],
                "verb": [VERBS["voided"], VERBS["completed"]],
                "activity": [self.lesson1["id"]],
                "related_activity": [self.lesson1["id"]],
                "registration": [self.reg1],
            }
        )
        self.stored = [h(h.stores.statements.get(r["id"])).stored for r in self.rows]

    def expected(self, filters: dict[str, Any], since: datetime | None, until: datetime | None) -> list[str]:
        """Ids the filters match, oldest first, worked out from the plan."""
        found = []
        for row, stored in zip(self.rows, self.stored, strict=True):
            if since is not None and not stored > since:
                continue
            if until is not None and not stored <= until:
                continue
            if all(value in row[name] for name, value in filters.items()):
                found.append(row["id"])
        return found

    def keys(self, filters: dict[str, Any]) -> list[str]:
        """The lookup keys of GET /statements for these filters (lrs.usecases.statements)."""
        prefix = {
            "agent": "a:mbox:",
            "related_agent": "A:mbox:",
            "verb": "v:",
            "activity": "o:",
            "related_activity": "O:",
            "registration": "r:",
        }
        return [lookup_key(prefix[name] + value) for name, value in filters.items()]

    def query(self, keys: list[str], limit: int, **fields: Any) -> list[str]:
        """Every id the query returns, following cursors; checks no page exceeds ``limit``."""
        query = StatementQuery(keys=keys, limit=limit, **fields)
        found: list[str] = []
        while True:
            page = self.h(self.h.stores.statements.query(query))
            assert len(page.statements) <= limit
            found.extend(s.id for s in page.statements)
            if page.cursor is None:
                return found
            query.cursor, query.snapshot = page.cursor, page.snapshot


@pytest.fixture
def world(harness: Harness) -> World:  # noqa: F811
    return World(harness)


def _filter_sets(w: World) -> list[dict[str, Any]]:
    """Every combination of one agent filter, one verb, one activity filter and one registration
    (each possibly absent), with the related_agents / related_activities variants."""
    agent = [None, ("agent", w.ann["mbox"]), ("agent", w.bob["mbox"]), ("related_agent", w.bob["mbox"]),
             ("related_agent", w.teacher["mbox"])]  # fmt: skip
    verb = [None, ("verb", VERBS["completed"]), ("verb", VERBS["attempted"])]
    activity = [None, ("activity", w.lesson1["id"]), ("related_activity", w.course["id"]),
                ("related_activity", w.lesson1["id"])]  # fmt: skip
    registration = [None, ("registration", w.reg1)]
    combos = [dict(p for p in combo if p) for combo in itertools.product(agent, verb, activity, registration)]
    # a verb alone (or nothing) matches other tests' statements too: the windows test covers those
    return [c for c in combos if not c.keys() <= {"verb"}]


def test_every_filter_combination_returns_its_matches_in_stored_order_both_ways(world: World):
    w = world
    combos = _filter_sets(w)
    assert len(combos) == 117
    nonempty = 0
    for filters in combos:
        expected = w.expected(filters, None, None)
        nonempty += bool(expected)
        keys = w.keys(filters)
        assert w.query(keys, 2) == expected[::-1], filters
        assert w.query(keys, 3, ascending=True) == expected, filters
    assert nonempty > 40  # the combinations do select something, not only empty results


def test_since_until_windows_with_filters_page_in_both_directions(world: World):
    w = world
    s = w.stored
    windows = [(s[1], None), (None, s[6]), (s[2], s[9]), (s[0], s[0]), (s[4], s[5])]
    for filters in ({}, {"agent": w.ann["mbox"]}, {"verb": VERBS["completed"]},
                    {"activity": w.lesson1["id"], "registration": w.reg1},
                    {"related_agent": w.bob["mbox"], "verb": VERBS["attempted"]}):  # fmt: skip
        keys = w.keys(filters)
        for since, until in windows:
            if filters.keys() <= {"verb"} and (since is None or until is None):
                continue  # no key of this world's own, open-ended: other tests' statements match too
            expected = w.expected(filters, since, until)
            assert w.query(keys, 1, since=since, until=until) == expected[::-1], (filters, since, until)
            assert w.query(keys, 2, since=since, until=until, ascending=True) == expected, (
                filters,
                since,
                until,
            )
    # the window alone: exactly the statements stored in it (every filter is a narrowing of this)
    assert w.expected({}, s[2], s[9]) == [r["id"] for r in w.rows[3:10]]
    assert w.query([], 2, since=s[2], until=s[9]) == [r["id"] for r in w.rows[3:10]][::-1]


def test_expected_results_follow_the_xapi_rules(world: World):
    """The oracle itself, on a few shapes whose answers are known by hand."""
    w = world
    ids = [r["id"] for r in w.rows]
    assert w.expected({"agent": w.bob["mbox"]}, None, None) == [ids[1], ids[3], ids[5], ids[9]]
    assert w.expected({"related_agent": w.teacher["mbox"]}, None, None) == [ids[1], ids[4], ids[7], ids[10]]
    assert w.expected({"agent": w.ann["mbox"], "verb": VERBS["attempted"]}, None, None) == [ids[2], ids[6]]
    assert w.expected({"related_activity": w.course["id"]}, None, None) == [
        ids[0],
        ids[3],
        ids[4],
        ids[8],
        ids[9],
    ]
    assert w.expected({"activity": w.lesson1["id"], "registration": w.reg1}, None, None) == [
        ids[0], ids[6], ids[9], ids[10]]  # fmt: skip
    assert w.expected({"verb": VERBS["completed"], "agent": w.ann["mbox"]}, None, None) == [
        ids[0],
        ids[4],
        ids[7],
        ids[8],
        ids[10],
    ]  # fmt: skip  (in 7, Ann is the object)
    # and the store agrees on them (the voided target is in no result, its voider is)
    assert w.query(w.keys({"agent": w.ann["mbox"], "registration": w.reg1}), 10) == [
        ids[10],
        ids[6],
        ids[2],
        ids[0],
    ]


def test_deep_pages_of_a_key_among_many_others_are_complete_and_disjoint(harness: Harness):  # noqa: F811
    """A learner's statements interleaved with a busier one's: every page of the learner's
    (alone, with a verb, with since) comes in stored order, none repeats, none is missed."""
    h = harness
    mine, busy = unique_agent(), unique_agent()
    lesson = unique_activity()
    verbs = ["completed", "attempted"]
    my_ids: list[tuple[str, str]] = []
    for i in range(24):
        batch = [statement(busy, "completed", lesson) for _ in range(3)]
        batch.append(statement(mine, verbs[i % 2], lesson))
        ids = h.store(*batch)
        my_ids.append((ids[-1], verbs[i % 2]))
    key = [lookup_key("a:mbox:" + mine["mbox"])]
    world = World.__new__(World)
    world.h = h
    everything = [i for i, _ in my_ids]
    assert world.query(key, 5) == everything[::-1]
    assert world.query(key, 7, ascending=True) == everything
    completed = [i for i, v in my_ids if v == "completed"]
    with_verb = [*key, lookup_key("v:" + VERBS["completed"])]
    assert world.query(with_verb, 4) == completed[::-1]
    assert world.query(with_verb, 4, ascending=True) == completed
    since = h(h.stores.statements.get(everything[9])).stored
    assert world.query(key, 3, since=since, ascending=True) == everything[10:]
    # the lesson: 96 statements, deep pages of 10 in both directions
    lesson_key = [lookup_key("o:" + lesson["id"])]
    lesson_ids = world.query(lesson_key, 10, ascending=True)
    assert len(lesson_ids) == 96 and len(set(lesson_ids)) == 96
    assert world.query(lesson_key, 10) == lesson_ids[::-1]
    assert set(everything) <= set(lesson_ids)
