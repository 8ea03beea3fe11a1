"""Self-contained HTML report of a session: a replay (``polybot replay FILE --report out.html``)
or a live session's journal replayed faithfully (``polybot report JOURNAL``).

One file, nothing external: the charts are inline SVG drawn here, the styles are inline, and a
few lines of inline JavaScript add hover read-outs to the equity and drawdown charts (the page is
complete without them: fill markers carry native SVG ``<title>`` tooltips).

How it is built:

* :class:`SessionSeries` attaches to the replay's :class:`~polybot.report.SessionReport` (through
  ``replay(..., on_report=...)``) and subscribes to the kernel's bus after it, so each of its
  handlers sees the report's figures already updated by the same event. It reuses the report's
  numbers: the equity is the report's account equity (``realized + unrealized - fees +
  rebates``, marked with the kernel's books) taken each time the report takes a sample, the
  drawdown is the report's running peak minus that equity, a fill is drawn only if the report
  counted it, an executor rejection only if the report counted it as ending an order.
* Every time series is bounded: :class:`Downsampler` keeps, per time bucket, the first, lowest,
  highest and last point, and widens its buckets as the session grows, so a series never holds
  more than ``max_points`` points however long the recording. Book prices are fed only when
  the best bid or ask changes. Fill markers are capped per asset (thinned evenly, the chart says
  how many it shows), rejection reasons are capped (the rest count as "other reasons") and the
  individual risk rejections kept are the most recent ones only.
* :func:`render_html` turns the replay's summary and the series into the page. Every string
  that comes from data (strategy names, market questions, outcomes, reasons, ids, file names)
  goes through :func:`html.escape`.

Money is in integer base units (:mod:`polybot.units`) everywhere except chart coordinates and
axis labels, which are display only.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .events import BookDelta, BookSnapshot, Event, FillEvent, MarketResolved, OrderRejected, RiskRejected
from .units import SCALE, from_units

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config
    from .report import SessionReport

__all__ = ["Downsampler", "HtmlReport", "SessionSeries", "default_report_path", "render_html", "report_journal"]

#: the key of the bucket that collects rejection reasons beyond the cap
OTHER_REASONS = None


# ============================================================================ bounded series


class Downsampler:
    """A time series bounded to ``max_points`` points.

    Points go into time buckets of a common width; each bucket keeps its first, lowest,
    highest and last point (ties: the earliest). When there are more than ``max_points // 4``
    buckets the width is multiplied so that at most half of them remain (buckets nest, so a
    merge is exact: the merged bucket's first, extremes and last are those of the points it
    covers). The series' first and last points and its overall minimum and maximum are always
    kept. Times must not go backwards (a time earlier than the last one counts as the last one).
    """

    __slots__ = ("max_buckets", "width", "t0", "last_t", "buckets", "count")

    def __init__(self, max_points: int = 1000) -> None:
        if max_points < 4:
            raise ValueError(f"max_points must be at least 4, not {max_points}")
        self.max_buckets = max_points // 4
        self.width = 1  # ns per bucket
        self.t0: int | None = None
        self.last_t = 0
        # [key, t_first, v_first, t_min, v_min, t_max, v_max, t_last, v_last]
        self.buckets: list[list[int]] = []
        self.count = 0  # points added

    def __len__(self) -> int:
        return len(self.points())

    def add(self, t: int, v: int) -> None:
        self.count += 1
        bs = self.buckets
        if self.t0 is None:
            self.t0 = self.last_t = t
        elif t < self.last_t:
            t = self.last_t
        self.last_t = t
        k = (t - self.t0) // self.width
        if bs:
            b = bs[-1]
            if k == b[0]:
                if v < b[4]:
                    b[3] = t
                    b[4] = v
                elif v > b[6]:
                    b[5] = t
                    b[6] = v
                b[7] = t
                b[8] = v
                return
        bs.append([k, t, v, t, v, t, v, t, v])
        if len(bs) > self.max_buckets:
            self._compact()

    def _compact(self) -> None:
        bs = self.buckets
        span = bs[-1][0] + 1  # keys run from 0 (the first point's bucket)
        target = max(1, self.max_buckets // 2)
        m = max(2, -(-span // target))
        self.width *= m
        out: list[list[int]] = []
        for b in bs:
            k = b[0] // m
            if out and out[-1][0] == k:
                a = out[-1]
                if b[4] < a[4]:
                    a[3] = b[3]
                    a[4] = b[4]
                if b[6] > a[6]:
                    a[5] = b[5]
                    a[6] = b[6]
                a[7] = b[7]
                a[8] = b[8]
            else:
                b[0] = k
                out.append(b)
        self.buckets = out

    def points(self) -> list[tuple[int, int]]:
        """The kept points in time order."""
        out: list[tuple[int, int]] = []
        for b in self.buckets:
            lo = (b[3], b[4])
            hi = (b[5], b[6])
            prev = None
            for p in ((b[1], b[2]), *((lo, hi) if lo[0] <= hi[0] else (hi, lo)), (b[7], b[8])):
                if p != prev:  # the same point again (say the first is also the lowest)
                    out.append(p)
                    prev = p
        return out

    @property
    def last(self) -> tuple[int, int] | None:
        if not self.buckets:
            return None
        b = self.buckets[-1]
        return b[7], b[8]


class _PriceSeries:
    """Best bid and ask of one asset, fed on change only."""

    __slots__ = ("bid", "ask", "last_bid", "last_ask")

    def __init__(self, max_points: int) -> None:
        self.bid = Downsampler(max_points)
        self.ask = Downsampler(max_points)
        self.last_bid = -1
        self.last_ask = -1

    def update(self, t: int, bid: int, ask: int) -> None:
        if bid != self.last_bid:
            self.last_bid = bid
            self.bid.add(t, bid)
        if ask != self.last_ask:
            self.last_ask = ask
            self.ask.add(t, ask)


# ============================================================================ the collector


class SessionSeries:
    """Bounded time series and rejection lists of one session, read off a
    :class:`~polybot.report.SessionReport` as the replay runs. Create it before the first input
    (``replay(..., on_report=html.attach)`` with an :class:`HtmlReport`): it subscribes after the
    report, so each handler reads figures the report already updated for the same event."""

    def __init__(self, report: SessionReport, *, equity_points: int = 2000, price_points: int = 600,
                 max_fill_markers: int = 1000, recent: int = 50, max_reasons: int = 200) -> None:  # fmt: skip
        self.report = report
        k = self.kernel = report.kernel
        self.strategy_classes = {sid: type(s).name or type(s).__name__ for sid, s in k.strategies.items()}
        self.t_first = 0
        self.t_last = 0
        d = report.dd_total
        self.start_equity = d.last
        self.equity = Downsampler(equity_points)
        self.drawdown = Downsampler(equity_points)
        self.final_equity: int | None = None
        self.final_drawdown = 0
        self._samples = report.samples
        self._price_points = price_points
        self.prices: dict[str, _PriceSeries] = {}
        self.max_fill_markers = max_fill_markers
        #: asset -> fill markers (ts, side, price, size, liquidity, fee, rebate, strategy, client id)
        self.fills: dict[str, list[tuple[Any, ...]]] = {}
        #: asset -> [fills, buys, sells, maker, taker]
        self.fill_counts: dict[str, list[int]] = {}
        self._fill_stride: dict[str, int] = {}
        self._fills_seen = report.totals.fills
        self.max_reasons = max_reasons
        #: (validator, reason pattern or OTHER_REASONS) -> [orders, decisions, latest reason]
        self.risk_reasons: dict[tuple[str, str | None], list[Any]] = {}
        self.risk_orders = 0
        self.risk_decisions = 0
        self.risk_recent: deque[tuple[int, str, tuple[str, ...], str, str, str]] = deque(maxlen=recent)
        #: reason pattern or OTHER_REASONS -> [orders, latest reason]
        self.exec_reasons: dict[str | None, list[Any]] = {}
        self.exec_recent: deque[tuple[int, str, str, str, str]] = deque(maxlen=recent)
        self._exec_seen = report.totals.orders_rejected_exec
        self._get_book = k.books.get
        bus = k.bus
        self._subs = [
            (Event, self._on_first),
            (BookSnapshot, self._on_book),
            (BookDelta, self._on_book),
            (FillEvent, self._on_fill),
            (MarketResolved, self._on_resolved),
            (RiskRejected, self._on_risk_rejected),
            (OrderRejected, self._on_exec_rejected),
        ]
        for t, h in self._subs:
            bus.subscribe(t, h)

    def close(self) -> None:
        for t, h in self._subs:
            self.kernel.bus.unsubscribe(h, t)

    # ------------------------------------------------------------------ handlers

    def _on_first(self, ev: Event) -> None:
        if ev.ts > 0:  # the session's first event time; then this handler leaves the bus
            self.t_first = ev.ts
            self.kernel.bus.unsubscribe(self._on_first, Event)
            self._subs.remove((Event, self._on_first))

    def _sample(self, ts: int) -> None:
        """The report took an equity sample on this event: record it."""
        self._samples = self.report.samples
        d = self.report.dd_total
        self.equity.add(ts, d.last)
        self.drawdown.add(ts, d.peak - d.last)

    def _on_book(self, ev: BookSnapshot | BookDelta) -> None:
        if self.report.samples != self._samples:
            self._sample(ev.ts)
        aid = ev.asset_id
        b = self._get_book(aid)
        if b is None:
            return
        ps = self.prices.get(aid)
        if ps is None:
            ps = self.prices[aid] = _PriceSeries(self._price_points)
        ps.update(ev.ts, b.best_bid, b.best_ask)

    def _on_resolved(self, ev: MarketResolved) -> None:
        if self.report.samples != self._samples:
            self._sample(ev.ts)

    def _on_fill(self, ev: FillEvent) -> None:
        rep = self.report
        if rep.samples != self._samples:
            self._sample(ev.ts)
        n = rep.totals.fills
        if n == self._fills_seen:
            return  # the report did not count it (unknown order, refused transition)
        self._fills_seen = n
        o = self.kernel.orders.get(ev.client_id)
        strategy = o.strategy if o is not None else ev.strategy
        aid = ev.asset_id
        c = self.fill_counts.get(aid)
        if c is None:
            c = self.fill_counts[aid] = [0, 0, 0, 0, 0]
        i = c[0]
        c[0] += 1
        c[1 if ev.side == "BUY" else 2] += 1
        c[3 if ev.liquidity == "maker" else 4] += 1
        stride = self._fill_stride.get(aid, 1)
        if i % stride:
            return
        lst = self.fills.get(aid)
        if lst is None:
            lst = self.fills[aid] = []
        lst.append((ev.ts, ev.side, ev.price, ev.size, ev.liquidity, ev.fee, ev.rebate, strategy, ev.client_id))
        if len(lst) > self.max_fill_markers:  # keep every other one: the fills numbered 0, 2s, 4s, ...
            self._fill_stride[aid] = stride * 2
            self.fills[aid] = lst[::2]

    def _on_risk_rejected(self, ev: RiskRejected) -> None:
        n = len(ev.client_ids) or 1  # orders, as the report counts them
        key: tuple[str, str | None] = (ev.validator, reason_pattern(ev.reason))
        c = self.risk_reasons.get(key)
        if c is None:
            if len(self.risk_reasons) >= self.max_reasons:
                key = (ev.validator, OTHER_REASONS)
                c = self.risk_reasons.get(key)
            if c is None:
                c = self.risk_reasons[key] = [0, 0, ""]
        c[0] += n
        c[1] += 1
        c[2] = ev.reason
        self.risk_orders += n
        self.risk_decisions += 1
        self.risk_recent.append((ev.ts, ev.strategy, ev.client_ids, ev.validator, ev.reason, ev.plan_id))

    def _on_exec_rejected(self, ev: OrderRejected) -> None:
        n = self.report.totals.orders_rejected_exec
        if n == self._exec_seen:
            return  # a repeat, or a rejection that did not end an order: the report skipped it
        self._exec_seen = n
        o = self.kernel.orders.get(ev.client_id)
        strategy = o.strategy if o is not None else ev.strategy
        asset = o.asset_id if o is not None else ev.asset_id
        reason: str | None = reason_pattern(ev.reason)
        if reason not in self.exec_reasons and len(self.exec_reasons) >= self.max_reasons:
            reason = OTHER_REASONS
        c = self.exec_reasons.get(reason)
        if c is None:
            c = self.exec_reasons[reason] = [0, ""]
        c[0] += 1
        c[1] = ev.reason
        self.exec_recent.append((ev.ts, strategy, ev.client_id, asset, ev.reason))

    # ------------------------------------------------------------------ the end

    def finish(self, summary: dict[str, Any]) -> None:
        """The session's end: its last time and final equity (the summary's, which is the
        report's equity at the end)."""
        now = self.kernel.clock.now()
        self.t_last = max(now, self.equity.last_t, self.t_first)
        if not self.t_first:
            self.t_first = self.t_last
        rep = summary.get("report") or self.report.summary()
        final = rep["totals"]["net_pnl"]
        self.final_equity = final
        self.final_drawdown = max(0, self.report.dd_total.peak - final)


