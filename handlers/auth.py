"""Login, logout, and who the caller is."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from bascule.auth import Principal
from bascule.errors import envelope
from bascule.service import current
from bascule.spec import SESSION_COOKIE

Answer = tuple[dict[str, Any], int, dict[str, str]]


def user_status(principal: Principal | None) -> dict[str, Any]:
    """Alien4Cloud's UserStatus."""
    return {
        "isLogged": principal is not None,
        "username": principal.name if principal else None,
        "githubUsername": None,
        "roles": sorted(principal.roles) if principal else [],
        "groups": [],
        "authSystem": "bascule",
    }


def session_cookie(value: str, max_age: int) -> str:
    """The Set-Cookie value for the session cookie (an empty value with max_age 0 clears it)."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[SESSION_COOKIE] = value
    morsel = cookie[SESSION_COOKIE]
    morsel["path"] = "/"
    morsel["max-age"] = max_age
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    morsel["secure"] = current().settings.cookie_secure
    return morsel.OutputString()


async def login(body: dict[str, Any]) -> Answer:
    """POST /login: check the form's credentials and open a session."""
    services = current()
    session = await services.hashing(services.auth.login, body["username"], body["password"])
    cookie = session_cookie(session.token, services.settings.session_ttl)
    return envelope(user_status(session.principal)), 200, {"Set-Cookie": cookie}


def logout(token_info: dict[str, Any] | None = None) -> Answer:
    """POST /logout: revoke the session, if any, and clear the cookie."""
    session = (token_info or {}).get("session")
    if session:
        current().auth.logout(session)
    return envelope(), 200, {"Set-Cookie": session_cookie("", 0)}


async def get_auth_status(token_info: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
    """GET /auth/status."""
    return envelope(user_status((token_info or {}).get("principal"))), 200
