"""The Polymarket market-channel feed against a small fake Polymarket on loopback: the subscribe
message, verbatim forwarding, PING cadence, sharding, reconnects (abrupt close, no PONG, no
dump), a quiet connection left alone, dynamic (un)subscription, REST resync driven by the
kernel's BookHealth, params validation and clean cancellation."""

from __future__ import annotations

import gc
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import WSMsgType, web

from adapters.polymarket.feed import MarketFeed, book_asset_ids
from polybot.clock import LiveClock
from polybot.events import BookHealth, FeedConnected, FeedDisconnected
from polybot.kernel import InboundRecord, Kernel
from polybot.strategy import convert_params

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ------------------------------------------------------------------------------ fake Polymarket


def book(asset: str) -> dict[str, Any]:
    return {"market": "0xabc", "asset_id": asset, "timestamp": "1757908892351", "hash": "h" * 40,
            "bids": [{"price": "0.4", "size": "10"}], "asks": [{"price": "0.6", "size": "12"}],
            "tick_size": "0.01", "event_type": "book", "last_trade_price": ""}  # fmt: skip


def dump_frame(assets: list[str]) -> str:
    # like the real thing: a JSON array with a trailing newline inside the frame
    return json.dumps([book(a) for a in assets], separators=(",", ":")) + "\n"


class ServerConn:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.received: list[str | bytes] = []
        self.pings: list[float] = []
        self.subscribed: list[str] = []
        self.closed = False
        self.opened = time.monotonic()
        self.closed_at = 0.0

    @property
    def first(self) -> str:
        return self.received[0]  # type: ignore[return-value]


