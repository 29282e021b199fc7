"""The worker's Prometheus observer: what a revoked partition leaves on /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from cohortflow.contract import DEFAULT_CONTRACT
from cohortflow.core.engine import engine
from cohortflow.core.fold import FoldConfig
from cohortflow.pipeline.metrics import PrometheusObserver
from cohortflow.pipeline.processor import BatchProcessor
from cohortflow.stores.in_memory import InMemoryBadges, InMemoryDeadLetters, InMemoryViews
from tests.pipeline.test_batch_processor import PARTITIONS, Consumer, Log


def lags(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {(s.labels["topic"], s.labels["partition"]): s.value
            for metric in registry.collect() if metric.name == "cohortflow_consumer_lag" for s in metric.samples}


def test_a_revoked_partition_s_lag_leaves_the_former_owner_s_metrics() -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    observer.lag("t", 0, 7)
    observer.lag("t", 1, 3)
    observer.revoked("t", 0)
    observer.revoked("t", 5)  # never reported: nothing to remove, no error
    assert lags(registry) == {("t", "1"): 3.0}


async def test_the_processor_reports_every_partition_it_gives_up() -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    log = Log([])
    processor = BatchProcessor(
        contract=DEFAULT_CONTRACT, engine=engine("python", FoldConfig()), store=InMemoryViews(),
        badges=InMemoryBadges(), deadletters=InMemoryDeadLetters(), consumer=Consumer(log), partitions=PARTITIONS,
        cache_max_entities=1_000, observer=observer)
    tps = sorted(log.partitions)
    await processor.assign(tps)
    for topic, partition in tps:
        observer.lag(topic, partition, 1)
    processor.revoke(tps[:2])
    assert set(lags(registry)) == {(t, str(p)) for t, p in tps[2:]}


def test_under_processes_n_a_revoked_partition_reads_0_until_its_new_owner_reports(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from prometheus_client import multiprocess, values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 1))  # as a child's import makes it
    former = PrometheusObserver(CollectorRegistry())
    assert former.shared
    former.lag("t", 0, 7)
    former.revoked("t", 0)
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=str(tmp_path))
    assert lags(merged) == {("t", "0"): 0.0}
