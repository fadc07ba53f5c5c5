"""``POST /catalog``: merge a catalog document into the LMS database (the same document as
``lrs catalog load``; the use case decides who may and what is valid)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.auth.credentials import AuthenticationError
from lrs.usecases.catalog import LoadCatalog
from lrs.usecases.errors import LRSError
from lrs.xapi.jsontext import JsonTextError, parse_bounded

from .tenants import tenant_principal
from .responses import error_response

REALM = {"WWW-Authenticate": 'Basic realm="xAPI"'}


def catalog_router(load: LoadCatalog, max_json_depth: int) -> APIRouter:
    router = APIRouter(tags=["pipeline"])

    @router.post("/catalog")
    async def load_catalog(request: Request) -> Response:
        """Merge a catalog document (courses, modules, lessons, quizzes, students) into the
        catalog of the credential's tenant, which the pipeline maps its statements with. Needs a
        credential with scope ``all``."""
        try:
            principal = await tenant_principal(request)
            raw = parse_bounded(await request.body(), max_json_depth, "the catalog document")
            counts = await load(principal.scopes, raw, principal.tenant)
        except AuthenticationError as exc:
            return error_response(401, str(exc), REALM)
        except JsonTextError as exc:
            return error_response(400, str(exc))
        except LRSError as exc:
            return error_response(exc.status, exc.message)
        return Response(orjson.dumps(counts), media_type="application/json")

    return router
