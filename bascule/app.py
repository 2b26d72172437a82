"""The application: connexion routes openapi.yaml to ``handlers/``, behind the gate."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import connexion
from a2wsgi import WSGIMiddleware
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bascule import errors, spec
from bascule.answers import NO_SUCH_PATH, Code, error_answer
from bascule.config import Settings
from bascule.exchange import refuse_websocket, send_whole
from bascule.gate import Gate, PathSet, RefusalLog
from bascule.middleware import (
    AttachServices,
    NotFramed,
    ReadBody,
    RefuseCrossOrigin,
    without_session_cookie,
)
from bascule.page import Page
from bascule.service import Services, bootstrap
from bascule.validation import VALIDATORS

log = logging.getLogger(__name__)

# The console runs only its own files, and never inside another site's frame.
SAFE_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "cache-control": "no-cache",
}
# A WebSocket closed for a path that does not exist: HTTP's 404 in the application range.
WEBSOCKET_NOT_FOUND = 4404
DOCS_PREFIX = "/rest/v1"
# The operator console: its page at CONSOLE_PATH, its files at CONSOLE_PATH/<name>.
CONSOLE_DIR = Path(__file__).with_name("console")
CONSOLE_PATH = "/maintenance"
# The banner any site may include, served beside the console: it speaks only HTTP too.
BANNER = Path(__file__).with_name("banner") / "banner.js"


class TagResolver(Resolver):  # type: ignore[misc]
    """Routes an operation to ``handlers/<first tag>.py::<operationId>``."""

    def resolve_operation_id(self, operation: Any) -> str:
        tag = operation._operation["tags"][0]
        return f"handlers.{tag}.{operation.operation_id}"


class Application(Gate):
    """What a server runs: the gate, in front of connexion's application (Bascule's API)
    and of the mounted application; with the services they share."""

    def __init__(self, services: Services, api: connexion.AsyncApp, **options: Any) -> None:
        super().__init__(api.middleware, monitor=services.monitor, **options)
        self.services = services
        self.api = api
        services.metrics.count(self.decisions)

    def test_client(self, **kwargs: Any) -> TestClient:
        """Starlette's test client of the whole application (for tests)."""
        return TestClient(self, **kwargs)


def bascule_paths() -> PathSet:
    """The paths Bascule answers itself, all of them open during maintenance (a path
    with a parameter, such as a token's name, opens the prefix before it)."""
    served = spec.served_paths()
    exact = [p for p in served if "{" not in p]
    exact += [f"{DOCS_PREFIX}/openapi.json", f"{DOCS_PREFIX}/openapi.yaml"]
    exact += [f"{DOCS_PREFIX}/ui", *console_files()]
    prefixes = [f"{base}/auth/" for base in spec.API_BASES] + [f"{DOCS_PREFIX}/ui/"]
    parameters = sorted({p.partition("{")[0] for p in served if "{" in p})
    return PathSet(exact, prefixes, parameters)


def console_files() -> dict[str, Path]:
    """The console's files by the path they are served at (its page at CONSOLE_PATH), and
    the banner's script."""
    files = {CONSOLE_PATH: CONSOLE_DIR / "index.html"}
    files.update(
        {f"{CONSOLE_PATH}/{f.name}": f for f in sorted(CONSOLE_DIR.iterdir()) if f.is_file()}
    )
    files[f"{CONSOLE_PATH}/{BANNER.name}"] = BANNER
    return files


NOT_FOUND_HEADERS, NOT_FOUND_BODY = error_answer(Code.NOT_FOUND, NO_SUCH_PATH)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """Where paths that are not Bascule's go when no application is mounted: 404."""
    body = NOT_FOUND_BODY
    if scope["type"] == "http":
        await send_whole(send, 404, NOT_FOUND_HEADERS, body)
    elif scope["type"] == "websocket":
        await refuse_websocket(
            scope, receive, send, 404, NOT_FOUND_HEADERS, body, WEBSOCKET_NOT_FOUND
        )


class LifespanChild:
    """Runs a mounted application's lifespan protocol beside Bascule's.

    Hand-written because asgi-lifespan's manager waits for an application that returns
    without a word (one that does not support lifespan) until its timeout; ASGI allows it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception:  # an application without lifespan support may raise: that is allowed
            log.debug("the mounted application does not support lifespan", exc_info=True)
        await self.outbox.put({"type": "lifespan.unsupported"})

    async def _exchange(self, message_type: str) -> None:
        await self.inbox.put({"type": message_type})
        answer = await self.outbox.get()
        if answer["type"].endswith(".failed"):
            raise RuntimeError(f"the mounted application failed: {answer.get('message', '')}")

    async def startup(self) -> None:
        """Start the application; raise if it says it failed."""
        self.task = asyncio.create_task(self._run())
        await self._exchange("lifespan.startup")

    async def shutdown(self) -> None:
        """Stop the application, if it is running its lifespan."""
        if self.task is not None and not self.task.done():
            await self._exchange("lifespan.shutdown")


def load_app(target: str) -> ASGIApp:
    """Import ``module:attribute`` (as uvicorn does) and return it as an ASGI application.

    A WSGI application (a callable taking ``environ, start_response``) is wrapped, by
    a2wsgi: a client that leaves mid-body is a short read for it, as under a WSGI server.
    """
    from uvicorn.importer import ImportFromStringError, import_from_string

    if "" not in sys.path:  # the current directory, as uvicorn's --app-dir has it
        sys.path.insert(0, "")
    try:
        app = import_from_string(target)
    except ImportFromStringError as exc:
        raise ValueError(f"--app {target}: {exc}") from None
    if not callable(app):
        raise ValueError(f"{target} is not an application (it is not callable)")
    if is_asgi(app):
        return cast(ASGIApp, app)
    return cast(ASGIApp, WSGIMiddleware(app))


def is_asgi(app: Any) -> bool:
    """Whether ``app`` is an ASGI 3 application (a coroutine function of scope, receive,
    send). Hand-written: uvicorn's own test tells ASGI 3 from ASGI 2, never from WSGI."""
    if inspect.isclass(app):
        return False
    call = app if inspect.isroutine(app) else app.__call__
    return inspect.iscoroutinefunction(call)


