"""Market-facing risk validators: data health, the venue's rules, fat-finger bands, self-trade
prevention, rate limits and the error breaker.

Every validator is a small attrs class with a ``name`` (its registry name, see
:data:`VALIDATORS`), keyword parameters in human units (the TOML ``[risk.validators.<name>]``
table: prices as decimal strings or numbers, converted exactly; times in seconds) checked in
``__attrs_post_init__`` (``ValueError("<param>: ...")``), and ``check(intent, ctx) -> Decision``.
None of them resizes: they approve or reject with a reason that names the numbers.

The stateful ones (:class:`RateLimit`, :class:`ErrorBreaker`) subscribe to the kernel's bus in
``attach(kernel)`` at :data:`~polybot.bus.PRIORITY_KERNEL` and keep their state in
``to_state()`` / ``restore(state)`` (JSON-able, deterministic: kernel time only).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import attrs

from ..bus import PRIORITY_KERNEL
from ..events import (
    CancelSubmitted,
    HandlerError,
    OrderIntent,
    OrderRejected,
    OrderStateError,
    TradingStateChanged,
    type_name,
)
from ..execution.rules import MIN_MARKETABLE_NOTIONAL, ROUNDING, check_order
from ..units import SCALE, from_units
from ..params import bool_param as _bool
from ..params import count_param as _int
from ..params import name_param as _name
from ..params import seconds_param as _seconds
from ..params import short_id as _short
from ..params import units_param as _units
from .chain import APPROVE, LOT, Decision, RiskContext, reject

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel

__all__ = [
    "DEFAULT_TICK", "VALIDATORS", "DataHealth", "ErrorBreaker", "ExchangeRules", "PriceBand",
    "RateLimit", "SelfTrade",
]  # fmt: skip

#: The tick when neither the book nor the catalog states one (0.01).
DEFAULT_TICK = 10_000
_NS = 1_000_000_000


# --------------------------------------------------------------------------------------------
# Parameter conversion (human units -> base units / ns), each error naming its parameter
# --------------------------------------------------------------------------------------------














# --------------------------------------------------------------------------------------------
# Formatting and lookups shared by the validators
# --------------------------------------------------------------------------------------------


def _p(v: int) -> str:
    return from_units(v)




def _secs(ns: int) -> str:
    s = f"{ns / _NS:.3f}".rstrip("0").rstrip(".")
    return f"{s} s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _tick(ctx: RiskContext, asset_id: str, default: int = DEFAULT_TICK) -> int:
    """The asset's tick: the book's, else the catalog's, else ``default``."""
    b = ctx.book(asset_id)
    if b is not None and b.tick_size:
        return int(b.tick_size)
    info = ctx.info(asset_id)
    if info is not None and info.tick_size:
        return int(info.tick_size)
    return default


def _market_of(kernel: Any, asset_id: str, market: str = "") -> str:
    """The market (condition id) of an order: the intent's, else the catalog's, else the book's,
    else the asset id itself (an unknown asset is its own market)."""
    if market:
        return market
    b = kernel.books.get(asset_id)
    return kernel.catalog.market_of(asset_id, b.market if b is not None and b.market else asset_id)


def _reduces(intent: OrderIntent, ctx: RiskContext) -> bool:
    """A SELL of no more than the account holds: it only shrinks a position."""
    if intent.side != "SELL":
        return False
    held = ctx.portfolio.size(intent.asset_id)
    return 0 < intent.size <= held


# --------------------------------------------------------------------------------------------
# data_health
# --------------------------------------------------------------------------------------------


