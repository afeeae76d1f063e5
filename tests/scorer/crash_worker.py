"""A worker process for test_crash: follows an embedded store until killed.

Usage: ``python -m tests.scorer.crash_worker STORE_PATH MARKER_PATH SLEEP_S``. The
fake models create MARKER_PATH while a batch is between scoring and writing
(sleeping SLEEP_S), so the test can kill the process mid-batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from custscore.scorer.worker import Worker
from tests.scorer.fakes import FakeModels, FakeRegistry, open_embedded


class MarkingModels(FakeModels):
    """Fake models that flag "a batch is in flight" on disk while they sleep."""

    marker: Path | None = None

    def score_batch(self, store, customers, now):
        self.marker.touch()
        out = super().score_batch(store, customers, now)  # sleeps sleep_s
        self.marker.unlink()
        return out


def main() -> None:
    store_path, marker, sleep_s = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    store = open_embedded(store_path)
    registry = FakeRegistry()

    def loader(st):
        models = MarkingModels(versions=dict(registry.versions), sleep_s=sleep_s)
        models.marker = marker
        return models

    Worker(store, loader, registry.probe, batch_size=8, max_wait_ms=20, poll_interval_s=0.01).run()


if __name__ == "__main__":
    main()