def _specs_by_base() -> list[tuple[str, dict[str, Any]]]:
    """One copy of the spec per base path, holding the paths served there, longest base first."""
    bases: dict[str, list[str]] = {}
    for path, item in spec.load()["paths"].items():
        if any(op.get("x-bascule-gate") for op in item.values() if isinstance(op, dict)):
            continue  # answered by the gate itself
        for base in spec.path_bases(item):
            bases.setdefault(base, []).append(path)
    result = []
    for base in sorted(bases, key=len, reverse=True):
        document = spec.load()
        document["paths"] = {p: document["paths"][p] for p in bases[base]}
        result.append((base, document))
    return result


def _add_documents(app: connexion.AsyncApp) -> None:
    """The contract, whose server URLs follow the root path, and the console's files."""

    def contract(render: Any, media_type: str) -> Any:
        async def view(request: Request) -> Response:
            prefix = quote((request.scope.get("root_path") or "").rstrip("/"), safe="/")
            return Response(render(prefix), media_type=media_type, headers=SAFE_HEADERS)

        return view

    app.add_url_rule(
        f"{DOCS_PREFIX}/openapi.json", "openapi.json", contract(spec.as_json, "application/json")
    )
    app.add_url_rule(
        f"{DOCS_PREFIX}/openapi.yaml", "openapi.yaml", contract(spec.as_yaml, "application/yaml")
    )
    for path, file in console_files().items():

        async def view(_request: Request, file: Path = file) -> Response:
            return FileResponse(file, headers=SAFE_HEADERS)

        app.add_url_rule(path, path, view, methods=["GET", "HEAD"])


def create_app(settings: Settings | None = None) -> Application:
    """Build the Bascule application: the gate, in front of the API and the user's app."""
    settings = settings or Settings.from_env()
    services = Services(settings)
    try:
        return _build(settings, services)
    except BaseException:
        services.close()
        raise


def _build(settings: Settings, services: Services) -> Application:
    if settings.page_template:  # a wrong path fails now, not at the first refused request
        Page(Path(settings.page_template), settings.retry_after)
    mounted = load_app(settings.app) if settings.app else None
    bootstrap(services)
    services.monitor.refresh()
    # Now, not at the lifespan's start: a server that runs no lifespan (daphne, uvicorn's
    # --lifespan off) must still see what other processes change.
    services.monitor.start()
    # While the access log is on, refusals are logged as one line per interval.
    refusals = RefusalLog() if settings.access_log else None
    if refusals is not None:
        services.monitor.on_tick.append(refusals.flush)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any] | None]:
        # The mounted application's lifespan starts first and stops first; what it keeps
        # in its state reaches its requests, as under a server of its own.
        child = LifespanChild(mounted) if mounted is not None else None
        try:
            if child is not None:
                await child.startup()
            yield child.state if child is not None and child.state else None
            if child is not None:
                await child.shutdown()
        finally:
            if refusals is not None:
                refusals.flush(force=True)  # what the last interval counted
            services.close()

    app = connexion.AsyncApp(__name__, lifespan=lifespan, jsonifier=errors.JSONIFIER)
    for base, document in _specs_by_base():
        app.add_api(
            document,
            base_path=base,
            resolver=TagResolver(),
            validate_responses=settings.validate_responses,
            validator_map=VALIDATORS,
            # The contract file itself is served by _add_documents; connexion serves the UI.
            swagger_ui_options=SwaggerUIOptions(serve_spec=False, swagger_ui=base == DOCS_PREFIX),
            name=base or "root",
        )
    _add_documents(app)
    app.add_middleware(NotFramed, MiddlewarePosition.BEFORE_SWAGGER, prefix=f"{DOCS_PREFIX}/ui")
    app.add_middleware(AttachServices, MiddlewarePosition.BEFORE_SWAGGER, services=services)
    app.add_middleware(RefuseCrossOrigin, MiddlewarePosition.BEFORE_SECURITY)
    app.add_middleware(ReadBody, MiddlewarePosition.BEFORE_VALIDATION)
    errors.install(app)
    # Built now: the middleware stack connexion builds at its first request is the gate's.
    app.middleware._build_middleware_stack()
    return Application(
        services,
        app,
        own=bascule_paths(),
        allow=settings.allow,
        allow_prefixes=settings.allow_prefixes,
        decision_paths=spec.decision_paths(),
        refusals=refusals,
        retry_after=settings.retry_after,
        page_template=settings.page_template,
        elsewhere=without_session_cookie(mounted) if mounted is not None else not_found,
    )
