"""polybot.risk.limits: notional caps, position caps, loss limits and sizing, through a real
kernel with the paper executor (books, a catalog and real fills), plus a property test of the
caps against an independent worst-case computation."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.events import (
    ENCODER,
    BookSnapshot,
    FeeSchedule,
    MarketInfo,
    OrderIntent,
    PnLUpdate,
    Resume,
    RiskRejected,
    RiskResized,
    TradePrint,
    TradingStateChanged,
)
from polybot.execution.paper import PaperExecutor
from polybot.execution.rules import max_buy_cost
from polybot.kernel import Kernel
from polybot.risk import LOT, Decision, RiskChain, RiskContext
from polybot.risk.limits import (
    VALIDATORS,
    LossLimits,
    NotionalCaps,
    PositionCaps,
    Sizing,
    fit_size,
    intent_loss,
)

U = 1_000_000  # one unit of money, price or shares in base units
NS = 1_000_000_000
MS = 1_000_000
T0 = 1_705_320_000 * NS  # 2024-01-15 12:00:00 UTC
SCHED = FeeSchedule(rate_ppm=70_000, exponent=1)


def p(x: float) -> int:
    return round(x * U)


MARKETS: dict[str, MarketInfo] = {
    # m1 and m2: one event (and both "btc" by series / slug); m3: another event, "eth";
    # m4: a third event, "btc" by series; m5: charges taker fees
    "m1": MarketInfo(market="m1", asset_ids=("y1", "n1"), outcomes=("Yes", "No"), event_id="ev1",
                     series="btc-updown-15m", slug="btc-updown-15m-1705320000"),
    "m2": MarketInfo(market="m2", asset_ids=("y2", "n2"), outcomes=("Yes", "No"), event_id="ev1",
                     slug="btc-above-100k-on-jan-15"),
    "m3": MarketInfo(market="m3", asset_ids=("y3", "n3"), outcomes=("Yes", "No"), event_id="ev2",
                     series="eth-updown-15m"),
    "m4": MarketInfo(market="m4", asset_ids=("y4", "n4"), outcomes=("Yes", "No"), event_id="ev3",
                     series="BTC-updown-1h"),
    "m5": MarketInfo(market="m5", asset_ids=("y5", "n5"), outcomes=("Yes", "No"), event_id="ev4", fees=SCHED),
}  # fmt: skip
MARKET_OF = {a: m for m, info in MARKETS.items() for a in info.asset_ids}


class Rig:
    """A kernel with the paper executor, the markets above and YES books at 0.40 / 0.42 (the NO
    books mirrored: 0.58 / 0.60), 1000 shares a level."""

    def __init__(self, *validators: Any, cash: str = "10000", t0: int = T0) -> None:
        self.ex = PaperExecutor(cash=cash)
        self.k = Kernel(executor=self.ex, risk=RiskChain(list(validators)), verify_books=False)
        self.t = t0
        self.states: list[TradingStateChanged] = []
        self.rejected: list[RiskRejected] = []
        self.resized: list[RiskResized] = []
        self.pnl: list[PnLUpdate] = []
        self.k.bus.subscribe(TradingStateChanged, self.states.append)
        self.k.bus.subscribe(RiskRejected, self.rejected.append)
        self.k.bus.subscribe(RiskResized, self.resized.append)
        self.k.bus.subscribe(PnLUpdate, self.pnl.append)
        self.feed(*MARKETS.values())
        for m in MARKETS:
            self.book(m, 0.40, 0.42)

    def feed(self, *evs: Any, at: int | None = None) -> None:
        self.t = at if at is not None else self.t + MS
        self.k.process(self.t, "events", ENCODER.encode(list(evs)))

    def book(self, market: str, bid: float, ask: float | None, size: float = 1000, at: int | None = None) -> None:
        """The YES book (one level a side) and the NO book mirrored, in one frame."""
        yes, no = MARKETS[market].asset_ids
        yb = ((p(bid), p(size)),)
        ya = ((p(ask), p(size)),) if ask is not None else ()
        self.feed(BookSnapshot(asset_id=yes, market=market, bids=yb, asks=ya, tick_size=10_000),
                  BookSnapshot(asset_id=no, market=market, bids=tuple((U - a, s) for a, s in ya),
                               asks=tuple((U - b, s) for b, s in yb), tick_size=10_000), at=at)  # fmt: skip

    def submit(self, asset: str, side: str, price: float, size: float, strategy: str = "s", **kw: Any) -> Decision:
        return self.k.submit(strategy, OrderIntent(strategy=strategy, asset_id=asset, market=MARKET_OF.get(asset, ""),
                                                   side=side, price=p(price), size=p(size), **kw))  # type: ignore[arg-type]  # fmt: skip

    def fill(self, asset: str, size: float, price: float | None = None, strategy: str = "s") -> None:
        """Buy ``size`` shares at the ask (0.42 YES / 0.60 NO) with the chain bypassed."""
        saved, self.k.risk.validators = self.k.risk.validators, []
        before = self.k.portfolio.size(asset, strategy)
        try:
            px = price if price is not None else (0.42 if asset.startswith("y") else 0.60)
            d = self.submit(asset, "BUY", px, size, strategy=strategy, tif="FAK")
        finally:
            self.k.risk.validators = saved
        assert d.approved and self.k.portfolio.size(asset, strategy) == before + p(size), d


def approved(d: Decision) -> None:
    assert d.action == "approve", d


def resized_to(d: Decision, size: float) -> None:
    assert d.action == "resize" and d.size == p(size), d


def rejected(d: Decision, *needles: str) -> None:
    assert d.action == "reject", d
    for n in needles:
        assert n in d.reason, (n, d.reason)


# ============================================================================ parameters


def test_registry_names_are_the_default_names() -> None:
    kw: dict[str, dict[str, Any]] = {"sizing": {"size": "10"}}
    for name, cls in VALIDATORS.items():
        assert cls(**kw.get(name, {})).name == name


@pytest.mark.parametrize(
    "cls, kw, param",
    [
        (NotionalCaps, {"per_market": "-1"}, "per_market"),
        (NotionalCaps, {"per_order": "abc"}, "per_order"),
        (NotionalCaps, {"total": "0.0000001"}, "total"),
        (NotionalCaps, {"per_asset": True}, "per_asset"),
        (NotionalCaps, {"per_group": float("inf")}, "per_group"),
        (NotionalCaps, {"max_open_positions": 1.5}, "max_open_positions"),
        (NotionalCaps, {"max_open_positions": -1}, "max_open_positions"),
        (NotionalCaps, {"scope": "desk"}, "scope"),
        (NotionalCaps, {"group_by": "series"}, "group_by"),
        (NotionalCaps, {"name": ""}, "name"),
        (PositionCaps, {"max_shares": [1]}, "max_shares"),
        (PositionCaps, {"max_imbalance": "-5"}, "max_imbalance"),
        (PositionCaps, {"scope": "everyone"}, "scope"),
        (LossLimits, {"max_daily_loss": "lots"}, "max_daily_loss"),
        (LossLimits, {"max_drawdown": -3}, "max_drawdown"),
        (LossLimits, {"timezone": "Mars/Olympus_Mons"}, "timezone"),
        (LossLimits, {"timezone": ""}, "timezone"),
        (LossLimits, {"scope": "desk"}, "scope"),
        (Sizing, {"mode": "martingale"}, "mode"),
        (Sizing, {"mode": "fixed"}, "size"),
        (Sizing, {"size": "0.001"}, "size"),
        (Sizing, {"mode": "kelly", "kelly_fraction": 0}, "kelly_fraction"),
        (Sizing, {"mode": "kelly", "kelly_fraction": "1.5"}, "kelly_fraction"),
        (Sizing, {"mode": "kelly", "bankroll": "-1"}, "bankroll"),
        (Sizing, {"mode": "volatility"}, "risk_per_order"),
        (Sizing, {"mode": "volatility", "risk_per_order": 1, "vol_halflife_s": 0}, "vol_halflife_s"),
        (Sizing, {"mode": "volatility", "risk_per_order": 1, "vol_multiple": -1}, "vol_multiple"),
        (Sizing, {"mode": "volatility", "risk_per_order": 1, "require_vol": "yes"}, "require_vol"),
    ],
)
def test_bad_params_are_refused_naming_the_param(cls: Any, kw: dict[str, Any], param: str) -> None:
    with pytest.raises(ValueError, match=f"^{param}: "):
        cls(**kw)


def test_params_convert_exactly_and_zero_or_none_means_no_cap() -> None:
    for v in ("300", 300, 300.0, Decimal("300"), "300.000000"):
        assert NotionalCaps(per_market=v)._per_market == 300 * U
    assert NotionalCaps(per_order=0.1)._per_order == 100_000
    assert PositionCaps(max_shares="12.34")._max_shares == 12_340_000
    assert Sizing(mode="kelly", kelly_fraction=0.5)._kelly == 0.5
    r = Rig(NotionalCaps(per_market=None, total=0), PositionCaps(), LossLimits())
    r.fill("y1", 100)
    approved(r.submit("y1", "BUY", 0.40, 1000))


# ============================================================================ fit_size


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    side=st.sampled_from(["BUY", "SELL"]),
    price=st.integers(1, U - 1),
    rate=st.sampled_from([0, 1_000, 70_000, 250_000, 1_000_000]),
    exponent=st.integers(0, 3),
    budget=st.integers(-5, 2_000 * U),
    limit=st.integers(0, 5_000 * U),
)
def test_fit_size_is_the_largest_lot_that_fits(side: str, price: int, rate: int, exponent: int, budget: int, limit: int) -> None:
    fees = FeeSchedule(rate_ppm=rate, exponent=exponent) if rate else None
    s = fit_size(side, price, fees, budget, limit)
    assert s % LOT == 0 and 0 <= s <= limit
    if s:
        assert intent_loss(side, price, s, fees) <= budget
    if s + LOT <= limit:
        assert budget < 0 or intent_loss(side, price, s + LOT, fees) > budget


# ============================================================================ notional_caps


def test_per_order_passes_resizes_and_rejects() -> None:
    r = Rig(NotionalCaps(per_order="10"))
    approved(r.submit("y1", "BUY", 0.40, 25))  # notional exactly 10
    resized_to(r.submit("y1", "BUY", 0.40, 30), 25)  # 10 / 0.40
    d = r.submit("y1", "BUY", 0.42, 30, tif="FAK")  # 12.6 > 10: 10 / 0.42 = 23.809 -> 23.80
    resized_to(d, 23.80)
    assert "order notional 12.6 > per_order cap 10" in d.reason
    assert r.k.portfolio.size("y1") == p(23.80) and r.resized[-1].new_size == p(23.80)
    r2 = Rig(NotionalCaps(per_order="1.9"))
    rejected(r2.submit("y1", "BUY", 0.40, 30), "4.75 shares, is below the market minimum 5")  # 1.9 / 0.4


def test_per_asset_counts_position_cost_and_open_buys() -> None:
    r = Rig(NotionalCaps(per_asset="20"))
    r.fill("y1", 10)  # cost 4.2
    approved(r.submit("y1", "BUY", 0.35, 10))  # rests: 3.5 reserved; 7.7 in all
    d = r.submit("y1", "BUY", 0.40, 50)  # 7.7 + 20 > 20: (20 - 7.7) / 0.4 = 30.75
    resized_to(d, 30.75)
    assert "exposure would be 27.7 (position cost 4.2 + open buys 3.5 + order 20) > per_asset cap 20" in d.reason
    approved(r.submit("y2", "BUY", 0.40, 50))  # another asset: 20 fits exactly
    approved(r.submit("y1", "SELL", 0.50, 10))  # a sale of what is held adds nothing
    r2 = Rig(NotionalCaps(per_asset="9.5"))
    r2.fill("y1", 10)
    approved(r2.submit("y1", "BUY", 0.35, 10))  # 7.7 <= 9.5
    rejected(r2.submit("y1", "BUY", 0.40, 50), "4.5 shares, is below the market minimum 5")  # 1.8 / 0.4


def test_per_market_caps_the_worst_case_loss() -> None:
    r = Rig(NotionalCaps(per_market="10"))
    r.fill("y1", 10)  # NO wins: lose 4.2; YES wins: gain 5.8
    d = r.submit("y1", "BUY", 0.40, 50)  # NO wins: 4.2 + 20 = 24.2 > 10: (10 - 4.2) / 0.4 = 14.5
    resized_to(d, 14.5)
    assert d.reason.startswith("account: market m1 worst-case loss would be 24.2 > cap 10")
    approved(r.submit("y2", "BUY", 0.40, 25))  # another market: 10 fits exactly
    r2 = Rig(NotionalCaps(per_market="6"))
    r2.fill("y1", 10)
    rejected(r2.submit("y1", "BUY", 0.40, 50), "4.5 shares, is below the market minimum 5")  # 1.8 / 0.4


def test_per_market_fits_the_taker_fee_exactly() -> None:
    r = Rig(NotionalCaps(per_market="10"))
    # a BUY at 0.40 in m5 risks 0.40 + 0.07 x 0.4 x 0.6 = 0.4168 a share: 10 / 0.4168 = 23.992
    d = r.submit("y5", "BUY", 0.40, 50)
    resized_to(d, 23.99)
    assert max_buy_cost(p(23.99), p(0.40), SCHED) == 9_999_040  # 9.596 + fee 0.403032 (rounded up)
    assert max_buy_cost(p(24.00), p(0.40), SCHED) > 10 * U
    assert r.k.exposure.open_buy("y5") == 9_999_040  # what the kernel reserved: exactly what was checked


def test_a_sell_that_unhedges_is_resized_on_its_outcome() -> None:
    r = Rig(NotionalCaps(per_market="10"))
    r.fill("y1", 10)  # 4.2
    r.fill("n1", 20)  # 12.0: YES wins -> lose 16.2 - 10 = 6.2; NO wins -> gain 3.8
    # selling YES at 0.40 gives up 0.60 a share if YES wins: (10 - 6.2) / 0.6 = 6.333
    resized_to(r.submit("y1", "SELL", 0.40, 10), 6.33)
    r2 = Rig(NotionalCaps(per_market="8"))
    r2.fill("y1", 10)
    r2.fill("n1", 20)
    rejected(r2.submit("y1", "SELL", 0.40, 10), "3 shares, is below the market minimum 5")  # 1.8 / 0.6


def test_risk_reducing_orders_pass_every_cap_even_one_already_exceeded() -> None:
    caps = NotionalCaps(per_order="1", per_asset="1", per_market="1", per_group="1", total="1", max_open_positions=1)
    r = Rig(caps)
    r.fill("y1", 10)  # NO wins: lose 4.2 -- every cap is exceeded already
    approved(r.submit("y1", "SELL", 0.40, 5))  # YES wins: -5.8 + 0.6 x 5 = -2.8; NO wins: still 4.2
    assert r.k.portfolio.size("y1") == p(5)  # filled at the bid: 5 YES, cost 2.1
    # a hedge: NO wins -> 2.1 + 3 - 5 = 0.1, YES wins -> 5.1 - 5 = 0.1 (< 2.1), though it
    # opens a second position and costs 3 > per_order and per_asset
    approved(r.submit("n1", "BUY", 0.60, 5))
    assert r.k.portfolio.size("n1") == p(5)
    d = r.submit("y1", "BUY", 0.40, 5)  # makes it worse: the asset's cost 2.1 is over its cap already
    rejected(d, "exposure would be 4.1 (position cost 2.1 + open buys 0 + order 2) > per_asset cap 1: no order fits")


def test_a_cap_already_exceeded_allows_what_keeps_the_loss_where_it_is() -> None:
    r = Rig(NotionalCaps(per_market="40"))
    r.fill("y1", 100)  # NO wins: lose 42 > 40 (a fill or the cap's change can do that)
    # a resting NO bid at 0.55 may not fill: the NO-wins loss stays 42, the YES-wins one becomes
    # -58 + 0.55 s: sizes up to (42 + 58) / 0.55 = 181.818 keep the worst case at 42
    resized_to(r.submit("n1", "BUY", 0.55, 300), 181.81)
    r2 = Rig(NotionalCaps(per_market="40"))
    r2.fill("y1", 100)
    approved(r2.submit("n1", "BUY", 0.55, 180))
    rejected(r2.submit("y1", "BUY", 0.40, 5), "worst-case loss would be 44 > cap 40 (already 42): no order fits")


def test_per_group_by_event() -> None:
    r = Rig(NotionalCaps(per_group="10"))
    r.fill("y1", 10)  # m1 (event ev1): 4.2
    d = r.submit("y2", "BUY", 0.40, 20)  # m2 is in ev1: 4.2 + 8 > 10: (10 - 4.2) / 0.4 = 14.5
    resized_to(d, 14.5)
    assert "group 'ev1' (2 markets) worst-case loss would be 12.2 > cap 10" in d.reason
    approved(r.submit("y3", "BUY", 0.40, 20))  # ev2: 8 alone
    approved(r.submit("y4", "BUY", 0.40, 25))  # ev3: 10 alone


def test_per_group_by_underlying_shares_a_cap_across_series() -> None:
    r = Rig(NotionalCaps(per_group="10", group_by="underlying"))
    r.fill("y1", 10)  # m1: btc (series btc-updown-15m): 4.2
    resized_to(r.submit("y4", "BUY", 0.40, 20), 14.5)  # m4 is btc too (BTC-updown-1h)
    approved(r.submit("y3", "BUY", 0.40, 20))  # eth
    d = r.submit("y2", "BUY", 0.40, 20)  # m2: btc from its slug; m1 4.2 + m4 5.8 already = 10
    rejected(d, "group 'btc' (3 markets)", "no order fits")


def test_total_sums_every_active_market() -> None:
    r = Rig(NotionalCaps(total="15"))
    r.fill("y1", 10)
    r.fill("y3", 10)  # 8.4 in all
    d = r.submit("y2", "BUY", 0.40, 50)  # (15 - 8.4) / 0.4 = 16.5
    resized_to(d, 16.5)
    assert "total (3 markets) worst-case loss would be 28.4 > cap 15" in d.reason
    # the resized y2 order rests with 6.6 reserved: the total is at its cap
    rejected(r.submit("y4", "BUY", 0.40, 5), "total (4 markets) worst-case loss would be 17 > cap 15: no order fits")
    approved(r.submit("y1", "SELL", 0.40, 5))  # a sale of what is held still passes


def test_max_open_positions_counts_positions_and_open_buys() -> None:
    r = Rig(NotionalCaps(max_open_positions=2))
    r.fill("y1", 10)
    approved(r.submit("y3", "BUY", 0.35, 10))  # rests: counts as the second position
    rejected(r.submit("y2", "BUY", 0.40, 10), "position number 3 > max_open_positions 2")
    approved(r.submit("y1", "BUY", 0.40, 10))  # the same asset again
    approved(r.submit("y1", "SELL", 0.40, 5))


def test_scope_strategy_measures_the_strategy_alone() -> None:
    acct = Rig(NotionalCaps(per_market="10"))
    strat = Rig(NotionalCaps(per_market="10", scope="strategy"))
    for r in (acct, strat):
        r.fill("y1", 10, strategy="a")  # a: 4.2
    resized_to(acct.submit("y1", "BUY", 0.40, 20, strategy="b"), 14.5)  # 4.2 + 8 > 10
    approved(strat.submit("y1", "BUY", 0.40, 20, strategy="b"))  # b: 8 alone
    d = strat.submit("y1", "BUY", 0.40, 20, strategy="a")
    resized_to(d, 14.5)
    assert d.reason.startswith("strategy a: market m1")


# ============================================================================ position_caps


def test_max_shares_counts_position_open_buys_and_the_order() -> None:
    r = Rig(PositionCaps(max_shares="30"))
    r.fill("y1", 20)
    approved(r.submit("y1", "BUY", 0.35, 5))  # rests: 25
    d = r.submit("y1", "BUY", 0.40, 10)  # 35 > 30: 5 fit (the market minimum exactly)
    resized_to(d, 5)
    assert "would hold 35 shares (position 20 + open buys 5 + order 10) > max_shares 30" in d.reason
    approved(r.submit("y1", "SELL", 0.40, 20))  # a SELL only shrinks the position
    r2 = Rig(PositionCaps(max_shares="30"))
    r2.fill("y1", 20)
    approved(r2.submit("y1", "BUY", 0.35, 5.01))
    rejected(r2.submit("y1", "BUY", 0.40, 10), "4.99 shares, is below the market minimum 5")
    r3 = Rig(PositionCaps(max_shares="20"))
    r3.fill("y1", 20)
    rejected(r3.submit("y1", "BUY", 0.40, 10), "no order fits")


def test_max_shares_scope_strategy() -> None:
    acct = Rig(PositionCaps(max_shares="30"))
    strat = Rig(PositionCaps(max_shares="30", scope="strategy"))
    for r in (acct, strat):
        r.fill("y1", 20, strategy="a")
    resized_to(acct.submit("y1", "BUY", 0.40, 20, strategy="b"), 10)
    approved(strat.submit("y1", "BUY", 0.40, 20, strategy="b"))
    resized_to(strat.submit("y1", "BUY", 0.40, 20, strategy="a"), 10)


def test_max_imbalance() -> None:
    r = Rig(PositionCaps(max_imbalance="25"))
    r.fill("y1", 20)  # YES - NO = 20
    d = r.submit("y1", "BUY", 0.42, 10, tif="FAK")  # 30 > 25: 5 fit
    resized_to(d, 5)
    assert "imbalance would be 30 shares (positions 20, open orders 0 the same way) > max_imbalance 25" in d.reason
    assert r.k.portfolio.unpaired("m1") == p(25)
    approved(r.submit("n1", "BUY", 0.60, 40, tif="FAK"))  # 25 -> -15
    resized_to(r.submit("n1", "BUY", 0.60, 50, tif="FAK"), 10)  # -15 -> -65 > 25: 10 fit
    assert r.k.portfolio.unpaired("m1") == p(-25)
    approved(r.submit("n1", "SELL", 0.40, 10, tif="FAK"))  # shrinks it
    approved(r.submit("y2", "BUY", 0.40, 25))  # another market: 25 exactly
    r2 = Rig(PositionCaps(max_imbalance="25"))
    r2.fill("y1", 40)  # 40 already: beyond the cap
    rejected(r2.submit("y1", "BUY", 0.40, 5), "no order fits")
    approved(r2.submit("n1", "BUY", 0.55, 60))  # 40 -> -20 once filled: smaller (it rests)
    # with those 60 NO pending the imbalance is 20 the NO way: 20 more would make it 40 > 25
    resized_to(r2.submit("n1", "BUY", 0.55, 20), 5)
    r3 = Rig(PositionCaps(max_imbalance="27"))
    r3.fill("y1", 20)
    approved(r3.submit("y1", "BUY", 0.35, 5))  # rests: 25 the YES way
    d = r3.submit("y1", "BUY", 0.40, 10)
    rejected(d, "imbalance would be 35 shares (positions 20, open orders 5 the same way) > max_imbalance 27",
             "the largest order that fits, 2 shares, is below the market minimum 5")  # fmt: skip
    approved(r3.submit("lone", "BUY", 0.40, 100))  # not a binary market of the catalog: no imbalance


# ============================================================================ loss_limits


def test_daily_loss_found_at_check_time_halts_once_and_rejects_everything_after() -> None:
    r = Rig(LossLimits(max_daily_loss="5"))
    approved(r.submit("y1", "BUY", 0.42, 100, tif="FAK"))  # cost 42, marked at the 0.40 bid: -2
    v = r.k.risk.validators[0]
    assert v.track("").base == 0 and v.track("").last == -2 * U
    r.book("m1", 0.36, 0.38)  # marked at 0.36: net -6, no fill (no PnL update)
    assert r.k.trading_state == "active"
    d = r.submit("y2", "BUY", 0.30, 10)
    rejected(d, "account: daily loss 6 > max_daily_loss 5 (net -6, 0 at the start of 2024-01-15 UTC)")
    assert r.k.trading_state == "halted"
    assert [(s.state, s.previous) for s in r.states] == [("halted", "active")]
    assert r.states[0].reason.startswith("loss_limits: account: daily loss 6 > max_daily_loss 5")
    for args in (("y2", "BUY", 0.30, 10), ("y1", "SELL", 0.36, 10), ("y3", "BUY", 0.10, 5)):
        rejected(r.submit(*args), "daily loss")
    assert len(r.states) == 1  # halted once
    approved(r.submit("y1", "SELL", 0.36, 100, tif="FAK", reduce_only=True))  # a flatten may run
    assert r.k.portfolio.size("y1") == 0


def test_daily_loss_found_on_a_fill_halts_at_once() -> None:
    r = Rig(LossLimits(max_daily_loss="5"))
    approved(r.submit("y1", "BUY", 0.40, 100))  # rests at the bid
    assert r.k.portfolio.size("y1") == 0
    r.book("m1", 0.30, 0.32)  # the asks fall through our bid: filled at 0.40, marked at 0.30
    assert r.k.portfolio.size("y1") == 100 * U
    assert r.pnl[-1].net == -10 * U
    assert r.k.trading_state == "halted"
    assert "daily loss 10 > max_daily_loss 5" in r.states[0].reason
    rejected(r.submit("y2", "BUY", 0.30, 10), "daily loss 10")


def _day_rollover(tz: str) -> tuple[Rig, list[Decision]]:
    r = Rig(LossLimits(max_daily_loss="5", timezone=tz), t0=T0 + 13 * 3600 * NS)  # 2024-01-16 01:00 UTC
    out = [r.submit("y1", "BUY", 0.42, 100, tif="FAK")]  # -2 at the 0.40 bid
    r.book("m1", 0.37, 0.39)  # -5: at the limit, not beyond
    out.append(r.submit("y2", "BUY", 0.30, 5))
    r.book("m1", 0.34, 0.36, at=T0 + 19 * 3600 * NS)  # 2024-01-16 07:00 UTC = 02:00 in New York: -8
    out.append(r.submit("y2", "BUY", 0.30, 5))
    return r, out


def test_day_rollover_in_the_configured_time_zone_resets_the_daily_base() -> None:
    r, ds = _day_rollover("America/New_York")  # 20:00 on the 15th, then 02:00 on the 16th
    for d in ds:
        approved(d)
    t = r.k.risk.validators[0].track("")
    assert (t.day, t.base, t.last) == ("2024-01-16", -5 * U, -8 * U)  # a loss of 3 today
    r.book("m1", 0.29, 0.31)  # -13: 8 below the day's start
    rejected(r.submit("y2", "BUY", 0.30, 5), "daily loss 8 > max_daily_loss 5", "start of 2024-01-16 America/New_York")
    assert r.k.trading_state == "halted"
    utc, ds = _day_rollover("UTC")  # the same instants are one UTC day: -8 from 0
    approved(ds[0])
    approved(ds[1])
    rejected(ds[2], "daily loss 8 > max_daily_loss 5")
    assert utc.k.trading_state == "halted"


def test_a_daily_breach_clears_when_the_day_rolls_over() -> None:
    r = Rig(LossLimits(max_daily_loss="5"))
    approved(r.submit("y1", "BUY", 0.42, 100, tif="FAK"))
    r.book("m1", 0.34, 0.36)
    rejected(r.submit("y2", "BUY", 0.30, 5), "daily loss 8")
    r.book("m1", 0.34, 0.36, at=T0 + 24 * 3600 * NS)  # the next UTC day: flat from -8
    approved(r.submit("y2", "BUY", 0.30, 5))
    assert r.k.trading_state == "halted"  # the kernel stays halted until an operator resumes


def test_drawdown_from_the_peak() -> None:
    r = Rig(LossLimits(max_daily_loss="10", max_drawdown="5"))
    approved(r.submit("y1", "BUY", 0.42, 100, tif="FAK"))  # -2
    r.book("m1", 0.46, 0.48)  # +4
    approved(r.submit("y2", "BUY", 0.30, 5))  # observed: the peak is 4
    r.book("m1", 0.38, 0.40)  # -4: 4 below the day's start (< 10) but 8 below the peak
    rejected(r.submit("y2", "BUY", 0.30, 5), "account: drawdown 8 > max_drawdown 5 (net -4, peak 4)")
    assert r.k.trading_state == "halted" and len(r.states) == 1


def test_loss_limit_state_round_trips_and_survives_a_restart() -> None:
    r = Rig(LossLimits(max_daily_loss="5", max_drawdown="20"))
    approved(r.submit("y1", "BUY", 0.42, 100, tif="FAK"))
    r.book("m1", 0.34, 0.36)
    rejected(r.submit("y2", "BUY", 0.30, 5), "daily loss 8")
    st_ = json.loads(json.dumps(r.k.to_state()))
    assert st_["risk"]["/loss_limits"]["tracks"][""][:4] == ["2024-01-15", 0, 0, -8 * U]
    r2 = Rig(LossLimits(max_daily_loss="5", max_drawdown="20"))
    r2.k.restore(st_)
    assert r2.k.trading_state == "halted"
    rejected(r2.submit("y2", "BUY", 0.30, 5), "daily loss 8")
    assert r2.states == []  # already halted: not again


def test_an_operator_resume_acknowledges_the_loss() -> None:
    r = Rig(LossLimits(max_daily_loss="5"))
    approved(r.submit("y1", "BUY", 0.42, 100, tif="FAK"))
    r.book("m1", 0.34, 0.36)
    rejected(r.submit("y2", "BUY", 0.30, 5), "daily loss 8")
    r.k.process(r.t + MS, "control", ENCODER.encode(Resume(reason="seen it")))
    assert r.k.trading_state == "active"
    assert r.k.risk.validators[0].track("").base == -8 * U
    approved(r.submit("y2", "BUY", 0.30, 5))
    r.book("m1", 0.28, 0.30)  # 6 more
    rejected(r.submit("y2", "BUY", 0.30, 5), "daily loss 6")
    assert r.k.trading_state == "halted"


def test_loss_limits_scope_strategy() -> None:
    def run(scope: str) -> tuple[Rig, Decision, Decision]:
        r = Rig(LossLimits(max_daily_loss="5", scope=scope))
        approved(r.submit("y1", "BUY", 0.42, 100, strategy="a", tif="FAK"))  # a: YES
        approved(r.submit("n1", "BUY", 0.60, 100, strategy="b", tif="FAK"))  # b: NO
        r.book("m1", 0.34, 0.36)  # a: 34 - 42 = -8; b: 64 - 60 = +4; the account: pairs at 1, -2
        return r, r.submit("y2", "BUY", 0.30, 5, strategy="a"), r.submit("y2", "BUY", 0.30, 5, strategy="b")

    r, da, db = run("strategy")
    rejected(da, "strategy a: daily loss 8 > max_daily_loss 5")
    approved(db)
    assert r.k.trading_state == "halted"
    r, da, db = run("account")
    approved(da)
    approved(db)
    assert r.k.trading_state == "active"


# ============================================================================ sizing


def test_fixed_sizing() -> None:
    r = Rig(Sizing(size="10"))
    resized_to(r.submit("y1", "BUY", 0.40, 25), 10)
    approved(r.submit("y1", "BUY", 0.40, 8))
    r.fill("y1", 20)
    approved(r.submit("y1", "SELL", 0.40, 20, tif="FAK", reduce_only=True))  # closing is not sized
    r2 = Rig(Sizing(size="4"))
    rejected(r2.submit("y1", "BUY", 0.40, 10), "fixed size 4 shares: below the market minimum 5")
    approved(r2.submit("y1", "BUY", 0.40, 3))  # smaller already: sizing never sizes up


def test_kelly_sizing() -> None:
    r = Rig(Sizing(mode="kelly", bankroll="1000"))
    # f* = (0.6 - 0.4) / (1 - 0.4) = 1/3; 0.25 x 1/3 x 1000 / 0.4 = 208.333 shares
    d = r.submit("y1", "BUY", 0.40, 500, probability=0.6)
    resized_to(d, 208.33)
    assert d.reason.startswith("kelly: 0.25 x confidence 1 x f* 0.3333 x bankroll 1000 / price 0.4 = 208.33 shares")
    resized_to(r.submit("y1", "BUY", 0.40, 500, probability=0.6, confidence=0.5), 104.16)  # 104.1666
    approved(r.submit("y1", "BUY", 0.40, 100, probability=0.6))
    # a SELL at 0.70 with q = 0.5 buys NO at 0.30 with q' = 0.5: f* = 0.2 / 0.7; x 0.25 x 1000 / 0.3
    resized_to(r.submit("y1", "SELL", 0.70, 500, probability=0.5), 238.09)  # 238.095
    rejected(r.submit("y1", "BUY", 0.40, 500, probability=0.4), "no edge")
    rejected(r.submit("y1", "SELL", 0.40, 500, probability=0.6), "no edge")
    rejected(r.submit("y1", "BUY", 0.40, 500), "kelly sizing needs the intent's probability")
    rejected(r.submit("y1", "BUY", 0.40, 500, probability=1.5), "probability must be in [0, 1]")
    rejected(r.submit("y1", "BUY", 0.40, 500, probability=0.6, confidence=-1.0), "confidence")
    cash = Rig(Sizing(mode="kelly", kelly_fraction="0.5"), cash="600")  # bankroll = the cash
    resized_to(cash.submit("y1", "BUY", 0.40, 1000, probability=0.6), 250)  # 0.5 x 1/3 x 600 / 0.4
    small = Rig(Sizing(mode="kelly", bankroll="10"))  # 0.25 x 1/3 x 10 / 0.4 = 2.08
    rejected(small.submit("y1", "BUY", 0.40, 100, probability=0.6), "below the market minimum 5")


def test_volatility_sizing() -> None:
    r = Rig(Sizing(mode="volatility", risk_per_order="1"))
    v = r.k.risk.validators[0]
    assert v.volatility("y1") is None
    approved(r.submit("y1", "BUY", 0.40, 1000))  # no estimate yet: unchanged
    r.book("m1", 0.41, 0.43)  # the mid moves 0.01: vol 0.01 -> 1 / 0.01 = 100 shares
    assert v.volatility("y1") == 10_000
    resized_to(r.submit("y1", "BUY", 0.40, 150), 100)
    approved(r.submit("y1", "BUY", 0.40, 100))
    # one half-life later the mid moves 0.02: var = (0.01^2 + 0.02^2) / 2, vol 0.0158113883
    r.book("m1", 0.43, 0.45, at=r.t + 300 * NS)
    resized_to(r.submit("y1", "BUY", 0.40, 150), 63.24)  # 1 / 0.0158113883 = 63.2455
    r.book("m1", 0.43, None)  # one side only: no update
    assert v.volatility("y1") == pytest.approx(math.sqrt(2.5e8))
    r2 = Rig(Sizing(mode="volatility", risk_per_order="1", vol_multiple=2, require_vol=True))
    rejected(r2.submit("y1", "BUY", 0.40, 150), "no volatility estimate for asset y1 yet")
    r2.book("m1", 0.41, 0.43)
    resized_to(r2.submit("y1", "BUY", 0.40, 150), 50)  # 1 / (0.01 x 2)
    st_ = json.loads(json.dumps(r2.k.to_state()))["risk"]["/sizing"]
    again = Sizing(mode="volatility", risk_per_order="1")
    again.restore(st_)
    assert again.volatility("y1") == 10_000 and again.volatility("n1") == 10_000


# ============================================================================ property: the caps hold

MARKET_CAP, GROUP_CAP, TOTAL_CAP, MAX_SHARES = 12 * U, 18 * U, 22 * U, 40 * U
PROP_MARKETS = {
    "m1": MarketInfo(market="m1", asset_ids=("y1", "n1"), outcomes=("Yes", "No"), event_id="ev1", fees=SCHED),
    "m2": MarketInfo(market="m2", asset_ids=("y2", "n2"), outcomes=("Yes", "No"), event_id="ev1"),
    "m3": MarketInfo(market="m3", asset_ids=("y3", "n3"), outcomes=("Yes", "No"), event_id="ev2"),
}
PROP_ASSETS = ("y1", "n1", "y2", "n2", "y3", "n3")
TICK = 10_000


def reference_losses(k: Kernel) -> dict[str, int]:
    """Worst-case loss of each market, from the account's positions and the open orders alone:
    if outcome w wins, the positions pay their size in w, every BUY of another outcome filled
    pays its limit (plus the taker fee there) for nothing, and every SELL of w filled gives up
    (1 - price) a share."""
    out: dict[str, int] = {}
    orders = k.orders.open_orders()
    for m, info in PROP_MARKETS.items():
        pos = {a: k.portfolio.positions.get(a) for a in info.asset_ids}
        cost = sum(x.cost for x in pos.values() if x is not None)
        worst = 0
        for w in info.asset_ids:
            loss = cost - (pos[w].size if pos[w] is not None else 0)
            for o in orders:
                if o.asset_id not in info.asset_ids:
                    continue
                if o.intent.side == "BUY" and o.asset_id != w:
                    loss += max_buy_cost(o.remaining, o.intent.price, info.fees)
                elif o.intent.side == "SELL" and o.asset_id == w:
                    loss += -(-(U - o.intent.price) * o.remaining // U)
            worst = max(worst, loss)
        out[m] = worst
    return out


def check_invariants(k: Kernel) -> None:
    loss = reference_losses(k)
    for m, v in loss.items():
        assert v <= MARKET_CAP, (m, v)
    assert loss["m1"] + loss["m2"] <= GROUP_CAP, loss
    assert sum(loss.values()) <= TOTAL_CAP, loss
    for a in PROP_ASSETS:
        held = k.portfolio.size(a)
        pending = sum(o.remaining for o in k.orders.open_orders(asset_id=a) if o.intent.side == "BUY")
        assert held <= MAX_SHARES and held + pending <= MAX_SHARES, (a, held, pending)


def check_loss_book(k: Kernel) -> None:
    """The kernel's LossBook (kept incrementally) equals a fresh recomputation, per scope."""
    from polybot.risk.chain import market_outcome_losses

    for scope in ("", "a", "b", "c"):
        expect: dict[str, int] = {}
        for m, info in PROP_MARKETS.items():
            live = any((k.portfolio.by_strategy.get((scope, a)) if scope else k.portfolio.positions.get(a)) is not None
                       and (k.portfolio.by_strategy.get((scope, a)) if scope else k.portfolio.positions.get(a)).size
                       or (scope, a) in k.exposure.buys or (scope, a) in k.exposure.sells for a in info.asset_ids)
            fresh = market_outcome_losses(k, m, scope)
            assert k.losses.vector(scope, m) == fresh, (scope, m)
            if live and max(fresh) > 0:
                expect[m] = max(fresh)
        assert {m: k.losses.loss(scope, m) for m in expect} == expect, scope
        assert k.losses.markets(scope) == set(expect), scope
        assert k.losses.total(scope) == sum(expect.values()), scope
        # the caps' shortcut bound covers the total and every market's figure, live or not
        bound = k.losses.bound(scope)
        assert bound >= k.losses.total(scope), scope
        assert all(bound >= max(market_outcome_losses(k, m, scope)) for m in PROP_MARKETS), scope


