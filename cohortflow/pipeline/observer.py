"""What the worker reports about itself; metrics implement it, processing code only calls it.

The processing code never touches a metrics library: it calls these hooks,
and :mod:`cohortflow.pipeline.metrics` turns them into Prometheus series (faust's Sensor
idea, applied to our batch path).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class BatchReport:
    records: int = 0  # records considered (after skipping already-applied offsets)
    by_type: Counter[str] = field(default_factory=Counter)  # accepted events per type
    rejected: Counter[str] = field(default_factory=Counter)  # rejected records per reason
    fold_seconds: float = 0.0
    commit_seconds: float = 0.0
    freshness: dict[str, float] = field(default_factory=dict)  # view -> seconds between now and its newest as_of
    cached_entities: int = 0  # entity states held in memory after the batch
    evicted: int = 0  # least recently used entity states dropped from memory by the batch (committed ones)


class Observer:
    """No-op hooks; subclass to record them."""

    def batch(self, report: BatchReport) -> None: ...

    def lag(self, topic: str, partition: int, lag: int) -> None: ...

    def revoked(self, topic: str, partition: int) -> None:
        """This worker gave the partition up: what it reported about it (its lag) is no longer its to report."""

    def conflict(self, reason: str) -> None: ...

    def badges_restored(self, count: int) -> None: ...
