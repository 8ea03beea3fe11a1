"""A live session on loopback: the simulator (market channel, CLOB REST trading, user channel)
and the whole daemon (Polymarket feed, kernel, journal, the CLOB executor) in one event loop.
Tests submit through the kernel as a strategy would and watch both sides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from adapters.polymarket.sim import SimConfig, SimServer
from polybot.config import parse_config
from polybot.daemon import Daemon
from polybot.events import OrderIntent

PK = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def live_config(sim: SimServer, data_dir: Path, *, executor: dict[str, Any] | None = None,
                engine: dict[str, Any] | None = None, secrets_file: str = "",
                strategies: dict[str, Any] | None = None, wallet: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    url = sim.rest_url
    ex = {"rest_url": url, "ws_url": url.replace("http", "ws", 1) + "/ws/user", "data_url": url,
          "geoblock_url": url + "/api/geoblock", "heartbeat_s": 0.5, "request_timeout_s": 2.0,
          "resolve_delay_s": 0.2}  # fmt: skip
    ex.update(executor or {})
    markets = [m["slug"] for m in sim.markets]
    cfg: dict[str, Any] = {
        "engine": {"data_dir": str(data_dir), "snapshot_every": 50, "recover": True, "flush_interval_ms": 20,
                   **(engine or {})},
        "logging": {"status_interval_s": 0},
        "executor": {"kind": "clob", "params": ex},
        "risk": {"chain": ["trading_state", "exchange_rules"]},
        "feeds": [{"kind": "polymarket", "name": "polymarket",
                   "params": {"ws_url": url.replace("http", "ws", 1) + "/ws/market", "rest_url": url, "gamma_url": url,
                              "markets": markets}}],
        "strategies": strategies or {},
    }  # fmt: skip
    if secrets_file:
        cfg["secrets"] = {"file": secrets_file}
    if wallet is not None:  # the simulator's fake chain (adapters/polymarket/simchain.py)
        cfg["wallet"] = {"rpc_url": sim.rpc_url, "relayer_url": sim.relayer_url, "confirmations": 1,
                         "poll_interval_s": 0.05, "resend_after_s": 1.0, "receipt_timeout_s": 10.0, **wallet}
    return cfg


class Rig:
    def __init__(self, sim: SimServer, daemon: Daemon) -> None:
        self.sim = sim
        self.daemon = daemon
        self.kernel = daemon.kernel
        self.executor: Any = daemon.executor

    @property
    def market(self) -> dict[str, Any]:
        return self.sim.markets[0]

    async def until(self, cond: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
        try:
            with anyio.fail_after(timeout):
                while not cond():
                    await anyio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what or cond}") from None

    def submit(self, asset: str, side: str, price: int, size: int, **kw: Any) -> str:
        d = self.kernel.submit("t", OrderIntent(strategy="t", asset_id=asset, side=side, price=price, size=size,  # type: ignore[arg-type]
                                                market=self.market["condition_id"], **kw))  # fmt: skip
        assert d.action != "reject", d
        return d.client_ids[0]

    def order(self, cid: str) -> Any:
        return self.kernel.orders.get(cid)

    def venue_orders(self) -> list[dict[str, Any]]:
        return self.sim.exchange.control("orders", {})["orders"]

    def venue_position(self, asset: str) -> int:
        from polybot.units import to_units

        for addr, a in self.sim.exchange.control("accounts", {})["accounts"].items():
            if addr.lower() == ADDRESS.lower():
                return to_units(str(a["shares"].get(asset, "0")))
        return 0

    def posts(self) -> dict[str, int]:
        return self.sim.exchange.control("orders", {})["posts"]

    def placed(self) -> list[str]:
        """Hashes of the orders the venue holds for us (every one ever accepted)."""
        return [o["hash"] for o in self.venue_orders()]

    def top(self, asset: str) -> tuple[int, int]:
        b = self.kernel.books.get(asset)
        assert b is not None
        return b.best_bid, b.best_ask


@asynccontextmanager
async def live_rig(tmp_path: Path, monkeypatch: Any, *, sim_cfg: dict[str, Any] | None = None,
                   **cfg_kw: Any) -> AsyncIterator[Rig]:  # fmt: skip
    monkeypatch.setenv("POLYBOT_PRIVATE_KEY", PK)
    for k in ("API_KEY", "API_SECRET", "API_PASSPHRASE"):
        monkeypatch.delenv(f"POLYBOT_{k}", raising=False)
    async with SimServer(SimConfig(**{"autostart": False, "n_markets": 2, **(sim_cfg or {})})) as sim:
        cfg = parse_config(live_config(sim, tmp_path / "data", **cfg_kw), "live-test.toml")
        d = Daemon(cfg)
        rig = Rig(sim, d)
        result: dict[str, Any] = {}

        async def run() -> None:
            result.update(await d.run())

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            assets = [a for m in sim.markets for a in (m["yes"], m["no"])]
            await rig.until(lambda: all(a in d.kernel.books and d.kernel.books[a].healthy for a in assets),
                            what="healthy books")  # fmt: skip
            if not rig.executor.dry_run:
                ws = bool(rig.executor.params.ws_url)
                await rig.until(lambda: rig.executor.reconciles >= 1 and (rig.executor.user_connects >= 1 or not ws),
                                what="user channel + first reconciliation")  # fmt: skip
            try:
                yield rig
            finally:
                d.request_stop()
        rig.result = result  # type: ignore[attr-defined]
