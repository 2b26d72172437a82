"""Envoy: its built-in Lua HTTP filter asks the decision endpoint about the requests
the switch names.

The switch is two runtime keys, ``bascule.asks_all`` and ``bascule.asks_writes`` (100:
ask, 0: do not), in a disk layer whose root, ``runtime``, is a symbolic link swapped at
once to a new directory: Envoy sees the swap within milliseconds, and reads the keys
again when it starts. Routes in order: a request whose query holds a bypass token
(Bascule takes it out of the URL), then every request while ``asks_all``, then any
method but GET, HEAD and OPTIONS while ``asks_writes``, go through the filter; any
other request goes to the application without it (the filter disabled on that route).
A key missing reads 100: the filter asks.

Envoy's ext_authz filter gives its own 403, without a body, for any 5xx of the auth
service, so it cannot show Bascule's 503. Instead ``envoy_on_request`` sends the
visitor's path and query (``X-Original-URI``) with their Accept, Cookie,
X-Bascule-Bypass and X-Forwarded-Proto to the ``bascule`` cluster with
``httpCall``; a 200 lets the request through to the ``application`` cluster (the
name of a bypass that let it through sent to the application as X-Bascule-Bypassed,
and kept in the stream's dynamic metadata for ``envoy_on_response`` to put on the
visitor's answer); any other answer of
Bascule's is given to the visitor with ``respond``, status, headers and body. Fail
open: when Bascule does not answer within the recipe's timeout (refused, reset,
timed out: Envoy's own 503 or 504 without Retry-After), the request goes through;
anything Bascule answers is the visitor's. No admin interface (the switch needs
none), no hot restart (no shared memory to clash with another Envoy on the same machine).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bascule.proxies import ALL, DECISION_PATH, NONE, TOKEN_PARAM, WRITES, Recipe, program

# The switch: the runtime keys, in the disk layer under the link RUNTIME.
RUNTIME = "runtime"
KEYS = {"all": "bascule.asks_all", "writes": "bascule.asks_writes"}

FILTER = "envoy.filters.http.lua"
ACCESS_LOG = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%'
    ' %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT%'
    ' %DURATION% "%REQ(USER-AGENT)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n'
)

LUA = """\
-- Written by `bascule proxy-config envoy`: ask Bascule's decision endpoint about
-- every request, give the visitor its answer when it is not 200, and let the request
-- through when Bascule does not answer (fail open).
local GATE = "%(gate)s"
local AUTHORITY = "%(authority)s"
local TIMEOUT_MS = %(timeout_ms)d
-- The visitor's headers the decision depends on, and how their lines are joined
-- (an HTTP/2 browser sends a cookie a line).
local ASKED = { accept = ", ", cookie = "; ", ["x-bascule-bypass"] = ", ",
  ["x-forwarded-proto"] = ", " }
-- Headers of Bascule's answer that describe its connection, not the answer; Envoy
-- sets the length of the body it sends.
local HOP = { ["connection"] = true, ["keep-alive"] = true, ["transfer-encoding"] = true,
  ["content-length"] = true }

