"""The Faust app of the worker: Faust's consumer group and agents, fed whole fetched batches.

Faust's per-event stream path tops out near 15,000 events/s here (every
message crosses ``wait_first`` and becomes an ``Event``); the views need
batches anyway. So the consumer's drain loop hands each fetch, a
``{partition: [records]}`` map, to an in-memory channel, and the ``fold``
agent processes it as one batch (measured: ~470,000 records/s through this
path against ~600,000 for raw aiokafka). Faust keeps doing what it is good
at: group membership, co-partitioned assignment, rebalances, agents.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import faust
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from cohortflow.contract.topics import EVENT_TOPICS, Topic, topic_name
from cohortflow.core.engine import engine
from cohortflow.core.fold import FoldConfig
from cohortflow.errors import IntegrityError, OperationalError, ServiceUnavailable
from cohortflow.pipeline.committer import ThreadedCommitter
from cohortflow.pipeline.deadletter import DEADLETTER_MAX_BYTES, DeadLetters
from cohortflow.pipeline.observer import Observer
from cohortflow.pipeline.processor import BatchProcessor
from cohortflow.pipeline.topics import admin_client, describe, max_message_bytes
from cohortflow.settings import Settings
from cohortflow.stores.badges import RedisBadges
from cohortflow.stores.sink import PostgresViews, pool

log = logging.getLogger(__name__)

RETRY_SECONDS = (0.2, 0.5, 1, 2, 5)
M_MMAP_THRESHOLD = -3  # mallopt(3) parameter
DEFAULT_FETCH_BYTES = 1024 * 1024  # per partition, until the topics' limits are known
FETCH_RESPONSE_BYTES = 8 * 1024 * 1024  # Kafka's fetch.max.bytes for the worker: one response's records, at most
PREFETCH_HOLD_SECONDS = 5.0  # how long records not yet handed to the fold hold back the next fetch
LAYOUT_CHECK_SECONDS = 5.0  # how often the contract topics' partition counts are compared with the start's


class PartitionCountError(IntegrityError):
    """The contract topics' partition counts differ from one another or from the count the worker started with.

    The worker numbers the shards of its entity states by that count (``shard_of(key, partitions)``), and keys
    move to other partitions when it changes: docs/semantics.md, "Adding partitions".
    """


def _what_to_do(counts: Mapping[str, int]) -> str:
    wanted = max(counts.values())
    return (f"give every contract topic {wanted} partitions (`kafka-topics.sh --alter --topic <name> --partitions"
            f" {wanted}`), set COHORTFLOW_PARTITIONS={wanted} and start the workers again, every one of them with"
            " the new count (no rebuild is needed); see docs/semantics.md, \"Adding partitions\"")


def partitions_changed(counts: Mapping[str, int], started_with: int,
                       assigned: Iterable[tuple[str, int]] = ()) -> PartitionCountError | None:
    """The refusal to go on when a topic's count (or a partition assigned) is not the one the worker started with."""
    changed = {name: count for name, count in sorted(counts.items()) if count != started_with}
    for topic, partition in sorted(assigned):
        if partition >= started_with:
            changed[topic] = max(changed.get(topic, 0), partition + 1)
    if not changed:
        return None
    found = ", ".join(f"{name} now has {count}" for name, count in changed.items())
    return PartitionCountError(
        f"partitions were added while the worker ran: {found} partitions, the worker started with {started_with}"
        " per topic. Keys now hash to other partitions than their entities' earlier events, and the worker's shards"
        " are numbered by the old count, so it stops and applies nothing more (the views and offsets stored so far"
        f" are exact). To go on, {_what_to_do({**counts, **changed})}"
    )


