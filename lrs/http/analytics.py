"""The instructor engagement page and its JSON API, served by the LRS.

``GET /analytics/`` is one self-contained HTML page (no external scripts, so it works offline
and on the embedded default). It calls, on the same origin and under the same path (browsers
then resend the Basic credentials they were asked for once):

* ``GET /analytics/api/courses``: the catalog courses the credential may read, with lessons;
* ``GET /analytics/api/courses/{id}/report?since=&until=&grain=day|hour``: engagement (lesson ×
  day or hour), video heatmap (5-second segments), completion funnel and at-risk learners.

Reports come from the pipeline worker's web server (``LRS_ANALYTICS_URL``), which owns the
ClickHouse connection: with the embedded default ClickHouse is chdb inside the worker process.
Access: scopes ``all``, ``all/read`` or ``analytics/read`` read every course,
``analytics/course/ID`` one course; any other credential (a learner's) gets 403.
"""

from __future__ import annotations

from importlib import resources

import asyncpg
import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lrs.auth.credentials import AuthenticationError
from lrs.auth.scopes import analytics_courses
from lrs.settings import AnalyticsSettings
from sinks.reports import ReportQuery

from .responses import error_response

REALM = {"WWW-Authenticate": 'Basic realm="xAPI"'}
_COURSES = """
SELECT c.course_id AS id, c.title,
       coalesce(json_agg(json_build_object('id', l.lesson_id, 'title', l.title, 'kind', l.kind)
                ORDER BY m.position, l.position, l.lesson_id) FILTER (WHERE l.lesson_id IS NOT NULL), '[]') AS lessons
FROM lms.courses c
LEFT JOIN lms.lessons l ON l.course_id = c.course_id
LEFT JOIN lms.modules m ON m.module_id = l.module_id
GROUP BY c.course_id, c.title
ORDER BY c.course_id
"""


def _page() -> bytes:
    return (resources.files("lrs.http") / "static" / "analytics.html").read_bytes()


def analytics_router(lms_dsn: str | None, settings: AnalyticsSettings) -> APIRouter:
    """``lms_dsn``: the PostgreSQL holding the catalog (None: there is none, e.g. a MongoDB store)."""
    router = APIRouter(prefix="/analytics", tags=["analytics"])
    worker = settings.url()

    async def allowed(request: Request) -> frozenset[int] | None | Response:
        """The courses the caller may read (None = all), or the refusal to send."""
        try:
            principal = await request.app.state.authenticator.authenticate(
                request.headers.get("authorization")
            )
        except AuthenticationError as exc:
            return error_response(401, str(exc), REALM)
        courses = analytics_courses(principal.scopes)
        if courses is not None and not courses:
            return error_response(403, "this credential may not read course analytics")
        return courses

    @router.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        """The instructor page (asks the browser for Basic credentials)."""
        refused = await allowed(request)
        if isinstance(refused, Response):
            return refused
        return HTMLResponse(_page(), headers={"Cache-Control": "no-store"})

    @router.get("/api/courses")
    async def courses(request: Request) -> Response:
        scope = await allowed(request)
        if isinstance(scope, Response):
            return scope
        if lms_dsn is None:
            return error_response(501, "the catalog is kept in PostgreSQL: set LRS_LMS_DATABASE_URL")
        try:
            connection = await asyncpg.connect(lms_dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            return error_response(503, f"the LMS catalog database is unavailable: {exc}")
        try:
            rows = await connection.fetch(_COURSES)
        except asyncpg.UndefinedTableError:
            rows = []  # no catalog loaded yet
        finally:
            await connection.close()
        found = [
            {"id": r["id"], "title": r["title"], "lessons": orjson.loads(r["lessons"])}
            for r in rows
            if scope is None or r["id"] in scope
        ]
        return Response(orjson.dumps(found), media_type="application/json")

    @router.get("/api/courses/{course_id}/report")
    async def report(request: Request, course_id: str) -> Response:
        scope = await allowed(request)
        if isinstance(scope, Response):
            return scope
        q = request.query_params
        try:
            query = ReportQuery.parse(course_id, q.get("since"), q.get("until"), q.get("grain"))
        except ValueError as exc:
            return error_response(400, str(exc))
        if scope is not None and query.course_id not in scope:
            return error_response(403, f"this credential may not read course {query.course_id}'s analytics")
        params = {"since": query.since.isoformat(), "until": query.until.isoformat(), "grain": query.grain}
        try:
            async with httpx.AsyncClient(base_url=worker, timeout=settings.analytics_timeout) as client:
                answer = await client.get(f"/reports/course/{query.course_id}", params=params)
        except httpx.HTTPError as exc:
            return error_response(503, f"the analytics worker at {worker} is unavailable: {exc}")
        if answer.status_code != 200:
            return error_response(502 if answer.status_code >= 500 else answer.status_code, answer.text)
        return Response(answer.content, media_type="application/json")

    return router
