"""xAPI authorisation scopes and what each resource needs.

Scope names are those of xAPI 1.0.3 §4.1 (OAuth scope table), applied to Basic credentials.
"""

from __future__ import annotations

import re
from enum import Enum

SCOPES = (
    "statements/write",
    "statements/read",
    "statements/read/mine",
    "state",
    "define",
    "profile",
    "all/read",
    "all",
    "import",
    "admin",
)
"""xAPI's scopes, and ``import`` and ``admin``: this LRS's own, which ``all`` does not include
(below; ``admin`` erases learners, docs/data-rights.md, and grants no xAPI resource)."""


class Need(Enum):
    """An operation a request performs, mapped to the scopes that grant it."""

    STATEMENTS_WRITE = frozenset({"statements/write", "all", "import"})
    STATEMENTS_READ = frozenset({"statements/read", "statements/read/mine", "all/read", "all"})
    STATE_READ = frozenset({"state", "all/read", "all"})
    STATE_WRITE = frozenset({"state", "all"})
    PROFILE_READ = frozenset({"profile", "all/read", "all"})
    PROFILE_WRITE = frozenset({"profile", "all"})
    RESOURCES_READ = frozenset(
        {"statements/read", "statements/read/mine", "all/read", "all", "define", "profile", "state"}
    )


def allows(scopes: frozenset[str], need: Need) -> bool:
    return not scopes.isdisjoint(need.value)


def reads_only_own(scopes: frozenset[str]) -> bool:
    """``statements/read/mine`` without a broader read scope: only statements this credential stored."""
    return "statements/read/mine" in scopes and scopes.isdisjoint({"statements/read", "all/read", "all"})


def keeps_authority(scopes: frozenset[str]) -> bool:
    """Whether statements from this credential keep the ``authority`` they carry (scope ``import``:
    another LRS's statements moved here by ``lrs import`` or forwarded by another LRS). xAPI lets
    an LRS leave a submitted authority unchanged only where a strong trust relationship exists, so
    this is a scope of its own that ``all`` does not grant; every other credential's statements get
    the credential's authority."""
    return "import" in scopes


def may_define(scopes: frozenset[str]) -> bool:
    """Whether statements from this credential update canonical activity definitions."""
    return not scopes.isdisjoint({"define", "all"})


ANALYTICS_ALL = frozenset({"analytics/read", "all/read", "all"})
"""Scopes that may read every course's analytics (the instructor page, ``/analytics/api``)."""
ANALYTICS_COURSE = re.compile(r"analytics/course/([0-9]{1,9})")
"""``analytics/course/12``: may read course 12's analytics (an instructor of that course)."""


ANALYTICS_NAMES = "analytics/names"
"""May see learners' names in course analytics (from the catalog; with LRS_ANALYTICS_PSEUDONYMS the
sinks know learners by pseudonym only, docs/data-rights.md)."""


def sees_names(scopes: frozenset[str]) -> bool:
    return ANALYTICS_NAMES in scopes or "all" in scopes


def analytics_courses(scopes: frozenset[str]) -> frozenset[int] | None:
    """Courses whose analytics a credential may read: ``None`` = all, empty = none."""
    if not scopes.isdisjoint(ANALYTICS_ALL):
        return None
    return frozenset(int(m[1]) for s in scopes if (m := ANALYTICS_COURSE.fullmatch(s)))


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [
        s
        for s in scopes
        if s not in SCOPES
        and s not in ("analytics/read", ANALYTICS_NAMES)
        and not ANALYTICS_COURSE.fullmatch(s)
    ]
    if unknown:
        raise ValueError(
            f"unknown scope {unknown[0]!r}; known scopes: {', '.join(SCOPES)}, analytics/read, analytics/names,"
            " analytics/course/ID"
        )
    if not scopes:
        raise ValueError("a credential needs at least one scope")
    return scopes
