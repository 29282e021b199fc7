"""`cohortflow topics ensure` against the real broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from cohortflow.contract.topics import Topic, topic_name
from cohortflow.errors import IntegrityError
from cohortflow.pipeline.deadletter import DEADLETTER_MAX_BYTES
from cohortflow.pipeline.topics import admin_client, check, describe, ensure_topics, max_message_bytes
from cohortflow.settings import Settings


def test_ensure_creates_every_contract_topic_then_reports_ok(stack_settings: Settings) -> None:
    first = asyncio.run(ensure_topics(stack_settings))
    assert {s.name for s in first} == {topic_name(stack_settings.topic_prefix, t) for t in Topic}
    assert len(first) == 7  # six event topics and the deadletter topic
    assert all(s.action == "created" and s.partitions == stack_settings.partitions for s in first)

    again = asyncio.run(ensure_topics(stack_settings))
    assert all(s.action == "ok" for s in again)
    check(again)


def test_a_topic_with_the_wrong_partition_count_is_reported_not_altered(stack_settings: Settings) -> None:
    roster = topic_name(stack_settings.topic_prefix, Topic.ROSTER)

    async def precreate() -> dict[str, int]:
        async with admin_client(stack_settings) as admin:
            await admin.create_topics([NewTopic(roster, 1, 1)])
        states = await ensure_topics(stack_settings)
        with pytest.raises(IntegrityError, match=f"{roster} has 1 partitions, settings say 3"):
            check(states)
        async with admin_client(stack_settings) as admin:
            return await describe(admin, [roster])

    assert asyncio.run(precreate()) == {roster: 1}


def test_max_message_bytes_reads_each_topics_limit_with_the_brokers_default(stack_settings: Settings) -> None:
    """What the worker sizes its per-partition fetches by (a larger batch would stall its partition)."""
    roster = topic_name(stack_settings.topic_prefix, Topic.ROSTER)
    audit = topic_name(stack_settings.topic_prefix, Topic.AUDIT)
    deadletter = topic_name(stack_settings.topic_prefix, Topic.DEADLETTER)

    async def limits() -> tuple[dict[str, int], int]:
        async with admin_client(stack_settings) as admin:
            await admin.create_topics([NewTopic(audit, 1, 1, topic_configs={"max.message.bytes": "3145728"})])
            await ensure_topics(stack_settings)
            # node.id=1 on the stack `make services` starts (cohortflow/devstack/kafka.py)
            broker = (await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1",
                                                                   {"message.max.bytes": None})]))[0]
            default = int(broker.to_object()["resources"][0]["config_entries"][0]["config_value"])
            return await max_message_bytes(admin, [roster, audit, deadletter]), default

    found, default = asyncio.run(limits())
    assert found == {roster: default, audit: 3 * 1024 * 1024, deadletter: DEADLETTER_MAX_BYTES}


def test_cli_topics_ensure(stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from cohortflow.cli import cli

    monkeypatch.setenv("COHORTFLOW_TOPIC_PREFIX", stack_settings.topic_prefix)
    monkeypatch.setenv("COHORTFLOW_PARTITIONS", "2")
    result = CliRunner().invoke(cli, ["topics", "ensure"])
    assert result.exit_code == 0, result.output
    assert result.output.count("created") == 7
