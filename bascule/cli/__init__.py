"""The ``bascule`` command: a click group, a module per command group (Celery's layout).
The commands that only touch the database import neither connexion nor the server."""

from __future__ import annotations

import click

from bascule.cli.bypass import bypass
from bascule.cli.db import db
from bascule.cli.maintenance import maintenance_group
from bascule.cli.proxy import proxy_config, proxy_follow
from bascule.cli.run import run
from bascule.cli.schedule import schedule
from bascule.cli.serve import serve
from bascule.cli.users import users
from bascule.cli.webhooks import events, webhooks


@click.group()
@click.version_option(package_name="bascule")
def main() -> None:
    """Bascule: switch a service into maintenance and back."""


for command in (
    serve,
    users,
    maintenance_group,
    schedule,
    run,
    bypass,
    webhooks,
    events,
    proxy_config,
    proxy_follow,
    db,
):
    main.add_command(command)
