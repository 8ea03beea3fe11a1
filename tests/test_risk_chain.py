"""The risk chain as configured: built-in validators by name, per-strategy overrides, a flatten
that no throttle can block, and the decisions in the journal and the replay summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.config import ConfigError, parse_config
from polybot.events import ENCODER, BookSnapshot, FeeSchedule, Flatten, MarketInfo, OrderIntent, RiskRejected
from polybot.execution.paper import PaperExecutor
from polybot.kernel import Kernel
from polybot.risk import BUILTIN_VALIDATORS
from polybot.wiring import build_risk

YES, NO, M = "yes", "no", "m1"
U = 1_000_000


def p(x: float) -> int:
    return round(x * U)


def kernel(chain: list[str], validators: dict[str, Any] | None = None, strategies: dict | None = None) -> Kernel:
    cfg = parse_config({"risk": {"chain": chain, "validators": validators or {}, "strategies": strategies or {}}})
    k = Kernel(executor=PaperExecutor(cash="1000"), risk=build_risk(cfg), verify_books=False)
    t = [10**9]

    def feed(*evs: Any) -> None:
        t[0] += 10**6
        k.process(t[0], "events", ENCODER.encode(list(evs)))

    k.feed = feed  # type: ignore[attr-defined]
    feed(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=FeeSchedule(rate_ppm=70_000)))
    feed(BookSnapshot(asset_id=YES, market=M, bids=((p(0.48), p(100)), (p(0.46), p(100))), asks=((p(0.50), p(100)),), tick_size=10_000),
         BookSnapshot(asset_id=NO, market=M, bids=((p(0.50), p(100)),), asks=((p(0.52), p(100)), (p(0.54), p(100))), tick_size=10_000))  # fmt: skip
    return k


def buy(k: Kernel, strategy: str, size: float, price: float = 0.50, asset: str = YES) -> Any:
    return k.submit(strategy, OrderIntent(strategy=strategy, asset_id=asset, market=M, side="BUY", price=p(price), size=p(size), tif="FAK"))


ALL = ["trading_state", "data_health", "exchange_rules", "price_band", "self_trade", "rate_limit", "error_breaker"]


def test_every_builtin_validator_is_registered_and_builds_with_defaults() -> None:
    for name in ALL:
        assert name in BUILTIN_VALIDATORS
    k = kernel(ALL)
    d = buy(k, "s", 10)
    assert d.approved and k.portfolio.size(YES, "s") == p(10)


def test_a_flatten_is_not_blocked_by_throttles_or_bands() -> None:
    k = kernel(ALL, {"price_band": {"ticks": 0}, "rate_limit": {"per_market_per_s": 1, "burst_market": 1}})
    assert buy(k, "s", 10).approved
    refused = buy(k, "s", 10)  # the market's bucket is empty
    assert not refused.approved and refused.validator == "rate_limit"
    k.feed(Flatten(reason="test", max_slippage=p(0.02)))  # sells down to 0.46: 2 ticks under the bid
    assert k.portfolio.size(YES, "s") == 0 and k.trading_state == "reducing"


def test_per_strategy_overrides_get_their_own_instance() -> None:
    k = kernel(["price_band"], {"price_band": {"ticks": 5}}, {"tight": {"price_band": {"ticks": 0}}})
    assert buy(k, "loose", 10, price=0.53).approved  # 3 ticks above the ask: within 5
    d = buy(k, "tight", 10, price=0.53)
    assert not d.approved and d.validator == "price_band"
    assert k.risk.chain_for("tight")[0] is not k.risk.chain_for("loose")[0]


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="risk.chain: unknown validator 'nope'"):
        build_risk(parse_config({"risk": {"chain": ["nope"]}}))
    with pytest.raises(ConfigError, match=r"risk.validators.price_band: ticks"):
        build_risk(parse_config({"risk": {"chain": ["price_band"], "validators": {"price_band": {"ticks": -1}}}}))
    with pytest.raises(ConfigError, match=r"risk.strategies.s: rate_limit not in risk.chain"):
        build_risk(parse_config({"risk": {"chain": ["price_band"], "strategies": {"s": {"rate_limit": {}}}}}))
    with pytest.raises(ConfigError, match=r"risk.strategies.s.price_band: "):
        build_risk(parse_config({"risk": {"chain": ["price_band"], "strategies": {"s": {"price_band": {"bogus": 1}}}}}))


def test_decisions_are_events_with_the_validator_and_a_reason() -> None:
    k = kernel(["trading_state", "price_band"], {"price_band": {"ticks": 1}})
    seen: list[RiskRejected] = []
    k.bus.subscribe(RiskRejected, seen.append)
    buy(k, "s", 10, price=0.55)
    assert [(e.validator, e.strategy) for e in seen] == [("price_band", "s")]
    assert "0.55" in seen[0].reason and "0.5" in seen[0].reason


def _second_market(k: Kernel) -> None:
    k.feed(MarketInfo(market="m2", asset_ids=("y2", "n2"), outcomes=("Yes", "No")),  # type: ignore[attr-defined]
           BookSnapshot(asset_id="y2", market="m2", bids=((p(0.38), p(500)),), asks=((p(0.40), p(500)),), tick_size=10_000))  # fmt: skip


def test_a_plan_is_checked_whole_against_sum_caps() -> None:
    from polybot.events import OrderPlan

    from polybot.risk import RiskContext

    def plan(k: Kernel) -> Any:
        legs = tuple(OrderIntent(strategy="s", asset_id=a, market=m, side="BUY", price=p(0.40), size=p(20), tif="GTC")
                     for a, m in (("y2", "m2"), ("yes", M)))  # fmt: skip
        return k.submit("s", OrderPlan(strategy="s", plan_id="", legs=legs))

    # alone each leg (8 + fees) fits under 10; together they do not, and no equal size >= the
    # market minimum fits beside the first leg: the plan is rejected whole
    k = kernel(["notional_caps"], {"notional_caps": {"total": "10"}})
    _second_market(k)
    d = plan(k)
    assert d.action == "reject" and "total" in d.reason and not k.orders.all()
    # with room for about 13.6 shares a leg: resized, every leg to the same share count
    k = kernel(["notional_caps"], {"notional_caps": {"total": "14"}})
    _second_market(k)
    d = plan(k)
    assert d.action == "resize"
    sizes = {o.intent.size for o in k.orders.all()}
    assert len(sizes) == 1 and sizes.pop() < p(20)
    assert RiskContext(k, "").total_loss() <= p(14)


def test_realized_profit_counts_in_the_market_worst_case() -> None:
    from polybot.risk import RiskContext

    k = kernel(["notional_caps"], {"notional_caps": {"per_market": "5"}})
    assert buy(k, "s", 10, price=0.50).approved  # YES at 0.50
    assert buy(k, "s", 10, price=0.52, asset=NO).approved  # NO at 0.52: pairs cost 1.02 + fees
    ctx = RiskContext(k, "")
    before = ctx.market_loss(M)
    d = k.submit("s", OrderIntent(strategy="s", asset_id=YES, market=M, side="SELL", price=p(0.48), size=p(10), tif="FAK"))
    assert d.approved
    after = ctx.market_loss(M)
    assert after <= p(5) and after >= before  # sold at a loss: the worst case is what was lost


@settings(max_examples=500, deadline=None)
@given(price=st.integers(0, 1_000_000), size=st.integers(0, 10**12), rate=st.integers(0, 1_000_000),
       exponent=st.integers(0, 3))
def test_intent_loss_of_a_buy_is_max_buy_cost(price: int, size: int, rate: int, exponent: int) -> None:
    """The inlined fast path of intent_loss agrees with rules.max_buy_cost for every schedule."""
    from polybot.events import FeeSchedule
    from polybot.execution.rules import max_buy_cost
    from polybot.risk.chain import intent_loss

    sched = FeeSchedule(rate_ppm=rate, exponent=exponent)
    assert intent_loss("BUY", price, size, sched) == max_buy_cost(size, price, sched)
    assert intent_loss("BUY", price, size, None) == max_buy_cost(size, price, None)


@settings(max_examples=300, deadline=None)
@given(vec=st.lists(st.integers(-10**9, 10**9), min_size=1, max_size=4), data=st.data(),
       side=st.sampled_from(["BUY", "SELL"]), loss=st.integers(0, 10**9), live=st.integers(0, 10**9))
def test_loss_book_with_order_matches_the_vector_rule(vec: list[int], data: Any, side: str, loss: int, live: int) -> None:
    """LossBook.with_order (the caps' one-call fast path, unrolled for binary markets) agrees
    with with_order() on the cached vector, and reports the book's current loss."""
    from polybot.risk.chain import LossBook, with_order

    i = data.draw(st.integers(0, len(vec) - 1))
    book = LossBook(kernel=None)  # type: ignore[arg-type]
    book.vecs[""] = {"m": list(vec)}
    book.by_scope[""] = {"m": live}
    assert book.with_order("", "m", i, side, loss) == (live, with_order(vec, i, side, loss))
    assert book.vecs[""]["m"] == vec  # read only
