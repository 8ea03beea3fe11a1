"""The Polymarket US simulator (adapters/polymarket_us/sim.py) on loopback: auth, catalog, books,
the walk, order entry and matching, the account, both WebSockets, faults, the daemon feed.

Everything runs with ``autostart=False`` and a settable clock, driven by ``step()``; one test
talks to it through the official SDK (``polymarket_us``) as the live adapters will.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest

from adapters.polymarket_us import auth
from adapters.polymarket_us.sim import DEMO_KEY_ID, DEMO_PUBLIC_KEY, DEMO_SECRET_KEY, UsSimConfig, UsSimServer
from polybot.units import ONE, to_units

pytestmark = pytest.mark.anyio

T0 = 1_790_000_000_000  # ms
M0, M1 = "us-sim-market-0", "us-sim-market-1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        return self.t


class Api:
    """A minimal signed client (the live adapters use the SDK's own signing, the same message)."""

    def __init__(self, sim: UsSimServer, session: aiohttp.ClientSession, clock: Clock) -> None:
        self.sim, self.s, self.clock = sim, session, clock

    def headers(self, method: str, path: str, *, key: str = DEMO_KEY_ID, secret: str = DEMO_SECRET_KEY,
                ts: int | None = None) -> dict[str, str]:  # fmt: skip
        return auth.sign_headers(key, secret, method, path, ts_ms=self.clock() if ts is None else ts)

    async def call(self, method: str, path: str, body: Any = None, *, query: Any = None, signed: bool = True,
                   sign_path: str | None = None, raw: bytes | None = None, **kw: Any) -> tuple[int, Any]:  # fmt: skip
        h = self.headers(method, sign_path or path, **kw) if signed else {}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.s.request(method, self.sim.url + path, params=query, data=data, headers=h) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kw)

    async def order(self, slug: str, intent: str, price: str | None, qty: Any, tif: str = "GTC", **extra: Any) -> dict:
        body: dict[str, Any] = {"marketSlug": slug, "intent": f"ORDER_INTENT_{intent}", "type": "ORDER_TYPE_LIMIT",
                                "quantity": qty, "tif": TIF[tif]}  # fmt: skip
        if price is not None:
            body["price"] = {"value": price, "currency": "USD"}
        body.update(extra)
        st, out = await self.post("/v1/orders", body)
        assert st == 200, out
        return out

    async def ws(self, path: str) -> aiohttp.ClientWebSocketResponse:
        return await self.s.ws_connect(self.sim.ws_url + path, headers=self.headers("GET", path))


TIF = {"GTC": "TIME_IN_FORCE_GOOD_TILL_CANCEL", "GTD": "TIME_IN_FORCE_GOOD_TILL_DATE",
       "IOC": "TIME_IN_FORCE_IMMEDIATE_OR_CANCEL", "FOK": "TIME_IN_FORCE_FILL_OR_KILL", "DAY": "TIME_IN_FORCE_DAY"}


@asynccontextmanager
async def running(**kw: Any) -> AsyncIterator[tuple[UsSimServer, Api]]:
    base: dict[str, Any] = {"autostart": False, "seed": 3, "keys": {DEMO_KEY_ID: DEMO_PUBLIC_KEY}, "heartbeat_s": 0}
    base.update(kw)
    clock = Clock()
    async with UsSimServer(UsSimConfig(**base)) as sim, aiohttp.ClientSession() as s:
        sim.now_ms = clock
        yield sim, Api(sim, s, clock)


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> dict[str, Any]:
    """The next JSON frame, heartbeats skipped."""
    while True:
        with anyio.fail_after(timeout):
            msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        obj = json.loads(msg.data)
        if "heartbeat" not in obj:
            return obj


async def recv_until(ws: aiohttp.ClientWebSocketResponse, key: str, n: int = 50) -> dict[str, Any]:
    for _ in range(n):
        f = await recv(ws)
        if key in f:
            return f
    raise AssertionError(f"no {key} frame")


async def quiet(ws: aiohttp.ClientWebSocketResponse, timeout: float = 0.1) -> bool:
    try:
        await recv(ws, timeout)
    except TimeoutError:
        return True
    return False


def units(a: dict[str, str]) -> int:
    assert a["currency"] == "USD"
    return to_units(a["value"])


# ---------------------------------------------------------------------------------------------
# auth


async def test_signature_verified_server_side() -> None:
    async with running() as (sim, api):
        assert (await api.get("/v1/account/balances"))[0] == 200
        other_secret, _ = auth.generate_key()
        st, body = await api.get("/v1/account/balances", secret=other_secret)  # right key id, wrong key
        assert st == 401 and body["message"] == "bad signature"
        st, body = await api.get("/v1/account/balances", key="nobody")
        assert st == 401 and "unknown API key" in body["message"]
        st, body = await api.get("/v1/account/balances", sign_path="/v1/orders/open")  # tampered path
        assert st == 401 and body["message"] == "bad signature"
        st, body = await api.get("/v1/account/balances", ts=T0 - 31_000)  # stale
        assert st == 401 and "window" in body["message"]
        st, body = await api.get("/v1/account/balances", signed=False)
        assert st == 401 and body["message"]
        # the method is signed too
        h = api.headers("GET", "/v1/orders/open/cancel")
        async with api.s.post(sim.url + "/v1/orders/open/cancel", json={}, headers=h) as r:
            assert r.status == 401
        # the query string is not signed
        st, body = await api.get("/v1/orders/open", query=[("slugs", M0)])
        assert st == 200 and body == {"orders": []}
        # public endpoints need no signature
        assert (await api.get("/v1/markets", signed=False))[0] == 200
        # a key registered later
        sk, pk = auth.generate_key()
        assert (await api.get("/v1/account/balances", key="k2", secret=sk))[0] == 401
        sim.add_key("k2", pk)
        assert (await api.get("/v1/account/balances", key="k2", secret=sk))[0] == 200
        assert ("GET", "/v1/account/balances", 401) in sim.requests
        assert sim.requests[0] == ("GET", "/v1/account/balances", 200)


