"""The exchange simulator (adapters/polymarket/sim.py) against an independent reference client.

The client below applies the frames to books of wire strings and recomputes every hash with
``book_hash_wire``, tracking each market's last trade price as PROTOCOL.md §1.8 says: the dump's
value; after a trade-triggered book, the value among "" and 0.001..0.999 that verifies; a print
at p narrows it to p or 1 - p. Everything runs on loopback with ``autostart=False`` and a fixed
clock, driven by ``step()``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import queue
import signal
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from adapters.polymarket.sim import SimConfig, SimServer, load_recording
from polybot.bookhash import book_hash_wire, ltp_candidates, ltp_str
from polybot.units import ONE, to_units
from proc_helpers import CLI

pytestmark = pytest.mark.anyio

T0 = 1_790_000_000_000_000_000  # a fixed clock: timestamps then advance 1 ms per batch
DUMP_KEYS = ["market", "asset_id", "timestamp", "hash", "bids", "asks", "tick_size", "event_type", "last_trade_price"]
TRADE_BOOK_KEYS = ["market", "asset_id", "bids", "asks", "hash", "timestamp", "event_type"]
PC_KEYS = ["market", "price_changes", "timestamp", "event_type"]
ENTRY_KEYS = ["asset_id", "price", "size", "side", "hash", "best_bid", "best_ask"]
LTP_KEYS = ["market", "asset_id", "price", "size", "fee_rate_bps", "side", "timestamp", "event_type", "transaction_hash"]
REST_KEYS = ["market", "asset_id", "timestamp", "hash", "bids", "asks", "min_order_size", "tick_size", "neg_risk",
             "last_trade_price"]  # fmt: skip
SAMPLE = Path("/work/shared/samples/adriancova/market-ws-frames-h1-run-8.jsonl")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cfg(**kw: Any) -> SimConfig:
    base: dict[str, Any] = {"autostart": False, "seed": 7, "clock": lambda: T0, "trade_prob": 0.08, "split_prob": 0.3}
    base.update(kw)
    return SimConfig(**base)


# ---------------------------------------------------------------------------------------------
# the reference client


def _d(s: str) -> Decimal:
    return Decimal(s)


class RefBook:
    def __init__(self, market: str, tick: str) -> None:
        self.market = market
        self.tick = tick
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def set_levels(self, bids: list[dict[str, str]], asks: list[dict[str, str]]) -> None:
        assert [_d(x["price"]) for x in bids] == sorted(_d(x["price"]) for x in bids), "bids must ascend"
        assert [_d(x["price"]) for x in asks] == sorted((_d(x["price"]) for x in asks), reverse=True), "asks must descend"
        self.bids = {x["price"]: x["size"] for x in bids}
        self.asks = {x["price"]: x["size"] for x in asks}

    def wire(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return (sorted(self.bids.items(), key=lambda kv: _d(kv[0])),
                sorted(self.asks.items(), key=lambda kv: _d(kv[0]), reverse=True))  # fmt: skip

    def best(self) -> tuple[str | None, str | None]:
        bb = max(self.bids, key=_d) if self.bids else None
        ba = min(self.asks, key=_d) if self.asks else None
        return bb, ba


class RefClient:
    def __init__(self) -> None:
        self.books: dict[str, RefBook] = {}
        self.ltp: dict[str, str] = {}
        self.hints: dict[str, list[str]] = {}
        self.run: tuple[str, str] | None = None  # (market, timestamp) of the open price_change run
        self.run_checks: list[dict[str, bool]] = []  # per frame of the run: asset -> verified now
        self.run_hashes: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.split_runs = 0
        self.full_searches = 0
        self.last_ts = 0
        self.prints: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.bad_json = 0
        self.rejected = 0
        self.pongs = 0

    def bump(self, k: str) -> None:
        self.counts[k] = self.counts.get(k, 0) + 1

    def hash_of(self, asset: str, ts: str, ltp: str) -> str:
        b = self.books[asset]
        bw, aw = b.wire()
        return book_hash_wire(b.market, asset, ts, bw, aw, "5", b.tick, False, ltp)

    def verifies(self, asset: str, ts: str, h: str) -> bool:
        return self.hash_of(asset, ts, self.ltp.get(self.books[asset].market, "")) == h

    def resolve_ltp(self, asset: str, ts: str, h: str) -> bool:
        """§1.8: current value, then the print's p / 1 - p, then every candidate once."""
        market = self.books[asset].market
        for cand in [self.ltp.get(market, "")] + self.hints.get(market, []):
            if self.hash_of(asset, ts, cand) == h:
                self.ltp[market] = cand
                return True
        self.full_searches += 1
        # every candidate once: hash the common prefix once, then only the differing tail
        b = self.books[asset]
        bw, aw = b.wire()
        payload = {"market": market, "asset_id": asset, "timestamp": ts, "hash": "",
                   "bids": [{"price": p, "size": s} for p, s in bw], "asks": [{"price": p, "size": s} for p, s in aw],
                   "min_order_size": "5", "tick_size": b.tick, "neg_risk": False, "last_trade_price": ""}  # fmt: skip
        text = json.dumps(payload, separators=(",", ":"))
        assert text.endswith('""}')
        head = hashlib.sha1(text[:-2].encode())
        for cand in ltp_candidates():
            x = head.copy()
            x.update(cand.encode() + b'"}')
            if x.hexdigest() == h and self.hash_of(asset, ts, cand) == h:
                self.ltp[market] = cand
                return True
        return False

    def feed(self, text: str) -> None:
        if text == "PONG":
            self.pongs += 1
            return
        try:
            obj = json.loads(text)
        except ValueError:
            self.bad_json += 1
            return
        if isinstance(obj, list):
            self.end_run()
            assert text.endswith("\n"), "the dump frame ends with a newline"
            for b in obj:
                self.on_dump(b)
            return
        ev = obj.get("event_type")
        if ev == "price_change":
            self.on_price_change(obj)
            return
        self.end_run()
        if ev == "book":
            self.on_trade_book(obj)
        elif ev == "last_trade_price":
            assert list(obj) == LTP_KEYS
            p = to_units(obj["price"])
            market = obj["market"]
            # the trade books already moved the hash to the new value: p or 1 - p of this print
            assert self.ltp.get(market) in (ltp_str(p), ltp_str(ONE - p)), (self.ltp.get(market), obj["price"])
            self.hints[market] = [ltp_str(p), ltp_str(ONE - p)]
            self.prints.append(obj)
            self.bump("print")
        elif ev == "tick_size_change":
            assert list(obj) == ["asset_id", "event_type", "market", "new_tick_size", "old_tick_size", "timestamp"]
            b = self.books.get(obj["asset_id"])
            if b is not None:
                assert b.tick == obj["old_tick_size"]
                b.tick = obj["new_tick_size"]
            self.bump("tick_size_change")
        elif ev == "best_bid_ask":
            b = self.books.get(obj["asset_id"])
            if b is not None:
                bb, ba = b.best()
                assert (obj["best_bid"], obj["best_ask"]) == (bb, ba)
                assert _d(obj["spread"]) == _d(ba) - _d(bb)
            self.bump("best_bid_ask")
        else:
            self.events.append(obj)
            self.bump(str(ev))

    def on_dump(self, b: dict[str, Any]) -> None:
        assert list(b) == DUMP_KEYS
        rb = RefBook(b["market"], b["tick_size"])
        rb.set_levels(b["bids"], b["asks"])
        self.books[b["asset_id"]] = rb
        self.ltp[b["market"]] = b["last_trade_price"]
        assert self.verifies(b["asset_id"], b["timestamp"], b["hash"]), "dump hash"
        self.bump("dump_book")

    def on_trade_book(self, b: dict[str, Any]) -> None:
        assert list(b) == TRADE_BOOK_KEYS
        rb = self.books.get(b["asset_id"])
        if rb is None:
            rb = self.books[b["asset_id"]] = RefBook(b["market"], "0.01")
        rb.set_levels(b["bids"], b["asks"])
        assert self.resolve_ltp(b["asset_id"], b["timestamp"], b["hash"]), "trade book hash"
        self.bump("trade_book")

    def on_price_change(self, f: dict[str, Any]) -> None:
        assert list(f) == PC_KEYS
        ts = int(f["timestamp"])
        key = (f["market"], f["timestamp"])
        entries = f["price_changes"]
        for e in entries:
            assert list(e) == ENTRY_KEYS
            if not (0 < _d(e["price"]) < 1) or e["side"] not in ("BUY", "SELL"):
                self.rejected += 1
                return
        if key != self.run:
            self.end_run()
            assert ts >= self.last_ts, "timestamps never go back"
            self.run, self.run_checks, self.run_hashes = key, [], {}
        self.last_ts = ts
        for e in entries:
            b = self.books.get(e["asset_id"])
            if b is None:
                continue  # the other token of a market we hold only one book of
            side = b.bids if e["side"] == "BUY" else b.asks
            if e["size"] == "0":
                side.pop(e["price"], None)
            else:
                side[e["price"]] = e["size"]
            assert (e["best_bid"], e["best_ask"]) == b.best(), "best bid/ask after the entry"
            self.run_hashes[e["asset_id"]] = e["hash"]
        self.run_checks.append({a: self.verifies(a, f["timestamp"], h) for a, h in self.run_hashes.items()})
        self.bump("price_change_frame")

    def end_run(self) -> None:
        if self.run is None:
            return
        checks = self.run_checks
        assert all(checks[-1].values()), f"run {self.run} must verify at its end"
        if len(checks) > 1:
            self.split_runs += 1
            for c in checks[:-1]:
                assert not any(c.values()), "a split run must not verify before its end"
        self.bump("run")
        self.run = None

    def check_mirrors(self, pairs: list[tuple[str, str]]) -> None:
        for yes, no in pairs:
            if yes in self.books and no in self.books:
                y, n = self.books[yes], self.books[no]
                assert {to_units(p): s for p, s in y.bids.items()} == {ONE - to_units(p): s for p, s in n.asks.items()}
                assert {to_units(p): s for p, s in y.asks.items()} == {ONE - to_units(p): s for p, s in n.bids.items()}
                assert y.tick == n.tick


