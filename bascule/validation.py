"""Request body validation whose messages name the field but never echo its value.

connexion's own validators put the offending value in the error message and in
its log, and a value may be a password. These say what is wrong in terms of the
contract (the field and the rule), and log nothing.
"""

from __future__ import annotations

from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, UnsupportedMediaTypeProblem
from connexion.validators import VALIDATOR_MAP, FormDataValidator, JSONRequestBodyValidator
from jsonschema import ValidationError
from starlette.formparsers import MultiPartException

RULES = {
    "minimum": "must be at least {0}",
    "maximum": "must be at most {0}",
    "minLength": "must hold at least {0} character(s)",
    "maxLength": "must hold at most {0} characters",
    "type": "must be of type {0}",
    "enum": "must be one of {0}",
}


def describe(error: ValidationError) -> str:
    """What is wrong, from the schema's point of view: field and rule, not the value."""
    field = ".".join(str(part) for part in error.absolute_path) or "the body"
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


class JSONBodyValidator(JSONRequestBodyValidator):  # type: ignore[misc]
    """JSON bodies, with value-free messages."""

    async def _parse(self, stream: Any, scope: Any) -> Any:
        try:
            return await super()._parse(stream, scope)
        except UnicodeDecodeError:
            raise BadRequestProblem(detail="The request body is not valid UTF-8.") from None
        except LookupError as exc:  # a charset Python does not know, in the Content-Type
            if isinstance(exc, KeyError | IndexError):
                raise
            raise UnsupportedMediaTypeProblem(
                detail="The charset of the Content-Type is unknown: send UTF-8."
            ) from None
        except BadRequestProblem as exc:
            raise BadRequestProblem(
                detail=f"The request body is not valid JSON: {exc.detail}"
            ) from None

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not self._nullable and body is None:
            raise BadRequestProblem(detail="The request body must not be empty.")
        check(self._validator, body)
        return None


class FormValidator(FormDataValidator):  # type: ignore[misc]
    """Form bodies (the login form), with value-free messages."""

    async def _parse(self, stream: Any, scope: Any) -> Any:
        try:
            return await super()._parse(stream, scope)
        except MultiPartException as exc:
            raise BadRequestProblem(detail=f"The form cannot be read: {exc.message}") from None

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not isinstance(body, dict):
            raise BadRequestProblem(detail="The form cannot be read.")
        check(self._validator, body)
        return None


BODY_VALIDATORS = MediaTypeDict(
    {
        **VALIDATOR_MAP["body"],
        "*/*json": JSONBodyValidator,
        "application/x-www-form-urlencoded": FormValidator,
    }
)
