"""cmi5 launch over HTTP (``/cmi5/…``): course import, launch, the fetch URL, waiving and
abandoning, and the files of imported zip packages. The use cases (``lrs.usecases.cmi5``)
decide who may and what is valid; this module reads requests and writes answers."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from lrs.auth.credentials import AuthenticationError, Principal
from lrs.settings import Cmi5Settings
from lrs.usecases.cmi5 import Cmi5
from lrs.usecases.errors import BadRequest, Forbidden, LRSError, NotFound, Unauthorized
from lrs.xapi.jsontext import JsonTextError, parse_bounded

from .tenants import lms_principal
from .responses import error_response


class Unavailable(LRSError):
    status = 503


REALM = {"WWW-Authenticate": 'Basic realm="xAPI"'}
PACKAGE_TYPES = {"application/zip", "application/x-zip-compressed", "application/xml", "text/xml"}
MAX_JSON_DEPTH = 32


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


async def _principal(request: Request) -> Principal:
    try:
        principal = await lms_principal(request)
    except AuthenticationError as exc:
        raise Unauthorized(str(exc)) from None
    if principal.grant is not None:
        raise Forbidden("a cmi5 session token cannot manage cmi5 courses or launches")
    return principal


async def _body(request: Request, what: str) -> Any:
    try:
        return parse_bounded(await request.body(), MAX_JSON_DEPTH, what)
    except JsonTextError as exc:
        raise BadRequest(str(exc)) from None


class Cmi5Routes:
    """The routes, each a method; ``router`` mounts them."""

    def __init__(self, settings: Cmi5Settings) -> None:
        self.settings = settings

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/cmi5", tags=["cmi5"])
        router.add_api_route("/courses", self.import_course, methods=["POST"])
        router.add_api_route("/courses", self.list_courses, methods=["GET"])
        router.add_api_route("/courses/{course_id}", self.show_course, methods=["GET"])
        router.add_api_route("/launch", self.launch_au, methods=["POST"])
        router.add_api_route("/fetch/{key}", self.fetch_token, methods=["POST"])
        router.add_api_route("/registrations/{registration}/waive", self.waive_au, methods=["POST"])
        router.add_api_route("/sessions/{session_id}", self.show_session, methods=["GET"])
        router.add_api_route("/sessions/{session_id}/abandon", self.abandon_session, methods=["POST"])
        router.add_api_route("/content/{course_id}/{path:path}", self.content, methods=["GET"])
        return router

    def _public_url(self, request: Request) -> str:
        return (self.settings.public_url or str(request.base_url)).rstrip("/")

    @staticmethod
    def _cmi5(request: Request) -> Cmi5:
        cmi5 = getattr(request.app.state, "cmi5", None)
        if cmi5 is None:
            raise Unavailable("cmi5 needs the LMS database (PostgreSQL): set LRS_LMS_DATABASE_URL")
        return cmi5

    @staticmethod
    async def _answer(work) -> Response:
        try:
            return await work
        except LRSError as exc:
            return error_response(exc.status, exc.message, REALM if exc.status == 401 else None)

    async def import_course(
        self, request: Request, course_id: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None
    ) -> Response:
        """Import (or re-import) a cmi5 course: ``cmi5.xml`` (``application/xml``) or a zip
        package holding it (``application/zip``). Needs scope ``all``."""

        async def work() -> Response:
            principal = await _principal(request)
            media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
            if media not in PACKAGE_TYPES:
                raise BadRequest(
                    f"send cmi5.xml as application/xml or a zip package as application/zip, not {media!r}"
                )
            body = await request.body()
            if len(body) > self.settings.max_package_bytes:
                raise BadRequest(f"the package exceeds {self.settings.max_package_bytes} bytes")
            return _json(await self._cmi5(request).importer(principal.scopes, body, course_id))

        return await self._answer(work())

    async def list_courses(self, request: Request) -> Response:
        async def work() -> Response:
            principal = await _principal(request)
            return _json(await self._cmi5(request).courses.list(principal.scopes))

        return await self._answer(work())

    async def show_course(self, request: Request, course_id: int) -> Response:
        async def work() -> Response:
            principal = await _principal(request)
            return _json(await self._cmi5(request).courses.show(principal.scopes, course_id))

        return await self._answer(work())

    async def launch_au(self, request: Request) -> Response:
        """Launch an AU for a learner: ``{"student_id", "course_id", "au", "launch_mode",
        "return_url"}`` → the launch URL, registration and session id. Needs scope ``all``."""

        async def work() -> Response:
            principal = await _principal(request)
            raw = await _body(request, "the launch request")
            return _json(await self._cmi5(request).launch(principal.scopes, raw, self._public_url(request)))

        return await self._answer(work())

    async def fetch_token(self, request: Request, key: str) -> Response:
        """The fetch URL of a launch (cmi5 §8.2): the session's token, once."""

        async def work() -> Response:
            return _json(await self._cmi5(request).fetch(key))

        return await self._answer(work())

    async def waive_au(self, request: Request, registration: str) -> Response:
        async def work() -> Response:
            principal = await _principal(request)
            raw = await _body(request, "the waive request")
            return _json(await self._cmi5(request).waive(principal.scopes, registration, raw))

        return await self._answer(work())

    async def show_session(self, request: Request, session_id: str) -> Response:
        async def work() -> Response:
            principal = await _principal(request)
            return _json(await self._cmi5(request).sessions.show(principal.scopes, session_id))

        return await self._answer(work())

    async def abandon_session(self, request: Request, session_id: str) -> Response:
        async def work() -> Response:
            principal = await _principal(request)
            return _json(await self._cmi5(request).sessions.end(principal.scopes, session_id))

        return await self._answer(work())

    async def content(self, request: Request, course_id: int, path: str) -> Response:
        """A file of an imported zip package (what relative AU urls launch)."""

        async def work() -> Response:
            content = await self._cmi5(request).courses.file(course_id, path)
            if content is None:
                raise NotFound(f"course {course_id} has no file {path!r}")
            media = mimetypes.guess_type(path)[0] or "application/octet-stream"
            return Response(content, media_type=media, headers={"X-Content-Type-Options": "nosniff"})

        return await self._answer(work())
