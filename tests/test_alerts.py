"""Operator alerts (polybot.alerts) against local fakes on loopback: a fake Telegram Bot API
(records sendMessage, serves getUpdates as a long poll) and a fake webhook receiver (answers
what it is told: 500 then 200, 400, ...). Covered: what alerts and at which level, feed outages
after feed_down_s and their recovery, rate limiting and coalescing on a fake clock, the daily
summary, Telegram commands (allow-listed chats only; /halt and /resume through the kernel's door
with origin "telegram"), webhook retries, secrets never logged, bad config refused naming the
field, and a real daemon halted through the fake Telegram."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from loguru import logger

from polybot import events
from polybot.alerts import Alert, AlertService, RateLimiter, TelegramSink, WebhookSink, build_alert_service, scrub
from polybot.config import ConfigError, Secrets, load_secrets, parse_config
from polybot.daemon import Daemon
from polybot.events import (
    FeedConnected,
    FeedDisconnected,
    Halt,
    HandlerError,
    OrderRejected,
    OrderUnknown,
    Resume,
    RiskRejected,
)
from polybot.wiring import build_kernel

from proc_helpers import DIP_TOML, demo_daemon_toml

TOKEN = "987654321:AAFakeBotTokenSecretPart_0123456789xyz"
HOOK_PATH = "/services/T00/B00/hook-secret-path-4242"
CHAT, CHAT2, STRANGER = 111, -100222, 999
WALL0 = datetime(2025, 3, 4, 8, 30, tzinfo=timezone.utc).timestamp()


class FakeClock:
    """Monotonic (or wall) seconds, moved by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------------------- fakes


class Poke:
    """Set on every request a fake receives: tests wait for what they expect, never sleep."""

    def __init__(self) -> None:
        self._ev = asyncio.Event()

    def __call__(self) -> None:
        self._ev.set()

    async def until(self, pred: Callable[[], bool], timeout: float = 8.0) -> None:
        with anyio.fail_after(timeout):
            while not pred():
                self._ev.clear()
                await self._ev.wait()


async def until(pred: Callable[[], bool], timeout: float = 8.0) -> None:
    """For what no fake sees (a sink's own counters after an answer, a refused connection):
    checked every 10 ms until true."""
    with anyio.fail_after(timeout):
        while not pred():
            await anyio.sleep(0.01)


class FakeTelegram:
    def __init__(self, poke: Poke) -> None:
        self.poke = poke
        self.sent: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        self.updates: list[dict[str, Any]] = []
        self.polls = 0
        self.offsets: list[Any] = []
        self.status: dict[str, int] = {}  # method -> status to answer (default 200)
        self._new = asyncio.Event()
        self.closing = False
        self.app = web.Application()
        self.app.router.add_post("/bot{token}/{method}", self.handle)

    def queue(self, chat_id: int, text: str, date: float) -> None:
        n = len(self.updates) + 1
        self.updates.append({"update_id": 5000 + n, "message": {
            "message_id": 70 + n, "date": int(date), "text": text,
            "chat": {"id": chat_id, "type": "private"}, "from": {"id": chat_id, "is_bot": False, "first_name": "op"}}})  # fmt: skip
        self._new.set()

    def alerts(self, chat: int | None = None) -> list[str]:
        return [m["text"] for m in self.sent if "reply_to_message_id" not in m and (chat is None or m["chat_id"] == chat)]

    def replies(self, chat: int) -> list[str]:
        return [m["text"] for m in self.sent if "reply_to_message_id" in m and m["chat_id"] == chat]

    async def handle(self, request: web.Request) -> web.Response:
        self.tokens.add(request.match_info["token"])
        method = request.match_info["method"]
        body = await request.json()
        try:
            status = self.status.get(method, 200)
            if status != 200:
                return web.json_response({"ok": False, "error_code": status, "description": "fake failure"}, status=status)
            if method == "sendMessage":
                self.sent.append(body)
                return web.json_response({"ok": True, "result": {"message_id": len(self.sent)}})
            if method == "getUpdates":
                self.polls += 1
                self.offsets.append(body.get("offset"))
                offset = body.get("offset") or 0
                pending = [u for u in self.updates if u["update_id"] >= offset]
                if not pending and not self.closing:
                    self._new.clear()
                    self.poke()  # a poll is waiting
                    try:
                        await asyncio.wait_for(self._new.wait(), min(float(body.get("timeout", 0)), 2.0))
                    except TimeoutError:
                        pass
                    pending = [u for u in self.updates if u["update_id"] >= offset]
                return web.json_response({"ok": True, "result": pending})
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        finally:
            self.poke()


