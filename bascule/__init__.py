"""Bascule: maintenance mode as a service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bascule.service import automatic_maintenance
    from bascule.standalone import MaintenanceGate

__all__ = ["MaintenanceGate", "automatic_maintenance"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported when asked for: the command line, which needs neither, starts faster.
    if name == "MaintenanceGate":
        from bascule.standalone import MaintenanceGate

        return MaintenanceGate
    if name == "automatic_maintenance":
        from bascule.service import automatic_maintenance

        return automatic_maintenance
    raise AttributeError(f"module 'bascule' has no attribute {name!r}")
