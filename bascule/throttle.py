"""The throttle of password guessing: failed authentications counted in the database,
per name, per address and per device, so that guesses are limited without anyone being
able to lock a user out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bascule.records import token_hash
from bascule.store import Store


class Throttled(Exception):
    """Too many failed authentications for a user name, or from a client address."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after  # seconds until the window ends
        self.message = f"Too many failed attempts: try again in {retry_after} seconds."
        super().__init__(self.message)


# Failed checks of names that are no user's, from one address per window, past which
# they are answered without Argon2 (no one is kept from anything by it: there is
# nothing to guess, only a CPU to spare).
UNKNOWN_NAMES_PER_ADDRESS = 100
DAY = 86_400
AUTH_CACHE_LIMIT = 10_000  # addresses and names remembered as throttled


@dataclass(frozen=True)
class Attempt:
    """Who tries a password: a name, the client's address, whether the name is a user's,
    and the hash of the device token it brings when that device signed in as it before."""

    name: str
    address: str | None
    known: bool
    device: str | None = None


class Throttle:
    """Limits password guessing without letting anyone lock a user out.

    Failures are counted in the database, so that every instance shares them, and
    before the password is checked (so that a flood sent at once gets no more tries than
    one sent one by one); past a limit, an attempt is refused (Throttled, 429) before
    any Argon2. What is counted, and who a limit stops:

    - a device the user signed in with before (its cookie): ``per_address`` failures per
      ``window``, that device only; no one else's failures touch it;
    - any other client: ``per_address`` per ``window`` for the name at that address (the
      name elsewhere, other names there, go on), and ``per_user`` per day for the name
      from every such client together: a few hundred guesses a day at most, whatever
      the number of addresses;
    - names that are no user's: nothing to guess, never refused; past
      UNKNOWN_NAMES_PER_ADDRESS per window from one address, no longer checked.

    So an attacker, wherever they are, can at worst make a name refuse clients it never
    signed in with; a browser that signed in before, a session, and credentials this
    process verified before, go on.
    """

    def __init__(
        self,
        store: Store,
        *,
        per_user: int = 200,
        per_address: int = 10,
        window: int = 300,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.per_user, self.per_address = per_user, per_address
        self.window_ms = window * 1000
        self.clock = clock or store.now  # the database's, unless told another
        self._blocked: dict[str, int] = {}  # key: until when (ms), as last read here

    def _keys(self, attempt: Attempt) -> dict[str, tuple[int, int]]:
        """The counters an attempt is a failure of: key, its limit and window (ms)."""
        address = attempt.address or "unknown"
        if not attempt.known:
            return {f"unknown:{address}": (UNKNOWN_NAMES_PER_ADDRESS, self.window_ms)}
        if attempt.device is not None:
            return {f"device:{attempt.device}": (self.per_address, self.window_ms)}
        pair = token_hash(f"{attempt.name}\x00{address}")  # a name is up to 255 characters
        return {
            f"pair:{pair}": (self.per_address, self.window_ms),
            f"user:{attempt.name}": (self.per_user, DAY * 1000),
        }

    def _refuse(self, until: int, now: int) -> None:
        raise Throttled(max(1, -(-(until - now) // 1000)))

    def attempt(self, attempt: Attempt) -> bool:
        """Count the attempt as a failure until it is proven right (``succeeded``); raise
        Throttled, before the password is checked, when it is past a limit. False when
        it is not worth checking (a name that is no user's, from an address past its
        limit): a failure, without Argon2.

        Counted before the check, atomically, so that concurrent guesses cannot all slip
        in under the limit while the first ones are being checked.
        """
        now = self.clock()
        keys = self._keys(attempt)
        self.refuse_known(attempt)
        with self.store.write(None) as tx:
            counted = {key: tx.add_failure(key, now, window) for key, (_, window) in keys.items()}
        for key, (failures, started) in counted.items():
            limit, window = keys[key]
            if failures > limit:
                if not attempt.known:
                    return False
                until = started + window
                if len(self._blocked) > AUTH_CACHE_LIMIT:
                    self._blocked = {k: u for k, u in self._blocked.items() if u > now}
                self._blocked[key] = until
                self._refuse(until, now)
        return True

    def refuse_known(self, attempt: Attempt) -> None:
        """Raise Throttled when this process already knows the attempt past a limit: no
        database call."""
        now = self.clock()
        for key in self._keys(attempt):
            until = self._blocked.get(key, 0)
            if until > now:
                self._refuse(until, now)

    def succeeded(self, attempt: Attempt) -> None:
        """The attempt was right: the failures of its name at its address (or on its
        device) are forgotten, and it is no failure of its name's day."""
        with self.store.write(None) as tx:
            for key in self._keys(attempt):
                if key.startswith("user:"):
                    tx.forgive_failure(key)
                else:
                    tx.clear_failures(key)
                self._blocked.pop(key, None)