class FakePolymarket:
    """WS /ws/market and POST /books, with switchable misbehaviour."""

    def __init__(self) -> None:
        self.pong = True
        self.dump = True  # dump on the initial subscribe
        self.dump_dynamic = True  # dump on {"operation":"subscribe"}
        self.abort_after_dump = 0  # abruptly drop this many connections right after their dump
        self.extra: list[str | bytes] = []  # frames sent after the dump on the first connection
        self.books_statuses: list[int] = []  # answered (in order) before the normal 200s
        self.conns: list[ServerConn] = []
        self.posts: list[tuple[float, list[dict[str, str]]]] = []
        self.books_bodies: list[bytes] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/market"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws/market", self._ws)
        app.router.add_post("/books", self._books)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for c in self.conns:
            if not c.ws.closed:
                await c.ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        c = ServerConn(ws)
        self.conns.append(c)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                c.received.append(msg.data)
                if msg.data == "PING":
                    c.pings.append(time.monotonic())
                    if self.pong:
                        await ws.send_str("PONG")
                    continue
                m = json.loads(msg.data)
                op = m.get("operation")
                if op == "unsubscribe":
                    c.subscribed = [a for a in c.subscribed if a not in m["assets_ids"]]
                    continue
                c.subscribed += m["assets_ids"]
                if (self.dump if op is None else self.dump_dynamic) and m["assets_ids"]:
                    await ws.send_str(dump_frame(m["assets_ids"]))
                if op is None and len(self.conns) == 1:
                    for f in self.extra:
                        await (ws.send_bytes(f) if isinstance(f, bytes) else ws.send_str(f))
                if op is None and self.abort_after_dump > 0:
                    self.abort_after_dump -= 1
                    assert request.transport is not None
                    request.transport.abort()  # no close frame: a dropped TCP connection
                    break
        finally:
            c.closed = True
            c.closed_at = time.monotonic()
        return ws

    async def _books(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.posts.append((time.monotonic(), body))
        if self.books_statuses:
            status = self.books_statuses.pop(0)
            return web.Response(status=status, text='{"error":"Too Many Requests"}',
                                headers={"Retry-After": "0"})  # fmt: skip
        out = json.dumps([book(x["token_id"]) | {"neg_risk": False} for x in body]).encode()
        self.books_bodies.append(out)
        return web.Response(body=out, content_type="application/json")


@pytest.fixture
async def poly() -> AsyncIterator[FakePolymarket]:
    s = FakePolymarket()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


# ------------------------------------------------------------------------------ helpers


def make_feed(poly: FakePolymarket, assets: list[str], **kw: Any) -> MarketFeed:
    params = {"ws_url": poly.ws_url, "rest_url": poly.rest_url, "assets": assets,
              "ping_interval_s": 0.05, "pong_timeout_s": 0.3, "dump_timeout_s": 0.3,
              "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "resync_min_interval_s": 0.3} | kw  # fmt: skip
    return MarketFeed("pm", params)


@asynccontextmanager
async def running(feed: MarketFeed) -> AsyncIterator[list[InboundRecord]]:
    """Run the feed into a memory stream; yields the list the records are drained into."""
    send, recv = anyio.create_memory_object_stream[InboundRecord](1000)
    got: list[InboundRecord] = []

    async def drain() -> None:
        async with recv:
            async for rec in recv:
                got.append(rec)

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        tg.start_soon(feed.run, send, LiveClock())
        try:
            yield got
        finally:
            tg.cancel_scope.cancel()


async def until(cond: Callable[[], Any], timeout: float = 3.0, what: str = "") -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.005)


def events(got: list[InboundRecord], cls: type) -> list[Any]:
    return [r.msg for r in got if r.source == "events" and isinstance(r.msg, cls)]


def frames(got: list[InboundRecord]) -> list[bytes]:
    return [r.msg for r in got if r.source == "polymarket.market"]


def dumps(got: list[InboundRecord]) -> list[bytes]:
    return [m for m in frames(got) if m.startswith(b"[")]


# ------------------------------------------------------------------------------ tests


async def test_subscribe_message_and_frames_forwarded_verbatim(poly: FakePolymarket) -> None:
    garbage = ["not json {", '[1, "x", {"event_type":"book","asset_id":7}]', '{"event_type":"price_change"}']
    poly.extra = [*garbage, b"\x00\x01binary\xff"]
    feed = make_feed(poly, ["a1", "a2"], ping_interval_s=0.05)
    async with running(feed) as got:
        await until(lambda: feed.stats["pongs"] >= 1 and b"\x00\x01binary\xff" in frames(got))
    first = poly.conns[0].first
    assert first == '{"assets_ids":["a1","a2"],"type":"market","custom_feature_enabled":true}'
    fr = frames(got)
    # the connect notice comes first, then the dump exactly as sent (trailing newline included)
    assert got[0].source == "events" and isinstance(got[0].msg, FeedConnected)
    assert got[0].msg.feed == "pm" and got[0].msg.detail == "shard 0: 2 assets"
    assert fr[0] == dump_frame(["a1", "a2"]).encode()
    for g in garbage:
        assert g.encode() in fr
    assert b"PONG" in fr
    assert all(isinstance(r.msg, bytes) and r.ts > 0 for r in got if r.source == "polymarket.market")
    assert feed.stats["binary_frames"] == 1 and feed.stats["dumps"] == 2
    assert feed.stats["frames"] == len(fr)


async def test_custom_feature_flag_is_sent_as_configured(poly: FakePolymarket) -> None:
    feed = make_feed(poly, ["a1"], custom_feature_enabled=False)
    async with running(feed) as got:
        await until(lambda: dumps(got))
    assert poly.conns[0].first == '{"assets_ids":["a1"],"type":"market","custom_feature_enabled":false}'


async def test_ping_cadence_and_pongs(poly: FakePolymarket) -> None:
    feed = make_feed(poly, ["a1"], ping_interval_s=0.1, pong_timeout_s=1.0)
    async with running(feed) as got:
        await until(lambda: len(poly.conns) == 1 and len(poly.conns[0].pings) >= 5)
    c = poly.conns[0]
    gaps = [b - a for a, b in zip(c.pings, c.pings[1:])]
    assert all(0.07 < g < 0.16 for g in gaps), gaps
    assert 0.07 < c.pings[0] - c.opened < 0.16  # the first PING one interval after connecting
    assert feed.stats["pings"] >= 5 and feed.stats["pongs"] >= 4
    assert frames(got).count(b"PONG") == feed.stats["pongs"]
    assert len(poly.conns) == 1


async def test_sharding_opens_one_connection_per_shard(poly: FakePolymarket) -> None:
    assets = [f"t{i}" for i in range(5)]
    feed = make_feed(poly, assets, shard_size=2)
    assert feed.shards == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    async with running(feed) as got:
        await until(lambda: len(dumps(got)) == 3)
    assert len(poly.conns) == 3
    subs = sorted(json.loads(c.first)["assets_ids"] for c in poly.conns)
    assert subs == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    details = sorted(e.detail for e in events(got, FeedConnected))
    assert details == ["shard 0: 2 assets", "shard 1: 2 assets", "shard 2: 1 assets"]
    assert sorted(book_asset_ids(d)[0] for d in dumps(got)) == ["t0", "t2", "t4"]


async def test_abrupt_close_reconnects_with_backoff_and_resubscribes(poly: FakePolymarket) -> None:
    poly.abort_after_dump = 1
    feed = make_feed(poly, ["t0", "t1", "t2"], shard_size=2, backoff_initial_s=0.1, backoff_max_s=0.4)
    async with running(feed) as got:
        await until(lambda: len(dumps(got)) == 3 and len(poly.conns) == 3)
    lost = events(got, FeedDisconnected)
    assert len(lost) == 1
    d = lost[0]
    first_subs = json.loads(poly.conns[0].first)["assets_ids"]
    assert d.feed == "pm" and d.asset_ids == tuple(first_subs)
    assert d.detail.startswith(f"shard {0 if first_subs == ['t0', 't1'] else 1}:")
    assert "closed" in d.detail or "error" in d.detail
    # the replacement subscribes to the same shard and gets a new dump
    again = [c for c in poly.conns[2:] if json.loads(c.first)["assets_ids"] == first_subs]
    assert len(again) == 1
    assert again[0].opened - poly.conns[0].closed_at >= 0.05 - 0.01  # backoff (0.1, jitter >= half)
    order = [r.msg for r in got if r.source == "events" or r.msg.startswith(b"[")]
    i = order.index(d)
    assert any(isinstance(x, FeedConnected) for x in order[i:]) and dump_frame(first_subs).encode() in order[i:]
    assert sum(feed.stats["reconnects"].values()) == 1
    # the notices go through the kernel's door as ready-made events
    k = Kernel()
    for r in got:
        if r.source == "events":
            k.process(r.ts, r.source, r.msg)
    assert k.stats.dropped == 0 and k.stats.events == 4


async def test_connection_without_pong_is_replaced(poly: FakePolymarket) -> None:
    poly.pong = False
    feed = make_feed(poly, ["t0"], ping_interval_s=0.05, pong_timeout_s=0.2, dump_timeout_s=5)
    async with running(feed) as got:
        await until(lambda: len(poly.conns) >= 2 and len(dumps(got)) >= 2)
        t_lost = poly.conns[0].closed_at - poly.conns[0].opened
    d = events(got, FeedDisconnected)[0]
    assert "pong_timeout" in d.detail and d.asset_ids == ("t0",)
    assert feed.stats["reconnects"]["pong_timeout"] >= 1
    assert 0.2 <= t_lost < 0.6  # first PING at 0.05 + 0.2 without an answer
    assert json.loads(poly.conns[1].first)["assets_ids"] == ["t0"]


async def test_subscription_without_dump_is_replaced(poly: FakePolymarket) -> None:
    poly.dump = False
    feed = make_feed(poly, ["t0", "t1"], dump_timeout_s=0.15)
    async with running(feed) as got:
        await until(lambda: len(poly.conns) >= 2)
        await until(lambda: events(got, FeedDisconnected))
    d = events(got, FeedDisconnected)[0]
    assert "dump_timeout" in d.detail and d.asset_ids == ("t0", "t1")
    assert feed.stats["reconnects"]["dump_timeout"] >= 1
    assert feed.stats["pongs"] >= 1  # it did answer PINGs: the missing dump alone condemned it


async def test_quiet_connection_with_pongs_and_dump_is_kept(poly: FakePolymarket) -> None:
    feed = make_feed(poly, ["t0", "t1"], ping_interval_s=0.05, pong_timeout_s=0.15, dump_timeout_s=0.15)
    async with running(feed) as got:
        await anyio.sleep(0.8)  # several pong and dump timeouts long, and no book traffic at all
    assert len(poly.conns) == 1
    assert events(got, FeedDisconnected) == []
    assert sum(feed.stats["reconnects"].values()) == 0
    assert len(dumps(got)) == 1 and feed.stats["pongs"] >= 8
    assert all(m in (b"PONG",) or m.startswith(b"[") for m in frames(got))


async def test_dynamic_subscribe_and_unsubscribe(poly: FakePolymarket) -> None:
    feed = make_feed(poly, ["t0"], shard_size=2, dump_timeout_s=0.3)
    async with running(feed) as got:
        await until(lambda: len(dumps(got)) == 1)
        await feed.subscribe(["t1", "t0", "t2"])  # t0 is already there: ignored
        await until(lambda: len(poly.conns) == 2 and len(dumps(got)) == 3)
        c0 = poly.conns[0]
        assert c0.received[1] == '{"operation":"subscribe","assets_ids":["t1"],"custom_feature_enabled":true}'
        assert poly.conns[1].first == '{"assets_ids":["t2"],"type":"market","custom_feature_enabled":true}'
        assert feed.shards == [["t0", "t1"], ["t2"]]
        await feed.unsubscribe(["t0", "nope"])
        await until(lambda: '{"operation":"unsubscribe","assets_ids":["t0"]}' in c0.received)
        # t0's slot is free again: the next subscription fills it (the sync variant)
        feed.subscribe_nowait(["t3"])
        await until(lambda: '{"operation":"subscribe","assets_ids":["t3"],"custom_feature_enabled":true}' in c0.received)
        await until(lambda: len(dumps(got)) == 4)
        assert feed.shards == [["t1", "t3"], ["t2"]]
        # emptying a shard closes its connection without a FeedDisconnected
        await feed.unsubscribe(["t2"])
        await until(lambda: poly.conns[1].closed)
        await anyio.sleep(0.1)
    assert events(got, FeedDisconnected) == []
    assert len(poly.conns) == 2
    assert c0.subscribed == ["t1", "t3"]


async def test_dynamic_subscribe_without_dump_replaces_the_connection(poly: FakePolymarket) -> None:
    poly.dump_dynamic = False
    feed = make_feed(poly, ["t0"], dump_timeout_s=0.15)
    async with running(feed) as got:
        await until(lambda: len(dumps(got)) == 1)
        await anyio.sleep(0.2)  # past the dump timeout of the first subscription: still fine
        assert len(poly.conns) == 1
        await feed.subscribe(["t1"])
        await until(lambda: events(got, FeedDisconnected))
        await until(lambda: len(poly.conns) == 2 and len(dumps(got)) == 2)
    d = events(got, FeedDisconnected)[0]
    assert "dump_timeout" in d.detail and d.asset_ids == ("t0", "t1")
    assert json.loads(poly.conns[1].first)["assets_ids"] == ["t0", "t1"]


async def test_resync_on_unhealthy_book_is_batched_and_rate_limited(poly: FakePolymarket) -> None:
    kernel = Kernel()
    feed = make_feed(poly, ["t0", "t1", "t2"], rest_batch=2, resync_min_interval_s=0.3)
    feed.attach(kernel)
    calls: list[tuple[float, list[str]]] = []  # when the feed asked (the server may see it later under load)
    fetch = feed.fetch_books

    async def timed_fetch(assets: list[str]) -> bytes:
        calls.append((anyio.current_time(), list(assets)))
        return await fetch(assets)

    feed.fetch_books = timed_fetch  # type: ignore[method-assign]
    pub = kernel.bus.publish
    async with running(feed) as got:
        await until(lambda: len(dumps(got)) == 1)
        pub(BookHealth(asset_id="t0", healthy=False, reason="hash mismatch"))
        pub(BookHealth(asset_id="zz", healthy=False, reason="hash mismatch"))  # not ours
        pub(BookHealth(asset_id="t1", healthy=False, reason="feed disconnected"))  # the dump repairs it
        await until(lambda: len(poly.posts) == 1)
        assert poly.posts[0][1] == [{"token_id": "t0"}]
        await until(lambda: any(r.source == "polymarket.book" for r in got))
        rest = [r for r in got if r.source == "polymarket.book"]
        assert rest[0].msg == poly.books_bodies[0] and isinstance(rest[0].msg, bytes)
        # again at once: t0 waits out its rate limit; t1, t2 go now, in one batch of 2
        t_again = time.monotonic()
        pub(BookHealth(asset_id="t0", healthy=False, reason="crossed book"))
        pub(BookHealth(asset_id="t1", healthy=False, reason="crossed book"))
        pub(BookHealth(asset_id="t2", healthy=False, reason="crossed book"))
        await until(lambda: len(poly.posts) == 3)
        assert poly.posts[1][1] == [{"token_id": "t1"}, {"token_id": "t2"}]
        assert poly.posts[2][1] == [{"token_id": "t0"}]
        t0_asks = [t for t, assets in calls if "t0" in assets]
        assert len(t0_asks) == 2 and t0_asks[1] - t0_asks[0] >= 0.3 - 0.005
        assert poly.posts[1][0] - t_again < 0.2
        # a book that healed before its turn is not fetched
        pub(BookHealth(asset_id="t1", healthy=False, reason="crossed book"))
        pub(BookHealth(asset_id="t1", healthy=True, reason="snapshot"))
        await anyio.sleep(0.4)
        await until(lambda: len([r for r in got if r.source == "polymarket.book"]) == 3)
    assert len(poly.posts) == 3
    assert feed.stats["resyncs"] == 4 and feed.stats["resync_posts"] == 3


async def test_fetch_books_retries_429(poly: FakePolymarket) -> None:
    poly.books_statuses = [429, 503]
    feed = make_feed(poly, ["t0"], backoff_initial_s=0.02)
    body = await feed.fetch_books(["t0", "t1"])  # works outside run() too (own session)
    assert len(poly.posts) == 3
    assert [b["asset_id"] for b in json.loads(body)] == ["t0", "t1"]
    assert body == poly.books_bodies[-1]


async def test_fetch_books_gives_up_on_client_error(poly: FakePolymarket) -> None:
    from adapters.polymarket.feed import BooksFetchError

    poly.books_statuses = [400]
    feed = make_feed(poly, ["t0"])
    with pytest.raises(BooksFetchError) as ei:
        await feed.fetch_books(["t0"])
    assert ei.value.status == 400 and not ei.value.retryable and len(poly.posts) == 1


async def test_connect_failures_back_off_without_disconnect_events() -> None:
    with anyio.fail_after(5):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nothing listens there any more
    feed = MarketFeed("pm", {"ws_url": f"ws://127.0.0.1:{port}/ws/market", "assets": ["t0"],
                             "backoff_initial_s": 0.02, "backoff_max_s": 0.08})  # fmt: skip
    async with running(feed) as got:
        await until(lambda: feed.stats["reconnects"]["connect_failed"] >= 4)
    assert events(got, FeedDisconnected) == [] and events(got, FeedConnected) == []


async def test_cancellation_closes_sockets_and_session(poly: FakePolymarket) -> None:
    kernel = Kernel()
    feed = make_feed(poly, ["t0", "t1", "t2"], shard_size=1)
    feed.attach(kernel)
    async with running(feed) as got:
        await until(lambda: len(dumps(got)) == 3)
        session = feed._session
        assert session is not None and not session.closed
    assert session.closed and feed._session is None
    await until(lambda: all(c.closed for c in poly.conns), timeout=2)
    gc.collect()  # an unclosed session/connector would warn here (an error under our pytest config)


async def test_closed_kernel_stream_stops_the_feed(poly: FakePolymarket) -> None:
    feed = make_feed(poly, ["t0"])
    send, recv = anyio.create_memory_object_stream[InboundRecord](0)
    recv.close()
    with anyio.fail_after(3):
        await feed.run(send, LiveClock())  # returns instead of reconnecting forever
    await until(lambda: all(c.closed for c in poly.conns), timeout=2)


# ------------------------------------------------------------------------------ offline units


@pytest.mark.parametrize(
    ("frame", "ids"),
    [
        (dump_frame(["a", "b"]).encode(), ["a", "b"]),
        (json.dumps(book("c")).encode(), ["c"]),
        (b'[{"event_type":"book","asset_id":"a"}, 3, {"event_type":"price_change","asset_id":"x"}]', ["a"]),
        (b'[{"event_type":"book","asset_id":5}, {"event_type":"book","asset_id":"b"}]', ["b"]),
        (b"PONG", []), (b"", []), (b"[", []), (b"[1,2", []), (b'{"event_type":"book"', []),
        (b'"book"', []), (b"\xff\xfe[", []), (b'{"event_type":"book","asset_id":null}', []),
    ],
)
def test_book_asset_ids_never_raises(frame: bytes, ids: list[str]) -> None:
    assert book_asset_ids(frame) == ids


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"shard_size": 0}, "shard_size"), ({"shard_size": 501}, "shard_size"),
        ({"ping_interval_s": 0}, "ping_interval_s"), ({"pong_timeout_s": -1.0}, "pong_timeout_s"),
        ({"dump_timeout_s": 0.0}, "dump_timeout_s"), ({"backoff_initial_s": 0}, "backoff_initial_s"),
        ({"backoff_initial_s": 5.0, "backoff_max_s": 1.0}, "backoff_max_s"),
        ({"resync_min_interval_s": -1}, "resync_min_interval_s"), ({"rest_batch": 0}, "rest_batch"),
        ({"ws_url": "http://x"}, "ws_url"), ({"rest_url": "ftp://x"}, "rest_url"),
        ({"assets": ["ok", ""]}, "assets[1]"), ({"source": ""}, "source"),
    ],
)
def test_params_validation_names_the_field(params: dict[str, Any], field: str) -> None:
    # built directly (no type-level checks): __init__ refuses it
    with pytest.raises(ValueError, match=re.escape(f"params.{field} ")):
        MarketFeed("pm", MarketFeed.Params(**params))


