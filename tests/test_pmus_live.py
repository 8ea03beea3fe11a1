"""The Polymarket US executor: the pure mapping (intents, YES-side prices, executions) and, on
loopback, the daemon (polymarket-us feed, kernel, journal, UsExecutor) against the simulator,
which verifies every Ed25519 signature. Each scenario ends with no order placed twice and the
kernel's long - short equal to the venue's net position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from adapters.polymarket_us import asset_ids, market_id
from adapters.polymarket_us.auth import generate_key
from adapters.polymarket_us.live import (
    BUY_LONG,
    BUY_SHORT,
    SELL_LONG,
    SELL_SHORT,
    AuthRefusedError,
    UnknownOrdersError,
    UsExecutor,
    decimal_units,
    intent_from_venue,
    order_body,
    parse_time_ms,
    price_fits,
    yes_price,
)
from pmus_rig import KEY_ID, SECRET, SLUGS, Rig, pmus_config, run_daemon, set_keys, sim_server, venue_post
from polybot.config import ConfigError, parse_config
from polybot.daemon import Daemon
from polybot.events import OrderIntent
from polybot.execution.orders import Order
from polybot.journal import JournalReader
from polybot.units import SCALE, from_units

pytestmark = pytest.mark.anyio
TEN = 10_000_000
TICK = 10_000
S0, S1 = SLUGS
L0, SH0 = asset_ids(S0)
L1, SH1 = asset_ids(S1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------- pure mapping


def _intent(asset: str, side: str, price: int, size: int = TEN, **kw: Any) -> OrderIntent:
    return OrderIntent(strategy="t", asset_id=asset, side=side, price=price, size=size, client_id="c1", **kw)  # type: ignore[arg-type]


def test_order_bodies_are_yes_side() -> None:
    cases = [(L0, "BUY", 420_000, BUY_LONG, "0.42"), (L0, "SELL", 420_000, SELL_LONG, "0.42"),
             (SH0, "BUY", 420_000, BUY_SHORT, "0.58"), (SH0, "SELL", 420_000, SELL_SHORT, "0.58")]  # fmt: skip
    for asset, side, px, intent, yes in cases:
        b = order_body(_intent(asset, side, px))
        assert b["marketSlug"] == S0 and b["intent"] == intent and b["price"] == {"value": yes, "currency": "USD"}
        assert b["quantity"] == 10 and b["type"] == "ORDER_TYPE_LIMIT" and b["tif"] == "TIME_IN_FORCE_GOOD_TILL_CANCEL"
        # the venue's order, read back, is the same engine order
        back = intent_from_venue({**b, "price": b["price"], "quantity": 10})
        assert back is not None and (back.asset_id, back.side, back.price, back.size) == (asset, side, px, TEN)
    frac = order_body(_intent(L0, "BUY", 500_000, size=2_500_000, tif="FAK", post_only=False))
    assert msgspec.json.encode(frac).count(b'"quantity":2.5') == 1 and frac["tif"] == "TIME_IN_FORCE_IMMEDIATE_OR_CANCEL"
    assert order_body(_intent(L0, "BUY", 500_000, tif="FOK"))["tif"] == "TIME_IN_FORCE_FILL_OR_KILL"
    assert order_body(_intent(L0, "BUY", 500_000, post_only=True))["participateDontInitiate"] is True
    gtd = order_body(_intent(L0, "BUY", 500_000, tif="GTD", expire_ts=1_767_225_600 * 10**9))
    assert gtd["tif"] == "TIME_IN_FORCE_GOOD_TILL_DATE" and gtd["goodTillTime"] == "2026-01-01T00:00:00Z"
    over = order_body(_intent(L0, "BUY", 500_000, tif="GTD", expire_ts=1), {"GTD": "TIME_IN_FORCE_GOOD_TILL_CANCEL"})
    assert over["tif"] == "TIME_IN_FORCE_GOOD_TILL_CANCEL" and "goodTillTime" not in over
    for bad, why in [(_intent("0xabc", "BUY", 500_000), "not a Polymarket US asset"),
                     (_intent(L0, "BUY", SCALE), r"outside \(0, 1\)")]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            order_body(bad)


def test_prices_and_units() -> None:
    assert yes_price(300_000, True) == 300_000 and yes_price(300_000, False) == 700_000
    assert yes_price(yes_price(123_456, False), False) == 123_456  # its own inverse
    assert decimal_units({"value": "0.55", "currency": "USD"}) == 550_000
    assert decimal_units("12") == 12 * SCALE and decimal_units(3) == 3 * SCALE and decimal_units(2.5) == 2_500_000
    assert decimal_units(None) == 0 and decimal_units("junk") == 0 and decimal_units("-4") == -4 * SCALE
    assert parse_time_ms("2026-01-01T00:00:00.123Z") == 1_767_225_600_123
    assert parse_time_ms("2026-01-01T00:00:00.123456789Z") == 1_767_225_600_123
    assert parse_time_ms("not a time") is None
    # a trade can fill an order only at a price its limit allows (YES side)
    assert price_fits(BUY_LONG, 500_000, 490_000) and not price_fits(BUY_LONG, 500_000, 510_000)
    assert price_fits(SELL_SHORT, 500_000, 500_000) and not price_fits(SELL_SHORT, 500_000, 510_000)
    assert price_fits(SELL_LONG, 500_000, 510_000) and not price_fits(SELL_LONG, 500_000, 490_000)
    assert price_fits(BUY_SHORT, 500_000, 510_000) and not price_fits(BUY_SHORT, 500_000, 490_000)


def test_executions_translate_to_fills_on_the_assets_side() -> None:
    ex = UsExecutor()
    short = Order(client_id="c1", intent=_intent(SH0, "BUY", 400_000, market=market_id(S0)), state="accepted")
    venue = {"id": "v1", "marketSlug": S0, "intent": BUY_SHORT, "cumQuantity": 4, "leavesQuantity": 6}
    fill = {"type": "EXECUTION_TYPE_PARTIAL_FILL", "order": venue, "tradeId": "t1", "lastShares": "4",
            "lastPx": {"value": "0.61", "currency": "USD"}, "aggressor": False,
            "commissionNotionalCollected": {"value": "0.01", "currency": "USD"}}  # fmt: skip
    (ev,) = ex._exec_events(short, fill, "v1")
    assert type(ev).__name__ == "OrderPartiallyFilled"
    assert (ev.price, ev.size, ev.fee, ev.liquidity, ev.side, ev.leaves) == (390_000, 4 * SCALE, 10_000, "maker", "BUY", 6 * SCALE)
    assert ev.trade_id == "t1" and ev.venue_order_id == "v1" and ev.market == market_id(S0)
    assert ex._exec_events(short, fill, "v1") == []  # the same trade again: nothing
    last = {**fill, "type": "EXECUTION_TYPE_FILL", "tradeId": "t2", "lastShares": "6", "aggressor": True,
            "order": {**venue, "cumQuantity": 10, "leavesQuantity": 0, "state": "ORDER_STATE_FILLED"}}  # fmt: skip
    (ev2,) = ex._exec_events(short, last, "v1")
    assert type(ev2).__name__ == "OrderFilled" and ev2.liquidity == "taker" and ev2.size == 6 * SCALE
    long = Order(client_id="c2", intent=_intent(L0, "SELL", 600_000), state="accepted")
    kinds = {t: [type(e).__name__ for e in ex._exec_events(long, {"type": f"EXECUTION_TYPE_{t}", "order": {"id": "v2"},
                                                                   "text": "x", "orderRejectReason": "r"})]
             for t in ("NEW", "CANCELED", "REJECTED", "EXPIRED", "REPLACE")}  # fmt: skip
    assert kinds == {"NEW": ["OrderAccepted"], "CANCELED": ["OrderCancelled"], "REJECTED": ["OrderRejected"],
                     "EXPIRED": ["OrderExpired"], "REPLACE": []}  # fmt: skip
    # an IOC's last partial fill carries its end: the fill, then the expiry
    ioc = {**fill, "tradeId": "t3", "order": {**venue, "id": "v2", "state": "ORDER_STATE_EXPIRED"}}
    assert [type(e).__name__ for e in ex._exec_events(long, ioc, "v2")] == ["OrderPartiallyFilled", "OrderExpired"]


def test_a_trade_booked_to_one_order_is_never_booked_again_and_a_fill_without_price_is_not_booked() -> None:
    ex = UsExecutor()
    a = Order(client_id="a", intent=_intent(L0, "BUY", 400_000), state="accepted")
    b = Order(client_id="b", intent=_intent(L0, "BUY", 400_000), state="accepted")
    fill = {"type": "EXECUTION_TYPE_PARTIAL_FILL", "order": {"id": "va"}, "tradeId": "t1", "lastShares": "2",
            "lastPx": {"value": "0.4", "currency": "USD"}}  # fmt: skip
    assert len(ex._exec_events(a, fill, "va")) == 1
    # the same trade reported for another order of ours (a reconciliation had guessed): not twice
    assert ex._exec_events(b, {**fill, "order": {"id": "vb"}}, "vb") == []
    # a negative commission is the maker rebate the venue pays
    reb = {**fill, "tradeId": "t9", "commissionNotionalCollected": {"value": "-0.70", "currency": "USD"}}
    (ev,) = ex._exec_events(b, {**reb, "order": {"id": "vb"}}, "vb")
    assert (ev.fee, ev.rebate) == (0, 700_000)
    for px in (None, {"value": "0"}, {"value": "1"}, {"value": "x"}):
        bad = {**fill, "tradeId": f"t-{px}", "lastPx": px}
        assert ex._exec_events(b, bad, "vb") == []


def test_missed_fills_are_attributed_to_trades_else_booked_from_the_count() -> None:
    ex = UsExecutor()
    t0 = 1_767_225_600_000
    o = Order(client_id="c1", intent=_intent(SH0, "BUY", 400_000), state="accepted", created_ts=t0 * 1_000_000)
    iso = "2026-01-01T00:00:0{}.000Z".format
    trades = [  # YES side; our BUY_SHORT is a YES offer at 0.60: it fills at 0.60 or above
        {"id": "x1", "marketSlug": S0, "price": {"value": "0.55"}, "qty": "2", "createTime": iso(1)},  # below: not ours
        {"id": "x2", "marketSlug": S1, "price": {"value": "0.65"}, "qty": "2", "createTime": iso(2)},  # other market
        {"id": "x3", "marketSlug": S0, "price": {"value": "0.62"}, "qty": "3", "createTime": iso(3)},
        {"id": "x4", "marketSlug": S0, "price": {"value": "0.60"}, "qty": "9", "createTime": iso(4)},  # too many
    ]
    v = {"id": "v1", "cumQuantity": 5, "avgPx": {"value": "0.608"}, "state": "ORDER_STATE_PARTIALLY_FILLED"}
    evs = ex._missed_fills([(o, "v1", v)], trades)
    assert [(e.trade_id, e.price, e.size) for e in evs] == [("x3", 380_000, 3 * SCALE), ("v1/cum/5", 392_000, 2 * SCALE)]
    assert ex._missed_fills([(o, "v1", v)], trades) == []  # counted: nothing more
    # a stream execution of the trade the count already booked adds only what the count lacks
    late = {"type": "EXECUTION_TYPE_FILL", "tradeId": "x9", "lastShares": "2", "lastPx": {"value": "0.6"},
            "order": {"id": "v1", "cumQuantity": 5}}  # fmt: skip
    assert ex._exec_events(o, late, "v1") == []


def test_an_unknown_order_is_matched_by_its_parameters_once() -> None:
    import time

    from adapters.polymarket_us.live import _Pending

    ex = UsExecutor()
    key = (S0, BUY_LONG, 450_000, TEN)
    now_ms = int(time.time() * 1000)
    ex._unknown = {"c1": _Pending("c1", key, now_ms - 5_000, 1e18), "c2": _Pending("c2", key, now_ms - 1_000, 1e18)}
    venue = {"marketSlug": S0, "intent": BUY_LONG, "price": {"value": "0.45"}, "quantity": 10,
             "createTime": "2099-01-01T00:00:00Z"}  # fmt: skip
    assert ex._match("v1", venue) == "c1"  # the earliest send first
    assert ex._match("v1", {**venue, "quantity": 11}) is None
    assert ex._match("v1", {**venue, "createTime": "2001-01-01T00:00:00Z"}) is None  # before the send
    ex._posting["c3"] = key  # an identical order's POST still in flight: wait for its answer
    assert ex._match("v1", venue) is None
    del ex._posting["c3"]
    ex._by_vid["v1"] = "c9"  # already one of ours
    assert ex._match("v1", venue) is None


def test_params_and_secrets_are_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown"):
        UsExecutor(api_url="x", bogus=1)
    with pytest.raises(ValueError, match="tif"):
        UsExecutor(tif={"GTD": "TIME_IN_FORCE_SOMETIMES"})
    cfg = parse_config({"engine": {"data_dir": str(tmp_path)}, "executor": {"kind": "polymarket-us"}}, "t.toml")
    for k in ("KEY_ID", "SECRET_KEY"):
        monkeypatch.delenv(f"POLYBOT_PMUS_{k}", raising=False)
    with pytest.raises(ConfigError, match="pmus_key_id is missing"):
        UsExecutor().configure(cfg)
    monkeypatch.setenv("POLYBOT_PMUS_KEY_ID", KEY_ID)
    with pytest.raises(ConfigError, match="pmus_secret_key is missing"):
        UsExecutor().configure(cfg)
    monkeypatch.setenv("POLYBOT_PMUS_SECRET_KEY", "bm90IGEga2V5")  # base64, 9 bytes
    with pytest.raises(ConfigError, match="pmus_secret_key: not a valid Ed25519 key") as ei:
        UsExecutor().configure(cfg)
    assert "bm90IGEga2V5" not in str(ei.value)
    monkeypatch.setenv("POLYBOT_PMUS_SECRET_KEY", SECRET)
    ex = UsExecutor()
    ex.configure(cfg)
    assert KEY_ID not in repr(ex) and SECRET not in repr(ex) and ex.account_id.startswith("pmus-key-")


# ---------------------------------------------------------------------- loopback helpers


def _inputs(rig: Rig, source: str = "exec.pmus") -> list[dict[str, Any]]:
    k = rig.kernel
    if k.journal is not None and not k.journal._f.closed:
        k.journal.flush()
    out: list[dict[str, Any]] = []
    for _kind, _ts, src, p in JournalReader(rig.daemon.journal_path):
        if src == source:
            v = msgspec.json.decode(p) if isinstance(p, (bytes, str)) else p
            out.extend(v if isinstance(v, list) else [v])
    return out


def _same_positions(rig: Rig) -> None:
    for slug in SLUGS:
        assert rig.net(slug) == rig.sim.position(slug), slug


def _clean(rig: Rig) -> None:
    assert rig.kernel.stats.illegal_transitions == 0
    ours = {o.venue_order_id for o in rig.kernel.orders.all() if o.venue_order_id}
    assert set(rig.sim.orders) <= ours, "an order at the venue the kernel does not know"


# ---------------------------------------------------------------------- loopback: trading


async def test_buy_long_buy_short_and_sells_fill_on_the_right_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        bid, ask = rig.top(S0)
        ask_qty = sim.book(S0)[1][0][1]
        # BUY long FAK at the YES offer, for more than the level holds: the rest expires
        a = rig.submit(L0, "BUY", ask, ask_qty + 2 * SCALE, tif="FAK")
        await rig.until(lambda: rig.order(a).state == "expired", what="FAK filled in part, rest expired")
        assert rig.order(a).filled == ask_qty and rig.order(a).cost == ask * ask_qty // SCALE
        v = rig.venue(a)
        assert v["intent"] == BUY_LONG and v["price"]["value"] == from_units(ask, 2) and v["state"] == "ORDER_STATE_EXPIRED"
        # BUY short at p = 1 - YES bid: BUY_SHORT at the YES bid; booked on the short asset at 1 - lastPx
        b = rig.submit(SH0, "BUY", SCALE - bid, 2 * SCALE, tif="FAK")
        await rig.until(lambda: rig.order(b).state == "filled", what="short buy filled")
        vb = rig.venue(b)
        assert vb["intent"] == BUY_SHORT and vb["price"]["value"] == from_units(bid, 2)
        assert rig.order(b).cost == (SCALE - bid) * 2  # 2 shares at 1 - bid
        # the pair nets at once (one net position per market, as at the venue)
        assert rig.kernel.portfolio.size(L0) == ask_qty - 2 * SCALE and rig.kernel.portfolio.size(SH0) == 0
        await rig.until(lambda: rig.net(S0) == sim.position(S0), what="net")
        # SELL long at the YES bid
        bid, ask = rig.top(S0)
        c = rig.submit(L0, "SELL", bid, SCALE, tif="FAK")
        await rig.until(lambda: rig.order(c).state == "filled", what="long sold")
        assert rig.venue(c)["intent"] == SELL_LONG and rig.order(c).cost == bid
        # short the market, then SELL short: SELL_SHORT at the YES price 1 - p
        left = rig.kernel.portfolio.size(L0)
        d = rig.submit(SH0, "BUY", SCALE - bid, left + 3 * SCALE, tif="FAK")
        await rig.until(lambda: not rig.order(d).is_open, what="short bought")
        await rig.until(lambda: rig.net(S0) == sim.position(S0) < 0, what="short")
        bid, ask = rig.top(S0)
        e = rig.submit(SH0, "SELL", SCALE - ask, SCALE, tif="FAK")
        await rig.until(lambda: rig.order(e).state == "filled", what="short sold")
        ve = rig.venue(e)
        assert ve["intent"] == SELL_SHORT and ve["price"]["value"] == from_units(ask, 2) and rig.order(e).cost == SCALE - ask
        await rig.until(lambda: rig.net(S0) == sim.position(S0), what="net after all")
        assert rig.posts() == 5
        _same_positions(rig)
        _clean(rig)
        assert not any(s == 401 for _m, _p, s in sim.requests)


async def test_resting_orders_fill_as_makers_and_cancel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        bid, ask = rig.top(S0)
        px = bid - 2 * TICK
        a = rig.submit(L0, "BUY", px, TEN)
        short_px = SCALE - (ask + 2 * TICK)  # a NO bid: a YES offer two ticks above the ask
        b = rig.submit(SH0, "BUY", short_px, TEN)
        await rig.until(lambda: rig.order(a).state == rig.order(b).state == "accepted", what="resting")
        assert rig.venue(b)["intent"] == BUY_SHORT and rig.venue(b)["price"]["value"] == from_units(ask + 2 * TICK, 2)
        sim.trade(S0, from_units(px), "4", aggressor_buys=False)  # a seller hits our YES bid
        sim.trade(S0, from_units(ask + 2 * TICK), "3", aggressor_buys=True)  # a buyer lifts our YES offer
        await rig.until(lambda: rig.order(a).filled == 4 * SCALE and rig.order(b).filled == 3 * SCALE, what="maker fills")
        assert rig.order(a).state == rig.order(b).state == "partially_filled"
        fills = {k.split("/")[0]: r for k, r in rig.kernel.fills.items()}
        assert fills[a].price == px and fills[b].price == short_px  # the short fill at 1 - lastPx
        assert rig.kernel.cancel(None, a) and rig.kernel.cancel(None, b)
        await rig.until(lambda: rig.order(a).state == rig.order(b).state == "cancelled", what="cancelled")
        assert rig.venue(a)["state"] == rig.venue(b)["state"] == "ORDER_STATE_CANCELED"
        maker = [ev for ev in _inputs(rig) if ev["type"] == "order_partial"]
        assert {ev["liquidity"] for ev in maker} == {"maker"} and len(maker) == 2
        _same_positions(rig)
        _clean(rig)


@pytest.mark.parametrize("kind,marketable", [("timeout", True), ("error_500", False), ("drop", False), ("drop", True)])
async def test_an_unknown_outcome_is_looked_up_never_resent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
                                                            marketable: bool) -> None:  # fmt: skip
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        bid, ask = rig.top(S0)
        sim.fault(kind)
        if marketable:
            a = rig.submit(L0, "BUY", ask, SCALE, tif="FAK")
            await rig.until(lambda: rig.order(a).state == "filled", what="found, filled")
        else:
            a = rig.submit(L0, "BUY", bid - 3 * TICK, TEN)
            await rig.until(lambda: rig.order(a).state == "accepted" and rig.order(a).venue_order_id, what="found")
        assert any(ev["type"] == "order_unknown" and ev["client_id"] == a for ev in _inputs(rig))
        assert rig.posts() == 1 and len(sim.orders) == 1  # looked up, never re-sent
        assert rig.order(a).venue_order_id in sim.orders
        if not marketable:  # cancelled through its found id
            rig.kernel.cancel(None, a)
            await rig.until(lambda: rig.order(a).state == "cancelled", what="cancelled")
        await anyio.sleep(0.1)
        _same_positions(rig)
        _clean(rig)


async def test_an_order_the_venue_never_placed_is_rejected_and_a_cancel_meanwhile_closes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        bid, _ = rig.top(S0)
        sim.fault("reject_500", 2)
        a = rig.submit(L0, "BUY", bid - 3 * TICK, TEN)
        b = rig.submit(L0, "BUY", bid - 4 * TICK, TEN)
        await rig.until(lambda: rig.order(a).state == rig.order(b).state == "unknown", what="unknown")
        rig.kernel.cancel(None, b)  # cancelled while its outcome is unknown
        await rig.until(lambda: rig.order(a).state == rig.order(b).state == "rejected", what="declared not placed")
        reasons = {ev["client_id"]: ev["reason"] for ev in _inputs(rig) if ev["type"] == "order_rejected"}
        assert reasons[a] == reasons[b] == "not placed: the venue has no such order"
        assert rig.posts() == 2 and sim.orders == {}
        # a timeout whose order is placed, cancelled while unknown: found, then cancelled at the venue
        sim.fault("timeout")
        c = rig.submit(L0, "BUY", bid - 5 * TICK, TEN)
        await rig.until(lambda: rig.order(c).state == "unknown" or rig.order(c).venue_order_id, what="sent")
        rig.kernel.cancel(None, c)
        await rig.until(lambda: rig.order(c).state == "cancelled", what="found and cancelled")
        assert [o["state"] for o in sim.orders.values()] == ["ORDER_STATE_CANCELED"] and rig.posts() == 3
        _clean(rig)


async def test_a_post_only_order_that_would_cross_is_rejected_and_an_unreadable_frame_reconciles(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        _, ask = rig.top(S0)
        a = rig.submit(L0, "BUY", ask, TEN, post_only=True)
        await rig.until(lambda: rig.order(a).state == "rejected", what="post-only refused")
        rej = [ev for ev in _inputs(rig) if ev["type"] == "order_rejected"]  # (answer and stream: one state)
        assert rej and all("POST_ONLY" in ev["reason"] for ev in rej)
        assert not any(ev["type"] == "order_accepted" for ev in _inputs(rig))
        # a private frame that is not JSON: journaled as a string (the journal stays readable) and
        # the venue's state is read again (it may have carried an execution)
        n = rig.executor.reconciles
        sim.fault("ws_private_malformed")
        bid, _ = rig.top(S0)
        b = rig.submit(L0, "BUY", bid - TICK, TEN)
        await rig.until(lambda: rig.executor.reconciles > n and rig.order(b).state == "accepted", what="reconciled")
        assert any(isinstance(m, str) for m in _inputs(rig, "polymarket_us.private"))
        _clean(rig)


async def test_a_reconnect_reconciles_a_fill_missed_while_disconnected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        bid, _ = rig.top(S1)
        px = bid - 2 * TICK
        a = rig.submit(L1, "BUY", px, TEN)
        _, ask0 = rig.top(S0)
        b = rig.submit(SH0, "BUY", SCALE - (ask0 + TICK), 4 * SCALE)  # a YES offer one tick above the ask
        c = rig.submit(L0, "BUY", 100_000, TEN)
        await rig.until(lambda: all(rig.order(x).state == "accepted" for x in (a, b, c)), what="resting")
        n, conn = rig.executor.reconciles, rig.executor.private_connects
        sim.drop_connections()
        # while we are away: a in part, b in full (gone from the open orders), c cancelled by
        # someone else on this key, and an order this daemon never sent
        sim.trade(S1, from_units(px), "6", aggressor_buys=False)
        sim.trade(S0, from_units(ask0 + TICK), "4", aggressor_buys=True)
        await _rest(sim, "POST", f"/v1/order/{rig.order(c).venue_order_id}/cancel", {"marketSlug": S0})
        stray = await venue_post(sim, {"marketSlug": S1, "intent": BUY_LONG, "quantity": 2,
                                       "price": {"value": "0.05", "currency": "USD"}})  # fmt: skip
        await rig.until(lambda: rig.executor.private_connects > conn and rig.executor.reconciles > n, what="reconnect")
        await rig.until(lambda: rig.order(a).filled == 6 * SCALE, what="the missed fill")
        await rig.until(lambda: rig.order(b).state == "filled" and rig.order(c).state == "cancelled", what="final states")
        assert rig.kernel.fills[next(k for k in rig.kernel.fills if k.startswith(b + "/"))].price == SCALE - (ask0 + TICK)
        notes = [ev for ev in _inputs(rig) if ev["type"] == "executor_notice" and ev["kind"] == "unknown_orders"]
        assert notes and stray["id"] in notes[0]["detail"]  # refuse, after the start: left alone, reported
        assert sim.orders[stray["id"]]["state"] == "ORDER_STATE_NEW"
        (key,) = [k for k in rig.kernel.fills if k.startswith(a + "/")]
        tid = key.split("/", 1)[1]
        assert "/cum/" not in tid and rig.kernel.fills[key].price == px  # attributed to the venue's trade
        assert not any("/cum/" in k for k in rig.kernel.fills)
        assert rig.order(a).state == "partially_filled"
        await anyio.sleep(0.2)
        assert not any(ev["type"] == "position_corrected" for ev in _inputs(rig))
        _same_positions(rig)
        # the rest fills on the stream as usual
        sim.trade(S1, from_units(px), "4", aggressor_buys=False)
        await rig.until(lambda: rig.order(a).state == "filled", what="filled")
        _same_positions(rig)
        assert rig.kernel.stats.illegal_transitions == 0


async def _rest(sim: Any, method: str, path: str, body: Any = None) -> Any:
    """A signed request with our key from outside the daemon (another process on this key)."""
    import aiohttp

    from adapters.polymarket_us.auth import sign_headers

    async with aiohttp.ClientSession() as http:
        h = {**sign_headers(KEY_ID, SECRET, method, path), "Content-Type": "application/json"}
        async with http.request(method, sim.url + path, data=msgspec.json.encode(body) if body is not None else None,
                                headers=h) as r:  # fmt: skip
            assert r.status == 200, await r.text()
            return await r.json()


async def test_without_the_private_stream_rest_settles_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ws_url = ""``: an unknown marketable order that filled at once is found by its trades
    at the end of the grace; a resting one among the open orders; a cancel is confirmed by
    reading the order."""
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d", executor={"ws_url": ""}) as rig:
        bid, ask = rig.top(S0)
        sim.fault("timeout")
        a = rig.submit(SH0, "BUY", SCALE - bid, SCALE, tif="FAK")  # a NO buy: BUY_SHORT at the YES bid
        await rig.until(lambda: rig.order(a).state == "filled", what="found by its trade")
        assert rig.kernel.portfolio.size(SH0) == SCALE and rig.order(a).cost == SCALE - bid
        sim.fault("error_500")
        b = rig.submit(L0, "BUY", bid - 3 * TICK, TEN)
        await rig.until(lambda: rig.order(b).state == "accepted", what="found open")
        rig.kernel.cancel(None, b)
        await rig.until(lambda: rig.order(b).state == "cancelled", what="cancel confirmed by REST")
        assert rig.posts() == 2 and len(sim.orders) == 2 and rig.executor.private_connects == 0
        _same_positions(rig)
        assert rig.kernel.stats.illegal_transitions == 0
        # (found by its trade alone, its venue id is unknowable: the one venue order not named)
        (unnamed,) = set(sim.orders) - {o.venue_order_id for o in rig.kernel.orders.all()}
        assert sim.orders[unnamed]["intent"] == BUY_SHORT and sim.orders[unnamed]["cumQuantity"] == 1


