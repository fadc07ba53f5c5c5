"""The LMS's side of the cmi5 rules (quartz §6.3, §7.1, §9): what an AU may send in a launch
session, and when AUs, blocks and courses are satisfied.

``check`` judges one statement an AU sends with its session's token against what the LMS knows
of the session (``Session``) and returns what it knows afterwards; a statement that breaks a
rule raises ``RuleViolation`` naming the rule. The LMS rejects such statements (§6.3: "SHOULD
reject", and the rejected statement is never stored, so nothing has to be voided). Statements
in one request are judged in order, each against the state its predecessors left.

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from lrs.xapi.agents import ifi_key

from . import vocabulary as v

_UTC = re.compile(r"(?:[Zz]|\+00(?::?00)?)$")


class RuleViolation(Exception):
    """A statement the LMS rejects; the message names the cmi5 rule (section) it breaks."""


@dataclass(frozen=True, slots=True)
class Session:
    """What the LMS knows of an AU launch session when a statement arrives."""

    session_id: str
    registration: str
    actor_key: str
    """``lrs.xapi.agents.ifi_key`` of the launch's actor."""
    au_iri: str
    """The activity id the LMS generated for the AU (the object of cmi5 defined statements)."""
    publisher_id: str
    """The AU's id in the course structure (the grouping activity of the context template)."""
    launch_mode: str = "Normal"
    mastery_score: float | None = None
    initialized: bool = False
    terminated: bool = False
    verbs: frozenset[str] = frozenset()
    """cmi5 defined verbs already sent in this session."""
    completed_before: bool = False
    """A completed statement for this AU exists in the registration."""
    passed_before: bool = False
    """A passed statement for this AU exists in the registration."""


def _categories(statement: dict[str, Any]) -> set[str]:
    context = statement.get("context") or {}
    return {a["id"] for a in (context.get("contextActivities") or {}).get("category", ())}


def is_defined(statement: dict[str, Any]) -> bool:
    """A cmi5 defined statement (§7.1.3): its context's categories include the cmi5 activity."""
    return v.CATEGORY_CMI5 in _categories(statement)


def check(statement: dict[str, Any], session: Session) -> Session:
    """The session after accepting ``statement``; ``RuleViolation`` if it breaks a rule."""
    _check_identity(statement, session)
    _check_context(statement, session)
    if is_defined(statement):
        return _check_defined(statement, session)
    if not session.initialized:
        raise RuleViolation("cmi5 §9.3: the first statement of a session must be initialized")
    if v.CATEGORY_MOVEON in _categories(statement):
        raise RuleViolation(
            "cmi5 §9.6.2.2: only cmi5 defined statements with result success or completion carry the"
            " moveon category"
        )
    return session


def _check_identity(statement: dict[str, Any], session: Session) -> None:
    if "id" not in statement:
        raise RuleViolation("cmi5 §9.1: the AU must give every statement an id")
    timestamp = statement.get("timestamp")
    if timestamp is None:
        raise RuleViolation("cmi5 §9.7: every statement must carry a timestamp")
    if not _UTC.search(timestamp):
        raise RuleViolation(f"cmi5 §9.7: timestamps must be in UTC, not {timestamp!r}")
    actor = statement["actor"]
    if actor.get("objectType", "Agent") != "Agent" or "account" not in actor:
        raise RuleViolation("cmi5 §9.2: the actor must be the launch's Agent, identified by its account")
    if ifi_key(actor) != session.actor_key:
        raise RuleViolation("cmi5 §8.1: the actor must be the learner the AU was launched for")
    if statement["verb"]["id"] == v.VOIDED:
        raise RuleViolation("cmi5 §6.3: an AU may not void statements")


def _check_context(statement: dict[str, Any], session: Session) -> None:
    context = statement.get("context")
    if context is None:
        raise RuleViolation("cmi5 §9.6: statements need the context of the launch's context template")
    if (context.get("registration") or "").lower() != session.registration:
        raise RuleViolation("cmi5 §9.6.1: context.registration must be the launch's registration")
    if (context.get("extensions") or {}).get(v.SESSION_ID) != session.session_id:
        raise RuleViolation("cmi5 §9.6.3.1: the context must carry the launch's session id extension")
    grouping = (context.get("contextActivities") or {}).get("grouping", ())
    if not any(a["id"] == session.publisher_id for a in grouping):
        raise RuleViolation(
            "cmi5 §10: the context template's publisher id activity (contextActivities.grouping) is missing"
        )


def _check_defined(statement: dict[str, Any], session: Session) -> Session:
    verb = statement["verb"]["id"]
    name = v.VERB_NAMES.get(verb)
    if verb not in v.AU_VERBS:
        what = f"{name} is the LMS's verb" if name else f"{verb} is not a cmi5 verb"
        raise RuleViolation(f"cmi5 §9.3: {what}; a cmi5 defined statement from an AU uses initialized,"
                            " completed, passed, failed or terminated")  # fmt: skip
    obj = statement["object"]
    if obj.get("objectType", "Activity") != "Activity" or obj["id"] != session.au_iri:
        raise RuleViolation(
            "cmi5 §9.4: the object of a cmi5 defined statement is the AU (the launch's activityId)"
        )
    _check_order(name, session)
    _check_result(name, statement, session)
    return _after(name, session)


