"""Exchange rules: signed-order amounts, fees, and what the venue refuses.

Everything is in 6-decimal integer base units (0.45 -> ``450_000``; 10 shares -> ``10_000_000``)
and exact, with one deliberate exception (market-order amounts, below).

**Limit-order amounts** (py-clob-client-v2 ``OrderBuilder.get_order_amounts``). The size is
rounded *down* to the 0.01 lot (:func:`signed_size`); BUY signs maker = collateral, taker =
shares; SELL signs maker = shares, taker = collateral. A price on the tick grid times a size on the
0.01 lot always has at most ``price decimals + 2 = amount decimals`` decimals, so the product is
exact in base units and the client's "round up to amount+4 then down to amount" step never fires:
we compute it with integers. (The released client 1.2.1 floors the *size* in binary floating point,
``floor(0.29 * 100) == 28``, so through it about 4.6 % of on-lot sizes sign 0.01 share less than
asked; its unreleased main branch fixed that with ``Decimal(str(x))``. We return the intended
amounts: sign them directly rather than re-deriving them from floats.)

**Market-order amounts** (``get_market_order_amounts`` of py-clob-client-v2 1.2.1, the PyPI
release the vectors come from). BUY ``amount`` is collateral, SELL ``amount`` is shares. The client
floors the price to the tick's decimals *in binary floating point* (``floor(0.57 * 100) / 100``
gives 0.56 because ``0.57 * 100 == 56.99999999999999``), floors the amount the same way, divides
(BUY) or multiplies (SELL) in floats and then rounds with its ``decimal_places``/``round_up``/
``round_down`` helpers. That floored price is what the signed order carries (BUY $10 @ 0.57 signs
10000000/17857100, i.e. a worst price of 0.56), so :func:`market_order_amounts` reproduces the
float algorithm faithfully inside one private helper and returns integers.

**Fees** (CLOB V2, PROTOCOL §5.1). ``fee = shares x rate x (p(1-p))**exponent``, charged in
collateral (pUSD) at match time -- V2 orders carry no fee field -- to **takers only**; makers pay
nothing and the venue pays them ``rebateRate`` of the fees daily, pro rata to their maker volume.
The fee is computed exactly with integers and then **floored to 5 decimals** (a multiple of
:data:`FEE_STEP`, 0.00001), as nautilus_trader does to match the venue charge; a fee below 0.00001
floors to 0. The per-fill maker rebate is an *estimate* (the same approach as nautilus'
``PolymarketFeeModel``): the rebate share of the fill's fee-equivalent, floored the same way.
A schedule with ``model = "notional"`` (Polymarket US) charges ``rate x notional`` instead, the
notional being ``shares x p`` for a buy and ``shares x (1 - p)`` for a sell, and pays makers
``rebate_ppm x notional`` per fill, both rounded to the cent, half to even.

**Order rules** (:func:`check_order`): tick grid, price range, 0.01 lot, post-only/TIF
combinations, GTD expiry buffer, minimum size for resting orders and the $1 minimum for
marketable orders -- each refusal names its rule.
"""

from __future__ import annotations

import math
from decimal import Decimal

from loguru import logger

from ..events import FeeSchedule, MarketInfo, OrderIntent
from ..units import SCALE, from_units, notional, notional_up, round_down, round_up

__all__ = [
    "FEE_STEP", "GTD_BUFFER_NS", "LOT", "MIN_MARKETABLE_NOTIONAL", "ROUNDING", "TIFS",
    "FeeModel", "FeeScheduleMissing", "check_order", "fill_fee", "limit_order_amounts",
    "maker_rebate", "market_order_amounts", "max_buy_cost", "signed_size", "taker_fee",
]  # fmt: skip

#: Tick size (base units) -> (price decimals, size decimals, amount decimals), as the v2 client's
#: ``ROUNDING_CONFIG`` (0.005 and 0.0025 arrived in py-clob-client-v2 1.2.1).
ROUNDING: dict[int, tuple[int, int, int]] = {
    100_000: (1, 2, 3),  # 0.1
    10_000: (2, 2, 4),  # 0.01
    5_000: (3, 2, 5),  # 0.005
    2_500: (4, 2, 6),  # 0.0025
    1_000: (3, 2, 5),  # 0.001
    100: (4, 2, 6),  # 0.0001
}

#: Share lot: signed sizes are multiples of 0.01 share.
LOT = 10_000
#: Fee granularity: 0.00001 collateral.
FEE_STEP = 10
#: Marketable orders must be worth at least $1 at their limit ("min size: $1").
MIN_MARKETABLE_NOTIONAL = 1_000_000
#: The venue wants a GTD expiry at least one minute ahead (it applies a one-minute buffer).
GTD_BUFFER_NS = 60 * 1_000_000_000
TIFS = ("GTC", "GTD", "FOK", "FAK")
_SIDES = ("BUY", "SELL")


