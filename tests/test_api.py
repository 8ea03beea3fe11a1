"""The operator API (polybot.api) inside a running daemon: reads, controls through the kernel's
one door (journaled, replayable), bearer-token auth, 4xx answers naming the field, /critical,
the WebSocket push, /metrics parsed by the Prometheus client's parser, /openapi.json."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from polybot.api import ApiServer, resolve_token
from polybot.api.server import ROUTES, openapi
from polybot.config import ApiConfig, ConfigError, parse_config
from polybot.daemon import API_FILE, Daemon
from polybot.monitor import Monitor
from polybot.replay import replay
from polybot.wiring import build_kernel

from proc_helpers import DIP_TOML, demo_daemon_toml

TOKEN = "test-token-0123456789abcdef"


def config(tmp_path: Path, *, speed: float = 1.0, api: str = "", strategies: str = DIP_TOML) -> Any:
    text = demo_daemon_toml(tmp_path / "data", speed=speed, extra=f"""
[api]
enabled = true
port = 0
push_interval_s = 0.1
pnl_sample_s = 0.1
{api}
{strategies}
""")
    return parse_config(msgspec.toml.decode(text.encode()), str(tmp_path / "api.toml"))


Call = Callable[..., Awaitable[tuple[int, Any]]]


@asynccontextmanager
async def running(cfg: Any) -> AsyncIterator[tuple[Daemon, str, Call]]:
    """The daemon in this event loop; yields (daemon, base url, call(method, path, body=None,
    token=...) -> (status, decoded body))."""
    d = Daemon(cfg)
    async with anyio.create_task_group() as tg, aiohttp.ClientSession() as http:
        result: dict[str, Any] = {}

        async def run() -> None:
            result["summary"] = await d.run()

        tg.start_soon(run)
        with anyio.fail_after(10):
            while d.api is None or not d.api.port:
                await anyio.sleep(0.02)
        base = f"http://127.0.0.1:{d.api.port}"

        async def call(method: str, path: str, body: Any = None, token: str | None = None,
                       raw: bytes | None = None) -> tuple[int, Any]:  # fmt: skip
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            async with http.request(method, base + path, data=data, headers=headers) as r:
                text = await r.text()
                try:
                    return r.status, json.loads(text)
                except ValueError:
                    return r.status, text

        try:
            yield d, base, call
        finally:
            d.request_stop()


async def first_fill(d: Daemon) -> None:
    with anyio.fail_after(20):
        while d.kernel.stats.fills == 0:
            await anyio.sleep(0.05)


def journal_controls(cfg: Any) -> list[dict[str, Any]]:
    path = Path(cfg.engine.data_dir) / cfg.engine.journal_file
    out = []
    for line in path.read_bytes().splitlines():
        rec = json.loads(line)
        if rec.get("source") == "control":
            out.append(rec["msg"])
    return out


def token_of(cfg: Any) -> str:
    return (Path(cfg.engine.data_dir) / "api_token").read_text().strip()


# ---------------------------------------------------------------------------------- reads


def test_reads_show_the_running_kernel(tmp_path: Path) -> None:
    cfg = config(tmp_path, speed=5)

    async def main() -> None:
        async with running(cfg) as (d, base, call):
            await first_fill(d)
            st, status = await call("GET", "/api/status")
            assert st == 200
            assert status["trading_state"] == "active"
            assert status["executor"]["name"] == "paper"
            assert status["inputs"] > 0 and status["fills"] >= 1
            assert [f["name"] for f in status["feeds"]] == ["demo"]
            assert status["feeds"][0]["state"] == "running"
            assert status["books"]["total"] == 2 and status["books"]["healthy"] == 2
            assert status["strategies"][0]["id"] == "dip" and status["strategies"][0]["enabled"] is True
            assert status["critical"] == []
            info = json.loads((Path(cfg.engine.data_dir) / API_FILE).read_text())
            assert info["url"] == base + "/" and info["pid"] == os.getpid()

            st, pos = await call("GET", "/api/positions")
            assert st == 200
            k = d.kernel
            held = {(r["strategy"], r["asset_id"]): r["size"] for r in pos["positions"]}
            for (strat, aid), size in held.items():
                assert k.portfolio.size(aid, strat) == int(round(float(size) * 1e6))
            assert pos["pnl"]["total"]["net"]
            st, fills = await call("GET", "/api/fills?limit=5")
            assert st == 200 and 1 <= len(fills["fills"]) <= 5
            f = fills["fills"][-1]
            assert f["strategy"] == "dip" and f["side"] in ("BUY", "SELL") and f["client_id"]
            st, orders = await call("GET", "/api/orders")
            assert st == 200 and len(orders["orders"]) == len(k.orders.open_orders())
            st, markets = await call("GET", "/api/markets")
            assert st == 200 and markets["markets"][0]["question"] == "Demo: will it rain?"
            assert {o["outcome"] for o in markets["markets"][0]["outcomes"]} == {"Yes", "No"}
            st, books = await call("GET", "/api/books")
            assert st == 200 and all(b["healthy"] for b in books["books"])
            assert all(b["best_bid"] is None or 0 < float(b["best_bid"]) < 1 for b in books["books"])
            st, steps = await call("GET", "/api/orders/steps")
            assert st == 200 and {"order_submitted", "order_filled"} <= {s["step"] for s in steps["steps"]}
            with anyio.fail_after(5):
                while len(d.monitor.pnl_series) < 2:
                    await anyio.sleep(0.05)
            st, pnl = await call("GET", "/api/pnl")
            assert st == 200 and pnl["fields"][0] == "time_ns" and len(pnl["points"]) >= 2
            st, _ = await call("GET", "/api/fills?limit=abc")
            assert st == 400

    anyio.run(main)


# ---------------------------------------------------------------------------------- controls


def test_controls_need_the_token_and_go_through_the_door(tmp_path: Path) -> None:
    cfg = config(tmp_path, speed=2)

    async def main() -> None:
        async with running(cfg) as (d, base, call):
            tok = token_of(cfg)
            assert len(tok) >= 16
            assert (Path(cfg.engine.data_dir) / "api_token").stat().st_mode & 0o777 == 0o600
            # refused: no token, a wrong one, a token in the query string (only /ws may)
            for kw in ({}, {"token": "wrong-token-wrong-token"}):
                st, body = await call("POST", "/api/control/halt", {"reason": "x"}, **kw)
                assert st == 401 and "Bearer" in body["error"]
            st, _ = await call("POST", f"/api/control/halt?token={tok}")
            assert st == 401
            assert d.kernel.trading_state == "active"
            assert d.api.refused == 3

            st, body = await call("POST", "/api/control/halt", {"reason": "lunch"}, token=tok)
            assert st == 200 and body["trading_state"] == "halted" and body["command"]["type"] == "halt"
            assert d.kernel.trading_state == "halted"  # processed before the answer
            st, crit = await call("GET", "/critical")
            assert st == 503 and crit["reasons"] == ["trading is halted"]

            st, body = await call("POST", "/api/control/resume", token=tok)
            assert st == 200 and body["trading_state"] == "active"
            st, crit = await call("GET", "/critical")
            assert st == 200 and crit == {"ok": True, "reasons": []}

            st, body = await call("POST", "/api/strategies/dip/params", {"params": {"size": "5"}, "reason": "smaller"}, token=tok)
            assert st == 200
            assert d.kernel.strategies["dip"].params.size == 5_000_000
            st, strategies = await call("GET", "/api/strategies")
            assert strategies["strategies"][0]["params"]["size"] == "5"

            st, body = await call("POST", "/api/strategies/dip/disable", token=tok)
            assert st == 200 and d.kernel.strategies["dip"].enabled is False
            st, body = await call("POST", "/api/strategies/dip/enable", token=tok)
            assert st == 200 and d.kernel.strategies["dip"].enabled is True
            st, body = await call("POST", "/api/control/cancel-all", {"strategy": "dip"}, token=tok)
            assert st == 200 and body["open_orders"] == 0
            st, body = await call("POST", "/api/control/reduce", token=tok)
            assert st == 200 and body["trading_state"] == "reducing"
            st, body = await call("POST", "/api/control/flatten", {"max_slippage": "0.05"}, token=tok)
            assert st == 200 and body["command"]["max_slippage"] == 50_000

    anyio.run(main)
    kinds = journal_controls(cfg)
    types = [m["type"] for m in kinds]
    assert types[:7] == ["halt", "resume", "set_params", "enable_strategy", "enable_strategy", "cancel_all", "reduce"]
    assert "flatten" in types
    assert all(m["origin"] in ("api", "shutdown") for m in kinds)
    assert kinds[0]["reason"] == "lunch"
    # the session replays exactly, the API's commands included
    s = replay(Path(cfg.engine.data_dir) / cfg.engine.journal_file, cfg, mode="faithful")
    assert s["divergences"] == 0, s


def test_bad_requests_get_4xx_naming_the_field(tmp_path: Path) -> None:
    cfg = config(tmp_path, speed=1)

    async def main() -> None:
        async with running(cfg) as (d, base, call):
            tok = token_of(cfg)
            cases = [
                ("/api/control/halt", None, b"{not json", 400, "body"),
                ("/api/control/halt", {"reason": 5}, None, 422, "reason"),
                ("/api/control/halt", {"reasn": "typo"}, None, 422, "reasn"),
                ("/api/control/halt", [1, 2], None, 422, None),
                ("/api/control/flatten", {"max_slippage": "lots"}, None, 422, "max_slippage"),
                ("/api/control/flatten", {"max_slippage": "1.5"}, None, 422, "max_slippage"),
                ("/api/control/cancel-all", {"strategy": "nope"}, None, 422, "strategy"),
                ("/api/strategies/dip/params", {}, None, 422, "params"),
                ("/api/strategies/dip/params", {"params": {}}, None, 422, "params"),
                ("/api/strategies/dip/params", {"params": {"size": "ten"}}, None, 422, "params.size"),
                ("/api/strategies/dip/params", {"params": {"order_timeout_s": "soon"}}, None, 422, "params.order_timeout_s"),
                ("/api/strategies/dip/params", {"params": {"bogus": 1}}, None, 422, "params.bogus"),
                ("/api/strategies/nope/params", {"params": {"size": "1"}}, None, 404, "name"),
                ("/api/strategies/nope/disable", None, None, 404, "name"),
            ]
            for path, body, raw, status, field in cases:
                st, ans = await call("POST", path, body, token=tok, raw=raw)
                assert st == status, (path, body, raw, ans)
                assert ans["error"]
                if field is not None:
                    assert ans["field"] == field, (path, body, ans)
                    assert field in ans["error"]
            st, _ = await call("POST", "/api/control/halt", token=tok, raw=b"x" * 100_000)
            assert st == 413  # bodies are small
            # nothing reached the kernel
            assert d.kernel.trading_state == "active"
            assert d.kernel.strategies["dip"].params.size == 10_000_000

    anyio.run(main)
    assert all(m["origin"] == "shutdown" for m in journal_controls(cfg))


# ---------------------------------------------------------------------------------- push, metrics, spec


def test_websocket_pushes_snapshot_then_updates(tmp_path: Path) -> None:
    cfg = config(tmp_path, speed=2)

    async def main() -> None:
        async with running(cfg) as (d, base, call):
            async with aiohttp.ClientSession() as http, http.ws_connect(base + "/ws") as ws:
                first = json.loads((await ws.receive(timeout=5)).data)
                assert first["type"] == "snapshot"
                assert first["status"]["trading_state"] == "active"
                assert {"positions", "orders", "books", "fills", "steps", "rejections", "pnl"} <= first.keys()
                inputs = [first["status"]["inputs"]]
                with anyio.fail_after(10):
                    while len(inputs) < 3:
                        msg = json.loads((await ws.receive(timeout=5)).data)
                        assert msg["type"] == "update"
                        inputs.append(msg["status"]["inputs"])
                assert inputs == sorted(inputs) and inputs[-1] > inputs[0]  # live numbers that change
                # a halt shows in the next update
                await call("POST", "/api/control/halt", token=token_of(cfg))
                with anyio.fail_after(5):
                    while True:
                        msg = json.loads((await ws.receive(timeout=5)).data)
                        if msg["status"]["trading_state"] == "halted":
                            break

    anyio.run(main)


def test_metrics_scrape_parses_with_the_prometheus_parser(tmp_path: Path) -> None:
    cfg = config(tmp_path, speed=5)

    async def main() -> None:
        async with running(cfg) as (d, base, call):
            await first_fill(d)
            async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as r:
                assert r.status == 200 and r.content_type == "text/plain"
                text = await r.text()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            inputs = sum(s.value for s in families["polybot_inputs"].samples if s.name == "polybot_inputs_total")
            assert 0 < inputs <= d.kernel.stats.inputs
            assert any(s.labels.get("stage") == "decode" for s in families["polybot_stage_latency_seconds"].samples)

    anyio.run(main)


def test_openapi_describes_every_route() -> None:
    spec = openapi()
    assert spec["openapi"].startswith("3.1")
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert described == {(r.method, r.path) for r in ROUTES}
    flatten = spec["paths"]["/api/control/flatten"]["post"]
    ref = flatten["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "max_slippage" in spec["components"]["schemas"][ref]["properties"]
    assert flatten["security"] == [{"bearer": []}] and "401" in flatten["responses"] and "422" in flatten["responses"]
    json.dumps(spec)  # JSON-able


# ---------------------------------------------------------------------------------- auth rules


def test_non_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"api\.host: 0\.0\.0\.0 is not a loopback address"):
        Daemon(config(tmp_path, api='host = "0.0.0.0"'))
    with pytest.raises(ConfigError, match="api_token"):
        resolve_token(ApiConfig(host="0.0.0.0"), "short", tmp_path)
    assert resolve_token(ApiConfig(host="0.0.0.0"), TOKEN, tmp_path) == (TOKEN, "secret")
    # on loopback a token is generated once and reused
    t1, where = resolve_token(ApiConfig(), None, tmp_path)
    t2, _ = resolve_token(ApiConfig(), None, tmp_path)
    assert t1 == t2 and where.endswith("api_token")


@pytest.mark.parametrize(("field", "value"), [("port", 70000), ("push_interval_s", 0), ("critical_feed_down_s", -1), ("history", 0)])
def test_bad_api_config_is_refused_naming_the_field(tmp_path: Path, field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"api\.{field}"):
        parse_config({"api": {field: value}}, "x.toml")


def test_taken_port_refuses_to_start_naming_api_port(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        cfg = config(tmp_path)
        cfg = msgspec.structs.replace(cfg, api=msgspec.structs.replace(cfg.api, port=s.getsockname()[1]))
        with pytest.raises(ConfigError, match=r"api\.port: cannot listen"):
            anyio.run(Daemon(cfg).run)
    finally:
        s.close()


def test_reads_need_the_token_off_loopback_and_it_never_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Served on loopback by the test server, but configured for 0.0.0.0: every read but
    /critical needs the token; no answer ever contains it."""
    cfg = parse_config({"risk": {"chain": ["trading_state"]}})
    k = build_kernel(cfg)
    m = Monitor(k)
    sent: list[Any] = []

    async def control(ev: Any) -> None:
        sent.append(ev)
        k.process(k.clock.now(), "control", ev)

    api = ApiServer(ApiConfig(host="0.0.0.0"), m, token=TOKEN, control=control, metrics=lambda: "")

    async def main() -> None:
        async with TestClient(TestServer(api.app)) as c:
            bodies = []
            for r in ROUTES:
                if r.method != "GET" or r.path == "/ws":
                    continue
                resp = await c.get(r.path)
                bodies.append(await resp.text())
                if r.auth == "read":
                    assert resp.status == 401, r.path
                    resp = await c.get(r.path, headers={"Authorization": f"Bearer {TOKEN}"})
                    assert resp.status == 200, r.path
                    bodies.append(await resp.text())
                else:
                    assert resp.status in (200, 503), r.path
            for q in ("", "?token=wrong-token-wrong-token"):
                with pytest.raises(aiohttp.WSServerHandshakeError):
                    await c.ws_connect("/ws" + q)
            ws = await c.ws_connect(f"/ws?token={TOKEN}")
            bodies.append((await ws.receive(timeout=5)).data)
            await ws.close()
            resp = await c.post("/api/control/halt", headers={"Authorization": f"Bearer {TOKEN}"})
            bodies.append(await resp.text())
            assert resp.status == 200 and k.trading_state == "halted" and len(sent) == 1
            assert not any(TOKEN in b for b in bodies)

    anyio.run(main)


