"""polybot.book: the L2 book against a plain-dict model; depth walks against brute force."""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.book import Books, OrderBook, vwap
from polybot.units import SCALE

TICK = 10_000
prices = st.integers(min_value=1, max_value=99).map(lambda t: t * TICK)
# sizes in base units; not necessarily whole shares, so rounding matters
sizes = st.integers(min_value=1, max_value=50_000_000)
levels = st.lists(st.tuples(prices, st.integers(min_value=0, max_value=50_000_000)), max_size=12)

# delta sizes: mostly positive, often 0 (remove), sometimes negative (bad input: no level either)
delta_sizes = st.integers(min_value=0, max_value=50_000_000) | st.just(0) | st.integers(-5, -1)
ops = st.one_of(
    st.tuples(st.just("bid"), prices, delta_sizes),
    st.tuples(st.just("ask"), prices, delta_sizes),
    st.tuples(st.just("replace"), levels, levels),
)


def check_against_model(b: OrderBook, bids: dict[int, int], asks: dict[int, int]) -> None:
    assert dict(b.bids) == bids
    assert dict(b.asks) == asks
    assert b.best_bid == (max(bids) if bids else 0)
    assert b.best_ask == (min(asks) if asks else 0)
    assert b.bid_size() == (bids[max(bids)] if bids else 0)
    assert b.ask_size() == (asks[min(asks)] if asks else 0)
    assert list(b.iter_bids()) == sorted(bids.items(), reverse=True)
    assert list(b.iter_asks()) == sorted(asks.items())
    assert all(s > 0 for s in bids.values()) and all(s > 0 for s in asks.values())
    both = bool(bids and asks)
    assert b.crossed == (both and max(bids) >= min(asks))
    assert b.mid == ((max(bids) + min(asks)) // 2 if both else 0)
    assert b.spread == (min(asks) - max(bids) if both else 0)


@settings(max_examples=300)
@given(st.lists(ops, max_size=60))
def test_book_matches_dict_model(seq: list[tuple]) -> None:
    b = OrderBook("asset")
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for op in seq:
        if op[0] == "bid":
            _, p, s = op
            b.set_bid(p, s)
            if s > 0:
                bids[p] = s
            else:
                bids.pop(p, None)
        elif op[0] == "ask":
            _, p, s = op
            b.set_ask(p, s)
            if s > 0:
                asks[p] = s
            else:
                asks.pop(p, None)
        else:
            _, nb, na = op
            b.replace(nb, na, ts=7)
            # a snapshot is a list of distinct levels; with duplicates, the last positive wins
            bids = {p: s for p, s in nb if s > 0}
            asks = {p: s for p, s in na if s > 0}
            assert b.updated_ts == 7
        check_against_model(b, bids, asks)


def test_set_size_zero_removes_and_moves_best() -> None:
    b = OrderBook("a")
    b.set_bid(400_000, 5)
    b.set_bid(450_000, 6)
    b.set_ask(500_000, 7)
    b.set_ask(550_000, 8)
    assert (b.best_bid, b.best_ask) == (450_000, 500_000)
    b.set_bid(450_000, 0)
    b.set_ask(500_000, 0)
    assert (b.best_bid, b.best_ask) == (400_000, 550_000)
    b.set_bid(123_000, 0)  # removing a missing level is a no-op
    b.set_bid(400_000, 0)
    b.set_ask(550_000, 0)
    assert (b.best_bid, b.best_ask) == (0, 0)
    assert b.mid == 0 and b.spread == 0 and not b.crossed
    assert list(b.iter_asks()) == [] and list(b.iter_bids()) == []


def test_negative_size_is_no_level() -> None:
    """A delta with a negative size (malformed input) must not create a negative level: it
    is treated like replace() treats it, as no level at that price."""
    b = OrderBook("a")
    b.set_bid(400_000, -1)
    b.set_ask(500_000, -1)
    assert (b.best_bid, b.best_ask, len(b.bids), len(b.asks)) == (0, 0, 0, 0)
    b.set_ask(500_000, 10)
    b.set_ask(500_000, -3)
    assert b.best_ask == 0 and b.cost_to_buy(5) == (0, 0, 0)


def test_depth() -> None:
    b = OrderBook("a")
    b.replace([(p * TICK, p) for p in range(1, 10)], [(p * TICK, p) for p in range(20, 30)])
    assert b.depth("BID", 3) == [(90_000, 9), (80_000, 8), (70_000, 7)]
    assert b.depth("bids", 1) == [(90_000, 9)]
    assert b.depth("SELL", 2) == [(90_000, 9), (80_000, 8)]
    assert b.depth("ASK", 2) == [(200_000, 20), (210_000, 21)]
    assert b.depth("BUY", 100) == [(p * TICK, p) for p in range(20, 30)]
    assert b.bid_size(50_000) == 5 and b.bid_size(55_000) == 0
    assert b.ask_size(250_000) == 25


# ------------------------------------------------------------------------------------ depth walks


def brute_walk(lvls: list[tuple[int, int]], size: int, up: bool) -> tuple[int, int, int]:
    """Reference: exact rational cost, independent per-level clamping."""
    total = Fraction(0)
    filled = 0
    worst = 0
    before = 0
    for p, s in lvls:
        take = max(0, min(s, size - before))
        before += s
        if take:
            total += Fraction(p * take, SCALE)
            filled += take
            worst = p
    cost = ceil(total) if up else floor(total)
    return filled, cost, worst


@settings(max_examples=300)
@given(levels, levels, st.integers(min_value=1, max_value=400_000_000))
def test_cost_and_proceeds_against_brute_force(nb: list, na: list, size: int) -> None:
    b = OrderBook("a")
    b.replace(nb, na)
    bids = sorted({p: s for p, s in nb if s > 0}.items(), reverse=True)
    asks = sorted({p: s for p, s in na if s > 0}.items())

    assert b.cost_to_buy(size) == brute_walk(asks, size, up=True)
    assert b.proceeds_to_sell(size) == brute_walk(bids, size, up=False)

    filled, cost, worst = b.cost_to_buy(size)
    assert filled == min(size, sum(s for _, s in asks))
    if filled:
        # between best and worst price, inclusive, and rounded up
        assert filled * b.best_ask <= cost * SCALE
        assert cost * SCALE < filled * worst + SCALE
    filled, proceeds, worst = b.proceeds_to_sell(size)
    assert filled == min(size, sum(s for _, s in bids))
    if filled:
        assert proceeds * SCALE <= filled * b.best_bid
        assert proceeds * SCALE > filled * worst - SCALE


@given(levels, st.integers(min_value=0, max_value=200_000_000), st.integers(min_value=0, max_value=200_000_000))
def test_cost_monotonic_in_size(na: list, s1: int, s2: int) -> None:
    b = OrderBook("a")
    b.replace([], na)
    lo, hi = sorted((s1, s2))
    f1, c1, _ = b.cost_to_buy(lo)
    f2, c2, _ = b.cost_to_buy(hi)
    assert f1 <= f2 and c1 <= c2


def test_walk_examples() -> None:
    b = OrderBook("a")
    b.replace([(400_000, 10_000_000), (390_000, 5_000_000)], [(450_000, 10_000_000), (460_000, 5_000_000)])
    # 12 shares: 10 @ 0.45 + 2 @ 0.46 = 4.5 + 0.92
    assert b.cost_to_buy(12_000_000) == (12_000_000, 5_420_000, 460_000)
    assert b.proceeds_to_sell(12_000_000) == (12_000_000, 4_780_000, 390_000)
    # more than the book holds
    assert b.cost_to_buy(100_000_000) == (15_000_000, 6_800_000, 460_000)
    # rounding: 1 base unit of shares at 0.45 costs 0.45 base units -> 1 up, 0 down
    assert b.cost_to_buy(1) == (1, 1, 450_000)
    assert b.proceeds_to_sell(1) == (1, 0, 400_000)
    assert b.cost_to_buy(0)[:2] == (0, 0)
    assert OrderBook("empty").cost_to_buy(5) == (0, 0, 0)
    assert OrderBook("empty").proceeds_to_sell(5) == (0, 0, 0)
    assert vwap(12_000_000, 5_420_000) == 451_666
    assert vwap(0, 0) == 0


@given(levels, levels, prices)
def test_size_up_to(nb: list, na: list, limit: int) -> None:
    b = OrderBook("a")
    b.replace(nb, na)
    bids = {p: s for p, s in nb if s > 0}
    asks = {p: s for p, s in na if s > 0}
    assert b.size_up_to("BUY", limit) == sum(s for p, s in asks.items() if p <= limit)
    assert b.size_up_to("SELL", limit) == sum(s for p, s in bids.items() if p >= limit)


# ------------------------------------------------------------------------------------ state


@given(levels, levels, st.integers(min_value=0, max_value=2**62), st.booleans())
def test_to_state_round_trip(nb: list, na: list, ts: int, healthy: bool) -> None:
    b = OrderBook("asset-1", "market-1")
    b.replace(nb, na, ts=ts)
    b.tick_size = TICK
    b.healthy = healthy
    b.unhealthy_reason = "" if healthy else "hash mismatch"
    b.hash = "abc"
    b.last_trade_price = "0.45"
    st_ = b.to_state()
    # through JSON, as a snapshot file would store it (tuples become lists)
    back = OrderBook.from_state(msgspec.json.decode(msgspec.json.encode(st_)))
    assert back.to_state() == st_
    check_against_model(back, dict(b.bids), dict(b.asks))
    assert (back.asset_id, back.market, back.updated_ts) == ("asset-1", "market-1", ts)
    assert (back.tick_size, back.healthy, back.hash, back.last_trade_price) == (TICK, healthy, "abc", "0.45")


def test_books_container() -> None:
    books = Books()
    assert len(books) == 0 and books.get("x") is None and "x" not in books
    b = books.ensure("x")
    assert books.ensure("x", "m") is b and b.market == "m"
    assert books.ensure("x", "other").market == "m"  # an existing market is not overwritten
    assert "x" in books and books["x"] is b and list(books) == ["x"]
    assert not books.is_healthy("x") and not books.is_healthy("nope")
    b.healthy = True
    assert books.is_healthy("x")
    b.replace([(100_000, 1)], [(200_000, 2)], ts=5)
    books.ensure("a").replace([(300_000, 3)], [])
    state = books.to_state()
    assert [s["asset_id"] for s in state] == ["a", "x"]
    other = Books()
    other.restore(msgspec.json.decode(msgspec.json.encode(state)))
    assert other.to_state() == state
    assert other.is_healthy("x") and other["x"].best_ask == 200_000
    assert dict(other.items()).keys() == {"a", "x"}
