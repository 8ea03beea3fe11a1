"""``polybot doctor`` for the Polymarket US executor (adapters/polymarket_us/doctor.py) against the
simulator on loopback (Ed25519 auth verified server-side, /v1/account/balances, /v1/orders/open,
/v1/portfolio/positions, the private WebSocket, the gateway's /v1/market/slug/{slug}). A good
setup passes every check; each broken one fails the right check with a fix; the secret key never
appears in the report."""

from __future__ import annotations

import os
import socket
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.polymarket_us.auth import generate_key
from adapters.polymarket_us.doctor import Check, clock_check, format_report, run_doctor
from adapters.polymarket_us.live import BUY_LONG, UsExecutor
from pmus_rig import KEY_ID, SECRET, pmus_config, sim_server, venue_post
from polybot.config import Config, Secrets, load_secrets, parse_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def config(data: dict[str, Any], secrets_file: Path | None = None) -> Config:
    if secrets_file is not None:
        data = {**data, "secrets": {"file": str(secrets_file)}}
    return parse_config(data, "pmus-doctor-test.toml")


def keys(key_id: str = KEY_ID, secret: str = SECRET) -> Secrets:
    return Secrets({"pmus_key_id": key_id, "pmus_secret_key": secret})


def by_name(checks: list[Check]) -> dict[str, Check]:
    out: dict[str, Check] = {}
    for c in checks:
        assert c.name not in out, f"duplicate check {c.name}"
        out[c.name] = c
    return out


async def doctor(cfg: Config, secrets: Secrets, *planted: str) -> tuple[dict[str, Check], str]:
    checks = await run_doctor(cfg, secrets, dict(cfg.executor.params))
    report = format_report(checks)
    for c in checks:  # plain one-line details, a fix for every failure
        assert c.detail and "\n" not in c.detail and "Traceback" not in c.detail
        if c.ok is False:
            assert c.fix, f"{c.name}: a failed check needs a fix"
    for s in (SECRET, *planted):
        assert s not in report and s.rstrip("=") not in report, "the secret key leaked into the report"
    assert KEY_ID not in report  # the key id only as its first 8 characters
    return by_name(checks), report


def failed(c: dict[str, Check]) -> list[str]:
    return [n for n, x in c.items() if x.ok is False]


ORDER = ["config", "secrets file", "key", "api", "clock", "private websocket", "open orders", "positions", "markets"]


async def test_good_setup_passes_everything(tmp_path: Path) -> None:
    async with sim_server() as sim:
        cfg = config(pmus_config(sim, tmp_path))
        c, report = await doctor(cfg, keys())
        assert list(c) == ORDER
        assert not failed(c), report
        assert c["secrets file"].ok is None
        assert c["key"].ok and KEY_ID[:8] in c["key"].detail
        assert "balance 10,000.00 USD" in c["api"].detail and "buying power 10,000.00 USD" in c["api"].detail
        assert c["clock"].ok is True and "in sync" in c["clock"].detail  # aiohttp's server sends Date
        assert c["private websocket"].ok and "/v1/ws/private" in c["private websocket"].detail
        assert c["open orders"].detail == "none at the venue"
        assert "no net position" in c["positions"].detail
        assert c["markets"].ok and "2 market(s) found and open" in c["markets"].detail
        assert report.endswith("ready for live trading")
        assert ("GET", "/v1/account/balances", 200) in sim.requests


async def test_positions_and_orders_counted_when_not_refused(tmp_path: Path) -> None:
    async with sim_server() as sim:
        s0 = sim.slugs[0]
        bid, ask = sim.book(s0)[0][0][0], sim.book(s0)[1][0][0]
        await venue_post(sim, {"marketSlug": s0, "intent": BUY_LONG, "quantity": 3,
                               "price": {"value": f"{ask / 1e6:.2f}", "currency": "USD"},
                               "tif": "TIME_IN_FORCE_IMMEDIATE_OR_CANCEL"})  # fmt: skip
        await venue_post(sim, {"marketSlug": s0, "intent": BUY_LONG, "quantity": 2,
                               "price": {"value": f"{(bid - 50_000) / 1e6:.2f}", "currency": "USD"}})  # fmt: skip
        cfg = config(pmus_config(sim, tmp_path, executor={"unknown_orders": "adopt"}))
        c, report = await doctor(cfg, keys())
        assert not failed(c), report
        assert c["open orders"].detail.startswith("1 open order(s) at the venue in 1 market(s): " + s0)
        assert "takes them over" in c["open orders"].detail
        assert c["positions"].detail.startswith(f"net positions in 1 market(s): {s0}")


