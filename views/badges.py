"""Notification badges in Redis: absolute values mirrored from PostgreSQL's ``badges`` table.

Every write carries the row's revision and a Lua script applies it only when
it is newer than what Redis holds, so concurrent workers, late writers and a
full restore can never move a badge backwards. A marker key proves Redis has
been restored since it last lost its data; when it is missing (Redis
restarted empty) or a write failed, the worker restores every badge from
PostgreSQL by itself: no replay of the topics is needed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from views.sink import BadgeUpdate

log = logging.getLogger(__name__)

# KEYS[1] badge hash; ARGV rev, unread, pending ('' for none), channel, user_id
_WRITE = """
local held = redis.call('HGET', KEYS[1], 'rev')
if held and tonumber(held) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'unread', ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'pending_reviews')
else
  redis.call('HSET', KEYS[1], 'pending_reviews', ARGV[3])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


def badge_key(prefix: str, user_id: str) -> str:
    return f"{prefix}badge:{user_id}"


def badge_channel(prefix: str) -> str:
    """The pub/sub channel that carries every badge change (the API's SSE listens to it)."""
    return f"{prefix}badges"


class RedisBadges:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.marker = f"{prefix}badges:restored"
        self.channel = badge_channel(prefix)
        self._script = client.register_script(_WRITE)
        self.needs_restore = True  # a worker restores once at start: it may have died between the two writes

    async def write(self, updates: Iterable[BadgeUpdate]) -> int:
        """Apply ``updates`` (newer revisions only); return how many changed. Never raises for Redis trouble."""
        updates = list(updates)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.exists(self.marker)
                for update in updates:
                    await self._queue(pipe, update)
                results = await pipe.execute()
        except RedisError as exc:
            log.warning("Redis write of %d badges failed (%s); they will be restored from PostgreSQL", len(updates), exc)
            self.needs_restore = True
            return 0
        if not results[0]:
            self.needs_restore = True
        return sum(results[1:])

    async def _queue(self, pipe, update: BadgeUpdate) -> None:  # noqa: ANN001 - redis pipeline
        pending = "" if update.pending_reviews is None else str(update.pending_reviews)
        message = orjson.dumps({"user_id": update.user_id, "unread": update.unread,
                                "pending_reviews": update.pending_reviews, "rev": update.rev})
        await self._script(keys=[badge_key(self.prefix, update.user_id)],
                     args=[update.rev, update.unread, pending, self.channel, message], client=pipe)

    async def restore(self, pages: Callable[[str], Awaitable[list[BadgeUpdate]]]) -> int:
        """Write every badge PostgreSQL holds (page by page, in user_id order), then vouch for it.

        Returns how many badges Redis did not have at their revision. A token
        written first must still be there at the end: if Redis lost its data
        meanwhile, the restore is not vouched for and ``needs_restore`` stays set.
        """
        written = 0
        token = f"restoring:{uuid.uuid4().hex}"
        after = ""
        try:
            await self.client.set(self.marker, token)
            while True:
                page = await pages(after)
                if not page:
                    break
                async with self.client.pipeline(transaction=False) as pipe:
                    for update in page:
                        await self._queue(pipe, update)
                    written += sum(await pipe.execute())
                after = page[-1].user_id
            if (await self.client.get(self.marker)) != token.encode():
                self.needs_restore = True  # Redis restarted while we wrote: again
            else:
                await self.client.set(self.marker, token.removeprefix("restoring:"))
        except RedisError as exc:
            log.warning("restoring badges into Redis failed (%s); will retry", exc)
            self.needs_restore = True
        return written

    async def read(self, user_id: str) -> dict[str, int]:
        """One badge as the API serves it: unread, and pending_reviews for mentors."""
        raw = await self.client.hgetall(badge_key(self.prefix, user_id))
        badge = {"unread": int(raw.get(b"unread", 0))}
        if b"pending_reviews" in raw:
            badge["pending_reviews"] = int(raw[b"pending_reviews"])
        return badge
