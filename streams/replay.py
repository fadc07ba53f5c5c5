"""``lrs replay``: ask the running worker to rebuild sinks, and follow it to the end.

The worker's sinks rebuild beside what they serve and swap the result in once caught up
(``sinks.ports.Sink.begin_replay``), so stopping this command (Ctrl-C) stops only the following:
the rebuild goes on in the worker. Running the command again starts the rebuild over.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

import click
import orjson
from tqdm import tqdm

from lrs.store import open_outbox
from lrs.xapi.formats import parse_timestamp

from sinks import positions


def _worker(port: int, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=orjson.dumps(body) if body is not None else None,
        method="POST" if body is not None else "GET",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=300) as response:
        return orjson.loads(response.read())


async def _count(store_url: str, since, upto: str | None) -> int:
    """Statements stored from ``since`` (all without it) up to the position ``upto`` (all without it)."""
    outbox = await open_outbox(store_url)
    try:
        return await outbox.count(since, positions.decode(upto) if upto else None)
    finally:
        await outbox.close()


def _progress(port: int, chosen: list[str], target: str) -> str | None:
    """The lowest position the replay of ``chosen`` has reached; ``None`` once it is complete
    (no chosen sink still rebuilds, and every chosen sink's positions passed ``target``)."""
    replaying = {
        r["sink"]: r["position"] for r in _worker(port, "/replay")["replaying"] if r["sink"] in chosen
    }
    marks = _worker(port, "/watermarks")
    lowest = min([*replaying.values(), *(min(marks[name]) for name in chosen)])
    return None if not replaying and lowest >= target else lowest


def run_replay(store_url: str, port: int, since: str | None, sinks: list[str]) -> None:
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
    total = asyncio.run(_count(store_url, moment, None))
    started = _worker(port, "/replay", {"since": since, "sinks": sinks or None})
    chosen, target = started["reset"], started["target"]
    try:
        with tqdm(total=total, unit="stmt", desc=f"rebuilding {', '.join(chosen)}") as bar:
            while (lowest := _progress(port, chosen, target)) is not None:
                done = asyncio.run(_count(store_url, moment, lowest)) if lowest else 0
                bar.update(max(0, min(done, total) - bar.n))
                time.sleep(0.5)
            bar.update(total - bar.n)
    except KeyboardInterrupt:
        click.echo("stopped following; the worker goes on rebuilding (run `lrs replay` again to start over)")
        raise SystemExit(130) from None
    click.echo(f"replay complete: {', '.join(chosen)} rebuilt and swapped in")
