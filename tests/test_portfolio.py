"""polybot.portfolio: exact average-cost accounting, fees, rebates, cash, binary-market pairs,
marking and resolution."""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.book import Books
from polybot.catalog import Catalog
from polybot.events import MarketInfo, MarketPosition, MarketResolved, OrderFilled, PnLUpdate
from polybot.portfolio import PairView, Portfolio, Position, book_marks
from polybot.units import SCALE

SHARE = SCALE


def fill(asset: str, side: str, price: int, size: int, fee: int = 0, market: str = "m", rebate: int = 0,
         liquidity: str = "taker") -> OrderFilled:  # fmt: skip
    return OrderFilled(client_id="c", trade_id="t", asset_id=asset, market=market, side=side,  # type: ignore[arg-type]
                       price=price, size=size, liquidity=liquidity, fee=fee, rebate=rebate)  # type: ignore[arg-type]


def test_buy_then_sell_realizes_exact_pnl() -> None:
    pf = Portfolio()
    pf.apply_fill("s", fill("Y", "BUY", 400_000, 10 * SHARE, fee=10_000))
    p = pf.get("Y")
    assert p is not None
    assert (p.size, p.cost, p.avg_price, p.realized, p.fees) == (10 * SHARE, 4_000_000, 400_000, 0, 10_000)
    assert p.unrealized(450_000) == 500_000
    assert pf.cash_delta == -4_010_000
    pf.apply_fill("s", fill("Y", "SELL", 500_000, 4 * SHARE, fee=20_000))
    # 4 x (0.50 - 0.40) = 0.40 realized; fees 0.03 apart
    assert (p.size, p.cost, p.realized, p.fees, p.net_realized) == (6 * SHARE, 2_400_000, 400_000, 30_000, 370_000)
    assert (p.bought, p.sold) == (10 * SHARE, 4 * SHARE)
    assert pf.cash_delta == -4_010_000 + 2_000_000 - 20_000
    assert pf.realized_pnl() == 370_000 and pf.realized_pnl("s") == 370_000 and pf.realized_pnl("other") == 0
    assert pf.fees_paid() == 30_000
    pf.apply_fill("s", fill("Y", "SELL", 300_000, 6 * SHARE))
    assert (p.size, p.cost, p.avg_price) == (0, 0, 0)
    assert p.realized == 400_000 - 600_000
    assert pf.cash_delta == p.realized - p.fees  # flat: cash is exactly the net PnL


def test_average_cost_over_several_buys() -> None:
    p = Position("Y")
    p.apply_fill("BUY", 400_000, 10 * SHARE, 0)
    p.apply_fill("BUY", 500_000, 10 * SHARE, 0)
    assert p.avg_price == 450_000 and p.cost == 9_000_000
    p.apply_fill("SELL", 450_000, 5 * SHARE, 0)
    assert p.realized == 0 and p.cost == 6_750_000 and p.avg_price == 450_000


def test_rounding_of_basis_keeps_remainder_in_cost() -> None:
    p = Position("Y")
    p.apply_fill("BUY", 1, 3 * SHARE, 0)  # 3 shares at 0.000001: cost 3 base units
    assert p.cost == 3
    p.apply_fill("SELL", 1, 1, 0)  # 1 base unit of shares: basis rounds down to 0
    assert p.cost == 3 and p.realized == 0 and p.size == 3 * SHARE - 1
    p.apply_fill("SELL", 1, p.size, 0)
    assert p.cost == 0 and p.size == 0
    assert p.realized == 2 - 3  # proceeds floor(2.999999) = 2, basis 3


def test_strategy_positions_are_separate() -> None:
    pf = Portfolio()
    pf.apply_fill("a", fill("Y", "BUY", 400_000, 10 * SHARE))
    pf.apply_fill("b", fill("Y", "BUY", 600_000, 10 * SHARE))
    assert pf.size("Y") == 20 * SHARE and pf.size("Y", "a") == 10 * SHARE and pf.size("Y", "c") == 0
    assert pf.size("nope") == 0
    pf.apply_fill("a", fill("Y", "SELL", 500_000, 10 * SHARE))
    assert pf.realized_pnl("a") == 1_000_000
    assert pf.realized_pnl("b") == 0
    assert pf.realized_pnl() == 0  # all strategies: average cost 0.50, sold at 0.50


