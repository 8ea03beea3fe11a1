"""The pair-cost accumulator (strategies/pair_cost.py): the buy rule, the imbalance limit, the
liquidity check, the equalizer's price cap with the taker fee, the skew, the settlement buffer,
requoting, restart; a property test over arbitrary fills; replays of the shipped recordings
through the paper executor and the full risk chain of config/pair_cost.toml."""

from __future__ import annotations

import itertools
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from polybot.config import load_config
from polybot.events import (
    ENCODER,
    BookDelta,
    BookSnapshot,
    FeedDisconnected,
    FeedStale,
    FeeSchedule,
    MarketInfo,
    MarketResolved,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderSubmitted,
    TickSizeChange,
)
from polybot.execution.base import Executor
from polybot.execution.rules import fill_fee, max_buy_cost
from polybot.kernel import Kernel
from polybot.replay import replay
from polybot.strategy import installed_strategies, load_strategy_class
from strategies.pair_cost import QUOTE, PairCost, pair_below, worst_average

ROOT = Path(__file__).resolve().parents[1]
WINDOW = ROOT / "recordings" / "pair-cost-window.jsonl.gz"
FLAT = ROOT / "recordings" / "pair-cost-flat.jsonl.gz"
CONFIG = ROOT / "config" / "pair_cost.toml"
POLYBOT = str(Path(sys.executable).parent / "polybot")

S = 1_000_000
TICK = 10_000
NS = 1_000_000_000
T0 = 1_790_001_000 * NS
YES, NO, MKT = "up-token", "down-token", "0xmarket"
FEES = FeeSchedule(rate_ppm=70_000, exponent=1, taker_only=True, rebate_ppm=200_000)
SID = "pc"


def c(x: float) -> int:
    """Cents/shares -> base units (0.47 -> 470_000)."""
    return round(x * S)


# ------------------------------------------------------------------------------ the harness


class Manual(Executor):
    """Accepts every order; the test fills them. A FAK is answered at once by ``fak`` (a
    function order -> [(price, size)]), the rest cancelled."""

    name = "manual"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Any] = []
        self.filled: dict[str, int] = {}
        self.fak = lambda order: []  # noqa: E731
        self.trades = 0

    def submit(self, order: Any) -> None:
        k = self.kernel
        assert k is not None
        self.sent.append(order)
        k.emit(OrderAccepted(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy,
                             asset_id=order.asset_id))  # fmt: skip
        if order.intent.tif in ("FAK", "FOK"):
            for price, size in self.fak(order):
                self.fill(order, size, price, "taker")
            if self.left(order) > 0:
                k.emit(OrderCancelled(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy,
                                      asset_id=order.asset_id, reason="FAK remainder"))  # fmt: skip

    def cancel(self, order: Any) -> None:
        k = self.kernel
        assert k is not None
        k.emit(OrderCancelled(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy,
                              asset_id=order.asset_id, reason="cancelled"))  # fmt: skip

    def left(self, order: Any) -> int:
        return order.intent.size - self.filled.get(order.client_id, 0)

    def fill(self, order: Any, size: int, price: int, liquidity: str = "maker") -> None:
        k = self.kernel
        assert k is not None
        size = min(size, self.left(order))
        if size <= 0:
            return
        self.filled[order.client_id] = self.filled.get(order.client_id, 0) + size
        info = k.catalog.for_asset(order.asset_id)
        fee, rebate = fill_fee(liquidity, size, price, info.fees if info else None)
        self.trades += 1
        leaves = self.left(order)
        cls = OrderFilled if leaves == 0 else OrderPartiallyFilled
        k.emit(cls(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy, asset_id=order.asset_id,
                   trade_id=f"t{self.trades}", side="BUY", price=price, size=size, liquidity=liquidity,  # type: ignore[arg-type]
                   fee=fee, rebate=rebate, market=MKT, leaves=leaves))  # fmt: skip


def market_info(end_s: int = 900, fees: FeeSchedule | None = FEES, **kw: Any) -> MarketInfo:
    return MarketInfo(market=MKT, asset_ids=(YES, NO), outcomes=("Up", "Down"), slug="btc-updown-15m-1790001000",
                      series="btc-updown-15m", tick_size=TICK, min_order_size=5 * S, start_ts=T0,
                      end_ts=T0 + end_s * NS if end_s else 0, fees=fees, **kw)  # fmt: skip


def snapshots(bids: dict[float, float], asks: dict[float, float]) -> list[BookSnapshot]:
    """The Up book (price -> shares) and its mirror, the Down book."""
    yb = tuple(sorted((c(p), c(s)) for p, s in bids.items()))
    ya = tuple(sorted((c(p), c(s)) for p, s in asks.items()))
    return [BookSnapshot(asset_id=YES, market=MKT, bids=yb, asks=ya, tick_size=TICK),
            BookSnapshot(asset_id=NO, market=MKT, bids=tuple(sorted((S - p, s) for p, s in ya)),
                         asks=tuple(sorted((S - p, s) for p, s in yb)), tick_size=TICK)]  # fmt: skip


def ladder(bid: float, ask: float, size: float = 100, levels: int = 6) -> tuple[dict, dict]:
    bids = {round(bid - i * 0.01, 2): size for i in range(levels) if bid - i * 0.01 > 0.005}
    asks = {round(ask + i * 0.01, 2): size for i in range(levels) if ask + i * 0.01 < 0.995}
    return bids, asks


class Harness:
    def __init__(self, info: MarketInfo | None = None, **params: Any) -> None:
        self.ex = Manual()
        self.k = Kernel(executor=self.ex)
        base = {"series": ["btc-updown-15m"], "requote_ticks": 1}  # exact prices in these tests
        self.s: PairCost = self.k.add_strategy(PairCost, SID, {**base, **params})  # type: ignore[assignment]
        self.k.start()
        self.ts = T0
        self.send(info or market_info())

    def send(self, ev: Any, dt_ms: int = 100) -> None:
        self.ts += dt_ms * 1_000_000
        self.k.process(self.ts, "events", ENCODER.encode(ev))

    def book(self, bid: float, ask: float, **kw: Any) -> None:
        self.send(snapshots(*ladder(bid, ask, **kw)))

    def quotes(self) -> dict[str, tuple[float, float]]:
        """Open quotes: 'YES'/'NO' -> (price, size)."""
        out = {}
        for a, name in ((YES, "YES"), (NO, "NO")):
            qs = [o for o in self.k.orders.open_orders(SID, a) if o.intent.note == QUOTE]
            assert len(qs) <= 1, qs
            if qs:
                out[name] = (qs[0].intent.price / S, qs[0].remaining / S)
        return out

    def fill_quote(self, side: str, size: float | None = None) -> None:
        a = YES if side == "YES" else NO
        (o,) = [o for o in self.k.orders.open_orders(SID, a) if o.intent.note == QUOTE]
        self.ex.fill(o, c(size) if size is not None else self.ex.left(o), o.intent.price)

    def position(self, side: str) -> tuple[int, int]:
        p = self.k.portfolio.by_strategy.get((SID, YES if side == "YES" else NO))
        return (p.size, p.cost) if p else (0, 0)

    @property
    def market(self) -> Any:
        return self.s._markets[MKT]


# ------------------------------------------------------------------------------ registry, helpers


def test_registered_by_name_with_a_docstring() -> None:
    assert installed_strategies()["pair_cost"] == "strategies.pair_cost:PairCost"
    assert load_strategy_class("pair_cost") is PairCost
    assert PairCost.__doc__ and "avg YES + avg NO" in PairCost.__doc__.splitlines()[0]


def test_worst_average_takes_the_worst_subset_and_pair_below_is_strict() -> None:
    # position 10 @ 0.40; optional orders 10 @ 0.55 and 10 @ 0.60: the worst is both (0.5167)
    w = worst_average(c(10), c(4), (), [(c(5.5), c(10)), (c(6), c(10))])
    assert w == (c(15.5), c(30))
    # with 10 @ 0.45 instead, leaving it out is worse (0.50 > 0.4833)
    w = worst_average(c(10), c(4), (), [(c(4.5), c(10)), (c(6), c(10))])
    assert w == (c(10), c(20))
    # 10 @ 0.40 + 10 @ 0.30 only: not adding the cheap order is worse
    w = worst_average(c(10), c(4), (), [(c(3), c(10))])
    assert w == (c(4), c(10))
    assert worst_average(0, 0) is None
    assert worst_average(0, 0, ref=c(0.55)) == (c(0.55), S)
    assert pair_below((c(4.9), c(10)), (c(0.48), S), c(0.98))
    assert not pair_below((c(4.9), c(10)), (c(0.49), S), c(0.98))  # exactly at target: refused


def test_params_are_checked() -> None:
    from polybot.strategy import convert_params
    import msgspec

    for bad in ({"target": "1.5"}, {"order_size": "0.001"}, {"requote_ticks": 0}, {"max_imbalance": "-1"}):
        with pytest.raises(msgspec.ValidationError):
            convert_params(PairCost.Params, bad)


# ------------------------------------------------------------------------------ the buy rule


def test_first_legs_quote_where_pairing_at_the_opposite_bid_is_below_target() -> None:
    h = Harness()
    h.book(0.49, 0.50)  # Down 0.50 / 0.51
    # YES: p + bid(NO) 0.50 < 0.98 -> 0.47; NO: p + max(bid(YES) 0.49, YES quote) < 0.98 -> 0.48
    assert h.quotes() == {"YES": (0.47, 10), "NO": (0.48, 10)}
    o = h.k.orders.open_orders(SID, YES)[0]
    stop = T0 + (900 - 60) * NS
    assert o.intent.post_only and o.intent.tif == "GTD" and o.intent.expire_ts == stop + 60 * NS


def test_buy_rule_after_a_fill_keeps_the_pair_cost_below_target() -> None:
    h = Harness()
    h.book(0.49, 0.50)
    h.fill_quote("YES")  # YES 10 @ 0.47
    # NO is lagging: capped by 0.98 - 0.47 (strictly) -> 0.50, at the touch (0.50 + skew, not crossing)
    # YES leads: its new shares must pair with NO's 0.50 below 0.98 -> 0.47
    assert h.quotes() == {"NO": (0.50, 10), "YES": (0.47, 10)}
    m = h.market
    assert h.s.allowed(m, 1, c(0.50), c(10)) == ""
    assert h.s.allowed(m, 1, c(0.51), c(10)).startswith("pair cost")  # 0.47 + 0.51 = 0.98: not below
    h.fill_quote("NO")  # NO 10 @ 0.50: pair cost 0.97
    r = h.s.report(MKT)
    assert (r["pairs"], r["pair_cost"], r["locked_profit"], r["unpaired"]) == (c(10), c(0.97), c(0.3), 0)
    # the blended rule alone would let YES add above 0.48 (it averages down with 0.47) ...
    h2 = Harness(marginal=False)
    h2.book(0.49, 0.50)
    h2.fill_quote("YES")
    h2.fill_quote("NO")
    h2.book(0.53, 0.54)
    # ... (4.7 + 10p) / 20 + 0.50 < 0.98 -> p <= 0.48; the marginal rule holds YES at 0.47
    assert h2.quotes()["YES"][0] == 0.48
    h.book(0.53, 0.54)
    assert h.quotes()["YES"][0] == 0.47


def test_no_first_leg_without_a_pairing_reference() -> None:
    h = Harness()
    # an Up book with no asks: the Down book has no bids, so nothing prices a pair
    h.send(snapshots({0.49: 100, 0.48: 100}, {}))
    assert h.quotes() == {}
    assert "reference" in h.s.allowed(h.market, 0, c(0.30), c(10))


def test_imbalance_limit() -> None:
    h = Harness(max_imbalance="15")
    h.book(0.49, 0.50)
    h.fill_quote("YES")  # +10
    assert h.quotes()["YES"] == (0.47, 5)  # only 5 more fit under the limit
    m = h.market
    assert h.s.allowed(m, 0, c(0.40), c(10)).startswith("imbalance")
    h.fill_quote("YES")  # +5: imbalance 15
    assert "YES" not in h.quotes() and h.quotes()["NO"][1] == 10
    assert h.s.allowed(m, 0, c(0.10), c(5)).startswith("imbalance")
    assert h.s.allowed(m, 1, c(0.30), c(10)) == ""  # the lagging side may still buy
    h.fill_quote("NO", 3)  # a partial fill of NO: room for 3 on YES, below the minimum size 5
    assert "YES" not in h.quotes()
    h.fill_quote("NO", 2)  # imbalance 10: room for 5
    assert h.quotes()["YES"] == (0.47, 5)


def test_max_shares_per_side() -> None:
    h = Harness(max_shares="15")
    h.book(0.49, 0.50)
    h.fill_quote("YES")
    assert h.quotes()["YES"][1] == 5
    assert h.s.allowed(h.market, 0, c(0.40), c(10)).startswith("max_shares")


def test_liquidity_of_the_opposite_side() -> None:
    h = Harness(liquidity_mult=3, liquidity_ticks=5)
    # Up asks 100 a level (Down bids) but Up bids only 4 a level: Down asks within 5 ticks = 24 < 30
    bids, asks = ladder(0.49, 0.50)
    h.send(snapshots({p: 4 for p in bids}, asks))
    q = h.quotes()
    assert "YES" not in q and "NO" in q  # buying YES needs NO liquidity; buying NO reads the YES asks
    assert h.s.allowed(h.market, 0, c(0.30), c(10)).startswith("liquidity")
    h.send(snapshots({p: 6 for p in bids}, asks))  # 36 >= 30
    assert set(h.quotes()) == {"YES", "NO"}
    off = Harness(liquidity_mult=0)
    off.send(snapshots({p: 4 for p in bids}, asks))
    assert "YES" in off.quotes()


# ------------------------------------------------------------------------------ equalizer


def _lopsided(**params: Any) -> Harness:
    """YES 30 @ 0.40, NO none (built from the strategy's own quotes)."""
    h = Harness(max_imbalance="30", equalize_min="30", **params)
    for _ in range(3):
        h.book(0.42, 0.43)  # Down 0.57 / 0.58: YES p + 0.57 < 0.98 -> 0.40
        assert h.quotes()["YES"] == (0.40, 10)
        h.fill_quote("YES")
    assert h.position("YES") == (c(30), c(12)) and h.position("NO") == (0, 0)
    return h


def _eq_cap(opp_avg: float, n: int) -> int:
    """The highest tick price p with (notional + taker fee, rounded up) / n + opp_avg < 0.98."""
    best = 0
    for t in range(1, 100):
        if Fraction(max_buy_cost(n, t * TICK, FEES), n) + Fraction(c(opp_avg), S) < Fraction(98, 100):
            best = t * TICK
    return best


def test_equalizer_price_cap_includes_the_taker_fee() -> None:
    assert _eq_cap(0.40, c(12)) == c(0.56)  # without the fee 0.57 would do (0.57 + 0.40 = 0.97)
    h = _lopsided()
    h.ex.fak = lambda o: [(o.intent.price, o.intent.size)]
    # Down asks: 12 @ 0.56 (the cap), 100 @ 0.57 (0.57 + fee 0.0172 + 0.40 >= 0.98)
    h.send(snapshots({0.44: 12, 0.43: 100, 0.42: 100, 0.41: 100}, {0.45: 100, 0.46: 100, 0.47: 100}))
    faks = [o for o in h.ex.sent if o.intent.tif == "FAK"]
    assert len(faks) == 1
    it = faks[0].intent
    assert (it.asset_id, it.side, it.price, it.size, it.post_only) == (NO, "BUY", c(0.56), c(12), False)
    qn, cn = h.position("NO")
    assert qn == c(12)
    r = h.s.report(MKT)
    assert r["pair_cost_with_fees"] < c(0.98) and r["locked_profit"] > 0 and r["unpaired"] == c(18)
    assert h.market.counters["equalizes"] == 1


def test_equalizer_does_not_pay_above_the_cap_when_fees_remove_the_edge() -> None:
    h = _lopsided()
    h.ex.fak = lambda o: [(o.intent.price, o.intent.size)]
    # Down's best ask 0.57: 0.57 + 0.40 = 0.97 < 0.98, but the taker fee (0.0172) takes it over
    h.send(snapshots({0.43: 100, 0.42: 100, 0.41: 100}, {0.45: 100, 0.46: 100}))
    assert not [o for o in h.ex.sent if o.intent.tif == "FAK"]
    why = h.s.allowed(h.market, 1, c(0.57), c(10), taker=True)
    assert "0.987157 >= target 0.98" in why  # 0.57 + fee 0.017157 + 0.40
    assert h.s.allowed(h.market, 1, c(0.56), c(10), taker=True) == ""
    # a fee-free market: the same ask is taken
    h2 = _lopsided_free()
    h2.ex.fak = lambda o: [(o.intent.price, o.intent.size)]
    h2.send(snapshots({0.43: 100, 0.42: 100, 0.41: 100}, {0.45: 100, 0.46: 100}))
    (fak,) = [o for o in h2.ex.sent if o.intent.tif == "FAK"]
    assert fak.intent.price == c(0.57) and fak.intent.size == c(30)


def _lopsided_free() -> Harness:
    h = Harness(info=market_info(fees=None), max_imbalance="30", equalize_min="30")
    for _ in range(3):
        h.book(0.42, 0.43)
        h.fill_quote("YES")
    return h


def test_equalizer_cancels_an_own_bid_it_would_trade_with_first() -> None:
    h = Harness(max_imbalance="30", equalize_min="10")
    h.ex.fak = lambda o: [(o.intent.price, o.intent.size)]
    h.book(0.42, 0.43)
    h.fill_quote("YES")  # YES 10 @ 0.40, imbalance 10
    # NO is cheap now: ask 0.52 (bid YES 0.48); YES's own quote could sit at >= 1 - 0.52 = 0.48?
    h.book(0.48, 0.49)
    faks = [o for o in h.ex.sent if o.intent.tif == "FAK"]
    assert faks and faks[0].intent.asset_id == NO
    for o in h.k.orders.open_orders(SID, YES):  # never at or above 1 - the top-up's limit
        assert o.intent.price < S - faks[0].intent.price


# ------------------------------------------------------------------------------ skew, requote, buffer


def test_skew_toward_the_lagging_side() -> None:
    def quotes(**params: Any) -> dict[str, tuple[float, float]]:
        h = Harness(max_imbalance="40", **params)
        h.book(0.32, 0.33)  # Down 0.67 / 0.68: YES first leg p + 0.67 < 0.98 -> 0.30
        h.fill_quote("YES")
        h.book(0.32, 0.33)
        h.fill_quote("YES")  # YES 20 @ 0.30: NO lags by 20
        h.book(0.40, 0.46)  # Down 0.54 / 0.60
        return h.quotes()

    # k = min(3, 1 x 20 // 10) = 2 ticks: NO bids 0.54 + 0.02, YES 0.40 - 0.02
    assert quotes() == {"NO": (0.56, 10), "YES": (0.38, 10)}
    assert quotes(skew_ticks=0) == {"NO": (0.54, 10), "YES": (0.40, 10)}
    assert quotes(max_skew_ticks=1) == {"NO": (0.55, 10), "YES": (0.39, 10)}


