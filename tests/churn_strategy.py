"""A strategy for restart tests: it keeps the executor busy. On every book change of its asset
it rests a bid a few ticks under the touch (at most ``max_open``, the oldest cancelled first) and
every ``take_every``-th change takes ``take_size`` shares at the ask, until ``max_position``."""

from __future__ import annotations

from polybot.events import BookDelta, BookSnapshot, OrderIntent
from polybot.strategy import Strategy, StrategyParams, Units


class Churn(Strategy):
    name = "churn"

    class Params(StrategyParams):
        asset_id: str = ""
        max_open: int = 4
        take_every: int = 7
        take_size: Units = Units(5_000_000)
        rest_size: Units = Units(5_000_000)
        max_position: Units = Units(200_000_000)

    def on_start(self) -> None:
        self.ctx.subscribe(BookSnapshot, self.on_book, key=self.params.asset_id or None)
        self.ctx.subscribe(BookDelta, self.on_book, key=self.params.asset_id or None)
        self.n = 0

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        b = self.ctx.books.get(ev.asset_id)
        if b is None or not b.healthy or not b.best_bid or not b.best_ask:
            return
        p = self.params
        self.n += 1
        if self.ctx.position(ev.asset_id) >= p.max_position:
            return
        opened = self.ctx.open_orders(ev.asset_id)
        if self.n % p.take_every == 0:
            self.ctx.submit(OrderIntent(strategy=self.id, asset_id=ev.asset_id, market=b.market, side="BUY",
                                        price=b.best_ask, size=p.take_size, tif="FAK", kind="market"))  # fmt: skip
            return
        if len(opened) >= p.max_open:
            oldest = min(opened, key=lambda o: o.client_id)
            self.ctx.cancel(oldest.client_id)
            return
        price = b.best_bid - 10_000 * (1 + self.n % 3)
        if price >= 10_000:
            self.ctx.submit(OrderIntent(strategy=self.id, asset_id=ev.asset_id, market=b.market, side="BUY",
                                        price=price, size=p.rest_size))  # fmt: skip

    def snapshot(self) -> dict:
        return {"n": self.n}

    def restore(self, state: dict) -> None:
        self.n = state.get("n", 0)