# ---------------------------------------------------------------------------------- /critical, hosts


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000 * 10**9

    def now(self) -> int:
        return self.t


def test_critical_names_a_feed_down_and_a_book_unhealthy_past_their_limits() -> None:
    from polybot.events import BookHealth, FeedConnected, FeedDisconnected, FeedStale

    cfg = parse_config({"risk": {"chain": ["trading_state"]}})
    k = build_kernel(cfg)
    clock = _Clock()
    m = Monitor(k, feeds=[("poly", "MarketFeed")], clock=clock)
    api = ApiServer(ApiConfig(critical_feed_down_s=10, critical_book_unhealthy_s=30), m, token=TOKEN,
                    control=lambda ev: None)  # type: ignore[arg-type,return-value]
    assert api.critical_reasons() == []
    secret_url = "wss://x/?apiKey=SECRET123"
    k.bus.publish(FeedDisconnected(ts=1, feed="poly", detail=f"lost {secret_url}"))
    clock.t += 9 * 10**9
    assert api.critical_reasons() == []  # a blip is not critical
    clock.t += 2 * 10**9
    assert api.critical_reasons() == ["feed poly disconnected for 11 s"]  # no detail: /critical is open
    k.bus.publish(FeedConnected(ts=2, feed="poly"))
    k.bus.publish(FeedStale(ts=3, feed="poly", asset_id="a"))
    clock.t += 60 * 10**9
    assert api.critical_reasons() == []  # stale is not down (the books' health says the rest)
    b = k.books.ensure("a1")
    b.healthy = False
    b.unhealthy_reason = "hash mismatch"
    k.bus.publish(BookHealth(ts=4, asset_id="a1", healthy=False, reason="hash mismatch"))
    clock.t += 29 * 10**9
    assert api.critical_reasons() == []
    clock.t += 2 * 10**9
    assert api.critical_reasons() == ["book a1 unhealthy for 31 s (hash mismatch)"]
    b.healthy = True
    k.bus.publish(BookHealth(ts=5, asset_id="a1", healthy=True, reason="snapshot"))
    assert api.critical_reasons() == []