class FakeHook:
    def __init__(self, poke: Poke) -> None:
        self.poke = poke
        self.statuses: deque[int] = deque()  # answers to give, then 200
        self.attempts: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self.handle)

    def kinds(self) -> list[str]:
        return [a["kind"] for a in self.accepted]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.paths.append(request.path)
        self.attempts.append(body)
        status = self.statuses.popleft() if self.statuses else 200
        if status == 200:
            self.accepted.append(body)
        self.poke()
        return web.json_response({"ok": status == 200}, status=status)


@asynccontextmanager
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeHook, Poke, str, str]]:
    """(telegram, hook, poke, telegram api_url, webhook url), both on 127.0.0.1, port 0."""
    poke = Poke()
    tgm, hook = FakeTelegram(poke), FakeHook(poke)
    ts, hs = TestServer(tgm.app, host="127.0.0.1", port=0), TestServer(hook.app, host="127.0.0.1", port=0)
    await ts.start_server()
    await hs.start_server()
    try:
        yield tgm, hook, poke, f"http://127.0.0.1:{ts.port}", f"http://127.0.0.1:{hs.port}{HOOK_PATH}?key=qs-secret-77"
    finally:
        tgm.closing = True
        tgm._new.set()
        await ts.close()
        await hs.close()


@pytest.fixture
def logs() -> Any:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {name} {message} {extra}",
                      diagnose=False)  # fmt: skip
    yield lines
    logger.remove(sink)


def assert_no_secrets(texts: list[str], hook_url: str = "") -> None:
    blob = "\n".join(texts)
    for s in (TOKEN, TOKEN.partition(":")[2], HOOK_PATH, "hook-secret-path-4242", "qs-secret-77"):
        assert s not in blob, s
    if hook_url:
        assert hook_url not in blob


# ---------------------------------------------------------------------------------- helpers


def make_cfg(*, tg_url: str | None = None, hook: bool = False, webhook: dict[str, Any] | None = None,
             telegram: dict[str, Any] | None = None, **alerts: Any) -> Any:  # fmt: skip
    a: dict[str, Any] = {"enabled": True, "feed_down_s": 10, "burst": 10, "per_minute": 60, "coalesce_s": 60, **alerts}
    if hook:
        a["webhook"] = {"enabled": True, "backoff_s": 0.01, "retries": 2, **(webhook or {})}
    if tg_url:
        a["telegram"] = {"enabled": True, "chat_ids": [CHAT, CHAT2], "api_url": tg_url, "poll_timeout_s": 5,
                         "backoff_s": 0.01, **(telegram or {})}  # fmt: skip
    return parse_config({"risk": {"chain": ["trading_state"]}, "alerts": a}, "alerts.toml")


def make_service(cfg: Any, *, hook_url: str = "", clock: FakeClock | None = None, wall: FakeClock | None = None,
                 control: bool = True) -> tuple[Any, AlertService, list[Any]]:  # fmt: skip
    """(kernel, service, control inputs sent). ``control`` processes them like the daemon's door."""
    k = build_kernel(cfg)
    sent: list[Any] = []

    async def door(ev: Any) -> None:
        sent.append(ev)
        k.process(k.clock.now(), "control", events.ENCODER.encode(ev))

    sec = Secrets({"telegram_bot_token": TOKEN, "alert_webhook_url": hook_url})
    svc = build_alert_service(cfg, k, sec, feeds=["poly"], clock=clock or FakeClock(), wall=wall or FakeClock(WALL0),
                              control=door if control else None)  # fmt: skip
    return k, svc, sent


def queued(svc: AlertService) -> list[Alert]:
    """What the first sink has queued (services that are not run)."""
    return list(svc.sinks[0].queue)


def drain(svc: AlertService) -> list[Alert]:
    out = list(svc.sinks[0].queue)
    svc.sinks[0].queue.clear()
    return out


# ---------------------------------------------------------------------------------- delivery


