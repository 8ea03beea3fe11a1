"""Review regressions for the Polymarket US venue (executor, kernel netting, router, wire)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from adapters.polymarket_us import asset_ids
from pmus_rig import run_daemon, set_keys, sim_server, venue_post
from polybot.units import SCALE, from_units

TEN = 10_000_000
TICK = 10_000
S0, S1 = "us-sim-market-0", "us-sim-market-1"
L0, SH0 = asset_ids(S0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------- unknown outcomes


@pytest.mark.anyio
async def test_an_old_trade_is_never_taken_for_the_fill_of_an_order_never_placed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """An order whose POST outcome is unknown and that the venue never placed must not be booked
    as filled by a trade of the account that happened long BEFORE it was sent (the venue's trades
    name no order: only their time can rule them out)."""
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        _, ask = rig.top(S0)
        # a minute ago, another session of this account bought 1 YES at the offer (nothing rests)
        await venue_post(sim, {"marketSlug": S0, "intent": "ORDER_INTENT_BUY_LONG", "type": "ORDER_TYPE_LIMIT",
                               "price": {"value": from_units(ask), "currency": "USD"}, "quantity": 1,
                               "tif": "TIME_IN_FORCE_IMMEDIATE_OR_CANCEL"})  # fmt: skip
        from adapters.polymarket_us.sim import _iso

        for act in sim._activities:
            act["_ms"] -= 60_000
            act["trade"]["createTime"] = _iso(act["_ms"])
        await anyio.sleep(0.2)
        _, ask = rig.top(S0)
        sim.fault("reject_500")  # not placed, but a 500: the outcome is unknown
        a = rig.submit(L0, "BUY", ask + 2 * TICK, 2 * SCALE, tif="FAK")
        await rig.until(lambda: not rig.order(a).is_open, timeout=10, what="declared")
        assert rig.order(a).state == "rejected" and rig.order(a).filled == 0
        assert rig.kernel.portfolio.size(L0) == 0


# ---------------------------------------------------------------------- positions vs resolution


@pytest.mark.anyio
async def test_a_reconciliation_between_the_close_and_the_settlement_books_no_loss(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The venue settles a market and its position leaves the account's list before the
    settlement reaches the kernel (the settlement is polled): a reconciliation in between must
    not 'correct' the held shares away at price 0 (the MarketResolved that follows would find
    nothing left to pay: the payout is lost from cash and PnL)."""
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        _, ask = rig.top(S0)
        a = rig.submit(L0, "BUY", ask, 2 * SCALE, tif="FAK")
        await rig.until(lambda: rig.order(a).state == "filled", what="bought")
        await rig.until(lambda: sim.position(S0) == 2 * SCALE, what="venue position")
        m = sim._by_slug[S0]
        sim.resolve(S0, long_wins=True)
        m.settlement = None  # the settlement is not published yet (the feed polls for it)
        await rig.until(lambda: rig.kernel.catalog.market(market_of(S0)).closed, what="closed status")
        n = rig.executor.reconciles
        sim.drop_connections()  # a reconnect reconciles
        await rig.until(lambda: rig.executor.reconciles > n, timeout=10, what="reconciled")
        await anyio.sleep(0.3)
        assert rig.kernel.portfolio.size(L0) == 2 * SCALE  # still held: the settlement pays it
        assert rig.kernel.portfolio.realized_pnl() == 0


def market_of(slug: str) -> str:
    from adapters.polymarket_us import market_id

    return market_id(slug)


# ---------------------------------------------------------------------- netting: paper vs portfolio


@pytest.mark.parametrize("then", ["cancel", "fill"])
def test_shares_a_resting_sell_offers_are_not_netted_away_and_never_go_short(then: str) -> None:
    """Holding YES with a resting SELL of it, a NO buy makes a pair. Netting the offered YES
    away would leave that SELL uncovered: its fill would book a NEGATIVE YES position (which
    flatten skips, and no strategy expects). The offered shares stay until the SELL is done;
    the pair nets once it is cancelled. The paper balance does the same as the portfolio."""
    from test_venues import US_M, US_N, US_Y, books, feed, intent, paper_kernel

    k, ex = paper_kernel()
    pf = k.portfolio

    def same() -> None:
        assert ex.shares.get(US_Y, 0) == pf.size(US_Y) and ex.shares.get(US_N, 0) == pf.size(US_N)
        assert ex.cash + sum(ex.reserved.values()) == pf.cash

    assert k.submit("s", intent(US_Y, US_M, price=450_000)).approved  # YES 10 at 0.45
    d = k.submit("s", intent(US_Y, US_M, side="SELL", price=600_000))  # rests (bid 0.44)
    sell = d.client_ids[0]
    assert d.approved and k.orders.get(sell).is_open
    assert k.submit("s", intent(US_N, US_M, price=560_000)).approved  # NO 10 at 0.56: a pair
    assert pf.size(US_Y, "s") == pf.size(US_N, "s") == 10 * U_
    same()
    if then == "cancel":
        k.cancel("s", sell)
        assert not k.orders.get(sell).is_open
        assert pf.size(US_Y, "s") == pf.size(US_N, "s") == 0  # nets now
    else:
        feed(k, *books(US_M, US_Y, US_N, 600_000, 610_000))  # a bid at 0.60 fills the SELL
        assert k.orders.get(sell).state == "filled"
        assert pf.size(US_Y, "s") == 0 and pf.size(US_N, "s") == 10 * U_
    assert min(pf.size(US_Y, "s"), pf.size(US_N, "s")) >= 0
    same()


U_ = 1_000_000


# ---------------------------------------------------------------------- market status


@pytest.mark.anyio
async def test_a_market_the_venue_stops_has_our_resting_orders_cancelled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The venue halts (or closes) a market: the markets stream says so (MarketStatus; the
    catalog is read once at start, so no MarketInfo follows). What rests there is cancelled, as
    for a MarketInfo that stops accepting orders, not left to fill at stale prices on reopening."""
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        bid, _ = rig.top(S0)
        a = rig.submit(L0, "BUY", bid - 3 * TICK, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="resting")
        sim.set_state(S0, "MARKET_STATE_HALTED")
        await rig.until(lambda: not rig.kernel.catalog.market(market_of(S0)).accepting_orders, what="halted status")
        await rig.until(lambda: rig.order(a).state == "cancelled", timeout=5, what="cancelled at the venue")
        assert rig.venue(a)["state"] == "ORDER_STATE_CANCELED"