async def recv_text(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> str:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msg.data


async def sync(ws: aiohttp.ClientWebSocketResponse, client: RefClient | None = None) -> list[str]:
    """PING, then read (and feed) every frame up to the PONG: the server queues PONG behind them."""
    await ws.send_str("PING")
    got = []
    while True:
        t = await recv_text(ws)
        if t == "PONG":
            if client is not None:
                client.end_run()
            return got
        got.append(t)
        if client is not None:
            client.feed(t)


def sub_msg(assets: list[str], custom: bool = True) -> str:
    return json.dumps({"assets_ids": assets, "type": "market", "custom_feature_enabled": custom})


def all_assets(server: SimServer) -> list[str]:
    return [a for m in server.markets for a in (m["yes"], m["no"])]


def pairs(server: SimServer) -> list[tuple[str, str]]:
    return [(m["yes"], m["no"]) for m in server.markets]


async def get_json(session: aiohttp.ClientSession, url: str, **params: Any) -> tuple[int, Any]:
    async with session.get(url, params=params or None) as r:
        return r.status, await r.json(content_type=None)


async def post_json(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body) as r:
        return r.status, await r.json(content_type=None)


def assert_rest_matches(client: RefClient, book: dict[str, Any]) -> None:
    assert list(book) == REST_KEYS
    assert book["min_order_size"] == "5" and book["neg_risk"] is False
    bw = [(x["price"], x["size"]) for x in book["bids"]]
    aw = [(x["price"], x["size"]) for x in book["asks"]]
    h = book_hash_wire(book["market"], book["asset_id"], book["timestamp"], bw, aw, "5", book["tick_size"], False,
                       book["last_trade_price"])  # fmt: skip
    assert h == book["hash"], "REST hash verifies"
    rb = client.books[book["asset_id"]]
    assert rb.wire() == (bw, aw), "REST book equals the WS-tracked book"
    assert rb.tick == book["tick_size"] and client.ltp[rb.market] == book["last_trade_price"]


# ---------------------------------------------------------------------------------------------
# tests


async def test_stream_verifies_end_to_end() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg(all_assets(server)))
        dump = await recv_text(ws)
        arr = json.loads(dump)
        assert isinstance(arr, list) and len(arr) == 2 * len(server.markets), "ONE frame with every book"
        client.feed(dump)
        server.step(400)
        await sync(ws, client)
        c = client.counts
        assert c["dump_book"] == 6 and c["run"] > 150 and client.split_runs >= 10
        assert c["trade_book"] >= 2 * 10 and c["print"] * 2 == c["trade_book"], c
        assert c["best_bid_ask"] > 0
        # the market's last trade price changed only at trades: price_change runs never needed a search
        assert client.full_searches <= c["trade_book"]
        client.check_mirrors(pairs(server))
        # REST /book and /books verify and equal the WS state; the server state agrees too
        state = server.state()["assets"]
        for a in all_assets(server):
            status, book = await get_json(http, server.rest_url + "/book", token_id=a)
            assert status == 200
            assert_rest_matches(client, book)
            assert state[a]["hash"] == book["hash"] and (state[a]["best_bid"], state[a]["best_ask"]) == client.books[a].best()
        status, books = await post_json(http, server.rest_url + "/books", [{"token_id": a} for a in all_assets(server)])
        assert status == 200 and [b["asset_id"] for b in books] == all_assets(server)
        for b in books:
            assert_rest_matches(client, b)
        await ws.close()