async def test_a_silent_private_stream_is_reconnected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    async with sim_server(heartbeat_s=0) as sim:
        async with run_daemon(sim, tmp_path / "d", executor={"ws_silence_s": 0.6, "ws_ping_s": 5.0}) as rig:
            ex = rig.executor
            n, r = ex.private_connects, ex.reconciles
            await rig.until(lambda: ex.private_connects > n and ex.reconciles > r, what="reconnected after silence")


async def test_positions_are_reconciled_on_the_right_asset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        ex = rig.executor
        # trades made with our key by someone else (no order of ours): long 5 on market 0
        _, ask = rig.top(S0)
        await venue_post(sim, {"marketSlug": S0, "intent": BUY_LONG, "price": {"value": from_units(ask), "currency": "USD"},
                               "quantity": 5, "tif": "TIME_IN_FORCE_IMMEDIATE_OR_CANCEL"})  # fmt: skip
        bid1, _ = rig.top(S1)  # and short 3 on market 1
        await venue_post(sim, {"marketSlug": S1, "intent": BUY_SHORT, "price": {"value": from_units(bid1), "currency": "USD"},
                               "quantity": 3, "tif": "TIME_IN_FORCE_IMMEDIATE_OR_CANCEL"})  # fmt: skip
        assert sim.position(S0) == 5 * SCALE and sim.position(S1) == -3 * SCALE
        n = ex.reconciles
        sim.drop_connections()
        await rig.until(lambda: ex.reconciles > n, what="reconciliation")
        await rig.until(lambda: rig.net(S0) == 5 * SCALE and rig.net(S1) == -3 * SCALE, what="positions corrected")
        assert rig.kernel.portfolio.size(L0) == 5 * SCALE and rig.kernel.portfolio.size(SH1) == 3 * SCALE
        corr = {ev["asset_id"]: ev for ev in _inputs(rig) if ev["type"] == "position_corrected"}
        assert set(corr) == {L0, SH1} and corr[SH1]["new_size"] == 3 * SCALE
        # nothing to correct the next time
        n = ex.reconciles
        sim.drop_connections()
        await rig.until(lambda: ex.reconciles > n, what="reconciliation")
        assert len([ev for ev in _inputs(rig) if ev["type"] == "position_corrected"]) == 2
        assert any(ev.get("kind") == "balance" for ev in _inputs(rig))


