"""Dutch book: buy every outcome of a neg-risk event when the basket costs less than it must pay.

In a neg-risk event of ``m`` outcome markets exactly one outcome wins, so

* the **YES basket** (N YES shares of every outcome) pays exactly ``N``, and
* the **NO basket** (N NO shares of every outcome) pays exactly ``N x (m - 1)``.

When the depth-walked cost of a basket plus the taker fees is below its payout less a margin, the
strategy buys it with one :class:`~polybot.events.OrderPlan` of fill-or-kill legs, one per
outcome, sent together. Within one binary market ``ask(YES) + ask(NO) = 1 + spread`` (the book is
unified, PROTOCOL.md section 8), so the opportunity only exists across the event's markets.

    [strategies.dutch]
    class = "dutch_book"
    events = {}              # event id -> number of outcome markets (0 = trust the catalog);
                             # empty = every neg-risk event in the catalog
    sides = ["yes", "no"]    # which baskets to look for
    margin = "0.005"         # cost + fees must stay below payout x (1 - margin)
    max_shares = "100"       # N at most (shares per leg)
    max_notional = "200"     # worst-case cost of one basket at most (pUSD; 0 = no cap)
    max_levels = 3           # levels walked per leg
    max_slippage = "0.02"    # a leg walks at most this far above its best ask
    order_kind = "market"    # legs are FOK "market" orders (or FOK "limit" orders)
    cooldown_s = 5.0         # between two baskets of one event
    settlement_buffer_s = 300.0   # never trade this close to the event's end_ts
    max_book_age_s = 300.0   # a leg's book older than this is stale (0 = not checked)
    partial = "complete"     # a partial basket: "complete" the missing legs, or "unwind"
    max_extra_cost = "1"     # what completing may cost above the plan (pUSD, worst case)
    partial_attempts = 3     # completion / unwind attempts before giving up on that route
    retry_s = 1.0            # between two attempts

**Which events.** Every market of the event must be in the catalog (``Catalog.event_markets``),
be ``neg_risk``, binary (YES, NO) and *not* ``neg_risk_augmented`` (there an unlisted "Other"
outcome can win, so neither basket is guaranteed). The catalog cannot tell whether it knows
*all* of an event's outcomes: ``events = { "<event id>" = m }`` states the count, and an event
whose catalog holds another number of markets is refused (``0`` trusts the catalog, which is
right when the feed subscribes whole events). At decision time every market must be active,
open, accepting orders, unresolved and more than ``settlement_buffer_s`` before its ``end_ts``;
every leg's book must be healthy (hash-verified, not crossed, no feed gap), not stale
(``max_book_age_s``; also after a ``FeedStale`` naming it) and have asks.

**Pricing.** All amounts are integers in 6-decimal base units. Each leg walks its own asks (the
NO token's own book for the NO basket: on the unified book ``ask(NO_i) = 1 - bid(YES_i)``), at
most ``max_levels`` levels and ``max_slippage`` above its best ask. The basket walks a level only
while its *marginal* price -- the sum over legs of the level price plus the taker fee per share
there -- stays below ``payout per share x (1 - margin)``, so no share is bought at a loss; N is
the largest 0.01 lot so reached, capped by ``max_shares`` and ``max_notional``, and at least
every leg's ``min_order_size`` and the venue's $1 for a marketable order. Then, exactly:

* expected cost = sum over the walked levels of ``price x shares`` plus the taker fee of each
  level floored to 0.00001 (:func:`polybot.execution.rules.taker_fee`, what the paper executor
  charges fill by fill) must be below ``payout x (1 - margin)``;
* worst-case cost = sum over legs of :func:`~polybot.execution.rules.max_buy_cost` of N shares at
  the leg's limit (the worst level walked): notional plus the fee there, both rounded *up* -- what
  a leg can cost whatever the book does before it arrives, and what the kernel reserves -- must be
  below the payout (no margin: this is the guarantee);
* each leg's signed amounts must carry exactly N shares for ``N x limit`` collateral:
  :func:`~polybot.execution.rules.market_order_amounts` for ``order_kind = "market"`` (the v2
  client floors price and amount in binary floating point, so e.g. a limit of 0.57 signs 0.56,
  and $4.35 signs $4.34: N is stepped down a lot at a time until every leg is exact, and a leg
  whose price cannot be signed exactly refuses the basket), or
  :func:`~polybot.execution.rules.limit_order_amounts` for ``"limit"`` (always exact).

**Sending.** The legs (BUY, FOK, price = the worst level walked, size = N) go in one plan through
``ctx.submit(plan)``: the risk chain passes it whole or not at all. The plan is not resizable
(it was priced, and its amounts made exact, at N): when a cap would allow fewer shares the chain
rejects it with that size, and the basket is priced again at that size and sent once more if it
still meets every rule. Then the event cools down for ``cooldown_s``, and no new basket
of that event is priced while one is unsettled. After the cool-down the event is priced again;
after a basket that missed entirely (every leg killed: the liquidity seen was not there), only
once one of its books changes.

**Partial baskets.** A batch is not atomic: a leg can be killed (its liquidity went before the
FOK arrived) while the others fill. With ``partial = "complete"`` the missing legs are priced
again (same walk) and bought in a new plan if their worst-case cost exceeds what the plan
expected for them by at most ``max_extra_cost``; otherwise, or if that plan fails too, it is
retried every ``retry_s`` up to ``partial_attempts`` times, and then the basket is unwound.
With ``partial = "unwind"`` (or after completion gave up) every filled leg is sold at its
book's best bid (``reduce_only`` FAK limit sells, exact amounts), again up to
``partial_attempts`` times; shares that still cannot be sold are reported as unhedged. The cost
is reported either way: for a completed basket, what it cost above the plan; for an unwound
one, what was paid less what the sales brought (fees included). Each outcome is logged, and
counted in :attr:`DutchBook.stats` (``partials``, ``completed``, ``unwound``, ``stuck``,
``partial_cost``, ``locked_profit``, ...) which :meth:`DutchBook.snapshot` carries, with the
baskets in flight, the cool-downs and the recent history, so a restart continues where it
stopped.

**Cost per book event.** Subscriptions are keyed by the tokens of eligible events. A delta that
is not the last of its frame for that book (``BookDelta.run_end``: the state before it is not the
book yet, nor hash-checked) waits for that last one; a frame that changed no ask within
``max_slippage`` of the best ask (bids, asks further out) cannot change a basket and costs a
set lookup. Otherwise the token's cached best ask and its event's sum of best asks are updated
in O(1), and only when that sum (a lower bound of the basket's price per share) is below the
threshold is the event priced in full.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Literal

import attrs
import msgspec

from polybot.events import (
    BookDelta,
    BookSnapshot,
    FeedStale,
    FeeSchedule,
    FillEvent,
    MarketInfo,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderPartiallyFilled,
    OrderPlan,
    OrderRejected,
    TimerFired,
)
from polybot.execution.rules import (
    LOT,
    MIN_MARKETABLE_NOTIONAL,
    ROUNDING,
    limit_order_amounts,
    market_order_amounts,
    max_buy_cost,
    taker_fee,
)
from polybot.strategy import Strategy, StrategyParams, Units
from polybot.units import SCALE, from_units, round_down

__all__ = ["DutchBook", "LegBook", "LegQuote", "Pricing", "Quote", "acceptable", "price_basket", "quote_at"]

_NS = 1_000_000_000
#: How many lots N may be stepped down to find sizes every leg signs exactly.
MAX_SIGN_STEPS = 200
DEFAULT_TICK = 10_000

SIDES = ("yes", "no")


# --------------------------------------------------------------------------------------------
# Pricing (pure functions: what the strategy and the property test use)
# --------------------------------------------------------------------------------------------


@attrs.frozen
class LegBook:
    """One leg's market data: the token's asks, best (lowest) first, and its market's rules."""

    asset_id: str
    market: str
    asks: tuple[tuple[int, int], ...]
    tick: int = DEFAULT_TICK
    min_size: int = 5_000_000
    fees: FeeSchedule | None = None


