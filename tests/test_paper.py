"""The paper executor against hand-built books: taking (FOK/FAK/GTC/post-only), queue position
from level changes and prints (each trade counted once, mirrored prints), crossing, balances,
latency, expiry, late fills after a cancel, resolution, snapshots and determinism."""

from __future__ import annotations

from typing import Any

import pytest

from polybot.events import (
    ENCODER,
    BookDelta,
    BookSnapshot,
    FeeSchedule,
    FillEvent,
    MarketInfo,
    MarketResolved,
    OrderEvent,
    OrderIntent,
    TradePrint,
)
from polybot.execution.paper import PaperExecutor
from polybot.execution.rules import taker_fee
from polybot.kernel import Kernel

YES, NO, M = "yes", "no", "m1"
U = 1_000_000
SCHED = FeeSchedule(rate_ppm=70_000, exponent=1, rebate_ppm=200_000)
MS = 1_000_000  # ns


def p(x: float) -> int:
    return round(x * U)


class Rig:
    def __init__(self, cash: str = "1000", **kw: Any) -> None:
        self.ex = PaperExecutor(cash=cash, **kw)
        self.k = Kernel(executor=self.ex, verify_books=False, synthesize_timers=True)
        self.log: list[OrderEvent] = []
        self.k.bus.subscribe(OrderEvent, self.log.append)
        self.t = 1_000 * MS
        self.feed(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=SCHED))

    def feed(self, *evs: Any, dt: int = MS) -> None:
        self.t += dt
        self.k.process(self.t, "events", ENCODER.encode(list(evs)))

    def books(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
        """YES book as given, NO book mirrored (one unified book)."""
        yb = tuple((p(a), p(b)) for a, b in bids)
        ya = tuple((p(a), p(b)) for a, b in asks)
        self.feed(
            BookSnapshot(asset_id=YES, market=M, bids=yb, asks=ya, tick_size=10_000),
            BookSnapshot(asset_id=NO, market=M, bids=tuple((U - a, s) for a, s in ya),
                         asks=tuple((U - b, s) for b, s in yb), tick_size=10_000),
        )  # fmt: skip

    def delta(self, side: str, price: float, size: float) -> None:
        """A change of the YES book and its mirror on NO, in one frame (as the venue sends)."""
        other = "ASK" if side == "BID" else "BID"
        self.feed(BookDelta(asset_id=YES, market=M, side=side, price=p(price), size=p(size)),  # type: ignore[arg-type]
                  BookDelta(asset_id=NO, market=M, side=other, price=U - p(price), size=p(size)))  # type: ignore[arg-type]  # fmt: skip

    def trade(self, asset: str, price: float, size: float, side: str | None) -> None:
        self.feed(TradePrint(asset_id=asset, market=M, price=p(price), size=p(size), side=side))  # type: ignore[arg-type]

    def order(self, side: str, price: float, size: float, asset: str = YES, **kw: Any) -> str:
        d = self.k.submit("s", OrderIntent(strategy="s", asset_id=asset, market=M, side=side,  # type: ignore[arg-type]
                                           price=p(price), size=p(size), **kw))  # fmt: skip
        assert d.approved, d
        return d.client_ids[0]

    def fills(self, cid: str | None = None) -> list[tuple[int, int, str]]:
        return [(e.price, e.size, e.liquidity) for e in self.log
                if isinstance(e, FillEvent) and (cid is None or e.client_id == cid)]  # fmt: skip

    def kinds(self, cid: str) -> list[str]:
        return [type(e).__name__ for e in self.log if e.client_id == cid]

    def state(self, cid: str) -> str:
        o = self.k.orders.get(cid)
        assert o is not None
        return o.state


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.books(bids=[(0.48, 100), (0.47, 50)], asks=[(0.50, 10), (0.51, 20), (0.53, 40)])
    return r


# ------------------------------------------------------------------ taking


def test_marketable_gtc_walks_levels_to_its_limit_then_rests(rig: Rig) -> None:
    cid = rig.order("BUY", 0.51, 40)
    assert rig.fills(cid) == [(p(0.50), p(10), "taker"), (p(0.51), p(20), "taker")]
    fees = [e.fee for e in rig.log if isinstance(e, FillEvent)]
    assert fees == [taker_fee(p(10), p(0.50), SCHED), taker_fee(p(20), p(0.51), SCHED)]
    assert fees[0] == 175_000  # 10 x 0.07 x 0.25
    assert rig.state(cid) == "partially_filled"
    assert rig.ex.resting[cid].remaining == p(10) and rig.ex.resting[cid].ahead == 0
    assert rig.k.portfolio.size(YES) == p(30)


def test_fok_fills_whole_or_is_refused(rig: Rig) -> None:
    bad = rig.order("BUY", 0.51, 31, tif="FOK")
    assert rig.kinds(bad) == ["OrderSubmitted", "OrderRejected"] and rig.fills(bad) == []
    good = rig.order("BUY", 0.51, 30, tif="FOK")
    assert rig.fills(good) == [(p(0.50), p(10), "taker"), (p(0.51), p(20), "taker")]
    assert rig.state(good) == "filled"


def test_fak_takes_what_is_there_and_cancels_the_rest(rig: Rig) -> None:
    cid = rig.order("BUY", 0.50, 25, tif="FAK")
    assert rig.fills(cid) == [(p(0.50), p(10), "taker")]
    assert rig.kinds(cid)[-1] == "OrderCancelled" and rig.state(cid) == "cancelled"
    assert cid not in rig.ex.resting
    none = rig.order("BUY", 0.49, 10, tif="FAK")
    assert rig.kinds(none) == ["OrderSubmitted", "OrderRejected"]


def test_liquidity_taken_is_not_taken_twice(rig: Rig) -> None:
    a = rig.order("BUY", 0.50, 10, tif="FAK")
    assert rig.fills(a) == [(p(0.50), p(10), "taker")]
    b = rig.order("BUY", 0.50, 10, tif="FAK")  # the recorded book still shows the 10 we took
    assert rig.kinds(b)[-1] == "OrderRejected"
    no = rig.order("SELL", 0.50, 5, asset=NO, tif="FAK")  # the NO bid at 0.50 mirrors that ask
    assert rig.kinds(no)[-1] == "OrderRejected"
    rig.delta("ASK", 0.50, 4)  # someone else took 6: the level shrinks below what we took
    c = rig.order("BUY", 0.50, 10, tif="FAK")
    assert rig.kinds(c)[-1] == "OrderRejected"
    rig.delta("ASK", 0.50, 9)  # 5 new shares behind the 4 we already hold
    d = rig.order("BUY", 0.50, 10, tif="FAK")
    assert rig.fills(d) == [(p(0.50), p(5), "taker")]


def test_sell_walks_bids_down_to_its_limit(rig: Rig) -> None:
    rig.order("BUY", 0.53, 70, tif="FAK")
    assert rig.kinds(rig.order("SELL", 0.47, 71, tif="FAK"))[-1] == "OrderRejected"  # holds 70
    rig.delta("BID", 0.48, 50)
    cid = rig.order("SELL", 0.47, 70, tif="FAK")
    assert rig.fills(cid) == [(p(0.48), p(50), "taker"), (p(0.47), p(20), "taker")]
    assert rig.k.portfolio.size(YES) == 0


def test_post_only_that_would_cross_is_refused(rig: Rig) -> None:
    bad = rig.order("BUY", 0.50, 10, post_only=True)
    assert rig.kinds(bad) == ["OrderSubmitted", "OrderRejected"]
    ok = rig.order("BUY", 0.49, 10, post_only=True)
    assert rig.kinds(ok) == ["OrderSubmitted", "OrderAccepted"] and rig.fills(ok) == []


def test_venue_rules_refuse_off_tick_small_and_unbacked_orders(rig: Rig) -> None:
    for kw in ({"price": 0.485, "size": 10}, {"price": 0.45, "size": 4}, {"price": 0.45, "size": 10, "tif": "FOK", "post_only": True}):
        cid = rig.order("BUY", kw.pop("price"), kw.pop("size"), **kw)
        assert rig.kinds(cid)[-1] == "OrderRejected"
    sell = rig.order("SELL", 0.60, 10)
    rej = [e for e in rig.log if e.client_id == sell][-1]
    assert rej.reason.startswith("not enough balance / allowance")
    broke = Rig(cash="3")
    broke.books(bids=[(0.48, 100)], asks=[(0.50, 100)])
    big = broke.order("BUY", 0.40, 10)  # 4 pUSD > 3
    assert broke.kinds(big)[-1] == "OrderRejected"
    assert broke.ex.cash == 3 * U and not broke.ex.reserved


def test_balances_reserve_and_release() -> None:
    r = Rig(cash="100")
    r.books(bids=[(0.48, 100)], asks=[(0.50, 100)])
    cid = r.order("BUY", 0.45, 100)  # rests: 45 + fee at 0.45 reserved
    assert r.ex.cash == 100 * U - r.ex.reserved[cid]
    assert r.ex.reserved[cid] == 45 * U + taker_fee(100 * U, p(0.45), SCHED)
    r.k.cancel("s", cid)
    assert r.ex.cash == 100 * U and not r.ex.reserved
    b = r.order("BUY", 0.50, 20, tif="FAK")
    spent = 10 * U + taker_fee(20 * U, p(0.50), SCHED)
    assert r.ex.cash == 100 * U - spent and r.ex.shares[YES] == 20 * U
    s1 = r.order("SELL", 0.60, 15)  # rests: 15 shares reserved
    s2 = r.order("SELL", 0.60, 10)  # only 5 free
    assert r.kinds(s2)[-1] == "OrderRejected" and r.kinds(s1)[-1] == "OrderAccepted"
    assert b


# ------------------------------------------------------------------ queue position


def test_queue_advances_on_shrink_and_each_trade_counts_once(rig: Rig) -> None:
    cid = rig.order("BUY", 0.48, 30)
    assert rig.ex.resting[cid].ahead == p(100)
    rig.delta("BID", 0.48, 60)  # 40 left the level (a trade, its print follows)
    rig.trade(YES, 0.48, 40, "SELL")
    assert rig.ex.resting[cid].ahead == p(60) and rig.fills(cid) == []
    rig.delta("BID", 0.48, 110)  # 50 join behind us
    assert rig.ex.resting[cid].ahead == p(60)
    rig.delta("BID", 0.48, 50)  # a trade of 60 eats exactly the queue ahead
    rig.trade(YES, 0.48, 60, "SELL")
    assert rig.fills(cid) == [] and rig.ex.resting[cid].ahead == 0
    rig.delta("BID", 0.48, 40)  # next trade of 10: we are first, it is ours
    rig.trade(YES, 0.48, 10, "SELL")
    assert rig.fills(cid) == [(p(0.48), p(10), "maker")]
    fill = [e for e in rig.log if isinstance(e, FillEvent)][-1]
    assert fill.fee == 0 and fill.rebate == 200_000 * taker_fee(p(10), p(0.48), SCHED) // U // 10 * 10


def test_print_before_its_shrink_is_not_counted_twice(rig: Rig) -> None:
    cid = rig.order("BUY", 0.48, 30)
    rig.trade(YES, 0.48, 70, "SELL")  # print first
    assert rig.ex.resting[cid].ahead == p(30) and rig.fills(cid) == []
    rig.delta("BID", 0.48, 30)  # then the same trade's shrink: no second advance
    assert rig.ex.resting[cid].ahead == p(30)
    rig.trade(YES, 0.48, 50, "SELL")  # 30 ahead, then 20 to us
    assert rig.fills(cid) == [(p(0.48), p(20), "maker")]


def test_trade_past_the_queue_fills_the_overflow(rig: Rig) -> None:
    cid = rig.order("BUY", 0.48, 30)
    rig.delta("BID", 0.48, 0)  # 100 gone at once
    rig.trade(YES, 0.48, 100, "SELL")  # ... and it was one trade: it went through us
    assert rig.fills(cid) == []  # 100 ahead = exactly the trade
    rig.delta("BID", 0.48, 0)
    cid2 = rig.order("BUY", 0.48, 10)  # joins an empty level: first in line
    rig.trade(YES, 0.48, 25, "SELL")
    assert rig.fills(cid) == [(p(0.48), p(25), "maker")] and rig.fills(cid2) == []
    rig.trade(YES, 0.48, 20, "SELL")
    assert rig.fills(cid) == [(p(0.48), p(25), "maker"), (p(0.48), p(5), "maker")]
    assert rig.fills(cid2) == [(p(0.48), p(10), "maker")]


def test_mirrored_print_on_the_complement_fills_yes_bids(rig: Rig) -> None:
    rig.delta("BID", 0.48, 0)
    cid = rig.order("BUY", 0.48, 30)
    assert rig.ex.resting[cid].ahead == 0
    rig.trade(NO, 0.52, 12, "SELL")  # selling NO does not trade against YES bids
    assert rig.fills(cid) == []
    rig.trade(NO, 0.52, 12, "BUY")  # buying NO at 0.52 = selling YES at 0.48
    assert rig.fills(cid) == [(p(0.48), p(12), "maker")]


def test_print_through_our_price_fills_first(rig: Rig) -> None:
    cid = rig.order("BUY", 0.49, 30)  # a new best bid, nobody ahead
    rig.trade(YES, 0.48, 20, "SELL")  # a taker sold at 0.48: it would have hit us at 0.49 first
    assert rig.fills(cid) == [(p(0.49), p(20), "maker")]
    rig.trade(YES, 0.50, 20, "BUY")  # buyers do not fill bids
    assert rig.fills(cid) == [(p(0.49), p(20), "maker")]


def test_book_moving_through_a_resting_order_fills_it_as_maker(rig: Rig) -> None:
    cid = rig.order("BUY", 0.49, 30)
    rig.delta("ASK", 0.49, 12)  # an ask appears at our bid
    assert rig.fills(cid) == [(p(0.49), p(12), "maker")]
    rig.delta("BID", 0.47, 40)  # unrelated change: the same 12 are not taken again
    assert len(rig.fills(cid)) == 1
    rig.delta("ASK", 0.49, 20)  # 8 more arrive
    assert rig.fills(cid)[-1] == (p(0.49), p(8), "maker")


# ------------------------------------------------------------------ time


def test_latency_orders_reach_the_book_later() -> None:
    r = Rig(latency_ms=50)
    r.books(bids=[(0.48, 100)], asks=[(0.50, 10), (0.51, 20)])
    cid = r.order("BUY", 0.51, 15, tif="FAK")
    assert r.kinds(cid) == ["OrderSubmitted"]
    r.feed(BookDelta(asset_id=YES, market=M, side="ASK", price=p(0.50), size=0), dt=10 * MS)  # gone meanwhile
    assert r.kinds(cid) == ["OrderSubmitted"]
    r.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.47), size=p(5)), dt=60 * MS)  # the timer fires first
    assert r.fills(cid) == [(p(0.51), p(15), "taker")]


