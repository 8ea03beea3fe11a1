"""Run the local exchange simulator inside the daemon (the offline demo's exchange).

    [[feeds]]
    kind = "polymarket-sim"
    params = { port = 8765, seed = 1, markets = 3, rate = 20 }

It serves the market WebSocket, REST ``/book(s)`` and Gamma ``/markets`` on 127.0.0.1 and sends
nothing itself: a ``polymarket`` feed pointed at it (``ws_url = "ws://127.0.0.1:8765/ws/market"``,
``rest_url``/``gamma_url = "http://127.0.0.1:8765"``) connects to it exactly as it would to
Polymarket. Started with the other feeds; stopped at shutdown.
"""

from __future__ import annotations

from typing import Annotated

import anyio
import msgspec
from anyio.abc import ObjectSendStream
from loguru import logger

from polybot.clock import Clock
from polybot.feeds import Feed
from polybot.kernel import InboundRecord
from polybot.strategy import StrategyParams


class SimFeed(Feed):
    kind = "polymarket-sim"

    class Params(StrategyParams):
        host: str = "127.0.0.1"
        port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8765
        seed: int = 1
        markets: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 3
        rate: Annotated[float, msgspec.Meta(ge=0)] = 20.0
        tick_size: str = "0.01"
        trade_prob: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.05
        split_prob: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.1
        recording: str = ""
        speed: Annotated[float, msgspec.Meta(ge=0)] = 1.0

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        from .sim import SimConfig, SimServer

        p = self.params
        send.close()  # it serves sockets; it has no inputs of its own
        cfg = SimConfig(host=p.host, port=p.port, seed=p.seed, n_markets=p.markets, rate=p.rate,
                        tick_size=p.tick_size, trade_prob=p.trade_prob, split_prob=p.split_prob,
                        recording=p.recording or None, speed=p.speed)  # fmt: skip
        async with SimServer(cfg) as sim:
            logger.info("exchange simulator {} on {} ({} markets, seed {})", self.name, sim.rest_url, p.markets, p.seed)
            await anyio.sleep_forever()
