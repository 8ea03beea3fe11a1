"""The test rig shared by the quoting strategies' tests (market making, spread capture): a
kernel with the paper executor, one binary market whose NO book mirrors the YES book, and one
strategy instance. A test file subclasses ``QuotingRig`` with its strategy class, instance name
and default params, and adds its strategy-specific helpers. Book changes go through
``move``/``trade`` (YES deltas then NO deltas, with the top of book after each), the way the
recordings carry them."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from polybot.events import (
    ENCODER,
    BookDelta,
    BookSnapshot,
    Event,
    FeeSchedule,
    MarketInfo,
    OrderEvent,
    OrderSubmitted,
    RiskRejected,
    TradePrint,
)
from polybot.execution.paper import PaperExecutor
from polybot.kernel import Kernel
from polybot.strategy import Strategy

YES, NO, M = "yes-token", "no-token", "0xmarket"
U = 1_000_000
T = 10_000  # tick
S = 1_000_000_000  # ns per second
SCHED = FeeSchedule(rate_ppm=40_000, exponent=1, rebate_ppm=250_000)


def c(x: float) -> int:
    """Cents to base units: c(48) == 0.48."""
    return round(x * T)


def px(x: float) -> int:
    """A price to base units: px(0.41) == 410_000."""
    return round(x * U)


StrategyT = TypeVar("StrategyT", bound=Strategy)


class QuotingRig(Generic[StrategyT]):
    """Kernel + paper executor + one binary market with mirrored books + one strategy instance
    of ``strategy`` named ``instance``, with the params ``asset_ids=[YES]``, ``min_replace_s=0``,
    the subclass's ``defaults``, then the test's own."""

    strategy: type[Strategy]
    instance: str
    defaults: dict[str, Any] = {}

    def __init__(self, latency_ms: float = 0, **params: Any) -> None:
        self.ex = PaperExecutor(cash="1000", latency_ms=latency_ms)
        self.k = Kernel(executor=self.ex, synthesize_timers=True)
        p = {"asset_ids": [YES], "min_replace_s": 0.0, **self.defaults, **params}
        self.s: StrategyT = self.k.add_strategy(self.strategy, self.instance, p)  # type: ignore[assignment]
        self.events: list[Event] = []
        for t in (OrderEvent, RiskRejected):
            self.k.bus.subscribe(t, self.events.append)
        self.k.start()
        self.t = 1_000 * S
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.feed(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=SCHED))

    # ---------------------------------------------------------------- inputs

    def feed(self, *evs: Event, dt: float = 0.5) -> None:
        self.t += int(dt * S)
        self.k.process(self.t, "events", ENCODER.encode(list(evs)))

    def book(self, bids: dict[float, float], asks: dict[float, float], dt: float = 0.5) -> None:
        self.bids = {px(p): int(s * U) for p, s in bids.items()}
        self.asks = {px(p): int(s * U) for p, s in asks.items()}
        mirror = lambda lv: tuple(sorted((U - p, s) for p, s in lv.items()))  # noqa: E731
        self.feed(BookSnapshot(asset_id=YES, market=M, bids=tuple(sorted(self.bids.items())),
                               asks=tuple(sorted(self.asks.items())), tick_size=T),
                  BookSnapshot(asset_id=NO, market=M, bids=mirror(self.asks), asks=mirror(self.bids), tick_size=T),
                  dt=dt)  # fmt: skip

    def deltas(self, *ch: tuple[str, float, float]) -> tuple[list[Event], list[Event]]:
        """Apply (side, price, shares) changes to the YES book: (YES deltas, NO deltas)."""
        ys: list[Event] = []
        ns: list[Event] = []
        for side, price, size in ch:
            lv = self.bids if side == "BID" else self.asks
            p, s = px(price), int(size * U)
            if s:
                lv[p] = s
            else:
                lv.pop(p, None)
            bb, ba = max(self.bids, default=0), min(self.asks, default=0)
            ys.append(BookDelta(asset_id=YES, market=M, side=side, price=p, size=s, best_bid=bb, best_ask=ba))  # type: ignore[arg-type]
            ns.append(BookDelta(asset_id=NO, market=M, side="ASK" if side == "BID" else "BID", price=U - p, size=s,
                                best_bid=U - ba if ba else 0, best_ask=U - bb if bb else 0))  # fmt: skip
        return ys, ns

    def move(self, *ch: tuple[str, float, float], dt: float = 0.5) -> None:
        ys, ns = self.deltas(*ch)
        self.feed(*ys, *ns, dt=dt)

    def trade(self, taker: str, size: float, dt: float = 0.5) -> None:
        """A taker sells at the best bid (or buys at the best ask): level shrink, then print."""
        lv = self.bids if taker == "SELL" else self.asks
        p = max(lv) if taker == "SELL" else min(lv)
        s = int(size * U)
        ys, ns = self.deltas(("BID" if taker == "SELL" else "ASK", p / U, (lv[p] - s) / U))
        self.feed(*ys, *ns, TradePrint(asset_id=YES, market=M, price=p, size=s, side=taker), dt=dt)  # type: ignore[arg-type]

    def tick(self, dt: float) -> None:
        """Let time pass (due timers fire)."""
        self.t += int(dt * S)
        self.k.process(self.t, "clock", b"{}")

    # ---------------------------------------------------------------- reads

    def open(self) -> list[tuple[str, str, int, int]]:
        orders = self.k.orders.open_orders(self.instance)
        return sorted((o.asset_id, o.intent.side, o.intent.price, o.remaining) for o in orders)

    def submitted(self) -> list[Any]:
        return [e.intent for e in self.events if isinstance(e, OrderSubmitted)]

    def held(self) -> int:
        return self.k.portfolio.size(YES, self.instance)
