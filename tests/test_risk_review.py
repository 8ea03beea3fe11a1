"""Regression tests from a review of the risk chain: each reproduced a confirmed bug, now fixed
(one, the hedged plan, is kept as the documented design)."""

from __future__ import annotations

from typing import Any

import pytest

from polybot.events import (
    ENCODER,
    BookSnapshot,
    Flatten,
    MarketInfo,
    MarketResolved,
    OrderIntent,
    OrderPlan,
    RiskRejected,
    RiskResized,
)
from polybot.execution.paper import PaperExecutor
from polybot.kernel import Kernel
from polybot.risk import Decision, RiskChain
from polybot.risk.chain import TradingStateValidator
from polybot.risk.limits import LossLimits, NotionalCaps, PositionCaps
from polybot.risk.market import DataHealth, ErrorBreaker, RateLimit

U = 1_000_000
NS = 1_000_000_000
MS = 1_000_000
T0 = 1_705_320_000 * NS

MARKETS = {
    "m1": MarketInfo(market="m1", asset_ids=("y1", "n1"), outcomes=("Yes", "No"), event_id="ev1"),
    "m2": MarketInfo(market="m2", asset_ids=("y2", "n2"), outcomes=("Yes", "No"), event_id="ev2"),
}
MARKET_OF = {a: m for m, info in MARKETS.items() for a in info.asset_ids}


def p(x: float) -> int:
    return round(x * U)


def snap(asset: str, market: str, bid: float, ask: float, size: float = 1000) -> BookSnapshot:
    return BookSnapshot(asset_id=asset, market=market, bids=((p(bid), p(size)),), asks=((p(ask), p(size)),),
                        tick_size=10_000)  # fmt: skip


class Rig:
    """Paper executor, m1 and m2 in the catalog, YES books 0.40 / 0.42, NO books 0.58 / 0.60."""

    def __init__(self, *validators: Any) -> None:
        self.k = Kernel(executor=PaperExecutor(cash="10000"), risk=RiskChain(list(validators)), verify_books=False)
        self.t = T0
        self.rejected: list[RiskRejected] = []
        self.resized: list[RiskResized] = []
        self.k.bus.subscribe(RiskRejected, self.rejected.append)
        self.k.bus.subscribe(RiskResized, self.resized.append)
        self.feed(*MARKETS.values())
        for m, info in MARKETS.items():
            yes, no = info.asset_ids
            self.feed(snap(yes, m, 0.40, 0.42), snap(no, m, 0.58, 0.60))

    def feed(self, *evs: Any) -> None:
        self.t += MS
        self.k.process(self.t, "events", ENCODER.encode(list(evs)))

    def submit(self, asset: str, side: str, price: float, size: float, strategy: str = "s", **kw: Any) -> Decision:
        return self.k.submit(strategy, OrderIntent(strategy=strategy, asset_id=asset, market=MARKET_OF.get(asset, ""),
                                                   side=side, price=p(price), size=p(size), **kw))  # type: ignore[arg-type]  # fmt: skip

    def fill(self, asset: str, size: float, strategy: str = "s") -> None:
        """Buy at the ask with the chain bypassed."""
        saved, self.k.risk.validators = self.k.risk.validators, []
        try:
            d = self.submit(asset, "BUY", 0.42 if asset.startswith("y") else 0.60, size, strategy=strategy, tif="FAK")
        finally:
            self.k.risk.validators = saved
        assert d.approved and self.k.portfolio.size(asset, strategy) >= p(size), d


# ------------------------------------------------------------------ plans


def test_a_pair_plan_is_capped_as_two_legs_that_may_fill_alone() -> None:
    """A batch is not atomic (PROTOCOL.md): until both legs fill, either may fill alone, so the
    worst case of a YES+NO plan is its dearer leg filled without the other. The review expected
    the pair to net out as a hedge; by design it does not, and the plan is resized whole."""
    r = Rig(NotionalCaps(per_market="3"))
    legs = (OrderIntent(strategy="s", asset_id="y1", market="m1", side="BUY", price=p(0.42), size=p(20), tif="FAK"),
            OrderIntent(strategy="s", asset_id="n1", market="m1", side="BUY", price=p(0.57), size=p(20), tif="FAK"))  # fmt: skip
    d = r.k.submit("s", OrderPlan(strategy="s", plan_id="", legs=legs))
    assert d.action == "resize", d
    sizes = {o.intent.size for o in r.k.orders.all()}
    assert len(sizes) == 1
    size = sizes.pop()
    assert 0.57 * size / 1e6 <= 3 and 0.57 * (size + 10_000) / 1e6 > 2.9  # the NO leg alone fits the cap


