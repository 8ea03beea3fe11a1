"""Regression tests from the review of the operator surface (polybot.api, polybot.monitor)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from polybot.api import ApiServer
from polybot.config import ApiConfig, parse_config
from polybot.kernel import Kernel
from polybot.monitor import Monitor
from polybot.strategy import Strategy, StrategyParams, Units
from polybot.wiring import build_kernel

TOKEN = "test-token-0123456789abcdef"


class Leg(msgspec.Struct):
    price: Units
    size: Units = Units(1_000_000)


class NestedParamsStrategy(Strategy):
    """Params whose Units sit where params_table does not reach (a nested struct, a set)."""

    name = "nested"

    class Params(StrategyParams):
        legs: list[Leg] = []
        caps: frozenset[Units] = frozenset()


def _api(k: Any, host: str = "127.0.0.1") -> tuple[ApiServer, list[Any]]:
    m = Monitor(k)
    sent: list[Any] = []

    async def control(ev: Any) -> None:
        sent.append(ev)
        k.process(k.clock.now(), "control", ev)

    return ApiServer(ApiConfig(host=host), m, token=TOKEN, control=control, metrics=lambda: ""), sent


def test_status_strategies_and_ws_with_units_params_the_views_do_not_flatten() -> None:
    """A strategy's params holding Units inside a nested struct or a set: msgspec cannot encode
    an int subclass without a hook, so /api/status, /api/strategies and the WebSocket snapshot
    answered 500 / broke for the whole dashboard."""
    k = Kernel()
    k.add_strategy(NestedParamsStrategy, "n", {"legs": [{"price": "0.45"}], "caps": ["2"]})
    k.start()
    api, _ = _api(k)

    async def main() -> None:
        async with TestClient(TestServer(api.app)) as c:
            for path in ("/api/status", "/api/strategies"):
                r = await c.get(path)
                assert r.status == 200, (path, await r.text())
            body = await (await c.get("/api/strategies")).json()
            params = body["strategies"][0]["params"]
            assert params["legs"][0]["price"] == 450_000 and params["caps"] == [2_000_000]
            ws = await c.ws_connect("/ws")
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            assert json.loads(msg.data)["type"] == "snapshot"
            await ws.close()

    anyio.run(main)


def test_websocket_from_a_foreign_origin_is_refused_without_the_token() -> None:
    """Reads are open on loopback, but a WebSocket is not bound by the same-origin policy: any
    web page the operator visits could open ws://127.0.0.1:PORT/ws and read the positions,
    orders and params. A cross-origin WebSocket needs the token; the dashboard's own page
    (same origin) and non-browser clients (no Origin) do not."""
    k = build_kernel(parse_config({"risk": {"chain": ["trading_state"]}}))
    api, _ = _api(k)

    async def main() -> None:
        async with TestClient(TestServer(api.app)) as c:
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await c.ws_connect("/ws", headers={"Origin": "https://evil.example"})
            assert exc.value.status == 403
            host = f"{c.server.host}:{c.server.port}"
            for headers in ({}, {"Origin": f"http://{host}"}):
                ws = await c.ws_connect("/ws", headers=headers)
                assert json.loads((await ws.receive(timeout=5)).data)["type"] == "snapshot"
                await ws.close()
            ws = await c.ws_connect(f"/ws?token={TOKEN}", headers={"Origin": "https://evil.example"})
            assert json.loads((await ws.receive(timeout=5)).data)["type"] == "snapshot"
            await ws.close()

    anyio.run(main)


def test_critical_reports_a_book_restored_unhealthy_by_recovery() -> None:
    """The daemon builds the Monitor before recovery; a snapshot restores books without any
    BookHealth event, so a book restored unhealthy was never timed and /critical stayed 200
    however long it stayed unhealthy."""
    k = build_kernel(parse_config({"risk": {"chain": ["trading_state"]}}))
    m = Monitor(k)  # as the daemon: before recovery
    k.books.restore([{"asset_id": "A1", "bids": [], "asks": [], "updated_ts": 0, "healthy": False,
                      "unhealthy_reason": "snapshot hash mismatch"}])  # fmt: skip
    api = ApiServer(ApiConfig(critical_book_unhealthy_s=0), m, token=TOKEN, control=None, metrics=lambda: "")  # type: ignore[arg-type]
    assert m.worst_book_unhealthy_s()[1] == "A1"
    assert any("book A1 unhealthy" in r for r in api.critical_reasons())
