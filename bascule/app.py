"""The application: connexion routes openapi.yaml to ``handlers/``, behind the gate."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import mimetypes
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlsplit

import connexion
from a2wsgi import WSGIMiddleware
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bascule import errors, spec
from bascule.config import Settings
from bascule.errors import MAX_BODY
from bascule.gate import (
    DOCS_PREFIX,
    NOT_FRAMED,
    MaintenanceGate,
    Page,
    bascule_paths,
    console_files,
    refuse_websocket,
    route_path,
)
from bascule.schema import prepare
from bascule.service import Services
from bascule.validation import VALIDATORS

log = logging.getLogger(__name__)


class TagResolver(Resolver):  # type: ignore[misc]
    """Routes an operation to ``handlers/<first tag>.py::<operationId>``."""

    def resolve_operation_id(self, operation: Any) -> str:
        tag = operation._operation["tags"][0]
        return f"handlers.{tag}.{operation.operation_id}"


class BasculeApp(connexion.AsyncApp):  # type: ignore[misc]
    """connexion's application, with the gate and Dispatch in front of all it does.

    In front rather than among connexion's middleware: a refused request, or one
    for the mounted application, then costs no more than the gate itself.
    """

    front: MaintenanceGate
    services: Services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front.route(scope, receive, send)


class Dispatch:
    """In front of connexion, behind the gate, for Bascule's own paths (the gate sends every
    other path to the mounted application, or to ``not_found``).

    It attaches the services to the request, serves the contract file, refuses
    a browser's cross-origin requests that would change something, reads every body
    before connexion (at most MAX_BODY bytes, chunked or not; a client that leaves
    mid-body is logged in one line and gets no answer), reads a body sent without
    Content-Type as the operation's declared type (as connexion's validation does),
    and runs the mounted application's lifespan beside Bascule's.
    """

    def __init__(self, app: ASGIApp, *, services: Services, mounted: ASGIApp | None) -> None:
        self.app = app
        self.services = services
        self.mounted = mounted
        # The contract, whose server URLs depend on the root path, and the console's files.
        self.contract = {
            f"{DOCS_PREFIX}/openapi.json": (spec.as_json, b"application/json"),
            f"{DOCS_PREFIX}/openapi.yaml": (spec.as_yaml, b"application/yaml"),
        }
        self.documents: dict[str, tuple[bytes, bytes]] = {}
        for path, file in console_files().items():
            media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            charset = "; charset=utf-8" if media_type.startswith("text/") else ""
            self.documents[path] = (file.read_bytes(), f"{media_type}{charset}".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope, scope["path"])
        if scope["method"] in ("GET", "HEAD"):
            document = self.documents.get(path)
            if path in self.contract:
                render, media_type = self.contract[path]
                prefix = quote((scope.get("root_path") or "").rstrip("/"), safe="/")
                document = (render(prefix), media_type)
            if document is not None:
                head = scope["method"] == "HEAD"
                await send_bytes(send, 200, document[0], document[1], head=head)
                return
        if scope["method"] not in SAFE_METHODS and cross_origin(scope["headers"]):
            refused = errors.error_envelope(errors.Code.UNAUTHORIZED, errors.CROSS_ORIGIN)
            await send_json(send, 403, refused)
            return
        if path.startswith(UI_PREFIX):  # connexion's Swagger UI
            send = not_framed(send)
        method = scope["method"]
        media_types = spec.request_media_types(path, method)
        if media_types:
            # Read here, whole and bounded, whether or not a Content-Length says how long:
            # connexion reads only bodies that have one (connexion #2020).
            declared = content_length(scope)
            body = None
            if declared is None or declared <= MAX_BODY:
                body = await read_body(receive, MAX_BODY)
                if body is None:
                    log.info("%s %s: the client left before sending its whole body", method, path)
                    return
            if body is None or len(body) > MAX_BODY:
                too_large = errors.error_envelope(errors.Code.BAD_PARAMETER, errors.TOO_LARGE)
                await send_json(send, 413, too_large)
                return
            if declared is None:
                length = (b"content-length", str(len(body)).encode())
                scope = {**scope, "headers": [*scope["headers"], length]}
            receive = replay(body, receive)
            if not any(name == b"content-type" for name, _ in scope["headers"]):
                content_type = (b"content-type", media_types[0].encode())
                scope = {**scope, "headers": [*scope["headers"], content_type]}
        self.services.attach(scope)
        await self.app(scope, receive, send)

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bascule's lifespan, with the mounted application's started first, stopped first."""
        if self.mounted is None:
            await self.app(scope, receive, send)
            return
        child = LifespanChild(self.mounted, scope)

        async def relay() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await child.startup()
            elif message["type"] == "lifespan.shutdown":
                await child.shutdown()
            return message

        await self.app(scope, relay, send)


# A WebSocket closed for a path that does not exist: HTTP's 404 in the application range.
WEBSOCKET_NOT_FOUND = 4404


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """Where paths that are not Bascule's go when no application is mounted: 404."""
    document = errors.error_envelope(errors.Code.NOT_FOUND, errors.NO_SUCH_PATH)
    if scope["type"] == "http":
        await send_json(send, 404, document)
    elif scope["type"] == "websocket":
        body = json.dumps(document).encode()
        headers = content_headers(body, b"application/json")
        await refuse_websocket(scope, receive, send, 404, headers, body, WEBSOCKET_NOT_FOUND)


