"""bascule serve: the API, the gate and the application behind it."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from bascule import config
from bascule.auth import UserError
from bascule.cli.base import F, settings_option, unreachable
from bascule.config import Settings
from bascule.schema import (
    SchemaError,
)


def _serve_options(command: F) -> F:
    for f in reversed(config.fields()):
        if f.metadata["flag"]:
            command = settings_option(f)(command)
    return command


@click.command()
@_serve_options
def serve(**options: Any) -> None:
    """Serve the API, the gate, and the --app behind it."""
    import uvicorn

    from bascule.app import create_app
    from bascule.service import Services, bootstrap

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    # Alembic's notes on every migration context, and connexion's on every refused request
    # (a request without credentials is a warning to it), are not news to an operator.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("connexion").setLevel(logging.ERROR)
    try:
        settings = Settings.from_env(**options)
        from bascule.protocol import bounded_protocol  # reads the environment: checked now

        if settings.workers > 1:
            # Workers import bascule.asgi:route and read the settings from the environment.
            services = Services(settings)
            try:
                bootstrap(services)
            finally:
                services.close()
            os.environ.update(settings.to_env())
            counters = _metrics_directory()
            app: Any = "bascule.asgi:route"
            # Imported by each worker, which reads its timeout from the environment.
            protocol: Any = "bascule.protocol:BoundedHttpToolsProtocol"
        else:
            counters = None
            app = create_app(settings).route  # the gate, in front of everything
            protocol = bounded_protocol(settings.header_timeout)
    except (ValueError, SchemaError, UserError, ImportError, AttributeError) as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(unreachable(exc)) from None
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            access_log=settings.access_log,
            server_header=False,
            lifespan="on",
            interface="asgi3",  # the gate's route is a plain call that returns the answer
            http=protocol,  # uvicorn's httptools protocol, bounded in header size and time
            # X-Forwarded-For and -Proto believed from the proxies named, and from no one else
            # (uvicorn would believe any process on the loopback).
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies),
        )
    finally:
        if counters is not None:
            shutil.rmtree(counters, ignore_errors=True)


def _metrics_directory() -> str | None:
    """Where the workers keep the counters /metrics sums (prometheus_client's multiprocess
    mode): the operator's PROMETHEUS_MULTIPROC_DIR, or else a new, empty directory of
    Bascule's own, whose path is returned so that it is removed on exit."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    try:
        directory = tempfile.mkdtemp(prefix="bascule-metrics-")
    except OSError as exc:
        raise ValueError(
            f"cannot make the directory of the workers' metrics ({exc.strerror}): set"
            " TMPDIR, or PROMETHEUS_MULTIPROC_DIR, to a directory Bascule may write"
        ) from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory
