"""The maintenance operations."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from bascule.answers import envelope
from bascule.bypass import bypass_json
from bascule.model import FULL, LogEntry
from bascule.service import current
from bascule.windows import calendar, parse_time
from handlers.security import acting

Answer = tuple[dict[str, Any], int]
# The announcement is for any site's pages: any origin may read it.
ANY_ORIGIN = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}


async def get_maintenance_state() -> Response:
    """GET /maintenance: served from memory, serialised once per state."""
    return Response(current().state_document(), media_type="application/json")


async def watch_maintenance(version: int | None = None, wait: float = 30) -> Response:
    """GET /maintenance/watch: the switch, once its version is not ``version``, or
    after ``wait`` seconds."""
    monitor = current().monitor
    if version is not None:
        await monitor.changed_from(version, wait)
    state = monitor.state
    switch = {
        "version": monitor.watch_version,
        "enabled": state is not None,
        "mode": None if state is None else state.mode,
    }
    return JSONResponse(envelope(switch), headers={"Cache-Control": "no-store"})


def enable_maintenance(token_info: dict[str, Any], body: dict[str, Any] | None = None) -> Answer:
    """POST /maintenance: full maintenance without a body, as Alien4Cloud's clients send it."""
    body = body or {}
    current().maintenance.enable(
        acting(token_info),
        message=body.get("message"),
        mode=body.get("mode") or FULL,
    )
    return envelope(), 201


def update_maintenance(body: dict[str, Any], token_info: dict[str, Any]) -> Answer:
    """PUT /maintenance."""
    current().maintenance.update(
        acting(token_info),
        message=body.get("message"),
        progress=body.get("progressPercentage"),
        mode=body.get("mode"),
    )
    return envelope(), 201


def disable_maintenance(token_info: dict[str, Any]) -> Answer:
    """DELETE /maintenance."""
    current().maintenance.disable(acting(token_info))
    return envelope(), 200


def get_maintenance_log(offset: int = 0, limit: int = 100) -> Answer:
    """GET /maintenance/log."""
    total, entries = current().maintenance.log_page(offset, limit)
    return envelope(_log_page(offset, total, entries)), 200


def _log_page(offset: int, total: int, entries: list[LogEntry]) -> dict[str, Any]:
    """A page of a log, as the contract's MaintenanceLogPage."""
    return {"offset": offset, "total": total, "log": [e.as_json() for e in entries]}


def list_bypass_tokens(token_info: dict[str, Any]) -> Answer:
    """GET /maintenance/bypass."""
    services = current()
    records = services.bypass.list(acting(token_info))
    now = services.store.now()
    return envelope([bypass_json(r, now) for r in records]), 200


def create_bypass_token(body: dict[str, Any], token_info: dict[str, Any]) -> Answer:
    """POST /maintenance/bypass: the token's value is in this answer only."""
    actor = acting(token_info)
    services = current()
    token, record = services.bypass.create(actor, body["name"], body.get("expiresIn"))
    return envelope({**bypass_json(record, services.store.now()), "token": token}), 201


def revoke_bypass_token(name: str, token_info: dict[str, Any]) -> Answer:
    """DELETE /maintenance/bypass/{name}."""
    current().bypass.revoke(acting(token_info), name)
    return envelope(), 200


def release_maintenance(body: dict[str, Any], token_info: dict[str, Any]) -> Answer:
    """POST /maintenance/release: the dead process's maintenance, now the caller's."""
    services = current()
    state = services.maintenance.release(acting(token_info), body["reason"])
    return envelope(state.as_json(services.store.now())), 200


def get_maintenance_history(offset: int = 0, limit: int = 100) -> Answer:
    """GET /maintenance/history."""
    total, windows = current().maintenance.history(offset, limit)
    page = {"offset": offset, "total": total, "windows": [w.as_json() for w in windows]}
    return envelope(page), 200


def get_maintenance_window(id: int, offset: int = 0, limit: int = 100) -> Answer:
    """GET /maintenance/history/{id}."""
    window, entries = current().maintenance.window(id, offset, limit)
    page = {"window": window.as_json(), **_log_page(offset, window.log_size, entries)}
    return envelope(page), 200


def list_planned_windows(offset: int = 0, limit: int = 100) -> Answer:
    """GET /maintenance/schedule."""
    windows = current().windows.planned(offset, limit)
    return envelope([w.as_planned_json() for w in windows]), 200


def plan_window(body: dict[str, Any], token_info: dict[str, Any]) -> Answer:
    """POST /maintenance/schedule."""
    window = current().windows.plan(
        acting(token_info),
        start=parse_time(body["start"], "start"),
        end=parse_time(body["end"], "end") if body.get("end") is not None else None,
        message=body["message"],
        mode=body.get("mode") or FULL,
        auto_end=bool(body.get("autoEnd", False)),
    )
    return envelope(window.as_planned_json()), 201


def cancel_planned_window(id: int, token_info: dict[str, Any]) -> Answer:
    """DELETE /maintenance/schedule/{id}."""
    current().windows.cancel(acting(token_info), id)
    return envelope(), 200


def get_maintenance_calendar() -> Response:
    """GET /maintenance/schedule.ics: one event per planned window."""
    body = calendar(current().windows.planned())
    return Response(body, media_type="text/calendar; charset=utf-8")


async def get_maintenance_announcement() -> tuple[dict[str, Any], int, dict[str, str]]:
    """GET /maintenance/announcement: public, open to any origin, from memory (no thread)."""
    return envelope(current().announcement()), 200, ANY_ORIGIN


def preflight_maintenance_announcement() -> tuple[None, int, dict[str, str]]:
    """OPTIONS /maintenance/announcement: the CORS preflight, for any origin."""
    allowed = {
        "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Max-Age": "86400",
    }
    return None, 204, {**ANY_ORIGIN, **allowed}
