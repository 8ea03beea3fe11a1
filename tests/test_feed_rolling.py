"""Rolling series on loopback: the market feed following ``btc-updown-5m`` against the simulator.

The feed runs on a fake clock (an object whose ``now()`` the test moves); the simulator's time is
moved by its control API (``/_sim/advance``, :meth:`SimServer.advance`), so whole windows pass
without waiting. A small proxy in front of the simulator's Gamma injects failures. The records
the feed sends go through a real kernel (which publishes ``MarketResolved`` back to the feed).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from loguru import logger

from adapters.polymarket.feed import MarketFeed, book_asset_ids
from adapters.polymarket.gamma import decode_gamma, window_slug
from adapters.polymarket.sim import SimConfig, SimServer
from adapters.polymarket.simseries import gamma_series_slug, window_title
from polybot.config import Config, load_config
from polybot.events import FillEvent, MarketInfo, MarketResolved
from polybot.journal import INPUT, JournalReader
from polybot.kernel import InboundRecord, Kernel
from polybot.replay import replay
from polybot.synthetic import write_stream
from polybot.wiring import build_kernel

pytestmark = pytest.mark.anyio

NS = 1_000_000_000
T0 = 1_790_000_100  # a 5-minute boundary (unix s)
SERIES = "btc-updown-5m"
ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "recordings" / "rolling-btc-5m.jsonl.gz"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """The feed's clock: ``now()`` in ns, moved by the test."""

    def __init__(self, ns: int) -> None:
        self.t = ns

    def now(self) -> int:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += round(seconds * NS)


class GammaProxy:
    """Forwards Gamma GETs to the simulator; ``fail`` answers the next requests with a 500,
    ``garbage`` with a 200 that is not JSON."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.fail = 0
        self.garbage = 0
        self.requests: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        assert self._runner is not None and self._http is not None
        await self._http.close()
        await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500, text='{"error":"internal"}', content_type="application/json")
        if self.garbage > 0:
            self.garbage -= 1
            return web.Response(status=200, text="<html>maintenance</html>", content_type="text/html")
        assert self._http is not None
        async with self._http.get(self.target + request.path_qs) as resp:
            body = await resp.read()
            return web.Response(status=resp.status, body=body, content_type="application/json")


@dataclass
class Rig:
    sim: SimServer
    proxy: GammaProxy
    kernel: Kernel
    feed: MarketFeed
    clock: FakeClock
    records: list[InboundRecord] = field(default_factory=list)
    infos: list[MarketInfo] = field(default_factory=list)
    resolved: list[MarketResolved] = field(default_factory=list)

    def window(self, k: int) -> dict[str, Any]:
        """The simulator's window ``k`` windows after the first (T0)."""
        slug = window_slug(SERIES, T0 + 300 * k)
        return next(w for w in self.sim.series.state()["windows"] if w["slug"] == slug)  # type: ignore[union-attr]

    def sim_subscribed(self) -> set[str]:
        return {a for c in self.sim._conns for a in c.assets}

    def subscribed(self, w: dict[str, Any]) -> bool:
        tokens = {w["up"], w["down"]}
        return tokens <= set(self.feed.assets) and tokens <= self.sim_subscribed()

    def unsubscribed(self, w: dict[str, Any]) -> bool:
        tokens = {w["up"], w["down"]}
        return not tokens & set(self.feed.assets) and not tokens & self.sim_subscribed()

    def gamma_index(self, cid: str) -> int:
        return next(i for i, r in enumerate(self.records)
                    if r.source == "polymarket.gamma" and cid.encode() in r.msg)  # fmt: skip

    def book_index(self, asset: str) -> int:
        return next(i for i, r in enumerate(self.records)
                    if r.source == "polymarket.market" and asset in book_asset_ids(r.msg))  # fmt: skip

    async def advance(self, seconds: float, http: bool = False) -> None:
        """Move both clocks: the feed's fake one and the simulator's (through its control API)."""
        self.clock.advance(seconds)
        if http:
            async with aiohttp.ClientSession() as s, s.post(f"{self.sim.rest_url}/_sim/advance",
                                                            json={"seconds": seconds}) as resp:  # fmt: skip
                assert resp.status == 200, await resp.text()
        else:
            self.sim.advance(seconds)


