"""The store's queries of the silence kept in Alertmanager: its one row, and the claim
that lets one instance at a time call Alertmanager for it. SQL only; a mixin of the
store's transaction (Tx)."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import Connection, or_, select, update

from bascule.db import upsert
from bascule.records import SilenceRecord
from bascule.tables import alertmanager_silence

ROW = "alertmanager"
_FIELDS = [f.name for f in fields(SilenceRecord)]


class SilenceQueries:
    """The silence's queries of one transaction."""

    conn: Connection
    is_postgres: bool

    def load_silence(self) -> SilenceRecord:
        """The silence as stored (all None before its first use)."""
        table = alertmanager_silence
        row = self.conn.execute(select(table).where(table.c.id == ROW)).first()
        if row is None:
            return SilenceRecord()
        return SilenceRecord(**{name: row._mapping[name] for name in _FIELDS})

    def claim_silence(self, claimant: str, now: int, until: int) -> bool:
        """Claim the silence for ``claimant`` until ``until``, unless another claim (or the
        wait after a failure) runs past ``now``; whether it was claimed. One statement, so
        that of two instances at once only one gets it, on either database."""
        table, c = alertmanager_silence, alertmanager_silence.c
        self.conn.execute(
            upsert(table, self.is_postgres)
            .values(id=ROW)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        free = or_(c.claimed_until.is_(None), c.claimed_until <= now)
        claimed = self.conn.execute(
            update(table).where(c.id == ROW, free).values(claimed_by=claimant, claimed_until=until)
        )
        return claimed.rowcount == 1

    def record_silence(self, claimant: str, record: SilenceRecord) -> bool:
        """Store ``record`` as the silence, its claim and failure cleared, if ``claimant``
        still holds the claim; whether it did."""
        c = alertmanager_silence.c
        values = {name: getattr(record, name) for name in _FIELDS}
        values.update(claimed_by=None, claimed_until=None, error=None)
        stored = self.conn.execute(
            update(alertmanager_silence).where(c.id == ROW, c.claimed_by == claimant).values(values)
        )
        return stored.rowcount == 1

    def fail_silence(self, claimant: str, error: str, retry_at: int) -> None:
        """Keep ``error`` as the silence's last failure, and let nobody call Alertmanager
        for it again before ``retry_at`` (if ``claimant`` still holds the claim)."""
        c = alertmanager_silence.c
        self.conn.execute(
            update(alertmanager_silence)
            .where(c.id == ROW, c.claimed_by == claimant)
            .values(claimed_by=None, claimed_until=retry_at, error=error[:255])
        )

    def release_silence(self, claimant: str) -> None:
        """Give up the claim of ``claimant`` (nothing was called)."""
        c = alertmanager_silence.c
        self.conn.execute(
            update(alertmanager_silence)
            .where(c.id == ROW, c.claimed_by == claimant)
            .values(claimed_by=None, claimed_until=None)
        )
