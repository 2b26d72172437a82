"""HAProxy (2.6 or later, built with Lua): a Lua action of our own asks the decision
endpoint about the requests the switch names, on a socket of its own (``core.tcp()``).

The switch is a map file, ``switch.map`` (``asks none|writes|all``), read at start,
and changed at run time by ``set map`` on the stats socket ``haproxy.sock``, a unix
socket in the recipe's directory that only its owner may open (whoever opens it
controls HAProxy). Maintenance off, requests go straight to the application, but for
one whose query holds a bypass token (Bascule takes it out of the URL); read-only,
HAProxy asks about any method but GET, HEAD and OPTIONS; on, about every request.

``bascule.lua`` registers the action ``lua.bascule_ask``, which sends the visitor's
path and query (``X-Original-URI``) and method with their Accept, bypass cookie,
X-Bascule-Bypass and X-Forwarded-Proto, through a TCP ``listen`` section (where
Bascule's address is resolved). A 200 lets the request through to the application (the name of a
bypass that let it through lands in ``txn.bascule_bypassed``, sent to the application
and to the visitor as X-Bascule-Bypassed); any other answer of Bascule's is kept in txn
variables and given to the visitor, status, headers and body, by the Lua service
``lua.bascule_answer``, whatever it is (a question Bascule cannot read is refused, as
any). Fail open: when Bascule does not answer within the recipe's timeout (refused,
cut, silent), the request goes through.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

from bascule.proxies import ASKS, DECISION_PATH, TOKEN_PARAM, Recipe, replace_file, url_address

SOCKET = "haproxy.sock"
SWITCH = "switch.map"

CONFIG = """\
# Written by `bascule proxy-config haproxy`: the application behind HAProxy, every
# request asked about to Bascule by bascule.lua.
global
    lua-load "{lua}"
    # The switch's runtime channel: a socket only its owner (the follower's user) opens.
    stats socket {socket} mode 600 level admin
    # The httpclient only speaks plain HTTP to Bascule: no CA bundle to look for.
    httpclient.ssl.verify none
    log stdout format raw local0 info

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bascule
    bind {listen}
    # HAProxy's httplog, but for a bypass token in the URL (Bascule takes it out with a
    # 303; the first request is logged as it came): masked, with what follows it.
    log-format "{log_format}"
    # Ask Bascule; its refusal, or its redirection after a bypass token in the URL,
    # is answered by the Lua service and never reaches the application.
    acl answered var(txn.bascule_status) -m found
    acl bypassed var(txn.bascule_bypassed) -m found
    # The switch (asking about every request when the map says nothing else).
    http-request set-var(txn.bascule_asks) str(asks),map({switch},all)
    acl asks_all var(txn.bascule_asks) -m str all
    acl asks_writes var(txn.bascule_asks) -m str writes
    acl reads method GET HEAD OPTIONS
    acl url_token query -m reg (^|&){token}=
    http-request lua.bascule_ask if asks_all || asks_writes !reads || url_token
    http-request use-service lua.bascule_answer if answered
    # The application has no use for the token, and must not be able to log it; it
    # learns that a bypass let the request through from Bascule only, not the visitor.
    http-request del-header X-Bascule-Bypass
    http-request del-header X-Bascule-Bypassed
    http-request set-header X-Bascule-Bypassed %[var(txn.bascule_bypassed)] if bypassed
    http-response set-header X-Bascule-Bypassed %[var(txn.bascule_bypassed)] if bypassed
    default_backend application

# Where bascule.lua sends its questions: a TCP proxy of our own, so that Bascule's address
# is resolved like the application's; the Lua action bounds the wait itself, and a
# Bascule that refuses, or does not answer in time, is no answer (HAProxy's httpclient
# was not used: it tries again on a timeout, thrice, and a 1 s timeout took 4 s).
listen bascule_gate
    mode tcp
    bind {gate}
    option tcplog
    retries 0
    timeout connect {timeout_ms}ms
    timeout server {timeout_ms}ms
    timeout client {timeout_ms}ms
    server bascule {bascule}

backend application
    server application {upstream}
"""

LUA = """\
-- Written by `bascule proxy-config haproxy`: ask Bascule's decision endpoint about
-- every request (action lua.bascule_ask), give the visitor its answer when it is
-- not 200 (service lua.bascule_answer), and let the request through when Bascule
-- does not answer (fail open).
local PATH = {path}
local AUTHORITY = {authority}
-- The listen section of haproxy.cfg that forwards to Bascule.
local DST = {dst}
local TIMEOUT_S = {timeout_s}
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