def test_resolve_settles_winner_at_one_and_loser_at_zero() -> None:
    pf = Portfolio()
    pf.apply_fill("s", fill("Y", "BUY", 400_000, 10 * SHARE, fee=5))
    pf.apply_fill("s", fill("N", "BUY", 550_000, 10 * SHARE, fee=5))
    pf.apply_fill("t", fill("N", "BUY", 500_000, 2 * SHARE))
    cash_before = pf.cash_delta
    changed = pf.resolve(MarketResolved(market="m", asset_ids=("Y", "N", "Z"), winning_asset_id="Y"))
    assert [p.asset_id for p in changed] == ["Y", "N"]
    y, n = pf.get("Y"), pf.get("N")
    assert y is not None and n is not None
    assert (y.size, y.cost, y.realized) == (0, 0, 6_000_000)
    assert (n.size, n.cost, n.realized) == (0, 0, -6_500_000)
    assert pf.cash_delta == cash_before + 10 * SHARE
    assert pf.realized_pnl("s") == 6_000_000 - 5_500_000 - 10
    assert pf.realized_pnl("t") == -1_000_000
    assert pf.size("N", "t") == 0
    # a second resolution is a no-op
    assert pf.resolve(MarketResolved(market="m", asset_ids=("Y", "N"), winning_asset_id="Y")) == []
    assert pf.cash_delta == cash_before + 10 * SHARE


def test_to_state_restore_round_trip() -> None:
    pf = Portfolio()
    pf.apply_fill("a", fill("Y", "BUY", 400_000, 10 * SHARE, fee=3))
    pf.apply_fill("b", fill("N", "BUY", 300_000, 7 * SHARE, fee=1))
    pf.apply_fill("a", fill("Y", "SELL", 410_000, 5 * SHARE))
    st_ = pf.to_state()
    other = Portfolio()
    other.restore(msgspec.json.decode(msgspec.json.encode(st_)))
    assert other.to_state() == st_
    assert other.positions == pf.positions and other.by_strategy == pf.by_strategy
    assert other.cash_delta == pf.cash_delta


# ------------------------------------------------------------------------------------ properties

ASSETS = ("Y", "N")
STRATS = ("a", "b")


@st.composite
def fill_sequences(draw: st.DrawFn) -> list[tuple[str, str, str, int, int, int, int]]:
    """Fills that never sell more than the strategy holds (so never more than the asset holds)."""
    held: dict[tuple[str, str], int] = {}
    out = []
    for _ in range(draw(st.integers(0, 30))):
        strat = draw(st.sampled_from(STRATS))
        asset = draw(st.sampled_from(ASSETS))
        price = draw(st.integers(1, SCALE - 1))
        fee = draw(st.integers(0, 50_000))
        rebate = draw(st.sampled_from((0, 0, 1, 7_777)))
        h = held.get((strat, asset), 0)
        if h and draw(st.booleans()):
            size = draw(st.integers(1, h))
            side = "SELL"
            held[(strat, asset)] = h - size
        else:
            size = draw(st.integers(1, 100 * SHARE))
            side = "BUY"
            held[(strat, asset)] = h + size
        out.append((strat, asset, side, price, size, fee, rebate))
    return out