def test_halt_resume_and_a_loss_limit_halt_reach_both_sinks() -> None:
    async def main() -> None:
        async with fakes() as (tgm, hook, poke, tg_url, hook_url):
            k, svc, _ = make_service(make_cfg(tg_url=tg_url, hook=True, telegram={"commands": False}), hook_url=hook_url)
            async with anyio.create_task_group() as tg:
                tg.start_soon(svc.run)
                await poke.until(lambda: "daemon_started" in hook.kinds())
                k.process(k.clock.now(), "control", Halt(origin="api", reason="lunch"))
                await poke.until(lambda: "trading_halted" in hook.kinds() and len(tgm.alerts()) >= 4)
                k.process(k.clock.now(), "control", Resume(origin="cli", reason="back"))
                k.halt("loss_limits: account: daily loss 25 > max_daily_loss 20 (net -25, 0 at the start of 2025-03-04 UTC)")
                await poke.until(lambda: hook.kinds().count("trading_halted") == 2 and len(tgm.alerts()) >= 8)
                tg.cancel_scope.cancel()
            by_kind = {}
            for a in hook.accepted:
                by_kind.setdefault(a["kind"], []).append(a)
            first, limit = by_kind["trading_halted"]
            assert first["level"] == "warning" and "HALTED: lunch (by api)" in first["text"]
            assert first["reason"] == "lunch" and first["origin"] == "api" and first["state"] == "halted"
            assert isinstance(first["ts"], int) and first["ts"] == int(WALL0 * 1e9) and first["time"].startswith("2025-03-04T08:30")
            assert by_kind["trading_resumed"][0]["level"] == "info" and "(by cli)" in by_kind["trading_resumed"][0]["text"]
            assert limit["level"] == "critical" and "by a risk limit" in limit["text"] and "max_daily_loss" in limit["text"]
            for chat in (CHAT, CHAT2):  # every allow-listed chat gets every alert
                texts = tgm.alerts(chat)
                assert any(t.startswith("⚠️ trading HALTED: lunch") for t in texts)
                assert any(t.startswith("ℹ️ trading resumed") for t in texts)
                assert any(t.startswith("🚨 trading HALTED by a risk limit") for t in texts)
            assert tgm.tokens == {TOKEN} and set(hook.paths) == {HOOK_PATH}
            assert tgm.polls == 0  # commands off: no polling

    anyio.run(main)


def test_order_problems_handler_errors_and_failed_onchain_actions_alert() -> None:
    k, svc, _ = make_service(make_cfg(hook=True), hook_url="http://127.0.0.1:9/h")
    svc.armed = True
    pub = k.bus.publish
    pub(OrderRejected(ts=1, client_id="pb-1", strategy="dip", reason="not enough balance"))
    pub(OrderUnknown(ts=2, client_id="pb-2", strategy="dip", reason="timeout"))
    pub(HandlerError(ts=3, handler="Dip.on_book", event_type="BookSnapshot", error="ZeroDivisionError: x"))
    failed = getattr(events, "PositionActionFailed", None)
    if failed is not None:
        pub(failed(ts=4, action_id="act-1", action="redeem", market="0xmarket", strategy="dip", reason="reverted"))
    got = {a.kind: a for a in drain(svc)}
    assert got["order_rejected"].level == "warning" and "pb-1 (dip) rejected by the venue: not enough balance" in got["order_rejected"].text
    assert "outcome unknown (timeout)" in got["order_unknown"].text
    assert "Dip.on_book raised on BookSnapshot: ZeroDivisionError" in got["handler_error"].text
    if failed is not None:
        a = got["position_action_failed"]
        assert a.level == "warning" and "redeem act-1 failed for market 0xmarket (dip): reverted" in a.text
        assert a.fields["action_id"] == "act-1" and a.fields["market"] == "0xmarket"


def test_events_before_the_service_runs_are_silent() -> None:
    """A daemon's recovery replays old events before the service's task starts: not news."""
    k, svc, _ = make_service(make_cfg(hook=True), hook_url="http://127.0.0.1:9/h")
    k.process(k.clock.now(), "control", Halt(origin="api", reason="old"))
    k.bus.publish(FeedDisconnected(ts=1, feed="poly"))
    k.bus.publish(OrderRejected(ts=1, client_id="pb-1", reason="old"))
    svc.armed = True
    svc.clock.t += 3600  # type: ignore[attr-defined]
    svc.tick()
    assert queued(svc) == [] and svc.outages == {}


# ---------------------------------------------------------------------------------- feeds