intent_op = st.tuples(st.just("intent"), st.sampled_from("abc"), st.sampled_from(PROP_ASSETS),
                      st.sampled_from(["BUY", "BUY", "SELL"]), st.integers(5, 95), st.integers(1, 8_000),
                      st.sampled_from(["FAK", "GTC"]))  # fmt: skip
print_op = st.tuples(st.just("print"), st.sampled_from(PROP_ASSETS), st.integers(5, 95), st.integers(1, 5_000),
                     st.sampled_from(["BUY", "SELL", None]))  # fmt: skip
cancel_op = st.tuples(st.just("cancel"), st.integers(0, 50))
move_op = st.tuples(st.just("move"), st.sampled_from(sorted(PROP_MARKETS)), st.integers(5, 94))
ops = st.lists(st.one_of(intent_op, st.one_of(print_op, cancel_op, move_op)), min_size=15, max_size=60)


def prop_book(k: Kernel, t: int, m: str, bid_ticks: int) -> None:
    yes, no = PROP_MARKETS[m].asset_ids
    bids = ((bid_ticks * TICK, 30 * U), ((bid_ticks - 2) * TICK, 50 * U))
    asks = (((bid_ticks + 2) * TICK, 30 * U), ((bid_ticks + 4) * TICK, 50 * U))
    bids = tuple(lv for lv in bids if 0 < lv[0] < U)
    asks = tuple(lv for lv in asks if 0 < lv[0] < U)
    k.process(t, "events", ENCODER.encode([
        BookSnapshot(asset_id=yes, market=m, bids=bids, asks=asks, tick_size=TICK),
        BookSnapshot(asset_id=no, market=m, bids=tuple((U - a, s) for a, s in asks),
                     asks=tuple((U - b, s) for b, s in bids), tick_size=TICK),
    ]))  # fmt: skip


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(ops=ops)
def test_property_caps_hold_after_every_approved_intent(ops: list[tuple[Any, ...]]) -> None:
    k = Kernel(executor=PaperExecutor(cash="100000"), verify_books=False,
               risk=RiskChain([NotionalCaps(per_market="12", per_group="18", total="22"),
                               PositionCaps(max_shares="40")]))  # fmt: skip
    t = T0
    k.process(t, "events", ENCODER.encode(list(PROP_MARKETS.values())))
    for m in PROP_MARKETS:
        t += MS
        prop_book(k, t, m, 40)
    for op in ops:
        t += MS
        if op[0] == "intent":
            _, strat, asset, side, ticks, lots, tif = op
            price = ticks * TICK
            if side == "SELL":
                # FAK only, at a limit below the average cost: the worst-case figures count the
                # open cost basis, so a sale above it would raise them when it fills (see the
                # report on RiskContext.outcome_losses)
                pos = k.portfolio.positions.get(asset)
                if pos is not None and pos.size > 0:
                    avg_ticks = pos.cost * U // pos.size // TICK
                    price = max(TICK, min(price, (avg_ticks - 1) * TICK))
                tif = "FAK"
            it = OrderIntent(strategy=strat, asset_id=asset, market=MARKET_OF[asset], side=side, price=price,
                             size=lots * LOT, tif=tif)  # fmt: skip
            caps = k.risk.validators[0]
            exact = NotionalCaps(per_market="12", per_group="18", total="22")
            exact._shortcut = False
            ctx = RiskContext(k, strat)
            if caps.check(it, ctx).action == "approve":  # the shortcut never approves what the exact caps would not
                assert exact.check(it, ctx).action == "approve", it
            for shares, imbalance in (("40", "0"), ("40", "25"), ("0", "15")):
                fast, slow = PositionCaps(max_shares=shares, max_imbalance=imbalance), PositionCaps(max_shares=shares,
                                                                                                   max_imbalance=imbalance)  # fmt: skip
                slow._shortcut = False
                if fast.check(it, ctx).action == "approve":
                    assert slow.check(it, ctx).action == "approve", (it, shares, imbalance)
            d = k.submit(strat, it)
            if d.approved:
                check_invariants(k)
        elif op[0] == "print":
            _, asset, ticks, lots, side = op
            k.process(t, "events", ENCODER.encode(TradePrint(asset_id=asset, market=MARKET_OF[asset], price=ticks * TICK,
                                                              size=lots * LOT, side=side)))  # fmt: skip
        elif op[0] == "cancel":
            open_ = sorted(o.client_id for o in k.orders.open_orders())
            if open_:
                k.cancel(None, open_[op[1] % len(open_)])
        else:
            prop_book(k, t, op[1], op[2])
        check_invariants(k)  # fills, cancels and price moves never raise them either
        check_loss_book(k)