def check_invariants(pf: Portfolio, marks: dict[str, int], ref: dict[str, Any], settled: bool = False) -> None:
    total_mark = 0
    total_pnl = 0
    for aid, p in pf.positions.items():
        mark = marks[aid]
        assert p.rebates == ref["rebates"][aid]
        assert p.size >= 0 and p.cost >= 0
        assert p.size == (0 if settled else ref["bought"][aid] - ref["sold"][aid])
        assert (p.bought, p.sold, p.fees) == (ref["bought"][aid], ref["sold"][aid], ref["fees"][aid])
        if p.size == 0:
            assert p.cost == 0
        # never more basis than was paid
        assert p.cost <= ref["paid"][aid]
        total_mark += mark * p.size // SCALE
        total_pnl += p.realized + p.unrealized(mark) - p.fees + p.rebates
    # cash + what the positions are marked at == realized + unrealized - fees + rebates, exactly
    assert pf.cash_delta + total_mark == total_pnl
    assert pf.cash_delta == sum(p.realized - p.cost - p.fees + p.rebates for p in pf.positions.values())
    # the same identity per strategy position, and the strategy split adds up
    assert pf.cash_delta == sum(p.realized - p.cost - p.fees + p.rebates for p in pf.by_strategy.values())
    assert pf.cash_delta == sum(pf.cash_flow(s) for s in STRATS)
    for aid in pf.positions:
        assert pf.size(aid) == sum(pf.size(aid, s) for s in STRATS)
    assert pf.fees_paid() == sum(ref["fees"].values())
    assert pf.rebates_earned() == sum(ref["rebates"].values())
    assert pf.realized_pnl() == sum(p.realized - p.fees + p.rebates for p in pf.positions.values())


@settings(max_examples=300)
@given(fill_sequences(), st.integers(0, SCALE), st.integers(0, SCALE), st.sampled_from(ASSETS + ("",)))
def test_accounting_identities(seq: list, mark_y: int, mark_n: int, winner: str) -> None:
    pf = Portfolio()
    ref: dict[str, Any] = {k: dict.fromkeys(ASSETS, 0) for k in ("bought", "sold", "fees", "paid", "rebates")}
    cash = 0
    for strat, asset, side, price, size, fee, rebate in seq:
        pf.apply_fill(strat, fill(asset, side, price, size, fee, rebate=rebate))
        n = price * size // SCALE
        ref["bought" if side == "BUY" else "sold"][asset] += size
        ref["fees"][asset] += fee
        ref["rebates"][asset] += rebate
        if side == "BUY":
            ref["paid"][asset] += n
        cash += (n if side == "SELL" else -n) - fee + rebate
        assert pf.cash_delta == cash
    marks = {"Y": mark_y, "N": mark_n}
    check_invariants(pf, marks, ref)

    # a strategy that only ever traded one asset with one strategy sees the aggregate numbers
    if len({s for s, *_ in seq}) == 1 and seq:
        s = seq[0][0]
        for aid, p in pf.positions.items():
            sp = pf.by_strategy[(s, aid)]
            assert (sp.size, sp.cost, sp.realized, sp.fees, sp.rebates) == (p.size, p.cost, p.realized, p.fees, p.rebates)

    # resolution: the winner pays 1 per share, the loser 0, and the identities still hold
    sizes = {aid: pf.size(aid) for aid in ASSETS}
    cash_before = pf.cash_delta
    pf.resolve(MarketResolved(market="m", asset_ids=ASSETS, winning_asset_id=winner))
    assert pf.cash_delta == cash_before + (sizes[winner] if winner else 0)
    for p in list(pf.positions.values()) + list(pf.by_strategy.values()):
        assert p.size == 0 and p.cost == 0
    check_invariants(pf, {"Y": 0, "N": 0}, ref, settled=True)
    # flat everywhere: cash is the net realized PnL
    assert pf.cash_delta == pf.realized_pnl()
    assert pf.cash_delta == sum(pf.realized_pnl(s) for s in STRATS)


# ------------------------------------------------------------------------------ binary markets

def catalog(*markets: tuple[str, str, str]) -> Catalog:
    cat = Catalog()
    for m, y, n in markets:
        cat.add(MarketInfo(market=m, asset_ids=(y, n), outcomes=("Yes", "No")))
    return cat


def books(**tops: tuple[int, int]) -> Books:
    bs = Books()
    for aid, (bid, ask) in tops.items():
        bs.ensure(aid).replace([(bid, 100 * SHARE)] if bid else [], [(ask, 100 * SHARE)] if ask else [])
    return bs


