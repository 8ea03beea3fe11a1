"""The paper executor: deterministic fills grounded in the local book and the public prints.

It answers synchronously through ``kernel.emit`` (a simulated executor), so a what-if replay
recomputes every answer identically, and its state (resting orders, queue positions, balances)
is part of the kernel's snapshot.

**Arrival.** An order reaches the book ``latency_ms`` after submit (in kernel time: a timer, so
replay fires it before the first input at or after that moment), or at once. There it is
checked like the venue would (tick grid, price inside (tick, 1 - tick), minimum size for a
resting order, $1 for a marketable one, post-only only with GTC/GTD, GTD expiry; see
:mod:`.rules`) and against the paper balance: a BUY reserves its worst-case cost (notional at
the limit plus the taker fee there), a SELL reserves the shares, and a SELL of shares not held is
refused (``not enough balance / allowance``, as the venue says).

**Taking.** A marketable order walks the opposite side level by level up to its limit, at each
level's price, paying the taker fee of the market's schedule. FOK fills whole or is refused; FAK
fills what is there and cancels the rest; GTC/GTD rests the remainder. Liquidity the paper
orders took is remembered per level (the recorded book does not show our trades), so a second
order does not take the same shares again; that memory shrinks as the visible level shrinks.

**Resting and the queue.** A resting order joins the back of the queue at its price: ``ahead`` is
the visible size there when it arrives. Every decrease of that level advances it (decreases are
assumed to come from the front: an optimistic model of cancels). A trade fills it only once the
queue ahead is gone: on Polymarket the level shrink of a trade arrives (``book``/``price_change``)
before its ``last_trade_price`` print, so each level keeps two ledgers, shrink not yet explained by
a print and print volume not yet seen as a shrink, and every real trade is counted once, in
whichever order the two arrive. A print *through* the order's price (a taker selling below our
bid) fills it outright: the taker would have met it first. The book is unified: a NO print at
``1 - p`` is a trade against YES bids at ``p``, so prints of the complement token are mirrored.
When the visible opposite side moves through a resting order (an ask at or below our bid), the
order fills as the maker at its own price against that liquidity.

**Matching delay.** On an in-play sports market (its ``MarketInfo.sports.delay_ms`` > 0, the
game started: ``ts >= sports.start_ts``) the venue holds a marketable order back for that delay
before matching it (it answers ``delayed``). The paper executor does the same: the order is
accepted (``OrderAccepted(delayed=True)``) and matched ``delay_ms`` later against the book as it
is *then*: a FOK that no longer fills whole is killed, a FAK takes what is left at its limit, a
GTC/GTD rests what does not cross. So a replay never fills at a price the delay would have moved
away from. A cancel during the delay cancels it. ``match_delay = "off"`` disables the model.

Fills of resting orders are maker fills: no fee, and an estimated rebate (the market's rebate
share of the fee-equivalent; the venue pays it daily). Everything is deterministic: trade ids
count, iteration follows arrival order, no clock or randomness is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from loguru import logger

from ..bus import PRIORITY_EXECUTOR
from ..events import (
    BookDelta,
    BookSnapshot,
    FeeSchedule,
    MarketResolved,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    TimerFired,
    TradePrint,
)
from ..params import units_param
from ..units import SCALE
from .base import Executor
from .rules import FeeModel, check_order, fill_fee, max_buy_cost

if TYPE_CHECKING:  # pragma: no cover
    from ..book import OrderBook
    from ..kernel import Kernel
    from .orders import Order

OWNER = "exec.paper"  # timer owner (not a valid strategy name)
GTD_BUFFER_NS = 60 * 1_000_000_000  # the venue's one-minute security threshold on expiration
DEFAULT_TICK = 10_000
DEFAULT_MIN_SIZE = 5_000_000
NO_BALANCE = "not enough balance / allowance"


@attrs.define(slots=True, eq=False)
class Resting:
    """A paper order resting on the book of ``asset_id`` (BUY on the bid side, SELL on the ask)."""

    client_id: str
    asset_id: str
    market: str
    side: str
    price: int
    remaining: int
    ahead: int  # visible size queued in front of us at our price
    overflow: int = 0  # level shrink past our queue position, not yet explained by a print
    seq: int = 0
    expire_at: int = 0


@attrs.define(slots=True, eq=False)
class Level:
    """One price level of one asset's book where paper orders rest, with its trade ledgers."""

    visible: int
    orders: list[Resting] = attrs.field(factory=list)
    shrink_unexplained: int = 0
    print_unexplained: int = 0


