"""polybot.units: exact decimal <-> base-unit conversion and rounding helpers."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polybot.units import (
    ONE,
    SCALE,
    from_units,
    notional,
    notional_up,
    round_down,
    round_half_up,
    round_up,
    to_units,
    units_to_float,
)

BIG = 10**15


def exact(text: str) -> Fraction:
    """The exact value of a decimal string times SCALE (Decimal parsing is exact; Fraction
    arithmetic has no precision limit)."""
    return Fraction(Decimal(text)) * SCALE
ints = st.integers(min_value=-BIG, max_value=BIG)
steps = st.integers(min_value=1, max_value=10**7)


# ------------------------------------------------------------------------------------ to_units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("12", 12_000_000),
        ("0.5", 500_000),
        (".48", 480_000),
        ("0.455", 455_000),
        ("-3.25", -3_250_000),
        ("1.", 1_000_000),
        ("0.000001", 1),
        ("-0.000001", -1),
        ("1.000000", 1_000_000),
        ("007.5", 7_500_000),
        ("-0", 0),
        ("123456789.123456", 123456789_123456),
    ],
)
def test_to_units_examples(text: str, expected: int) -> None:
    assert to_units(text) == expected
    assert type(to_units(text)) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        ".",
        "-.",
        "0.1234567",  # 7 decimals
        "1.0000000",  # 7 decimals even if zeros
        "1e5",
        "1E5",
        "1.5e-3",
        " 1",
        "1 ",
        "\t1",
        "1\n",
        "abc",
        "1a",
        "0x10",
        "+1",
        "--1",
        "1-",
        "1.2.3",
        "1,5",
        "1_000",
        "inf",
        "nan",
        "NaN",
        "１",  # full-width digit: not ASCII
        "٣",  # Arabic-indic digit
    ],
)
def test_to_units_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        to_units(text)


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_round_trip_from_units(v: int) -> None:
    s = from_units(v)
    assert to_units(s) == v
    # the output is the shortest exact decimal: no trailing zeros in the fraction, no exponent
    assert "e" not in s.lower()
    if "." in s:
        assert not s.endswith("0")
        assert len(s.split(".")[1]) <= 6
    assert exact(s) == v


@given(st.integers(min_value=-(10**18), max_value=10**18), st.integers(min_value=0, max_value=6))
def test_from_units_min_decimals(v: int, k: int) -> None:
    s = from_units(v, min_decimals=k)
    assert to_units(s) == v
    if k:
        assert len(s.split(".")[1]) >= k
    assert exact(s) == v


@given(
    st.booleans(),
    st.integers(min_value=0, max_value=10**12),
    st.text(alphabet="0123456789", min_size=0, max_size=6),
)
def test_to_units_matches_decimal(neg: bool, whole: int, frac: str) -> None:
    text = ("-" if neg else "") + str(whole) + ("." + frac if frac else "")
    assert to_units(text) == exact(text)


@given(st.text(alphabet="0123456789", min_size=7, max_size=12))
def test_to_units_refuses_seven_or_more_decimals(frac: str) -> None:
    with pytest.raises(ValueError):
        to_units("0." + frac)


@given(st.text(max_size=12))
def test_to_units_never_returns_something_inexact(text: str) -> None:
    """Whatever the input, it either parses to the exact Decimal value or is refused."""
    try:
        v = to_units(text)
    except ValueError:
        return
    assert set(text) <= set("-.0123456789")
    assert exact(text) == v


def test_examples_from_units() -> None:
    assert from_units(455_000) == "0.455"
    assert from_units(0) == "0"
    assert from_units(10_000_000) == "10"
    assert from_units(-1) == "-0.000001"
    assert from_units(450_000, min_decimals=2) == "0.45"
    assert from_units(400_000, min_decimals=2) == "0.40"
    assert from_units(ONE, min_decimals=2) == "1.00"
    assert units_to_float(450_000) == 0.45


# ------------------------------------------------------------------------------------ rounding


@given(ints, steps)
def test_round_down(v: int, step: int) -> None:
    r = round_down(v, step)
    assert r % step == 0
    assert r <= v < r + step


@given(ints, steps)
def test_round_up(v: int, step: int) -> None:
    r = round_up(v, step)
    assert r % step == 0
    assert r - step < v <= r


@given(ints, steps)
def test_round_down_up_agree_on_multiples(v: int, step: int) -> None:
    m = v * step
    assert round_down(m, step) == m == round_up(m, step)
    if v % step:
        assert round_up(v, step) == round_down(v, step) + step


@given(st.integers(min_value=0, max_value=BIG), steps)
def test_round_half_up_nonnegative(v: int, step: int) -> None:
    r = round_half_up(v, step)
    assert r % step == 0
    # nearest multiple
    assert abs(r - v) * 2 <= step
    assert r in (round_down(v, step), round_up(v, step))
    # ties go up (away from zero for v >= 0)
    if 2 * (v - round_down(v, step)) == step:
        assert r == round_up(v, step)


@given(ints, steps)
def test_round_half_up_is_nearest_for_any_sign(v: int, step: int) -> None:
    r = round_half_up(v, step)
    assert r % step == 0
    assert abs(r - v) * 2 <= step


def test_round_examples() -> None:
    assert round_down(455_000, 10_000) == 450_000
    assert round_up(455_000, 10_000) == 460_000
    assert round_half_up(455_000, 10_000) == 460_000
    assert round_half_up(454_999, 10_000) == 450_000
    assert round_down(-1, 10) == -10
    assert round_up(-1, 10) == 0


# ------------------------------------------------------------------------------------ notional


@given(st.integers(min_value=0, max_value=SCALE), st.integers(min_value=0, max_value=10**13))
def test_notional_floor_and_ceiling(price: int, size: int) -> None:
    ref = Fraction(price * size, SCALE)
    lo, hi = notional(price, size), notional_up(price, size)
    assert lo <= ref <= hi
    assert hi - lo in (0, 1)
    assert (hi == lo) == (price * size % SCALE == 0)


def test_notional_examples() -> None:
    assert notional(450_000, 10_000_000) == 4_500_000  # 0.45 x 10 shares = 4.5 USDC
    assert notional(333_333, 3) == 0
    assert notional_up(333_333, 3) == 1


@given(st.integers(min_value=0, max_value=9_999_999_999_999_999), st.integers(min_value=0, max_value=6))
def test_wire_fast_parser_is_exact(units, decimals):
    """The market-data fast path (float for short decimals) equals the strict parser."""
    from adapters.polymarket.wire import _exact

    units -= units % 10 ** (6 - decimals)  # at most `decimals` decimals
    text = from_units(units)
    assert _exact(text) == to_units(text) == units


@pytest.mark.parametrize("text", ["1e3", "0x10", "1_000", " 1", "١٢", "1.2.3", "", ".", "1.1234567", "+1"])
def test_wire_fast_parser_refuses_what_the_strict_one_refuses(text):
    from adapters.polymarket.wire import _exact

    with pytest.raises(ValueError):
        _exact(text)
