"""Validator params from TOML, in human units, converted exactly; every error names its param.

Shared by the built-in validators (and usable by your own): money, prices and share counts go to
6-decimal base units through :func:`polybot.units.to_units` (more than 6 decimals is refused),
times in seconds to ns, floats through their shortest repr (0.1 is exactly 0.1).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from .units import from_units, to_units

NS = 1_000_000_000


def decimal_param(param: str, v: Any) -> Decimal:
    """An int, float (through its shortest repr), Decimal or decimal string, exactly."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str, Decimal)):
        raise ValueError(f"{param}: expected a number, got {v!r}")
    try:
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v.strip() if isinstance(v, str) else v)
    except InvalidOperation:
        raise ValueError(f"{param}: not a number: {v!r}") from None
    if not d.is_finite():
        raise ValueError(f"{param}: must be finite, got {v!r}")
    return d


def units_param(param: str, v: Any, *, minimum: int = 0, cap: bool = False) -> int:
    """Money, a price or a share count -> base units, exactly. ``cap``: None means 0 (no cap)."""
    if v is None and cap:
        return 0
    d = decimal_param(param, v)
    try:
        u = to_units(format(d, "f"))
    except ValueError:
        raise ValueError(f"{param}: {v!r} is not exact at 6 decimals") from None
    if u < minimum:
        raise ValueError(f"{param}: must be at least {from_units(minimum)}{' (0 = no cap)' if cap else ''}, got {v!r}")
    return u


def cap_param(param: str, v: Any) -> int:
    """A money/price/share cap: >= 0, 0 or None = no cap."""
    return units_param(param, v, cap=True)


def count_param(param: str, v: Any, minimum: int = 0, cap: bool = False) -> int:
    """A whole number >= ``minimum`` (``cap``: None means 0, no cap)."""
    if v is None and cap:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{param}: must be a whole number{' (0 = no cap)' if cap else ''}, got {v!r}")
    if v < minimum:
        raise ValueError(f"{param}: must be >= {minimum}{' (0 = no cap)' if cap else ''}, got {v}")
    return v


def seconds_param(param: str, v: Any) -> int:
    """Seconds (>= 0) -> ns, rounded down to the ns."""
    d = decimal_param(param, v)
    if d < 0:
        raise ValueError(f"{param}: must be >= 0 seconds, got {v!r}")
    return int(d * NS)


def ratio_param(param: str, v: Any, *, above: Fraction, at_most: Fraction | None = None) -> Fraction:
    """An exact number with ``above`` < v <= ``at_most``, as a Fraction."""
    f = Fraction(decimal_param(param, v))
    if f <= above or (at_most is not None and f > at_most):
        rng = f"> {float(above):g}" + (f" and <= {float(at_most):g}" if at_most is not None else "")
        raise ValueError(f"{param}: must be {rng}, got {v!r}")
    return f


def choice_param(param: str, v: Any, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise ValueError(f"{param}: must be one of {', '.join(map(repr, choices))}, got {v!r}")
    return str(v)


def bool_param(param: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{param}: must be true or false, got {v!r}")
    return v


def name_param(v: Any) -> None:
    if not isinstance(v, str) or not v:
        raise ValueError(f"name: must be a non-empty string, got {v!r}")


def short_id(ident: str) -> str:
    """Token and condition ids are long: keep reasons readable (``12345678...6789``)."""
    return ident if len(ident) <= 16 else f"{ident[:8]}...{ident[-4:]}"