# --------------------------------------------------------------------------------------------
# Signed-order amounts
# --------------------------------------------------------------------------------------------


def signed_size(size: int) -> int:
    """``size`` rounded down to the 0.01 lot: the share amount a signed order carries."""
    return round_down(size, LOT)


def _config(tick: int) -> tuple[int, int, int]:
    cfg = ROUNDING.get(tick)
    if cfg is None:
        known = ", ".join(from_units(t) for t in sorted(ROUNDING))
        raise ValueError(f"unknown tick size {from_units(tick)} (known: {known})")
    return cfg


def _price_problem(price: int, tick: int) -> str:
    """Empty if ``price`` is on the tick grid within [tick, 1 - tick], else the reason."""
    if price % tick:
        return f"tick: price {from_units(price)} is not on the {from_units(tick)} tick grid"
    if not tick <= price <= SCALE - tick:
        return (f"price range: price {from_units(price)} is outside "
                f"[{from_units(tick)}, {from_units(SCALE - tick)}]")  # fmt: skip
    return ""


def _check_side(side: str) -> None:
    if side not in _SIDES:
        raise ValueError(f"side must be 'BUY' or 'SELL', not {side!r}")


def limit_order_amounts(side: str, size: int, price: int, tick: int) -> tuple[int, int]:
    """(maker_amount, taker_amount) of a signed V2 limit order, exactly.

    BUY: maker = collateral, taker = shares; SELL: maker = shares, taker = collateral. ``size``
    is rounded down to the 0.01 lot. Refuses (``ValueError``) an unknown tick, a price off the
    tick grid or outside [tick, 1 - tick], and a size that rounds to 0.
    """
    _check_side(side)
    _config(tick)
    if problem := _price_problem(price, tick):
        raise ValueError(problem)
    shares = signed_size(size)
    if shares <= 0:
        raise ValueError(f"size {from_units(size)} rounds down to 0 at the 0.01 lot")
    # shares is a multiple of 10**4 and price of 10**2 (every tick is), so this divides exactly.
    collateral = shares * price // SCALE
    return (collateral, shares) if side == "BUY" else (shares, collateral)


# --- float mirror of py-clob-client-v2 1.2.1 (market orders only) ---------------------------


def _f_floor(x: float, digits: int) -> float:
    return math.floor(x * (10**digits)) / (10**digits)


def _f_ceil(x: float, digits: int) -> float:
    return math.ceil(x * (10**digits)) / (10**digits)


def _f_decimals(x: float) -> int:
    exponent = Decimal(str(x)).as_tuple().exponent
    return abs(exponent) if isinstance(exponent, int) else 0


def _f_fit(x: float, amount_decimals: int) -> float:
    """The client's amount rounding: round up at amount+4 decimals, then down to amount."""
    if _f_decimals(x) > amount_decimals:
        x = _f_ceil(x, amount_decimals + 4)
        if _f_decimals(x) > amount_decimals:
            x = _f_floor(x, amount_decimals)
    return x


def _f_units(x: float) -> int:
    """The client's ``to_token_decimals``."""
    f = (10**6) * x
    if _f_decimals(f) > 0:
        f = round(f) / 1
    return int(f)


def market_order_amounts(side: str, amount: int, price: int, tick: int) -> tuple[int, int]:
    """(maker_amount, taker_amount) of a signed V2 market order, as py-clob-client-v2 1.2.1
    computes them: BUY ``amount`` is collateral (maker), taker = shares; SELL ``amount`` is shares
    (maker), taker = collateral.

    This mirrors the client's binary floating point on purpose: ``price`` is floored to the tick's
    decimals as a float, so 0.57 (``0.57 * 100 == 56.99999999999999``) becomes 0.56 and the signed
    order's implied worst price is one tick lower (on tick 0.01 this hits 0.29, 0.57 and 0.58; on
    0.0025 and 0.0001 it can even leave the grid, e.g. 0.5025 -> 0.5024); the amount is floored to
    2 decimals the same way ($0.29 -> $0.28). ``price / SCALE`` is the same double as the decimal
    literal, so the result equals the client's for the same decimal inputs. Refuses what
    :func:`limit_order_amounts` refuses, and an amount that rounds to 0.
    """
    _check_side(side)
    price_dec, size_dec, amount_dec = _config(tick)
    if problem := _price_problem(price, tick):
        raise ValueError(problem)
    raw_price = _f_floor(price / SCALE, price_dec)
    raw_maker = _f_floor(amount / SCALE, size_dec)
    if raw_price <= 0 or raw_maker <= 0:
        raise ValueError(f"market {side} amount {from_units(amount)} @ {from_units(price)} "
                         "rounds down to 0")  # fmt: skip
    raw_taker = raw_maker / raw_price if side == "BUY" else raw_maker * raw_price
    return _f_units(raw_maker), _f_units(_f_fit(raw_taker, amount_dec))