def test_quotes_are_replaced_only_when_the_wanted_price_moves() -> None:
    h = Harness(requote_ticks=1)
    h.book(0.49, 0.50)
    n = len(h.ex.sent)
    # a size change deep in the book, a bid change that keeps the top: nothing to do
    h.send([BookDelta(asset_id=YES, market=MKT, side="BID", price=c(0.45), size=c(7), best_bid=c(0.49),
                      best_ask=c(0.50)),
            BookDelta(asset_id=NO, market=MKT, side="ASK", price=c(0.55), size=c(7), best_bid=c(0.50),
                      best_ask=c(0.51))])  # fmt: skip
    h.book(0.49, 0.50, size=80)
    assert len(h.ex.sent) == n and h.k.stats.intents == n
    # the middle of a frame (run_end False) is not acted on, even when it moves the top
    h.send([BookDelta(asset_id=YES, market=MKT, side="BID", price=c(0.49), size=0, best_bid=c(0.48),
                      best_ask=c(0.50), run_end=False),
            BookDelta(asset_id=NO, market=MKT, side="ASK", price=c(0.51), size=0, best_bid=c(0.50),
                      best_ask=c(0.52), run_end=False)])  # fmt: skip
    assert len(h.ex.sent) == n
    h.book(0.50, 0.51)  # the touch moved: both wanted prices move
    assert len(h.ex.sent) == n + 2 and h.quotes() == {"YES": (0.48, 10), "NO": (0.47, 10)}
    # requote_ticks = 2: a one-tick rise of the wanted price keeps the resting quotes
    h2 = Harness(requote_ticks=2)
    h2.book(0.49, 0.50)
    m = len(h2.ex.sent)
    h2.book(0.50, 0.51)  # YES may go up to 0.48 (kept at 0.47); NO's cap fell to 0.47: replaced
    assert h2.quotes() == {"YES": (0.47, 10), "NO": (0.47, 10)} and len(h2.ex.sent) == m + 1


def test_settlement_buffer_stops_adding() -> None:
    h = Harness(settlement_buffer_s=60)
    h.book(0.49, 0.50)
    assert len(h.quotes()) == 2
    # the stop timer fires at end - 60 s (the next input is after it): quotes pulled
    h.ts = T0 + 841 * NS
    h.book(0.40, 0.41)
    assert h.quotes() == {} and h.market.stopped
    n = len(h.ex.sent)
    h.book(0.30, 0.31)
    assert len(h.ex.sent) == n
    # a window discovered inside its buffer is never quoted
    late = Harness(info=market_info(end_s=30))
    late.book(0.49, 0.50)
    assert late.ex.sent == [] and late.market.stopped


def test_market_selection_by_series_slug_or_id() -> None:
    other = MarketInfo(market="0xother", asset_ids=("a", "b"), series="eth-updown-15m", end_ts=T0 + 900 * NS)
    h = Harness()
    h.send(other)
    assert set(h.s._markets) == {MKT}
    by_slug = Harness(series=[], markets=["btc-updown-15m-1790001000"])
    assert set(by_slug.s._markets) == {MKT}
    by_id = Harness(series=[], markets=[MKT])
    assert set(by_id.s._markets) == {MKT}
    none = Harness(series=[])
    assert none.s._markets == {}


def test_state_survives_a_restart() -> None:
    h = Harness()
    h.book(0.49, 0.50)
    h.fill_quote("YES")
    h.fill_quote("NO")
    before = h.s.report(MKT)
    state = h.k.to_state()
    k2 = Kernel(executor=Manual())
    s2: PairCost = k2.add_strategy(PairCost, SID, {"series": ["btc-updown-15m"]})  # type: ignore[assignment]
    k2.start()
    k2.restore(state)
    assert s2.report(MKT) == before and s2._markets[MKT].counters["fills"] == 2
    open_before = sorted(o.client_id for o in k2.orders.open_orders(SID))
    k2.process(h.ts + NS, "events", ENCODER.encode(snapshots(*ladder(0.49, 0.50))))
    # the same book: the restored quotes are kept, none added
    assert sorted(o.client_id for o in k2.orders.open_orders(SID)) == open_before
    assert len(k2.executor.sent) == 0  # type: ignore[attr-defined]


