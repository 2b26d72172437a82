"""Every error answer's bytes, the gate's refusal among them: one envelope, one JSON
encoding (compact, ending with a newline). Standard library only, so that the gate, the
bounded protocol and the decision endpoint load fast; errors.py answers the API's
errors with the same."""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any


class Code(IntEnum):
    """The ``error.code`` values (Alien4Cloud's, plus 503, and 0 for the gate's refusal)."""

    MAINTENANCE = 0
    AUTHENTICATION_REQUIRED = 100
    AUTHENTICATION_FAILED = 101
    UNAUTHORIZED = 102
    TOO_MANY_ATTEMPTS = 103
    UNCATEGORIZED = 500
    BAD_PARAMETER = 501
    ALREADY_EXISTS = 502
    DATABASE_UNAVAILABLE = 503
    NOT_FOUND = 504
    ILLEGAL_STATE = 505


DATABASE_UNAVAILABLE = "The database is unavailable."
CANNOT_READ = "The database does not answer: this process enforces the state it last confirmed."
CANNOT_WRITE = "The database cannot be written: every change is refused."
MAX_BODY = 65536
TOO_LARGE = f"The request body is larger than {MAX_BODY} bytes."
# Neither repeats what was sent: the client knows its own request line.
NO_SUCH_PATH = "No such path."
NOT_ALLOWED = "This method is not allowed here: the Allow header lists those that are."
CROSS_ORIGIN = "Cross-origin request refused: a page of another site may not change anything here."
# The separators every JSON answer of Bascule's is written with (errors.py's Jsonifier too).
SEPARATORS = (",", ":")


def encoded(document: Any) -> bytes:
    """A JSON document as Bascule sends it: compact, ending with a newline."""
    return (json.dumps(document, separators=SEPARATORS) + "\n").encode()


def envelope(data: Any = None) -> dict[str, Any]:
    """The success envelope around ``data``."""
    return {"data": data, "error": None}


def error_envelope(code: int, message: str, data: Any = None) -> dict[str, Any]:
    """The failure envelope."""
    return {"data": data, "error": {"code": int(code), "message": message}}


def error_answer(code: int, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of an error answer in the envelope."""
    body = encoded(error_envelope(code, message))
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))], body


# The gate's refusals (page.Refusals says what stands beside them).
FULL_REFUSAL = "Maintenance mode is enabled."
READ_ONLY_REFUSAL = (
    "Maintenance mode is enabled: the service is read-only, only GET, HEAD and OPTIONS"
    " requests are served."
)
