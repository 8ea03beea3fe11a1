"""Rolling markets: one strategy instance per window of a recurring series.

The recurring series (BTC/ETH up/down 5m, 15m, 1h, ...) list a new market every window. A
``[[rolling]]`` table names a series, a strategy class and its params; the :class:`Rollover`
(part of the kernel: deterministic, driven by events and timers only) then

* starts an instance ``<name>/<market slug>`` of the strategy on each window's market, ``lead_s``
  before the window opens (as soon as its ``MarketInfo`` arrives when that is later), with the
  configured params and the market in ``market_param`` (``markets = [<condition id>]`` for the
  bundled strategies);
* after the market resolves (``MarketResolved``; the instance sees it first), stops the instance
  (its open orders cancelled, its handlers and timers gone) and, with ``redeem`` under
  ``[portfolio] settle = "redeem"``, asks for the redeem of the market's shares unless the
  kernel's ``auto_redeem`` already did;
* stops an instance whose market never reports a resolution ``stop_after_s`` after the window's
  end (the shares stay until a resolution arrives).

The feed's side (finding the next windows at Gamma ahead of time, subscribing their books,
unsubscribing finished ones) is the market feed's ``series`` / ``roll_*`` params: the Gamma
responses come through the door as inputs, so the same rollovers happen in a replay.

    [[rolling]]
    name = "gabagool"
    series = "btc-updown-5m"
    class = "pair_cost"
    params = { target = "0.98", order_size = "10" }
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from loguru import logger

from .events import MarketInfo, MarketResolved, PositionAction, TimerFired

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel
    from .strategy import Strategy

OWNER = "rolling"  # the timers' owner
PRIORITY_AFTER_STRATEGIES = 10  # a window's instance sees its market's resolution before it stops


class RollingSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One ``[[rolling]]`` table, checked (the class loaded, the params converted)."""

    name: str
    series: str
    cls: Any  # the strategy class
    params: dict[str, Any]
    market_param: str = "markets"
    lead_s: float = 60.0
    stop_after_s: float = 3600.0
    redeem: bool = True
    max_live: int = 4
    enabled: bool = True


class Window(msgspec.Struct, kw_only=True):
    spec: str  # RollingSpec.name
    market: str
    instance: str
    start_ts: int
    end_ts: int
    state: str = "waiting"  # waiting -> running -> done