def test_resolution_reports_settlement() -> None:
    h = Harness()
    h.book(0.49, 0.50)
    h.fill_quote("YES")
    h.fill_quote("NO")
    h.send(MarketResolved(market=MKT, asset_ids=(YES, NO), winning_asset_id=NO))
    r = h.s.report(MKT)
    assert r["settled"] and r["winner"] == "NO" and r["pairs"] == c(10)
    rebates = h.k.portfolio.rebates_earned(SID)  # the maker fills' rebate estimate
    assert rebates > 0 and r["settlement_pnl"] == c(10) - c(4.7) - c(5.0) + rebates  # 10 pairs for 9.70
    assert h.quotes() == {}
    k2 = Kernel(executor=Manual())
    s2: PairCost = k2.add_strategy(PairCost, SID, {"series": ["btc-updown-15m"]})  # type: ignore[assignment]
    k2.start()
    k2.restore(h.k.to_state())
    k2.process(h.ts + NS, "events", ENCODER.encode(snapshots(*ladder(0.49, 0.50))))
    assert s2.report(MKT) == h.s.report(MKT) and k2.executor.sent == []  # type: ignore[attr-defined]


def test_an_unhealthy_or_stale_book_pulls_the_quotes_at_once() -> None:
    """A feed gap, a tick size change or a FeedStale notice sends no book change: the quotes must
    come down on the notice itself, not on some later delta."""
    h = Harness()
    h.book(0.49, 0.50)
    assert set(h.quotes()) == {"YES", "NO"}
    h.send(FeedDisconnected(feed="ws", asset_ids=(YES, NO)))
    assert h.quotes() == {}
    n = len(h.ex.sent)
    h.book(0.49, 0.50)  # the resync snapshots: quoting again
    assert set(h.quotes()) == {"YES", "NO"} and len(h.ex.sent) == n + 2
    h.send(TickSizeChange(asset_id=YES, market=MKT, old_tick_size=TICK, new_tick_size=1_000))
    assert h.quotes() == {}
    h.book(0.49, 0.50)
    assert set(h.quotes()) == {"YES", "NO"}
    h.send(FeedStale(feed="ws", asset_id=NO, age_ns=30 * NS))
    assert h.quotes() == {}
    h.send(BookDelta(asset_id=YES, market=MKT, side="BID", price=c(0.45), size=c(7), best_bid=c(0.49),
                     best_ask=c(0.50)))  # fmt: skip
    assert h.quotes() == {}  # the Down book is still stale
    h.send(BookDelta(asset_id=NO, market=MKT, side="ASK", price=c(0.55), size=c(7), best_bid=c(0.50),
                     best_ask=c(0.51)))  # a change behind the touch: fresh again  # fmt: skip
    assert set(h.quotes()) == {"YES", "NO"}


def test_own_quotes_shown_in_the_venue_book_are_not_chased() -> None:
    """Live, the venue's book shows the strategy's own bids (and, on the unified book, a YES bid
    at p as a NO ask at 1 - p). The lagging side's skewed quote is the best bid then: pricing
    from it walks the quote up tick by tick to the ask; the touch must be read without it."""
    h = Harness(max_imbalance="40", requote_ticks=2)
    for _ in range(2):
        h.book(0.32, 0.33)
        h.fill_quote("YES")  # YES 20 @ 0.30: NO lags by 20, skew 2 ticks

    def venue(bids: dict, asks: dict) -> None:
        """The book as the venue shows it: the others' levels plus our open quotes."""
        b2, a2 = dict(bids), dict(asks)
        for name, (price, size) in h.quotes().items():
            if name == "YES":
                b2[round(price, 2)] = b2.get(round(price, 2), 0) + size
            else:
                a2[round(1 - price, 2)] = a2.get(round(1 - price, 2), 0) + size
        h.send(snapshots(b2, a2))

    bids, asks = ladder(0.40, 0.46)  # Down 0.54 / 0.60
    h.send(snapshots(bids, asks))
    for _ in range(4):
        venue(bids, asks)
        assert h.quotes() == {"NO": (0.56, 10), "YES": (0.38, 10)}  # NO: 0.54 + 2 ticks
    # the Down bids behind our NO quote step back to 0.52 (Up asks 0.48): our 0.56 is still the
    # top of the Down book, but the wanted price is 0.52 + 2 ticks
    _, asks = ladder(0.40, 0.48)
    for _ in range(4):
        venue(bids, asks)
        assert h.quotes() == {"NO": (0.54, 10), "YES": (0.38, 10)}


# ------------------------------------------------------------------------------ property test


