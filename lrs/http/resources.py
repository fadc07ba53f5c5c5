"""The Activities, Agents and About resources."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lrs import __version__
from lrs.auth.scopes import Need, allows
from lrs.usecases.errors import Forbidden
from lrs.xapi.agents import ifi_key, person

from .params import Params
from .responses import json_response

VERSIONS = ["1.0.3", "2.0.0"]


def _require_read(request: Request) -> None:
    if not allows(request.state.principal.scopes, Need.RESOURCES_READ):
        raise Forbidden("this credential may not read activities or agents")


async def get_activity(request: Request) -> Response:
    params = Params(request.query_params.multi_items(), ("activityId",))
    activity_id = params.iri("activityId", required=True)
    _require_read(request)
    definition = await request.app.state.stores.statements.activity_definition(activity_id)
    activity = {"objectType": "Activity", "id": activity_id}
    if definition:
        activity["definition"] = definition
    return json_response(activity)


async def get_agent(request: Request) -> Response:
    params = Params(request.query_params.multi_items(), ("agent",))
    agent = params.agent("agent", required=True)
    _require_read(request)
    names = await request.app.state.stores.statements.agent_names(ifi_key(agent) or "")
    return json_response(person(agent, names))


async def get_about(request: Request) -> Response:
    Params(request.query_params.multi_items(), ())
    return json_response({"version": VERSIONS, "extensions": {"urn:x-lrs-analytics:version": __version__}})
