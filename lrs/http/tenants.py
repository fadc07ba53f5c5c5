"""The caller of an endpoint on the LMS database: catalog uploads, the instructor page and
learner erasure (any tenant, each its own), cmi5 launch (the default tenant's only).

The pipeline carries every tenant's statements to the sinks and keeps a catalog per tenant, so
the catalog, analytics and erasure serve the caller's tenant. cmi5 registrations live in the
default tenant's LMS tables (docs/tenants.md): other tenants are refused there rather than
shown or given the default tenant's data.
"""

from __future__ import annotations

from starlette.requests import Request

from lrs.auth.credentials import Principal
from lrs.store.ports import DEFAULT_TENANT
from lrs.usecases.errors import Forbidden


async def tenant_principal(request: Request) -> Principal:
    """The authenticated caller (``AuthenticationError`` without valid credentials);
    ``Forbidden`` when its tenant is disabled or unknown."""
    principal = await request.app.state.authenticator.authenticate(request.headers.get("authorization"))
    await request.app.state.tenancy.admit(principal)
    return principal


async def lms_principal(request: Request) -> Principal:
    """The authenticated caller of an endpoint that serves the default tenant only (cmi5 launch);
    ``Forbidden`` for a credential of another tenant."""
    principal = await request.app.state.authenticator.authenticate(request.headers.get("authorization"))
    if principal.tenant != DEFAULT_TENANT:
        raise Forbidden(
            f"tenant {principal.tenant!r}: cmi5 launch serves the default tenant only (docs/tenants.md);"
            " this credential reaches its tenant's xAPI resources, catalog, analytics and erasure"
        )
    return principal
