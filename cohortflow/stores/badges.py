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
from collections.abc import Awaitable, Callable, Iterable, Mapping

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cohortflow.stores.sink import BadgeUpdate

log = logging.getLogger(__name__)

# KEYS: badge hashes; ARGV[1] channel; ARGV[2] a JSON array beside KEYS of [rev, unread, pending ('' for
# none), message], all strings. One call applies a whole chunk: per-command packing was most of the cost.
_WRITE = """
local rows = cjson.decode(ARGV[2])
local applied = 0
for i, key in ipairs(KEYS) do
  local row = rows[i]
  local held = redis.call('HGET', key, 'rev')
  if not held or tonumber(held) < tonumber(row[1]) then
    redis.call('HSET', key, 'rev', row[1], 'unread', row[2])
    if row[3] == '' then
      redis.call('HDEL', key, 'pending_reviews')
    else
      redis.call('HSET', key, 'pending_reviews', row[3])
    end
    redis.call('PUBLISH', ARGV[1], row[4])
    applied = applied + 1
  end
end
return applied
"""
WRITE_CHUNK = 1000  # badges per script call: bounds how long one call holds Redis


def badge_key(prefix: str, user_id: str) -> str:
    return f"{prefix}badge:{user_id}"


def held_badge(raw: Mapping[bytes, bytes]) -> tuple[int, int | None, int]:
    """``(unread, pending_reviews, rev)`` of a badge hash as Redis returns it; no hash reads ``(0, None, 0)``."""
    pending = raw.get(b"pending_reviews")
    return int(raw.get(b"unread", 0)), None if pending is None else int(pending), int(raw.get(b"rev", 0))


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
                await self._queue(pipe, updates)
                results = await pipe.execute()
        except RedisError as exc:
            log.warning("Redis write of %d badges failed (%s); they will be restored from PostgreSQL",
                        len(updates), exc)
            self.needs_restore = True
            return 0
        if not results[0]:
            self.needs_restore = True
        return sum(results[1:])

    async def _queue(self, pipe, updates: list[BadgeUpdate]) -> None:  # redis pipeline
        """Queue the script calls that apply ``updates``, a chunk per call."""
        for start in range(0, len(updates), WRITE_CHUNK):
            chunk = updates[start:start + WRITE_CHUNK]
            rows = [[str(u.rev), str(u.unread), "" if u.pending_reviews is None else str(u.pending_reviews),
                     orjson.dumps({"user_id": u.user_id, "unread": u.unread, "pending_reviews": u.pending_reviews,
                                   "rev": u.rev}).decode()] for u in chunk]
            await self._script(keys=[badge_key(self.prefix, u.user_id) for u in chunk],
                               args=[self.channel, orjson.dumps(rows)], client=pipe)

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
                    await self._queue(pipe, page)
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
