"""Review regressions for the CLOB live executor and the kernel's executor-report handling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("py_clob_client_v2")

from live_rig import live_rig  # noqa: E402

pytestmark = pytest.mark.anyio
TEN = 10_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_failed_fill_of_a_resting_order_reopens_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resting order filled in full by a trade that then FAILS is live again at the venue: the
    kernel must not keep it 'filled' (its next fill would be refused and lost)."""
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 20_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="resting")
        rig.sim.exchange.fail_next_trade()
        rig.sim.exchange.cross(yes, "SELL", "10", "0.01")
        await rig.until(lambda: any(k.startswith(a + "/") and r.status == "FAILED" for k, r in rig.kernel.fills.items()),
                        what="reversal")  # fmt: skip
        await anyio.sleep(0.2)
        assert rig.kernel.portfolio.size(yes) == 0 == rig.venue_position(yes)
        rig.sim.exchange.cross(yes, "SELL", "10", "0.01")  # the order is live again at the venue
        await rig.until(lambda: rig.venue_position(yes) == TEN, what="venue fill")
        await anyio.sleep(0.3)
        assert rig.kernel.stats.illegal_transitions == 0
        assert rig.kernel.portfolio.size(yes) == TEN
        assert rig.order(a).state == "filled" and rig.order(a).filled == TEN


