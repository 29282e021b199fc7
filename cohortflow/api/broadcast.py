"""The badge channel's fan-out: one Redis subscription per process, a queue per SSE client."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import redis.asyncio as aioredis


class Broadcaster:
    """One Redis subscription to the badge channel, fanned out to every SSE client's queue."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.listeners: dict[str, set[asyncio.Queue]] = {}
        self._task: asyncio.Task | None = None
        self.ready = asyncio.Event()

    def subscribe(self, user_id: str) -> asyncio.Queue:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        queue: asyncio.Queue = asyncio.Queue(maxsize=8)
        self.listeners.setdefault(user_id, set()).add(queue)
        return queue

    def unsubscribe(self, user_id: str, queue: asyncio.Queue) -> None:
        queues = self.listeners.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.listeners[user_id]

    @property
    def clients(self) -> int:
        return sum(len(q) for q in self.listeners.values())

    async def _run(self) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message["data"]
                        user = orjson.loads(data).get("user_id")
                        for queue in tuple(self.listeners.get(user, ())):
                            if queue.full():  # values are absolute: only the newest matters
                                queue.get_nowait()
                            queue.put_nowait(data)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis restarted (or anything else): subscribe again
                self.ready.clear()
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
