"""What every xAPI request goes through before its resource: a pure ASGI middleware.

In order: CORS preflight, the 1.0.3 alternate request syntax (``POST ?method=…`` with a form
body, rewritten into the request it stands for), the ``X-Experience-API-Version`` check, and
HTTP Basic authentication. On the way out every response gets the version header (and CORS
headers when the request came with an ``Origin``), and every /statements response gets
``X-Experience-API-Consistent-Through``, errors included.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lrs.auth.credentials import AuthenticationError, Authenticator
from lrs.usecases.errors import (
    BadRequest,
    LRSError,
    MethodNotAllowed,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
)
from lrs.usecases.stores import Stores
from lrs.usecases.tenants import Tenancy
from lrs.xapi.formats import format_timestamp
from lrs.xapi.models import XapiVersion

from .last_resort import internal_error, log_unexpected
from .responses import error_response

log = logging.getLogger(__name__)

VERSION_HEADER = "x-experience-api-version"
CONSISTENT_THROUGH = "x-experience-api-consistent-through"
_V1 = re.compile(r"1\.0(\.\d+)?")
_V2 = re.compile(r"2\.0(\.\d+)?")
_ALT_HEADERS = {
    "authorization", "x-experience-api-version", "content-type", "content-length", "if-match", "if-none-match",
}  # fmt: skip
_ALT_METHODS = {"GET", "HEAD", "PUT", "POST", "DELETE"}
_DOCUMENT_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
RESOURCE_METHODS = {
    "/statements": ("GET", "HEAD", "PUT", "POST"),
    "/activities/state": _DOCUMENT_METHODS,
    "/activities/profile": _DOCUMENT_METHODS,
    "/agents/profile": _DOCUMENT_METHODS,
    "/activities": ("GET", "HEAD"),
    "/agents": ("GET", "HEAD"),
    "/about": ("GET", "HEAD"),
}
"""The methods each xAPI resource defines (OPTIONS is answered for CORS before this check)."""
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (
        b"access-control-expose-headers",
        b"ETag, Last-Modified, Content-Type, Content-Length, X-Experience-API-Version, "
        b"X-Experience-API-Consistent-Through",
    ),
]
_PREFLIGHT = [
    (b"access-control-allow-methods", b"HEAD, GET, POST, PUT, DELETE, OPTIONS"),
    (
        b"access-control-allow-headers",
        b"Authorization, Content-Type, X-Experience-API-Version, If-Match, If-None-Match, Accept-Language",
    ),
    (b"access-control-max-age", b"86400"),
]


ALL_VERSIONS = frozenset(XapiVersion)


def spoken(enabled: frozenset[XapiVersion]) -> str:
    """The enabled versions as an error message names them: ``1.0.3 (any 1.0.x) or 2.0.0``."""
    names = {XapiVersion.V1: "1.0.3 (any 1.0.x)", XapiVersion.V2: "2.0.0 (any 2.0.x)"}
    return " or ".join(names[v] for v in sorted(enabled))


def recognise(value: str) -> XapiVersion | None:
    """The version a header value names (1.0, 1.0.x → 1.0.3; 2.0, 2.0.x → 2.0.0), else ``None``."""
    value = value.strip()
    if _V1.fullmatch(value):
        return XapiVersion.V1
    if _V2.fullmatch(value):
        return XapiVersion.V2
    return None


def parse_version(value: str | None, enabled: frozenset[XapiVersion] = ALL_VERSIONS) -> XapiVersion:
    """The version of a request's header, refused (400 naming the versions this LRS speaks) when
    missing, unknown or not among ``enabled`` (``LRS_XAPI_VERSIONS``), as xAPI's Versioning says."""
    if value is None:
        raise BadRequest(f"the X-Experience-API-Version header is required: {spoken(enabled)}")
    version = recognise(value)
    if version is None:
        raise BadRequest(
            f"X-Experience-API-Version {value.strip()!r} is not supported; this LRS speaks {spoken(enabled)}"
        )
    if version not in enabled:
        raise BadRequest(
            f"X-Experience-API-Version {value.strip()!r} is not enabled on this LRS; it speaks"
            f" {spoken(enabled)} (LRS_XAPI_VERSIONS)"
        )
    return version


