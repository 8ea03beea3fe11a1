"""polybot.execution.rules: signed-order amounts, fees, fee model and the venue's order rules."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from polybot.events import FeeSchedule, MarketInfo, OrderIntent
from polybot.execution.rules import (
    FEE_STEP,
    GTD_BUFFER_NS,
    LOT,
    ROUNDING,
    TIFS,
    FeeModel,
    FeeScheduleMissing,
    check_order,
    fill_fee,
    limit_order_amounts,
    maker_rebate,
    market_order_amounts,
    max_buy_cost,
    signed_size,
    taker_fee,
)
from polybot.units import SCALE, notional_up, to_units

#: Signing vectors: ``../shared/vectors`` beside the checkout (like tests/sample_data.py's
#: samples), or ``POLYBOT_VECTORS``.
VECTORS = Path(
    os.environ.get("POLYBOT_VECTORS", Path(__file__).resolve().parents[2] / "shared" / "vectors")
) / "signing_vectors.json"

PROP = settings(max_examples=300, deadline=None)


def _vectors(key: str) -> list[dict[str, Any]]:
    if not VECTORS.is_file():  # pragma: no cover
        pytest.skip(f"signing vectors not found at {VECTORS}")
    return json.loads(VECTORS.read_text())[key]


def _u(x: object) -> int:
    return to_units(str(x))


def sched(rate: str, exponent: int = 1, *, rebate: str = "0", taker_only: bool = True) -> FeeSchedule:
    return FeeSchedule(rate_ppm=_u(rate), exponent=exponent, rebate_ppm=_u(rebate), taker_only=taker_only)


# ------------------------------------------------------------------------------ strategies

ticks = st.sampled_from(sorted(ROUNDING))


@st.composite
def on_tick(draw: st.DrawFn) -> tuple[int, int]:
    """(tick, price) with the price on the grid and within [tick, 1 - tick]."""
    tick = draw(ticks)
    return tick, tick * draw(st.integers(min_value=1, max_value=SCALE // tick - 1))


sizes = st.integers(min_value=LOT, max_value=10**12)  # 0.01 .. 1,000,000 shares, any base unit
prices = st.integers(min_value=0, max_value=SCALE)
schedules = st.builds(
    FeeSchedule,
    rate_ppm=st.integers(min_value=0, max_value=1_000_000),
    exponent=st.integers(min_value=0, max_value=3),
    rebate_ppm=st.integers(min_value=0, max_value=1_000_000),
)


def exact_fee(size: int, price: int, s: FeeSchedule) -> Fraction:
    p = Fraction(price, SCALE)
    return size * Fraction(s.rate_ppm, SCALE) * (p * (1 - p)) ** s.exponent


# ------------------------------------------------------------------- vectors (upstream client)


def test_rounding_config_matches_protocol() -> None:
    assert ROUNDING == {
        _u("0.1"): (1, 2, 3),
        _u("0.01"): (2, 2, 4),
        _u("0.001"): (3, 2, 5),
        _u("0.0001"): (4, 2, 6),
        _u("0.005"): (3, 2, 5),
        _u("0.0025"): (4, 2, 6),
    }
    assert LOT == 10_000 and FEE_STEP == 10 and TIFS == ("GTC", "GTD", "FOK", "FAK")


def test_limit_order_vectors() -> None:
    vectors = _vectors("limit_order_amounts_py_clob_client_v2")
    assert len(vectors) >= 10
    for v in vectors:
        got = limit_order_amounts(v["side"], _u(v["size"]), _u(v["price"]), _u(v["tick"]))
        assert got == (int(v["makerAmount"]), int(v["takerAmount"])), v


def test_market_order_vectors() -> None:
    vectors = _vectors("market_order_amounts_py_clob_client_v2")
    assert len(vectors) >= 4
    for v in vectors:
        got = market_order_amounts(v["side"], _u(v["amount"]), _u(v["price"]), _u(v["tick"]))
        assert got == (int(v["makerAmount"]), int(v["takerAmount"])), v


def test_market_order_float_floor_of_price() -> None:
    """The v2 client (1.2.1) floors 0.57 to 0.56 in binary floating point: the signed order
    carries the 0.56 price, so 0.57 and 0.56 give the same amounts."""
    assert market_order_amounts("BUY", 10_000_000, 570_000, 10_000) == (10_000_000, 17_857_100)
    assert market_order_amounts("BUY", 10_000_000, 560_000, 10_000) == (10_000_000, 17_857_100)
    assert market_order_amounts("SELL", 20_000_000, 570_000, 10_000) == (20_000_000, 11_200_000)
    assert market_order_amounts("SELL", 20_000_000, 560_000, 10_000) == (20_000_000, 11_200_000)
    # a price without the artifact keeps its value: 20 * 0.59
    assert market_order_amounts("SELL", 20_000_000, 590_000, 10_000) == (20_000_000, 11_800_000)
    # on tick 0.0025 the floor even leaves the grid: 0.5025 -> 0.5024 (20 * 0.5024 = 10.048)
    assert market_order_amounts("SELL", 20_000_000, 502_500, 2_500) == (20_000_000, 10_048_000)
    # the amount is floored the same way: $0.29 -> $0.28
    assert market_order_amounts("BUY", 290_000, 500_000, 10_000) == (280_000, 560_000)


# ---------------------------------------------------------------------- limit-order refusals


@pytest.mark.parametrize(
    ("side", "size", "price", "tick", "match"),
    [
        ("BUY", 10_000_000, 455_000, 10_000, "tick grid"),
        ("BUY", 10_000_000, 0, 10_000, "outside"),
        ("SELL", 10_000_000, 1_000_000, 10_000, "outside"),
        ("BUY", 10_000_000, 1_000_000, 5_000, "outside"),
        ("SELL", 10_000_000, 0, 100_000, "outside"),
        ("BUY", 10_000_000, 500_000, 20_000, "unknown tick"),
        ("BUY", 9_999, 500_000, 10_000, "rounds down to 0"),
        ("BUY", 0, 500_000, 10_000, "rounds down to 0"),
        ("buy", 10_000_000, 500_000, 10_000, "side"),
    ],
)
def test_limit_order_refusals(side: str, size: int, price: int, tick: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        limit_order_amounts(side, size, price, tick)


@pytest.mark.parametrize(
    ("side", "amount", "price", "tick", "match"),
    [
        ("BUY", 10_000_000, 575_000, 10_000, "tick grid"),
        ("SELL", 10_000_000, 1_000_000, 10_000, "outside"),
        ("BUY", 10_000_000, 500_000, 3_000, "unknown tick"),
        ("BUY", 9_999, 500_000, 10_000, "rounds down to 0"),
        ("HOLD", 10_000_000, 500_000, 10_000, "side"),
    ],
)
def test_market_order_refusals(side: str, amount: int, price: int, tick: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        market_order_amounts(side, amount, price, tick)


# --------------------------------------------------------------------- amount properties


def test_limit_order_edges_of_the_price_range() -> None:
    assert limit_order_amounts("BUY", 10_000_000, 995_000, 5_000) == (9_950_000, 10_000_000)
    assert limit_order_amounts("SELL", 10_000_000, 100, 100) == (10_000_000, 1_000)


@PROP
@given(tp=on_tick(), size=sizes)
def test_limit_buy_maker_is_taker_times_price(tp: tuple[int, int], size: int) -> None:
    tick, price = tp
    maker, taker = limit_order_amounts("BUY", size, price, tick)
    assert isinstance(maker, int) and isinstance(taker, int)
    assert taker == signed_size(size) > 0 and maker > 0
    assert maker * SCALE == taker * price  # exact: maker == taker x price / 1e6


@PROP
@given(tp=on_tick(), size=sizes)
def test_limit_sell_taker_is_maker_times_price(tp: tuple[int, int], size: int) -> None:
    tick, price = tp
    maker, taker = limit_order_amounts("SELL", size, price, tick)
    assert isinstance(maker, int) and isinstance(taker, int)
    assert maker == signed_size(size) > 0 and taker > 0
    assert taker * SCALE == maker * price


@PROP
@given(size=st.integers(min_value=0, max_value=10**15))
def test_size_rounding_never_increases_size(size: int) -> None:
    s = signed_size(size)
    assert s % LOT == 0 and 0 <= size - s < LOT


@PROP
@given(tp=on_tick(), amount=sizes, side=st.sampled_from(["BUY", "SELL"]))
def test_market_amounts_are_nonnegative_ints_within_amount(
    tp: tuple[int, int], amount: int, side: str
) -> None:
    tick, price = tp
    maker, taker = market_order_amounts(side, amount, price, tick)
    assert isinstance(maker, int) and isinstance(taker, int)
    assert 0 < maker <= amount and taker >= 0
    unit = 10 ** (6 - ROUNDING[tick][2])  # one step of the amount decimals, in base units
    if side == "BUY":  # shares for the collateral: at least maker / price, less one amount step
        assert (taker + unit) * price >= maker * SCALE
    else:  # collateral for the shares: at most maker x price (the price is only ever floored)
        assert taker * SCALE <= maker * price + SCALE // 10


# ------------------------------------------------------------------------------------ fees


def test_published_fee_examples() -> None:
    # PROTOCOL §5.1: 100 shares at 0.50, rate 0.07, exponent 1 -> $1.75
    assert taker_fee(100_000_000, 500_000, sched("0.07")) == 1_750_000
    # Jan 2026 15-minute crypto: rate 0.25, exponent 2 -> $1.5625
    assert taker_fee(100_000_000, 500_000, sched("0.25", 2)) == 1_562_500


# py-clob-client-v2 tests/test_fee_calculations.py, TestPlatformFee (100 contracts, rate 0.25,
# exponent 2; 125.5 contracts at 0.5), floored to 5 decimals where the published value has more.
@pytest.mark.parametrize(
    ("shares", "price", "published"),
    [
        ("100", "0.5", "1.5625"),
        ("100", "0.3", "1.1025"),
        ("100", "0.7", "1.1025"),
        ("100", "0.1", "0.2025"),
        ("100", "0.9", "0.2025"),
        ("100", "0.05", "0.05640625"),
        ("100", "0.95", "0.05640625"),
        ("100", "0.01", "0.00245025"),
        ("100", "0.99", "0.00245025"),
        ("125.5", "0.5", "1.9609375"),
    ],
)
def test_upstream_platform_fee_examples(shares: str, price: str, published: str) -> None:
    fee = taker_fee(_u(shares), _u(price), sched("0.25", 2))
    want = Fraction(published) * SCALE
    assert fee == int(want) // FEE_STEP * FEE_STEP
    assert 0 <= want - fee < FEE_STEP


# py-clob-client-v2 TestProductionFeeRatesV2: $100 of collateral at price p buys 100/p shares;
# fee = (100/p) x rate x p(1-p). At 0.5 the share count is exact (200); at 0.3/0.7 it is not
# representable, so the fee of the floored share count is within one FEE_STEP of the published one.
@pytest.mark.parametrize(
    ("rate", "price", "published"),
    [
        ("0.03", "0.5", "1.5"), ("0.03", "0.3", "2.1"), ("0.03", "0.7", "0.9"),
        ("0.04", "0.5", "2.0"), ("0.04", "0.3", "2.8"), ("0.04", "0.7", "1.2"),
        ("0.05", "0.5", "2.5"), ("0.05", "0.3", "3.5"), ("0.05", "0.7", "1.5"),
        ("0.072", "0.5", "3.6"), ("0.072", "0.3", "5.04"), ("0.072", "0.7", "2.16"),
    ],
)  # fmt: skip
def test_upstream_production_rate_examples(rate: str, price: str, published: str) -> None:
    p = _u(price)
    shares = 100 * SCALE * SCALE // p
    fee = taker_fee(shares, p, sched(rate))
    want = _u(published)
    assert fee <= want and want - fee <= FEE_STEP
    if price == "0.5":
        assert fee == want


def test_fee_zero_cases() -> None:
    assert taker_fee(100_000_000, 500_000, None) == 0
    assert taker_fee(100_000_000, 500_000, FeeSchedule()) == 0  # rate 0
    assert taker_fee(0, 500_000, sched("0.07")) == 0
    # 0.01 share at 0.01, rate 0.03: 0.00000297 -> floors to 0
    assert taker_fee(10_000, 10_000, sched("0.03")) == 0
    # 1 share at 0.01, rate 0.03: 0.000297 -> 0.00029
    assert taker_fee(1_000_000, 10_000, sched("0.03")) == 290


def test_fee_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError):
        taker_fee(1_000_000, 1_000_001, sched("0.07"))
    with pytest.raises(ValueError):
        taker_fee(-1, 500_000, sched("0.07"))
    with pytest.raises(ValueError):
        taker_fee(1_000_000, 500_000, FeeSchedule(rate_ppm=70_000, exponent=-1))


@PROP
@given(size=sizes, price=prices, s=schedules)
def test_fee_floor_of_exact_value(size: int, price: int, s: FeeSchedule) -> None:
    fee = taker_fee(size, price, s)
    assert isinstance(fee, int) and fee % FEE_STEP == 0
    exact = exact_fee(size, price, s)
    assert fee <= exact < fee + FEE_STEP


@PROP
@given(size=sizes, price=prices, s=schedules)
def test_fee_symmetric_and_maximal_at_half(size: int, price: int, s: FeeSchedule) -> None:
    fee = taker_fee(size, price, s)
    assert fee == taker_fee(size, SCALE - price, s)
    assert fee <= taker_fee(size, SCALE // 2, s)


@PROP
@given(a=sizes, b=sizes, price=prices, s=schedules)
def test_fee_monotone_in_size(a: int, b: int, price: int, s: FeeSchedule) -> None:
    lo, hi = sorted((a, b))
    assert taker_fee(lo, price, s) <= taker_fee(hi, price, s)


@PROP
@given(size=sizes, price=prices, rate=st.integers(min_value=0, max_value=10_000_000))
def test_fee_at_most_a_quarter_of_rate_for_exponent_1(size: int, price: int, rate: int) -> None:
    fee = taker_fee(size, price, FeeSchedule(rate_ppm=rate, exponent=1))
    assert 4 * fee * SCALE <= size * rate  # fee <= size x rate / 4


@PROP
@given(size=sizes, price=prices)
def test_fee_zero_without_schedule(size: int, price: int) -> None:
    assert taker_fee(size, price, None) == 0
    assert maker_rebate(size, price, None) == 0
    assert fill_fee("taker", size, price, None) == (0, 0)
    assert fill_fee("maker", size, price, None) == (0, 0)


@PROP
@given(size=sizes, price=prices, s=schedules)
def test_maker_rebate_at_most_fee_equivalent(size: int, price: int, s: FeeSchedule) -> None:
    rebate = maker_rebate(size, price, s)
    fee = taker_fee(size, price, s)
    assert rebate % FEE_STEP == 0 and 0 <= rebate <= fee
    assert rebate <= Fraction(fee * s.rebate_ppm, SCALE) < rebate + FEE_STEP


def test_fill_fee_maker_and_taker() -> None:
    s = sched("0.04", rebate="0.25")
    assert fill_fee("taker", 100_000_000, 500_000, s) == (1_000_000, 0)
    assert fill_fee("maker", 100_000_000, 500_000, s) == (0, 250_000)
    both = sched("0.04", rebate="0.25", taker_only=False)
    assert fill_fee("maker", 100_000_000, 500_000, both) == (1_000_000, 0)
    assert fill_fee("maker", 100_000_000, 500_000, sched("0.04")) == (0, 0)  # no rebate share
    with pytest.raises(ValueError, match="liquidity"):
        fill_fee("MAKER", 100_000_000, 500_000, s)


def test_max_buy_cost_examples() -> None:
    assert max_buy_cost(100_000_000, 500_000, None) == 50_000_000
    assert max_buy_cost(100_000_000, 500_000, sched("0.07")) == 51_750_000
    # 0.01 share at 0.333: notional 0.00333, fee 0.000155477...: charged 0.00015, bound 0.00016
    assert taker_fee(10_000, 333_000, sched("0.07")) == 150
    assert max_buy_cost(10_000, 333_000, sched("0.07")) == 3_330 + 160


@PROP
@given(size=sizes, p=prices, q=prices, s=schedules)
def test_max_buy_cost_bounds_fills_at_better_prices(size: int, p: int, q: int, s: FeeSchedule) -> None:
    price, fill = max(p, q), min(p, q)
    cost = max_buy_cost(size, price, s)
    assert notional_up(fill, size) + taker_fee(size, fill, s) <= cost
    assert cost - (notional_up(price, size) + taker_fee(size, price, s)) in (0, FEE_STEP)


@PROP
@given(size=sizes, p=prices, q=prices, rate=st.integers(min_value=0, max_value=5_196_152))
def test_max_buy_cost_bound_exponent_2_up_to_3_sqrt_3(size: int, p: int, q: int, rate: int) -> None:
    s = FeeSchedule(rate_ppm=rate, exponent=2)
    price, fill = max(p, q), min(p, q)
    assert notional_up(fill, size) + taker_fee(size, fill, s) <= max_buy_cost(size, price, s)


def test_max_buy_cost_bound_needs_rate_at_most_1_for_exponent_1() -> None:
    # rate 2: q + 2q(1-q) falls for q > 0.75, so filling at 0.80 costs more than the bound at 0.99
    s = FeeSchedule(rate_ppm=2_000_000, exponent=1)
    assert notional_up(800_000, 100_000_000) + taker_fee(100_000_000, 800_000, s) > max_buy_cost(
        100_000_000, 990_000, s
    )


# -------------------------------------------------------------------------------- fee model


def _info(fees: FeeSchedule | None) -> MarketInfo:
    return MarketInfo(market="0xcond", asset_ids=("1", "2"), fees=fees)


def test_fee_model_catalog_market_with_fees() -> None:
    s = sched("0.07")
    model = FeeModel(default=sched("0.05"))
    assert model.schedule(_info(s), "0xcond") == s
    assert taker_fee(100_000_000, 500_000, model.schedule(_info(s), "0xcond")) == 1_750_000


def test_fee_model_catalog_market_without_fees() -> None:
    model = FeeModel(default=sched("0.05"), live=True)
    got = model.schedule(_info(None), "0xcond")
    assert got is None
    assert taker_fee(100_000_000, 500_000, got) == 0


def test_fee_model_missing_market_uses_default_and_warns_once() -> None:
    default = sched("0.05")
    model = FeeModel(default=default)
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING", format="{level} {message}")
    try:
        assert model.schedule(None, "0xmissing") == default
        assert model.schedule(None, "0xmissing") == default
        assert model.schedule(None, "0xmissing") == default
        assert len(messages) == 1
        assert messages[0].startswith("WARNING") and "0xmissing" in messages[0]
        assert model.schedule(None, "0xother") == default
        assert len(messages) == 2 and "0xother" in messages[1]
    finally:
        logger.remove(sink)


def test_fee_model_live_refuses_missing_market() -> None:
    model = FeeModel(default=sched("0.05"), live=True)
    with pytest.raises(FeeScheduleMissing, match="0xmissing") as exc:
        model.schedule(None, "0xmissing")
    assert isinstance(exc.value, ValueError) and exc.value.key == "0xmissing"


# ------------------------------------------------------------------------------ order rules

NOW = 1_760_000_000 * 1_000_000_000
TICK = 10_000
MIN = 5_000_000


def intent(**kw: Any) -> OrderIntent:
    base: dict[str, Any] = dict(strategy="s", asset_id="1", side="BUY", price=450_000, size=10_000_000)
    base.update(kw)
    return OrderIntent(**base)


def check(i: OrderIntent, *, marketable: bool = False, tick: int = TICK) -> str:
    return check_order(i, tick=tick, min_size=MIN, now=NOW, marketable=marketable)


@pytest.mark.parametrize(
    ("i", "marketable"),
    [
        (intent(), False),  # resting GTC BUY 10 @ 0.45
        (intent(side="SELL", size=MIN), False),  # exactly the minimum
        (intent(tif="GTD", expire_ts=NOW + GTD_BUFFER_NS), False),  # exactly one minute ahead
        (intent(tif="GTD", expire_ts=NOW + 3600 * 10**9, post_only=True), False),
        (intent(post_only=True), False),
        (intent(kind="market", tif="FOK", size=2_230_000), True),  # $1.0035 at 0.45
        (intent(kind="market", tif="FAK", side="SELL", price=10_000, size=100_000_000), True),
        (intent(tif="FAK", size=3_000_000), True),  # marketable limit below min_size, >= $1
        (intent(price=10_000, size=MIN), False),  # lowest price
        (intent(price=990_000, size=MIN), False),  # highest price
    ],
)
def test_check_order_accepts_valid_orders(i: OrderIntent, marketable: bool) -> None:
    assert check(i, marketable=marketable) == ""


@pytest.mark.parametrize(
    ("i", "marketable", "rule"),
    [
        (intent(price=455_000), False, "tick"),
        (intent(price=1_000_000), False, "price range"),
        (intent(price=0), False, "price range"),
        (intent(size=10_005_000), False, "lot"),
        (intent(size=0), False, "lot"),
        (intent(size=-10_000), False, "lot"),
        (intent(post_only=True, tif="FOK"), False, "post_only: only with GTC/GTD"),
        (intent(post_only=True, tif="FAK"), False, "post_only: only with GTC/GTD"),
        (intent(post_only=True), True, "post_only: the order would cross"),
        (intent(kind="market", tif="GTC"), True, "market order: tif must be FOK or FAK"),
        (intent(kind="market", tif="GTD", expire_ts=NOW + 10**12), True, "market order"),
        (intent(tif="GTD"), False, "GTD: expire_ts is required"),
        (intent(tif="GTD", expire_ts=NOW + GTD_BUFFER_NS - 1), False, "GTD: expire_ts must be"),
        (intent(size=MIN - LOT), False, "min size: resting"),
        (intent(kind="market", tif="FOK", size=2_220_000), True, "min size: $1"),  # $0.999
        (intent(side="SELL", tif="FAK", price=90_000, size=11_000_000), True, "min size: $1"),
        (intent(tif="IOC"), False, "tif"),  # type: ignore[arg-type]
        (intent(side="HOLD"), False, "side"),  # type: ignore[arg-type]
        (intent(kind="stop"), False, "kind"),  # type: ignore[arg-type]
    ],
)
def test_check_order_refusals_name_the_rule(i: OrderIntent, marketable: bool, rule: str) -> None:
    reason = check(i, marketable=marketable)
    assert reason.startswith(rule) or rule in reason, reason


def test_check_order_unknown_tick() -> None:
    assert check(intent(), tick=20_000).startswith("tick: unknown tick size")


@PROP
@given(tp=on_tick(), lots=st.integers(min_value=500, max_value=10**6), marketable=st.booleans())
def test_check_order_agrees_with_limit_amounts(tp: tuple[int, int], lots: int, marketable: bool) -> None:
    """An order check_order accepts always has signable limit amounts at the same size."""
    tick, price = tp
    i = intent(price=price, size=lots * LOT)
    if check_order(i, tick=tick, min_size=MIN, now=NOW, marketable=marketable) == "":
        maker, taker = limit_order_amounts(i.side, i.size, i.price, tick)
        assert taker == i.size and maker * SCALE == taker * price
