"""Administration under scope ``admin`` (no xAPI scope reaches it): learner erasure
(``POST /admin/erasures``, ``GET /admin/erasures/{id}``; docs/data-rights.md), each of the
credential's tenant's learners and records (docs/tenants.md)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.auth.credentials import AuthenticationError
from lrs.usecases.erasure import EraseLearner, check_access, read_request
from lrs.usecases.errors import LRSError
from lrs.xapi.jsontext import JsonTextError, parse_bounded

from .tenants import tenant_principal
from .responses import error_response

REALM = {"WWW-Authenticate": 'Basic realm="xAPI"'}


def admin_router(erase: EraseLearner, max_json_depth: int) -> APIRouter:
    router = APIRouter(tags=["administration"])

    @router.post("/admin/erasures")
    async def erase_learner(request: Request) -> Response:
        """Erase a learner from every store: ``{"agent": {...}}`` or ``{"student_id": N}``, and
        ``"dry_run": true`` to count only. Answers the erasure record (counts per store, sinks
        still pending). Needs a credential with scope ``admin``."""
        try:
            principal = await tenant_principal(request)
            check_access(principal.scopes)  # before the body is read
            body = read_request(parse_bounded(await request.body(), max_json_depth, "the erasure request"))
            stores = await request.app.state.tenancy.stores(principal)
            report = await erase.with_stores(stores)(principal.scopes, principal.key, body, principal.tenant)
        except AuthenticationError as exc:
            return error_response(401, str(exc), REALM)
        except JsonTextError as exc:
            return error_response(400, str(exc))
        except LRSError as exc:
            return error_response(exc.status, exc.message)
        return Response(orjson.dumps(report), media_type="application/json")

    @router.get("/admin/erasures/{erasure_id}")
    async def erasure(request: Request, erasure_id: str) -> Response:
        """An erasure record (no personal data): counts per store, sinks still pending."""
        try:
            principal = await tenant_principal(request)
            report = await erase.status(principal.scopes, erasure_id, principal.tenant)
        except AuthenticationError as exc:
            return error_response(401, str(exc), REALM)
        except LRSError as exc:
            return error_response(exc.status, exc.message)
        return Response(orjson.dumps(report), media_type="application/json")

    return router