# --------------------------------------------------------------------------------------------
# Fees
# --------------------------------------------------------------------------------------------


def _fee_fraction(size: int, price: int, sched: FeeSchedule) -> tuple[int, int]:
    """The exact fee in base units as numerator / denominator."""
    if size < 0 or not 0 <= price <= SCALE:
        raise ValueError(f"fee of size {size} at price {price}: size must be >= 0, price in [0, 1]")
    if sched.exponent < 0 or sched.rate_ppm < 0:
        raise ValueError(f"fee schedule must have rate_ppm >= 0 and exponent >= 0: {sched}")
    e = sched.exponent
    num = size * sched.rate_ppm * (price * (SCALE - price)) ** e
    den = SCALE * (SCALE * SCALE) ** e  # rate in millionths, p(1-p) in 10**-12
    return num, den


#: the notional model's fees and rebates are rounded to the cent (Polymarket US)
CENT = 10_000


def _notional_fee(size: int, price: int, rate_ppm: int, side: str) -> int:
    """``rate x notional`` (notional ``size x p`` for a buy, ``size x (1 - p)`` for a sell),
    rounded to the cent, half to even (Polymarket US's fee schedule)."""
    if size < 0 or not 0 <= price <= SCALE:
        raise ValueError(f"fee of size {size} at price {price}: size must be >= 0, price in [0, 1]")
    p = price if side == "BUY" else SCALE - price
    num = size * p * rate_ppm  # exact: shares, price and rate each in millionths (10**-18 USD)
    den = SCALE * SCALE * CENT  # 10**-18 USD -> cents
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2):
        q += 1
    return q * CENT


def taker_fee(size: int, price: int, sched: FeeSchedule | None, side: str = "BUY") -> int:
    """Taker fee of a fill of ``size`` shares at ``price`` in collateral base units. The curve
    model: ``shares x rate x (p(1-p))**exponent``, computed exactly and floored to 5 decimals (a
    multiple of :data:`FEE_STEP`); the notional model: ``rate x notional`` rounded to the cent
    (``side`` chooses the notional). ``None`` or a zero rate -> 0."""
    if sched is None or sched.rate_ppm == 0:
        return 0
    if sched.model == "notional":
        return _notional_fee(size, price, sched.rate_ppm, side)
    num, den = _fee_fraction(size, price, sched)
    return num // (den * FEE_STEP) * FEE_STEP


def maker_rebate(size: int, price: int, sched: FeeSchedule | None, side: str = "BUY") -> int:
    """Maker rebate of a fill. The curve model: an *estimate*, ``rebate_ppm / 1e6`` of the fill's
    fee-equivalent (the :func:`taker_fee` of the same fill), floored to :data:`FEE_STEP` (the
    CLOB pays rebates daily from each market's pool, pro rata to the market's maker volume, so
    the real figure depends on other makers; same approach as nautilus_trader's
    ``PolymarketFeeModel``). The notional model: ``rebate_ppm x notional``, paid per fill,
    rounded to the cent."""
    if sched is None or sched.rebate_ppm <= 0:
        return 0
    if sched.model == "notional":
        return _notional_fee(size, price, sched.rebate_ppm, side)
    return taker_fee(size, price, sched) * sched.rebate_ppm // (SCALE * FEE_STEP) * FEE_STEP


def fill_fee(liquidity: str, size: int, price: int, sched: FeeSchedule | None, side: str = "BUY") -> tuple[int, int]:
    """(fee, rebate) of one fill. Taker -> (taker fee, 0); maker -> (0, rebate), unless the
    schedule is not ``taker_only``: then makers pay the same fee and earn no rebate."""
    if liquidity == "taker":
        return taker_fee(size, price, sched, side), 0
    if liquidity == "maker":
        if sched is not None and not sched.taker_only:
            return taker_fee(size, price, sched, side), 0
        return 0, maker_rebate(size, price, sched, side)
    raise ValueError(f"liquidity must be 'maker' or 'taker', not {liquidity!r}")


