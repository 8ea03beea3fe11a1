"""The dashboard in a real browser: headless Debian chromium (through its chromedriver) against a
daemon running the offline demo (config/demo.toml) on the local exchange simulator.

The page must load, show the trading state and live numbers pushed over the WebSocket, draw the
PnL chart, refuse a wrong token without halting, halt with the right one (the halt is journaled as
a control input from the API), show a params validation error with its field, and say
"disconnected" once the daemon is gone.

A second test feeds the page a crafted snapshot (markup in every string, an unhealthy book, a
disconnected feed, critical reasons, an open order, a YES+NO pair) from a stand-in server: what is
shown must be the text, never markup, and each of those must appear where it belongs.

The browser is Debian's (``apt-get install chromium chromium-driver``, ``make browser``): without
it the test is skipped, unless ``POLYBOT_REQUIRE_BROWSER=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from proc_helpers import REPO, start_daemon, stop, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEMO = REPO / "config" / "demo.toml"
WAIT = 15.0  # seconds for any one thing the page must show
REASON = "dashboard browser test"


def _require_browser() -> None:
    """Skip (or, with POLYBOT_REQUIRE_BROWSER=1, fail) when the browser or selenium is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    why = ""
    if missing:
        why = (f"the dashboard's browser test needs Debian's chromium and chromium-driver, missing: {', '.join(missing)} "
               "(install with `make browser` or `apt-get install chromium chromium-driver`)")  # fmt: skip
    elif importlib.util.find_spec("selenium") is None:
        why = "the dashboard's browser test needs selenium (pip install -e '.[test]')"
    if not why:
        return
    if os.environ.get("POLYBOT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why}; POLYBOT_REQUIRE_BROWSER=1 says it must run here")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(tmp_path: Path, sim_port: int) -> Path:
    """config/demo.toml with the data dir in ``tmp_path``, the simulator (and the feed's URLs) on
    ``sim_port`` and the API on any free port; everything else as shipped."""
    text = DEMO.read_text()
    subs = [
        (r'(?m)^data_dir = "[^"]*"', f'data_dir = "{tmp_path / "data"}"', 1),
        (r"\b8765\b", str(sim_port), 4),  # the simulator's port, then ws_url, rest_url, gamma_url
        (r"(?m)^port = 8321\s*$", "port = 0", 1),  # [api]
    ]
    for pat, rep, at_least in subs:
        text, n = re.subn(pat, lambda _m, rep=rep: rep, text)
        assert n >= at_least, f"config/demo.toml changed shape: {pat!r} matched {n} times"
    cfg = tmp_path / "demo.toml"
    cfg.write_text(text)
    return cfg


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes], err: Path, data: Path, url: str) -> None:
        self.proc, self.err, self.data, self.url = proc, err, data, url

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=5) as r:
            return json.loads(r.read())


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    _require_browser()
    cfg = demo_config(tmp_path, _free_port())
    data = tmp_path / "data"
    proc, err = start_daemon(cfg, tmp_path)
    try:
        api_file = data / "api.json"
        wait_for(lambda: api_file.exists() and api_file.stat().st_size > 0, 20.0, proc, err, "<data_dir>/api.json")
        url = json.loads(api_file.read_text())["url"]
        d = Daemon(proc, err, data, url)

        def books_ready() -> bool:
            try:
                return any(b["best_bid"] and b["best_ask"] for b in d.get("/api/books")["books"])
            except (OSError, urllib.error.URLError):
                return False

        wait_for(books_ready, 20.0, proc, err, "the simulator's books to reach the daemon")
        yield d
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1800", f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver: Any, cond: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)).until(cond)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; the page says:\n"
                             f"{driver.find_element('tag name', 'body').text[:3000]}") from None  # fmt: skip


def text(driver: Any, css: str) -> str:
    """An element's text as in the DOM (textContent: not changed by CSS text-transform)."""
    return str(driver.find_element("css selector", css).get_attribute("textContent") or "").strip()


