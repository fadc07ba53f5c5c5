"""Cohorts made directly as xAPI statements, for the reference-model tests.

Not made by ``lrs simulate``: the shapes come from the specifications (cmi5 runtime §9, the xAPI
video profile) and from what content in the wild sends, chosen by ``Choices`` — hypothesis in
the property test, a seeded ``random.Random`` in the fixed example. A cohort is a catalog
document, the statements to post (out of order, some sent twice, timestamps with offsets) and
the voiding statements of a second phase.

Per example ``base`` keeps ids apart, so that many cohorts share one running stack: courses
``base*10 + 1..3``, students ``base*100 + n``, statement ids derived from ``base``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from .model import (
    ADL,
    CMI5_SESSION,
    VIDEO_PROGRESS,
    VIDEO_SEGMENTS,
    VIDEO_SESSION,
)

BASE_IRI = "https://academy.example"
TEMPLATE_IRI = "https://lms.example"  # matches the default LRS_IRI_TEMPLATES
VIDEO = "https://w3id.org/xapi/video"
VIDEO_LENGTH = f"{VIDEO}/extensions/length"
VIDEO_TIME = f"{VIDEO}/extensions/time"
CMI5_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
MOVEON_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/moveon"
START = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
OFFSETS = [timedelta(0), timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30)]
NAMESPACE = uuid.UUID("2d3b7c0e-3f43-4e59-9a53-1d3c7e0c5a11")


class Choices:
    """Where a cohort's choices come from."""

    def integer(self, low: int, high: int) -> int:
        raise NotImplementedError

    def chance(self, percent: int) -> bool:
        return self.integer(1, 100) <= percent

    def pick(self, items: list[Any]) -> Any:
        return items[self.integer(0, len(items) - 1)]


class SeededChoices(Choices):
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