async def test_wrong_key_fails_on_acceptance_with_the_fix(tmp_path: Path) -> None:
    other_secret, _ = generate_key()  # a valid key the venue does not know for this id
    async with sim_server() as sim:
        cfg = config(pmus_config(sim, tmp_path))
        c, report = await doctor(cfg, keys(secret=other_secret), other_secret)
        assert c["key"].ok is True
        assert failed(c) == ["api", "private websocket"], report
        assert "HTTP 401" in c["api"].detail and "bad signature" in c["api"].detail
        assert "pmus_key_id" in c["api"].fix and "pmus_secret_key" in c["api"].fix
        assert "POLYBOT_PMUS_SECRET_KEY" in c["api"].fix
        assert c["open orders"].ok is None and c["positions"].ok is None
        assert c["clock"].ok is True  # the 401 answer carries a Date header too
        assert "FAIL api: " in report and "\n     fix: " in report

        c, report = await doctor(cfg, keys(key_id="unknown-key-id-0000"))
        assert "unknown API key" in c["api"].detail


async def test_missing_secrets_name_the_env_vars(tmp_path: Path) -> None:
    async with sim_server() as sim:
        cfg = config(pmus_config(sim, tmp_path))
        c, _ = await doctor(cfg, Secrets({}))
        assert c["key"].ok is False
        assert "POLYBOT_PMUS_KEY_ID" in c["key"].detail and "POLYBOT_PMUS_SECRET_KEY" in c["key"].detail
        assert "POLYBOT_PMUS_KEY_ID" in c["key"].fix and "pmus_secret_key" in c["key"].fix
        for n in ("api", "clock", "private websocket", "open orders", "positions"):
            assert c[n].ok is None, n
        assert c["markets"].ok is True  # the public gateway needs no key

        c, _ = await doctor(cfg, Secrets({"pmus_key_id": KEY_ID}))
        assert "POLYBOT_PMUS_SECRET_KEY" in c["key"].detail and "POLYBOT_PMUS_KEY_ID" not in c["key"].detail


async def test_invalid_secret_key_is_named_never_printed(tmp_path: Path) -> None:
    planted = "planted-NOT-base64-secret-zzzzzzzzzzzzzzzz!!"
    async with sim_server() as sim:
        cfg = config(pmus_config(sim, tmp_path))
        c, _ = await doctor(cfg, keys(secret=planted), planted)
        assert c["key"].ok is False and "not a valid Ed25519 key" in c["key"].detail


async def test_open_orders_with_refuse_fail(tmp_path: Path) -> None:
    async with sim_server() as sim:
        s1 = sim.slugs[1]
        bid = sim.book(s1)[0][0][0]
        await venue_post(sim, {"marketSlug": s1, "intent": BUY_LONG, "quantity": 2,
                               "price": {"value": f"{(bid - 50_000) / 1e6:.2f}", "currency": "USD"}})  # fmt: skip
        cfg = config(pmus_config(sim, tmp_path))
        c, report = await doctor(cfg, keys())
        assert failed(c) == ["open orders"], report
        assert "1 open order(s) at the venue" in c["open orders"].detail
        assert 'unknown_orders = "refuse"' in c["open orders"].detail and "journal" in c["open orders"].detail
        assert '"adopt"' in c["open orders"].fix and '"cancel"' in c["open orders"].fix
        assert report.endswith("NOT ready: fix the failed checks above")


async def test_unknown_and_closed_market_slugs_fail(tmp_path: Path) -> None:
    async with sim_server() as sim:
        data = pmus_config(sim, tmp_path)
        data["feeds"][0]["params"]["markets"] = [*sim.slugs, "no-such-market-slug"]
        c, _ = await doctor(config(data), keys())
        assert failed(c) == ["markets"]
        assert "market no-such-market-slug: not found" in c["markets"].detail and "1 of 3 market(s)" in c["markets"].detail
        assert "slug" in c["markets"].fix

        sim.resolve(sim.slugs[0], long_wins=True)
        data["feeds"][0]["params"]["markets"] = list(sim.slugs)
        c, _ = await doctor(config(data), keys())
        assert failed(c) == ["markets"] and f"market {sim.slugs[0]}: not open (closed)" in c["markets"].detail


async def test_gateway_default_and_no_feed(tmp_path: Path) -> None:
    async with sim_server() as sim:
        data = pmus_config(sim, tmp_path)
        data["feeds"] = []
        c, _ = await doctor(config(data), keys())
        assert not failed(c) and c["markets"].ok is None


async def test_api_unreachable_fails_without_traceback(tmp_path: Path) -> None:
    port = closed_port()
    data: dict[str, Any] = {
        "engine": {"data_dir": str(tmp_path)},
        "executor": {"kind": "polymarket-us", "params": {"api_url": f"http://127.0.0.1:{port}",
                                                         "ws_url": f"ws://127.0.0.1:{port}", "request_timeout_s": 1.0}},
        "feeds": [{"kind": "polymarket-us", "name": "pmus",
                   "params": {"gateway_url": f"http://127.0.0.1:{port}", "markets": ["a-market"]}}],
    }  # fmt: skip
    t0 = time.monotonic()
    c, report = await doctor(config(data), keys())
    assert time.monotonic() - t0 < 10
    assert failed(c) == ["api", "private websocket", "markets"], report
    assert "cannot connect" in c["api"].detail and "api_url" in c["api"].fix
    assert c["clock"].ok is None and c["open orders"].ok is None and c["positions"].ok is None
    assert "Traceback" not in report


