"""Operator alerts for a live daemon: a webhook and a Telegram bot.

:class:`AlertService` is attached to the kernel read-only, like :class:`polybot.monitor.Monitor`:
bus subscriptions whose handlers only build an :class:`Alert` and put it on each sink's queue
(no I/O, no kernel state touched, so a session with alerts on replays exactly as one without).
Each sink delivers from its own anyio task. What alerts:

* trading halted / resumed / reducing (``TradingStateChanged``, with its reason; a halt whose
  reason names a loss limit or a breaker is ``critical``);
* feed outages: a ``FeedDisconnected`` not followed by a ``FeedConnected`` of the same feed within
  ``feed_down_s`` (once per outage), and a recovery message when it comes back;
* orders the venue rejected (``OrderRejected``) or whose outcome is unknown (``OrderUnknown``);
  risk rejections summed over ``risk_rejections_window_s`` (one alert per window, never one per
  rejection; the ``trading_state`` validator's are left out: the halt itself was alerted);
* ``HandlerError`` and failed on-chain position actions (``PositionActionFailed``);
* a daily summary at ``daily_summary_hour_utc``.

Rate limits apply per sink (:class:`RateLimiter`): a token bucket, and coalescing of repeats of
one kind within ``coalesce_s`` into one "... and 12 more order rejections" message; critical
alerts skip both but at most ``critical_per_hour`` go out. Nothing is lost silently: what the
limits hold back is counted and summarised once they allow.

The Telegram sink also takes commands from the allow-listed chats: ``/status``, ``/pnl``,
``/halt [reason]`` and ``/resume``. ``/halt`` and ``/resume`` are control inputs through the
kernel's one door, exactly like the API's (journaled with ``origin = "telegram"`` and a reason
naming the chat); the answer comes once the kernel has processed them. Messages from any other
chat are ignored and counted.

The bot token and the webhook URL are secrets (``telegram_bot_token``, ``alert_webhook_url``):
they are never logged (the webhook is logged by its host only), and every error text is scrubbed
of them before it is logged.
"""

from __future__ import annotations

import abc
import re
import time
import traceback
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import msgspec
from loguru import logger
from yarl import URL

from . import events
from .config import (
    AlertsConfig,
    AlertsTelegramConfig,
    AlertsWebhookConfig,
    Config,
    ConfigError,
    Secrets,
    load_secrets,
)
from .events import (
    ControlEvent,
    FeedConnected,
    FeedDisconnected,
    FeedResynced,
    FeedStale,
    Flatten,
    Halt,
    HandlerError,
    OrderRejected,
    OrderUnknown,
    Reduce,
    Resume,
    RiskRejected,
    TradingStateChanged,
)
from .units import from_units

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel

LEVELS = ("info", "warning", "critical")
_RANK = {lv: i for i, lv in enumerate(LEVELS)}
ICONS = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}

#: A halt whose reason matches this was an engine limit (loss limits, the error breaker).
LIMIT_REASON = re.compile(r"loss_limits|max_daily_loss|max_drawdown|daily loss|drawdown|breaker|loss limit", re.I)

#: (singular, plural) of what an alert kind counts, for the coalesced summaries.
NOUNS: dict[str, tuple[str, str]] = {
    "order_rejected": ("order rejection", "order rejections"),
    "order_unknown": ("order in an unknown state", "orders in an unknown state"),
    "risk_rejected": ("risk rejection report", "risk rejection reports"),
    "handler_error": ("handler error", "handler errors"),
    "position_action_failed": ("failed on-chain action", "failed on-chain actions"),
    "feed_down": ("feed outage", "feed outages"),
    "feed_up": ("feed recovery", "feed recoveries"),
    "trading_halted": ("halt", "halts"),
    "trading_resumed": ("resume", "resumes"),
    "trading_reducing": ("switch to reducing", "switches to reducing"),
    "daily_summary": ("daily summary", "daily summaries"),
    "daemon_started": ("start", "starts"),
}

HELP = ("commands: /status (trading state, feeds, orders, PnL), /pnl, /halt [reason] (no new orders), "
        "/resume")  # fmt: skip
CONTROL_TIMEOUT_S = 10.0
MAX_TEXT = 3500  # Telegram takes 4096 characters per message

Clock = Callable[[], float]
_JSON = msgspec.json.Encoder(enc_hook=lambda o: int(o) if isinstance(o, int) else str(o))
_JSON_HEADERS = {"Content-Type": "application/json"}
Control = Callable[[ControlEvent], Awaitable[None]]

# a scheme is short: bounding it keeps the scan linear on long text without "://"
_URL_QUERY = re.compile(r"([a-z][a-z0-9+.-]{0,31}://[^\s?#/]+[^\s?#]*)\?[^\s#]*", re.I)
_URL_USER = re.compile(r"([a-z][a-z0-9+.-]{0,31}://)[^\s/@]+@", re.I)


def scrub(text: str, limit: int = 500) -> str:
    """Free text from an event (a reason, a feed's detail) as an alert may carry it out of the
    process: URL query strings (API keys live there) and user:password@ dropped, length capped."""
    text = text[: 4 * limit]  # what can be shown at most, with room for what scrubbing removes
    t = _URL_USER.sub(r"\1", _URL_QUERY.sub(r"\1?…", text))
    return t if len(t) <= limit else t[: limit - 1] + "…"


def _usd(v: int) -> str:
    return from_units(int(v), 2)


