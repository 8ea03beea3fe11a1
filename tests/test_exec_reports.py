"""The kernel's handling of what a live executor reports beyond the state machine: a fill
reported twice counts once, a FAILED trade is undone exactly, an order adopted from the venue,
a position corrected from the venue, settlement progress recorded. All arrive through the door
(source ``exec.<name>``), as a live executor's answers do."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.events import (
    ENCODER,
    ExecutorNotice,
    FillReversed,
    FillSettlement,
    OrderAccepted,
    OrderAdopted,
    OrderFilled,
    OrderIntent,
    OrderPartiallyFilled,
    PositionCorrected,
)
from polybot.execution import RecordedExecutor
from polybot.kernel import Kernel

A = "111"
SRC = "exec.recorded"


def kernel() -> Kernel:
    k = Kernel(executor=RecordedExecutor())
    k.portfolio.starting_cash = 1_000_000_000
    return k


def order(k: Kernel, side: str = "BUY", price: int = 400_000, size: int = 10_000_000) -> str:
    d = k.submit("s", OrderIntent(strategy="s", asset_id=A, side=side, price=price, size=size))
    assert d.action == "approve"
    cid = d.client_ids[0]
    k.process(k.clock.now() + 1, SRC, ENCODER.encode([OrderAccepted(ts=0, client_id=cid, strategy="s", asset_id=A,
                                                                    venue_order_id="0xh-" + cid)]))  # fmt: skip
    return cid


def fill(k: Kernel, cid: str, trade: str, size: int, price: int = 400_000, side: str = "BUY", fee: int = 0,
         cls: type = OrderPartiallyFilled) -> None:  # fmt: skip
    k.process(k.clock.now() + 1, SRC, ENCODER.encode([cls(ts=0, client_id=cid, strategy="s", asset_id=A, trade_id=trade,
                                                          side=side, price=price, size=size, liquidity="maker",
                                                          fee=fee)]))  # fmt: skip


def figures(k: Kernel) -> tuple:
    pf = k.portfolio
    p, sp = pf.positions.get(A), pf.by_strategy.get(("s", A))
    f = lambda x: None if x is None else (x.size, x.cost, x.realized, x.fees, x.bought, x.sold)  # noqa: E731
    return f(p), f(sp), pf.cash


def test_a_fill_reported_twice_counts_once_and_reaches_nobody_twice() -> None:
    k = kernel()
    seen: list = []
    k.bus.subscribe(OrderPartiallyFilled, seen.append)
    cid = order(k)
    fill(k, cid, "t1", 3_000_000)
    fill(k, cid, "t1", 3_000_000)  # the same trade again (REST after the user channel)
    assert k.portfolio.size(A) == 3_000_000 and k.orders.get(cid).filled == 3_000_000
    assert len(seen) == 1 and k.stats.duplicate_fills == 1 and k.stats.fills == 1
    fill(k, cid, "t2", 2_000_000)  # another trade: counts
    assert k.portfolio.size(A) == 5_000_000


def test_two_of_our_orders_in_one_trade_both_count() -> None:
    k = kernel()
    a, b = order(k), order(k)
    k.process(k.clock.now() + 1, SRC, ENCODER.encode([
        OrderFilled(ts=0, client_id=cid, strategy="s", asset_id=A, trade_id="T", side="BUY", price=400_000,
                    size=10_000_000, liquidity="maker") for cid in (a, b)]))  # fmt: skip
    assert k.portfolio.size(A) == 20_000_000 and k.stats.duplicate_fills == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 99), st.integers(1, 500), st.integers(0, 30_000)),
                min_size=1, max_size=8), st.data())  # fmt: skip
def test_a_failed_trade_is_undone_exactly(fills: list, data: st.DataObject) -> None:
    """Apply random fills, reverse a random one, compare with a session that never had it."""
    victim = data.draw(st.integers(0, len(fills) - 1))

    def run(skip: int | None, reverse: int | None) -> tuple:
        k = kernel()
        cid = order(k, size=10_000_000_000)
        sold_cid = order(k, side="SELL", size=10_000_000_000)
        for i, (side, p, sz, fee) in enumerate(fills):
            if i == skip:
                continue
            fill(k, cid if side == "BUY" else sold_cid, f"t{i}", sz * 10_000, price=p * 10_000, side=side, fee=fee)
        if reverse is not None:
            side = fills[reverse][0]
            k.process(k.clock.now() + 1, SRC, ENCODER.encode([FillReversed(ts=0, client_id=cid if side == "BUY" else sold_cid,
                                                                           trade_id=f"t{reverse}", reason="FAILED")]))  # fmt: skip
        return figures(k)

    got = run(None, victim)
    want = run(victim, None)
    zero = (0,) * 6
    norm = lambda x: tuple(v if v is not None else zero for v in x[:2]) + (x[2],)  # noqa: E731
    got, want = norm(got), norm(want)
    if victim == len(fills) - 1:
        # the latest fill undone: exactly as if it never happened
        assert got == want
    # any fill undone: shares, fees, volumes and cash exactly as without it; the cost basis and
    # realized PnL of later sales were computed with it, so only their sum (the cash identity
    # realized - cost = cash flow + fees) is path-free
    for g, w in zip(got[:2], want[:2]):
        assert (g[0], g[3], g[4], g[5]) == (w[0], w[3], w[4], w[5])
        assert g[2] - g[1] == w[2] - w[1]
    assert got[2] == want[2]


def test_a_reversal_of_an_unknown_fill_is_dropped_and_a_second_reversal_is_too() -> None:
    k = kernel()
    cid = order(k)
    fill(k, cid, "t1", 3_000_000)
    rev = ENCODER.encode([FillReversed(ts=0, client_id=cid, trade_id="t1")])
    k.process(k.clock.now() + 1, SRC, rev)
    k.process(k.clock.now() + 1, SRC, rev)
    k.process(k.clock.now() + 1, SRC, ENCODER.encode([FillReversed(ts=0, client_id=cid, trade_id="nope")]))
    assert k.portfolio.size(A) == 0 and k.orders.get(cid).filled == 0 and k.orders.get(cid).is_open
    assert k.stats.drop_reasons["exec:reversal_of_unknown_fill"] == 2


def test_settlement_progress_is_recorded_and_moves_no_money() -> None:
    k = kernel()
    cid = order(k)
    fill(k, cid, "t1", 3_000_000)
    before = figures(k)
    for status in ("MINED", "RETRYING", "CONFIRMED"):
        k.process(k.clock.now() + 1, SRC, ENCODER.encode([FillSettlement(ts=0, client_id=cid, trade_id="t1", status=status)]))
    assert figures(k) == before and k.fills[f"{cid}/t1"].status == "CONFIRMED"


def test_adopted_orders_and_position_corrections() -> None:
    k = kernel()
    it = OrderIntent(strategy="adopted", asset_id=A, side="BUY", price=300_000, size=20_000_000)
    k.process(1, SRC, ENCODER.encode([OrderAdopted(ts=0, client_id="venue-0xabc", venue_order_id="0xabc", intent=it,
                                                   filled=5_000_000)]))  # fmt: skip
    o = k.orders.get("venue-0xabc")
    assert o is not None and o.is_open and o.remaining == 15_000_000 and o.venue_order_id == "0xabc"
    assert k.exposure.to_state()  # its worst case is reserved
    k.process(2, SRC, ENCODER.encode([PositionCorrected(ts=0, asset_id=A, old_size=0, new_size=7_000_000, price=450_000,
                                                        reason="venue")]))  # fmt: skip
    assert k.portfolio.size(A) == 7_000_000 and k.portfolio.size(A, "reconcile") == 7_000_000
    k.process(3, SRC, ENCODER.encode([PositionCorrected(ts=0, asset_id=A, old_size=7_000_000, new_size=7_000_000)]))
    assert k.portfolio.size(A) == 7_000_000
    k.process(4, SRC, ENCODER.encode([ExecutorNotice(ts=0, executor="clob", kind="reconciled", detail="ok")]))
    assert k.stats.dropped == 0


def test_fill_records_survive_a_snapshot() -> None:
    k = kernel()
    cid = order(k)
    fill(k, cid, "t1", 3_000_000)
    st_ = k.to_state()
    k2 = kernel()
    k2.restore(st_)
    fill(k2, cid, "t1", 3_000_000)  # a repeat after a restart is still a repeat
    assert k2.portfolio.size(A) == 3_000_000 and k2.stats.duplicate_fills == 1