# ------------------------------------------------------------------ flatten


@pytest.mark.parametrize("cap", [PositionCaps(max_imbalance="5"), NotionalCaps(per_market="3")], ids=["max_imbalance", "per_market"])
def test_a_flatten_of_a_pair_sells_everything_through_the_caps(cap: Any) -> None:
    r = Rig(TradingStateValidator(), cap)
    r.fill("y1", 10)
    r.fill("n1", 10)
    r.feed(Flatten(reason="exit", max_slippage=p(0.02)))
    assert r.k.trading_state == "reducing"
    assert (r.k.portfolio.size("y1"), r.k.portfolio.size("n1")) == (0, 0), (r.rejected, r.resized)


def test_a_flatten_runs_after_the_error_breaker_tripped() -> None:
    eb = ErrorBreaker(max_errors=0)
    r = Rig(TradingStateValidator(), eb)
    r.fill("y1", 10)
    eb._error("executor error")  # one error > max_errors 0: trips and halts
    assert r.k.trading_state == "halted"
    r.feed(Flatten(reason="exit", max_slippage=p(0.02)))
    assert r.k.portfolio.size("y1") == 0, [e.reason for e in r.rejected]


# ------------------------------------------------------------------ reduce-only exemption


def test_reduce_only_sells_beyond_the_position_are_throttled() -> None:
    r = Rig(TradingStateValidator(), RateLimit(per_market_per_s=1, burst_market=1))
    r.fill("y1", 10)
    assert r.submit("y1", "SELL", 0.60, 10, reduce_only=True, tif="GTC").approved  # rests: sells all 10 held
    # more sells of the same 10 shares shrink nothing more: not exempt, so the bucket (1) decides
    ds = [r.submit("y1", "SELL", 0.60, 10, reduce_only=True, tif="GTC") for _ in range(3)]
    assert [d.approved for d in ds] == [True, False, False], ds
    assert ds[1].validator == "rate_limit"


# ------------------------------------------------------------------ loss limits


def test_loss_limits_see_a_mark_crash_later_in_the_same_input() -> None:
    r = Rig(TradingStateValidator(), LossLimits(max_daily_loss="50"))
    r.fill("y1", 200)  # 200 YES at 0.42, marked at the 0.40 bid
    out: list[Decision] = []

    def strategy(ev: BookSnapshot) -> None:
        if ev.asset_id == "y2":
            out.append(r.submit("y2", "BUY", 0.35, 10, tif="GTC"))  # resting: no fill

    r.k.bus.subscribe(BookSnapshot, strategy)
    # one frame: m2's book (an order), m1 crashes to 0.05 (net -70 > 50), m2's book again (an order)
    r.feed(snap("y2", "m2", 0.40, 0.42), snap("y1", "m1", 0.05, 0.07), snap("n1", "m1", 0.93, 0.95),
           snap("y2", "m2", 0.40, 0.42))  # fmt: skip
    assert [d.action for d in out] == ["approve", "reject"]
    assert r.k.trading_state == "halted"


# ------------------------------------------------------------------ data health


def test_data_health_refuses_a_resolved_market_without_a_catalog_entry() -> None:
    r = Rig(DataHealth(require_catalog=False))
    r.feed(snap("zz", "mz", 0.30, 0.32))
    r.feed(MarketResolved(market="mz", winning_asset_id="zz2", asset_ids=("zz", "zz2")))
    assert "mz" in r.k.catalog.resolved and r.k.books.get("zz").market == "mz"
    d = r.submit("zz", "BUY", 0.32, 10, tif="GTC")  # intent.market "" (not in the catalog)
    assert d.action == "reject" and "resolved" in d.reason, d
