"""Polymarket US market data: the decoders (markets WebSocket frames, REST answers, private
frames) on hand-written frames shaped like the official SDK's types, the YES/NO mirror as a
property, and the feed on loopback against the simulator, inside a kernel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.polymarket_us.auth import generate_key
from adapters.polymarket_us.feed import UsFeedAuthError, UsFeedConfigError, UsMarketFeed
from adapters.polymarket_us.wire import (
    FEES,
    MARKET_DECODER,
    PRIVATE_DECODER,
    REST_DECODER,
    mirror,
    rest_input,
    state_word,
)
from polybot.clock import LiveClock, iso_to_ns
from polybot.config import Config, parse_config
from polybot.events import (
    BestBidAsk,
    BookHealth,
    BookSnapshot,
    FeedConnected,
    FeedDisconnected,
    FeedResynced,
    FeedStale,
    InputDropped,
    MarketInfo,
    MarketResolved,
    MarketStatus,
    TradePrint,
)
from polybot.kernel import FrameError, InboundRecord, Kernel
from polybot.strategy import Strategy
from polybot.units import SCALE
from polybot.wiring import build_kernel

MKT = "pmus:btc-100k"
LONG = "pmus:btc-100k:long"
SHORT = "pmus:btc-100k:short"
T0 = "2026-01-15T10:30:00.123456789Z"


def amt(v: str) -> dict[str, str]:
    return {"value": v, "currency": "USD"}


def lv(px: str, qty: str) -> dict[str, Any]:
    return {"px": amt(px), "qty": qty}


def book_payload(bids: list[tuple[str, str]], offers: list[tuple[str, str]], **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"marketSlug": "btc-100k", "bids": [lv(p, q) for p, q in bids],
                         "offers": [lv(p, q) for p, q in offers], "state": "MARKET_STATE_OPEN",
                         "stats": {"lastTradePx": amt("0.55"), "sharesTraded": "1200", "openInterest": "800",
                                   "highPx": amt("0.6"), "lowPx": amt("0.5")},
                         "transactTime": T0}  # fmt: skip
    d.update(kw)
    return d


def md_frame(bids: list[tuple[str, str]], offers: list[tuple[str, str]], **kw: Any) -> bytes:
    return json.dumps({"requestId": "md-1", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA",
                       "marketData": book_payload(bids, offers, **kw)}).encode()  # fmt: skip


def trade_frame(price: str, quantity: Any, intent: str, tt: str = "2026-01-15T10:31:00Z") -> bytes:
    return json.dumps({"requestId": "tr-1", "subscriptionType": "SUBSCRIPTION_TYPE_TRADE", "trade": {
        "marketSlug": "btc-100k", "price": amt(price), "quantity": quantity, "tradeTime": tt,
        "maker": {"side": "ORDER_SIDE_SELL", "intent": "ORDER_INTENT_SELL_LONG"},
        "taker": {"side": "ORDER_SIDE_BUY", "intent": intent}}}).encode()  # fmt: skip


def kernel_with_decoders() -> tuple[Kernel, list[InputDropped]]:
    k = Kernel()
    k.add_decoder("polymarket_us.market", MARKET_DECODER)
    k.add_decoder("polymarket_us.rest", REST_DECODER)
    drops: list[InputDropped] = []
    k.bus.subscribe(InputDropped, drops.append)
    return k, drops


# ============================================================================ markets WebSocket


def test_market_data_gives_both_books_mirrored_and_the_status() -> None:
    frame = md_frame([("0.54", "1000"), ("0.53", "10.5")], [("0.56", "200"), ("0.6", "3")])
    evs = MARKET_DECODER.decode(frame, 7)
    long_b, short_b, status = evs
    assert isinstance(long_b, BookSnapshot) and isinstance(short_b, BookSnapshot)
    assert long_b.asset_id == LONG and short_b.asset_id == SHORT and long_b.market == short_b.market == MKT
    assert long_b.bids == ((540_000, 1_000_000_000), (530_000, 10_500_000))
    assert long_b.asks == ((560_000, 200_000_000), (600_000, 3_000_000))
    # NO bids are the YES offers at 1 - p; NO asks the YES bids at 1 - p; sizes unchanged
    assert short_b.bids == ((440_000, 200_000_000), (400_000, 3_000_000))
    assert short_b.asks == ((460_000, 1_000_000_000), (470_000, 10_500_000))
    assert long_b.last_trade_price == "0.55" and short_b.last_trade_price == "0.45"
    assert long_b.exchange_ts == short_b.exchange_ts == iso_to_ns(T0) == 1_768_473_000_123_456_789
    assert long_b.ts == 7
    assert status == MarketStatus(ts=7, market=MKT, state="open", accepting_orders=True, closed=False,
                                  exchange_ts=iso_to_ns(T0))  # fmt: skip


@pytest.mark.parametrize(("state", "word", "accepting", "closed"), [
    ("MARKET_STATE_OPEN", "open", True, False),
    ("MARKET_STATE_HALTED", "halted", False, False),
    ("MARKET_STATE_SUSPENDED", "suspended", False, False),
    ("MARKET_STATE_PREOPEN", "preopen", False, False),
    ("MARKET_STATE_MATCH_AND_CLOSE_AUCTION", "match_and_close_auction", False, False),
    ("MARKET_STATE_CLOSED", "closed", False, True),
    ("MARKET_STATE_EXPIRED", "expired", False, True),
    ("MARKET_STATE_TERMINATED", "terminated", False, True),
])  # fmt: skip
def test_market_state_words(state: str, word: str, accepting: bool, closed: bool) -> None:
    assert state_word(state) == word
    st_ev = MARKET_DECODER.decode(md_frame([("0.4", "1")], [("0.6", "1")], state=state), 1)[-1]
    assert isinstance(st_ev, MarketStatus)
    assert (st_ev.state, st_ev.accepting_orders, st_ev.closed) == (word, accepting, closed)


def test_market_data_without_state_stats_or_time() -> None:
    frame = json.dumps({"requestId": "x", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA",
                        "marketData": {"marketSlug": "btc-100k", "bids": [], "offers": [lv("0.7", "5")],
                                       "stats": None, "transactTime": None}}).encode()  # fmt: skip
    evs = MARKET_DECODER.decode(frame, 1)
    assert [type(e) for e in evs] == [BookSnapshot, BookSnapshot]  # no state: no MarketStatus
    assert evs[0].last_trade_price is None and evs[0].exchange_ts == 0
    assert evs[0].bids == () and evs[1].asks == () and evs[1].bids == ((300_000, 5_000_000),)


def test_lite_gives_best_prices_for_both_assets() -> None:
    frame = json.dumps({"requestId": "l", "subscriptionType": "SUBSCRIPTION_TYPE_MARKET_DATA_LITE",
                        "marketDataLite": {"marketSlug": "btc-100k", "bestBid": amt("0.54"),
                                           "bestAsk": amt("0.56"), "lastTradePx": amt("0.55")}}).encode()  # fmt: skip
    a, b = MARKET_DECODER.decode(frame, 3)
    assert a == BestBidAsk(ts=3, asset_id=LONG, market=MKT, best_bid=540_000, best_ask=560_000)
    assert b == BestBidAsk(ts=3, asset_id=SHORT, market=MKT, best_bid=440_000, best_ask=460_000)
    # an empty side stays empty on the other asset's other side
    frame = json.dumps({"marketDataLite": {"marketSlug": "btc-100k", "bestBid": amt("0.54")}}).encode()
    a, b = MARKET_DECODER.decode(frame, 3)
    assert (a.best_bid, a.best_ask, b.best_bid, b.best_ask) == (540_000, 0, 0, 460_000)


@pytest.mark.parametrize(("intent", "long_side", "short_side"), [
    ("ORDER_INTENT_BUY_LONG", "BUY", "SELL"),
    ("ORDER_INTENT_SELL_SHORT", "BUY", "SELL"),
    ("ORDER_INTENT_SELL_LONG", "SELL", "BUY"),
    ("ORDER_INTENT_BUY_SHORT", "SELL", "BUY"),
    ("ORDER_INTENT_UNKNOWN", None, None),
])  # fmt: skip
def test_trade_prints_on_both_assets(intent: str, long_side: str | None, short_side: str | None) -> None:
    a, b = MARKET_DECODER.decode(trade_frame("0.55", amt("10"), intent), 9)
    assert isinstance(a, TradePrint) and isinstance(b, TradePrint)
    assert (a.asset_id, a.price, a.size, a.side) == (LONG, 550_000, 10_000_000, long_side)
    assert (b.asset_id, b.price, b.size, b.side) == (SHORT, 450_000, 10_000_000, short_side)
    assert a.exchange_ts == b.exchange_ts == iso_to_ns("2026-01-15T10:31:00Z")


def test_trade_quantity_as_amount_or_decimal_string() -> None:
    assert MARKET_DECODER.decode(trade_frame("0.3", "2.5", "ORDER_INTENT_BUY_LONG"), 1)[0].size == 2_500_000
    assert MARKET_DECODER.decode(trade_frame("0.3", amt("2.5"), "ORDER_INTENT_BUY_LONG"), 1)[0].size == 2_500_000
    assert MARKET_DECODER.decode(trade_frame("0.3", 4, "ORDER_INTENT_BUY_LONG"), 1)[0].size == 4_000_000


def test_heartbeat_and_private_frames_decode_to_nothing() -> None:
    assert MARKET_DECODER.decode(b'{"heartbeat":{}}', 1) == ()
    order = {"requestId": "o", "subscriptionType": "SUBSCRIPTION_TYPE_ORDER",
             "orderSubscriptionUpdate": {"execution": {"id": "e1", "type": "EXECUTION_TYPE_FILL"}}}  # fmt: skip
    assert PRIVATE_DECODER.decode(json.dumps(order).encode(), 1) == ()
    assert PRIVATE_DECODER(b'{"heartbeat":{}}', 1) == ()


def test_bare_ts_reads_the_frames_own_time() -> None:
    assert MARKET_DECODER.bare_ts(md_frame([], [])) == iso_to_ns(T0)
    assert MARKET_DECODER.bare_ts(trade_frame("0.5", "1", "x")) == iso_to_ns("2026-01-15T10:31:00Z")
    assert MARKET_DECODER.bare_ts(b'{"heartbeat":{}}') is None


@pytest.mark.parametrize(("frame", "reason"), [
    (b'{"requestId":"md-1","error":"unknown market slug(s): nope","subscriptionType":"SUBSCRIPTION_TYPE_MARKET_DATA"}',
     "venue_error"),
    (b'{"somethingNew":{"a":1}}', "unknown_message"),
    (b'[1,2]', "unknown_message"),
    (b'{"marketData":{"marketSlug":"btc-100k","bids":"nope"}}', "schema"),
    (b'{"marketData":{"bids":[]}}', "schema"),
    (b'{"marketData":{"marketSlug":"btc-100k","bids":[{"px":{"value":"0.5"},"qty":"ten"}]}}', "bad_value"),
    (b'{"marketData":{"marketSlug":"btc-100k","transactTime":"yesterday"}}', "bad_value"),
    (b'{"trade":{"marketSlug":"btc-100k","price":{"value":"1.2"},"quantity":"1"}}', "price_out_of_range"),
    (b'{"trade":{"marketSlug":"btc-100k","price":{"value":"0.5"}}}', "schema"),
    (b'{"marketDataLite":{"marketSlug":"btc-100k","bestBid":{"value":"0"}}}', "price_out_of_range"),
])  # fmt: skip
def test_bad_frames_are_refused_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as ei:
        MARKET_DECODER.decode(frame, 1)
    assert ei.value.reason == reason
    assert ei.value.events == ()


def test_bad_frames_through_the_kernel_are_counted_dropped_and_mark_books() -> None:
    k, drops = kernel_with_decoders()
    k.process(1, "polymarket_us.market", md_frame([("0.4", "10")], [("0.6", "10")]))
    assert k.books[LONG].healthy and k.books[SHORT].healthy
    k.process(2, "polymarket_us.market", b'{"marketData": {"marketSlug": "btc-100k", "bids": [{"px"')  # cut short
    k.process(3, "polymarket_us.market", b"garbage")
    k.process(4, "polymarket_us.market", b'{"requestId":"r","error":"boom"}')
    k.process(5, "polymarket_us.market", b'{"whatIsThis":{}}')
    k.process(6, "polymarket_us.market", b'{"marketData":{"marketSlug":"btc-100k","bids":[{"px":{"value":"0.5"},'
                                          b'"qty":"-3"}]}}')  # fmt: skip
    r = k.stats.drop_reasons
    assert r["polymarket_us.market:malformed"] == 2
    assert r["polymarket_us.market:venue_error"] == 1
    assert r["polymarket_us.market:unknown_message"] == 1
    assert r["polymarket_us.market:bad_value"] == 1
    assert len(drops) == 5 and {d.source for d in drops} == {"polymarket_us.market"}
    # the unreadable book made both of its books unhealthy (they missed a change) until the next frame
    assert not k.books[LONG].healthy and not k.books[SHORT].healthy
    k.process(7, "polymarket_us.market", md_frame([("0.41", "10")], [("0.6", "10")]))
    assert k.books[LONG].healthy and k.books[SHORT].healthy and k.books[SHORT].best_ask == 590_000


def test_a_level_outside_0_1_is_left_out_and_counted() -> None:
    frame = md_frame([("0.4", "10"), ("0", "5")], [("0.6", "10"), ("1.00", "7"), ("1.5", "1")])
    with pytest.raises(FrameError) as ei:
        MARKET_DECODER.decode(frame, 1)
    assert ei.value.reason == "price_out_of_range" and "'1.00'" in str(ei.value)
    long_b, short_b, _status = ei.value.events
    assert long_b.bids == ((400_000, 10_000_000),) and long_b.asks == ((600_000, 10_000_000),)
    assert short_b.bids == ((400_000, 10_000_000),) and short_b.asks == ((600_000, 10_000_000),)
    k, drops = kernel_with_decoders()
    k.process(1, "polymarket_us.market", frame)
    assert k.stats.drop_reasons["polymarket_us.market:price_out_of_range"] == 1
    assert k.books[LONG].healthy and list(k.books[LONG].asks.items()) == [(600_000, 10_000_000)]


def test_a_crossed_book_is_passed_on_and_the_kernel_marks_it_unhealthy() -> None:
    k, _ = kernel_with_decoders()
    health: list[BookHealth] = []
    k.bus.subscribe(BookHealth, health.append)
    k.process(1, "polymarket_us.market", md_frame([("0.6", "10")], [("0.55", "10")]))
    assert k.books[LONG].crossed and k.books[SHORT].crossed
    assert not k.books[LONG].healthy and k.books[LONG].unhealthy_reason == "crossed book in snapshot"
    assert {h.asset_id for h in health if not h.healthy} == {LONG, SHORT}
    k.process(2, "polymarket_us.market", md_frame([("0.5", "10")], [("0.55", "10")]))
    assert k.books[LONG].healthy and k.books[SHORT].healthy


def test_market_status_reaches_the_catalog() -> None:
    k, _ = kernel_with_decoders()
    k.process(1, "polymarket_us.rest", rest_input("/v1/market/slug/btc-100k", 200, json.dumps(
        {"market": {"slug": "btc-100k", "title": "BTC 100k?", "state": "MARKET_STATE_OPEN"}}).encode()))
    assert k.catalog.market(MKT).accepting_orders
    k.process(2, "polymarket_us.market", md_frame([("0.4", "1")], [("0.6", "1")], state="MARKET_STATE_HALTED"))
    info = k.catalog.market(MKT)
    assert not info.accepting_orders and not info.closed
    k.process(3, "polymarket_us.market", md_frame([("0.4", "1")], [("0.6", "1")]))
    assert k.catalog.market(MKT).accepting_orders


# ============================================================================ the mirror

_prices = st.integers(min_value=1, max_value=SCALE - 1)
_sizes = st.integers(min_value=1, max_value=10**12)
_levels = st.lists(st.tuples(_prices, _sizes), max_size=20, unique_by=lambda t: t[0])


def _text(v: int) -> str:
    return f"{v // SCALE}.{v % SCALE:06d}"


@settings(max_examples=200, deadline=None)
@given(bids=_levels, offers=_levels)
def test_short_book_is_the_exact_mirror_and_mirroring_twice_is_identity(bids: list[tuple[int, int]],
                                                                      offers: list[tuple[int, int]]) -> None:  # fmt: skip
    frame = md_frame([(_text(p), _text(q)) for p, q in bids], [(_text(p), _text(q)) for p, q in offers])
    long_b, short_b, _ = MARKET_DECODER.decode(frame, 1)
    assert long_b.bids == tuple(bids) and long_b.asks == tuple(offers)
    assert short_b.bids == mirror(long_b.asks) and short_b.asks == mirror(long_b.bids)
    assert mirror(mirror(long_b.bids)) == long_b.bids and mirror(short_b.bids) == long_b.asks
    assert all(0 < p < SCALE for p, _ in short_b.bids + short_b.asks)
    if bids and offers:  # the NO spread is the YES spread
        assert min(p for p, _ in short_b.asks) - max(p for p, _ in short_b.bids) == \
            min(p for p, _ in offers) - max(p for p, _ in bids)  # fmt: skip


# ============================================================================ REST answers


def rest(path: str, body: Any, status: int = 200) -> bytes:
    return rest_input(path, status, json.dumps(body).encode() if not isinstance(body, bytes) else body)


def test_rest_book_answer_gives_both_books() -> None:
    body = {"marketData": book_payload([("0.45", "100")], [("0.47", "50")], stats=None, transactTime=None)}
    evs = REST_DECODER.decode(rest("/v1/markets/btc-100k/book", body), 5)
    assert [type(e) for e in evs] == [BookSnapshot, BookSnapshot, MarketStatus]
    assert evs[0].bids == ((450_000, 100_000_000),) and evs[1].bids == ((530_000, 50_000_000),)
    assert evs[0].last_trade_price is None


def test_rest_book_without_slug_takes_it_from_the_path_and_bbo_too() -> None:
    evs = REST_DECODER.decode(rest("/v1/markets/btc-100k/book", {"marketData": {"bids": [lv("0.45", "1")]}}), 5)
    assert evs[0].asset_id == LONG
    bbo = {"marketData": {"marketSlug": "btc-100k", "bestBid": amt("0.45"), "bestAsk": None, "bidDepth": 3}}
    a, b = REST_DECODER.decode(rest("/v1/markets/btc-100k/bbo", bbo), 5)
    assert (a.best_bid, a.best_ask, b.best_bid, b.best_ask) == (450_000, 0, 0, 550_000)


MARKET = {
    "id": 4983, "slug": "nba-lal-bos-2026-01-15", "title": "Lakers vs. Celtics", "question": "Who wins?",
    "outcome": "Lakers", "active": True, "closed": False, "liquidity": 1234.5, "volume": 99.0,
    "eventSlug": "nba-lal-bos-2026-01-15-event", "state": "MARKET_STATE_OPEN",
    "orderPriceMinTickSize": 0.001, "minimumTradeQty": 0.01, "sportsMarketType": "moneyline",
    "startDate": "2026-01-10T00:00:00Z", "endDate": "2026-01-16T04:00:00Z",
    "gameStartTime": "2026-01-16T00:30:00Z", "someFutureField": {"x": [1, 2]},
    "marketSides": [
        {"id": "2", "description": "Celtics", "long": False, "team": {"name": "Celtics", "league": "nba"}},
        {"id": "1", "description": "Lakers", "long": True, "team": {"name": "Lakers", "league": "nba"}},
    ],
}  # fmt: skip


def test_rest_market_answer_gives_market_info() -> None:
    (info,) = REST_DECODER.decode(rest("/v1/market/slug/nba-lal-bos-2026-01-15", {"market": MARKET}), 11)
    assert isinstance(info, MarketInfo)
    assert info.market == "pmus:nba-lal-bos-2026-01-15"
    assert info.asset_ids == ("pmus:nba-lal-bos-2026-01-15:long", "pmus:nba-lal-bos-2026-01-15:short")
    assert info.outcomes == ("Lakers", "Celtics")  # long first, whatever the order on the wire
    assert info.question == "Lakers vs. Celtics" and info.slug == "nba-lal-bos-2026-01-15"
    assert info.event_slug == "nba-lal-bos-2026-01-15-event"
    assert info.tick_size == 1_000 and info.min_order_size == 10_000
    assert info.active and not info.closed and info.accepting_orders
    assert info.end_ts == iso_to_ns("2026-01-16T04:00:00Z") and info.start_ts == iso_to_ns("2026-01-10T00:00:00Z")
    assert info.fees == FEES and info.netting and info.version == "pmus" and info.ts == 11
    assert info.sports is not None
    assert info.sports.teams == ("Lakers", "Celtics") and info.sports.market_type == "moneyline"
    assert info.sports.league == "nba" and info.sports.start_ts == iso_to_ns("2026-01-16T00:30:00Z")


def test_rest_market_defaults_and_states() -> None:
    (info,) = REST_DECODER.decode(rest("/v1/market/slug/x", {"market": {"slug": "x", "title": "X?"}}), 1)
    assert info.outcomes == ("Yes", "No") and info.tick_size == 10_000 and info.min_order_size == SCALE
    assert info.accepting_orders and info.sports is None and info.event_id == ""
    halted = {"market": {"slug": "x", "state": "MARKET_STATE_HALTED", "active": True}}
    (info,) = REST_DECODER.decode(rest("/v1/market/slug/x", halted), 1)
    assert info.active and not info.accepting_orders and not info.closed
    expired = {"market": {"slug": "x", "state": "MARKET_STATE_EXPIRED"}}
    (info,) = REST_DECODER.decode(rest("/v1/market/slug/x", expired), 1)
    assert info.closed and not info.accepting_orders


def test_rest_events_answer_gives_every_market_with_its_event() -> None:
    body = {"events": [{"id": 77, "slug": "nba-lal-bos", "title": "Lakers vs. Celtics", "gameId": 123456,
                        "startTime": "2026-01-16T00:30:00Z", "tags": [{"id": 1, "slug": "nba", "label": "NBA"}],
                        "series": {"id": 3, "slug": "nba-2026", "title": "NBA"},
                        "markets": [{"id": 1, "slug": "m-1", "title": "Lakers win?"},
                                    {"id": 2, "slug": "m-2", "title": "Over 220.5?", "closed": True}]}]}  # fmt: skip
    a, b = REST_DECODER.decode(rest("/v1/events", body), 1)
    assert (a.slug, b.slug) == ("m-1", "m-2")
    assert a.event_slug == "nba-lal-bos" and a.event_id == "77" and a.series == "nba-2026" and a.tags == ("nba",)
    assert a.sports is not None and a.sports.game_id == "123456" and a.sports.league == "nba-2026"
    assert b.closed and not b.accepting_orders
    single = {"event": body["events"][0]}
    assert REST_DECODER.decode(rest("/v1/events/slug/nba-lal-bos", single), 1) == [a, b]


def test_rest_settlement_gives_market_resolved() -> None:
    ev = REST_DECODER.decode(rest("/v1/markets/btc-100k/settlement", {"slug": "btc-100k", "settlement": 1.0}), 4)
    assert ev == [MarketResolved(ts=4, market=MKT, asset_ids=(LONG, SHORT), winning_asset_id=LONG,
                                 winning_outcome="long")]  # fmt: skip
    (ev0,) = REST_DECODER.decode(rest("/v1/markets/btc-100k/settlement", {"slug": "btc-100k", "settlement": 0}), 4)
    assert ev0.winning_asset_id == SHORT
    # not settled yet: nothing (and nothing counted)
    assert REST_DECODER.decode(rest("/v1/markets/btc-100k/settlement", {"message": "not settled"}, 404), 4) == []
    assert REST_DECODER.decode(rest("/v1/markets/btc-100k/settlement", {"slug": "btc-100k", "settlement": None}), 4) == []
    with pytest.raises(FrameError) as ei:  # a split payout is never guessed
        REST_DECODER.decode(rest("/v1/markets/btc-100k/settlement", {"slug": "btc-100k", "settlement": 0.5}), 4)
    assert ei.value.reason == "bad_settlement"


def test_closed_market_with_settlement_in_the_catalog_resolves() -> None:
    m = {"slug": "btc-100k", "closed": True, "state": "MARKET_STATE_CLOSED", "settlement": 0.0}
    info, res = REST_DECODER.decode(rest("/v1/markets", {"markets": [m]}), 2)
    assert info.closed and isinstance(res, MarketResolved) and res.winning_asset_id == SHORT


def test_rest_errors_and_bad_markets_are_counted() -> None:
    k, drops = kernel_with_decoders()
    k.process(1, "polymarket_us.rest", rest("/v1/markets/btc-100k/book", b"<html>oops</html>", 502))
    body = {"markets": [{"slug": "good"}, {"title": "no slug"}, {"slug": "bad-tick", "orderPriceMinTickSize": 2}]}
    k.process(2, "polymarket_us.rest", rest("/v1/markets", body))
    k.process(3, "polymarket_us.rest", b'{"no": "path"}')
    k.process(4, "polymarket_us.rest", rest("/v1/markets", {"nothing": "here"}))
    r = k.stats.drop_reasons
    assert r["polymarket_us.rest:rest_error"] == 1
    assert r["polymarket_us.rest:bad_market"] == 1
    assert r["polymarket_us.rest:schema"] == 2
    assert k.catalog.market("pmus:good") is not None  # the good one is kept
    assert "orderPriceMinTickSize" in next(d.detail for d in drops if d.reason == "bad_market")


def test_rest_input_keeps_a_non_json_body_as_a_string() -> None:
    msg = rest_input("/v1/markets/x/book", 500, b"Internal Server Error")
    assert msgspec.json.decode(msg) == {"path": "/v1/markets/x/book", "status": 500, "body": "Internal Server Error"}
    assert msgspec.json.decode(rest_input("/p", 200, b' {"a": 1} ', {"slug": ["x"]}))["body"] == {"a": 1}


# ============================================================================ feed params


def test_feed_params_refuse_unknown_keys_and_name_the_field() -> None:
    with pytest.raises(ValueError, match="nope"):
        UsMarketFeed("us", {"markets": ["a"], "nope": 1})
    with pytest.raises(ValueError, match="at least one market or event"):
        UsMarketFeed("us", {})
    with pytest.raises(ValueError, match="backoff_max_s"):
        UsMarketFeed("us", {"markets": ["a"], "backoff_initial_s": 2, "backoff_max_s": 1})
    with pytest.raises(ValueError, match="ws_url"):
        UsMarketFeed("us", {"markets": ["a"], "ws_url": "http://x"})
    with pytest.raises(ValueError, match=r"markets\[0\]"):
        UsMarketFeed("us", {"markets": ["a/b"]})
    f = UsMarketFeed("us", {"events": ["e"], "lite": True, "poll_s": 2})
    assert f.params.lite and f.params.gateway_url == "https://gateway.polymarket.us"
    assert f.params.ws_url == "wss://api.polymarket.us"


def test_feed_from_config_and_credentials_from_the_secrets() -> None:
    from polybot.daemon import build_feeds

    cfg = parse_config({"feeds": [{"kind": "polymarket-us", "name": "us", "params": {"markets": ["m"]}}]})
    secret, _pub = generate_key()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYBOT_PMUS_KEY_ID", "abcdef0123456789")
        mp.setenv("POLYBOT_PMUS_SECRET_KEY", secret)
        (feed,) = build_feeds(cfg)
    assert isinstance(feed, UsMarketFeed) and feed.has_key
    assert secret not in repr(feed) and "abcdef0123456789" not in repr(feed) and "abcdef01" in repr(feed)
    with pytest.raises(ValueError, match="pmus_key_id"):
        UsMarketFeed("us", {"markets": ["m"]}).configure(Config(), env={})
    with pytest.raises(ValueError, match="pmus_secret_key: secret key is not base64"):
        UsMarketFeed("us", {"markets": ["m"]}).configure(Config(), env={"POLYBOT_PMUS_KEY_ID": "k",
                                                                        "POLYBOT_PMUS_SECRET_KEY": "%%%"})
    UsMarketFeed("us", {"markets": ["m"], "poll_s": 1}).configure(Config(), env={})  # polling: no key needed


# ============================================================================ loopback (simulator)

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


KEY_ID = "test-key-0123456789"
SLUGS = ["us-sim-market-0", "us-sim-market-1"]


class Watcher(Strategy):
    """Reads the books through the normal context only, as any strategy would."""

    name = "pmus_watcher"

    def on_start(self) -> None:
        self.seen: dict[str, tuple[int, int]] = {}
        self.infos: dict[str, MarketInfo] = {}
        self.complements: dict[str, str] = {}
        self.ctx.subscribe(BookSnapshot, self.on_book)

    def on_book(self, ev: BookSnapshot) -> None:
        b = self.ctx.books[ev.asset_id]
        self.seen[ev.asset_id] = (b.best_bid, b.best_ask)
        info = self.ctx.catalog.for_asset(ev.asset_id)
        if info is not None:
            self.infos[ev.asset_id] = info
            self.complements[ev.asset_id] = self.ctx.catalog.complement(ev.asset_id) or ""


class Rig:
    def __init__(self, sim: Any, kernel: Kernel, feed: UsMarketFeed) -> None:
        self.sim, self.kernel, self.feed = sim, kernel, feed
        self.got: dict[type, list[Any]] = {}
        for t in (FeedConnected, FeedDisconnected, FeedStale, FeedResynced, MarketResolved, BookHealth, InputDropped):
            self.got[t] = []
            kernel.bus.subscribe(t, self.got[t].append)

    def ev(self, t: type) -> list[Any]:
        return self.got[t]

    def matches(self, slug: str) -> bool:
        bids, offers = self.sim.book(slug)
        books = self.kernel.books
        long_id, short_id = f"pmus:{slug}:long", f"pmus:{slug}:short"
        if long_id not in books or short_id not in books:
            return False
        lb, sb = books[long_id], books[short_id]
        return (lb.healthy and sb.healthy and list(lb.bids.items()) == sorted(bids)
                and list(lb.asks.items()) == sorted(offers)
                and list(sb.bids.items()) == sorted(mirror(offers)) and list(sb.asks.items()) == sorted(mirror(bids)))  # fmt: skip

    def all_match(self) -> bool:
        return all(self.matches(s) for s in SLUGS)


async def until(cond: Callable[[], Any], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.01)


@asynccontextmanager
async def rig(sim_kw: dict[str, Any] | None = None, feed_kw: dict[str, Any] | None = None,
              key: tuple[str, str] | None = None) -> AsyncIterator[Rig]:  # fmt: skip
    from adapters.polymarket_us.sim import UsSimServer

    secret, public = key or generate_key()
    async with UsSimServer(**{"markets": 2, "autostart": False, "keys": {KEY_ID: public}, **(sim_kw or {})}) as sim:
        kernel = build_kernel(Config())
        kernel.add_strategy(Watcher, "watch", {})
        kernel.start()
        params = {"api_url": sim.url, "gateway_url": sim.url, "ws_url": sim.ws_url, "markets": [SLUGS[0]],
                  "events": ["us-sim-event-1"], "backoff_initial_s": 0.05, "backoff_max_s": 0.2,
                  "resync_min_interval_s": 0.05, "snapshot_timeout_s": 1.0, **(feed_kw or {})}  # fmt: skip
        feed = UsMarketFeed("us", params)
        feed.set_credentials(KEY_ID, secret)
        feed.attach(kernel)
        send, recv = anyio.create_memory_object_stream[InboundRecord](10_000)

        async def consume() -> None:
            async with recv:
                async for rec in recv:
                    kernel.process(rec.ts, rec.source, rec.msg)

        r = Rig(sim, kernel, feed)
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(feed.run, send, LiveClock())
            yield r
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_loopback_books_follow_the_simulator_in_the_kernel() -> None:
    async with rig() as r:
        await until(lambda: r.ev(FeedConnected) and r.all_match())
        infos = {i.slug: i for i in r.kernel.catalog}
        assert set(infos) == set(SLUGS) and all(i.netting and i.version == "pmus" for i in infos.values())
        assert infos[SLUGS[1]].event_slug == "us-sim-event-1"
        for _ in range(5):
            r.sim.step(40)
            await until(r.all_match)
        assert r.kernel.stats.dropped == 0
        # a strategy saw both assets' books through its ordinary context
        watch = r.kernel.strategies["watch"]
        for slug in SLUGS:
            bids, offers = r.sim.book(slug)
            assert watch.seen[f"pmus:{slug}:long"] == (bids[0][0], offers[0][0])
            assert watch.seen[f"pmus:{slug}:short"] == (SCALE - offers[0][0], SCALE - bids[0][0])
            assert watch.complements[f"pmus:{slug}:long"] == f"pmus:{slug}:short"
            assert watch.infos[f"pmus:{slug}:short"].outcomes == ("Yes", "No")
        sources = r.kernel.stats.by_source
        assert sources["polymarket_us.rest"] >= 4 and sources["polymarket_us.market"] > 10


@pytest.mark.anyio
async def test_loopback_survives_dropped_connections() -> None:
    async with rig() as r:
        await until(lambda: r.ev(FeedConnected) and r.all_match())
        r.sim.drop_connections()
        await until(lambda: r.ev(FeedDisconnected))
        d = r.ev(FeedDisconnected)[0]
        assert set(d.asset_ids) == {f"pmus:{s}:{x}" for s in SLUGS for x in ("long", "short")}
        assert any(not h.healthy and h.reason.startswith("reconnect") for h in r.ev(BookHealth))
        await until(lambda: len(r.ev(FeedConnected)) >= 2 and r.ev(FeedResynced) and r.all_match())
        assert r.feed.stats["subscribes"] == 2 and r.feed.stats["connects"] == 2
        r.sim.step(60)  # the new connection is subscribed: changes keep coming
        await until(r.all_match)


@pytest.mark.anyio
async def test_loopback_malformed_frame_is_counted_and_books_recover() -> None:
    async with rig() as r:
        await until(lambda: r.ev(FeedConnected) and r.all_match())
        r.sim.fault("ws_markets_malformed")
        r.sim.step(30)
        await until(lambda: r.kernel.stats.drop_reasons.get("polymarket_us.market:malformed", 0) >= 1)
        r.sim.step(30)
        await until(r.all_match)


@pytest.mark.anyio
async def test_loopback_state_changes_and_resolution() -> None:
    async with rig() as r:
        await until(lambda: r.ev(FeedConnected) and r.all_match())
        r.sim.set_state(SLUGS[0], "MARKET_STATE_HALTED")
        await until(lambda: not r.kernel.catalog.market(f"pmus:{SLUGS[0]}").accepting_orders)
        r.sim.set_state(SLUGS[0], "MARKET_STATE_OPEN")
        await until(lambda: r.kernel.catalog.market(f"pmus:{SLUGS[0]}").accepting_orders)
        r.sim.resolve(SLUGS[1], long_wins=False)
        await until(lambda: r.ev(MarketResolved))
        (res,) = r.ev(MarketResolved)
        assert res.market == f"pmus:{SLUGS[1]}" and res.winning_asset_id == f"pmus:{SLUGS[1]}:short"
        assert r.kernel.catalog.market(f"pmus:{SLUGS[1]}").closed


@pytest.mark.anyio
async def test_loopback_unhealthy_book_is_fetched_again_over_rest() -> None:
    async with rig() as r:
        await until(lambda: r.ev(FeedConnected) and r.all_match())
        fetched = r.feed.stats["books_fetched"]
        r.kernel.bus.publish(BookHealth(asset_id=f"pmus:{SLUGS[1]}:short", healthy=False, reason="crossed book"))
        r.kernel.bus.publish(BookHealth(asset_id="pmus:not-ours:long", healthy=False, reason="crossed book"))
        await until(lambda: r.ev(FeedResynced))
        assert r.ev(FeedResynced)[0].asset_id == f"pmus:{SLUGS[1]}:long"
        assert r.feed.stats["books_fetched"] == fetched + 1 and r.feed.stats["resyncs"] == 1


@pytest.mark.anyio
async def test_loopback_silence_is_stale_and_replaced() -> None:
    async with rig(sim_kw={"heartbeat_s": 0}, feed_kw={"stale_s": 0.3}) as r:
        await until(lambda: r.ev(FeedConnected) and r.all_match())
        await until(lambda: r.ev(FeedStale) and len(r.ev(FeedConnected)) >= 2)
        assert {s.asset_id for s in r.ev(FeedStale)[:4]} == {f"pmus:{s}:{x}" for s in SLUGS for x in ("long", "short")}
        assert r.feed.stats["reconnects"]["stale"] >= 1


@pytest.mark.anyio
async def test_heartbeats_keep_a_quiet_connection() -> None:
    async with rig(sim_kw={"heartbeat_s": 0.05}, feed_kw={"stale_s": 0.3}) as r:
        await until(lambda: r.ev(FeedConnected) and r.all_match())
        await anyio.sleep(0.8)
        assert not r.ev(FeedStale) and r.feed.stats["connects"] == 1


@pytest.mark.anyio
async def test_lite_subscription_gives_best_prices() -> None:
    async with rig(feed_kw={"lite": True}) as r:
        bbo: list[BestBidAsk] = []
        r.kernel.bus.subscribe(BestBidAsk, bbo.append)
        await until(lambda: r.ev(FeedConnected))  # lite: no book is fetched (it would go stale)
        r.sim.step(40)

        def tops_match() -> bool:
            last = {e.asset_id: e for e in bbo}
            for slug in SLUGS:
                lo, sh = last.get(f"pmus:{slug}:long"), last.get(f"pmus:{slug}:short")
                bids, offers = r.sim.book(slug)
                if lo is None or sh is None or (lo.best_bid, lo.best_ask) != (bids[0][0], offers[0][0]):
                    return False
                assert (sh.best_bid, sh.best_ask) == (SCALE - lo.best_ask, SCALE - lo.best_bid)
            return True

        await until(tops_match)
        assert r.feed.stats["connects"] == 1 and r.kernel.stats.dropped == 0
        assert not list(r.kernel.books.items()) and r.feed.stats["books_fetched"] == 0


@pytest.mark.anyio
async def test_without_a_key_the_feed_refuses_to_start_naming_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLYBOT_PMUS_KEY_ID", raising=False)
    monkeypatch.delenv("POLYBOT_PMUS_SECRET_KEY", raising=False)
    feed = UsMarketFeed("us", {"markets": ["m"]})
    send, recv = anyio.create_memory_object_stream[InboundRecord](10)
    with pytest.raises(UsFeedConfigError, match="pmus_key_id / pmus_secret_key: missing"):
        await feed.run(send, LiveClock())
    send.close()
    recv.close()


@pytest.mark.anyio
async def test_without_a_key_rest_polling_keeps_the_books(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.polymarket_us.sim import UsSimServer

    monkeypatch.delenv("POLYBOT_PMUS_KEY_ID", raising=False)
    monkeypatch.delenv("POLYBOT_PMUS_SECRET_KEY", raising=False)
    async with UsSimServer(markets=2, autostart=False) as sim:
        kernel = build_kernel(Config())
        kernel.start()
        feed = UsMarketFeed("us", {"gateway_url": sim.url, "api_url": sim.url, "markets": SLUGS, "poll_s": 0.05})
        send, recv = anyio.create_memory_object_stream[InboundRecord](1000)

        async def consume() -> None:
            async with recv:
                async for rec in recv:
                    kernel.process(rec.ts, rec.source, rec.msg)

        r = Rig(sim, kernel, feed)
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(feed.run, send, LiveClock())
            await until(r.all_match)
            sim.step(50)
            await until(lambda: feed.stats["polls"] >= 2 and r.all_match())
            assert not any(p == "/v1/ws/markets" for _m, p, _s in sim.requests)
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_refused_signature_is_a_clear_error() -> None:
    from adapters.polymarket_us.sim import UsSimServer

    secret, _ = generate_key()
    _other_secret, other_public = generate_key()
    async with UsSimServer(markets=2, autostart=False, keys={KEY_ID: other_public}) as sim:
        feed = UsMarketFeed("us", {"gateway_url": sim.url, "api_url": sim.url, "ws_url": sim.ws_url,
                                   "markets": SLUGS, "backoff_initial_s": 0.02, "backoff_max_s": 0.05,
                                   "max_auth_failures": 2})  # fmt: skip
        feed.set_credentials(KEY_ID, secret)
        send, recv = anyio.create_memory_object_stream[InboundRecord](1000)
        got: list[InboundRecord] = []

        async def drain() -> None:
            async with recv:
                async for rec in recv:
                    got.append(rec)

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            with anyio.fail_after(5), pytest.raises(UsFeedAuthError) as ei:
                await feed.run(send, LiveClock())
        text = str(ei.value)
        assert "refused the API key" in text and "HTTP 401" in text and "pmus_secret_key" in text
        assert KEY_ID[:8] in text and KEY_ID not in text and secret not in text
        assert feed.stats["auth_errors"] == 2
        # the catalog and books (public) came through before the WebSocket was refused
        assert sum(1 for g in got if g.source == "polymarket_us.rest") == 4


@pytest.mark.anyio
async def test_loopback_resolved_and_unknown_markets_at_start() -> None:
    from adapters.polymarket_us.sim import UsSimServer

    secret, public = generate_key()
    async with UsSimServer(markets=2, autostart=False, keys={KEY_ID: public}) as sim:
        sim.resolve(SLUGS[0], long_wins=True)
        kernel = build_kernel(Config())
        kernel.start()
        feed = UsMarketFeed("us", {"gateway_url": sim.url, "ws_url": sim.ws_url,
                                   "markets": [SLUGS[0], "no-such-market"], "events": ["us-sim-event-1"]})  # fmt: skip
        feed.set_credentials(KEY_ID, secret)
        feed.attach(kernel)
        send, recv = anyio.create_memory_object_stream[InboundRecord](1000)

        async def consume() -> None:
            async with recv:
                async for rec in recv:
                    kernel.process(rec.ts, rec.source, rec.msg)

        r = Rig(sim, kernel, feed)
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(feed.run, send, LiveClock())
            await until(lambda: r.ev(MarketResolved) and r.matches(SLUGS[1]))
            assert feed.markets == [SLUGS[0], SLUGS[1]]  # the unknown slug is skipped (logged)
            (res,) = r.ev(MarketResolved)
            assert res.winning_asset_id == f"pmus:{SLUGS[0]}:long"
            assert kernel.catalog.resolved == {f"pmus:{SLUGS[0]}": f"pmus:{SLUGS[0]}:long"}
            assert ("GET", "/v1/market/slug/no-such-market", 404) in sim.requests
            # asked for on demand (a journal rotation): both books again over REST
            n = feed.stats["books_fetched"]
            assert feed.request_snapshots() == 2
            await until(lambda: feed.stats["books_fetched"] == n + 2)
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_an_unreachable_websocket_is_retried_without_disconnect_events() -> None:
    from adapters.polymarket_us.sim import UsSimServer

    secret, public = generate_key()
    async with UsSimServer(markets=2, autostart=False, keys={KEY_ID: public}) as sim:
        feed = UsMarketFeed("us", {"gateway_url": sim.url, "ws_url": "ws://127.0.0.1:1", "markets": SLUGS,
                                   "backoff_initial_s": 0.01, "backoff_max_s": 0.02})  # fmt: skip
        feed.set_credentials(KEY_ID, secret)
        send, recv = anyio.create_memory_object_stream[InboundRecord](1000)
        got: list[InboundRecord] = []

        async def drain() -> None:
            async with recv:
                async for rec in recv:
                    got.append(rec)

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            tg.start_soon(feed.run, send, LiveClock())
            await until(lambda: feed.stats["reconnects"]["connect_failed"] >= 3)
            assert sum(1 for g in got if g.source == "polymarket_us.rest") == 4  # catalog + books
            assert not any(g.source == "events" for g in got)
            assert "connect_failed" in feed.last_error
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_closed_door_stops_the_feed() -> None:
    from adapters.polymarket_us.sim import UsSimServer

    secret, public = generate_key()
    async with UsSimServer(markets=2, autostart=False, keys={KEY_ID: public}) as sim:
        feed = UsMarketFeed("us", {"gateway_url": sim.url, "ws_url": sim.ws_url, "markets": SLUGS})
        feed.set_credentials(KEY_ID, secret)
        send, recv = anyio.create_memory_object_stream[InboundRecord](0)

        async def take_one() -> None:
            async with recv:
                await recv.receive()

        async with anyio.create_task_group() as tg:
            tg.start_soon(take_one)
            with anyio.fail_after(5):
                await feed.run(send, LiveClock())  # returns: the kernel is gone


@pytest.mark.anyio
async def test_a_rest_book_overtaken_by_a_stream_book_is_dropped_not_sent() -> None:
    """A resync's REST answer that arrives after the stream already sent that market's whole
    book may be older than it: it is neither journaled nor used."""
    feed = UsMarketFeed("us", {"markets": ["m"], "poll_s": 1})
    sent: list[Any] = []

    async def journal(*a: Any) -> list[Any]:
        sent.append(a)
        return []

    for overtaken in (True, False):
        async def get(path: str, overtaken: bool = overtaken) -> tuple[int, bytes]:
            if overtaken:  # what the frame loop does when a "marketData" frame of "m" passes by
                feed._fetching["m"] = True
            return 200, b'{"marketData": {"marketSlug": "m", "bids": [], "offers": []}}'

        feed._get = get  # type: ignore[method-assign]
        feed._journal = journal  # type: ignore[method-assign]
        assert await feed._fetch_book("m") is True
        assert "m" not in feed._fetching
    assert feed.stats["rest_superseded"] == 1 and len(sent) == 1  # only the answer nothing overtook
