"""Run the local exchange simulator inside the daemon (the offline demo's exchange).

    [[feeds]]
    kind = "polymarket-sim"
    params = { port = 8765, seed = 1, markets = 3, rate = 20 }

It serves the market WebSocket, REST ``/book(s)`` and Gamma ``/markets`` on 127.0.0.1 and sends
nothing itself: a ``polymarket`` feed pointed at it (``ws_url = "ws://127.0.0.1:8765/ws/market"``,
``rest_url``/``gamma_url = "http://127.0.0.1:8765"``) connects to it exactly as it would to
Polymarket. Started with the other feeds; stopped at shutdown.

With ``sports = true`` it also runs a live basketball game (adapters/polymarket/simsports.py): the
score feed on ``ws://127.0.0.1:8765/ws/sports``, The Odds API on
``http://127.0.0.1:8765/v4/sports/basketball_nba/odds`` and the game's moneyline market (outcome
0 = the home team) in Gamma and on the market channel, its book lagging the score by
``market_lag_s``::

    params = { port = 8765, markets = 0, sports = true, home = "Boston Celtics",
               away = "Los Angeles Lakers", p0 = 0.6, game_seconds = 240, market_lag_s = 3,
               sports_loop = true }
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
    from .sim import SimConfig


class SimFeed(Feed):
    kind = "polymarket-sim"

    class Params(StrategyParams):
        host: str = "127.0.0.1"
        port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8765
        seed: int = 1
        markets: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 3
        rate: Annotated[float, msgspec.Meta(ge=0)] = 20.0
        tick_size: str = "0.01"
        trade_prob: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.05
        split_prob: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.1
        recording: str = ""
        speed: Annotated[float, msgspec.Meta(ge=0)] = 1.0
        # a live game (SimConfig's sports fields)
        sports: bool = False
        league: str = "nba"
        home: str = "Boston Celtics"
        away: str = "Los Angeles Lakers"
        p0: Annotated[float, msgspec.Meta(ge=0.01, le=0.99)] = 0.60
        game_seconds: Annotated[float, msgspec.Meta(gt=0)] = 240.0
        market_lag_s: Annotated[float, msgspec.Meta(ge=0)] = 3.0
        seconds_delay: Annotated[int, msgspec.Meta(ge=0)] = 3
        pregame_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
        sports_loop: bool = False
        ping_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
        pong_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
        odds_quota: Annotated[int, msgspec.Meta(ge=0)] = 500

    def config(self) -> SimConfig:
        """The simulator settings these params describe (ValueError: an inconsistent set)."""
        from .sim import SimConfig

        p = self.params
        return SimConfig(host=p.host, port=p.port, seed=p.seed, n_markets=p.markets, rate=p.rate,
                         tick_size=p.tick_size, trade_prob=p.trade_prob, split_prob=p.split_prob,
                         recording=p.recording or None, speed=p.speed, sports=p.sports, league=p.league,
                         home=p.home, away=p.away, p0=p.p0, game_seconds=p.game_seconds,
                         market_lag_s=p.market_lag_s, seconds_delay=p.seconds_delay, pregame_s=p.pregame_s,
                         sports_loop=p.sports_loop, ping_interval_s=p.ping_interval_s,
                         pong_timeout_s=p.pong_timeout_s, odds_quota=p.odds_quota)  # fmt: skip

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        from .sim import SimServer

        p = self.params
        send.close()  # it serves sockets; it has no inputs of its own
        async with SimServer(self.config()) as sim:
            logger.info("exchange simulator {} on {} ({} markets, seed {})", self.name, sim.rest_url, p.markets, p.seed)
            if sim.sports is not None:
                g = sim.sports.state()["games"][-1]
                logger.info("sports: {} ({}) on {}, odds on {}{}", g["title"], g["slug"], sim.sports_ws_url,
                            sim.odds_url, sim.sports.state()["odds"])  # fmt: skip
            await anyio.sleep_forever()
