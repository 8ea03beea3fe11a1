"""An example strategy, small enough to read in a minute: buy below a price, sell above another.

It shows every part of the API: typed params from TOML, keyed subscriptions, reading the book and
the portfolio, ``submit()`` and its decision, timers (an unfilled buy is cancelled after a
timeout) and state that survives a restart. It is not meant to make money.

    [strategies.dip]
    class = "example_buy_below"
    asset_id = "..."         # "" = every asset that has a book
    max_price = "0.45"       # buy when the best ask is at or below this
    take_profit = "0.55"     # sell the position when the best bid is at or above this
    size = "10"              # shares per buy
    max_position = "50"      # shares
    order_timeout_s = 5.0
"""

from __future__ import annotations

from polybot.events import BookDelta, BookSnapshot, OrderIntent, TimerFired
from polybot.strategy import Strategy, StrategyParams, Units


class BuyBelow(Strategy):
    """Example: buy a dip below max_price, take profit at or above take_profit (not for money)."""

    name = "example_buy_below"

    class Params(StrategyParams):
        asset_id: str = ""
        max_price: Units = Units(450_000)
        take_profit: Units = Units(550_000)
        size: Units = Units(10_000_000)
        max_position: Units = Units(50_000_000)
        order_timeout_s: float = 5.0

    def on_start(self) -> None:
        key = self.params.asset_id or None
        self.ctx.subscribe(BookSnapshot, self.on_book, key=key)
        self.ctx.subscribe(BookDelta, self.on_book, key=key)
        self.buys = 0
        self.sells = 0

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        book = self.ctx.books.get(ev.asset_id)
        if book is None or not book.healthy or self.ctx.open_orders(ev.asset_id):
            return
        p = self.params
        held = self.ctx.position(ev.asset_id)
        if held > 0 and book.best_bid and book.best_bid >= p.take_profit:
            d = self.ctx.submit(OrderIntent(strategy=self.id, asset_id=ev.asset_id, market=book.market,
                                            side="SELL", price=book.best_bid, size=held, tif="FAK",
                                            kind="market", note="take profit"))  # fmt: skip
            self.sells += d.approved
            return
        if book.best_ask and book.best_ask <= p.max_price and held + p.size <= p.max_position:
            d = self.ctx.submit(OrderIntent(strategy=self.id, asset_id=ev.asset_id, market=book.market,
                                            side="BUY", price=book.best_ask, size=p.size, note="dip"))  # fmt: skip
            if d.approved:
                self.buys += 1
                self.ctx.set_timer(f"timeout:{d.client_ids[0]}", delay_ns=int(p.order_timeout_s * 1e9))

    def on_timer(self, ev: TimerFired) -> None:
        if ev.name.startswith("timeout:"):
            self.ctx.cancel(ev.name.split(":", 1)[1], "timeout")

    def snapshot(self) -> dict[str, int]:
        return {"buys": self.buys, "sells": self.sells}

    def restore(self, state: dict[str, int]) -> None:
        self.buys = state["buys"]
        self.sells = state["sells"]