def dialog_open(driver: Any, dialog_id: str) -> bool:
    return bool(driver.execute_script("return document.getElementById(arguments[0]).open", dialog_id))


def click(driver: Any, testid: str) -> None:
    driver.find_element("css selector", f'[data-testid="{testid}"]').click()


def test_dashboard_shows_live_state_and_halts_through_the_api(daemon: Daemon, browser: Any) -> None:
    d, drv = daemon, browser
    drv.get(d.url)
    assert drv.title.endswith("polybot")

    # live over the WebSocket: the state, counters that move, books with a bid and an ask, the chart
    until(drv, lambda x: x.find_element("id", "conn").get_attribute("data-state") == "live", "the WebSocket to connect")
    until(drv, lambda x: x.find_element("id", "trading-state").get_attribute("data-state") == "active", "trading state active")
    assert text(drv, "#trading-state") == "active"

    def inputs(x: Any) -> int | None:
        n = text(x, "#inputs").replace(",", "")
        return int(n) if n.isdigit() else None

    first = until(drv, inputs, "an inputs count")
    until(drv, lambda x: (inputs(x) or 0) > first, "the inputs counter to increase")
    price = re.compile(r"^0?\.\d+$|^1(\.0+)?$")

    def a_quoted_book(x: Any) -> bool:
        for row in x.find_elements("css selector", "#books tbody tr[data-asset]"):
            bid = row.find_element("css selector", "td.bid").get_attribute("textContent").strip()
            ask = row.find_element("css selector", "td.ask").get_attribute("textContent").strip()
            if price.match(bid) and price.match(ask) and float(bid) < float(ask):
                return True
        return False

    until(drv, a_quoted_book, "a book row with a bid and an ask")
    chart = drv.find_element("id", "pnl-chart")
    assert chart.tag_name == "svg"
    until(drv, lambda x: int(x.find_element("id", "pnl-chart").get_attribute("data-points")) >= 1
          and x.find_elements("css selector", '#pnl-chart path[data-series="net"]'), "the PnL chart to draw")  # fmt: skip
    assert text(drv, "#executor") == "paper"
    assert drv.find_elements("css selector", '#feeds tr[data-feed="polymarket"][data-state="connected"]')
    assert drv.find_elements("css selector", '#strategies [data-strategy="dip"][data-enabled="true"]')

    # Halt asks for confirmation (in the page), then for the token: a wrong one is refused, nothing halts
    click(drv, "control-halt")
    until(drv, lambda x: dialog_open(x, "confirm-dialog"), "the confirmation dialog")
    drv.find_element("id", "confirm-reason").send_keys(REASON)
    click(drv, "confirm-ok")
    until(drv, lambda x: dialog_open(x, "token-dialog"), "the token dialog")
    assert not dialog_open(drv, "confirm-dialog")
    assert "api_token" in text(drv, "#token-dialog") and "POLYBOT_API_TOKEN" in text(drv, "#token-dialog")
    drv.find_element("id", "token-input").send_keys("not-the-token-0123456789")
    click(drv, "token-submit")
    until(drv, lambda x: x.find_element("id", "token-error").is_displayed(), "the wrong token's error in the dialog")
    assert "refused" in text(drv, "#token-error")
    assert drv.find_element("id", "control-result").get_attribute("data-status") == "error"
    assert "401" in text(drv, "#control-result-text")
    assert d.get("/api/status")["trading_state"] == "active"
    assert drv.find_element("id", "trading-state").get_attribute("data-state") == "active"

    # ... the right one (from <data_dir>/api_token) halts
    token = (d.data / "api_token").read_text().strip()
    assert dialog_open(drv, "token-dialog")
    drv.find_element("id", "token-input").send_keys(token)
    click(drv, "token-submit")
    until(drv, lambda x: x.find_element("id", "trading-state").get_attribute("data-state") == "halted"
          and text(x, "#trading-state") == "halted", "the page to show halted")  # fmt: skip
    until(drv, lambda x: x.find_element("id", "control-result").get_attribute("data-status") == "ok", "the halt's result")
    assert "halted" in text(drv, "#control-result-text")
    assert d.get("/api/status")["trading_state"] == "halted"
    until(drv, lambda x: "trading is halted" in text(x, "#critical-list"), "the critical reasons to name the halt")

    # a params change the config would refuse: the 422's message and field are shown, nothing changes
    click(drv, "strategy-params-dip")
    until(drv, lambda x: dialog_open(x, "params-dialog"), "the params editor")
    box = drv.find_element("id", "params-json")
    assert json.loads(box.get_attribute("value"))["max_price"] == "0.49"
    box.clear()
    box.send_keys('{"max_price": "abc"}')
    click(drv, "params-submit")
    until(drv, lambda x: x.find_element("id", "params-error").is_displayed(), "the params error")
    assert drv.find_element("id", "params-error").get_attribute("data-field") == "params.max_price"
    assert "not a plain decimal" in text(drv, "#params-error")
    assert not dialog_open(drv, "token-dialog")  # the token is kept for this tab
    click(drv, "params-cancel")
    assert d.get("/api/strategies")["strategies"][0]["params"]["max_price"] == "0.49"

    js_errors = [e for e in drv.get_log("browser") if e.get("source") == "javascript"]
    assert not js_errors, js_errors

    # the daemon stops: the page says so; the journal has the halt from the API (once)
    summary = stop(d.proc, d.err)
    assert summary["inputs"] > first
    until(drv, lambda x: x.find_element("id", "conn").get_attribute("data-state") == "disconnected", "the page to say disconnected")
    assert drv.find_element("id", "disconnected-banner").is_displayed()
    assert "disconnected" in text(drv, "#conn")
    recs = [json.loads(ln) for ln in (d.data / "journal.jsonl").read_bytes().splitlines()]
    controls = [r["msg"] for r in recs if r["source"] == "control" and isinstance(r.get("msg"), dict)]
    halts = [m for m in controls if m.get("type") == "halt"]
    assert len(halts) == 1, halts  # the wrong token's attempt never reached the kernel
    assert halts[0]["origin"] == "api" and halts[0]["reason"] == REASON
    assert not [m for m in controls if m.get("type") == "set_params"]  # refused with 422 before the door
    assert any(r["source"] == "engine" and r.get("event", {}).get("type") == "trading_state"
               and r["event"]["state"] == "halted" for r in recs)  # fmt: skip


