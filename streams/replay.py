"""``lrs replay``: ask the running worker to rebuild sinks, and follow it to the end."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import asyncpg
import click
import orjson
from tqdm import tqdm

from lrs.xapi.formats import parse_timestamp

from . import position as positions


def _worker(port: int, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=orjson.dumps(body) if body is not None else None,
        method="POST" if body is not None else "GET",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=300) as response:
        return orjson.loads(response.read())


async def _last(dsn: str) -> str:
    """Position of the newest stored statement: the replay is done when every sink is past it."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "lrs-replay"})
    try:
        row = await conn.fetchrow(
            "SELECT stored, seq FROM lrs_statements ORDER BY stored DESC, seq DESC LIMIT 1"
        )
    finally:
        await conn.close()
    return positions.encode(row["stored"], row["seq"]) if row else positions.START


async def _count(dsn: str, since, upto: str | None) -> int:
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "lrs-replay"})
    try:
        if upto is None:
            return await conn.fetchval(
                "SELECT count(*) FROM lrs_statements WHERE $1::timestamptz IS NULL OR stored >= $1", since
            )
        stored, seq = positions.decode(upto)
        return await conn.fetchval(
            "SELECT count(*) FROM lrs_statements WHERE ($1::timestamptz IS NULL OR stored >= $1)"
            " AND (stored, seq) <= ($2, $3)",
            since, stored, seq,
        )  # fmt: skip
    finally:
        await conn.close()


def run_replay(dsn: str, port: int, since: str | None, sinks: list[str]) -> None:
    moment = None
    if since is not None:
        moment = parse_timestamp(since)
        if moment is None:
            raise click.BadParameter(f"{since!r} is not an ISO 8601 timestamp", param_hint="--since")
    try:
        before = _worker(port, "/watermarks")
    except OSError:
        raise click.ClickException(
            f"no pipeline worker answers on 127.0.0.1:{port}; start `lrs up` or `lrs worker`"
        ) from None
    unknown = [s for s in sinks if s not in before]
    if unknown:
        raise click.BadParameter(
            f"unknown sink {unknown[0]!r}; this worker has {sorted(set(before) - {'relay'})}"
        )
    total = asyncio.run(_count(dsn, moment, None))
    target = asyncio.run(_last(dsn))
    chosen = _worker(port, "/replay", {"since": since, "sinks": sinks or None})["reset"]
    with tqdm(total=total, unit="stmt", desc=f"replaying into {', '.join(chosen)}") as bar:
        while True:
            marks = _worker(port, "/watermarks")
            lowest = min(min(marks[name]) for name in chosen)
            done = asyncio.run(_count(dsn, moment, lowest)) if lowest else 0
            bar.update(done - bar.n)
            if lowest and lowest >= target:
                bar.update(total - bar.n)
                break
            time.sleep(0.5)