class Rollover:
    """The kernel's scheduler of rolling windows (see the module doc)."""

    def __init__(self, kernel: Kernel, specs: list[RollingSpec]) -> None:
        self.k = kernel
        self.specs = {s.name: s for s in specs}
        self.by_series: dict[str, list[RollingSpec]] = {}
        for s in specs:
            self.by_series.setdefault(s.series, []).append(s)
        self.windows: dict[str, Window] = {}  # instance name -> window
        self.started = 0
        self.stopped = 0
        bus = kernel.bus
        bus.subscribe(MarketInfo, self._on_market)
        bus.subscribe(MarketResolved, self._on_resolved, priority=PRIORITY_AFTER_STRATEGIES)
        bus.subscribe(TimerFired, self._on_timer)

    # ------------------------------------------------------------------ events

    def _on_market(self, ev: MarketInfo) -> None:
        specs = self.by_series.get(ev.series) if ev.series else None
        if not specs:
            return
        k = self.k
        now = k.clock.now()
        for spec in specs:
            inst = f"{spec.name}/{ev.slug or ev.market}"
            if inst in self.windows or ev.market in k.catalog.resolved or ev.closed:
                continue
            if ev.end_ts and ev.end_ts <= now:
                continue  # a window that is over (a catalog replay of old markets)
            start = ev.window_start_ts or ev.start_ts
            w = Window(spec=spec.name, market=ev.market, instance=inst, start_ts=start, end_ts=ev.end_ts)
            self.windows[inst] = w
            begin = start - int(spec.lead_s * 1e9) if start else now
            if begin <= now:
                self._start(w)
            else:
                k.timers.set(OWNER, "start:" + inst, begin)
                logger.info("rolling {}: {} starts at its lead time ({} s before the window)", spec.name, inst,
                            spec.lead_s)  # fmt: skip

    def _on_timer(self, ev: TimerFired) -> None:
        if ev.owner != OWNER:
            return
        what, _, inst = ev.name.partition(":")
        w = self.windows.get(inst)
        if w is None:
            return
        if what == "start" and w.state == "waiting":
            self._start(w)
        elif what == "stop" and w.state == "running":
            logger.warning("rolling {}: no resolution of {} {} s after its window; stopping its instance",
                           w.spec, w.market, self.specs[w.spec].stop_after_s)  # fmt: skip
            self._stop(w, resolved=False)

    def _on_resolved(self, ev: MarketResolved) -> None:
        for w in [w for w in self.windows.values() if w.market == ev.market]:
            if w.state != "done":
                self._stop(w, resolved=True)
            else:  # stopped before its resolution came (stop_after_s): its shares are still there
                self._redeem(w)

    # ------------------------------------------------------------------ start / stop

    def _live(self, spec: str) -> int:
        return sum(1 for w in self.windows.values() if w.spec == spec and w.state == "running")

    def _start(self, w: Window) -> None:
        spec = self.specs[w.spec]
        k = self.k
        if self._live(spec.name) >= spec.max_live:
            logger.warning("rolling {}: {} windows already running (max_live); {} not started", spec.name,
                           spec.max_live, w.instance)  # fmt: skip
            w.state = "done"
            return
        s = self._instance(spec, w)
        for t, h, key in s._declared():
            s.ctx.subscribe(t, h, key)
        s.on_start()
        w.state = "running"
        self.started += 1
        if w.end_ts:
            k.timers.set(OWNER, "stop:" + w.instance, w.end_ts + int(spec.stop_after_s * 1e9))
        logger.info("rolling {}: started {} on {}", spec.name, w.instance, w.market)

    def _instance(self, spec: RollingSpec, w: Window) -> Strategy:
        """Create (not start) the window's strategy instance."""
        params = dict(spec.params)
        field = next(f for f in msgspec.structs.fields(spec.cls.Params) if f.name == spec.market_param)
        params[spec.market_param] = [w.market] if _is_list(field.type) else w.market
        k = self.k
        shared = k.risk.overrides.get(spec.name)
        if shared is not None:
            # [risk.strategies.<rolling name>]: every window's instance runs under that one chain
            # (the same validator objects: their limits count the windows together)
            k.risk.overrides[w.instance] = shared
        return k.add_strategy(spec.cls, w.instance, params, enabled=spec.enabled)

    def _stop(self, w: Window, resolved: bool) -> None:
        k = self.k
        spec = self.specs[w.spec]
        k.timers.cancel(OWNER, "stop:" + w.instance)
        k.timers.cancel(OWNER, "start:" + w.instance)
        s = k.strategies.get(w.instance)
        if s is not None:
            k.remove_strategy(w.instance, reason="window over")
            if spec.name in k.risk.overrides:
                k.risk.overrides.pop(w.instance, None)
            self.stopped += 1
            logger.info("rolling {}: stopped {} ({})", spec.name, w.instance,
                        "resolved" if resolved else "no resolution")  # fmt: skip
        w.state = "done"
        if resolved:
            self._redeem(w)
        self._forget_done()

    def _redeem(self, w: Window) -> None:
        """Ask for the redeem of a resolved window's shares (``redeem`` under settle = "redeem")
        unless one is on its way already (the kernel's ``auto_redeem``). Another action on its
        way (a merge) does not hold it back: the executor carries them out in order."""
        k = self.k
        spec = self.specs[w.spec]
        if not spec.redeem or k.settle_on != "redeem":
            return
        info = k.catalog.market(w.market)
        held = info is not None and any(k.portfolio.size(a) > 0 for a in info.asset_ids)
        if held and not any(a.action == "redeem" for a in k.pending_actions(w.market)):
            k.act("", PositionAction(action="redeem", market=w.market, note=f"rolling {spec.name}"))

    def _forget_done(self, keep: int = 64) -> None:
        """Keep the newest finished windows only (a month of 5-minute windows is 8,640)."""
        done = [i for i, w in self.windows.items() if w.state == "done"]
        for inst in done[:-keep] if len(done) > keep else ():
            del self.windows[inst]

    # ------------------------------------------------------------------ state

    def to_state(self) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(w) for w in self.windows.values()]

    def restore(self, items: list[dict[str, Any]]) -> list[str]:
        """Recreate the running windows' instances (before the kernel restores the strategies'
        own state); returns their names."""
        self.windows = {}
        out = []
        for it in items:
            w = msgspec.convert(it, Window)
            spec = self.specs.get(w.spec)
            if spec is None:
                logger.warning("snapshot has rolling windows of {!r}, which is not configured", w.spec)
                continue
            self.windows[w.instance] = w
            if w.state == "running" and w.instance not in self.k.strategies:
                s = self._instance(spec, w)
                for t, h, key in s._declared():
                    s.ctx.subscribe(t, h, key)
                s.on_start()
                out.append(w.instance)
        return out


def _is_list(tp: Any) -> bool:
    origin = getattr(tp, "__origin__", None)
    return tp in (list, tuple) or origin in (list, tuple)
