"""Prometheus metrics: per-stage kernel latency and the text exposition of the engine's state.

**Stage timing.** :class:`StageTiming` holds one fixed-bucket :class:`Histogram` per stage of an
input's trip through the kernel. It is off by default (``kernel.timing is None``): replays and
``polybot bench`` pay one attribute check per input and nothing else. The daemon turns it on
with ``kernel.timing = StageTiming()``; :meth:`Kernel.process` then takes its timed path. The
stages, in ``time.perf_counter_ns`` nanoseconds (exported in seconds):

* ``decode``: the source's decoder call (a refused frame's handling included), every input;
* ``journal``: ``write_input`` of the input, when one was written (a session without a
  journal, or a replay without ``--out``, has no observations here);
* ``strategy``: dispatching what the input caused on the bus (its events, a drop report, the
  timers a clock tick fires): every handler (the kernel's state, the executor, strategies, the
  monitor), *minus* the ``risk`` and ``submit`` time spent inside it; every input;
* ``risk``: the risk chain's check inside ``submit()`` (the kernel's own sanity check is not a
  chain call and is not in it), per intent or plan;
* ``submit``: handing approved orders over: the journal's write-ahead sync and
  ``executor.submit`` for each order, per approved intent or plan.

Each ``risk``/``submit`` section records its time *exclusive* of sections nested inside it (a
synchronous executor's events can reach a strategy that submits again when ``submit()`` is
called outside a dispatch) and reports its whole time to the section or input around it, which
subtracts it. The carried time is reset at the start of every input, so a section cut short by
an exception, or a ``submit()`` made outside ``process()``, cannot leak into the next input's
figures. The clock reads never reach an event or the journal: timing on or off, a replay writes
the same bytes.

**Exposition.** :func:`render_metrics` writes the Prometheus text format 0.0.4 from the kernel
(its stats, books and integrity counts, portfolio, exposure, orders, trading state) and the
:class:`~polybot.monitor.Monitor` (events by type, orders/fills/rejections by strategy and
reason, feed health). Money and sizes are exact integers (1e-6 base units) inside the engine;
here, at the edge, they become floats in dollars (pUSD) and shares. Definitions worth knowing:

* a *book resync* (``polybot_book_resyncs_total``) is a snapshot that brought an unhealthy book
  back to healthy (the integrity count ``resyncs``), not every ``book`` frame: the venue sends
  a ``book`` after trades too, and no adapter emits ``FeedResynced`` today;
* ``polybot_dropped_inputs_total{source,reason}`` is ``kernel.stats.drop_reasons``: decode
  errors at the door (``malformed``, ``schema``, ``bad_value``, ``decoder_error``,
  ``unknown_source`` and the decoders' own reasons) and the few inputs refused after decoding
  (``unknown_strategy``, ``bad_params``, ``reversal_of_unknown_fill``);
* counters restart from zero with the process (Prometheus handles resets); ``fills`` counts
  fill events as they came (a fill later reversed stays counted: counters never go down).
"""

from __future__ import annotations

import math
import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, get_args

from .events import TradingState, type_name
from .units import SCALE

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .monitor import Monitor

PREFIX = "polybot_"
STAGES = ("decode", "journal", "strategy", "risk", "submit")
TRADING_STATES: tuple[str, ...] = get_args(TradingState)

_perf_ns = time.perf_counter_ns