class ResponseHeaders:
    """``send`` for one xAPI request: the start of the response gets the version header (the
    client's version when it named a valid one), CORS headers for cross-origin requests, and on
    /statements the consistent-through header (errors included): the caller's tenant's, or for a
    request refused before its tenant is known (bad credentials, a disabled tenant) the server's
    clock, which tells nothing about any tenant's store."""

    def __init__(self, send: Send, *, version: XapiVersion, cors: bool, statements: bool) -> None:
        self._send = send
        self.version, self.cors, self.statements = version, cors, statements
        self.started = False
        self.stores: Stores | None = None
        """The caller's tenant's stores, once authenticated."""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            message = {**message, "headers": await self._headers(list(message.get("headers", [])))}
        await self._send(message)

    async def _headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        headers.append((VERSION_HEADER.encode(), self.version.value.encode()))
        if self.cors:
            headers.extend(_CORS)
        if self.statements and CONSISTENT_THROUGH.encode() not in {name.lower() for name, _ in headers}:
            if self.stores is None:  # refused before its tenant was known: no tenant's instant to tell
                moment = datetime.now(timezone.utc)
            else:
                moment = await self.stores.consistent_through(max_age=0.05)
            headers.append((CONSISTENT_THROUGH.encode(), format_timestamp(moment).encode()))
        return headers


def _cross_origin(scope: Scope) -> bool:
    """CORS headers matter only to browsers, which always send Origin on cross-origin requests."""
    return any(name == b"origin" for name, _ in scope["headers"])


def _check_method(resource: str, method: str) -> None:
    allowed = RESOURCE_METHODS.get(resource)
    if allowed is not None and method not in allowed:
        raise MethodNotAllowed(f"{method} is not an xAPI method of {resource}", allowed)


def refusal_headers(exc: LRSError) -> dict[str, str] | None:
    """The headers a refusal carries besides its JSON body."""
    if exc.status == 401:
        return {"WWW-Authenticate": 'Basic realm="xAPI"'}
    if isinstance(exc, MethodNotAllowed):
        return {"Allow": ", ".join(exc.allowed)}
    if isinstance(exc, TooManyRequests):
        return {"Retry-After": str(exc.retry_after)}
    return None


class XapiMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        state: State,
        base_path: str,
        max_body_bytes: int,
        versions: frozenset[XapiVersion] = ALL_VERSIONS,
    ) -> None:
        self.app = app
        self.state = state  # the application's state: ``stores`` and ``authenticator`` once started
        self.base = base_path.rstrip("/")
        self.max_body = max_body_bytes
        self.versions = versions
        self.default_version = XapiVersion.V1 if XapiVersion.V1 in versions else XapiVersion.V2
        """What answers to requests without a (usable) version header carry: 1.0.3 when enabled
        (the 1.0.3 conformance suite requires 1.0.x there), else 2.0.0 (the 2.0 suite's)."""

    def _resource(self, scope: Scope) -> str | None:
        """The xAPI resource a request is for (``/statements``…), ``None`` outside the xAPI base."""
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.base or path.startswith(self.base + "/")):
            return None
        return path[len(self.base) :].rstrip("/") or "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resource = self._resource(scope)
        if resource is None:
            await self.app(scope, receive, send)
            return
        out = ResponseHeaders(send, version=self.default_version, cors=_cross_origin(scope),
                              statements=resource == "/statements")  # fmt: skip
        try:
            if scope["method"] == "OPTIONS":
                await self._preflight(out)
                return
            scope, receive = await self._admit(scope, receive, resource, out)
            await self.app(scope, receive, out)
        except LRSError as exc:
            await error_response(exc.status, exc.message, refusal_headers(exc))(scope, receive, out)
        except Exception:
            if out.started:  # too late to answer: the last resort logs it and ends the response
                raise
            log_unexpected(scope)
            await internal_error(scope)(scope, receive, out)

    @staticmethod
    async def _preflight(out: ResponseHeaders) -> None:
        out.cors = True
        await out({"type": "http.response.start", "status": 204, "headers": _PREFLIGHT})
        await out({"type": "http.response.body", "body": b""})

    async def _admit(
        self, scope: Scope, receive: Receive, resource: str, out: ResponseHeaders
    ) -> tuple[Scope, Receive]:
        """The request as its resource sees it (the alternate syntax unwrapped), with the xAPI
        version and the caller's principal in ``scope["state"]``; ``LRSError`` refuses it."""
        if b"method" in scope.get("query_string", b"") and _has_method_param(scope):
            scope, receive = await self._alternate_syntax(scope, receive)
        headers = Headers(scope=scope)
        state = scope.setdefault("state", {})
        sent_version = headers.get(VERSION_HEADER)
        named = recognise(sent_version) if sent_version is not None else None
        if named in self.versions:  # every answer speaks the client's version when it may
            out.version = named
        _check_method(resource, scope["method"])
        if resource == "/about":  # About needs no version header, nor credentials (nor refuses one)
            state["version"] = named
        else:
            state["version"] = parse_version(sent_version, self.versions)
            state["principal"] = principal = await self._authenticate(headers)
            state["stores"] = out.stores = await self._tenancy.stores(principal)
            if scope["method"] in ("PUT", "POST"):
                await self._tenancy.admit_write(principal)
        if _declared_length(headers.get("content-length")) > self.max_body:
            raise PayloadTooLarge(f"request body exceeds {self.max_body} bytes")
        return scope, receive

    @property
    def _tenancy(self) -> Tenancy:
        """Where the caller's tenant's stores come from (``lrs.usecases.tenants``): the one place
        a request is bound to its tenant."""
        return self.state.tenancy

    async def _authenticate(self, headers: Headers):
        authenticator: Authenticator = self.state.authenticator
        try:
            return await authenticator.authenticate(headers.get("authorization"))
        except AuthenticationError as exc:
            raise Unauthorized(str(exc)) from None

    async def _alternate_syntax(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        """Rewrite ``POST ?method=X`` with a form body into the X request it carries (xAPI 1.0.3)."""
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        names = [name for name, _ in query]
        if scope["method"] != "POST":
            raise BadRequest("the method parameter (alternate request syntax) is only allowed on POST")
        if names != ["method"]:
            raise BadRequest("with the alternate request syntax the query string may only hold 'method'")
        method = query[0][1].upper()
        if method not in _ALT_METHODS:
            raise BadRequest(f"alternate request syntax: unsupported method {query[0][1]!r}")
        headers = Headers(scope=scope)
        if not headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
            raise BadRequest("the alternate request syntax needs an application/x-www-form-urlencoded body")
        body = await _read_all(receive, self.max_body)
        try:
            form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the alternate request syntax form body is not valid urlencoded UTF-8") from None
        new_headers = {
            k.lower(): v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")
        }
        params, content = [], None
        for name, value in form:
            if name.lower() in _ALT_HEADERS:
                new_headers[name.lower()] = value
            elif name == "content":
                content = value
            else:
                params.append((name, value))
        version = new_headers.get(VERSION_HEADER)
        if version is not None and _V2.fullmatch(version.strip()):
            raise BadRequest("xAPI 2.0 removed the alternate request syntax")
        if method in ("PUT", "POST") and content is None:
            raise BadRequest(
                f"alternate request syntax: a {method} needs its body in the 'content' form field"
            )
        new_body = (content or "").encode("utf-8")
        if content is not None:
            new_headers.setdefault("content-type", "application/json")
        new_headers["content-length"] = str(len(new_body))
        new_scope = {
            **scope,
            "method": method,
            "query_string": urlencode(params).encode(),
            "headers": [
                (k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in new_headers.items()
            ],
        }
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": new_body, "more_body": False}

        return new_scope, replay


def _declared_length(value: str | None) -> int:
    """A Content-Length header as a number: 0 when absent or not ASCII digits (the server
    refuses those itself), and without ``int()`` of an unbounded digit string."""
    if value is None or not (value.isascii() and value.isdigit()):
        return 0
    return int(value) if len(value) <= 19 else 10**19


def _has_method_param(scope: Scope) -> bool:
    return any(name == "method" for name, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1")))


async def _read_all(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