async def test_a_user_channel_transport_error_reconnects_instead_of_killing_the_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A PING written to a socket that is closing raises (aiohttp: ClientConnectionResetError)
    inside the user channel's task group, which anyio re-raises as an ExceptionGroup: it must be a
    reconnect like any other transport error, not the end of the executor (and the daemon)."""
    import aiohttp

    from adapters.polymarket.live import ClobExecutor

    calls = {"n": 0}

    async def pinger(self: Any, ws: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the first reconnect's socket: the write fails
            await anyio.sleep(0.1)
            raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
        await anyio.sleep(3600)

    monkeypatch.setattr(ClobExecutor, "_pinger", pinger)
    async with live_rig(tmp_path, monkeypatch) as rig:
        rig.sim.exchange.drop_user()
        await rig.until(lambda: rig.executor.user_connects >= 3, what="reconnected after the failed write")
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 20_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="still trading")
        rig.sim.exchange.cross(yes, "SELL", "4", "0.01")
        await rig.until(lambda: rig.order(a).filled == 4_000_000, what="fills still arrive on the user channel")


async def test_a_malformed_user_frame_does_not_kill_the_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 20_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="resting")
        ex = rig.sim.exchange
        ex._send(rig.executor.api.api_key, rig.market["condition_id"],
                 {"event_type": "trade", "id": "t-bad", "status": "MATCHED", "taker_order_id": "0x1",
                  "maker_orders": ["not an object", {"order_id": rig.order(a).venue_order_id}]})  # fmt: skip
        await anyio.sleep(0.2)
        ex.cross(yes, "SELL", "4", "0.01")
        await rig.until(lambda: rig.order(a).filled == 4_000_000, what="the next fill")
        assert rig.kernel.portfolio.size(yes) == 4_000_000 == rig.venue_position(yes)


async def test_an_adopted_order_filled_in_part_is_not_counted_filled_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """An unknown order adopted with ``filled = size_matched``: its earlier trades (found by
    the same reconciliation's trade sync) must not add to ``filled`` again, or the kernel closes an
    order that still rests at the venue (and refuses, so loses, its next fill)."""
    from test_live_executor import _post_stray

    async with live_rig(tmp_path, monkeypatch, executor={"unknown_orders": "adopt"}) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        stray = await _post_stray(rig, yes, bid - 30_000)
        rig.sim.exchange.cross(yes, "SELL", "6", "0.01")  # 6 of its 10 filled before we know it
        await anyio.sleep(0.3)
        n = rig.executor.reconciles
        rig.sim.exchange.drop_user()
        await rig.until(lambda: rig.executor.reconciles > n, what="reconciliation")
        await rig.until(lambda: any(o.venue_order_id == stray for o in rig.kernel.orders.all()), what="adopted")
        await anyio.sleep(0.5)
        o = next(o for o in rig.kernel.orders.all() if o.venue_order_id == stray)
        assert o.filled == 6_000_000 and o.is_open, (o.state, o.filled)
        assert rig.kernel.portfolio.size(yes) == 6_000_000 == rig.venue_position(yes)
        rig.sim.exchange.cross(yes, "SELL", "4", "0.01")  # the rest
        await rig.until(lambda: rig.venue_position(yes) == TEN, what="venue fill")
        await anyio.sleep(0.3)
        assert rig.kernel.stats.illegal_transitions == 0
        assert o.filled == TEN and o.state == "filled"
        assert rig.kernel.portfolio.size(yes) == TEN


# ---------------------------------------------------------------------- unit level (no network)

YES_T, NO_T, MKT = "111", "222", "0x" + "ab" * 32


def _unit(fees: Any = None) -> tuple[Any, Any]:
    from adapters.polymarket.live import ClobExecutor
    from polybot.events import MarketInfo
    from polybot.kernel import Kernel

    ex = ClobExecutor()
    k = Kernel(executor=ex)
    k.catalog.add(MarketInfo(ts=0, market=MKT, asset_ids=(YES_T, NO_T), outcomes=("Yes", "No"), fees=fees))
    return k, ex


def _order(k: Any, ex: Any, cid: str, asset: str, side: str, price: int, h: str) -> Any:
    from polybot.events import OrderIntent

    o = k.orders.create(OrderIntent(client_id=cid, strategy="s", asset_id=asset, market=MKT, side=side,  # type: ignore[arg-type]
                                    price=price, size=TEN), 0)  # fmt: skip
    o.state = "accepted"
    o.venue_order_id = h
    ex._by_hash[h] = cid
    return o


def _mint_trade(ours: str, status: str = "MATCHED") -> dict[str, Any]:
    """A taker BUY YES at 0.518 matched against our resting BUY NO at 0.482 (MINT); the maker
    entry has no ``side`` (as in the recorded user-channel frames)."""
    return {"event_type": "trade", "id": "tr-1", "status": status, "asset_id": YES_T, "market": MKT,
            "side": "BUY", "price": "0.518", "size": "30", "taker_order_id": "0x" + "99" * 32,
            "trader_side": "MAKER",
            "maker_orders": [{"asset_id": NO_T, "matched_amount": "10", "order_id": ours, "outcome": "No",
                              "price": "0.482", "fee_rate_bps": "0"},
                             {"asset_id": YES_T, "matched_amount": "20", "order_id": "0x" + "77" * 32,
                              "outcome": "Yes", "price": "0.518", "fee_rate_bps": "0"}]}  # fmt: skip


def test_a_maker_buy_no_matched_by_mint_is_a_buy_of_no_at_its_own_price() -> None:
    from polybot.events import FeeSchedule, OrderPartiallyFilled

    k, ex = _unit(FeeSchedule(rate_ppm=70_000, taker_only=True, rebate_ppm=200_000))
    h = "0x" + "11" * 32
    _order(k, ex, "c1", NO_T, "BUY", 482_000, h)
    evs = [e for e in ex._translate_trade(_mint_trade(h)) if isinstance(e, OrderPartiallyFilled)]
    assert len(evs) == 1
    f = evs[0]
    assert (f.client_id, f.asset_id, f.side, f.price, f.size, f.liquidity, f.fee) == \
        ("c1", NO_T, "BUY", 482_000, TEN, "maker", 0)  # fmt: skip
    assert f.rebate > 0


def test_maker_fills_pay_the_fee_when_the_schedule_is_not_taker_only() -> None:
    """The fee rule the paper executor and the risk chain use (``fill_fee``): a schedule that is
    not ``taker_only`` charges makers too (and pays no rebate)."""
    from polybot.events import FeeSchedule, OrderPartiallyFilled
    from polybot.execution.rules import fill_fee

    sched = FeeSchedule(rate_ppm=70_000, taker_only=False, rebate_ppm=200_000)
    k, ex = _unit(sched)
    h = "0x" + "11" * 32
    _order(k, ex, "c1", NO_T, "BUY", 482_000, h)
    f = next(e for e in ex._translate_trade(_mint_trade(h)) if isinstance(e, OrderPartiallyFilled))
    assert (f.fee, f.rebate) == fill_fee("maker", TEN, 482_000, sched) and f.fee > 0


async def test_position_reconciliation_reads_data_api_floats() -> None:
    """The Data API's numbers are JSON floats; an average price such as 0.4713043478260869 has
    more than six decimals and must not be read as 0 (the correction would be booked at price 0)."""
    from types import SimpleNamespace

    from polybot.events import PositionCorrected

    k, ex = _unit()
    ex.creds = SimpleNamespace(funder="0xf00")
    rows = [{"asset": YES_T, "conditionId": MKT, "size": 12.5, "avgPrice": 0.4713043478260869}]
    out: list[Any] = []

    async def pages(*a: Any, **kw: Any) -> list[dict[str, Any]]:
        return rows

    async def report(evs: Any) -> None:
        out.extend(evs)

    ex._pages, ex._report = pages, report
    assert await ex._reconcile_positions() == 1
    pc = out[0]
    assert isinstance(pc, PositionCorrected) and pc.new_size == 12_500_000
    assert pc.price == 471_304


async def test_a_slow_reconciliation_after_a_heartbeat_outage_does_not_stop_the_heartbeats(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The reconciliation that follows restored heartbeats (orders, trades, Data API positions)
    can take longer than the venue's dead-man timeout; the heartbeats must go on meanwhile, or the
    venue cancels every resting order because we were busy checking them."""
    from adapters.polymarket.live import ClobExecutor

    orig = ClobExecutor._reconcile_positions

    async def slow_positions(self: Any) -> int:
        await anyio.sleep(2.5)  # a slow Data API
        return await orig(self)

    monkeypatch.setattr(ClobExecutor, "_reconcile_positions", slow_positions)
    async with live_rig(tmp_path, monkeypatch, sim_cfg={"heartbeat_timeout_s": 1.0},
                        executor={"heartbeat_s": 0.2}) as rig:  # fmt: skip
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 20_000, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="resting")
        await anyio.sleep(2.6)  # the start reconciliation is done
        n = rig.executor.reconciles
        rig.sim.exchange.error_next(503, 1)  # one heartbeat fails, the next one restores them
        await rig.until(lambda: rig.executor.reconciles > n, what="reconciliation after the restore")
        await anyio.sleep(2.0)
        hb = rig.sim.exchange.control("heartbeats", {})["heartbeats"]
        assert all(v["kills"] == 0 for v in hb.values()), hb
        assert rig.order(a).state == "accepted"