async def test_prints_use_both_token_terms() -> None:
    """The hashed last trade price is sometimes the printed token's price, sometimes 1 - p."""
    async with SimServer(cfg(trade_prob=0.5)) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg(all_assets(server)))
        client.feed(await recv_text(ws))
        seen = set()
        for _ in range(60):
            server.step(1)
            before = len(client.prints)
            await sync(ws, client)
            for pr in client.prints[before:]:
                p = to_units(pr["price"])
                seen.add("p" if client.ltp[pr["market"]] == ltp_str(p) else "1-p")
        assert seen == {"p", "1-p"}
        await ws.close()


async def test_tick_size_change_and_new_grid() -> None:
    async with SimServer(cfg(split_prob=0.0, trade_prob=0.0, n_markets=1)) as server, aiohttp.ClientSession() as http:
        m = server.markets[0]
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([m["yes"], m["no"]]))
        client.feed(await recv_text(ws))
        status, res = await post_json(http, server.rest_url + "/_sim/tick_size", {"market": m["slug"], "tick": "0.001"})
        assert status == 200 and res["tick_size"] == "0.001"
        got = await sync(ws, client)
        tsc = [json.loads(t) for t in got]
        assert [(x["asset_id"], x["old_tick_size"], x["new_tick_size"]) for x in tsc] == [
            (m["yes"], "0.01", "0.001"), (m["no"], "0.01", "0.001")]  # fmt: skip
        server.step(150)
        await sync(ws, client)
        assert client.counts["run"] > 100 and client.books[m["yes"]].tick == "0.001"
        fine = [p for b in client.books.values() for p in list(b.bids) + list(b.asks) if len(p.split(".")[1]) == 3]
        assert fine, "the walk quotes on the new 0.001 grid"
        # and back: off-grid levels are moved onto the 0.01 grid by a price_change batch first
        server.tick_size(m["condition_id"], "0.01")
        got = await sync(ws, client)
        assert [json.loads(t)["event_type"] for t in got][-2:] == ["tick_size_change", "tick_size_change"]
        server.step(50)
        await sync(ws, client)
        assert all(to_units(p) % 10_000 == 0 for b in client.books.values() for p in list(b.bids) + list(b.asks))
        client.check_mirrors(pairs(server))
        status, book = await get_json(http, server.rest_url + "/book", token_id=m["no"])
        assert book["tick_size"] == "0.01"
        assert_rest_matches(client, book)
        status, ts = await get_json(http, server.rest_url + "/tick-size", token_id=m["no"])
        assert ts == {"minimum_tick_size": 0.01}
        await ws.close()


