"""Settings, read once from command-line flags and ``BASCULE_*`` environment variables."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "sqlite:///bascule.db"
# The longest a refusal asks clients to wait (Retry-After), whatever the planned end: a
# day; a window ending in years must not tell a crawler to come back in years.
MAX_RETRY_AFTER = 86_400
# The range of each number (a port beyond 65535 must not mean "any port").
LIMITS = [
    ("port", 1, 65535),
    ("workers", 1, 1024),
    ("retry_after", 0, MAX_RETRY_AFTER),
    ("session_ttl", 1, math.inf),
    ("failed_auth_per_address", 1, math.inf),
    ("failed_auth_per_user", 1, math.inf),
    ("failed_auth_window", 1, math.inf),
    ("poll_interval", 0.01, 60),
    ("database_timeout", 0.1, 3600),
    ("header_timeout", 0.1, 3600),
    ("history_days", 0, math.inf),
    ("lease_ttl", 10, 86400),
    ("announce_before", 0, 366 * 86400),
    ("upcoming_notice", 0, 366 * 86400),
]


def _option(env: str, help: str, *, flag: bool = True, **kwargs: Any) -> Any:
    """A settings field with the environment variable that sets it and its help text."""
    return field(metadata={"env": env, "help": help, "flag": flag}, **kwargs)


@dataclass(frozen=True)
class Settings:
    """Everything a Bascule process can be told, with its default."""

    host: str = _option("BASCULE_HOST", "Address to listen on.", default="127.0.0.1")
    port: int = _option("BASCULE_PORT", "Port to listen on.", default=8088)
    database_url: str = _option(
        "BASCULE_DATABASE_URL",
        "SQLAlchemy URL of the database: a SQLite file (the default) or postgresql://...",
        default=DEFAULT_DATABASE_URL,
    )
    app: str | None = _option(
        "BASCULE_APP",
        "An ASGI or WSGI application, as module:attribute, to serve behind the gate.",
        default=None,
    )
    allow: tuple[str, ...] = _option(
        "BASCULE_ALLOW",
        "A path of the application kept open during maintenance, such as its /healthz"
        " (repeat the option for several; the variable takes them comma-separated).",
        default=(),
    )
    allow_prefixes: tuple[str, ...] = _option(
        "BASCULE_ALLOW_PREFIXES",
        "A prefix, ending with '/', under which the application's paths stay open during"
        " maintenance (repeat the option for several; the variable takes them"
        " comma-separated).",
        default=(),
    )
    workers: int = _option("BASCULE_WORKERS", "Number of worker processes.", default=1)
    retry_after: int = _option(
        "BASCULE_RETRY_AFTER",
        "Seconds announced in the Retry-After header of refused requests.",
        default=120,
    )
    page_template: str | None = _option(
        "BASCULE_PAGE_TEMPLATE",
        "An HTML file to show browsers instead of the built-in maintenance page.",
        default=None,
    )
    session_ttl: int = _option(
        "BASCULE_SESSION_TTL", "Lifetime of a login session, in seconds.", default=43200
    )
    failed_auth_per_address: int = _option(
        "BASCULE_FAILED_AUTH_PER_ADDRESS",
        "Failed passwords allowed for one user name from one client address (or from one"
        " browser it signed in with before) per window; past it, that name is answered"
        " 429 there, without a password check, and nowhere else.",
        default=10,
    )
    failed_auth_per_user: int = _option(
        "BASCULE_FAILED_AUTH_PER_USER",
        "Failed passwords allowed per day for one user name from clients it never signed"
        " in with, from all addresses together; past it, only browsers it signed in with"
        " before may try it.",
        default=200,
    )
    failed_auth_window: int = _option(
        "BASCULE_FAILED_AUTH_WINDOW",
        "Seconds over which the failures of a name at one address are counted.",
        default=300,
    )
    trusted_proxies: tuple[str, ...] = _option(
        "BASCULE_TRUSTED_PROXIES",
        "Addresses (or networks, such as 10.0.0.0/8) of the proxies in front whose"
        " X-Forwarded-For and X-Forwarded-Proto are believed: the client's address the"
        " throttle counts, and https for a Secure cookie. None by default: every"
        " address is the connection's own.",
        default=(),
    )
    cookie_secure: bool = _option(
        "BASCULE_COOKIE_SECURE",
        "Mark the session cookie Secure even on requests that came over plain HTTP (it is"
        " marked Secure on every HTTPS request anyway): set it when a proxy in front"
        " terminates HTTPS without saying so.",
        default=False,
    )
    poll_interval: float = _option(
        "BASCULE_POLL_INTERVAL",
        "Seconds between two checks for changes made by other processes.",
        default=0.25,
    )
    database_timeout: float = _option(
        "BASCULE_DATABASE_TIMEOUT",
        "Seconds any database call may take (connecting, waiting for a lock, a query)"
        " before it fails; health answers 503 once the state has not been confirmed"
        " for this long plus one second.",
        default=3.0,
    )
    header_timeout: float = _option(
        "BASCULE_HEADER_TIMEOUT",
        "Seconds a client has to send a request's headers, from its connection or its"
        " previous answer, and then its body (plus one second per KiB), before the"
        " connection is closed.",
        default=10.0,
    )
    history_days: int = _option(
        "BASCULE_HISTORY_DAYS",
        "Days the history keeps a maintenance window once it ended; 0 keeps every one.",
        default=0,
    )
    lease_ttl: int = _option(
        "BASCULE_LEASE_TTL",
        "Seconds a process holding automatic maintenance (bascule run) may stay silent"
        " before an ADMIN may release its maintenance; it renews its lease every third"
        " of that.",
        flag=False,
        default=30,
    )
    announce_before: int = _option(
        "BASCULE_ANNOUNCE_BEFORE",
        "Seconds before a planned window's start from which the public announcement (GET"
        " /rest/v1/maintenance/announcement, and the banner any site can include) shows"
        " it: 48 hours by default.",
        default=172_800,
    )
    upcoming_notice: int = _option(
        "BASCULE_UPCOMING_NOTICE",
        "Seconds before a planned window's start at which webhooks are told it is coming"
        " (the window.upcoming event); 0 tells nothing.",
        default=3600,
    )
    webhook_allow_link_local: bool = _option(
        "BASCULE_WEBHOOK_ALLOW_LINK_LOCAL",
        "Let webhooks reach link-local and cloud-metadata addresses (169.254.0.0/16,"
        " fe80::/10...), refused by default; loopback and private ones are always allowed.",
        default=False,
    )
    alertmanager_url: str | None = _option(
        "BASCULE_ALERTMANAGER_URL",
        "Alertmanager's URL (http://alertmanager:9093, with its route prefix if it has one,"
        " and user:password@ for basic authentication): while maintenance is on, Bascule"
        " keeps a silence there of the alerts --alertmanager-matcher picks.",
        default=None,
        repr=False,  # it may hold a password
    )
    alertmanager_matchers: tuple[str, ...] = _option(
        "BASCULE_ALERTMANAGER_MATCHERS",
        'A matcher of the alerts silenced during maintenance: LABEL="VALUE", LABEL!="VALUE",'
        ' or LABEL=~"REGEX", LABEL!~"REGEX" (repeat the option for several, which an alert'
        " must all match; the variable takes them comma-separated).",
        default=(),
    )
    metrics_public: bool = _option(
        "BASCULE_METRICS_PUBLIC",
        "Serve GET /metrics to anyone; by default it takes the credentials of any user"
        " (Prometheus's basic_auth), since it counts the requests the gate decided on.",
        default=False,
    )
    validate_responses: bool = _option(
        "BASCULE_VALIDATE_RESPONSES",
        "Validate every API response against openapi.yaml (slower; for testing).",
        default=False,
    )
    access_log: bool = _option(
        "BASCULE_ACCESS_LOG", "Write one access-log line per request.", default=True
    )
    admin_password: str | None = _option(
        "BASCULE_ADMIN_PASSWORD",
        "Password of the 'admin' user created on first start when there is no user; "
        "if unset, one is generated and printed once.",
        flag=False,
        default=None,
        repr=False,
    )

    def __post_init__(self) -> None:
        for path in self.allow:
            if not path.startswith("/"):
                raise ValueError(f"--allow takes a path starting with '/', not {path!r}")
        for prefix in self.allow_prefixes:
            if not (prefix.startswith("/") and prefix.endswith("/")):
                raise ValueError(
                    f"--allow-prefix takes a prefix starting and ending with '/', not {prefix!r}"
                )
        for proxy in self.trusted_proxies:
            try:
                if proxy != "*":
                    ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    "--trusted-proxy takes an IP address, a network such as 10.0.0.0/8, or *;"
                    f" not {proxy!r}"
                ) from None
        check_alertmanager(self.alertmanager_url, self.alertmanager_matchers)
        for name, low, high in LIMITS:
            value = getattr(self, name)
            if not low <= value <= high:
                f = next(f for f in dataclasses.fields(self) if f.name == name)
                flag = "--" + name.replace("_", "-")
                bound = f"at least {low}" if high == math.inf else f"from {low} to {high}"
                raise ValueError(f"{flag} ({f.metadata['env']}) must be {bound}, not {value}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``BASCULE_*`` variables; explicit overrides win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = parse_value(f, raw)
        # None, or an empty tuple (a repeatable flag never given), leaves the variable's.
        values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The ``BASCULE_*`` variables that reproduce these settings in another process."""
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                env[f.metadata["env"]] = ",".join(value)
            elif value is not None:
                env[f.metadata["env"]] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        return env


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    """Convert the text of an environment variable to the type of a settings field."""
    kind = field_type(f)
    if kind is tuple:
        return split_items(raw)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{f.metadata['env']} must be true or false, not {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        what = {int: "an integer", float: "a number"}.get(kind, "text")
        raise ValueError(f"{f.metadata['env']} must be {what}, not {raw!r}") from None


def split_items(raw: str) -> tuple[str, ...]:
    """The items of a comma-separated list, blanks left out; a comma between double quotes
    (a matcher's value) is part of its item."""
    items, item, quoted, escaped = [], "", False, False
    for char in raw:
        if char == "," and not quoted:
            items.append(item)
            item = ""
            continue
        item += char
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
    items.append(item)
    return tuple(stripped for each in items if (stripped := each.strip()))


def field_type(f: dataclasses.Field[Any]) -> type:
    """The Python type of a settings field (``str | None`` counts as ``str``)."""
    name = str(f.type).split(" ")[0].split("[")[0]
    return {"int": int, "float": float, "bool": bool, "tuple": tuple}.get(name, str)


def fields() -> tuple[dataclasses.Field[Any], ...]:
    """All settings fields, in declaration order."""
    return dataclasses.fields(Settings)


@dataclass(frozen=True)
class Matcher:
    """A label matcher of an Alertmanager silence, as its API (v2) takes it."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.is_equal,
        }

    def __str__(self) -> str:
        """The matcher as it is written: job="web", env=~"prod|staging"."""
        operator = {(True, False): "=", (False, False): "!=", (True, True): "=~"}.get(
            (self.is_equal, self.is_regex), "!~"
        )
        return f"{self.name}{operator}{json.dumps(self.value, ensure_ascii=False)}"

    def matches_empty(self) -> bool | None:
        """Whether an alert without this label (or with it empty) matches; None when
        Python cannot tell (a regular expression of RE2's that Python's ``re`` reads
        otherwise: Alertmanager will say)."""
        if not self.is_regex:
            return (self.value == "") == self.is_equal
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # RE2 syntax Python warns about
                found = re.fullmatch(f"(?:{self.value})", "") is not None
        except re.error:
            return None
        return found == self.is_equal


# As Alertmanager's own parser reads a matcher: a label name, an operator, and a value,
# double-quoted (with \" \\ and \n escaped) or bare.
_MATCHER = re.compile(
    r'\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^\s",]*))\s*', re.S
)
_ESCAPE = re.compile(r"\\(.)", re.S)
MATCHER_FORM = 'LABEL="VALUE" (or LABEL!="VALUE", LABEL=~"REGEX", LABEL!~"REGEX")'


def parse_matcher(text: str) -> Matcher:
    """A matcher from its text (``job="web"``, ``env=~"prod|staging"``); ValueError when it
    is not one."""
    match = _MATCHER.fullmatch(text)
    if match is None:
        raise ValueError(f"--alertmanager-matcher takes {MATCHER_FORM}, not {text!r}")
    name, operator, quoted, bare = match.groups()
    escapes = {"n": "\n", '"': '"', "\\": "\\"}
    value = bare if quoted is None else _ESCAPE.sub(lambda m: escapes.get(m[1], m[0]), quoted)
    return Matcher(name, value, is_regex="~" in operator, is_equal=operator[0] == "=")


def check_alertmanager(url: str | None, matchers: tuple[str, ...]) -> None:
    """Refuse Alertmanager's settings unless they make a silence that silences something
    (the URL is never repeated: it may hold a password)."""
    parsed = [parse_matcher(text) for text in matchers]
    if url is None:
        if parsed:
            raise ValueError(
                "--alertmanager-matcher needs --alertmanager-url (BASCULE_ALERTMANAGER_URL)"
            )
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when it is not a port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "--alertmanager-url (BASCULE_ALERTMANAGER_URL) must be an http:// or https:// URL,"
            " such as http://alertmanager:9093"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            "--alertmanager-url (BASCULE_ALERTMANAGER_URL) takes no query nor fragment"
        )
    if not parsed:
        raise ValueError(
            "--alertmanager-url needs at least one --alertmanager-matcher"
            " (BASCULE_ALERTMANAGER_MATCHERS): a silence without matchers silences nothing"
        )
    if all(m.matches_empty() is True for m in parsed):
        raise ValueError(
            "--alertmanager-matcher: at least one matcher must need a label that is there and"
            ' not empty (as job="web" does); these would silence every alert'
        )