# ------------------------------------------------------------------------------ neg-risk groups

NEG = {f"e{j}": MarketInfo(market=f"e{j}", asset_ids=(f"ey{j}", f"en{j}"), outcomes=("Yes", "No"), event_id="ev9",
                           neg_risk=True, neg_risk_market_id="nr9") for j in range(3)}  # fmt: skip


def neg_kernel(per_group: str, paper: bool = False) -> Kernel:
    k = Kernel(executor=PaperExecutor(cash="1000") if paper else None, risk=RiskChain([NotionalCaps(per_group=per_group)]),
               verify_books=False)  # fmt: skip
    k.process(T0, "events", ENCODER.encode(list(NEG.values())))
    for j, info in enumerate(NEG.values()):
        yes, no = info.asset_ids
        k.process(T0 + j + 1, "events", ENCODER.encode([
            BookSnapshot(asset_id=yes, market=info.market, bids=((p(0.29), p(100)),), asks=((p(0.30), p(100)),)),
            BookSnapshot(asset_id=no, market=info.market, bids=((p(0.70), p(100)),), asks=((p(0.71), p(100)),)),
        ]))  # fmt: skip
    return k


def test_a_neg_risk_no_basket_is_capped_as_one_event_not_three_markets() -> None:
    """NO on each of a neg-risk event's 3 markets at 0.71 x 10: at most one market's YES wins.
    While a leg is open it may fill alone (a loss of 7.1 if its market's YES wins); once all
    three are held the basket's worst case is 21.3 paid for at least 20 back (1.3), not the
    3 x 7.1 summed per market. A group cap of 8 lets the whole basket through."""
    k = neg_kernel(per_group="8", paper=True)
    ctx = RiskContext(k, "s")
    caps = k.risk.validators[0]
    for j in range(3):
        d = k.submit("s", OrderIntent(strategy="s", asset_id=f"en{j}", market=f"e{j}", side="BUY", price=p(0.71),
                                      size=p(10), tif="FOK"))  # fmt: skip
        assert d.action == "approve", (j, d)
        assert k.portfolio.size(f"en{j}") == p(10)
    assert caps.group_loss(ctx, None, {"e0", "e1", "e2"}) == p(1.3)
    assert sum(k.losses.loss("", m) for m in NEG) == p(21.3)  # what the group cap summed before


