"""The health of the service."""

from __future__ import annotations

from typing import Any

from bascule.errors import DATABASE_UNAVAILABLE, Code, envelope, error_envelope
from bascule.service import current


async def get_health() -> tuple[dict[str, Any], int]:
    """GET /admin/health: what the monitor saw at its last look (at most a second ago)."""
    monitor = current().monitor
    up = monitor.error is None
    report = {
        "status": "UP" if up else "DOWN",
        "database": "UP" if up else "DOWN",
        "maintenance": monitor.state is not None,
    }
    if up:
        return envelope(report), 200
    return error_envelope(Code.DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE, report), 503