def test_cancel_with_latency_and_a_late_fill() -> None:
    r = Rig(latency_ms=20)
    r.books(bids=[(0.48, 0.01)], asks=[(0.50, 10)])
    r.delta("BID", 0.48, 0)
    cid = r.order("BUY", 0.48, 10)
    r.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.47), size=p(5)), dt=30 * MS)
    assert r.state(cid) == "accepted"
    r.k.cancel("s", cid)
    assert r.state(cid) == "cancel_pending"
    r.feed(TradePrint(asset_id=YES, market=M, price=p(0.48), size=p(10), side="SELL"), dt=5 * MS)
    assert r.state(cid) == "filled"  # matched before the cancel reached the book: accounted
    r.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.47), size=p(6)), dt=30 * MS)
    assert r.state(cid) == "filled" and r.k.portfolio.size(YES) == p(10)
    assert r.k.stats.illegal_transitions == 0


def test_gtd_expires_a_minute_before_its_signed_expiration(rig: Rig) -> None:
    now = rig.k.clock.now()
    cid = rig.order("BUY", 0.45, 10, tif="GTD", expire_ts=now + 90 * 1_000_000_000)
    assert rig.state(cid) == "accepted"
    rig.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.47), size=p(5)), dt=29 * 1_000_000_000)
    assert rig.state(cid) == "accepted"
    rig.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.47), size=p(6)), dt=2 * 1_000_000_000)
    assert rig.state(cid) == "expired" and cid not in rig.ex.resting and not rig.ex.reserved


