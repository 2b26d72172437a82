"""The maintenance operations."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from bascule.bypass import bypass_json
from bascule.errors import envelope
from bascule.maintenance import FULL
from bascule.service import current

Answer = tuple[dict[str, Any], int]


async def get_maintenance_state() -> Response:
    """GET /maintenance: served from memory, serialised once per state."""
    return Response(current().state_document(), media_type="application/json")


def enable_maintenance(token_info: dict[str, Any], body: dict[str, Any] | None = None) -> Answer:
    """POST /maintenance: full maintenance without a body, as Alien4Cloud's clients send it."""
    body = body or {}
    current().maintenance.enable(
        token_info["principal"].actor(),
        message=body.get("message"),
        mode=body.get("mode") or FULL,
    )
    return envelope(), 201


def update_maintenance(body: dict[str, Any], token_info: dict[str, Any]) -> Answer:
    """PUT /maintenance."""
    current().maintenance.update(
        token_info["principal"].actor(),
        message=body.get("message"),
        progress=body.get("progressPercentage"),
    )
    return envelope(), 201


def disable_maintenance(token_info: dict[str, Any]) -> Answer:
    """DELETE /maintenance."""
    current().maintenance.disable(token_info["principal"].actor())
    return envelope(), 200


def get_maintenance_log(offset: int = 0, limit: int = 100) -> Answer:
    """GET /maintenance/log."""
    total, entries = current().maintenance.log_page(offset, limit)
    page = {"offset": offset, "total": total, "log": [e.as_json() for e in entries]}
    return envelope(page), 200


def list_bypass_tokens(token_info: dict[str, Any]) -> Answer:
    """GET /maintenance/bypass."""
    records = current().bypass.list(token_info["principal"].actor())
    return envelope([bypass_json(r) for r in records]), 200


def create_bypass_token(body: dict[str, Any], token_info: dict[str, Any]) -> Answer:
    """POST /maintenance/bypass: the token's value is in this answer only."""
    actor = token_info["principal"].actor()
    token, record = current().bypass.create(actor, body["name"], body.get("expiresIn"))
    return envelope({**bypass_json(record), "token": token}), 201


def revoke_bypass_token(name: str, token_info: dict[str, Any]) -> Answer:
    """DELETE /maintenance/bypass/{name}."""
    current().bypass.revoke(token_info["principal"].actor(), name)
    return envelope(), 200