def test_feed_outage_alerts_once_after_feed_down_s_then_recovery() -> None:
    clock = FakeClock()
    k, svc, _ = make_service(make_cfg(hook=True, feed_down_s=10), hook_url="http://127.0.0.1:9/h", clock=clock)
    svc.armed = True
    pub = k.bus.publish
    # a blip: back within feed_down_s, nothing to say
    pub(FeedDisconnected(ts=1, feed="poly", detail="reset"))
    clock.t += 9
    svc.tick()
    pub(FeedConnected(ts=2, feed="poly"))
    clock.t += 30
    svc.tick()
    assert queued(svc) == []

    pub(FeedDisconnected(ts=3, feed="poly", detail="lost wss://ws.example/?apiKey=SECRET123 (1006)"))
    clock.t += 5
    pub(FeedDisconnected(ts=4, feed="poly", detail="reconnect failed wss://ws.example/?apiKey=SECRET123"))
    clock.t += 4.5
    svc.tick()
    assert queued(svc) == []
    clock.t += 0.5
    svc.tick()
    clock.t += 20
    svc.tick()  # once per outage
    (down,) = drain(svc)
    assert down.kind == "feed_down" and down.level == "warning" and down.fields["feed"] == "poly"
    assert down.text.startswith("feed poly down for 10 s: reconnect failed wss://ws.example/?…")
    assert "SECRET123" not in msgspec.json.encode(down.payload()).decode()
    assert "poly disconnected for 30 s" in svc.status_text()
    clock.t += 5
    pub(FeedConnected(ts=5, feed="poly"))
    (up,) = drain(svc)
    assert up.kind == "feed_up" and up.level == "info" and up.text == "feed poly is back after 35 s"
    assert "poly connected for 0 s" in svc.status_text()
    # another feed's outage is its own (coalesced per feed, not with poly's)
    pub(FeedDisconnected(ts=6, feed="sports"))
    clock.t += 10
    svc.tick()
    assert [a.text for a in drain(svc)] == ["feed sports down for 10 s"]


def test_scrub_drops_query_strings_and_credentials() -> None:
    assert scrub("lost https://user:pw@h.example/x?apiKey=K&b=2 then") == "lost https://h.example/x?… then"
    assert len(scrub("x" * 2000)) == 500


# ---------------------------------------------------------------------------------- limits


def al(kind: str, level: str = "warning", key: str = "") -> Alert:
    return Alert(kind=kind, level=level, text=f"{kind} happened", ts=7, key=key)


def test_token_bucket_holds_back_and_releases_as_it_refills() -> None:
    clock = FakeClock()
    lim = RateLimiter(burst=3, per_minute=7.5, coalesce_s=0, critical_per_hour=5, clock=clock)
    assert [lim.admit(al(k)) for k in ("a", "b", "c", "d", "e")] == [True, True, True, False, False]
    assert lim.flush() == [] and lim.limited == 2
    clock.t += 8  # 7.5 a minute: one token every 8 s
    assert [a.text for a in lim.flush()] == ["d happened"]  # a lone held alert goes out as it was
    clock.t += 7.5
    assert lim.flush() == []
    clock.t += 0.5
    assert [a.text for a in lim.flush()] == ["e happened"]
    clock.t += 600
    assert lim.flush() == [] and lim.windows == {}
    assert [lim.admit(al(k)) for k in ("f", "g", "h", "i")] == [True, True, True, False]  # burst refilled, capped at 3


def test_repeats_are_coalesced_and_critical_bypasses_but_is_capped() -> None:
    clock = FakeClock()
    lim = RateLimiter(burst=2, per_minute=1.875, coalesce_s=64, critical_per_hour=2, clock=clock)  # a token / 32 s
    assert lim.admit(al("order_rejected"))
    assert not any(lim.admit(al("order_rejected")) for _ in range(12))
    assert lim.admit(al("handler_error"))  # another kind: its own window (last token)
    assert not lim.admit(al("order_unknown"))  # bucket empty
    # critical: neither the empty bucket nor coalescing stops it, the hourly cap does
    assert [lim.admit(al("trading_halted", "critical")) for _ in range(3)] == [True, True, False]
    clock.t += 32
    assert lim.flush() == []  # windows still open, no critical room
    clock.t += 32  # the windows end; two tokens refilled
    summary, unknown = lim.flush()
    assert summary.text.startswith("… and 12 more order rejections in the last 64 s (last: order_rejected happened)")
    assert summary.count == 12 and summary.level == "warning" and summary.fields["coalesced"] == 12
    assert unknown.text == "order_unknown happened" and unknown.count == 1
    assert lim.flush() == [] and list(lim.windows) == ["order_rejected", "order_unknown"]  # new windows, nothing in them
    clock.t += 3600
    out = lim.flush()
    assert [(a.kind, a.level, a.count) for a in out] == [("trading_halted", "critical", 1)]
    assert lim.capped == 1 and lim.coalesced == 12


