"""The instructor page's data: which courses a credential may see, and a course's report (made
by the pipeline worker, which owns the analytics store)."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from lrs.auth.scopes import analytics_courses, sees_names
from lrs.store.ports import DEFAULT_TENANT
from sinks.ports import CatalogStore
from sinks.reports import ReportQuery

from .errors import BadRequest, Forbidden, LRSError


class Unavailable(LRSError):
    status = 503


class ReportsUnavailable(LRSError):
    """The worker that makes reports cannot be reached (503), failed (502), or refused (its status)."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


class ReportSource(Protocol):
    async def course_report(self, query: ReportQuery) -> bytes:
        """The report as JSON; ``ReportsUnavailable`` when it cannot be had."""


def readable(scopes: frozenset[str]) -> frozenset[int] | None:
    """Courses a credential may read (``None``: all); ``Forbidden`` when none."""
    courses = analytics_courses(scopes)
    if courses is not None and not courses:
        raise Forbidden("this credential may not read course analytics")
    return courses


class CourseAnalytics:
    def __init__(self, catalog: CatalogStore, reports: ReportSource) -> None:
        self._catalog = catalog
        self._reports = reports

    def check_access(self, scopes: frozenset[str]) -> None:
        """``Forbidden`` for a credential that may read no course's analytics."""
        readable(scopes)

    async def courses(self, scopes: frozenset[str], tenant: str = DEFAULT_TENANT) -> list[dict[str, Any]]:
        """The courses (with lessons) of the tenant's catalog the credential may read."""
        allowed = readable(scopes)
        try:
            found = await self._catalog.courses(tenant)
        except OSError as exc:
            raise Unavailable(f"the LMS catalog database is unavailable: {exc}") from None
        return [c for c in found if allowed is None or c["id"] in allowed]

    async def report(
        self, scopes: frozenset[str], course_id: str, since: str | None, until: str | None, grain: str | None,
        tenant: str = DEFAULT_TENANT,
    ) -> bytes:  # fmt: skip
        """A course's report from the tenant's analytics (names from the tenant's catalog)."""
        allowed = readable(scopes)
        try:
            query = ReportQuery.parse(course_id, since, until, grain, tenant)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if allowed is not None and query.course_id not in allowed:
            raise Forbidden(f"this credential may not read course {query.course_id}'s analytics")
        report = await self._reports.course_report(query)
        return await self._with_names(report, tenant) if sees_names(scopes) else report

    async def _with_names(self, report: bytes, tenant: str) -> bytes:
        """The report with the catalog's name of each learner at risk (credentials that may see
        names: scope ``analytics/names`` or ``all``)."""
        data = orjson.loads(report)
        at_risk = data.get("at_risk") if isinstance(data, dict) else None
        ids = sorted({r["student_id"] for r in at_risk or () if r.get("student_id")})
        if not ids:
            return report
        try:
            names = await self._catalog.student_names(ids, tenant)
        except OSError as exc:
            raise Unavailable(f"the LMS catalog database is unavailable: {exc}") from None
        for row in at_risk:
            if row.get("student_id") in names:
                row["name"] = names[row["student_id"]]
        return orjson.dumps(data)
