"""Which worker owns which customer: a stable hash of the customer id modulo the number of workers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from custscore.errors import ConfigError


def stable_hash(key: Any) -> int:
    """A 64-bit hash of ``str(key)`` that is the same in every process and Python version.

    Python's ``hash()`` is salted per process, so two workers would disagree.
    """
    return int.from_bytes(hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Partition:
    """Worker ``index`` of ``workers``: it owns the customers with ``stable_hash(id) % workers == index``.

    Parameters
    ----------
    workers : int
        Number of workers sharing the customers (>= 1).
    index : int
        This worker's number, ``0 <= index < workers``.

    Raises
    ------
    ConfigError
        If ``workers`` or ``index`` is out of range.
    """

    workers: int = 1
    index: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"--workers must be an integer >= 1, got {self.workers!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 <= self.index < self.workers:
            raise ConfigError(
                f"--worker-index must be between 0 and {self.workers - 1} for --workers {self.workers}, "
                f"got {self.index!r}"
            )

    def owns(self, customer_id: Any) -> bool:
        """Whether this worker scores ``customer_id``."""
        return self.workers == 1 or stable_hash(customer_id) % self.workers == self.index

    @property
    def state_id(self) -> str:
        """The ``_id`` of this worker's document in ``scorer_state``."""
        return f"worker-{self.workers}-{self.index}"