def test_resolution_cancels_resting_orders_and_settles_balances(rig: Rig) -> None:
    rig.order("BUY", 0.50, 10, tif="FAK")
    cid = rig.order("BUY", 0.45, 10)
    cash = rig.ex.cash + rig.ex.reserved[cid]
    rig.feed(MarketResolved(market=M, asset_ids=(YES, NO), winning_asset_id=YES))
    assert rig.state(cid) == "cancelled" and not rig.ex.resting
    assert rig.ex.cash == cash + p(10) and YES not in rig.ex.shares


# ------------------------------------------------------------------ state and determinism


def _session(r: Rig, stop_after: int | None = None) -> list[Any]:
    steps = [
        lambda: r.order("BUY", 0.48, 30),
        lambda: r.order("BUY", 0.51, 25),
        lambda: r.delta("BID", 0.48, 60),
        lambda: r.trade(YES, 0.48, 40, "SELL"),
        lambda: r.delta("ASK", 0.49, 3),
        lambda: r.trade(NO, 0.52, 70, "BUY"),
        lambda: r.order("SELL", 0.55, 10),
        lambda: r.trade(YES, 0.56, 20, "BUY"),
        lambda: r.delta("BID", 0.48, 0),
    ]
    for i, s in enumerate(steps):
        if stop_after is not None and i == stop_after:
            break
        s()
    return [ENCODER.encode(e) for e in r.log]