class PaperExecutor(Executor):
    """Paper trading against the local book. Params (TOML ``[executor] params``):

    * ``cash``: starting collateral (pUSD), e.g. ``"1000"``;
    * ``latency_ms``: time for an order or a cancel to reach the book (kernel time);
    * ``default_fee_rate`` / ``default_fee_exponent``: the fee schedule of a market missing
      from the catalog (a warning is logged once per market);
    * ``check_balance``: refuse orders the paper balance cannot cover (default true);
    * ``match_delay``: ``"market"`` (default) models the venue's matching delay of marketable
      orders on in-play sports markets; ``"off"`` matches them at once.
    """

    name = "paper"
    asynchronous = False

    def __init__(self, cash: str | int | float = "1000", latency_ms: float = 0.0,
                 default_fee_rate: str | float = "0", default_fee_exponent: int = 1,
                 check_balance: bool = True, match_delay: str = "market") -> None:  # fmt: skip
        super().__init__()
        self.start_cash = units_param("cash", cash)
        if not isinstance(latency_ms, (int, float)) or isinstance(latency_ms, bool) or latency_ms < 0:
            raise ValueError(f"latency_ms: must be a number >= 0, got {latency_ms!r}")
        self.latency_ns = int(round(latency_ms * 1_000_000))
        rate = units_param("default_fee_rate", default_fee_rate)
        if rate > SCALE:
            raise ValueError(f"default_fee_rate: must be in [0, 1], got {default_fee_rate!r}")
        if not isinstance(default_fee_exponent, int) or default_fee_exponent < 0:
            raise ValueError(f"default_fee_exponent: must be an integer >= 0, got {default_fee_exponent!r}")
        if not isinstance(check_balance, bool):
            raise ValueError(f"check_balance: must be true or false, got {check_balance!r}")
        self.fees = FeeModel(FeeSchedule(rate_ppm=rate, exponent=default_fee_exponent) if rate else None)
        self.check_balance = check_balance
        if match_delay not in ("market", "off"):
            raise ValueError(f"match_delay: must be \"market\" or \"off\", got {match_delay!r}")
        self.match_delay = match_delay == "market"
        self._subscribed: set[str] = set()
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        self.cash = self.start_cash  # free collateral (reservations excluded)
        self.reserved: dict[str, int] = {}  # client_id -> collateral reserved (BUY)
        self.shares: dict[str, int] = {}  # asset -> shares held (reserved ones included)
        self.share_res: dict[str, int] = {}  # client_id -> shares reserved (SELL)
        self.share_res_by_asset: dict[str, int] = {}
        self.levels: dict[tuple[str, str, int], Level] = {}
        self.resting: dict[str, Resting] = {}
        self.asset_orders: dict[str, dict[str, Resting]] = {}  # asset -> its resting orders
        self.consumed: dict[tuple[str, str, int], int] = {}  # (asset, "BID"|"ASK", price) -> taken
        self.arriving: dict[str, int] = {}  # client_id -> arrival time (latency)
        self.cancelling: dict[str, int] = {}  # client_id -> time the cancel reaches the book
        self.delayed: dict[str, int] = {}  # client_id -> when its delayed matching happens
        self.seq = 0
        self.trades = 0

    def to_state(self) -> dict[str, Any]:
        return {
            "cash": self.cash,
            "reserved": dict(sorted(self.reserved.items())),
            "shares": dict(sorted(self.shares.items())),
            "share_res": dict(sorted(self.share_res.items())),
            "levels": [
                [a, s, p, lv.visible, lv.shrink_unexplained, lv.print_unexplained,
                 [attrs.asdict(r) for r in lv.orders]]  # fmt: skip
                for (a, s, p), lv in sorted(self.levels.items())
            ],
            "consumed": [[a, s, p, v] for (a, s, p), v in sorted(self.consumed.items())],
            "arriving": dict(sorted(self.arriving.items())),
            "cancelling": dict(sorted(self.cancelling.items())),
            "delayed": dict(sorted(self.delayed.items())),
            "seq": self.seq,
            "trades": self.trades,
        }

    def restore(self, st: dict[str, Any]) -> None:
        self.reset()
        self.cash = st["cash"]
        self.reserved = dict(st["reserved"])
        self.shares = dict(st["shares"])
        self.share_res = dict(st["share_res"])
        for a, s, p, vis, su, pu, orders in st["levels"]:
            lv = Level(vis, [Resting(**o) for o in orders], su, pu)
            self.levels[(a, s, p)] = lv
            for r in lv.orders:
                self.resting[r.client_id] = r
                self.asset_orders.setdefault(a, {})[r.client_id] = r
        self.consumed = {(a, s, p): v for a, s, p, v in st["consumed"]}
        self.arriving = dict(st["arriving"])
        self.cancelling = dict(st["cancelling"])
        self.delayed = dict(st.get("delayed", {}))
        self.seq = st["seq"]
        self.trades = st["trades"]
        k = self.kernel
        for cid in self.share_res:
            o = k.orders.get(cid) if k is not None else None
            if o is not None:
                a = o.asset_id
                self.share_res_by_asset[a] = self.share_res_by_asset.get(a, 0) + self.share_res[cid]
        for a in sorted(set(self.asset_orders) | {a for a, _s, _p in self.consumed}):
            self._watch(a)

    # ------------------------------------------------------------------ wiring

    def attach(self, kernel: Kernel) -> None:
        super().attach(kernel)
        bus = kernel.bus
        bus.subscribe(TradePrint, self._on_print, priority=PRIORITY_EXECUTOR)
        bus.subscribe(MarketResolved, self._on_resolved, priority=PRIORITY_EXECUTOR)
        bus.subscribe(TimerFired, self._on_timer, priority=PRIORITY_EXECUTOR)
        for a in sorted(self._subscribed):
            self._subscribed.discard(a)
            self._watch(a)

    def detach(self) -> None:
        k = self.kernel
        if k is None:
            return
        bus = k.bus
        for h in (self._on_print, self._on_resolved, self._on_timer, self._on_delta, self._on_snapshot):
            bus.unsubscribe(h)

    def _watch(self, asset_id: str) -> None:
        """Book events of ``asset_id`` reach this executor only while it has orders or taken
        liquidity there: other assets cost nothing on the hot path."""
        if asset_id in self._subscribed or self.kernel is None:
            return
        self._subscribed.add(asset_id)
        bus = self.kernel.bus
        bus.subscribe(BookDelta, self._on_delta, key=asset_id, priority=PRIORITY_EXECUTOR)
        bus.subscribe(BookSnapshot, self._on_snapshot, key=asset_id, priority=PRIORITY_EXECUTOR)

    def _unwatch(self, asset_id: str) -> None:
        if asset_id not in self._subscribed or self.asset_orders.get(asset_id):
            return
        if any(k[0] == asset_id for k in self.consumed):
            return
        self._subscribed.discard(asset_id)
        bus = self.kernel.bus  # type: ignore[union-attr]
        bus.unsubscribe(self._on_delta, BookDelta, key=asset_id)
        bus.unsubscribe(self._on_snapshot, BookSnapshot, key=asset_id)

    # ------------------------------------------------------------------ executor interface

    def submit(self, order: Order) -> None:
        k = self.kernel
        assert k is not None
        now = k.clock.now()
        reason = self._reserve(order)
        if reason:
            self._reject(order, reason)
            return
        if self.latency_ns:
            self.arriving[order.client_id] = now + self.latency_ns
            k.timers.set(OWNER, "arrive:" + order.client_id, now + self.latency_ns)
        else:
            self._arrive(order)

    def cancel(self, order: Order) -> None:
        k = self.kernel
        assert k is not None
        if self.latency_ns:
            if order.client_id in self.cancelling:
                return  # a cancel is already on its way: the earlier one arrives first
            at = k.clock.now() + self.latency_ns
            self.cancelling[order.client_id] = at
            k.timers.set(OWNER, "cancel:" + order.client_id, at)
        else:
            self._cancel_now(order.client_id, "cancelled")

    # ------------------------------------------------------------------ balances

    def _fee_schedule(self, order: Order) -> FeeSchedule | None:
        k = self.kernel
        assert k is not None
        info = k.catalog.for_asset(order.asset_id)
        return self.fees.schedule(info, order.intent.market or order.asset_id)

    def _reserve(self, order: Order) -> str:
        it = order.intent
        if it.side == "BUY":
            need = max_buy_cost(it.size, it.price, self._fee_schedule(order))
            if self.check_balance and need > self.cash:
                return f"{NO_BALANCE}: needs {need} base units of collateral, {self.cash} free"
            self.cash -= need
            self.reserved[order.client_id] = need
            return ""
        a = it.asset_id
        free = self.shares.get(a, 0) - self.share_res_by_asset.get(a, 0)
        if self.check_balance and it.size > free:
            return f"{NO_BALANCE}: sell of {it.size} shares with {max(free, 0)} free"
        self.share_res[order.client_id] = it.size
        self.share_res_by_asset[a] = self.share_res_by_asset.get(a, 0) + it.size
        return ""

    def _release(self, order: Order, remaining: int) -> None:
        """Keep the reservation of ``remaining`` shares of ``order`` and free the rest."""
        cid = order.client_id
        it = order.intent
        if it.side == "BUY":
            old = self.reserved.pop(cid, 0)
            keep = max_buy_cost(remaining, it.price, self._fee_schedule(order)) if remaining > 0 else 0
            keep = min(keep, old)
            self.cash += old - keep
            if keep:
                self.reserved[cid] = keep
        else:
            old = self.share_res.pop(cid, 0)
            keep = min(old, max(remaining, 0))
            a = it.asset_id
            self.share_res_by_asset[a] = self.share_res_by_asset.get(a, 0) - (old - keep)
            if not self.share_res_by_asset[a]:
                del self.share_res_by_asset[a]
            if keep:
                self.share_res[cid] = keep
            if old > keep:  # shares no longer offered may make pairs now
                self._net_pairs(a)

    def _net_pairs(self, asset_id: str) -> None:
        """A venue with one net position per market (``MarketInfo.netting``) turns a YES+NO
        pair into 1 of collateral as soon as a buy makes one, as the kernel's portfolio does
        (shares held for resting sells stay; they pair once the sell is done)."""
        k = self.kernel
        assert k is not None
        info = k.catalog.for_asset(asset_id)
        if info is None or not info.netting or len(info.asset_ids) != 2:
            return
        a, b = info.asset_ids
        sh, res = self.shares, self.share_res_by_asset
        n = min(sh.get(a, 0) - res.get(a, 0), sh.get(b, 0) - res.get(b, 0))
        if n <= 0:
            return
        for x in (a, b):
            sh[x] -= n
            if not sh[x]:
                del sh[x]
        self.cash += n

    # ------------------------------------------------------------------ answers

    def _common(self, order: Order) -> dict[str, Any]:
        return dict(client_id=order.client_id, strategy=order.strategy, asset_id=order.asset_id,
                    venue_order_id="paper-" + order.client_id)  # fmt: skip

    def _reject(self, order: Order, reason: str) -> None:
        k = self.kernel
        assert k is not None
        self._release(order, 0)
        k.emit(OrderRejected(ts=k.clock.now(), reason=reason, **self._common(order)))

    def _finish(self, order: Order, reason: str, expired: bool = False) -> None:
        """The order's remainder leaves the book (cancelled / expired / killed)."""
        k = self.kernel
        assert k is not None
        self._release(order, 0)
        if expired:
            k.emit(OrderExpired(ts=k.clock.now(), **self._common(order)))
        else:
            k.emit(OrderCancelled(ts=k.clock.now(), reason=reason, **self._common(order)))

    def _fill(self, order: Order, price: int, size: int, liquidity: str, remaining_after: int) -> None:
        k = self.kernel
        assert k is not None
        it = order.intent
        fee, rebate = fill_fee(liquidity, size, price, self._fee_schedule(order), it.side)
        notional = price * size // SCALE
        a = it.asset_id
        cid = order.client_id
        if it.side == "BUY":
            # the reservation pays for the fill; what is left of it covers the remainder
            res = self.reserved.get(cid, 0)
            spend = notional + fee
            take = min(res, spend)
            self.reserved[cid] = res - take
            self.cash -= spend - take
            self.shares[a] = self.shares.get(a, 0) + size
            self._net_pairs(a)
        else:
            r = self.share_res.get(cid, 0)
            t = min(r, size)
            self.share_res[cid] = r - t
            self.share_res_by_asset[a] = self.share_res_by_asset.get(a, 0) - t
            if not self.share_res_by_asset[a]:
                del self.share_res_by_asset[a]
            self.shares[a] = self.shares.get(a, 0) - size
            if not self.shares[a]:
                del self.shares[a]
            self.cash += notional - fee
        self.cash += rebate
        self.trades += 1
        cls = OrderFilled if remaining_after <= 0 else OrderPartiallyFilled
        k.emit(cls(ts=k.clock.now(), trade_id=f"paper-t{self.trades}", side=it.side, price=price, size=size,
                   liquidity=liquidity, fee=fee, rebate=rebate, market=it.market, leaves=max(remaining_after, 0),
                   **self._common(order)))  # type: ignore[arg-type]  # fmt: skip
        if remaining_after <= 0:
            self._release(order, 0)
        else:
            self._release(order, remaining_after)

    # ------------------------------------------------------------------ the book

    def _book(self, asset_id: str) -> OrderBook | None:
        return self.kernel.books.get(asset_id)  # type: ignore[union-attr]

    def _complement(self, asset_id: str) -> str | None:
        return self.kernel.catalog.complement(asset_id)  # type: ignore[union-attr]

    def _available(self, asset_id: str, bside: str, price: int, visible: int) -> int:
        return visible - self.consumed.get((asset_id, bside, price), 0)

    def _take(self, asset_id: str, bside: str, price: int, size: int) -> None:
        key = (asset_id, bside, price)
        self.consumed[key] = self.consumed.get(key, 0) + size
        # the same liquidity seen from the complement's mirrored book
        comp = self._complement(asset_id)
        if comp is not None:
            mkey = (comp, "ASK" if bside == "BID" else "BID", SCALE - price)
            self.consumed[mkey] = self.consumed.get(mkey, 0) + size
            self._watch(comp)
        self._watch(asset_id)

    def _opposite(self, book: OrderBook, side: str, limit: int) -> list[tuple[int, int]]:
        """Levels a ``side`` order at ``limit`` can take, best first: (price, available)."""
        out = []
        if side == "BUY":
            for p, s in book.asks.items():
                if p > limit:
                    break
                av = self._available(book.asset_id, "ASK", p, s)
                if av > 0:
                    out.append((p, av))
        else:
            for p in reversed(book.bids):
                if p < limit:
                    break
                av = self._available(book.asset_id, "BID", p, book.bids[p])
                if av > 0:
                    out.append((p, av))
        return out

    # ------------------------------------------------------------------ arrival

    def _arrive(self, order: Order) -> None:
        k = self.kernel
        assert k is not None
        now = k.clock.now()
        it = order.intent
        book = self._book(it.asset_id)
        if book is None or not (book.bids or book.asks):
            self._reject(order, f"no order book for asset {it.asset_id}")
            return
        info = k.catalog.for_asset(it.asset_id)
        tick = book.tick_size or (info.tick_size if info is not None else DEFAULT_TICK)
        min_size = info.min_order_size if info is not None else DEFAULT_MIN_SIZE
        levels = self._opposite(book, it.side, it.price)
        marketable = bool(levels)
        reason = check_order(it, tick=tick, min_size=min_size, now=now, marketable=marketable)
        if reason:
            self._reject(order, reason)
            return
        market = info.market if info is not None else it.market
        if (info is not None and (info.closed or not info.accepting_orders)) or (market and market in k.catalog.resolved):
            self._reject(order, "market is not accepting orders (closed or resolved)")
            return
        if it.side == "BUY" and self.check_balance:
            # the fee schedule may have changed while the order travelled: cover the worst case
            # again, or refuse it like the venue would
            need = max_buy_cost(order.remaining, it.price, self._fee_schedule(order))
            have = self.reserved.get(order.client_id, 0)
            if need > have:
                if need - have > self.cash:
                    self._reject(order, f"{NO_BALANCE}: needs {need} base units of collateral, {have + self.cash} free")
                    return
                self.cash -= need - have
                self.reserved[order.client_id] = need
        if it.post_only and marketable:
            self._reject(order, "post-only order would cross the book")
            return
        delay = self._delay_ns(info, now) if marketable else 0
        if delay:
            k.emit(OrderAccepted(ts=now, delayed=True, **self._common(order)))
            self.delayed[order.client_id] = now + delay
            k.timers.set(OWNER, "match:" + order.client_id, now + delay)
            return
        remaining = order.remaining
        if it.tif == "FOK" and sum(av for _p, av in levels) < remaining:
            self._reject(order, "FOK order couldn't be fully filled: killed")
            return
        if it.tif == "FAK" and not marketable:
            self._reject(order, "no orders found to match with FAK order")
            return
        k.emit(OrderAccepted(ts=now, **self._common(order)))
        self._match(order, book, levels, now)

    def _delay_ns(self, info: Any, now: int) -> int:
        """The venue's matching delay for a marketable order now (0: none)."""
        if not self.match_delay or info is None:
            return 0
        sp = info.sports
        if sp is None or sp.delay_ms <= 0 or (sp.start_ts and now < sp.start_ts):
            return 0
        return sp.delay_ms * 1_000_000

    def _match_delayed(self, order: Order) -> None:
        """The delay is over: match against the book as it is now (accepted already, so what
        does not fill is cancelled, never rejected)."""
        k = self.kernel
        assert k is not None
        now = k.clock.now()
        it = order.intent
        book = self._book(it.asset_id)
        levels = self._opposite(book, it.side, it.price) if book is not None else []
        if it.tif == "FOK" and sum(av for _p, av in levels) < order.remaining:
            self._finish(order, "FOK order couldn't be fully filled after the matching delay: killed")
            return
        if it.tif == "FAK" and not levels:
            self._finish(order, "no orders found to match with FAK order after the matching delay")
            return
        if book is None:
            self._finish(order, f"no order book for asset {it.asset_id} after the matching delay")
            return
        self._match(order, book, levels, now)

    def _match(self, order: Order, book: OrderBook, levels: list[tuple[int, int]], now: int) -> None:
        """Take ``levels`` (best first) up to the order's size, then kill (FOK/FAK) or rest
        the remainder."""
        it = order.intent
        remaining = order.remaining
        bside = "ASK" if it.side == "BUY" else "BID"
        for p, av in levels:
            q = min(av, remaining)
            remaining -= q
            self._take(it.asset_id, bside, p, q)
            self._fill(order, p, q, "taker", remaining)
            if not remaining:
                return
        if it.tif in ("FOK", "FAK"):
            self._finish(order, "FAK remainder cancelled")
            return
        self._rest(order, book, remaining, now)

    def _rest(self, order: Order, book: OrderBook, remaining: int, now: int) -> None:
        it = order.intent
        bside = "BID" if it.side == "BUY" else "ASK"
        side_levels = book.bids if bside == "BID" else book.asks
        visible = side_levels.get(it.price, 0)
        key = (it.asset_id, bside, it.price)
        lv = self.levels.get(key)
        if lv is None:
            lv = self.levels[key] = Level(visible)
        self.seq += 1
        expire_at = it.expire_ts - GTD_BUFFER_NS if it.tif == "GTD" and it.expire_ts else 0
        r = Resting(order.client_id, it.asset_id, it.market, it.side, it.price, remaining, visible,
                    seq=self.seq, expire_at=expire_at)  # fmt: skip
        lv.orders.append(r)
        self.resting[r.client_id] = r
        self.asset_orders.setdefault(r.asset_id, {})[r.client_id] = r
        self._watch(r.asset_id)
        if expire_at:
            self.kernel.timers.set(OWNER, "expire:" + r.client_id, max(expire_at, now))  # type: ignore[union-attr]

    def _unrest(self, r: Resting) -> None:
        bside = "BID" if r.side == "BUY" else "ASK"
        key = (r.asset_id, bside, r.price)
        lv = self.levels.get(key)
        if lv is not None:
            lv.orders = [o for o in lv.orders if o is not r]
            if not lv.orders:
                del self.levels[key]
        self.resting.pop(r.client_id, None)
        mine = self.asset_orders.get(r.asset_id)
        if mine is not None:
            mine.pop(r.client_id, None)
            if not mine:
                del self.asset_orders[r.asset_id]
                self._unwatch(r.asset_id)
        self.kernel.timers.cancel(OWNER, "expire:" + r.client_id)  # type: ignore[union-attr]

    def _cancel_now(self, client_id: str, reason: str) -> None:
        k = self.kernel
        assert k is not None
        o = k.orders.get(client_id)
        if o is None:
            return
        if client_id in self.arriving:  # never reached the book
            del self.arriving[client_id]
            k.timers.cancel(OWNER, "arrive:" + client_id)
            self._finish(o, reason)
            return
        if client_id in self.delayed:  # held back by the matching delay: never matched
            del self.delayed[client_id]
            k.timers.cancel(OWNER, "match:" + client_id)
            self._finish(o, reason)
            return
        r = self.resting.get(client_id)
        if r is None:
            return  # already filled, killed or expired: nothing to cancel (the venue says so too)
        self._unrest(r)
        self._finish(o, reason)

    def _maker_fill(self, r: Resting, size: int) -> None:
        if size <= 0:
            return
        o = self.kernel.orders.get(r.client_id)  # type: ignore[union-attr]
        r.remaining -= size
        if r.remaining <= 0:
            self._unrest(r)
        if o is not None:
            self._fill(o, r.price, size, "maker", r.remaining)

    # ------------------------------------------------------------------ market events

    def _on_timer(self, ev: TimerFired) -> None:
        if ev.owner != OWNER:
            return
        what, _, cid = ev.name.partition(":")
        k = self.kernel
        assert k is not None
        if what == "arrive":
            if self.arriving.pop(cid, None) is not None:
                o = k.orders.get(cid)
                if o is not None:
                    self._arrive(o)
        elif what == "match":
            if self.delayed.pop(cid, None) is not None:
                o = k.orders.get(cid)
                if o is not None:
                    self._match_delayed(o)
        elif what == "cancel":
            if self.cancelling.pop(cid, None) is not None:
                self._cancel_now(cid, "cancelled")
        elif what == "expire":
            r = self.resting.get(cid)
            o = k.orders.get(cid)
            if r is not None and o is not None:
                self._unrest(r)
                self._finish(o, "expired", expired=True)

    def _on_delta(self, ev: BookDelta) -> None:
        key = (ev.asset_id, ev.side, ev.price)
        consumed = self.consumed
        if consumed:
            c = consumed.get(key)
            if c is not None:
                if ev.size < c:
                    if ev.size:
                        consumed[key] = ev.size
                    else:
                        del consumed[key]
                        if ev.asset_id not in self.asset_orders:
                            self._unwatch(ev.asset_id)
        lv = self.levels.get(key)
        if lv is not None:
            d = lv.visible - ev.size
            lv.visible = ev.size
            if d > 0:
                self._shrink(lv, d)
        if ev.size > 0 and ev.asset_id in self.asset_orders:
            self._cross(ev.asset_id, "ASK" if ev.side == "ASK" else "BID", ev.price)

    def _on_snapshot(self, ev: BookSnapshot) -> None:
        a = ev.asset_id
        book = self._book(a)
        if book is None:
            return
        for key in [k for k in self.consumed if k[0] == a]:
            lv_size = (book.bids if key[1] == "BID" else book.asks).get(key[2], 0)
            if lv_size < self.consumed[key]:
                if lv_size:
                    self.consumed[key] = lv_size
                else:
                    del self.consumed[key]
        for (aa, bside, p), lv in list(self.levels.items()):
            if aa != a:
                continue
            vis = (book.bids if bside == "BID" else book.asks).get(p, 0)
            d = lv.visible - vis
            lv.visible = vis
            if d > 0:
                self._shrink(lv, d)
        if a in self.asset_orders:
            if book.best_ask:
                self._cross(a, "ASK", book.best_ask)
            if book.best_bid:
                self._cross(a, "BID", book.best_bid)
        if a not in self.asset_orders:
            self._unwatch(a)

    def _shrink(self, lv: Level, d: int) -> None:
        """The visible size at a level where we rest fell by ``d``."""
        x = min(d, lv.print_unexplained)  # already counted when its print arrived
        lv.print_unexplained -= x
        d -= x
        if d <= 0:
            return
        lv.shrink_unexplained += d
        for r in lv.orders:
            before = r.ahead
            r.ahead = before - d if before > d else 0
            if d > before:
                r.overflow += d - before

    def _cross(self, asset_id: str, bside: str, price: int) -> None:
        """Visible liquidity at ``price`` on side ``bside`` may have crossed resting orders."""
        side = "BUY" if bside == "ASK" else "SELL"
        mine = self.asset_orders.get(asset_id)
        if not mine:
            return
        orders = [r for r in mine.values() if r.side == side and (r.price >= price if side == "BUY" else r.price <= price)]
        if not orders:
            return
        orders.sort(key=(lambda r: (-r.price, r.seq)) if side == "BUY" else (lambda r: (r.price, r.seq)))
        book = self._book(asset_id)
        if book is None or not book.healthy:
            return  # a crossed or gapped book is bad data, not liquidity: no fills until it resyncs
        for r in orders:
            if r.remaining <= 0:
                continue
            for p, av in self._opposite(book, side, r.price):
                q = min(av, r.remaining)
                self._take(asset_id, bside, p, q)
                self._maker_fill(r, q)
                if r.remaining <= 0:
                    break

    def _on_print(self, ev: TradePrint) -> None:
        if not self.resting:
            return
        x = ev.asset_id
        comp = self._complement(x)
        q = ev.price
        s = ev.size
        # (asset, side of our orders it can fill, price in that asset's terms)
        targets: list[tuple[str, str, int]] = []
        if ev.side in ("SELL", None):  # a taker sold x: our bids on x at >= q
            targets.append((x, "BUY", q))
        if ev.side in ("BUY", None):  # a taker bought x: our asks on x at <= q
            targets.append((x, "SELL", q))
        if comp is not None:
            if ev.side in ("BUY", None):  # buying x at q = selling comp at 1 - q: comp bids
                targets.append((comp, "BUY", SCALE - q))
            if ev.side in ("SELL", None):
                targets.append((comp, "SELL", SCALE - q))
        budget = s
        for asset, side, price in targets:
            if budget <= 0:
                break
            if asset not in self.asset_orders:
                continue
            budget = self._print_hits(asset, side, price, budget)

    def _print_hits(self, asset: str, side: str, price: int, volume: int) -> int:
        """A trade of ``volume`` at ``price`` against our ``side`` orders on ``asset``; returns
        the volume not used by them."""
        better = [r for r in self.asset_orders.get(asset, {}).values() if r.side == side
                  and (r.price > price if side == "BUY" else r.price < price)]  # fmt: skip
        better.sort(key=(lambda r: (-r.price, r.seq)) if side == "BUY" else (lambda r: (r.price, r.seq)))
        for r in better:  # the taker went through our price: it would have met us first
            if volume <= 0:
                return 0
            r.ahead = 0
            f = min(r.remaining, volume)
            volume -= f
            self._maker_fill(r, f)
        lv = self.levels.get((asset, "BID" if side == "BUY" else "ASK", price))
        if lv is None or volume <= 0:
            return volume
        y = min(volume, lv.shrink_unexplained)  # this trade's shrink already arrived
        lv.shrink_unexplained -= y
        z = volume - y  # its shrink is still to come
        lv.print_unexplained += z
        used = 0
        for r in list(lv.orders):
            avail = min(y, r.overflow)
            r.overflow -= avail
            if z > r.ahead:
                avail += z - r.ahead
                r.ahead = 0
            else:
                r.ahead -= z
            f = min(r.remaining, avail - used)
            if f > 0:
                used += f
                self._maker_fill(r, f)
        return max(volume - used, 0)

    def _on_resolved(self, ev: MarketResolved) -> None:
        k = self.kernel
        assert k is not None
        assets = set(ev.asset_ids)
        info = k.catalog.market(ev.market)
        if not assets and info is not None:
            assets = set(info.asset_ids)
        for r in sorted(self.resting.values(), key=lambda r: r.seq):
            if r.market == ev.market or r.asset_id in assets:
                o = k.orders.get(r.client_id)
                self._unrest(r)
                if o is not None:
                    self._finish(o, "market resolved")
        for pending, timer in ((self.arriving, "arrive:"), (self.delayed, "match:")):
            for cid in sorted(pending):
                o = k.orders.get(cid)
                if o is not None and (o.intent.market == ev.market or o.asset_id in assets):
                    del pending[cid]
                    k.timers.cancel(OWNER, timer + cid)
                    self._finish(o, "market resolved")
        for a in sorted(assets):
            held = self.shares.pop(a, 0)
            if held > 0 and a == ev.winning_asset_id:
                self.cash += held
            for key in [key for key in self.consumed if key[0] == a]:
                del self.consumed[key]
            self._unwatch(a)
        if ev.asset_ids:
            logger.debug("paper: market {} resolved, balances settled", ev.market)
