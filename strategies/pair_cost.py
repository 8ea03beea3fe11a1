"""Pair-cost accumulator ("gabagool") for the recurring crypto up/down markets.

Each 5m/15m/1h window of a BTC/ETH/... up/down series is one binary market: exactly one of Up
(YES, ``asset_ids[0]``) and Down (NO, ``asset_ids[1]``) pays 1. The strategy rests post-only
bids on *both* outcomes and lets the price swings of the window fill them: Up is bought when it
is cheap, Down when it is cheap, so that ``avg YES cost + avg NO cost`` (the *pair cost*) stays
below ``target``. Every matched pair then redeems to 1 whatever the outcome: the locked profit is
``pairs x (1 - pair cost) - fees``. Taking both asks at once is never the trade (PROTOCOL.md
§8: ask(YES) + ask(NO) = 1 + spread); the pairs are built over time from maker fills.

    [strategies.gabagool]
    class = "pair_cost"
    series = ["btc-updown-15m"]   # every catalog market of these series (MarketInfo.series)
    markets = []                  # and/or market condition ids or slugs
    target = "0.98"               # pair cost (fees included) must stay strictly below this
    marginal = true               # and each new share must pair below it with the opposite average
    order_size = "10"             # shares per quote
    max_imbalance = "30"          # |YES - NO| shares, open quotes counted as filled
    max_shares = "0"              # per side: position + open buys (0 = no cap)
    liquidity_mult = 3            # the opposite book must show >= 3 x order_size ...
    liquidity_ticks = 5           # ... on its asks within 5 ticks of its best ask (0 mult = off)
    offset_ticks = 0              # quote this many ticks under the best bid (before the skew)
    skew_ticks = 1                # per skew_step shares of imbalance: lagging side up, leading down
    skew_step = "0"               # 0 = order_size
    max_skew_ticks = 3
    requote_ticks = 2             # keep a resting quote within 1 tick of the wanted price (if allowed)
    equalize = true               # taker top-up of the lagging side
    equalize_min = "0"            # imbalance that triggers it (0 = max_imbalance)
    equalize_ticks = 3            # how far above the lagging side's best ask it may walk the book
    settlement_buffer_s = 60      # no new buys this close to MarketInfo.end_ts
    merge = "off"                 # merge matched pairs into collateral: "stopped" | "always" | "off"
    merge_min_profit = "0.05"     # ... when their locked profit is at least this (it pays the gas)

**Merging.** With ``merge = "stopped"`` the matched pairs are merged back into collateral (an
on-chain ``mergePositions``: one YES + one NO -> 1 pUSD) once the strategy has stopped adding to
the market, instead of waiting for the resolution and the redeem; ``"always"`` merges whenever
the pairs' locked profit reaches ``merge_min_profit``, which frees the collateral for the next
pairs during the window. One merge per market is on its way at a time; the portfolio moves when
the chain confirms it.

**The buy rule.** A side S is bought (a quote placed, or a top-up sent) only if

* the *resulting pair cost stays below target*, fees included: the highest average each side
  can reach -- its position (cost + fees) plus any subset of its open orders filling at their
  worst-case cost (:func:`polybot.execution.rules.max_buy_cost`: the notional rounded up, plus
  the taker fee at the limit for a taker order or a maker fee where makers pay one) -- summed
  over the two sides is below ``target`` for every combination that includes the new order
  (decided exactly, by cross-multiplication: :meth:`polybot.portfolio.PairView.pair_cost_below`).
  As every order is checked against all the others still open, no sequence of fills can take
  the pair cost of the paired shares to ``target`` or above. While the opposite side holds no
  shares its best bid stands in for its average (with its open orders, whichever is higher):
  a first leg is bought only where pairing it at the opposite's current bid would already be
  below target, so a market with a one-tick spread is quoted two ticks behind the touch;
* with ``marginal`` (the default), each new share also pairs below target with the opposite's
  worst average on its own: a side is never bought at or above ``target - opposite average``.
  The blended rule alone lets cheap early fills pay for later pairs that cost more than 1,
  which lowers the locked profit while keeping the average under the target;
* the *imbalance stays within its limit*: ``qty S + open buys of S + order - qty opposite <=
  max_imbalance`` (so fills can never push ``|YES - NO|`` past it), and the side's shares stay
  within ``max_shares``;
* the *opposite side has enough liquidity* (maker quotes): its asks within ``liquidity_ticks``
  of its best ask add up to at least ``liquidity_mult x order_size``.

**Quotes.** Per side, at most one post-only GTD bid (expiring at the settlement buffer; GTC when
the market states no end): the best bid minus ``offset_ticks``, skewed toward the lagging side
(``k = min(max_skew_ticks, skew_ticks x (|imbalance| // skew_step))`` ticks up on the side that
has fewer shares, never crossing the ask, and ``k`` ticks down on the other), then capped at the
highest tick that passes the buy rule. The lagging side (with none, the cheaper one) is priced
first against the opposite's position; the leading side then gets what is left of the pair
budget given the lagging side's quote. Quotes being replaced are left out of the plan but
counted by the check before sending, so a replacement that could only fill together with the
old order waits for the cancel's answer. A resting quote is kept while it is within
``requote_ticks - 1`` ticks of the wanted price and the rule still allows it; it is cancelled
and replaced only when the wanted price moves further (1 = on every move), and book changes that
move neither top nor the liquidity window cause no work at all.

The best bid is read *without the strategy's own bids* (live, the venue's book shows them; a
skewed quote at the top priced from itself would walk up to the ask, and levels moving behind
it would go unseen), nor quotes just cancelled that the book may still show
(:class:`strategies.spread_capture.Ghosts`); a level smaller than our size there is not ours
(the paper executor's books never show our orders).

**Equalizer.** When ``|imbalance| >= equalize_min``, the lagging side is topped up with a FAK
taker order of at most the imbalance, walking its asks (up to ``equalize_ticks`` above the best
ask) only while the price paid per share, taker fee included, stays under
``target - average of the opposite side`` (i.e. at most ``1 - margin - opposite average - fee at
that price``) and the blended pair cost stays below target. An own bid on the leading side that
the top-up would match (a YES buy at p meets a NO buy at >= 1 - p) is cancelled first. One
top-up per state of the books: a top-up that found nothing is not repeated until they change.

**Window end.** From ``MarketInfo.end_ts - settlement_buffer_s`` on (a timer fires then), and
when the market closes, stops accepting orders or resolves, the quotes are cancelled and nothing
is added.

**Bad data.** An unhealthy book (``BookHealth``: feed gap, hash or best bid/ask mismatch, crossed,
tick size change) or one named by a ``FeedStale`` (until it changes again) cancels the quotes at
once -- such notices come without a book change -- and nothing is placed until both books are
good again.

**Reporting.** :meth:`PairCost.report` (also in :meth:`snapshot`, and logged on every fill and at
resolution) gives per market the quantities, averages, the pair cost (the portfolio's, and with
fees), matched pairs, the locked profit (:meth:`polybot.portfolio.Portfolio.locked_profit`) and
the unpaired exposure (unpaired shares and their cost), plus order counters; at resolution the
settlement PnL is logged.

**Cost.** Book handlers are subscribed per asset of the followed markets only; a change that is
not the last of its frame for that book (``BookDelta.run_end``), or that moves neither top of
book nor the liquidity window, returns at once, and a market whose inputs (tops, liquidity, own
orders and fills) did not change is not re-planned. A refusal (risk or venue) is not retried
until the book changes. State (order counters, reports, finished markets) survives a restart;
the quotes are the open orders the kernel restores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from polybot.events import (
    BookDelta,
    BookHealth,
    BookSnapshot,
    FeedStale,
    FeeSchedule,
    FillEvent,
    MarketInfo,
    MarketResolved,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    TimerFired,
)
from polybot.execution.rules import LOT, MIN_MARKETABLE_NOTIONAL, max_buy_cost
from polybot.portfolio import PairView
from polybot.strategy import Strategy, StrategyParams, Units
from polybot.units import SCALE, from_units

from strategies.spread_capture import Ghosts, touch

if TYPE_CHECKING:  # pragma: no cover
    from polybot.book import OrderBook
    from polybot.execution.orders import Order

NS = 1_000_000_000
DEFAULT_TICK = 10_000
GTD_BUFFER_NS = 60 * NS  # the venue expires a GTD order one minute before its expire_ts
QUOTE = "pair_cost:quote"
EQUALIZE = "pair_cost:equalize"

#: (cost, shares) in base units: an average price of ``cost * SCALE / shares``.
Avg = tuple[int, int]


# --------------------------------------------------------------------------------------------
# Exact helpers (module level: the tests use them as the reference too)
# --------------------------------------------------------------------------------------------


def order_bound(price: int, size: int, taker: bool, fees: FeeSchedule | None) -> int:
    """Worst-case cost of a BUY of ``size`` at limit ``price``: the notional rounded up, plus the
    taker fee at the limit (rounded up) for a taker order, or for a maker one where makers pay."""
    if taker or (fees is not None and not fees.taker_only):
        return max_buy_cost(size, price, fees)
    return max_buy_cost(size, price, None)


def worst_average(qty: int, cost: int, fixed: Iterable[Avg] = (), optional: Iterable[Avg] = (),
                  ref: int = 0) -> Avg | None:  # fmt: skip
    """The highest average cost per share one side can end with: its position (``qty`` shares
    for ``cost``), every ``fixed`` (cost, shares) item filled and any subset of the ``optional``
    ones. The best subset adds the optional items by decreasing cost per share, so the maximum
    is over those prefixes. ``ref`` (a price) stands in as one more candidate average (the
    opposite side's best bid while it holds nothing). None when the side can hold no share."""
    c, q = cost, qty
    for fc, fq in fixed:
        c += fc
        q += fq
    best: Avg | None = (c, q) if q > 0 else None
    for oc, oq in sorted(optional, key=lambda x: Fraction(x[0], x[1]), reverse=True):
        if oq <= 0:
            continue
        c += oc
        q += oq
        if best is None or c * best[1] > best[0] * q:
            best = (c, q)
    if ref > 0 and (best is None or ref * best[1] > best[0] * SCALE):
        best = (ref, SCALE)
    return best


def pair_below(a: Avg, b: Avg, target: int) -> bool:
    """``avg a + avg b < target``, exactly (through :meth:`PairView.pair_cost_below`)."""
    return PairView(qty_yes=a[1], qty_no=b[1], cost_yes=a[0], cost_no=b[0]).pair_cost_below(target)


def skew_ticks(imbalance: int, step: int, per_step: int, cap: int) -> int:
    """Ticks of skew for an imbalance of ``imbalance`` shares."""
    if step <= 0 or per_step <= 0 or cap <= 0:
        return 0
    return min(cap, per_step * (abs(imbalance) // step))


class _Market:
    """One followed market: its catalog entry and what the strategy keeps about it."""

    __slots__ = ("info", "yes", "no", "stop_ts", "done", "stopped", "sig", "tops", "version",
                 "eq_tops", "counters", "report", "label")  # fmt: skip

    def __init__(self, info: MarketInfo, buffer_ns: int) -> None:
        self.info = info
        self.yes, self.no = info.asset_ids
        self.stop_ts = info.end_ts - buffer_ns if info.end_ts else 0
        self.done = False  # resolved
        self.stopped = False  # inside the settlement buffer (or closed): logged once
        self.sig: tuple[Any, ...] | None = None  # inputs of the last plan
        self.tops: list[tuple[int, int, bool]] = [(-1, -1, False), (-1, -1, False)]
        self.version = 0  # own order events and fills: bumps force a re-plan
        self.eq_tops: tuple[int, ...] = ()  # tops of the books when the last top-up was sent
        self.counters = {"quotes": 0, "requotes": 0, "equalizes": 0, "rejected": 0, "fills": 0, "merges": 0}
        self.report: dict[str, Any] = {}
        self.label = info.slug or info.market[:12]


class PairCost(Strategy):
    """Pair-cost accumulator ("gabagool"): maker bids on Up and Down keep avg YES + avg NO < target.

    Crypto up/down windows; buy rule with fees, imbalance and liquidity limits, taker equalizer,
    skew toward the lagging side, settlement buffer (see the module docstring)."""

    name = "pair_cost"

    class Params(StrategyParams):
        markets: list[str] = []
        series: list[str] = []
        target: Units = Units(980_000)
        marginal: bool = True
        order_size: Units = Units(10_000_000)
        max_imbalance: Units = Units(30_000_000)
        max_shares: Units = Units(0)
        liquidity_mult: int = 3
        liquidity_ticks: int = 5
        offset_ticks: int = 0
        skew_ticks: int = 1
        skew_step: Units = Units(0)
        max_skew_ticks: int = 3
        requote_ticks: int = 2
        equalize: bool = True
        equalize_min: Units = Units(0)
        equalize_ticks: int = 3
        settlement_buffer_s: float = 60.0
        merge: Literal["off", "stopped", "always"] = "off"
        merge_min_profit: Units = Units(50_000)

        def __post_init__(self) -> None:
            if not 0 < self.target <= SCALE:
                raise ValueError("target: must be in (0, 1]")
            if self.order_size <= 0 or self.order_size % LOT:
                raise ValueError("order_size: must be a positive multiple of 0.01 share")
            for k in ("max_imbalance", "max_shares", "skew_step", "equalize_min", "liquidity_mult",
                      "liquidity_ticks", "offset_ticks", "skew_ticks", "max_skew_ticks", "equalize_ticks"):  # fmt: skip
                if getattr(self, k) < 0:
                    raise ValueError(f"{k}: must be >= 0")
            if self.requote_ticks < 1:
                raise ValueError("requote_ticks: must be >= 1")
            if self.settlement_buffer_s < 0:
                raise ValueError("settlement_buffer_s: must be >= 0")
            if self.merge_min_profit < 0:
                raise ValueError("merge_min_profit: must be >= 0")

    params: Params

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._markets: dict[str, _Market] = {}
        self._by_asset: dict[str, _Market] = {}
        self._subscribed: set[str] = set()
        self._cancelling: set[str] = set()  # cancels sent, answer not seen yet
        self._restored: dict[str, Any] = {}  # snapshot state of markets not followed yet
        self._stale: dict[str, int] = {}  # asset -> ts of a FeedStale naming it (until its book changes)
        self._ghosts = Ghosts()  # ended quotes the venue's book may still show

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        self.ctx.subscribe(MarketInfo, self.on_market_info)
        self.ctx.subscribe(MarketResolved, self.on_resolved)
        self.ctx.subscribe(OrderEvent, self.on_order)
        self._scan_catalog()

    def on_params(self, old: StrategyParams, new: StrategyParams) -> None:
        self._scan_catalog()
        for m in self._markets.values():
            m.stop_ts = m.info.end_ts - self._buffer_ns() if m.info.end_ts else 0
            m.stopped = False
            m.version += 1
            self._update(m)

    def on_timer(self, ev: TimerFired) -> None:
        if ev.name.startswith("stop:"):
            m = self._markets.get(ev.name[5:])
            if m is not None:
                self._update(m)

    def snapshot(self) -> dict[str, Any]:
        return {
            "markets": {k: {"done": m.done, "counters": dict(m.counters), "report": dict(m.report)}
                        for k, m in sorted(self._markets.items())},  # fmt: skip
            "cancelling": sorted(self._cancelling),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._restored = dict(state.get("markets", {}))
        self._cancelling = set(state.get("cancelling", ()))
        for mid, m in self._markets.items():
            self._apply_restored(mid, m)
        self._scan_catalog()  # the catalog is restored before the strategies

    # ------------------------------------------------------------------ markets

    def _buffer_ns(self) -> int:
        return int(round(self.params.settlement_buffer_s * NS))

    def _wanted(self, info: MarketInfo) -> bool:
        p = self.params
        if len(info.asset_ids) != 2 or info.neg_risk_augmented:
            return False
        return info.market in p.markets or (bool(info.slug) and info.slug in p.markets) or (
            bool(info.series) and info.series in p.series)  # fmt: skip

    def _scan_catalog(self) -> None:
        for info in sorted(self.ctx.catalog, key=lambda i: i.market):
            if self._wanted(info):
                self._follow(info)

    def _apply_restored(self, mid: str, m: _Market) -> None:
        st = self._restored.pop(mid, None)
        if st:
            m.done = m.stopped = bool(st.get("done", False))  # a resolved market keeps its last report
            m.counters.update(st.get("counters", {}))
            m.report = dict(st.get("report", {}))

    def _follow(self, info: MarketInfo) -> _Market:
        m = self._markets.get(info.market)
        if m is not None:  # an update of the catalog entry (end time, closed, accepting orders)
            stop = info.end_ts - self._buffer_ns() if info.end_ts else 0
            if stop != m.stop_ts and stop and self.ctx.now() < stop and not m.done:
                self.ctx.set_timer("stop:" + info.market, at_ns=stop)
            m.info, m.stop_ts = info, stop
            m.version += 1
            return m
        m = self._markets[info.market] = _Market(info, self._buffer_ns())
        self._apply_restored(info.market, m)
        if info.market in self.ctx.catalog.resolved:
            m.done = m.stopped = True
        for a in info.asset_ids:
            self._by_asset[a] = m
            if a not in self._subscribed:
                self._subscribed.add(a)
                self.ctx.subscribe(BookSnapshot, self.on_snapshot, key=a)
                self.ctx.subscribe(BookDelta, self.on_delta, key=a)
                self.ctx.subscribe(BookHealth, self.on_health, key=a)
                self.ctx.subscribe(FeedStale, self.on_stale, key=a)
        if m.stop_ts and self.ctx.now() < m.stop_ts and not m.done:
            self.ctx.set_timer("stop:" + info.market, at_ns=m.stop_ts)
        self.ctx.log.info("pair_cost: following {} ({}), stops adding at {}", m.label, info.market,
                          m.stop_ts or "never")  # fmt: skip
        return m

    def on_market_info(self, ev: MarketInfo) -> None:
        if ev.market in self._markets or self._wanted(ev):
            self._update(self._follow(ev))

    def on_resolved(self, ev: MarketResolved) -> None:
        m = self._markets.get(ev.market)
        if m is None:
            return
        m.done = m.stopped = True  # the positions are settled already: keep the last report
        self._cancel_quotes(m, "resolved")
        pf = self.ctx.portfolio
        net = 0
        for a in (m.yes, m.no):
            pos = pf.by_strategy.get((self.id, a))
            if pos is not None:
                net += pos.realized - pos.fees + pos.rebates
        r = m.report
        m.report = {**r, "settled": True, "winner": "YES" if ev.winning_asset_id == m.yes else "NO",
                    "settlement_pnl": net}  # fmt: skip
        self.ctx.log.info("pair_cost {}: resolved {}; {} pairs at pair cost {} locked {}, unpaired {}; "
                          "settlement PnL {}", m.label, m.report["winner"], from_units(r.get("pairs", 0)),
                          from_units(r.get("pair_cost_with_fees", 0)), from_units(r.get("locked_profit", 0)),
                          from_units(r.get("unpaired", 0)), from_units(net))  # fmt: skip

    # ------------------------------------------------------------------ events

    def on_snapshot(self, ev: BookSnapshot) -> None:
        self._ghosts.book_event(ev)
        m = self._by_asset.get(ev.asset_id)
        if m is not None and not m.stopped:
            self._update(m)

    def on_health(self, ev: BookHealth) -> None:
        # a feed gap or a tick size change sends no book change: pull (or quote again) now
        m = self._by_asset.get(ev.asset_id)
        if m is not None and not m.stopped:
            m.sig = None
            self._update(m)

    def on_stale(self, ev: FeedStale) -> None:
        m = self._by_asset.get(ev.asset_id)
        if m is not None:
            self._stale[ev.asset_id] = ev.ts
            if not m.stopped:
                self._update(m)

    def on_delta(self, ev: BookDelta) -> None:
        self._ghosts.book_event(ev)
        if not ev.run_end:
            return  # the middle of one frame's changes to this book: act on its last one
        m = self._by_asset.get(ev.asset_id)
        if m is None or m.stopped:
            return
        b = self.ctx.books.get(ev.asset_id)
        if b is None:
            return
        i = 0 if ev.asset_id == m.yes else 1
        top = (self._best_bid(b), b.best_ask, b.healthy)
        if top == m.tops[i]:
            # the top did not move: only the ask depth near the touch (the liquidity rule) matters
            if ev.side != "ASK" or self.params.liquidity_mult == 0:
                return
            tick = b.tick_size or m.info.tick_size or DEFAULT_TICK
            if ev.price > b.best_ask + self.params.liquidity_ticks * tick:
                return
        m.tops[i] = top
        self._update(m)

    def on_order(self, ev: OrderEvent) -> None:
        if ev.strategy != self.id:
            return
        m = self._by_asset.get(ev.asset_id)
        if m is None:
            return
        if isinstance(ev, FillEvent):
            if isinstance(ev, OrderFilled):
                self._cancelling.discard(ev.client_id)
            m.counters["fills"] += 1
            self._refresh_report(m)
            r = m.report
            self.ctx.log.info("pair_cost {}: {} {} {} @ {} ({}); YES {} @ {} + NO {} @ {}: pair cost {} (with fees "
                              "{}), locked profit {}, unpaired {} (cost {})", m.label,
                              "YES" if ev.asset_id == m.yes else "NO", ev.liquidity, from_units(ev.size),
                              from_units(ev.price), from_units(ev.fee), from_units(r["qty_yes"]),
                              from_units(r["avg_yes"]), from_units(r["qty_no"]), from_units(r["avg_no"]),
                              from_units(r["pair_cost"]), from_units(r["pair_cost_with_fees"]),
                              from_units(r["locked_profit"]), from_units(r["unpaired"]),
                              from_units(r["unpaired_cost"]))  # fmt: skip
        elif isinstance(ev, (OrderCancelled, OrderRejected, OrderExpired)):
            self._cancelling.discard(ev.client_id)
            o = self.ctx.order(ev.client_id)
            if o is not None and not isinstance(ev, OrderRejected):
                self._ghosts.order_ended(o, None, self.ctx.now())
            if isinstance(ev, OrderRejected) or (o is not None and o.intent.note == EQUALIZE):
                # a refusal or a top-up that found nothing changes no position: the next book
                # change re-plans (re-sending the same order now would be refused the same way)
                return
        else:
            return
        m.version += 1
        self._update(m)

    def _maybe_merge(self, m: _Market) -> None:
        """Merge the matched pairs into collateral when ``merge`` allows it now and their
        locked profit pays for the transaction (one merge per market on its way at a time)."""
        p = self.params
        ctx = self.ctx
        market = m.info.market
        if p.merge == "off" or market in ctx.catalog.resolved or ctx.pending_actions(market):
            return
        pv = ctx.portfolio.pair_view(market, self.id)
        pairs = pv.pairs - pv.pairs % LOT
        if pairs <= 0 or pv.locked_profit < max(p.merge_min_profit, 1):
            return
        aid = ctx.merge(market, pairs, note=f"locked profit {from_units(pv.locked_profit)}")
        if aid:
            m.counters["merges"] = m.counters.get("merges", 0) + 1
            ctx.log.info("pair_cost {}: merging {} pairs at pair cost {} (locked profit {}): {}", m.label,
                         from_units(pairs), from_units(pv.pair_cost), from_units(pv.locked_profit), aid)  # fmt: skip

    # ------------------------------------------------------------------ reading state

    def _pos(self, asset: str) -> tuple[int, int]:
        """(shares, cost + fees) of this strategy's position."""
        p = self.ctx.portfolio.by_strategy.get((self.id, asset))
        return (p.size, p.cost + p.fees) if p is not None else (0, 0)

    @staticmethod
    def _taker(o: Order) -> bool:
        it = o.intent
        return it.tif in ("FAK", "FOK") or not it.post_only

    def _items(self, orders: Sequence[Order], fees: FeeSchedule | None) -> list[Avg]:
        return [(order_bound(o.intent.price, o.remaining, self._taker(o), fees), o.remaining)
                for o in orders if o.intent.side == "BUY" and o.remaining > 0]  # fmt: skip

    def _is_quote(self, o: Order) -> bool:
        return o.intent.note == QUOTE and o.intent.side == "BUY"

    def _live_quote(self, o: Order) -> bool:
        return self._is_quote(o) and o.client_id not in self._cancelling and o.state != "cancel_pending"

    def _best_bid(self, book: OrderBook) -> int:
        """The best bid of ``book`` without this strategy's own bids: live, the venue's book shows
        them, and pricing a quote from itself would walk it up to the ask."""
        own: dict[int, int] = {}
        for o in self.ctx.open_orders(book.asset_id):
            if o.strategy == self.id and o.intent.side == "BUY" and o.remaining > 0:
                own[o.intent.price] = own.get(o.intent.price, 0) + o.remaining
        if self._ghosts.levels:  # quotes that ended, maybe still in the book (no asks: see _plan_side)
            self._ghosts.merge(book.asset_id, own, {}, self.ctx.now())
        return touch(book.bids, own, True)[0] if own else book.best_bid

    def _fresh(self, book: OrderBook) -> bool:
        """Healthy, and not named by a FeedStale since it last changed."""
        if not book.healthy:
            return False
        st = self._stale.get(book.asset_id)
        if st is None:
            return True
        if book.updated_ts > st:
            del self._stale[book.asset_id]
            return True
        return False

    def _liquid(self, book: OrderBook | None, tick: int) -> bool:
        """The liquidity rule for buying the side opposite ``book``."""
        p = self.params
        if p.liquidity_mult == 0:
            return True
        if book is None or not book.best_ask:
            return False
        depth = book.size_up_to("BUY", book.best_ask + p.liquidity_ticks * tick)
        return depth >= p.liquidity_mult * p.order_size

    def _min_size(self, m: _Market) -> int:
        return m.info.min_order_size or 5_000_000

    # ------------------------------------------------------------------ the buy rule

    def allowed(self, m: _Market, side: int, price: int, size: int, taker: bool = False) -> str:
        """Why a BUY of ``size`` shares of side ``side`` (0 = YES, 1 = NO) at ``price`` may not
        be sent now ("" = it may), against the positions and *every* open order of this
        strategy in the market (those being cancelled included: they may still fill)."""
        p = self.params
        fees = m.info.fees
        assets = (m.yes, m.no)
        s_asset, o_asset = assets[side], assets[1 - side]
        qs, cs = self._pos(s_asset)
        qo, co = self._pos(o_asset)
        s_orders = [o for o in self.ctx.open_orders(s_asset) if o.intent.side == "BUY"]
        o_orders = [o for o in self.ctx.open_orders(o_asset) if o.intent.side == "BUY"]
        open_s = sum(o.remaining for o in s_orders)
        if qs + open_s + size - qo > p.max_imbalance:
            return (f"imbalance: {from_units(qs)} + open {from_units(open_s)} + {from_units(size)} - "
                    f"{from_units(qo)} > max_imbalance {from_units(p.max_imbalance)}")  # fmt: skip
        if p.max_shares and qs + open_s + size > p.max_shares:
            return f"max_shares: {from_units(qs + open_s + size)} > {from_units(p.max_shares)}"
        new = (order_bound(price, size, taker, fees), size)
        ws = worst_average(qs, cs, [new], self._items(s_orders, fees))
        ref = 0
        if qo == 0:
            ob = self.ctx.books.get(o_asset)
            ref = ob.best_bid if ob is not None else 0
        wo = worst_average(qo, co, (), self._items(o_orders, fees), ref)
        if wo is None:
            return "no pairing reference: the opposite side has no shares, orders or bid"
        assert ws is not None
        if not pair_below(ws, wo, p.target):
            return f"pair cost: would reach {from_units(_avg(ws) + _avg(wo))} >= target {from_units(p.target)}"
        if (taker or p.marginal) and not pair_below(new, wo, p.target):
            what = "equalizer" if taker else "marginal"
            return (f"{what} cap: {from_units(_avg(new))} a share (fees included) + opposite "
                    f"{from_units(_avg(wo))} >= target {from_units(p.target)}")  # fmt: skip
        if not taker:
            ob = self.ctx.books.get(o_asset)
            tick = (ob.tick_size if ob is not None else 0) or m.info.tick_size or DEFAULT_TICK
            if not self._liquid(ob, tick):
                return (f"liquidity: opposite asks within {p.liquidity_ticks} ticks < {p.liquidity_mult} x "
                        f"{from_units(p.order_size)}")  # fmt: skip
        return ""

    # ------------------------------------------------------------------ planning

    def _plan_side(self, m: _Market, s: int, books: tuple[OrderBook, OrderBook], pos: list[tuple[int, int]],
                   others: list[list[Order]], other_plan: tuple[int, int, Any] | None, lag: int | None, imb: int,
                   tick: int, ceiling: int, current: Order | None) -> tuple[int, int, Any] | None:  # fmt: skip
        """The quote wanted on side ``s``: (price, size, the open order to keep or None)."""
        p = self.params
        fees = m.info.fees
        book = books[s]
        bb, ba = self._best_bid(book), book.best_ask  # (the ask keeps our own mirrored bids: never cross them)
        if not bb or not ba:
            return None
        q, c = pos[s]
        qo, co = pos[1 - s]
        open_other = sum(o.remaining for o in others[s])
        room = p.max_imbalance - (q - qo) - open_other
        if p.max_shares:
            room = min(room, p.max_shares - q - open_other)
        size = min(p.order_size, room)
        size -= size % LOT
        if size < self._min_size(m) or not self._liquid(books[1 - s], tick):
            return None
        k = skew_ticks(imb, p.skew_step or p.order_size, p.skew_ticks, p.max_skew_ticks)
        base = bb - p.offset_ticks * tick
        if lag is not None:
            base += k * tick if s == lag else -k * tick
        base = min(base, ba - tick, ceiling)
        base -= base % tick
        if base < tick:
            return None
        o_items = self._items(others[1 - s], fees)
        if other_plan is not None:
            o_items.append((order_bound(other_plan[0], other_plan[1], False, fees), other_plan[1]))
        wo = worst_average(qo, co, (), o_items, books[1 - s].best_bid if qo == 0 else 0)
        if wo is None:
            return None
        s_items = self._items(others[s], fees)

        def ok(price: int, n: int) -> bool:
            new = (order_bound(price, n, False, fees), n)
            if p.marginal and not pair_below(new, wo, p.target):
                return False
            ws = worst_average(q, c, [new], s_items)
            return ws is not None and pair_below(ws, wo, p.target)

        lo, hi = 1, base // tick
        if p.marginal:  # a share must cost less than target - the opposite's average: a bound
            hi = min(hi, (p.target - wo[0] * SCALE // wo[1] - 1) // tick)
            if hi < 1:
                return None
        if ok(hi * tick, size):
            lo = hi
        elif not ok(tick, size):
            return None
        else:
            hi -= 1
        while lo < hi:  # the highest tick that passes (the rule is monotone in the price)
            mid = (lo + hi + 1) // 2
            if ok(mid * tick, size):
                lo = mid
            else:
                hi = mid - 1
        price = lo * tick
        if current is not None:
            cp, cr = current.intent.price, current.remaining
            if abs(cp - price) < p.requote_ticks * tick and cp <= min(ba - tick, ceiling) and cr <= room and ok(cp, cr):
                return cp, cr, current
        return price, size, None

    def _plan_equalizer(self, m: _Market, lag: int, book: OrderBook, pos: list[tuple[int, int]],
                        orders: list[list[Order]], tick: int) -> tuple[int, int] | None:  # fmt: skip
        """(limit, size) of a taker top-up of the lagging side, or None."""
        p = self.params
        q, _c = pos[lag]
        qo, _co = pos[1 - lag]
        open_l = sum(o.remaining for o in orders[lag] if o.intent.side == "BUY")
        need = min(qo - q, p.max_imbalance + qo - q - open_l)
        if p.max_shares:
            need = min(need, p.max_shares - q - open_l)
        need -= need % LOT
        if need <= 0 or not book.best_ask:
            return None
        band = book.best_ask + p.equalize_ticks * tick
        best = None
        cum = 0
        for price, lvl in book.iter_asks():
            if price > band:
                break
            cum += lvl
            n = min(need, cum)
            n -= n % LOT
            if n > 0 and price * n >= MIN_MARKETABLE_NOTIONAL * SCALE:
                if self.allowed(m, lag, price, n, taker=True):
                    break  # a higher price (and more shares) cannot pass either
                best = (price, n)
            if cum >= need:
                break
        return best

    # ------------------------------------------------------------------ acting

    def _cancel(self, m: _Market, o: Order, reason: str) -> None:
        if o.client_id in self._cancelling or o.state == "cancel_pending":
            return
        if self.ctx.cancel(o.client_id, reason):
            self._cancelling.add(o.client_id)
            if reason in ("requote", "pull"):
                m.counters["requotes"] += 1

    def _cancel_quotes(self, m: _Market, reason: str) -> None:
        for a in (m.yes, m.no):
            for o in self.ctx.open_orders(a):
                if self._is_quote(o):
                    self._cancel(m, o, reason)

    def _update(self, m: _Market) -> None:
        """Re-plan one market and bring its orders in line (cheap when nothing changed)."""
        ctx = self.ctx
        p = self.params
        info = m.info
        now = ctx.now()
        if m.done or info.closed or not info.accepting_orders or (m.stop_ts and now >= m.stop_ts):
            if not m.stopped:
                m.stopped = True
                self._refresh_report(m)
                r = m.report
                ctx.log.info("pair_cost {}: stopped adding; {} pairs at pair cost {} (with fees {}), locked profit "
                             "{}, unpaired {} (cost {})", m.label, from_units(r["pairs"]),
                             from_units(r["pair_cost"]), from_units(r["pair_cost_with_fees"]),
                             from_units(r["locked_profit"]), from_units(r["unpaired"]),
                             from_units(r["unpaired_cost"]))  # fmt: skip
            self._cancel_quotes(m, "stop")
            self._maybe_merge(m)
            return
        if p.merge == "always":
            self._maybe_merge(m)
        books = ctx.books
        by, bn = books.get(m.yes), books.get(m.no)
        if by is None or bn is None or not (self._fresh(by) and self._fresh(bn)):
            self._cancel_quotes(m, "unhealthy book")
            m.sig = None
            m.tops = [(-1, -1, False), (-1, -1, False)]  # any change of the books re-plans
            return
        tick = by.tick_size or bn.tick_size or info.tick_size or DEFAULT_TICK
        liq = (self._liquid(bn, tick), self._liquid(by, tick))
        bby, bbn = self._best_bid(by), self._best_bid(bn)
        sig = (bby, by.best_ask, bbn, bn.best_ask, liq, m.version)
        if sig == m.sig:
            return
        m.sig = sig
        m.tops = [(bby, by.best_ask, by.healthy), (bbn, bn.best_ask, bn.healthy)]
        pair = (by, bn)
        pos = [self._pos(m.yes), self._pos(m.no)]
        orders = [ctx.open_orders(m.yes), ctx.open_orders(m.no)]
        # planning counts the orders that are not quotes (a top-up in flight); quotes are planned
        # anew (those still being cancelled are counted by the check before sending)
        others = [[o for o in orders[i] if o.intent.side == "BUY" and not self._is_quote(o)] for i in (0, 1)]
        current = [next((o for o in orders[i] if self._live_quote(o)), None) for i in (0, 1)]
        imb = pos[0][0] - pos[1][0]
        lag = 1 if imb > 0 else 0 if imb < 0 else None
        ceiling = [SCALE, SCALE]

        # the equalizer: top up the lagging side with a taker order
        eq_min = p.equalize_min or p.max_imbalance
        tops = sig[:4]
        if p.equalize and lag is not None and abs(imb) >= eq_min and not others[lag] and tops != m.eq_tops:
            # (one top-up per state of the books: the liquidity it took does not leave the
            # recorded book, and a paper or live venue would refuse it the same way again)
            plan = self._plan_equalizer(m, lag, pair[lag], pos, orders, tick)
            if plan is not None:
                limit, size = plan
                lead = 1 - lag
                ceiling[lead] = SCALE - limit - tick  # an own bid there would match the top-up
                clash = [o for o in orders[lead] if o.intent.side == "BUY" and o.intent.price >= SCALE - limit]
                if clash:
                    for o in clash:
                        self._cancel(m, o, "equalize")
                elif self._send(m, lag, limit, size, taker=True):
                    m.eq_tops = tops

        # quotes: the lagging side (else the cheaper one) first, the other gets what is left
        first = lag if lag is not None else (0 if bby <= bbn else 1)
        wanted: list[tuple[int, int, Any] | None] = [None, None]
        for s in (first, 1 - first):
            wanted[s] = self._plan_side(m, s, pair, pos, others, wanted[1 - s], lag, imb, tick, ceiling[s],
                                        current[s])  # fmt: skip
        sends = []
        for s in (first, 1 - first):
            w = wanted[s]
            for o in orders[s]:
                if self._live_quote(o) and (w is None or w[2] is not o):
                    self._cancel(m, o, "requote" if w is not None else "pull")
            if w is not None and w[2] is None:
                sends.append((s, w[0], w[1]))
        for s, price, size in sends:
            self._send(m, s, price, size, taker=False)

    def _send(self, m: _Market, side: int, price: int, size: int, taker: bool) -> bool:
        why = self.allowed(m, side, price, size, taker)
        if why:
            # usually an order still being cancelled: the re-plan after its answer sends it
            self.ctx.log.debug("pair_cost {}: not sending {} {} @ {}: {}", m.label, "YES" if side == 0 else "NO",
                               from_units(size), from_units(price), why)  # fmt: skip
            return False
        asset = m.yes if side == 0 else m.no
        now = self.ctx.now()
        if taker:
            it = OrderIntent(strategy=self.id, asset_id=asset, market=m.info.market, side="BUY", price=price,
                             size=size, tif="FAK", note=EQUALIZE)  # fmt: skip
        elif m.stop_ts and m.stop_ts > now:  # GTD: the venue expires it at the settlement buffer
            it = OrderIntent(strategy=self.id, asset_id=asset, market=m.info.market, side="BUY", price=price,
                             size=size, tif="GTD", expire_ts=m.stop_ts + GTD_BUFFER_NS, post_only=True,
                             note=QUOTE)  # fmt: skip
        else:
            it = OrderIntent(strategy=self.id, asset_id=asset, market=m.info.market, side="BUY", price=price,
                             size=size, tif="GTC", post_only=True, note=QUOTE)  # fmt: skip
        d = self.ctx.submit(it)
        if not d.approved:
            m.counters["rejected"] += 1
            self.ctx.log.debug("pair_cost {}: risk rejected {} @ {}: {} ({})", m.label, from_units(size),
                               from_units(price), d.reason, d.validator)  # fmt: skip
            return False
        m.counters["equalizes" if taker else "quotes"] += 1
        return True

    # ------------------------------------------------------------------ reporting

    def _refresh_report(self, m: _Market) -> None:
        pf = self.ctx.portfolio
        v = pf.pair_view(m.info.market, self.id)
        qy, fy = self._pos(m.yes)
        qn, fn = self._pos(m.no)
        with_fees = PairView(qy, qn, fy, fn)
        u = v.unpaired
        lead_q, lead_c = (qy, fy) if u > 0 else (qn, fn)
        m.report = {
            "market": m.info.market,
            "slug": m.info.slug,
            "qty_yes": v.qty_yes,
            "qty_no": v.qty_no,
            "avg_yes": v.cost_yes * SCALE // v.qty_yes if v.qty_yes else 0,
            "avg_no": v.cost_no * SCALE // v.qty_no if v.qty_no else 0,
            "pairs": v.pairs,
            "pair_cost": pf.pair_cost(m.info.market, self.id),
            "pair_cost_with_fees": with_fees.pair_cost,
            "locked_profit": pf.locked_profit(m.info.market, self.id),
            "unpaired": u,
            "unpaired_cost": -(-abs(u) * lead_c // lead_q) if u and lead_q else 0,
            "fees": v.fees,
        }

    def report(self, market: str | None = None) -> dict[str, Any]:
        """Per market (or one market): position figures (base units) and order counters."""
        out = {}
        for k, m in sorted(self._markets.items()):
            if market is not None and k != market:
                continue
            if not m.report.get("settled"):
                self._refresh_report(m)
            out[k] = {**m.report, **m.counters, "done": m.done, "stopped": m.stopped}
        return out if market is None else out.get(market, {})


def _avg(a: Avg) -> int:
    """Display value of an average (rounded up)."""
    return -(-a[0] * SCALE // a[1])