def _mmap_large_buffers() -> None:
    """Serve every allocation over 128 KiB with its own mmap, returned to the OS when freed.

    glibc raises that threshold each time such a buffer is freed, after which the
    fetched record sets (up to the topics' ``max.message.bytes`` per partition)
    and commit payloads came from the heap and stayed in it, fragmented:
    ``make bench-worker`` measured 995-1,016 MiB RSS with 2 MiB fetches, 845 MiB
    with this. An operator's own ``MALLOC_MMAP_THRESHOLD_`` wins.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    if not libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024):
        log.debug("mallopt(M_MMAP_THRESHOLD) was refused; large buffers stay on the heap")


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, draining whole fetches into the worker's batch channel.

    It is also the only task that seeks: positions stored in PostgreSQL are
    applied right before a fetch, and each fetch carries the partitions' seek
    epochs, so records fetched from an older position are never applied.
    """

    def _new_consumer_thread(self) -> BatchConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised end to end
        try:
            await self._drain(fetcher)
        except asyncio.CancelledError:
            # Faust's fetcher takes a cancel during a rebalance for a rebalance restart and crashes the app: a
            # stop landing while the group joins (no callback of ours running) then ended with exit 1. The
            # app's stop cancels the fetcher; that is a stop, whatever the group is doing.
            if self.app.should_stop:
                if self.app.rebalancing:
                    log.info("stopping mid-rebalance: the fetcher ends (not a rebalance restart)")
                return
            raise

    async def _drain(self, fetcher: Any) -> None:  # pragma: no cover - exercised end to end
        runtime: Runtime = self.app.runtime  # type: ignore[attr-defined]
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        while not (consumer_stopped() or fetcher_stopped()):
            if not runtime.idle.is_set():
                # Fetch when the fold agent is ready for a batch, not before: a batch fetched early would wait
                # in the channel for a whole fold-and-commit cycle while newer records wait in the consumer.
                try:
                    await asyncio.wait_for(runtime.idle.wait(), 1.0)
                except TimeoutError:
                    continue
            epochs = await runtime.seek_pending()
            records, _ = await self._wait_next_records(1.0)
            if records:
                runtime.idle.clear()
                # Channel.put is typed for Faust events; this in-memory channel carries the batch itself.
                await runtime.batches.put((epochs, records))  # type: ignore[arg-type]

    async def perform_seek(self) -> None:
        """Faust would seek to Kafka's committed offsets here; PostgreSQL's offsets rule instead."""


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, holding one fetch response in memory instead of one per partition.

    aiokafka's fetcher keeps a fetched record set per partition until it is
    consumed and goes on fetching the other partitions meanwhile, so a backlog
    filled every assigned partition's buffer: 72 partitions x 2 MiB fetches
    were 140 MiB of the worker's peak at 200,000 students (memray, ``make
    bench-scaling``). Here a response carries at most ``FETCH_RESPONSE_BYTES``
    (a record batch larger than that still comes whole, Kafka's fetch.max.bytes
    rule), and the fetcher asks a broker for more only once the records it
    returned were handed to the fold, or after ``PREFETCH_HOLD_SECONDS`` (when
    Faust pauses a partition that still has buffered records). The per-partition
    fetch size stays the topics' ``max.message.bytes``: a smaller one would hold
    oversize batches back (docs/semantics.md).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        limit_fetch_response(consumer)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        hold_prefetch(self._consumer)


def limit_fetch_response(consumer: Any) -> None:
    """Before ``consumer.start()``: aiokafka's fetch_max_bytes, which Faust does not pass on."""
    consumer._fetch_max_bytes = FETCH_RESPONSE_BYTES


def hold_prefetch(consumer: Any) -> None:
    """After ``consumer.start()``: aiokafka's prefetch_backoff (0.1 s by default), which its consumer does not expose.

    While a partition's fetched records are younger than this and not consumed, its broker is sent no new fetch.
    """
    consumer._fetcher._prefetch_backoff = PREFETCH_HOLD_SECONDS


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


REBALANCE_SETTLE_SECONDS = 30.0
"""How long a stop waits for a rebalance callback in progress (see :meth:`Runtime.settle_rebalance`)."""
STOP_GRACE_SECONDS = 15.0
"""How long Faust may take to stop once the worker's own stop is done (see :meth:`Runtime.stop`)."""


def _exit_stuck(code: int) -> None:
    log.warning("Faust did not stop within %.0f s of the last commit; exiting (nothing is left to write)",
                STOP_GRACE_SECONDS)
    logging.shutdown()
    os._exit(code)