async def until(cond: Callable[[], Any], timeout: float = 5.0, what: str = "") -> None:
    try:
        with anyio.fail_after(timeout):
            while not cond():
                await anyio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


@asynccontextmanager
async def rig(series: str = SERIES, **params: Any) -> AsyncIterator[Rig]:
    sim = SimServer(SimConfig(autostart=False, seed=5, n_markets=0, clock=lambda: (T0 + 30) * NS,
                              series=[SERIES], series_ahead=1))  # fmt: skip
    await sim.start()
    proxy = GammaProxy(sim.gamma_url)
    await proxy.start()
    kernel = build_kernel(Config(), verify_books=True)
    kernel.start()
    feed = MarketFeed("pm", {
        "ws_url": sim.ws_url, "rest_url": sim.rest_url, "gamma_url": proxy.url, "series": [series],
        "roll_interval_s": 0.05, "roll_ahead": 2, "unsubscribe_after_s": 60, "unresolved_grace_s": 60,
        "ping_interval_s": 0.5, "pong_timeout_s": 3.0, "dump_timeout_s": 3.0,
        "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "resync_min_interval_s": 0.1,
    } | params)  # fmt: skip
    feed.attach(kernel)
    clock = FakeClock((T0 + 30) * NS)
    r = Rig(sim, proxy, kernel, feed, clock)
    kernel.bus.subscribe(MarketInfo, r.infos.append)
    kernel.bus.subscribe(MarketResolved, r.resolved.append)
    send, recv = anyio.create_memory_object_stream[InboundRecord](10_000)

    async def consume() -> None:
        async with recv:
            async for rec in recv:
                r.records.append(rec)
                kernel.process(rec.ts, rec.source, rec.msg)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(feed.run, send, clock)
            yield r
            tg.cancel_scope.cancel()
    finally:
        await proxy.stop()
        await sim.stop()


async def test_windows_roll_forward_and_finished_ones_are_let_go() -> None:
    async with rig() as r:
        w0, w1 = r.window(0), r.window(1)
        await until(lambda: r.subscribed(w0) and r.subscribed(w1), what="the first two windows subscribed")
        await until(lambda: r.feed.stats["windows_not_listed"] >= 2, what="the third window asked again")
        assert r.feed.stats["windows_added"] == 2 and r.feed.stats["roll_errors"] == 0
        assert set(r.feed.rolled) == {w0["condition_id"], w1["condition_id"]}
        assert r.feed.rolled[w0["condition_id"]]["end_ts"] == (T0 + 300) * NS
        await until(lambda: all(any(a in book_asset_ids(x.msg) for x in r.records if x.source == "polymarket.market")
                                for a in (w0["up"], w0["down"], w1["up"], w1["down"])), what="book dumps")
        for w in (w0, w1):  # the catalog entry went through the door before the book
            for a in (w["up"], w["down"]):
                assert r.gamma_index(w["condition_id"]) < r.book_index(a)
            info = next(i for i in r.infos if i.market == w["condition_id"])
            assert info.series == SERIES and info.outcomes == ("Up", "Down") and info.asset_ids == (w["up"], w["down"])
            assert info.end_ts == w["end"] * NS and info.fees is not None and info.fees.rate_ppm == 70_000
            assert info.question == window_title(SERIES, w["start"], 300)
            assert r.kernel.books[w["up"]].healthy
        assert not r.kernel.integrity.summary()["total"]["failed"]

        # the first window ends: the simulator resolves it and lists the one after next
        await r.advance(300, http=True)
        w2 = r.window(2)
        await until(lambda: r.subscribed(w2), what="the next-next window subscribed")
        for a in (w2["up"], w2["down"]):
            await until(lambda a=a: any(a in book_asset_ids(x.msg) for x in r.records if x.source == "polymarket.market"),
                        what="its dump")  # fmt: skip
            assert r.gamma_index(w2["condition_id"]) < r.book_index(a)
        await until(lambda: any(ev.market == w0["condition_id"] for ev in r.resolved), what="market_resolved at the door")
        frame = next(json.loads(x.msg) for x in r.records
                     if x.source == "polymarket.market" and b'"market_resolved"' in x.msg)  # fmt: skip
        assert frame["market"] == w0["condition_id"] and frame["winning_outcome"] in ("Up", "Down")
        assert r.feed.rolled[w0["condition_id"]]["resolved_ts"] == r.clock.now()
        # ... but its tokens stay subscribed for the grace
        await anyio.sleep(0.2)
        assert r.subscribed(w0) and r.feed.stats["windows_removed"] == 0

        r.clock.advance(61)
        await until(lambda: r.unsubscribed(w0), what="the finished window unsubscribed after the grace")
        assert r.feed.stats["windows_removed"] == 1 and w0["condition_id"] not in r.feed.rolled
        assert r.subscribed(w1) and r.subscribed(w2)
        assert r.feed.stats["rolls"] >= 3 and r.feed.stats["roll_errors"] == 0

        # a window that ended without a MarketResolved is let go unresolved_grace_s after its end:
        # the feed's clock moves on, the simulator's does not (it has not resolved w1)
        r.clock.advance(300 + 61)
        await until(lambda: r.unsubscribed(w1), what="w1 let go")
        r.sim.advance(300 + 61)
        assert r.feed.stats["windows_removed"] == 2
        w3 = r.window(3)  # (the simulator lists one window ahead: the one after is asked for again)
        await until(lambda: r.subscribed(w3), what="the window after")
        assert window_slug(SERIES, T0 + 1200) in r.feed._not_listed


