"""Request validation whose messages name the field but never echo its value.

connexion's own validators put the offending value in the error message and in
its log, and a value may be a password. These say what is wrong in terms of the
contract (the field and the rule), and log nothing. They are also stricter than
connexion's: a body in any charset but UTF-8 is refused, and a JSON body nested too
deeply or holding a number too long is refused before the parser sees it (Python's
parser would raise RecursionError or ValueError: 500s).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, UnsupportedMediaTypeProblem
from connexion.utils import is_null, is_nullable
from connexion.validators import (
    VALIDATOR_MAP,
    FormDataValidator,
    JSONRequestBodyValidator,
    ParameterValidator,
)
from jsonschema import Draft4Validator, ValidationError
from starlette.formparsers import MultiPartException
from starlette.types import Scope
from werkzeug.http import parse_options_header

RULES = {
    "minimum": "must be at least {0}",
    "maximum": "must be at most {0}",
    "minLength": "must hold at least {0} character(s)",
    "maxLength": "must hold at most {0} characters",
    "type": "must be of type {0}",
    "enum": "must be one of {0}",
}
# Far beyond anything the contract takes (its bodies are flat, its numbers int32).
MAX_DEPTH = 32
MAX_DIGITS = 64
NOT_UTF8 = "The body must be UTF-8: send charset=utf-8, or no charset."

# A JSON string, or the rest of the body after an opening quote that never closes: every
# match ends where the next may start, so removing them is linear whatever the body.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.S)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENING = frozenset(b"[{")
_LONG_NUMBER = re.compile(rb"[0-9]{%d}" % (MAX_DIGITS + 1))


def describe(error: ValidationError, field: str | None = None) -> str:
    """What is wrong, from the schema's point of view: field and rule, not the value."""
    field = ".".join(str(part) for part in error.absolute_path) or field or "the body"
    rule = error.validator
    if rule == "required":
        return str(error.message)  # "'password' is a required property": names only
    if rule == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unknown = sorted(str(key)[:40] for key in error.instance if key not in known)
        return f"unknown field(s) in {field}: {', '.join(repr(k) for k in unknown[:5])}"
    if rule == "pattern":
        rule_text = " ".join(str(error.schema.get("description", "see the spec")).split())
        return f"{field} is not valid: {rule_text}"
    if rule in RULES:
        value = error.validator_value
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        return f"{field} {RULES[str(rule)].format(value)}"
    return f"{field} is not valid ({rule})"


def check(validator: Any, body: Any) -> None:
    """Validate ``body``; on failure, a 400 that describes the rule broken."""
    try:
        validator.validate(body)
    except ValidationError as exc:
        raise BadRequestProblem(detail=describe(exc)) from None


def require_utf8(scope: Scope) -> None:
    """Refuse (415) a body whose Content-Type names a charset other than UTF-8."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            _, options = parse_options_header(value.decode("latin-1"))
            charset = options.get("charset")
            if charset is not None and charset.strip().lower() not in ("utf-8", "utf8"):
                raise UnsupportedMediaTypeProblem(detail=NOT_UTF8)
            return


def check_json_shape(body: bytes) -> None:
    """Refuse (400) JSON nested deeper than MAX_DEPTH or with a number of more than
    MAX_DIGITS digits, in time linear in the body, before any parser sees it."""
    skeleton = _STRING.sub(b'""', body)
    depth = 0
    for char in skeleton.translate(None, _NOT_BRACKETS):
        depth += 1 if char in _OPENING else -1
        if depth > MAX_DEPTH:
            raise BadRequestProblem(
                detail=f"The request body is nested deeper than {MAX_DEPTH} levels."
            )
    if _LONG_NUMBER.search(skeleton):
        raise BadRequestProblem(
            detail=f"The request body holds a number of more than {MAX_DIGITS} digits."
        )


class JSONBodyValidator(JSONRequestBodyValidator):  # type: ignore[misc]
    """JSON bodies: UTF-8 only, bounded in depth and number size, value-free messages."""

    async def _parse(self, stream: Any, scope: Any) -> Any:
        require_utf8(scope)
        chunks = [chunk async for chunk in stream]
        check_json_shape(b"".join(chunks))
        self._absent = not any(chunks)  # no body at all, which is not a JSON null

        async def again() -> Any:
            for chunk in chunks:
                yield chunk

        try:
            return await super()._parse(again(), scope)
        except UnicodeDecodeError:
            raise BadRequestProblem(detail="The request body is not valid UTF-8.") from None
        except BadRequestProblem as exc:
            raise BadRequestProblem(
                detail=f"The request body is not valid JSON: {exc.detail}"
            ) from None

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if body is None and not self._required and getattr(self, "_absent", False):
            return None  # an optional body left out (POST /maintenance, as Alien4Cloud's)
        if not self._nullable and body is None:
            raise BadRequestProblem(detail="The request body must not be empty.")
        check(self._validator, body)
        return None


class FormValidator(FormDataValidator):  # type: ignore[misc]
    """Form bodies (the login form): UTF-8 only, value-free messages."""

    async def _parse(self, stream: Any, scope: Any) -> Any:
        require_utf8(scope)
        try:
            return await super()._parse(stream, scope)
        except MultiPartException as exc:
            raise BadRequestProblem(detail=f"The form cannot be read: {exc.message}") from None

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not isinstance(body, dict):
            raise BadRequestProblem(detail="The form cannot be read.")
        check(self._validator, body)
        return None


class ParametersValidator(ParameterValidator):  # type: ignore[misc]
    """Query parameters, with messages that name the parameter and the rule, not the value."""

    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> str | None:
        if is_nullable(param) and is_null(value):
            return None
        if value is None:
            required = param.get("required", False)
            return f"Missing {parameter_type} parameter '{param['name']}'" if required else None
        schema = copy.deepcopy(param.get("schema", param))
        try:
            Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER).validate(value)
        except ValidationError as exc:
            return describe(exc, field=param["name"])
        return None


BODY_VALIDATORS = MediaTypeDict(
    {
        **VALIDATOR_MAP["body"],
        "*/*json": JSONBodyValidator,
        "application/x-www-form-urlencoded": FormValidator,
    }
)
VALIDATORS = {"body": BODY_VALIDATORS, "parameter": ParametersValidator}