def without_session_cookie(app: ASGIApp) -> ASGIApp:
    """``app``, never handed Bascule's session cookie: it is a credential for Bascule,
    which a mounted application has no use for and must not be able to log or replay."""
    marker = f"{spec.SESSION_COOKIE}=".encode()

    def route(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain call, like the gate's route: no coroutine of its own per request.
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        for name, value in headers:
            if name == b"cookie" and value.find(marker) != -1:
                scope = {**scope, "headers": _strip_cookie(headers, spec.SESSION_COOKIE)}
                break
        return app(scope, receive, send)

    return route


def _strip_cookie(headers: list[tuple[bytes, bytes]], cookie: str) -> list[tuple[bytes, bytes]]:
    kept = []
    for name, value in headers:
        if name == b"cookie":
            pairs = [p for p in value.split(b";") if p.split(b"=", 1)[0].strip() != cookie.encode()]
            if not pairs:
                continue
            value = b";".join(pairs).strip()
        kept.append((name, value))
    return kept


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_origin(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a browser says that a page of another origin sent this request.

    ``Sec-Fetch-Site`` when the browser sends it (current ones do, to HTTPS and
    localhost), else ``Origin`` against ``Host`` or a proxy's ``X-Forwarded-Host``
    (a page cannot set either on a request to another site); a client that is not
    a browser sends neither ``Sec-Fetch-Site`` nor ``Origin``.
    """
    fetch_site = origin = None
    hosts = set()
    for name, value in headers:
        if name == b"sec-fetch-site":
            fetch_site = value
        elif name == b"origin":
            origin = value
        elif name == b"host":
            hosts.add(value.decode("latin-1").strip().lower())
        elif name == b"x-forwarded-host":
            hosts.add(value.decode("latin-1").split(",")[0].strip().lower())
    if fetch_site is not None:
        return fetch_site not in (b"same-origin", b"none")
    if origin is None:
        return False
    return urlsplit(origin.decode("latin-1")).netloc.lower() not in hosts


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or its first ``limit + 1`` bytes when it is longer;
    None when the client left before sending all of it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)[: limit + 1]


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` whole, then whatever the server sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_again() -> Message:
        return pending.pop() if pending else await receive()

    return receive_again


def content_length(scope: Scope) -> int | None:
    """The declared Content-Length, if any and well-formed."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# The console runs only its own files, and never inside another site's frame.
SAFE_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"cache-control", b"no-cache"),
]


UI_PREFIX = f"{DOCS_PREFIX}/ui"


def not_framed(send: Send) -> Send:
    """A ``send`` that adds the NOT_FRAMED headers to the answer."""

    async def send_not_framed(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *NOT_FRAMED]}
        await send(message)

    return send_not_framed


def content_headers(body: bytes, content_type: bytes) -> list[tuple[bytes, bytes]]:
    """The headers that describe ``body``: its type and length."""
    return [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]


async def send_bytes(
    send: Send, status: int, body: bytes, content_type: bytes, *, head: bool = False
) -> None:
    """Send a whole response."""
    headers = [*content_headers(body, content_type), *SAFE_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_json(send: Send, status: int, document: dict[str, Any]) -> None:
    """Send a JSON response."""
    await send_bytes(send, status, json.dumps(document).encode(), b"application/json")


class LifespanChild:
    """Runs a mounted application's lifespan protocol on behalf of the server."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.app = app
        self.scope = scope
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.inbox.get, self.outbox.put)
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
    """Import ``module:attribute`` and return it as an ASGI application.

    A WSGI application (a callable taking ``environ, start_response``) is wrapped, by
    a2wsgi: a client that leaves mid-body is a short read for it, as under a WSGI server.
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
    return cast(ASGIApp, WSGIMiddleware(app))


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


def create_app(settings: Settings | None = None) -> BasculeApp:
    """Build the Bascule application: the API, the user's app if any, and the gate in front."""
    settings = settings or Settings.from_env()
    services = Services(settings)
    try:
        return _build(settings, services)
    except BaseException:
        services.close()
        raise


def _build(settings: Settings, services: Services) -> BasculeApp:
    if settings.page_template:  # a wrong path fails now, not at the first refused request
        Page(Path(settings.page_template), settings.retry_after)
    bootstrap(services)
    services.monitor.refresh()
    # Now, not at the lifespan's start: a server that runs no lifespan (daphne, uvicorn's
    # --lifespan off) must still see what other processes change.
    services.monitor.start()

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            services.close()

    app = BasculeApp(__name__, lifespan=lifespan)
    for base, document in _specs_by_base():
        app.add_api(
            document,
            base_path=base,
            resolver=TagResolver(),
            validate_responses=settings.validate_responses,
            validator_map=VALIDATORS,
            # The contract file itself is served by Dispatch; connexion serves only the UI.
            swagger_ui_options=SwaggerUIOptions(serve_spec=False, swagger_ui=base == DOCS_PREFIX),
            name=base or "root",
        )
    errors.install(app)
    mounted = load_app(settings.app) if settings.app else None
    app.front = MaintenanceGate(
        Dispatch(app.middleware, services=services, mounted=mounted),
        monitor=services.monitor,
        allow=bascule_paths(),
        retry_after=settings.retry_after,
        page_template=settings.page_template,
        elsewhere=without_session_cookie(mounted) if mounted is not None else not_found,
    )
    app.services = services
    return app