def pair_portfolio() -> Portfolio:
    """10 YES @0.40 (fee 0.01) + 10 NO @0.55 (fee 0.02), 100 of starting cash."""
    pf = Portfolio(starting_cash=100 * SCALE, catalog=catalog(("m", "Y", "N")))
    pf.apply_fill("s", fill("Y", "BUY", 400_000, 10 * SHARE, fee=10_000))
    pf.apply_fill("s", fill("N", "BUY", 550_000, 10 * SHARE, fee=20_000))
    return pf


def test_pair_cost_and_locked_profit_by_hand() -> None:
    pf = pair_portfolio()
    v = pf.pair_view("m")
    assert v == PairView(10 * SHARE, 10 * SHARE, 4_000_000, 5_500_000, 30_000, 0)
    assert pf.pair_cost("m") == 950_000
    assert pf.pair_cost_below("m", 950_001) and not pf.pair_cost_below("m", 950_000)
    assert pf.locked_profit("m") == 500_000 - 30_000  # 10 x (1 - 0.95) - fees
    assert pf.unpaired("m") == 0
    assert pf.cash == 100 * SCALE - 4_000_000 - 5_500_000 - 30_000
    # the pair is worth 1 whatever the books say
    marks = book_marks(books(Y=(380_000, 420_000), N=(500_000, 600_000)))
    assert pf.mark_value(marks) == 10 * SCALE
    assert pf.unrealized(marks) == 500_000 and pf.unrealized(marks, market="m") == 500_000
    assert pf.mark_value(lambda aid: None) == 10 * SCALE
    assert pf.market_position("m", "s", ts=7) == MarketPosition(
        ts=7, market="m", strategy="s", qty_yes=10 * SHARE, qty_no=10 * SHARE, cost_yes=4_000_000,
        cost_no=5_500_000, pair_cost=950_000, locked_profit=470_000, unpaired=0, fees=30_000)  # fmt: skip
    assert pf.market_position("m") == msgspec.structs.replace(pf.market_position("m", "s"), strategy="")
    # an unknown market has nothing (and no pair cost)
    assert pf.pair_view("nope") == PairView() and not pf.pair_cost_below("nope", SCALE)


def test_unpaired_remainder_is_marked_to_bid_or_mid() -> None:
    pf = pair_portfolio()
    pf.apply_fill("s", fill("Y", "BUY", 300_000, 4 * SHARE))  # 14 YES for 5.20, 10 NO for 5.50
    assert pf.unpaired("m") == 4 * SHARE
    # 5.2/14 + 0.55 = 0.92142857... -> 0.921429 rounded up; compared exactly
    assert pf.pair_cost("m") == 921_429
    assert pf.pair_cost_below("m", 921_429) and not pf.pair_cost_below("m", 921_428)
    # floor(10 x (1 - 0.92142857...)) = floor(0.7857142...) = 0.785714, minus 0.03 of fees
    assert pf.locked_profit("m") == 785_714 - 30_000
    bs = books(Y=(380_000, 420_000), N=(500_000, 600_000))
    assert pf.mark_value(book_marks(bs)) == 10 * SCALE + 4 * 380_000  # the rest at the bid
    assert pf.mark_value(book_marks(bs, "mid")) == 10 * SCALE + 4 * 400_000  # or at the mid
    assert pf.mark_value(pf.marks(bs)) == 10 * SCALE + 4 * 380_000  # the portfolio's default: bid
    assert pf.unrealized(book_marks(bs)) == 11_520_000 - 10_700_000
    # no bid: the unpaired YES is worth 0 (bid mode); mid mode without a bid falls back to it
    nobid = books(Y=(0, 420_000), N=(500_000, 600_000))
    assert pf.mark_value(book_marks(nobid)) == 10 * SCALE
    assert pf.mark_value(book_marks(nobid, "mid")) == 10 * SCALE
    assert pf.mark_value(book_marks(Books())) == 10 * SCALE  # no book at all: no mark
    with pytest.raises(ValueError):
        book_marks(bs, "last")