class CohortflowApp(faust.App):
    runtime: Runtime

    def _new_transport(self) -> BatchTransport:
        return BatchTransport(self.conf.broker_consumer, self)

    async def on_start(self) -> None:
        await self.runtime.start()
        await super().on_start()

    async def on_stop(self) -> None:
        await self.runtime.settle_rebalance()  # while the consumer thread still serves the callback's calls
        await super().on_stop()
        await self.runtime.stop()

    # Faust's consumer calls these two for a rebalance (from its thread, through the main loop's method queue).
    async def _on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        await self.runtime.rebalancing(super()._on_partitions_assigned(assigned, generation_id))

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        await self.runtime.rebalancing(super()._on_partitions_revoked(revoked))


class FaustPositions:
    """The processor's view of the Kafka consumer, through Faust's consumer."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.uncommitted: dict[tuple[str, int], int] = {}

    async def seek(self, positions: Mapping[tuple[str, int], int | None]) -> None:
        consumer = self.app.consumer
        to_start = [TP(t, p) for (t, p), offset in positions.items() if offset is None]
        earliest = await consumer.earliest_offsets(*to_start) if to_start else {}
        targets = {TP(t, p): (earliest.get(TP(t, p), 0) if o is None else o) for (t, p), o in positions.items()}
        if targets:
            # seek_wait runs in the consumer's own thread (aiokafka is not thread-safe; Consumer.seek
            # would touch it from this loop and could leave a partition without fetches) and waits for
            # the new positions.
            await consumer.seek_wait(targets)

    async def earliest(self, tps: Any) -> dict[tuple[str, int], int]:
        found = await self.app.consumer.earliest_offsets(*(TP(t, p) for t, p in tps))
        return {(tp.topic, tp.partition): offset for tp, offset in found.items()}

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Remember offsets for Kafka; :meth:`flush` sends them (informative: PostgreSQL holds the truth).

        Awaiting a Kafka commit per batch cost 7-25 ms of every batch's latency.
        """
        self.uncommitted.update(offsets)

    async def flush(self) -> None:
        if not self.uncommitted:
            return
        offsets, self.uncommitted = self.uncommitted, {}
        try:
            # ConsumerT does not declare _commit, the Consumer's commit of given offsets (commit() sends acks).
            await self.app.consumer._commit({TP(t, p): o for (t, p), o in offsets.items()})  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a failed informative commit must not fail anything
            log.debug("Kafka offset commit failed: %s", exc)

    def highwater(self, topic: str, partition: int) -> int | None:
        try:
            return self.app.consumer.highwater(TP(topic, partition))
        except Exception:  # noqa: BLE001 - no highwater yet (not fetched, not assigned) reads as unknown
            return None


