"""Regression tests from a review of the paper executor, the execution modes and their kernel
integration: each reproduced a confirmed bug, now fixed."""

from __future__ import annotations

from typing import Any

from polybot.events import BookDelta, MarketInfo, MarketResolved, OrderIntent, TradePrint
from polybot.strategy import Strategy
from test_paper import MS, NO, SCHED, YES, M, Rig, p


def _tick(r: Rig, dt: int) -> None:
    """An unrelated input ``dt`` later (lets due timers fire)."""
    r.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.01), size=dt), dt=dt)


def _rig(**kw: Any) -> Rig:
    r = Rig(**kw)
    r.books(bids=[(0.48, 100)], asks=[(0.50, 10), (0.51, 20)])
    return r


def test_cancel_in_flight_then_rejected_at_arrival_closes_the_order() -> None:
    r = _rig(latency_ms=20)
    cid = r.order("BUY", 0.49, 10, tif="FAK")  # nothing to take at 0.49: refused on arrival
    assert r.k.cancel("s", cid) and r.state(cid) == "cancel_pending"
    _tick(r, 30 * MS)
    assert r.state(cid) == "rejected"
    assert not r.k.orders.open_orders() and not r.k.exposure.to_state()
    assert r.k.stats.illegal_transitions == 0


def test_complement_book_is_unwatched_when_the_order_ends() -> None:
    r = _rig()
    cid = r.order("BUY", 0.45, 10)
    assert YES in r.ex._subscribed and NO not in r.ex._subscribed
    r.k.cancel("s", cid)
    assert not r.ex._subscribed


def test_orders_on_a_resolved_market_are_refused() -> None:
    r = _rig()
    cash = r.ex.cash
    r.feed(MarketResolved(market=M, asset_ids=(YES, NO), winning_asset_id=NO))
    cid = r.order("BUY", 0.51, 10, tif="FAK")  # the stale book still shows asks
    assert r.kinds(cid)[-1] == "OrderRejected"
    assert r.ex.cash == cash and YES not in r.ex.shares


def test_resolution_without_asset_ids_pays_the_winner() -> None:
    r = _rig()
    r.order("BUY", 0.50, 10, tif="FAK")
    cash = r.ex.cash
    r.feed(MarketResolved(market=M, winning_asset_id=YES))
    assert r.k.portfolio.size(YES) == 0  # the kernel's portfolio settles from the catalog
    assert YES not in r.ex.shares and r.ex.cash == cash + p(10)


def _two_arrivals(restore: bool) -> list[Any]:
    r = _rig(latency_ms=20)
    for _ in range(8):  # burn client ids up to pb-8 (refused by the kernel's sanity check)
        r.k.submit("s", OrderIntent(strategy="s", asset_id=YES, market=M, side="BUY", price=p(0.5), size=0))
    a = r.order("BUY", 0.50, 10, tif="FAK")  # pb-9 and pb-10 arrive at the same instant:
    b = r.order("BUY", 0.50, 10, tif="FAK")  # "arrive:pb-10" sorts before "arrive:pb-9" by name
    if restore:
        st = r.k.to_state()
        r2 = Rig(latency_ms=20)
        r2.k.restore(st)
        r2.t = r.t
        r2.log.extend(r.log)
        r = r2
    _tick(r, 30 * MS)
    return [r.fills(a), r.fills(b)]


def test_restore_keeps_the_order_of_simultaneous_arrivals() -> None:
    straight = _two_arrivals(False)
    assert straight[0] == [(p(0.50), p(10), "taker")] and straight[1] == []
    assert _two_arrivals(True) == straight


class _PullOnTouch(Strategy):
    """Cancels its bids as soon as the ask comes down to them."""

    name = "pull_on_touch"

    def on_start(self) -> None:
        self.ctx.subscribe(BookDelta, self.on_delta)

    def on_delta(self, ev: BookDelta) -> None:
        b = self.ctx.books.get(YES)
        for o in self.ctx.open_orders(YES):
            if b is not None and b.best_ask and b.best_ask <= o.intent.price:
                self.ctx.cancel(o.client_id, "touched")