def invariant(k: Kernel, target: int, max_imbalance: int) -> None:
    """For the positions and every subset of the open orders filling (at their worst-case cost),
    the pair cost of the held shares, fees included, is below target; the imbalance, open buys
    counted as filled, is within the limit."""
    info = k.catalog.market(MKT)
    fees = info.fees if info else None
    side = []
    for a in (YES, NO):
        p = k.portfolio.by_strategy.get((SID, a))
        q, cost = (p.size, p.cost + p.fees) if p else (0, 0)
        items = []
        for o in k.orders.open_orders(SID, a):
            taker = o.intent.tif in ("FAK", "FOK") or not o.intent.post_only
            paying = taker or (fees is not None and not fees.taker_only)
            items.append((max_buy_cost(o.remaining, o.intent.price, fees if paying else None), o.remaining))
        side.append((q, cost, items))
    (qy, cy, iy), (qn, cn, i_n) = side
    assert qy + sum(x[1] for x in iy) - qn <= max_imbalance
    assert qn + sum(x[1] for x in i_n) - qy <= max_imbalance
    lim = Fraction(target, S)
    for sy in itertools.chain.from_iterable(itertools.combinations(iy, r) for r in range(len(iy) + 1)):
        y = (qy + sum(x[1] for x in sy), cy + sum(x[0] for x in sy))
        if y[0] <= 0:
            continue
        for sn in itertools.chain.from_iterable(itertools.combinations(i_n, r) for r in range(len(i_n) + 1)):
            n = (qn + sum(x[1] for x in sn), cn + sum(x[0] for x in sn))
            if n[0] > 0:
                assert Fraction(y[1], y[0]) + Fraction(n[1], n[0]) < lim, (y, n)