def test_service_coalesces_an_order_rejection_storm_per_sink() -> None:
    clock = FakeClock()
    k, svc, _ = make_service(make_cfg(hook=True, coalesce_s=60, burst=5, per_minute=6), hook_url="http://127.0.0.1:9/h",
                             clock=clock)  # fmt: skip
    svc.armed = True
    for i in range(20):
        k.bus.publish(OrderRejected(ts=i, client_id=f"pb-{i}", strategy="dip", reason="post-only order would cross"))
    k.process(k.clock.now(), "control", Halt(origin="api", reason="storm"))
    assert [a.kind for a in drain(svc)] == ["order_rejected", "trading_halted"]
    clock.t += 59
    svc.tick()
    assert queued(svc) == []
    clock.t += 1
    svc.tick()
    (summary,) = drain(svc)
    assert summary.text.startswith("… and 19 more order rejections in the last 60 s (last: order pb-19 (dip)")
    assert summary.payload()["count"] == 19 and summary.payload()["kind"] == "order_rejected"
    assert svc.raised["order_rejected"] == 20


def test_risk_rejections_are_aggregated_per_window() -> None:
    clock = FakeClock()
    k, svc, _ = make_service(make_cfg(hook=True, risk_rejections_window_s=60), hook_url="http://127.0.0.1:9/h", clock=clock)
    svc.armed = True
    for i in range(7):
        v = "position_caps" if i < 5 else "notional_caps"
        k.bus.publish(RiskRejected(ts=i, strategy="dip", validator=v, reason=f"{v}: over the cap"))
    k.bus.publish(RiskRejected(ts=9, strategy="dip", validator="trading_state", reason="trading is halted"))
    svc.tick()
    clock.t += 59
    svc.tick()
    assert queued(svc) == []
    clock.t += 1
    svc.tick()
    (a,) = drain(svc)
    assert a.kind == "risk_rejected" and a.level == "warning"
    assert a.text.startswith("7 order(s) rejected by the risk chain in the last 60 s: position_caps 5, notional_caps 2")
    assert a.fields["by_validator"] == {"position_caps": 5, "notional_caps": 2}
    clock.t += 600
    svc.tick()
    assert queued(svc) == []


def test_daily_summary_at_the_configured_utc_hour() -> None:
    wall, clock = FakeClock(WALL0), FakeClock()  # 08:30 UTC
    k, svc, _ = make_service(make_cfg(hook=True, daily_summary_hour_utc=9), hook_url="http://127.0.0.1:9/h", wall=wall,
                             clock=clock)  # fmt: skip
    svc.armed = True
    svc.tick()
    wall.t += 29 * 60 + 59
    svc.tick()
    assert queued(svc) == []
    wall.t += 1  # 09:00:00
    svc.tick()
    svc.tick()
    (a,) = drain(svc)
    assert a.kind == "daily_summary" and a.level == "info"
    assert a.text == ("daily summary 2025-03-04 09:00 UTC: net PnL 0.00 (realized 0.00, unrealized 0.00, fees 0.00); "
                      "0 fills (0 since the last summary); 0 open order(s); trading active")  # fmt: skip
    wall.t += 86400
    clock.t += 86400
    svc.tick()
    assert [a.text[:35] for a in drain(svc)] == ["daily summary 2025-03-05 09:00 UTC:"]


# ---------------------------------------------------------------------------------- telegram commands


