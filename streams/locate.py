"""Where a statement sits in the catalog, and which student its actor is: the mapping rules.

Resolving an activity, most trusted first: the catalog's IRIs; the configured IRI templates
(``LRS_IRI_TEMPLATES``, e.g. ``https://lms.example/courses/{course}/lessons/{lesson}``); then the
statement's context activities, each ``parent``, then each ``grouping`` filling only what is still
unknown (cmi5 and most xAPI content put the course and the module or lesson there). What stays
unknown stays empty: the event still flows. See ``docs/analytics.md`` §1.
"""

from __future__ import annotations

import re
from typing import Any

from lrs.xapi.agents import ifi_key
from sinks.catalog import Catalog
from sinks.events import UNKNOWN, Location


def _template(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"\{(course|module|lesson|quiz)\}", pattern)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[0-9]+)" for i, p in enumerate(parts))
    return re.compile(regex + r"/?(?:[?#].*)?")


LOCATED = 1 << 14
"""Activities whose place a locator remembers (its catalog snapshot never changes; the worker
makes a new locator when the catalog does). Statements name the same activities over and over."""
LOCATED_IRI = 1000
"""IRIs longer than this are located every time, not remembered: the memory stays bounded (about
16 MB at most) whatever activity ids clients send."""


class Locator:
    """The mapping rules over one catalog snapshot."""

    def __init__(self, catalog: Catalog, templates: str = "", student_homepage: str | None = None) -> None:
        self.catalog = catalog
        self.templates = [_template(t.strip()) for t in templates.split(";") if t.strip()]
        self.student_homepage = student_homepage.rstrip("/") if student_homepage else None
        self._located: dict[str, Location] = {}

    def _from_template(self, iri: str) -> Location:
        for template in self.templates:
            m = template.fullmatch(iri)
            if m:
                ids = {k: int(v) for k, v in m.groupdict().items() if v is not None}
                return Location(ids.get("course"), ids.get("module"), ids.get("lesson"), ids.get("quiz"))
        return UNKNOWN

    def _complete(self, location: Location) -> Location:
        """Fill module and course from the catalog's structure where a lesson or quiz is known."""
        catalog = self.catalog
        if location.lesson_id in catalog.lessons:
            lesson = catalog.lessons[location.lesson_id]
            location = location.merged(Location(lesson.course_id, lesson.module_id))
        if location.quiz_id in catalog.quizzes:
            quiz = catalog.quizzes[location.quiz_id]
            location = location.merged(Location(quiz.course_id, quiz.module_id))
        if location.module_id in catalog.modules:
            location = location.merged(Location(catalog.modules[location.module_id]))
        return location

    def locate(self, iri: str) -> Location:
        """Where an activity itself is: the catalog's IRIs, then the templates."""
        located = self._located.get(iri)
        if located is None:
            found = self.catalog.by_iri.get(iri)
            located = self._complete(found if found is not None else self._from_template(iri))
            if len(iri) <= LOCATED_IRI:
                if len(self._located) >= LOCATED:
                    self._located.clear()
                self._located[iri] = located
        return located

    def resolve(self, statement: dict[str, Any]) -> Location:
        """Where a statement sits: its object's place, completed by its context activities."""
        obj = statement["object"]
        own = self.locate(obj["id"]) if obj.get("objectType", "Activity") == "Activity" else UNKNOWN
        return self.within_context((statement.get("context") or {}).get("contextActivities") or {}, own)

    def within_context(self, activities: dict[str, Any], location: Location) -> Location:
        """``location`` completed by a statement's context activities
        (``context.contextActivities``): each ``parent``, then each ``grouping`` activity, in
        order, fills only what is still unknown."""
        for role in ("parent", "grouping"):
            listed = activities.get(role) or ()
            for activity in [listed] if isinstance(listed, dict) else listed:  # 1.0.3: one activity
                if None not in (location.course_id, location.module_id, location.lesson_id, location.quiz_id):
                    return location
                location = location.merged(self.locate(activity["id"]))
        return location

    def student_of(self, actor: dict[str, Any]) -> int | None:
        """The catalog's student with this identity, or the number an ``account`` on the
        students' homePage is named by."""
        key = ifi_key(actor)
        if key is not None and key in self.catalog.students:
            return self.catalog.students[key]
        account = actor.get("account")
        if account and self.student_homepage and account["homePage"].rstrip("/") == self.student_homepage:
            return int(account["name"]) if account["name"].isdigit() else None
        return None