-- Of the visitor's cookies, only the bypass token's (the application's are none of
-- Bascule's business).
local function bypass_cookie(line)
  for pair in string.gmatch(line, "[^;]+") do
    local trimmed = string.match(pair, "^%%s*(.-)%%s*$")
    if string.sub(trimmed, 1, 15) == "bascule-bypass=" then
      return trimmed
    end
  end
  return nil
end

function envoy_on_request(request_handle)
  local visitor = request_handle:headers()
  local question = {
    [":method"] = "GET",
    [":path"] = GATE,
    [":authority"] = AUTHORITY,
    ["x-original-uri"] = visitor:get(":path"),
    ["x-original-method"] = visitor:get(":method"),
  }
  for name, separator in pairs(ASKED) do
    local lines = {}
    for i = 0, visitor:getNumValues(name) - 1 do
      lines[#lines + 1] = visitor:getAtIndex(name, i)
    end
    if #lines > 0 then
      question[name] = table.concat(lines, separator)
    end
    if name == "cookie" and question[name] ~= nil then
      question[name] = bypass_cookie(question[name])
    end
  end
  if question["x-forwarded-proto"] == nil then
    question["x-forwarded-proto"] = "http"
  end
  -- The application has no use for the token, and must not be able to log it; it
  -- learns that a bypass let the request through from Bascule only, not the visitor.
  visitor:remove("x-bascule-bypass")
  visitor:remove("x-bascule-bypassed")
  local ok, headers, body = pcall(request_handle.httpCall, request_handle, "bascule",
    question, "", TIMEOUT_MS)
  -- No answer at all: the request goes through.
  if not ok or headers == nil then
    return
  end
  local status = tonumber(headers[":status"])
  if status == nil then
    return
  end
  if status == 200 then
    local bypassed = headers["x-bascule-bypassed"]
    if bypassed ~= nil then
      -- The headers' handle of before the call is out of scope after it.
      request_handle:headers():add("x-bascule-bypassed", bypassed)
      request_handle:streamInfo():dynamicMetadata():set("%(filter)s", "bypassed", bypassed)
    end
    return
  end
  -- Envoy's own answer when Bascule is refused, reset or late (a 503 or 504, without
  -- the Retry-After of Bascule's refusal; Bascule answers no 502 nor 504): no answer,
  -- the request goes through. Anything Bascule answers is a decision, a question it
  -- cannot read a refusal.
  if (status == 502 or status == 503 or status == 504) and headers["retry-after"] == nil then
    return
  end
  local answer = {}
  for name, value in pairs(headers) do
    if not HOP[name] then
      answer[name] = value
    end
  end
  request_handle:respond(answer, body or "")
end

function envoy_on_response(response_handle)
  local kept = response_handle:streamInfo():dynamicMetadata():get("%(filter)s")
  if kept ~= nil and kept["bypassed"] ~= nil then
    response_handle:headers():replace("x-bascule-bypassed", kept["bypassed"])
  end
end
"""


class _Dumper(yaml.SafeDumper):
    """YAML with the Lua script as a block a reader can read."""


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _text)


def cluster(name: str, url: str, connect_timeout: str) -> dict[str, Any]:
    """A cluster of the one server at ``url`` (a name resolved like /etc/hosts does)."""
    host, port = Recipe.host_port(url)
    return {
        "name": name,
        "type": "STRICT_DNS",
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": host, "port_value": port}}
                            }
                        }
                    ]
                }
            ],
        },
    }


# The application's own slow answers are not cut at Envoy's 15 s.
TO_APPLICATION = {"cluster": "application", "timeout": "60s"}
READS = "GET|HEAD|OPTIONS"


def asked_while(key: str) -> dict[str, Any]:
    """A route match that holds while the runtime ``key`` says 100 (or is missing)."""
    return {
        "prefix": "/",
        "runtime_fraction": {
            "default_value": {"numerator": 100, "denominator": "HUNDRED"},
            "runtime_key": key,
        },
    }


def routes() -> list[dict[str, Any]]:
    """The switch's routes: those that go through the filter, then the one that does not."""
    writes = asked_while(KEYS["writes"])
    writes["headers"] = [
        {"name": ":method", "string_match": {"safe_regex": {"regex": READS}}, "invert_match": True}
    ]
    token = {"prefix": "/", "query_parameters": [{"name": TOKEN_PARAM, "present_match": True}]}
    asked = [
        {"match": match, "route": TO_APPLICATION}
        for match in (token, asked_while(KEYS["all"]), writes)
    ]
    unasked = {
        "match": {"prefix": "/"},
        "route": TO_APPLICATION,
        "typed_per_filter_config": {
            FILTER: {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute",
                "disabled": True,
            }
        },
    }
    return [*asked, unasked]


def key_file(key: str) -> str:
    """Where the disk layer holds runtime ``key``, under its root."""
    return "envoy/" + key.replace(".", "/")


def switch(directory: Path, asks: str) -> None:
    """Set the runtime keys to ask Bascule about ``asks``: a new directory of them, then
    the ``runtime`` link swapped to it at once (Envoy watches for that)."""
    values = {ALL: (100, 100), WRITES: (0, 100), NONE: (0, 0)}[asks]
    wanted = {key_file(KEYS["all"]): str(values[0]), key_file(KEYS["writes"]): str(values[1])}
    link = directory / RUNTIME
    try:
        if all((link / name).read_text() == value for name, value in wanted.items()):
            return
    except OSError:
        pass  # not written yet
    new = Path(tempfile.mkdtemp(prefix=f"{RUNTIME}.", dir=directory))
    for name, value in wanted.items():
        path = new / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    temporary = directory / f".{RUNTIME}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(new.name)
    old = link.resolve() if link.is_symlink() else None
    os.replace(temporary, link)
    if old is not None and old != new.resolve():
        shutil.rmtree(old, ignore_errors=True)


def bootstrap(recipe: Recipe, directory: Path) -> dict[str, Any]:
    """Envoy's whole configuration: a listener, the Lua filter, two clusters, the switch."""
    timeout_ms = recipe.timeout_ms
    host, port = Recipe.host_port(recipe.bascule)
    lua = LUA % {
        "gate": DECISION_PATH,
        "authority": f"{host}:{port}",
        "timeout_ms": timeout_ms,
        "filter": FILTER,
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bascule",
        "access_log": [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3."
                    "StdoutAccessLog",
                    # Envoy's own format, but the path without its query: a bypass token
                    # in a URL is never written (Bascule takes it out with a 303; the
                    # first request is logged as it came).
                    "log_format": {
                        "text_format_source": {"inline_string": ACCESS_LOG},
                        "formatters": [
                            {
                                "name": "envoy.formatter.req_without_query",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.formatter."
                                    "req_without_query.v3.ReqWithoutQuery"
                                },
                            }
                        ],
                    },
                },
            }
        ],
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "application",
                    "domains": ["*"],
                    "routes": routes(),
                }
            ]
        },
        "http_filters": [
            {
                "name": FILTER,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                    "default_source_code": {"inline_string": lua},
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    return {
        "layered_runtime": {
            "layers": [
                {
                    "name": "switch",
                    "disk_layer": {
                        "symlink_root": str(directory / RUNTIME),
                        "subdirectory": "envoy",
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "bascule",
                    "address": {
                        "socket_address": {
                            "address": recipe.listen_host,
                            "port_value": recipe.listen_port,
                        }
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                cluster("application", recipe.upstream, "5s"),
                # Refused or late, Bascule's connection fails within the recipe's timeout.
                cluster("bascule", recipe.bascule, f"{timeout_ms / 1000}s"),
            ],
        },
    }


def write(recipe: Recipe, directory: Path) -> list[str]:
    """Write envoy.yaml into ``directory``; the command that runs Envoy."""
    config = directory / "envoy.yaml"
    header = "# Written by `bascule proxy-config envoy`: the application behind Envoy.\n"
    config.write_text(
        header + yaml.dump(bootstrap(recipe, directory), Dumper=_Dumper, sort_keys=False)
    )
    # No hot restart: no shared memory, so that Envoys side by side never clash.
    # Its access log written within a second (Envoy's default: ten).
    return [
        program("envoy"),
        "-c",
        str(config),
        "--disable-hot-restart",
        "--log-level",
        "warn",
        "--file-flush-interval-msec",
        "1000",
    ]