async def test_automatic_tick_change_near_the_edge() -> None:
    """A top above 0.96 switches the market to 0.001 by itself."""
    async with SimServer(cfg(split_prob=0.0, trade_prob=0.0, n_markets=1)) as server, aiohttp.ClientSession() as http:
        m = server.markets[0]
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([m["yes"], m["no"]]))
        client.feed(await recv_text(ws))
        mk = server._markets[0]  # push the YES book up to the edge through the server's own batch path
        changes = [(1, 980_000, 50 * ONE)] + [(1, p, 0) for p in sorted(mk.asks) if p < 980_000] + [(0, 970_000, 20 * ONE)]
        server._batch(mk, split=False, changes=changes)
        server._auto_tick(mk)
        await sync(ws, client)
        assert client.counts.get("tick_size_change") == 2 and client.books[m["yes"]].tick == "0.001"
        server.step(30)
        await sync(ws, client)
        client.check_mirrors(pairs(server))
        await ws.close()


async def test_ping_pong_bad_input_and_unknown_assets() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        for junk in ("{", "[1, 2]", '{"operation":"dance","assets_ids":["1"]}', '{"assets_ids":"x","type":"market"}',
                     '{"type":"user","markets":[]}', "ping", '"PING"'):  # fmt: skip
            await ws.send_str(junk)
        await ws.send_bytes(b"\x00\x01")
        assert await sync(ws) == [], "bad input is ignored, PING still gets PONG"
        await ws.send_str(sub_msg(["123456789", "987654321"]))
        await sync(ws)
        server.step(20)
        assert await sync(ws) == [], "unknown assets: acknowledged, no dump, no frames"
        await ws.send_str("PING")
        assert await recv_text(ws) == "PONG"
        await ws.close()


