"""The maintenance operations."""

from __future__ import annotations

from typing import Any

from bascule.errors import envelope
from bascule.maintenance import MaintenanceState
from bascule.service import current

Answer = tuple[dict[str, Any], int]


def state_json(state: MaintenanceState | None) -> dict[str, Any] | None:
    """The wire form of the state (Alien4Cloud's field names)."""
    if state is None:
        return None
    return {
        "id": "mms_id",
        "user": state.user,
        "userTriggered": state.user_triggered,
        "progressPercent": state.progress_percent,
        "log": [log_json(entry) for entry in state.log],
        "logSize": state.log_size,
    }


def log_json(entry: Any) -> dict[str, Any]:
    """The wire form of a log entry."""
    return {"date": entry.date, "user": entry.user, "message": entry.message}


async def get_maintenance_state() -> Answer:
    """GET /maintenance: served from memory, no database query."""
    return envelope(state_json(current().monitor.state)), 200


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
    page = {"offset": offset, "total": total, "log": [log_json(e) for e in entries]}
    return envelope(page), 200