async def test_config_problems_are_named(tmp_path: Path) -> None:
    async with sim_server() as sim:
        data = pmus_config(sim, tmp_path, executor={"api_key": "x", "privte": 1})
        c, _ = await doctor(config(data), keys())
        assert c["config"].ok is False and "api_key, privte" in c["config"].detail
        assert c["api"].ok is None

        data = pmus_config(sim, tmp_path, executor={"unknown_orders": "ignore"})
        c, _ = await doctor(config(data), keys())
        assert c["config"].ok is False and "unknown_orders" in c["config"].detail

        data = pmus_config(sim, tmp_path, executor={"request_timeout_s": 0})
        c, _ = await doctor(config(data), keys())
        assert c["config"].ok is False and "request_timeout_s" in c["config"].detail

        data = pmus_config(sim, tmp_path, executor={"demo_key": True, "api_url": "https://api.polymarket.us"})
        c, _ = await doctor(config(data), Secrets({}))
        assert c["config"].ok is False and "loopback" in c["config"].detail


async def test_demo_key_on_loopback(tmp_path: Path) -> None:
    from adapters.polymarket_us.sim import DEMO_KEY_ID, DEMO_PUBLIC_KEY

    async with sim_server() as sim:
        sim.add_key(DEMO_KEY_ID, DEMO_PUBLIC_KEY)
        c, report = await doctor(config(pmus_config(sim, tmp_path, executor={"demo_key": True})), Secrets({}))
        assert not failed(c), report
        assert "demo key" in c["key"].detail


async def test_no_private_stream_skips_the_websocket(tmp_path: Path) -> None:
    async with sim_server() as sim:
        c, _ = await doctor(config(pmus_config(sim, tmp_path, executor={"ws_url": ""})), keys())
        assert not failed(c) and c["private websocket"].ok is None


async def test_secrets_file(tmp_path: Path) -> None:
    async with sim_server() as sim:
        f = tmp_path / "secrets.toml"
        f.write_text(f'pmus_key_id = "{KEY_ID}"\npmus_secret_key = "{SECRET}"\n')
        os.chmod(f, 0o600)
        cfg = config(pmus_config(sim, tmp_path), f)
        c, report = await doctor(cfg, load_secrets(cfg, env={}))
        assert not failed(c), report
        assert c["secrets file"].ok is True

        os.chmod(f, 0o644)
        c, _ = await doctor(cfg, Secrets({}))
        assert c["secrets file"].ok is False and f"chmod 600 {f}" in c["secrets file"].fix
        assert "readable by other users" in c["key"].detail

        missing = config(pmus_config(sim, tmp_path), tmp_path / "nope.toml")
        c, _ = await doctor(missing, Secrets({}))
        assert c["secrets file"].ok is False and "pmus_key_id, pmus_secret_key" in c["secrets file"].fix


def test_clock_from_the_date_header() -> None:
    now = time.time()
    assert clock_check(None, now, now).ok is None
    assert clock_check("not a date", now, now).ok is None
    ok = clock_check(formatdate(now, usegmt=True), now, now)
    assert ok.ok is True and "in sync" in ok.detail
    warn = clock_check(formatdate(now - 10, usegmt=True), now, now)
    assert warn.ok is True and warn.detail.startswith("warning: local clock is") and "ahead of" in warn.detail
    bad = clock_check(formatdate(now + 40, usegmt=True), now, now)
    assert bad.ok is False and "behind the venue" in bad.detail and "NTP" in bad.fix


def test_executor_names_its_doctor() -> None:
    assert UsExecutor.doctor_module == "adapters.polymarket_us.doctor"


# ---------------------------------------------------------------------------------------------
# the command


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml(data: dict[str, Any]) -> str:
    """The rig's config as a TOML file (tables, and [[feeds]] arrays of tables)."""
    out: list[str] = []
    for section, body in data.items():
        if isinstance(body, list):
            for item in body:
                out.append(f"[[{section}]]")
                out += [f"{k} = {_value(v)}" for k, v in item.items()]
        else:
            out.append(f"[{section}]")
            out += [f"{k} = {_value(v)}" for k, v in body.items()]
    return "\n".join(out) + "\n"


async def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from polybot.cli import main

    async with sim_server() as sim:
        monkeypatch.setenv("POLYBOT_PMUS_KEY_ID", KEY_ID)
        monkeypatch.setenv("POLYBOT_PMUS_SECRET_KEY", SECRET)
        good = tmp_path / "good.toml"
        good.write_bytes(toml(pmus_config(sim, tmp_path / "data")).encode())
        assert await anyio.to_thread.run_sync(main, ["doctor", "--config", str(good)]) == 0
        out = capsys.readouterr().out
        assert "ok   api: key " in out and "FAIL" not in out and SECRET not in out

        data = pmus_config(sim, tmp_path / "data")
        data["feeds"][0]["params"]["markets"] = ["no-such-market-slug"]
        bad = tmp_path / "bad.toml"
        bad.write_bytes(toml(data).encode())
        assert await anyio.to_thread.run_sync(main, ["doctor", "--config", str(bad)]) == 1
        out = capsys.readouterr().out
        assert "FAIL markets: " in out and "\n     fix: " in out and SECRET not in out
