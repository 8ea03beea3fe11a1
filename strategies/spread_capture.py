"""Spread capture: quote inside a wide spread on one outcome token and round-trip the inventory.

For each configured token the strategy keeps at most two post-only GTC orders, a bid and an ask,
``improve_ticks`` ticks inside the touch, while the spread is at least ``min_spread_ticks``
ticks. The bid buys inventory (up to ``max_inventory`` shares); the ask offers the inventory held
(a token cannot be sold short on Polymarket, so with no inventory there is no ask). Profit is the
spread between the two fills, plus the maker rebate; makers pay no fee.

    [strategies.sc]
    class = "spread_capture"
    asset_ids = ["<token id>"]   # the outcome token(s) to quote (required)
    size = "10"                  # shares per bid
    min_spread_ticks = 4         # quote only when ask - bid >= this many ticks
    improve_ticks = 1            # how far inside the touch the quotes sit
    replace_ticks = 2            # re-price a quote only when its wanted price moved this far
    min_replace_s = 1.0          # per market: at least this long between two re-quotes
    max_inventory = "50"         # shares: no bid once the inventory (+ the bid) would pass this
    adverse_ticks = 4            # exit when the mid falls this far below the inventory's entry mid
    exit_mode = "cross"          # "cross" (FAK) or "post_then_cross" (rest, then take)
    exit_slippage_ticks = 3      # the exit sells down to best bid - this many ticks
    exit_timeout_s = 2.0         # post_then_cross: how long the exit rests before it crosses
    cooldown_s = 30.0            # no quoting for this long after an adverse exit

Behaviour, per token:

* **Quotes.** Bid ``best bid + improve_ticks`` and ask ``best ask - improve_ticks`` (ticks of the
  book), never crossing: a bid stays at least a tick under the best ask, an ask a tick over the
  best bid. The touch is read *without the strategy's own orders* (live, the venue's book shows
  them; chasing one's own quote would walk it across the spread), nor quotes just cancelled
  that the book may still show (:class:`Ghosts`); a level smaller than our size there is not
  ours (the paper executor's books never show our orders). When the spread narrows below
  ``min_spread_ticks`` the bid is pulled and the inventory is offered at the best ask (joining,
  not improving), so it can still be sold.
* **Sizes.** Bid: ``min(size, max_inventory - inventory)``; ask: the whole inventory. Both are
  rounded down to the 0.01-share lot and dropped below the market's minimum order size (so an
  odd lot left by a partial fill waits until the bid tops it up). The inventory used is the one
  the order was placed against (its own fills are added back), so a partial fill does not
  re-size the order that produced it.
* **Re-quoting.** A live quote is kept while its token and side are right, its price is within
  ``replace_ticks - 1`` ticks of the wanted price and its wanted size equals the size it was
  asked with. Otherwise it is cancelled, and the replacement is sent once the venue confirms the
  cancel (never two live orders in one slot, no self-trade with an order being cancelled). Re-
  quotes (and re-placing a quote after it was pulled) are rate limited per market: at least
  ``min_replace_s`` between two; a deferred one is retried by a timer. Pulls (unhealthy book,
  spread too tight, stop) are never delayed.
* **Adverse exit.** Each buy fill updates the inventory's entry mid (share-weighted). When the
  mid falls ``adverse_ticks`` ticks or more below it, both quotes are cancelled and, once the
  cancels are confirmed, the inventory is sold with a taker FAK down to ``best bid -
  exit_slippage_ticks`` (``exit_mode = "cross"``) or through ``ctx.execute(...,
  "post_then_cross")``. What the FAK leaves is retried on the next book change. Inventory worth
  less than $1 at the exit limit cannot be sold as a taker (the venue refuses it, and would on
  every retry): it is left to the ask quote after the cool-down. Then ``cooldown_s`` without
  quotes.
* **Safety.** An unhealthy book, a closed / resolved market or one not accepting orders (a
  ``MarketInfo`` update pulls at once) pulls both quotes; a resolved market is never quoted
  again. ``on_stop`` cancels every open order.
* **Cost.** Book events are routed by token (keyed subscriptions); a delta that is not the last
  of its frame for that book (``run_end``) is not acted on, and a book event whose touch
  without our orders (best bid, best ask, health) did not change returns after that touch is
  read and compared.
  Own-order events (fills, cancels, rejections) of the token trigger a re-evaluation.

State (slots, entry mid, mode, rate-limit stamps) survives a restart through ``snapshot()`` /
``restore()``.

This module also holds :class:`QuotingStrategy`, the slot machinery shared with
:mod:`strategies.market_making`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from polybot.events import (
    BookDelta,
    BookHealth,
    BookSnapshot,
    FillEvent,
    MarketInfo,
    MarketResolved,
    OrderCancelled,
    OrderExpired,
    OrderIntent,
    OrderRejected,
    TimerFired,
)
from polybot.strategy import Strategy, StrategyParams, Units
from polybot.units import SCALE, from_units

if TYPE_CHECKING:  # pragma: no cover
    from polybot.book import OrderBook
    from polybot.execution.orders import Order

NS = 1_000_000_000
LOT = 10_000  # signed sizes are multiples of 0.01 share
DEFAULT_TICK = 10_000  # 0.01
DEFAULT_MIN_SIZE = 5_000_000  # 5 shares
MIN_MARKETABLE = 1_000_000  # a marketable order must be worth $1 at its limit


class Want(NamedTuple):
    """The order a slot should have: token, side, price and size (base units)."""

    asset_id: str
    side: str
    price: int
    size: int


class Slot:
    """One quote position (e.g. the bid of a token): the live order, the size it was asked with
    (the risk chain may have resized it), whether the next placement is free of the per-market
    rate limit (after a fill or a replace; not after a pull), a retry time after a rejection and
    the kernel time of the last placement (at most one per kernel time: no loops)."""

    __slots__ = ("cid", "asked", "free", "retry_at", "placed_ts")

    def __init__(self, cid: str = "", asked: int = 0, free: bool = True, retry_at: int = 0, placed_ts: int = -1) -> None:
        self.cid = cid
        self.asked = asked
        self.free = free
        self.retry_at = retry_at
        self.placed_ts = placed_ts

    def to_state(self) -> list[Any]:
        return [self.cid, self.asked, self.free, self.retry_at, self.placed_ts]

    @classmethod
    def from_state(cls, st: list[Any]) -> Slot:
        return cls(str(st[0]), int(st[1]), bool(st[2]), int(st[3]), int(st[4]))


def floor_tick(p: int, tick: int) -> int:
    return p - p % tick


def ceil_tick(p: int, tick: int) -> int:
    return -(-p // tick) * tick


def touch(levels: Any, own: dict[int, int], descending: bool) -> tuple[int, int]:
    """(price, size) of the best level of a book side once ``own`` (price -> our resting size)
    is taken out; (0, 0) if nothing is left. ``levels`` is the side's SortedDict.

    A level smaller than our size there cannot be showing our order (the venue's level holds
    it whole): it is someone else's and kept -- the paper executor's books never show our
    orders, and taking them out there would walk a quote down through thin levels."""
    if not own:
        if not levels:
            return 0, 0
        p, s = levels.peekitem(-1 if descending else 0)
        return p, s
    keys = reversed(levels) if descending else iter(levels)
    for p in keys:
        s = levels[p]
        mine = own.get(p, 0)
        if mine <= s:
            s -= mine
        if s > 0:
            return p, s
    return 0, 0


#: How long an ended own order may still show in the venue's book (see :class:`Ghosts`).
GHOST_NS = 2 * NS


class Ghosts:
    """Own resting orders that ended (cancelled, expired) but that the venue's book may still
    show: live, the confirmation can arrive before the book update that removes the order, and
    until then its level would look like someone else's -- a replacement priced off it would
    chase its own ghost. Kept per book asset as ``(side, price) -> (size, kernel time)`` (the
    larger size when one price ends twice); a level is forgotten at its next change in that
    book (a snapshot forgets the asset's) or :data:`GHOST_NS` after the order ended. An order on
    the complement token is seen mirrored in this token's book (a BUY NO at q is a YES ask at
    1 - q). The paper executor's books never show our orders: there a ghost only lowers the
    level it sits on for a moment."""

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: dict[str, dict[tuple[str, int], tuple[int, int]]] = {}

    def order_ended(self, o: Order, complement: str | None, now: int) -> None:
        it = o.intent
        size = o.remaining
        if size <= 0 or it.tif not in ("GTC", "GTD"):
            return  # a FAK/FOK never rested
        buy = it.side == "BUY"
        self._add(o.asset_id, "BID" if buy else "ASK", it.price, size, now)
        if complement:
            self._add(complement, "ASK" if buy else "BID", SCALE - it.price, size, now)

    def _add(self, asset: str, side: str, price: int, size: int, now: int) -> None:
        d = self.levels.setdefault(asset, {})
        old = d.get((side, price))
        d[(side, price)] = (max(size, old[0]) if old is not None else size, now)

    def book_event(self, ev: BookSnapshot | BookDelta) -> None:
        d = self.levels.get(ev.asset_id)
        if d:
            if ev.__class__ is BookDelta:
                d.pop((ev.side, ev.price), None)  # type: ignore[union-attr]
            else:
                d.clear()
            if not d:
                del self.levels[ev.asset_id]

    def merge(self, asset: str, bids: dict[int, int], asks: dict[int, int], now: int) -> None:
        """Add the asset's ghost sizes to ``bids``/``asks`` (price -> own size)."""
        d = self.levels.get(asset)
        if not d:
            return
        for key in sorted(d):
            size, ts = d[key]
            if now - ts >= GHOST_NS:
                del d[key]
                continue
            side = bids if key[0] == "BID" else asks
            side[key[1]] = side.get(key[1], 0) + size
        if not d:
            del self.levels[asset]


