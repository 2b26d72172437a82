"""The Prometheus metrics (``GET /metrics``): the shared state, read at scrape time, and
the gate's decisions, counted by the gate in plain integers and added to a
prometheus_client counter off its path.

With several worker processes, prometheus_client's multiprocess mode sums the counters
of every worker (``PROMETHEUS_MULTIPROC_DIR``, which ``bascule serve`` makes itself);
what describes the state is read from the database by whichever worker is scraped, so
it is the same on every instance.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from bascule.model import MODES, MaintenanceState, Window

if TYPE_CHECKING:
    from bascule.monitor import Monitor

# What the text format is served as: 0.0.4, which every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Where the worker processes of one server keep their counters: prometheus_client reads
# it once, when it is imported, and so does this module.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))
# The gate's decisions, in the order of the gate's tally (gate.DECISIONS).
GATE_REQUESTS_HELP = (
    "Requests the gate decided on, by decision (those of Bascule's own paths and of the"
    " paths kept open are not counted)."
)
# The workers' counter, kept in PROMETHEUS_MULTIPROC_DIR's files (a single process
# counts in Metrics.totals instead).
GATE_REQUESTS = Counter(
    "bascule_gate_requests",
    GATE_REQUESTS_HELP,
    ["decision"],
    registry=None,  # never in prometheus_client's global registry: an --app may use it
)
WATCHERS_HELP = (
    "Callers waiting on the watch (GET /rest/v1/maintenance/watch) at this instance now:"
    " each proxy's follower keeps one waiting, so fewer than the followers of this instance"
    " means that one stopped (and its proxy's switch no longer follows)."
)
# The same, summed over the live workers (a single process reads its monitor instead).
WATCHERS = Gauge("bascule_watchers", WATCHERS_HELP, multiprocess_mode="livesum", registry=None)


def _seconds(ms: int) -> float:
    return ms / 1000


class StateCollector:
    """The maintenance state as the database has it at scrape time (this process's copy
    when the database does not answer), and the age of the copy this process enforces."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.version = metadata.version("bascule")

    def read(self) -> tuple[MaintenanceState | None, tuple[Window, ...], bool]:
        """The state and the planned windows, and whether the database gave them."""
        monitor = self.monitor
        try:
            with monitor.store.read() as tx:
                return tx.load_state(with_log=False), tuple(tx.planned_windows()), True
        except SQLAlchemyError:
            return monitor.state, monitor.planned, False

    def collect(self) -> Iterator[Metric]:
        """The metrics of one scrape."""
        state, planned, read = self.read()
        yield gauge("bascule_build_info", "Bascule's version.", 1, version=self.version)
        yield gauge(
            "bascule_database_up",
            "1 when this scrape read the state from the database; 0 when the database did"
            " not answer and the state shown is the copy this instance enforces.",
            int(read),
        )
        yield gauge(
            "bascule_maintenance_active", "1 while maintenance is on, else 0.", int(bool(state))
        )
        mode = GaugeMetricFamily(
            "bascule_maintenance_mode",
            "1 for the mode of the maintenance on (full or read-only), else 0.",
            labels=["mode"],
        )
        for name in MODES:
            mode.add_metric([name], int(state is not None and state.mode == name))
        yield mode
        start = lease = end = None
        if state is not None:
            start, end = state.started_at, state.planned_end
            if state.lease_ttl is not None and state.lease_renewed_at is not None:
                lease = state.lease_renewed_at + state.lease_ttl * 1000
                if state.holder_ended_at is not None:
                    lease = min(lease, state.holder_ended_at)
        yield timestamp(
            "bascule_maintenance_start_timestamp_seconds",
            "When the maintenance on started (absent while off).",
            start,
        )
        yield timestamp(
            "bascule_maintenance_planned_end_timestamp_seconds",
            "When the maintenance on is planned to end (absent without a planned end).",
            end,
        )
        yield timestamp(
            "bascule_maintenance_lease_expiry_timestamp_seconds",
            "When the lease of the process holding maintenance runs out, unless renewed"
            " (absent without a lease).",
            lease,
        )
        yield timestamp(
            "bascule_next_window_start_timestamp_seconds",
            "When the next planned window starts (absent when none is planned).",
            planned[0].planned_start if planned else None,
        )
        yield gauge("bascule_planned_windows", "Windows planned and not started yet.", len(planned))
        age = self.monitor.state_age()
        age_metric = GaugeMetricFamily(
            "bascule_state_age_seconds",
            "Seconds since the database last confirmed the state this instance enforces.",
        )
        if age is not None:
            age_metric.add_metric([], round(age, 3))
        yield age_metric


def gauge(name: str, documentation: str, value: float, **labels: str) -> GaugeMetricFamily:
    """A gauge of one sample."""
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def timestamp(name: str, documentation: str, ms: int | None) -> GaugeMetricFamily:
    """A gauge of a moment in seconds since the epoch, without a sample when there is none."""
    family = GaugeMetricFamily(name, documentation)
    if ms is not None:
        family.add_metric([], _seconds(ms))
    return family


class Metrics:
    """The metrics of one application: its state collector, and the tallies of its gates
    (lists of integers, one per decision), added to GATE_REQUESTS from the monitor's
    thread and at each scrape."""

    def __init__(self, monitor: Monitor, decisions: tuple[str, ...]) -> None:
        self.monitor = monitor
        self.state = StateCollector(monitor)
        self.decisions = decisions
        self.totals = [0] * len(decisions)
        # In every worker's file from the start, so that each decision shows, at 0.
        self.counters = (
            [GATE_REQUESTS.labels(decision) for decision in decisions] if MULTIPROCESS else []
        )
        self.tallies: list[tuple[list[int], list[int]]] = []  # each with what was added
        self._lock = threading.Lock()
        monitor.on_tick.append(self.flush)

    def count(self, tally: list[int]) -> None:
        """Add a gate's tally (it only ever grows) to the counters from now on."""
        with self._lock:
            self.tallies.append((tally, [0] * len(tally)))

    def flush(self) -> None:
        """Add what the gates counted since the last flush to the counters; the callers
        waiting on the watch, to the workers' gauge."""
        if MULTIPROCESS:
            WATCHERS.set(self.monitor.watching)
        with self._lock:
            for tally, added in self.tallies:
                for i in range(len(self.decisions)):
                    seen = tally[i]  # read once: the gate's thread goes on counting
                    if seen != added[i]:
                        self.totals[i] += seen - added[i]
                        if self.counters:
                            self.counters[i].inc(seen - added[i])
                        added[i] = seen

    def exposition(self) -> bytes:
        """The text format of every metric, for a scrape."""
        self.flush()
        registry = CollectorRegistry(auto_describe=False)
        if MULTIPROCESS:  # every worker's counters, this one's included
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry.register(self)
        registry.register(self.state)
        return generate_latest(registry)

    def collect(self) -> Iterator[Metric]:
        """The gate's counter, as this one process counted it."""
        family = CounterMetricFamily(
            "bascule_gate_requests", GATE_REQUESTS_HELP, labels=["decision"]
        )
        for decision, total in zip(self.decisions, self.totals, strict=True):
            family.add_metric([decision], total)
        yield family
        yield gauge("bascule_watchers", WATCHERS_HELP, self.monitor.watching)
