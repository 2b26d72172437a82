"""The baselines the benchmark compares Bascule with, and the servers that run them.

    python bench/apps.py KIND --port PORT

serves one of them with uvicorn exactly as ``bascule serve`` serves Bascule (one
worker, uvloop/httptools when installed, no Server header, lifespan on, no access
log), so that the only difference between the two sides of a ratio is the
application.

KIND is one of:

``refuse``       a bare ASGI callable answering the gate's 503 bytes and headers;
``downstream``   a small raw ASGI application (the one mounted behind the gate);
``starlette``    a small Starlette application with one route (mounted behind the gate);
``layer``        ``downstream`` behind an empty ASGI middleware (a class whose ``__call__``
                 awaits the application): what any layer in front of an application costs;
``connexion``    a bare connexion AsyncApp on a copy of openapi.yaml: same paths, same
                 servers, same security schemes; every operation answers a constant
                 envelope; HTTP Basic is a dictionary lookup; response validation off.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILE = ROOT / "openapi.yaml"

# -- the gate's refusal, byte for byte (bascule/gate.py: MAINTENANCE_BODY and headers) -------

REFUSAL_BODY = b'{"data":null,"error":{"code":0,"message":"Maintenance mode is enabled."}}'
REFUSAL_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(REFUSAL_BODY)).encode()),
    (b"retry-after", b"120"),
    (b"cache-control", b"no-store"),
]


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request as the gate does during maintenance."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 503, "headers": REFUSAL_HEADERS})
    await send({"type": "http.response.body", "body": REFUSAL_BODY})


# -- a small downstream application --------------------------------------------------------

DOWNSTREAM_BODY = b'{"shop":"open","items":[1,2,3]}'
DOWNSTREAM_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(DOWNSTREAM_BODY)).encode()),
]


async def downstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI application: 200 and a small JSON body on every path."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": DOWNSTREAM_HEADERS})
    await send({"type": "http.response.body", "body": DOWNSTREAM_BODY})


class EmptyLayer:
    """The least an ASGI middleware can be: a class that awaits the application."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def shop(_request: Request) -> Response:
        return Response(DOWNSTREAM_BODY, media_type="application/json")

    return Starlette(routes=[Route("/shop", shop), Route("/page", shop)])


starlette_app = _starlette_app()

# -- a bare connexion application with the same contract ----------------------------------

# Credentials of the baseline: a dictionary lookup, no hashing, no cache.
USERS = {"admin": "bench-admin-password", "reader": "bench-reader-password"}
CONSTANT_ENVELOPE: dict[str, Any] = {"data": None, "error": None}


def baseline_basic_auth(username: str, password: str) -> dict[str, Any] | None:
    """x-basicInfoFunc of the baseline: a dictionary lookup."""
    if USERS.get(username) == password:
        return {"sub": username}
    return None


def baseline_session_auth(api_key: str) -> dict[str, Any] | None:
    """x-apikeyInfoFunc of the baseline: no sessions."""
    return None


async def constant_handler() -> tuple[dict[str, Any], int]:
    """Every operation of the baseline: the envelope Bascule answers while maintenance is off."""
    return CONSTANT_ENVELOPE, 200


def _baseline_documents() -> list[tuple[str, dict[str, Any]]]:
    """A copy of openapi.yaml per base path (as Bascule adds it), with the baseline's functions.

    Same layout as bascule.app._specs_by_base, rebuilt here from the file so that the
    baseline runs no Bascule code: one API per server URL, longest base first.
    """
    import yaml

    spec = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))
    schemes = spec["components"]["securitySchemes"]
    schemes["basicAuth"]["x-basicInfoFunc"] = f"{__name__}.baseline_basic_auth"
    schemes["sessionCookie"]["x-apikeyInfoFunc"] = f"{__name__}.baseline_session_auth"
    api_bases = [s["url"].rstrip("/") for s in spec["servers"]]
    bases: dict[str, list[str]] = {}
    for path, item in spec["paths"].items():
        own = [s["url"].rstrip("/") for s in item.get("servers", [])]
        for base in own or api_bases:
            bases.setdefault(base, []).append(path)
    documents = []
    for base in sorted(bases, key=len, reverse=True):
        document = copy.deepcopy(spec)
        document["paths"] = {p: document["paths"][p] for p in bases[base]}
        documents.append((base, document))
    return documents


def connexion_app() -> Any:
    """The bare connexion AsyncApp."""
    import connexion
    from connexion.options import SwaggerUIOptions
    from connexion.resolver import Resolver

    class ConstantResolver(Resolver):  # type: ignore[misc]
        # connexion keys its security and validation by operation id: one name per
        # operation, each bound to the same constant handler.
        def resolve_operation_id(self, operation: Any) -> str:
            name = f"op_{operation.operation_id}"
            globals()[name] = constant_handler
            return f"{__name__}.{name}"

    app = connexion.AsyncApp(__name__)
    for base, document in _baseline_documents():
        app.add_api(
            document,
            base_path=base,
            resolver=ConstantResolver(),
            validate_responses=False,
            swagger_ui_options=SwaggerUIOptions(serve_spec=False, swagger_ui=base == "/rest/v1"),
            name=base or "root",
        )
    return app


KINDS = {
    "refuse": lambda: refuse,
    "downstream": lambda: downstream,
    "starlette": lambda: starlette_app,
    "layer": lambda: EmptyLayer(downstream),
    "connexion": connexion_app,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("the benchmark serves on loopback only")
    import uvicorn

    # The same call as bascule.cli.serve, with the access log off as in production.
    uvicorn.run(
        KINDS[args.kind](),
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,
        server_header=False,
        lifespan="on",
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    # Imported as bench.apps, so that "bench.apps.*" names in the spec resolve to this module.
    from bench import apps

    apps.main()
