"""The caller of an endpoint on the LMS database: catalog uploads, analytics and the instructor
page, cmi5 launch, learner erasure.

The pipeline (and with it the LMS database: catalog, rollups, analytics, cmi5 registrations)
serves the default tenant only (docs/tenants.md); other tenants have their statements,
documents and attachments, and are refused here rather than shown or given the default
tenant's data.
"""

from __future__ import annotations

from starlette.requests import Request

from lrs.auth.credentials import Principal
from lrs.store.ports import DEFAULT_TENANT
from lrs.usecases.errors import Forbidden


async def lms_principal(request: Request) -> Principal:
    """The authenticated caller (``AuthenticationError`` without valid credentials);
    ``Forbidden`` for a credential of a tenant other than the default."""
    principal = await request.app.state.authenticator.authenticate(request.headers.get("authorization"))
    if principal.tenant != DEFAULT_TENANT:
        raise Forbidden(
            f"tenant {principal.tenant!r}: the catalog, analytics, cmi5 launch and erasure serve the"
            " default tenant only (docs/tenants.md); this credential reaches its tenant's xAPI resources"
        )
    return principal