def test_open_legs_of_a_neg_risk_basket_count_as_legs_that_may_fill_alone() -> None:
    k = neg_kernel(per_group="8")  # orders rest (the null executor never fills)
    for j in range(3):
        d = k.submit("s", OrderIntent(strategy="s", asset_id=f"en{j}", market=f"e{j}", side="BUY", price=p(0.70),
                                      size=p(10)))  # fmt: skip
        assert d.action == "approve", (j, d)
    # any one may fill alone and lose 7 if its market's YES wins; no two can both lose
    assert k.risk.validators[0].group_loss(RiskContext(k, "s"), None, {"e0", "e1", "e2"}) == p(7)


def test_a_neg_risk_yes_basket_still_counts_the_unlisted_outcome() -> None:
    """YES on each of the 3 markets at 0.30 x 10: the catalog cannot tell whether the event has
    other outcomes, so "no listed market wins" stays a case and the worst case is all 9 paid."""
    k = neg_kernel(per_group="8")
    ds = [k.submit("s", OrderIntent(strategy="s", asset_id=f"ey{j}", market=f"e{j}", side="BUY", price=p(0.30),
                                    size=p(10))) for j in range(3)]  # fmt: skip
    assert [d.action for d in ds[:2]] == ["approve", "approve"] and ds[2].action == "resize"
    assert ds[2].size == p(6.66)  # 3 + 3 + 0.30 x 6.66 = 7.998 <= 8


