"""Every error Bascule answers, turned into the RestResponse envelope in one place."""

from __future__ import annotations

import json
import logging

from connexion import AsyncApp
from connexion.exceptions import ProblemException, UnsupportedMediaTypeProblem
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from sqlalchemy.exc import InterfaceError, InternalError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from bascule import spec
from bascule.answers import (
    DATABASE_UNAVAILABLE,
    NO_SUCH_PATH,
    NOT_ALLOWED,
    SEPARATORS,
    Code,
    encoded,
    error_envelope,
)
from bascule.auth import AuthenticationFailed, SessionEnded
from bascule.bypass import InvalidToken, NoSuchToken, TokenExists
from bascule.db import describe_error
from bascule.model import (
    AlreadyEnabled,
    Forbidden,
    HolderAlive,
    InvalidName,
    InvalidUpdate,
    LeaseLost,
    MaintenanceError,
    NoSuchWindow,
    NotEnabled,
    NothingToRelease,
    NotYours,
    TooManyWindows,
    WindowNotPlanned,
    WindowsOverlap,
)
from bascule.receivers import InvalidWebhook
from bascule.throttle import Throttled
from bascule.validation import NOT_UTF8
from bascule.webhooks import NoSuchWebhook, TooManyWebhooks

log = logging.getLogger(__name__)


DOMAIN_ERRORS: dict[type[MaintenanceError], tuple[int, Code]] = {
    Forbidden: (403, Code.UNAUTHORIZED),
    AlreadyEnabled: (409, Code.ALREADY_EXISTS),
    NotEnabled: (404, Code.NOT_FOUND),
    NotYours: (409, Code.ILLEGAL_STATE),
    InvalidName: (400, Code.BAD_PARAMETER),
    InvalidUpdate: (400, Code.BAD_PARAMETER),
    TokenExists: (409, Code.ALREADY_EXISTS),
    NoSuchToken: (404, Code.NOT_FOUND),
    InvalidToken: (400, Code.BAD_PARAMETER),
    NothingToRelease: (409, Code.ILLEGAL_STATE),
    HolderAlive: (409, Code.ILLEGAL_STATE),
    NoSuchWindow: (404, Code.NOT_FOUND),
    WindowNotPlanned: (409, Code.ILLEGAL_STATE),
    TooManyWindows: (409, Code.ILLEGAL_STATE),
    WindowsOverlap: (409, Code.ILLEGAL_STATE),
    LeaseLost: (409, Code.ILLEGAL_STATE),
    InvalidWebhook: (400, Code.BAD_PARAMETER),
    NoSuchWebhook: (404, Code.NOT_FOUND),
    TooManyWebhooks: (409, Code.ILLEGAL_STATE),
}
# The errors that mean the database cannot be reached (others are bugs: 500).
UNREACHABLE = (OperationalError, InterfaceError, PoolTimeout)
CHALLENGE = 'Basic realm="Bascule"'


# Every JSON answer, the handlers' included: compact, ending with a newline.
JSONIFIER = Jsonifier(json, separators=SEPARATORS)