async def test_subscribe_unsubscribe_and_single_token() -> None:
    async with SimServer(cfg(trade_prob=0.0)) as server, aiohttp.ClientSession() as http:
        m0, m1 = server.markets[0], server.markets[1]
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([m0["yes"]], custom=False))
        dump = json.loads(await recv_text(ws))
        assert [b["asset_id"] for b in dump] == [m0["yes"]], "the dump holds only the subscribed token"
        client.feed(json.dumps(dump) + "\n")
        server.step(60)
        got = await sync(ws, client)
        pcs = [json.loads(t) for t in got]
        assert pcs and {f["market"] for f in pcs} == {m0["condition_id"]}
        assert all({e["asset_id"] for e in f["price_changes"]} == {m0["yes"], m0["no"]} for f in pcs), \
            "entries for both tokens even when one is subscribed"
        assert not any(f["event_type"] == "best_bid_ask" for f in pcs), "no custom events without the flag"
        await ws.send_str(json.dumps({"operation": "subscribe", "assets_ids": [m1["no"]]}))
        dump = json.loads(await recv_text(ws))
        assert [b["asset_id"] for b in dump] == [m1["no"]]
        client.feed(json.dumps(dump) + "\n")
        await ws.send_str(json.dumps({"operation": "unsubscribe", "assets_ids": [m0["yes"]]}))
        assert await sync(ws, client) == []  # the server has read the unsubscribe
        server.step(60)
        got = await sync(ws, client)
        assert got and {json.loads(t)["market"] for t in got} == {m1["condition_id"]}
        await ws.close()


async def test_drop_closes_abruptly_and_reconnect_works() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str(sub_msg(all_assets(server)))
        await recv_text(ws)
        status, res = await post_json(http, server.rest_url + "/_sim/drop", {})
        assert status == 200 and res["dropped"] == 1
        msg = await ws.receive(timeout=2)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
        assert msg.type != aiohttp.WSMsgType.CLOSE or msg.data == 1006
        ws2 = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws2.send_str(sub_msg(all_assets(server)))
        client.feed(await recv_text(ws2))
        server.step(30)
        await sync(ws2, client)
        assert client.counts["run"] > 0
        await ws2.close()


async def test_freeze_holds_frames_and_pongs() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg(all_assets(server)))
        client.feed(await recv_text(ws))
        status, _ = await post_json(http, server.rest_url + "/_sim/freeze", {"seconds": 0.3})
        assert status == 200 and server.state()["frozen"]
        server.step(20)
        await ws.send_str("PING")
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.2)  # nothing while frozen, not even PONG
        await anyio.sleep(0.12)
        got = await sync(ws, client)  # the held frames arrive after the freeze, in order, then PONG
        assert len(got) > 10 and client.pongs == 0 and client.counts["run"] > 0
        # drop mode: frames produced while frozen are lost, so the client's books go stale
        server.freeze(0.1, drop=True)
        server.step(10)
        await anyio.sleep(0.12)
        assert await sync(ws) == []
        await ws.close()


async def test_malformed_frames_leave_the_state_alone() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        m = server.markets[0]
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([m["yes"], m["no"]]))
        client.feed(await recv_text(ws))
        before = server.state()["assets"]
        for kind in ("json", "price", "event_type"):
            status, res = await post_json(http, server.rest_url + "/_sim/malformed", {"kind": kind, "market": 0})
            assert status == 200
        status, res = await post_json(http, server.rest_url + "/_sim/malformed", {"kind": "nope"})
        assert status == 400
        got = await sync(ws, client)
        assert len(got) == 3
        assert client.bad_json == 1 and client.rejected == 1
        assert [e["event_type"] for e in client.events] == ["sim_unknown_event"]
        assert server.state()["assets"] == before
        server.step(30)
        await sync(ws, client)  # the stream goes on and verifies
        await ws.close()


async def test_crossed_frame_then_rest_resync() -> None:
    async with SimServer(cfg(n_markets=1, trade_prob=0.0)) as server, aiohttp.ClientSession() as http:
        m = server.markets[0]
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([m["yes"], m["no"]]))
        client.feed(await recv_text(ws))
        server.step(10)
        await sync(ws, client)
        truth = {a: client.books[a].wire() for a in (m["yes"], m["no"])}
        status, _ = await post_json(http, server.rest_url + "/_sim/crossed", {"market": m["condition_id"]})
        assert status == 200
        await ws.send_str("PING")
        frame = json.loads(await recv_text(ws))
        assert await recv_text(ws) == "PONG"
        # apply it by hand: the book crosses and the hash cannot verify
        for e in frame["price_changes"]:
            b = client.books[e["asset_id"]]
            (b.bids if e["side"] == "BUY" else b.asks)[e["price"]] = e["size"]
            bb, ba = b.best()
            assert _d(bb) > _d(ba), "crossed"
            assert not client.verifies(e["asset_id"], frame["timestamp"], e["hash"])
        # the server's book is unchanged: a resync from /book gets back to the truth
        for a in (m["yes"], m["no"]):
            status, book = await get_json(http, server.rest_url + "/book", token_id=a)
            b = client.books[a]
            b.set_levels(book["bids"], book["asks"])
            assert b.wire() == truth[a]
            assert_rest_matches(client, book)
        await ws.close()


async def test_determinism_by_seed() -> None:
    def frames(seed: int) -> tuple[list[dict[str, Any]], list[str]]:
        s = SimServer(cfg(seed=seed))
        return s.markets, s.step(300)

    a, b, c = frames(11), frames(11), frames(12)
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]
    m = a[0][0]
    assert m["condition_id"].startswith("0x") and len(m["condition_id"]) == 66
    assert m["yes"].isdigit() and len(m["yes"]) >= 70 and m["yes"] != m["no"]


