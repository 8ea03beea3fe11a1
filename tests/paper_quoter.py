"""A test strategy for what-if replays on the paper executor: it quotes both sides of every
book through the execution modes (post at the touch, post-then-cross out of a position), so a
replay exercises taker and maker fills, queue positions, cancels and the modes' timers."""

from __future__ import annotations

from polybot.events import BookDelta, BookSnapshot, TimerFired
from polybot.strategy import Strategy, StrategyParams, Units


class Quoter(Strategy):
    name = "test_quoter"

    class Params(StrategyParams):
        size: Units = Units(10_000_000)
        max_position: Units = Units(30_000_000)
        requote_s: float = 4.0
        exit_after_s: float = 3.0

    def on_start(self) -> None:
        self.ctx.subscribe(BookSnapshot, self.on_book)
        self.ctx.subscribe(BookDelta, self.on_book)

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        book = self.ctx.books.get(ev.asset_id)
        if book is None or not book.healthy or not (book.best_bid and book.best_ask):
            return
        if self.ctx.open_orders(ev.asset_id):
            return
        p = self.params
        held = self.ctx.position(ev.asset_id)
        if held >= p.max_position:
            # get out: rest at the ask, then take the bid (down to two ticks under it)
            tick = book.tick_size or 10_000
            self.ctx.execute(ev.asset_id, "SELL", held, "post_then_cross", timeout_s=p.exit_after_s,
                             max_price=max(tick, book.best_bid - 2 * tick))  # fmt: skip
            return
        d = self.ctx.execute(ev.asset_id, "BUY", p.size, "post")
        if d.approved and d.client_ids:
            self.ctx.set_timer("requote:" + d.client_ids[0], delay_ns=int(p.requote_s * 1e9))

    def on_timer(self, ev: TimerFired) -> None:
        if ev.name.startswith("requote:"):
            self.ctx.cancel(ev.name.split(":", 1)[1], "requote")
