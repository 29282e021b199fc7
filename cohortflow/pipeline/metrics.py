"""Prometheus metrics of the worker: an :class:`~cohortflow.pipeline.observer.Observer`.

Processing code never calls these directly.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cohortflow.pipeline.observer import BatchReport, Observer
from cohortflow.processes import MULTIPROC_DIR


class PrometheusObserver(Observer):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Under `cohortflow worker --processes N` each child writes its series to PROMETHEUS_MULTIPROC_DIR
        # (cohortflow.processes.shared_metrics), where a series cannot be removed.
        self.shared = bool(os.environ.get(MULTIPROC_DIR))
        r = self.registry
        self.records = Counter("cohortflow_records_total", "Accepted records by event type", ["type"], registry=r)
        self.rejected = Counter("cohortflow_rejected_total", "Records sent to the deadletter topic, by reason",
                                ["reason"], registry=r)
        self.batch_size = Histogram("cohortflow_batch_records", "Records per committed batch", registry=r,
                                    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000))
        self.commit = Histogram("cohortflow_commit_seconds", "PostgreSQL commit time per batch", registry=r,
                                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.fold = Histogram("cohortflow_fold_seconds", "Decode and fold time per batch (state loading included)",
                              registry=r, buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        # multiprocess_mode matters only under `cohortflow worker --processes N` (cohortflow.pipeline.workers).
        self.lag_gauge = Gauge("cohortflow_consumer_lag", "Records not yet applied, per partition",
                               ["topic", "partition"], registry=r, multiprocess_mode="livemostrecent")
        self.freshness = Gauge("cohortflow_view_freshness_seconds", "Now minus the newest as_of written, per view",
                               ["view"], registry=r, multiprocess_mode="livemostrecent")
        self.restores = Counter("cohortflow_redis_restores_total", "Badges restored into Redis from PostgreSQL",
                                registry=r)
        self.cached = Gauge("cohortflow_cache_entities", "Entity states held in memory (COHORTFLOW_CACHE_MAX_ENTITIES"
                            " bounds it per process)", registry=r, multiprocess_mode="livesum")
        self.evictions = Counter("cohortflow_cache_evictions_total",
                                 "Entity states dropped from memory, least recently used first (read back from"
                                 " PostgreSQL when needed)", registry=r)
        self.conflicts = Counter("cohortflow_batch_conflicts_total",
                                 "Batches redone because another worker moved a shard or an offset", ["reason"],
                                 registry=r)

    def batch(self, report: BatchReport) -> None:
        for kind, n in report.by_type.items():
            self.records.labels(kind).inc(n)
        for reason, n in report.rejected.items():
            self.rejected.labels(reason).inc(n)
        self.batch_size.observe(report.records)
        self.commit.observe(report.commit_seconds)
        self.fold.observe(report.fold_seconds)
        self.cached.set(report.cached_entities)
        if report.evicted:
            self.evictions.inc(report.evicted)
        for view, seconds in report.freshness.items():
            self.freshness.labels(view).set(seconds)

    def lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag_gauge.labels(topic, str(partition)).set(lag)

    def revoked(self, topic: str, partition: int) -> None:
        # A former owner's last figure would otherwise stay on its /metrics beside the new owner's.
        if self.shared:  # "livemostrecent": the new owner's next report replaces this 0
            self.lag_gauge.labels(topic, str(partition)).set(0)
            return
        try:
            self.lag_gauge.remove(topic, str(partition))
        except KeyError:  # never reported
            pass

    def conflict(self, reason: str) -> None:
        self.conflicts.labels(reason).inc()

    def badges_restored(self, count: int) -> None:
        self.restores.inc(count)

    def serve(self, port: int) -> None:
        """Expose /metrics on ``port`` (a daemon thread)."""
        start_http_server(port, registry=self.registry)
