"""polybot.rolling: one strategy instance per window of a recurring series, started ahead of its
window, stopped after its resolution, its shares redeemed; restart-safe."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from polybot.config import Config, ConfigError
from polybot.events import ENCODER, MarketInfo, MarketResolved, OrderAccepted, OrderFilled, OrderIntent
from polybot.execution import RecordedExecutor
from polybot.kernel import Kernel
from polybot.rolling import Rollover, RollingSpec
from polybot.strategy import Strategy, StrategyParams
from polybot.wiring import build_kernel

S = 1_000_000_000  # ns
T0 = 1_790_000_000 * S
W = 300 * S  # a 5-minute window


class Watcher(Strategy):
    """Records what it sees; quotes one bid on its market at start."""

    name = "watcher"

    class Params(StrategyParams):
        markets: list[str] = []
        size: int = 5_000_000

    log: list[tuple[str, str]] = []

    def on_start(self) -> None:
        self.ctx.subscribe(MarketResolved, self.on_resolved)
        (m,) = self.params.markets
        info = self.ctx.catalog.market(m)
        Watcher.log.append(("start", self.id))
        self.ctx.submit(OrderIntent(strategy=self.id, asset_id=info.asset_ids[0], market=m, side="BUY",
                                    price=400_000, size=self.params.size))  # fmt: skip

    def on_resolved(self, ev: MarketResolved) -> None:
        Watcher.log.append(("resolved", self.id))

    def on_stop(self) -> None:
        Watcher.log.append(("stop", self.id))


def window(i: int, series: str = "btc-updown-5m") -> MarketInfo:
    start = T0 + i * W
    return MarketInfo(market=f"0xw{i}", asset_ids=(f"up{i}", f"down{i}"), outcomes=("Up", "Down"),
                      slug=f"{series}-{start // S}", series=series, window_start_ts=start, end_ts=start + W)  # fmt: skip


def make(lead_s: float = 60, settle: str = "resolution", **kw: Any) -> Kernel:
    Watcher.log = []
    k = Kernel(settle=settle, auto_redeem=False, **kw)
    k.rolling = Rollover(k, [RollingSpec(name="roll", series="btc-updown-5m", cls=Watcher, params={"size": 5_000_000},
                                         lead_s=lead_s, stop_after_s=600)])  # fmt: skip
    return k


def tick(k: Kernel, ts: int) -> None:
    k.process(ts, "clock", b"{}")


def test_windows_start_at_lead_time_and_stop_after_resolution():
    k = make()
    k.process(T0 - 200 * S, "events", window(0))
    k.process(T0 - 200 * S, "events", window(1))
    assert Watcher.log == [] and not k.strategies  # 200 s ahead, the lead is 60 s
    tick(k, T0 - 60 * S)
    inst0 = f"roll/btc-updown-5m-{T0 // S}"
    assert Watcher.log == [("start", inst0)] and list(k.strategies) == [inst0]
    assert [o.strategy for o in k.orders.open_orders()] == [inst0]
    tick(k, T0 + W - 60 * S)  # window 1's lead time
    inst1 = f"roll/btc-updown-5m-{(T0 + W) // S}"
    assert list(k.strategies) == [inst0, inst1]
    k.process(T0 + W + S, "events", MarketResolved(market="0xw0", asset_ids=("up0", "down0"), winning_asset_id="up0"))
    # the instance saw its resolution, then stopped; its open order was cancelled
    assert Watcher.log.index(("resolved", inst0)) < Watcher.log.index(("stop", inst0)) == len(Watcher.log) - 1
    assert list(k.strategies) == [inst1]
    assert not [o for o in k.orders.open_orders() if o.strategy == inst0]
    assert k.rolling.started == 2 and k.rolling.stopped == 1


def test_a_window_known_late_starts_at_once_and_an_ended_one_never():
    k = make()
    k.process(T0 + 10 * S, "events", window(0))  # already running
    assert list(k.strategies) == [f"roll/btc-updown-5m-{T0 // S}"]
    k.process(T0 + 10 * S, "events", window(-1))  # over
    k.process(T0 + 10 * S, "events", window(0, series="eth-updown-5m"))  # another series
    assert len(k.strategies) == 1
    k.process(T0 + 10 * S, "events", window(0))  # the same market again: no second instance
    assert k.rolling.started == 1


def test_no_resolution_stops_the_instance_after_stop_after_s():
    k = make()
    k.process(T0, "events", window(0))
    tick(k, T0 + W + 599 * S)
    assert len(k.strategies) == 1
    tick(k, T0 + W + 600 * S)
    assert not k.strategies and Watcher.log[-1][0] == "stop"


def test_redeem_after_resolution_when_settling_on_redeem():
    k = make(settle="redeem", executor=RecordedExecutor("clob"))
    k.process(T0, "events", window(0))
    (inst,) = k.strategies
    # the instance bought 5 Up (a fill reported by the executor)
    (o,) = k.orders.open_orders()
    k.process(T0 + S, "exec.clob", ENCODER.encode([
        OrderAccepted(client_id=o.client_id, strategy=inst, asset_id="up0", venue_order_id="v1"),
        OrderFilled(client_id=o.client_id, strategy=inst, asset_id="up0", venue_order_id="v1", trade_id="t1",
                    side="BUY", price=400_000, size=5_000_000, liquidity="maker", market="0xw0")]))  # fmt: skip
    k.process(T0 + W + S, "events", MarketResolved(market="0xw0", asset_ids=("up0", "down0"), winning_asset_id="up0"))
    (act,) = k.pending_actions()
    assert (act.action, act.market, act.note) == ("redeem", "0xw0", "rolling roll")
    assert k.portfolio.size("up0", inst) == 5_000_000  # until the redeem is confirmed


def test_restart_recreates_running_windows_from_the_snapshot():
    k = make()
    k.process(T0 - 200 * S, "events", window(0))
    k.process(T0 - 200 * S, "events", window(1))
    tick(k, T0 - 60 * S)
    st = k.to_state()
    k2 = make()
    k2.restore(st)
    inst0 = f"roll/btc-updown-5m-{T0 // S}"
    assert list(k2.strategies) == [inst0]
    assert k2.rolling.windows[inst0].state == "running"
    # the waiting window's start timer came back with the timers
    tick(k2, T0 + W - 60 * S)
    assert len(k2.strategies) == 2
    assert k2.to_state()["rolling"] == make_state_after(k)


def make_state_after(k: Kernel) -> list[dict[str, Any]]:
    tick(k, T0 + W - 60 * S)
    return k.to_state()["rolling"]


def test_rolling_config_is_checked_naming_the_field(tmp_path):
    def cfg(**kw: Any) -> Config:
        r = {"name": "roll", "series": "btc-updown-5m", "class": "pair_cost", "params": {"target": "0.98"}} | kw
        return msgspec.convert({"rolling": [r], "executor": {"kind": "null"}}, Config)

    k = build_kernel(cfg())
    assert k.rolling is not None and k.rolling.specs["roll"].market_param == "markets"
    with pytest.raises(ConfigError, match=r"rolling\[0\]\.params"):
        build_kernel(cfg(params={"target": "two"}))
    with pytest.raises(ConfigError, match=r"rolling\[0\]\.class"):
        build_kernel(cfg(**{"class": "no_such_strategy"}))
    with pytest.raises(ConfigError, match=r"rolling\[0\]\.market_param"):
        build_kernel(cfg(market_param="nope"))
    with pytest.raises(ConfigError, match=r"rolling\[0\]\.name"):
        build_kernel(cfg(name="a/b"))


def test_gamma_gives_a_recurring_market_its_window_start():
    from adapters.polymarket.gamma import window_of_slug

    assert window_of_slug("btc-updown-5m-1790100000") == 1790100000
    assert window_of_slug("bitcoin-up-or-down-october-5-7pm-et", end_s=1791241200) == 1791241200 - 3600
    assert window_of_slug("will-it-rain") == 0
    cfg = msgspec.convert({"executor": {"kind": "null"}}, Config)
    from polybot.replay import replay

    kernels: list[Any] = []
    replay("recordings/rolling-btc-5m.jsonl.gz", cfg, on_kernel=kernels.append)
    starts = sorted(i.window_start_ts for i in kernels[0].catalog)
    assert starts == [s * S for s in (1790100000, 1790100300, 1790100600, 1790100900)]


def test_the_rolling_tables_risk_overrides_apply_to_every_window():
    """[risk.strategies.<rolling name>] gives every window's instance that one chain (the same
    validators: their limits count the windows together); a stopped window's entry goes."""
    cfg = msgspec.convert({
        "executor": {"kind": "null"},
        "risk": {"chain": ["trading_state", "position_caps"], "validators": {"position_caps": {"max_shares": "100"}},
                 "strategies": {"roll": {"position_caps": {"max_shares": "3"}}}},
        "rolling": [{"name": "roll", "series": "btc-updown-5m", "class": "pair_cost", "lead_s": 0}],
    }, Config)  # fmt: skip
    k = build_kernel(cfg)
    k.start()
    k.process(T0, "events", window(0))
    (inst,) = k.strategies
    assert k.risk.chain_for(inst) is k.risk.chain_for("roll") is not k.risk.validators
    d = k.submit(inst, OrderIntent(strategy=inst, asset_id="up0", market="0xw0", side="BUY", price=400_000,
                                   size=5_000_000))  # fmt: skip
    assert d.action in ("reject", "resize") and d.validator == "position_caps"
    k.process(T0 + W, "events", MarketResolved(market="0xw0", asset_ids=("up0", "down0"), winning_asset_id="up0"))
    assert not k.strategies and inst not in k.risk.overrides and "roll" in k.risk.overrides
