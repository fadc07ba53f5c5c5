"""Another LRS's statements as import records: ``lrs import --from URL --auth KEY:SECRET``.

Pages of ``GET /statements?ascending=true&attachments=true`` (oldest first, so this LRS stores
them in the source's order), following ``more`` to the end. Voided statements never appear in
statement queries, so for each voiding statement its target is fetched with
``voidedStatementId`` and imported just before it (the voiding statement then voids it here too).

Resumable: the state file holds the URL of the page to read next (the ``more`` link) and the
``stored`` time of the last statement read; a resumed import reads that page again (what it
stored already is skipped as identical), and if the source no longer honours the link it starts
over from ``since`` = that time minus a millisecond. Network errors, 5xx and 429 answers are
retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import base64

import httpx
import orjson

from lrs.http.multipart import MultipartError, parse_multipart
from lrs.usecases.transfer import ExportFilter
from lrs.xapi.formats import format_timestamp, parse_timestamp

from .files import TransferError, _load_state, _save_state

log = logging.getLogger(__name__)
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


class RemoteSource:
    def __init__(
        self, url: str, auth: tuple[str, str], state_path: Path, filters: ExportFilter, *, limit: int = 500,
        version: str | None = None, retries: int = 8, timeout: float = 120.0,
    ) -> None:  # fmt: skip
        self.base = url.rstrip("/")
        self.auth, self.state_path, self.filters = auth, state_path, filters
        self.limit, self.version, self.retries, self.timeout = limit, version, retries, timeout
        self.read = 0

    def _first_url(self, since_override: str | None = None) -> str:
        f = self.filters
        params: dict[str, str] = {"ascending": "true", "attachments": "true", "limit": str(self.limit)}
        if f.agent is not None:
            params["agent"] = orjson.dumps(f.agent).decode()
        for name in ("verb", "activity", "registration"):
            if getattr(f, name) is not None:
                params[name] = getattr(f, name)
        since = since_override or (format_timestamp(f.since) if f.since else None)
        if since:
            params["since"] = since
        if f.until:
            params["until"] = format_timestamp(f.until)
        return f"{self.base}/statements?{urllib.parse.urlencode(params)}"

    async def records(self) -> AsyncIterator[tuple[dict[str, Any], Any]]:
        async with httpx.AsyncClient(auth=self.auth, timeout=self.timeout) as client:
            self.client = client
            version = self.version or await self._version()
            self.headers = {"X-Experience-API-Version": version}
            state = _load_state(self.state_path)
            url = self._first_url()
            last_stored: str | None = None
            if state is not None and state.get("source") == self._key():
                url, last_stored = state["next"], state.get("stored")
                if url is None:
                    return  # the previous run read everything
            while url is not None:
                try:
                    statements, more, parts = await self._page(url)
                except _Gone:  # the source no longer honours the resumed link
                    since = parse_timestamp(last_stored) if last_stored else None
                    restart = format_timestamp(since - timedelta(milliseconds=1)) if since else None
                    log.warning("the source refused the saved page link; reading again from %s", restart)
                    url = self._first_url(restart)
                    statements, more, parts = await self._page(url)
                following = urllib.parse.urljoin(self.base + "/", more) if more else None
                for index, statement in enumerate(statements):
                    last = index == len(statements) - 1
                    if statement.get("stored"):
                        last_stored = statement["stored"]
                    position = {"next": following if last else url, "stored": last_stored}
                    if self.filters.voided:
                        target = _voided_target(statement)
                        if target is not None:
                            found = await self._voided(target)
                            if found is not None:
                                yield found, {"next": url, "stored": last_stored}
                    self.read += 1
                    yield _record(statement, parts), position
                if not statements:
                    yield {}, {"next": following, "stored": last_stored}
                url = following

    def _key(self) -> str:
        return f"{self.base} {orjson.dumps(self.filters.describe()).decode()}"

    async def commit(self, position: dict[str, Any]) -> None:
        _save_state(self.state_path, {"source": self._key(), **position})

    def done(self) -> None:
        self.state_path.unlink(missing_ok=True)

    # --- HTTP -----------------------------------------------------------------------------------------

    async def _version(self) -> str:
        response = await self._get(f"{self.base}/about", headers={"X-Experience-API-Version": "1.0.3"})
        try:
            versions = response.json()["version"]
        except (ValueError, KeyError, TypeError):
            versions = []
        return "1.0.3" if "1.0.3" in versions or not any(v.startswith("2.") for v in versions) else "2.0.0"

    async def _get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                response = await self.client.get(url, headers=headers or self.headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                problem = f"HTTP {response.status_code}"
            if attempt == self.retries:
                raise TransferError(f"{url}: {problem} ({self.retries + 1} attempts)")
            log.warning("%s: %s; trying again in %.1f s", url, problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    async def _page(self, url: str) -> tuple[list[dict[str, Any]], str | None, dict[str, tuple[str, bytes]]]:
        response = await self._get(url)
        if response.status_code in (400, 404, 410) and "more=" in url:
            raise _Gone(url)
        if response.status_code != 200:
            raise TransferError(f"{url}: HTTP {response.status_code}: {response.text[:500]}")
        body, parts = _parts(response)
        if not isinstance(body, dict) or not isinstance(body.get("statements"), list):
            raise TransferError(f"{url}: the answer is not a StatementResult")
        return body["statements"], body.get("more") or None, parts

    async def _voided(self, target: str) -> dict[str, Any] | None:
        params = urllib.parse.urlencode({"voidedStatementId": target, "attachments": "true"})
        response = await self._get(f"{self.base}/statements?{params}")
        if response.status_code == 404:
            return None  # never stored there, or not voided after all
        if response.status_code != 200:
            raise TransferError(
                f"voided statement {target}: HTTP {response.status_code}: {response.text[:500]}"
            )
        statement, parts = _parts(response)
        return {**_record(statement, parts), "voided": True}


class _Gone(Exception):
    pass


def _voided_target(statement: dict[str, Any]) -> str | None:
    obj = statement.get("object") or {}
    if (statement.get("verb") or {}).get("id") == VOIDED and obj.get("objectType") == "StatementRef":
        return obj.get("id")
    return None


def _parts(response: httpx.Response) -> tuple[Any, dict[str, tuple[str, bytes]]]:
    """The JSON of an answer and its attachment parts by hash (content type, content)."""
    content_type = response.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/"):
        return response.json(), {}
    try:
        first, *rest = parse_multipart(response.content, content_type)
    except (MultipartError, ValueError) as exc:
        raise TransferError(f"{response.url}: a malformed multipart answer: {exc}") from None
    parts = {
        p.headers["x-experience-api-hash"]: (
            p.headers.get("content-type", "application/octet-stream"),
            bytes(p.body),
        )
        for p in rest
        if "x-experience-api-hash" in p.headers
    }
    return orjson.loads(bytes(first.body)), parts


def _record(statement: dict[str, Any], parts: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
    declared = list(statement.get("attachments") or ())
    if (statement.get("object") or {}).get("objectType") == "SubStatement":
        declared += statement["object"].get("attachments") or ()
    attachments, seen = [], set()
    for attachment in declared:
        sha2 = attachment.get("sha2") if isinstance(attachment, dict) else None
        if sha2 in parts and sha2 not in seen:
            seen.add(sha2)
            content_type, content = parts[sha2]
            attachments.append(
                {"sha2": sha2, "contentType": content_type, "content": base64.b64encode(content).decode()}
            )
    return {"statement": statement, **({"attachments": attachments} if attachments else {})}