def test_telegram_commands_from_the_allow_list_halt_resume_and_answer(logs: list[str]) -> None:
    wall = FakeClock(WALL0)

    async def main() -> None:
        async with fakes() as (tgm, hook, poke, tg_url, _):
            k, svc, sent = make_service(make_cfg(tg_url=tg_url), wall=wall)
            async with anyio.create_task_group() as tg:
                tg.start_soon(svc.run)
                await poke.until(lambda: tgm.polls >= 1 and len(tgm.alerts()) >= 2)  # polling; "started" sent
                tgm.queue(CHAT, "/status", wall())
                await poke.until(lambda: len(tgm.replies(CHAT)) == 1)
                status = tgm.replies(CHAT)[0]
                assert status.splitlines()[0] == "trading: active"
                assert "feeds: poly running" in status and "open orders: 0" in status and "pnl: net 0.00" in status

                tgm.queue(CHAT, "/pnl", wall())
                await poke.until(lambda: len(tgm.replies(CHAT)) == 2)
                assert tgm.replies(CHAT)[1].startswith("net 0.00: realized 0.00, unrealized 0.00, fees 0.00")

                tgm.queue(CHAT2, "/halt@polybot_bot  lunch break", wall())
                await poke.until(lambda: len(tgm.replies(CHAT2)) == 1)
                assert k.trading_state == "halted"  # processed before the answer
                assert tgm.replies(CHAT2) == ["halt done: trading is now halted; 0 open order(s)"]
                (ev,) = sent
                assert isinstance(ev, Halt) and ev.origin == "telegram"
                assert ev.reason == f"lunch break (telegram chat {CHAT2})"
                await poke.until(lambda: sum("trading HALTED" in t for t in tgm.alerts()) == 2)  # the alert, to both chats
                assert any(f"HALTED: lunch break (telegram chat {CHAT2}) (by telegram)" in t for t in tgm.alerts(CHAT))

                tgm.queue(CHAT, "/resume", wall())
                await poke.until(lambda: len(tgm.replies(CHAT)) == 3)
                assert k.trading_state == "active" and tgm.replies(CHAT)[2].startswith("resume done: trading is now active")
                assert isinstance(sent[1], Resume) and sent[1].origin == "telegram"
                assert sent[1].reason == f"operator resume (telegram chat {CHAT})"

                tgm.queue(CHAT, "/frobnicate", wall())
                tgm.queue(CHAT, "/halt", wall() - 600)  # sent while the daemon was down: not acted on
                await poke.until(lambda: len(tgm.replies(CHAT)) == 5)
                await poke.until(lambda: tgm.offsets[-1] == tgm.updates[-1]["update_id"] + 1)
                assert tgm.replies(CHAT)[3].startswith("unknown command /frobnicate. commands: /status")
                assert tgm.replies(CHAT)[4].startswith("ignored /halt: it was sent 10 min ago")
                assert k.trading_state == "active" and len(sent) == 2
                tg.cancel_scope.cancel()
            # every poll after the first acknowledges what it got
            assert tgm.offsets[0] is None and tgm.offsets[-1] == tgm.updates[-1]["update_id"] + 1
            sink = svc.sinks[0]
            assert isinstance(sink, TelegramSink) and sink.commands["/halt"] == 1 and sink.stale == 1

    anyio.run(main)
    assert_no_secrets(logs)


def test_commands_from_other_chats_do_nothing_and_are_counted(logs: list[str]) -> None:
    wall = FakeClock(WALL0)

    async def main() -> None:
        async with fakes() as (tgm, hook, poke, tg_url, _):
            k, svc, sent = make_service(make_cfg(tg_url=tg_url), wall=wall)
            async with anyio.create_task_group() as tg:
                tg.start_soon(svc.run)
                await poke.until(lambda: tgm.polls >= 1)
                tgm.queue(STRANGER, "/halt pwned", wall())
                tgm.queue(STRANGER, "/status", wall())
                tgm.queue(STRANGER, "/resume", wall())
                tgm.queue(CHAT, "/status", wall())  # processed after the stranger's: a barrier
                await poke.until(lambda: len(tgm.replies(CHAT)) == 1)
                tg.cancel_scope.cancel()
            assert k.trading_state == "active" and sent == []
            assert [m for m in tgm.sent if m["chat_id"] == STRANGER] == []
            sink = svc.sinks[0]
            assert isinstance(sink, TelegramSink) and sink.ignored == 3

    anyio.run(main)
    ignored = [ln for ln in logs if "ignored a message from chat" in ln]
    assert len(ignored) == 1 and f"chat {STRANGER}" in ignored[0] and "pwned" not in ignored[0]


# ---------------------------------------------------------------------------------- webhook