def test_paper_is_deterministic_and_survives_a_snapshot() -> None:
    a, b = Rig(), Rig()
    for r in (a, b):
        r.books(bids=[(0.48, 100)], asks=[(0.50, 10), (0.51, 20)])
    assert _session(a) == _session(b)
    assert a.ex.to_state() == b.ex.to_state()
    # stop half way, snapshot, restore into a fresh kernel, finish: same end state
    c = Rig()
    c.books(bids=[(0.48, 100)], asks=[(0.50, 10), (0.51, 20)])
    _session(c, stop_after=5)
    st = c.k.to_state()
    d = Rig()
    d.k.restore(st)
    d.t = c.t
    d.trade(NO, 0.52, 70, "BUY")
    d.order("SELL", 0.55, 10)
    d.trade(YES, 0.56, 20, "BUY")
    d.delta("BID", 0.48, 0)
    assert d.ex.to_state() == a.ex.to_state()
    assert d.k.portfolio.to_state() == a.k.portfolio.to_state()


# ------------------------------------------------------------------ execution modes


def test_mode_cross_takes_at_the_touch_or_a_limit(rig: Rig) -> None:
    d = rig.k.executions.execute("s", YES, "BUY", p(15), "cross")
    assert rig.fills(d.client_ids[0]) == [(p(0.50), p(10), "taker")]  # FAK at the touch
    d = rig.k.executions.execute("s", YES, "BUY", p(15), "cross", limit=p(0.53))
    assert rig.fills(d.client_ids[0]) == [(p(0.51), p(15), "taker")]
    assert not rig.k.executions.execute("s", YES, "BUY", p(5), "cross", tif="GTC").approved


