"""``lrs forward add|list|pause|resume|remove|retry``: statement forwarding rules, kept in the LMS
database; the pipeline worker's forward sink (``sinks.forward``) queues and delivers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import click
import orjson

from lrs.databases import databases
from lrs.settings import ServerSettings, StoreSettings
from sinks.forward import ForwardFilter, ForwardRules, agent_key, new_secret

_DATA_DIR = click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="data directory")


def _run(data_dir: Path | None, work):
    server = ServerSettings(**({"data_dir": data_dir} if data_dir else {}))

    async def main(dsn: str):
        rules = ForwardRules(dsn)
        try:
            return await work(rules)
        finally:
            await rules.close()

    with databases(StoreSettings(), server.data_dir) as places:
        return asyncio.run(main(places.lms))


@click.group()
def forward() -> None:
    """Forward stored statements to another LRS or a webhook (the pipeline worker delivers)."""


@forward.command("add")
@click.argument("name")
@click.option("--lrs", "lrs_url", default=None, help="another LRS's xAPI endpoint (https://host/xapi)")
@click.option(
    "--auth", default=None, help="KEY:SECRET of a credential of that LRS (scope import keeps authority)"
)
@click.option("--webhook", "webhook_url", default=None, help="a URL that takes signed JSON batches")
@click.option("--secret", default=None, help="the webhook's HMAC-SHA256 key (default: a new one, shown once)")
@click.option(
    "--verb", "verbs", multiple=True, help="only statements with this verb IRI (repeat: any of them)"
)
@click.option(
    "--activity-prefix", "prefixes", multiple=True, help="only statements whose object IRI starts so"
)
@click.option("--agent", "agents", multiple=True, help="only statements of this actor (xAPI agent JSON)")
@click.option("--registration", "registrations", multiple=True, help="only statements of this registration")
@click.option("--batch", type=click.IntRange(1, 5000), default=100, show_default=True,
              help="statements per delivery")  # fmt: skip
@_DATA_DIR
def add(
    name: str, lrs_url, auth, webhook_url, secret, verbs, prefixes, agents, registrations, batch, data_dir
) -> None:
    """Add a rule: statements stored from now on that match it go to its target."""
    if (lrs_url is None) == (webhook_url is None):
        raise click.UsageError("give a target: --lrs URL --auth KEY:SECRET, or --webhook URL")
    if lrs_url is not None and (not auth or ":" not in auth):
        raise click.UsageError("--lrs needs --auth KEY:SECRET of a credential of that LRS")
    if webhook_url is not None and auth:
        raise click.UsageError("--auth is for --lrs targets; a webhook is signed with --secret")
    url = lrs_url or webhook_url
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("the target is an http(s) URL", param_hint="--lrs/--webhook")
    try:
        keys = tuple(agent_key(orjson.loads(a)) for a in agents)
        for r in registrations:
            uuid.UUID(r)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--agent/--registration") from None
    shown_secret = None
    if webhook_url is not None and secret is None:
        secret = shown_secret = new_secret()
    rule_filter = ForwardFilter(tuple(verbs), tuple(prefixes), keys, tuple(r.lower() for r in registrations))

    async def work(rules: ForwardRules):
        return await rules.add(name, "lrs" if lrs_url else "webhook", url, auth=auth, secret=secret,
                               filter=rule_filter, batch_size=batch)  # fmt: skip

    try:
        rule = _run(data_dir, work)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"forward rule {rule.name}: {rule.kind} {rule.url}, {rule_filter.describe()}, batches of {batch}"
    )
    if shown_secret:
        click.echo(f"webhook secret (shown only now): {shown_secret}")


@forward.command("list")
@_DATA_DIR
def list_rules(data_dir) -> None:
    """Rules with their state and statements (waiting, delivered and remembered, dead)."""
    found = _run(data_dir, lambda rules: rules.all())
    for rule, counts in found:
        state = "paused" if rule.paused else "active"
        line = (
            f"{rule.name}\t{rule.kind} {rule.url}\t{rule.filter.describe()}\t{state}\t"
            f"waiting {counts['pending']}, delivered {counts['sent']}, dead {counts['dead']}"
        )
        if rule.failures:
            line += f"\tfailing ({rule.failures}×): {rule.last_error}"
        click.echo(line)


def _toggle(name: str, data_dir, paused: bool) -> None:
    if not _run(data_dir, lambda rules: rules.set_paused(name, paused)):
        raise click.ClickException(f"no forward rule named {name!r}")
    click.echo(f"{'paused' if paused else 'resumed'} {name}")


@forward.command("pause")
@click.argument("name")
@_DATA_DIR
def pause(name: str, data_dir) -> None:
    """Stop delivering (matching statements keep being queued, and are delivered on resume)."""
    _toggle(name, data_dir, True)


@forward.command("resume")
@click.argument("name")
@_DATA_DIR
def resume(name: str, data_dir) -> None:
    """Deliver again, from the oldest waiting statement."""
    _toggle(name, data_dir, False)


@forward.command("remove")
@click.argument("name")
@_DATA_DIR
def remove(name: str, data_dir) -> None:
    """Remove a rule and what waits for it."""
    if not _run(data_dir, lambda rules: rules.remove(name)):
        raise click.ClickException(f"no forward rule named {name!r}")
    click.echo(f"removed {name}")


@forward.command("retry")
@click.argument("name")
@_DATA_DIR
def retry(name: str, data_dir) -> None:
    """Queue a rule's dead letters again."""
    count = _run(data_dir, lambda rules: rules.retry_dead(name))
    if count is None:
        raise click.ClickException(f"no forward rule named {name!r}")
    click.echo(f"{count} dead letters of {name} queued again")
