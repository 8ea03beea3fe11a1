"""polybot.portfolio: exact average-cost accounting, fees, cash and resolution."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.events import MarketResolved, OrderFilled
from polybot.portfolio import Portfolio, Position
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
