"""Alertmanager silenced while maintenance is on.

While maintenance is on, Bascule keeps one silence in Alertmanager of the alerts that
BASCULE_ALERTMANAGER_MATCHERS picks, its comment the maintenance's latest message. It
ends at the planned end plus MARGIN when the window has one, or else LEASE after it was
last pushed forward, which happens every few minutes while maintenance lasts; it is
expired within seconds of maintenance ending. Every instance runs a Silencer: the
database keeps the silence's id (silences.py), and a claim on it lets one instance at
a time call Alertmanager, so that there is one silence whatever the number of instances.

The calls run on the Silencer's own thread, each bounded by CALL_TIMEOUT (the monitor's
thread only wakes it). A failed call is tried again RETRY later, by whichever instance
comes first; health reports it, and the log says once that calls fail and once that
they work again. Neither logs nor errors show the URL's credentials.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.client
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sqlalchemy.exc import SQLAlchemyError

from bascule.config import Matcher
from bascule.db import note_failure
from bascule.model import EPOCH, MaintenanceState, printable, rfc3339
from bascule.records import SilenceRecord

if TYPE_CHECKING:
    from bascule.monitor import Monitor
    from bascule.store import Store

log = logging.getLogger(__name__)

CREATED_BY = "Bascule"
DEFAULT_COMMENT = "Maintenance is on."
CALL_TIMEOUT = 2.0  # seconds, each call
# Milliseconds: how long a claim lasts (more than the three calls a step makes at most);
# how long after a failed call any instance tries again; how long after a planned end
# the silence ends; how long one without a planned end lasts from its last push, and
# how long before its end it is pushed forward.
CLAIM = 20_000
RETRY = 2_000
MARGIN = 120_000
LEASE = 15 * 60_000
RENEW_BEFORE = 10 * 60_000
# Seconds: how often the Silencer's thread looks whether the silence needs anything (from
# what it last read), and how often it reads the database's row again in any case.
CHECK_INTERVAL = 1.0
REREAD_INTERVAL = 5.0
MAX_ANSWER = 65_536


class AlertmanagerError(Exception):
    """A call to Alertmanager failed; the message says why, without the URL."""


class SilenceGone(AlertmanagerError):
    """Alertmanager knows no silence of that id (it lost its data, or it is another one)."""


class Alertmanager:
    """Alertmanager's API (v2), as far as silences go; no call takes over ``timeout``."""

    def __init__(self, url: str, timeout: float = CALL_TIMEOUT) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += "" if parts.port is None else f":{parts.port}"
        # Where it is, as logs may say: without the credentials.
        self.where = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    def set_silence(self, silence: dict[str, Any]) -> str:
        """Create a silence, or update the one of ``silence["id"]``: its id (another one
        when Alertmanager replaced it)."""
        answer = self._call("POST", "/api/v2/silences", silence)
        try:
            return str(json.loads(answer)["silenceID"])
        except (ValueError, KeyError, TypeError):
            raise AlertmanagerError("Alertmanager's answer has no silence id") from None

    def silence_start(self, silence_id: str) -> int:
        """When a silence starts, as Alertmanager holds it (epoch milliseconds)."""
        answer = self._call("GET", f"/api/v2/silence/{quote(silence_id, safe='')}")
        try:
            moment = datetime.datetime.fromisoformat(json.loads(answer)["startsAt"])
            return (moment - EPOCH) // datetime.timedelta(milliseconds=1)
        except (ValueError, KeyError, TypeError):
            raise AlertmanagerError("Alertmanager's answer has no start") from None

    def expire_silence(self, silence_id: str) -> None:
        """Expire a silence (one Alertmanager does not know is as good as expired)."""
        with contextlib.suppress(SilenceGone):
            self._call("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        # The scheme is http or https: the settings refuse any other (S310).
        url = self.where + path
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                return bytes(answer.read(MAX_ANSWER))
        except urllib.error.HTTPError as exc:
            with exc:  # its connection, closed
                detail = _detail(exc.read(1000))
            # Alertmanager 0.25 answers the DELETE of an unknown id 500 "silence not found".
            if exc.code == 404 or (exc.code == 500 and "not found" in detail):
                raise SilenceGone(f"Alertmanager answered {exc.code}: {detail}") from None
            raise AlertmanagerError(f"Alertmanager answered {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._silent() from None
            reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
            raise AlertmanagerError(f"cannot reach Alertmanager: {reason}") from None
        except TimeoutError:
            raise self._silent() from None
        except (OSError, http.client.HTTPException) as exc:
            raise AlertmanagerError(f"the call to Alertmanager failed: {exc!r}"[:200]) from None

    def _silent(self) -> AlertmanagerError:
        return AlertmanagerError(f"Alertmanager did not answer within {self.timeout:g} s")


def _detail(body: bytes) -> str:
    """The gist of an error's answer (Alertmanager's is a JSON string), in one short line."""
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        decoded = json.loads(text)
        text = decoded if isinstance(decoded, str) else text
    lines = printable(text).strip().splitlines()
    return lines[0][:200] if lines else "(no reason given)"


@dataclass(frozen=True)
class Wanted:
    """The silence that maintenance wants: for which window, with what comment (and the
    digest of what is sent), until its planned end (None: pushed forward while it lasts)."""

    window_id: int
    comment: str
    planned_end: int | None
    digest: str


def wanted(state: MaintenanceState | None, matchers: Sequence[Matcher]) -> Wanted | None:
    """The silence ``state`` wants, if any."""
    if state is None:
        return None
    comment = state.latest_message() or DEFAULT_COMMENT
    sent = json.dumps([[m.as_json() for m in matchers], comment], sort_keys=True)
    digest = hashlib.sha256(sent.encode()).hexdigest()
    return Wanted(state.window_id, comment, state.planned_end, digest)


@dataclass(frozen=True)
class Step:
    """What the silence needs: to be sent, with that end; expired; or, nothing being
    kept nor needed, its last failure forgotten."""

    kind: str  # send, expire, forget
    ends_at: int = 0


def next_step(record: SilenceRecord, want: Wanted | None, now: int) -> Step | None:
    """What the silence stored as ``record`` needs at ``now`` for ``want``, if anything."""
    if want is None:
        if record.silence_id is not None:
            return Step("expire")
        return Step("forget") if record.error is not None else None
    end = silence_end(record, want, now)
    same = record.window_id == want.window_id and record.digest == want.digest
    if record.silence_id is not None and same and end is None:
        return None
    if end is None:
        assert record.ends_at is not None  # silence_end keeps only a stored end
        end = record.ends_at
    return Step("send", end)


def silence_end(record: SilenceRecord, want: Wanted, now: int) -> int | None:
    """The end to give the silence at ``now``: the planned end and MARGIN, or else LEASE
    from now once less than RENEW_BEFORE is left; None when the stored one will do."""
    if want.planned_end is not None and want.planned_end > now:
        end = want.planned_end + MARGIN
        return None if end == record.ends_at else end
    left = None if record.ends_at is None else record.ends_at - now
    if record.window_id == want.window_id and left is not None and left >= RENEW_BEFORE:
        return None
    return now + LEASE


class Silencer:
    """Keeps the silence as the maintenance state wants it. Called on every turn of the
    monitor's thread, it only wakes its own thread, which does the work (sync)."""

    def __init__(
        self, store: Store, monitor: Monitor, url: str, matchers: Sequence[Matcher]
    ) -> None:
        self.store, self.monitor, self.matchers = store, monitor, tuple(matchers)
        self.client = Alertmanager(url)
        self.record: SilenceRecord | None = None  # as last read or written here
        self._read_at = -REREAD_INTERVAL  # time.monotonic() of that
        self._seen: object = None
        self._failing = False  # this instance's last call failed
        self._db_error: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._claimant = ""

    def __call__(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():  # the first turn, or a forked child's
            self._start()
        state = self.monitor.state
        if state is not self._seen:
            self._seen = state
            self._wake.set()

    def _start(self) -> None:
        if self._closed:
            return
        # A forked child gets events of its own (the parent's thread may have held their
        # locks) and a claimant name of its own.
        self._wake, self._stop = threading.Event(), threading.Event()
        self._claimant = secrets.token_hex(8)
        self._thread = threading.Thread(target=self._run, name="bascule-silencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (the silence stays as it is: maintenance may go on)."""
        self._closed = True
        thread, self._thread = self._thread, None
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout=CALL_TIMEOUT * 3 + 1)

    def health(self) -> dict[str, Any]:
        """Whether the last call that the silence needed failed, as this instance last saw
        it (any instance's call), and the silence's id."""
        record = self.record or SilenceRecord()
        status = "DOWN" if record.error is not None else "UP"
        return {"status": status, "silenceId": record.silence_id, "error": record.error}

    def _run(self) -> None:
        stop, wake = self._stop, self._wake
        while not stop.is_set():
            wake.wait(CHECK_INTERVAL)
            wake.clear()
            if stop.is_set():
                return
            try:
                self.sync()
            except SQLAlchemyError as exc:  # tried again on the next turn
                what = "the Alertmanager silence cannot be kept"
                self._db_error = note_failure(log, self._db_error, exc, what)
                continue
            except Exception:  # keep the thread whatever happens
                log.exception("the Alertmanager silence could not be kept")
            self._db_error = None

    def _remember(self, record: SilenceRecord) -> None:
        self.record, self._read_at = record, time.monotonic()

    def sync(self) -> None:
        """Do what the silence needs now, if anything, unless another instance does."""
        now = self.store.now()
        want = wanted(self.monitor.state, self.matchers)
        fresh = time.monotonic() - self._read_at < REREAD_INTERVAL
        if fresh and self.record is not None and next_step(self.record, want, now) is None:
            return
        with self.store.read() as tx:
            record = tx.load_silence()
        self._remember(record)
        busy = record.claimed_until is not None and record.claimed_until > now
        if busy or next_step(record, want, now) is None:
            return
        with self.store.write(None) as tx:
            now = self.store.now()
            if not tx.claim_silence(self._claimant, now, now + CLAIM):
                return
            # What the database says now, not this copy: another instance may have ended
            # maintenance a moment ago.
            want = wanted(tx.load_state(), self.matchers)
            record = tx.load_silence()
            step = next_step(record, want, now)
            if step is None:
                tx.release_silence(self._claimant)
            elif step.kind == "forget":
                tx.record_silence(self._claimant, SilenceRecord())
                step = None
            self._remember(tx.load_silence())
        if step is not None:
            assert step.kind == "expire" or want is not None
            self._carry_out(record, want, step)

    def _carry_out(self, record: SilenceRecord, want: Wanted | None, step: Step) -> None:
        """Call Alertmanager for ``step`` (under this instance's claim); store the outcome."""
        done = SilenceRecord()
        try:
            if step.kind == "expire":
                assert record.silence_id is not None
                self.client.expire_silence(record.silence_id)
                log.info("expired the silence %s in Alertmanager", record.silence_id)
            else:
                assert want is not None
                done = self._send(record, want, step.ends_at)
        except AlertmanagerError as exc:
            with self.store.write(None) as tx:
                tx.fail_silence(self._claimant, str(exc), self.store.now() + RETRY)
                self._remember(tx.load_silence())
            if not self._failing:
                log.warning(
                    "Alertmanager (%s) fails: %s; tried again every %d s",
                    self.client.where,
                    exc,
                    RETRY // 1000,
                )
            self._failing = True
            return
        kept = False
        try:
            with self.store.write(None) as tx:
                kept = tx.record_silence(self._claimant, done)
                self._remember(tx.load_silence())
        finally:
            if not kept and done.silence_id not in (None, record.silence_id):
                # A silence nobody would know of (this claim ran out, and another instance
                # may have made one meanwhile) is not left behind.
                with contextlib.suppress(AlertmanagerError):
                    self.client.expire_silence(str(done.silence_id))
        if self._failing:
            log.warning("Alertmanager (%s) answers again", self.client.where)
        self._failing = False

    def _send(self, record: SilenceRecord, want: Wanted, ends_at: int) -> SilenceRecord:
        """Create or update the silence; the record of it."""
        now = self.store.now()
        silence = {
            "matchers": [m.as_json() for m in self.matchers],
            "startsAt": rfc3339(record.starts_at or now),
            "endsAt": rfc3339(ends_at),
            "createdBy": CREATED_BY,
            "comment": want.comment,
        }
        silence_id = None
        if record.silence_id is not None:
            # Alertmanager keeps the id when the start is the one it holds (to the second).
            with contextlib.suppress(SilenceGone):  # it lost it: made again, below
                silence_id = self.client.set_silence({"id": record.silence_id, **silence})
        if silence_id is None:
            silence_id = self.client.set_silence({**silence, "startsAt": rfc3339(now)})
        starts_at = record.starts_at or now
        if silence_id != record.silence_id:
            # A new silence starts when Alertmanager received it: learnt, so that it keeps
            # its id when it is pushed forward (should Alertmanager not say, a guess).
            try:
                starts_at = self.client.silence_start(silence_id)
            except AlertmanagerError:
                starts_at = now
            log.info(
                "silenced the alerts of %s in Alertmanager until %s: silence %s",
                " ".join(map(str, self.matchers)),
                rfc3339(ends_at),
                silence_id,
            )
        return SilenceRecord(silence_id, want.window_id, starts_at, ends_at, want.digest)