# ============================================================================ formatting


def _e(v: Any) -> str:
    """Escape data for HTML text and attribute values."""
    return html.escape(str(v), quote=True)


class _H(str):
    """Markup already escaped (a table cell passes it through)."""


def _short(s: str, head: int = 8, tail: int = 4) -> str:
    return s if len(s) <= head + tail + 1 else f"{s[:head]}…{s[-tail:]}"


_EPOCH_2000 = 946_684_800 * 10**9


def _fmt_ts(ts: int, absolute: bool, t0: int = 0) -> str:
    if not absolute:
        return f"+{(ts - t0) / 1e9:.3f} s"
    d = datetime.fromtimestamp(ts // 10**9, tz=timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S") + f".{(ts % 10**9) // 10**6:03d}"


def _fmt_duration(ns: int) -> str:
    s = ns / 1e9
    if s < 60:
        return f"{s:.3f} s" if s < 10 else f"{s:.1f} s"
    m, sec = divmod(int(s), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    if d:
        return f"{d} d {h} h {m} min"
    if h:
        return f"{h} h {m} min {sec} s"
    return f"{m} min {sec} s"


def _money_class(v: int) -> str:
    return "pos" if v > 0 else "neg" if v < 0 else "zero"


def _num(n: int) -> str:
    return f"{n:,}"


# ============================================================================ SVG charts

W = 1160  # viewBox width of every chart
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 18, 12, 26


class _Frame:
    """Maps (time ns, value float) to viewBox coordinates."""

    def __init__(self, height: int, t0: int, t1: int, v0: float, v1: float) -> None:
        self.height = height
        self.t0, self.t1 = t0, max(t1, t0 + 1)
        if v1 <= v0:
            v0, v1 = v0 - 1.0, v1 + 1.0
        self.v0, self.v1 = v0, v1
        self.pw = W - _LEFT - _RIGHT
        self.ph = height - _TOP - _BOTTOM

    def x(self, t: int) -> float:
        return _LEFT + (t - self.t0) * self.pw / (self.t1 - self.t0)

    def y(self, v: float) -> float:
        return _TOP + (self.v1 - v) * self.ph / (self.v1 - self.v0)

    @property
    def bottom(self) -> float:
        return _TOP + self.ph


def _c(v: float) -> str:
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    e = 10 ** math.floor(math.log10(raw))
    f = raw / e
    return (1 if f <= 1 else 2 if f <= 2 else 5 if f <= 5 else 10) * e


def _value_ticks(v0: float, v1: float, n: int = 5) -> tuple[list[float], int]:
    step = _nice_step((v1 - v0) / n)
    dec = min(6, max(0, -math.floor(math.log10(step) + 1e-9)))
    first = math.ceil(v0 / step - 1e-9)
    ticks = []
    i = first
    while i * step <= v1 + step * 1e-9:
        ticks.append(round(i * step, 9))
        i += 1
    return ticks, dec


def _value_range(vals: Iterable[float], pad: float = 0.08, floor: float | None = None) -> tuple[float, float]:
    vs = list(vals)
    lo, hi = (min(vs), max(vs)) if vs else (0.0, 1.0)
    span = hi - lo
    if span <= 0:
        span = abs(hi) or 1.0
    lo, hi = lo - span * pad, hi + span * pad
    if floor is not None:
        lo = max(lo, floor)
    return lo, hi


_TIME_STEPS_NS = [int(x * 1e6) for x in (1, 2, 5, 10, 20, 50, 100, 200, 500)] + [
    int(x * 1e9) for x in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                           43200, 86400, 172800, 604800, 1209600, 2592000)
]  # fmt: skip


def _time_ticks(t0: int, t1: int, absolute: bool, n: int = 8) -> list[tuple[int, str]]:
    span = max(t1 - t0, 1)
    step = next((s for s in _TIME_STEPS_NS if span / s <= n), _TIME_STEPS_NS[-1])
    base = 0 if absolute else t0
    first = base + -(-(t0 - base) // step) * step
    out = []
    t = first
    while t <= t1:
        if not absolute:
            rel = (t - t0) / 1e9
            label = f"+{rel:.3f}s" if step < 10**9 else f"+{_fmt_duration(t - t0)}" if rel >= 60 else f"+{rel:g}s"
        else:
            d = datetime.fromtimestamp(t // 10**9, tz=timezone.utc)
            if step < 10**9:
                label = d.strftime("%H:%M:%S") + f".{(t % 10**9) // 10**6:03d}"
            elif step < 60 * 10**9:
                label = d.strftime("%H:%M:%S")
            elif step < 86400 * 10**9:
                label = d.strftime("%H:%M") if span < 86400 * 10**9 else d.strftime("%m-%d %H:%M")
            else:
                label = d.strftime("%Y-%m-%d")
        out.append((t, label))
        t += step
    return out


def _axes(f: _Frame, yticks: Sequence[float], ydec: int, absolute: bool, xlabels: bool = True) -> list[str]:
    out = ['<g class="axes">']
    for v in yticks:
        y = _c(f.y(v))
        label = f"{v:.{ydec}f}"
        if label.startswith("-") and float(label) == 0:
            label = label[1:]
        out.append(f'<line class="grid" x1="{_LEFT}" x2="{W - _RIGHT}" y1="{y}" y2="{y}"/>'
                   f'<text class="ylab" x="{_LEFT - 8}" y="{y}" dy="0.32em">{_e(label)}</text>')  # fmt: skip
    for t, label in _time_ticks(f.t0, f.t1, absolute):
        x = _c(f.x(t))
        out.append(f'<line class="grid vgrid" x1="{x}" x2="{x}" y1="{_TOP}" y2="{_c(f.bottom)}"/>')
        if xlabels:
            out.append(f'<text class="xlab" x="{x}" y="{_c(f.bottom + 17)}">{_e(label)}</text>')
    out.append(f'<rect class="frame" x="{_LEFT}" y="{_TOP}" width="{f.pw}" height="{f.ph}"/>')
    out.append("</g>")
    return out


def _svg_open(cls: str, height: int, label: str, hover: list[list[Any]] | None = None) -> str:
    data = f' data-hover="{_e(json.dumps(hover, separators=(",", ":")))}"' if hover else ""
    return (f'<svg class="chart {cls}" viewBox="0 0 {W} {height}" width="100%" role="img" '
            f'aria-label="{_e(label)}" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg"{data}>')  # fmt: skip


def _equity_charts(series: SessionSeries, absolute: bool) -> str:
    t0, t1 = series.t_first, series.t_last
    eq = [(t0, series.start_equity), *series.equity.points()]
    if series.final_equity is not None:
        eq.append((t1, series.final_equity))
    dd = [(t0, 0), *series.drawdown.points(), (t1, series.final_drawdown)]
    eqv = [v / SCALE for _, v in eq]
    lo, hi = _value_range([*eqv, 0.0])
    f = _Frame(270, t0, t1, lo, hi)
    ticks, dec = _value_ticks(f.v0, f.v1)
    pts = [(f.x(t), f.y(v / SCALE)) for t, v in eq]
    line = " ".join(f"{_c(x)},{_c(y)}" for x, y in pts)
    zero = f.y(0.0)
    area = f"{_c(pts[0][0])},{_c(zero)} {line} {_c(pts[-1][0])},{_c(zero)}"
    hover = [[round(x, 1), round(y, 1), f"{_fmt_ts(t, absolute, t0)}  ·  equity {from_units(v)}"]
             for (x, y), (t, v) in zip(pts, eq)]  # fmt: skip
    out = [_svg_open("equity", f.height, "account net PnL over event time", hover)]
    out += _axes(f, ticks, dec, absolute)
    out.append(f'<polygon class="equity-area" points="{area}"/>')
    out.append(f'<line class="zero" x1="{_LEFT}" x2="{W - _RIGHT}" y1="{_c(zero)}" y2="{_c(zero)}"/>')
    out.append(f'<polyline class="equity-line" points="{line}"/>')
    out.append('<circle class="hover-dot" r="4" cx="-10" cy="-10"/></svg>')

    ddv = [v / SCALE for _, v in dd]
    top = max(ddv) if ddv else 0.0
    g = _Frame(160, t0, t1, -(top * 1.1 if top > 0 else 1.0), 0.0)
    dticks, ddec = _value_ticks(g.v0, g.v1, 3)
    dpts = [(g.x(t), g.y(-v / SCALE)) for t, v in dd]
    dline = " ".join(f"{_c(x)},{_c(y)}" for x, y in dpts)
    base = g.y(0.0)
    darea = f"{_c(dpts[0][0])},{_c(base)} {dline} {_c(dpts[-1][0])},{_c(base)}"
    dhover = [[round(x, 1), round(y, 1), f"{_fmt_ts(t, absolute, t0)}  ·  drawdown {from_units(v)}"]
              for (x, y), (t, v) in zip(dpts, dd)]  # fmt: skip
    out.append(_svg_open("drawdown", g.height, "drawdown from the running peak over event time", dhover))
    out += _axes(g, dticks, ddec, absolute)
    out.append(f'<polygon class="drawdown-area" points="{darea}"/>')
    out.append(f'<polyline class="drawdown-line" points="{dline}"/>')
    out.append('<circle class="hover-dot dd" r="4" cx="-10" cy="-10"/></svg>')
    return "\n".join(out)


def _step_path(f: _Frame, pts: list[tuple[int, int]], t_end: int) -> str:
    """A step line through ``pts`` (value 0 = that side of the book is empty: a gap),
    held to ``t_end`` after the last point."""
    d: list[str] = []
    prev: tuple[float, float] | None = None
    for t, v in pts:
        x = f.x(t)
        if prev is not None:
            d.append(f"L{_c(x)},{_c(prev[1])}")
        if v <= 0:
            prev = None
            continue
        y = f.y(v / SCALE)
        d.append(f"{'L' if prev is not None else 'M'}{_c(x)},{_c(y)}")
        prev = (x, y)
    if prev is not None:
        d.append(f"L{_c(f.x(t_end))},{_c(prev[1])}")
    return "".join(d)


def _marker(x: float, y: float, side: str) -> str:
    """A triangle: up for a buy, down for a sell."""
    r = 5.5
    if side == "BUY":
        d = f"M{_c(x)},{_c(y - r)}L{_c(x + r)},{_c(y + r * 0.8)}L{_c(x - r)},{_c(y + r * 0.8)}Z"
    else:
        d = f"M{_c(x)},{_c(y + r)}L{_c(x + r)},{_c(y - r * 0.8)}L{_c(x - r)},{_c(y - r * 0.8)}Z"
    return d


def asset_label(kernel: Any, asset_id: str, market: str = "") -> tuple[str, str]:
    """(market question or id, outcome name or short asset id) of an asset."""
    info = kernel.catalog.for_asset(asset_id)
    if info is None:
        return (market or "unknown market", _short(asset_id))
    q = info.question or info.slug or _short(info.market, 10, 6)
    try:
        i = info.asset_ids.index(asset_id)
        outcome = info.outcomes[i] if i < len(info.outcomes) else f"outcome {i}"
    except ValueError:
        outcome = _short(asset_id)
    return q, outcome


def _price_chart(series: SessionSeries, aid: str, absolute: bool) -> str:
    t0, t1 = series.t_first, series.t_last
    ps = series.prices.get(aid)
    bids = ps.bid.points() if ps is not None else []
    asks = ps.ask.points() if ps is not None else []
    fills = series.fills.get(aid, [])
    vals = [v / SCALE for _, v in (*bids, *asks) if v > 0] + [fl[2] / SCALE for fl in fills]
    lo, hi = _value_range(vals, pad=0.06)
    if hi - lo < 0.02:
        mid = (hi + lo) / 2
        lo, hi = mid - 0.01, mid + 0.01
    lo, hi = max(lo, 0.0), min(hi, 1.0)
    f = _Frame(250, t0, t1, lo, hi)
    ticks, dec = _value_ticks(f.v0, f.v1, 6)
    counts = series.fill_counts.get(aid, [0, 0, 0, 0, 0])
    q, outcome = asset_label(series.kernel, aid)
    out = [_svg_open("prices", f.height, f"best bid, best ask and fills of {q} {outcome}")]
    out += _axes(f, ticks, max(dec, 2), absolute)
    if bids:
        out.append(f'<path class="bid-line" d="{_step_path(f, bids, t1)}"/>')
    if asks:
        out.append(f'<path class="ask-line" d="{_step_path(f, asks, t1)}"/>')
    out.append(f'<g class="fills" data-asset="{_e(aid)}" data-fills="{counts[0]}" data-shown="{len(fills)}">')
    for ts, side, price, size, liq, fee, rebate, strategy, cid in fills:
        x, y = f.x(ts), f.y(price / SCALE)
        kind = f"{'buy' if side == 'BUY' else 'sell'} {liq}"
        tip = (f"{_fmt_ts(ts, absolute, t0)}  {side} {from_units(size)} @ {from_units(price)}  ({liq})\n"
               f"fee {from_units(fee)}" + (f", rebate {from_units(rebate)}" if rebate else "") +
               f"\nstrategy {strategy}  ·  order {cid}")  # fmt: skip
        out.append(f'<path class="fill-marker {kind}" d="{_marker(x, y, side)}"><title>{_e(tip)}</title></path>')
    out.append("</g></svg>")
    return "\n".join(out)


_LEGEND = (
    '<div class="legend">'
    '<span><svg width="26" height="12"><line x1="1" x2="25" y1="6" y2="6" class="bid-line"/></svg>best bid</span>'
    '<span><svg width="26" height="12"><line x1="1" x2="25" y1="6" y2="6" class="ask-line"/></svg>best ask</span>'
    '<span><svg width="14" height="14"><path class="fill-marker buy taker" d="M7,1.5L12.5,11.4L1.5,11.4Z"/></svg>buy, taker</span>'
    '<span><svg width="14" height="14"><path class="fill-marker buy maker" d="M7,1.5L12.5,11.4L1.5,11.4Z"/></svg>buy, maker</span>'
    '<span><svg width="14" height="14"><path class="fill-marker sell taker" d="M7,12.5L12.5,2.6L1.5,2.6Z"/></svg>sell, taker</span>'
    '<span><svg width="14" height="14"><path class="fill-marker sell maker" d="M7,12.5L12.5,2.6L1.5,2.6Z"/></svg>sell, maker</span>'
    "</div>"
)


# ============================================================================ tables


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = (), cls: str = "",
           wrap: Iterable[int] = ()) -> str:  # fmt: skip
    num = set(numeric)
    wr = set(wrap)
    out = [f'<div class="table-wrap"><table class="{_e(cls)}"><thead><tr>']
    out += [f'<th class="{"num" if i in num else ""}">{_e(h)}</th>' for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    n = 0
    for row in rows:
        n += 1
        out.append("<tr>")
        for i, v in enumerate(row):
            cell = v if isinstance(v, _H) else _e(v)
            out.append(f'<td class="{"num" if i in num else "wrap" if i in wr else ""}">{cell}</td>')
        out.append("</tr>")
    if not n:
        out.append(f'<tr><td class="empty" colspan="{len(headers)}">none</td></tr>')
    out.append("</tbody></table></div>")
    return "".join(out)


_SCOPE_HEADERS = ("net PnL", "realized", "unrealized", "fees", "rebates", "max drawdown",
                  "fills (maker/taker)", "volume", "notional", "submitted", "rejected risk / exec",
                  "cancelled / expired")  # fmt: skip


def _scope_cells(r: dict[str, Any]) -> list[Any]:
    fills = f'{_num(r["fills"])} <small class="muted">({_num(r["maker_fills"])}/{_num(r["taker_fills"])})</small>'
    return [
        _H(f'<span class="{_money_class(r["net_pnl"])}">{_e(r["net_pnl_str"])}</span>'),
        r["realized_pnl_str"], r["unrealized_pnl_str"], r["fees_str"], r["rebates_str"], r["max_drawdown_str"],
        _H(fills), r["volume_str"], r["notional_str"], _num(r["orders_submitted"]),
        f'{_num(r["orders_rejected_risk"])} / {_num(r["orders_rejected_exec"])}',
        f'{_num(r["orders_cancelled"])} / {_num(r["orders_expired"])}',
    ]  # fmt: skip


# a number standing alone (not part of an id such as 0xab12...cd34 or a shortened token id)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w|\.[\w.])")


def reason_pattern(reason: str) -> str:
    """A rejection reason with its numbers replaced by ``#``: the reasons that differ only in
    amounts (``loss would be 12.37 > cap 8``) count together."""
    return _NUMBER.sub("#", reason)


_SAME_REASON = "reasons that differ only in their amounts count together (amounts shown as #; hover a reason for the latest one in full)"


def _reason_cell(reason: str | None, example: str = "") -> Any:
    if reason is OTHER_REASONS:
        return _H('<em class="muted">(other reasons)</em>')
    if example and example != reason:
        return _H(f'<span title="{_e(example)}">{_e(reason)}</span>')
    return reason


# ============================================================================ the page

_CSS = """
:root{--fg:#1d2430;--muted:#6b7585;--line:#e3e7ee;--bg:#f6f7f9;--card:#fff;--pos:#12804a;--neg:#c0392b;
--eq:#2563eb;--dd:#d64545;--bid:#1f9d55;--ask:#d9534f;--buy:#1d4ed8;--sell:#e07b00}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",
Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:34px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:18px 0 6px}
.sub{color:var(--muted);margin:0 0 16px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;background:var(--card);border:1px solid var(--line);
border-radius:8px;padding:12px 16px;margin:0 0 16px}
.meta dt{color:var(--muted)}.meta dd{margin:0;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:19px;font-weight:600;font-variant-numeric:tabular-nums;margin-top:2px}
.card .s{color:var(--muted);font-size:12px}
.card.big{grid-column:span 2}.card.big .v{font-size:26px}
.pos{color:var(--pos)}.neg{color:var(--neg)}.muted{color:var(--muted)}
.warn{background:#fff4e5;border:1px solid #f0c27b;border-radius:8px;padding:10px 14px;margin:0 0 16px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px 4px;margin:0 0 12px}
.panel h3{margin:2px 0 2px}.panel .note{color:var(--muted);font-size:12px;margin:0 0 4px}
svg.chart{display:block;width:100%;height:auto}
.chart .grid{stroke:#eef1f5;stroke-width:1}.chart .frame{fill:none;stroke:#d5dae2}
.chart text{font-size:11px;fill:var(--muted);font-variant-numeric:tabular-nums}
.chart .ylab{text-anchor:end}.chart .xlab{text-anchor:middle}
.chart .zero{stroke:#9aa3b2;stroke-dasharray:4 3}
.equity-line{fill:none;stroke:var(--eq);stroke-width:1.8;stroke-linejoin:round}
.equity-area{fill:var(--eq);fill-opacity:.08;stroke:none}
.drawdown-line{fill:none;stroke:var(--dd);stroke-width:1.4}
.drawdown-area{fill:var(--dd);fill-opacity:.18;stroke:none}
.bid-line{fill:none;stroke:var(--bid);stroke-width:1.4;stroke-opacity:.85}
.ask-line{fill:none;stroke:var(--ask);stroke-width:1.4;stroke-opacity:.85}
.fill-marker{stroke-width:1.6;cursor:default}
.fill-marker.buy{stroke:var(--buy)}.fill-marker.sell{stroke:var(--sell)}
.fill-marker.buy.taker{fill:var(--buy)}.fill-marker.sell.taker{fill:var(--sell)}
.fill-marker.maker{fill:#fff}
.fill-marker:hover{stroke-width:3}
.hover-dot{fill:var(--eq);stroke:#fff;stroke-width:1.5;display:none}.hover-dot.dd{fill:var(--dd)}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;color:var(--muted);font-size:12px;margin:0 0 10px}
.legend span{display:inline-flex;align-items:center;gap:6px}.legend svg{overflow:visible}
.table-wrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 9px;text-align:left;white-space:nowrap;border-bottom:1px solid var(--line)}
th{background:#f0f2f6;font-weight:600;font-size:12px;color:#3a4352;white-space:normal;vertical-align:bottom}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.wrap{white-space:normal;min-width:200px;overflow-wrap:anywhere}
small{font-size:11px}
.ids{display:inline-block;white-space:normal;max-width:240px}
tbody tr:nth-child(even){background:#fafbfc}tbody tr:last-child td{border-bottom:none}
td.empty{color:var(--muted);text-align:center}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
details{margin:8px 0}summary{cursor:pointer;color:var(--muted)}
#tip{position:fixed;display:none;pointer-events:none;background:#1d2430;color:#fff;font-size:12px;padding:4px 8px;
border-radius:4px;white-space:pre;z-index:9}
footer{color:var(--muted);font-size:12px;margin-top:36px}
"""

_JS = """
(function(){var tip=document.getElementById('tip');
document.querySelectorAll('svg[data-hover]').forEach(function(svg){
var pts=JSON.parse(svg.getAttribute('data-hover')),dot=svg.querySelector('.hover-dot');if(!pts.length||!dot)return;
svg.addEventListener('mousemove',function(e){var p=svg.createSVGPoint();p.x=e.clientX;p.y=e.clientY;
var q=p.matrixTransform(svg.getScreenCTM().inverse()),lo=0,hi=pts.length-1;
while(lo<hi){var m=(lo+hi)>>1;if(pts[m][0]<q.x)lo=m+1;else hi=m;}
if(lo>0&&q.x-pts[lo-1][0]<pts[lo][0]-q.x)lo--;var d=pts[lo];
dot.setAttribute('cx',d[0]);dot.setAttribute('cy',d[1]);dot.style.display='block';
tip.textContent=d[2];tip.style.display='block';tip.style.left=(e.clientX+14)+'px';tip.style.top=(e.clientY+14)+'px';});
svg.addEventListener('mouseleave',function(){dot.style.display='none';tip.style.display='none';});});})();
"""


def _card(key: str, value: str, sub: str = "", cls: str = "", big: bool = False) -> str:
    return (f'<div class="card{" big" if big else ""}"><div class="k">{_e(key)}</div>'
            f'<div class="v {cls}">{_e(value)}</div>' + (f'<div class="s">{_e(sub)}</div>' if sub else "") + "</div>")  # fmt: skip


def render_html(summary: dict[str, Any], series: SessionSeries, *, config: str = "", max_price_charts: int = 8) -> str:
    """The report page for a replay's ``summary`` (:func:`polybot.replay.replay`'s return
    value, with its ``report``) and the series collected during that replay."""
    if series.final_equity is None:
        series.finish(summary)
    rep = summary.get("report") or series.report.summary()
    t = rep["totals"]
    k = series.kernel
    t0, t1 = series.t_first, series.t_last
    absolute = t0 >= _EPOCH_2000
    title = f"polybot report: {Path(str(summary.get('file', ''))).name}"
    o: list[str] = []
    w = o.append
    w(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
      f'<meta name="viewport" content="width=device-width,initial-scale=1">'
      f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>")  # fmt: skip

    # ---------------------------------------------------------------- header
    w(f"<h1>{_e(title)}</h1>")
    span = f"{_fmt_ts(t0, absolute, t0)} → {_fmt_ts(t1, absolute, t0)}" + (" UTC" if absolute else "")
    w(f'<p class="sub">{_e(span)}  ·  {_e(_fmt_duration(t1 - t0))} of event time</p>')
    if summary.get("divergences"):
        w(f'<div class="warn"><b>{_e(_num(summary["divergences"]))} divergences</b> from the recorded run: this '
          "faithful replay did not reproduce every engine event the session journaled (a different config or "
          "code?), so the figures below are the replay's, not necessarily the session's.</div>")  # fmt: skip
    strategies = sorted(set(series.strategy_classes) | set(rep["per_strategy"]))
    strat_txt = ", ".join(f"{s} ({series.strategy_classes[s]})" if s in series.strategy_classes else s for s in strategies)
    read = summary.get("read", {})
    meta: list[tuple[str, str]] = [
        ("file", str(summary.get("file", ""))),
        ("mode", str(summary.get("mode", ""))),
        ("config", config or "(none)"),
        ("strategies", strat_txt or "(none)"),
        ("event time", span),
        ("inputs", f"{_num(summary.get('inputs', 0))} inputs, {_num(summary.get('lines', 0))} lines"
                   f" ({_num(read.get('engine_lines', 0))} engine lines), {_num(summary.get('events', 0))} events"),
        ("marking", f"equity marked at the best {'bid' if rep['mark'] == 'bid' else 'mid'}; "
                    f"{_num(rep['equity_samples'])} equity samples"),
        ("cash", f"{t['starting_cash_str']} at start, {t['cash_str']} at the end"),
        ("trading state", str(summary.get("trading_state", ""))),
    ]  # fmt: skip
    if "divergences" in summary:
        meta.append(("divergences", _num(summary["divergences"])))
    if summary.get("errors"):
        meta.append(("errors", ", ".join(f"{a}={b}" for a, b in summary["errors"].items())))
    w('<dl class="meta">' + "".join(f"<dt>{_e(a)}</dt><dd>{_e(b)}</dd>" for a, b in meta) + "</dl>")

    w('<div class="cards">')
    w(_card("net PnL", t["net_pnl_str"], "realized + unrealized − fees + rebates", _money_class(t["net_pnl"]), big=True))
    w(_card("realized", t["realized_pnl_str"], "before fees", _money_class(t["realized_pnl"])))
    w(_card("unrealized", t["unrealized_pnl_str"], "at the end", _money_class(t["unrealized_pnl"])))
    w(_card("fees", t["fees_str"]))
    w(_card("rebates", t["rebates_str"]))
    w(_card("max drawdown", t["max_drawdown_str"], "", "neg" if t["max_drawdown"] else ""))
    w(_card("fills", _num(t["fills"]), f"{_num(t['maker_fills'])} maker, {_num(t['taker_fills'])} taker"))
    w(_card("volume", t["volume_str"], f"shares; {t['notional_str']} notional"))
    w(_card("orders submitted", _num(t["orders_submitted"]),
            f"{_num(t['orders_cancelled'])} cancelled, {_num(t['orders_expired'])} expired"))  # fmt: skip
    w(_card("rejected by risk", _num(t["orders_rejected_risk"]), "orders", "neg" if t["orders_rejected_risk"] else ""))
    w(_card("rejected by executor", _num(t["orders_rejected_exec"]), "orders", "neg" if t["orders_rejected_exec"] else ""))
    w("</div>")

    # ---------------------------------------------------------------- equity
    w("<h2>Equity and drawdown</h2>")
    w('<div class="panel"><h3>Account net PnL</h3>'
      f'<p class="note">realized + unrealized − fees + rebates, marked with the books as the session report '
      f'does (after every fill and settlement, and at most every {_e(_fmt_duration(rep["sample_ns"]))} on a '
      f"price change of a held asset): {_num(series.equity.count)} samples, {_num(len(series.equity))} points "
      "drawn (per time bucket: first, lowest, highest, last)</p>")  # fmt: skip
    eq_html = _equity_charts(series, absolute)
    split = eq_html.index('<svg class="chart drawdown"')
    w(eq_html[:split])
    w(f'<h3>Drawdown</h3><p class="note">fall from the running peak; max {_e(t["max_drawdown_str"])}</p>')
    w(eq_html[split:])
    w("</div>")

    # ---------------------------------------------------------------- prices and fills
    w("<h2>Fills on the price</h2>")
    by_fills = sorted(series.fill_counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
    shown = by_fills[:max_price_charts]
    if not shown:
        w('<p class="muted">No fills in this session.</p>')
    else:
        note = f"the {len(shown)} assets with the most fills" if len(by_fills) > len(shown) else "every asset with fills"
        w(f'<p class="muted">{_e(note)} ({_num(len(by_fills))} in all); best bid and ask as step lines '
          "(a gap: that side of the book was empty). Hover a marker for the fill.</p>")  # fmt: skip
        w(_LEGEND)
        for aid, c in shown:
            q, outcome = asset_label(k, aid)
            n_shown = len(series.fills.get(aid, ()))
            thinned = f"; {_num(n_shown)} drawn (evenly thinned)" if n_shown < c[0] else ""
            w(f'<div class="panel"><h3>{_e(q)} <span class="muted">· {_e(outcome)}</span></h3>'
              f'<p class="note"><span class="mono" title="{_e(aid)}">{_e(_short(aid, 10, 6))}</span>  ·  '
              f"{_e(_num(c[0]))} fills: {_num(c[1])} buy, {_num(c[2])} sell; {_num(c[3])} maker, {_num(c[4])} taker"
              f"{_e(thinned)}</p>")  # fmt: skip
            w(_price_chart(series, aid, absolute))
            w("</div>")

    # ---------------------------------------------------------------- tables
    w("<h2>Per strategy</h2>")
    w('<p class="muted">each strategy\'s own book (average cost and YES+NO pairs within the strategy), so the '
      "strategies need not add up to the account</p>")  # fmt: skip
    rows = []
    for s, r in rep["per_strategy"].items():
        cls = series.strategy_classes.get(s, "")
        rows.append([_H(f"<b>{_e(s)}</b>" + (f' <span class="muted">{_e(cls)}</span>' if cls else "")), *_scope_cells(r)])
    rows.append([_H("<b>account</b>"), *_scope_cells(t)])
    w(_table(["strategy", *_SCOPE_HEADERS], rows, range(1, len(_SCOPE_HEADERS) + 1), "per-strategy"))

    w("<h2>Per market</h2>")
    rows = []
    for m, r in rep["per_market"].items():
        info = k.catalog.market(m)
        q = (info.question or info.slug) if info is not None else ""
        label = (f"{_e(q)} " if q else "") + f'<span class="mono muted" title="{_e(m)}">{_e(_short(m, 10, 6) or "(none)")}</span>'
        rows.append([_H(label), *_scope_cells(r)])
    w(_table(["market", *_SCOPE_HEADERS], rows, range(1, len(_SCOPE_HEADERS) + 1), "per-market", wrap=(0,)))

    w("<h2>Risk rejections</h2>")
    by_val = t["rejected_by_validator"]
    if by_val:
        w('<p class="muted">orders rejected by validator: ' + ", ".join(f"{_e(v)} {_num(n)}" for v, n in by_val.items()) + "</p>")
    reasons = sorted(series.risk_reasons.items(), key=lambda kv: (-kv[1][0], kv[0][0], kv[0][1] is None, kv[0][1] or ""))
    if not reasons:
        w('<p class="muted">No order was rejected by the risk chain.</p>')
    else:
        w(f'<h3>By validator and reason</h3><p class="muted">{_e(_SAME_REASON)}</p>')
        w(_table(["validator", "reason", "orders", "decisions"],
                 ([v, _reason_cell(r, c[2]), _num(c[0]), _num(c[1])] for (v, r), c in reasons), (2, 3), "risk-reasons",
                 wrap=(1,)))  # fmt: skip
        n_recent = len(series.risk_recent)
        w(f"<h3>Most recent {_num(n_recent)} of {_num(series.risk_decisions)} rejections</h3>")
        w(_table(["time", "strategy", "client ids", "validator", "reason"],
                 ([_fmt_ts(ts, absolute, t0), st, _H(f'<span class="ids">{_e(", ".join(cids) or plan)}</span>'), v, r]
                  for ts, st, cids, v, r, plan in reversed(series.risk_recent)), (), "risk-recent", wrap=(4,)))  # fmt: skip

    w("<h2>Executor rejections</h2>")
    ex = sorted(series.exec_reasons.items(), key=lambda kv: (-kv[1][0], kv[0] is None, kv[0] or ""))
    if not ex:
        w('<p class="muted">No order was rejected by the executor.</p>')
    else:
        w(f'<h3>By reason</h3><p class="muted">{_e(_SAME_REASON)}</p>')
        w(_table(["reason", "orders"], ([_reason_cell(r, c[1]), _num(c[0])] for r, c in ex), (1,), "exec-reasons",
                 wrap=(0,)))  # fmt: skip
    if series.exec_recent:
        w(f"<h3>Most recent {_num(len(series.exec_recent))} of {_num(t['orders_rejected_exec'])}</h3>")
        w(_table(["time", "strategy", "client id", "asset", "reason"],
                 ([_fmt_ts(ts, absolute, t0), st, cid, _H(f'<span class="mono" title="{_e(a)}">{_e(_short(a))}</span>'), r]
                  for ts, st, cid, a, r in reversed(series.exec_recent)), (), "exec-recent", wrap=(4,)))  # fmt: skip

    ebt = summary.get("events_by_type") or {}
    if ebt:
        w("<details><summary>events by type</summary>")
        w(_table(["event", "count"], ((a, _num(b)) for a, b in ebt.items()), (1,), "events"))
        w("</details>")
    w("<footer>generated by polybot from the replay of the file above; every figure is the session report's "
      "(base units, exact); charts are downsampled for display.</footer>")  # fmt: skip
    w(f'</main><div id="tip"></div><script>{_JS}</script></body></html>\n')
    return "".join(o)


# ============================================================================ entry points


class HtmlReport:
    """``r = HtmlReport(); s = replay(..., on_report=r.attach); r.write(path, s)``."""

    def __init__(self, **limits: int) -> None:
        self.limits = limits
        self.series: SessionSeries | None = None

    def attach(self, report: SessionReport) -> None:
        self.series = SessionSeries(report, **self.limits)

    def render(self, summary: dict[str, Any], config: str = "") -> str:
        if self.series is None:
            raise RuntimeError("HtmlReport.attach was never called: pass on_report=report.attach to replay()")
        self.series.finish(summary)
        return render_html(summary, self.series, config=config)

    def write(self, path: str | os.PathLike[str], summary: dict[str, Any], config: str = "") -> Path:
        p = Path(path)
        text = self.render(summary, config)
        if p.parent != Path():
            p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return p


def default_report_path(journal: str | os.PathLike[str]) -> Path:
    """``var/x/journal.jsonl`` (or ``.jsonl.gz``) -> ``var/x/journal.html``."""
    p = Path(journal)
    name = p.name
    for suffix in (".gz", ".jsonl", ".json", ".ndjson"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return p.with_name(name + ".html")


def report_journal(journal: str | os.PathLike[str], cfg: Config, out: str | os.PathLike[str] | None = None,
                   *, config: str = "", **replay_kw: Any) -> tuple[dict[str, Any], Path]:  # fmt: skip
    """Replay a live session's journal faithfully (its recorded executor answers are used) and
    write the HTML report; returns the replay summary and the report's path."""
    from .replay import replay

    r = HtmlReport()
    summary = replay(journal, cfg, mode="faithful", on_report=r.attach, **replay_kw)
    path = r.write(out or default_report_path(journal), summary, config or cfg.source_path)
    return summary, path