def test_mode_post_rests_behind_the_touch_and_never_crosses(rig: Rig) -> None:
    d = rig.k.executions.execute("s", YES, "BUY", p(10), "post", offset_ticks=1)
    o = rig.k.orders.get(d.client_ids[0])
    assert o is not None and o.intent.price == p(0.47) and o.intent.post_only and o.state == "accepted"
    d = rig.k.executions.execute("s", YES, "BUY", p(10), "post", offset_ticks=-5)  # inside the spread
    o = rig.k.orders.get(d.client_ids[0])
    assert o is not None and o.intent.price == p(0.49)  # capped a tick under the ask
    rig.order("BUY", 0.50, 10, tif="FAK")
    d = rig.k.executions.execute("s", YES, "SELL", p(10), "post", offset_ticks=2)
    o = rig.k.orders.get(d.client_ids[0])
    assert o is not None and o.intent.price == p(0.52) and o.state == "accepted"
    d = rig.k.executions.execute("s", YES, "BUY", p(10), "post", limit=p(0.455))
    o = rig.k.orders.get(d.client_ids[0])
    assert o is not None and o.intent.price == p(0.45)


def test_mode_post_then_cross_takes_the_rest_after_the_timeout(rig: Rig) -> None:
    rig.delta("BID", 0.48, 0)
    rig.delta("BID", 0.47, 0)
    d = rig.k.executions.execute("s", YES, "BUY", p(30), "post_then_cross", timeout_s=5, max_price=p(0.51))
    maker = d.client_ids[0]
    o = rig.k.orders.get(maker)
    assert o is not None and o.intent.price == p(0.49) and o.intent.post_only
    rig.trade(YES, 0.49, 8, "SELL")  # 8 fill as maker while it rests
    assert rig.fills(maker) == [(p(0.49), p(8), "maker")]
    rig.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.40), size=p(1)), dt=6_000 * MS)
    assert rig.state(maker) == "cancelled"
    cross = [e.client_id for e in rig.log if e.client_id not in (maker,)][-1]
    assert rig.fills(cross) == [(p(0.50), p(10), "taker"), (p(0.51), p(12), "taker")]
    assert rig.k.portfolio.size(YES) == p(30)
    assert not rig.k.executions.working


