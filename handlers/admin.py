"""The health of the service."""

from __future__ import annotations

from typing import Any

from connexion.exceptions import Unauthorized
from starlette.responses import Response

from bascule.answers import CANNOT_READ, CANNOT_WRITE, Code, envelope, error_envelope
from bascule.metrics import CONTENT_TYPE
from bascule.service import current


def _up(ok: bool) -> str:
    return "UP" if ok else "DOWN"


async def get_health() -> tuple[dict[str, Any], int]:
    """GET /admin/health: whether the state enforced here is confirmed, and writes taken;
    and how the Alertmanager silence fares."""
    services = current()
    health = services.monitor.health()
    report = {
        "status": _up(health.up),
        "database": _up(health.up),
        "read": _up(health.can_read),
        "write": _up(health.can_write),
        "stateAge": None if health.state_age is None else round(health.state_age, 3),
        "maintenance": health.maintenance,
        # Reported, never a reason to take this instance out.
        "alertmanager": services.silencer.health() if services.silencer else None,
    }
    if health.up:
        return envelope(report), 200
    message = CANNOT_WRITE if health.can_read else CANNOT_READ
    return error_envelope(Code.DATABASE_UNAVAILABLE, message, report), 503


def get_metrics(token_info: dict[str, Any] | None = None) -> Response:
    """GET /metrics: Prometheus's text format; any user's credentials, unless public."""
    services = current()
    if not (token_info or {}).get("principal") and not services.settings.metrics_public:
        raise Unauthorized()  # answered 401, with the challenge, by errors.on_problem
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)