def test_a_loopback_api_answers_only_to_loopback_host_names() -> None:
    """DNS rebinding: another site's name pointed at 127.0.0.1 must not read the open routes."""
    cfg = parse_config({"risk": {"chain": ["trading_state"]}})
    k = build_kernel(cfg)
    api = ApiServer(ApiConfig(), Monitor(k), token=TOKEN, control=lambda ev: None)  # type: ignore[arg-type,return-value]

    async def main() -> None:
        async with TestClient(TestServer(api.app)) as c:
            for host, ok in (("127.0.0.1:8321", True), ("localhost:8321", True), ("[::1]:8321", True),
                             ("LOCALHOST", True), ("evil.example:8321", False), ("127.0.0.1.evil.example", False)):  # fmt: skip
                r = await c.get("/api/status", headers={"Host": host})
                assert (r.status == 200) is ok, (host, r.status)

    anyio.run(main)


def test_out_of_range_numbers_are_refused_at_decode(tmp_path: Path) -> None:
    """1e400 would be infinity, which JSON (and so the journal) cannot carry."""
    cfg = config(tmp_path, speed=1)

    async def main() -> None:
        async with running(cfg) as (d, base, call):
            st, ans = await call("POST", "/api/strategies/dip/params", raw=b'{"params":{"order_timeout_s":1e400}}',
                                 token=token_of(cfg))  # fmt: skip
            assert st == 422 and ans["field"] == "params" and "out of range" in ans["error"]

    anyio.run(main)


def test_api_file_brackets_an_ipv6_host() -> None:
    from polybot.daemon import _url_host

    assert _url_host("::1") == "[::1]" and _url_host("127.0.0.1") == "127.0.0.1"