class Refusal(Exception):
    """Raised by a middleware to refuse a request: answered with the envelope."""

    def __init__(
        self, status: int, code: Code, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> ConnexionResponse:
    """A complete JSON error answer."""
    body = encoded(error_envelope(code, message))
    return ConnexionResponse(
        status_code=status, mimetype="application/json", body=body, headers=headers or {}
    )


def _unauthorized(
    request: ConnexionRequest, code: Code, message: str, *, challenge: bool = True
) -> ConnexionResponse:
    # Browsers' scripts say X-Requested-With: no challenge for them, or the browser
    # would pop up its own login dialog.
    if challenge and "x-requested-with" not in request.headers:
        return error_response(401, code, message, {"WWW-Authenticate": CHALLENGE})
    return error_response(401, code, message)


def _authentication_required(request: ConnexionRequest) -> str:
    return f"Authentication required for this request : {request.url.path}"


async def on_problem(request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    """Connexion's validation and security problems."""
    if exc.status == 401:
        message = _authentication_required(request)
        return _unauthorized(request, Code.AUTHENTICATION_REQUIRED, message)
    if exc.status == 403:
        return error_response(403, Code.UNAUTHORIZED, "Current user has no sufficient rights.")
    if isinstance(exc, UnsupportedMediaTypeProblem) and exc.detail != NOT_UTF8:
        # connexion's own message repeats the Content-Type sent.
        routing = request.scope.get("extensions", {}).get("connexion_routing", {})
        expected = " or ".join(spec.consumes(str(routing.get("operation_id"))))
        return error_response(415, Code.BAD_PARAMETER, f"The body must be {expected}.")
    if 400 <= exc.status < 500:
        detail = str(exc.detail or exc.title or "Bad request.").split("\n", 1)[0]
        return error_response(exc.status, Code.BAD_PARAMETER, detail)
    log.error("%s: %s", exc.title, exc.detail)
    return error_response(500, Code.UNCATEGORIZED, "Internal server error.")


async def on_http(request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
    """Unknown paths and methods."""
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        return error_response(404, Code.NOT_FOUND, NO_SUCH_PATH, headers)
    if exc.status_code == 405:
        # The router only knows the first route it tried; the spec knows them all.
        headers["Allow"] = ", ".join(spec.allowed_methods(request.url.path)) or headers.get(
            "Allow", ""
        )
        return error_response(405, Code.BAD_PARAMETER, NOT_ALLOWED, headers)
    code = Code.UNCATEGORIZED if exc.status_code >= 500 else Code.BAD_PARAMETER
    return error_response(exc.status_code, code, str(exc.detail), headers)


async def on_domain(request: ConnexionRequest, exc: MaintenanceError) -> ConnexionResponse:
    """A transition the state or the caller's rights do not allow."""
    for cls in type(exc).__mro__:
        if cls in DOMAIN_ERRORS:
            status, code = DOMAIN_ERRORS[cls]
            return error_response(status, code, exc.message)
    return await on_unexpected(request, exc)


async def on_authentication_failed(
    request: ConnexionRequest, exc: AuthenticationFailed
) -> ConnexionResponse:
    """Wrong credentials: challenge again only a client that tried HTTP Basic."""
    tried_basic = request.headers.get("authorization", "").lower().startswith("basic")
    return _unauthorized(request, Code.AUTHENTICATION_FAILED, exc.message, challenge=tried_basic)


async def on_throttled(_request: ConnexionRequest, exc: Throttled) -> ConnexionResponse:
    """Too many failed authentications: not even checked (429, code 103)."""
    headers = {"Retry-After": str(exc.retry_after)}
    return error_response(429, Code.TOO_MANY_ATTEMPTS, exc.message, headers)


async def on_session_ended(request: ConnexionRequest, _exc: SessionEnded) -> ConnexionResponse:
    """A session cookie no longer valid, and nothing else: log in again (403, code 100)."""
    return error_response(403, Code.AUTHENTICATION_REQUIRED, _authentication_required(request))


async def on_refusal(_request: ConnexionRequest, exc: Refusal) -> ConnexionResponse:
    """A request one of the middleware refused (middleware.py)."""
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def unavailable(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` says the database cannot serve (down, silent, read-only, full),
    rather than a bug."""
    read_only = isinstance(exc, InternalError) and getattr(exc.orig, "sqlstate", "") == "25006"
    return isinstance(exc, UNREACHABLE) or read_only


async def on_database(request: ConnexionRequest, exc: SQLAlchemyError) -> ConnexionResponse:
    """The database does not answer, or refuses to write: nothing was changed."""
    if not unavailable(exc):
        return await on_unexpected(request, exc)
    log.warning(
        "%s %s: the database is unavailable: %s",
        request.method,
        request.url.path,
        describe_error(exc),
    )
    return error_response(503, Code.DATABASE_UNAVAILABLE, DATABASE_UNAVAILABLE)


async def on_unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Anything else: logged with its traceback, answered without it."""
    log.error("unexpected error", exc_info=exc)
    return error_response(500, Code.UNCATEGORIZED, "Internal server error.")


def install(app: AsyncApp) -> None:
    """Register every error handler on the app (coroutines: connexion runs a plain
    function in a worker thread, which every error answer would wait for)."""
    app.add_error_handler(ProblemException, on_problem)
    app.add_error_handler(HTTPException, on_http)
    app.add_error_handler(MaintenanceError, on_domain)
    app.add_error_handler(AuthenticationFailed, on_authentication_failed)
    app.add_error_handler(SessionEnded, on_session_ended)
    app.add_error_handler(Throttled, on_throttled)
    app.add_error_handler(Refusal, on_refusal)
    app.add_error_handler(SQLAlchemyError, on_database)
    app.add_error_handler(Exception, on_unexpected)
