"""Create and check the contract's topics on the broker (`cohortflow topics ensure`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from cohortflow.contract.topics import Topic, topic_name
from cohortflow.errors import IntegrityError, ServiceUnavailable
from cohortflow.pipeline.deadletter import DEADLETTER_MAX_BYTES
from cohortflow.settings import Settings


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int | None  # None: the topic does not exist
    action: str  # "created", "ok", or what is wrong


@asynccontextmanager
async def admin_client(settings: Settings, timeout_ms: int = 10_000) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client, or :class:`ServiceUnavailable` naming the broker address."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise ServiceUnavailable(
            f"Kafka did not answer at {settings.kafka_bootstrap} ({exc.__class__.__name__}): start it with "
            "`make services` or set COHORTFLOW_KAFKA_BOOTSTRAP"
        ) from exc
    try:
        yield admin
    finally:
        await admin.close()


def contract_topics(settings: Settings) -> list[str]:
    """Full names of every contract topic, deadletter included."""
    return [topic_name(settings.topic_prefix, t) for t in Topic]


async def describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition counts of the topics among ``names`` that exist."""
    existing = set(await admin.list_topics())
    present = [n for n in names if n in existing]
    if not present:
        return {}
    return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(present)}


async def max_message_bytes(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """The largest record batch each topic accepts: its ``max.message.bytes``, the broker's default included."""
    if not names:
        return {}
    found: dict[str, int] = {}
    for response in await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": None}) for name in names]
    ):
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise ServiceUnavailable(f"the broker did not describe topic {resource['resource_name']}:"
                                         f" {resource['error_message'] or resource['error_code']}")
            for entry in resource["config_entries"]:
                if entry["config_names"] == "max.message.bytes":
                    found[resource["resource_name"]] = int(entry["config_value"])
    return found


async def ensure_topics(settings: Settings, partitions: int | None = None) -> list[TopicState]:
    """Create missing contract topics with the configured partition count; check the existing ones.

    An existing topic with fewer partitions than configured is reported, never
    altered: adding partitions would move keys to other partitions and break
    per-entity ordering, so that is an operator's decision.
    """
    wanted = partitions or settings.partitions
    names = contract_topics(settings)
    async with admin_client(settings) as admin:
        counts = await describe(admin, names)
        created: set[str] = set()
        missing = [n for n in names if n not in counts]
        if missing:
            response = await admin.create_topics([_new_topic(n, wanted, settings) for n in missing])
            for name, code, message in response.topic_errors:
                if code == 0:
                    created.add(name)
                elif code != TopicAlreadyExistsError.errno:  # made meanwhile by someone else: checked below
                    raise IntegrityError(f"the broker refused to create topic {name}: {message} (error {code})")
            counts = await _wait_for_metadata(admin, names, settings)
    states = []
    for name in names:
        count = counts.get(name)
        if count is None:
            raise ServiceUnavailable(f"topic {name} was not created by the broker at {settings.kafka_bootstrap}")
        if name in created:
            action = "created"
        elif count != wanted:
            action = f"has {count} partitions, settings say {wanted} (not changed)"
        else:
            action = "ok"
        states.append(TopicState(name, count, action))
    return states


def _new_topic(name: str, partitions: int, settings: Settings) -> NewTopic:
    if name == topic_name(settings.topic_prefix, Topic.DEADLETTER):
        # Rejected records are copied whole, oversize ones included.
        return NewTopic(name, partitions, 1, topic_configs={"max.message.bytes": str(DEADLETTER_MAX_BYTES)})
    return NewTopic(name, partitions, 1)


async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: list[str], settings: Settings,
                             timeout: float = 30.0) -> dict[str, int]:
    """Partition counts once every topic shows in the metadata (creation completes asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        counts = await describe(admin, names)
        if len(counts) == len(names) or asyncio.get_running_loop().time() > deadline:
            return counts
        await asyncio.sleep(0.1)


def check(states: list[TopicState]) -> None:
    """Raise :class:`IntegrityError` when a topic disagrees with the settings."""
    bad = [s for s in states if s.action not in ("created", "ok")]
    if bad:
        raise IntegrityError(
            "topics disagree with COHORTFLOW_PARTITIONS: "
            + "; ".join(f"{s.name} {s.action}" for s in bad)
        )


async def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete topics that exist among ``names`` (tests and `rebuild` scratch topics)."""
    async with admin_client(settings) as admin:
        present = set(await admin.list_topics()) & set(names)
        if present:
            await admin.delete_topics(sorted(present))