def test_strategy_sees_a_crossing_delta_after_the_paper_executor() -> None:
    r = _rig()
    r.k.add_strategy(_PullOnTouch, "s", {})
    r.k.start()
    cid = r.order("BUY", 0.49, 10)  # the executor subscribes to YES deltas after the strategy did
    r.delta("ASK", 0.49, 12)  # a seller comes down to our bid: it trades with us first
    assert r.fills(cid) == [(p(0.49), p(10), "maker")] and r.state(cid) == "filled"


class _JoinOnShrink(Strategy):
    name = "join_on_shrink"

    def on_start(self) -> None:
        self.ctx.subscribe(BookDelta, self.on_delta)
        self.placed = ""

    def on_delta(self, ev: BookDelta) -> None:
        if not self.placed and ev.asset_id == YES and ev.side == "BID" and ev.price == p(0.48):
            d = self.ctx.submit(OrderIntent(strategy=self.id, asset_id=YES, market=M, side="BUY",
                                            price=p(0.48), size=p(10)))  # fmt: skip
            self.placed = d.client_ids[0]


def test_order_placed_from_a_delta_handler_is_not_advanced_twice() -> None:
    r = _rig()
    s = r.k.add_strategy(_JoinOnShrink, "s", {})
    r.k.start()
    first = r.order("BUY", 0.48, 10)  # a paper order already rests at that level
    r.delta("BID", 0.48, 60)  # the strategy joins behind the 60 now visible
    assert r.ex.resting[first].ahead == p(60)
    assert r.ex.resting[s.placed].ahead == p(60)  # not 60 - 40 (the shrink it joined after)


class _CancelOnPrint(Strategy):
    name = "cancel_on_print"

    def on_start(self) -> None:
        self.ctx.subscribe(TradePrint, lambda ev: self.ctx.cancel_all())


def test_cancel_from_a_print_handler_after_a_paper_fill_is_not_illegal() -> None:
    r = _rig()
    r.k.add_strategy(_CancelOnPrint, "s", {})
    r.k.start()
    r.delta("BID", 0.48, 0)
    cid = r.order("BUY", 0.48, 10)  # first in line
    r.trade(YES, 0.48, 10, "SELL")  # fills us; the strategy cancels on the same print
    assert r.state(cid) == "filled" and r.k.stats.illegal_transitions == 0


def test_fee_schedule_change_during_latency_never_overdraws() -> None:
    r = Rig(cash="5", latency_ms=20)
    r.feed(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=None))
    r.books(bids=[(0.48, 100)], asks=[(0.50, 10)])
    cid = r.order("BUY", 0.50, 10, tif="FAK")  # fee-free at submit: 5.00 reserved
    assert r.kinds(cid) == ["OrderSubmitted"]
    r.feed(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=SCHED))  # fees switch on
    _tick(r, 30 * MS)
    assert r.kinds(cid)[-1] == "OrderRejected"  # 5.175 needed, 5 held
    assert r.ex.cash == p(5) and not r.ex.reserved


def test_second_cancel_does_not_delay_the_first() -> None:
    r = _rig(latency_ms=20)
    cid = r.order("BUY", 0.45, 10)
    r.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.40), size=p(1)), dt=5 * MS)
    r.k.cancel("s", cid)  # reaches the book at +25 ms
    r.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.40), size=p(2)), dt=17 * MS)
    assert r.state(cid) == "accepted"  # arrived at +20 ms, after the cancel was sent
    r.k.cancel("s", cid)  # a second cancel must not push the first one back
    r.feed(BookDelta(asset_id=YES, market=M, side="BID", price=p(0.40), size=p(3)), dt=4 * MS)
    assert r.state(cid) == "cancelled"
