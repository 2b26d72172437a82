"""The application: connexion routes openapi.yaml to ``handlers/``, behind the gate."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import connexion
from asgiref.wsgi import WsgiToAsgi
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from starlette.types import ASGIApp, Receive, Scope, Send

from bascule import errors, spec
from bascule.config import Settings
from bascule.gate import DOCS_PREFIX, MaintenanceGate, PathSet, bascule_paths, request_path
from bascule.schema import prepare
from bascule.service import Services


class TagResolver(Resolver):  # type: ignore[misc]
    """Routes an operation to ``handlers/<first tag>.py::<operationId>``."""

    def resolve_operation_id(self, operation: Any) -> str:
        tag = operation._operation["tags"][0]
        return f"handlers.{tag}.{operation.operation_id}"


class Dispatch:
    """Sends Bascule's own paths to the API and every other path to the user's app.

    It also attaches the services to each request, for the handlers.
    """

    def __init__(
        self, app: ASGIApp, *, services: Services, mounted: ASGIApp | None, own: PathSet
    ) -> None:
        self.app = app
        self.services = services
        self.mounted = mounted
        self.own = own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if self.mounted is not None and request_path(scope) not in self.own:
            await self.mounted(scope, receive, send)
            return
        self.services.attach(scope)
        await self.app(scope, receive, send)


def load_app(target: str) -> ASGIApp:
    """Import ``module:attribute`` and return it as an ASGI application.

    A WSGI application (a callable taking ``environ, start_response``) is wrapped.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--app takes module:attribute, not {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    module = importlib.import_module(module_name)
    app: Any = module
    for part in attribute.split("."):
        app = getattr(app, part)
    if not callable(app):
        raise ValueError(f"{target} is not an application (it is not callable)")
    if is_asgi(app):
        return app  # type: ignore[no-any-return]
    return WsgiToAsgi(app)  # type: ignore[no-untyped-call]


def is_asgi(app: Any) -> bool:
    """Whether ``app`` is an ASGI application (a coroutine function of scope, receive, send)."""
    if inspect.isclass(app):
        return False
    call = app if inspect.isroutine(app) else app.__call__
    return inspect.iscoroutinefunction(call)


def _specs_by_base() -> list[tuple[str, dict[str, Any]]]:
    """One copy of the spec per base path, holding the paths served there, longest base first."""
    bases: dict[str, list[str]] = {}
    for path, item in spec.load()["paths"].items():
        for base in spec.path_bases(item):
            bases.setdefault(base, []).append(path)
    result = []
    for base in sorted(bases, key=len, reverse=True):
        document = spec.load()
        document["paths"] = {p: document["paths"][p] for p in bases[base]}
        result.append((base, document))
    return result


def bootstrap(services: Services) -> None:
    """Ready the database: create the schema if it is empty (refuse an outdated one),
    and the first user if there is none, printing a generated password once."""
    prepare(services.store)
    generated = services.auth.ensure_admin(services.settings.admin_password)
    if generated:
        print(
            f"Created the user 'admin' with the password {generated} "
            "(shown once: change it with `bascule users passwd admin`)",
            file=sys.stderr,
            flush=True,
        )


def create_app(settings: Settings | None = None) -> connexion.AsyncApp:
    """Build the Bascule application: the API, the user's app if any, and the gate in front."""
    settings = settings or Settings.from_env()
    services = Services(settings)
    bootstrap(services)
    services.monitor.refresh()

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        services.monitor.start()
        try:
            yield
        finally:
            services.close()

    app = connexion.AsyncApp(__name__, lifespan=lifespan)
    for base, document in _specs_by_base():
        app.add_api(
            document,
            base_path=base,
            resolver=TagResolver(),
            validate_responses=settings.validate_responses,
            swagger_ui_options=SwaggerUIOptions(
                serve_spec=base == DOCS_PREFIX, swagger_ui=base == DOCS_PREFIX
            ),
            name=base or "root",
        )
    errors.install(app)
    mounted = load_app(settings.app) if settings.app else None
    app.add_middleware(
        MaintenanceGate,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        monitor=services.monitor,
        retry_after=settings.retry_after,
    )
    app.add_middleware(
        Dispatch,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        services=services,
        mounted=mounted,
        own=bascule_paths(),
    )
    app.services = services
    return app