async def test_gamma_and_rest_shapes() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        base = server.gamma_url
        status, ms = await get_json(http, base + "/markets")
        assert status == 200 and len(ms) == 3
        for g, m in zip(ms, server.markets, strict=True):
            # normalise like a Gamma client: JSON-encoded strings
            toks, outcomes = json.loads(g["clobTokenIds"]), json.loads(g["outcomes"])
            assert isinstance(g["clobTokenIds"], str) and toks == [m["yes"], m["no"]] and outcomes == ["Yes", "No"]
            assert g["conditionId"] == m["condition_id"] and g["slug"] == m["slug"]
            assert g["orderPriceMinTickSize"] == 0.01 and g["orderMinSize"] == 5 and g["negRisk"] is False
            assert g["active"] and not g["closed"] and g["acceptingOrders"] and g["enableOrderBook"]
            assert set(g["feeSchedule"]) == {"exponent", "rate", "takerOnly", "rebateRate"}
            assert g["endDate"].endswith("Z") and len(json.loads(g["outcomePrices"])) == 2
        m1 = server.markets[1]
        for params in ({"slug": "sim-market-1"}, {"condition_ids": m1["condition_id"]}, {"clob_token_ids": m1["no"]}):
            status, got = await get_json(http, base + "/markets", **params)
            assert [g["conditionId"] for g in got] == [m1["condition_id"]], params
        status, page = await get_json(http, base + "/markets/keyset", limit=2)
        assert len(page["markets"]) == 2 and "next_cursor" in page
        status, page2 = await get_json(http, base + "/markets/keyset", limit=2, after_cursor=page["next_cursor"])
        assert len(page2["markets"]) == 1 and "next_cursor" not in page2
        status, evs = await get_json(http, base + "/events", slug="sim-market-2")
        assert len(evs) == 1 and evs[0]["markets"][0]["conditionId"] == server.markets[2]["condition_id"]
        status, one = await get_json(http, base + f"/markets/{ms[0]['id']}")
        assert one["conditionId"] == ms[0]["conditionId"]
        status, clob = await get_json(http, base + f"/markets/{ms[0]['conditionId']}")
        assert [t["token_id"] for t in clob["tokens"]] == json.loads(ms[0]["clobTokenIds"])
        # REST odds and ends
        status, err = await get_json(http, server.rest_url + "/book", token_id="42")
        assert status == 404 and err == {"error": "No orderbook exists for the requested token id"}
        assert (await get_json(http, server.rest_url + "/neg-risk", token_id=m1["yes"])) == (200, {"neg_risk": False})
        assert (await get_json(http, server.rest_url + "/tick-size", token_id=m1["yes"])) == (200, {"minimum_tick_size": 0.01})
        assert (await get_json(http, server.rest_url + "/time")) == (200, T0 // 10**9)
        assert (await get_json(http, server.rest_url + "/ok")) == (200, "OK")
        status, books = await post_json(http, server.rest_url + "/books", [{"token_id": "42"}, {"token_id": m1["yes"]}])
        assert status == 200 and [b["asset_id"] for b in books] == [m1["yes"]]


async def test_resolve_and_new_market_events() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        m = server.markets[0]
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([m["yes"], m["no"]]))
        client.feed(await recv_text(ws))
        status, res = await post_json(http, server.rest_url + "/_sim/resolve", {"market": m["slug"], "winner": "no"})
        assert status == 200
        status, res = await post_json(http, server.rest_url + "/_sim/add_market", {})
        new = res["market"]
        await sync(ws, client)
        resolved, created = client.events
        assert list(resolved)[:8] == ["id", "market", "assets_ids", "winning_asset_id", "winning_outcome",
                                      "event_message", "timestamp", "event_type"]  # fmt: skip
        assert resolved["winning_asset_id"] == m["no"] and resolved["winning_outcome"] == "No"
        assert created["event_type"] == "new_market" and created["clob_token_ids"] == [new["yes"], new["no"]]
        status, got = await get_json(http, server.gamma_url + "/markets", slug=m["slug"])
        assert got[0]["closed"] is True and got[0]["acceptingOrders"] is False
        assert json.loads(got[0]["outcomePrices"]) == ["0", "1"]
        status, got = await get_json(http, server.gamma_url + "/markets", closed="false")
        assert m["condition_id"] not in {g["conditionId"] for g in got} and len(got) == 3
        assert (await get_json(http, server.rest_url + "/book", token_id=m["yes"]))[0] == 404
        server.step(50)  # the resolved market is quiet from now on
        assert await sync(ws, client) == []
        await ws.close()


async def test_replay_recordings_in_three_formats(tmp_path: Path) -> None:
    """Frames recorded from a walk replay byte for byte; REST then serves the latest book."""
    src = SimServer(cfg(n_markets=1))
    m = src.markets[0]
    frames = [src._dump_frame([m["yes"], m["no"]]).rstrip("\n")] + src.step(120)  # type: ignore[union-attr]
    ts0 = T0
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(f + "\n" for f in frames))
    env = tmp_path / "env.jsonl.gz"
    with gzip.open(env, "wt") as f:
        for i, fr in enumerate(frames):
            f.write(json.dumps({"ts": ts0 + i * 1_000_000, "source": "polymarket.market", "msg": json.loads(fr)}) + "\n")
            f.write(json.dumps({"ts": ts0 + i * 1_000_000, "source": "exec.sim", "msg": {"x": 1}}) + "\n")
    cap = tmp_path / "cap.jsonl"
    cap.write_text("".join(json.dumps({"receivedAt": f"2026-09-30T11:16:20.{i:03d}Z", "payloadUtf8": fr}) + "\n"
                           for i, fr in enumerate(frames)))  # fmt: skip
    for path in (bare, env, cap):
        assert [json.loads(t) for _, t in load_recording(str(path))] == [json.loads(f) for f in frames]
    for path in (bare, cap):
        async with SimServer(cfg(recording=str(path))) as server, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.ws_url)
            await ws.send_str(sub_msg([m["yes"], m["no"]]))
            assert await sync(ws) == [], "nothing before the recording's own dump"
            server.step(1)
            client = RefClient()
            got = await sync(ws, client)
            assert got == [frames[0] + "\n"]
            server.step(10_000)
            got = await sync(ws, client)
            assert got == frames[1:], "replayed byte for byte"
            for a in (m["yes"], m["no"]):
                status, book = await get_json(http, server.rest_url + "/book", token_id=a)
                assert status == 200
                assert_rest_matches(client, book)
            assert (await get_json(http, server.rest_url + "/book", token_id="1"))[0] == 404
            status, gm = await get_json(http, server.gamma_url + "/markets")
            assert json.loads(gm[0]["clobTokenIds"]) in ([m["yes"], m["no"]], [m["no"], m["yes"]])
            await ws.close()