def test_pairs_form_across_strategies_for_the_account_only() -> None:
    pf = Portfolio(catalog=catalog(("m", "Y", "N")))
    pf.apply_fill("a", fill("Y", "BUY", 400_000, 10 * SHARE))
    pf.apply_fill("b", fill("N", "BUY", 550_000, 6 * SHARE))
    marks = book_marks(books(Y=(380_000, 420_000), N=(500_000, 600_000)))
    assert pf.mark_value(marks) == 6 * SCALE + 4 * 380_000  # 6 pairs at 1, 4 YES at the bid
    assert pf.mark_value(marks, "a") == 10 * 380_000
    assert pf.mark_value(marks, "b") == 6 * 500_000
    assert pf.pair_cost("m") == 950_000 and pf.pair_cost("m", "a") == 0
    assert not pf.pair_cost_below("m", SCALE, "a")
    assert pf.locked_profit("m") == 6 * 50_000 and pf.locked_profit("m", "b") == 0
    assert pf.unpaired("m", "b") == -6 * SHARE and pf.unpaired("m") == 4 * SHARE


@pytest.mark.parametrize("winner", ["Y", "N"])
def test_settlement_of_a_pair_by_hand(winner: str) -> None:
    pf = pair_portfolio()
    pf.apply_fill("s", fill("Y", "BUY", 300_000, 4 * SHARE))  # 14 YES for 5.20, 10 NO for 5.50
    pf.apply_fill("t", fill("N", "BUY", 500_000, 2 * SHARE, fee=1))  # another strategy: 2 NO for 1.00
    changed = pf.settle(MarketResolved(market="m", winning_asset_id=winner))  # assets from the catalog
    assert [(s, p.asset_id) for s, p in changed] == [("", "Y"), ("", "N"), ("s", "Y"), ("s", "N"), ("t", "N")]
    assert all(p.size == 0 and p.cost == 0 for _s, p in changed)
    pnl_s = pf.pnl("s")
    if winner == "Y":
        # YES pays 14, NO 0: 14 - 5.2 - 5.5 = 3.3 realized, less 0.03 of fees
        assert (pnl_s.realized, pnl_s.fees, pnl_s.net) == (3_300_000, 30_000, 3_270_000)
        assert pf.cash == 100 * SCALE - 10_700_000 - 1_000_000 - 30_001 + 14 * SCALE
        assert pf.pnl("t").realized == -1_000_000
    else:
        # NO pays 10 (and 2 to t): 10 - 10.7 = -0.7 realized for s
        assert (pnl_s.realized, pnl_s.net) == (-700_000, -730_000)
        assert pf.cash == 100 * SCALE - 10_700_000 - 1_000_000 - 30_001 + 12 * SCALE
        assert pf.pnl("t").realized == 1_000_000
    # flat: cash moved is the net PnL, for the account and per strategy
    assert pf.cash - pf.starting_cash == pf.realized_pnl() == pf.pnl().net
    assert pnl_s.cash == pf.realized_pnl("s") and pf.pnl("t").cash == pf.realized_pnl("t")
    assert pf.market_position("m").qty_yes == 0 and pf.settle(MarketResolved(market="m", winning_asset_id=winner)) == []


def test_sell_realizes_against_average_cost_and_rebates_are_cash() -> None:
    pf = Portfolio(starting_cash=50 * SCALE, catalog=catalog(("m", "Y", "N")))
    pf.apply_fill("s", fill("Y", "BUY", 400_000, 10 * SHARE, liquidity="maker", rebate=2_000))
    pf.apply_fill("s", fill("Y", "BUY", 460_000, 5 * SHARE, fee=3_000))  # 15 for 6.30: avg 0.42
    pf.apply_fill("s", fill("Y", "SELL", 500_000, 6 * SHARE, liquidity="maker", rebate=1_500))
    p = pf.get("Y")
    assert p is not None and (p.size, p.cost, p.realized) == (9 * SHARE, 3_780_000, 6 * 80_000)
    assert (p.fees, p.rebates, p.net_realized) == (3_000, 3_500, 480_000 - 3_000 + 3_500)
    assert pf.cash == 50 * SCALE - 4_000_000 + 2_000 - 2_300_000 - 3_000 + 3_000_000 + 1_500
    marks = book_marks(books(Y=(450_000, 470_000)))
    assert pf.pnl(mark_fn=marks, ts=9) == PnLUpdate(
        ts=9, strategy="", realized=480_000, unrealized=9 * 450_000 - 3_780_000, fees=3_000, rebates=3_500,
        net=480_000 + 270_000 - 3_000 + 3_500, cash=pf.cash)  # fmt: skip
    assert pf.pnl("s", marks).cash == pf.cash - 50 * SCALE
    assert pf.pnl("s").unrealized == 0  # nothing marked without a mark function
    assert pf.cash - pf.starting_cash + pf.mark_value(marks) == pf.pnl(mark_fn=marks).net