@attrs.define
class DataHealth:
    """The data an order is priced from is sound, and the market takes orders.

    * the asset's book exists and is healthy (hash-verified, not crossed, no feed gap);
    * the book is at most ``max_book_age_s`` old (kernel time since it last changed; 0 = not
      checked);
    * the market is in the catalog (unless ``require_catalog`` is False), not closed, accepting
      orders, not resolved, and not within ``settlement_buffer_s`` of its end (when it has one).

    With ``allow_reducing_on_stale``, an order that only reduces a position (a SELL of no more
    than the account holds) may pass an unhealthy or stale book; it never passes a missing book
    or the market checks.
    """

    name: str = "data_health"
    max_book_age_s: float = 0.0
    settlement_buffer_s: float = 60.0
    require_catalog: bool = True
    allow_reducing_on_stale: bool = False
    _max_age_ns: int = attrs.field(init=False, default=0, repr=False)
    _buffer_ns: int = attrs.field(init=False, default=0, repr=False)

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        self._max_age_ns = _seconds("max_book_age_s", self.max_book_age_s)
        self._buffer_ns = _seconds("settlement_buffer_s", self.settlement_buffer_s)
        _bool("require_catalog", self.require_catalog)
        _bool("allow_reducing_on_stale", self.allow_reducing_on_stale)

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        asset = intent.asset_id
        book, info, _m = ctx.facts(asset)
        if book is None:
            return reject(self.name, f"no order book for asset {_short(asset)}")
        now = ctx.now
        if not book.healthy or (self._max_age_ns and now - book.updated_ts > self._max_age_ns):
            if book.healthy:
                bad = (f"the book of {_short(asset)} is {_secs(now - book.updated_ts)} old "
                       f"(max_book_age_s is {_secs(self._max_age_ns)})")  # fmt: skip
            else:
                bad = f"the book of {_short(asset)} is unhealthy ({book.unhealthy_reason or 'no reason given'})"
            if not (self.allow_reducing_on_stale and _reduces(intent, ctx)):
                return reject(self.name, bad)
        market = info.market if info is not None else (intent.market or book.market)
        if market and market in ctx.catalog.resolved:
            return reject(self.name, f"market {_short(market)} is resolved")
        if info is None:
            if self.require_catalog:
                return reject(self.name, f"no catalog entry for asset {_short(asset)}")
            return APPROVE
        if info.closed:
            return reject(self.name, f"market {_short(market)} is closed")
        if not info.accepting_orders:
            return reject(self.name, f"market {_short(market)} is not accepting orders")
        if info.end_ts > 0 and now >= info.end_ts - self._buffer_ns:
            left = info.end_ts - now
            when = f"ends in {_secs(left)}" if left > 0 else f"ended {_secs(-left)} ago"
            return reject(self.name, f"market {_short(market)} {when}, inside the settlement buffer of "
                                     f"{_secs(self._buffer_ns)}")  # fmt: skip
        return APPROVE


# --------------------------------------------------------------------------------------------
# exchange_rules
# --------------------------------------------------------------------------------------------


@attrs.define
class ExchangeRules:
    """What the venue would refuse, as :func:`polybot.execution.rules.check_order` states it:
    the tick grid and the (tick, 1 - tick) range, the 0.01 lot, the market's minimum size for
    resting orders and $1 for marketable ones, post-only only with GTC/GTD (and not crossing),
    market orders only FOK/FAK, a GTD expiry at least 60 s ahead.

    The tick is the book's, else the catalog's, else ``default_tick`` (0.01); the minimum size is
    the catalog's, else ``default_min_size`` (5 shares). An order is marketable when it would
    cross the book now: a BUY at or above the best ask, a SELL at or below the best bid.
    """

    name: str = "exchange_rules"
    default_tick: Any = "0.01"
    default_min_size: Any = "5"
    _default_tick: int = attrs.field(init=False, default=DEFAULT_TICK, repr=False)
    _min_size: int = attrs.field(init=False, default=0, repr=False)

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        self._default_tick = _units("default_tick", self.default_tick, minimum=1)
        if self._default_tick >= SCALE:
            raise ValueError(f"default_tick: must be below 1, got {self.default_tick!r}")
        self._min_size = _units("default_min_size", self.default_min_size)

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        book, info, _m = ctx.facts(intent.asset_id)
        if book is not None and book.tick_size:
            tick = book.tick_size
        elif info is not None and info.tick_size:
            tick = info.tick_size
        else:
            tick = self._default_tick
        min_size = info.min_order_size if info is not None else self._min_size
        price = intent.price
        if (intent.tif == "GTC" and intent.kind == "limit" and not intent.post_only and tick in ROUNDING
                and not price % tick and tick <= price <= SCALE - tick and intent.size >= min_size
                and intent.size > 0 and not intent.size % LOT and intent.side in ("BUY", "SELL")
                and intent.size * price >= MIN_MARKETABLE_NOTIONAL * SCALE):  # fmt: skip
            return APPROVE  # a plain GTC limit order that passes every rule, marketable or not
        marketable = False
        if book is not None:
            if intent.side == "BUY":
                marketable = bool(book.best_ask) and intent.price >= book.best_ask
            else:
                marketable = bool(book.best_bid) and intent.price <= book.best_bid
        problem = check_order(intent, tick=tick, min_size=min_size, now=ctx.now, marketable=marketable)
        return reject(self.name, problem) if problem else APPROVE


