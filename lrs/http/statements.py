"""The Statement resource: PUT, POST, GET and HEAD on ``/statements``."""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime, timezone
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lrs.store.ports import StatementQuery
from lrs.usecases import statements as usecase
from lrs.usecases.errors import BadRequest, PayloadTooLarge
from lrs.usecases.statements import AttachmentPart, StatementFilter, verified_part
from lrs.xapi.formats import format_timestamp
from lrs.xapi.formatting import parse_accept_language
from lrs.xapi.jsontext import parse_bounded
from lrs.xapi.statements import StatementError, parse_json, read_statements

from .middleware import CONSISTENT_THROUGH
from .multipart import MultipartError, build_multipart, parse_multipart, sniffed_multipart
from .params import Params, query_params
from .responses import JSON_TYPE, http_date, json_response, no_content, raw_json_response

QUERY_PARAMS = (
    "statementId", "voidedStatementId", "agent", "verb", "activity", "registration", "related_activities",
    "related_agents", "since", "until", "limit", "format", "attachments", "ascending",
)  # fmt: skip
FORMATS = ("exact", "ids", "canonical")


async def read_body(request: Request) -> bytes:
    limit = request.app.state.settings.max_body_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_statement_body(request: Request) -> tuple[Any, dict[str, AttachmentPart] | None]:
    """The statements of a PUT/POST body, and the raw attachment parts of a multipart one."""
    media_type = _media_type(request)
    content_type = request.headers.get("content-type", "")
    body = await read_body(request)
    if media_type not in (JSON_TYPE, "multipart/mixed"):
        # Leniency (README, "Leniencies"): a body that is unmistakably multipart/mixed is one,
        # whatever its declared type (@xapi/xapi 3.x under Node.js sends application/octet-stream).
        content_type = sniffed_multipart(body) or ""
        if not content_type:
            raise BadRequest(
                f"Content-Type must be application/json or multipart/mixed, not {media_type or 'missing'!r}"
            )
        media_type = "multipart/mixed"
    max_depth = request.app.state.settings.max_json_depth
    try:
        if media_type == JSON_TYPE:
            return parse_json(body, max_depth), None
        parts = parse_multipart(body, content_type)
    except (StatementError, MultipartError) as exc:
        raise BadRequest(str(exc)) from None
    first, *rest = parts
    if first.headers.get("content-type", "").split(";", 1)[0].strip().lower() != JSON_TYPE:
        raise BadRequest(
            "the first part of a multipart/mixed body must be the statements as application/json"
        )
    try:
        data = parse_json(bytes(first.body), max_depth, "the first part of the multipart body")
    except StatementError as exc:
        raise BadRequest(str(exc)) from None
    attachments: dict[str, AttachmentPart] = {}
    for index, part in enumerate(rest, start=2):
        sha2 = part.headers.get("x-experience-api-hash")
        if not sha2:
            raise BadRequest(f"multipart part {index} has no X-Experience-API-Hash header")
        if part.headers.get("content-transfer-encoding", "").lower() != "binary":
            raise BadRequest(f"multipart part {index} needs Content-Transfer-Encoding: binary")
        content = verified_part(sha2, bytes(part.body))
        attachments[sha2] = AttachmentPart(
            content, part.headers.get("content-type"), part.headers.get("content-length")
        )
    return data, attachments


def _check_statement_count(request: Request, data: Any) -> None:
    """A batch larger than LRS_MAX_STATEMENTS_PER_REQUEST is refused before it is validated."""
    limit = request.app.state.settings.max_statements_per_request
    if isinstance(data, list) and len(data) > limit:
        raise PayloadTooLarge(
            f"the request carries {len(data)} statements; this LRS takes at most {limit} per request"
            " (LRS_MAX_STATEMENTS_PER_REQUEST): send them in smaller batches"
        )


async def post_statements(request: Request) -> Response:
    if request.query_params:
        names = ", ".join(sorted(request.query_params.keys()))
        raise BadRequest(f"POST /statements takes no query parameters (got {names}); use GET to query")
    data, parts = await _read_statement_body(request)
    _check_statement_count(request, data)
    try:
        statements = read_statements(data, request.state.version)
    except StatementError as exc:
        raise BadRequest(str(exc)) from None
    return json_response(await _store(request, statements, parts))


async def _store(request: Request, statements: list[dict[str, Any]], parts) -> list[str]:
    """Store statements in the caller's tenant, within its rate (``lrs.usecases.tenants``)."""
    principal = request.state.principal
    await request.app.state.tenancy.admit_statements(principal, len(statements))
    return await usecase.store_statements(
        request.state.stores, principal, request.state.version, statements, parts,
        max_depth=request.app.state.settings.max_json_depth,
    )  # fmt: skip


async def put_statement(request: Request) -> Response:
    params = query_params(request, ("statementId",))
    statement_id = params.uuid("statementId")
    if statement_id is None:
        raise BadRequest("PUT /statements needs the statementId parameter")
    data, parts = await _read_statement_body(request)
    if not isinstance(data, dict):
        raise BadRequest("PUT /statements takes one statement (a JSON object), not an array")
    try:
        (statement,) = read_statements(data, request.state.version)
    except StatementError as exc:
        raise BadRequest(str(exc)) from None
    if "id" in statement and statement["id"].lower() != statement_id.lower():
        raise BadRequest(
            f"statement id {statement['id']} differs from the statementId parameter {statement_id}"
        )
    await _store(request, [{**statement, "id": statement_id}], parts)
    return no_content()


