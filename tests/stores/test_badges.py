"""Badge writes into the real Redis: newer revisions only, absent pending_reviews removed, one message per change."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as aioredis

from cohortflow.settings import Settings
from cohortflow.stores.badges import WRITE_CHUNK, RedisBadges, badge_channel, badge_key
from cohortflow.stores.sink import BadgeUpdate

pytestmark = pytest.mark.integration


async def _write_and_listen(settings: Settings, rounds: list[list[BadgeUpdate]]) -> tuple[list[int], list[dict], dict]:
    """Write each round in turn; return what each write reported, the messages published, and every badge hash."""
    client = aioredis.Redis.from_url(settings.redis_connection_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(badge_channel(settings.redis_prefix))
    await pubsub.get_message(timeout=1)  # the subscription's confirmation
    try:
        badges = RedisBadges(client, settings.redis_prefix)
        reported = [await badges.write(updates) for updates in rounds]
        messages = []
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)) is not None:
            messages.append(orjson.loads(message["data"]))
        users = {u.user_id for updates in rounds for u in updates}
        hashes = {user: await client.hgetall(badge_key(settings.redis_prefix, user)) for user in sorted(users)}
        return reported, messages, hashes
    finally:
        await pubsub.aclose()
        await client.aclose()


def test_a_write_applies_only_newer_revisions_and_mirrors_absent_pending_reviews(stack_settings: Settings) -> None:
    first = [BadgeUpdate("u1", 3, None, 5), BadgeUpdate("m1", 1, 4, 7)]
    second = [
        BadgeUpdate("u1", 9, None, 4),  # older than what Redis holds: ignored
        BadgeUpdate("u1", 9, None, 5),  # the same revision: ignored
        BadgeUpdate("m1", 0, None, 8),  # newer, and no longer a mentor's badge: pending_reviews goes
    ]
    reported, messages, hashes = asyncio.run(_write_and_listen(stack_settings, [first, second]))

    assert reported == [2, 1]
    assert hashes["u1"] == {b"rev": b"5", b"unread": b"3"}
    assert hashes["m1"] == {b"rev": b"8", b"unread": b"0"}
    assert messages == [
        {"user_id": "u1", "unread": 3, "pending_reviews": None, "rev": 5},
        {"user_id": "m1", "unread": 1, "pending_reviews": 4, "rev": 7},
        {"user_id": "m1", "unread": 0, "pending_reviews": None, "rev": 8},
    ]


def test_a_write_larger_than_one_script_call_applies_every_badge_in_order(stack_settings: Settings) -> None:
    count = 2 * WRITE_CHUNK + 7
    updates = [BadgeUpdate(f"user-{i:05d}", i, i % 3 or None, 10**12 + i) for i in range(count)]
    updates.append(BadgeUpdate("user-00000", 42, 1, 10**12 + count))  # in the last chunk: wins over the first

    reported, messages, hashes = asyncio.run(_write_and_listen(stack_settings, [updates]))

    assert reported == [count + 1]
    assert len(messages) == count + 1
    assert hashes["user-00000"] == {b"rev": str(10**12 + count).encode(), b"unread": b"42", b"pending_reviews": b"1"}
    for update in updates[1:-1]:
        expected = {b"rev": str(update.rev).encode(), b"unread": str(update.unread).encode()}
        if update.pending_reviews is not None:
            expected[b"pending_reviews"] = str(update.pending_reviews).encode()
        assert hashes[update.user_id] == expected