-- Ask Bascule: a GET of PATH with ``headers`` (name: list of values), over a connection
-- of its own, each step bounded by TIMEOUT_S. Its answer (status, headers by lower-case
-- name, body), or nil when it does not answer in time or at all.
local function ask(headers)
  local socket = core.tcp()
  socket:settimeout(TIMEOUT_S)
  if not socket:connect(DST) then
    return nil
  end
  local lines = {{ "GET " .. PATH .. " HTTP/1.1", "Host: " .. AUTHORITY, "Connection: close" }}
  for name, list in pairs(headers) do
    for _, value in ipairs(list) do
      lines[#lines + 1] = name .. ": " .. value
    end
  end
  socket:send(table.concat(lines, "\\r\\n") .. "\\r\\n\\r\\n")
  local status = tonumber(string.match(socket:receive("*l") or "", "^HTTP/1%.%d (%d%d%d)"))
  local answer = {{ status = status, headers = {{}}, body = "" }}
  while status ~= nil do
    local line = socket:receive("*l")
    if line == nil then
      status = nil
    elseif line == "" then
      break
    else
      local name, value = string.match(line, "^([^:]+):%s*(.-)%s*$")
      if name ~= nil then
        name = string.lower(name)
        answer.headers[name] = answer.headers[name] or {{}}
        table.insert(answer.headers[name], value)
      end
    end
  end
  local length = tonumber((answer.headers["content-length"] or {{}})[1] or "0") or 0
  if status ~= nil and length > 0 then
    answer.body = socket:receive(length)
    status = answer.body and status
  end
  socket:close()
  return status and answer
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
  local ok, answer = pcall(ask, headers)
  -- No answer (refused, cut, or not in time): the request goes through.
  if not ok or answer == nil then
    return
  end
  local answered = answer.headers
  if answer.status == 200 then
    local bypassed = (answered["x-bascule-bypassed"] or {{}})[1]
    if bypassed ~= nil then
      txn:set_var("txn.bascule_bypassed", bypassed)
    end
    return
  end
  -- Any other answer of Bascule's is the visitor's: its refusal, its 303, and what it
  -- answers a question it cannot read (a refusal too, never a pass).
  local lines = {{}}
  for name, _ in pairs(answered) do
    if not HOP[name] then
      for _, value in ipairs(answered[name]) do
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


# HAProxy's httplog format, the request line's URI masked from a bypass token on.
LOG_FORMAT = (
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc"
    ' %sq/%bq %hr %hs \\"%HM %[capture.req.uri,regsub(bascule-bypass=.*,bascule-bypass=*)]'
    ' %HV\\"'
)


def write(recipe: Recipe, directory: Path) -> list[str]:
    """Write haproxy.cfg and bascule.lua into ``directory``; the command that runs HAProxy."""
    if len(str(directory / SOCKET).encode()) > 100:  # a unix socket's path: 107 bytes
        raise ValueError(
            f"HAProxy's switch socket, {directory / SOCKET}, needs a path of 100 bytes at"
            " most: write the recipe in a directory with a shorter path"
        )
    # An abstract socket, named after this recipe's directory: no file, and no clash with
    # another recipe's HAProxy (on the same port of another address, say).
    gate = f"abns@bascule-gate-{hashlib.sha256(bytes(directory)).hexdigest()[:16]}"
    timeout_ms = recipe.timeout_ms
    lua = directory / "bascule.lua"
    lua.write_text(
        LUA.format(
            path=lua_string(DECISION_PATH),
            authority=lua_string(url_address(recipe.bascule)),
            dst=lua_string(gate),
            timeout_s=recipe.timeout_ms / 1000,
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
            log_format=LOG_FORMAT,
            socket=directory / SOCKET,
            switch=directory / SWITCH,
            token=TOKEN_PARAM,
            bascule=address(*Recipe.host_port(recipe.bascule)),
        )
    )
    return ["haproxy", "-f", str(config), "-db"]


def switch(directory: Path, asks: str) -> None:
    """Set the switch to ask Bascule about ``asks``: in the map file, which HAProxy reads
    when it starts, and in a running HAProxy (``set map``), which forgets nothing of it
    but on a restart (the file has it then)."""
    if asks not in ASKS:
        raise ValueError(f"asks is one of {ASKS}, not {asks!r}")
    replace_file(directory / SWITCH, f"asks {asks}\n")
    path = directory / SOCKET
    if not path.exists():
        return  # HAProxy is not running: it reads the file when it starts
    try:
        with socket.socket(socket.AF_UNIX) as channel:
            channel.settimeout(1.0)
            channel.connect(str(path))
            channel.sendall(f"set map {directory / SWITCH} asks {asks}\n".encode())
            channel.shutdown(socket.SHUT_WR)
            answer = channel.recv(4096).decode(errors="replace").strip()
    except OSError:
        return  # not listening (stopped, restarting): the file holds the switch
    if answer:
        raise OSError(f"HAProxy refused the switch: {answer}")