def test_webhook_retries_a_500_and_drops_a_400_logging_it_once(logs: list[str]) -> None:
    async def main() -> None:
        async with fakes() as (tgm, hook, poke, _, hook_url):
            k, svc, _ = make_service(make_cfg(hook=True), hook_url=hook_url)
            sink = svc.sinks[0]
            assert isinstance(sink, WebhookSink)
            hook.statuses.extend([500, 503])
            async with anyio.create_task_group() as tg:
                tg.start_soon(svc.run)
                await poke.until(lambda: hook.kinds() == ["daemon_started"])
                await until(lambda: sink.delivered == 1)
                assert len(hook.attempts) == 3 and sink.retried == 2
                hook.statuses.extend([400, 400])
                k.bus.publish(OrderRejected(ts=1, client_id="pb-1", reason="a"))
                k.bus.publish(OrderUnknown(ts=2, client_id="pb-2", reason="b"))
                await until(lambda: sink.rejected == 2)
                assert len(hook.attempts) == 5
                hook.statuses.extend([500, 500, 500])  # retries exhausted (2): dropped, logged
                k.bus.publish(HandlerError(ts=3, handler="h", event_type="E", error="x"))
                await until(lambda: sink.failed == 1)
                k.process(k.clock.now(), "control", Halt(origin="api", reason="after"))
                await until(lambda: sink.delivered == 2)
                tg.cancel_scope.cancel()
            assert sink.retried == 4 and hook.kinds()[-1] == "trading_halted"
            assert hook.attempts[3]["kind"] == "order_rejected" and hook.attempts[3]["text"].startswith("order pb-1")

    anyio.run(main)
    refused = [ln for ln in logs if "refused: HTTP 400" in ln]
    assert len(refused) == 1 and "alerts webhook (127.0.0.1)" in refused[0]
    assert any("failed after 3 attempt(s): HTTP 500" in ln for ln in logs)
    assert any("delivering again" in ln for ln in logs)
    assert_no_secrets(logs)


def test_secrets_never_reach_the_logs_even_when_everything_fails(logs: list[str]) -> None:
    """Connection refused (webhook on a closed port), 500s and a 401 from Telegram: the errors
    are logged with the host only, never the bot token or the webhook URL."""

    async def main() -> None:
        async with fakes() as (tgm, hook, poke, tg_url, _):
            s = socket.socket()  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}{HOOK_PATH}?key=qs-secret-77"
            s.close()
            tgm.status.update(sendMessage=500, getUpdates=401)
            cfg = make_cfg(tg_url=tg_url, hook=True, telegram={"retries": 1})
            k, svc, _ = make_service(cfg, hook_url=dead)
            hook_sink, tg_sink = svc.sinks
            async with anyio.create_task_group() as tg:
                tg.start_soon(svc.run)
                await until(lambda: tg_sink.failed >= 2 and tg_sink._poll_failing >= 1 and hook_sink.failed >= 1)
                tg.cancel_scope.cancel()
            assert repr(svc) and TOKEN not in repr(svc.sinks) and TOKEN not in str(vars(hook_sink))

    anyio.run(main)
    text = "\n".join(logs)
    assert "alerts webhook (127.0.0.1)" in text and "failed after 3 attempt(s)" in text
    assert "telegram (127.0.0.1): getUpdates failed (HTTP 401" in text
    assert_no_secrets(logs)


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize(("alerts", "field"), [
    ({"telegram": {"enabled": True}}, "alerts.telegram.chat_ids"),
    ({"telegram": {"chat_ids": ["@ops"]}}, "alerts.telegram.chat_ids[0]"),
    ({"telegram": {"api_url": "ftp://api.telegram.org"}}, "alerts.telegram.api_url"),
    ({"telegram": {"poll_timeout_s": 0}}, "alerts.telegram.poll_timeout_s"),
    ({"telegram": {"min_level": "loud"}}, "alerts.telegram.min_level"),
    ({"webhook": {"url": "https://hooks.example/x"}}, "alerts.webhook.url"),
    ({"webhook": {"retries": -1}}, "alerts.webhook.retries"),
    ({"daily_summary_hour_utc": 24}, "alerts.daily_summary_hour_utc"),
    ({"per_minute": 0}, "alerts.per_minute"),
    ({"burst": 0}, "alerts.burst"),
    ({"feed_down_s": "soon"}, "alerts.feed_down_s"),
    ({"critical_per_hour": 0}, "alerts.critical_per_hour"),
    ({"bogus": 1}, "alerts.bogus"),
])  # fmt: skip
def test_bad_alert_config_is_refused_naming_the_field(alerts: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config({"alerts": alerts}, "live.toml")
    assert str(ei.value).startswith(f"live.toml: {field}: "), str(ei.value)


@pytest.mark.parametrize(("alerts", "secrets", "needle"), [
    ({"webhook": {"enabled": True}}, {}, "alerts.webhook.enabled: the webhook needs its URL"),
    ({"webhook": {"enabled": True}}, {"alert_webhook_url": "hooks.example/hook-secret-path-4242"}, "alert_webhook_url: must be"),
    ({"telegram": {"enabled": True, "chat_ids": [1]}}, {}, "alerts.telegram.enabled: the bot needs its token"),
    ({"telegram": {"enabled": True, "chat_ids": [1]}}, {"telegram_bot_token": "AAFakeBotTokenSecretPart"}, "telegram_bot_token: not a bot token"),
    ({}, {"telegram_bot_token": TOKEN}, "alerts.enabled: no sink is enabled"),
])  # fmt: skip
def test_a_sink_without_its_secret_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    alerts: dict[str, Any], secrets: dict[str, str], needle: str) -> None:  # fmt: skip
    for key in ("telegram_bot_token", "alert_webhook_url"):
        monkeypatch.delenv(f"POLYBOT_{key.upper()}", raising=False)
    for key, v in secrets.items():
        monkeypatch.setenv(f"POLYBOT_{key.upper()}", v)
    cfg = parse_config({"engine": {"data_dir": str(tmp_path / "data")}, "alerts": {"enabled": True, **alerts}},
                       "live.toml")  # fmt: skip
    with pytest.raises(ConfigError) as ei:
        Daemon(cfg)
    assert str(ei.value).startswith(f"live.toml: {needle}"), str(ei.value)
    for v in secrets.values():
        assert v not in str(ei.value)


