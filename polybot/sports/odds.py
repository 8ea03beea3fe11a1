"""Bookmaker odds: conversions, the bookmaker's margin, de-vigging, and a consensus across books.

Conventions
-----------
* Prices are **decimal odds** (European): the total return per unit staked, stake included, so
  a price is always > 1. American odds convert with :func:`american_to_decimal`.
* The *implied probability* of a price ``d`` is ``q = 1 / d``. Over a bookmaker's complete market
  (every outcome of one event: home/away, or home/draw/away) the implied probabilities sum to
  more than 1; the excess is the bookmaker's margin, the **overround** (:func:`overround`).
* **De-vigging** turns one bookmaker's complete market into probabilities that sum to 1. The
  result keeps the order of the implied probabilities (the favourite stays the favourite).
* Everything here is a pure function of its arguments, standard library only, with no state.

De-vig methods
--------------
``multiplicative`` (:func:`devig_multiplicative`, also called *basic* or *proportional*)
    ``p_i = q_i / sum(q)``: the margin is assumed to be spread over the outcomes in proportion to
    their implied probability. Exact for a two-way market with equal prices, cheap, and the
    standard choice for balanced two-way markets (spreads and totals at -110/-110) and for very
    sharp books whose margin is small (then every method gives nearly the same answer).

``power`` (:func:`devig_power`)
    ``p_i = q_i ** k`` with the exponent ``k`` solved so that ``sum(q_i ** k) = 1`` (``k > 1``
    when the book has a margin). Raising to a power shrinks small probabilities relatively more
    than large ones, so more of the margin is taken off the longshots. That matches the
    **favourite-longshot bias**: bookmakers (and bettors) overprice longshots, and the
    multiplicative method leaves the longshot's probability too high (the favourite's too low).
    Prefer the power method for lopsided moneylines (a heavy favourite against a longshot), for
    three-way soccer markets (where the draw and the underdog carry most of the margin) and for
    soft, high-margin books. For a two-way market with equal prices both methods give 0.5/0.5.

Consensus across books
----------------------
:func:`consensus` averages several books' de-vigged probabilities for the same ordered outcomes
with optional per-book weights (``sharp`` books, whose prices lead the market, can be up-weighted)
and reports the across-book dispersion, a measure of how much the books disagree (a strategy can
refuse to trade when it is large). :func:`consensus_from_prices` de-vigs and averages in one call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SHARP_BOOKS",
    "Consensus",
    "DevigMethod",
    "american_to_decimal",
    "consensus",
    "consensus_from_prices",
    "decimal_to_american",
    "devig",
    "devig_multiplicative",
    "devig_power",
    "implied_probabilities",
    "implied_probability",
    "overround",
]

DevigMethod = Literal["multiplicative", "power"]

#: Books commonly treated as sharp (low margin, high limits, prices that lead the market), by
#: their The Odds API keys: Pinnacle and the betting exchanges. A suggestion for ``sharp=`` in
#: :func:`consensus`; nothing here uses it implicitly.
SHARP_BOOKS: frozenset[str] = frozenset(
    {"pinnacle", "betfair_ex_eu", "betfair_ex_uk", "betfair_ex_au", "matchbook", "smarkets"}
)

#: |k_{n+1} - k_n| below which the power-method iteration stops (the brief asks for 1e-12).
_POWER_TOL = 1e-13
_POWER_MAX_ITER = 200
#: A book's de-vigged probabilities must sum to 1 within this (it catches raw implied
#: probabilities passed to :func:`consensus` by mistake).
_SUM_TOL = 1e-6


# ------------------------------------------------------------------------------------------
# Conversions
# ------------------------------------------------------------------------------------------


def american_to_decimal(american: float) -> float:
    """Decimal odds of American (moneyline) odds.

    ``+150`` -> 2.5 (win 150 per 100 staked); ``-200`` -> 1.5 (stake 200 to win 100);
    ``+100`` and ``-100`` are both evens, 2.0. American odds strictly between -100 and +100 do
    not exist and raise :class:`ValueError`, as do NaN and infinities.
    """
    a = float(american)
    if not math.isfinite(a):
        raise ValueError(f"american odds must be finite, got {american!r}")
    if a >= 100.0:
        return 1.0 + a / 100.0
    if a <= -100.0:
        return 1.0 - 100.0 / a
    raise ValueError(f"american odds must be <= -100 or >= +100, got {american!r}")


def decimal_to_american(decimal: float) -> float:
    """American odds of decimal odds: ``2.5`` -> ``+150``, ``1.5`` -> ``-200``, ``2.0`` -> ``+100``.

    The result is not rounded (bookmakers quote whole numbers; round at the display edge).
    Raises :class:`ValueError` for odds <= 1, NaN or infinity.
    """
    d = _check_price(decimal)
    if d >= 2.0:
        return (d - 1.0) * 100.0
    return -100.0 / (d - 1.0)


def implied_probability(decimal: float) -> float:
    """The implied probability ``1 / decimal`` of one price (margin included)."""
    return 1.0 / _check_price(decimal)


def implied_probabilities(decimals: Sequence[float]) -> tuple[float, ...]:
    """The implied probabilities of one book's complete market (they sum to 1 + overround)."""
    _check_market(decimals)
    return tuple(1.0 / d for d in decimals)