# --------------------------------------------------------------------------------------------
# price_band
# --------------------------------------------------------------------------------------------


@attrs.define
class PriceBand:
    """Fat-finger band: no BUY more than ``ticks`` ticks above the best ask, no SELL more than
    ``ticks`` ticks below the best bid.

    If the opposite side is empty, the order's own side's touch is the reference (a BUY at most
    ``ticks`` above the best bid, a SELL at most ``ticks`` below the best ask). With no book or an
    empty one there is nothing to compare with: rejected unless ``allow_empty_book``."""

    skip_reducing = True  # a flatten's reduce-only sells pass (RiskChain)

    name: str = "price_band"
    ticks: int = 5
    allow_empty_book: bool = False

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        _int("ticks", self.ticks, 0)
        _bool("allow_empty_book", self.allow_empty_book)

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        asset = intent.asset_id
        book, info, _m = ctx.facts(asset)
        if book is not None:
            bid, ask = book.best_bid, book.best_ask
        else:
            bid = ask = 0
        if not (bid or ask):
            if self.allow_empty_book:
                return APPROVE
            what = "no order book" if book is None else "an empty order book"
            return reject(self.name, f"{intent.side.lower()} at {_p(intent.price)}: asset {_short(asset)} has "
                                     f"{what}, no price to compare with")  # fmt: skip
        k = self.ticks
        if book is not None and book.tick_size:
            band = k * book.tick_size
        elif info is not None and info.tick_size:
            band = k * info.tick_size
        else:
            band = k * DEFAULT_TICK
        price = intent.price
        if intent.side == "BUY":
            ref = ask or bid
            if price > ref + band:
                what = "the best ask" if ask else "the best bid (no asks)"
                return reject(self.name, f"buy at {_p(price)} is more than {_plural(k, 'tick')} above {what} "
                                         f"{_p(ref)} (limit {_p(ref + band)})")  # fmt: skip
        else:
            ref = bid or ask
            if price < ref - band:
                what = "the best bid" if bid else "the best ask (no bids)"
                return reject(self.name, f"sell at {_p(price)} is more than {_plural(k, 'tick')} below {what} "
                                         f"{_p(ref)} (limit {_p(ref - band)})")  # fmt: skip
        return APPROVE


# --------------------------------------------------------------------------------------------
# self_trade
# --------------------------------------------------------------------------------------------


