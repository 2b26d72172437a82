"""Where a webhook may go, and how one delivery is sent: the receiver's address checked
(no link-local or cloud-metadata address, unless allowed; an IPv6 address that carries
an IPv4 one judged by it), that address and no other connected to, the body signed as
Standard Webhooks says, and one deadline for the whole delivery."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import ipaddress
import json
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from bascule import events
from bascule.eventqueries import Claimed
from bascule.model import MaintenanceError

TIMEOUT = 10.0  # seconds a receiver has to answer, the whole delivery
MAX_URL = 2048
USER_AGENT = "Bascule-Webhooks/1"
# Addresses of cloud providers' metadata services outside the link-local ranges.
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)


class InvalidWebhook(MaintenanceError):
    """A URL or a list of event types out of the rules (the message says which)."""


class Refused(Exception):
    """A receiver's address that webhooks may not reach."""


# -- where a webhook may go ------------------------------------------------------------------


# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64's, and IPv4-
# compatible addresses): a gateway may take them there.
EMBEDDING = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::/96"),
)


def refusal(address: str, allow_link_local: bool) -> str | None:
    """Why webhooks may not reach the IP ``address``, or None when they may (an IPv6
    address that carries an IPv4 one, mapped, NAT64, 6to4, Teredo, is judged by it)."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        embeds = any(ip in net for net in EMBEDDING) and not (ip.is_loopback or ip.is_unspecified)
        if carried is None and embeds:
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        ip = carried or ip
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        return "not the address of a receiver"
    if not allow_link_local and (ip.is_link_local or ip in METADATA):
        return (
            "a link-local or cloud-metadata address (BASCULE_WEBHOOK_ALLOW_LINK_LOCAL allows them)"
        )
    return None


def vetted_address(host: str, port: int, allow_link_local: bool) -> str:
    """The address to send to: ``host`` resolved, every address it has checked (a name
    with one forbidden address is refused whole). Refused says why not."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"{host} does not resolve") from None
    addresses = [str(info[4][0]) for info in found]
    for address in addresses:
        why = refusal(address, allow_link_local)
        if why is not None:
            said = host.strip("[]")
            raise Refused(f"{said} is {why}" if said == address else f"{said} is {address}, {why}")
    return addresses[0]


def check_url(url: str, allow_link_local: bool) -> str:
    """``url`` if webhooks may deliver to it; InvalidWebhook says why not."""
    if not 0 < len(url) <= MAX_URL or not url.isascii() or any(not "!" <= c <= "~" for c in url):
        raise InvalidWebhook(
            f"url must be an http or https URL of at most {MAX_URL} ASCII characters, without"
            " spaces or control characters (a name in another script as its xn-- form, and"
            " the rest %-encoded)."
        )
    try:
        parts = urlsplit(url)
        port, hostname = parts.port, parts.hostname
    except ValueError:
        raise InvalidWebhook("url is not a valid URL (its host or its port).") from None
    if port == 0:
        raise InvalidWebhook("url has an invalid port.")
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidWebhook("url must be an http or https URL, with a host.")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook(
            "url must not hold credentials: receivers check the signature instead."
        )
    if parts.fragment:
        raise InvalidWebhook("url must not have a fragment.")
    try:
        vetted_address(hostname, port or _default_port(parts.scheme), allow_link_local)
    except Refused as exc:
        raise InvalidWebhook(f"url refused: {exc}.") from None
    return url


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def where(url: str) -> str:
    """The receiver of a URL, as the audit trail and the logs say it: its scheme, host and
    port, never its path or query (a chat server's URL is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def signed(claimed: Claimed, at: float) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery sent at ``at`` (epoch seconds)."""
    event = claimed.event
    body = json.dumps(events.payload(event), separators=(",", ":"), ensure_ascii=False)
    moment = datetime.datetime.fromtimestamp(int(at), datetime.UTC)
    headers = {
        "webhook-id": event.uid,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Webhook(claimed.webhook.secret).sign(event.uid, moment, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    return body.encode(), headers


def send(url: str, body: bytes, headers: dict[str, str], allow_link_local: bool) -> str:
    """POST ``body`` to ``url``; what the receiver answered ("HTTP 204"). Refused when its
    address may not be reached, OSError when it cannot be."""
    parts = urlsplit(url)
    assert parts.hostname is not None  # checked when added
    port = parts.port or _default_port(parts.scheme)
    address = vetted_address(parts.hostname, port, allow_link_local)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        connection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=TIMEOUT, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=TIMEOUT)

    # One deadline for the whole delivery, however slowly a receiver trickles its answer:
    # past it, the socket is shut, which ends whatever read or write waits on it.
    deadline = threading.Event()
    opened: list[socket.socket] = []

    def cut() -> None:
        deadline.set()
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def to_vetted(_where: Any, timeout: Any = TIMEOUT, source: Any = None) -> socket.socket:
        # The address checked above, not a second lookup that could answer another.
        opened.append(socket.create_connection((address, port), timeout, source))
        return opened[-1]

    connection._create_connection = to_vetted  # type: ignore[attr-defined]
    timer = threading.Timer(TIMEOUT, cut)
    timer.daemon = True
    timer.start()
    try:
        path = parts.path or "/"
        connection.request("POST", f"{path}?{parts.query}" if parts.query else path, body, headers)
        with connection.getresponse() as answer:  # its socket closed with it
            answer.read(65536)
        if deadline.is_set():
            raise TimeoutError
        return f"HTTP {answer.status}"
    except (OSError, http.client.HTTPException):
        if deadline.is_set():
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()
        connection.close()


def failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {TIMEOUT:g} s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or type(exc).__name__}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (
        f"{type(exc).__name__}: {exc.strerror or exc}"
        if isinstance(exc, OSError)
        else type(exc).__name__
    )