async def test_gamma_failures_are_counted_and_retried() -> None:
    async with rig() as r:
        w0, w1 = r.window(0), r.window(1)
        await until(lambda: r.subscribed(w0) and r.subscribed(w1), what="the first two windows")
        r.proxy.fail, r.proxy.garbage = 2, 1  # two 500s, then a 200 that is not JSON
        await r.advance(300)
        w2 = r.window(2)
        await until(lambda: r.subscribed(w2), what="the next-next window after the retries")
        assert r.feed.stats["roll_errors"] == 3
        assert r.proxy.fail == 0 and r.proxy.garbage == 0
        assert sum(1 for x in r.records if x.source == "polymarket.gamma" and w2["condition_id"].encode() in x.msg) == 1


async def test_unlisted_window_is_asked_again_and_logged_once() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        async with rig() as r:
            w2_slug = window_slug(SERIES, T0 + 600)
            await until(lambda: r.feed.stats["windows_not_listed"] >= 5, what="several rounds without it")
            asked = [q for q in r.proxy.requests if w2_slug in q]
            assert len(asked) >= 5
            assert sum(w2_slug in line and "not listed" in line for line in lines) == 1
            r.sim.advance(300)
            r.clock.advance(300)
            w2 = r.window(2)
            await until(lambda: r.subscribed(w2), what="subscribed once listed")
    finally:
        logger.remove(sink)


async def test_gamma_series_slug_rolls_by_its_open_events() -> None:
    gslug = gamma_series_slug(SERIES)
    assert gslug == "btc-up-or-down-5m"
    async with rig(series=gslug) as r:
        w0, w1 = r.window(0), r.window(1)
        await until(lambda: r.subscribed(w0) and r.subscribed(w1), what="the open events' markets")
        assert {v["series"] for v in r.feed.rolled.values()} == {gslug}
        assert all(v["end_ts"] == 0 for v in r.feed.rolled.values())  # only a resolution ends them
        gammas = sum(1 for x in r.records if x.source == "polymarket.gamma")
        rolls = r.feed.stats["rolls"]
        await until(lambda: r.feed.stats["rolls"] >= rolls + 3, what="three more rounds")
        assert sum(1 for x in r.records if x.source == "polymarket.gamma") == gammas  # nothing new: nothing sent
        await r.advance(300)
        w2 = r.window(2)
        await until(lambda: r.subscribed(w2), what="a newly listed event's market")
        await until(lambda: any(ev.market == w0["condition_id"] for ev in r.resolved), what="w0 resolved")
        r.clock.advance(61)
        await until(lambda: r.unsubscribed(w0), what="the resolved market let go")
        assert r.subscribed(w1) and r.subscribed(w2)
        assert r.feed.stats["windows_added"] == 3 and r.feed.stats["windows_removed"] == 1