class Runtime:
    """The worker's connections and processor, created when the Faust app starts."""

    def __init__(self, app: CohortflowApp, settings: Settings, observer: Observer,
                 on_started: Callable[[], None] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.topics = {t: topic_name(settings.topic_prefix, t) for t in Topic}  # the contract topics' full names
        self.observer = observer
        self.on_started = on_started  # the supervisor's "ready" signal (cohortflow worker --processes)
        self.batches = app.channel(maxsize=1)  # handed over when the agent is idle (see ``idle``)
        self.lock = asyncio.Lock()  # batches, assignments and revocations never interleave
        self.idle = asyncio.Event()  # the fold agent is between batches: the consumer fetches the next one now
        self.idle.set()
        self.processor: BatchProcessor = None  # type: ignore[assignment]
        self.refused: PartitionCountError | None = None  # set once the topics' layout changed: nothing more is applied
        self.callbacks: set[asyncio.Future] = set()  # the rebalance callbacks in progress, one future each

    async def start(self) -> None:
        settings = self.settings
        # Fewer young-generation passes over the batch's short-lived objects (with gc.freeze per batch).
        gc.set_threshold(100_000, 50, 1000)
        # The commit thread wakes a dozen times per batch while the fold holds the GIL; at the default 5 ms
        # switch interval each wake-up waited that long (measured: 45 ms commits of 300-record batches).
        sys.setswitchinterval(0.0005)
        _mmap_large_buffers()
        partitions, fetch_bytes = await self._check_topics()
        # Per partition, a fetch returns a record batch over this size only when it comes first in the
        # request: a record near the topic's limit then held its partition back for seconds (aiokafka
        # shuffles the order), so fetch up to the largest batch the broker accepts on these topics.
        self.app.conf.consumer_max_fetch_size = fetch_bytes
        log.info("fetching up to %d bytes per partition (the topics' max.message.bytes)", fetch_bytes)
        self.pool = pool(settings, staging=True)
        try:
            await self.pool.open(wait=True, timeout=15)
        except Exception as exc:
            raise ServiceUnavailable(
                f"PostgreSQL did not answer: {exc}. Start it (`make services`) or set COHORTFLOW_POSTGRES_DSN"
            ) from exc
        store = PostgresViews(self.pool)
        await store.ensure_config(settings.pillars, settings.workload_low_below, settings.workload_overloaded_above)
        await store.ensure_audit_partitions()
        self.redis = aioredis.Redis.from_url(settings.redis_connection_url, socket_timeout=5,
                                             socket_connect_timeout=5)
        self.committer = ThreadedCommitter(settings)
        await self.committer.start()
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=5,
                                         max_request_size=DEADLETTER_MAX_BYTES + 64 * 1024)
        await self.producer.start()
        self.processor = BatchProcessor(
            contract=settings.contract,
            engine=engine(settings.fold_engine, FoldConfig.of(settings)),
            cache_max_entities=settings.cache_max_entities,
            store=store,
            badges=RedisBadges(self.redis, settings.redis_prefix),
            deadletters=DeadLetters(self.producer, topic_name(settings.topic_prefix, Topic.DEADLETTER), partitions),
            consumer=FaustPositions(self.app),
            partitions=partitions,
            observer=self.observer,
            committer=self.committer,
        )
        log.info("folding with the %s engine, caching up to %d entity states", settings.fold_engine,
                 settings.cache_max_entities)
        if self.on_started is not None:
            self.on_started()

    async def _check_topics(self) -> tuple[int, int]:
        """The contract topics' one partition count (one shard per number) and the largest batch they accept."""
        names = list(self.topics.values())
        async with admin_client(self.settings) as admin:
            counts = await describe(admin, names)
            missing = [n for n in names if n not in counts]
            if missing:
                raise ServiceUnavailable(f"topics {', '.join(missing)} do not exist: run `cohortflow topics ensure`")
            if len(set(counts.values())) != 1:
                by_count: dict[int, list[str]] = {}
                for name, count in sorted(counts.items()):
                    by_count.setdefault(count, []).append(name)
                found = "; ".join(f"{count} partitions in {', '.join(group)}"
                                  for count, group in sorted(by_count.items()))
                raise PartitionCountError(f"the contract topics must have one partition count (it numbers the"
                                          f" shards of the entity states), found {found}: {_what_to_do(counts)}")
            limits = await max_message_bytes(admin, [self.topics[t] for t in EVENT_TOPICS])
        return next(iter(counts.values())), max(limits.values(), default=DEFAULT_FETCH_BYTES)

    async def _layout_changed(self, assigned: Iterable[tuple[str, int]] = ()) -> PartitionCountError | None:
        """The refusal if a contract topic's partition count changed since the start (None when unknown)."""
        started_with = self.processor.partitions
        names = list(self.topics.values())
        try:
            async with admin_client(self.settings, timeout_ms=5_000) as admin:
                counts = await asyncio.wait_for(describe(admin, names), 10)
        except Exception as exc:  # noqa: BLE001 - Kafka unreachable now: the next check or rebalance asks again
            log.log(logging.WARNING if assigned else logging.DEBUG, "checking the topics' partition counts failed:"
                    " %s", exc)
            counts = {}
        return partitions_changed(counts, started_with, assigned)

    async def check_layout(self) -> None:
        """Periodically: refuse to go on once partitions were added to a contract topic (see :meth:`refuse`)."""
        if self.refused is None:
            error = await self._layout_changed()
            if error is not None:
                await self.refuse(error)

    async def refuse(self, error: PartitionCountError) -> None:
        """Stop applying records: let the commit in flight end, then crash the worker with ``error``.

        A worker that numbered its shards by the old count must not commit next to one started with the
        new count (their fences would not exclude each other), so it stops instead.
        """
        async with self.lock:
            if self.refused is not None:
                return
            self.refused = error  # from now on process() and assigned() apply nothing
            try:
                await self.processor.drain()
            except Exception as exc:  # noqa: BLE001 - not committed: the views stand at the offsets stored before it
                log.warning("the last batch did not commit (%s)", exc)
        log.error("%s", error)
        await self.app.crash(error)

    async def stop(self) -> None:
        if self.processor is not None and self.processor.committing is not None:
            try:  # a graceful stop lets the batch in flight commit (a crash would redo it)
                await self.processor.drain()
            except Exception as exc:  # noqa: BLE001 - whatever failed, stopping goes on; the next start redoes it
                log.warning("the last batch did not commit (%s); the next start redoes it", exc)
        for name, closing in (("producer", "stop"), ("redis", "aclose"), ("committer", "stop"), ("pool", "close")):
            resource = getattr(self, name, None)  # absent when start-up failed before making it
            if resource is None:
                continue
            try:
                await getattr(resource, closing)()
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                log.debug("while stopping: %s", exc)
        # Everything that matters is done: the batch in flight committed, the connections closed. A stop that
        # landed mid-rebalance no longer hangs Faust's consumer thread (settle_rebalance); should Faust's own
        # stop hang for another reason, the process still ends, with the exit code it would have had (1 after a
        # crash); the group then hands its partitions on after the session timeout.
        failed = self.refused is not None or self.app.crash_reason is not None  # a crash (a refusal included)
        watchdog = threading.Timer(STOP_GRACE_SECONDS, _exit_stuck, [1 if failed else 0])
        watchdog.daemon = True  # a stop that ends in time ends the process with it
        watchdog.start()

    async def rebalancing(self, callback: Awaitable[None]) -> None:
        """Run a rebalance callback of Faust's, known to :meth:`settle_rebalance` until it ends."""
        done = asyncio.get_running_loop().create_future()
        self.callbacks.add(done)
        try:
            await callback
        finally:
            self.callbacks.discard(done)
            done.set_result(None)

    async def settle_rebalance(self) -> None:
        """Let a rebalance callback in progress end before Faust stops its consumer.

        An assignment reads the partitions' earliest offsets through Faust's consumer thread. Stopped
        under it, that call was cancelled: the stop then crashed with CancelledError (exit 1) or the thread
        never ended (tests/pipeline/test_workers.py reproduces it). Waited for, the callback ends in
        milliseconds; what it assigned is released by the stop like any other partition.
        """
        pending = list(self.callbacks)
        if not pending:
            return
        log.info("stopping: waiting for the rebalance in progress to end")
        _, late = await asyncio.wait(pending, timeout=REBALANCE_SETTLE_SECONDS)
        if late:
            log.warning("the rebalance in progress did not end within %.0f s; stopping anyway",
                        REBALANCE_SETTLE_SECONDS)

    async def seek_pending(self) -> dict:
        if not self.processor.pending_seeks:
            return dict(self.processor.epochs)
        async with self.lock:
            try:
                return await self.processor.seek_pending()
            except Exception:
                log.exception("seeking to the stored offsets failed; will retry")
                await asyncio.sleep(1)
                return dict(self.processor.epochs)

    async def process(self, epochs: dict, records: dict) -> None:
        batch = {(tp.topic, tp.partition): batch for tp, batch in records.items()}
        try:
            async with self.lock:
                if self.refused is not None:  # the topics' layout changed (see refuse): nothing more is applied
                    return
                await self._guarded(self.processor.process(epochs, batch))
                committing = self.processor.committing
        finally:
            self.idle.set()
        if committing is not None:
            # The commit runs while the next batch folds, and that batch checks its outcome. When none comes,
            # a failed commit must still be noticed: then the views would wait for a batch that never comes.
            committing.add_done_callback(self._committed)

    def _committed(self, committing: asyncio.Future) -> None:
        if not committing.cancelled() and committing.exception() is not None:
            asyncio.ensure_future(self.settle(committing))

    async def settle(self, committing: asyncio.Future | None = None) -> None:
        """Finish the commit in flight (``committing``, when given, if it still is): recover when it failed."""
        async with self.lock:
            if committing is None or self.processor.committing is committing:
                await self._guarded(self.processor.drain())

    async def _guarded(self, step: Any) -> None:
        try:
            await step
            # The cache is large, long-lived and acyclic (freed by reference counting): keep the cyclic
            # collector from rescanning it on every allocation burst. Measured: half the decode time.
            gc.freeze()
        except OperationalError as exc:
            log.warning("batch failed (%s); recovering from PostgreSQL's offsets", exc)
            await self._recover()
        except Exception:
            # Never carry on past a failed batch: its records would be skipped. Seek back and redo.
            log.exception("batch failed; seeking back to PostgreSQL's offsets to redo it")
            await self._recover()

    async def _recover(self) -> None:
        for attempt in range(1_000_000):
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            try:
                await self.processor.recover()
                return
            except OperationalError as exc:
                log.warning("still recovering (%s)", exc)

    async def assigned(self, assigned: set) -> None:
        if self.app.should_stop:  # stopping (or crashed): the group hands these on once the worker has left it
            return
        ours = {(tp.topic, tp.partition) for tp in assigned}
        # Every member checks the layout on every assignment: a member started with another partition count
        # joins through a rebalance, so the members of the old count stop before it applies anything.
        error = self.refused or await self._layout_changed(ours)
        if error is not None:
            await self.refuse(error)
            return
        async with self.lock:
            await self._guarded(self.processor.drain())  # the stored offsets read below must include it
            self.processor.revoke(self.processor.assigned - ours)
            fresh = ours - self.processor.assigned
            try:
                await self.processor.assign(sorted(fresh))
            except OperationalError as exc:
                log.warning("assignment failed (%s); recovering", exc)
                await self._recover()

    async def revoked(self, revoked: set) -> None:
        async with self.lock:
            await self._guarded(self.processor.drain())
            self.processor.revoke({(tp.topic, tp.partition) for tp in revoked})

    def report_lag(self) -> None:
        positions = self.processor.consumer
        for (topic, partition), offset in list(self.processor.positions.items()):
            highwater = positions.highwater(topic, partition)  # type: ignore[attr-defined]
            if highwater is not None and offset is not None:
                self.observer.lag(topic, partition, max(0, highwater - offset))


