"""Logging (loguru): human lines or JSON lines on stderr, an optional rotated JSON-lines file, and
:class:`OrderLog`, one log line per step of every order's life.

* Human format: colourised on a terminal (stderr is a tty and ``NO_COLOR`` is not set), plain
  text otherwise (no ANSI escapes in a file, a pipe or journald).
* JSON lines (``json=True``; the file sink always): one compact object per record, on one line,
  with ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the fields bound with
  ``logger.bind(...)`` (``client_id``, ``strategy``, ``asset_id``, ``step``, ...) at the top
  level, and ``exception`` (the traceback text) when there is one.
* ``diagnose`` is always off: loguru would otherwise print local variables in tracebacks, and a
  local variable can hold a credential. Secrets are never passed to a log call; :class:`OrderLog`
  logs only the fields of order events, which carry none.
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import timezone
from typing import Any, TextIO

import msgspec
from loguru import logger

from .events import (
    CancelSubmitted,
    FillEvent,
    FillReversed,
    FillSettlement,
    OrderAccepted,
    OrderAdopted,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderPartiallyFilled,
    OrderPlan,
    OrderRejected,
    OrderSigned,
    OrderStateError,
    OrderSubmitted,
    OrderUnknown,
    RiskApproved,
    RiskDecisionEvent,
    RiskRejected,
    RiskResized,
)
from .units import from_units

#: On a terminal: time of day, coloured level and logger name.
FORMAT = "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{name}</cyan> {message}"
#: Anywhere else: the same fields with the date and the UTC offset, no colour.
PLAIN_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSSZZ} {level: <7} {name} {message}"

_JSON_KEY = "_polybot_json"  # where a record's JSON line is kept for every JSON sink of it
_CORE_FIELDS = ("time", "level", "logger", "message", "exception")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, int):  # int subclasses (polybot.strategy.Units)
        return int(obj)
    return str(obj)


_ENCODER = msgspec.json.Encoder(enc_hook=_jsonable)


def json_line(record: dict[str, Any]) -> str:
    """One log record as one compact JSON object (no newline inside: JSON escapes them)."""
    out: dict[str, Any] = {
        "time": record["time"].astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "level": record["level"].name,
        "logger": record["name"],
        "message": record["message"],
    }
    for k, v in record["extra"].items():
        out[f"extra_{k}" if k in _CORE_FIELDS else k] = v
    exc = record["exception"]
    if exc:
        out["exception"] = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback)).rstrip()
    return _ENCODER.encode(out).decode()


def _json_format(record: dict[str, Any]) -> str:
    """loguru's dynamic format for a JSON sink. loguru formats the template it returns with
    the record, so the JSON is kept in the record (computed once for all JSON sinks) and the
    template only points at it: no brace or ``<tag>`` of a message is ever parsed."""
    if _JSON_KEY not in record:
        record[_JSON_KEY] = json_line(record)
    return "{" + _JSON_KEY + "}\n"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def setup_logging(level: str = "INFO", json: bool = False, file: str = "", rotation: str | int | None = "100 MB",
                  retention: str | int | None = 10, stream: TextIO | None = None) -> None:  # fmt: skip
    """Replace every loguru sink by: ``stream`` (default stderr) in the human format, or in JSON
    lines with ``json``; and, with ``file``, JSON lines appended to that file, which starts a
    new part at ``rotation`` (a size, an interval, "daily", a time of day; "" or None: never)
    and keeps ``retention`` old parts (a count or an age; "" or None: all)."""
    out = sys.stderr if stream is None else stream
    logger.remove()
    if json:
        logger.add(out, level=level, format=_json_format, colorize=False, diagnose=False, backtrace=False)
    else:
        colour = _is_tty(out) and not os.environ.get("NO_COLOR")
        logger.add(out, level=level, format=FORMAT if colour else PLAIN_FORMAT, colorize=colour,
                   diagnose=False, backtrace=False)  # fmt: skip
    if file:
        logger.add(file, level=level, format=_json_format, colorize=False, diagnose=False, backtrace=False,
                   rotation=rotation or None, retention=retention or None, encoding="utf-8", enqueue=False)  # fmt: skip


# --------------------------------------------------------------------------------------------
# The order lifecycle log
# --------------------------------------------------------------------------------------------


def short_id(s: str, keep: int = 4) -> str:
    """A long id shortened for a human line (``1234…5678``); JSON lines carry it whole."""
    return s if len(s) <= 2 * keep + 3 else f"{s[:keep]}…{s[-keep:]}"


def _venue_id(s: str) -> str:
    return s if len(s) <= 14 else s[:10] + "…"


class _Order(msgspec.Struct):
    """What an order line needs that a later event of the order may not carry."""

    strategy: str
    asset_id: str
    side: str = ""
    price: int = 0
    size: int = 0
    tif: str = ""


class OrderLog:
    """Logs one line per step of an order's life, from its risk decision to its last fill,
    each beginning with the client order id and the strategy::

        order pb-12 [pair_cost] submitted BUY 10 @ 0.45 asset 1234…5678 GTC
        order pb-12 [pair_cost] partial fill 4 @ 0.45 maker fee 0 (leaves 6)

    Every line is bound with ``client_id``, ``strategy``, ``asset_id`` and ``step`` (and the
    step's own fields: ``side``, ``price``, ``size``, ``reason``, ``validator``, ...; prices and
    sizes as exact decimal strings), so a JSON line carries them as fields.

    Levels: INFO submitted, accepted, partial fill, filled, cancelled, expired, risk resized;
    WARNING risk rejected, rejected, unknown, fill reversed, adopted, state error; DEBUG risk
    approved, cancel requested, signed, settlement.

    It only reads events (never emits, never touches the kernel's state) and a handler of it
    never raises, so attaching it changes neither the decisions nor the journal. Attach it after
    recovery, or the recovered orders are logged again.
    """

    def __init__(self, name: str = "polybot.orders", max_tracked: int = 100_000, max_done: int = 10_000) -> None:
        self.name = name
        self.max_tracked = max_tracked
        self.max_done = max_done
        self.lines = 0  # lines logged (all levels)
        self.errors = 0  # events that could not be logged (counted; the first one is logged)
        self._log = logger.patch(self._rename)
        self._bus: Any = None
        self._orders_of: Any = None  # the kernel's order store, for orders no longer tracked here
        self._intents: dict[str, OrderIntent] = {}  # client id -> intent, until its risk decision
        self._orders: dict[str, _Order] = {}  # client id -> order, until it is done
        #: the latest done orders: their settlements and reversals come after the last fill
        self._done_orders: dict[str, _Order] = {}
        self._subs: list[tuple[type, Any]] = [
            (OrderIntent, self._on_intent),
            (OrderPlan, self._on_plan),
            (RiskApproved, self._on_risk),
            (RiskResized, self._on_risk),
            (RiskRejected, self._on_risk),
            (OrderEvent, self._on_order),
            (OrderStateError, self._on_state_error),
        ]

    def _rename(self, record: Any) -> None:
        record["name"] = self.name

    # ---------------------------------------------------------------- wiring

    def attach(self, kernel: Any) -> OrderLog:
        """Subscribe to ``kernel.bus`` (anything with a polybot ``Bus`` as ``bus``). Its lines
        follow the kernel's own handling of each event and precede the strategies'."""
        if self._bus is not None:
            raise RuntimeError("OrderLog is already attached")
        self._bus = kernel.bus
        self._orders_of = getattr(kernel, "orders", None)
        for t, h in self._subs:
            self._bus.subscribe(t, h, priority=-1)
        return self

    def close(self) -> None:
        """Unsubscribe and forget the orders in flight (it can be attached again)."""
        if self._bus is not None:
            for t, h in self._subs:
                self._bus.unsubscribe(h, t)
        self._bus = self._orders_of = None
        self._intents.clear()
        self._orders.clear()
        self._done_orders.clear()

    # ---------------------------------------------------------------- bookkeeping

    def _track(self, cid: str, o: _Order) -> None:
        if cid not in self._orders and len(self._orders) >= self.max_tracked:
            del self._orders[next(iter(self._orders))]  # the oldest; only a later line's detail is lost
        self._orders[cid] = o

    def _lookup(self, cid: str) -> _Order | None:
        o = self._orders.get(cid) or self._done_orders.get(cid)
        if o is None and self._orders_of is not None:
            ko = self._orders_of.get(cid)
            if ko is not None:
                it = ko.intent
                o = _Order(ko.strategy, ko.asset_id, it.side, it.price, it.size, it.tif)
        return o

    def _known(self, ev: OrderEvent) -> _Order:
        o = self._lookup(ev.client_id)
        if o is None:
            return _Order(ev.strategy, ev.asset_id)
        if (ev.strategy and ev.strategy != o.strategy) or (ev.asset_id and ev.asset_id != o.asset_id):
            return msgspec.structs.replace(o, strategy=ev.strategy or o.strategy, asset_id=ev.asset_id or o.asset_id)
        return o

    def _emit(self, level: str, cid: str, strategy: str, asset_id: str, step: str, text: str, **fields: Any) -> None:
        bound = {k: v for k, v in fields.items() if v not in ("", None)}
        self._log.bind(client_id=cid, strategy=strategy, asset_id=asset_id, step=step, **bound).log(
            level, "order {} [{}] {}", cid, strategy or "?", text)  # fmt: skip
        self.lines += 1

    def _failed(self, ev: Any, exc: Exception) -> None:
        self.errors += 1
        if self.errors == 1:
            logger.opt(exception=exc).error("order log could not log a {} (further failures are counted)", type(ev).__name__)

    # ---------------------------------------------------------------- decisions

    def _on_intent(self, ev: OrderIntent) -> None:
        self._keep_intent(ev)

    def _on_plan(self, ev: OrderPlan) -> None:
        for leg in ev.legs:
            self._keep_intent(leg)

    def _keep_intent(self, it: OrderIntent) -> None:
        """Kept until its risk decision, which follows at once (an intent that never gets one,
        e.g. from a foreign event source, is dropped when the table is full)."""
        if not it.client_id:
            return
        if len(self._intents) >= self.max_tracked:
            del self._intents[next(iter(self._intents))]
        self._intents[it.client_id] = it

    def _on_risk(self, ev: RiskDecisionEvent) -> None:
        try:
            for cid in ev.client_ids:
                it = self._intents.pop(cid, None)
                self._risk_line(ev, cid, it)
        except Exception as exc:  # noqa: BLE001 - a log line must never disturb the engine
            self._failed(ev, exc)

    def _risk_line(self, ev: RiskDecisionEvent, cid: str, it: OrderIntent | None) -> None:
        asset = it.asset_id if it is not None else ""
        what = f" ({_describe(it)})" if it is not None else ""
        common: dict[str, Any] = {"validator": ev.validator, "reason": ev.reason, "plan_id": ev.plan_id,
                                  "event_ts": ev.ts}  # fmt: skip
        if it is not None:
            common.update(side=it.side, price=from_units(it.price), size=from_units(it.size))
        if isinstance(ev, RiskRejected):
            self._emit("WARNING", cid, ev.strategy, asset, "risk_rejected",
                       f"risk rejected by {ev.validator or '?'}: {ev.reason or 'no reason given'}{what}", **common)  # fmt: skip
        elif isinstance(ev, RiskResized):
            self._emit("INFO", cid, ev.strategy, asset, "risk_resized",
                       f"risk resized by {ev.validator or '?'}: {from_units(ev.old_size)} -> {from_units(ev.new_size)}"
                       f"{': ' + ev.reason if ev.reason else ''}", new_size=from_units(ev.new_size),
                       reserved=from_units(ev.reserved), **common)  # fmt: skip
        else:
            assert isinstance(ev, RiskApproved)
            self._emit("DEBUG", cid, ev.strategy, asset, "risk_approved",
                       f"risk approved (reserved {from_units(ev.reserved)})", reserved=from_units(ev.reserved), **common)  # fmt: skip

    # ---------------------------------------------------------------- execution

    def _on_order(self, ev: OrderEvent) -> None:
        try:
            self._order_line(ev)
        except Exception as exc:  # noqa: BLE001 - a log line must never disturb the engine
            self._failed(ev, exc)

    def _order_line(self, ev: OrderEvent) -> None:
        cls = ev.__class__
        cid = ev.client_id
        if cls is OrderSubmitted or cls is OrderAdopted:
            it: OrderIntent = ev.intent  # type: ignore[attr-defined]
            o = _Order(ev.strategy or it.strategy, ev.asset_id or it.asset_id, it.side, it.price, it.size, it.tif)
            self._track(cid, o)
            fields = dict(side=it.side, price=from_units(it.price), size=from_units(it.size), tif=it.tif,
                          plan_id=it.plan_id, venue_order_id=ev.venue_order_id, event_ts=ev.ts)  # fmt: skip
            if cls is OrderSubmitted:
                self._emit("INFO", cid, o.strategy, o.asset_id, "submitted", f"submitted {_describe(it)}", **fields)
            else:
                filled = ev.filled  # type: ignore[attr-defined]
                self._emit("WARNING", cid, o.strategy, o.asset_id, "adopted",
                           f"adopted from the venue: {_describe(it)}{f' (filled {from_units(filled)})' if filled else ''}"
                           f"{f' venue={_venue_id(ev.venue_order_id)}' if ev.venue_order_id else ''}",
                           filled=from_units(filled), **fields)  # fmt: skip
            return
        o = self._known(ev)
        s, a = o.strategy, o.asset_id
        vid = ev.venue_order_id
        base: dict[str, Any] = {"venue_order_id": vid, "event_ts": ev.ts}
        if cls is OrderAccepted:
            delayed = " (matching delayed by the venue)" if ev.delayed else ""  # type: ignore[attr-defined]
            self._emit("INFO", cid, s, a, "accepted", f"accepted{delayed}{f' venue={_venue_id(vid)}' if vid else ''}",
                       delayed=ev.delayed or None, **base)  # type: ignore[attr-defined]  # fmt: skip
        elif cls is OrderPartiallyFilled or cls is OrderFilled:
            f: FillEvent = ev  # type: ignore[assignment]
            fee = f"fee {from_units(f.fee)}" + ("" if f.fee_asset == "pUSD" else f" {f.fee_asset}")
            rebate = f" rebate {from_units(f.rebate)}" if f.rebate else ""
            fields = dict(side=f.side, price=from_units(f.price), size=from_units(f.size), liquidity=f.liquidity,
                          fee=from_units(f.fee), rebate=from_units(f.rebate) if f.rebate else None,
                          leaves=from_units(f.leaves), trade_id=f.trade_id, **base)  # fmt: skip
            if cls is OrderFilled:
                self._emit("INFO", cid, s, a, "filled",
                           f"filled {from_units(f.size)} @ {from_units(f.price)} {f.liquidity} {fee}{rebate}", **fields)  # fmt: skip
                self._done(cid)
            else:
                self._emit("INFO", cid, s, a, "partial_fill",
                           f"partial fill {from_units(f.size)} @ {from_units(f.price)} {f.liquidity} {fee}{rebate} "
                           f"(leaves {from_units(f.leaves)})", **fields)  # fmt: skip
        elif cls is OrderCancelled:
            r = ev.reason  # type: ignore[attr-defined]
            why = f" ({r})" if r and r.lower() not in ("cancelled", "canceled") else ""
            self._emit("INFO", cid, s, a, "cancelled", f"cancelled{why}", reason=r, **base)
            self._done(cid)
        elif cls is OrderRejected:
            r = ev.reason  # type: ignore[attr-defined]
            self._emit("WARNING", cid, s, a, "rejected", f"rejected by executor: {r or 'no reason given'}", reason=r, **base)
            self._done(cid)
        elif cls is OrderExpired:
            self._emit("INFO", cid, s, a, "expired", "expired", **base)
            self._done(cid)
        elif cls is OrderUnknown:
            r = ev.reason  # type: ignore[attr-defined]
            self._emit("WARNING", cid, s, a, "unknown", f"outcome unknown, to reconcile: {r or 'no reason given'}",
                       reason=r, **base)  # fmt: skip
        elif cls is CancelSubmitted:
            r = ev.reason  # type: ignore[attr-defined]
            self._emit("DEBUG", cid, s, a, "cancel_requested", f"cancel requested ({r})" if r else "cancel requested",
                       reason=r, **base)  # fmt: skip
        elif cls is OrderSigned:
            g: OrderSigned = ev  # type: ignore[assignment]
            self._emit("DEBUG", cid, s, a, "signed",
                       f"signed{' (dry run, not sent)' if g.dry_run else ''} maker {from_units(g.maker_amount)} "
                       f"taker {from_units(g.taker_amount)}{f' venue={_venue_id(vid)}' if vid else ''}",
                       maker_amount=from_units(g.maker_amount), taker_amount=from_units(g.taker_amount),
                       exchange=g.exchange, dry_run=g.dry_run or None, **base)  # fmt: skip
        elif cls is FillSettlement:
            st: FillSettlement = ev  # type: ignore[assignment]
            self._emit("DEBUG", cid, s, a, "settlement", f"settlement {st.status} trade {short_id(st.trade_id, 6)}",
                       status=st.status, trade_id=st.trade_id, **base)  # fmt: skip
        elif cls is FillReversed:
            rv: FillReversed = ev  # type: ignore[assignment]
            self._emit("WARNING", cid, s, a, "fill_reversed",
                       f"fill reversed: trade {short_id(rv.trade_id, 6)} failed on chain"
                       f"{f' ({rv.reason})' if rv.reason else ''}", trade_id=rv.trade_id, reason=rv.reason, **base)  # fmt: skip
        else:  # an order event this version does not know: still one line, with its type
            self._emit("INFO", cid, s, a, cls.__name__, cls.__name__, **base)

    def _done(self, cid: str) -> None:
        o = self._orders.pop(cid, None)
        if o is not None and self.max_done > 0:
            if len(self._done_orders) >= self.max_done:
                del self._done_orders[next(iter(self._done_orders))]
            self._done_orders[cid] = o

    def _on_state_error(self, ev: OrderStateError) -> None:
        try:
            o = self._lookup(ev.client_id)
            s, a = (o.strategy, o.asset_id) if o is not None else ("", "")
            self._emit("WARNING", ev.client_id, s, a, "state_error",
                       f"{ev.event_type} refused in state {ev.from_state or '?'}: {ev.reason}",
                       event_type=ev.event_type, from_state=ev.from_state, reason=ev.reason, event_ts=ev.ts)  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            self._failed(ev, exc)


def _describe(it: OrderIntent) -> str:
    """``BUY 10 @ 0.45 asset 1234…5678 GTC`` (+ market, post-only, reduce-only, plan)."""
    flags = [it.tif]
    if it.kind == "market":
        flags.append("market")
    if it.post_only:
        flags.append("post-only")
    if it.reduce_only:
        flags.append("reduce-only")
    if it.plan_id:
        flags.append(f"plan {it.plan_id}")
    return f"{it.side} {from_units(it.size)} @ {from_units(it.price)} asset {short_id(it.asset_id)} {' '.join(flags)}"