@attrs.frozen
class Pricing:
    """The pricing parameters (base units; see the module docstring)."""

    margin: int = 5_000
    max_shares: int = 100_000_000
    max_notional: int = 0
    max_levels: int = 3
    max_slippage: int = 20_000
    order_kind: str = "market"


@attrs.frozen
class LegQuote:
    """One leg at N shares: ``price`` is its limit (the worst level walked); ``cost`` the walked
    notional and ``fee`` the walked fees (as filled level by level); ``worst`` what it can cost
    at most (``max_buy_cost`` at the limit); ``maker``/``taker`` its signed amounts."""

    asset_id: str
    market: str
    price: int
    size: int
    cost: int
    fee: int
    worst: int
    maker: int
    taker: int


@attrs.frozen
class Quote:
    """A priced basket: N shares of every leg, paying ``payout``."""

    n: int
    payout: int
    legs: tuple[LegQuote, ...]

    @property
    def cost(self) -> int:
        """Expected cost: walked notional plus fees of every leg."""
        return sum(leg.cost + leg.fee for leg in self.legs)

    @property
    def worst(self) -> int:
        """Worst-case cost: every leg filled entirely at its limit, fees rounded up."""
        return sum(leg.worst for leg in self.legs)

    @property
    def profit(self) -> int:
        """Expected locked profit (payout - expected cost)."""
        return self.payout - self.cost


def _usable(leg: LegBook, pr: Pricing) -> list[tuple[int, int]]:
    """The levels a leg may walk: at most ``max_levels``, within ``max_slippage`` of the best
    ask, on the tick grid and inside [tick, 1 - tick]."""
    out: list[tuple[int, int]] = []
    tick = leg.tick
    best = 0
    for p, s in leg.asks:
        if len(out) >= pr.max_levels:
            break
        if s <= 0:
            continue
        if not best:
            best = p
        if p - best > pr.max_slippage or p % tick or not tick <= p <= SCALE - tick:
            break
        out.append((p, s))
    return out


def _fee_per_share(p: int, fees: FeeSchedule | None) -> Fraction:
    """The exact taker fee of one share at ``p`` in price base units."""
    if fees is None or fees.rate_ppm <= 0:
        return Fraction(0)
    e = fees.exponent
    return Fraction(fees.rate_ppm * (p * (SCALE - p)) ** e, SCALE ** (2 * e))


def _walk(levels: list[tuple[int, int]], n: int, fees: FeeSchedule | None) -> tuple[int, int, int] | None:
    """(notional, fees, worst price) of buying ``n`` shares level by level, exactly as fills
    are charged (notional floored per level, fee floored per level); None when too shallow."""
    left = n
    cost = fee = worst = 0
    for p, s in levels:
        if left <= 0:
            break
        q = s if s < left else left
        cost += p * q // SCALE
        fee += taker_fee(q, p, fees)
        worst = p
        left -= q
    return None if left > 0 else (cost, fee, worst)


