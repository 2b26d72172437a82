"""``bascule db upgrade``'s work: every pending step of the schema, under automatic
maintenance (the process schema-migration), whatever schema the database is at."""

from __future__ import annotations

import contextlib

from bascule import schema
from bascule.maintenance import Maintenance, maintenance_window
from bascule.model import Actor, MaintenanceError
from bascule.schema import WINDOWS_REVISION, hold_before_windows, upgrade
from bascule.store import Store

MIGRATION_PROCESS = "schema-migration"


def upgrade_under_maintenance(store: Store, current: str | None, steps: list[str]) -> None:
    """Apply ``steps`` (those pending from ``current``) holding maintenance for each: one
    log entry and a progress step per migration."""
    actor = Actor.process(MIGRATION_PROCESS)
    maintenance = Maintenance(store)
    message = f"Schema migration from {current} to {schema.HEAD}: {len(steps)} step(s)."
    done = 0

    def on_step(revision: str, description: str) -> None:
        nonlocal done
        first_line = description.strip().splitlines()[0] if description.strip() else revision
        with contextlib.suppress(MaintenanceError):  # held by someone else: theirs
            maintenance.update(
                actor,
                message=f"Applying {revision}: {first_line}",
                progress=max(1, done * 100 // len(steps)),
            )
        done += 1

    if current is not None and current < WINDOWS_REVISION:
        # Held the way the schema of before stores maintenance (its instances see it)
        # until the step that carries it over as the current window; then as usual.
        held = hold_before_windows(store, MIGRATION_PROCESS, message, store.now())
        done = len(upgrade(store, until=WINDOWS_REVISION))
        upgrade(store, on_step)
        if held:
            maintenance.update(actor, message="Schema migration done.", progress=100)
            maintenance.disable(actor)
    else:
        with maintenance_window(maintenance, actor, message=message) as window:
            upgrade(store, on_step)
            window.update(message="Schema migration done.", progress=100)
