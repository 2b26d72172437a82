"""HAProxy (2.6 or later, built with Lua): a Lua action of our own asks the decision
endpoint about every request with HAProxy's ``core.httpclient()``.

``bascule.lua`` registers the action ``lua.bascule_ask``, which sends the visitor's
path and query (``X-Original-URI``) with their Accept, Cookie, X-Bascule-Bypass and
X-Forwarded-Proto. A 200 lets the request through to the application (the name of a
bypass that let it through lands in ``txn.bascule_bypassed``, sent to the application
and to the visitor as X-Bascule-Bypassed); any other answer of Bascule's is kept in txn
variables and given to the visitor, status, headers and body, by the Lua service
``lua.bascule_answer``. Fail open: when Bascule does not answer within the recipe's
timeout (refused, timed out: HAProxy's own 503 or 504 in the section that forwards
to it), or answers a server error other than its refusal, the request goes through.
"""

from __future__ import annotations

from pathlib import Path

from bascule.proxies import DECISION_PATH, Recipe

CONFIG = """\
# Written by `bascule proxy-config haproxy`: the application behind HAProxy, every
# request asked about to Bascule by bascule.lua.
global
    lua-load "{lua}"
    # The httpclient only speaks plain HTTP to Bascule: no CA bundle to look for.
    httpclient.ssl.verify none
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bascule
    bind {listen}
    # Ask Bascule; its refusal, or its redirection after a bypass token in the URL,
    # is answered by the Lua service and never reaches the application.
    acl answered var(txn.bascule_status) -m found
    acl bypassed var(txn.bascule_bypassed) -m found
    http-request lua.bascule_ask
    http-request use-service lua.bascule_answer if answered
    # The application has no use for the token, and must not be able to log it; it
    # learns that a bypass let the request through from Bascule only, not the visitor.
    http-request del-header X-Bascule-Bypass
    http-request del-header X-Bascule-Bypassed
    http-request set-header X-Bascule-Bypassed %[var(txn.bascule_bypassed)] if bypassed
    http-response set-header X-Bascule-Bypassed %[var(txn.bascule_bypassed)] if bypassed
    default_backend application

# Where bascule.lua's httpclient sends its questions: a proxy of our own, so that
# Bascule's address is resolved like the application's, and so that a Bascule that
# refuses or does not answer gets an error of HAProxy's (503, 504) within the
# recipe's timeout, with no retry (the httpclient of HAProxy 2.6 retries a refused
# connection three times, a second apart).
listen bascule_gate
    bind {gate}
    retries 0
    timeout connect {timeout_ms}ms
    timeout server {timeout_ms}ms
    server bascule {bascule}

backend application
    server application {upstream}
"""