@attrs.define
class SelfTrade:
    """No order that would match the account's own resting orders on the unified book.

    On the same token a BUY at p crosses an own SELL at <= p, and a SELL at p an own BUY at >= p.
    Across a binary market's two tokens (the complement, from the catalog) a YES BUY at p matches
    an own NO BUY at >= 1 - p (the venue mints the pair), and a YES SELL at p an own NO SELL at
    <= 1 - p (it merges them). Resting means open (not terminal), including orders whose cancel
    is still pending, unless ``ignore_cancel_pending``. Scope: every strategy of the account, or
    only the submitting strategy's own orders with ``per_strategy``.

    Cost: one pass over the open orders of the asset and of its complement.
    """

    skip_reducing = True  # a flatten's reduce-only sells pass (RiskChain)

    name: str = "self_trade"
    per_strategy: bool = False
    ignore_cancel_pending: bool = False

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        _bool("per_strategy", self.per_strategy)
        _bool("ignore_cancel_pending", self.ignore_cancel_pending)

    def _resting(self, ctx: RiskContext, asset: str, strategy: str) -> list[Any]:
        out = []
        for o in ctx.orders.open_orders(asset_id=asset):
            if self.per_strategy and o.strategy != strategy:
                continue
            if self.ignore_cancel_pending and o.state == "cancel_pending":
                continue
            if o.remaining <= 0:
                continue
            out.append(o)
        return out

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        asset = intent.asset_id
        _b, info, _m = ctx.facts(asset)
        other = None
        if info is not None and len(info.asset_ids) == 2:
            a0, a1 = info.asset_ids
            other = a1 if asset == a0 else a0
        resting = ctx.orders.open_assets
        if asset not in resting and (other is None or other not in resting):
            return APPROVE  # nothing of ours rests on either token
        strategy = intent.strategy or ctx.strategy
        p = intent.price
        buy = intent.side == "BUY"
        for o in self._resting(ctx, asset, strategy):
            q = o.intent.price
            if o.client_id == intent.client_id or o.intent.side == intent.side:
                continue
            if (buy and q <= p) or (not buy and q >= p):
                return reject(self.name, f"{intent.side.lower()} at {_p(p)} would trade with own resting "
                                         f"{o.intent.side.lower()} {o.client_id} at {_p(q)} "
                                         f"(strategy {o.strategy!r}) on {_short(asset)}")  # fmt: skip
        if other:
            mirror = SCALE - p
            for o in self._resting(ctx, other, strategy):
                q = o.intent.price
                if o.intent.side != intent.side:
                    continue
                if buy and q >= mirror:
                    return reject(self.name, f"buy at {_p(p)} would match own resting buy {o.client_id} at "
                                             f"{_p(q)} on the complement token {_short(other)} (strategy "
                                             f"{o.strategy!r}): {_p(p)} + {_p(q)} >= 1")  # fmt: skip
                if not buy and q <= mirror:
                    return reject(self.name, f"sell at {_p(p)} would match own resting sell {o.client_id} at "
                                             f"{_p(q)} on the complement token {_short(other)} (strategy "
                                             f"{o.strategy!r}): {_p(p)} + {_p(q)} <= 1")  # fmt: skip
        return APPROVE


# --------------------------------------------------------------------------------------------
# rate_limit
# --------------------------------------------------------------------------------------------

#: Bucket levels are kept in nano-tokens (one order or cancel = 10**9); rates in micro-tokens/s.
_TOKEN = 1_000_000_000


