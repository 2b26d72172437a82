"""The health of the service."""

from __future__ import annotations

from typing import Any

from bascule.answers import CANNOT_READ, CANNOT_WRITE, Code, envelope, error_envelope
from bascule.service import current


def _up(ok: bool) -> str:
    return "UP" if ok else "DOWN"


async def get_health() -> tuple[dict[str, Any], int]:
    """GET /admin/health: whether the state enforced here is confirmed, and writes taken."""
    health = current().monitor.health()
    report = {
        "status": _up(health.up),
        "database": _up(health.up),
        "read": _up(health.can_read),
        "write": _up(health.can_write),
        "stateAge": None if health.state_age is None else round(health.state_age, 3),
        "maintenance": health.maintenance,
    }
    if health.up:
        return envelope(report), 200
    message = CANNOT_WRITE if health.can_read else CANNOT_READ
    return error_envelope(Code.DATABASE_UNAVAILABLE, message, report), 503