@pytest.mark.parametrize("params, field", [
    ({"cash": "lots"}, "cash"), ({"cash": "-1"}, "cash"), ({"latency_ms": -5}, "latency_ms"),
    ({"default_fee_rate": "2"}, "default_fee_rate"), ({"check_balance": "yes"}, "check_balance"),
    ({"default_fee_exponent": 1.5}, "default_fee_exponent"),
])  # fmt: skip
def test_bad_params_are_refused_with_the_field_named(tmp_path: Any, params: dict, field: str) -> None:
    from polybot.config import ConfigError, load_config
    from polybot.wiring import build_executor

    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("[executor]\nkind = \"paper\"\n")
    cfg = load_config(str(cfg_file))
    cfg.executor.params = params
    with pytest.raises(ConfigError, match=f"executor.params: {field}"):
        build_executor(cfg)


# ------------------------------------------------------------------ a real recorded sequence


def test_queue_on_a_real_recording_counts_each_trade_once() -> None:
    """Polymarket's own frames (h1-run-8, 2026-09-30): after a trade the venue sends the book,
    then the ``last_trade_price`` print. Orders resting at the traded level, on the token and on
    its mirror, move up by the level's shrink once; the print does not move them again."""
    import json

    from polybot.clock import iso_to_ns
    from polybot.sources import resolve_decoder
    from sample_data import H1, require_samples

    require_samples()
    rows = [json.loads(x) for x in H1.read_text().splitlines()]
    ex = PaperExecutor(cash="1000", check_balance=False)
    k = Kernel(executor=ex)
    k.set_decoder_resolver(resolve_decoder)
    fills: list[FillEvent] = []
    k.bus.subscribe(FillEvent, fills.append)
    ids: dict[str, str] = {}
    ahead: list[tuple[int, int]] = []
    for i, r in enumerate(rows):
        if i == 23:  # before the book that carries the trade of 20 @ 0.51 on token 4011…
            a = next(x for x in k.books if x.startswith("4011"))
            b = next(x for x in k.books if x.startswith("5872"))
            assert k.books.get(a).asks[p(0.51)] == k.books.get(b).bids[p(0.49)] == p(684.49)
            for name, asset, side, price in (("ask", a, "SELL", 0.51), ("mirror", b, "BUY", 0.49)):
                d = k.submit("s", OrderIntent(strategy="s", asset_id=asset, side=side, price=p(price), size=p(30)))  # type: ignore[arg-type]
                ids[name] = d.client_ids[0]
            assert ex.resting[ids["ask"]].ahead == ex.resting[ids["mirror"]].ahead == p(684.49)
        k.process(iso_to_ns(r["receivedAt"]), "polymarket.market", r["payloadUtf8"].encode())
        if i in (24, 25):
            ahead.append((ex.resting[ids["ask"]].ahead, ex.resting[ids["mirror"]].ahead))
    # the books (frames 23, 24) shrank the level to 326.43; the print (frame 25, 20 shares
    # bought at 0.51 on 4011… = sold at 0.49 on 5872…) is that same trade: no second advance
    assert ahead == [(p(326.43), p(326.43)), (p(326.43), p(326.43))]
    assert fills == []
    assert k.integrity.summary()["total"]["failed"] == 0


