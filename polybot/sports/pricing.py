"""From a fair probability (a float, a model output) to an order price and size (exact integers).

Every price a sports strategy sends goes through here, so the rounding is explicit and in the
trader's favour:

* a probability becomes base units by flooring (``0.6234`` -> ``623_400``);
* :func:`buy_limit` is the highest price on the tick grid at which buying still leaves at least
  ``min_edge`` per share after the taker fee (the fee per share is rounded *up*); buys round
  down, so the order can only fill at a price at least that good;
* :func:`sell_floor` is the lowest tick price at which selling still gets at least ``fair - edge``
  per share after the fee (sells round up);
* sizes are floored to the 0.01-share lot.

:func:`token_fair` turns a game model (:mod:`polybot.sports.winprob`) and the game state into the
fair probability of one outcome token, for money lines, spreads and totals.
"""

from __future__ import annotations

import math

from ..events import FeeSchedule
from ..execution.rules import _fee_fraction
from ..units import SCALE
from .winprob import GameModel

__all__ = ["LOT", "buy_limit", "fee_per_share", "floor_lot", "prob_units", "sell_floor", "token_fair"]

LOT = 10_000  # 0.01 share


def prob_units(p: float) -> int:
    """A probability in base units, floored (0 for NaN or below 0, SCALE above 1)."""
    if not p > 0.0:
        return 0
    if p >= 1.0:
        return SCALE
    return math.floor(p * SCALE)


def fee_per_share(price: int, sched: FeeSchedule | None) -> int:
    """The taker fee of one share at ``price``, in base units, rounded up (0 without fees)."""
    if sched is None or sched.rate_ppm == 0:
        return 0
    num, den = _fee_fraction(SCALE, price, sched)
    return -(-num // den)


def floor_lot(size: int) -> int:
    return max(0, size) // LOT * LOT


def buy_limit(fair: float, min_edge: int, tick: int, sched: FeeSchedule | None) -> int:
    """The highest tick price ``p`` (tick <= p <= 1 - tick) with ``fair - p - fee(p) >=
    min_edge``, or 0 when there is none (or the tick is unknown: ``tick <= 0``)."""
    if tick <= 0:
        return 0
    f = prob_units(fair)
    p = (f - min_edge) // tick * tick
    p = min(p, SCALE - tick)
    while p >= tick:
        if f - p - fee_per_share(p, sched) >= min_edge:
            return p
        p -= tick
    return 0


def sell_floor(fair: float, edge: int, tick: int, sched: FeeSchedule | None) -> int:
    """The lowest tick price ``p`` with ``p - fee(p) >= fair - edge`` (selling there gets at
    least the fair value less ``edge`` per share), or 0 when even ``1 - tick`` does not (or the
    tick is unknown: ``tick <= 0``)."""
    if tick <= 0:
        return 0
    f = prob_units(fair)
    target = f - edge
    p = max(tick, -(-target // tick) * tick)
    while p <= SCALE - tick:
        if p - fee_per_share(p, sched) >= target:
            return p
        p += tick
    return 0


def token_fair(model: GameModel, side: str, market_type: str, home_score: int, away_score: int, tau: float,
               line: float | None, first_side: str = "") -> float | None:  # fmt: skip
    """The fair probability that the token of ``side`` pays, or None when the market type or
    side is not priced (or the model gives NaN).

    ``side`` is the outcome's meaning (:func:`polybot.sports.join.outcome_sides`): money line
    ``home``/``away``/``draw`` and their negations ``!home`` (the NO token of a per-result
    market); spreads: ``home``/``away``, with ``line`` the handicap of ``first_side`` (the market's
    first outcome, as Gamma states it); totals: ``over``/``under`` with ``line`` the total."""
    lead = home_score - away_score
    neg = side.startswith("!")
    base = side[1:] if neg else side
    p: float
    if market_type == "moneyline":
        h, d, a = model.probs(lead, tau)
        if base == "home":
            p = h
        elif base == "away":
            p = a
        elif base == "draw":
            p = d
        else:
            return None
    elif market_type in ("spreads", "spread") and line is not None and first_side in ("home", "away"):
        home_line = line if first_side == "home" else -line  # the handicap on the home side
        cover = model.p_cover(lead, tau, home_line)
        if base == "home":
            p = cover
        elif base == "away":
            p = 1.0 - cover
        else:
            return None
    elif market_type == "totals" and line is not None:
        over = model.p_over(home_score + away_score, tau, line, lead)
        if base == "over":
            p = over
        elif base == "under":
            p = 1.0 - over
        else:
            return None
    else:
        return None
    if p != p:  # NaN: unpriced (clamped, it would read as a sure loser)
        return None
    if neg:
        p = 1.0 - p
    return min(1.0, max(0.0, p))
