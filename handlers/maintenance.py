"""The maintenance operations."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from bascule.errors import envelope
from bascule.service import current

Answer = tuple[dict[str, Any], int]


async def get_maintenance_state() -> Response:
    """GET /maintenance: served from memory, serialised once per state."""
    return Response(current().state_document(), media_type="application/json")


def enable_maintenance(token_info: dict[str, Any]) -> Answer:
    """POST /maintenance."""
    current().maintenance.enable(token_info["principal"].actor())
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