class DrawnChoices(Choices):
    """Choices drawn by hypothesis (``st.data()``), so failing cohorts shrink."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))


@dataclass
class Cohort:
    base: int
    catalog: dict[str, Any]
    statements: list[dict[str, Any]] = field(default_factory=list)
    """In posting order (shuffled)."""
    resent: list[dict[str, Any]] = field(default_factory=list)
    """Statements sent again (same id, same content), after the first posting."""
    voids: list[dict[str, Any]] = field(default_factory=list)
    """Voiding statements of the second phase."""
    courses: list[int] = field(default_factory=list)


class Builder:
    def __init__(self, choices: Choices, base: int) -> None:
        self.c = choices
        self.base = base
        self.count = 0
        self.made: list[dict[str, Any]] = []
        self.voidable: list[dict[str, Any]] = []

    # --- the catalog ---------------------------------------------------------------------------

    def catalog(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Course 1: modules of lessons (videos, readings, cmi5 AUs) and quizzes; course 2: in the
        catalog without items (completes by a statement on the course); course 3: not in the
        catalog, known by the IRI templates."""
        b = self.base
        main = {"id": b * 10 + 1, "title": "Main", "iri": f"{BASE_IRI}/c/{b}/1", "modules": [], "lessons": []}
        for m in range(1, self.c.integer(1, 3) + 1):
            module_id = b * 100 + m
            module = {"id": module_id, "title": f"M{m}", "position": m, "iri": f"{BASE_IRI}/c/{b}/m/{m}",
                      "lessons": [], "quizzes": []}  # fmt: skip
            for n in range(1, self.c.integer(1, 3) + 1):
                kind = self.c.pick(["video", "reading", "au"])
                lesson = {"id": module_id * 10 + n, "title": f"L{m}.{n}", "kind": kind,
                          "iri": f"{BASE_IRI}/c/{b}/l/{m}/{n}"}  # fmt: skip
                if kind == "video":
                    lesson["duration_seconds"] = self.c.pick([30, 47, 60, 95])
                module["lessons"].append(lesson)
            for q in range(1 if self.c.chance(70) else 0):
                module["quizzes"].append({"id": module_id * 10 + 9, "title": f"Q{m}",
                                          "pass_percentage": self.c.pick([50, 70, 80]),
                                          "iri": f"{BASE_IRI}/c/{b}/q/{m}"})  # fmt: skip
            main["modules"].append(module)
        if self.c.chance(40):
            main["lessons"].append({"id": b * 1000 + 1, "title": "Intro", "kind": "reading",
                                    "iri": f"{BASE_IRI}/c/{b}/intro"})  # fmt: skip
        plain = {"id": b * 10 + 2, "title": "Plain", "iri": f"{BASE_IRI}/c/{b}/2"}
        students = [
            {"id": b * 100 + s, "name": f"S{s}", "identities": [{"mbox": self.mbox(s)}]}
            for s in range(1, self.c.integer(2, 6) + 1)
        ]
        return {"courses": [main, plain], "students": students}, students

    def mbox(self, n: int) -> str:
        return f"mailto:s{n}.b{self.base}@school.example"

    # --- statements ----------------------------------------------------------------------------

    def stamp(self, moment: datetime) -> str:
        offset = self.c.pick(OFFSETS)
        local = moment.astimezone(timezone(offset))
        text = local.isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z") if offset == timedelta(0) else text

    def say(self, actor: str, verb: str, iri: str, at: datetime, *, result: dict | None = None,
            context: dict | None = None, kind: str | None = None) -> dict[str, Any]:  # fmt: skip
        self.count += 1
        st_: dict[str, Any] = {
            "id": str(uuid.uuid5(NAMESPACE, f"{self.base}:{self.count}")),
            "actor": {"objectType": "Agent", "mbox": actor},
            "verb": {"id": verb if verb.startswith("http") else ADL + verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
            "object": {"objectType": "Activity", "id": iri},
            "timestamp": self.stamp(at),
        }  # fmt: skip
        if kind:
            st_["object"]["definition"] = {"type": kind}
        if result:
            st_["result"] = result
        if context:
            st_["context"] = context
        self.made.append(st_)
        return st_

    @staticmethod
    def duration(seconds: float) -> str:
        return "PT" + f"{seconds:.2f}".rstrip("0").rstrip(".") + "S"

    def uuid(self) -> str:
        """A fresh id, the same for the same choices (hypothesis replays examples)."""
        self.count += 1
        return str(uuid.uuid5(NAMESPACE, f"{self.base}:u:{self.count}"))

    def cmi5_context(self, course_iri: str, session: str, registration: str, moveon: bool = False) -> dict:
        category = [{"id": CMI5_CATEGORY}] + ([{"id": MOVEON_CATEGORY}] if moveon else [])
        return {
            "registration": registration,
            "contextActivities": {"grouping": [{"id": course_iri}], "category": category},
            "extensions": {CMI5_SESSION: session},
        }

    def au_session(self, actor: str, course: dict, lesson: dict, at: datetime, registration: str) -> datetime:
        """A cmi5 AU session on a lesson: launched, initialized, work, maybe completed,
        terminated with the session's total (or abandoned: no terminated)."""
        session = self.uuid()
        ctx = self.cmi5_context(course["iri"], session, registration)
        began = at
        self.say(actor, "launched", lesson["iri"], at, context=ctx)
        at += timedelta(seconds=self.c.integer(1, 20))
        self.say(actor, "initialized", lesson["iri"], at, context=ctx)
        for _ in range(self.c.integer(0, 2)):
            at += timedelta(seconds=self.c.integer(10, 300))
            page = f"{lesson['iri']}/page/{self.c.integer(1, 4)}"
            self.say(actor, "experienced", page, at, context={**ctx, "contextActivities": {
                "parent": [{"id": lesson["iri"]}], "grouping": [{"id": course["iri"]}]}},
                result={"duration": self.duration(self.c.integer(5, 200))})  # fmt: skip
        if self.c.chance(65):
            at += timedelta(seconds=self.c.integer(5, 200))
            done = self.say(actor, "completed", lesson["iri"], at,
                            context=self.cmi5_context(course["iri"], session, registration, moveon=True),
                            result={"completion": True, "duration": self.duration((at - began).total_seconds())})  # fmt: skip
            self.voidable.append(done)
        if self.c.chance(85):
            at += timedelta(seconds=self.c.integer(1, 60))
            self.say(actor, "terminated", lesson["iri"], at, context=ctx,
                     result={"duration": self.duration((at - began).total_seconds() + self.c.integer(0, 3) / 10)})  # fmt: skip
        return at

    def video_session(
        self, actor: str, course: dict, lesson: dict, at: datetime, cmi5: str | None
    ) -> datetime:
        """A video profile session: played/paused/seeked/…, each carrying the session's cumulative
        played segments and progress."""
        length = float(lesson.get("duration_seconds") or 60)
        session = self.uuid() if self.c.chance(80) else None
        ext: dict[str, Any] = {VIDEO_LENGTH: length}
        if session:
            ext[VIDEO_SESSION] = session
        if cmi5:
            ext[CMI5_SESSION] = cmi5
        ctx = {"contextActivities": {"grouping": [{"id": course["iri"]}]}, "extensions": ext}
        ranges: list[tuple[float, float]] = []
        position = 0.0
        for step in range(self.c.integer(1, 5)):
            verb = self.c.pick(["played", "paused", "seeked", "paused", "completed", "terminated"])
            position = min(position, length - 3)
            end = min(length, position + self.c.integer(3, int(length)))
            ranges.append((position, end))
            position = end if verb != "seeked" else float(self.c.integer(0, int(length) - 1))
            at += timedelta(seconds=self.c.integer(3, 90))
            covered = sorted(ranges)
            segments = "[,]".join(f"{a:.3f}[.]{b:.3f}" for a, b in covered)
            seen = set()
            for a, b in covered:
                seen.update(range(int(a), int(b)))
            progress = round(min(1.0, len(seen) / length), 3)
            result: dict[str, Any] = {"extensions": {VIDEO_TIME: position, VIDEO_SEGMENTS: segments,
                                                     VIDEO_PROGRESS: progress}}  # fmt: skip
            if verb == "completed":
                result["completion"] = True
            if self.c.chance(30):
                result["duration"] = self.duration(self.c.integer(5, 120))
            made = self.say(actor, f"{VIDEO}/verbs/{verb}", lesson["iri"], at, context=ctx, result=result,
                            kind="https://w3id.org/xapi/video/activity-type/video")  # fmt: skip
            if progress >= 0.9 or verb == "completed":
                self.voidable.append(made)
            if verb == "terminated":
                break
        return at

    def quiz_session(self, actor: str, course: dict, module: dict, quiz: dict, at: datetime) -> datetime:
        """Questions answered (their quiz as context parent), then an outcome on the quiz itself."""
        cmi5 = self.uuid() if self.c.chance(50) else None
        ctx: dict[str, Any] = {"contextActivities": {"parent": [{"id": quiz["iri"]}],
                                                     "grouping": [{"id": course["iri"]}]}}  # fmt: skip
        if self.c.chance(30):
            ctx["contextActivities"]["grouping"].append({"id": module["iri"]})
        if cmi5:
            ctx["extensions"] = {CMI5_SESSION: cmi5}
        right = 0
        questions = self.c.integer(1, 4)
        began = at
        for q in range(questions):
            at += timedelta(seconds=self.c.integer(5, 60))
            correct = self.c.chance(60)
            right += correct
            self.say(actor, "answered", f"{quiz['iri']}/question/{q}", at, context=ctx,
                     result={"success": correct, "response": self.c.pick(["a", "b", "c"]),
                             "duration": self.duration(self.c.integer(2, 40))})  # fmt: skip
        scaled = round(right / questions, 2)
        at += timedelta(seconds=self.c.integer(1, 30))
        outcome_ctx = {"contextActivities": {"grouping": [{"id": course["iri"]}]}}
        if cmi5:
            outcome_ctx["extensions"] = {CMI5_SESSION: cmi5}
        passes = scaled * 100 >= quiz["pass_percentage"]
        style = self.c.integer(1, 3)
        spent = self.duration((at - began).total_seconds())
        if style == 1:  # cmi5-like: passed / failed with score and success
            made = self.say(actor, "passed" if passes else "failed", quiz["iri"], at, context=outcome_ctx,
                            result={"score": {"scaled": scaled}, "success": passes, "duration": spent})  # fmt: skip
        elif style == 2:  # a score only, raw within min..max: the pass mark decides
            made = self.say(actor, "scored", quiz["iri"], at, context=outcome_ctx,
                            result={"score": {"raw": right, "min": 0, "max": questions}, "duration": spent})  # fmt: skip
        else:  # completed with success and no score
            made = self.say(actor, "completed", quiz["iri"], at, context=outcome_ctx,
                            result={"success": passes, "completion": True})  # fmt: skip
        self.voidable.append(made)
        if cmi5 and self.c.chance(70):
            at += timedelta(seconds=2)
            self.say(
                actor,
                "terminated",
                quiz["iri"],
                at,
                context=outcome_ctx,
                result={"duration": self.duration((at - began).total_seconds() + 1)},
            )
        return at

    def reading(self, actor: str, course: dict, lesson: dict, at: datetime) -> datetime:
        ctx = {"contextActivities": {"grouping": [{"id": course["iri"]}]}}
        at += timedelta(seconds=self.c.integer(5, 400))
        self.say(
            actor,
            "experienced",
            lesson["iri"],
            at,
            context=ctx,
            result={"duration": self.duration(self.c.integer(10, 500))},
        )
        if self.c.chance(70):
            at += timedelta(seconds=5)
            made = self.say(actor, self.c.pick(["completed", "completed", "experienced"]), lesson["iri"], at,
                            context=ctx, result={"completion": True})  # fmt: skip
            self.voidable.append(made)
        return at

    # --- learners ------------------------------------------------------------------------------

    def learner(self, actor: str, catalog: dict[str, Any], at: datetime) -> None:
        main, plain = catalog["courses"]
        registration = self.uuid()
        items = [(m, lesson) for m in main["modules"] for lesson in m["lessons"]]
        items += [(None, lesson) for lesson in main["lessons"]]
        quizzes = [(m, q) for m in main["modules"] for q in m["quizzes"]]
        for _ in range(self.c.integer(1, 3 * len(items) + 4)):
            at += timedelta(minutes=self.c.integer(1, 600))
            what = self.c.integer(1, 10)
            if what <= 6 and items:
                module, lesson = self.c.pick(items)
                if lesson["kind"] == "au":
                    at = self.au_session(actor, main, lesson, at, registration)
                elif lesson["kind"] == "video":
                    at = self.video_session(
                        actor, main, lesson, at, self.uuid() if self.c.chance(30) else None
                    )
                else:
                    at = self.reading(actor, main, lesson, at)
            elif what <= 8 and quizzes:
                module, quiz = self.c.pick(quizzes)
                at = self.quiz_session(actor, main, module, quiz, at)
            elif what == 9:  # an activity nobody catalogued, inside the course
                self.say(actor, "experienced", f"https://elsewhere.example/page/{self.c.integer(1, 3)}", at,
                         context={"contextActivities": {"grouping": [{"id": main["iri"]}]}},
                         result={"duration": self.duration(self.c.integer(1, 100))})  # fmt: skip
            else:  # the course itself
                self.say(actor, "progressed", main["iri"], at)
        if self.c.chance(60):  # the plain course: done by a statement on the course itself
            at += timedelta(hours=self.c.integer(1, 30))
            self.say(
                actor,
                "experienced",
                plain["iri"],
                at,
                result={"duration": self.duration(self.c.integer(1, 90))},
            )
            if self.c.chance(70):
                made = self.say(actor, self.c.pick(["completed", "passed"]), plain["iri"], at + timedelta(seconds=9),
                                result={"completion": True} if self.c.chance(50) else None)  # fmt: skip
                self.voidable.append(made)
        if self.c.chance(50):  # a course known only by the IRI templates
            course = f"{TEMPLATE_IRI}/courses/{self.base * 10 + 3}"
            lesson = f"{course}/lessons/{self.base * 10 + 7}"
            at += timedelta(hours=self.c.integer(1, 30))
            self.say(actor, "completed", lesson, at, result={"duration": "PT1M30S"})
            if self.c.chance(60):
                made = self.say(actor, "completed", course, at + timedelta(minutes=3),
                                result={"completion": True})  # fmt: skip
                self.voidable.append(made)


def build(choices: Choices, base: int) -> Cohort:
    builder = Builder(choices, base)
    catalog, students = builder.catalog()
    cohort = Cohort(base, catalog, courses=[base * 10 + 1, base * 10 + 2, base * 10 + 3])
    actors = [s["identities"][0]["mbox"] for s in students]
    actors += [f"mailto:guest{g}.b{base}@elsewhere.example" for g in range(choices.integer(0, 2))]
    for actor in actors:
        builder.learner(actor, catalog, START + timedelta(hours=choices.integer(0, 24 * 10)))
    made = builder.made
    order = list(range(len(made)))
    for i in range(len(order) - 1, 0, -1):  # shuffled by the choices (Fisher–Yates)
        j = choices.integer(0, i)
        order[i], order[j] = order[j], order[i]
    cohort.statements = [made[i] for i in order]
    cohort.resent = [made[i] for i in range(len(made)) if choices.chance(8)]
    voided = [s for s in builder.voidable if choices.chance(35)]
    for target in voided:
        builder.count += 1
        cohort.voids.append({
            "id": str(uuid.uuid5(NAMESPACE, f"{base}:void:{builder.count}")),
            "actor": {"objectType": "Agent", "mbox": "mailto:admin@school.example"},
            "verb": {"id": ADL + "voided", "display": {"en-US": "voided"}},
            "object": {"objectType": "StatementRef", "id": target["id"]},
        })  # fmt: skip
    return cohort


# --- cmi5 courses ----------------------------------------------------------------------------------

WAIVED = "https://w3id.org/xapi/adl/verbs/waived"
SATISFIED = "https://w3id.org/xapi/adl/verbs/satisfied"
ABANDONED = "https://w3id.org/xapi/adl/verbs/abandoned"
MOVE_ONS = ["Completed", "Passed", "CompletedAndPassed", "CompletedOrPassed", "NotApplicable"]


class Cmi5Builder(Builder):
    """A cmi5 course imported into the catalog (cmi5 runtime §9, §13.1.4): the course, blocks as
    modules, AUs as lessons with their moveOn (one directly under the course), and a second course of
    NotApplicable AUs only. Learners run AU sessions (launched by the LMS, initialized, completed /
    passed / failed, terminated or abandoned), the LMS waives AUs and sends satisfied about blocks
    and the course."""

    def cmi5_catalog(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        b = self.base
        iri = f"{BASE_IRI}/cmi5/{b}"
        course = {"id": b * 10 + 1, "title": "cmi5", "iri": f"{iri}/course", "modules": [], "lessons": []}
        aus = iter(MOVE_ONS[:4] * 2)
        for m in (1, 2):
            block = {"id": b * 100 + m, "title": f"B{m}", "position": m, "iri": f"{iri}/block/{m}", "lessons": [],
                     "quizzes": []}  # fmt: skip
            for n in (1, 2):
                block["lessons"].append({"id": (b * 100 + m) * 10 + n, "title": f"AU{m}.{n}", "kind": "cmi5",
                                         "iri": f"{iri}/au/{m}/{n}", "move_on": next(aus)})  # fmt: skip
            course["modules"].append(block)
        block["lessons"].append({"id": (b * 100 + 2) * 10 + 3, "title": "AU2.3", "kind": "cmi5",
                                 "iri": f"{iri}/au/2/3", "move_on": "NotApplicable"})  # fmt: skip
        course["lessons"].append({"id": b * 1000 + 1, "title": "AU0", "kind": "cmi5", "iri": f"{iri}/au/0",
                                  "move_on": self.c.pick(MOVE_ONS[:4])})  # fmt: skip
        optional = {"id": b * 10 + 2, "title": "cmi5 optional", "iri": f"{iri}/optional", "lessons": [
            {"id": b * 1000 + 2, "title": "AU-NA", "kind": "cmi5", "iri": f"{iri}/optional/au",
             "move_on": "NotApplicable"}]}  # fmt: skip
        students = [
            {"id": b * 100 + s, "name": f"S{s}", "identities": [{"mbox": self.mbox(s)}]}
            for s in range(1, self.c.integer(7, 9) + 1)
        ]
        return {"courses": [course, optional], "students": students}, students

    def cmi5(self, actor: str, verb: str, iri: str, at: datetime, registration: str, session: str | None,
             course_iri: str, *, result: dict | None = None, moveon: bool = False) -> dict[str, Any]:  # fmt: skip
        context = self.cmi5_context(course_iri, session or self.uuid(), registration, moveon=moveon)
        if session is None:  # the LMS's own statements (waived, satisfied) carry no AU session
            del context["extensions"]
        return self.say(actor, verb, iri, at, context=context, result=result)

    def au_attempt(self, actor: str, course: dict, au: dict, at: datetime, registration: str,
                   outcomes: list[str]) -> datetime:  # fmt: skip
        """One AU session: launched, initialized, the outcomes in order (completed / passed /
        failed), then terminated or abandoned (by the LMS)."""
        session, began = self.uuid(), at
        self.cmi5(actor, "launched", au["iri"], at, registration, session, course["iri"])
        at += timedelta(seconds=self.c.integer(1, 20))
        self.cmi5(actor, "initialized", au["iri"], at, registration, session, course["iri"])
        for outcome in outcomes:
            at += timedelta(seconds=self.c.integer(20, 900))
            result: dict[str, Any] = {"duration": self.duration((at - began).total_seconds())}
            if outcome == "completed":
                result["completion"] = True
            else:
                result |= {
                    "success": outcome == "passed",
                    "score": {"scaled": 0.9 if outcome == "passed" else 0.3},
                }
            made = self.cmi5(actor, outcome, au["iri"], at, registration, session, course["iri"], result=result,
                             moveon=True)  # fmt: skip
            if outcome != "failed":
                self.voidable.append(made)
        at += timedelta(seconds=self.c.integer(1, 60))
        total = {"duration": self.duration((at - began).total_seconds() + self.c.integer(0, 9) / 10)}
        if self.c.chance(80):
            self.cmi5(actor, "terminated", au["iri"], at, registration, session, course["iri"], result=total)
        else:
            self.cmi5(actor, ABANDONED, au["iri"], at + timedelta(minutes=30), registration, session,
                      course["iri"], result=total)  # fmt: skip
        return at

    def lms(self, actor: str, verb: str, iri: str, at: datetime, registration: str, course: dict) -> None:
        made = self.cmi5(actor, verb, iri, at, registration, None, course["iri"],
                         moveon=verb in (WAIVED, SATISFIED),
                         result={"completion": True, "success": True} if verb == WAIVED else None)  # fmt: skip
        if verb == WAIVED:
            self.voidable.append(made)

    def scripted(self, actors: list[str], course: dict, optional: dict, at: datetime) -> dict[str, Any]:
        """The shapes every cmi5 cohort has (whatever the random learners do); returns the statement
        to void (the second learner's passed of the CompletedAndPassed AU)."""
        aus = {au["move_on"]: au for block in course["modules"] for au in block["lessons"][:2]}
        na = course["modules"][1]["lessons"][2]
        first, second, third = actors[:3]
        reg = self.uuid()
        # 1: Completed, Passed (failed, then passed in a second session), CompletedAndPassed across two
        # sessions, CompletedOrPassed by passing, the NotApplicable AU only launched; AU0 waived; the
        # LMS says satisfied about the blocks and the course
        at = self.au_attempt(first, course, aus["Completed"], at, reg, ["completed"])
        at = self.au_attempt(first, course, aus["Passed"], at + timedelta(hours=1), reg, ["failed"])
        at = self.au_attempt(first, course, aus["Passed"], at + timedelta(days=1), reg, ["passed"])
        at = self.au_attempt(
            first, course, aus["CompletedAndPassed"], at + timedelta(hours=2), reg, ["completed"]
        )
        at = self.au_attempt(
            first, course, aus["CompletedAndPassed"], at + timedelta(days=2), reg, ["passed"]
        )
        at = self.au_attempt(
            first, course, aus["CompletedOrPassed"], at + timedelta(hours=3), reg, ["passed"]
        )
        self.cmi5(first, "launched", na["iri"], at + timedelta(minutes=5), reg, self.uuid(), course["iri"])
        self.lms(first, WAIVED, course["lessons"][0]["iri"], at + timedelta(minutes=9), reg, course)
        for iri in [block["iri"] for block in course["modules"]] + [course["iri"]]:
            self.lms(first, SATISFIED, iri, at + timedelta(minutes=10), reg, course)
        # 2: CompletedAndPassed passed then completed in one session (the later counts); ordinary
        # completion rules on an AU (not cmi5 defined) complete nothing; satisfied about the course
        reg, mark = self.uuid(), len(self.voidable)
        at = self.au_attempt(second, course, aus["CompletedAndPassed"], at + timedelta(hours=5), reg,
                             ["passed", "completed"])  # fmt: skip
        to_void = self.voidable[mark]
        self.say(
            second,
            "completed",
            aus["Completed"]["iri"],
            at + timedelta(minutes=1),
            result={"completion": True},
        )
        self.say(
            second,
            "experienced",
            aus["Passed"]["iri"],
            at + timedelta(minutes=2),
            result={"completion": True},
        )
        self.lms(second, SATISFIED, course["iri"], at + timedelta(minutes=3), reg, course)
        # 3: an AU never finished (launched, initialized, abandoned), a waived AU, the optional course
        reg = self.uuid()
        at = self.au_attempt(third, course, aus["Completed"], at + timedelta(hours=1), reg, [])
        self.lms(third, WAIVED, aus["Passed"]["iri"], at + timedelta(hours=1), reg, course)
        self.cmi5(third, "launched", optional["lessons"][0]["iri"], at + timedelta(hours=2), self.uuid(),
                  self.uuid(), optional["iri"])  # fmt: skip
        return to_void

    def random_learner(self, actor: str, course: dict, optional: dict, at: datetime) -> None:
        reg = self.uuid()
        aus = [au for block in course["modules"] for au in block["lessons"]] + course["lessons"]
        for _ in range(self.c.integer(3, 10)):
            au = self.c.pick(aus)
            at += timedelta(minutes=self.c.integer(5, 2000))
            if self.c.chance(10):
                self.lms(actor, WAIVED, au["iri"], at, reg, course)
                continue
            outcomes = [
                o for o in ("completed", self.c.pick(["passed", "failed", "failed"])) if self.c.chance(55)
            ]
            if self.c.chance(30):
                outcomes.reverse()
            at = self.au_attempt(actor, course, au, at, reg, outcomes)
            if self.c.chance(15):
                self.lms(actor, SATISFIED, self.c.pick([b["iri"] for b in course["modules"]] + [course["iri"]]),
                         at + timedelta(seconds=1), reg, course)  # fmt: skip
        if self.c.chance(40):
            self.cmi5(actor, "launched", optional["lessons"][0]["iri"], at + timedelta(hours=1), self.uuid(),
                      self.uuid(), optional["iri"])  # fmt: skip


def build_cmi5(choices: Choices, base: int) -> Cohort:
    """A cmi5 cohort: the scripted learners, then random ones; shuffled, some re-sent, some of the
    completed / passed / waived statements of the random learners voided, and the scripted one."""
    builder = Cmi5Builder(choices, base)
    catalog, students = builder.cmi5_catalog()
    course, optional = catalog["courses"]
    cohort = Cohort(base, catalog, courses=[course["id"], optional["id"]])
    actors = [s["identities"][0]["mbox"] for s in students]
    must_void = builder.scripted(actors, course, optional, START)
    kept = {s["id"] for s in builder.made}  # the first learners' statements: voided only as chosen
    for actor in actors[3:]:
        builder.random_learner(actor, course, optional, START + timedelta(hours=choices.integer(0, 24 * 5)))
    made = builder.made
    order = list(range(len(made)))
    for i in range(len(order) - 1, 0, -1):
        j = choices.integer(0, i)
        order[i], order[j] = order[j], order[i]
    cohort.statements = [made[i] for i in order]
    cohort.resent = [made[i] for i in range(len(made)) if choices.chance(8)]
    voided = [must_void] + [s for s in builder.voidable if s["id"] not in kept and choices.chance(35)]
    for target in voided:
        builder.count += 1
        cohort.voids.append({
            "id": str(uuid.uuid5(NAMESPACE, f"{base}:void:{builder.count}")),
            "actor": {"objectType": "Agent", "mbox": "mailto:admin@school.example"},
            "verb": {"id": ADL + "voided", "display": {"en-US": "voided"}},
            "object": {"objectType": "StatementRef", "id": target["id"]},
        })  # fmt: skip
    return cohort