async def test_a_halt_right_after_a_submit_leaves_nothing_resting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An order queued just before the halt and the halt's venue-wide cancel-all reach the worker
    in one batch: the cancel-all must not go out before the order (which would then rest, live,
    after the halt)."""
    async with live_rig(tmp_path, monkeypatch) as rig:
        yes = rig.market["yes"]
        bid, _ = rig.top(yes)
        a = rig.submit(yes, "BUY", bid - 20_000, TEN)
        rig.kernel.halt("risk limit")  # same tick: no await between the submit and the halt
        await rig.until(lambda: rig.order(a).venue_order_id and rig.placed(), what="posted")
        await anyio.sleep(0.5)
        assert not [o for o in rig.venue_orders() if o["status"].upper() == "LIVE"]
        assert rig.order(a).state == "cancelled"


def test_after_a_restart_a_failed_trade_of_a_closed_order_is_still_reversed() -> None:
    """A snapshot keeps only open orders: after a restart the hash of an order that filled before
    it is unknown, but its fill is in the kernel's records. The trade's later status (MINED,
    CONFIRMED, or FAILED) still applies to that fill: a FAILED trade must be undone, not ignored
    (nor its fill left 'unsettled', which would exclude the asset from position checks for good)."""
    from adapters.polymarket.live import ClobExecutor
    from polybot.events import ENCODER, FeeSchedule
    from polybot.kernel import Kernel

    k, ex = _unit(FeeSchedule(rate_ppm=70_000, taker_only=True))
    h = "0x" + "11" * 32
    _order(k, ex, "c1", NO_T, "BUY", 482_000, h)
    k.process(1, ex.source, ENCODER.encode(ex._translate_trade(_mint_trade(h))))
    assert k.portfolio.size(NO_T) == TEN and not k.orders.get("c1").is_open
    st = k.to_state()
    # the restart: a new kernel from the snapshot, a new executor
    ex2 = ClobExecutor()
    k2 = Kernel(executor=ex2)
    k2.restore(st)
    assert k2.portfolio.size(NO_T) == TEN and k2.orders.get("c1") is None
    ex2._learn_hashes()  # what the executor does on start
    evs = ex2._translate_trade(_mint_trade(h, "MINED"))
    k2.process(2, ex2.source, ENCODER.encode(evs))
    assert k2.fills["c1/tr-1"].status == "MINED"
    evs = ex2._translate_trade(_mint_trade(h, "FAILED"))
    k2.process(3, ex2.source, ENCODER.encode(evs))
    assert k2.fills["c1/tr-1"].reversed and k2.portfolio.size(NO_T) == 0