def overround(decimals: Sequence[float]) -> float:
    """The bookmaker's margin on a complete market: ``sum(1 / d_i) - 1``.

    -110/-110 (1.9091/1.9091) -> 0.0476 (4.76 %); a fair book -> 0; a negative value means the
    prices (usually from different books) sum to an arbitrage.
    """
    _check_market(decimals)
    return math.fsum(1.0 / d for d in decimals) - 1.0


# ------------------------------------------------------------------------------------------
# De-vig
# ------------------------------------------------------------------------------------------


def devig_multiplicative(decimals: Sequence[float]) -> tuple[float, ...]:
    """De-vig one book's complete market by normalisation: ``p_i = (1/d_i) / sum_j(1/d_j)``.

    The margin is removed in proportion to each implied probability. See the module docstring
    for when to prefer :func:`devig_power`. Raises :class:`ValueError` on fewer than two
    outcomes, odds <= 1, NaN or infinity.
    """
    _check_market(decimals)
    total = math.fsum(1.0 / d for d in decimals)
    return tuple((1.0 / d) / total for d in decimals)


def devig_power(decimals: Sequence[float]) -> tuple[float, ...]:
    """De-vig one book's complete market with the power method: ``p_i = q_i ** k``.

    ``q_i = 1/d_i`` and ``k`` solves ``sum_i q_i ** k = 1`` (to better than 1e-12). Because
    ``f(k) = sum q_i**k`` is strictly decreasing and convex in ``k`` (every ``0 < q_i < 1``),
    Newton's method started left of the root climbs to it monotonically without overshooting;
    a bisection fallback guards the pathological cases. ``k > 1`` when the book has a margin,
    ``k < 1`` when the prices sum below 1. The outputs are renormalised by the (1e-13-sized)
    residual so that they sum to 1 to machine precision.

    Preferred over the multiplicative method where the favourite-longshot bias matters (lopsided
    moneylines, three-way markets, high-margin books): it takes relatively more of the margin off
    the longshots. Raises :class:`ValueError` like :func:`devig_multiplicative`.
    """
    _check_market(decimals)
    qs = tuple(1.0 / d for d in decimals)
    k = _power_exponent(qs)
    ps = tuple(q**k for q in qs)
    total = math.fsum(ps)
    return tuple(p / total for p in ps)


def devig(decimals: Sequence[float], method: DevigMethod = "multiplicative") -> tuple[float, ...]:
    """De-vig one book's complete market with ``method`` (``"multiplicative"`` or ``"power"``)."""
    if method == "multiplicative":
        return devig_multiplicative(decimals)
    if method == "power":
        return devig_power(decimals)
    raise ValueError(f"unknown de-vig method {method!r}: use 'multiplicative' or 'power'")


def _power_exponent(qs: tuple[float, ...]) -> float:
    """The ``k > 0`` with ``sum(q ** k) = 1`` for implied probabilities ``0 < q < 1``."""
    # f(0) = n >= 2 > 1 and f decreases to 0, so the root is unique and positive. Start where
    # f > 1: k = 1 if the prices carry a margin (sum q > 1), else k = 0.
    lo, hi = 0.0, math.inf
    logs = tuple(math.log(q) for q in qs)
    k = 1.0 if math.fsum(qs) > 1.0 else 0.0
    for _ in range(_POWER_MAX_ITER):
        f = 0.0
        df = 0.0
        for q, lq in zip(qs, logs):
            t = q**k
            f += t
            df += t * lq
        g = f - 1.0
        if g == 0.0:
            return k
        if g > 0.0:
            lo = max(lo, k)
        else:
            hi = min(hi, k)
        step = -g / df if df < 0.0 else math.inf
        nxt = k + step
        if not (lo <= nxt <= hi) or not math.isfinite(nxt):
            # Outside the bracket (only from rounding near the root): bisect, or double the
            # upper search while no upper bound is known.
            nxt = 0.5 * (lo + hi) if math.isfinite(hi) else max(2.0 * lo, 1.0)
        if abs(nxt - k) <= _POWER_TOL * max(1.0, abs(k)):
            return nxt
        k = nxt
    return k


# ------------------------------------------------------------------------------------------
# Consensus across books
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Consensus:
    """A weighted consensus of several books' de-vigged probabilities.

    ``probs``: the weighted mean probability of each outcome (same order as the inputs, summing
    to 1). ``books``: how many books contributed (those with a positive weight).
    ``dispersion``: the largest, over the outcomes, of the across-book standard deviation of that
    outcome's probability (population standard deviation, unweighted, over the contributing
    books; 0 for a single book). A dispersion of 0.02 means the books disagree by about two
    percentage points on some outcome.
    """

    probs: tuple[float, ...]
    books: int
    dispersion: float


