"""The worker's web pages (port ``LRS_WORKER_WEB_PORT``): one view class per page.

``/metrics`` (Prometheus), ``/watermarks`` (each sink's position per partition, and the relay's:
tests and ``lrs replay`` wait on them), ``/catalog`` (what the worker's catalog holds),
``/analytics/{view}`` (rows of an analytics view), ``/reports/course/{id}`` (the instructor
page's report), ``/learners/{id}/history`` (Cassandra time series), ``/replay`` (begin a rebuild;
GET: the rebuilds in progress). Every view reads the pipeline through ``self.app.pipeline``.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from faust.web import View
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lrs.store.ports import DEFAULT_TENANT, tenant_problem
from lrs.xapi.formats import parse_timestamp
from sinks.catalog import Catalog
from sinks.reports import ReportQuery, course_report

from .pipeline import Pipeline

ANALYTICS_VIEWS = frozenset({
    "engagement_hourly", "active_learners_daily", "active_learners_weekly", "video_heatmap", "quiz_performance",
    "question_performance", "completion_funnel", "time_to_complete", "bi_course_overview", "bi_course_daily",
    "bi_lesson_engagement", "bi_video_segments", "bi_quiz_performance", "bi_quiz_items", "bi_learner_activity",
    "bi_at_risk_learners", "bi_tenants",
})  # fmt: skip
PER_TENANT_VIEWS = frozenset({"bi_tenants"})
"""Views with no ``course_id`` column (one row per tenant)."""


def json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body, default=str), status=status, content_type="application/json")


class PipelineView(View):
    @property
    def pipeline(self) -> Pipeline:
        return self.app.pipeline


class Metrics(PipelineView):
    async def get(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class Watermarks(PipelineView):
    async def get(self, request: web.Request) -> web.Response:
        pipeline = self.pipeline
        body: dict[str, Any] = {"relay": pipeline.relay.position if pipeline.relay else None}
        for sink in pipeline.sinks:
            body[sink.name] = await sink.watermarks(pipeline.stream.stream_partitions)
        return json(body)


def tenant_of(request: web.Request) -> str:
    """The ``tenant`` query parameter (the default tenant without one); ``ValueError`` for a name
    no tenant can have."""
    tenant = request.query.get("tenant", DEFAULT_TENANT)
    if problem := tenant_problem(tenant):
        raise ValueError(f"tenant {tenant[:40]!r}: {problem}")
    return tenant


class CatalogPage(PipelineView):
    """Course ids and the number of students of a tenant's catalog (``tenant``, the default
    tenant's without it) as the worker holds it now: it reloads it a moment after an upload."""

    async def get(self, request: web.Request) -> web.Response:
        try:
            tenant = tenant_of(request)
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        catalog = self.pipeline.catalogs.get(tenant, Catalog())
        return json({"courses": sorted(catalog.courses), "students": len(set(catalog.students.values()))})


class AnalyticsView(PipelineView):
    """Rows of one analytics view of one tenant (``tenant``, the default tenant without it),
    optionally for one course: ``/analytics/video_heatmap?tenant=acme&course_id=3``."""

    async def get(self, request: web.Request, view: str) -> web.Response:
        views = self.pipeline.found.views
        if views is None or view not in ANALYTICS_VIEWS:
            return web.Response(
                status=404, text=f"no analytics view {view!r}; views: {sorted(ANALYTICS_VIEWS)}"
            )
        try:
            tenant = tenant_of(request)
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        where, parameters = " WHERE tenant = %(tenant)s", {"tenant": tenant}
        course = request.query.get("course_id")
        if course is not None:
            if view in PER_TENANT_VIEWS:
                return web.Response(status=400, text=f"{view} has no course_id (one row per tenant)")
            if not (course.isascii() and course.isdigit() and len(course) <= 10):
                return web.Response(status=400, text="course_id must be a number")
            where, parameters = f"{where} AND course_id = %(course)s", {**parameters, "course": int(course)}
        return json(await views.records(f"SELECT * FROM {view}{where}", parameters))


class CourseReport(PipelineView):
    """The instructor page's report of one course (``sinks.reports``)."""

    async def get(self, request: web.Request, course_id: str) -> web.Response:
        views = self.pipeline.found.views
        if views is None:
            return web.Response(status=404, text="this worker has no ClickHouse sink")
        q = request.query
        try:
            query = ReportQuery.parse(
                course_id, q.get("since"), q.get("until"), q.get("grain"), q.get("tenant", DEFAULT_TENANT)
            )
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        return json(await course_report(views.records, query))


class LearnerHistoryPage(PipelineView):
    """A learner's daily engagement and weekly progress from the Cassandra sink:
    ``/learners/<user_id>/history?days=30&until=2026-05-31&tenant=acme``; ``user_id`` is the UUID
    of the sink's tables or the learner's identity key, URL-encoded (``mbox:mailto:…``,
    ``account:…``), of ``tenant``'s learners (the default tenant's without it)."""

    async def get(self, request: web.Request, user_id: str) -> web.Response:
        history = self.pipeline.found.history
        if history is None:
            return web.Response(status=404, text="this worker has no Cassandra sink")
        try:
            days = int(request.query.get("days", "30")[:4])
            until = date.fromisoformat(request.query["until"]) if "until" in request.query else None
        except ValueError:
            return web.Response(status=400, text="days must be a number, until a date (YYYY-MM-DD)")
        try:
            tenant = tenant_of(request)
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        if not 1 <= days <= 366:
            return web.Response(status=400, text="days must be between 1 and 366")
        try:
            learner: uuid.UUID | str = uuid.UUID(user_id)
        except ValueError:
            learner = user_id  # an identity key such as mbox:mailto:ada@example.org
        return json(await history.learner_history(learner, days, until, tenant))


class Replay(PipelineView):
    """POST ``{"since": ISO timestamp or null, "sinks": [names] or null}``: those sinks start
    rebuilding what was stored from ``since`` (beside what they serve, swapped in once caught up)
    and the relay replays from their positions. GET: the rebuilds in progress."""

    async def get(self, request: web.Request) -> web.Response:
        statuses = [s for sink in self.pipeline.sinks if (s := await sink.replay_status()) is not None]
        return json({
            "replaying": [
                {"sink": s.sink, "since": s.since.isoformat() if s.since else None, "target": s.target,
                 "position": s.position}
                for s in statuses
            ]
        })  # fmt: skip

    async def post(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return web.Response(status=400, text='expected {"since": …, "sinks": […]}')
        since = parse_timestamp(body["since"]) if isinstance(body.get("since"), str) else None
        if body.get("since") and since is None:
            return web.Response(status=400, text="since must be an ISO 8601 timestamp")
        names = body.get("sinks") or []
        chosen = [s for s in self.pipeline.sinks if not names or s.name in names]
        target = await self.pipeline.begin_replay(since, chosen)
        return json({"reset": [s.name for s in chosen], "target": target})


ROUTES: dict[str, type[View]] = {
    "/metrics": Metrics,
    "/watermarks": Watermarks,
    "/catalog": CatalogPage,
    "/analytics/{view}": AnalyticsView,
    "/reports/course/{course_id}": CourseReport,
    "/learners/{user_id}/history": LearnerHistoryPage,
    "/replay": Replay,
}
