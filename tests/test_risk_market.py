"""polybot.risk.market: data health, exchange rules, price band, self-trade, rate limit, breaker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.events import (
    ENCODER,
    BookDelta,
    BookSnapshot,
    CancelSubmitted,
    FeedDisconnected,
    HandlerError,
    MarketInfo,
    MarketResolved,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStateError,
    Resume,
    RiskRejected,
    TradePrint,
    TradingStateChanged,
)
from polybot.execution import RecordedExecutor
from polybot.kernel import Kernel
from polybot.risk import RiskChain, RiskContext, TradingStateValidator
from polybot.risk.market import (
    VALIDATORS,
    DataHealth,
    ErrorBreaker,
    ExchangeRules,
    PriceBand,
    RateLimit,
    SelfTrade,
)

S = 1_000_000  # one share / one dollar
SEC = 1_000_000_000
YES, NO = "yes-token", "no-token"
YES2, NO2 = "yes-2", "no-2"
T0 = 1_000 * SEC
END = T0 + 3_600 * SEC


def info(market: str = "m1", assets: tuple[str, str] = (YES, NO), **kw: Any) -> MarketInfo:
    kw.setdefault("end_ts", END)
    return MarketInfo(market=market, asset_ids=assets, outcomes=("Yes", "No"), **kw)


def book(asset: str = YES, bid: int = 540_000, ask: int = 550_000, market: str = "m1", tick: int = 10_000) -> BookSnapshot:
    bids = ((bid, 100 * S),) if bid else ()
    asks = ((ask, 100 * S),) if ask else ()
    return BookSnapshot(asset_id=asset, market=market, bids=bids, asks=asks, tick_size=tick)


def feed(k: Kernel, ts: int, *events: Any) -> None:
    k.process(ts, "events", ENCODER.encode(list(events)))


def tick(k: Kernel, ts: int) -> None:
    k.process(ts, "clock", b"{}")


def kernel(*validators: Any, executor: Any = None, markets: bool = True) -> Kernel:
    k = Kernel(risk=RiskChain(list(validators)), verify_books=False, executor=executor)
    if markets:
        feed(k, T0, info(), info("m2", (YES2, NO2)), book(), book(NO, 440_000, 460_000),
             book(YES2, market="m2"), book(NO2, 440_000, 460_000, market="m2"))  # fmt: skip
    return k


def it(asset: str = YES, side: str = "BUY", price: int = 540_000, size: int = 10 * S, **kw: Any) -> OrderIntent:
    return OrderIntent(strategy="s", asset_id=asset, side=side, price=price, size=size, **kw)  # type: ignore[arg-type]


def hold(k: Kernel, asset: str, size: int) -> None:
    k.portfolio.apply_fill("s", OrderFilled(client_id="x", trade_id="t", side="BUY", price=500_000, size=size,
                                            liquidity="taker", asset_id=asset))  # fmt: skip


def rec(k: Kernel, *types: type) -> list:
    out: list = []
    for t in types:
        k.bus.subscribe(t, out.append)
    return out


# ------------------------------------------------------------------------------ registry, params


def test_registry_names_match_defaults():
    assert set(VALIDATORS) == {"data_health", "exchange_rules", "price_band", "self_trade", "rate_limit",
                               "error_breaker"}  # fmt: skip
    for name, cls in VALIDATORS.items():
        assert cls().name == name
        assert cls(**{}).check  # built from an empty TOML table


@pytest.mark.parametrize(
    ("cls", "kw", "param"),
    [
        (DataHealth, {"max_book_age_s": -1}, "max_book_age_s"),
        (DataHealth, {"max_book_age_s": "soon"}, "max_book_age_s"),
        (DataHealth, {"settlement_buffer_s": float("inf")}, "settlement_buffer_s"),
        (DataHealth, {"require_catalog": "yes"}, "require_catalog"),
        (DataHealth, {"allow_reducing_on_stale": 1}, "allow_reducing_on_stale"),
        (DataHealth, {"name": ""}, "name"),
        (ExchangeRules, {"default_tick": 0.0000001}, "default_tick"),
        (ExchangeRules, {"default_tick": "0.0000001"}, "default_tick"),
        (ExchangeRules, {"default_tick": 0}, "default_tick"),
        (ExchangeRules, {"default_tick": 1}, "default_tick"),
        (ExchangeRules, {"default_min_size": -5}, "default_min_size"),
        (ExchangeRules, {"default_min_size": True}, "default_min_size"),
        (PriceBand, {"ticks": -1}, "ticks"),
        (PriceBand, {"ticks": 2.5}, "ticks"),
        (PriceBand, {"allow_empty_book": "no"}, "allow_empty_book"),
        (SelfTrade, {"per_strategy": None}, "per_strategy"),
        (SelfTrade, {"ignore_cancel_pending": 0}, "ignore_cancel_pending"),
        (RateLimit, {"per_market_per_s": -1}, "per_market_per_s"),
        (RateLimit, {"per_market_per_s": 0.1234567}, "per_market_per_s"),
        (RateLimit, {"burst_market": 0.5}, "burst_market"),
        (RateLimit, {"global_per_s": "fast"}, "global_per_s"),
        (RateLimit, {"burst_global": 0}, "burst_global"),
        (RateLimit, {"cancels_per_s": [1]}, "cancels_per_s"),
        (RateLimit, {"burst_cancels": 0}, "burst_cancels"),
        (ErrorBreaker, {"max_errors": -1}, "max_errors"),
        (ErrorBreaker, {"max_errors": 2.0}, "max_errors"),
        (ErrorBreaker, {"window_s": 0}, "window_s"),
        (ErrorBreaker, {"ignore_reasons": "killed"}, "ignore_reasons"),
    ],
)
def test_bad_params_name_the_param(cls, kw, param):  # noqa: ANN001
    with pytest.raises(ValueError, match=f"^{param}: "):
        cls(**kw)


def test_human_units_are_converted_exactly():
    assert ExchangeRules(default_tick=0.001)._default_tick == 1_000
    assert ExchangeRules(default_tick="0.0025", default_min_size=15)._min_size == 15 * S
    assert DataHealth(max_book_age_s=2.5)._max_age_ns == 2_500_000_000
    assert DataHealth(settlement_buffer_s=0)._buffer_ns == 0
    r = RateLimit(per_market_per_s=0.5, burst_market="2", global_per_s=0, burst_global=0, cancels_per_s=0)
    assert r._market_b.rate == 500_000 and r._market_b.cap == 2 * SEC and r._global_b.rate == 0
    assert ErrorBreaker(window_s=1)._window_ns == SEC


def test_no_validator_resizes():
    k = kernel(DataHealth(), ExchangeRules(), PriceBand(), SelfTrade(), RateLimit(), ErrorBreaker())
    decisions = [k.submit("s", it(size=s)) for s in (5 * S, 10 * S, 50 * S)]
    assert [d.action for d in decisions] == ["approve"] * 3


# ------------------------------------------------------------------------------ data_health


def test_data_health_passes_a_fresh_book_of_an_open_market():
    k = kernel(DataHealth(max_book_age_s=5))
    d = k.submit("s", it())
    assert d.action == "approve"


def test_data_health_rejects_a_missing_or_unhealthy_book():
    k = kernel(DataHealth())
    d = k.submit("s", it(asset="nobook"))
    assert not d.approved and d.validator == "data_health" and "no order book for asset nobook" in d.reason
    feed(k, T0 + 1, FeedDisconnected(feed="market", asset_ids=(YES,)))
    d = k.submit("s", it())
    assert not d.approved and "unhealthy" in d.reason and "reconnect (market)" in d.reason
    feed(k, T0 + 2, book())  # a snapshot heals it
    assert k.submit("s", it()).approved


def test_data_health_rejects_a_stale_book_and_age_follows_kernel_time():
    k = kernel(DataHealth(max_book_age_s=10))
    tick(k, T0 + 10 * SEC)
    assert k.submit("s", it()).approved, "exactly 10 s is not older than 10 s"
    tick(k, T0 + 12_500_000_000)
    d = k.submit("s", it())
    assert not d.approved and d.reason == "the book of yes-token is 12.5 s old (max_book_age_s is 10 s)"
    feed(k, T0 + 13 * SEC, BookDelta(asset_id=YES, side="BID", price=530_000, size=S))
    assert k.submit("s", it()).approved
    assert kernel(DataHealth()).submit("s", it()).approved  # age 0 = not checked


def test_data_health_lets_reducing_orders_pass_a_stale_book_when_allowed():
    for allow, expect in ((False, False), (True, True)):
        k = kernel(DataHealth(allow_reducing_on_stale=allow))
        hold(k, YES, 20 * S)
        feed(k, T0 + 1, FeedDisconnected(feed="market", asset_ids=(YES,)))
        assert k.submit("s", it(side="SELL", price=540_000, size=20 * S)).approved is expect
        d = k.submit("s", it(side="SELL", price=540_000, size=30 * S))  # more than held: not reducing
        assert not d.approved and "unhealthy" in d.reason
        assert not k.submit("s", it(side="BUY")).approved


def test_data_health_market_checks():
    k = kernel(DataHealth())
    feed(k, T0, info(closed=True))
    assert k.submit("s", it()).reason == "market m1 is closed"
    feed(k, T0, info(accepting_orders=False))
    assert k.submit("s", it()).reason == "market m1 is not accepting orders"
    feed(k, T0, info(), MarketResolved(market="m1", winning_asset_id=YES))
    assert k.submit("s", it()).reason == "market m1 is resolved"
    assert k.submit("s", it(asset=YES2)).approved


def test_data_health_settlement_buffer():
    k = kernel(DataHealth(settlement_buffer_s=60))
    tick(k, END - 61 * SEC)
    assert k.submit("s", it()).approved
    tick(k, END - 42 * SEC)
    d = k.submit("s", it())
    assert not d.approved and d.reason == "market m1 ends in 42 s, inside the settlement buffer of 60 s"
    tick(k, END + 5 * SEC)
    assert "ended 5 s ago" in k.submit("s", it()).reason
    feed(k, END + 6 * SEC, info("m3", ("a3", "b3"), end_ts=0), book("a3", market="m3"))
    assert k.submit("s", it(asset="a3")).approved, "no end time: nothing to buffer"


def test_data_health_requires_a_catalog_entry_unless_told_not_to():
    k = kernel(DataHealth(), markets=False)
    feed(k, T0, book("loose", market=""))
    d = k.submit("s", it(asset="loose"))
    assert not d.approved and d.reason == "no catalog entry for asset loose"
    k2 = kernel(DataHealth(require_catalog=False), markets=False)
    feed(k2, T0, book("loose", market=""))
    assert k2.submit("s", it(asset="loose")).approved


# ------------------------------------------------------------------------------ exchange_rules


def test_exchange_rules_pass():
    k = kernel(ExchangeRules())
    assert k.submit("s", it(price=540_000, size=5 * S)).approved  # resting, at the minimum
    assert k.submit("s", it(price=550_000, size=2 * S)).approved  # marketable: $1.10
    assert k.submit("s", it(tif="FAK", kind="market", price=550_000, size=2 * S)).approved


def test_exchange_rules_reject_tick_range_size_and_tif():
    k = kernel(ExchangeRules())
    cases = [
        (it(price=545_000), "tick: price 0.545 is not on the 0.01 tick grid"),
        (it(price=995_000), "tick: price 0.995 is not on the 0.01 tick grid"),  # (1 itself: the kernel's sanity check)
        (it(price=530_000, size=4 * S), "min size: resting order of 4 shares is below the market minimum of 5"),
        (it(price=550_000, size=S), "min size: $1: marketable BUY worth 0.55 at its limit"),
        (it(side="SELL", price=540_000, size=S), "min size: $1: marketable SELL worth 0.54 at its limit"),
        (it(price=550_000, post_only=True), "post_only: the order would cross the book"),
        (it(post_only=True, tif="FOK"), "post_only: only with GTC/GTD, not FOK"),
        (it(kind="market", tif="GTC"), "market order: tif must be FOK or FAK, not GTC"),
        (it(tif="GTD", expire_ts=T0 + 30 * SEC), "GTD: expire_ts must be at least 60 s after now"),
    ]
    for intent, reason in cases:
        d = k.submit("s", intent)
        assert not d.approved and d.validator == "exchange_rules"
        assert d.reason.startswith(reason), (intent, d.reason)
    assert k.submit("s", it(tif="GTD", expire_ts=T0 + 60 * SEC)).approved


def test_exchange_rules_tick_from_book_then_catalog_then_default():
    k = kernel(ExchangeRules(), markets=False)
    feed(k, T0, info("m9", ("fine", "other"), tick_size=1_000, min_order_size=S), book("fine", 500_000, 510_000, "m9", tick=0))
    assert k.submit("s", it(asset="fine", price=505_000, size=S * 2)).approved, "catalog tick 0.001"
    feed(k, T0, book("fine", 500_000, 510_000, "m9", tick=10_000))
    assert "0.01 tick grid" in k.submit("s", it(asset="fine", price=505_000, size=2 * S)).reason, "book tick wins"
    k2 = kernel(ExchangeRules(default_tick="0.001", default_min_size=1), markets=False)
    feed(k2, T0, book("bare", 500_000, 510_000, "", tick=0))
    assert k2.submit("s", it(asset="bare", price=505_000, size=S)).approved
    assert not kernel(ExchangeRules(), markets=False).submit("s", it(asset="bare", price=505_000)).approved


# ------------------------------------------------------------------------------ price_band


def test_price_band_passes_within_the_band():
    k = kernel(PriceBand(ticks=2))
    assert k.submit("s", it(price=570_000)).approved  # ask 0.55 + 2 ticks
    assert k.submit("s", it(side="SELL", price=520_000)).approved  # bid 0.54 - 2 ticks


def test_price_band_rejects_fat_fingers():
    k = kernel(PriceBand(ticks=2))
    d = k.submit("s", it(price=580_000))
    assert not d.approved and d.validator == "price_band"
    assert d.reason == "buy at 0.58 is more than 2 ticks above the best ask 0.55 (limit 0.57)"
    d = k.submit("s", it(side="SELL", price=510_000))
    assert d.reason == "sell at 0.51 is more than 2 ticks below the best bid 0.54 (limit 0.52)"
    assert kernel(PriceBand(ticks=0)).submit("s", it(price=560_000)).reason.startswith("buy at 0.56 is more than 0 ticks")
    assert "1 tick above" in kernel(PriceBand(ticks=1)).submit("s", it(price=570_000)).reason


def test_price_band_one_sided_and_empty_books():
    k = kernel(PriceBand(ticks=1))
    feed(k, T0 + 1, book(YES, bid=400_000, ask=0))
    assert k.submit("s", it(price=410_000)).approved
    assert k.submit("s", it(price=420_000)).reason == (
        "buy at 0.42 is more than 1 tick above the best bid (no asks) 0.4 (limit 0.41)")
    feed(k, T0 + 2, book(YES, bid=0, ask=600_000))
    assert k.submit("s", it(side="SELL", price=590_000)).approved
    assert "below the best ask (no bids) 0.6" in k.submit("s", it(side="SELL", price=580_000)).reason
    feed(k, T0 + 3, book(YES, bid=0, ask=0))
    d = k.submit("s", it())
    assert not d.approved and "an empty order book, no price to compare with" in d.reason
    assert "no order book" in k.submit("s", it(asset="ghost")).reason
    k2 = kernel(PriceBand(allow_empty_book=True))
    feed(k2, T0 + 3, book(YES, bid=0, ask=0))
    assert k2.submit("s", it()).approved


def test_price_band_uses_the_books_tick():
    k = kernel(PriceBand(ticks=2), markets=False)
    feed(k, T0, book("fine", 500_000, 510_000, "m9", tick=1_000))
    assert k.submit("s", it(asset="fine", price=512_000)).approved
    assert "(limit 0.512)" in k.submit("s", it(asset="fine", price=513_000)).reason


# ------------------------------------------------------------------------------ self_trade


def test_self_trade_same_token():
    k = kernel(SelfTrade())
    assert k.submit("a", it(side="SELL", price=560_000)).approved  # resting ask pb-1
    assert k.submit("a", it(price=550_000)).approved  # below own ask: fine
    d = k.submit("b", it(price=560_000))
    assert not d.approved and d.validator == "self_trade"
    assert d.reason == "buy at 0.56 would trade with own resting sell pb-1 at 0.56 (strategy 'a') on yes-token"
    assert not k.submit("a", it(side="SELL", price=550_000)).approved  # crosses own bid pb-2
    assert k.submit("a", it(side="SELL", price=560_000)).approved


def test_self_trade_complement_token():
    k = kernel(SelfTrade())
    assert k.submit("a", it(NO, price=440_000)).approved  # own NO bid 0.44
    assert k.submit("a", it(YES, price=550_000)).approved  # 0.55 + 0.44 < 1
    d = k.submit("a", it(YES, price=560_000))
    assert not d.approved and "own resting buy pb-1 at 0.44 on the complement token no-token" in d.reason
    assert "0.56 + 0.44 >= 1" in d.reason
    k = kernel(SelfTrade())
    assert k.submit("a", it(NO, side="SELL", price=600_000)).approved  # own NO ask 0.60
    assert k.submit("a", it(YES, side="SELL", price=410_000)).approved  # 0.41 + 0.6 > 1
    d = k.submit("b", it(YES, side="SELL", price=400_000))
    assert not d.approved and "own resting sell pb-1 at 0.6 on the complement token no-token (strategy 'a')" in d.reason
    assert "0.4 + 0.6 <= 1" in d.reason
    assert k.submit("a", it(YES2, price=990_000)).approved, "another market is not the complement"


def test_self_trade_scope_and_terminal_orders():
    k = kernel(SelfTrade(per_strategy=True))
    assert k.submit("a", it(side="SELL", price=560_000)).approved
    assert k.submit("b", it(price=560_000)).approved, "per strategy: b may trade with a"
    assert not k.submit("a", it(price=560_000)).approved
    k.cancel(None, "pb-1")  # the null executor confirms at once: no longer resting
    assert k.submit("a", it(price=560_000)).approved


def test_self_trade_cancel_pending_counts_unless_ignored():
    for ignore, expect in ((False, False), (True, True)):
        k = kernel(SelfTrade(ignore_cancel_pending=ignore), executor=RecordedExecutor("venue"))
        k.submit("a", it(side="SELL", price=560_000))
        assert k.cancel(None, "pb-1") and k.orders.get("pb-1").state == "cancel_pending"
        assert k.submit("a", it(price=560_000)).approved is expect


# ------------------------------------------------------------------------------ rate_limit


def rate(**kw: Any) -> RateLimit:
    base: dict[str, Any] = dict(per_market_per_s=1, burst_market=2, global_per_s=100, burst_global=100,
                                cancels_per_s=100, burst_cancels=100)  # fmt: skip
    return RateLimit(**(base | kw))


def test_rate_limit_per_market_bucket_refills_with_kernel_time():
    k = kernel(rate())
    assert k.submit("s", it()).approved and k.submit("s", it()).approved
    d = k.submit("s", it())
    assert not d.approved and d.validator == "rate_limit"
    assert d.reason == "rate limit: market m1 allows 1 new orders/s (burst 2); next in 1 s"
    assert k.submit("s", it(YES2)).approved, "another market has its own bucket"
    assert k.submit("s", it(NO)).approved is False, "both tokens of m1 share its bucket"
    tick(k, T0 + SEC // 2)
    assert "next in 0.5 s" in k.submit("s", it()).reason
    tick(k, T0 + SEC)
    assert k.submit("s", it()).approved
    assert not k.submit("s", it()).approved
    tick(k, T0 + 100 * SEC)  # refills to the burst, not beyond
    assert [k.submit("s", it()).approved for _ in range(3)] == [True, True, False]


def test_rate_limit_global_bucket():
    k = kernel(rate(per_market_per_s=100, burst_market=100, global_per_s=2, burst_global=3))
    assert [k.submit("s", it(a)).approved for a in (YES, YES2, NO)] == [True, True, True]
    d = k.submit("s", it(NO2))
    assert d.reason == "rate limit: the account allows 2 new orders/s (burst 3); next in 0.5 s"
    tick(k, T0 + SEC // 2)
    assert k.submit("s", it(NO2)).approved


def test_rate_limit_takes_tokens_only_when_it_approves():
    # a market bucket with tokens is not charged when the global bucket refuses
    k = kernel(rate(per_market_per_s=1, burst_market=1, global_per_s=1, burst_global=1))
    assert k.submit("s", it()).approved
    assert not k.submit("s", it(YES2)).approved  # global empty: m2 not charged
    tick(k, T0 + SEC)
    assert k.submit("s", it(YES2)).approved


def test_rate_limit_charges_a_plan_leg_once_across_resize_rounds():
    r = rate(per_market_per_s=1, burst_market=2)
    k = kernel(r)
    ctx = RiskContext(k, "s")
    leg = it(client_id="pb-77", plan_id="plan-1")
    assert r.check(leg, ctx).approved and r.check(leg, ctx).approved and r.check(leg, ctx).approved
    assert r.check(it(client_id="pb-78", plan_id="plan-1"), ctx).approved
    assert not r.check(it(client_id="pb-79", plan_id="plan-1"), ctx).approved


def test_cancel_throttle_counts_real_cancels_and_never_blocks_them():
    k = kernel(rate(per_market_per_s=100, burst_market=100, cancels_per_s=1, burst_cancels=2),
               executor=RecordedExecutor("venue"))  # fmt: skip
    cancels = rec(k, CancelSubmitted)
    for _ in range(3):
        assert k.submit("s", it()).approved
    assert k.cancel(None, "pb-1")
    assert k.submit("s", it()).approved, "one cancel left in the bucket"
    assert k.cancel(None, "pb-2")
    d = k.submit("s", it())
    assert not d.approved and d.reason == (
        "cancel/replace throttle: market m1 is cancelling faster than 1 cancels/s (burst 2); "
        "new orders there wait 1 s")
    assert k.cancel(None, "pb-3"), "cancels themselves are never blocked"
    assert len(cancels) == 3
    assert k.submit("s", it(YES2)).approved, "other markets are not throttled"
    tick(k, T0 + SEC)
    assert k.submit("s", it(NO)).approved, "the empty bucket stayed at zero: one second refills a token"


def test_rate_limit_state_round_trips_through_the_kernel_snapshot():
    def build() -> Kernel:
        return kernel(rate(cancels_per_s=1, burst_cancels=1), executor=RecordedExecutor("venue"))

    k = build()
    assert k.submit("s", it()).approved
    k.cancel(None, "pb-1")
    tick(k, T0 + SEC // 4)
    st = json.loads(json.dumps(k.to_state()))
    assert st["risk"]["/rate_limit"] == {
        "markets": {"m1": [SEC, T0]},
        "global": [99 * SEC, T0],
        "cancels": {"m1": [0, T0]},
    }
    k2 = build()
    k2.restore(st)
    assert json.loads(json.dumps(k2.to_state())) == st
    d = k2.submit("s", it())
    assert not d.approved and "wait 0.75 s" in d.reason
    tick(k2, T0 + SEC)  # the market bucket: 1 restored + 1 refilled
    assert [k2.submit("s", it()).approved for _ in range(3)] == [True, True, False]


def test_rate_limit_zero_rate_turns_a_bucket_off():
    k = kernel(RateLimit(per_market_per_s=0, global_per_s=0, cancels_per_s=0))
    assert all(k.submit("s", it()).approved for _ in range(200))
    assert k.risk.to_state()["/rate_limit"] == {"markets": {}, "global": None, "cancels": {}}


# ------------------------------------------------------------------------------ error_breaker


def rejected(cid: str, reason: str = "not enough balance / allowance") -> OrderRejected:
    return OrderRejected(client_id=cid, reason=reason)


def test_error_breaker_passes_until_tripped():
    k = kernel(ErrorBreaker())
    assert k.submit("s", it()).approved


def test_error_breaker_trips_after_n_rejections_and_halts_the_kernel():
    b = ErrorBreaker(max_errors=3, window_s=60)
    k = kernel(TradingStateValidator(), b, executor=RecordedExecutor("venue"))
    states = rec(k, TradingStateChanged)
    for i in range(5):
        k.submit("s", it())
    for n, cid in enumerate(["pb-1", "pb-2", "pb-3"]):
        k.process(T0 + n + 1, "exec.venue", ENCODER.encode([rejected(cid)]))
    assert k.trading_state == "active" and not b.tripped, "3 errors is not more than 3"
    k.process(T0 + 10, "exec.venue", ENCODER.encode([rejected("pb-4")]))
    assert b.tripped and k.trading_state == "halted"
    assert len(states) == 1 and states[0].state == "halted" and states[0].previous == "active"
    assert states[0].reason == (
        "error breaker: 4 errors within 60 s (max 3); last: order pb-4 rejected: not enough balance / allowance")
    d = RiskChain([b]).check_intent(it(), RiskContext(k, "s"))[0]
    assert not d.approved and d.validator == "error_breaker" and d.reason.endswith("resume trading to re-arm")
    k.process(T0 + 11, "exec.venue", ENCODER.encode([rejected("pb-5")]))
    assert len(states) == 1, "halt is called once"
    # resume re-arms with an empty window
    k.process(T0 + 20, "control", Resume(reason="operator"))
    assert k.trading_state == "active" and not b.tripped
    assert k.submit("s", it()).approved
    k.process(T0 + 21, "exec.venue", ENCODER.encode([rejected("pb-6")]))
    assert not b.tripped


def test_error_breaker_counts_an_illegal_rejection_once():
    # through the null executor: orders are accepted at once, so a later rejection is also an
    # illegal transition (OrderStateError); one incident, one error
    b = ErrorBreaker(max_errors=2)
    k = kernel(b)
    errs = rec(k, OrderStateError)
    for _ in range(3):
        k.submit("s", it())
    for n, cid in enumerate(["pb-1", "pb-2"]):
        k.process(T0 + n + 1, "exec.null", ENCODER.encode([rejected(cid)]))
    assert len(errs) == 2 and not b.tripped
    k.process(T0 + 3, "exec.null", ENCODER.encode([rejected("pb-3")]))
    assert b.tripped and k.trading_state == "halted"
    assert not k.submit("s", it()).approved


def test_error_breaker_window_is_kernel_time():
    b = ErrorBreaker(max_errors=2, window_s=10)
    k = kernel(b, executor=RecordedExecutor("venue"))
    for _ in range(4):
        k.submit("s", it())
    for n, cid in enumerate(["pb-1", "pb-2", "pb-3"]):
        k.process(T0 + n * 6 * SEC, "exec.venue", ENCODER.encode([rejected(cid)]))
    assert not b.tripped, "never more than 2 within 10 s"
    k.process(T0 + 13 * SEC, "exec.venue", ENCODER.encode([rejected("pb-4")]))
    assert b.tripped


def test_error_breaker_ignores_kills_and_counts_handler_and_state_errors():
    b = ErrorBreaker(max_errors=1)
    k = kernel(b, executor=RecordedExecutor("venue"))
    k.submit("s", it(tif="FOK"))
    k.submit("s", it(tif="FAK"))
    k.submit("s", it(price=530_000, post_only=True))
    k.process(T0 + 1, "exec.venue", ENCODER.encode([
        rejected("pb-1", "order couldn't be fully filled. FOK orders are fully filled or killed."),
        rejected("pb-2", "no orders found to match with FAK order. FAK orders are partially filled or killed"),
        rejected("pb-3", "post-only order would cross the book"),  # the book moved onto a maker quote
    ]))  # fmt: skip
    assert not b.tripped and list(b.errors) == []

    def boom(ev: TradePrint) -> None:
        raise RuntimeError("strategy bug")

    k.bus.subscribe(TradePrint, boom)
    handler_errors = rec(k, HandlerError)
    feed(k, T0 + 2, TradePrint(asset_id=YES, price=550_000, size=S))
    assert len(handler_errors) == 1 and not b.tripped
    k.process(T0 + 3, "exec.venue", ENCODER.encode([OrderFilled(client_id="nope", trade_id="t", side="BUY",
                                                                price=1, size=1, liquidity="taker")]))  # fmt: skip
    assert b.tripped and "order nope: unknown order 'nope'" in b.reason
    rejects = rec(k, RiskRejected)
    k.submit("s", it())
    assert rejects[-1].validator == "error_breaker"


def test_error_breaker_state_round_trips_and_stays_tripped_after_restart():
    def build() -> tuple[Kernel, ErrorBreaker]:
        b = ErrorBreaker(max_errors=0)
        return kernel(b, executor=RecordedExecutor("venue")), b

    k, b = build()
    k.submit("s", it())
    k.process(T0 + 1, "exec.venue", ENCODER.encode([rejected("pb-1")]))
    assert b.tripped
    st = json.loads(json.dumps(k.to_state()))
    assert st["risk"]["/error_breaker"]["tripped"] is True
    k2, b2 = build()
    k2.restore(st)
    assert b2.tripped and k2.trading_state == "halted"
    assert not RiskChain([b2]).check_intent(it(), RiskContext(k2, "s"))[0].approved
    k2.process(T0 + 2, "control", Resume())
    assert not b2.tripped and k2.submit("s", it()).approved
    # errors inside the window survive a restart too
    k3, b3 = build()
    b3.restore({"tripped": False, "reason": "", "errors": [T0]})
    assert b3.to_state() == {"tripped": False, "reason": "", "errors": [T0]}


def test_error_breaker_restored_tripped_into_an_active_kernel_re_arms():
    b = ErrorBreaker()
    k = kernel(b)
    b.restore({"tripped": True, "reason": "error breaker: old", "errors": []})
    assert not b.tripped and k.submit("s", it()).approved
    k.halt("operator")
    b.restore({"tripped": True, "reason": "error breaker: old", "errors": []})
    assert b.tripped


@settings(max_examples=400, deadline=None)
@given(side=st.sampled_from(["BUY", "SELL"]), ticks=st.integers(-2, 102), lots=st.integers(-1, 3_000),
       tif=st.sampled_from(["GTC", "GTD", "FOK", "FAK"]), kind=st.sampled_from(["limit", "market"]),
       post_only=st.booleans(), tick=st.sampled_from([1_000, 10_000, 20_000]), off_grid=st.booleans(),
       expire_s=st.integers(0, 120))
def test_exchange_rules_fast_path_agrees_with_check_order(side: str, ticks: int, lots: int, tif: str, kind: str,
                                                          post_only: bool, tick: int, off_grid: bool,
                                                          expire_s: int) -> None:  # fmt: skip
    """ExchangeRules approves exactly the orders rules.check_order accepts (its shortcut for a
    plain GTC limit order included), at the book's tick and the market's minimum size."""
    from polybot.execution.rules import check_order

    k = kernel(ExchangeRules())
    feed(k, T0 + 1, book(YES, 540_000, 550_000, tick=tick))
    price = ticks * tick + (1 if off_grid else 0)
    intent = it(side=side, price=price, size=lots * 10_000, tif=tif, kind=kind, post_only=post_only,
                expire_ts=T0 + expire_s * SEC if tif == "GTD" else 0)  # fmt: skip
    ctx = RiskContext(k, "s")
    b = k.books.get(YES)
    marketable = (side == "BUY" and price >= b.best_ask) or (side == "SELL" and price <= b.best_bid)
    expect = check_order(intent, tick=tick, min_size=k.catalog.for_asset(YES).min_order_size, now=ctx.now,
                         marketable=marketable)  # fmt: skip
    d = ExchangeRules().check(intent, ctx)
    assert d.approved == (expect == ""), (d, expect)


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from(["BUY", "SELL"]), ticks=st.integers(-1, 101), lots=st.integers(0, 1_500),
       tick=st.sampled_from([1_000, 2_500, 10_000, 20_000]), off_grid=st.booleans())
def test_exchange_rules_shortcut_for_plain_gtc_limits(side: str, ticks: int, lots: int, tick: int, off_grid: bool) -> None:
    """The plain GTC limit order (ExchangeRules' shortcut) on ticks the venue has and has not."""
    test_exchange_rules_fast_path_agrees_with_check_order.hypothesis.inner_test(  # type: ignore[attr-defined]
        side=side, ticks=ticks, lots=lots, tif="GTC", kind="limit", post_only=False, tick=tick, off_grid=off_grid,
        expire_s=0)  # fmt: skip