class _Bucket:
    """A token bucket in kernel time: ``rate`` micro-tokens/s, ``cap`` nano-tokens. A bucket
    starts full; refills are rounded down to the nano-token (deterministic; the loss is below
    10**-9 token per refill)."""

    __slots__ = ("rate", "cap")

    def __init__(self, rate: int, burst: int) -> None:
        self.rate = rate
        self.cap = burst * 1000  # micro-tokens -> nano-tokens

    def level(self, st: list[int] | None, now: int) -> list[int]:
        """The bucket's state [level, ts] refilled up to ``now`` (a new list when ``st`` is None)."""
        if st is None:
            return [self.cap, now]
        if now > st[1]:
            st[0] = min(self.cap, st[0] + (now - st[1]) * self.rate // 1_000_000)
            st[1] = now
        return st

    def wait_ns(self, st: list[int]) -> int:
        """Time until the bucket holds one token again."""
        need = _TOKEN - st[0]
        return 0 if need <= 0 else -(-need * 1_000_000 // self.rate)


@attrs.define
class RateLimit:
    """Token buckets in kernel time: new orders per market (``per_market_per_s``, burst
    ``burst_market``) and for the whole account (``global_per_s``, burst ``burst_global``), and a
    cancel/replace throttle per market (``cancels_per_s``, burst ``burst_cancels``): every
    ``CancelSubmitted`` takes a cancel token (cancels themselves are never blocked, and an empty
    bucket stays at zero), and new orders on a market whose cancel bucket is empty are rejected
    until it refills. A rate of 0 turns that bucket off.

    The market of an order is ``intent.market``, else the catalog's market of the asset (else the
    book's, else the asset itself). Each leg of a plan takes a token.

    Tokens are taken when *this* validator approves the intent; a later validator in the chain
    may still reject it, and the token stays spent (the chain has no "commit" step). Put
    ``rate_limit`` last to count only orders that are sent. A plan re-checked after a resize is
    charged once per leg (intents already charged at the same kernel time pass).
    """

    skip_reducing = True  # a flatten's reduce-only sells pass (RiskChain)

    name: str = "rate_limit"
    per_market_per_s: Any = 5
    burst_market: Any = 10
    global_per_s: Any = 50
    burst_global: Any = 100
    cancels_per_s: Any = 10
    burst_cancels: Any = 20
    _market_b: _Bucket = attrs.field(init=False, default=None, repr=False)
    _global_b: _Bucket = attrs.field(init=False, default=None, repr=False)
    _cancel_b: _Bucket = attrs.field(init=False, default=None, repr=False)
    markets: dict[str, list[int]] = attrs.field(init=False, factory=dict, repr=False)
    glob: list[int] | None = attrs.field(init=False, default=None, repr=False)
    cancels: dict[str, list[int]] = attrs.field(init=False, factory=dict, repr=False)
    _kernel: Any = attrs.field(init=False, default=None, repr=False)
    _charged_ts: int = attrs.field(init=False, default=-1, repr=False)
    _charged: set[str] = attrs.field(init=False, factory=set, repr=False)

    def __attrs_post_init__(self) -> None:
        _name(self.name)

        def bucket(rate_param: str, burst_param: str) -> _Bucket:
            rate = _units(rate_param, getattr(self, rate_param))
            burst = _units(burst_param, getattr(self, burst_param))
            if rate and burst < SCALE:
                raise ValueError(f"{burst_param}: must be at least 1 (one order), got "
                                 f"{getattr(self, burst_param)!r}")  # fmt: skip
            return _Bucket(rate, burst)

        self._market_b = bucket("per_market_per_s", "burst_market")
        self._global_b = bucket("global_per_s", "burst_global")
        self._cancel_b = bucket("cancels_per_s", "burst_cancels")

    # ------------------------------------------------------------------ bus

    def attach(self, kernel: Kernel) -> None:
        if self._kernel is kernel:
            return
        self._kernel = kernel
        if self._cancel_b.rate:
            kernel.bus.subscribe(CancelSubmitted, self._on_cancel, priority=PRIORITY_KERNEL)

    def _on_cancel(self, ev: CancelSubmitted) -> None:
        k = self._kernel
        o = k.orders.get(ev.client_id)
        asset = o.asset_id if o is not None else ev.asset_id
        market = _market_of(k, asset, o.intent.market if o is not None else "")
        st = self.cancels[market] = self._cancel_b.level(self.cancels.get(market), k.clock.now())
        st[0] = max(0, st[0] - _TOKEN)

    # ------------------------------------------------------------------ check

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        now = ctx.now
        cid = intent.client_id if intent.plan_id else ""  # only a plan's legs are checked again
        if cid:
            if now != self._charged_ts:
                self._charged_ts = now
                self._charged.clear()
            elif cid in self._charged:
                return APPROVE  # a plan leg re-checked after a resize: already charged
        market = intent.market or ctx.facts(intent.asset_id)[2]
        mb, gb, cb = self._market_b, self._global_b, self._cancel_b
        if cb.rate:
            st = self.cancels.get(market)
            if st is not None:
                if now > st[1]:
                    cb.level(st, now)
                if st[0] < _TOKEN:
                    return reject(self.name, f"cancel/replace throttle: market {_short(market)} is cancelling faster "
                                             f"than {from_units(cb.rate)} cancels/s (burst {from_units(cb.cap // 1000)}); "
                                             f"new orders there wait {_secs(cb.wait_ns(st))}")  # fmt: skip
        ms = gs = None
        if mb.rate:
            ms = self.markets.get(market)
            if ms is None:
                ms = self.markets[market] = [mb.cap, now]
            elif now > ms[1]:
                mb.level(ms, now)
            if ms[0] < _TOKEN:
                return reject(self.name, f"rate limit: market {_short(market)} allows {from_units(mb.rate)} "
                                         f"new orders/s (burst {from_units(mb.cap // 1000)}); next in "
                                         f"{_secs(mb.wait_ns(ms))}")  # fmt: skip
        if gb.rate:
            gs = self.glob
            if gs is None:
                gs = self.glob = [gb.cap, now]
            elif now > gs[1]:
                gb.level(gs, now)
            if gs[0] < _TOKEN:
                return reject(self.name, f"rate limit: the account allows {from_units(gb.rate)} new orders/s "
                                         f"(burst {from_units(gb.cap // 1000)}); next in "
                                         f"{_secs(gb.wait_ns(gs))}")  # fmt: skip
        if ms is not None:
            ms[0] -= _TOKEN
        if gs is not None:
            gs[0] -= _TOKEN
        if cid:
            self._charged.add(cid)
        return APPROVE

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        return {
            "markets": {m: list(v) for m, v in sorted(self.markets.items())},
            "global": list(self.glob) if self.glob is not None else None,
            "cancels": {m: list(v) for m, v in sorted(self.cancels.items())},
        }

    def restore(self, st: dict[str, Any]) -> None:
        self.markets = {str(m): [int(v[0]), int(v[1])] for m, v in st.get("markets", {}).items()}
        g = st.get("global")
        self.glob = [int(g[0]), int(g[1])] if g is not None else None
        self.cancels = {str(m): [int(v[0]), int(v[1])] for m, v in st.get("cancels", {}).items()}
        self._charged_ts = -1
        self._charged.clear()


# --------------------------------------------------------------------------------------------
# error_breaker
# --------------------------------------------------------------------------------------------


@attrs.define
class ErrorBreaker:
    """Halts trading when errors pile up: more than ``max_errors`` within ``window_s`` of kernel
    time, counting executor rejections (``OrderRejected``), handler exceptions
    (``HandlerError``) and order events the state machine refused (``OrderStateError``; one
    caused by an ``OrderRejected`` is not counted twice).

    Rejections whose reason contains one of ``ignore_reasons`` (case-insensitive) are ordinary
    market outcomes, not errors: by default a FOK that could not be filled, a FAK that found
    nothing to match, and a post-only order refused because the book moved onto it (a maker's
    everyday outcome; the venue's exact wording is unverified, so "post-only" and "post only").

    Tripping calls ``kernel.halt("error breaker: ...")`` once (a journaled ``trading_state``
    event); while tripped every intent is rejected. Resuming trading (the kernel back to
    "active") re-arms it with an empty window.
    """

    skip_reducing = True  # a flatten's reduce-only sells still get out (RiskChain)

    name: str = "error_breaker"
    max_errors: int = 10
    window_s: Any = 60.0
    ignore_reasons: Any = ("couldn't be fully filled", "no orders found to match", "post-only", "post only")
    _window_ns: int = attrs.field(init=False, default=0, repr=False)
    _ignore: tuple[str, ...] = attrs.field(init=False, default=(), repr=False)
    errors: deque[int] = attrs.field(init=False, factory=deque, repr=False)
    tripped: bool = attrs.field(init=False, default=False)
    reason: str = attrs.field(init=False, default="", repr=False)
    _kernel: Any = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        _name(self.name)
        _int("max_errors", self.max_errors, 0)
        self._window_ns = _seconds("window_s", self.window_s)
        if self._window_ns <= 0:
            raise ValueError(f"window_s: must be more than 0 seconds, got {self.window_s!r}")
        ign = self.ignore_reasons
        if isinstance(ign, str) or not isinstance(ign, (list, tuple)) or not all(isinstance(s, str) and s for s in ign):
            raise ValueError(f"ignore_reasons: must be a list of non-empty strings, got {ign!r}")
        self._ignore = tuple(s.lower() for s in ign)

    # ------------------------------------------------------------------ bus

    def attach(self, kernel: Kernel) -> None:
        if self._kernel is kernel:
            return
        self._kernel = kernel
        sub = kernel.bus.subscribe
        sub(OrderRejected, self._on_rejected, priority=PRIORITY_KERNEL)
        sub(HandlerError, self._on_handler_error, priority=PRIORITY_KERNEL)
        sub(OrderStateError, self._on_state_error, priority=PRIORITY_KERNEL)
        sub(TradingStateChanged, self._on_state, priority=PRIORITY_KERNEL)

    def _on_rejected(self, ev: OrderRejected) -> None:
        r = ev.reason.lower()
        if any(s in r for s in self._ignore):
            return
        self._error(f"order {ev.client_id} rejected: {ev.reason or 'no reason given'}")

    def _on_handler_error(self, ev: HandlerError) -> None:
        self._error(f"handler {ev.handler} raised on {ev.event_type}: {ev.error}")

    def _on_state_error(self, ev: OrderStateError) -> None:
        if ev.event_type == type_name(OrderRejected):
            return  # the rejection itself was counted
        self._error(f"order {ev.client_id}: {ev.reason}")

    def _on_state(self, ev: TradingStateChanged) -> None:
        if ev.state == "active" and self.tripped:
            self.tripped = False
            self.reason = ""
            self.errors.clear()

    def _error(self, what: str) -> None:
        if self.tripped:
            return
        k = self._kernel
        now = k.clock.now()
        errs = self.errors
        errs.append(now)
        while errs and errs[0] <= now - self._window_ns:
            errs.popleft()
        if len(errs) > self.max_errors:
            self.tripped = True
            self.reason = (f"error breaker: {len(errs)} errors within {_secs(self._window_ns)} "
                           f"(max {self.max_errors}); last: {what}")  # fmt: skip
            self.errors.clear()
            k.halt(self.reason)

    # ------------------------------------------------------------------ check

    def check(self, intent: OrderIntent, ctx: RiskContext) -> Decision:
        if self.tripped:
            return reject(self.name, f"{self.reason} -- resume trading to re-arm")
        return APPROVE

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        return {"tripped": self.tripped, "reason": self.reason, "errors": list(self.errors)}

    def restore(self, st: dict[str, Any]) -> None:
        self.tripped = bool(st.get("tripped", False))
        self.reason = str(st.get("reason", ""))
        self.errors = deque(int(t) for t in st.get("errors", ()))
        k = self._kernel
        if self.tripped and k is not None and k.trading_state == "active":
            # a trip always halts the kernel: an active kernel was resumed (a snapshot taken
            # across the resume), and no further "active" transition would re-arm us
            self.tripped = False
            self.reason = ""


#: Registry names -> classes (merged into ``BUILTIN_VALIDATORS`` by the chain's owner).
VALIDATORS: dict[str, Any] = {
    "data_health": DataHealth,
    "exchange_rules": ExchangeRules,
    "price_band": PriceBand,
    "self_trade": SelfTrade,
    "rate_limit": RateLimit,
    "error_breaker": ErrorBreaker,
}
