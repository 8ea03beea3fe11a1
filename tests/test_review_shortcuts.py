"""Review of the risk-check shortcuts (a002e14..5b607fb): NotionalCaps approving from the loss
book's bound, PositionCaps from the scope's share totals, SelfTrade from the open assets.

The shortcuts may only approve what the exact checks (the same validator with ``_shortcut =
False``) approve, and the running totals behind them must match a fresh recomputation."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.events import FeeSchedule, MarketInfo, MarketResolved, OrderCancelled, OrderFilled, OrderIntent
from polybot.execution import RecordedExecutor
from polybot.kernel import Kernel
from polybot.risk import PassThrough, RiskChain, RiskContext
from polybot.risk.chain import Exposure, market_outcome_losses
from polybot.risk.limits import NotionalCaps, PositionCaps
from session_ops import feed, submit, venue

U = 1_000_000
LOT = 10_000
NS = 1_000_000_000
T0 = 1_705_320_000 * NS
SCHED = FeeSchedule(rate_ppm=70_000, exponent=1)

MARKETS = {
    "m1": MarketInfo(market="m1", asset_ids=("y1", "n1"), outcomes=("Yes", "No"), event_id="e1", fees=SCHED),
    "m2": MarketInfo(market="m2", asset_ids=("y2", "n2"), outcomes=("Yes", "No"), event_id="e1"),
    "m3": MarketInfo(market="m3", asset_ids=("a3", "b3", "c3"), outcomes=("A", "B", "C"), neg_risk_augmented=True),
    "n4": MarketInfo(market="n4", asset_ids=("y4", "n4a"), outcomes=("Yes", "No"), event_id="e9", neg_risk=True,
                     neg_risk_market_id="nr9"),
    "n5": MarketInfo(market="n5", asset_ids=("y5", "n5a"), outcomes=("Yes", "No"), event_id="e9", neg_risk=True,
                     neg_risk_market_id="nr9"),
}  # fmt: skip
ASSETS = ("y1", "n1", "y2", "n2", "a3", "b3", "c3", "y4", "n4a", "y5", "n5a", "zz")  # zz: uncatalogued
SCOPES = ("", "a", "b")
CAPS = ("1", "3", "8", "20", "100")


def new_kernel(*validators: Any) -> Kernel:
    k = Kernel(executor=RecordedExecutor("rec"), verify_books=False, risk=RiskChain(list(validators) or [PassThrough()]))
    feed(k, T0, *MARKETS.values())
    return k


def slow(v: Any) -> Any:
    v._shortcut = False
    return v


def every_market(k: Kernel) -> list[str]:
    return [*MARKETS, "zz"]


def check_totals(k: Kernel) -> None:
    """The shortcut totals against a recomputation, and the bound against every worst case."""
    pf, ex, lb = k.portfolio, k.exposure, k.losses
    for scope in SCOPES:
        ps = [p for (s, _a), p in pf.by_strategy.items() if s == scope] if scope else list(pf.positions.values())
        assert lb.pos_shares.get(scope, 0) == sum(abs(p.size) for p in ps), scope
        assert lb.pos_bound.get(scope, 0) == sum(max(0, p.cost - p.realized + p.fees - p.rebates) + max(0, -p.size)
                                                 for p in ps), scope  # fmt: skip
        legs = [ex.legs[c][1] for c, (s, _a, _amt) in ex.by_order.items() if not scope or s == scope]
        assert lb.bound(scope) >= pos_part(lb, scope) + sum(max(0, x) for x in legs), scope
        opened = [o for o in k.orders.open_orders() if not scope or o.strategy == scope]
        assert k.orders.open_total.get(scope, 0) == sum(o.remaining for o in opened), scope
        worst = [max(0, max(market_outcome_losses(k, m, scope))) for m in every_market(k)]
        assert all(lb.bound(scope) >= w for w in worst), scope
        assert lb.bound(scope) >= sum(worst) >= lb.total(scope), scope


def pos_part(lb: Any, scope: str) -> int:
    return lb.pos_bound.get(scope, 0)


def compare(k: Kernel, strat: str, it: OrderIntent, cap: str) -> None:
    """Every shortcut approval is an exact approval: notional and position caps, both scopes."""
    ctx = RiskContext(k, strat)
    for scope in ("account", "strategy"):
        for kw in ({"per_market": cap}, {"per_group": cap}, {"total": cap},
                   {"per_market": cap, "per_group": cap, "total": cap, "per_asset": cap, "max_open_positions": 4}):  # fmt: skip
            fast = NotionalCaps(scope=scope, **kw)
            if fast.check(it, ctx).action == "approve":
                assert slow(NotionalCaps(scope=scope, **kw)).check(it, ctx).action == "approve", (scope, kw, it)
        for kw in ({"max_shares": cap}, {"max_imbalance": cap}, {"max_shares": cap, "max_imbalance": "100"}):
            fast = PositionCaps(scope=scope, **kw)
            if fast.check(it, ctx).action == "approve":
                assert slow(PositionCaps(scope=scope, **kw)).check(it, ctx).action == "approve", (scope, kw, it)


def price_of(ticks: int) -> int:
    return ticks * LOT


strat_ = st.sampled_from(["a", "b", ""])
side_ = st.sampled_from(["BUY", "BUY", "SELL"])
op_ = st.one_of(
    st.tuples(st.just("submit"), strat_, st.sampled_from(ASSETS), side_, st.integers(1, 99), st.integers(1, 600)),
    st.tuples(st.just("plan"), strat_, st.lists(st.tuples(st.sampled_from(ASSETS), side_, st.integers(1, 99)),
                                                min_size=1, max_size=3), st.integers(1, 300)),
    st.tuples(st.just("venue"), st.integers(0, 99), st.sampled_from(["fill", "fill", "fill", "cancel", "ack_cancel",
              "expire", "reject", "accept"]), st.integers(1, 700), st.integers(-20, 20), st.integers(0, 3)),
    st.tuples(st.just("resolve"), st.sampled_from(sorted(MARKETS)), st.integers(0, 2)),
    st.tuples(st.just("catalog"), st.sampled_from(sorted(MARKETS)), st.booleans()),
    st.tuples(st.just("restore")),
    st.tuples(st.just("probe"), strat_, st.sampled_from(ASSETS), side_, st.integers(1, 99), st.integers(1, 900),
              st.sampled_from(CAPS)),
)  # fmt: skip


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(ops=st.lists(op_, min_size=10, max_size=45), chained=st.booleans())
def test_property_shortcuts_never_approve_what_the_exact_checks_would_not(ops: list[tuple[Any, ...]],
                                                                           chained: bool) -> None:  # fmt: skip
    """Random sessions (three strategies, strategy "" included; BUYs and SELLs, shorts; fills at
    other prices than the limit, taker fees and maker rebates, partial, over- and late fills;
    cancels, expiries, rejections; plans; settlements; catalog changes; snapshot restores): at
    every probe, for both validators in both scopes, a shortcut approval is an exact one; after
    every step the running totals match and the bound covers every market and the total."""

    def make() -> Kernel:
        if chained:  # the caps in the chain, so the session also runs through the shortcuts
            return new_kernel(NotionalCaps(per_market="20", total="60"), PositionCaps(max_shares="40"))
        return new_kernel()

    markets = dict(MARKETS)
    k = make()
    t = T0
    cids: list[str] = []
    for n, op in enumerate(ops):
        t += NS
        if op[0] == "submit":
            _, s, asset, side, ticks, lots = op
            cids += submit(k, s, [(asset, side, price_of(ticks))], lots, plan=False)
        elif op[0] == "plan":
            _, s, legs, lots = op
            cids += submit(k, s, [(a, sd, price_of(tk)) for a, sd, tk in legs], lots, plan=True)
        elif op[0] == "venue" and cids:
            _, j, what, lots, dp, fee = op
            o = k.orders.get(cids[j % len(cids)])
            if o is not None:
                venue(k, t, o.client_id, what, lots, price=min(99, max(1, o.intent.price // LOT + dp)) * LOT,
                      liquidity="taker" if fee % 2 else "maker", fee=fee * 7_000, rebate=40_000 if fee == 2 else 0)  # fmt: skip
        elif op[0] == "resolve":
            info = markets[op[1]]
            feed(k, t, MarketResolved(market=info.market, asset_ids=info.asset_ids,
                                      winning_asset_id=info.asset_ids[op[2] % len(info.asset_ids)]))  # fmt: skip
        elif op[0] == "catalog":
            _, m, fees = op
            markets[m] = msgspec.structs.replace(markets[m], fees=SCHED if fees else None)
            feed(k, t, markets[m])
        elif op[0] == "restore":
            st_ = json.loads(json.dumps(k.to_state()))
            k = make()
            k.restore(st_)
        elif op[0] == "probe":
            _, s, asset, side, ticks, lots, cap = op
            compare(k, s, OrderIntent(strategy=s, asset_id=asset, side=side, price=price_of(ticks), size=lots * LOT), cap)
        check_totals(k)


# ------------------------------------------------------------------------------ targeted


def test_a_sell_above_one_does_not_lower_the_bound_of_other_markets() -> None:
    """A leg with a negative loss (a SELL above 1: a certain gain in the outcome it sells,
    nothing in the others) summed into ``open_loss`` lowered the bound below another market's
    worst case, and the total cap's shortcut approved a BUY the exact check resizes. The kernel
    now refuses a price of 1 or more before any validator; the exposure still counts only
    positive losses in the bound, whoever reserves."""
    k = new_kernel(NotionalCaps(total="10"))
    assert k.submit("s", OrderIntent(strategy="", asset_id="y2", side="BUY", price=U // 2, size=10 * U)).approved
    assert not k.submit("s", OrderIntent(strategy="", asset_id="zz", side="SELL", price=2 * U, size=10 * U)).approved
    k.exposure.reserve("sell-above-1", "s", "zz", 0, "SELL", -10 * U)  # such a leg, reserved directly
    check_totals(k)
    assert k.losses.bound("") >= k.losses.total("") == 5 * U
    it = OrderIntent(strategy="s", asset_id="y2", side="BUY", price=U // 2, size=20 * U)
    ctx = RiskContext(k, "s")
    assert slow(NotionalCaps(total="10")).check(it, ctx).action == "resize"
    assert NotionalCaps(total="10").check(it, ctx).action == "resize"


def test_exposure_open_loss_follows_partial_releases_and_re_reserves() -> None:
    """open_loss is the sum of the positive parts of the legs' remaining losses, through partial
    releases (rounded down), a re-reserve of the same client id and full releases."""
    ex = Exposure()

    def expect() -> None:
        for scope in ("", "a"):
            want = sum(max(0, ex.legs[c][1]) for c, (s, _a, _m) in ex.by_order.items() if not scope or s == scope)
            assert ex.open_loss.get(scope, 0) == want, scope
            per = sum(v for (s, _a), v in (*ex.buys.items(), *ex.sells.items()) if s == scope)
            assert per == sum(ex.legs[c][1] for c, (s, _a, _m) in ex.by_order.items() if not scope or s == scope)

    ex.reserve("c1", "a", "y1", 7, "BUY", 7)
    ex.reserve("c2", "a", "y1", 3, "SELL", 11)
    ex.reserve("c3", "", "zz", 0, "SELL", -9)
    expect()
    ex.release("c2", 1)
    expect()
    ex.release("c3", 0)
    expect()
    ex.reserve("c1", "a", "y1", 5, "BUY", 5)
    expect()
    ex.release("c1", 2)
    expect()
    for c in ("c1", "c2", "c3"):
        ex.release(c)
    expect()
    assert ex.open_loss.get("", 0) == ex.open_loss.get("a", 0) == 0


def test_position_shortcut_with_shorts_and_open_orders_of_both_sides() -> None:
    """A short position, open BUYs and SELLs: pos_shares counts |size|, open_total every side."""
    k = new_kernel()
    d = k.submit("a", OrderIntent(strategy="", asset_id="y1", side="SELL", price=60 * LOT, size=5 * U))
    feed(k, T0 + NS, OrderFilled(client_id=d.client_ids[0], asset_id="y1", trade_id="t", side="SELL",
                                 price=60 * LOT, size=5 * U, liquidity="taker"), source="exec.rec")  # fmt: skip
    assert k.portfolio.size("y1") == -5 * U
    k.submit("a", OrderIntent(strategy="", asset_id="n1", side="SELL", price=30 * LOT, size=2 * U))
    k.submit("b", OrderIntent(strategy="", asset_id="y1", side="BUY", price=30 * LOT, size=1 * U))
    check_totals(k)
    assert k.losses.pos_shares[""] == 5 * U and k.orders.open_total[""] == 3 * U
    for s in ("a", "b", ""):
        for asset in ("y1", "n1"):
            for side in ("BUY", "SELL"):
                for size in (1, 2, 3, 5):
                    compare(k, s, OrderIntent(strategy=s, asset_id=asset, side=side, price=50 * LOT, size=size * U), "9")


def test_self_trade_open_assets_is_has_open() -> None:
    k = new_kernel()
    d = k.submit("a", OrderIntent(strategy="", asset_id="y1", side="BUY", price=40 * LOT, size=U))
    assert "y1" in k.orders.open_assets and k.orders.has_open("y1") and "n1" not in k.orders.open_assets
    feed(k, T0 + NS, OrderCancelled(client_id=d.client_ids[0], asset_id="y1"), source="exec.rec")
    assert "y1" not in k.orders.open_assets and not k.orders.has_open("y1")