def _check_order(name: str, session: Session) -> None:
    if not session.initialized and name != "initialized":
        raise RuleViolation("cmi5 §9.3: the first statement of a session must be initialized")
    if name in session.verbs:
        raise RuleViolation(f"cmi5 §9.3: {name} was already sent in this session")
    if name in ("passed", "failed") and session.verbs & {"passed", "failed"}:
        raise RuleViolation("cmi5 §9.3: a session has at most one passed or failed statement")
    if name == "completed" and session.completed_before:
        raise RuleViolation("cmi5 §9.3.3: completed is sent once per registration")
    if name == "passed" and session.passed_before:
        raise RuleViolation("cmi5 §9.3.4: passed is sent once per registration")
    if name == "failed" and session.passed_before:
        raise RuleViolation("cmi5 §9.3: failed must not follow passed in a registration")
    if name in ("completed", "passed", "failed") and session.launch_mode != "Normal":
        raise RuleViolation(
            f"cmi5 §10: in {session.launch_mode} mode an AU sends only initialized and terminated"
        )


def _check_result(name: str, statement: dict[str, Any], session: Session) -> None:
    result = statement.get("result") or {}
    score = result.get("score")
    if score is not None and name not in ("passed", "failed"):
        raise RuleViolation("cmi5 §9.5.1: only passed and failed statements carry a score")
    if score is not None and "raw" in score and not ("min" in score and "max" in score):
        raise RuleViolation("cmi5 §9.5.1: a raw score needs min and max")
    expected_success = {"passed": True, "failed": False}.get(name)
    if result.get("success") is not expected_success:
        if expected_success is None:
            raise RuleViolation(f"cmi5 §9.5.2: a {name} statement must not carry result.success")
        raise RuleViolation(
            f"cmi5 §9.5.2: a {name} statement has result.success {str(expected_success).lower()}"
        )
    if name == "completed" and result.get("completion") is not True:
        raise RuleViolation("cmi5 §9.5.3: a completed statement has result.completion true")
    if name != "completed" and "completion" in result:
        raise RuleViolation(f"cmi5 §9.5.3: a {name} statement must not carry result.completion")
    if name in ("completed", "passed", "failed", "terminated") and "duration" not in result:
        raise RuleViolation(f"cmi5 §9.5.4.1: a {name} statement must carry result.duration")
    moveon = v.CATEGORY_MOVEON in _categories(statement)
    if moveon != ("success" in result or "completion" in result):
        raise RuleViolation(
            "cmi5 §9.6.2.2: the moveon category is carried exactly by cmi5 defined statements whose"
            " result has success or completion"
        )
    progress = (result.get("extensions") or {}).get(v.PROGRESS)
    if progress is not None and not (isinstance(progress, int) and 0 <= progress <= 100):
        raise RuleViolation("cmi5 §9.5.5.1: the progress extension is an integer from 0 to 100")
    _check_mastery(name, statement, score, session)


def _check_mastery(name: str, statement: dict[str, Any], score: dict | None, session: Session) -> None:
    mastery = session.mastery_score
    extensions = (statement.get("context") or {}).get("extensions") or {}
    sent = extensions.get(v.MASTERY_SCORE)
    if sent is not None and (mastery is None or sent != mastery):
        raise RuleViolation(f"cmi5 §9.6.3.2: the masteryScore extension must be the launch's ({mastery})")
    scaled = (score or {}).get("scaled")
    if mastery is None or scaled is None:
        return
    if sent is None:
        raise RuleViolation("cmi5 §9.6.3.2: a passed/failed statement judged by a score carries the"
                            " masteryScore extension")  # fmt: skip
    if name == "passed" and scaled < mastery:
        raise RuleViolation(
            f"cmi5 §9.3.4: a passed score ({scaled}) is at least the masteryScore ({mastery})"
        )
    if name == "failed" and scaled >= mastery:
        raise RuleViolation(f"cmi5 §9.3.5: a failed score ({scaled}) is below the masteryScore ({mastery})")


def _after(name: str, session: Session) -> Session:
    return replace(
        session,
        verbs=session.verbs | {name},
        initialized=session.initialized or name == "initialized",
        terminated=session.terminated or name == "terminated",
        completed_before=session.completed_before or name == "completed",
        passed_before=session.passed_before or name == "passed",
    )


# --- moveOn ------------------------------------------------------------------------------------------


def au_satisfied(move_on: str, *, completed: bool, passed: bool, waived: bool) -> bool:
    """Whether an AU is satisfied (§13.1.4 moveOn; a waived AU is satisfied whatever its moveOn)."""
    if waived or move_on == "NotApplicable":
        return True
    return {
        "Completed": completed,
        "Passed": passed,
        "CompletedOrPassed": completed or passed,
        "CompletedAndPassed": completed and passed,
    }[move_on]


@dataclass(frozen=True, slots=True)
class Member:
    """An AU of a course and the blocks it is in (publisher ids, outermost first)."""

    au: str
    blocks: tuple[str, ...]


def satisfied_blocks(members: list[Member], satisfied_aus: set[str]) -> list[str]:
    """Blocks all of whose AUs (nested blocks' included) are satisfied, innermost first (the order
    the LMS records them in: a block before the blocks around it)."""
    depth: dict[str, int] = {}
    complete: dict[str, bool] = {}
    for member in members:
        for level, block in enumerate(member.blocks):
            depth[block] = level
            complete[block] = complete.get(block, True) and member.au in satisfied_aus
    done = [block for block, ok in complete.items() if ok]
    return sorted(done, key=lambda block: -depth[block])


def course_satisfied(members: list[Member], satisfied_aus: set[str]) -> bool:
    """A course is satisfied when all its AUs are (§13.1.4)."""
    return all(member.au in satisfied_aus for member in members)
