"""The contract, ``openapi.yaml``, as Bascule reads it: loaded once, never restated."""

from __future__ import annotations

import copy
import functools
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


def _bases(servers: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(server["url"].rstrip("/") for server in servers)


API_BASES = _bases(_load()["servers"])


def path_bases(path_item: dict[str, Any]) -> tuple[str, ...]:
    """Where a path is served: its own ``servers`` when it has some, else the API's."""
    return _bases(path_item["servers"]) if "servers" in path_item else API_BASES


def served_paths() -> list[str]:
    """Every concrete path the API answers on, under every base it is served at."""
    return [base + path for path, item in _load()["paths"].items() for base in path_bases(item)]


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """Every (path, method, operation) of the specification."""
    return [
        (path, method, op)
        for path, item in _load()["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


SESSION_COOKIE: str = _load()["components"]["securitySchemes"]["sessionCookie"]["name"]


def allowed_methods(path: str) -> list[str]:
    """The methods the API answers on a concrete path (empty when it does not serve it)."""
    return _methods_by_path().get(path, [])


@functools.cache
def _methods_by_path() -> dict[str, list[str]]:
    methods: dict[str, list[str]] = {}
    for path, item in _load()["paths"].items():
        verbs = sorted(m.upper() for m in item if m in HTTP_METHODS)
        for base in path_bases(item):
            methods[base + path] = verbs
    return methods
