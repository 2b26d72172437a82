"""The contract, ``openapi.yaml``, as Bascule reads it: loaded once, never restated."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml

SPEC_FILE = Path(__file__).with_name("openapi.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@functools.cache
def _load() -> dict[str, Any]:
    with SPEC_FILE.open(encoding="utf-8") as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


def load() -> dict[str, Any]:
    """A fresh copy of the specification, safe to modify."""
    return copy.deepcopy(_load())


def _under(root_path: str) -> dict[str, Any]:
    """The specification with every server URL moved under ``root_path``, the prefix a
    proxy in front serves Bascule under: what a client reads there, it calls there.

    Hand-written: connexion serves its copy of a spec with its own base path only, and
    Bascule serves one document for all three bases, under any root path."""
    document = load()
    items = list(document["paths"].values())
    operations = [op for item in items for method, op in item.items() if method in HTTP_METHODS]
    for holder in (document, *items, *operations):
        for server in holder.get("servers", ()):
            server["url"] = root_path + server["url"]
    return document


@functools.lru_cache(maxsize=16)
def as_json(root_path: str = "") -> bytes:
    """The specification as JSON, as served at ``openapi.json`` (under ``root_path``)."""
    return json.dumps(_under(root_path) if root_path else _load(), indent=1).encode()


@functools.lru_cache(maxsize=16)
def as_yaml(root_path: str = "") -> bytes:
    """As served at ``openapi.yaml``: the specification file itself, or under ``root_path``
    the same with its server URLs moved there."""
    if not root_path:
        return SPEC_FILE.read_bytes()
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, when PyYAML has it
    return yaml.dump(_under(root_path), Dumper=dumper, sort_keys=False, allow_unicode=True).encode()


def _bases(servers: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(server["url"].rstrip("/") for server in servers)


API_BASES = _bases(_load()["servers"])


def path_bases(path_item: dict[str, Any]) -> tuple[str, ...]:
    """Where a path is served: its own ``servers`` when it has some, else the API's."""
    return _bases(path_item["servers"]) if "servers" in path_item else API_BASES


@functools.cache
def _routes() -> dict[str, dict[str, dict[str, Any]]]:
    """Every concrete path served, under every base, with its operations by method."""
    routes: dict[str, dict[str, dict[str, Any]]] = {}
    for path, item in _load()["paths"].items():
        operations = {m: op for m, op in item.items() if m in HTTP_METHODS}
        for base in path_bases(item):
            routes[base + path] = operations
    return routes


def decision_paths() -> list[str]:
    """Where the gate itself answers (operations marked ``x-bascule-gate``), under every
    base: connexion never sees them."""
    return [
        path
        for path, operations in _routes().items()
        if any(op.get("x-bascule-gate") for op in operations.values())
    ]


def served_paths() -> list[str]:
    """Every concrete path the API answers on, under every base it is served at."""
    return list(_routes())


def allowed_methods(path: str) -> list[str]:
    """The methods the API answers on a concrete path (empty when it does not serve it)."""
    return sorted(m.upper() for m in _routes().get(path, {}))


def request_media_types(path: str, method: str) -> list[str]:
    """The media types an operation takes as its body (empty when it takes none)."""
    operation = _routes().get(path, {}).get(method.lower(), {})
    return list(operation.get("requestBody", {}).get("content", {}))


def consumes(operation_id: str) -> list[str]:
    """The media types the operation named ``operation_id`` (or ``handlers.TAG.ID``, as
    routed) takes as its body."""
    name = operation_id.rpartition(".")[2]
    for _path, _method, operation in operations():
        if operation["operationId"] == name:
            return list(operation.get("requestBody", {}).get("content", {}))
    return []


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """Every (path, method, operation) of the specification."""
    return [
        (path, method, op)
        for path, item in _load()["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def schema(name: str) -> dict[str, Any]:
    """A schema of ``components/schemas``."""
    found: dict[str, Any] = _load()["components"]["schemas"][name]
    return found


SESSION_COOKIE: str = _load()["components"]["securitySchemes"]["sessionCookie"]["name"]
