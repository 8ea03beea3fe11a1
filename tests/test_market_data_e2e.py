"""The whole market-data path on loopback: simulator -> WebSocket feed -> kernel door -> books.

Each fault the simulator can inject (a dropped connection, a silent freeze, malformed frames, a
tick-size change, a crossed book) must end with every book healthy again and in hash-verified
agreement with the server: the same levels as the server's REST book, the same hash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import anyio
import pytest

from adapters.polymarket.feed import MarketFeed
from adapters.polymarket.sim import SimConfig, SimServer
from polybot.clock import LiveClock
from polybot.config import Config
from polybot.events import BookHealth, FeedDisconnected
from polybot.kernel import InboundRecord, Kernel
from polybot.units import to_units
from polybot.wiring import build_kernel

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Rig:
    def __init__(self, sim: SimServer, kernel: Kernel, feed: MarketFeed) -> None:
        self.sim = sim
        self.kernel = kernel
        self.feed = feed
        self.health: list[BookHealth] = []
        self.disconnects: list[FeedDisconnected] = []
        kernel.bus.subscribe(BookHealth, self.health.append)
        kernel.bus.subscribe(FeedDisconnected, self.disconnects.append)

    @property
    def assets(self) -> list[str]:
        return [a for m in self.sim.state()["markets"] for a in (m["yes"], m["no"])]

    def all_healthy(self) -> bool:
        books = self.kernel.books
        return all(a in books and books[a].healthy for a in self.assets)

    def counts(self) -> dict[str, int]:
        return self.kernel.integrity.summary()["total"]

    async def until(self, cond: Callable[[], bool], timeout: float = 8.0, what: str = "") -> None:
        with anyio.fail_after(timeout):
            while not cond():
                await anyio.sleep(0.02)

    async def assert_agreement(self) -> None:
        """Pause the walk, let in-flight frames land, and compare every book with the server."""
        self.sim.pause()
        await anyio.sleep(0.3)
        await self.until(self.all_healthy, what="healthy before comparing")
        for a in self.assets:
            want = self.sim.book(a)
            assert want is not None
            b = self.kernel.books[a]
            bids = sorted((to_units(x["price"]), to_units(x["size"])) for x in want["bids"])
            asks = sorted((to_units(x["price"]), to_units(x["size"])) for x in want["asks"])
            assert list(b.bids.items()) == bids, a
            assert list(b.asks.items()) == asks, a
            assert b.tick_size == to_units(want["tick_size"]), a
            # and the book hashes to the server's current hash (its REST book, its timestamp)
            ok = self.kernel.integrity.matches(b, int(want["timestamp"]) * 1_000_000, want["hash"], search=True)
            assert ok, f"{a}: local book does not hash to the server's {want['hash']}"
        c = self.counts()
        assert c["passed"] > 0
        self.sim.resume()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = SimServer(SimConfig(seed=11, n_markets=2, rate=60, trade_prob=0.08, split_prob=0.15))
    await sim.start()
    kernel = build_kernel(Config(), verify_books=True)
    kernel.start()
    feed = MarketFeed("pm", {
        "ws_url": sim.ws_url, "rest_url": sim.rest_url, "gamma_url": sim.gamma_url,
        "markets": [m["slug"] for m in sim.markets],
        "ping_interval_s": 0.2, "pong_timeout_s": 0.6, "dump_timeout_s": 1.0,
        "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "resync_min_interval_s": 0.1,
    })  # fmt: skip
    feed.attach(kernel)
    send, recv = anyio.create_memory_object_stream[InboundRecord](1000)
    clock = LiveClock()

    async def consume() -> None:
        async with recv:
            async for rec in recv:
                kernel.process(rec.ts, rec.source, rec.msg)

    r = Rig(sim, kernel, feed)
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        tg.start_soon(feed.run, send, clock)
        await r.until(lambda: len(r.assets) == 4 and r.all_healthy() and r.counts().get("passed", 0) > 20,
                      what="initial sync")  # fmt: skip
        yield r
        tg.cancel_scope.cancel()
    await sim.stop()


def _no_failures(r: Rig) -> None:
    c = r.counts()
    assert c["failed"] == 0, c
    assert r.kernel.stats.drop_reasons.get("polymarket.market:schema", 0) == 0


async def test_steady_state_every_check_passes(rig: Rig) -> None:
    await anyio.sleep(1.0)
    _no_failures(rig)
    assert rig.counts()["split_runs"] >= 0
    await rig.assert_agreement()


async def test_dropped_connection_resyncs_from_the_new_dump(rig: Rig) -> None:
    before = rig.counts()["snapshots"]
    rig.sim.drop()
    await rig.until(lambda: rig.disconnects, what="disconnect seen")
    assert set(rig.disconnects[0].asset_ids) == set(rig.assets)
    assert any(not h.healthy and h.reason.startswith("reconnect") for h in rig.health)
    await rig.until(lambda: rig.all_healthy() and rig.counts()["snapshots"] >= before + 4, what="dump after reconnect")
    _no_failures(rig)
    await rig.assert_agreement()


async def test_silent_freeze_is_detected_by_missing_pongs(rig: Rig) -> None:
    rig.sim.freeze(2.0, drop=True)  # frames produced meanwhile are lost: only a resync recovers
    await rig.until(lambda: rig.feed.stats["reconnects"].get("pong_timeout", 0) >= 1, what="pong timeout")
    await anyio.sleep(2.2)
    await rig.until(rig.all_healthy, what="healthy after the freeze")
    await rig.assert_agreement()


async def test_malformed_frames_are_counted_and_repaired(rig: Rig) -> None:
    rig.sim.malformed("json")
    rig.sim.malformed("event_type")
    rig.sim.malformed("price")  # names the asset: its book missed a change -> unhealthy -> resync
    await rig.until(lambda: rig.kernel.stats.drop_reasons.get("polymarket.market:bad_value", 0) >= 1, what="bad value")
    drops = rig.kernel.stats.drop_reasons
    assert drops["polymarket.market:malformed"] >= 1
    assert drops["polymarket.market:unknown_event_type"] >= 1
    assert any(not h.healthy and h.reason.startswith("parse failure") for h in rig.health)
    await rig.until(lambda: rig.feed.stats["resyncs"] >= 1, what="REST resync")
    await rig.assert_agreement()


async def test_tick_size_change_resyncs_onto_the_new_grid(rig: Rig) -> None:
    market = rig.sim.state()["markets"][0]
    new_tick = rig.sim.tick_size(market["market"])
    await rig.until(lambda: any(not h.healthy and h.reason == "tick size change" for h in rig.health), what="unhealthy")
    await rig.until(lambda: rig.feed.stats["resyncs"] >= 1, what="REST resync")
    await rig.assert_agreement()
    assert rig.kernel.books[market["yes"]].tick_size == to_units(new_tick)


async def test_crossed_book_is_repaired_from_rest(rig: Rig) -> None:
    market = rig.sim.state()["markets"][1]
    rig.sim.crossed(market["market"])
    await rig.until(lambda: any(not h.healthy and h.asset_id == market["yes"] for h in rig.health), what="unhealthy")
    reasons = {h.reason for h in rig.health if not h.healthy}
    assert reasons & {"crossed book"} or any(r.startswith("best bid/ask mismatch") for r in reasons)
    await rig.until(lambda: rig.feed.stats["resyncs"] >= 1, what="REST resync")
    await rig.assert_agreement()
