"""The instructor report of one course: what the engagement page shows, in one round trip.

Every panel reads the ClickHouse views (``clickhouse_schema.sql``, ``clickhouse_bi.sql``), so
the page, Grafana and BI tools agree on the numbers. Parameters are typed before they reach
SQL and bound by clickhouse-connect, never formatted into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from lrs.store.ports import DEFAULT_TENANT, tenant_problem

Grain = Literal["day", "hour"]
MAX_DAYS = 366

_ENGAGEMENT = {
    "day": """
        SELECT lesson_id, toString(day) AS bucket, sum(events) AS events, sum(seconds) AS seconds
        FROM engagement_hourly
        WHERE tenant = %(tenant)s AND course_id = %(course)s AND day BETWEEN %(since)s AND %(until)s
        GROUP BY lesson_id, day ORDER BY lesson_id, day""",
    "hour": """
        SELECT lesson_id, toString(hour) AS bucket, sum(events) AS events, sum(seconds) AS seconds
        FROM engagement_hourly
        WHERE tenant = %(tenant)s AND course_id = %(course)s AND day BETWEEN %(since)s AND %(until)s
        GROUP BY lesson_id, hour ORDER BY lesson_id, hour""",
}
_VIDEO = """
    SELECT lesson_id, activity_id, segment, second_from, views
    FROM video_heatmap WHERE tenant = %(tenant)s AND course_id = %(course)s ORDER BY lesson_id, activity_id, segment"""
_FUNNEL = """
    SELECT started, progressed, completed, passed FROM completion_funnel
    WHERE tenant = %(tenant)s AND course_id = %(course)s"""
_AT_RISK = """
    SELECT learner_key, student_id, last_event, lessons_completed, quizzes_passed, events
    FROM bi_at_risk_learners WHERE tenant = %(tenant)s AND course_id = %(course)s ORDER BY last_event LIMIT 200"""


@dataclass(frozen=True, slots=True)
class ReportQuery:
    course_id: int
    since: date
    until: date
    grain: Grain = "day"
    tenant: str = DEFAULT_TENANT
    """Whose course: every panel reads that tenant's rows only."""

    @classmethod
    def parse(
        cls, course_id: str, since: str | None, until: str | None, grain: str | None,
        tenant: str = DEFAULT_TENANT,
    ) -> ReportQuery:  # fmt: skip
        """Check a request's parameters; ``ValueError`` names the offending one. Course ids are
        ASCII digits that fit a 64-bit integer; dates lie within the range of ClickHouse's
        ``Date`` (the type of the views' ``day``), so every accepted value reaches them as it is."""
        first_day, last_day = date(1970, 1, 1), date(2149, 6, 6)
        if not (course_id.isascii() and course_id.isdigit()) or len(course_id) > 18:
            raise ValueError(f"course id must be a number of at most 18 digits, not {course_id[:40]!r}")

        def day(name: str, value: str | None, default: date) -> date:
            if not value:
                return default
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{name} must be a date (YYYY-MM-DD), not {value[:40]!r}") from None
            if not first_day <= parsed <= last_day:
                raise ValueError(f"{name} must be a date from {first_day} to {last_day}, not {value!r}")
            return parsed

        end = day("until", until, date.today())
        start = day("since", since, max(first_day, end - timedelta(days=30)))
        if start > end:
            raise ValueError(f"since ({start}) is after until ({end})")
        if (end - start).days >= MAX_DAYS:
            raise ValueError(f"the date range is longer than {MAX_DAYS} days")
        if grain not in (None, "day", "hour"):
            raise ValueError(f"grain must be day or hour, not {grain[:40]!r}")
        if problem := tenant_problem(tenant):
            raise ValueError(f"tenant {tenant[:40]!r}: {problem}")
        return cls(int(course_id), start, end, grain or "day", tenant)  # type: ignore[arg-type]


async def course_report(records: Any, query: ReportQuery) -> dict[str, Any]:
    """The report; ``records(sql, parameters)`` runs a query and returns rows as dicts."""
    parameters = {
        "tenant": query.tenant,
        "course": query.course_id,
        "since": query.since,
        "until": query.until,
    }
    funnel = await records(_FUNNEL, parameters)
    return {
        "course_id": query.course_id,
        "since": query.since.isoformat(),
        "until": query.until.isoformat(),
        "grain": query.grain,
        "engagement": await records(_ENGAGEMENT[query.grain], parameters),
        "video": await records(_VIDEO, parameters),
        "funnel": funnel[0] if funnel else {"started": 0, "progressed": 0, "completed": 0, "passed": 0},
        "at_risk": await records(_AT_RISK, parameters),
    }