def create_app(settings: Settings, observer: Observer | None = None,
               on_started: Callable[[], None] | None = None) -> CohortflowApp:
    """The worker's Faust app; N processes of it form one consumer group and share the partitions.

    ``on_started`` is called once the worker's connections are up and its topics checked.
    """
    datadir = Path(tempfile.gettempdir()) / f"cohortflow-faust-{settings.consumer_group}"
    app = CohortflowApp(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        datadir=str(datadir),
        store="memory://",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=settings.batch_max_records,
        consumer_max_fetch_size=DEFAULT_FETCH_BYTES,  # set to the topics' max.message.bytes by Runtime.start
        broker_commit_livelock_soft_timeout=24 * 3600,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        stream_wait_empty=False,
    )
    runtime = app.runtime = Runtime(app, settings, observer or Observer(), on_started)
    sources = app.topic(*(topic_name(settings.topic_prefix, t) for t in EVENT_TOPICS), value_type=bytes,
                        key_type=bytes)

    @app.agent(sources, name="subscribe")
    async def subscribe(stream: faust.StreamT) -> None:
        """Subscribes the group to the contract topics; records arrive through ``fold`` instead."""
        async for _ in stream:  # pragma: no cover - the batch consumer never feeds streams
            pass

    @app.agent(runtime.batches, name="fold")
    async def fold(stream: faust.StreamT) -> None:
        """Decode, fold, hand to the sink: one fetched batch at a time."""
        async for epochs, records in stream:
            await runtime.process(epochs, records)

    # The signals' receiver type omits the positional argument they are sent with (the partition set).
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set, **_: Any) -> None:
        await runtime.assigned(assigned)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set, **_: Any) -> None:
        await runtime.revoked(revoked)

    @app.timer(1.0)
    async def report_offsets() -> None:
        if runtime.processor is not None:
            await runtime.processor.consumer.flush()  # type: ignore[attr-defined]

    @app.timer(LAYOUT_CHECK_SECONDS)
    async def layout() -> None:
        if runtime.processor is not None:
            await runtime.check_layout()

    @app.timer(5.0)
    async def lag() -> None:
        if runtime.processor is not None:
            runtime.report_lag()

    return app