async def test_ws_handshake_needs_a_valid_signature() -> None:
    async with running() as (sim, api):
        for path in ("/v1/ws/markets", "/v1/ws/private"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as ei:
                await api.s.ws_connect(sim.ws_url + path)
            assert ei.value.status == 401
            bad = api.headers("GET", "/v1/ws/other")  # signed for another path
            with pytest.raises(aiohttp.WSServerHandshakeError) as ei:
                await api.s.ws_connect(sim.ws_url + path, headers=bad)
            assert ei.value.status == 401
            ws = await api.ws(path)
            await ws.close()


# ---------------------------------------------------------------------------------------------
# catalog and books


async def test_markets_events_and_catalog_shapes() -> None:
    async with running(markets=3) as (sim, api):
        st, body = await api.get("/v1/markets", signed=False)
        assert st == 200 and [m["slug"] for m in body["markets"]] == [M0, M1, "us-sim-market-2"]
        m = body["markets"][0]
        for k in ("id", "slug", "title", "outcome", "description", "active", "closed", "eventSlug", "marketSides",
                  "orderPriceMinTickSize", "minimumTradeQty", "state", "startDate", "endDate"):
            assert k in m, k
        assert m["id"] == 1 and m["eventSlug"] == "us-sim-event-0" and m["state"] == "MARKET_STATE_OPEN"
        assert m["marketSides"] == [{"identifier": M0, "description": "Yes", "long": True},
                                    {"identifier": M0, "description": "No", "long": False}]
        assert m["orderPriceMinTickSize"] == 0.01 and m["minimumTradeQty"] == 1
        assert m["active"] is True and m["closed"] is False
        st, body = await api.get("/v1/markets", query=[("slug", M1), ("slug", "us-sim-market-2")], signed=False)
        assert [x["slug"] for x in body["markets"]] == [M1, "us-sim-market-2"]
        st, body = await api.get("/v1/markets", query={"eventSlug": "us-sim-event-2"}, signed=False)
        assert [x["slug"] for x in body["markets"]] == ["us-sim-market-2"]
        st, body = await api.get("/v1/markets", query={"limit": "1", "offset": "1"}, signed=False)
        assert [x["slug"] for x in body["markets"]] == [M1]
        st, body = await api.get("/v1/markets", query={"closed": "true"}, signed=False)
        assert body["markets"] == []
        assert (await api.get(f"/v1/market/slug/{M1}", signed=False))[1]["market"]["id"] == 2
        assert (await api.get("/v1/market/id/3", signed=False))[1]["market"]["slug"] == "us-sim-market-2"
        for path in ("/v1/market/slug/nope", "/v1/market/id/99", "/v1/markets/nope/book", "/v1/markets/nope/bbo",
                     "/v1/markets/nope/settlement", "/v1/events/slug/nope", "/v1/events/99", "/v1/nothing"):
            st, body = await api.get(path, signed=False)
            assert st == 404 and body["message"], path
        st, body = await api.get("/v1/events", query={"slug": "us-sim-event-1"}, signed=False)
        assert [e["slug"] for e in body["events"]] == ["us-sim-event-1"]
        assert [x["slug"] for x in body["events"][0]["markets"]] == [M1]
        assert (await api.get("/v1/events/slug/us-sim-event-0", signed=False))[1]["event"]["markets"][0]["slug"] == M0
        assert (await api.get("/v1/events/2", signed=False))[1]["event"]["slug"] == "us-sim-event-1"
        assert (await api.get("/v1/events", query={"limit": "2"}, signed=False))[1]["events"][1]["id"] == 2
        assert (await api.get("/v1/series", signed=False))[1]["series"]
        assert (await api.get("/v1/sports", signed=False))[1]["sports"]


async def test_explicit_slugs_titles_and_sides() -> None:
    game = "nba-bos-lal-2026-11-21"
    async with running(slugs=[game], titles=["Celtics vs. Lakers"], sides=[["Celtics", "Lakers"]]) as (sim, api):
        m = (await api.get(f"/v1/market/slug/{game}", signed=False))[1]["market"]
        assert m["title"] == "Celtics vs. Lakers" and m["outcome"] == "Celtics" and m["eventSlug"] == game
        assert [(s["description"], s["long"]) for s in m["marketSides"]] == [("Celtics", True), ("Lakers", False)]
        assert sim.slugs == [game]
        sim.step(5)
        assert sim.book(game)[0]
    with pytest.raises(ValueError):
        UsSimConfig(slugs=["a", "a"])
    with pytest.raises(ValueError):
        UsSimConfig(slugs=["a"], sides=[["only one"]])


async def test_rest_book_and_bbo_match_the_walk() -> None:
    async with running() as (sim, api):
        sim.step(30)
        bids, offers = sim.book(M0)
        st, body = await api.get(f"/v1/markets/{M0}/book", signed=False)
        md = body["marketData"]
        assert md["marketSlug"] == M0 and md["state"] == "MARKET_STATE_OPEN" and md["transactTime"]
        assert [(units(x["px"]), to_units(x["qty"])) for x in md["bids"]] == bids
        assert [(units(x["px"]), to_units(x["qty"])) for x in md["offers"]] == offers
        assert bids[0][0] < offers[0][0]
        bbo = (await api.get(f"/v1/markets/{M0}/bbo", signed=False))[1]["marketData"]
        assert units(bbo["bestBid"]) == bids[0][0] and units(bbo["bestAsk"]) == offers[0][0]
        assert bbo["bidDepth"] == bids[0][1] // ONE


async def test_walk_is_deterministic_and_sane() -> None:
    a, b, c = (UsSimServer(autostart=False, seed=s) for s in (5, 5, 6))
    seen_a, seen_b = [], []
    for _ in range(400):
        a.step()
        b.step()
        seen_a.append(a.book(M0))
        seen_b.append(b.book(M1))
        for slug in (M0, M1):
            bids, offers = a.book(slug)
            assert len(bids) >= 3 and len(offers) >= 3
            assert bids[0][0] < offers[0][0], "the walk's book must never cross"
            assert all(0 < p < ONE and p % 10_000 == 0 and q > 0 for p, q in bids + offers)
            assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    c.step(400)
    assert (a.book(M0), a.book(M1)) == (b.book(M0), b.book(M1))
    assert (a.book(M0), a.book(M1)) != (c.book(M0), c.book(M1))
    assert len({x[0][0] for x in seen_a}) > 1, "the top moves"


# ---------------------------------------------------------------------------------------------
# order entry and matching


async def test_taker_buy_long_sweeps_the_walk_at_its_prices() -> None:
    async with running() as (sim, api):
        bids, offers = sim.book(M0)
        (p1, q1), (p2, q2) = offers[0], offers[1]
        want = q1 + q2 // 2
        cash0 = sim.balance()
        out = await api.order(M0, "BUY_LONG", "0.99", want // ONE, "IOC")
        types = [e["type"] for e in out["executions"]]
        assert types == ["EXECUTION_TYPE_NEW", "EXECUTION_TYPE_PARTIAL_FILL", "EXECUTION_TYPE_FILL"]
        fills = out["executions"][1:]
        assert [(units(e["lastPx"]), to_units(e["lastShares"])) for e in fills] == [(p1, q1), (p2, q2 // 2)]
        assert all(e["aggressor"] is True and e["tradeId"] for e in fills)
        assert len({e["tradeId"] for e in fills}) == 2
        order = fills[-1]["order"]
        assert order["state"] == "ORDER_STATE_FILLED" and order["cumQuantity"] == want // ONE
        assert order["leavesQuantity"] == 0 and order["id"] == out["id"]
        cost = (p1 * q1 + p2 * (q2 // 2)) // ONE
        assert units(order["avgPx"]) == (p1 * q1 + p2 * (q2 // 2) + want // 2) // want
        assert sim.position(M0) == want and sim.balance() == cash0 - cost
        assert sim.book(M0)[1][0] == (p2, q2 - q2 // 2)  # the walk's liquidity was taken
        assert sim.orders[out["id"]]["state"] == "ORDER_STATE_FILLED"


async def test_buy_short_is_a_yes_offer_and_costs_one_minus_p() -> None:
    async with running() as (sim, api):
        bids, _ = sim.book(M0)
        pb, qb = bids[0]
        q = min(qb, 10 * ONE)
        cash0 = sim.balance()
        px = "0.01"  # a marketable short buy: sells YES into the walk's bids at their price
        out = await api.order(M0, "BUY_SHORT", px, q // ONE, "IOC")
        fill = out["executions"][-1]
        assert fill["type"] == "EXECUTION_TYPE_FILL" and units(fill["lastPx"]) == pb
        assert fill["order"]["side"] == "ORDER_SIDE_SELL" and fill["order"]["intent"] == "ORDER_INTENT_BUY_SHORT"
        assert sim.position(M0) == -q
        assert sim.balance() == cash0 - (ONE - pb) * q // ONE
        st, pos = await api.get("/v1/portfolio/positions")
        p = pos["positions"][M0]
        assert p["netPosition"] == f"-{q // ONE}" and p["qtySold"] == str(q // ONE)
        assert units(p["cost"]) == (ONE - pb) * q // ONE and units(p["avgPx"]) == pb
        assert pos["eof"] is True and p["marketMetadata"]["slug"] == M0
        # closing the short: SELL_SHORT is a YES bid; the collateral (1 - p) comes back
        _, offers = sim.book(M0)
        po = offers[0][0]
        out = await api.order(M0, "SELL_SHORT", "0.99", q // ONE, "IOC")
        assert out["executions"][-1]["order"]["side"] == "ORDER_SIDE_BUY"
        assert sim.position(M0) == 0
        assert sim.balance() == cash0 - (ONE - pb) * q // ONE + (ONE - po) * q // ONE
        st, pos = await api.get("/v1/portfolio/positions")
        assert pos["positions"] == {}
        # selling more short than held is refused
        st, body = await api.post("/v1/orders", {"marketSlug": M0, "intent": "ORDER_INTENT_SELL_SHORT",
                                                 "price": {"value": "0.5", "currency": "USD"}, "quantity": 1})
        assert st == 400 and "position" in body["message"]


async def test_gtc_rests_and_fills_as_maker_on_a_trade_print() -> None:
    async with running() as (sim, api):
        bids, _ = sim.book(M0)
        mine = bids[0][0] - 5 * 10_000
        out = await api.order(M0, "BUY_LONG", str(mine / ONE), 30)
        oid = out["id"]
        assert [e["type"] for e in out["executions"]] == ["EXECUTION_TYPE_NEW"]
        assert out["executions"][0]["order"]["state"] == "ORDER_STATE_NEW"
        st, body = await api.get("/v1/orders/open")
        assert [o["id"] for o in body["orders"]] == [oid]
        assert (await api.get("/v1/orders/open", query={"slugs": M1}))[1]["orders"] == []
        assert sim.book(M0)[0] == bids, "our resting order is not drawn into the public book"
        sim.trade(M0, str((mine + 20_000) / ONE), "10", aggressor_buys=False)  # above our bid: not ours
        assert sim.orders[oid]["cumQuantity"] == 0
        sim.trade(M0, str((mine - 20_000) / ONE), "12", aggressor_buys=False)  # a sale through our bid
        o = sim.orders[oid]
        assert o["state"] == "ORDER_STATE_PARTIALLY_FILLED" and o["cumQuantity"] == 12 and o["leavesQuantity"] == 18
        assert units(o["avgPx"]) == mine
        sim.trade(M0, str((mine - 20_000) / ONE), "100", aggressor_buys=False)
        assert sim.orders[oid]["state"] == "ORDER_STATE_FILLED" and sim.position(M0) == 30 * ONE
        st, body = await api.get(f"/v1/order/{oid}")
        assert st == 200 and body["order"]["state"] == "ORDER_STATE_FILLED"
        st, acts = await api.get("/v1/portfolio/activities", query={"marketSlug": M0, "sortOrder": "SORT_ORDER_ASCENDING"})
        trades = [a["trade"] for a in acts["activities"]]
        assert [(units(t["price"]), t["qty"], t["isAggressor"]) for t in trades] == [(mine, "12", False), (mine, "18", False)]
        assert acts["eof"] is True and all(a["type"] == "ACTIVITY_TYPE_TRADE" for a in acts["activities"])
        st, desc = await api.get("/v1/portfolio/activities")
        assert [a["trade"]["qty"] for a in desc["activities"]] == ["18", "12"]
        st, page = await api.get("/v1/portfolio/activities", query={"limit": "1"})
        assert len(page["activities"]) == 1 and page["eof"] is False and page["nextCursor"]
        st, page2 = await api.get("/v1/portfolio/activities", query={"limit": "1", "cursor": page["nextCursor"]})
        assert page2["activities"][0]["trade"]["qty"] == "12" and page2["eof"] is True


async def test_resting_order_fills_as_maker_when_the_walk_crosses_it() -> None:
    async with running(markets=1, seed=11) as (sim, api):
        bids, offers = sim.book(M0)
        mine = (bids[0][0] + offers[0][0]) // 2 // 10_000 * 10_000
        if mine <= bids[0][0]:
            mine = bids[0][0]
        out = await api.order(M0, "BUY_LONG", str(mine / ONE), 5)
        oid = out["id"]
        for _ in range(5000):
            sim.step()
            if sim.orders[oid]["cumQuantity"]:
                break
        o = sim.orders[oid]
        assert o["cumQuantity"] > 0, "the walk crosses a bid near the top sooner or later"
        assert units(o["avgPx"]) == mine
        st, acts = await api.get("/v1/portfolio/activities")
        assert all(a["trade"]["isAggressor"] is False for a in acts["activities"])


async def test_ioc_fok_post_only_and_market_orders() -> None:
    async with running() as (sim, api):
        _, offers = sim.book(M0)
        p1, q1 = offers[0]
        book0 = sim.book(M0)
        # FOK larger than what the limit reaches: expires whole, book untouched
        out = await api.order(M0, "BUY_LONG", str(p1 / ONE), q1 // ONE + 1, "FOK")
        assert [e["type"] for e in out["executions"]] == ["EXECUTION_TYPE_NEW", "EXECUTION_TYPE_EXPIRED"]
        assert out["executions"][-1]["order"]["state"] == "ORDER_STATE_EXPIRED" and sim.book(M0) == book0
        assert sim.position(M0) == 0
        # IOC: what the limit reaches, the rest expires
        out = await api.order(M0, "BUY_LONG", str(p1 / ONE), q1 // ONE + 1, "IOC")
        assert [e["type"] for e in out["executions"]] == ["EXECUTION_TYPE_NEW", "EXECUTION_TYPE_PARTIAL_FILL",
                                                          "EXECUTION_TYPE_EXPIRED"]  # fmt: skip
        last = out["executions"][-1]["order"]
        assert last["state"] == "ORDER_STATE_EXPIRED" and last["cumQuantity"] == q1 // ONE
        assert sim.position(M0) == q1
        # FOK that fits fills
        _, offers = sim.book(M0)
        out = await api.order(M0, "BUY_LONG", str(offers[0][0] / ONE), 1, "FOK")
        assert out["executions"][-1]["type"] == "EXECUTION_TYPE_FILL"
        # post-only that would cross: rejected, nothing traded
        bids, offers = sim.book(M0)
        pos0 = sim.position(M0)
        out = await api.order(M0, "BUY_LONG", str(offers[0][0] / ONE), 1, participateDontInitiate=True)
        assert [e["type"] for e in out["executions"]] == ["EXECUTION_TYPE_REJECTED"]
        assert out["executions"][0]["order"]["state"] == "ORDER_STATE_REJECTED" and out["executions"][0]["text"]
        assert sim.orders[out["id"]]["state"] == "ORDER_STATE_REJECTED" and sim.position(M0) == pos0
        out = await api.order(M0, "BUY_LONG", str(bids[0][0] / ONE), 1, participateDontInitiate=True)
        assert out["executions"][-1]["order"]["state"] == "ORDER_STATE_NEW"
        # a market order (no price) sweeps like an IOC
        body = {"marketSlug": M0, "intent": "ORDER_INTENT_SELL_LONG", "type": "ORDER_TYPE_MARKET", "quantity": 2}
        st, out = await api.post("/v1/orders", body)
        assert st == 200 and out["executions"][-1]["type"] == "EXECUTION_TYPE_FILL"
        assert units(out["executions"][-1]["lastPx"]) == bids[0][0]


async def test_gtd_expires_and_day_rests() -> None:
    async with running() as (sim, api):
        bids, _ = sim.book(M0)
        low = str((bids[-1][0] - 10_000) / ONE)
        from adapters.polymarket_us.sim import _iso

        out = await api.order(M0, "BUY_LONG", low, 1, "GTD", goodTillTime=_iso(T0 + 5_000))
        oid = out["id"]
        assert out["executions"][0]["order"]["goodTillTime"]
        day = (await api.order(M0, "BUY_LONG", low, 1, "DAY"))["id"]
        api.clock.t += 10_000
        sim.step()
        assert sim.orders[oid]["state"] == "ORDER_STATE_EXPIRED" and sim.orders[day]["state"] == "ORDER_STATE_NEW"
        st, body = await api.post("/v1/orders", {"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG",
                                                 "price": {"value": low, "currency": "USD"}, "quantity": 1,
                                                 "tif": TIF["GTD"], "goodTillTime": _iso(T0)})  # fmt: skip
        assert st == 400 and "goodTillTime" in body["message"]


async def test_cancel_open_orders_and_batches() -> None:
    async with running() as (sim, api):
        bids, _ = sim.book(M0)
        low = str((bids[-1][0] - 10_000) / ONE)
        a = (await api.order(M0, "BUY_LONG", low, 1))["id"]
        b = (await api.order(M1, "BUY_LONG", "0.01", 2))["id"]
        c = (await api.order(M0, "BUY_LONG", low, 3))["id"]
        assert (await api.post(f"/v1/order/{a}/cancel", {"marketSlug": M1}))[0] == 400
        assert (await api.post(f"/v1/order/{a}/cancel", {}))[0] == 400
        st, body = await api.post(f"/v1/order/{a}/cancel", {"marketSlug": M0})
        assert st == 200 and body == {}
        assert sim.orders[a]["state"] == "ORDER_STATE_CANCELED"
        st, body = await api.post(f"/v1/order/{a}/cancel", {"marketSlug": M0})
        assert st == 400 and "not open" in body["message"]
        assert (await api.post("/v1/order/nope/cancel", {"marketSlug": M0}))[0] == 404
        assert (await api.get("/v1/order/nope"))[0] == 404
        assert (await api.get(f"/v1/order/{a}"))[1]["order"]["state"] == "ORDER_STATE_CANCELED"
        st, body = await api.post("/v1/orders/open/cancel", {"slugs": [M1]})
        assert body == {"canceledOrderIds": [b]}
        st, body = await api.post("/v1/orders/batched/cancel", {"orders": [{"orderId": c, "marketSlug": M0},
                                                                            {"orderId": "ghost", "marketSlug": M0}]})
        assert st == 200 and body == {"canceledOrderIds": [c, "ghost"]}
        assert sim.orders[c]["state"] == "ORDER_STATE_CANCELED"
        assert (await api.get("/v1/orders/open"))[1]["orders"] == []
        # batched create
        items = [{"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG", "price": {"value": low, "currency": "USD"},
                  "quantity": 1, "tif": TIF["GTC"]} for _ in range(3)]
        st, body = await api.post("/v1/orders/batched", {"orders": items})
        assert st == 200 and len(body["createdOrderIds"]) == 3
        assert all(sim.orders[i]["state"] == "ORDER_STATE_NEW" for i in body["createdOrderIds"])
        bad = items[:1] + [dict(items[1], price={"value": "1.5", "currency": "USD"})]
        st, body = await api.post("/v1/orders/batched", {"orders": bad})
        assert st == 400 and "orders[1].price" in body["message"]
        st, body = await api.post("/v1/orders/batched", {"orders": items * 7})
        assert st == 400 and "20" in body["message"]
        st, body = await api.post("/v1/orders/open/cancel")
        assert st == 200 and len(body["canceledOrderIds"]) == 3


@pytest.mark.parametrize(("patch", "field"), [
    ({"marketSlug": None}, "marketSlug"),
    ({"marketSlug": "nope"}, "marketSlug"),
    ({"intent": "ORDER_INTENT_HODL"}, "intent"),
    ({"type": "ORDER_TYPE_STOP"}, "type"),
    ({"price": None}, "price"),
    ({"price": {"value": "1", "currency": "USD"}}, "price"),
    ({"price": {"value": "0", "currency": "USD"}}, "price"),
    ({"price": {"value": "0.555", "currency": "USD"}}, "price"),
    ({"price": {"value": "abc", "currency": "USD"}}, "price"),
    ({"price": {"value": "0.5", "currency": "EUR"}}, "price.currency"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": -3}, "quantity"),
    ({"quantity": "ten"}, "quantity"),
    ({"quantity": 0.5}, "quantity"),
    ({"quantity": None}, "quantity"),
    ({"tif": "TIME_IN_FORCE_FOREVER"}, "tif"),
    ({"tif": "TIME_IN_FORCE_GOOD_TILL_DATE"}, "goodTillTime"),
    ({"participateDontInitiate": "yes"}, "participateDontInitiate"),
])  # fmt: skip
async def test_bad_order_bodies_are_400_naming_the_field(patch: dict[str, Any], field: str) -> None:
    async with running() as (sim, api):
        body: dict[str, Any] = {"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG", "type": "ORDER_TYPE_LIMIT",
                                "price": {"value": "0.10", "currency": "USD"}, "quantity": 1, "tif": TIF["GTC"]}
        for k, v in patch.items():
            if v is None:
                body.pop(k)
            else:
                body[k] = v
        st, out = await api.post("/v1/orders", body)
        assert st == 400 and out["message"].startswith(field), out
        assert sim.orders == {}


async def test_malformed_bodies_and_decimal_quantities() -> None:
    async with running() as (sim, api):
        st, out = await api.call("POST", "/v1/orders", raw=b"{not json")
        assert st == 400 and out["message"].startswith("body")
        st, out = await api.post("/v1/orders", [1, 2])
        assert st == 400 and out["message"].startswith("body")
        out = await api.order(M0, "BUY_LONG", "0.10", "2.5")
        assert out["executions"][0]["order"]["quantity"] == 2.5


async def test_balance_checks_and_reservations() -> None:
    async with running(cash="10") as (sim, api):
        st, body = await api.post("/v1/orders", {"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG",
                                                 "price": {"value": "0.10", "currency": "USD"}, "quantity": 101})
        assert st == 400 and "insufficient balance" in body["message"]
        await api.order(M0, "BUY_LONG", "0.10", 60)  # reserves 6
        st, bal = await api.get("/v1/account/balances")
        b = bal["balances"][0]
        assert b["currency"] == "USD" and b["currentBalance"] == 10.0 and b["buyingPower"] == 4.0
        # a short buy at 0.95 needs 0.05 a share
        await api.order(M0, "BUY_SHORT", "0.95", 80)  # 4.0
        st, body = await api.post("/v1/orders", {"marketSlug": M0, "intent": "ORDER_INTENT_BUY_SHORT",
                                                 "price": {"value": "0.95", "currency": "USD"}, "quantity": 1})
        assert st == 400 and "insufficient balance" in body["message"]
        st, body = await api.post("/v1/orders", {"marketSlug": M0, "intent": "ORDER_INTENT_SELL_LONG",
                                                 "price": {"value": "0.95", "currency": "USD"}, "quantity": 1})
        assert st == 400 and "long position" in body["message"]


def _cents(x: int) -> int:
    """Round 10**-12 USD to the cent, half to even (the venue's fee rounding), in units."""
    q, r = divmod(x, ONE * ONE // 100)
    if 2 * r > ONE * ONE // 100 or (2 * r == ONE * ONE // 100 and q % 2):
        q += 1
    return q * 10_000


async def test_taker_fee_is_charged_and_maker_rebate_paid_on_the_fee_notional() -> None:
    async with running(taker_fee_bps=100, maker_rebate_bps=20) as (sim, api):
        _, offers = sim.book(M0)
        p = offers[0][0]
        cash0 = sim.balance()
        out = await api.order(M0, "BUY_LONG", str(p / ONE), 10, "IOC")
        fill = out["executions"][-1]
        fee = _cents(10 * ONE * p // 100)  # 1 % of 10 x p, to the cent
        assert units(fill["commissionNotionalCollected"]) == fee
        assert units(fill["order"]["commissionNotionalTotalCollected"]) == fee
        assert sim.balance() == cash0 - 10 * p - fee
        # (another market: no position there) a maker that sells YES (buys NO) earns 20 bps of 100 x (1 - price): a negative commission
        bids, _ = sim.book(M1)
        px = bids[0][0] + 10_000
        cash1 = sim.balance()
        oid = (await api.order(M1, "BUY_SHORT", str(px / ONE), 100))["id"]
        sim.trade(M1, str(px / ONE), "100", aggressor_buys=True)
        assert sim.orders[oid]["state"] == "ORDER_STATE_FILLED"
        rebate = _cents(100 * ONE * (ONE - px) * 20 // 10_000)
        assert rebate >= 50_000  # at least $0.05: a real figure, not a rounding to zero
        assert units(sim.orders[oid]["commissionNotionalTotalCollected"]) == -rebate
        assert sim.balance() == cash1 - 100 * (ONE - px) + rebate


async def test_halt_and_resolve() -> None:
    async with running() as (sim, api):
        bids, _ = sim.book(M0)
        await api.order(M0, "BUY_LONG", "0.99", 10, "IOC")
        resting = (await api.order(M0, "BUY_LONG", str((bids[-1][0] - 10_000) / ONE), 1))["id"]
        short = await api.order(M1, "BUY_SHORT", "0.01", 4, "IOC")
        px_short = units(short["executions"][-1]["lastPx"])
        sim.set_state(M0, "MARKET_STATE_HALTED")
        st, body = await api.post("/v1/orders", {"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG",
                                                 "price": {"value": "0.10", "currency": "USD"}, "quantity": 1})
        assert st == 400 and "HALTED" in body["message"]
        assert (await api.get(f"/v1/markets/{M0}/book", signed=False))[1]["marketData"]["state"] == "MARKET_STATE_HALTED"
        book = sim.book(M0)
        sim.step(50)
        assert sim.book(M0) == book, "a halted market does not walk"
        sim.set_state(M0, "MARKET_STATE_OPEN")
        assert (await api.get(f"/v1/markets/{M0}/settlement", signed=False))[0] == 404
        cash = sim.balance()
        sim.resolve(M0, long_wins=True)
        assert sim.orders[resting]["state"] == "ORDER_STATE_CANCELED"
        assert sim.position(M0) == 0 and sim.balance() == cash + 10 * ONE
        m = (await api.get(f"/v1/market/slug/{M0}", signed=False))[1]["market"]
        assert m["closed"] is True and m["active"] is False and m["state"] == "MARKET_STATE_CLOSED"
        assert (await api.get(f"/v1/markets/{M0}/settlement", signed=False))[1] == {"slug": M0, "settlement": 1.0}
        assert (await api.get("/v1/markets", query={"closed": "true"}, signed=False))[1]["markets"][0]["slug"] == M0
        st, body = await api.post("/v1/orders", {"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG",
                                                 "price": {"value": "0.10", "currency": "USD"}, "quantity": 1})
        assert st == 400
        cash = sim.balance()
        sim.resolve(M1, long_wins=True)  # the short loses its collateral
        assert sim.position(M1) == 0 and sim.balance() == cash
        acts = (await api.get("/v1/portfolio/activities", query={"types": "ACTIVITY_TYPE_POSITION_RESOLUTION"}))[1]
        assert len(acts["activities"]) == 2
        res = acts["activities"][0]["positionResolution"]
        assert res["marketSlug"] == M1 and res["beforePosition"]["netPosition"] == "-4"
        assert units(res["beforePosition"]["cost"]) == 4 * (ONE - px_short)
        with pytest.raises(ValueError):
            sim.set_state(M1, "MARKET_STATE_SLEEPY")


# ---------------------------------------------------------------------------------------------
# WebSockets


async def test_market_ws_book_lite_and_trade_frames() -> None:
    async with running() as (sim, api):
        ws = await api.ws("/v1/ws/markets")
        await ws.send_json({"subscribe": {"requestId": "md", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA",
                                          "marketSlugs": [M0]}})
        f = await recv(ws)
        assert f["requestId"] == "md" and f["subscriptionType"] == "SUBSCRIPTION_TYPE_MARKET_DATA"
        md = f["marketData"]
        assert md["marketSlug"] == M0 and md["state"] == "MARKET_STATE_OPEN" and "stats" in md and md["transactTime"]
        assert [(units(x["px"]), to_units(x["qty"])) for x in md["bids"]] == sim.book(M0)[0]
        await ws.send_json({"subscribe": {"requestId": "lite", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA_LITE",
                                          "marketSlugs": [M0]}})
        f = await recv(ws)
        assert units(f["marketDataLite"]["bestBid"]) == sim.book(M0)[0][0][0]
        await ws.send_json({"subscribe": {"requestId": "tr", "subscriptionType": "SUBSCRIPTION_TYPE_TRADE",
                                          "marketSlugs": [M0, M1]}})
        # every change of M0 sends its book; changes of M1 do not
        for _ in range(40):
            sim.step()
        books = []
        while not await quiet(ws):
            pass
        sim2 = UsSimServer(autostart=False, seed=3)
        sim2.step(40)
        assert sim2.book(M0) == sim.book(M0)
        # our taker order: a trade frame and a new book
        _, offers = sim.book(M0)
        await api.order(M0, "BUY_LONG", str(offers[0][0] / ONE), 1, "IOC")
        got: dict[str, Any] = {}
        for _ in range(5):
            f = await recv(ws)
            for k in ("trade", "marketData", "marketDataLite"):
                if k in f:
                    got.setdefault(k, f)
            if "trade" in got and "marketData" in got:
                break
        t = got["trade"]["trade"]
        assert t["marketSlug"] == M0 and units(t["price"]) == offers[0][0] and t["quantity"]["value"] == "1"
        assert t["taker"] == {"side": "ORDER_SIDE_BUY", "intent": "ORDER_INTENT_BUY_LONG"} and t["tradeTime"]
        assert t["maker"]["side"] == "ORDER_SIDE_SELL"
        assert units(got["marketData"]["marketData"]["stats"]["lastTradePx"]) == offers[0][0]
        books.append(got["marketData"])
        # unknown slug, unknown type, private type on the markets socket, missing slugs: error frames
        for req in ({"requestId": "x", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA", "marketSlugs": ["nope"]},
                    {"requestId": "y", "subscriptionType": "SUBSCRIPTION_TYPE_ORDER"},
                    {"requestId": "z", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA"}):
            await ws.send_json({"subscribe": req})
            while not await quiet(ws, 0.05):
                pass
        await ws.send_json({"subscribe": {"requestId": "x", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA",
                                          "marketSlugs": ["nope"]}})
        f = await recv_until(ws, "error")
        assert f["requestId"] == "x" and f["subscriptionType"] == "SUBSCRIPTION_TYPE_MARKET_DATA" and "nope" in f["error"]
        await ws.send_str("{nope")
        f = await recv_until(ws, "error")
        assert "JSON" in f["error"]
        # still up: unsubscribe stops the frames
        for rid in ("md", "lite", "tr"):
            await ws.send_json({"unsubscribe": {"requestId": rid}})
        await ws.send_json({"unsubscribe": {"requestId": "never"}})
        f = await recv_until(ws, "error")
        assert f["requestId"] == "never"
        sim.step(20)
        sim.trade(M0, "0.5", "3")
        assert await quiet(ws)
        await ws.close()


async def test_market_ws_state_change_and_malformed_fault() -> None:
    async with running() as (sim, api):
        ws = await api.ws("/v1/ws/markets")
        await ws.send_json({"subscribe": {"requestId": "md", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA",
                                          "marketSlugs": [M1]}})
        await recv(ws)
        sim.set_state(M1, "MARKET_STATE_HALTED")
        assert (await recv(ws))["marketData"]["state"] == "MARKET_STATE_HALTED"
        sim.set_state(M1, "MARKET_STATE_OPEN")
        await recv(ws)
        sim.fault("ws_markets_malformed")
        sim.trade(M1, "0.5", "1")
        with anyio.fail_after(2):
            msg = await ws.receive()
        with pytest.raises(ValueError):
            json.loads(msg.data)
        sim.trade(M1, "0.5", "1")
        assert (await recv(ws))["marketData"]["marketSlug"] == M1
        await ws.close()


async def test_private_ws_orders_positions_balances() -> None:
    async with running() as (sim, api):
        bids, offers = sim.book(M0)
        low = str((bids[-1][0] - 10_000) / ONE)
        resting = (await api.order(M0, "BUY_LONG", low, 2))["id"]
        ws = await api.ws("/v1/ws/private")
        await ws.send_json({"subscribe": {"requestId": "snap", "subscriptionType": "SUBSCRIPTION_TYPE_ORDER_SNAPSHOT"}})
        f = await recv(ws)
        assert f["requestId"] == "snap" and f["orderSubscriptionSnapshot"]["eof"] is True
        assert [o["id"] for o in f["orderSubscriptionSnapshot"]["orders"]] == [resting]
        await ws.send_json({"subscribe": {"requestId": "ord", "subscriptionType": "SUBSCRIPTION_TYPE_ORDER"}})
        await ws.send_json({"subscribe": {"requestId": "pos", "subscriptionType": "SUBSCRIPTION_TYPE_POSITION",
                                          "marketSlugs": [M0]}})
        await ws.send_json({"subscribe": {"requestId": "bal", "subscriptionType": "SUBSCRIPTION_TYPE_ACCOUNT_BALANCE"}})
        f = await recv(ws)
        assert f["requestId"] == "bal" and f["accountBalancesSnapshot"]["balances"][0]["currentBalance"] == 10000.0
        await ws.send_json({"subscribe": {"requestId": "bad", "subscriptionType": "SUBSCRIPTION_TYPE_POSITION",
                                          "marketSlugs": ["nope"]}})
        f = await recv(ws)
        assert f["requestId"] == "bad" and f["error"]
        assert await quiet(ws)
        out = await api.order(M0, "BUY_LONG", str(offers[0][0] / ONE), 3, "IOC")
        frames = [await recv(ws) for _ in range(4)]
        kinds = [next(k for k in f if k not in ("requestId", "subscriptionType")) for f in frames]
        assert kinds == ["orderSubscriptionUpdate", "orderSubscriptionUpdate", "positionSubscription",
                         "accountBalancesUpdate"]  # fmt: skip
        ex = [f["orderSubscriptionUpdate"]["execution"] for f in frames[:2]]
        assert [e["type"] for e in ex] == ["EXECUTION_TYPE_NEW", "EXECUTION_TYPE_FILL"]
        assert [e["id"] for e in ex] == [e["id"] for e in out["executions"]]
        ps = frames[2]["positionSubscription"]
        assert ps["beforePosition"]["netPosition"] == "0" and ps["afterPosition"]["netPosition"] == "3"
        assert ps["tradeId"] == ex[1]["tradeId"] and ps["updateTime"]
        bc = frames[3]["accountBalancesUpdate"]["balanceChange"]
        assert bc["beforeBalance"]["currentBalance"] - bc["afterBalance"]["currentBalance"] == pytest.approx(
            3 * offers[0][0] / ONE)
        # a cancel: CANCELED execution and a buying-power change
        await api.post(f"/v1/order/{resting}/cancel", {"marketSlug": M0})
        f = await recv(ws)
        assert f["orderSubscriptionUpdate"]["execution"]["type"] == "EXECUTION_TYPE_CANCELED"
        assert "accountBalancesUpdate" in await recv(ws)
        # other markets: executions yes (no filter), positions no (filtered to M0)
        await api.order(M1, "BUY_LONG", "0.99", 1, "IOC")
        frames = [await recv(ws) for _ in range(3)]
        assert [("orderSubscriptionUpdate" in f, "accountBalancesUpdate" in f) for f in frames] == [
            (True, False), (True, False), (False, True)]
        await ws.send_str("[]")
        assert (await recv(ws))["error"]
        await ws.close()


async def test_drop_connections_and_resubscribe() -> None:
    async with running() as (sim, api):
        ws = await api.ws("/v1/ws/markets")
        pws = await api.ws("/v1/ws/private")
        await ws.send_json({"subscribe": {"requestId": "md", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA",
                                          "marketSlugs": [M0]}})
        await recv(ws)
        sim.drop_connections()
        for w in (ws, pws):
            with anyio.fail_after(2):
                msg = await w.receive()
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        ws = await api.ws("/v1/ws/markets")
        await ws.send_json({"subscribe": {"requestId": "md", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA",
                                          "marketSlugs": [M0]}})
        assert (await recv(ws))["marketData"]["marketSlug"] == M0
        await ws.close()


async def test_heartbeats() -> None:
    async with running(heartbeat_s=0.05) as (sim, api):
        for path in ("/v1/ws/markets", "/v1/ws/private"):
            ws = await api.ws(path)
            with anyio.fail_after(2):
                msg = await ws.receive()
            assert json.loads(msg.data) == {"heartbeat": {}}
            await ws.close()


# ---------------------------------------------------------------------------------------------
# faults


async def test_order_faults() -> None:
    async with running() as (sim, api):
        body = {"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG", "price": {"value": "0.05", "currency": "USD"},
                "quantity": 1, "tif": TIF["GTC"]}
        sim.fault("reject_500")
        st, out = await api.post("/v1/orders", body)
        assert st == 500 and out["message"] and sim.orders == {}
        sim.fault("error_500")
        st, out = await api.post("/v1/orders", body)
        assert st == 500 and len(sim.orders) == 1
        sim.fault("drop")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.post("/v1/orders", body)
        assert len(sim.orders) == 2
        sim.fault("timeout")
        h = api.headers("POST", "/v1/orders")
        with pytest.raises(TimeoutError):
            async with api.s.post(sim.url + "/v1/orders", json=body, headers=h,
                                  timeout=aiohttp.ClientTimeout(total=0.3)) as r:  # fmt: skip
                await r.read()
        assert len(sim.orders) == 3
        assert all(o["state"] == "ORDER_STATE_NEW" for o in sim.orders.values())
        st, out = await api.post("/v1/orders", body)
        assert st == 200 and len(sim.orders) == 4
        assert [s for m, p, s in sim.requests if p == "/v1/orders"] == [500, 500, 0, 0, 200]
        with pytest.raises(ValueError):
            sim.fault("meteor")


# ---------------------------------------------------------------------------------------------
# the official SDK against the simulator, and the daemon feed


async def test_official_sdk_client_against_the_sim() -> None:
    from polymarket_us import AsyncPolymarketUS
    from polymarket_us.errors import AuthenticationError, BadRequestError, NotFoundError

    async with UsSimServer(autostart=False, seed=2, keys={DEMO_KEY_ID: DEMO_PUBLIC_KEY}, heartbeat_s=0) as sim:
        async with AsyncPolymarketUS(key_id=DEMO_KEY_ID, secret_key=DEMO_SECRET_KEY, gateway_base_url=sim.url,
                                     api_base_url=sim.url, max_retries=0) as client:  # fmt: skip
            assert len((await client.markets.list({"limit": 10}))["markets"]) == 2
            book = (await client.markets.book(M0))["marketData"]
            assert book["marketSlug"] == M0
            with pytest.raises(NotFoundError):
                await client.markets.retrieve_by_slug("nope")
            _, offers = sim.book(M0)
            out = await client.orders.create({"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG",
                                              "type": "ORDER_TYPE_LIMIT",
                                              "price": {"value": str(offers[0][0] / ONE), "currency": "USD"},
                                              "quantity": 2, "tif": "TIME_IN_FORCE_GOOD_TILL_CANCEL"})  # fmt: skip
            assert out["executions"][-1]["type"] == "EXECUTION_TYPE_FILL"
            assert (await client.orders.retrieve(out["id"]))["order"]["state"] == "ORDER_STATE_FILLED"
            assert (await client.portfolio.positions())["positions"][M0]["netPosition"] == "2"
            assert (await client.account.balances())["balances"][0]["currency"] == "USD"
            with pytest.raises(BadRequestError):
                await client.orders.create({"marketSlug": M0, "intent": "ORDER_INTENT_BUY_LONG", "quantity": 1})
            assert (await client.orders.cancel_all())["canceledOrderIds"] == []
            ws = client.ws.markets()
            got: list[dict[str, Any]] = []
            ws.on("market_data", got.append)
            await ws.connect()
            await ws.subscribe_market_data("md", [M0])
            with anyio.fail_after(2):
                while not got:
                    await anyio.sleep(0.01)
            assert got[0]["marketData"]["marketSlug"] == M0
            await ws.close()
        sk, _ = auth.generate_key()
        async with AsyncPolymarketUS(key_id=DEMO_KEY_ID, secret_key=sk, gateway_base_url=sim.url,
                                     api_base_url=sim.url, max_retries=0) as bad:  # fmt: skip
            with pytest.raises(AuthenticationError):
                await bad.account.balances()


def test_demo_key_pair_is_consistent() -> None:
    assert auth.public_key(DEMO_SECRET_KEY) == DEMO_PUBLIC_KEY
    hdr = auth.sign_headers(DEMO_KEY_ID, DEMO_SECRET_KEY, "GET", "/v1/orders/open", ts_ms=T0)
    assert auth.verify(DEMO_PUBLIC_KEY, hdr, "GET", "/v1/orders/open", now_ms=T0) == ""


async def test_sim_feed_runs_the_server_in_the_daemon() -> None:
    from adapters.polymarket_us.simfeed import UsSimFeed
    from polybot.feeds import typed_params

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = typed_params(UsSimFeed.Params, "ussim", {"port": port, "seed": 4, "rate": 0, "demo_key": True,
                                                      "slugs": ["nba-bos-lal-2026-11-21"],
                                                      "sides": [["Celtics", "Lakers"]]})  # fmt: skip
    feed = UsSimFeed("ussim", params)
    cfg = feed.config()
    assert cfg.keys == {DEMO_KEY_ID: DEMO_PUBLIC_KEY} and cfg.slugs == ["nba-bos-lal-2026-11-21"]
    with pytest.raises(ValueError):
        UsSimFeed("x", typed_params(UsSimFeed.Params, "x", {"key_id": "k"})).config()
    with pytest.raises(ValueError):
        typed_params(UsSimFeed.Params, "x", {"bogus": 1})
    send, recv_ = anyio.create_memory_object_stream[Any](10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed.run, send, None)
        async with aiohttp.ClientSession() as s:
            body = None
            with anyio.fail_after(5):
                while body is None:
                    try:
                        async with s.get(f"http://127.0.0.1:{port}/v1/markets") as r:
                            body = await r.json()
                    except aiohttp.ClientConnectionError:
                        await anyio.sleep(0.02)
            assert body["markets"][0]["slug"] == "nba-bos-lal-2026-11-21"
            h = auth.sign_headers(DEMO_KEY_ID, DEMO_SECRET_KEY, "GET", "/v1/account/balances")
            async with s.get(f"http://127.0.0.1:{port}/v1/account/balances", headers=h) as r:
                assert r.status == 200
        tg.cancel_scope.cancel()
    with pytest.raises(anyio.EndOfStream):
        recv_.receive_nowait()


async def test_autostart_walks_by_itself_and_kw_override_the_config() -> None:
    cfg = UsSimConfig(autostart=False, seed=9, rate=400.0)
    assert UsSimServer(cfg, markets=1).slugs == [M0]
    with pytest.raises(ValueError):
        UsSimServer(cfg, taker_fee_bps=-1)
    async with UsSimServer(cfg, autostart=True, heartbeat_s=0) as sim:
        book = sim.book(M0), sim.book(M1)
        with anyio.fail_after(3):
            while (sim.book(M0), sim.book(M1)) == book:
                await anyio.sleep(0.01)


async def test_private_malformed_fault() -> None:
    async with running() as (sim, api):
        ws = await api.ws("/v1/ws/private")
        sim.fault("ws_private_malformed")
        await ws.send_json({"subscribe": {"requestId": "b", "subscriptionType": "SUBSCRIPTION_TYPE_ACCOUNT_BALANCE"}})
        with anyio.fail_after(2):
            msg = await ws.receive()
        with pytest.raises(ValueError):
            json.loads(msg.data)
        await ws.send_json({"subscribe": {"requestId": "b2", "subscriptionType": "SUBSCRIPTION_TYPE_ACCOUNT_BALANCE"}})
        assert (await recv(ws))["requestId"] == "b2"
        await ws.close()