# --- GET -----------------------------------------------------------------------------------------


def _encode_more(query: StatementQuery, keys: list[str], fmt: str, attachments: bool) -> str:
    state = {
        "k": keys,
        "s": query.since.isoformat() if query.since else None,
        "u": query.until.isoformat() if query.until else None,
        "a": query.ascending,
        "l": query.limit,
        "c": query.cursor,
        "n": query.snapshot.isoformat() if query.snapshot else None,
        "f": fmt,
        "t": attachments,
    }
    return base64.urlsafe_b64encode(orjson.dumps(state)).rstrip(b"=").decode()


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(value)
    return moment.astimezone(timezone.utc)


def _decode_more(token: str, max_depth: int) -> tuple[StatementQuery, str, bool]:
    try:
        state = parse_bounded(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), max_depth, "more")
        if not isinstance(state["k"], list) or not all(isinstance(k, str) for k in state["k"]):
            raise TypeError("the lookup keys are a list of strings")
        query = StatementQuery(
            keys=list(state["k"]),
            since=_moment(state["s"]),
            until=_moment(state["u"]),
            ascending=bool(state["a"]),
            limit=int(state["l"]),
            cursor=str(state["c"]),
            snapshot=_moment(state["n"]),
        )
        fmt, attachments = state["f"], bool(state["t"])
        if fmt not in FORMATS or query.limit < 1 or query.snapshot is None:
            raise ValueError(fmt)
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error):
        raise BadRequest("the more parameter is not a continuation this LRS issued") from None
    return query, fmt, attachments


async def _respond(
    request: Request, documents: list[bytes], fmt: str, attachments: bool, wrap, headers: dict[str, str]
) -> Response:
    stores = request.state.stores
    languages = parse_accept_language(request.headers.get("accept-language"))
    rendered = await usecase.render(stores, documents, fmt, languages)
    body = wrap(rendered)
    if not attachments:
        return raw_json_response(body, headers=headers)
    hashes = usecase.attachment_hashes(documents)
    found = {a.sha2: a for a in await stores.statements.attachments(hashes)} if hashes else {}
    parts = [(h, found[h].content_type, found[h].content) for h in hashes if h in found]
    multipart, content_type = build_multipart(body, parts)
    return Response(multipart, media_type=content_type, headers=headers)


async def get_statements(request: Request) -> Response:
    stores = request.state.stores
    principal = request.state.principal
    pairs = request.query_params.multi_items()
    max_depth = request.app.state.settings.max_json_depth
    if any(name == "more" for name, _ in pairs):
        more = Params(pairs, ("more",), max_json_depth=max_depth).required("more")
        query, fmt, attachments = _decode_more(more, max_depth)
        query.limit = min(query.limit, request.app.state.settings.max_page_size)
        keys = list(query.keys)
    else:
        params = Params(pairs, QUERY_PARAMS, max_json_depth=max_depth)
        fmt = params.choice("format", FORMATS, "exact")
        attachments = params.boolean("attachments")
        statement_id, voided_id = params.uuid("statementId"), params.uuid("voidedStatementId")
        if statement_id and voided_id:
            raise BadRequest("give statementId or voidedStatementId, not both")
        if statement_id or voided_id:
            extra = params.names() - {"statementId", "voidedStatementId", "format", "attachments"}
            if extra:
                raise BadRequest(
                    f"with a statement id only format and attachments may be given, not {sorted(extra)}"
                )
            found, consistent = await asyncio.gather(
                usecase.get_statement(stores, principal, statement_id or voided_id, voided=bool(voided_id)),
                stores.consistent_through(),
            )
            headers = {
                "Last-Modified": http_date(found.stored),
                CONSISTENT_THROUGH: format_timestamp(consistent),
            }
            return await _respond(request, [found.document], fmt, attachments, lambda docs: docs[0], headers)
        page_size = request.app.state.settings.max_page_size
        limit = params.count("limit", ceiling=page_size) or page_size
        filters = StatementFilter(
            agent=params.agent("agent"),
            verb=params.iri("verb"),
            activity=params.iri("activity"),
            registration=params.uuid("registration"),
            related_agents=params.boolean("related_agents"),
            related_activities=params.boolean("related_activities"),
            since=params.timestamp("since"),
            until=params.timestamp("until"),
            ascending=params.boolean("ascending"),
        )
        keys = filters.lookup_keys()
        query = StatementQuery(
            keys=list(keys), since=filters.since, until=filters.until, ascending=filters.ascending,
            limit=min(limit, page_size),
        )  # fmt: skip
    page, consistent = await asyncio.gather(
        usecase.query_statements(stores, principal, query), stores.consistent_through()
    )
    more = ""
    if page.cursor is not None:
        query.cursor, query.snapshot = page.cursor, page.snapshot
        base = request.app.state.base_path
        more = f"{base}/statements?more={_encode_more(query, keys, fmt, attachments)}"
    headers = {CONSISTENT_THROUGH: format_timestamp(consistent)}
    if page.statements:
        headers["Last-Modified"] = http_date(max(s.stored for s in page.statements))
    tail = b'],"more":' + orjson.dumps(more) + b"}"
    documents = [s.document for s in page.statements]
    return await _respond(
        request,
        documents,
        fmt,
        attachments,
        lambda docs: b'{"statements":[' + b",".join(docs) + tail,
        headers,
    )
