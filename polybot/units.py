"""Exact conversions between decimal text and 6-decimal integer base units.

``to_units("0.455") == 455_000``; ``from_units(455_000) == "0.455"``. No floats anywhere: a value
with more than six decimals, an exponent, or any non-digit is refused with ``ValueError`` (the
caller counts and drops the input). Rounding helpers (``round_down``/``round_up``/``round_half``)
work on base units with a step (a tick or a lot) and are what order amounts are built from.
"""

from __future__ import annotations

SCALE = 1_000_000
DECIMALS = 6
ONE = SCALE

_POW10 = tuple(10 ** (DECIMALS - n) for n in range(DECIMALS + 1))
_DIGITS = frozenset("0123456789")


def to_units(text: str) -> int:
    """Parse a plain decimal string (``"12"``, ``"0.5"``, ``".48"``, ``"-3.25"``) exactly."""
    neg = text[:1] == "-"
    s = text[1:] if neg else text
    dot = s.find(".")
    if dot < 0:
        whole, frac = s, ""
    else:
        whole, frac = s[:dot], s[dot + 1 :]
    if (not whole and not frac) or len(frac) > DECIMALS:
        raise ValueError(f"not an exact 6-decimal number: {text!r}")
    if not _DIGITS.issuperset(whole) or not _DIGITS.issuperset(frac):
        raise ValueError(f"not a plain decimal number: {text!r}")
    v = (int(whole) if whole else 0) * SCALE + (int(frac) * _POW10[len(frac)] if frac else 0)
    return -v if neg else v


def json_units(v: object, field: str) -> int:
    """A number from a JSON document (an int, a float or a ``Decimal`` as a decoder gives it, or
    a decimal string, exponents allowed: ``"1e-3"``) -> base units, exactly; trailing zeros past
    six decimals are fine (``"1.0000000"``). ``ValueError`` naming ``field`` otherwise (a bool,
    None, NaN, more than six significant decimals)."""
    from decimal import Decimal, InvalidOperation

    if isinstance(v, bool) or v is None:
        raise ValueError(f"{field}: not a number: {v!r}")
    try:
        if isinstance(v, int):
            return v * SCALE
        if isinstance(v, float):
            v = Decimal(repr(v))  # shortest round-trip text: 0.07 -> "0.07"
        if isinstance(v, str):
            s = v.strip()
            try:
                return to_units(s)
            except ValueError:
                v = Decimal(s)
        if isinstance(v, Decimal):
            if not v.is_finite():
                raise ValueError(f"not finite: {v}")
            return to_units(format(v.normalize(), "f"))
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"{field}: {exc or 'not a number'}: {v!r}") from None
    raise ValueError(f"{field}: not a number: {v!r}")


def from_units(v: int, min_decimals: int = 0) -> str:
    """Format base units as the shortest exact decimal string (at least ``min_decimals``)."""
    neg = v < 0
    q, r = divmod(-v if neg else v, SCALE)
    frac = f"{r:06d}".rstrip("0")
    if len(frac) < min_decimals:
        frac = frac.ljust(min_decimals, "0")
    s = f"{q}.{frac}" if frac else str(q)
    return "-" + s if neg else s


def units_to_float(v: int) -> float:
    """For display and models only; never feed the result back into money."""
    return v / SCALE


def round_down(v: int, step: int) -> int:
    """Largest multiple of ``step`` that is <= v."""
    return (v // step) * step


def round_up(v: int, step: int) -> int:
    """Smallest multiple of ``step`` that is >= v."""
    return -((-v) // step) * step


def round_half_up(v: int, step: int) -> int:
    """Nearest multiple of ``step``, ties away from zero for v >= 0."""
    q, r = divmod(v, step)
    return (q + (1 if 2 * r >= step else 0)) * step


def notional(price: int, size: int) -> int:
    """price x size in base units, exact when it divides, else rounded down (a buyer's cost
    should use :func:`notional_up`)."""
    return price * size // SCALE


def notional_up(price: int, size: int) -> int:
    return -((-price * size) // SCALE)
