"""Run the Polymarket US simulator (:mod:`adapters.polymarket_us.sim`) inside the daemon::

    [[feeds]]
    kind = "polymarket-us-sim"
    params = { port = 8766, seed = 1, markets = 2, rate = 20, demo_key = true }

It serves the public gateway, the authenticated API and both WebSockets on 127.0.0.1 and sends
nothing through the kernel's door itself: a ``polymarket-us`` feed (and the ``polymarket-us``
executor) pointed at ``http://127.0.0.1:8766`` / ``ws://127.0.0.1:8766`` talk to it exactly as
to Polymarket US. Keys it accepts: ``key_id`` + ``public_key`` (base64 Ed25519), and/or
``demo_key = true`` for the documented offline demo key pair (``sim.DEMO_KEY_ID`` /
``sim.DEMO_SECRET_KEY``). Explicit markets: ``slugs = ["nba-bos-lal-2026-11-21"]`` with optional
``titles`` and ``sides = [["Celtics", "Lakers"]]``. Started with the other feeds; stopped at
shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import anyio
import msgspec
from anyio.abc import ObjectSendStream
from loguru import logger

from polybot.clock import Clock
from polybot.feeds import Feed
from polybot.kernel import InboundRecord
from polybot.strategy import StrategyParams

if TYPE_CHECKING:  # pragma: no cover
    from .sim import UsSimConfig


class UsSimFeed(Feed):
    kind = "polymarket-us-sim"

    class Params(StrategyParams):
        host: str = "127.0.0.1"
        port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8766
        seed: int = 1
        markets: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 2
        slugs: list[str] = []
        titles: list[str] = []
        sides: list[list[str]] = []
        rate: Annotated[float, msgspec.Meta(ge=0)] = 20.0
        heartbeat_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
        taker_fee_bps: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
        maker_rebate_bps: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
        cash: str = "10000"
        key_id: str = ""
        public_key: str = ""
        demo_key: bool = False

    def config(self) -> UsSimConfig:
        """The simulator settings these params describe (ValueError: an inconsistent set)."""
        from .sim import DEMO_KEY_ID, DEMO_PUBLIC_KEY, UsSimConfig

        p = self.params
        keys: dict[str, str] = {}
        if bool(p.key_id) != bool(p.public_key):
            raise ValueError(f"{self.name}: key_id and public_key go together")
        if p.key_id:
            keys[p.key_id] = p.public_key
        if p.demo_key:
            keys[DEMO_KEY_ID] = DEMO_PUBLIC_KEY
        return UsSimConfig(host=p.host, port=p.port, seed=p.seed, markets=p.markets, slugs=list(p.slugs),
                           titles=list(p.titles), sides=[list(s) for s in p.sides], rate=p.rate,
                           heartbeat_s=p.heartbeat_s, taker_fee_bps=p.taker_fee_bps, maker_rebate_bps=p.maker_rebate_bps, cash=p.cash,
                           keys=keys)  # fmt: skip

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        from .sim import UsSimServer

        cfg = self.config()
        send.close()  # it serves sockets; it has no inputs of its own
        async with UsSimServer(cfg) as sim:
            logger.info("polymarket-us simulator {} on {} ({} markets, seed {}, keys: {})", self.name, sim.url,
                        len(sim.slugs), cfg.seed, ", ".join(sorted(cfg.keys)) or "none")  # fmt: skip
            if not cfg.keys:
                logger.warning("polymarket-us simulator {}: no API key registered (set key_id + public_key or "
                               "demo_key = true): authenticated requests will be refused", self.name)  # fmt: skip
            await anyio.sleep_forever()
