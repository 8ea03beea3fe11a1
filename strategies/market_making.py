"""Market making: two-sided quotes around a fair value, one inventory across the unified book.

For each configured binary market (named by its reference token, normally YES; the other token
comes from the catalog) the strategy keeps a bid and an ask *in reference-token terms* around a
fair value, skewed against its inventory, widened when the mid moves a lot, and pulled when the
data cannot be trusted.

    [strategies.mm]
    class = "market_making"
    asset_ids = ["<YES token id>"]  # one reference token per market (required)
    size = "10"                # shares per quote
    fair_value = "mid"         # "mid" or "microprice" (touch prices weighted by the opposite size)
    half_spread = "0.02"       # base distance of each quote from the fair value
    max_half_spread = "0.10"   # cap after widening
    skew = "0.01"              # quotes shift this much against each `size` shares of net inventory
    max_skew = "0.05"          # cap of that shift
    max_inventory = "50"       # |net inventory| cap in shares: the side that would pass it is not quoted
    vol_window = 20            # EWMA span (top-of-book updates) of |mid change| in ticks
    vol_widen = "1"            # extra half-spread ticks per tick of that EWMA (floored)
    replace_ticks = 2          # re-price a quote only when its wanted price moved this far
    min_replace_s = 1.0        # per market: at least this long between two re-quotes
    stale_s = 60.0             # pull both quotes when the book has not changed for this long (0 = off)

**The unified book** (PROTOCOL §8). A YES bid at p is a NO ask at 1 - p, so each quote can be
placed on either token. Net inventory = YES held - NO held (holding NO is being short YES). The
bid (wants more YES) sells NO the strategy holds (``SELL NO @ 1 - bid``) when it holds at least
the market's minimum size of NO, else buys YES; the ask (wants less YES) sells YES held, else
buys NO at ``1 - ask``. Selling what is held releases collateral and shrinks the position;
buying the other token would build a YES+NO pair that locks 1 per pair until merged. So a token
is never sold short, and selling YES you do not hold is a NO bid.

**Prices.** ``fair`` is the mid ``(bid + ask) / 2`` or the microprice
``(bid x ask size + ask x bid size) / (bid size + ask size)`` of the reference book's touch, read
without the strategy's own orders (live, the venue's book shows them, mirrored across the two
tokens). ``center = fair - clamp(skew x net / size, +-max_skew)`` and ``h = min(half_spread +
extra ticks, max_half_spread)`` where ``extra = floor(EWMA|dmid| x vol_widen)`` ticks; bid =
``center - h`` rounded down to the tick, ask = ``center + h`` rounded up. A bid stays a tick under
the best ask and the own ask, an ask a tick over the best bid and the own bid (post-only never
crosses, never a self-trade); a price outside [tick, 1 - tick] is not quoted. The EWMA is kept in
integer micro-ticks, updated on every top-of-book change.

**Sizes.** ``min(size, max_inventory - net)`` for the bid and ``min(size, max_inventory + net)``
for the ask (a sell of a held token: at most what is held), rounded to the 0.01 lot and dropped
below the market's minimum order size. As in :mod:`strategies.spread_capture` (whose slot
machinery this module uses), the inventory a live order is judged against excludes its own fills,
a quote is re-placed only when its token/side changes, its price moves ``replace_ticks`` or its
size changes, replacements wait for the venue's cancel confirmation, and re-quotes are rate
limited per market by ``min_replace_s``.

**Pulling.** Both quotes are cancelled (and nothing is placed) while either token's book is
unhealthy (hash or best bid/ask mismatch, crossed, reconnect, tick size change), when a
``MarketInfo`` update closes the market or stops its orders, after a
``FeedStale`` for it (until its book changes again), when either token's book has not changed for
``stale_s`` (a timer; the ``data_health`` validator's ``max_book_age_s`` refuses such orders
anyway), when a side of the book
is empty, or when the market is closed, resolved or not accepting orders. Mid-update states in
which the two tokens' books are not yet mirrors of each other (one token's change arrived, the
other's is next in the same frame) are skipped, not acted on.

**Cost.** Keyed subscriptions on the two tokens; a delta that is not the last of its frame for
that book (``run_end``) is not acted on; a book event whose reference touch without our orders
(and, for the microprice, its sizes), the complement's tops and health did not change returns
after that touch is read and compared. (Live, the venue's book shows our quotes, so levels
behind them move while the top of book stays; quotes just cancelled that the book may still
show count as ours: :class:`strategies.spread_capture.Ghosts`.)

State (slots, EWMA, last mid, pull reason, rate-limit stamps) survives a restart through
``snapshot()`` / ``restore()``; ``on_stop`` cancels every open order.
"""