# ------------------------------------------------------------------------------------------ crafted data

EVIL = '<img src=x onerror="window.__xss=1">'
NS = 1_000_000_000
T0 = 1_700_000_000 * NS


def crafted_snapshot() -> dict[str, Any]:
    """A snapshot message in the daemon's shapes (polybot.api.server.ApiServer.view_message) with markup
    in every free-text field."""
    yes, no = "111111111111111111111", "222222222222222222222"
    book = {"market": "0xmarket", "question": "Will it rain? " + EVIL, "mid": "0.5", "age_s": 0.25}
    feeds = [{"name": "poly" + EVIL, "kind": "MarketFeed", "state": "disconnected", "detail": "socket closed " + EVIL,
              "for_s": 42.0, "connects": 3, "disconnects": 2, "stale": 1}]  # fmt: skip
    status = {"now_ns": T0, "event_time_ns": T0, "uptime_s": 3725.0, "trading_state": "reducing",
              "executor": {"name": "clob", "kind": "ClobExecutor", "dry_run": True},
              "inputs": 123456, "events": 234567, "dropped": 7, "intents": 5, "orders": 4, "fills": 2, "rejections": 1,
              "open_orders": 1, "feeds": feeds, "books": {"total": 2, "healthy": 1, "worst_unhealthy_s": 12.5,
                                                           "worst_unhealthy_asset": no},
              "strategies": [{"id": "mm" + EVIL, "class": "strategies.x:Y", "enabled": False, "orders": 4, "fills": 2,
                              "params": {"edge": "0.01", "note": EVIL}}],
              "pnl": {"net": "-1.5", "realized": "0.5", "unrealized": "-2", "fees": "0.1", "rebates": "0", "cash": "98.5"},
              "journal": "/srv/polybot/data/journal.jsonl",
              "critical": ["feed poly disconnected for 42 s: " + EVIL, "book 2222 unhealthy for 12 s (crossed)"]}  # fmt: skip
    books = [
        {**book, "asset_id": yes, "outcome": "Yes", "best_bid": "0.48", "best_ask": "0.52", "bid_size": "100",
         "ask_size": "50", "healthy": True, "reason": "", "unhealthy_for_s": None},
        {**book, "asset_id": no, "outcome": "No" + EVIL, "best_bid": None, "best_ask": "0.55", "bid_size": None,
         "ask_size": "10", "healthy": False, "reason": "hash mismatch " + EVIL, "unhealthy_for_s": 12.5},
    ]  # fmt: skip
    positions = {
        "positions": [{"strategy": "mm", "asset_id": yes, "market": "0xmarket", "outcome": "Yes", "question": book["question"],
                       "size": "10", "avg_price": "0.45", "cost": "4.5", "mark": "0.5", "unrealized": "0.5",
                       "realized": "0", "fees": "0.01"}],
        "markets": [{"strategy": "mm", "market": "0xmarket", "question": book["question"], "qty_yes": "10", "qty_no": "10",
                     "pairs": "10", "pair_cost": "0.97", "locked_profit": "0.3", "unpaired": "0"}],
        "pnl": {"total": status["pnl"], "strategies": {"mm": status["pnl"]}, "exposure": "5.2"},
    }  # fmt: skip
    order = {"client_id": "pb-1" + EVIL, "strategy": "mm", "asset_id": yes, "market": "0xmarket", "outcome": "Yes",
             "side": "BUY", "price": "0.47", "size": "10", "filled": "2", "state": "open", "tif": "GTC",
             "venue_order_id": "v1", "created_ts": T0, "updated_ts": T0}  # fmt: skip
    fill = {"ts": T0, "client_id": "pb-0", "strategy": "mm", "asset_id": yes, "market": "0xmarket", "side": "BUY",
            "price": "0.45", "size": "10", "liquidity": "maker", "fee": "0.01", "trade_id": "t1", "outcome": "Yes"}  # fmt: skip
    steps = [{"ts": T0, "client_id": "pb-2", "strategy": "mm", "step": "order_rejected", "asset_id": yes,
              "reason": "venue said no " + EVIL}]  # fmt: skip
    rejections = [{"ts": T0, "strategy": "mm", "client_ids": ["pb-3"], "plan_id": "", "validator": "position_caps",
                   "reason": "too big " + EVIL}]  # fmt: skip
    pnl = [[T0 + i * NS, -0.1 * i, 0.05 * i, -0.15 * i, 0.01 * i, 5.2] for i in range(30)]
    return {"type": "snapshot", "status": status, "positions": positions, "orders": [order], "books": books,
            "fills": [fill], "steps": steps, "rejections": rejections, "pnl": pnl}  # fmt: skip


