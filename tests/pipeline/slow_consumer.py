"""`python -m tests.pipeline.slow_consumer worker ...`: the worker command, its consumer thread slowed down.

Every ``earliest_offsets`` call (made by an assignment, in Faust's consumer thread) first prints
``SLOW earliest_offsets`` and waits ``SLOW_EARLIEST_SECONDS``: a SIGTERM sent after that line lands while an
assignment waits on the consumer thread, on demand instead of by chance (tests/pipeline/test_workers.py).

With ``SLOW_REVOKED_SECONDS``, the consumer thread also waits that long after each revocation callback (the
first join's included), printing ``SLOW after revoke``: the group is then mid-rebalance (Faust's
``app.rebalancing`` is set) while no callback of the app runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from cohortflow.cli import cli

DELAY = float(os.environ.get("SLOW_EARLIEST_SECONDS", "3"))
REVOKED_DELAY = float(os.environ.get("SLOW_REVOKED_SECONDS", "0"))
_revoked = AIOKafkaConsumerThread.on_partitions_revoked


async def _slow_earliest(self: AIOKafkaConsumerThread, *partitions: Any) -> Any:
    async def slowly() -> Any:  # runs in the consumer thread, like the call it delays
        print("SLOW earliest_offsets", file=sys.stderr, flush=True)
        await asyncio.sleep(DELAY)
        return await self._ensure_consumer().beginning_offsets(partitions)

    return await self.call_thread(slowly)


async def _slow_after_revoke(self: AIOKafkaConsumerThread, revoked: Any) -> None:
    await _revoked(self, revoked)  # the app's callback, on the main loop; it has ended here
    print("SLOW after revoke", file=sys.stderr, flush=True)
    await asyncio.sleep(REVOKED_DELAY)


AIOKafkaConsumerThread.earliest_offsets = _slow_earliest  # type: ignore[method-assign]
if REVOKED_DELAY:
    AIOKafkaConsumerThread.on_partitions_revoked = _slow_after_revoke  # type: ignore[method-assign]

if __name__ == "__main__":
    cli(prog_name="cohortflow")