# ------------------------------------------------------------------ invariants under random sessions

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PRICES = st.sampled_from([0.45, 0.46, 0.47, 0.48, 0.49, 0.50, 0.51, 0.52, 0.53])
_STEP = st.one_of(
    st.tuples(st.just("order"), st.sampled_from(["BUY", "SELL"]), _PRICES, st.integers(1, 40),
              st.sampled_from(["GTC", "FAK", "FOK"]), st.sampled_from([YES, NO])),
    st.tuples(st.just("delta"), st.sampled_from(["BID", "ASK"]), _PRICES, st.integers(0, 120)),
    st.tuples(st.just("trade"), st.sampled_from([YES, NO]), _PRICES, st.integers(1, 60), st.sampled_from(["BUY", "SELL", None])),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("wait"), st.integers(1, 50)),
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([0, 20]), st.lists(_STEP, max_size=40), st.booleans())
def test_random_sessions_keep_the_books_of_account_consistent(latency: int, steps: list, resolve: bool) -> None:
    """Whatever happens: the paper ledger (the venue's view) equals the portfolio, nothing goes
    negative, no order fills beyond its size, no reservation outlives its order, and the state
    machine never refuses an event."""
    r = Rig(cash="300", latency_ms=latency)
    r.books(bids=[(0.48, 100), (0.47, 50)], asks=[(0.50, 10), (0.51, 20), (0.53, 40)])
    for step in steps:
        kind = step[0]
        if kind == "order":
            _k, side, price, size, tif, asset = step
            px = price if asset == YES else round(1 - price, 2)
            r.k.submit("s", OrderIntent(strategy="s", asset_id=asset, market=M, side=side, price=p(px),  # type: ignore[arg-type]
                                        size=p(size), tif=tif))  # type: ignore[arg-type]  # fmt: skip
        elif kind == "delta":
            r.delta(step[1], step[2], step[3])
        elif kind == "trade":
            r.trade(step[1], step[2], step[3], step[4])
        elif kind == "cancel":
            opens = r.k.orders.open_orders()
            if opens:
                r.k.cancel(None, opens[step[1] % len(opens)].client_id)
        else:
            r.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.40), size=p(step[1])), dt=step[1] * MS)
        ex, pf = r.ex, r.k.portfolio
        assert ex.cash >= 0 and all(v >= 0 for v in ex.shares.values())
        assert ex.cash + sum(ex.reserved.values()) == pf.cash
        for a in (YES, NO):
            assert ex.shares.get(a, 0) == pf.size(a)
        for cid in list(ex.reserved) + list(ex.share_res):
            o = r.k.orders.get(cid)
            assert o is not None and (o.is_open or cid in ex.arriving)
        assert all(o.filled <= o.intent.size for o in r.k.orders.all())
        assert r.k.stats.illegal_transitions == 0
    if resolve:
        r.feed(MarketResolved(market=M, asset_ids=(YES, NO), winning_asset_id=YES))
        assert not r.ex.resting and not r.ex.shares and not r.ex.reserved
        assert r.ex.cash == r.k.portfolio.cash


def test_a_crossed_book_is_bad_data_not_liquidity(rig: Rig) -> None:
    """An ask that lands below the best bid (a missed update: the kernel marks the book
    unhealthy) does not fill a resting bid; once a snapshot resyncs the book, real crossing
    liquidity does."""
    rig.books([(0.47, 100)], [(0.50, 100)])
    cid = rig.order("BUY", 0.48, 10)
    rig.feed(BookDelta(asset_id=YES, market=M, side="ASK", price=p(0.45), size=p(10)))
    assert not rig.k.books.get(YES).healthy
    assert rig.fills(cid) == []
    rig.books([(0.47, 100)], [(0.48, 4), (0.50, 100)])  # the resync: 4 offered at our price
    assert rig.k.books.get(YES).healthy
    assert rig.fills(cid) == [(p(0.48), p(4), "maker")]