from __future__ import annotations

from typing import Any, Literal

from polybot.events import (
    BookDelta,
    BookHealth,
    BookSnapshot,
    FeedStale,
    FillEvent,
    MarketInfo,
    MarketResolved,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
)
from polybot.strategy import StrategyParams, Units
from polybot.units import SCALE

from strategies.spread_capture import LOT, NS, QuotingStrategy, Want, ceil_tick, floor_tick, touch

MICRO = 1_000_000  # EWMA unit: micro-ticks


def mirror(p: int) -> int:
    """A price of one token seen on the other (0 = no price stays 0)."""
    return SCALE - p if p else 0


def fair_value(mode: str, bb: int, bsz: int, ba: int, asz: int) -> int:
    """Mid (rounded down) or microprice (rounded down) of a touch; both sides present."""
    if mode == "microprice" and bsz + asz > 0:
        return (bb * asz + ba * bsz) // (bsz + asz)
    return (bb + ba) // 2


def quote_prices(fair: int, net: int, ewma: int, bb: int, ba: int, tick: int, *, size: int, half_spread: int,
                 max_half_spread: int, skew: int, max_skew: int, vol_widen: int) -> tuple[int, int, int]:  # fmt: skip
    """(bid, ask, half-spread used) in reference-token terms for a touch ``bb`` < ``ba``.

    0 for a side that falls outside [tick, 1 - tick]. Always on the grid, bid < ask, bid < ba and
    ask > bb (a post-only pair never crosses the touch)."""
    shift = abs(skew * net) // size if size else 0
    shift = min(shift, max_skew)
    center = fair - shift if net > 0 else fair + shift
    extra = ewma * vol_widen // (MICRO * SCALE)  # whole ticks
    h = min(half_spread + extra * tick, max(max_half_spread, half_spread))
    h = max(h, 1)
    bid = floor_tick(center - h, tick)
    ask = ceil_tick(center + h, tick)
    bid = min(bid, ba - tick)
    ask = max(ask, bb + tick)
    if ask <= bid:  # cannot happen with h > 0 (kept as a guard)
        ask = bid + tick
    if not tick <= bid <= SCALE - tick:
        bid = 0
    if not tick <= ask <= SCALE - tick:
        ask = 0
    return bid, ask, h


class _Market:
    """Per-market state: the complement token, the last tops seen, the mid EWMA (micro-ticks)
    and last mid, why the quotes are pulled ("" = quoting) and whether the market is over."""

    __slots__ = ("ref", "comp", "top", "last_mid", "ewma", "pulled", "done", "half")

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.comp = ""
        self.top: tuple[int, ...] | None = None
        self.last_mid = 0
        self.ewma = 0
        self.pulled = "start"
        self.done = False
        self.half = 0  # the half-spread of the last computed quotes (reporting)

    def to_state(self) -> list[Any]:
        return [self.comp, self.last_mid, self.ewma, self.pulled, self.done, self.half]

    def restore(self, st: list[Any]) -> None:
        self.comp, self.last_mid, self.ewma, self.pulled, self.done, self.half = (
            str(st[0]), int(st[1]), int(st[2]), str(st[3]), bool(st[4]), int(st[5]))  # fmt: skip
        self.top = None