def _signed(kind: str, n: int, price: int, tick: int) -> tuple[int, int] | None:
    """The leg's signed (maker, taker) when they carry exactly ``n`` shares for ``n x price``
    collateral, else None."""
    collateral = price * n // SCALE
    try:
        if kind == "market":
            amounts = market_order_amounts("BUY", collateral, price, tick)
        else:
            amounts = limit_order_amounts("BUY", n, price, tick)
    except ValueError:
        return None
    return amounts if amounts == (collateral, n) and price * n % SCALE == 0 else None


def quote_at(legs: list[LegBook], n: int, per_share: int, pr: Pricing) -> Quote | None:
    """The basket of ``n`` shares of every leg (paying ``n x per_share``) if it can be bought
    and signed exactly, whatever its price; None otherwise. Use :func:`acceptable` for the
    rules."""
    if n <= 0 or n % LOT:
        return None
    out = []
    for leg in legs:
        if leg.tick not in ROUNDING:
            return None
        w = _walk(_usable(leg, pr), n, leg.fees)
        if w is None:
            return None
        cost, fee, price = w
        signed = _signed(pr.order_kind, n, price, leg.tick)
        if signed is None:
            return None
        out.append(LegQuote(leg.asset_id, leg.market, price, n, cost, fee, max_buy_cost(n, price, leg.fees),
                            signed[0], signed[1]))  # fmt: skip
    return Quote(n, n * per_share // SCALE, tuple(out))


def acceptable(q: Quote, legs: list[LegBook], pr: Pricing) -> str:
    """Empty if the basket meets every rule, else the first one it breaks."""
    if q.n < max(leg.min_size for leg in legs):
        return f"{from_units(q.n)} shares is below a leg's min_order_size"
    for lq in q.legs:
        if lq.price * q.n < MIN_MARKETABLE_NOTIONAL * SCALE:
            return f"leg {lq.asset_id[:12]} is worth less than $1 at its limit"
    if pr.max_notional and q.worst > pr.max_notional:
        return f"worst-case cost {from_units(q.worst)} > max_notional {from_units(pr.max_notional)}"
    if q.worst >= q.payout:
        return f"worst-case cost {from_units(q.worst)} >= payout {from_units(q.payout)}"
    if q.cost * SCALE >= q.payout * (SCALE - pr.margin):
        return f"cost {from_units(q.cost)} >= payout {from_units(q.payout)} x (1 - margin)"
    return ""


def _largest(lo: int, hi: int, ok: Any) -> int:
    """The largest lot multiple in [lo, hi] with ``ok`` (monotone: true up to a point), or 0."""
    lo_l, hi_l = lo // LOT, hi // LOT
    best = 0
    while lo_l <= hi_l:
        mid = (lo_l + hi_l) // 2
        if ok(mid * LOT):
            best = mid * LOT
            lo_l = mid + 1
        else:
            hi_l = mid - 1
    return best


def price_basket(legs: list[LegBook], per_share: int, pr: Pricing) -> Quote | None:
    """The largest acceptable basket over ``legs`` (every outcome of the event) paying
    ``per_share`` per share (1 for YES, m - 1 for NO, in base units), or None."""
    if len(legs) < 2 or pr.max_shares < LOT:
        return None
    usable = [_usable(leg, pr) for leg in legs]
    if any(not u for u in usable):
        return None
    cap = min(sum(s for _p, s in u) for u in usable)
    cap = round_down(min(cap, pr.max_shares), LOT)
    if cap <= 0:
        return None
    threshold = Fraction(per_share * (SCALE - pr.margin), SCALE)  # price units per share
    # walk the segments between level boundaries while the marginal basket price is below it
    bounds = sorted({c for u in usable for c in _cumulative(u) if c < cap} | {cap})
    idx = [0] * len(legs)
    cum = [u[0][1] for u in usable]
    n_hi = 0
    for b in bounds:
        marginal = Fraction(0)
        for i, u in enumerate(usable):
            while cum[i] <= n_hi and idx[i] + 1 < len(u):  # the level holding share n_hi + 1
                idx[i] += 1
                cum[i] += u[idx[i]][1]
            p = u[idx[i]][0]
            marginal += p + _fee_per_share(p, legs[i].fees)
        if marginal >= threshold:
            break
        n_hi = b
    n = round_down(n_hi, LOT)
    if n <= 0:
        return None
    if pr.max_notional:
        def fits(x: int) -> bool:
            return sum(max_buy_cost(x, _walk(u, x, leg.fees)[2], leg.fees)  # type: ignore[index]
                       for u, leg in zip(usable, legs)) <= pr.max_notional  # fmt: skip
        n = _largest(LOT, n, fits)
        if n <= 0:
            return None
    floor_n = max(leg.min_size for leg in legs)
    for _ in range(MAX_SIGN_STEPS):
        if n < floor_n or n <= 0:
            return None
        q = quote_at(legs, n, per_share, pr)
        if q is not None and not acceptable(q, legs, pr):
            return q
        n -= LOT
    return None


def _cumulative(levels: list[tuple[int, int]]) -> list[int]:
    out, c = [], 0
    for _p, s in levels:
        c += s
        out.append(c)
    return out


# --------------------------------------------------------------------------------------------
# The strategy
# --------------------------------------------------------------------------------------------


@attrs.define
class _Event:
    """An eligible event: its markets and tokens (leg order = market id order)."""

    markets: tuple[str, ...]
    yes: tuple[str, ...]
    no: tuple[str, ...]


STAT_KEYS = ("baskets", "filled", "missed", "rejected", "partials", "completed", "unwound", "stuck",
             "shares", "locked_profit", "partial_cost")  # fmt: skip


class DutchBook(Strategy):
    """Buys every outcome of a neg-risk event (YES or NO basket) when it costs less than it pays."""

    name = "dutch_book"

    class Params(StrategyParams):
        events: dict[str, int] = {}
        sides: list[Literal["yes", "no"]] = msgspec.field(default_factory=lambda: ["yes", "no"])
        margin: Units = Units(5_000)
        max_shares: Units = Units(100_000_000)
        max_notional: Units = Units(200_000_000)
        max_levels: int = 3
        max_slippage: Units = Units(20_000)
        order_kind: Literal["market", "limit"] = "market"
        cooldown_s: float = 5.0
        settlement_buffer_s: float = 300.0
        max_book_age_s: float = 300.0
        partial: Literal["complete", "unwind"] = "complete"
        max_extra_cost: Units = Units(1_000_000)
        partial_attempts: int = 3
        retry_s: float = 1.0

    # ------------------------------------------------------------------ setup

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.baskets: dict[str, dict[str, Any]] = {}  # basket id -> its record
        self.history: list[dict[str, Any]] = []  # the last finished baskets
        self.unhedged: dict[str, int] = {}  # asset -> shares a given-up unwind left
        self.cool: dict[str, int] = {}  # event id -> ns until which it cools down
        self.seq = 0
        self._orders: dict[str, str] = {}  # client id -> basket id
        self._busy: dict[str, str] = {}  # event id -> basket id in flight
        self._events: dict[str, _Event] = {}
        self._asset: dict[str, tuple[str, int]] = {}  # asset -> (event id, 0 YES / 1 NO)
        self._ask: dict[str, int] = {}  # asset -> cached best ask (0 = none)
        self._sums: dict[str, list[list[int]]] = {}  # event -> [[sum, missing] YES, [..] NO]
        self._thr: dict[str, tuple[int, int]] = {}  # event -> prefilter thresholds (YES, NO)
        self._subscribed: set[str] = set()
        self._stale: dict[str, int] = {}  # asset -> ts of a FeedStale naming it
        self._dirty: set[str] = set()  # assets whose asks changed in the frame being applied
        self._refused: set[tuple[str, str]] = set()  # (event, reason) logged once
        self._pricing = self._make_pricing()

    def _make_pricing(self) -> Pricing:
        p = self.params
        return Pricing(margin=p.margin, max_shares=p.max_shares, max_notional=p.max_notional,  # type: ignore[attr-defined]
                       max_levels=p.max_levels, max_slippage=p.max_slippage, order_kind=p.order_kind)  # type: ignore[attr-defined]  # fmt: skip

    def on_start(self) -> None:
        self._check_params()
        sub = self.ctx.subscribe
        sub(MarketInfo, self.on_market_info)
        sub(FeedStale, self.on_feed_stale)
        for t in (OrderPartiallyFilled, OrderFilled):
            sub(t, self.on_fill)
        for t in (OrderRejected, OrderCancelled, OrderExpired):
            sub(t, self.on_order_end)
        self._rebuild_all()

    def _check_params(self) -> None:
        p: Any = self.params
        bad = ""
        if not 0 <= p.margin < SCALE:
            bad = f"margin must be in [0, 1), got {from_units(p.margin)}"
        elif p.max_levels < 1:
            bad = f"max_levels must be at least 1, got {p.max_levels}"
        elif min(p.cooldown_s, p.settlement_buffer_s, p.max_book_age_s, p.partial_attempts) < 0:
            bad = "cooldown_s, settlement_buffer_s, max_book_age_s and partial_attempts must be >= 0"
        elif p.retry_s <= 0:
            bad = f"retry_s must be more than 0, got {p.retry_s}"
        elif any(v < 0 for v in p.events.values()):
            bad = "events: outcome counts must be >= 0"
        if bad:
            raise ValueError(f"strategies.{self.id}: {bad}")

    def on_params(self, old: StrategyParams, new: StrategyParams) -> None:
        try:
            self._check_params()
        except ValueError as exc:
            self.params = old  # refused: keep trading with the previous params
            self.ctx.log.error("dutch_book: new params refused: {}", exc)
            return
        self._pricing = self._make_pricing()
        self._rebuild_all()

    # ------------------------------------------------------------------ the event index

    def _rebuild_all(self) -> None:
        for eid in list(self._events):
            self._drop_event(eid)
        wanted = self.params.events  # type: ignore[attr-defined]
        for eid in (sorted(wanted) if wanted else self.ctx.catalog.events()):
            self._index_event(eid)

    def _drop_event(self, eid: str) -> None:
        e = self._events.pop(eid, None)
        if e is not None:
            for a in e.yes + e.no:
                self._asset.pop(a, None)
                self._ask.pop(a, None)
        self._sums.pop(eid, None)
        self._thr.pop(eid, None)

    def _refuse(self, eid: str, why: str) -> None:
        if (eid, why) not in self._refused:
            self._refused.add((eid, why))
            self.ctx.log.info("dutch_book: event {} not traded: {}", eid, why)

    def _index_event(self, eid: str) -> None:
        """(Re)build one event's entry: eligible events get their tokens subscribed."""
        self._drop_event(eid)
        wanted = self.params.events  # type: ignore[attr-defined]
        if wanted and eid not in wanted:
            return
        infos = self.ctx.catalog.event_markets(eid)
        if not infos:
            return
        if not all(i.neg_risk for i in infos):
            return  # not a neg-risk event: nothing to do here (quietly)
        why = ""
        if any(i.neg_risk_augmented for i in infos):
            why = "augmented neg-risk event (an unlisted outcome can win)"
        elif any(len(i.asset_ids) != 2 for i in infos):
            why = "a market is not binary"
        elif len({i.neg_risk_market_id for i in infos}) > 1:
            why = "its markets name different neg-risk market ids"
        elif len(infos) < 2 or (wanted and wanted[eid] and wanted[eid] != len(infos)):
            return  # not all its outcome markets known (yet: the catalog fills one at a time)
        if why:
            self._refuse(eid, why)
            return
        e = _Event(tuple(i.market for i in infos), tuple(i.asset_ids[0] for i in infos),
                   tuple(i.asset_ids[1] for i in infos))  # fmt: skip
        self._events[eid] = e
        m = len(infos)
        margin = self.params.margin  # type: ignore[attr-defined]
        self._thr[eid] = (SCALE - margin, (m - 1) * (SCALE - margin))
        get = self.ctx.books.get
        sums = [[0, 0], [0, 0]]
        for side, assets in enumerate((e.yes, e.no)):
            for a in assets:
                self._asset[a] = (eid, side)
                b = get(a)
                ask = b.best_ask if b is not None else 0
                self._ask[a] = ask
                if ask:
                    sums[side][0] += ask
                else:
                    sums[side][1] += 1
                if a not in self._subscribed:
                    self._subscribed.add(a)
                    self.ctx.subscribe(BookSnapshot, self.on_book, key=a)
                    self.ctx.subscribe(BookDelta, self.on_book, key=a)
        self._sums[eid] = sums

    def on_market_info(self, ev: MarketInfo) -> None:
        if ev.event_id:
            self._index_event(ev.event_id)
            self._evaluate(ev.event_id, (0, 1))

    def on_feed_stale(self, ev: FeedStale) -> None:
        if ev.asset_id in self._asset:
            self._stale[ev.asset_id] = ev.ts

    # ------------------------------------------------------------------ the hot path

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        a = ev.asset_id
        ent = self._asset.get(a)
        if ent is None:
            return
        eid, side = ent
        b = self.ctx.books.get(a)
        new = b.best_ask if b is not None else 0
        if ev.__class__ is BookDelta:
            # only the asks within the walked window feed the basket: a bid, or an ask beyond
            # max_slippage of the best, changes nothing to price
            if ev.side == "ASK" and (not new or ev.price <= new + self._pricing.max_slippage):  # type: ignore[union-attr]
                self._dirty.add(a)
            if not ev.run_end:  # type: ignore[union-attr]
                return  # the middle of one frame's changes to this book: not the book yet
            if a not in self._dirty:
                return
        self._dirty.discard(a)
        s = self._sums[eid][side]
        old = self._ask[a]
        if new != old:
            self._ask[a] = new
            if old:
                s[0] -= old
            else:
                s[1] -= 1
            if new:
                s[0] += new
            else:
                s[1] += 1
        if not s[1] and s[0] < self._thr[eid][side]:
            self._evaluate(eid, (side,))

    # ------------------------------------------------------------------ pricing an event

    def _blocked(self, eid: str, now: int) -> str:
        """Why the event cannot be traded now ("" = it can)."""
        e = self._events.get(eid)
        if e is None:
            return "not eligible"
        if eid in self._busy:
            return "a basket is in flight"
        until = self.cool.get(eid, 0)
        if now < until:
            self.ctx.set_timer("eval:" + eid, at_ns=until)
            return "cooling down"
        cat = self.ctx.catalog
        buffer = int(self.params.settlement_buffer_s * _NS)  # type: ignore[attr-defined]
        for m in e.markets:
            info = cat.market(m)
            if info is None:
                return f"market {m[:12]} left the catalog"
            if info.closed or not info.active or not info.accepting_orders or m in cat.resolved:
                return f"market {m[:12]} is closed, inactive, resolved or not accepting orders"
            if info.end_ts and now >= info.end_ts - buffer:
                return f"market {m[:12]} is within the settlement buffer of its end"
        return ""

    def leg_books(self, assets: tuple[str, ...] | list[str], now: int) -> list[LegBook] | None:
        """The legs' market data, or None when a book is missing, unhealthy, stale or empty."""
        books = self.ctx.books
        cat = self.ctx.catalog
        max_age = int(self.params.max_book_age_s * _NS)  # type: ignore[attr-defined]
        levels = self.params.max_levels  # type: ignore[attr-defined]
        out = []
        for a in assets:
            b = books.get(a)
            info = cat.for_asset(a)
            if b is None or info is None or not b.healthy or not b.best_ask:
                return None
            if max_age and now - b.updated_ts > max_age:
                return None
            st = self._stale.get(a)
            if st is not None:
                if b.updated_ts <= st:
                    return None
                del self._stale[a]
            out.append(LegBook(a, info.market, tuple(b.depth("ASK", levels)), b.tick_size or info.tick_size,
                               info.min_order_size, info.fees))  # fmt: skip
        return out

    def _evaluate(self, eid: str, sides: tuple[int, ...]) -> None:
        now = self.ctx.now()
        if self._blocked(eid, now):
            return
        e = self._events[eid]
        wanted = self.params.sides  # type: ignore[attr-defined]
        for side in sides:
            if SIDES[side] not in wanted:
                continue
            s = self._sums[eid][side]
            if s[1] or s[0] >= self._thr[eid][side]:
                continue  # the best asks alone already cost too much
            assets = e.yes if side == 0 else e.no
            legs = self.leg_books(assets, now)
            if legs is None:
                continue
            per_share = SCALE if side == 0 else (len(assets) - 1) * SCALE
            q = price_basket(legs, per_share, self._pricing)
            if q is not None:
                self._send(eid, SIDES[side], q, legs, per_share)
                return

    # ------------------------------------------------------------------ sending

    def _intent(self, lq: LegQuote | tuple[str, str, int, int], side: str, tif: str, kind: str,
                note: str, reduce_only: bool = False) -> OrderIntent:  # fmt: skip
        if isinstance(lq, LegQuote):
            asset, market, price, size = lq.asset_id, lq.market, lq.price, lq.size
        else:
            asset, market, price, size = lq
        return OrderIntent(strategy=self.id, asset_id=asset, market=market, side=side,  # type: ignore[arg-type]
                           price=price, size=size, kind=kind, tif=tif, reduce_only=reduce_only, note=note)  # type: ignore[arg-type]  # fmt: skip

    def _send(self, eid: str, side: str, q: Quote, legs: list[LegBook], per_share: int, again: bool = True) -> None:
        now = self.ctx.now()
        self.seq += 1
        bid = f"{self.id}-{self.seq}"
        kind = self.params.order_kind  # type: ignore[attr-defined]
        note = f"dutch_book {side} basket {bid} of event {eid}"
        # not resizable: the basket was priced (and its signed amounts made exact) at this
        # share count; a smaller one the risk chain picked might be neither
        plan = OrderPlan(strategy=self.id, plan_id=bid, note=note, resizable=False,
                         legs=tuple(self._intent(lq, "BUY", "FOK", kind, note) for lq in q.legs))  # fmt: skip
        d = self.ctx.submit(plan)
        self.cool[eid] = now + int(self.params.cooldown_s * _NS)  # type: ignore[attr-defined]
        if not d.approved:
            if again and 0 < d.size < q.n:
                # the risk chain would allow d.size shares: price the basket again at that size
                # and send it if it still meets every rule (once)
                rq = quote_at(legs, d.size, per_share, self._pricing)
                if rq is not None and not acceptable(rq, legs, self._pricing):
                    self.ctx.log.info("dutch_book: {} basket of event {}: {} shares refused by {}, sending {}",
                                      side, eid, from_units(q.n), d.validator, from_units(rq.n))  # fmt: skip
                    self._send(eid, side, rq, legs, per_share, again=False)
                    return
            self.stats["rejected"] += 1
            self.ctx.log.warning("dutch_book: {} basket of event {} ({} x {} legs, cost {}, payout {}) rejected by "
                                 "{}: {}", side, eid, from_units(q.n), len(q.legs), from_units(q.cost),
                                 from_units(q.payout), d.validator, d.reason)  # fmt: skip
            self.ctx.set_timer("eval:" + eid, at_ns=self.cool[eid])
            return
        assets = [lq.asset_id for lq in q.legs]
        b = {
            "id": bid, "event": eid, "side": side, "n": q.n, "payout": q.payout, "ts": now,
            "assets": assets, "markets": {lq.asset_id: lq.market for lq in q.legs},
            "planned": {lq.asset_id: lq.cost + lq.fee for lq in q.legs},
            "bought": dict.fromkeys(assets, 0), "spent": dict.fromkeys(assets, 0),
            "sold": dict.fromkeys(assets, 0), "received": 0, "open": {},
            "state": "open", "partial": False, "attempts": 0,
        }  # fmt: skip
        self.baskets[bid] = b
        self._busy[eid] = bid
        for cid, a in zip(d.client_ids, assets):
            b["open"][cid] = a
            self._orders[cid] = bid
        self.stats["baskets"] += 1
        self.ctx.log.info("dutch_book: {} basket {} of event {}: {} shares x {} legs, expected cost {} "
                          "(worst {}), payout {}, expected profit {}", side, bid, eid, from_units(q.n), len(q.legs),
                          from_units(q.cost), from_units(q.worst), from_units(q.payout), from_units(q.profit))  # fmt: skip

    # ------------------------------------------------------------------ order events

    def on_fill(self, ev: FillEvent) -> None:
        bid = self._orders.get(ev.client_id)
        if bid is None:
            return
        b = self.baskets[bid]
        a = ev.asset_id
        value = ev.price * ev.size // SCALE
        if ev.side == "BUY":
            b["bought"][a] = b["bought"].get(a, 0) + ev.size
            b["spent"][a] = b["spent"].get(a, 0) + value + ev.fee - ev.rebate
        else:
            b["sold"][a] = b["sold"].get(a, 0) + ev.size
            b["received"] += value - ev.fee + ev.rebate
        if isinstance(ev, OrderFilled):
            self._order_done(b, ev.client_id)

    def on_order_end(self, ev: OrderRejected | OrderCancelled | OrderExpired) -> None:
        bid = self._orders.get(ev.client_id)
        if bid is None:
            return
        b = self.baskets[bid]
        if isinstance(ev, OrderRejected):
            self.ctx.log.info("dutch_book: basket {} leg {} rejected by the venue: {}", bid, ev.asset_id[:12], ev.reason)
        self._order_done(b, ev.client_id)

    def _order_done(self, b: dict[str, Any], cid: str) -> None:
        b["open"].pop(cid, None)
        self._orders.pop(cid, None)
        if not b["open"]:
            self._advance(b)

    # ------------------------------------------------------------------ the basket's life

    def _missing(self, b: dict[str, Any]) -> dict[str, int]:
        n = b["n"]
        return {a: n - b["bought"][a] for a in b["assets"] if b["bought"][a] < n}

    def _held(self, b: dict[str, Any]) -> dict[str, int]:
        out = {}
        for a in b["assets"]:
            h = round_down(b["bought"][a] - b["sold"][a], LOT)
            if h > 0:
                out[a] = h
        return out

    def _advance(self, b: dict[str, Any]) -> None:
        """Every order of the basket's last step has ended: decide the next step."""
        state = b["state"]
        if state == "unwinding":
            if not self._held(b):
                self._finish(b, "unwound")
            else:
                self._retry_later(b)
            return
        missing = self._missing(b)
        if not missing:
            self._finish(b, "completed" if b["partial"] else "filled")
            return
        if state == "open" and not any(b["bought"].values()):
            self._finish(b, "missed")
            return
        if not b["partial"]:
            b["partial"] = True
            self.stats["partials"] += 1
            self.ctx.log.warning("dutch_book: partial basket {} of event {}: filled {}, missing {}; policy {}", b["id"],
                                 b["event"], sorted(a[:12] for a in b["assets"] if a not in missing),
                                 sorted(a[:12] for a in missing), self.params.partial)  # type: ignore[attr-defined]  # fmt: skip
            if self.params.partial == "complete":  # type: ignore[attr-defined]
                self._complete(b)
            else:
                self._start_unwind(b)
            return
        self._retry_later(b)  # a completion plan came back short: try again later

    def _retry_later(self, b: dict[str, Any]) -> None:
        self.ctx.set_timer("retry:" + b["id"], delay_ns=int(self.params.retry_s * _NS))  # type: ignore[attr-defined]

    def _complete(self, b: dict[str, Any]) -> None:
        """Buy the missing legs if it costs at most ``max_extra_cost`` above the plan."""
        p = self.params
        if b["attempts"] >= p.partial_attempts:  # type: ignore[attr-defined]
            self.ctx.log.warning("dutch_book: basket {}: completion gave up after {} attempts; unwinding", b["id"],
                                 b["attempts"])  # fmt: skip
            self._start_unwind(b)
            return
        b["attempts"] += 1
        b["state"] = "completing"
        missing = self._missing(b)
        assets = sorted(missing)
        now = self.ctx.now()
        legs = self.leg_books(assets, now) if not self._blocked_markets(b, now) else None
        quotes = []
        why = ""
        if legs is None:
            why = "a missing leg's book is unusable"
        else:
            for leg in legs:
                q = quote_at([leg], missing[leg.asset_id], 0, self._pricing)
                if q is None:
                    why = f"leg {leg.asset_id[:12]} has not the depth or cannot be signed exactly"
                    break
                quotes.append(q.legs[0])
        if not why:
            planned = sum(b["planned"][a] * missing[a] // b["n"] for a in assets)
            extra = sum(lq.worst for lq in quotes) - planned
            if extra > p.max_extra_cost:  # type: ignore[attr-defined]
                why = f"worst-case extra cost {from_units(extra)} > max_extra_cost {from_units(p.max_extra_cost)}"  # type: ignore[attr-defined]
            elif any(lq.price * lq.size < MIN_MARKETABLE_NOTIONAL * SCALE for lq in quotes):
                why = "a completing leg is worth less than $1"
        if why:
            self.ctx.log.info("dutch_book: basket {}: cannot complete now (attempt {}): {}", b["id"], b["attempts"], why)
            self._retry_later(b)
            return
        note = f"dutch_book completes basket {b['id']}"
        plan = OrderPlan(strategy=self.id, plan_id=f"{b['id']}-c{b['attempts']}", note=note, resizable=False,
                         legs=tuple(self._intent(lq, "BUY", "FOK", p.order_kind, note) for lq in quotes))  # type: ignore[attr-defined]  # fmt: skip
        d = self.ctx.submit(plan)
        if not d.approved:
            self.ctx.log.info("dutch_book: basket {}: completion rejected by {}: {}", b["id"], d.validator, d.reason)
            self._retry_later(b)
            return
        for cid, lq in zip(d.client_ids, quotes):
            b["open"][cid] = lq.asset_id
            self._orders[cid] = b["id"]
        self.ctx.log.info("dutch_book: basket {}: completing {} legs, worst-case extra cost {}", b["id"], len(quotes),
                          from_units(extra))  # fmt: skip

    def _blocked_markets(self, b: dict[str, Any], now: int) -> bool:
        cat = self.ctx.catalog
        for m in b["markets"].values():
            info = cat.market(m)
            if info is None or info.closed or not info.accepting_orders or m in cat.resolved:
                return True
        return False

    def _start_unwind(self, b: dict[str, Any]) -> None:
        b["state"] = "unwinding"
        b["attempts"] = 0
        self._unwind(b)

    def _unwind(self, b: dict[str, Any]) -> None:
        """Sell every filled leg at its best bid (reduce-only FAK limit orders)."""
        p = self.params
        held = self._held(b)
        if not held:
            self._finish(b, "unwound")
            return
        if b["attempts"] >= max(1, p.partial_attempts):  # type: ignore[attr-defined]
            self._finish(b, "stuck")
            return
        b["attempts"] += 1
        books = self.ctx.books
        sent = 0
        for a in sorted(held):
            bk = books.get(a)
            if bk is None or not bk.healthy or not bk.best_bid:
                continue
            price, size = bk.best_bid, held[a]
            if price * size < MIN_MARKETABLE_NOTIONAL * SCALE:
                continue  # the venue refuses a marketable order under $1
            d = self.ctx.submit(self._intent((a, b["markets"][a], price, size), "SELL", "FAK", "limit",
                                             f"dutch_book unwinds basket {b['id']}", reduce_only=True))  # fmt: skip
            if d.approved:
                sent += 1
                for cid in d.client_ids:
                    b["open"][cid] = a
                    self._orders[cid] = b["id"]
            else:
                self.ctx.log.info("dutch_book: basket {}: unwind sell of {} rejected by {}: {}", b["id"], a[:12],
                                  d.validator, d.reason)  # fmt: skip
        if not sent:
            self._retry_later(b)

    def on_timer(self, ev: TimerFired) -> None:
        what, _, key = ev.name.partition(":")
        if what == "eval":
            self._evaluate(key, (0, 1))
        elif what == "retry":
            b = self.baskets.get(key)
            if b is None or b["open"]:
                return
            if b["state"] == "unwinding":
                self._unwind(b)
            else:
                self._complete(b)

    def _finish(self, b: dict[str, Any], outcome: str) -> None:
        st = self.stats
        spent = sum(b["spent"].values())
        received = b["received"]
        rec: dict[str, Any] = {"id": b["id"], "event": b["event"], "side": b["side"], "n": b["n"], "outcome": outcome,
                               "spent": spent, "received": received}  # fmt: skip
        if outcome in ("filled", "completed"):
            locked = b["payout"] - spent
            st[outcome] += 1
            st["shares"] += b["n"]
            st["locked_profit"] += locked
            rec["locked_profit"] = locked
            if outcome == "completed":
                cost = spent - sum(b["planned"].values())
                st["partial_cost"] += cost
                rec["partial_cost"] = cost
                self.ctx.log.warning("dutch_book: basket {} completed: cost {} above the plan; locked profit {}",
                                     b["id"], from_units(cost), from_units(locked))  # fmt: skip
            else:
                self.ctx.log.info("dutch_book: basket {} filled: paid {} for a payout of {}, locked profit {}", b["id"],
                                  from_units(spent), from_units(b["payout"]), from_units(locked))  # fmt: skip
        elif outcome == "unwound":
            cost = spent - received
            st["unwound"] += 1
            st["partial_cost"] += cost
            rec["partial_cost"] = cost
            self.ctx.log.warning("dutch_book: basket {} unwound: paid {}, sales brought {}, cost {}", b["id"],
                                 from_units(spent), from_units(received), from_units(cost))  # fmt: skip
        elif outcome == "stuck":
            held = self._held(b)
            st["stuck"] += 1
            rec["unhedged"] = held
            for a, h in held.items():
                self.unhedged[a] = self.unhedged.get(a, 0) + h
            self.ctx.log.error("dutch_book: basket {} could not be unwound: unhedged {}", b["id"],
                               {a[:12]: from_units(h) for a, h in held.items()})  # fmt: skip
        else:
            st["missed"] += 1
            self.ctx.log.info("dutch_book: basket {} missed: no leg filled", b["id"])
        for cid in list(b["open"]):
            self._orders.pop(cid, None)
        del self.baskets[b["id"]]
        self._busy.pop(b["event"], None)
        self.history = (self.history + [rec])[-20:]
        if outcome != "missed":
            # look again once the cool-down is over, even if the books do not move; after a
            # miss (the liquidity seen was not there) only a change of the books does
            self.ctx.set_timer("eval:" + b["event"], at_ns=max(self.ctx.now(), self.cool.get(b["event"], 0)))

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        return {"seq": self.seq, "stats": dict(self.stats), "baskets": self.baskets, "history": self.history,
                "unhedged": dict(sorted(self.unhedged.items())), "cool": dict(sorted(self.cool.items()))}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.seq = int(state.get("seq", 0))
        self.stats = dict.fromkeys(STAT_KEYS, 0) | {k: int(v) for k, v in state.get("stats", {}).items()}
        self.baskets = {k: dict(v) for k, v in state.get("baskets", {}).items()}
        self.history = list(state.get("history", []))
        self.unhedged = {k: int(v) for k, v in state.get("unhedged", {}).items()}
        self.cool = {k: int(v) for k, v in state.get("cool", {}).items()}
        self._orders = {cid: bid for bid, b in self.baskets.items() for cid in b["open"]}
        self._busy = {b["event"]: bid for bid, b in self.baskets.items()}
        self._rebuild_all()  # the catalog and the books were restored before us