def spread_quotes(bb: int, ba: int, tick: int, improve_ticks: int, min_spread_ticks: int) -> tuple[int, int]:
    """Spread capture's wanted (bid, ask) prices for a touch ``bb``/``ba`` (both > 0, bb < ba).

    bid = 0 when the spread is below ``min_spread_ticks`` ticks; the ask is then the best ask
    itself (offering inventory without improving). Both are on the tick grid, inside
    [tick, 1 - tick], never crossing the touch (bid < ba, ask > bb) and bid < ask."""
    if ba - bb >= min_spread_ticks * tick:
        bid = min(floor_tick(bb, tick) + improve_ticks * tick, ceil_tick(ba, tick) - tick)
        ask = max(ceil_tick(ba, tick) - improve_ticks * tick, floor_tick(bb, tick) + tick)
        if ask <= bid:  # only when improve_ticks is too large for the spread: meet in the middle
            bid = floor_tick((bb + ba) // 2, tick)
            ask = bid + tick
            if bid <= bb:
                bid = 0
    else:
        bid = 0
        ask = max(ceil_tick(ba, tick), floor_tick(bb, tick) + tick)
    if not tick <= bid <= SCALE - tick:
        bid = 0
    if not tick <= ask <= SCALE - tick:
        ask = 0
    return bid, ask


class QuotingStrategy(Strategy):
    """Shared machinery of the quoting strategies (not a strategy by itself).

    Orders live in named *slots* (``"<key>:bid"``). :meth:`_sync` reconciles a slot with the
    :class:`Want` a subclass computed: keep the live order, cancel it (pull), cancel it to be
    replaced once the cancel is confirmed, or place the wanted order (post-only GTC). Subclasses
    provide ``replace_ticks`` / ``min_replace_ns`` and :meth:`_recompute`."""

    replace_ticks = 2
    min_replace_ns = NS
    _recompute: Callable[..., None]  # a subclass's: re-plan the quotes of one key (its timers call it)

    def _init_quoting(self) -> None:
        self.slots: dict[str, Slot] = {}
        self.last_replace: dict[str, int] = {}  # market -> kernel time of the last re-quote
        self.timer_at: dict[str, int] = {}  # "requote:<key>" -> armed deadline
        self.counts = {"placed": 0, "replaced": 0, "pulled": 0, "rejected": 0}
        # cancels sent whose CancelSubmitted may not be applied to the order store yet (the bus
        # queues it behind the event being handled): never cancel one order twice
        self.cancel_sent: set[str] = set()
        self.ghosts = Ghosts()  # own quotes that ended but may still show in the venue's book

    def _order_ended(self, client_id: str) -> None:
        """A cancel or an expiry of one of our orders: remember it as a ghost of the book."""
        o = self.ctx.order(client_id)
        if o is not None:
            self.ghosts.order_ended(o, self.ctx.catalog.complement(o.asset_id), self.ctx.now())

    # ------------------------------------------------------------------ lookups

    def _tick(self, book: OrderBook | None, info: MarketInfo | None) -> int:
        if book is not None and book.tick_size:
            return book.tick_size
        return info.tick_size if info is not None and info.tick_size else DEFAULT_TICK

    @staticmethod
    def _min_size(info: MarketInfo | None) -> int:
        return info.min_order_size if info is not None and info.min_order_size else DEFAULT_MIN_SIZE

    def _tradable(self, book: OrderBook | None, info: MarketInfo | None, market: str) -> str:
        """Empty if orders may be quoted on ``book``'s market, else why not."""
        if book is None:
            return "no book"
        if not book.healthy:
            return f"unhealthy book ({book.unhealthy_reason})"
        if market in self.ctx.catalog.resolved:
            return "market resolved"
        if info is not None and (info.closed or not info.accepting_orders):
            return "market not accepting orders"
        return ""

    def _slot(self, key: str, name: str) -> Slot:
        sk = f"{key}:{name}"
        s = self.slots.get(sk)
        if s is None:
            s = self.slots[sk] = Slot()
        return s

    def _live(self, slot: Slot) -> Order | None:
        """The slot's order if it is still open (else the slot is emptied)."""
        if not slot.cid:
            return None
        o = self.ctx.order(slot.cid)
        if o is None or not o.is_open:
            self.cancel_sent.discard(slot.cid)
            slot.cid = ""
            return None
        return o

    def _cancelling(self, o: Order) -> bool:
        return o.state == "cancel_pending" or o.client_id in self.cancel_sent

    def _cancel(self, o: Order, reason: str) -> bool:
        """Cancel ``o`` once (True if a cancel was sent now)."""
        if self._cancelling(o):
            return False
        if self.ctx.cancel(o.client_id, reason):
            self.cancel_sent.add(o.client_id)
            return True
        return False

    def live_order(self, key: str, name: str) -> Order | None:
        s = self.slots.get(f"{key}:{name}")
        return self._live(s) if s is not None else None

    # ------------------------------------------------------------------ timers

    def _wake(self, key: str, at: int) -> None:
        """Re-evaluate ``key`` at ``at`` (kernel time); keeps the earliest pending deadline."""
        name = "requote:" + key
        cur = self.timer_at.get(name)
        now = self.ctx.now()
        if cur is not None and now < cur <= at:
            return
        self.timer_at[name] = at
        self.ctx.set_timer(name, at_ns=at)

    def on_timer(self, ev: TimerFired) -> None:
        kind, _, key = ev.name.partition(":")
        if kind == "requote":
            if self.timer_at.get(ev.name) == ev.deadline:
                del self.timer_at[ev.name]
            self._recompute(key)
        else:
            self._on_other_timer(kind, key)

    def _on_other_timer(self, kind: str, key: str) -> None:
        """Subclasses' own timers (``"<kind>:<key>"``)."""

    # ------------------------------------------------------------------ the slot reconciler

    def _may_replace(self, key: str, market: str, now: int) -> bool:
        last = self.last_replace.get(market)
        if last is None or last == now or now >= last + self.min_replace_ns:
            return True
        self._wake(key, last + self.min_replace_ns)
        return False

    def _keeps(self, o: Order, slot: Slot, want: Want, tick: int) -> bool:
        it = o.intent
        return (o.asset_id == want.asset_id and it.side == want.side and slot.asked == want.size
                and abs(it.price - want.price) < self.replace_ticks * tick)  # fmt: skip

    def _sync(self, key: str, name: str, want: Want | None, market: str, tick: int, now: int) -> None:
        slot = self._slot(key, name)
        o = self._live(slot)
        if o is not None:
            if self._cancelling(o):
                return  # the replacement (if any) follows the venue's confirmation
            if want is None:
                self._pull_order(o, slot, market, now, "pull")
                return
            if self._keeps(o, slot, want, tick):
                return
            if not self._may_replace(key, market, now):
                return
            self.last_replace[market] = now
            if self._cancel(o, "replace"):
                self.counts["replaced"] += 1
            slot.free = True
            return
        if want is None:
            return
        if slot.placed_ts == now:
            return
        if now < slot.retry_at:
            self._wake(key, slot.retry_at)
            return
        if not slot.free and not self._may_replace(key, market, now):
            return
        self._place(key, name, slot, want, market, now)

    def _pull_order(self, o: Order, slot: Slot, market: str, now: int, reason: str) -> None:
        if self._cancel(o, reason):
            self.counts["pulled"] += 1
            slot.free = False
            self.last_replace[market] = max(self.last_replace.get(market, now), now)

    def _pull(self, key: str, name: str, market: str, now: int, reason: str) -> None:
        slot = self.slots.get(f"{key}:{name}")
        if slot is None:
            return
        o = self._live(slot)
        if o is not None:
            self._pull_order(o, slot, market, now, reason)

    def _place(self, key: str, name: str, slot: Slot, want: Want, market: str, now: int) -> None:
        slot.placed_ts = now
        it = OrderIntent(strategy=self.id, asset_id=want.asset_id, market=market, side=want.side,  # type: ignore[arg-type]
                         price=want.price, size=want.size, tif="GTC", post_only=True,
                         note=f"{self.name} {name}")  # fmt: skip
        d = self.ctx.submit(it)
        if d.approved and d.client_ids:
            slot.cid = d.client_ids[0]
            slot.asked = want.size
            slot.free = True
            self.counts["placed"] += 1
        else:
            self.counts["rejected"] += 1
            slot.retry_at = now + max(self.min_replace_ns, NS)
            self._wake(key, slot.retry_at)

    def _order_rejected(self, key: str, client_id: str, now: int) -> None:
        """The executor refused a slot's order: back off before placing it again."""
        for name in ("bid", "ask"):
            s = self.slots.get(f"{key}:{name}")
            if s is not None and s.cid == client_id:
                s.retry_at = now + max(self.min_replace_ns, NS)
                self.counts["rejected"] += 1

    # ------------------------------------------------------------------ state

    def _quoting_state(self) -> dict[str, Any]:
        return {
            "slots": {k: s.to_state() for k, s in sorted(self.slots.items())},
            "last_replace": dict(sorted(self.last_replace.items())),
            "timer_at": dict(sorted(self.timer_at.items())),
            "counts": dict(self.counts),
        }

    def _restore_quoting(self, st: dict[str, Any]) -> None:
        self.slots = {k: Slot.from_state(v) for k, v in st["slots"].items()}
        self.last_replace = {k: int(v) for k, v in st["last_replace"].items()}
        self.timer_at = {k: int(v) for k, v in st["timer_at"].items()}
        self.counts.update(st["counts"])

    def on_stop(self) -> None:
        self.ctx.cancel_all()


# --------------------------------------------------------------------------------------------
# Spread capture
# --------------------------------------------------------------------------------------------


class _Asset:
    """Per-token state: mode (quote / exit / cooldown / done), the inventory's entry mid, the
    end of a cooldown, the kernel time of the last exit attempt and the last top of book seen."""

    __slots__ = ("mode", "entry_mid", "until", "exit_ts", "exits", "top")

    def __init__(self) -> None:
        self.mode = "quote"
        self.entry_mid = 0
        self.until = 0
        self.exit_ts = -1
        self.exits = 0
        self.top: tuple[int, int, bool] | None = None

    def to_state(self) -> list[Any]:
        return [self.mode, self.entry_mid, self.until, self.exit_ts, self.exits]

    def restore(self, st: list[Any]) -> None:
        self.mode, self.entry_mid, self.until, self.exit_ts, self.exits = str(st[0]), int(st[1]), int(st[2]), int(st[3]), int(st[4])
        self.top = None  # re-evaluated on the next book event


class SpreadCapture(QuotingStrategy):
    """Quote one or more ticks inside a wide spread on one outcome; exit on an adverse move."""

    name = "spread_capture"

    class Params(StrategyParams):
        asset_ids: list[str]
        size: Units = Units(10_000_000)
        min_spread_ticks: int = 4
        improve_ticks: int = 1
        replace_ticks: int = 2
        min_replace_s: float = 1.0
        max_inventory: Units = Units(50_000_000)
        adverse_ticks: int = 4
        exit_mode: Literal["cross", "post_then_cross"] = "cross"
        exit_slippage_ticks: int = 3
        exit_timeout_s: float = 2.0
        cooldown_s: float = 30.0

        def __post_init__(self) -> None:
            if not self.asset_ids or not all(isinstance(a, str) and a for a in self.asset_ids):
                raise ValueError("asset_ids: give at least one token id")
            if self.size <= 0 or self.size % LOT:
                raise ValueError("size: must be a positive multiple of 0.01 share")
            if self.improve_ticks < 1:
                raise ValueError("improve_ticks: must be >= 1 (quotes sit inside the touch)")
            if self.min_spread_ticks < 2 * self.improve_ticks + 1:
                raise ValueError("min_spread_ticks: must be >= 2 * improve_ticks + 1 (room for a bid below the ask)")
            if self.replace_ticks < 1:
                raise ValueError("replace_ticks: must be >= 1")
            if self.adverse_ticks < 1 or self.exit_slippage_ticks < 0:
                raise ValueError("adverse_ticks: must be >= 1; exit_slippage_ticks: >= 0")
            for n in ("min_replace_s", "exit_timeout_s", "cooldown_s"):
                if getattr(self, n) < 0:
                    raise ValueError(f"{n}: must be >= 0")
            if self.max_inventory < 0:
                raise ValueError("max_inventory: must be >= 0")

    params: Params

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        self._init_quoting()
        self._apply_params()
        self.assets: dict[str, _Asset] = {a: _Asset() for a in self.params.asset_ids}
        for a in self.params.asset_ids:
            self.ctx.subscribe(BookSnapshot, self.on_book, key=a)
            self.ctx.subscribe(BookDelta, self.on_book, key=a)
            self.ctx.subscribe(BookHealth, self.on_health, key=a)
            for t in (FillEvent, OrderCancelled, OrderRejected, OrderExpired):
                self.ctx.subscribe(t, self.on_order, key=a)
        self.ctx.subscribe(MarketResolved, self.on_resolved)
        self.ctx.subscribe(MarketInfo, self.on_market_info)

    def _apply_params(self) -> None:
        self.replace_ticks = self.params.replace_ticks
        self.min_replace_ns = int(self.params.min_replace_s * NS)

    def on_params(self, old: StrategyParams, new: StrategyParams) -> None:
        self._apply_params()
        for a in self.params.asset_ids:
            if a not in self.assets:  # a token added at run time is not subscribed: refused
                self.ctx.log.warning("spread_capture: asset_ids cannot grow at run time; {} ignored", a)
        for a in sorted(self.assets):
            self._recompute(a)

    # ------------------------------------------------------------------ handlers

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        a = ev.asset_id
        self.ghosts.book_event(ev)
        if ev.__class__ is BookDelta and not ev.run_end:  # type: ignore[union-attr]
            return  # the middle of one frame's changes to this book: act on its last one
        b = self.ctx.books.get(a)
        if b is None:
            return
        st = self.assets[a]
        # the touch without our own orders (live, the venue's book shows them: levels behind
        # our quote can move while the top of book, our quote, stays)
        own_b, own_a = self._own(a)
        top = (touch(b.bids, own_b, True)[0], touch(b.asks, own_a, False)[0], b.healthy)
        if top == st.top:
            return
        st.top = top
        self._recompute(a)

    def on_health(self, ev: BookHealth) -> None:
        self._recompute(ev.asset_id)

    def on_market_info(self, ev: MarketInfo) -> None:
        # closed / not accepting orders: pull now (the book may never change again)
        for a in ev.asset_ids:
            if a in self.assets:
                self._recompute(a)

    def on_order(self, ev: FillEvent | OrderCancelled | OrderRejected | OrderExpired) -> None:
        if ev.strategy != self.id:
            return
        a = ev.asset_id
        if isinstance(ev, FillEvent):
            self._on_fill(a, ev)
        elif isinstance(ev, OrderRejected):
            self._order_rejected(a, ev.client_id, self.ctx.now())
        else:
            self._order_ended(ev.client_id)
        self._recompute(a)

    def on_resolved(self, ev: MarketResolved) -> None:
        for a in sorted(self.assets):
            info = self.ctx.catalog.for_asset(a)
            if a in ev.asset_ids or (info is not None and info.market == ev.market):
                self.assets[a].mode = "done"
                self.ctx.cancel_all(a)

    def _on_fill(self, a: str, ev: FillEvent) -> None:
        st = self.assets[a]
        held = self.ctx.position(a)
        if held <= 0:
            st.entry_mid = 0
            return
        if ev.side != "BUY":
            return
        mid = self._mid(a) or ev.price
        before = held - ev.size
        if before > 0 and st.entry_mid:
            st.entry_mid = (st.entry_mid * before + mid * ev.size) // held
        else:
            st.entry_mid = mid

    # ------------------------------------------------------------------ the decision

    def _own(self, a: str) -> tuple[dict[int, int], dict[int, int]]:
        """Our resting sizes by price on the token's bid and ask sides (ended quotes the book may
        still show included)."""
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for o in self.ctx.open_orders(a):
            side = bids if o.intent.side == "BUY" else asks
            side[o.intent.price] = side.get(o.intent.price, 0) + o.remaining
        self.ghosts.merge(a, bids, asks, self.ctx.now())
        return bids, asks

    def _mid(self, a: str) -> int:
        """Mid of the token's touch without our own orders (0 if a side is empty)."""
        b = self.ctx.books.get(a)
        if b is None:
            return 0
        own_b, own_a = self._own(a)
        bb, _ = touch(b.bids, own_b, True)
        ba, _ = touch(b.asks, own_a, False)
        return (bb + ba) // 2 if bb and ba else 0

    def _recompute(self, a: str) -> None:
        st = self.assets.get(a)
        if st is None or st.mode == "done":
            return
        ctx = self.ctx
        p = self.params
        now = ctx.now()
        book = ctx.books.get(a)
        info = ctx.catalog.for_asset(a)
        market = info.market if info is not None else (book.market if book is not None and book.market else a)
        why = self._tradable(book, info, market)
        if why:
            self._pull(a, "bid", market, now, why)
            self._pull(a, "ask", market, now, why)
            return
        assert book is not None
        tick = self._tick(book, info)
        min_size = self._min_size(info)
        own_b, own_a = self._own(a)
        bb, _ = touch(book.bids, own_b, True)
        ba, _ = touch(book.asks, own_a, False)
        held = ctx.position(a)
        if st.mode == "cooldown":
            if now < st.until:
                self._pull(a, "bid", market, now, "cooldown")
                self._pull(a, "ask", market, now, "cooldown")
                self._wake(a, st.until)
                return
            st.mode = "quote"
        if st.mode == "quote" and held > 0 and st.entry_mid and bb and ba:
            if (bb + ba) // 2 <= st.entry_mid - p.adverse_ticks * tick:
                st.mode = "exit"
                ctx.log.info("spread_capture: adverse move on {}: mid {} vs entry {}, exiting {} shares",
                             a[:10], (bb + ba) // 2, st.entry_mid, held)  # fmt: skip
        if st.mode == "exit":
            self._exit(a, st, book, market, tick, min_size, now)
            return
        if not (bb and ba):
            self._pull(a, "bid", market, now, "one-sided book")
            self._pull(a, "ask", market, now, "one-sided book")
            return
        bid_px, ask_px = spread_quotes(bb, ba, tick, p.improve_ticks, p.min_spread_ticks)
        bo = self.live_order(a, "bid")
        ao = self.live_order(a, "ask")
        # never against our own other quote (a kept one may lag by < replace_ticks)
        if bid_px and ao is not None and bid_px >= ao.intent.price:
            bid_px = 0
        if ask_px and bo is not None and ask_px <= bo.intent.price:
            ask_px = bo.intent.price + tick if bo.intent.price + tick <= SCALE - tick else 0
        # bid: inventory room, counted before this bid's own fills
        inv = held - (bo.filled if bo is not None and bo.intent.side == "BUY" else 0)
        bsize = min(p.size, p.max_inventory - inv)
        bsize -= bsize % LOT
        want_bid = Want(a, "BUY", bid_px, bsize) if bid_px and bsize >= min_size else None
        # ask: the whole inventory, counted before this ask's own fills
        inv = held + (ao.filled if ao is not None and ao.intent.side == "SELL" else 0)
        asize = inv - inv % LOT
        want_ask = Want(a, "SELL", ask_px, asize) if ask_px and asize >= min_size else None
        self._sync(a, "bid", want_bid, market, tick, now)
        self._sync(a, "ask", want_ask, market, tick, now)

    def _exit(self, a: str, st: _Asset, book: OrderBook, market: str, tick: int, min_size: int, now: int) -> None:
        """Cancel the quotes, then sell the inventory as a taker (or post, then take)."""
        p = self.params
        ctx = self.ctx
        self._pull(a, "bid", market, now, "adverse exit")
        self._pull(a, "ask", market, now, "adverse exit")
        if ctx.open_orders(a):
            return  # cancels not confirmed yet, or the exit is still working
        held = ctx.position(a)
        size = held - held % LOT
        floor = max(tick, book.best_bid - p.exit_slippage_ticks * tick) if book.best_bid else 0
        # the venue refuses a marketable order worth less than $1 at its limit: such an exit is
        # never sent (each try would be refused again); the ask quote offers it after the cool-down
        cannot_cross = size > 0 and bool(floor) and size * floor // SCALE < MIN_MARKETABLE
        if size <= 0 or cannot_cross or (size < min_size and not floor):
            if cannot_cross:
                ctx.log.warning("spread_capture: {} shares of {} cannot be sold as a taker (worth {} < $1 at the "
                                "exit limit {}): left to the ask quote", from_units(size), a[:10],
                                from_units(size * floor // SCALE), from_units(floor))  # fmt: skip
            st.mode = "cooldown"
            st.until = now + int(p.cooldown_s * NS)
            st.entry_mid = 0
            self._wake(a, st.until)
            return
        if not floor or st.exit_ts == now:
            return  # no bid to sell to, or already tried at this kernel time: next book change
        st.exit_ts = now
        st.exits += 1
        if p.exit_mode == "post_then_cross" and size >= min_size:
            ctx.execute(a, "SELL", size, "post_then_cross", timeout_s=p.exit_timeout_s, max_price=floor,
                        market=market, note="spread_capture adverse exit")  # fmt: skip
        else:
            ctx.execute(a, "SELL", size, "cross", limit=floor, market=market, note="spread_capture adverse exit")

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        return {"quoting": self._quoting_state(),
                "assets": {a: s.to_state() for a, s in sorted(self.assets.items())}}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self._restore_quoting(state["quoting"])
        for a, s in state["assets"].items():
            if a in self.assets:
                self.assets[a].restore(s)