class MarketMaker(QuotingStrategy):
    """Two-sided quotes around mid/microprice with inventory skew, volatility widening and pulls."""

    name = "market_making"

    class Params(StrategyParams):
        asset_ids: list[str]
        size: Units = Units(10_000_000)
        fair_value: Literal["mid", "microprice"] = "mid"
        half_spread: Units = Units(20_000)
        max_half_spread: Units = Units(100_000)
        skew: Units = Units(10_000)
        max_skew: Units = Units(50_000)
        max_inventory: Units = Units(50_000_000)
        vol_window: int = 20
        vol_widen: Units = Units(1_000_000)
        replace_ticks: int = 2
        min_replace_s: float = 1.0
        stale_s: float = 60.0

        def __post_init__(self) -> None:
            if not self.asset_ids or not all(isinstance(a, str) and a for a in self.asset_ids):
                raise ValueError("asset_ids: give at least one reference (YES) token id")
            if self.size <= 0 or self.size % LOT:
                raise ValueError("size: must be a positive multiple of 0.01 share")
            if not 0 < self.half_spread < SCALE // 2:
                raise ValueError("half_spread: must be in (0, 0.5)")
            if self.max_half_spread < self.half_spread:
                raise ValueError("max_half_spread: must be >= half_spread")
            if self.skew < 0 or self.max_skew < 0 or self.max_inventory < 0 or self.vol_widen < 0:
                raise ValueError("skew, max_skew, max_inventory, vol_widen: must be >= 0")
            if self.vol_window < 1 or self.replace_ticks < 1:
                raise ValueError("vol_window, replace_ticks: must be >= 1")
            if self.min_replace_s < 0 or self.stale_s < 0:
                raise ValueError("min_replace_s, stale_s: must be >= 0")

    params: Params

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        self._init_quoting()
        self._apply_params()
        self.markets: dict[str, _Market] = {}
        self.key_of: dict[str, str] = {}  # token -> reference token of its market
        for a in self.params.asset_ids:
            self.markets[a] = _Market(a)
            self._watch(a, a)
        self.ctx.subscribe(MarketResolved, self.on_resolved)
        self.ctx.subscribe(MarketInfo, self.on_market_info)

    def _watch(self, asset: str, ref: str) -> None:
        self.key_of[asset] = ref
        sub = self.ctx.subscribe
        sub(BookSnapshot, self.on_book, key=asset)
        sub(BookDelta, self.on_book, key=asset)
        sub(BookHealth, self.on_health, key=asset)
        sub(FeedStale, self.on_stale, key=asset)
        for t in (FillEvent, OrderCancelled, OrderRejected, OrderExpired):
            sub(t, self.on_order, key=asset)

    def _apply_params(self) -> None:
        self.replace_ticks = self.params.replace_ticks
        self.min_replace_ns = int(self.params.min_replace_s * NS)
        self.stale_ns = int(self.params.stale_s * NS)
        self.alpha = 2 * MICRO // (self.params.vol_window + 1)  # EWMA weight in millionths

    def on_params(self, old: StrategyParams, new: StrategyParams) -> None:
        self._apply_params()
        for ref in sorted(self.markets):
            self.markets[ref].top = None
            self._recompute(ref)

    def _complement(self, m: _Market) -> str:
        if not m.comp:
            c = self.ctx.catalog.complement(m.ref)
            if c:
                m.comp = c
                if c not in self.key_of:
                    self._watch(c, m.ref)
        return m.comp

    # ------------------------------------------------------------------ handlers

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        self.ghosts.book_event(ev)
        if ev.__class__ is BookDelta and not ev.run_end:  # type: ignore[union-attr]
            return  # the middle of one frame's changes to this book: act on its last one
        ref = self.key_of[ev.asset_id]
        m = self.markets[ref]
        books = self.ctx.books
        yb = books.get(ref)
        nb = books.get(m.comp) if m.comp else None
        if yb is None:
            return
        # the touch without our own orders (live, the venue's book shows them: levels behind
        # our quotes can move while the top of book, our quotes, stays)
        own_b, own_a = self._own(m)
        bb, bsz = touch(yb.bids, own_b, True)
        ba, asz = touch(yb.asks, own_a, False)
        if self.params.fair_value == "microprice":
            top: tuple[int, ...] = (bb, ba, yb.healthy, bsz, asz)
        else:
            top = (bb, ba, yb.healthy)
        if nb is not None:
            top += (nb.best_bid, nb.best_ask, nb.healthy)
        moved = top != m.top
        if not moved and not m.pulled:
            return
        m.top = top
        self._recompute(ref, moved=moved, book_event=True)

    def on_health(self, ev: BookHealth) -> None:
        ref = self.key_of[ev.asset_id]
        self.markets[ref].top = None
        self._recompute(ref)

    def on_market_info(self, ev: MarketInfo) -> None:
        # closed / not accepting orders: pull now (the book may never change again)
        for a in ev.asset_ids:
            ref = self.key_of.get(a)
            if ref is not None:
                self._recompute(ref)
                return

    def on_stale(self, ev: FeedStale) -> None:
        ref = self.key_of[ev.asset_id]
        m = self.markets[ref]
        self._pull_market(m, "feed stale")

    def on_order(self, ev: FillEvent | OrderCancelled | OrderRejected | OrderExpired) -> None:
        if ev.strategy != self.id:
            return
        ref = self.key_of[ev.asset_id]
        if isinstance(ev, OrderRejected):
            self._order_rejected(ref, ev.client_id, self.ctx.now())
        elif not isinstance(ev, FillEvent):
            self._order_ended(ev.client_id)
        self._recompute(ref)

    def on_resolved(self, ev: MarketResolved) -> None:
        for ref, m in sorted(self.markets.items()):
            info = self.ctx.catalog.for_asset(ref)
            if ref in ev.asset_ids or (info is not None and info.market == ev.market):
                m.done = True
                self._pull_market(m, "market resolved")

    def _on_other_timer(self, kind: str, key: str) -> None:
        if kind == "stale" and key in self.markets:
            self._recompute(key)

    # ------------------------------------------------------------------ the decision

    def _pull_market(self, m: _Market, reason: str) -> None:
        info = self.ctx.catalog.for_asset(m.ref)
        market = info.market if info is not None else m.ref
        now = self.ctx.now()
        self._pull(m.ref, "bid", market, now, reason)
        self._pull(m.ref, "ask", market, now, reason)
        m.pulled = reason

    def inventory(self, ref: str) -> tuple[int, int]:
        """(YES held, NO held) of the market of ``ref`` (this strategy's own positions)."""
        m = self.markets[ref]
        return self.ctx.position(ref), (self.ctx.position(m.comp) if m.comp else 0)

    def net_inventory(self, ref: str) -> int:
        y, n = self.inventory(ref)
        return y - n

    def _yes_terms(self, ref: str, o: Any) -> int:
        return o.intent.price if o.asset_id == ref else SCALE - o.intent.price

    def _own(self, m: _Market) -> tuple[dict[int, int], dict[int, int]]:
        """Our resting sizes by price on the reference book's bid and ask sides, orders on the
        complement mirrored (a NO buy at q is a YES ask at 1 - q), ended quotes the book may still
        show included."""
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for asset in (m.ref, m.comp):
            if not asset:
                continue
            for o in self.ctx.open_orders(asset):
                buy = o.intent.side == "BUY"
                if asset == m.ref:
                    side, p = (bids if buy else asks), o.intent.price
                else:
                    side, p = (asks if buy else bids), SCALE - o.intent.price
                side[p] = side.get(p, 0) + o.remaining
        self.ghosts.merge(m.ref, bids, asks, self.ctx.now())
        return bids, asks

    def _recompute(self, ref: str, moved: bool = False, book_event: bool = False) -> None:
        """Re-evaluate the market of ``ref``. ``moved``: its tops of book changed (the EWMA
        takes a sample); ``book_event``: called for a book change (ends a FeedStale pull)."""
        m = self.markets.get(ref)
        if m is None or m.done:
            return
        ctx = self.ctx
        p = self.params
        now = ctx.now()
        comp = self._complement(m)
        books = ctx.books
        yb = books.get(ref)
        nb = books.get(comp) if comp else None
        info = ctx.catalog.for_asset(ref)
        market = info.market if info is not None else ref
        if not comp:
            why = "no catalog entry (complement unknown)"
        else:
            why = self._tradable(yb, info, market) or (self._tradable(nb, info, market) if nb is not None else "no book of the complement")
        # orders go on both tokens: the older of the two books decides (a frame updates the
        # reference token first; its complement's half follows)
        updated = min(yb.updated_ts, nb.updated_ts) if yb is not None and nb is not None else 0
        if not why and self.stale_ns and now - updated >= self.stale_ns:
            why = "stale book"
        if why:
            self._pull_market(m, why)
            return
        assert yb is not None and nb is not None
        if mirror(nb.best_ask) != yb.best_bid or mirror(nb.best_bid) != yb.best_ask:
            return  # mid-update: the other token's half of this change is still to come
        if m.pulled == "feed stale" and not book_event:
            return  # a FeedStale pull lasts until the book changes
        tick = self._tick(yb, info)
        min_size = self._min_size(info)
        own_b, own_a = self._own(m)
        bb, bsz = touch(yb.bids, own_b, True)
        ba, asz = touch(yb.asks, own_a, False)
        if not (bb and ba):
            self._pull_market(m, "one-sided book")
            return
        m.pulled = ""
        if moved:
            mid = (bb + ba) // 2
            if m.last_mid:
                d = abs(mid - m.last_mid) * MICRO // tick
                m.ewma += (d - m.ewma) * self.alpha // MICRO
            m.last_mid = mid
        if self.stale_ns:
            ctx.set_timer("stale:" + ref, at_ns=updated + self.stale_ns)
        fair = fair_value(p.fair_value, bb, bsz, ba, asz)
        yes, no = self.inventory(ref)
        bid, ask, m.half = quote_prices(fair, yes - no, m.ewma, bb, ba, tick, size=p.size, half_spread=p.half_spread,
                                        max_half_spread=p.max_half_spread, skew=p.skew, max_skew=p.max_skew,
                                        vol_widen=p.vol_widen)  # fmt: skip
        bo = self.live_order(ref, "bid")
        ao = self.live_order(ref, "ask")
        # never against our own other quote (a kept one may lag by < replace_ticks; one being
        # cancelled still rests until the venue confirms)
        if bid and ao is not None:
            bid = min(bid, self._yes_terms(ref, ao) - tick)
        if ask and bo is not None:
            ask = max(ask, self._yes_terms(ref, bo) + tick)
        if not tick <= bid <= SCALE - tick:
            bid = 0
        if not tick <= ask <= SCALE - tick:
            ask = 0
        want_bid = self._want_bid(m, bid, bo, yes, no, min_size, nb, tick) if bid else None
        want_ask = self._want_ask(m, ask, ao, yes, no, min_size, nb, tick) if ask else None
        self._sync(ref, "bid", want_bid, market, tick, now)
        self._sync(ref, "ask", want_ask, market, tick, now)

    def _want_bid(self, m: _Market, bid: int, o: Any, yes: int, no: int, min_size: int, nb: Any, tick: int) -> Want | None:
        """The bid (more YES): sell held NO at 1 - bid, else buy YES at bid."""
        if o is not None:  # judge the live order against the inventory it was placed with
            if o.asset_id == m.ref:
                yes -= o.filled
            else:
                no += o.filled
        size = min(self.params.size, self.params.max_inventory - (yes - no))
        size -= size % LOT
        if size < min_size:
            return None
        if no >= min_size:
            q = SCALE - bid
            if nb.best_bid:
                q = max(q, nb.best_bid + tick)
            n = min(size, no - no % LOT)
            return Want(m.comp, "SELL", q, n) if q <= SCALE - tick else None
        return Want(m.ref, "BUY", bid, size)

    def _want_ask(self, m: _Market, ask: int, o: Any, yes: int, no: int, min_size: int, nb: Any, tick: int) -> Want | None:
        """The ask (less YES): sell held YES at ask, else buy NO at 1 - ask."""
        if o is not None:
            if o.asset_id == m.ref:
                yes += o.filled
            else:
                no -= o.filled
        size = min(self.params.size, self.params.max_inventory + (yes - no))
        size -= size % LOT
        if size < min_size:
            return None
        if yes >= min_size:
            return Want(m.ref, "SELL", ask, min(size, yes - yes % LOT))
        q = SCALE - ask
        if nb.best_ask:
            q = min(q, nb.best_ask - tick)
        return Want(m.comp, "BUY", q, size) if q >= tick else None

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        return {"quoting": self._quoting_state(),
                "markets": {r: m.to_state() for r, m in sorted(self.markets.items())}}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self._restore_quoting(state["quoting"])
        for r, s in state["markets"].items():
            m = self.markets.get(r)
            if m is not None:
                m.restore(s)
                if m.comp and m.comp not in self.key_of:
                    self._watch(m.comp, r)
