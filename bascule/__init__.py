"""Bascule: maintenance mode as a service."""

from bascule.gate import MaintenanceGate
from bascule.maintenance import automatic_maintenance

__all__ = ["MaintenanceGate", "automatic_maintenance"]
__version__ = "0.1.0"
