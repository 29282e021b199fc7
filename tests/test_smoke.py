"""Smoke tests against the real services: every event type through Kafka, and a PostgreSQL and Redis round trip."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from cohortflow.contract import EVENT_CLASSES, TOPIC_OF_TYPE, decode, encode, record_key, topic_name
from cohortflow.contract.events import EventBase
from cohortflow.settings import Settings

WHEN = datetime(2026, 11, 23, 10, 15, 30, 123000, tzinfo=UTC)

DATA = {
    "student.enrolled": {"student_id": "s1", "campus": "north", "floor": "3"},
    "student.transferred": {"student_id": "s1", "campus": "north", "floor": "4"},
    "student.withdrawn": {"student_id": "s1"},
    "student.assigned": {"student_id": "s1", "mentor_id": "m1"},
    "mentor.joined": {"mentor_id": "m1", "campus": "north", "floor": "3"},
    "mentor.transferred": {"mentor_id": "m1", "campus": "north", "floor": "4"},
    "mentor.left": {"mentor_id": "m1"},
    "submission.submitted": {"submission_id": "sub1", "student_id": "s1", "pillar": "clt", "attempt": 1},
    "review.completed": {"review_id": "r1", "submission_id": "sub1", "student_id": "s1", "mentor_id": "m1",
                         "attempt": 1, "decision": "approved"},
    "login.succeeded": {"user_id": "s1", "role": "student"},
    "login.failed": {"user_id": "s1", "reason": "bad password"},
    "audit.recorded": {"actor_id": "m1", "action": "review.update", "entity_type": "submission",
                       "entity_id": "sub1", "metadata": {"from": "rejected", "to": "approved"}},
    "notification.created": {"notification_id": "n1", "user_id": "s1", "kind": "review"},
    "notification.read": {"notification_id": "n1", "user_id": "s1"},
    "notification.read_all": {"user_id": "s1"},
}


def one_of_each() -> list[EventBase]:
    assert set(DATA) == set(EVENT_CLASSES), "the smoke test must cover every event type"
    return [EVENT_CLASSES[t](event_id=f"e-{t}", occurred_at=WHEN, source="smoke", data=DATA[t]) for t in DATA]


def test_every_event_type_round_trips_through_kafka(stack: Settings) -> None:
    events = one_of_each()

    async def run() -> list:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for event in events:
                topic = topic_name(stack.topic_prefix, TOPIC_OF_TYPE[event.type])
                await producer.send_and_wait(topic, encode(event), key=record_key(event))
        finally:
            await producer.stop()
        topics = sorted({topic_name(stack.topic_prefix, TOPIC_OF_TYPE[e.type]) for e in events})
        consumer = AIOKafkaConsumer(*topics, bootstrap_servers=stack.kafka_bootstrap, group_id=stack.consumer_group,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        received = []
        try:
            async with asyncio.timeout(60):
                while len(received) < len(events):
                    for records in (await consumer.getmany(timeout_ms=1000)).values():
                        received += [decode(r.topic, r.key, r.value, stack.contract) for r in records]
        finally:
            await consumer.stop()
        return received

    received = asyncio.run(run())
    assert sorted(received, key=lambda e: e.event_id) == sorted(events, key=lambda e: e.event_id)


def test_postgres_round_trip(stack: Settings) -> None:
    with psycopg.connect(stack.postgres_url) as conn:
        conn.execute(f"SET search_path TO {stack.postgres_schema}")
        conn.execute("CREATE TABLE smoke (id uuid PRIMARY KEY, at timestamptz NOT NULL)")
        token = uuid.uuid4()
        conn.execute("INSERT INTO smoke VALUES (%s, %s)", [token, WHEN])
        assert conn.execute("SELECT at FROM smoke WHERE id = %s", [token]).fetchone() == (WHEN,)
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")


def test_redis_round_trip(stack: Settings) -> None:
    with redis.Redis.from_url(stack.redis_connection_url) as client:
        key = f"{stack.redis_prefix}smoke"
        client.hset(key, mapping={"unread": 3, "pending_reviews": 7})
        assert client.hgetall(key) == {b"unread": b"3", b"pending_reviews": b"7"}
        assert client.info("server")["redis_version"].startswith("7.")