async def test_sim_series_gamma_and_resolution() -> None:
    sim = SimServer(SimConfig(autostart=False, seed=5, n_markets=0, clock=lambda: (T0 + 30) * NS,
                              series=[SERIES], series_ahead=1))  # fmt: skip
    await sim.start()
    try:
        assert [w["slug"] for w in sim.series.state()["windows"]] == [window_slug(SERIES, T0 + 300 * k) for k in (0, 1)]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{sim.gamma_url}/events", params={"slug": window_slug(SERIES, T0)}) as resp:
                body = await resp.read()
            msg = json.dumps({"endpoint": "events", "query": {}, "body": json.loads(body)}).encode()
            infos, bad = decode_gamma(msg, 0)
            assert not bad and len(infos) == 1
            i = infos[0]
            assert i.slug == i.event_slug == window_slug(SERIES, T0) and i.series == SERIES and not i.neg_risk
            assert i.end_ts == (T0 + 300) * NS and i.min_order_size == 5_000_000 and i.tick_size == 10_000
            ev = json.loads(body)[0]
            assert ev["series"][0]["slug"] == "btc-up-or-down-5m"
            assert ev["markets"][0]["eventStartTime"] == "2026-09-21T14:15:00Z"
            frames = sim.advance(300)
            assert len(frames) == 1 and json.loads(frames[0])["event_type"] == "market_resolved"
            async with s.get(f"{sim.gamma_url}/markets", params={"slug": window_slug(SERIES, T0)}) as resp:
                m = (await resp.json())[0]
            assert m["closed"] is True and json.loads(m["outcomePrices"]) in (["1", "0"], ["0", "1"])
            assert sim.book(i.asset_ids[0]) is None
            async with s.get(f"{sim.rest_url}/_sim/series") as resp:
                st = await resp.json()
            assert st["now"] == T0 + 330 and [w["resolved"] for w in st["windows"]] == [True, False, False]
            async with s.get(f"{sim.rest_url}/time") as resp:
                assert await resp.json() == T0 + 330
    finally:
        await sim.stop()


def test_params_validation() -> None:
    for bad, field_ in (({"roll_interval_s": -1}, "roll_interval_s"), ({"roll_ahead": -1}, "roll_ahead"),
                        ({"unsubscribe_after_s": float("nan")}, "unsubscribe_after_s"), ({"series": [""]}, "series")):
        with pytest.raises(ValueError, match=field_):
            MarketFeed("pm", MarketFeed.Params(**bad))  # type: ignore[arg-type]
    p = MarketFeed("pm", {"series": ["btc-updown-15m"]}).params
    assert (p.roll_interval_s, p.roll_ahead, p.unsubscribe_after_s) == (30.0, 2, 120.0)
    with pytest.raises(ValueError):
        SimConfig(series=["nba"])


