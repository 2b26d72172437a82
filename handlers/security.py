"""The security functions named in openapi.yaml (``x-basicInfoFunc``, ``x-apikeyInfoFunc``).

Each returns the caller's claims, or raises AuthenticationFailed (wrong
credentials) or SessionEnded (a session cookie no longer valid). Argon2 runs in a
worker thread, and only on a cache miss.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from connexion.security import NO_VALUE
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from bascule.auth import DEVICE_COOKIE, AuthenticationFailed, Principal, SessionEnded
from bascule.model import Actor
from bascule.service import client_address, from_scope


# connexion ranks the failures of a request's security schemes by their status_code
# (403 first, then 401): the domain's errors, with the statuses errors.py answers them with.
class WrongCredentials(AuthenticationFailed):
    status_code = 401


class DeadSession(SessionEnded):
    # 403, not 401: Alien4Cloud's clients log in again when a call answers 403.
    status_code = 403


def claims(principal: Principal, scope: Any) -> dict[str, Any]:
    """What connexion hands to the handlers as ``token_info``: who, and from where."""
    return {"sub": principal.name, "principal": principal, "origin": client_address(scope)}


def acting(token_info: dict[str, Any]) -> Actor:
    """The caller, as the actor of what they ask."""
    principal: Principal = token_info["principal"]
    return principal.actor(token_info.get("origin"))


def _utf8(text: str) -> str:
    # connexion decodes Basic credentials as Latin-1; clients send UTF-8.
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _exactly_base64(request: Request) -> bool:
    # connexion decodes leniently, skipping any character that is not base64.
    _, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        base64.b64decode(token.strip(), validate=True)
    except binascii.Error:
        return False
    return True


async def basic_auth(username: str, password: str, request: Request) -> dict[str, Any]:
    """Check HTTP Basic credentials (sent as exactly base64, nothing else)."""
    if not _exactly_base64(request):
        raise WrongCredentials()
    services = from_scope(request.scope)
    address = client_address(request.scope)
    device = request.cookies.get(DEVICE_COOKIE)  # a client that signed in may send it too
    try:
        principal = await services.authenticate(_utf8(username), _utf8(password), address, device)
    except AuthenticationFailed:
        raise WrongCredentials() from None
    return claims(principal, request.scope)


async def session_auth(api_key: str, request: Request, required_scopes: Any = None) -> Any:
    """Check the session cookie; SessionEnded when it is unknown, revoked or expired.

    A dead cookie beside an Authorization header is left out: those credentials
    decide (wrong ones are a 401 that asks for new ones, not a 403 to log in again).
    """
    principal = await session_principal(request.scope, api_key)
    if principal is None:
        if "authorization" in request.headers:
            return NO_VALUE
        raise DeadSession()
    return claims(principal, request.scope)


async def session_principal(scope: Any, token: str) -> Principal | None:
    """The principal of a live session, from the cache or else the database (which may raise)."""
    auth = from_scope(scope).auth
    principal = auth.cached_session(token)
    if principal is None:
        principal = await run_in_threadpool(auth.check_session, token)
    return principal
