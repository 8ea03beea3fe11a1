"""The operator's view of a running kernel: what the HTTP API, the dashboard and /metrics show.

:class:`Monitor` subscribes to the kernel's bus (after the kernel's own handlers, so the state it
reads is already updated) and keeps what the kernel does not: each feed's health and since when,
since when each unhealthy book has been unhealthy, the recent fills, order steps, risk rejections
and dropped inputs (bounded rings), counters of events by type and of orders, fills and
rejections by reason, and the PnL over time (sampled by :meth:`Monitor.sample`, called on a wall
clock by the API server, never per event). It only reads: nothing it does reaches the journal or
changes a decision, so a session with the API on replays exactly as one without.

The views (:meth:`status`, :meth:`positions`, ...) are plain JSON-able dicts. Money, prices and
sizes are given twice: integer base units (``*_units``, 1e-6) and decimal strings.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from .events import (
    BookHealth,
    Event,
    FeedConnected,
    FeedDisconnected,
    FeedEvent,
    FeedResynced,
    FeedStale,
    FillEvent,
    FillReversed,
    HandlerError,
    InputDropped,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
    PositionAction,
    PositionActionEvent,
    RiskRejected,
    RiskResized,
    TradingStateChanged,
    type_name,
)
from .units import from_units

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel

NS = 1_000_000_000


def _px(v: int) -> str | None:
    return from_units(v) if v else None


def reason_label(reason: str) -> str:
    """A short, bounded label for a free-text reason (metrics labels must not explode): the
    text up to the first ':' or '(' , at most 48 characters."""
    r = reason.strip()
    for sep in (":", "(", "\n"):
        i = r.find(sep)
        if i > 0:
            r = r[:i]
    return r.strip()[:48] or "unspecified"


class FeedHealth:
    __slots__ = ("name", "kind", "state", "since", "detail", "connects", "disconnects", "stale", "last_ts")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.state = "starting"  # starting | running | connected | disconnected | stale | finished | failed
        self.since = 0  # kernel time (ns) of the last state change
        self.detail = ""
        self.connects = 0
        self.disconnects = 0
        self.stale = 0
        self.last_ts = 0  # last health event from this feed


class Monitor:
    def __init__(self, kernel: Kernel, *, feeds: list[tuple[str, str]] | None = None, history: int = 200,
                 pnl_points: int = 3600, clock: Any = None) -> None:  # fmt: skip
        self.kernel = kernel
        self.clock = clock  # live clock (ns); the kernel's event time when None
        self.started_wall = time.time()
        self.feeds: dict[str, FeedHealth] = {n: FeedHealth(n, k) for n, k in (feeds or [])}
        self.unhealthy_since: dict[str, int] = {}  # asset -> kernel ts it became unhealthy
        self.fills: deque[dict[str, Any]] = deque(maxlen=history)
        self.order_steps: deque[dict[str, Any]] = deque(maxlen=history)
        self.rejections: deque[dict[str, Any]] = deque(maxlen=history)
        self.drops: deque[dict[str, Any]] = deque(maxlen=history)
        self.state_changes: deque[dict[str, Any]] = deque(maxlen=history)
        self.chain: deque[dict[str, Any]] = deque(maxlen=history)  # on-chain action steps
        self.pnl_series: deque[tuple[int, int, int, int, int, int]] = deque(maxlen=pnl_points)
        self.events_by_type: Counter[type] = Counter()
        self.orders_by_strategy: Counter[str] = Counter()
        self.fills_by: Counter[tuple[str, str]] = Counter()  # (strategy, maker|taker)
        self.fill_volume: Counter[str] = Counter()  # strategy -> shares (base units)
        self.risk_rejects: Counter[tuple[str, str]] = Counter()  # (validator, strategy)
        self.risk_resizes: Counter[str] = Counter()  # validator
        self.exec_rejects: Counter[str] = Counter()  # reason label
        self.terminal: Counter[str] = Counter()  # cancelled | expired
        self.handler_errors = 0
        self.version = 0  # bumps on anything the views show (the push loop sends on change)
        self._subs: list[tuple[type[Event], Any]] = [
            (Event, self._count),
            (FeedEvent, self._on_feed),
            (BookHealth, self._on_health),
            (OrderEvent, self._on_order),
            (RiskRejected, self._on_risk),
            (RiskResized, self._on_resized),
            (InputDropped, self._on_drop),
            (TradingStateChanged, self._on_state),
            (HandlerError, self._on_handler_error),
            (PositionAction, self._on_chain),
            (PositionActionEvent, self._on_chain),
        ]
        for t, h in self._subs:
            kernel.bus.subscribe(t, h)
        for aid, b in kernel.books.items():  # a recovered session's books
            if not b.healthy:
                self.unhealthy_since[aid] = self.now()

    def close(self) -> None:
        for t, h in self._subs:
            self.kernel.bus.unsubscribe(h, t)

    def now(self) -> int:
        """The live clock's time (ns) in a daemon, the kernel's event time otherwise: ages and
        "down for" durations must grow while no input arrives at all."""
        return self.clock.now() if self.clock is not None else self.kernel.clock.now()

    def _stamp(self, ts: int) -> int:
        return self.clock.now() if self.clock is not None else ts

    def feed_task(self, name: str, running: bool, detail: str = "") -> None:
        """The daemon's word on a feed's task: started (``running`` until the feed reports its
        own health) or ended (``finished``; a recording played to its end, or a failure)."""
        f = self.feeds.get(name)
        if f is None:
            f = self.feeds[name] = FeedHealth(name, "")
        if running and f.state == "starting":
            f.state, f.since = "running", self.now()
        elif not running:
            state = "failed" if detail.startswith("failed") else "finished"
            f.state, f.since, f.detail = state, self.now(), detail or f.detail
        self.version += 1

    # ------------------------------------------------------------------------ bus handlers

    def _count(self, ev: Event) -> None:
        self.events_by_type[ev.__class__] += 1

    def _on_feed(self, ev: FeedEvent) -> None:
        f = self.feeds.get(ev.feed)
        if f is None:
            f = self.feeds[ev.feed] = FeedHealth(ev.feed, "")
        f.last_ts = ev.ts
        new = f.state
        if isinstance(ev, FeedConnected):
            f.connects += 1
            new = "connected"
        elif isinstance(ev, FeedDisconnected):
            f.disconnects += 1
            new = "disconnected"
        elif isinstance(ev, FeedStale):
            f.stale += 1
            new = "stale"
        elif isinstance(ev, FeedResynced) and f.state == "stale":
            new = "connected"
        if new != f.state:
            f.state = new
            f.since = self._stamp(ev.ts)
        f.detail = ev.detail[:300]
        self.version += 1

    def _on_health(self, ev: BookHealth) -> None:
        if ev.healthy:
            self.unhealthy_since.pop(ev.asset_id, None)
        else:
            self.unhealthy_since.setdefault(ev.asset_id, self._stamp(ev.ts))
        self.version += 1

    def _on_order(self, ev: OrderEvent) -> None:
        cls = ev.__class__
        step = type_name(cls)
        row: dict[str, Any] = {"ts": ev.ts, "client_id": ev.client_id, "strategy": ev.strategy, "step": step,
                               "asset_id": ev.asset_id}  # fmt: skip
        if isinstance(ev, FillEvent):
            strat = ev.strategy or self._strategy_of(ev.client_id)
            self.fills_by[(strat, ev.liquidity)] += 1
            self.fill_volume[strat] += ev.size
            fill = {"ts": ev.ts, "client_id": ev.client_id, "strategy": strat, "asset_id": ev.asset_id,
                    "market": ev.market or self.kernel.portfolio.market_of(ev.asset_id), "side": ev.side,
                    "price": from_units(ev.price), "size": from_units(ev.size), "liquidity": ev.liquidity,
                    "fee": from_units(ev.fee), "trade_id": ev.trade_id, "outcome": self._outcome(ev.asset_id)}  # fmt: skip
            self.fills.append(fill)
            row.update(side=ev.side, price=fill["price"], size=fill["size"])
        elif isinstance(ev, OrderSubmitted):
            it = ev.intent
            self.orders_by_strategy[it.strategy] += 1
            row.update(strategy=it.strategy, side=it.side, price=from_units(it.price), size=from_units(it.size),
                       tif=it.tif)  # fmt: skip
        elif isinstance(ev, OrderRejected):
            self.exec_rejects[reason_label(ev.reason)] += 1
            row["reason"] = ev.reason[:300]
        elif isinstance(ev, OrderCancelled):
            self.terminal["cancelled"] += 1
            row["reason"] = ev.reason[:300]
        elif isinstance(ev, OrderExpired):
            self.terminal["expired"] += 1
        elif isinstance(ev, FillReversed):
            row["reason"] = ev.reason[:300]
        if not row["strategy"]:
            row["strategy"] = self._strategy_of(ev.client_id)
        self.order_steps.append(row)
        self.version += 1

    def _strategy_of(self, client_id: str) -> str:
        o = self.kernel.orders.get(client_id)
        return o.strategy if o is not None else ""

    def _outcome(self, asset_id: str) -> str:
        info = self.kernel.catalog.for_asset(asset_id)
        if info is None:
            return ""
        try:
            return info.outcomes[info.asset_ids.index(asset_id)]
        except (ValueError, IndexError, AttributeError):
            return ""

    def _on_risk(self, ev: RiskRejected) -> None:
        self.risk_rejects[(ev.validator or "unknown", ev.strategy)] += 1
        self.rejections.append({"ts": ev.ts, "strategy": ev.strategy, "client_ids": list(ev.client_ids),
                                "plan_id": ev.plan_id, "validator": ev.validator, "reason": ev.reason[:300]})  # fmt: skip
        self.version += 1

    def _on_resized(self, ev: RiskResized) -> None:
        self.risk_resizes[ev.validator or "unknown"] += 1

    def _on_drop(self, ev: InputDropped) -> None:
        self.drops.append({"ts": ev.ts, "source": ev.source, "reason": ev.reason, "detail": ev.detail[:300]})
        self.version += 1

    def _on_state(self, ev: TradingStateChanged) -> None:
        self.state_changes.append({"ts": ev.ts, "state": ev.state, "previous": ev.previous, "reason": ev.reason})
        self.version += 1

    def _on_chain(self, ev: PositionAction | PositionActionEvent) -> None:
        row = {"ts": ev.ts, "step": type_name(type(ev)), "action_id": ev.action_id, "action": ev.action,
               "market": ev.market, "strategy": ev.strategy}  # fmt: skip
        for f in ("amount", "collateral", "gas_cost"):
            v = getattr(ev, f, None)
            if v:
                row[f] = from_units(v) if f != "gas_cost" else str(v)
        for f in ("tx_hash", "via", "reason", "note"):
            v = getattr(ev, f, "")
            if v:
                row[f] = v
        self.chain.append(row)
        self.version += 1

    def chain_view(self) -> dict[str, Any]:
        """On-chain actions on their way, and the recent steps of all of them (newest last)."""
        pending = [{"action_id": a.action_id, "action": a.action, "market": a.market, "strategy": a.strategy,
                    "amount": from_units(a.amount), "since_ns": a.ts, "note": a.note}
                   for a in self.kernel.pending_actions()]  # fmt: skip
        return {"pending": pending, "recent": list(self.chain)}

    def _on_handler_error(self, ev: HandlerError) -> None:
        self.handler_errors += 1

    # ------------------------------------------------------------------------ sampling

    def sample(self) -> tuple[int, int, int, int, int, int]:
        """Append (and return) one PnL point: (time ns, net, realized, unrealized, fees,
        open-order exposure), marked with the kernel's books."""
        k = self.kernel
        pf = k.portfolio
        p = pf.pnl("", pf.marks(k.books))
        point = (self.now(), p.net, p.realized, p.unrealized, p.fees - p.rebates, k.exposure.total)
        last = self.pnl_series[-1] if self.pnl_series else None
        if last is None or last[1:] != point[1:] or point[0] - last[0] >= 60 * NS:
            self.pnl_series.append(point)
            self.version += 1
        return point

    # ------------------------------------------------------------------------ views

    def feed_rows(self) -> list[dict[str, Any]]:
        now = self.now()
        return [{"name": f.name, "kind": f.kind, "state": f.state, "detail": f.detail,
                 "for_s": round((now - f.since) / NS, 3) if f.since else None,
                 "connects": f.connects, "disconnects": f.disconnects, "stale": f.stale}
                for f in self.feeds.values()]  # fmt: skip

    def book_rows(self, limit: int = 500) -> list[dict[str, Any]]:
        k = self.kernel
        now = self.now()
        rows = []
        for aid, b in k.books.items():
            if len(rows) >= limit:
                break
            since = self.unhealthy_since.get(aid)
            rows.append({"asset_id": aid, "market": b.market or k.portfolio.market_of(aid), "outcome": self._outcome(aid),
                         "question": self._question(aid), "best_bid": _px(b.best_bid), "best_ask": _px(b.best_ask),
                         "bid_size": from_units(b.bid_size()) if b.best_bid else None,
                         "ask_size": from_units(b.ask_size()) if b.best_ask else None,
                         "mid": _px(b.mid), "age_s": round(b.age_ns(now) / NS, 3) if b.updated_ts else None,
                         "healthy": b.healthy, "reason": "" if b.healthy else b.unhealthy_reason,
                         "unhealthy_for_s": round((now - since) / NS, 3) if since is not None and not b.healthy else None})  # fmt: skip
        return rows

    def _question(self, asset_id: str) -> str:
        info = self.kernel.catalog.for_asset(asset_id)
        return info.question if info is not None else ""

    def strategy_rows(self) -> list[dict[str, Any]]:
        from .strategy import params_table

        out = []
        for sid, s in self.kernel.strategies.items():
            out.append({"id": sid, "class": f"{type(s).__module__}:{type(s).__qualname__}", "enabled": s.enabled,
                        "params": params_table(s.params), "orders": self.orders_by_strategy.get(sid, 0),
                        "fills": sum(n for (st, _l), n in self.fills_by.items() if st == sid)})  # fmt: skip
        return out

    def worst_book_unhealthy_s(self) -> tuple[float, str]:
        """The longest time any book has been unhealthy (s) and which one."""
        now = self.now()
        worst, which = 0.0, ""
        for aid, b in self.kernel.books.items():
            if b.healthy:
                continue
            # a book restored unhealthy by recovery came without a BookHealth event: timed from now
            since = self.unhealthy_since.setdefault(aid, now)
            age = (now - since) / NS
            if not which or age > worst:
                worst, which = age, aid
        return worst, which

    def pnl_view(self) -> dict[str, Any]:
        k = self.kernel
        pf = k.portfolio
        marks = pf.marks(k.books)
        total = pf.pnl("", marks)
        strategies = {s: _pnl(pf.pnl(s, marks)) for s in pf.strategies()}
        return {"total": _pnl(total), "strategies": strategies, "exposure": from_units(k.exposure.total)}

    def positions(self) -> dict[str, Any]:
        k = self.kernel
        pf = k.portfolio
        marks = pf.marks(k.books)
        rows = []
        for strat in pf.strategies():
            for aid, p in pf._scope(strat).items():
                if not (p.size or p.realized or p.fees):
                    continue
                mark = marks(aid)
                rows.append({"strategy": strat, "asset_id": aid, "market": pf.market_of(aid),
                             "outcome": self._outcome(aid), "question": self._question(aid),
                             "size": from_units(p.size), "avg_price": from_units(p.avg_price),
                             "cost": from_units(p.cost), "mark": _px(mark or 0),
                             "unrealized": from_units(p.unrealized(mark)) if mark is not None and p.size else "0",
                             "realized": from_units(p.realized), "fees": from_units(p.fees)})  # fmt: skip
        markets = []
        seen: set[tuple[str, str]] = set()
        for r in rows:
            key = (r["strategy"], r["market"])
            if not r["market"] or key in seen:
                continue
            seen.add(key)
            info = k.catalog.market(r["market"])
            if info is None or len(info.asset_ids) != 2:
                continue
            v = pf.pair_view(r["market"], r["strategy"])
            markets.append({"strategy": r["strategy"], "market": r["market"], "question": r["question"],
                            "qty_yes": from_units(v.qty_yes), "qty_no": from_units(v.qty_no),
                            "pairs": from_units(v.pairs), "pair_cost": _px(v.pair_cost),
                            "locked_profit": from_units(v.locked_profit), "unpaired": from_units(v.unpaired)})  # fmt: skip
        return {"positions": rows, "markets": markets, "pnl": self.pnl_view()}

    def open_orders(self) -> list[dict[str, Any]]:
        out = []
        for o in self.kernel.orders.open_orders():
            it = o.intent
            out.append({"client_id": o.client_id, "strategy": it.strategy, "asset_id": it.asset_id,
                        "market": it.market, "outcome": self._outcome(it.asset_id), "side": it.side,
                        "price": from_units(it.price), "size": from_units(it.size), "filled": from_units(o.filled),
                        "state": o.state, "tif": it.tif, "venue_order_id": o.venue_order_id,
                        "created_ts": o.created_ts, "updated_ts": o.updated_ts})  # fmt: skip
        return out

    def status(self, executor: Any = None, api: dict[str, Any] | None = None) -> dict[str, Any]:
        k = self.kernel
        st = k.stats
        books = list(k.books.items())
        healthy = sum(1 for _, b in books if b.healthy)
        worst, which = self.worst_book_unhealthy_s()
        now = self.now()
        ages = [now - b.updated_ts for _, b in books if b.updated_ts]
        return {
            "now_ns": self.now(), "event_time_ns": k.clock.now(),
            "uptime_s": round(time.time() - self.started_wall, 3),
            "trading_state": k.trading_state,
            "executor": {"name": getattr(executor, "name", ""), "kind": type(executor).__name__ if executor else "",
                         "dry_run": bool(getattr(getattr(executor, "params", None), "dry_run", False)),
                         # a router: each venue's executor ("" = the default venue)
                         **({"venues": {v: m.name for v, m in sorted(executor.members.items())}}
                            if hasattr(executor, "members") else {})},
            "inputs": st.inputs, "events": st.events, "dropped": st.dropped, "intents": st.intents,
            "orders": st.orders, "fills": st.fills, "rejections": st.rejections,
            "open_orders": len(k.orders.open_orders()),
            "chain_pending": len(k.actions),
            "feeds": self.feed_rows(),
            "books": {"total": len(books), "healthy": healthy, "worst_unhealthy_s": round(worst, 3),
                      "worst_unhealthy_asset": which,
                      "newest_age_s": round(min(ages) / NS, 3) if ages else None,
                      "oldest_age_s": round(max(ages) / NS, 3) if ages else None},
            "strategies": self.strategy_rows(),
            "pnl": self.pnl_view()["total"],
            "journal": str(k.journal.path) if k.journal is not None else None,
            **({"api": api} if api else {}),
        }  # fmt: skip


def _pnl(p: Any) -> dict[str, str]:
    return {"net": from_units(p.net), "realized": from_units(p.realized), "unrealized": from_units(p.unrealized),
            "fees": from_units(p.fees), "rebates": from_units(p.rebates), "cash": from_units(p.cash)}  # fmt: skip