def _make_rolling() -> Any:
    spec = importlib.util.spec_from_file_location("make_rolling", ROOT / "recordings" / "make_rolling.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rolling_recording_is_remade_and_fills_both_sides_in_every_window(tmp_path: Path) -> None:
    mod = _make_rolling()
    made = mod.recordings()
    assert set(made) == {RECORDING.name} and RECORDING.stat().st_size < 300_000
    write_stream(str(tmp_path / RECORDING.name), made[RECORDING.name])
    assert gzip.decompress((tmp_path / RECORDING.name).read_bytes()) == gzip.decompress(RECORDING.read_bytes())

    # its shape: each window's Gamma answer one window before it starts, its resolution at its end
    wins = mod.windows()
    assert len(wins) >= 4 and [w.start for w in wins] == [wins[0].start + 300 * k for k in range(len(wins))]
    records = [(ts, src, msg) for kind, ts, src, msg in JournalReader(RECORDING) if kind == INPUT]
    assert {src for _, src, _ in records} == {"polymarket.gamma", "polymarket.market"}
    for w in wins:
        (g,) = [ts for ts, src, msg in records if src == "polymarket.gamma" and w.cid.encode() in msg]
        assert w.start * NS - 301 * NS < g < w.start * NS - 299 * NS
        (r,) = [ts for ts, src, msg in records if b'"market_resolved"' in msg and w.cid.encode() in msg]
        assert w.end * NS < r < w.end * NS + 2 * NS
        assert g < min(ts for ts, src, msg in records if src == "polymarket.market" and w.up.encode() in msg)

    # replayed through the pair-cost strategy following the 5m series: every hash verifies, and
    # every window gets maker fills on Up and on Down
    cfg = load_config(ROOT / "config" / "pair_cost.toml")
    cfg.strategies["gabagool"]["series"] = [SERIES]
    got: dict[str, Any] = {}
    fills: dict[str, int] = {}

    def on_kernel(k: Kernel) -> None:
        got["k"] = k

        def on_fill(ev: FillEvent) -> None:
            if ev.liquidity == "maker":
                fills[ev.asset_id] = fills.get(ev.asset_id, 0) + ev.size

        k.bus.subscribe(FillEvent, on_fill)

    summary = replay(RECORDING, cfg, on_kernel=on_kernel, verify_book=True)
    books = summary["books"]["total"]
    assert books["failed"] == 0 and books["bbo_mismatch"] == 0 and books["passed"] > 3000
    assert summary["errors"] == {} and summary["rejections"] == 0
    k = got["k"]
    for w in wins:
        assert fills.get(w.up, 0) > 0 and fills.get(w.down, 0) > 0, w.slug
        info = k.catalog.market(w.cid)
        assert info.series == SERIES and info.slug == w.slug and info.asset_ids == (w.up, w.down)
        assert info.end_ts == w.end * NS and info.fees is not None and not info.neg_risk
        assert w.cid in k.catalog.resolved


def test_an_ended_window_waits_for_its_resolution_and_a_restart_follows_it_again() -> None:
    """A window whose resolution is late stays subscribed past its end (its market_resolved
    comes on its tokens' channel); after a restart, the kernel's ended, unresolved windows of
    the series are followed again without asking Gamma."""
    from adapters.polymarket.feed import _Rolled

    r = _Rolled("0xw", "btc-updown-5m-1", SERIES, ("u", "d"), end_ns=1_000 * NS)
    assert r.due(120 * NS, 86_400 * NS) == (1_000 + 86_400) * NS  # no resolution seen: wait
    r.resolved_ns = 1_500 * NS
    assert r.due(120 * NS, 86_400 * NS) == 1_620 * NS  # resolved: the short grace

    kernel = build_kernel(Config())
    now = (T0 + 900) * NS
    for i, start in enumerate((T0, T0 + 300, T0 - 200_000)):
        kernel.process(now, "events", MarketInfo(market=f"0xw{i}", asset_ids=(f"up{i}", f"down{i}"), series=SERIES,
                                                 slug=window_slug(SERIES, start), end_ts=(start + 300) * NS))  # fmt: skip
    kernel.process(now, "events", MarketResolved(market="0xw1", asset_ids=("up1", "down1"), winning_asset_id="up1"))
    feed = MarketFeed("pm", {"series": [SERIES], "roll_interval_s": 30})
    feed.attach(kernel)
    feed._clock = FakeClock(now)
    feed._follow_unresolved()
    # window 0 ended unresolved: followed again; window 1 resolved; window 2 ended too long ago
    assert sorted(feed._rolled) == ["0xw0"] and sorted(feed.assets) == ["down0", "up0"]