@settings(max_examples=200, deadline=None)
@given(legs=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["BUY", "SELL"]), st.booleans(),
                               st.integers(1, 99), st.integers(1, 30)), min_size=1, max_size=6))
def test_property_neg_risk_group_loss_is_the_true_worst_case(legs: list[tuple[int, str, bool, int, int]]) -> None:
    """With any open orders on the event's markets, the joint group loss is at least the loss
    in every way the event can resolve (market w's YES wins, or none) with every order filled
    when that hurts, and at most the per-market sum."""
    k = neg_kernel(per_group="0")
    for j, side, yes, ticks, n in legs:
        k.submit("s", OrderIntent(strategy="s", asset_id=f"{'ey' if yes else 'en'}{j}", market=f"e{j}", side=side,
                                  price=ticks * 10_000, size=n * U))  # fmt: skip
    orders = k.orders.open_orders()
    worst = 0
    for w in [None, 0, 1, 2]:  # the market whose YES wins (None: an unlisted outcome)
        loss = 0
        for o in orders:
            j = int(o.asset_id[2:])
            wins = (o.asset_id.startswith("ey")) == (w == j)  # this order's token pays 1
            if o.intent.side == "BUY" and not wins:
                loss += -(-o.intent.price * o.remaining // U)
            elif o.intent.side == "SELL" and wins:
                loss += -(-(U - o.intent.price) * o.remaining // U)
        worst = max(worst, loss)
    caps = k.risk.validators[0]
    group = {m for m in NEG if k.losses.loss("", m)}
    joint = caps.group_loss(RiskContext(k, "s"), None, group) if len(group) > 1 else sum(k.losses.loss("", m) for m in group)
    assert worst <= joint <= sum(k.losses.loss("", m) for m in NEG)


def test_the_caps_bound_keeps_a_closed_positions_loss_across_a_restore() -> None:
    """A position bought at 0.42 and sold at 0.30 is closed with a realized loss; a new order
    in that market counts that loss in its market's worst case, so the shortcut's bound must
    too, after a snapshot restore as well."""
    from polybot.risk.chain import market_outcome_losses

    r = Rig(NotionalCaps(per_market="100"))
    r.fill("y1", 10)  # at the ask, 0.42
    r.book("m1", 0.30, 0.32)
    assert r.submit("y1", "SELL", 0.30, 10, tif="FAK").approved
    assert r.k.portfolio.size("y1") == 0
    loss = max(market_outcome_losses(r.k, "m1", ""))
    assert loss >= p(1.2) and r.k.losses.bound("") >= loss
    k2 = Kernel(executor=PaperExecutor(cash="10000"), risk=RiskChain([NotionalCaps(per_market="100")]), verify_books=False)
    k2.restore(r.k.to_state())
    assert k2.losses.bound("") >= max(market_outcome_losses(k2, "m1", ""))
