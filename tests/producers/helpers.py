"""Shared by the producers tests: one valid call per event type, and reading a topic back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from cohortflow.contract import EVENT_TOPICS, topic_name
from cohortflow.settings import Settings

# One valid set of keyword arguments per event type (the data fields of the contract).
CALLS: dict[str, dict[str, Any]] = {
    "student.enrolled": {"student_id": "s1", "campus": "north", "floor": "f1"},
    "student.transferred": {"student_id": "s1", "campus": "south", "floor": "f2"},
    "student.withdrawn": {"student_id": "s1"},
    "student.assigned": {"student_id": "s1", "mentor_id": None},
    "mentor.joined": {"mentor_id": "m1", "campus": "north", "floor": "f1"},
    "mentor.transferred": {"mentor_id": "m1", "campus": "south", "floor": "f2"},
    "mentor.left": {"mentor_id": "m1"},
    "submission.submitted": {"submission_id": "sub1", "student_id": "s1", "pillar": "clt", "attempt": 1},
    "review.completed": {"review_id": "r1", "submission_id": "sub1", "student_id": "s1", "mentor_id": "m1",
                         "attempt": 1, "decision": "rejected"},
    "login.succeeded": {"user_id": "m1", "role": "mentor"},
    "login.failed": {"user_id": "s1", "reason": "bad_password"},
    "audit.recorded": {"actor_id": "a1", "action": "student.view", "entity_type": "student", "entity_id": "s1",
                       "metadata": {"ip": "10.0.0.1", "tags": [1, "x"]}},
    "notification.created": {"notification_id": "n1", "user_id": "s1", "kind": "review_completed"},
    "notification.read": {"notification_id": "n1", "user_id": "s1"},
    "notification.read_all": {"user_id": "s1"},
}


async def read_topics(settings: Settings, expected: int, timeout: float = 30) -> list:
    """Every record of the contract's event topics (waits until ``expected`` arrived, or the timeout)."""
    topics = [topic_name(settings.topic_prefix, t) for t in EVENT_TOPICS]
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, fetch_max_bytes=64 * 1024 * 1024,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    found: list = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < expected:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
        for records in (await consumer.getmany(timeout_ms=1000)).values():  # more than expected shows too
            found.extend(records)
    finally:
        await consumer.stop()
    return found


def read_topics_sync(settings: Settings, expected: int, timeout: float = 30) -> list:
    return asyncio.run(read_topics(settings, expected, timeout))