def latency_bounds_ns(low_exp: int = -6, high_exp: int = 1) -> tuple[int, ...]:
    """Upper bounds in ns from 10**low_exp s to 10**high_exp s in a 1-2.5-5 pattern
    (default: 1 us, 2.5 us, 5 us, 10 us, ... 5 s, 10 s: 22 buckets)."""
    out: list[int] = []
    for e in range(low_exp, high_exp):
        base = 10 ** (e + 9)  # ns (e >= -9)
        out += [base, base * 5 // 2, base * 5]
    out.append(10 ** (high_exp + 9))
    return tuple(out)


LATENCY_BOUNDS_NS = latency_bounds_ns()


class Histogram:
    """A fixed-bucket histogram: ``observe`` is one bisect on the precomputed upper bounds, one
    list increment and one addition. ``counts[i]`` is the number of observations ``v`` with
    ``bounds[i-1] < v <= bounds[i]``; the last slot holds those above every bound (+Inf)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[int | float] = LATENCY_BOUNDS_NS) -> None:
        b = tuple(bounds)
        if not b or any(not math.isfinite(x) for x in b) or any(x >= y for x, y in zip(b, b[1:])):
            raise ValueError("histogram bounds must be finite and strictly increasing")
        self.bounds = b
        self.counts = [0] * (len(b) + 1)
        self.sum: int | float = 0

    def observe(self, v: int | float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` for every bound, then ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        n = 0
        for le, c in zip((*self.bounds, math.inf), self.counts):
            n += c
            out.append((le, n))
        return out


class StageTiming:
    """Per-stage latency histograms of the kernel (ns). Set ``kernel.timing`` to one to turn
    timing on; ``None`` (the default) turns it off. See the module docstring for the stages."""

    __slots__ = ("decode", "journal", "strategy", "risk", "submit", "inner")

    def __init__(self, bounds_ns: Sequence[int] = LATENCY_BOUNDS_NS) -> None:
        self.decode = Histogram(bounds_ns)
        self.journal = Histogram(bounds_ns)
        self.strategy = Histogram(bounds_ns)
        self.risk = Histogram(bounds_ns)
        self.submit = Histogram(bounds_ns)
        #: ns spent in risk/submit sections since the current input's dispatch began (or, inside
        #: a section, in the sections nested in it): subtracted from the stage around them
        self.inner = 0

    def histograms(self) -> dict[str, Histogram]:
        return {s: getattr(self, s) for s in STAGES}

    def record_input(self, decode_ns: int, journal_ns: int, dispatch_ns: int) -> None:
        """One input's figures (``journal_ns < 0``: nothing was journaled). The dispatch less
        the risk/submit time inside it is the ``strategy`` stage. Resets the carried time."""
        d = self.decode
        d.counts[bisect_left(d.bounds, decode_ns)] += 1
        d.sum += decode_ns
        if journal_ns >= 0:
            j = self.journal
            j.counts[bisect_left(j.bounds, journal_ns)] += 1
            j.sum += journal_ns
        s = self.strategy
        v = dispatch_ns - self.inner
        if v < 0:  # (timing turned on inside a dispatch; cannot happen from a clean start)
            v = 0
        s.counts[bisect_left(s.bounds, v)] += 1
        s.sum += v
        self.inner = 0

    def section(self, hist: Histogram, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` timed into ``hist`` (the ``risk`` or ``submit`` histogram), exclusive of
        the sections nested in it; its whole time is carried to the enclosing stage. Records
        even when ``fn`` raises."""
        outer = self.inner
        self.inner = 0
        t0 = _perf_ns()
        try:
            return fn(*args)
        finally:
            dt = _perf_ns() - t0
            own = dt - self.inner
            hist.observe(own if own > 0 else 0)
            self.inner = outer + dt


# ============================================================================ exposition

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Labels = tuple[tuple[str, str], ...]


def escape_label(v: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def fmt_value(v: int | float) -> str:
    """A sample value: integers as integers, floats in their shortest exact form, +Inf/-Inf/NaN."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v)) + ".0"
    return repr(v)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels) + "}"


def _dollars(units: int) -> float:
    """Base units (1e-6) as a float of whole units: dollars (pUSD) or shares."""
    return units / SCALE


class _Writer:
    """Families in the text format, each name once, each with HELP and TYPE (also when it has
    no samples yet, so a dashboard's queries name metrics that exist from the first scrape)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: set[str] = set()

    def _head(self, name: str, typ: str, help_: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}")
        if name in self.names:
            raise ValueError(f"metric {name!r} written twice")
        self.names.add(name)
        self.lines.append(f"# HELP {name} {_escape_help(help_)}")
        self.lines.append(f"# TYPE {name} {typ}")

    def family(self, name: str, typ: str, help_: str,
               samples: Iterable[tuple[Labels, int | float]] | int | float) -> None:  # fmt: skip
        """``typ`` is ``counter`` (``_total`` is appended to ``name``) or ``gauge``; ``samples``
        a number (no labels) or ``(labels, value)`` pairs."""
        full = PREFIX + name + ("_total" if typ == "counter" else "")
        self._head(full, typ, help_)
        if isinstance(samples, (int, float)):
            samples = [((), samples)]
        for labels, v in sorted(samples):
            for k, _ in labels:
                if not _LABEL.match(k) or k.startswith("__"):
                    raise ValueError(f"bad label name {k!r} in {full}")
            self.lines.append(f"{full}{_labels(labels)} {fmt_value(v)}")

    def histogram(self, name: str, help_: str, series: Iterable[tuple[Labels, Histogram]],
                  scale: float = 1.0) -> None:  # fmt: skip
        """Cumulative ``_bucket{le=...}`` lines ending with ``+Inf``, then ``_sum`` and
        ``_count``; bounds and sum are divided by ``scale`` (ns -> s: 1e9)."""
        full = PREFIX + name
        self._head(full, "histogram", help_)
        for labels, h in series:
            count = 0
            for le, n in h.cumulative():
                self.lines.append(f"{full}_bucket{_labels((*labels, ('le', fmt_value(le / scale))))} {n}")
                count = n
            self.lines.append(f"{full}_sum{_labels(labels)} {fmt_value(h.sum / scale)}")
            self.lines.append(f"{full}_count{_labels(labels)} {count}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _split_drop(key: str) -> tuple[str, str]:
    """``"source:reason"`` (the kernel's drop key; a reason is an identifier, a source may hold
    a colon) -> (source, reason)."""
    source, sep, reason = key.rpartition(":")
    return (source, reason) if sep else (key, "")


#: the PnLUpdate fields exported, each its own gauge: (field, what it is)
_PNL_PARTS = (
    ("net", "realized + unrealized - fees + rebates"),
    ("realized", "realized, before fees"),
    ("unrealized", "unrealized: open positions' mark value minus their cost"),
    ("fees", "fees paid"),
    ("rebates", "maker rebates earned"),
)


def render_metrics(kernel: Kernel, monitor: Monitor, extra: Mapping[str, Any] | None = None) -> str:
    """The engine's metrics in the Prometheus text format 0.0.4 (see the module docstring).

    ``extra`` adds gauges the caller knows and the engine does not (an inbound queue depth,
    the journal's size): ``{name: value}`` or ``{name: (help, value)}``, exported as
    ``polybot_<name>`` (a name must not clash with a built-in one)."""
    k = kernel
    m = monitor
    st = k.stats
    w = _Writer()
    c, g = "counter", "gauge"

    # ------------------------------------------------------------------ the door and the bus
    w.family("inputs", c, "Inputs taken by the kernel, by source.", [((("source", s),), n) for s, n in st.by_source.items()])
    w.family("decoded_events", c, "Events decoded from inputs (market data, reports, commands).", st.events)
    w.family("events", c, "Events dispatched on the bus (decoded and engine-made), by event type.",
             _merged(((("type", type_name(cls) or cls.__name__),), n) for cls, n in m.events_by_type.items()))  # fmt: skip
    w.family("dropped_inputs", c, "Inputs dropped: decode errors at the door and inputs refused after decoding, by source and reason.",
             [(tuple(zip(("source", "reason"), _split_drop(key))), n) for key, n in st.drop_reasons.items()])  # fmt: skip
    w.family("handler_errors", c, "Bus handlers that raised (isolated, reported as handler_error events).", k.bus.handler_errors)
    timing = k.timing
    w.family("stage_timing_enabled", g, "1 when per-stage kernel latency is being measured.", 1 if timing is not None else 0)
    w.histogram("stage_latency_seconds",
                "Kernel latency per stage: decode, journal (per input), strategy (bus dispatch less risk and submit), risk (chain check), submit (hand-over to the executor).",
                [((("stage", s),), h) for s, h in timing.histograms().items()] if timing is not None else [],
                scale=1e9)  # fmt: skip
    w.family("event_time_seconds", g, "The kernel clock: receive time of the last input (Unix seconds).", k.clock.now() / 1e9)

    # ------------------------------------------------------------------ books
    books = list(k.books.items())
    integ = k.integrity.summary()["total"]
    w.family("books", g, "Order books held.", len(books))
    w.family("books_unhealthy", g, "Books currently unhealthy (hash or top-of-book divergence, reconnect, parse failure) until a snapshot.",
             sum(1 for _, b in books if not b.healthy))  # fmt: skip
    w.family("book_unhealthy_max_seconds", g, "How long the longest-unhealthy book has been unhealthy (kernel time, s).",
             m.worst_book_unhealthy_s()[0])  # fmt: skip
    w.family("book_hash_checks", c, "Book hash checks against the venue's hash, by result (unsettled: pending at the end of input; unverified: a trade-triggered book no last trade price matched).",
             [((("result", r),), integ.get(r, 0)) for r in ("passed", "failed", "unsettled", "unverified")])  # fmt: skip
    w.family("book_resyncs", c, "Snapshots that brought an unhealthy book back to healthy.", integ.get("resyncs", 0))
    w.family("book_unhealthy_transitions", c, "Times a healthy book became unhealthy.", integ.get("unhealthy", 0))
    w.family("book_bbo_mismatches", c, "Book changes whose venue best bid/ask differed from the local book.", integ.get("bbo_mismatch", 0))
    w.family("book_snapshots", c, "Book snapshots applied.", integ.get("snapshots", 0))

    # ------------------------------------------------------------------ orders
    strategies = sorted(k.strategies)
    w.family("intents", c, "Order intents strategies submitted (each leg of a plan counts).", st.intents)
    w.family("orders_submitted", c, "Orders approved and submitted, by strategy.",
             [((("strategy", s),), n) for s, n in m.orders_by_strategy.items()])  # fmt: skip
    w.family("fills", c, "Fills (partial and full) reported by the executor, by strategy and liquidity (maker|taker).",
             [((("strategy", s), ("liquidity", liq)), n) for (s, liq), n in m.fills_by.items()])  # fmt: skip
    w.family("fill_volume_shares", c, "Shares filled, by strategy.", [((("strategy", s),), n / SCALE) for s, n in m.fill_volume.items()])
    w.family("risk_rejections", c, "Intents the risk chain rejected, by validator and strategy.",
             [((("validator", v), ("strategy", s)), n) for (v, s), n in m.risk_rejects.items()])  # fmt: skip
    w.family("risk_resizes", c, "Intents the risk chain resized, by validator.", [((("validator", v),), n) for v, n in m.risk_resizes.items()])
    w.family("executor_rejections", c, "Orders the executor or venue rejected, by reason (a bounded label).",
             [((("reason", r),), n) for r, n in m.exec_rejects.items()])  # fmt: skip
    w.family("orders_terminal", c, "Orders that ended without a full fill, by state (cancelled|expired).",
             [((("state", s),), m.terminal.get(s, 0)) for s in ("cancelled", "expired")])  # fmt: skip
    w.family("order_state_errors", c, "Executor reports the order state machine refused.", st.illegal_transitions)
    w.family("duplicate_fills", c, "Fills reported twice (same order and trade), not counted again.", st.duplicate_fills)
    open_by: dict[str, int] = dict.fromkeys(strategies, 0)
    for o in k.orders.open_orders():
        open_by[o.strategy] = open_by.get(o.strategy, 0) + 1
    w.family("open_orders", g, "Open orders, by strategy.", [((("strategy", s),), n) for s, n in open_by.items()])

    # ------------------------------------------------------------------ portfolio (dollars)
    pf = k.portfolio
    marks = pf.marks(k.books)
    total = pf.pnl("", marks)
    pnl_strats = sorted(set(pf.strategies()) | set(strategies))
    per = {s: pf.pnl(s, marks) for s in pnl_strats}
    for part, what in _PNL_PARTS:
        w.family(f"pnl_{part}_dollars", g, f"Account PnL, {what} (pUSD).", _dollars(getattr(total, part)))
    for part, what in _PNL_PARTS:
        w.family(f"strategy_pnl_{part}_dollars", g, f"PnL per strategy, {what} (pUSD).",
                 [((("strategy", s),), _dollars(getattr(p, part))) for s, p in per.items()])  # fmt: skip
    w.family("cash_dollars", g, "Account cash: starting collateral plus what fills, fees, rebates and settlements moved (pUSD).",
             _dollars(pf.cash))  # fmt: skip
    w.family("exposure_dollars", g, "Worst-case cash reserved by open orders and approved in-flight intents (pUSD).",
             _dollars(k.exposure.total))  # fmt: skip
    exp_by: dict[str, int] = dict.fromkeys(strategies, 0)
    for strat, _aid, amt in k.exposure.by_order.values():
        exp_by[strat] = exp_by.get(strat, 0) + amt
    w.family("strategy_exposure_dollars", g, "Open-order reserve per strategy (pUSD).",
             [((("strategy", s),), _dollars(v)) for s, v in exp_by.items()])  # fmt: skip
    w.family("position_value_dollars", g, "Mark value of the open positions (pairs at 1, the rest at the mark) (pUSD).",
             _dollars(pf.mark_value(marks)))  # fmt: skip
    w.family("strategy_position_value_dollars", g, "Mark value of the open positions per strategy (pUSD).",
             [((("strategy", s),), _dollars(pf.mark_value(marks, s))) for s in pnl_strats])  # fmt: skip

    # ------------------------------------------------------------------ state and feeds
    w.family("trading_state", g, "The trading state: 1 for the current one (active|reducing|halted).",
             [((("state", s),), 1 if k.trading_state == s else 0) for s in TRADING_STATES])  # fmt: skip
    w.family("strategy_enabled", g, "1 when the strategy instance is enabled.",
             [((("strategy", s),), 1 if k.strategies[s].enabled else 0) for s in strategies])  # fmt: skip
    feeds = list(m.feeds.values())
    w.family("feed_up", g, "1 when the feed is connected, 0 otherwise (starting, disconnected, stale, finished).",
             [((("feed", f.name),), 1 if f.state == "connected" else 0) for f in feeds])  # fmt: skip
    w.family("feed_disconnects", c, "Feed disconnections, by feed.", [((("feed", f.name),), f.disconnects) for f in feeds])
    w.family("feed_stale", c, "Times a feed went stale, by feed.", [((("feed", f.name),), f.stale) for f in feeds])
    w.family("start_time_seconds", g, "When the monitor (the daemon's operator view) started (Unix seconds).", m.started_wall)
    w.family("uptime_seconds", g, "Seconds since the monitor started.", max(0.0, time.time() - m.started_wall))

    for name, val in (extra or {}).items():
        help_, v = val if isinstance(val, tuple) else (f"{name} (supplied by the caller).", val)
        if not isinstance(v, (int, float)):
            raise TypeError(f"extra metric {name!r}: value must be a number, got {type(v).__name__}")
        w.family(name[len(PREFIX):] if name.startswith(PREFIX) else name, g, help_, v)
    return w.text()


def _merged(pairs: Iterable[tuple[Labels, int]]) -> list[tuple[Labels, int]]:
    """Sum samples with the same labels (two event classes can share a wire tag)."""
    acc: dict[Labels, int] = {}
    for labels, n in pairs:
        acc[labels] = acc.get(labels, 0) + n
    return list(acc.items())