STEP = st.one_of(
    st.tuples(st.just("book"), st.integers(3, 95), st.integers(1, 3), st.integers(5, 120)),
    st.tuples(st.just("fill"), st.integers(0, 7), st.integers(1, 100), st.booleans()),
)
FEE_CASES = [FEES, None, FeeSchedule(rate_ppm=70_000, exponent=1, taker_only=False)]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.sampled_from(["0.95", "0.98", "0.99"]),
    size=st.sampled_from(["5", "10", "7.5"]),
    max_imb=st.sampled_from(["10", "20", "30"]),
    marginal=st.booleans(),
    fees=st.sampled_from(range(len(FEE_CASES))),
    steps=st.lists(STEP, min_size=1, max_size=25),
    data=st.data(),
)
def test_property_no_order_can_push_the_pair_cost_to_target(target, size, max_imb, marginal, fees, steps, data):
    h = Harness(info=market_info(fees=FEE_CASES[fees]), target=target, order_size=size, max_imbalance=max_imb,
                marginal=marginal, equalize_min="5", liquidity_mult=1)  # fmt: skip
    imb = c(float(max_imb))
    target = c(float(target))

    def fak(o: Any) -> list[tuple[int, int]]:
        # a top-up fills any part at its limit or better
        px = data.draw(st.integers(max(1, o.intent.price // TICK - 2), o.intent.price // TICK)) * TICK
        part = data.draw(st.integers(0, o.intent.size // 10_000)) * 10_000
        return [(px, part)] if part else []

    h.ex.fak = fak
    # checked as each order is handed to the executor, and after every step
    h.k.bus.subscribe(OrderSubmitted, lambda ev: invariant(h.k, target, imb))
    for step in steps:
        if step[0] == "book":
            _, bid, spread, depth = step
            h.book(bid / 100, (bid + spread) / 100, size=depth)
        else:
            _, i, pct, at_limit = step
            opened = [o for o in h.k.orders.open_orders(SID) if h.ex.left(o) > 0]
            if opened:
                o = opened[i % len(opened)]
                n = max(10_000, h.ex.left(o) * pct // 100 // 10_000 * 10_000)
                h.ex.fill(o, n, o.intent.price)
        invariant(h.k, target, imb)
    r = h.s.report(MKT)
    event("pairs built" if r["pairs"] else "no pair")
    event("top-up sent" if h.market.counters["equalizes"] else "no top-up")
    if r["pairs"]:  # (the display value is rounded up: at most the target)
        assert r["pair_cost_with_fees"] <= target
    assert abs(r["unpaired"]) <= imb


def test_property_harness_builds_pairs() -> None:
    """The property test's harness is not vacuous: swings plus fills build pairs below target."""
    h = Harness(equalize_min="5")
    for bid in (0.49, 0.40, 0.30, 0.45, 0.55, 0.60, 0.50, 0.40):
        h.book(bid, bid + 0.01)
        for o in list(h.k.orders.open_orders(SID)):
            h.ex.fill(o, h.ex.left(o), o.intent.price)
        invariant(h.k, c(0.98), c(30))
    r = h.s.report(MKT)
    assert r["pairs"] >= c(20) and r["pair_cost_with_fees"] < c(0.98) and r["locked_profit"] > 0


# ------------------------------------------------------------------------------ replays


def _replay(path: Path) -> tuple[dict[str, Any], Kernel]:
    got: dict[str, Any] = {}
    summary = replay(path, load_config(CONFIG), on_kernel=lambda k: got.setdefault("k", k))
    return summary, got["k"]


def _journal_intents(k: Kernel) -> list[Any]:
    return [o.intent for o in k.orders._orders.values()]


def test_replay_window_builds_pairs_below_target() -> None:
    summary, k = _replay(WINDOW)
    s: PairCost = k.strategies["gabagool"]  # type: ignore[assignment]
    assert summary["errors"] == {} and summary["trading_state"] == "active"
    assert summary["rejections"] == 0  # the full risk chain passes every order
    intents = _journal_intents(k)
    assert intents and all(it.side == "BUY" for it in intents)
    quotes = [it for it in intents if it.note == QUOTE]
    assert all(it.post_only and it.tif == "GTD" for it in quotes)
    assert summary["fills"] >= 10
    (mkt,) = s.report()
    r = s.report(mkt)
    target = s.params.target
    assert r["settled"] and r["pairs"] >= 50 * S
    assert r["pair_cost_with_fees"] < target and r["locked_profit"] > 0
    assert r["unpaired"] == 0 or abs(r["unpaired"]) <= s.params.max_imbalance
    assert r["settlement_pnl"] >= r["locked_profit"]  # pairs redeem to 1; maker fills pay no fee
    pnl = summary["pnl"]
    assert float(pnl["net"]) > 0 and float(pnl["fees"]) == 0 and float(pnl["unrealized"]) == 0
    rep = summary["report"]["per_strategy"]["gabagool"]
    assert rep["maker_fills"] == summary["fills"] and rep["orders_rejected_risk"] == 0
    # nothing was bought inside the settlement buffer
    stop = k.catalog.market(mkt).end_ts - int(s.params.settlement_buffer_s * NS)
    assert max(it.ts for it in intents) < stop


def test_replay_flat_market_builds_no_pair() -> None:
    summary, k = _replay(FLAT)
    s: PairCost = k.strategies["gabagool"]  # type: ignore[assignment]
    assert summary["errors"] == {} and summary["rejections"] == 0
    assert summary["orders"] > 0  # it quoted all along ...
    assert summary["fills"] == 0  # ... two ticks behind a touch that never traded through
    (mkt,) = s.report()
    r = s.report(mkt)
    assert r["pairs"] == 0 and r["qty_yes"] == 0 and r["qty_no"] == 0
    assert not [it for it in _journal_intents(k) if it.tif == "FAK"]  # taking the asks: 1 + spread + fees
    assert float(summary["pnl"]["net"]) == 0


def test_a_restart_in_the_middle_of_the_window_changes_nothing() -> None:
    """Snapshot the whole kernel (paper executor included) halfway, JSON round trip, restore into
    a fresh one and go on: the same orders, fills and report as the run without the restart."""
    import msgspec

    from polybot.events import enc_hook
    from polybot.journal import INPUT, JournalReader
    from polybot.wiring import build_executor, build_kernel

    cfg = load_config(CONFIG)
    records = [(ts, src, msg) for kind, ts, src, msg in JournalReader(WINDOW) if kind == INPUT]

    def kernel() -> Kernel:
        k = build_kernel(cfg, executor=build_executor(cfg), synthesize_timers=True)
        k.start()
        return k

    def finish(k: Kernel, part: list[Any]) -> dict[str, Any]:
        for ts, src, msg in part:
            k.process(ts, src, msg)
        s: PairCost = k.strategies["gabagool"]  # type: ignore[assignment]
        return {"orders": k.stats.orders, "fills": k.stats.fills, "report": s.report(),
                "portfolio": k.portfolio.to_state()}

    whole = kernel()
    expected = finish(whole, records)
    half = len(records) // 2
    first = kernel()
    for ts, src, msg in records[:half]:
        first.process(ts, src, msg)
    state = msgspec.json.decode(msgspec.json.encode(first.to_state(), enc_hook=enc_hook))
    assert state["strategies"]["gabagool"]["state"]["markets"]
    second = kernel()
    second.restore(state)
    second.stats.orders, second.stats.fills = first.stats.orders, first.stats.fills
    got = finish(second, records[half:])
    assert got == expected and expected["report"] and expected["fills"] > 0


def test_replay_is_deterministic_and_the_cli_runs_the_config(tmp_path: Path) -> None:
    a, _ = _replay(WINDOW)
    b, _ = _replay(WINDOW)
    for key in ("intents", "orders", "fills", "pnl"):
        assert a[key] == b[key]
    out = subprocess.run([POLYBOT, "replay", str(WINDOW), "--config", str(CONFIG), "--json", "--no-progress"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last["fills"] == a["fills"] and last["pnl"] == a["pnl"]


def test_recordings_are_small_and_the_script_remakes_them(tmp_path: Path) -> None:
    import gzip
    import importlib.util

    from polybot.synthetic import write_stream

    spec = importlib.util.spec_from_file_location("make_pair_cost", ROOT / "recordings" / "make_pair_cost.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    made = mod.recordings()
    assert set(made) == {WINDOW.name, FLAT.name}
    for name, records in made.items():
        shipped = ROOT / "recordings" / name
        assert shipped.stat().st_size < 100_000
        write_stream(str(tmp_path / name), records)
        assert gzip.decompress((tmp_path / name).read_bytes()) == gzip.decompress(shipped.read_bytes())