def consensus(
    books: Mapping[str, Sequence[float]],
    weights: Mapping[str, float] | None = None,
    sharp: Iterable[str] = (),
    sharp_weight: float = 1.0,
) -> Consensus:
    """The weighted consensus of de-vigged probabilities from several books.

    ``books`` maps a book's name to its de-vigged probabilities for the same ordered outcomes
    (each vector sums to 1; de-vig with :func:`devig` first, or use
    :func:`consensus_from_prices`). A book's weight is ``weights[book]`` (1.0 when ``weights``
    is None or does not name it), multiplied by ``sharp_weight`` when the book is in ``sharp``
    (e.g. ``sharp=SHARP_BOOKS, sharp_weight=3.0``). Books of weight 0 are left out.

    Raises :class:`ValueError` when no book has a positive weight, when the books disagree on
    the number of outcomes, on fewer than two outcomes, on a negative or non-finite weight or
    probability, or on a vector that does not sum to 1 (within 1e-6).
    """
    if not math.isfinite(sharp_weight) or sharp_weight < 0.0:
        raise ValueError(f"sharp_weight must be finite and >= 0, got {sharp_weight!r}")
    sharp_set = frozenset(sharp)
    n = -1
    used: list[tuple[float, Sequence[float]]] = []
    for name, probs in books.items():
        if n < 0:
            n = len(probs)
            if n < 2:
                raise ValueError(f"book {name!r}: a market needs at least 2 outcomes, got {n}")
        elif len(probs) != n:
            raise ValueError(f"book {name!r} has {len(probs)} outcomes, the others {n}")
        for p in probs:
            if not (0.0 <= p <= 1.0):  # also rejects NaN
                raise ValueError(f"book {name!r}: probability {p!r} outside [0, 1]")
        if abs(math.fsum(probs) - 1.0) > _SUM_TOL:
            raise ValueError(
                f"book {name!r}: probabilities sum to {math.fsum(probs)!r}, not 1 (de-vig first)"
            )
        w = 1.0 if weights is None else weights.get(name, 1.0)
        if not math.isfinite(w) or w < 0.0:
            raise ValueError(f"book {name!r}: weight must be finite and >= 0, got {w!r}")
        if name in sharp_set:
            w *= sharp_weight
        if w > 0.0:
            used.append((w, probs))
    if not used:
        raise ValueError("consensus needs at least one book with a positive weight")
    total_w = math.fsum(w for w, _ in used)
    mean = [math.fsum(w * probs[i] for w, probs in used) / total_w for i in range(n)]
    s = math.fsum(mean)
    dispersion = 0.0
    m = len(used)
    if m > 1:
        for i in range(n):
            avg = math.fsum(probs[i] for _, probs in used) / m
            var = math.fsum((probs[i] - avg) ** 2 for _, probs in used) / m
            dispersion = max(dispersion, math.sqrt(var))
    return Consensus(probs=tuple(p / s for p in mean), books=m, dispersion=dispersion)


def consensus_from_prices(
    prices: Mapping[str, Sequence[float]] | Iterable[tuple[str, Sequence[float]]],
    method: DevigMethod = "multiplicative",
    weights: Mapping[str, float] | None = None,
    sharp: Iterable[str] = (),
    sharp_weight: float = 1.0,
) -> Consensus:
    """De-vig each book's decimal prices with ``method`` and return their :func:`consensus`.

    ``prices`` is a mapping book -> decimal prices, or an iterable of ``(book, prices)`` pairs
    (a book named twice raises :class:`ValueError`); every book lists the same outcomes in the
    same order. A book whose prices are invalid raises :class:`ValueError` naming the book.
    """
    items = prices.items() if isinstance(prices, Mapping) else prices
    devigged: dict[str, tuple[float, ...]] = {}
    for name, decimals in items:
        if name in devigged:
            raise ValueError(f"book {name!r} is listed twice")
        try:
            devigged[name] = devig(decimals, method)
        except ValueError as exc:
            raise ValueError(f"book {name!r}: {exc}") from None
    return consensus(devigged, weights=weights, sharp=sharp, sharp_weight=sharp_weight)


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


def _check_price(decimal: float) -> float:
    d = float(decimal)
    if not (1.0 < d < math.inf):  # also rejects NaN
        raise ValueError(f"decimal odds must be finite and > 1, got {decimal!r}")
    return d


def _check_market(decimals: Sequence[float]) -> None:
    if len(decimals) < 2:
        raise ValueError(f"a complete market needs at least 2 outcomes, got {len(decimals)}")
    for d in decimals:
        _check_price(d)
