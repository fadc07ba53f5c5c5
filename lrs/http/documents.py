"""The document resources: ``/activities/state``, ``/activities/profile``, ``/agents/profile``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from lrs.store.ports import DocumentKind, DocumentScope
from lrs.usecases import documents as usecase
from lrs.usecases.documents import Preconditions
from lrs.xapi.agents import ifi_key

from .params import Params, query_params
from .responses import http_date, json_response, no_content
from .statements import read_body


@dataclass(frozen=True)
class Resource:
    kind: DocumentKind
    id_param: str
    scope_params: tuple[str, ...]

    def allowed(self, method: str) -> tuple[str, ...]:
        extra = ("since",) if method in ("GET", "HEAD") else ()
        return (*self.scope_params, self.id_param, *extra)

    def scope(self, params: Params) -> DocumentScope:
        activity_id = params.iri("activityId", required=True) if "activityId" in self.scope_params else ""
        agent_key = ""
        if "agent" in self.scope_params:
            agent = params.agent("agent", required=True, groups=self.kind is DocumentKind.STATE)
            agent_key = ifi_key(agent) or ""
        registration = ""
        if "registration" in self.scope_params:
            registration = (params.uuid("registration") or "").lower()
        return DocumentScope(self.kind, activity_id, agent_key, registration)


STATE = Resource(DocumentKind.STATE, "stateId", ("activityId", "agent", "registration"))
ACTIVITY_PROFILE = Resource(DocumentKind.ACTIVITY_PROFILE, "profileId", ("activityId",))
AGENT_PROFILE = Resource(DocumentKind.AGENT_PROFILE, "profileId", ("agent",))


def _preconditions(request: Request) -> Preconditions:
    return Preconditions(request.headers.get("if-match"), request.headers.get("if-none-match"))


def endpoint(resource: Resource):
    """One endpoint function serving every method of a document resource."""

    async def handle(request: Request) -> Response:
        method = request.method
        params = query_params(request, resource.allowed(method))
        scope = resource.scope(params)
        stores, principal, version = request.state.stores, request.state.principal, request.state.version
        # only State has multi-document DELETE; profiles need their id to delete one
        id_required = method in ("PUT", "POST") or (
            method == "DELETE" and resource.kind is not DocumentKind.STATE
        )
        doc_id = params.string(resource.id_param, required=id_required)
        if method in ("GET", "HEAD"):
            if doc_id is None:
                ids, latest = await usecase.document_ids(stores, principal, scope, params.timestamp("since"))
                headers = {"Last-Modified": http_date(latest)} if latest else None
                return json_response(ids, headers=headers)
            if "since" in params:
                params.timestamp("since")  # validated even where it does not apply
            document = await usecase.get_document(stores, principal, scope, doc_id)
            headers = {
                "ETag": document.etag,
                "Last-Modified": http_date(document.updated),
                "Content-Type": document.content_type,
            }
            return Response(document.content, headers=headers)
        if method == "DELETE":
            if doc_id is None:
                await usecase.delete_documents(stores, principal, scope)
            else:
                await usecase.delete_document(
                    stores, principal, version, scope, doc_id, _preconditions(request)
                )
            return no_content()
        content = await read_body(request)
        content_type = request.headers.get("content-type")
        if method == "PUT":
            await usecase.put_document(
                stores, principal, version, scope, doc_id, content, content_type, _preconditions(request)
            )
        else:
            await usecase.post_document(
                stores, principal, version, scope, doc_id, content, content_type, _preconditions(request),
                max_depth=request.app.state.settings.max_json_depth,
            )  # fmt: skip
        return no_content()

    return handle
