"""A live Polymarket US session on loopback: the simulator (adapters/polymarket_us/sim.py: REST,
markets and private WebSockets, Ed25519 auth verified server-side) and the whole daemon (the
polymarket-us feed, kernel, journal, the UsExecutor) in one event loop. Tests submit through the
kernel as a strategy would and watch both sides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec

from adapters.polymarket_us import asset_ids, market_id
from adapters.polymarket_us.auth import generate_key, sign_headers
from adapters.polymarket_us.sim import UsSimServer
from polybot.config import parse_config
from polybot.daemon import Daemon
from polybot.events import OrderIntent

KEY_ID = "0b3f5e2a-polybot-test-key-id-7c1d"
SECRET, PUBLIC = generate_key()
SLUGS = ("us-sim-market-0", "us-sim-market-1")

#: fast timings for loopback
EXECUTOR = {"request_timeout_s": 0.6, "unknown_grace_s": 1.0, "lookup_interval_s": 0.2, "cancel_confirm_s": 1.0,
            "ws_ping_s": 0.5, "ws_silence_s": 5.0}  # fmt: skip


def pmus_config(sim: UsSimServer, data_dir: Path, *, executor: dict[str, Any] | None = None,
                engine: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    ex = {"api_url": sim.url, "ws_url": sim.ws_url, **EXECUTOR, **(executor or {})}
    return {
        "engine": {"data_dir": str(data_dir), "snapshot_every": 50, "recover": True, "flush_interval_ms": 20,
                   **(engine or {})},
        "logging": {"status_interval_s": 0},
        "executor": {"kind": "polymarket-us", "params": ex},
        "risk": {"chain": ["trading_state"]},
        "feeds": [{"kind": "polymarket-us", "name": "pmus",
                   "params": {"api_url": sim.url, "gateway_url": sim.url, "ws_url": sim.ws_url,
                              "markets": list(sim.slugs)}}],
        "strategies": {},
    }  # fmt: skip


class Rig:
    def __init__(self, sim: UsSimServer, daemon: Daemon) -> None:
        self.sim = sim
        self.daemon = daemon
        self.kernel = daemon.kernel
        self.executor: Any = daemon.executor
        self.result: dict[str, Any] = {}

    async def until(self, cond: Callable[[], Any], timeout: float = 8.0, what: str = "") -> None:
        try:
            with anyio.fail_after(timeout):
                while not cond():
                    await anyio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what or cond}") from None

    def submit(self, asset: str, side: str, price: int, size: int, **kw: Any) -> str:
        slug = asset.split(":")[1]
        d = self.kernel.submit("t", OrderIntent(strategy="t", asset_id=asset, side=side, price=price, size=size,  # type: ignore[arg-type]
                                                market=market_id(slug), **kw))  # fmt: skip
        assert d.action != "reject", d
        return d.client_ids[0]

    def order(self, cid: str) -> Any:
        return self.kernel.orders.get(cid)

    def venue(self, cid: str) -> dict[str, Any]:
        return self.sim.orders[self.order(cid).venue_order_id]

    def top(self, slug: str) -> tuple[int, int]:
        """The YES book's best bid and offer (units)."""
        bids, offers = self.sim.book(slug)
        return bids[0][0], offers[0][0]

    def net(self, slug: str) -> int:
        """The kernel's long - short of a market (what the venue's net position is)."""
        long_id, short_id = asset_ids(slug)
        return self.kernel.portfolio.size(long_id) - self.kernel.portfolio.size(short_id)

    def posts(self) -> int:
        return sum(1 for m, p, _s in self.sim.requests if m == "POST" and p == "/v1/orders")


async def venue_post(sim: UsSimServer, body: dict[str, Any], key_id: str = KEY_ID, secret: str = SECRET) -> Any:
    """An order placed with our key by someone else (another process on the same key)."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        headers = sign_headers(key_id, secret, "POST", "/v1/orders")
        async with http.post(sim.url + "/v1/orders", data=msgspec.json.encode(body),
                             headers={**headers, "Content-Type": "application/json"}) as r:  # fmt: skip
            assert r.status == 200, await r.text()
            return await r.json()


def set_keys(monkeypatch: Any, key_id: str = KEY_ID, secret: str = SECRET) -> None:
    monkeypatch.setenv("POLYBOT_PMUS_KEY_ID", key_id)
    monkeypatch.setenv("POLYBOT_PMUS_SECRET_KEY", secret)


@asynccontextmanager
async def run_daemon(sim: UsSimServer, data_dir: Path, *, wait: bool = True, **cfg_kw: Any) -> AsyncIterator[Rig]:
    """A daemon on ``sim`` (keys from the environment), ready: healthy books, the private stream
    connected and the first reconciliation done. Stopped cleanly on exit."""
    cfg = parse_config(pmus_config(sim, data_dir, **cfg_kw), "pmus-live-test.toml")
    d = Daemon(cfg)
    rig = Rig(sim, d)

    async def go() -> None:
        rig.result.update(await d.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        if wait:
            assets = [a for s in sim.slugs for a in asset_ids(s)]
            await rig.until(lambda: all(a in d.kernel.books and d.kernel.books[a].healthy for a in assets),
                            what="healthy books")  # fmt: skip
            if not rig.executor.dry_run:
                ws = bool(rig.executor.params.ws_url)
                await rig.until(lambda: rig.executor.reconciles >= 1 and (rig.executor.private_connects >= 1 or not ws),
                                what="private stream + first reconciliation")  # fmt: skip
        try:
            yield rig
        finally:
            d.request_stop()


@asynccontextmanager
async def sim_server(**kw: Any) -> AsyncIterator[UsSimServer]:
    async with UsSimServer(markets=2, autostart=False, keys={KEY_ID: PUBLIC}, **kw) as sim:
        yield sim
