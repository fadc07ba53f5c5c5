"""The Activities, Agents and About resources."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lrs import __version__
from lrs.auth.scopes import Need, allows
from lrs.usecases.errors import Forbidden
from lrs.xapi.agents import ifi_key, person
from lrs.xapi.models import XapiVersion

from .params import query_params
from .responses import json_response


def _require_read(request: Request) -> None:
    if not allows(request.state.principal.scopes, Need.RESOURCES_READ):
        raise Forbidden("this credential may not read activities or agents")


async def get_activity(request: Request) -> Response:
    params = query_params(request, ("activityId",))
    activity_id = params.iri("activityId", required=True)
    _require_read(request)
    definition = await request.state.stores.statements.activity_definition(activity_id)
    activity = {"objectType": "Activity", "id": activity_id}
    if definition:
        activity["definition"] = definition
    return json_response(activity)


async def get_agent(request: Request) -> Response:
    params = query_params(request, ("agent",))
    agent = params.agent("agent", required=True)
    _require_read(request)
    names = await request.state.stores.statements.agent_names(ifi_key(agent) or "")
    return json_response(person(agent, names))


async def get_about(request: Request) -> Response:
    """The versions this LRS speaks (``LRS_XAPI_VERSIONS``). A client that announces xAPI 1.0.x
    is told only of 1.0.3 when 1.0.3 is enabled: to a 1.0.x client the About resource may list
    1.0.x versions alone (xAPI 1.0.3 §2.8), and a dual-version LRS must not confuse it; everyone
    else learns of every enabled version."""
    query_params(request, ())
    enabled = request.app.state.settings.versions()
    if request.state.version is XapiVersion.V1 and XapiVersion.V1.value in enabled:
        versions = [XapiVersion.V1.value]
    else:
        versions = list(enabled)
    return json_response({"version": versions, "extensions": {"urn:x-lrs-analytics:version": __version__}})