def test_restore_of_a_state_without_starting_cash_or_rebates() -> None:
    old = {"positions": [{"asset_id": "Y", "market": "m", "size": 1, "cost": 1, "realized": 0, "fees": 0,
                          "bought": 1, "sold": 0}],
           "by_strategy": [["s", "Y", {"asset_id": "Y", "market": "m", "size": 1, "cost": 1, "realized": 0,
                                       "fees": 0, "bought": 1, "sold": 0}]],
           "cash_delta": -1}  # fmt: skip
    pf = Portfolio(starting_cash=5)
    pf.restore(old)
    assert pf.cash == 4 and pf.size("Y", "s") == 1 and pf.get("Y").rebates == 0  # type: ignore[union-attr]
    assert pf.strategies() == ["s"] and pf.cash_flow("s") == -1


# ------------------------------------------------------------------------------ properties: pairs


@settings(max_examples=500)
@given(st.integers(1, 10**9), st.integers(1, 10**9), st.integers(0, 10**9), st.integers(0, 10**9),
       st.integers(0, 3 * SCALE), st.integers(0, 10**6))  # fmt: skip
def test_pair_cost_and_locked_profit_equal_exact_fractions(qy: int, qn: int, cy: int, cn: int, limit: int, fees: int) -> None:
    v = PairView(qy, qn, cy, cn, fees)
    pc = Fraction(cy, qy) + Fraction(cn, qn)
    assert v.pair_cost_below(limit) == (pc < Fraction(limit, SCALE))
    assert v.pair_cost_below(v.pair_cost + 1)
    assert v.pair_cost == ceil(pc * SCALE)
    assert v.locked_profit == floor(min(qy, qn) * (1 - pc)) - fees


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(("Y", "N")), st.integers(1, SCALE - 1), st.integers(1, 50 * SHARE)),
                min_size=1, max_size=8),
       st.integers(1, 2 * SCALE))  # fmt: skip
def test_pair_cost_of_fills_equals_fraction(buys: list[tuple[str, int, int]], limit: int) -> None:
    pf = Portfolio(catalog=catalog(("m", "Y", "N")))
    for aid, price, size in buys:
        pf.apply_fill("s", fill(aid, "BUY", price, size, fee=1))
    y, n = pf.get("Y"), pf.get("N")
    if y is None or n is None:
        assert not pf.pair_cost_below("m", limit) and pf.locked_profit("m") == -len(buys)
        return
    pc = Fraction(y.cost, y.size) + Fraction(n.cost, n.size)
    assert pf.pair_cost_below("m", limit) == (pc < Fraction(limit, SCALE))
    assert pf.pair_cost("m") == ceil(pc * SCALE)
    assert pf.locked_profit("m") == floor(min(y.size, n.size) * (1 - pc)) - len(buys)


# ------------------------------------------------------------------------------ properties: cash/PnL

MARKETS = (("m1", "Y1", "N1"), ("m2", "Y2", "N2"))
ALL_ASSETS = ("Y1", "N1", "Y2", "N2", "X")  # X: an asset the catalog does not know
MARKET_OF = {"Y1": "m1", "N1": "m1", "Y2": "m2", "N2": "m2", "X": "mx"}


