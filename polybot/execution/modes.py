"""Execution modes: how a strategy wants an order worked. They build ordinary intents that go
through ``submit()`` (risk chain, write-ahead journal, executor), so they behave the same on the
paper and the live executor, and in replay.

* ``cross`` (taker): a FAK (or FOK) at ``limit`` (default: the current touch): take what is there
  now, never rest.
* ``post`` (maker): a post-only GTC (GTD with ``expire_ts``) ``offset_ticks`` behind the touch
  on the order's own side (a negative offset steps inside the spread), never crossing: a BUY is
  kept at least a tick under the best ask and at or under ``limit``.
* ``post_then_cross``: post as above; after ``timeout_s`` cancel what is left and, once the
  venue confirms the cancel (so no share is bought twice), take the remainder with a FAK at
  ``max_price`` (BUY: the highest price to pay; SELL: the lowest to accept).

Prices come from the kernel's book of the asset at the time of the call; tick size from the book,
else the catalog. The modes' work in progress is part of the kernel's snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from ..bus import PRIORITY_EXECUTIONS
from ..events import OrderEvent, OrderIntent, TimerFired
from ..risk import LOT, Decision, reject
from ..units import SCALE

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel

Mode = Literal["cross", "post", "post_then_cross"]
MODES = ("cross", "post", "post_then_cross")
OWNER = "exec.modes"
DEFAULT_TICK = 10_000


@attrs.define
class Working:
    """A post-then-cross in progress."""

    strategy: str
    asset_id: str
    market: str
    side: str
    size: int
    max_price: int
    child: str  # the resting (maker) order
    phase: str = "posted"  # posted -> cancelling -> crossed | done
    cross_child: str = ""
    note: str = ""


class Executions:
    """The kernel's execution-mode engine (``kernel.executions``)."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.working: dict[str, Working] = {}  # child client id -> its work
        kernel.bus.subscribe(OrderEvent, self._on_order, priority=PRIORITY_EXECUTIONS)
        kernel.bus.subscribe(TimerFired, self._on_timer, priority=PRIORITY_EXECUTIONS)

    # ------------------------------------------------------------------ pricing

    def _tick(self, asset_id: str) -> int:
        b = self.k.books.get(asset_id)
        if b is not None and b.tick_size:
            return b.tick_size
        info = self.k.catalog.for_asset(asset_id)
        return info.tick_size if info is not None else DEFAULT_TICK

    def post_price(self, asset_id: str, side: str, offset_ticks: int = 0, limit: int | None = None) -> int:
        """The maker price for ``side``: ``offset_ticks`` behind the touch, never crossing; 0 if
        there is no book to price from."""
        b = self.k.books.get(asset_id)
        if b is None or not (b.best_bid or b.best_ask):
            return 0
        tick = self._tick(asset_id)
        if side == "BUY":
            ref = b.best_bid or b.best_ask - tick
            p = ref - offset_ticks * tick
            if b.best_ask:
                p = min(p, b.best_ask - tick)
            if limit is not None:
                p = min(p, limit - limit % tick)
            return p if tick <= p <= SCALE - tick else 0
        ref = b.best_ask or b.best_bid + tick
        p = ref + offset_ticks * tick
        if b.best_bid:
            p = max(p, b.best_bid + tick)
        if limit is not None:
            p = max(p, -(-limit // tick) * tick)
        return p if tick <= p <= SCALE - tick else 0

    # ------------------------------------------------------------------ the entry point

    def execute(self, strategy: str, asset_id: str, side: str, size: int, mode: Mode = "cross", *,
                limit: int | None = None, offset_ticks: int = 0, timeout_s: float = 10.0,
                max_price: int | None = None, tif: str | None = None, expire_ts: int = 0,
                market: str = "", note: str = "") -> Decision:  # fmt: skip
        """Work ``size`` shares of ``asset_id`` in ``mode``; returns the risk decision of the
        order sent now (a reject with validator ``execution`` if it cannot be priced)."""
        if mode not in MODES:
            return reject("execution", f"unknown execution mode {mode!r} (one of {', '.join(MODES)})")
        if side not in ("BUY", "SELL"):
            return reject("execution", f"side must be BUY or SELL, not {side!r}")
        size -= size % LOT
        if size <= 0:
            return reject("execution", "size rounds to 0 shares")
        b = self.k.books.get(asset_id)
        market = market or (b.market if b is not None else "")
        if mode == "cross":
            price = limit
            if price is None:
                price = (b.best_ask if side == "BUY" else b.best_bid) if b is not None else 0
            if not price:
                return reject("execution", f"no {'ask' if side == 'BUY' else 'bid'} to cross on {asset_id}")
            ftif = tif or "FAK"
            if ftif not in ("FAK", "FOK"):
                return reject("execution", "cross takes FAK or FOK")
            it = OrderIntent(strategy=strategy, asset_id=asset_id, market=market, side=side, price=price,  # type: ignore[arg-type]
                             size=size, tif=ftif, note=note or "cross")  # type: ignore[arg-type]  # fmt: skip
            return self.k.submit(strategy, it)
        price = self.post_price(asset_id, side, offset_ticks, limit)
        if not price:
            return reject("execution", f"no book to post on for {asset_id}")
        ptif = tif or ("GTD" if expire_ts else "GTC")
        if ptif not in ("GTC", "GTD"):
            return reject("execution", "post takes GTC or GTD")
        if mode == "post_then_cross":
            if max_price is None:
                return reject("execution", "post_then_cross needs max_price")
            if (side == "BUY" and max_price < price) or (side == "SELL" and max_price > price):
                return reject("execution", f"max_price {max_price} is worse for the counterparty than the post at {price}")
        it = OrderIntent(strategy=strategy, asset_id=asset_id, market=market, side=side, price=price,  # type: ignore[arg-type]
                         size=size, tif=ptif, post_only=True, expire_ts=expire_ts,  # type: ignore[arg-type]
                         note=note or mode)  # fmt: skip
        d = self.k.submit(strategy, it)
        if mode == "post_then_cross" and d.approved and d.client_ids:
            cid = d.client_ids[0]
            o = self.k.orders.get(cid)
            if o is not None and o.is_open:
                w = Working(strategy, asset_id, market, side, o.intent.size, max_price, cid, note=note)  # type: ignore[arg-type]
                self.working[cid] = w
                self.k.timers.set(OWNER, cid, self.k.clock.now() + int(timeout_s * 1e9))
        return d

    # ------------------------------------------------------------------ progress

    def _on_timer(self, ev: TimerFired) -> None:
        if ev.owner != OWNER:
            return
        w = self.working.get(ev.name)
        if w is None or w.phase != "posted":
            return
        o = self.k.orders.get(w.child)
        if o is None or not o.is_open:
            self._after_child(w)
            return
        w.phase = "cancelling"
        if not self.k.cancel(None, w.child, "post_then_cross timeout") and o.state != "cancel_pending":
            self._after_child(w)

    def _on_order(self, ev: OrderEvent) -> None:
        w = self.working.get(ev.client_id)
        if w is None:
            return
        o = self.k.orders.get(w.child)
        if o is None or o.is_open:
            return
        # the maker order is over (filled, cancelled, expired, rejected)
        self.k.timers.cancel(OWNER, w.child)
        if w.phase == "cancelling":
            self._after_child(w)
        else:
            w.phase = "done"
            del self.working[w.child]

    def _after_child(self, w: Working) -> None:
        self.working.pop(w.child, None)
        o = self.k.orders.get(w.child)
        filled = o.filled if o is not None else 0
        rest = w.size - filled
        rest -= rest % LOT
        w.phase = "done"
        if rest <= 0:
            return
        it = OrderIntent(strategy=w.strategy, asset_id=w.asset_id, market=w.market, side=w.side, price=w.max_price,  # type: ignore[arg-type]
                         size=rest, tif="FAK", note=w.note or "post_then_cross: cross")  # fmt: skip
        d = self.k.submit(w.strategy, it)
        if d.client_ids:
            w.cross_child = d.client_ids[0]
            w.phase = "crossed"

    def forget(self, strategy: str) -> int:
        """Drop a strategy's work in progress (the strategy is removed: a cross it would send
        after its maker order ends must not go out). Returns how many were dropped."""
        gone = [c for c, w in self.working.items() if w.strategy == strategy]
        for c in gone:
            del self.working[c]
            self.k.timers.cancel(OWNER, c)
        return len(gone)

    # ------------------------------------------------------------------ state

    def to_state(self) -> list[dict[str, Any]]:
        return [attrs.asdict(self.working[k]) for k in sorted(self.working)]

    def restore(self, st: list[dict[str, Any]]) -> None:
        self.working = {d["child"]: Working(**d) for d in st}
