"""The instructor engagement page and its JSON API, served by the LRS.

``GET /analytics/`` is one self-contained HTML page (no external scripts, so it works offline
and on the embedded default). It calls, on the same origin and under the same path (browsers
then resend the Basic credentials they were asked for once):

* ``GET /analytics/api/courses``: the courses of the credential's tenant's catalog it may read, with lessons;
* ``GET /analytics/api/courses/{id}/report?since=&until=&grain=day|hour``: engagement (lesson ×
  day or hour), video heatmap (5-second segments), completion funnel and at-risk learners.

What a credential may see and how a report is had is the use case's
(``lrs.usecases.analytics``); this module translates HTTP. Reports come from the pipeline
worker's web server (``LRS_ANALYTICS_URL``, ``WorkerReports``), which owns the ClickHouse
connection: with the embedded default ClickHouse is chdb inside the worker process.
"""

from __future__ import annotations

from importlib import resources

import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lrs.auth.credentials import AuthenticationError, Principal
from lrs.settings import AnalyticsSettings
from lrs.usecases.analytics import CourseAnalytics, ReportsUnavailable
from lrs.usecases.errors import LRSError
from sinks.reports import ReportQuery

from .tenants import tenant_principal
from .responses import error_response

REALM = {"WWW-Authenticate": 'Basic realm="xAPI"'}


def _page() -> bytes:
    return (resources.files("lrs.http") / "static" / "analytics.html").read_bytes()


class WorkerReports:
    """``ReportSource`` over the worker's web server."""

    def __init__(self, settings: AnalyticsSettings) -> None:
        self._url = settings.url()
        self._timeout = settings.analytics_timeout

    async def course_report(self, query: ReportQuery) -> bytes:
        params = {
            "since": query.since.isoformat(), "until": query.until.isoformat(), "grain": query.grain,
            "tenant": query.tenant,
        }  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=self._url, timeout=self._timeout) as client:
                answer = await client.get(f"/reports/course/{query.course_id}", params=params)
        except httpx.HTTPError as exc:
            raise ReportsUnavailable(f"the analytics worker at {self._url} is unavailable: {exc}") from None
        if answer.status_code != 200:
            raise ReportsUnavailable(answer.text, 502 if answer.status_code >= 500 else answer.status_code)
        return answer.content


async def _principal(request: Request) -> Principal:
    return await tenant_principal(request)


def analytics_router(analytics: CourseAnalytics) -> APIRouter:
    router = APIRouter(prefix="/analytics", tags=["analytics"])

    @router.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        """The instructor page (asks the browser for Basic credentials)."""
        try:
            analytics.check_access((await _principal(request)).scopes)
        except AuthenticationError as exc:
            return error_response(401, str(exc), REALM)
        except LRSError as exc:
            return error_response(exc.status, exc.message)
        return HTMLResponse(_page(), headers={"Cache-Control": "no-store"})

    @router.get("/api/courses")
    async def courses(request: Request) -> Response:
        try:
            principal = await _principal(request)
            found = await analytics.courses(principal.scopes, principal.tenant)
        except AuthenticationError as exc:
            return error_response(401, str(exc), REALM)
        except LRSError as exc:
            return error_response(exc.status, exc.message)
        return Response(orjson.dumps(found), media_type="application/json")

    @router.get("/api/courses/{course_id}/report")
    async def report(request: Request, course_id: str) -> Response:
        q = request.query_params
        try:
            principal = await _principal(request)
            body = await analytics.report(
                principal.scopes, course_id, q.get("since"), q.get("until"), q.get("grain"), principal.tenant
            )
        except AuthenticationError as exc:
            return error_response(401, str(exc), REALM)
        except LRSError as exc:
            return error_response(exc.status, exc.message)
        return Response(body, media_type="application/json")

    return router