LUA = """\
-- Written by `bascule proxy-config haproxy`: ask Bascule's decision endpoint about
-- every request (action lua.bascule_ask), give the visitor its answer when it is
-- not 200 (service lua.bascule_answer), and let the request through when Bascule
-- does not answer (fail open).
local GATE = {gate}
-- The listen section of haproxy.cfg that forwards to Bascule.
local DST = {dst}
local TIMEOUT_MS = {timeout_ms}
-- The visitor's headers the decision depends on.
local ASKED = {{ "accept", "cookie", "x-bascule-bypass", "x-forwarded-proto" }}
-- Headers of Bascule's answer that describe its connection to HAProxy, not the answer.
local HOP = {{ ["connection"] = true, ["keep-alive"] = true, ["transfer-encoding"] = true,
  ["content-length"] = true }}

-- The values of a header in HAProxy's tables, which are indexed from 0.
local function values(headers, name)
  local found, list, i = headers[name], {{}}, 0
  if found == nil then
    return list
  end
  while found[i] ~= nil do
    list[#list + 1] = found[i]
    i = i + 1
  end
  return list
end

-- Of the visitor's cookies, only the bypass token's (the application's are none of
-- Bascule's business).
local function bypass_cookie(lines)
  for _, line in ipairs(lines) do
    for pair in string.gmatch(line, "[^;]+") do
      local trimmed = string.match(pair, "^%s*(.-)%s*$")
      if string.sub(trimmed, 1, 15) == "bascule-bypass=" then
        return {{ trimmed }}
      end
    end
  end
  return {{}}
end

core.register_action("bascule_ask", {{ "http-req" }}, function(txn)
  local visitor = txn.http:req_get_headers()
  local headers = {{
    ["x-original-uri"] = {{ txn.f:pathq() }},
    ["x-original-method"] = {{ txn.f:method() }},
  }}
  for _, name in ipairs(ASKED) do
    local list = values(visitor, name)
    if name == "cookie" then
      list = bypass_cookie(list)
    end
    if #list > 0 then
      headers[name] = list
    end
  end
  if headers["x-forwarded-proto"] == nil then
    -- A sample fetch's boolean is 0 or 1 in Lua, and 0 is true there.
    headers["x-forwarded-proto"] = {{ txn.f:ssl_fc() == 1 and "https" or "http" }}
  end
  local ok, answer = pcall(function()
    return core.httpclient():get{{ url = GATE, dst = DST, headers = headers, timeout = TIMEOUT_MS }}
  end)
  -- No answer (the call failed, or timed out): the request goes through.
  if not ok or type(answer) ~= "table" or answer.status == nil or answer.status == 0 then
    return
  end
  local answered = answer.headers or {{}}
  if answer.status == 200 then
    local bypassed = values(answered, "x-bascule-bypassed")[1]
    if bypassed ~= nil then
      txn:set_var("txn.bascule_bypassed", bypassed)
    end
    return
  end
  -- A server error other than Bascule's refusal (a 503 with Retry-After) is no
  -- decision: HAProxy's own error when it could not reach Bascule, or Bascule
  -- failing. The request goes through.
  local refusal = answer.status == 503 and #values(answered, "retry-after") > 0
  if answer.status >= 500 and not refusal then
    return
  end
  local lines = {{}}
  for name, _ in pairs(answered) do
    if not HOP[name] then
      for _, value in ipairs(values(answered, name)) do
        lines[#lines + 1] = name .. ":" .. value
      end
    end
  end
  txn:set_var("txn.bascule_headers", table.concat(lines, "\\n"))
  txn:set_var("txn.bascule_body", answer.body or "")
  txn:set_var("txn.bascule_status", answer.status)
end)

core.register_service("bascule_answer", "http", function(applet)
  local body = applet:get_var("txn.bascule_body") or ""
  applet:set_status(tonumber(applet:get_var("txn.bascule_status")))
  for line in string.gmatch(applet:get_var("txn.bascule_headers") or "", "[^\\n]+") do
    local name, value = string.match(line, "^([^:]+):(.*)$")
    if name ~= nil then
      applet:add_header(name, value)
    end
  end
  applet:add_header("content-length", tostring(#body))
  applet:start_response()
  if applet.method ~= "HEAD" then
    applet:send(body)
  end
end)
"""


def lua_string(text: str) -> str:
    """A Lua string literal of ``text``."""
    return (
        '"' + "".join(c if c.isalnum() or c in ":/.-_[]?=&%" else f"\\{ord(c)}" for c in text) + '"'
    )


def address(host: str, port: int) -> str:
    """HOST:PORT as HAProxy reads it (an IPv6 address told apart by its prefix)."""
    return f"ipv6@{host}:{port}" if ":" in host else f"{host}:{port}"


def write(recipe: Recipe, directory: Path) -> list[str]:
    """Write haproxy.cfg and bascule.lua into ``directory``; the command that runs HAProxy."""
    # An abstract socket, named after the port this instance listens on: no file.
    gate = f"abns@bascule-gate-{recipe.listen_port}"
    timeout_ms = recipe.timeout_ms
    lua = directory / "bascule.lua"
    lua.write_text(
        LUA.format(
            gate=lua_string(recipe.bascule + DECISION_PATH),
            dst=lua_string(gate),
            timeout_ms=timeout_ms,
        )
    )
    config = directory / "haproxy.cfg"
    config.write_text(
        CONFIG.format(
            lua=lua,
            listen=address(recipe.listen_host, recipe.listen_port),
            upstream=address(*Recipe.host_port(recipe.upstream)),
            gate=gate,
            timeout_ms=timeout_ms,
            bascule=address(*Recipe.host_port(recipe.bascule)),
        )
    )
    return ["haproxy", "-f", str(config), "-db"]