async def test_halt_cancels_everything_at_the_venue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        bid, _ = rig.top(S0)
        a = rig.submit(L0, "BUY", bid - 2 * TICK, TEN)
        b = rig.submit(SH1, "BUY", 100_000, TEN)
        await rig.until(lambda: rig.order(a).state == rig.order(b).state == "accepted", what="resting")
        rig.kernel.halt("test")
        await rig.until(lambda: rig.order(a).state == rig.order(b).state == "cancelled", what="cancel-all on halt")
        assert ("POST", "/v1/orders/open/cancel", 200) in sim.requests
        assert all(o["state"] == "ORDER_STATE_CANCELED" for o in sim.orders.values())


async def test_on_chain_actions_are_refused_through_the_door(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from polybot.events import PositionAction, PositionActionFailed

    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
        failed: list[PositionActionFailed] = []
        rig.kernel.bus.subscribe(PositionActionFailed, failed.append)
        rig.kernel.act("", PositionAction(action="split", market=f"pmus:{S0}", amount=1_000_000))
        await rig.until(lambda: failed, what="the refusal")
        assert "not on Polymarket US" in failed[0].reason and not rig.kernel.actions


def test_the_demo_key_is_for_loopback_only() -> None:
    from adapters.polymarket_us.live import UsExecutor

    UsExecutor(demo_key=True, api_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1")
    with pytest.raises(ValueError, match="api_url: must be a loopback URL"):
        UsExecutor(demo_key=True)


# ---------------------------------------------------------------------- keys, strays, restarts


async def test_a_wrong_key_is_refused_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other_secret, _ = generate_key()
    async with sim_server() as sim:
        for key_id, secret in ((KEY_ID, other_secret), ("someone-elses-key", SECRET)):
            set_keys(monkeypatch, key_id, secret)
            d = Daemon(parse_config(pmus_config(sim, tmp_path / key_id), "t.toml"))
            with pytest.raises(BaseExceptionGroup) as ei:
                with anyio.fail_after(10):
                    await d.run()
            (err,) = ei.value.subgroup(lambda e: isinstance(e, AuthRefusedError)).exceptions  # type: ignore[union-attr]
            msg = str(err)
            assert "refused the key" in msg and "pmus_key_id" in msg and "HTTP 401" in msg
            assert secret not in msg and key_id not in msg
        assert not any(p == "/v1/orders" and m == "POST" for m, p, _s in sim.requests)
        assert any(s == 401 for _m, _p, s in sim.requests)


async def test_unknown_orders_refuse_adopt_cancel_leave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    async with sim_server() as sim:
        bid, _ = rig_top(sim)

        async def stray(px: int) -> str:
            r = await venue_post(sim, {"marketSlug": S0, "intent": BUY_LONG, "quantity": 7,
                                       "price": {"value": from_units(px), "currency": "USD"}})  # fmt: skip
            return str(r["id"])

        s1 = await stray(bid - 5 * TICK)
        d = Daemon(parse_config(pmus_config(sim, tmp_path / "refuse"), "t.toml"))
        with pytest.raises(BaseExceptionGroup) as ei:
            with anyio.fail_after(10):
                await d.run()
        (err,) = ei.value.subgroup(lambda e: isinstance(e, UnknownOrdersError)).exceptions  # type: ignore[union-attr]
        assert "1 open order(s)" in str(err) and s1 in str(err) and '"adopt"' in str(err)
        assert sim.orders[s1]["state"] == "ORDER_STATE_NEW"
        async with run_daemon(sim, tmp_path / "leave", executor={"unknown_orders": "leave"}) as rig:
            assert not rig.kernel.orders.all() and sim.orders[s1]["state"] == "ORDER_STATE_NEW"
        async with run_daemon(sim, tmp_path / "adopt", executor={"unknown_orders": "adopt"}) as rig:
            (o,) = rig.kernel.orders.open_orders()
            assert (o.strategy, o.venue_order_id, o.asset_id, o.intent.side, o.intent.price, o.intent.size) == (
                "adopted", s1, L0, "BUY", bid - 5 * TICK, 7 * SCALE)
            sim.trade(S0, from_units(bid - 5 * TICK), "2", aggressor_buys=False)  # it is ours now: its fills count
            await rig.until(lambda: o.filled == 2 * SCALE, what="fill of the adopted order")
            rig.kernel.cancel(None, o.client_id)
            await rig.until(lambda: o.state == "cancelled", what="adopted order cancelled")
            _same_positions(rig)
        s2 = await stray(bid - 6 * TICK)
        async with run_daemon(sim, tmp_path / "cancel", executor={"unknown_orders": "cancel"}) as rig:
            await rig.until(lambda: sim.orders[s2]["state"] == "ORDER_STATE_CANCELED", what="stray cancelled")
            assert not rig.kernel.orders.open_orders()


def rig_top(sim: Any) -> tuple[int, int]:
    bids, offers = sim.book(S0)
    return bids[0][0], offers[0][0]


async def test_a_restart_keeps_its_resting_order_and_places_nothing_twice(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    set_keys(monkeypatch)
    data = tmp_path / "d"
    async with sim_server() as sim:
        async with run_daemon(sim, data, engine={"on_shutdown": "leave"}) as rig:
            bid, _ = rig.top(S0)
            px = bid - 2 * TICK
            a = rig.submit(L0, "BUY", px, TEN)
            await rig.until(lambda: rig.order(a).state == "accepted", what="resting")
            vid = rig.order(a).venue_order_id
        assert rig.result["open_orders"] == 1
        sim.trade(S0, from_units(px), "3", aggressor_buys=False)  # while the daemon is down
        async with run_daemon(sim, data, engine={"on_shutdown": "leave"}) as rig2:  # unknown_orders = "refuse"
            o = rig2.order(a)
            assert o is not None and o.venue_order_id == vid
            await rig2.until(lambda: rig2.order(a).filled == 3 * SCALE, what="the fill made while down")
            sim.trade(S0, from_units(px), "2", aggressor_buys=False)
            await rig2.until(lambda: rig2.order(a).filled == 5 * SCALE, what="fill after the restart")
            _same_positions(rig2)
            assert rig2.posts() == 1 and list(sim.orders) == [vid]


async def test_an_order_pending_at_a_crash_is_found_after_the_restart_not_resent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The process dies while an order's outcome is unknown (placed at the venue, no answer):
    the restarted daemon finds it among the venue's open orders and takes it back."""
    set_keys(monkeypatch)
    data = tmp_path / "d"
    async with sim_server() as sim:
        cfg = parse_config(pmus_config(sim, data, executor={"unknown_grace_s": 60.0}, engine={"on_shutdown": "leave"}),
                           "t.toml")  # fmt: skip
        d1 = Daemon(cfg)
        rig = Rig(sim, d1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(d1.run)
            await rig.until(lambda: rig.executor.reconciles >= 1 and L0 in d1.kernel.books, what="ready")
            rig.executor._match = lambda vid, v: None  # this process never finds it
            bid, _ = rig.top(S0)
            sim.fault("timeout")
            a = rig.submit(L0, "BUY", bid - 3 * TICK, TEN)  # (a test's order: no strategy recreates it,
            d1.snapshot()  # so a periodic snapshot holds it; the journal's tail has its "unknown")
            await rig.until(lambda: rig.order(a).state == "unknown", what="unknown")
            tg.cancel_scope.cancel()  # the crash: nothing more happens
        d1.kernel.journal.close()
        assert len(sim.orders) == 1
        (vid,) = sim.orders
        async with run_daemon(sim, data) as rig2:
            await rig2.until(lambda: rig2.order(a).state == "accepted", what="taken back")
            assert rig2.order(a).venue_order_id == vid and rig2.executor.unknown_resolved == 1
            assert rig2.posts() == 1 and list(sim.orders) == [vid]
            rig2.kernel.cancel(None, a)
            await rig2.until(lambda: rig2.order(a).state == "cancelled", what="cancelled")


async def test_an_order_journaled_but_never_sent_is_rejected_after_a_restart(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The process dies between the journal and the POST: the restarted daemon looks the order
    up, finds nothing, and closes it; it never sends it."""
    set_keys(monkeypatch)
    data = tmp_path / "d"
    async with sim_server() as sim:
        d1 = Daemon(parse_config(pmus_config(sim, data, engine={"on_shutdown": "leave"}), "t.toml"))
        rig = Rig(sim, d1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(d1.run)
            await rig.until(lambda: rig.executor.reconciles >= 1 and L0 in d1.kernel.books, what="ready")

            async def lost(o: Any) -> None:  # the crash comes before the POST
                await anyio.sleep_forever()

            rig.executor._submit = lost
            bid, _ = rig.top(S0)
            a = rig.submit(L0, "BUY", bid - 3 * TICK, TEN)
            d1.snapshot()
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        d1.kernel.journal.close()
        async with run_daemon(sim, data) as rig2:
            await rig2.until(lambda: rig2.order(a).state == "rejected", what="closed after the look-up")
            (rej,) = [ev for ev in _inputs(rig2) if ev["type"] == "order_rejected"]
            assert "not re-sent" in rej["reason"] and rig2.posts() == 0 and sim.orders == {}


async def test_a_venue_that_cannot_be_reached_refuses_orders_without_doubt(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d", wait=False,
                                               executor={"api_url": dead, "ws_url": ""}) as rig:  # fmt: skip
        await rig.until(lambda: L0 in rig.kernel.books, what="books")
        a = rig.submit(L0, "BUY", 100_000, TEN)
        await rig.until(lambda: rig.order(a).state == "rejected", what="refused at once")
        (rej,) = [ev for ev in _inputs(rig) if ev["type"] == "order_rejected"]
        assert rej["reason"].startswith("not sent: POST /v1/orders: cannot connect")
        assert not any(ev["type"] == "order_unknown" for ev in _inputs(rig))


async def test_dry_run_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    async with sim_server() as sim, run_daemon(sim, tmp_path / "d", executor={"dry_run": True}) as rig:
        bid, _ = rig.top(S0)
        a = rig.submit(L0, "BUY", bid - TICK, TEN)
        await rig.until(lambda: rig.order(a).state == "accepted", what="accepted locally")
        rig.kernel.cancel(None, a)
        await rig.until(lambda: rig.order(a).state == "cancelled", what="cancelled locally")
        assert rig.posts() == 0 and sim.orders == {}
        assert not any(p.startswith(("/v1/order", "/v1/portfolio")) for _m, p, _s in sim.requests)


async def test_secrets_never_reach_any_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loguru import logger

    set_keys(monkeypatch)
    log = tmp_path / "all.log"
    sink = logger.add(str(log), level="DEBUG", backtrace=True, diagnose=True)
    try:
        async with sim_server() as sim, run_daemon(sim, tmp_path / "d") as rig:
            bid, ask = rig.top(S0)
            a = rig.submit(L0, "BUY", ask, SCALE, tif="FAK")
            sim.fault("error_500")
            b = rig.submit(L0, "BUY", bid - TICK, TEN)
            await rig.until(lambda: rig.order(a).filled == SCALE and rig.order(b).state == "accepted", what="traffic")
            # a private frame that names the key id is journaled with the alias instead
            await rig.executor._on_private_frame(msgspec.json.encode({"note": {"owner": KEY_ID}}).decode())
            await anyio.sleep(0.1)
            alias = rig.executor.alias
    finally:
        logger.remove(sink)
    outputs = {p: p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file()}
    outputs[log] = log.read_bytes()
    assert any(b"polymarket_us.private" in v for v in outputs.values())
    for path, data in outputs.items():
        for what, value in {"key id": KEY_ID, "secret": SECRET}.items():
            assert value.encode() not in data, f"{what} found in {path}"
    assert alias.encode() in outputs[tmp_path / "d" / "journal.jsonl"]