@st.composite
def sessions(draw: st.DrawFn) -> list[tuple]:
    """Fills (strategy, asset, side, price, size, fee, rebate) that never sell more than the
    strategy holds, and settlements ("resolve", market, winner); no fills after a settlement."""
    held: dict[tuple[str, str], int] = {}
    resolved: set[str] = set()
    out: list[tuple] = []
    for _ in range(draw(st.integers(0, 25))):
        if draw(st.integers(0, 9)) == 0:
            m, y, n = draw(st.sampled_from(MARKETS))
            if m not in resolved:
                resolved.add(m)
                out.append(("resolve", m, draw(st.sampled_from((y, n, "")))))
            continue
        asset = draw(st.sampled_from([a for a in ALL_ASSETS if MARKET_OF[a] not in resolved]))
        strat = draw(st.sampled_from(STRATS))
        price = draw(st.integers(1, SCALE - 1))
        fee = draw(st.integers(0, 20_000))
        rebate = draw(st.sampled_from((0, 0, 3, 5_000)))
        h = held.get((strat, asset), 0)
        if h and draw(st.booleans()):
            size = draw(st.integers(1, h))
            held[(strat, asset)] = h - size
            out.append((strat, asset, "SELL", price, size, fee, rebate))
        else:
            size = draw(st.integers(1, 100 * SHARE))
            held[(strat, asset)] = h + size
            out.append((strat, asset, "BUY", price, size, fee, rebate))
    return out


def run_session(seq: list[tuple], start: int) -> tuple[Portfolio, int]:
    """Play a session; returns the portfolio and the cash computed independently."""
    pf = Portfolio(starting_cash=start, catalog=catalog(*MARKETS))
    cash = start
    for step in seq:
        if step[0] == "resolve":
            _, m, winner = step
            cash += pf.size(winner) if winner else 0
            pf.settle(MarketResolved(market=m, winning_asset_id=winner))
            continue
        strat, asset, side, price, size, fee, rebate = step
        pf.apply_fill(strat, fill(asset, side, price, size, fee, market=MARKET_OF[asset], rebate=rebate))
        n = price * size // SCALE  # the documented rounding: floor, buys and sells alike
        cash += (n if side == "SELL" else -n) - fee + rebate
    return pf, cash


def ref_mark_value(sizes: dict[str, int], marks: dict[str, int | None]) -> int:
    """Pairs at 1 and the rest at the mark, from first principles."""
    total = 0
    for _m, y, n in MARKETS:
        qy, qn = sizes.get(y, 0), sizes.get(n, 0)
        pairs = min(qy, qn)
        total += pairs + (marks[y] or 0) * (qy - pairs) // SCALE + (marks[n] or 0) * (qn - pairs) // SCALE
    return total + (marks["X"] or 0) * sizes.get("X", 0) // SCALE


mark_prices = st.one_of(st.none(), st.integers(0, SCALE))


