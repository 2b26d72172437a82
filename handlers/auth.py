"""Login, logout, and who the caller is."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

import anyio.to_thread
from connexion import context
from starlette.responses import Response

from bascule.answers import encoded, envelope
from bascule.auth import DEVICE_COOKIE, DEVICE_TTL, Principal
from bascule.records import token_hash
from bascule.service import client_address, current
from bascule.spec import SESSION_COOKIE
from handlers.security import session_principal

Answer = tuple[dict[str, Any], int, dict[str, str]]


def _user_status(principal: Principal | None) -> dict[str, Any]:
    """Alien4Cloud's UserStatus."""
    return {
        "isLogged": principal is not None,
        "username": principal.name if principal else None,
        "githubUsername": None,
        "roles": sorted(principal.roles) if principal else [],
        "groups": [],
        "authSystem": "bascule",
    }


def _session_cookie(value: str, max_age: int, name: str = SESSION_COOKIE) -> str:
    """The Set-Cookie value for the session cookie (an empty value with max_age 0 clears
    it), or for another of Bascule's own cookies (``name``)."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["path"] = "/"
    morsel["max-age"] = max_age
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    # Secure whenever the client came over HTTPS (as the server sees it, or as a proxy
    # trusted by uvicorn's --forwarded-allow-ips says), or when the settings ask.
    morsel["secure"] = current().settings.cookie_secure or context.scope.get("scheme") == "https"
    return morsel.OutputString()


async def login(body: dict[str, Any]) -> Response:
    """POST /login: check the form's credentials and open a session; the browser is
    trusted by the throttle for this user from now on (its device cookie)."""
    services = current()
    address = client_address(context.scope)
    device = context.request.cookies.get(DEVICE_COOKIE)
    name, password = body["username"], body["password"]
    principal = await services.authenticate(name, password, address, device)
    session = await anyio.to_thread.run_sync(services.auth.open_session, principal)
    device = await anyio.to_thread.run_sync(services.auth.trust_device, principal.name, device)
    answer = Response(encoded(envelope(_user_status(session.principal))), 200)
    answer.headers["content-type"] = "application/json"
    # Two cookies: a header each (an answer's headers as a dict would hold one).
    answer.headers.append(
        "set-cookie", _session_cookie(session.token, services.settings.session_ttl)
    )
    answer.headers.append("set-cookie", _session_cookie(device, DEVICE_TTL, DEVICE_COOKIE))
    return answer


def logout() -> Answer:
    """POST /logout: revoke the session cookie sent, if any, and clear it.

    Revoked by its hash whether or not it is still valid, so that a database that
    does not answer is a 503, not a logout that revoked nothing.
    """
    token = context.request.cookies.get(SESSION_COOKIE)
    if token:
        current().auth.logout(token_hash(token), client_address(context.scope))
    return envelope(), 200, {"Set-Cookie": _session_cookie("", 0)}


async def get_auth_status(token_info: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
    """GET /auth/status."""
    principal = (token_info or {}).get("principal")
    token = context.request.cookies.get(SESSION_COOKIE)
    if principal is None and token:
        # Anonymous although a cookie came: ask again, so that a database that does
        # not answer is a 503 rather than "not logged in".
        principal = await session_principal(context.scope, token)
    return envelope(_user_status(principal)), 200