def test_alert_secrets_come_from_the_secrets_file_or_the_environment(tmp_path: Path) -> None:
    f = tmp_path / "secrets.toml"
    f.write_text(f'telegram_bot_token = "{TOKEN}"\nalert_webhook_url = "https://hooks.example{HOOK_PATH}"\n')
    f.chmod(0o600)
    cfg = parse_config({"secrets": {"file": str(f)}})
    s = load_secrets(cfg, {})
    assert s.get("telegram_bot_token") == TOKEN and s.get("alert_webhook_url") == f"https://hooks.example{HOOK_PATH}"
    s = load_secrets(cfg, {"POLYBOT_TELEGRAM_BOT_TOKEN": "1234:other"})
    assert s.get("telegram_bot_token") == "1234:other"
    assert TOKEN not in repr(load_secrets(cfg, {}))


def test_live_example_config_has_alerts_off() -> None:
    from polybot.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "live.toml")
    assert cfg.alerts.enabled is False


# ---------------------------------------------------------------------------------- a real daemon


def daemon_config(tmp_path: Path, tg_url: str) -> Any:
    text = demo_daemon_toml(tmp_path / "data", extra=f"""
[alerts]
enabled = true
feed_down_s = 5

[alerts.webhook]
enabled = true
backoff_s = 0.05

[alerts.telegram]
enabled = true
chat_ids = [{CHAT}]
api_url = "{tg_url}"
poll_timeout_s = 5
{DIP_TOML}
""")
    return parse_config(msgspec.toml.decode(text.encode()), str(tmp_path / "alerts.toml"))


def test_a_daemon_halted_through_telegram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: list[str]) -> None:
    async def main() -> None:
        async with fakes() as (tgm, hook, poke, tg_url, hook_url):
            monkeypatch.setenv("POLYBOT_TELEGRAM_BOT_TOKEN", TOKEN)
            monkeypatch.setenv("POLYBOT_ALERT_WEBHOOK_URL", hook_url)
            cfg = daemon_config(tmp_path, tg_url)
            d = Daemon(cfg)
            assert d.alerts is not None
            result: dict[str, Any] = {}

            async def run() -> None:
                result["summary"] = await d.run()

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await poke.until(lambda: tgm.polls >= 1 and "daemon_started" in hook.kinds())
                assert d.kernel.trading_state == "active"
                tgm.queue(CHAT, "/halt going dark", datetime.now(timezone.utc).timestamp())
                await poke.until(lambda: len(tgm.replies(CHAT)) == 1)
                assert d.kernel.trading_state == "halted"
                assert tgm.replies(CHAT)[0].startswith("halt done: trading is now halted")
                await poke.until(lambda: "trading_halted" in hook.kinds()
                                 and any("trading HALTED: going dark" in t for t in tgm.alerts(CHAT)))  # fmt: skip
                d.request_stop()
            assert result["summary"]["inputs"] > 0
            halted = [a for a in hook.accepted if a["kind"] == "trading_halted"]
            assert halted[0]["origin"] == "telegram" and halted[0]["reason"] == f"going dark (telegram chat {CHAT})"

    anyio.run(main)
    journal = tmp_path / "data" / "journal.jsonl"
    controls = [r["msg"] for r in map(json.loads, journal.read_bytes().splitlines()) if r.get("source") == "control"]
    assert {"type": "halt", "origin": "telegram", "reason": f"going dark (telegram chat {CHAT})"}.items() <= controls[0].items()
    assert_no_secrets(logs)
