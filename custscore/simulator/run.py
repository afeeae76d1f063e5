"""Write simulated customers and events into a store: a batch run and a live stream."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from custscore.errors import InputError, LimitExceeded
from custscore.simulator.generate import SimulationConfig, simulate, simulate_stream_tick
from custscore.store.base import Store
from custscore.store.loading import load_events, load_simulated, now
from custscore.store.schema import COLLECTIONS, CUSTOMERS, ensure_schema

log = logging.getLogger(__name__)
MAX_CUSTOMERS = 2_000_000  # profiles are drawn up front: ~250 MB here; 100M would need 12 GB before any write
EVENTS_PER_NEW_CUSTOMER = 3.0  # stream mix: purchases by existing customers per new signup


@dataclass
class RunSummary:
    """What a simulation wrote."""

    customers: int = 0
    events: int = 0
    seconds: float = 0.0


def reset(store: Store) -> None:
    """Drop every custscore collection and recreate the empty schema."""
    for name in COLLECTIONS:
        store.drop_collection(name)
    ensure_schema(store)


def run_simulation(
    store: Store,
    config: SimulationConfig,
    batch_size: int = 5000,
    replace: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> RunSummary:
    """Simulate ``config.n_customers`` customers with their events and store them batch by batch.

    Each batch (customers, their summaries and events) is one transaction, so an
    interrupted run leaves whole batches only. ``replace=True`` empties the
    store first.
    """
    if isinstance(config.n_customers, int) and config.n_customers > MAX_CUSTOMERS:
        raise LimitExceeded(
            f"--customers {config.n_customers:,} is more than the {MAX_CUSTOMERS:,} one simulate run may make "
            "(every profile is drawn in memory first, about 125 bytes each, before batches are written); "
            f"simulate at most {MAX_CUSTOMERS:,}, or load your own data with custscore ingest"
        )
    try:
        config.validate()
        batches = simulate(config, batch_size)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if replace:
        reset(store)
    summary = RunSummary()
    started = time.perf_counter()
    for batch in batches:
        load_simulated(store, batch.customers, batch.events)
        summary.customers += len(batch.customers)
        summary.events += len(batch.events)
        if on_progress:
            on_progress(len(batch.customers))
    summary.seconds = time.perf_counter() - started
    log.info("simulated %d customers and %d events in %.1fs", summary.customers, summary.events, summary.seconds)
    return summary


class StreamWriter:
    """New signups and purchases of existing customers, one tick at a time."""

    def __init__(self, store: Store, seed: int = 0, rate: float = 10.0):
        if rate <= 0:
            raise InputError(f"--rate must be > 0 new customers per second, got {rate}")
        self.store = store
        self.rate = rate
        self.rng = np.random.default_rng([seed, 104729])
        started = dt.datetime.now(dt.UTC)
        # ids unique across runs: the start time is part of the prefix
        self.prefix = f"S{started:%y%m%d%H%M%S}-"
        self.ids = [d["_id"] for d in store.collection(CUSTOMERS).find({}, {"_id": 1})]
        self.written = RunSummary()

    def tick(self, seconds: float) -> RunSummary:
        """Write what ``seconds`` of stream produce (Poisson counts) and return it."""
        n_new = int(self.rng.poisson(self.rate * seconds))
        n_events = int(self.rng.poisson(self.rate * seconds * EVENTS_PER_NEW_CUSTOMER)) if self.ids else 0
        batch = simulate_stream_tick(
            self.rng, now().replace(microsecond=0), n_new, self.ids, n_events, self.written.customers,
            id_prefix=self.prefix,
        )
        load_simulated(self.store, batch.customers, [])
        report = load_events(self.store, batch.events)
        self.ids.extend(c["_id"] for c in batch.customers)
        step = RunSummary(len(batch.customers), report.inserted)
        self.written.customers += step.customers
        self.written.events += step.events
        return step


def run_stream(
    store: Store,
    rate: float,
    duration: float,
    seed: int = 0,
    tick_seconds: float = 1.0,
    on_tick: Callable[[RunSummary], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunSummary:
    """Keep inserting new customers and purchases for ``duration`` seconds at ``rate`` signups/s."""
    if duration <= 0:
        raise InputError(f"--duration must be > 0 seconds, got {duration}")
    writer = StreamWriter(store, seed, rate)
    started = clock()
    last = started
    while True:
        current = clock()
        step = writer.tick(current - last if current > last else tick_seconds)
        last = current
        if on_tick:
            on_tick(step)
        remaining = started + duration - clock()
        if remaining <= 0:
            break
        sleep(min(tick_seconds, remaining))
    writer.written.seconds = clock() - started
    return writer.written
