"""Session report: what a replay (or a session) did, per strategy and per market.

``SessionReport(kernel)`` subscribes to the kernel's bus and counts, from the events:

* orders submitted (``OrderSubmitted``), rejected by risk (``RiskRejected``: one per order it
  names, a rejected plan counts each leg) and by the executor (``OrderRejected``), cancelled
  and expired (each order counted once however often the venue repeats itself);
* fills (maker / taker), volume (shares) and notional (``floor(price x size / 1e6)``, the
  portfolio's rule), fees and rebates of the fills;
* the equity (``realized + unrealized - fees + rebates`` from ``kernel.portfolio``, marked with
  the kernel's books) after every fill and settlement, and on a book change of an asset the
  account holds at most once per ``sample_ns`` of event time (every scope then), from which
  the max drawdown (largest fall from a running peak; the peak starts at the equity when the
  report is attached, 0 for a scope that had nothing yet) is kept for the whole account, each
  strategy and each market. :meth:`SessionReport.summary` counts the equity at the end too.

Order events the kernel's order state machine refused (``OrderStateError``) are not counted:
nothing happened. The kernel's own handlers run before the report's (it subscribes later), so
``kernel.portfolio`` already holds a fill or a settlement when the report sees it.

PnL in :meth:`~SessionReport.summary` comes from the portfolio (realized before fees,
unrealized at the end, fees, rebates, net); ``totals`` and ``per_market`` are the account's
(average cost over all strategies, YES+NO pairs across strategies), ``per_strategy`` each
strategy's own book, so strategies need not add up to the total (see :mod:`polybot.portfolio`).
Money and share amounts are integers in base units, each with a ``<key>_str`` decimal twin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .events import (
    BookDelta,
    BookSnapshot,
    FillEvent,
    MarketResolved,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderIntent,
    OrderPlan,
    OrderRejected,
    OrderSubmitted,
    RiskRejected,
)
from .portfolio import MarketValue, book_marks
from .units import SCALE, from_units

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel

_COUNT_FIELDS = ("orders_submitted", "orders_rejected_risk", "orders_rejected_exec", "orders_cancelled",
                 "orders_expired", "fills", "maker_fills", "taker_fills")  # fmt: skip
_TERMINAL_KIND = {OrderRejected: "rejected", OrderCancelled: "cancelled", OrderExpired: "expired"}


class Activity:
    """Counters of one scope (the account, a strategy or a market)."""

    __slots__ = (*_COUNT_FIELDS, "volume", "notional", "by_validator")

    def __init__(self) -> None:
        for f in self.__slots__:
            setattr(self, f, 0)
        self.by_validator: dict[str, int] = {}  # risk rejections (orders) by validator name


class Drawdown:
    """Running peak and largest peak-to-trough fall of an equity series."""

    __slots__ = ("peak", "max_drawdown", "last", "samples")

    def __init__(self, start: int = 0) -> None:
        self.peak = start
        self.max_drawdown = 0
        self.last = start
        self.samples = 0

    def update(self, equity: int) -> None:
        self.last = equity
        self.samples += 1
        if equity > self.peak:
            self.peak = equity
        elif self.peak - equity > self.max_drawdown:
            self.max_drawdown = self.peak - equity

    def with_final(self, equity: int) -> int:
        """The max drawdown if ``equity`` were one more sample (no state change)."""
        return max(self.max_drawdown, self.peak - equity)


def _money(out: dict[str, Any], key: str, v: int) -> None:
    out[key] = v
    out[key + "_str"] = from_units(v)


class SessionReport:
    """Attach to a kernel before the replay; read :meth:`summary` at the end."""

    def __init__(self, kernel: Kernel, mark: str = "bid", sample_ns: int = 1_000_000_000) -> None:
        self.kernel = kernel
        self.mark = mark
        self.sample_ns = sample_ns
        self.marks = book_marks(kernel.books, mark)  # validates ``mark``
        pf = kernel.portfolio
        if pf.catalog is None:
            pf.set_catalog(kernel.catalog)  # pairs need the catalog's YES/NO assets
        self.totals = Activity()
        self.per_strategy: dict[str, Activity] = {}
        self.per_market: dict[str, Activity] = {}
        self.dd_strategy: dict[str, Drawdown] = {}
        self.dd_market: dict[str, Drawdown] = {}
        self.samples = 0  # equity samples taken (each covers several scopes)
        self._pending: dict[str, str] = {}  # client_id -> market, intents awaiting the risk chain
        self._closed: dict[str, str] = {}  # client_id -> terminal kind already counted
        self._illegal = kernel.stats.illegal_transitions
        self._next_book_sample = -(1 << 62)
        # the equity at attach is every existing scope's starting peak (0 for a fresh kernel)
        for m, v in pf.market_values(self.marks).items():
            self.dd_market[m] = Drawdown(v.equity)
        self.dd_total = Drawdown(sum(d.peak for d in self.dd_market.values()))
        for s in pf.strategies():
            self.dd_strategy[s] = Drawdown(sum(v.equity for v in pf.market_values(self.marks, s).values()))
        self._subs = [
            (OrderIntent, self._on_intent),
            (OrderPlan, self._on_plan),
            (RiskRejected, self._on_risk_rejected),
            (OrderEvent, self._on_order),
            (MarketResolved, self._on_resolved),
            (BookSnapshot, self._on_book),
            (BookDelta, self._on_book),
        ]
        for t, h in self._subs:
            kernel.bus.subscribe(t, h)

    def close(self) -> None:
        """Unsubscribe (the counters stay readable)."""
        for t, h in self._subs:
            self.kernel.bus.unsubscribe(h, t)

    # ------------------------------------------------------------------ scopes

    def _scopes(self, strategy: str, market: str) -> tuple[Activity, Activity, Activity]:
        s = self.per_strategy.get(strategy)
        if s is None:
            s = self.per_strategy[strategy] = Activity()
        m = self.per_market.get(market)
        if m is None:
            m = self.per_market[market] = Activity()
        return self.totals, s, m

    def _market(self, asset_id: str, stated: str) -> str:
        return self.kernel.portfolio.market_of(asset_id, stated)

    # ------------------------------------------------------------------ handlers (hot path)

    def _on_intent(self, ev: OrderIntent) -> None:
        if ev.client_id:
            self._pending[ev.client_id] = self._market(ev.asset_id, ev.market)

    def _on_plan(self, ev: OrderPlan) -> None:
        for leg in ev.legs:
            self._on_intent(leg)

    def _on_risk_rejected(self, ev: RiskRejected) -> None:
        pending = self._pending
        for cid in ev.client_ids or ("",):
            for c in self._scopes(ev.strategy, pending.pop(cid, "")):
                c.orders_rejected_risk += 1
                bv = c.by_validator
                bv[ev.validator] = bv.get(ev.validator, 0) + 1

    def _on_order(self, ev: OrderEvent) -> None:
        k = self.kernel
        n = k.stats.illegal_transitions
        if n != self._illegal:  # the kernel's state machine refused this event: nothing happened
            self._illegal = n
            return
        cls = ev.__class__
        if cls is OrderSubmitted:
            it = ev.intent  # type: ignore[attr-defined]
            self._pending.pop(ev.client_id, None)
            for c in self._scopes(it.strategy, self._market(it.asset_id, it.market)):
                c.orders_submitted += 1
            return
        if isinstance(ev, FillEvent):
            self._on_fill(ev)
            return
        kind = _TERMINAL_KIND.get(cls)
        if kind is None:
            return
        o = k.orders.get(ev.client_id)
        if o is None or o.state != kind or self._closed.get(ev.client_id) == kind:
            return  # a repeat, or an event that did not end the order
        self._closed[ev.client_id] = kind
        for c in self._scopes(o.strategy, self._market(o.asset_id, o.intent.market)):
            if kind == "rejected":
                c.orders_rejected_exec += 1
            elif kind == "cancelled":
                c.orders_cancelled += 1
            else:
                c.orders_expired += 1

    def _on_fill(self, ev: FillEvent) -> None:
        o = self.kernel.orders.get(ev.client_id)
        if o is None:
            return
        strategy = o.strategy
        market = self._market(ev.asset_id, ev.market or o.intent.market)
        notional = ev.price * ev.size // SCALE
        maker = ev.liquidity == "maker"
        for c in self._scopes(strategy, market):
            c.fills += 1
            if maker:
                c.maker_fills += 1
            else:
                c.taker_fills += 1
            c.volume += ev.size
            c.notional += notional
        self._sample_account()
        self._sample_strategy(strategy)

    def _on_resolved(self, ev: MarketResolved) -> None:
        self._sample_all()

    def _on_book(self, ev: BookSnapshot | BookDelta) -> None:
        if ev.ts < self._next_book_sample:
            return
        p = self.kernel.portfolio.positions.get(ev.asset_id)
        if p is None or not p.size:
            return
        self._next_book_sample = ev.ts + self.sample_ns
        self._sample_all()

    # ------------------------------------------------------------------ sampling

    def _sample_account(self) -> None:
        self.samples += 1
        total = 0
        dd = self.dd_market
        for m, v in self.kernel.portfolio.market_values(self.marks).items():
            e = v.equity
            total += e
            d = dd.get(m)
            if d is None:
                d = dd[m] = Drawdown()
            d.update(e)
        self.dd_total.update(total)

    def _sample_strategy(self, strategy: str) -> None:
        e = sum(v.equity for v in self.kernel.portfolio.market_values(self.marks, strategy).values())
        d = self.dd_strategy.get(strategy)
        if d is None:
            d = self.dd_strategy[strategy] = Drawdown()
        d.update(e)

    def _sample_all(self) -> None:
        self._sample_account()
        for s in self.kernel.portfolio.strategies():
            self._sample_strategy(s)

    # ------------------------------------------------------------------ the summary

    def summary(self) -> dict[str, Any]:
        """JSON-able, deterministic key order. Money in base units with ``_str`` twins."""
        pf = self.kernel.portfolio
        marks = self.marks
        acct = pf.market_values(marks)
        total_v = _sum(acct.values())
        totals = _section(self.totals, total_v, self.dd_total)
        _money(totals, "starting_cash", pf.starting_cash)
        _money(totals, "cash", pf.cash)
        per_strategy = {}
        for s in sorted(set(self.per_strategy) | set(self.dd_strategy) | set(pf.strategies())):
            v = _sum(pf.market_values(marks, s).values())
            per_strategy[s] = _section(self.per_strategy.get(s), v, self.dd_strategy.get(s))
        per_market = {}
        for m in sorted(set(self.per_market) | set(self.dd_market) | set(acct)):
            per_market[m] = _section(self.per_market.get(m), acct.get(m, MarketValue()), self.dd_market.get(m))
        return {
            "mark": self.mark,
            "sample_ns": self.sample_ns,
            "equity_samples": self.samples,
            "totals": totals,
            "per_strategy": per_strategy,
            "per_market": per_market,
        }


def _sum(vs: Any) -> MarketValue:
    value = cost = realized = fees = rebates = 0
    for v in vs:
        value += v.value
        cost += v.cost
        realized += v.realized
        fees += v.fees
        rebates += v.rebates
    return MarketValue(value, cost, realized, fees, rebates)


def _section(a: Activity | None, v: MarketValue, dd: Drawdown | None) -> dict[str, Any]:
    a = a or Activity()
    out: dict[str, Any] = {
        "orders_submitted": a.orders_submitted,
        "orders_rejected": a.orders_rejected_risk + a.orders_rejected_exec,
        "orders_rejected_risk": a.orders_rejected_risk,
        "orders_rejected_exec": a.orders_rejected_exec,
        "rejected_by_validator": dict(sorted(a.by_validator.items())),
        "orders_cancelled": a.orders_cancelled,
        "orders_expired": a.orders_expired,
        "fills": a.fills,
        "maker_fills": a.maker_fills,
        "taker_fills": a.taker_fills,
    }
    _money(out, "volume", a.volume)
    _money(out, "notional", a.notional)
    _money(out, "fees", v.fees)
    _money(out, "rebates", v.rebates)
    _money(out, "realized_pnl", v.realized)
    _money(out, "unrealized_pnl", v.unrealized)
    _money(out, "net_pnl", v.equity)
    _money(out, "max_drawdown", (dd or Drawdown()).with_final(v.equity))
    return out
