"""A feed that plays a recording into the daemon as if it were live.

Each input line of the recording (engine lines, executor responses and clock ticks are skipped:
the running daemon makes its own) is sent through the kernel's door with its original source and
message, stamped with the live clock. ``speed`` paces it: 1.0 is real time, 10 is ten times
faster, 0 is as fast as the kernel takes it. At the end it stops (the daemon shuts down when all
feeds have stopped), loops, or idles.

    [[feeds]]
    kind = "player"
    params = { path = "recordings/demo.jsonl.gz", speed = 0 }
"""

from __future__ import annotations

from typing import Literal

import anyio
from anyio.abc import ObjectSendStream
from loguru import logger

from polybot.clock import Clock
from polybot.feeds import Feed
from polybot.journal import INPUT, JournalReader
from polybot.kernel import InboundRecord
from polybot.sources import bare_ts_for
from polybot.strategy import StrategyParams


class RecordingPlayer(Feed):
    kind = "player"

    class Params(StrategyParams):
        path: str
        speed: float = 0.0
        on_end: Literal["stop", "loop", "idle"] = "stop"
        bare_source: str = "polymarket.market"

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        p = self.params
        if p.speed < 0:
            raise ValueError("player speed must be >= 0")
        async with send:
            while True:
                n = await self._play_once(send, clock)
                logger.info("player {}: sent {} inputs from {}", self.name, n, p.path)
                if p.on_end == "loop":
                    continue
                if p.on_end == "idle":
                    await anyio.sleep_forever()
                return

    async def _play_once(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> int:
        p = self.params
        reader = JournalReader(p.path, bare_source=p.bare_source, bare_ts=bare_ts_for(p.bare_source))
        first_rec: int | None = None
        start = clock.now()
        n = 0
        for kind, ts, source, msg in reader:
            if kind != INPUT or source == "clock" or source.startswith("exec.") or source == "control":
                continue
            if p.speed > 0:
                if first_rec is None:
                    first_rec = ts
                due = start + int((ts - first_rec) / p.speed)
                delay = (due - clock.now()) / 1e9
                if delay > 0:
                    await anyio.sleep(delay)
            await send.send(InboundRecord(clock.now(), source, msg))
            n += 1
        return n
