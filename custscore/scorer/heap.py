"""Long-running processes keep what they loaded out of the cyclic garbage collector's full passes.

A full (generation 2) collection walks every tracked container object with the GIL held. With the
production models, the recommender and their libraries loaded that is about 250,000 objects, and each
full pass paused a following worker for 150-200 ms: a pause that lands in the p99 of streaming scores
and of API requests. :func:`settle_long_lived`, called once the models are loaded, collects what is
garbage and moves everything still alive into the permanent generation (``gc.freeze``), which later
passes skip. Measured in bench/score.py's 100 new customers/s stream: the worker's full collections went
from 3 taking 532 ms in all (longest 216 ms) to 13 taking 41 ms (longest 24 ms).

Calling it again after a hot reload first unfreezes, so the replaced models' reference cycles are
collected and not kept forever. Reference counting frees everything else as usual; only cycles among
frozen objects wait for the next call.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

log = logging.getLogger(__name__)

_lock = threading.Lock()


def settle_long_lived() -> None:
    """Collect, then freeze what survives (the loaded models, imported modules) out of later full collections."""
    with _lock:
        t0 = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        log.debug("froze %d long-lived objects in %.0f ms", gc.get_freeze_count(), 1000 * (time.perf_counter() - t0))