def _dur(seconds: float) -> str:
    s = int(max(0.0, seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One message for the operator. ``ts`` is the wall clock (ns) when it was raised; ``key``
    is what repeats are coalesced by ("" = ``kind``); ``count`` is how many alerts it stands for
    (more than 1: a coalesced summary)."""

    kind: str
    level: str
    text: str
    ts: int
    key: str = ""
    count: int = 1
    fields: dict[str, Any] = {}

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        when = datetime.fromtimestamp(self.ts / 1e9, tz=timezone.utc).isoformat(timespec="seconds")
        out: dict[str, Any] = {"text": self.text, "level": self.level, "kind": self.kind, "ts": self.ts,
                               "time": when, "count": self.count, "source": "polybot"}  # fmt: skip
        for k, v in self.fields.items():
            out.setdefault(k, v)
        return out


# ============================================================================================
# Rate limiting
# ============================================================================================


class _Window:
    __slots__ = ("started", "until", "count", "last", "level", "sent_first")

    def __init__(self, now: float, until: float, sent_first: bool, first: Alert | None = None) -> None:
        self.started = now
        self.until = until
        self.sent_first = sent_first
        self.count = 0 if first is None else 1
        self.last = first
        self.level = first.level if first is not None else "info"

    def add(self, alert: Alert) -> None:
        self.count += 1
        self.last = alert
        if _RANK[alert.level] > _RANK[self.level]:
            self.level = alert.level


class RateLimiter:
    """One sink's limits. :meth:`admit` says whether an alert goes out now; what it holds back
    comes back, summarised, from :meth:`flush` (called on a timer) once the limits allow.

    * a token bucket: ``burst`` alerts at once, refilled at ``per_minute``;
    * coalescing: after an alert of one key (its kind, or kind and feed) goes out, the repeats
      within ``coalesce_s`` are counted, then sent as one "... and N more <kind>" alert;
    * critical alerts skip both, but at most ``critical_per_hour`` go out in any hour; the rest
      are counted and summarised when the cap allows.

    ``clock`` is a monotonic clock in seconds (injectable: tests need no sleeps)."""

    def __init__(self, *, burst: int, per_minute: float, coalesce_s: float, critical_per_hour: int,
                 clock: Clock = time.monotonic) -> None:  # fmt: skip
        self.burst = burst
        self.rate = per_minute / 60.0
        self.coalesce_s = coalesce_s
        self.critical_per_hour = critical_per_hour
        self.clock = clock
        self.tokens = float(burst)
        self._t = clock()
        self.windows: dict[str, _Window] = {}
        self._critical: deque[float] = deque()
        self._held_critical: _Window | None = None
        self.coalesced = 0  # repeats folded into a window
        self.limited = 0  # alerts the bucket held back
        self.capped = 0  # critical alerts over the hourly cap

    @classmethod
    def from_config(cls, cfg: AlertsConfig, clock: Clock = time.monotonic) -> RateLimiter:
        return cls(burst=cfg.burst, per_minute=cfg.per_minute, coalesce_s=cfg.coalesce_s,
                   critical_per_hour=cfg.critical_per_hour, clock=clock)  # fmt: skip

    def _refill(self, now: float) -> None:
        if now > self._t:
            self.tokens = min(float(self.burst), self.tokens + (now - self._t) * self.rate)
            self._t = now

    def _take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def _critical_room(self, now: float) -> bool:
        q = self._critical
        while q and now - q[0] >= 3600.0:
            q.popleft()
        return len(q) < self.critical_per_hour

    def admit(self, alert: Alert) -> bool:
        now = self.clock()
        if alert.level == "critical":
            if self._critical_room(now):
                self._critical.append(now)
                return True
            self.capped += 1
            if self._held_critical is None:
                self._held_critical = _Window(now, now, False, alert)
            else:
                self._held_critical.add(alert)
            return False
        key = alert.key or alert.kind
        w = self.windows.get(key)
        if w is not None and (now < w.until or w.count):
            w.add(alert)  # inside the window, or its summary still waits for a token
            self.coalesced += 1
            return False
        if self._take(now):
            self.windows[key] = _Window(now, now + self.coalesce_s, True)
            return True
        self.limited += 1
        self.windows[key] = _Window(now, now + self.coalesce_s, False, alert)
        return False

    def flush(self) -> list[Alert]:
        """What the limits held back and now let go (summaries, or a lone held alert as is)."""
        now = self.clock()
        out: list[Alert] = []
        held = self._held_critical
        if held is not None and self._critical_room(now):
            self._critical.append(now)
            self._held_critical = None
            out.append(self._summary(held, now, "held back by the hourly cap on critical alerts"))
        for key, w in list(self.windows.items()):
            if now < w.until:
                continue
            if not w.count:
                del self.windows[key]
                continue
            if not self._take(now):
                continue  # keeps counting until a token comes
            out.append(self._summary(w, now, "held back by the rate limit"))
            self.windows[key] = _Window(now, now + self.coalesce_s, True)
        return out

    @staticmethod
    def _summary(w: _Window, now: float, why: str) -> Alert:
        last = w.last
        assert last is not None
        n = w.count
        if n == 1 and not w.sent_first:
            return last  # one alert held back: it goes out as it was
        one, many = NOUNS.get(last.kind, (last.kind.replace("_", " "), last.kind.replace("_", " ")))
        noun = one if n == 1 else many
        if w.sent_first:
            text = f"… and {n} more {noun} in the last {_dur(now - w.started)} (last: {last.text})"
        else:
            text = f"{n} {noun} {why} (last: {last.text})"
        return Alert(kind=last.kind, level=w.level, text=text, ts=last.ts, key=last.key, count=n,
                     fields={**last.fields, "coalesced": n})  # fmt: skip


# ============================================================================================
# Sinks
# ============================================================================================


async def _read_json(r: aiohttp.ClientResponse) -> Any:
    try:
        raw = await r.read()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    try:
        return msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        return None


def _describe(body: Any) -> str:
    if isinstance(body, dict):
        d = body.get("description") or body.get("error") or body.get("message")
        if isinstance(d, str) and d:
            return f" ({d[:200]})"
    return ""


def _retry_after(body: Any, headers: Any) -> float | None:
    if isinstance(body, dict):
        p = body.get("parameters")
        if isinstance(p, dict) and isinstance(p.get("retry_after"), (int, float)):
            return float(p["retry_after"])
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class Sink(abc.ABC):
    """A destination for alerts with its own queue, limiter and delivery task. Subclasses
    implement :meth:`deliver`; :meth:`offer` (called from bus handlers) never does I/O."""

    name = "sink"

    def __init__(self, *, limiter: RateLimiter, min_level: str = "info", timeout_s: float = 10.0, retries: int = 3,
                 backoff_s: float = 1.0, secrets: Sequence[str] = (), max_queue: int = 500, flush_s: float = 3.0,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:  # fmt: skip
        self.limiter = limiter
        self.min_rank = _RANK[min_level]
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_queue = max_queue
        self.flush_s = flush_s
        self._sleep = sleep
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self.label = self.name
        self.queue: deque[Alert] = deque()
        self._inflight: Alert | None = None
        self._wake: anyio.Event | None = None
        self.sent = 0  # requests answered 2xx
        self.delivered = 0  # alerts delivered (to every destination)
        self.failed = 0  # requests given up after the retries
        self.rejected = 0  # requests answered 4xx (dropped)
        self.retried = 0
        self.overflow = 0  # alerts dropped because the queue was full
        self._logged: set[Any] = set()
        self._failing = 0

    # ------------------------------------------------------------------ called from handlers

    def offer(self, alert: Alert) -> None:
        if _RANK.get(alert.level, 0) < self.min_rank:
            return
        if self.limiter.admit(alert):
            self._push(alert)

    def tick(self) -> None:
        for a in self.limiter.flush():
            self._push(a)

    def _push(self, alert: Alert) -> None:
        q = self.queue
        if len(q) >= self.max_queue:
            victim = next((a for a in q if a.level != "critical"), None)
            if victim is None and alert.level != "critical":
                self.overflow += 1
                return
            q.remove(victim if victim is not None else q[0])
            self.overflow += 1
        q.append(alert)
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ helpers

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _log_once(self, key: Any, level: str, msg: str) -> None:
        if key in self._logged:
            return
        if len(self._logged) < 1000:
            self._logged.add(key)
        logger.log(level, self.redact(msg))

    def _exc_text(self, exc: BaseException) -> str:
        return self.redact(f"{type(exc).__name__}: {exc}")[:300]

    async def _post(self, session: aiohttp.ClientSession, url: str, payload: Any, what: str,
                    retries: int, dest: Any = None) -> tuple[bool, Any]:  # fmt: skip
        """POST ``payload`` as JSON; retries with backoff on a 5xx, a 429 or a connection error,
        gives up at once on any other 4xx (logged once per status and ``dest``). Returns (ok,
        decoded body)."""
        delay = self.backoff_s
        detail = ""
        for attempt in range(retries + 1):
            wait: float | None = None
            try:
                async with session.post(url, data=_JSON.encode(payload), headers=_JSON_HEADERS) as r:
                    body = await _read_json(r)
                    status = r.status
                    headers = r.headers
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                detail = self._exc_text(exc)
            else:
                if 200 <= status < 300:
                    self.sent += 1
                    if self._failing:
                        logger.info("{}: delivering again after {} failed request(s)", self.label, self._failing)
                        self._failing = 0
                    return True, body
                detail = self.redact(f"HTTP {status}{_describe(body)}")
                if status != 429 and status < 500:
                    self.rejected += 1
                    self._log_once(("status", status, dest), "WARNING",
                                   f"{self.label}: {what} refused: {detail}; dropped (further {status} answers are "
                                   f"only counted)")  # fmt: skip
                    return False, body
                wait = _retry_after(body, headers)
            if attempt < retries:
                self.retried += 1
                await self._sleep(min(wait if wait is not None else delay, 60.0))
                delay = min(max(delay, 0.001) * 2, 60.0)
        self.failed += 1
        if not self._failing:
            logger.warning("{}: {} failed after {} attempt(s): {}; dropped (further failures are counted until "
                           "one gets through)", self.label, what, retries + 1, detail)  # fmt: skip
        self._failing += 1
        return False, None

    # ------------------------------------------------------------------ the task

    @abc.abstractmethod
    async def deliver(self, session: aiohttp.ClientSession, alert: Alert, retries: int) -> bool:
        """Send one alert (``retries`` further attempts on a transient failure); True when the
        destination took it."""

    async def _extra(self, tg: Any, session: aiohttp.ClientSession) -> None:
        """Further tasks of the sink (Telegram: the command poller)."""

    async def _deliver_safe(self, session: aiohttp.ClientSession, alert: Alert, retries: int) -> None:
        try:
            if await self.deliver(session, alert, retries):
                self.delivered += 1
        except Exception as exc:  # noqa: BLE001 - one bad alert must not stop the sink
            self.failed += 1
            self._log_once(("bug", type(exc).__name__), "ERROR",
                           f"{self.label}: delivering an alert raised {self._exc_text(exc)}\n"
                           + "".join(traceback.format_exception(exc)))  # fmt: skip

    async def _deliver_loop(self, session: aiohttp.ClientSession) -> None:
        while True:
            if not self.queue:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            if self.overflow and ("overflow",) not in self._logged:
                self._log_once(("overflow",), "WARNING", f"{self.label}: alert queue full: dropping the oldest "
                                                         "non-critical alerts (counted)")  # fmt: skip
            self._inflight = self.queue.popleft()
            await self._deliver_safe(session, self._inflight, self.retries)
            self._inflight = None

    async def run(self) -> None:
        """Deliver until cancelled; then try, for at most ``flush_s``, what is still queued."""
        self._wake = anyio.Event()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._deliver_loop, session)
                await self._extra(tg, session)
        finally:
            with anyio.move_on_after(self.flush_s, shield=True):
                if self._inflight is not None:
                    self.queue.appendleft(self._inflight)
                    self._inflight = None
                while self.queue:
                    await self._deliver_safe(session, self.queue.popleft(), 0)
            with anyio.CancelScope(shield=True):
                await session.close()


class WebhookSink(Sink):
    """POSTs each alert as JSON (:meth:`Alert.payload`) to a URL that is itself a secret."""

    name = "webhook"

    def __init__(self, url: str, cfg: AlertsWebhookConfig, limiter: RateLimiter, **kw: Any) -> None:
        u = URL(url)
        parts = [url, str(u), u.raw_path if len(u.raw_path) > 1 else "", u.path if len(u.path) > 1 else "",
                 u.raw_query_string, u.query_string, u.user or "", u.password or ""]  # fmt: skip
        super().__init__(limiter=limiter, min_level=cfg.min_level, timeout_s=cfg.timeout_s, retries=cfg.retries,
                         backoff_s=cfg.backoff_s, secrets=parts, **kw)  # fmt: skip
        self._url = url
        self.host = u.host or "?"
        self.label = f"alerts webhook ({self.host})"

    async def deliver(self, session: aiohttp.ClientSession, alert: Alert, retries: int) -> bool:
        ok, _ = await self._post(session, self._url, alert.payload(), f"alert {alert.kind}", retries)
        return ok


class TelegramSink(Sink):
    """A Telegram bot: alerts to every chat in ``chat_ids``; commands from those chats only
    (``getUpdates`` long poll). ``service`` (set by :class:`AlertService`) answers them."""

    name = "telegram"

    def __init__(self, token: str, cfg: AlertsTelegramConfig, limiter: RateLimiter, *, wall: Clock = time.time,
                 **kw: Any) -> None:  # fmt: skip
        super().__init__(limiter=limiter, min_level=cfg.min_level, timeout_s=cfg.timeout_s, retries=cfg.retries,
                         backoff_s=cfg.backoff_s, secrets=[token, token.partition(":")[2]], **kw)  # fmt: skip
        self.cfg = cfg
        self._base = f"{cfg.api_url}/bot{token}/"
        self.chat_ids = list(dict.fromkeys(cfg.chat_ids))
        self.allowed = frozenset(self.chat_ids)
        self.wall = wall
        self.label = f"telegram ({URL(cfg.api_url).host})"
        self.service: AlertService | None = None
        self.commands: Counter[str] = Counter()
        self.ignored = 0  # messages from chats not in the allow-list
        self.malformed = 0  # updates that were not a message from a chat
        self.stale = 0  # commands older than max_command_age_s
        self.polls = 0
        self._ignored_logged: set[int] = set()
        self._poll_failing = 0

    @staticmethod
    def format(alert: Alert) -> str:
        text = f"{ICONS.get(alert.level, '')} {alert.text}".strip()
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"

    async def deliver(self, session: aiohttp.ClientSession, alert: Alert, retries: int) -> bool:
        text = self.format(alert)
        ok = True
        for chat in self.chat_ids:
            sent, _ = await self._post(session, self._base + "sendMessage",
                                       {"chat_id": chat, "text": text, "disable_web_page_preview": True},
                                       f"sendMessage to chat {chat}", retries, chat)  # fmt: skip
            ok = ok and sent
        return ok

    async def reply(self, session: aiohttp.ClientSession, chat_id: int, text: str, reply_to: Any = None) -> bool:
        body: dict[str, Any] = {"chat_id": chat_id, "text": text[:MAX_TEXT], "disable_web_page_preview": True}
        if isinstance(reply_to, int) and not isinstance(reply_to, bool):
            body["reply_to_message_id"] = reply_to
        ok, _ = await self._post(session, self._base + "sendMessage", body, f"reply to chat {chat_id}", self.retries,
                                 chat_id)  # fmt: skip
        return ok

    async def _extra(self, tg: Any, session: aiohttp.ClientSession) -> None:
        if self.cfg.commands:
            tg.start_soon(self._poll, session)

    async def _poll(self, session: aiohttp.ClientSession) -> None:
        cfg = self.cfg
        timeout = aiohttp.ClientTimeout(total=cfg.poll_timeout_s + self.timeout_s)
        offset: int | None = None
        backoff = max(self.backoff_s, 0.5)
        while True:
            started = anyio.current_time()
            req: dict[str, Any] = {"timeout": cfg.poll_timeout_s, "allowed_updates": ["message"]}
            if offset is not None:
                req["offset"] = offset
            self.polls += 1
            try:
                async with session.post(self._base + "getUpdates", data=_JSON.encode(req), headers=_JSON_HEADERS,
                                        timeout=timeout) as r:
                    data = await _read_json(r)
                    status = r.status
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                err = self._exc_text(exc)
            else:
                result = data.get("result") if isinstance(data, dict) and data.get("ok") is True else None
                if status == 200 and isinstance(result, list):
                    if self._poll_failing:
                        logger.info("{}: getUpdates works again after {} failure(s)", self.label, self._poll_failing)
                        self._poll_failing = 0
                    backoff = max(self.backoff_s, 0.5)
                    for upd in result:
                        uid = upd.get("update_id") if isinstance(upd, dict) else None
                        if isinstance(uid, int) and not isinstance(uid, bool):
                            offset = max(offset or 0, uid + 1)
                        try:
                            await self.on_update(session, upd)
                        except Exception as exc:  # noqa: BLE001 - a bad update must not stop the bot
                            self.malformed += 1
                            self._log_once(("update", type(exc).__name__), "ERROR",
                                           f"{self.label}: an update raised {self._exc_text(exc)}\n"
                                           + "".join(traceback.format_exception(exc)))  # fmt: skip
                    if not result and anyio.current_time() - started < 0.5:
                        await self._sleep(1.0)  # a server that does not hold the long poll: no busy loop
                    continue
                err = self.redact(f"HTTP {status}{_describe(data)}")
            if not self._poll_failing:
                logger.warning("{}: getUpdates failed ({}); retrying with backoff, commands are unavailable "
                               "meanwhile", self.label, err)  # fmt: skip
            self._poll_failing += 1
            await self._sleep(backoff)
            backoff = min(backoff * 2, 60.0)

    async def on_update(self, session: aiohttp.ClientSession, upd: Any) -> None:
        msg = upd.get("message") if isinstance(upd, dict) else None
        if not isinstance(msg, dict):
            return  # edits, channel posts and the like: not commands
        chat = msg.get("chat")
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            self.malformed += 1
            return
        if chat_id not in self.allowed:
            self.ignored += 1
            if chat_id not in self._ignored_logged:
                if len(self._ignored_logged) < 1000:
                    self._ignored_logged.add(chat_id)
                logger.warning("{}: ignored a message from chat {} (not in alerts.telegram.chat_ids; further ones "
                               "from it are only counted)", self.label, chat_id)  # fmt: skip
            return
        text = msg.get("text")
        if not isinstance(text, str) or not text.startswith("/"):
            return
        word, _, arg = text.strip().partition(" ")
        cmd = word.split("@", 1)[0].lower()[:32]
        date = msg.get("date")
        if isinstance(date, (int, float)) and not isinstance(date, bool):
            age = self.wall() - float(date)
            if age > self.cfg.max_command_age_s:
                self.stale += 1
                logger.warning("{}: ignored {} from chat {}: sent {} ago (alerts.telegram.max_command_age_s)",
                               self.label, cmd, chat_id, _dur(age))  # fmt: skip
                await self.reply(session, chat_id, f"ignored {cmd}: it was sent {_dur(age)} ago (older than "
                                                   f"{_dur(self.cfg.max_command_age_s)}); send it again",
                                 msg.get("message_id"))  # fmt: skip
                return
        self.commands[cmd] += 1
        logger.info("{}: {} from chat {}", self.label, cmd, chat_id)
        if self.service is None:
            answer = "this bot is not attached to a daemon"
        else:
            answer = await self.service.command(cmd, arg.strip(), f"telegram chat {chat_id}", "telegram")
        await self.reply(session, chat_id, answer, msg.get("message_id"))


# ============================================================================================
# The service
# ============================================================================================


class _Feed:
    __slots__ = ("state", "since", "detail")

    def __init__(self, state: str, since: float | None, detail: str = "") -> None:
        self.state = state
        self.since = since
        self.detail = detail


class _Outage:
    __slots__ = ("since", "detail", "alerted")

    def __init__(self, since: float, detail: str) -> None:
        self.since = since
        self.detail = detail
        self.alerted = False


_CONTROL_STATE = {Halt: "halted", Resume: "active", Reduce: "reducing", Flatten: "reducing"}


class AlertService:
    """Turns the kernel's events into alerts for ``sinks`` and answers operator commands.

    Attached at construction (bus subscriptions) but silent until :meth:`run` starts: the events a
    daemon's recovery replays are old news. ``clock`` is monotonic seconds (outages, limits),
    ``wall`` Unix seconds (daily summary, command age); both injectable. ``control`` sends a
    control input through the kernel's door and returns once it has been processed."""

    def __init__(self, kernel: Kernel, cfg: AlertsConfig, sinks: Sequence[Sink], *, clock: Clock = time.monotonic,
                 wall: Clock = time.time, control: Control | None = None, feeds: Sequence[str] = (),
                 tick_s: float = 0.5) -> None:  # fmt: skip
        self.kernel = kernel
        self.cfg = cfg
        self.sinks = list(sinks)
        self.clock = clock
        self.wall = wall
        self.control = control
        self.tick_s = tick_s
        self.armed = False
        self.feeds: dict[str, _Feed] = {n: _Feed("running", None) for n in feeds}
        self.outages: dict[str, _Outage] = {}
        self.raised: Counter[str] = Counter()  # alerts raised, by kind (before any sink's limits)
        self._risk: Counter[str] = Counter()
        self._risk_since = 0.0
        self._risk_last = ""
        self._last_control: tuple[str, str, int] | None = None  # (target state, origin, input number)
        self._next_summary = self._summary_due(wall()) if cfg.daily_summary_hour_utc >= 0 else None
        self._summary_fills = kernel.stats.fills
        for s in self.sinks:
            if isinstance(s, TelegramSink):
                s.service = self
        self._subs: list[tuple[type, Callable[[Any], None]]] = [
            (TradingStateChanged, self._on_state),
            (Halt, self._on_control), (Resume, self._on_control), (Reduce, self._on_control),
            (Flatten, self._on_control),
            (FeedDisconnected, self._on_feed_down), (FeedConnected, self._on_feed_up),
            (FeedStale, self._on_feed_other), (FeedResynced, self._on_feed_other),
            (OrderRejected, self._on_order_rejected), (OrderUnknown, self._on_order_unknown),
            (RiskRejected, self._on_risk), (HandlerError, self._on_handler_error),
        ]  # fmt: skip
        failed = getattr(events, "PositionActionFailed", None)  # on-chain actions (redeem, merge, ...)
        if isinstance(failed, type) and issubclass(failed, events.Event):
            self._subs.append((failed, self._on_action_failed))
        for t, h in self._subs:
            kernel.bus.subscribe(t, h)

    def close(self) -> None:
        for t, h in self._subs:
            self.kernel.bus.unsubscribe(h, t)

    # ------------------------------------------------------------------ raising

    def raise_alert(self, kind: str, level: str, text: str, key: str = "", **fields: Any) -> Alert:
        a = Alert(kind=kind, level=level, text=text, ts=int(self.wall() * 1e9), key=key, fields=fields)
        self.raised[kind] += 1
        for s in self.sinks:
            s.offer(a)
        return a

    # ------------------------------------------------------------------ bus handlers (no I/O)

    def _on_control(self, ev: ControlEvent) -> None:
        self._last_control = (_CONTROL_STATE[type(ev)], ev.origin, self.kernel.stats.inputs)

    def _on_state(self, ev: TradingStateChanged) -> None:
        lc, self._last_control = self._last_control, None
        if not self.armed:
            return
        origin = lc[1] if lc is not None and lc[0] == ev.state and lc[2] == self.kernel.stats.inputs else ""
        by = f" (by {origin})" if origin else ""
        reason = scrub(ev.reason) or "no reason given"
        n = len(self.kernel.orders.open_orders())
        if ev.state == "halted":
            limit = bool(LIMIT_REASON.search(ev.reason))
            text = f"trading HALTED{' by a risk limit' if limit else ''}: {reason}{by}; {n} open order(s)"
            kind, level = "trading_halted", "critical" if limit else "warning"
        elif ev.state == "reducing":
            text = f"trading REDUCING (only orders that shrink a position pass): {reason}{by}"
            kind, level = "trading_reducing", "warning"
        else:
            text = f"trading resumed (was {ev.previous}): {reason}{by}"
            kind, level = "trading_resumed", "info"
        self.raise_alert(kind, level, text, state=ev.state, previous=ev.previous, reason=reason, origin=origin)

    def _feed(self, name: str) -> _Feed:
        f = self.feeds.get(name)
        if f is None:
            f = self.feeds[name] = _Feed("running", None)
        return f

    def _on_feed_down(self, ev: FeedDisconnected) -> None:
        if not self.armed:
            return
        now = self.clock()
        f = self._feed(ev.feed)
        if f.state != "disconnected":
            f.state, f.since = "disconnected", now
        f.detail = scrub(ev.detail, 300)
        if ev.feed not in self.outages:
            self.outages[ev.feed] = _Outage(now, f.detail)
        else:
            self.outages[ev.feed].detail = f.detail

    def _on_feed_up(self, ev: FeedConnected) -> None:
        if not self.armed:
            return
        now = self.clock()
        f = self._feed(ev.feed)
        f.state, f.since, f.detail = "connected", now, ""
        o = self.outages.pop(ev.feed, None)
        if o is not None and o.alerted:
            self.raise_alert("feed_up", "info", f"feed {ev.feed} is back after {_dur(now - o.since)}",
                             key=f"feed_up:{ev.feed}", feed=ev.feed, down_s=round(now - o.since, 3))  # fmt: skip

    def _on_feed_other(self, ev: FeedStale | FeedResynced) -> None:
        if not self.armed:
            return
        f = self._feed(ev.feed)
        if isinstance(ev, FeedStale) and f.state != "stale":
            f.state, f.since = "stale", self.clock()
        elif isinstance(ev, FeedResynced) and f.state == "stale":
            f.state, f.since = "connected", self.clock()

    def _on_order_rejected(self, ev: OrderRejected) -> None:
        if not self.armed:
            return
        who = f" ({ev.strategy})" if ev.strategy else ""
        self.raise_alert("order_rejected", "warning",
                         f"order {ev.client_id}{who} rejected by the venue: {scrub(ev.reason) or 'no reason given'}",
                         client_id=ev.client_id, strategy=ev.strategy, reason=scrub(ev.reason))  # fmt: skip

    def _on_order_unknown(self, ev: OrderUnknown) -> None:
        if not self.armed:
            return
        who = f" ({ev.strategy})" if ev.strategy else ""
        self.raise_alert("order_unknown", "warning",
                         f"order {ev.client_id}{who}: outcome unknown ({scrub(ev.reason) or 'no reason given'}); "
                         "it is reconciled with the venue", client_id=ev.client_id, strategy=ev.strategy,
                         reason=scrub(ev.reason))  # fmt: skip

    def _on_risk(self, ev: RiskRejected) -> None:
        if not self.armed or ev.validator == "trading_state":
            return  # rejected because trading is halted/reducing: that state was alerted itself
        if not self._risk:
            self._risk_since = self.clock()
        self._risk[ev.validator or "unknown"] += 1
        self._risk_last = f"{ev.validator or 'unknown'} ({ev.strategy}): {scrub(ev.reason, 200)}"

    def _on_handler_error(self, ev: HandlerError) -> None:
        if not self.armed:
            return
        self.raise_alert("handler_error", "warning",
                         f"handler {ev.handler} raised on {ev.event_type}: {scrub(ev.error)}",
                         handler=ev.handler, event_type=ev.event_type)  # fmt: skip

    def _on_action_failed(self, ev: Any) -> None:
        if not self.armed:
            return
        action = getattr(ev, "action", "") or "action"
        market = getattr(ev, "market", "")
        strategy = getattr(ev, "strategy", "")
        reason = scrub(getattr(ev, "reason", "") or "no reason given")
        who = f" ({strategy})" if strategy else ""
        self.raise_alert("position_action_failed", "warning",
                         f"on-chain {action} {getattr(ev, 'action_id', '')} failed for market {market}{who}: {reason}",
                         action_id=getattr(ev, "action_id", ""), action=action, market=market, strategy=strategy,
                         reason=reason)  # fmt: skip

    # ------------------------------------------------------------------ timed checks

    def _summary_due(self, now_s: float) -> float:
        d = datetime.fromtimestamp(now_s, tz=timezone.utc).replace(hour=self.cfg.daily_summary_hour_utc, minute=0,
                                                                   second=0, microsecond=0)  # fmt: skip
        t = d.timestamp()
        return t if t > now_s else t + 86400.0

    def tick(self) -> None:
        """Outages past ``feed_down_s``, the risk-rejection window, the daily summary, and what
        each sink's limits now let go. Called on a timer by :meth:`run` (tests call it)."""
        if not self.armed:
            return
        now = self.clock()
        cfg = self.cfg
        for name, o in self.outages.items():
            if not o.alerted and now - o.since >= cfg.feed_down_s:
                o.alerted = True
                detail = f": {o.detail}" if o.detail else ""
                self.raise_alert("feed_down", "warning", f"feed {name} down for {_dur(now - o.since)}{detail}",
                                 key=f"feed_down:{name}", feed=name, detail=o.detail)  # fmt: skip
        if self._risk and now - self._risk_since >= cfg.risk_rejections_window_s:
            total = sum(self._risk.values())
            if total >= cfg.risk_rejections_min:
                by = ", ".join(f"{v} {n}" for v, n in self._risk.most_common())
                self.raise_alert("risk_rejected", "warning",
                                 f"{total} order(s) rejected by the risk chain in the last "
                                 f"{_dur(now - self._risk_since)}: {by} (last: {self._risk_last})",
                                 rejections=total, by_validator=dict(self._risk))  # fmt: skip
            self._risk.clear()
        if self._next_summary is not None:
            wall = self.wall()
            if wall >= self._next_summary:
                self._next_summary = self._summary_due(wall)
                self.raise_alert("daily_summary", "info", self.summary_text(wall))
        for s in self.sinks:
            s.tick()

    # ------------------------------------------------------------------ views

    def _pnl(self, strategy: str = "") -> Any:
        k = self.kernel
        pf = k.portfolio
        return pf.pnl(strategy, pf.marks(k.books))

    def summary_text(self, wall: float) -> str:
        k = self.kernel
        p = self._pnl()
        fills = k.stats.fills
        new = fills - self._summary_fills
        self._summary_fills = fills
        day = datetime.fromtimestamp(wall, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (f"daily summary {day}: net PnL {_usd(p.net)} (realized {_usd(p.realized)}, unrealized "
                f"{_usd(p.unrealized)}, fees {_usd(p.fees)}); {fills} fills ({new} since the last summary); "
                f"{len(k.orders.open_orders())} open order(s); trading {k.trading_state}")  # fmt: skip

    def feed_lines(self) -> list[str]:
        now = self.clock()
        out = []
        for name, f in self.feeds.items():
            since = f" for {_dur(now - f.since)}" if f.since is not None else ""
            out.append(f"{name} {f.state}{since}")
        return out

    def status_text(self) -> str:
        k = self.kernel
        st = k.stats
        p = self._pnl()
        books = list(k.books.items())
        healthy = sum(1 for _, b in books if b.healthy)
        return "\n".join([
            f"trading: {k.trading_state}",
            f"feeds: {'; '.join(self.feed_lines()) or 'none'}",
            f"books: {healthy}/{len(books)} healthy",
            f"open orders: {len(k.orders.open_orders())} (orders {st.orders}, fills {st.fills}, rejections {st.rejections})",
            f"pnl: net {_usd(p.net)} (realized {_usd(p.realized)}, unrealized {_usd(p.unrealized)}, fees {_usd(p.fees)})",
        ])  # fmt: skip

    def pnl_text(self) -> str:
        k = self.kernel
        p = self._pnl()
        lines = [f"net {_usd(p.net)}: realized {_usd(p.realized)}, unrealized {_usd(p.unrealized)}, "
                 f"fees {_usd(p.fees)}, rebates {_usd(p.rebates)}; cash {_usd(p.cash)}"]  # fmt: skip
        for s in k.portfolio.strategies()[:20]:
            sp = self._pnl(s)
            lines.append(f"{s}: net {_usd(sp.net)} (realized {_usd(sp.realized)}, unrealized {_usd(sp.unrealized)}, "
                         f"fees {_usd(sp.fees)})")  # fmt: skip
        return "\n".join(lines)

    # ------------------------------------------------------------------ commands

    async def command(self, cmd: str, arg: str, who: str, origin: str) -> str:
        """Answer one operator command (``/status``, ``/pnl``, ``/halt [reason]``,
        ``/resume``). ``who`` names the sender in the control input's reason."""
        if cmd == "/status":
            return self.status_text()
        if cmd == "/pnl":
            return self.pnl_text()
        if cmd in ("/halt", "/resume"):
            halt = cmd == "/halt"
            if self.control is None:
                return "controls are not available in this process"
            reason = f"{arg[:200] or ('operator halt' if halt else 'operator resume')} ({who})"
            ev: ControlEvent = Halt(origin=origin, reason=reason) if halt else Resume(origin=origin, reason=reason)
            try:
                with anyio.fail_after(CONTROL_TIMEOUT_S):
                    await self.control(ev)
            except TimeoutError:
                return f"{cmd[1:]}: the kernel did not confirm it within {CONTROL_TIMEOUT_S:.0f} s (it is queued)"
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return "the daemon is shutting down"
            k = self.kernel
            return f"{cmd[1:]} done: trading is now {k.trading_state}; {len(k.orders.open_orders())} open order(s)"
        if cmd in ("/start", "/help"):
            return HELP
        return f"unknown command {cmd}. {HELP}"

    # ------------------------------------------------------------------ the task

    async def run(self, control: Control | None = None) -> None:
        """Arm, run every sink and the timer until cancelled. Never raises for a sink's trouble:
        a sink task that fails is logged and restarted."""
        if control is not None:
            self.control = control
        self.armed = True
        k = self.kernel
        self.raise_alert("daemon_started", "info",
                         f"polybot daemon started: trading {k.trading_state}, {len(k.orders.open_orders())} open "
                         f"order(s), feeds {', '.join(self.feeds) or 'none'}")  # fmt: skip
        logger.info("alerts: on, sinks {}", ", ".join(s.label for s in self.sinks))
        try:
            async with anyio.create_task_group() as tg:
                for s in self.sinks:
                    tg.start_soon(self._supervise, s)
                while True:
                    try:
                        self.tick()
                    except Exception as exc:  # noqa: BLE001 - a bug here must not take the daemon down
                        logger.error("alerts: tick raised {}: {}\n{}", type(exc).__name__, exc,
                                     "".join(traceback.format_exception(exc)))  # fmt: skip
                    await anyio.sleep(self.tick_s)
        finally:
            self.armed = False

    async def _supervise(self, sink: Sink) -> None:
        while True:
            try:
                await sink.run()
                return
            except Exception as exc:  # noqa: BLE001
                logger.error("{}: sink task raised {}; restarting in 5 s\n{}", sink.label, sink._exc_text(exc),
                             sink.redact("".join(traceback.format_exception(exc))))  # fmt: skip
                await anyio.sleep(5.0)


# ============================================================================================
# From config
# ============================================================================================

_TOKEN = re.compile(r"[0-9]{3,}:[A-Za-z0-9_-]{20,}")


def build_alert_service(cfg: Config, kernel: Kernel, secrets: Secrets | None = None, *, feeds: Sequence[str] = (),
                        clock: Clock = time.monotonic, wall: Clock = time.time, control: Control | None = None,
                        sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> AlertService:  # fmt: skip
    """The service ``[alerts]`` describes, its secrets read from ``secrets`` (default:
    :func:`polybot.config.load_secrets`). Refuses (:class:`ConfigError` naming the key, never
    the secret's value) a sink that is enabled without its secret or with a malformed one, and
    alerts that are enabled with no sink."""
    file = cfg.source_path or "<config>"
    a = cfg.alerts
    sec = secrets if secrets is not None else load_secrets(cfg)
    sinks: list[Sink] = []
    if a.webhook.enabled:
        url = sec.get("alert_webhook_url")
        if not url:
            raise ConfigError(f"{file}: alerts.webhook.enabled: the webhook needs its URL: set POLYBOT_ALERT_WEBHOOK_URL "
                              "or alert_webhook_url in the secrets file")  # fmt: skip
        try:
            u = URL(url)
            ok = u.scheme in ("http", "https") and bool(u.host) and not any(c.isspace() for c in url)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise ConfigError(f"{file}: alert_webhook_url: must be an http:// or https:// URL (value not shown: it is "
                              "a secret)")  # fmt: skip
        sinks.append(WebhookSink(url, a.webhook, RateLimiter.from_config(a, clock), sleep=sleep))
    if a.telegram.enabled:
        token = sec.get("telegram_bot_token")
        if not token:
            raise ConfigError(f"{file}: alerts.telegram.enabled: the bot needs its token: set "
                              "POLYBOT_TELEGRAM_BOT_TOKEN or telegram_bot_token in the secrets file")  # fmt: skip
        if not _TOKEN.fullmatch(token):
            raise ConfigError(f"{file}: telegram_bot_token: not a bot token (expected <bot id>:<secret> as BotFather "
                              "gives it; value not shown)")  # fmt: skip
        sinks.append(TelegramSink(token, a.telegram, RateLimiter.from_config(a, clock), wall=wall, sleep=sleep))
    if not sinks:
        raise ConfigError(f"{file}: alerts.enabled: no sink is enabled (set alerts.webhook.enabled or "
                          "alerts.telegram.enabled)")  # fmt: skip
    return AlertService(kernel, a, sinks, clock=clock, wall=wall, control=control, feeds=feeds)
