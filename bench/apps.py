"""The baselines Bascule is compared with, served as ``bascule serve`` serves Bascule.

    python bench/apps.py KIND --host 127.0.0.1 --port PORT

KIND: ``refuse``, a bare ASGI callable answering the gate's 503 byte for byte, and
``allow``, one answering the decision endpoint's empty 200;
``downstream``, a raw ASGI app, and ``starlette_app``, a small Starlette app (each also
mounted behind the gate with ``--app bench.apps:KIND``); ``connexion``, a bare
connexion AsyncApp on a copy of openapi.yaml (same paths, bases and security schemes,
every operation a constant envelope, HTTP Basic a dictionary lookup, no response
validation). They run under the very ``uvicorn.run`` call of ``bascule serve``,
bounded httptools protocol included, so that a ratio measures the application alone.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
USERS = {"admin": "bench-admin-password"}  # Bascule's admin has the same password
SHOP = b'{"shop":"open","items":[1,2,3]}'


def _headers(body: bytes, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    length = str(len(body)).encode()
    return [(b"content-type", b"application/json"), (b"content-length", length), *extra]


async def _lifespan(receive: Any, send: Any) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


def _constant(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
    """A raw ASGI application answering every request the same."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _refuse(retry_after: int) -> Any:
    """The gate's refusal, byte for byte: its body (BENCH_REFUSAL, as the gate answered
    it, in the state of the run), its headers."""
    body = os.environ["BENCH_REFUSAL"].encode() if "BENCH_REFUSAL" in os.environ else _sample()
    extra = (b"retry-after", str(retry_after).encode()), (b"cache-control", b"no-store")
    return _constant(503, _headers(body, *extra), body)


def _sample() -> bytes:
    """A refusal as the gate answers one: what a maintenance of now, switched on by
    root, says (for the instruction counts, where no Bascule is asked)."""
    from bascule.model import STARTED_MESSAGE, LogEntry, MaintenanceState, now_ms
    from bascule.page import DEFAULT_PAGE, Page, Refusals

    now = now_ms()
    state = MaintenanceState("root", True, None, now, (LogEntry(now, "root", STARTED_MESSAGE),))
    return Refusals(Page(DEFAULT_PAGE, 120), now_ms).envelope(state)[1]


downstream = _constant(200, _headers(SHOP), SHOP)
# The decision endpoint's "let it through" (bascule.decision.ALLOWED), checked before the runs.
allow = _constant(200, [(b"content-length", b"0"), (b"cache-control", b"no-store")], b"")


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def shop(_request: Any) -> Response:
        return Response(SHOP, media_type="application/json")

    return Starlette(routes=[Route("/shop", shop)])


starlette_app = _starlette()


def basic_auth(username: str, password: str) -> dict[str, str] | None:
    """The baseline's x-basicInfoFunc: a dictionary lookup, no hashing, no cache."""
    return {"sub": username} if USERS.get(username) == password else None


def no_session(_api_key: str) -> None:
    """The baseline's x-apikeyInfoFunc: it has no sessions."""


async def constant_handler() -> tuple[dict[str, Any], int]:
    """Every operation: the envelope Bascule answers while maintenance is off."""
    return {"data": None, "error": None}, 200


def connexion_app() -> Any:
    """A bare connexion AsyncApp: one API per base of openapi.yaml, longest base first,
    as Bascule adds them, every operation (each keeps its operationId, which connexion
    keys its security and validation by) bound to the constant handler."""
    import connexion
    import yaml
    from connexion.options import SwaggerUIOptions
    from connexion.resolver import Resolver

    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    schemes = spec["components"]["securitySchemes"]
    schemes["basicAuth"]["x-basicInfoFunc"] = f"{__name__}.basic_auth"
    schemes["sessionCookie"]["x-apikeyInfoFunc"] = f"{__name__}.no_session"
    bases: dict[str, list[str]] = {}
    for path, item in spec["paths"].items():
        for server in item.get("servers", spec["servers"]):
            bases.setdefault(server["url"].rstrip("/"), []).append(path)

    app = connexion.AsyncApp(__name__)
    for base in sorted(bases, key=len, reverse=True):
        document = copy.deepcopy(spec)
        document["paths"] = {path: spec["paths"][path] for path in bases[base]}
        ui = SwaggerUIOptions(serve_spec=False, swagger_ui=base == "/rest/v1")
        app.add_api(
            document,
            base_path=base,
            resolver=Resolver(lambda _operation_id: constant_handler),
            validate_responses=False,
            swagger_ui_options=ui,
            name=base or "root",
        )
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve one of the benchmark's baselines.")
    parser.add_argument(
        "kind", choices=["refuse", "allow", "downstream", "starlette_app", "connexion"]
    )
    parser.add_argument("--host", choices=["127.0.0.1"], default="127.0.0.1")  # loopback only
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvicorn

    from bascule.config import Settings
    from bascule.protocol import bounded_protocol

    settings = Settings.from_env()
    if args.kind in ("connexion", "refuse"):
        app = connexion_app() if args.kind == "connexion" else _refuse(settings.retry_after)
    else:
        app = globals()[args.kind]
    # bascule.cli.serve's call, with one worker and the access log off (production).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,
        server_header=False,
        lifespan="on",
        interface="asgi3",
        http=bounded_protocol(settings.header_timeout),
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    # Imported as bench.apps, so that the spec's "bench.apps.*" names are this module's.
    from bench import apps

    apps.main()