async def test_autostart_walk_and_paced_replay(tmp_path: Path) -> None:
    """The walk running by itself on the real clock, then a recording of it replayed with pacing:
    a client joining mid-stream gets a dump built from the replayed state, and everything verifies."""
    async with SimServer(SimConfig(seed=5, n_markets=2, rate=500, trade_prob=0.2, split_prob=0.3)) as server, \
            aiohttp.ClientSession() as http:  # fmt: skip
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg(all_assets(server)))
        first = await recv_text(ws)
        client.feed(first)
        await anyio.sleep(0.4)
        server.pause()
        await anyio.sleep(0.06)  # a print still due goes out after its delay
        got = await sync(ws, client)
        assert client.counts["run"] > 40 and client.counts.get("print", 0) > 2
        assert abs(client.last_ts - time.time() * 1000) < 5_000, "timestamps come from the real clock"
        await ws.close()
    rec = tmp_path / "walk.jsonl"
    rec.write_text(first.rstrip("\n") + "\n" + "".join(g + "\n" for g in got))
    async with SimServer(SimConfig(recording=str(rec), speed=2.0)) as server, aiohttp.ClientSession() as http:
        await anyio.sleep(0.05)
        ws = await http.ws_connect(server.ws_url)
        replayed = RefClient()
        await ws.send_str(sub_msg(all_assets_of(json.loads(first))))
        replayed.feed(await recv_text(ws))  # the state so far, hashed with the inferred last trade price
        await anyio.sleep(0.3)
        await sync(ws, replayed)
        assert replayed.counts["run"] > 10 and server.state()["mode"] == "recording"
        await ws.close()


def all_assets_of(dump: list[dict[str, Any]]) -> list[str]:
    return [b["asset_id"] for b in dump]


@pytest.mark.skipif(not SAMPLE.exists(), reason="real capture not available")
async def test_replay_real_capture() -> None:
    async with SimServer(cfg(recording=str(SAMPLE))) as server, aiohttp.ClientSession() as http:
        recorded = load_recording(str(SAMPLE))
        dump = json.loads(recorded[0][1])
        assets = [b["asset_id"] for b in dump]
        asset = assets[0]
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str(sub_msg(assets))
        assert await sync(ws) == []
        server.step(len(recorded))
        got = await sync(ws)
        # (the recording is read as the kernel's door keeps frames: on one line; the sim sends
        # its dump with the trailing newline of the real one)
        assert got[0].rstrip("\n") == recorded[0][1] and got[1:] == [t for _, t in recorded[1:]]
        status, book = await get_json(http, server.rest_url + "/book", token_id=asset)
        bw = [(x["price"], x["size"]) for x in book["bids"]]
        aw = [(x["price"], x["size"]) for x in book["asks"]]
        assert book["hash"] == book_hash_wire(book["market"], asset, book["timestamp"], bw, aw, "5",
                                              book["tick_size"], False, book["last_trade_price"])  # fmt: skip
        await ws.close()


def test_cli_sim_subprocess() -> None:
    proc = subprocess.Popen([str(CLI), "--log-level", "WARNING", "sim", "--port", "0", "--rate", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or []], daemon=True).start()
    try:
        text = ""
        deadline = time.monotonic() + 15
        while "/ws/market" not in text and time.monotonic() < deadline:
            try:
                text += lines.get(timeout=0.2)
            except queue.Empty:
                if proc.poll() is not None:
                    break
        assert "ws://127.0.0.1:" in text and "/ws/market" in text and "sim-market-0" in text, text
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