@settings(max_examples=300)
@given(sessions(), st.integers(0, 10**9), st.fixed_dictionaries({a: mark_prices for a in ALL_ASSETS}))
def test_cash_and_pnl_identity(seq: list[tuple], start: int, marks: dict[str, int | None]) -> None:
    pf, cash = run_session(seq, start)
    assert pf.cash == cash
    mark_fn = marks.get
    scopes: list[str | None] = [None, *STRATS]
    for s in scopes:
        pnl = pf.pnl(s or "", mark_fn)
        value = pf.mark_value(mark_fn, s)
        held = {a: pf.size(a, s) for a in ALL_ASSETS}
        assert value == ref_mark_value(held, marks)
        assert pnl.unrealized == pf.unrealized(mark_fn, s) == value - sum(p.cost for p in pf._scope(s).values())
        # the identity, exactly: cash moved + mark value == realized + unrealized - fees + rebates
        moved = pf.cash - pf.starting_cash if s is None else pnl.cash
        assert moved + value == pnl.realized + pnl.unrealized - pnl.fees + pnl.rebates == pnl.net
        assert pnl.net == pf.equity(mark_fn, s)
        # per market too, and the markets add up to the scope
        mv = pf.market_values(mark_fn, s)
        assert set(mv) <= {"m1", "m2", "mx"}
        for m in mv:
            assert mv[m].equity == pf.equity(mark_fn, s, market=m)
            assert mv[m].unrealized == pf.unrealized(mark_fn, s, market=m)
            assert mv[m].value == pf.mark_value(mark_fn, s, market=m)
        assert sum(v.equity for v in mv.values()) == pnl.net
        assert sum(p.cash_flow for p in pf._scope(s).values()) + value == pnl.net
    # cash is additive over strategies even though average cost and pairing are not
    assert pf.cash - pf.starting_cash == sum(pf.pnl(s).cash for s in STRATS)
    # settle everything: flat, and cash moved is the net PnL everywhere
    for m, y, _n in MARKETS:
        pf.settle(MarketResolved(market=m, winning_asset_id=y))
    pf.settle(MarketResolved(market="mx", asset_ids=("X",), winning_asset_id="X"))
    for s in scopes:
        assert all(p.size == 0 and p.cost == 0 for p in pf._scope(s).values())
        assert pf.unrealized(mark_fn, s) == 0
    assert pf.cash - pf.starting_cash == pf.realized_pnl() == sum(pf.realized_pnl(s) for s in STRATS)


@settings(max_examples=150)
@given(sessions(), st.integers(0, 10**9))
def test_state_round_trip_property(seq: list[tuple], start: int) -> None:
    pf, _cash = run_session(seq, start)
    st_ = msgspec.json.decode(msgspec.json.encode(pf.to_state()))
    other = Portfolio(catalog=pf.catalog)
    other.restore(st_)
    assert other.to_state() == pf.to_state() == st_
    assert other.positions == pf.positions and other.by_strategy == pf.by_strategy
    marks = {a: 500_000 for a in ALL_ASSETS}.get
    for s in ("", *STRATS):
        assert other.pnl(s, marks) == pf.pnl(s, marks)
    for m, _y, _n in MARKETS:
        assert other.market_position(m) == pf.market_position(m)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(("BUY", "SELL")), st.integers(1, SCALE - 1), st.integers(1, 30 * SHARE),
                          st.integers(0, 9), st.integers(0, 9)), max_size=20),
       st.integers(0, SCALE))  # fmt: skip
def test_position_stays_exact_through_shorts_and_covers(fills: list, winner_pays: int) -> None:
    """Selling more than held (never on Polymarket) opens a short; buying covers it. Cash moved
    always equals realized - cost - fees + rebates, and a flat position has no cost left."""
    p = Position("Y")
    cash = 0
    for side, price, size, fee, rebate in fills:
        moved = p.apply_fill(side, price, size, fee, rebate)
        n = price * size // SCALE
        assert moved == (n if side == "SELL" else -n) - fee + rebate
        cash += moved
        assert cash == p.cash_flow == p.realized - p.cost - p.fees + p.rebates
        if p.size == 0:
            assert p.cost == 0
    cash += p.settle(winner_pays)
    assert (p.size, p.cost) == (0, 0) and cash == p.net_realized == p.cash_flow


def test_catalog_groups_markets_by_event() -> None:
    from polybot.catalog import Catalog
    from polybot.events import MarketInfo

    c = Catalog()
    a = MarketInfo(market="m2", asset_ids=("a1", "a2"), event_id="e1", neg_risk=True)
    b = MarketInfo(market="m1", asset_ids=("b1", "b2"), event_id="e1", neg_risk=True)
    c.add(a)
    c.add(b)
    c.add(MarketInfo(market="m3", asset_ids=("c1", "c2")))
    assert [m.market for m in c.event_markets("e1")] == ["m1", "m2"]
    assert c.events() == ["e1"]
    c.add(MarketInfo(market="m2", asset_ids=("a1", "a2"), event_id="e2"))  # moved to another event
    assert [m.market for m in c.event_markets("e1")] == ["m1"]
    assert c.event_markets("nope") == []
    c.restore(c.to_state(), {})
    assert [m.market for m in c.event_markets("e2")] == ["m2"]