def max_buy_cost(size: int, price: int, sched: FeeSchedule | None) -> int:
    """Upper bound of what a BUY of ``size`` shares with limit ``price`` can spend when it fills
    at ``price`` or better: notional rounded up + the fee at ``price`` rounded *up* to
    :data:`FEE_STEP` (at most 0.00001 above :func:`taker_fee`; rounding up is what makes the bound
    hold under the charged fee's floor).

    Valid because ``q -> q + rate (q(1-q))**e`` is non-decreasing on [0, 1] when its derivative
    ``1 + rate e (q(1-q))**(e-1) (1-2q) >= 0``: for every exponent >= 0 whenever rate <= 1
    (``rate_ppm <= 1_000_000``); for exponent 2 up to rate 3*sqrt(3) ~ 5.196. Above that the fee
    saved near p -> 1 can exceed the notional saved, and a better price could cost more."""
    cost = notional_up(price, size)
    if sched is None or sched.rate_ppm == 0:
        return cost
    if sched.model == "notional":  # rate x size x p, rounded to the cent: at most one cent above
        return cost + round_up(-(-size * price * sched.rate_ppm // (SCALE * SCALE)), CENT)
    num, den = _fee_fraction(size, price, sched)
    return cost + round_up(-(-num // den), FEE_STEP)


class FeeScheduleMissing(ValueError):
    """Live trading refuses a market whose fee schedule is unknown (not in the catalog)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no fee schedule for {key!r}: market not in the catalog")
        self.key = key


class FeeModel:
    """Which :class:`FeeSchedule` applies to a market.

    A market in the catalog uses its own ``fees`` (``None`` = fee-free). A market missing from the
    catalog uses ``default`` (a warning is logged once per key) -- or, when ``live``, raises
    :class:`FeeScheduleMissing`: live trading must not guess fees.
    """

    def __init__(self, default: FeeSchedule | None = None, live: bool = False) -> None:
        self.default = default
        self.live = live
        self._warned: set[str] = set()

    def schedule(self, info: MarketInfo | None, key: str) -> FeeSchedule | None:
        if info is not None:
            return info.fees
        if self.live:
            raise FeeScheduleMissing(key)
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("no catalog entry for {}: using the default fee schedule {}", key,
                           self.default)  # fmt: skip
        return self.default


# --------------------------------------------------------------------------------------------
# Order rules
# --------------------------------------------------------------------------------------------


def check_order(intent: OrderIntent, *, tick: int, min_size: int, now: int, marketable: bool) -> str:
    """Empty if the venue would accept ``intent``, else a reason naming the rule it breaks.

    ``marketable`` says whether the order would cross the book at submission; ``now`` and
    ``intent.expire_ts`` are ns. Rules: known side/TIF/kind/tick; price on the tick grid and in
    [tick, 1 - tick]; size a positive multiple of the 0.01 lot; post-only only with GTC/GTD and
    never crossing; market orders only FOK/FAK; GTD needs ``expire_ts >= now + 60 s``; a resting
    order needs ``size >= min_size``; a marketable order needs a notional of at least $1 at its
    limit (BUY and SELL alike).
    """
    if intent.side not in _SIDES:
        return f"side: {intent.side!r} is not BUY or SELL"
    if intent.tif not in TIFS:
        return f"tif: {intent.tif!r} is not one of {', '.join(TIFS)}"
    if intent.kind not in ("limit", "market"):
        return f"kind: {intent.kind!r} is not 'limit' or 'market'"
    if tick not in ROUNDING:
        return f"tick: unknown tick size {from_units(tick)}"
    if problem := _price_problem(intent.price, tick):
        return problem
    if intent.size <= 0 or intent.size % LOT:
        return f"lot: size {from_units(intent.size)} is not a positive multiple of the 0.01 lot"
    if intent.post_only and intent.tif not in ("GTC", "GTD"):
        return f"post_only: only with GTC/GTD, not {intent.tif}"
    if intent.post_only and marketable:
        return "post_only: the order would cross the book"
    if intent.kind == "market" and intent.tif not in ("FOK", "FAK"):
        return f"market order: tif must be FOK or FAK, not {intent.tif}"
    if intent.tif == "GTD":
        if intent.expire_ts <= 0:
            return "GTD: expire_ts is required"
        if intent.expire_ts < now + GTD_BUFFER_NS:
            return "GTD: expire_ts must be at least 60 s after now (the venue's one-minute buffer)"
    if not marketable and intent.size < min_size:
        return (f"min size: resting order of {from_units(intent.size)} shares is below the "
                f"market minimum of {from_units(min_size)}")  # fmt: skip
    if marketable and notional(intent.price, intent.size) < MIN_MARKETABLE_NOTIONAL:
        return (f"min size: $1: marketable {intent.side} worth "
                f"{from_units(notional(intent.price, intent.size))} at its limit")  # fmt: skip
    return ""
