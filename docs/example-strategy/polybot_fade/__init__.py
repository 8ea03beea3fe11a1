"""Fade: buy a dip below the recent average price, sell the bounce. A worked example of a
polybot strategy in its own package (docs/writing-a-strategy.md walks through it line by line).

For each asset it watches, it keeps an exponentially weighted average of the mid price. When the
best ask drops ``edge`` or more below that average, it buys ``size`` shares with a taker order
(FAK: whatever fills now, the rest is cancelled). It sells the position when the best bid is
``take_profit`` above its average cost, or after ``max_hold_s`` seconds at the best bid. It is an
example, not an edge.

    [strategies.fade]
    class = "fade"
    asset_ids = []          # [] = every asset with a book
    edge = "0.02"           # buy when best ask <= average mid - edge
    size = "10"             # shares per buy
    take_profit = "0.01"    # sell when best bid >= average cost + take_profit
    max_position = "30"     # shares held at most (per asset)
    half_life = 20          # book changes for the average to move halfway
    max_hold_s = 30.0       # then sell at the best bid anyway
"""

from __future__ import annotations

from polybot.events import BookDelta, BookSnapshot, OrderIntent, TimerFired
from polybot.strategy import Strategy, StrategyParams, Units

class Fade(Strategy):
    """Buy a dip below the recent average mid, sell at a take-profit or after a holding time."""

    name = "fade"

    class Params(StrategyParams):
        asset_ids: list[str] = []
        edge: Units = Units(20_000)
        size: Units = Units(10_000_000)
        take_profit: Units = Units(10_000)
        max_position: Units = Units(30_000_000)
        half_life: int = 20
        max_hold_s: float = 30.0

    def on_start(self) -> None:
        keys = self.params.asset_ids or [None]  # None: every asset
        for key in keys:
            self.ctx.subscribe(BookSnapshot, self.on_book, key=key)
            self.ctx.subscribe(BookDelta, self.on_book, key=key)
        self.avg: dict[str, int] = {}  # asset -> average mid (millionths)
        self.trades = 0

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        book = self.ctx.books.get(ev.asset_id)
        if book is None or not book.healthy or not (book.best_bid and book.best_ask):
            return  # never trade on a book the kernel does not trust
        a = ev.asset_id
        mid = (book.best_bid + book.best_ask) // 2
        avg = self.avg.get(a, mid)
        # integer EWMA: move 1/(2 * half_life) of the way (about half way after half_life changes)
        self.avg[a] = avg + (mid - avg) // (2 * max(1, self.params.half_life))
        if self.ctx.open_orders(a):
            return  # one order at a time per asset
        held = self.ctx.position(a)
        p = self.params
        if held > 0:
            pos = self.ctx.holding(a)
            avg_cost = pos.avg_price if pos is not None else 0
            if book.best_bid >= avg_cost + p.take_profit:
                self.sell(a, book.best_bid, held, "take profit")
                return
        if book.best_ask <= avg - p.edge and held + p.size <= p.max_position:
            d = self.ctx.submit(OrderIntent(strategy=self.id, asset_id=a, market=book.market, side="BUY",
                                            price=book.best_ask, size=p.size, tif="FAK", note="dip"))
            if d.approved:
                self.trades += 1
                # the holding clock: sell at the bid after max_hold_s whatever happens
                self.ctx.set_timer(f"hold:{a}", delay_ns=int(p.max_hold_s * 1e9))

    def sell(self, asset_id: str, price: int, size: int, why: str) -> None:
        book = self.ctx.books.get(asset_id)
        self.ctx.submit(OrderIntent(strategy=self.id, asset_id=asset_id, market=book.market if book else "",
                                    side="SELL", price=price, size=size, tif="FAK", reduce_only=True, note=why))

    def on_timer(self, ev: TimerFired) -> None:
        a = ev.name.split(":", 1)[1]
        held = self.ctx.position(a)
        book = self.ctx.books.get(a)
        if held > 0 and book is not None and book.healthy and book.best_bid and not self.ctx.open_orders(a):
            self.sell(a, book.best_bid, held, "max hold")

    def snapshot(self) -> dict:
        return {"avg": self.avg, "trades": self.trades}

    def restore(self, state: dict) -> None:
        self.avg = {a: int(v) for a, v in state["avg"].items()}
        self.trades = int(state["trades"])
