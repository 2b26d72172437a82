"""bascule webhooks, bascule events: who is told what happens, and what happened."""

from __future__ import annotations

import click

from bascule.cli.base import actor, database_option, opened
from bascule.cli.text import shown, utc_text
from bascule.config import Settings
from bascule.model import plural

# Every type a webhook may take (bascule.events.TYPES, which tests/test_cli.py checks),
# written here so that `bascule --help` loads nothing of the server.
EVENT_TYPES = (
    "maintenance.started",
    "maintenance.updated",
    "maintenance.ended",
    "maintenance.released",
    "window.planned",
    "window.cancelled",
    "window.upcoming",
    "window.skipped",
    "lease.expired",
    "user.added",
    "user.removed",
    "user.password_changed",
    "session.revoked",
    "token.created",
    "token.revoked",
    "webhook.added",
    "webhook.removed",
)


@click.group()
def webhooks() -> None:
    """Webhooks: receivers told of every maintenance, window and administrative action."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "event_types",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    metavar="TYPE",
    help="A type of event it takes (repeat for several) [default: every type].",
)
@click.option("--user", metavar="NAME", help="Who to record as having added it [default: you].")
@database_option
def webhooks_add(
    url: str, event_types: tuple[str, ...], user: str | None, database_url: str | None
) -> None:
    """Add a webhook to URL and print its signing secret (shown this once)."""
    from bascule.webhooks import Webhooks

    allow = Settings.from_env(database_url=database_url).webhook_allow_link_local
    with opened(database_url) as store:
        hook = Webhooks(store, allow).add(actor(None, user), url, list(event_types) or None)
    takes = ", ".join(event_types) if event_types else "every event"
    click.echo(f"Added the webhook {hook.id} to {shown(url)}, taking {takes}.", err=True)
    click.echo("Its deliveries are signed with this secret (Standard Webhooks):", err=True)
    click.echo(hook.secret)


@webhooks.command("list")
@database_option
def webhooks_list(database_url: str | None) -> None:
    """List the webhooks and how their latest deliveries went (never their secrets)."""
    from bascule.webhooks import Webhooks

    with opened(database_url) as store:
        listed = Webhooks(store).list(actor(None, None))
    for hook, counts, recent in listed:
        takes = ", ".join(hook.event_types) if hook.event_types else "every event"
        tally = ", ".join(f"{n} {status}" for status, n in counts.items())
        click.echo("\t".join(map(shown, (str(hook.id), hook.url, takes, tally))))
        for delivery in recent[:3]:
            when = utc_text(delivery.last_attempt_at) if delivery.last_attempt_at else "not yet"
            outcome = delivery.last_result or "no try yet"
            tries = plural(delivery.attempts, "try").replace("trys", "tries")
            click.echo(
                shown(
                    f"  {delivery.event_type}: {delivery.status} after {tries} ({outcome}, {when})"
                )
            )


@webhooks.command("remove")
@click.argument("webhook_id", metavar="ID", type=int)
@database_option
def webhooks_remove(webhook_id: int, database_url: str | None) -> None:
    """Remove the webhook ID: nothing more is sent to it."""
    from bascule.webhooks import Webhooks

    with opened(database_url) as store:
        Webhooks(store).remove(actor(None, None), webhook_id)
    click.echo(f"Removed the webhook {webhook_id}")


@webhooks.command("test")
@click.argument("webhook_id", metavar="ID", type=int)
@database_option
def webhooks_test(webhook_id: int, database_url: str | None) -> None:
    """Send a test event to the webhook ID now, and say how it went."""
    from bascule.webhooks import Dispatcher, Webhooks

    allow = Settings.from_env(database_url=database_url).webhook_allow_link_local
    with opened(database_url) as store:
        uid = Webhooks(store, allow).test(actor(None, None), webhook_id)
        outcomes = Dispatcher(store, allow).deliver_now(uid)
    if not outcomes:  # a server claimed it first
        click.echo(f"Sent the test event {uid}: `bascule webhooks list` shows how it went.")
    for _, result in outcomes:
        ok = result.startswith("HTTP 2")
        said = "delivered" if ok else "not delivered (tried again later)"
        click.echo(
            shown(f"Sent the test event {uid} to the webhook {webhook_id}: {said}, {result}.")
        )
        if not ok:
            raise SystemExit(1)


@click.command("events")
@click.option(
    "--type",
    "prefix",
    metavar="PREFIX",
    help="Only types starting with it: user., maintenance.ended...",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@database_option
def events(prefix: str | None, limit: int, database_url: str | None) -> None:
    """The audit trail: what happened, newest first, who did it and from where."""
    from bascule.events import Events

    with opened(database_url) as store:
        total, page = Events(store).page(actor(None, None), 0, limit, prefix)
    for event in page:
        where = f" ({event.origin})" if event.origin else ""
        fields = (utc_text(event.at), event.type, f"{event.actor}{where}", event.text)
        click.echo("\t".join(map(shown, fields)))
    if total > len(page):
        click.echo(f"({total - len(page)} older events not shown: --limit)", err=True)
