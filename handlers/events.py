"""The events (the audit trail) and the webhooks they are delivered to."""

from __future__ import annotations

from typing import Any

from bascule.answers import envelope
from bascule.events import event_json
from bascule.service import current
from bascule.webhooks import webhook_json
from handlers.security import acting

Answer = tuple[dict[str, Any], int]


def list_webhooks(token_info: dict[str, Any]) -> Answer:
    """GET /maintenance/webhooks."""
    listed = current().webhooks.list(acting(token_info))
    return envelope([webhook_json(*each) for each in listed]), 200


def add_webhook(body: dict[str, Any], token_info: dict[str, Any]) -> Answer:
    """POST /maintenance/webhooks: the secret is in this answer only."""
    hook = current().webhooks.add(acting(token_info), body["url"], body.get("events"))
    listed = webhook_json(hook, {}, [])
    del listed["deliveries"], listed["recent"]
    return envelope({**listed, "secret": hook.secret}), 201


def remove_webhook(id: int, token_info: dict[str, Any]) -> Answer:
    """DELETE /maintenance/webhooks/{id}."""
    current().webhooks.remove(acting(token_info), id)
    return envelope(), 200


def test_webhook(id: int, token_info: dict[str, Any]) -> Answer:
    """POST /maintenance/webhooks/{id}/test."""
    uid = current().webhooks.test(acting(token_info), id)
    return envelope({"id": uid}), 202


def list_events(
    token_info: dict[str, Any], offset: int = 0, limit: int = 100, type: str | None = None
) -> Answer:
    """GET /maintenance/events."""
    total, page = current().events.page(acting(token_info), offset, limit, type)
    return envelope(
        {"offset": offset, "total": total, "events": [event_json(e) for e in page]}
    ), 200