def test_params_from_config_table() -> None:
    # the [[feeds]] params path: msgspec bounds name the key too
    with pytest.raises(msgspec.ValidationError, match=r"\$\.shard_size"):
        convert_params(MarketFeed.Params, {"shard_size": 0})
    with pytest.raises(ValueError, match="shard_size"):
        MarketFeed("pm", {"shard_size": 1000})
    with pytest.raises(ValueError, match="bogus"):
        MarketFeed("pm", {"bogus": 1})
    p = convert_params(MarketFeed.Params, {"assets": ["1", "2", "1"], "ping_interval_s": 5})
    f = MarketFeed("pm", p)
    assert f.kind == "polymarket" and f.assets == ["1", "2"] and f.params.ping_interval_s == 5.0
    d = MarketFeed.Params()
    assert (d.ws_url, d.rest_url, d.shard_size, d.ping_interval_s, d.pong_timeout_s, d.dump_timeout_s) == (
        "wss://ws-subscriptions-clob.polymarket.com/ws/market", "https://clob.polymarket.com", 200, 10.0, 30.0, 15.0)
    assert (d.backoff_initial_s, d.backoff_max_s, d.custom_feature_enabled, d.resync_rest,
            d.resync_min_interval_s, d.rest_batch, d.source) == (1.0, 60.0, True, True, 2.0, 50, "polymarket.market")