class StandIn:
    """Serves the dashboard page and a WebSocket that sends one crafted snapshot (aiohttp in a thread)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.url = ""
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the stand-in server did not start"

    async def _main(self) -> None:
        from importlib import resources

        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        socks: set[web.WebSocketResponse] = set()
        page = resources.files("polybot.api").joinpath("dashboard.html").read_bytes()

        async def index(_r: web.Request) -> web.Response:
            return web.Response(body=page, content_type="text/html")

        async def ws(r: web.Request) -> web.WebSocketResponse:
            sock = web.WebSocketResponse()
            await sock.prepare(r)
            socks.add(sock)
            try:
                await sock.send_str(json.dumps(crafted_snapshot()))
                async for _msg in sock:
                    pass
            finally:
                socks.discard(sock)
            return sock

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_get("/ws", ws)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"
        self.ready.set()
        await self._stop.wait()
        for sock in list(socks):
            await sock.close()
        await runner.cleanup()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        assert not self.thread.is_alive(), "the stand-in server did not stop"


def test_dashboard_shows_data_as_text_and_flags_what_is_unhealthy(browser: Any) -> None:
    srv = StandIn()
    try:
        drv = browser
        drv.get(srv.url)
        until(drv, lambda x: x.find_element("id", "trading-state").get_attribute("data-state") == "reducing", "the crafted snapshot")
        body = drv.find_element("tag name", "body")
        assert drv.execute_script("return window.__xss") is None
        assert not drv.find_elements("css selector", "main img, header img, #critical img, dialog img")
        assert EVIL in body.text  # shown as text

        assert text(drv, "#executor") == "clob" and text(drv, "#dry-run") == "dry run"
        assert text(drv, "#inputs") == "123,456" and text(drv, "#drops") == "7"
        assert text(drv, "#uptime").startswith("1h 02m")
        crit = text(drv, "#critical-list")
        assert "feed poly disconnected for 42 s" in crit and "crossed" in crit
        assert drv.find_element("id", "critical").is_displayed()

        feed = drv.find_element("css selector", '#feeds tr[data-state="disconnected"]')
        assert feed.get_attribute("data-feed") == "poly" + EVIL and "2 / 1" in feed.text
        assert text(drv, "#book-health") == "1/2"
        assert drv.find_element("id", "book-health").get_attribute("data-ok") == "false"
        bad = drv.find_element("css selector", "#unhealthy-books tbody tr[data-asset]")
        assert "hash mismatch " + EVIL in bad.get_attribute("textContent")
        unhealthy_for = bad.find_elements("css selector", "td")[-1].text  # 12.5 s at the snapshot, counting on
        assert re.fullmatch(r"\d+(\.\d)?s", unhealthy_for) and float(unhealthy_for[:-1]) >= 12, unhealthy_for

        rows = drv.find_elements("css selector", "#books tbody tr[data-asset]")
        assert [r.get_attribute("data-healthy") for r in rows] == ["true", "false"]
        assert rows[0].find_element("css selector", "td.bid").text == "0.48"
        assert rows[0].find_element("css selector", "td.ask").text == "0.52"
        assert rows[1].find_element("css selector", "td.bid").text == "—"

        pair = drv.find_element("css selector", "#pairs tbody tr[data-market]")
        assert "0.97" in pair.text and "+$0.3000" in pair.text
        assert "+$0.50" in drv.find_element("css selector", "#positions tbody tr[data-asset]").text
        assert text(drv, "#pnl-net") == "−$1.50" and text(drv, "#exposure") == "$5.20"
        order = drv.find_element("css selector", "#orders tbody tr[data-client-id]")
        assert order.get_attribute("data-client-id") == "pb-1" + EVIL and "0.47" in order.text
        assert "venue said no " + EVIL in text(drv, "#steps")
        assert "too big " + EVIL in text(drv, "#rejections") and "position_caps" in text(drv, "#rejections")
        assert drv.find_element("id", "pnl-chart").get_attribute("data-points") == "30"
        strat = drv.find_element("css selector", "#strategies [data-strategy]")
        assert strat.get_attribute("data-strategy") == "mm" + EVIL and strat.get_attribute("data-enabled") == "false"
        assert [b.get_attribute("data-testid") for b in strat.find_elements("css selector", "button")] == [
            f"strategy-enable-mm{EVIL}", f"strategy-params-mm{EVIL}"]

        js_errors = [e for e in drv.get_log("browser") if e.get("source") == "javascript"]
        assert not js_errors, js_errors
    finally:
        srv.close()
