"""``bascule db upgrade``'s work: every pending step of the schema, under automatic
maintenance (the process schema-migration), whatever schema the database is at."""

from __future__ import annotations

from bascule import schema
from bascule.maintenance import Maintenance
from bascule.model import Actor
from bascule.schema import Holding, upgrade
from bascule.store import Store

MIGRATION_PROCESS = "schema-migration"


def upgrade_under_maintenance(store: Store, current: str | None, steps: list[str]) -> None:
    """Apply ``steps`` (those pending from ``current``) holding maintenance for each, one
    log entry and a progress step per migration: written as each step's schema keeps it
    (schema.Holding), then, the schema at its head, ended by the domain."""
    holding = Holding(store, MIGRATION_PROCESS)
    message = f"Schema migration from {current} to {schema.HEAD}: {len(steps)} step(s)."
    held = holding.hold(message, store.now())
    done = 0

    def on_step(revision: str, description: str) -> None:
        nonlocal done
        first_line = description.strip().splitlines()[0] if description.strip() else revision
        if held:  # under someone else's maintenance: their log
            progress = max(1, done * 100 // len(steps))
            holding.say(f"Applying {revision}: {first_line}", progress, store.now())
        done += 1

    upgrade(store, on_step)
    if held:
        actor = Actor.process(MIGRATION_PROCESS)
        maintenance = Maintenance(store)
        maintenance.update(actor, message="Schema migration done.", progress=100)
        maintenance.disable(actor)
