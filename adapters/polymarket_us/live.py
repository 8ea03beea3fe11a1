"""The live executor for Polymarket US (``[executor] kind = "polymarket-us"``, api.polymarket.us).

Same contract as the CLOB executor (:mod:`adapters.polymarket.live`): the kernel calls
:meth:`UsExecutor.submit` / ``cancel`` synchronously after journaling; those only queue. Signing
(Ed25519, :mod:`.auth`) and every request run in the executor's own task; every answer reaches the
kernel through its one door as a record from ``exec.pmus`` (journaled, so a faithful replay
reproduces the session); the raw private-stream frames are journaled too, from
``polymarket_us.private`` (heartbeats excepted; the key id is replaced by an alias if it appears).

**Orders.** An order on ``pmus:<slug>:long`` / ``:short`` becomes one ``POST /v1/orders``
(``CreateOrderParams``): prices are YES-side (BUY long at p -> ``ORDER_INTENT_BUY_LONG`` at p,
SELL long -> ``SELL_LONG`` at p, BUY short at p -> ``BUY_SHORT`` at 1 - p, SELL short ->
``SELL_SHORT`` at 1 - p); the size is a decimal number of shares (whole when it is whole); TIF
GTC / GTD (``goodTillTime`` from ``expire_ts``) / FOK / FAK (IOC); ``post_only`` ->
``participateDontInitiate``. An engine ``market`` order is a limit order at its (worst) price.
Fills come back YES-side (``lastPx``); a short order's fill is booked at 1 - lastPx.

**Unknown outcomes (no idempotency key).** The venue has no client order id and no idempotency
key, so an order the venue may have received is NEVER posted again. An answer 2xx with an ``id``
is an acceptance (with the fills it lists); a 4xx is a rejection with the venue's message; a 429
(not processed) is sent again after a pause; a connection that could not even be opened is a
rejection (``not sent: ...``). A timeout, a connection lost after the request went out, a 5xx or
408 (or a 2xx without an id) leaves the outcome *unknown*: ``OrderUnknown`` is reported and the
order is **looked up**
for ``unknown_grace_s``: on the private order stream (executions of orders we do not know yet
are kept a while for this) and with ``GET /v1/orders/open``, for an order on the same slug with
the same intent, YES price and quantity, created after the send (less a clock-skew margin) and
not already one of ours; at the end of the grace, ``GET /v1/portfolio/activities`` is asked too
(trades on that slug, after the send, that no order of ours explains: a marketable order that
filled at once and left no open order). Found: accepted, with its fills. Not found: rejected,
``"not placed: the venue has no such order"``. Should such an order still turn up later (a
venue far behind), it is cancelled at the venue and reported (``late_order``); the position
reconciliation books whatever it filled. Two identical orders in flight at once are told apart by
send order and creation time, and never matched while an identical POST is still in flight.

**Cancels.** ``POST /v1/order/{id}/cancel`` (``{"marketSlug"}``), retried on 429/5xx/no answer (a
cancel cannot act twice). The 200 alone confirms nothing: the order is cancelled by the
``EXECUTION_TYPE_CANCELED`` on the private stream, or, after ``cancel_confirm_s`` without one, by
``GET /v1/order/{id}``. An order whose id is not known yet (POST in flight, outcome unknown) is
cancelled as soon as its id is; one found never placed is closed (rejected).

**The private stream** (``/v1/ws/private``, signed ``GET`` handshake): ``SUBSCRIPTION_TYPE_ORDER``,
a one-shot ``ORDER_SNAPSHOT``, ``POSITION`` and ``ACCOUNT_BALANCE``. Executions become order
events: ``NEW`` -> accepted, ``PARTIAL_FILL``/``FILL`` -> fills keyed by ``tradeId`` (size
``lastShares``, fee ``commissionNotionalCollected``, taker when ``aggressor``), ``CANCELED`` ->
cancelled, ``REJECTED`` -> rejected, ``EXPIRED`` -> expired. Pings every ``ws_ping_s``; a socket
silent (no frame, no pong) for ``ws_silence_s`` is closed and reconnected.

**Reconciliation** on start and after every (re)connect of the private stream: open orders
(``GET /v1/orders/open``) against the kernel's (an order of ours gone from the list is read with
``GET /v1/order/{id}``: its final state and fill count); fills the stream missed come from the
venue's per-order ``cumQuantity``, attributed to the recent trades of ``GET
/v1/portfolio/activities`` (the kernel drops repeats by trade id); a remainder no trade explains
is booked as one fill at the order's ``avgPx`` (trade id ``<order id>/cum/<n>``); then positions
(``GET /v1/portfolio/positions``: one signed ``netPosition`` per slug) against the kernel's long -
short of that market: a difference (read twice, after the kernel has applied every reported
fill) becomes ``PositionCorrected`` on the long asset (net > 0) or the short one (net < 0); then
balances (``GET /v1/account/balances``, reported as a ``balance`` notice). ``reconciles`` counts
the finished reconciliations.

**Orders the journal does not know** (``unknown_orders``): at start they mean another process
may be trading this key: ``"refuse"`` (default) stops the daemon (:class:`UnknownOrdersError`);
``"adopt"`` takes them over (strategy ``adopted``), ``"cancel"`` cancels them, ``"leave"`` ignores
them. After a reconnect, ``"refuse"`` leaves them and reports an error.

**Halt.** ``POST /v1/orders/open/cancel`` when trading halts (``cancel_all_on``); per market
(``{"slugs": [...]}``) when a market resolves or closes. This venue has **no heartbeat dead-man
switch**: orders rest while the daemon is down, so stop it with ``on_shutdown = "cancel"``
(the default) and use ``polybot halt`` before maintenance.

**Restart.** Orders the journal holds still pending (submitted or unknown: no venue id) are looked
up as above, never sent again; known ones are reconciled.

``dry_run = true`` builds (and logs at debug) every order body and sends nothing: orders are
accepted locally and never fill; the private stream and reconciliation stay off.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs
import msgspec
from loguru import logger

from polybot.config import ConfigError
from polybot.events import (
    ENCODER,
    Event,
    ExecutorNotice,
    MarketInfo,
    MarketResolved,
    MarketStatus,
    OrderAccepted,
    OrderAdopted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderPartiallyFilled,
    OrderRejected,
    OrderUnknown,
    PositionAction,
    PositionActionFailed,
    PositionCorrected,
    TradingStateChanged,
)
from polybot.execution import Executor
from polybot.execution.base import batches
from polybot.ratelimit import TokenBucket
from polybot.units import SCALE, from_units, to_units

from . import PRIVATE_SOURCE, asset_ids, market_id, parse_asset, slug_of_market
from .auth import AuthError, check_secret, sign_headers

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp
    from anyio.abc import ObjectSendStream, TaskGroup

    from polybot.clock import Clock
    from polybot.config import Config
    from polybot.execution.orders import Order
    from polybot.kernel import InboundRecord, Kernel

PRIVATE_PATH = "/v1/ws/private"
PENDING_STATES = ("submitted", "unknown")
_STATE_TRIGGER = {"halted": "halt", "reducing": "reducing"}  # trading state -> cancel_all_on value
#: a venue order created this long before our send still matches it (clocks differ)
SKEW_MS = 5_000
#: executions of orders not (yet) ours are kept this long (an answer racing its own execution)
EARLY_KEEP_S = 120.0
#: orders declared not placed are watched for this long (a venue far behind)
ABSENT_KEEP_S = 600.0

VENUE_TIF = {
    "GTC": "TIME_IN_FORCE_GOOD_TILL_CANCEL",
    "GTD": "TIME_IN_FORCE_GOOD_TILL_DATE",
    "FOK": "TIME_IN_FORCE_FILL_OR_KILL",
    "FAK": "TIME_IN_FORCE_IMMEDIATE_OR_CANCEL",
}
_ENGINE_TIF = {v: k for k, v in VENUE_TIF.items()}
BUY_LONG, SELL_LONG = "ORDER_INTENT_BUY_LONG", "ORDER_INTENT_SELL_LONG"
BUY_SHORT, SELL_SHORT = "ORDER_INTENT_BUY_SHORT", "ORDER_INTENT_SELL_SHORT"
_INTENTS = {("BUY", True): BUY_LONG, ("SELL", True): SELL_LONG, ("BUY", False): BUY_SHORT, ("SELL", False): SELL_SHORT}
_INTENT_SIDE = {v: k for k, v in _INTENTS.items()}  # venue intent -> (side, is_long)
_TERMINAL_VENUE = {"ORDER_STATE_CANCELED": "cancelled", "ORDER_STATE_EXPIRED": "expired",
                   "ORDER_STATE_REJECTED": "rejected", "ORDER_STATE_REPLACED": "cancelled",
                   "ORDER_STATE_FILLED": "filled"}  # fmt: skip


def PRIVATE_DECODER(msg: bytes, ts: int) -> Sequence[Event]:  # noqa: N802 - an entry point name
    """Private-stream frames are journaled for the audit trail; what they mean reaches the kernel
    as the executor's ``exec.pmus`` records (the same as :data:`.wire.PRIVATE_DECODER`)."""
    return ()


# ---------------------------------------------------------------------- params and errors


class UsParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    api_url: str = "https://api.polymarket.us"
    #: the private stream's base ("" = none: fills and cancels from REST reconciliation only)
    ws_url: str = "wss://api.polymarket.us"
    #: orders at the venue the journal does not know (see the module doc)
    unknown_orders: Literal["refuse", "cancel", "adopt", "leave"] = "refuse"
    #: venue-wide cancel-all (POST /v1/orders/open/cancel) when trading enters these states
    cancel_all_on: list[Literal["halt", "reducing"]] = msgspec.field(default_factory=lambda: ["halt"])
    request_timeout_s: float = 5.0
    #: how long an order whose POST outcome is unknown is looked for before it is declared not placed
    unknown_grace_s: float = 10.0
    #: REST look-ups of unknown orders at most this often (GET /v1/orders/open: 55 per 10 s)
    lookup_interval_s: float = 1.0
    #: a cancel (or an IOC/FOK order) not confirmed by the stream within this is read by REST
    cancel_confirm_s: float = 5.0
    dry_run: bool = False
    #: private stream keepalive: a ping this often; nothing received for ws_silence_s -> reconnect
    ws_ping_s: float = 10.0
    ws_silence_s: float = 30.0
    #: engine TIF -> venue TIF overrides (e.g. {GTD = "TIME_IN_FORCE_GOOD_TILL_CANCEL"})
    tif: dict[str, str] = {}
    #: client-side token buckets at the documented limits (api-reference/rate-limits)
    rate_limits: bool = True
    #: recent trades read per reconciliation (GET /v1/portfolio/activities, pages of 100)
    activities_limit: int = 500
    #: slugs for the private subscriptions ([] = every market of the account)
    markets: list[str] = []
    #: the local simulator's published demo key (adapters/polymarket_us/sim.py) instead of the
    #: secrets: only with loopback URLs (the offline demo); never a real credential
    demo_key: bool = False


class HttpError(Exception):
    """A request without a usable answer: ``status`` 0 = no answer (timeout, connection lost)."""

    def __init__(self, status: int, detail: str, message: str = "", sent: bool = True) -> None:
        super().__init__(f"HTTP {status or ('no answer' if sent else 'not sent')}: {detail}")
        self.status = status
        self.detail = detail
        self.message = message or detail
        self.sent = sent  # False: no connection was made, nothing left this process

    @property
    def maybe_processed(self) -> bool:
        """The venue may have acted (no answer, 5xx, 408): the outcome is unknown."""
        return self.sent and (self.status == 0 or self.status >= 500 or self.status == 408)


class UnknownOrdersError(ConfigError):
    """Open orders at the venue that the journal does not know, at start, with
    ``unknown_orders = "refuse"``: another process may be trading this key. Stops the daemon."""


class AuthRefusedError(ConfigError):
    """The venue refused the key (401/403) at start. Stops the daemon."""


def unknown_orders_message(n: int, sample: Sequence[str]) -> str:
    eg = ", ".join(s[:40] for s in list(sample)[:3])
    return (f"executor.params.unknown_orders: refusing to run: {n} open order(s) at Polymarket US that this "
            f"daemon's journal does not know ({eg}). Another process may be trading this key: stop it first. "
            f"To take them over set [executor] params unknown_orders = \"adopt\", to cancel them \"cancel\" "
            f"(\"leave\" ignores them)")  # fmt: skip


def key_alias(key_id: str) -> str:
    """A stable stand-in for the key id in logs, journal and lock names."""
    return "pmus-key-" + hashlib.sha256(key_id.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------- pure mapping


def yes_price(price: int, is_long: bool) -> int:
    """The YES-side price of an engine price on the long (p) or short (1 - p) asset; the same
    function maps a YES-side venue price back to the asset's side."""
    return price if is_long else SCALE - price


def venue_intent(side: str, is_long: bool) -> str:
    return _INTENTS[(side, is_long)]


def decimal_units(x: Any) -> int:
    """A venue number (decimal string, int, float, or ``{"value": ...}``) in 6-decimal units;
    0 for absent or unreadable."""
    if isinstance(x, dict):
        x = x.get("value")
    if x is None or x == "" or isinstance(x, bool):
        return 0
    if isinstance(x, int):
        return x * SCALE
    if isinstance(x, float):
        x = f"{x:.6f}"
    try:
        return to_units(str(x).strip())
    except ValueError:
        try:  # more than six decimals: to the nearest base unit
            from decimal import Decimal, InvalidOperation

            return int((Decimal(str(x)) * SCALE).to_integral_value())
        except (InvalidOperation, ValueError):
            return 0


def quantity_json(size: int) -> Any:
    """Shares as a JSON number: whole when whole (``10``), else the exact decimal (``10.5``)."""
    if size % SCALE == 0:
        return size // SCALE
    return msgspec.Raw(from_units(size).encode())


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time_ms(s: Any) -> int | None:
    """Milliseconds of an RFC 3339 time (``2025-01-01T00:00:00.123Z``); None when unreadable."""
    if not isinstance(s, str) or not s:
        return None
    try:
        t = s.strip()
        if t.endswith("Z"):
            t = t[:-1] + "+00:00"
        if "." in t:  # fromisoformat (3.11) takes at most 6 fractional digits
            head, _, rest = t.partition(".")
            i = 0
            while i < len(rest) and rest[i].isdigit():
                i += 1
            t = head + "." + rest[:i][:6].ljust(6, "0") + rest[i:]
        d = datetime.fromisoformat(t)
        if d.tzinfo is None:
            d = d.replace(tzinfo=timezone.utc)
        return int(d.timestamp() * 1000)
    except ValueError:
        return None


def order_body(it: OrderIntent, tif_map: dict[str, str] | None = None) -> dict[str, Any]:
    """``CreateOrderParams`` of an engine order on a pmus asset (ValueError when it cannot be)."""
    parsed = parse_asset(it.asset_id)
    if parsed is None:
        raise ValueError(f"{it.asset_id!r} is not a Polymarket US asset (pmus:<slug>:long|short)")
    slug, is_long = parsed
    if not 0 < it.price < SCALE:
        raise ValueError(f"price {from_units(it.price)} is outside (0, 1)")
    if it.size <= 0:
        raise ValueError("size must be positive")
    tif = (tif_map or VENUE_TIF).get(it.tif) or VENUE_TIF[it.tif]
    body: dict[str, Any] = {
        "marketSlug": slug,
        "intent": venue_intent(it.side, is_long),
        "type": "ORDER_TYPE_LIMIT",
        "price": {"value": from_units(yes_price(it.price, is_long)), "currency": "USD"},
        "quantity": quantity_json(it.size),
        "tif": tif,
    }
    if it.post_only:
        body["participateDontInitiate"] = True
    if tif == VENUE_TIF["GTD"]:
        if not it.expire_ts:
            raise ValueError("GTD needs expire_ts")
        body["goodTillTime"] = rfc3339(it.expire_ts)
    return body


def venue_key(v: dict[str, Any]) -> tuple[str, str, int, int] | None:
    """(slug, intent, YES price, quantity) of a venue order: what an unknown order is matched by."""
    slug = v.get("marketSlug") or (v.get("marketMetadata") or {}).get("slug")
    intent = v.get("intent")
    if not slug or intent not in _INTENT_SIDE:
        return None
    return str(slug), str(intent), decimal_units(v.get("price")), decimal_units(v.get("quantity"))


def intent_key(it: OrderIntent) -> tuple[str, str, int, int] | None:
    parsed = parse_asset(it.asset_id)
    if parsed is None:
        return None
    slug, is_long = parsed
    return slug, venue_intent(it.side, is_long), yes_price(it.price, is_long), it.size


def intent_from_venue(v: dict[str, Any]) -> OrderIntent | None:
    """The engine's view of a venue order (adoption): the asset and price on its side."""
    k = venue_key(v)
    if k is None:
        return None
    slug, intent, px, q = k
    side, is_long = _INTENT_SIDE[intent]
    long_id, short_id = asset_ids(slug)
    if not 0 < px < SCALE or q <= 0:
        return None
    return OrderIntent(strategy="adopted", asset_id=long_id if is_long else short_id, market=market_id(slug),
                       side=side, price=yes_price(px, is_long), size=q,  # type: ignore[arg-type]
                       tif=_ENGINE_TIF.get(str(v.get("tif", "")), "GTC"), note="adopted from the venue")  # type: ignore[arg-type]  # fmt: skip


def price_fits(intent: str, limit_yes: int, trade_yes: int) -> bool:
    """Whether a trade at ``trade_yes`` (YES side) can be a fill of an order with that intent and
    YES limit: buying YES (BUY_LONG) or selling NO-as-YES (SELL_SHORT) pays at most the limit;
    selling YES (SELL_LONG) or buying NO (BUY_SHORT: selling YES) gets at least it."""
    if intent in (BUY_LONG, SELL_SHORT):
        return trade_yes <= limit_yes
    return trade_yes >= limit_yes


#: (method, route) -> (requests, window s): docs.polymarket.us api-reference/rate-limits
LIMITS: dict[tuple[str, str], tuple[int, float]] = {
    ("POST", "/v1/orders"): (440, 10.0),
    ("POST", "/v1/order/cancel"): (440, 10.0),
    ("POST", "/v1/orders/open/cancel"): (110, 10.0),
    ("GET", "/v1/orders/open"): (55, 10.0),
    ("GET", "/v1/order"): (55, 10.0),
    ("*", "*"): (2000, 10.0),
}


def _route(method: str, path: str) -> tuple[str, str]:
    if path.startswith("/v1/order/"):
        return method, "/v1/order/cancel" if path.endswith("/cancel") else "/v1/order"
    return method, path


class UsRest:
    """The REST client: Ed25519-signed requests (path signed without its query) on one aiohttp
    session, rate limited; GETs and cancels retried on 408/409/429/5xx/no answer, order POSTs
    never (on 429 only, which the venue did not process; that is the caller's decision)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key_id: str, secret: str, timeout_s: float,
                 limits: bool = True) -> None:  # fmt: skip
        self.session = session
        self.base = base.rstrip("/")
        self._key_id = key_id
        self._secret = secret
        self.timeout = timeout_s
        self.limits = limits
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.requests = 0
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of the last requests

    def __repr__(self) -> str:
        return f"UsRest({self.base})"

    async def _limit(self, method: str, path: str) -> None:
        if not self.limits:
            return
        for key in (_route(method, path), ("*", "*")):
            if key not in LIMITS:
                continue
            b = self.buckets.get(key)
            if b is None:
                b = self.buckets[key] = TokenBucket(*LIMITS[key])
            await b.take()

    async def request(self, method: str, path: str, body: Any = None, *, query: list[tuple[str, str]] | None = None,
                      retry: bool = False, attempts: int = 4) -> Any:  # fmt: skip
        import aiohttp

        data = None if body is None else msgspec.json.encode(body)
        attempt = 0
        while True:
            await self._limit(method, path)
            headers = sign_headers(self._key_id, self._secret, method, path)
            if data is not None:
                headers["Content-Type"] = "application/json"
            self.requests += 1
            status = 0
            try:
                async with self.session.request(method, self.base + path, data=data, params=query, headers=headers,
                                                timeout=aiohttp.ClientTimeout(total=self.timeout)) as r:  # fmt: skip
                    text = await r.text()
                    status = r.status
            except aiohttp.ClientConnectorError as exc:  # no connection: the request never left
                err = HttpError(0, f"{method} {path}: cannot connect ({type(exc).__name__})", sent=False)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                err = HttpError(0, f"{method} {path}: {type(exc).__name__}")
            else:
                if 200 <= status < 300:
                    self._note(method, path, status)
                    try:
                        return msgspec.json.decode(text) if text else {}
                    except msgspec.DecodeError:
                        return text
                message = _message(text)
                err = HttpError(status, f"{method} {path}: {message[:200]}", message[:300])
            self._note(method, path, status)
            if not retry or attempt + 1 >= attempts or not (err.status in (0, 408, 409, 429) or err.status >= 500):
                raise err
            attempt += 1
            await anyio.sleep(min(4.0, 0.25 * 2**attempt) * (0.5 + random.random()))

    def _note(self, method: str, path: str, status: int) -> None:
        self.log.append((method, path, status))
        if len(self.log) > 1000:
            del self.log[:500]


def _message(text: str) -> str:
    try:
        b = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text.strip() or "no message"
    if isinstance(b, dict):
        return str(b.get("message") or b.get("error") or b.get("reason") or text)
    return text


@attrs.define
class _Pending:
    """An order whose POST outcome is unknown, looked for at the venue."""

    client_id: str
    key: tuple[str, str, int, int]
    since_ms: int  # a venue order created before this is not it
    deadline: float  # monotonic
    recovered: bool = False


@attrs.define
class _Seen:
    """A venue order not (yet) ours, as the private stream showed it, with its executions."""

    order: dict[str, Any]
    executions: list[dict[str, Any]]
    first: float


# ---------------------------------------------------------------------- the executor


class UsExecutor(Executor):
    """Polymarket US. Params: :class:`UsParams`; secrets ``pmus_key_id`` and ``pmus_secret_key``
    (environment ``POLYBOT_PMUS_KEY_ID`` / ``POLYBOT_PMUS_SECRET_KEY`` or the ``[secrets]`` file)."""

    name = "pmus"
    asynchronous = True
    doctor_module = "adapters.polymarket_us.doctor"

    def __init__(self, **params: Any) -> None:
        super().__init__()
        try:
            self.params = msgspec.convert(params, UsParams)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None
        p = self.params
        for k_, v in p.tif.items():
            if k_ not in VENUE_TIF:
                raise ValueError(f"tif: {k_!r}: not an engine TIF (one of {', '.join(VENUE_TIF)})")
            if v not in _ENGINE_TIF:
                raise ValueError(f"tif.{k_}: {v!r}: not a venue TIF (one of {', '.join(_ENGINE_TIF)})")
        for name_ in ("request_timeout_s", "ws_ping_s", "ws_silence_s"):
            if getattr(p, name_) <= 0:
                raise ValueError(f"{name_}: must be positive")
        if p.demo_key:
            from .sim import loopback_only

            for name_ in ("api_url", "ws_url"):
                if getattr(p, name_) and not loopback_only(getattr(p, name_)):
                    raise ValueError(f"{name_}: must be a loopback URL with demo_key = true "
                                     "(the simulator's key opens nothing else)")  # fmt: skip
        self.tif_map = {**VENUE_TIF, **p.tif}
        self.dry_run = p.dry_run
        self._key_id = ""
        self._secret = ""
        self.alias = ""
        self._send_q, self._recv_q = anyio.create_memory_object_stream[tuple[str, Any]](math.inf)
        self._in_flight = 0
        self._out: ObjectSendStream[InboundRecord] | None = None
        self._clock: Clock | None = None
        self._tg: TaskGroup | None = None
        self.rest: UsRest | None = None
        # venue order id <-> client id; fills reported per order (trade ids, shares)
        self._by_vid: dict[str, str] = {}
        self._vid: dict[str, str] = {}
        self._tids: dict[str, set[str]] = {}
        self._rep: dict[str, int] = {}
        self._all_tids: set[str] = set()
        self._synthetic: set[str] = set()  # orders with a fill booked from cumQuantity
        self._unapplied: set[str] = set()  # "<cid>/<tid>" reported, not yet in the kernel's fills
        self._posting: dict[str, tuple[str, str, int, int]] = {}  # POSTs in flight: cid -> key
        self._unknown: dict[str, _Pending] = {}
        self._absent: dict[str, tuple[_Pending, float]] = {}
        self._early: dict[str, _Seen] = {}
        self._cancel_wanted: set[str] = set()
        self._watching: set[str] = set()
        self._resolver_running = False
        self._last_lookup = 0.0
        self._reconcile_lock = anyio.Lock()
        self._reconcile_waiting = False
        self._unknown_checked = False
        self._last_rx = time.monotonic()
        self._ws: Any = None
        self._status: dict[str, tuple[bool, bool]] = {}  # market -> (accepting orders, closed) last stated
        self._settled: set[str] = set()  # slugs whose position the venue shows expired (settled)
        self.balance: dict[str, Any] = {}
        self.reconciles = 0
        self.private_connects = 0
        self.unknown_resolved = 0
        self.declared_absent = 0
        self.posts = 0

    # ------------------------------------------------------------------ configuration

    def configure(self, cfg: Config) -> None:
        """The key id and the Ed25519 secret from the environment or the secrets file."""
        from polybot.config import load_secrets

        if self.params.demo_key:
            from .sim import DEMO_KEY_ID, DEMO_SECRET_KEY

            key_id, secret = DEMO_KEY_ID, DEMO_SECRET_KEY
        else:
            secrets = load_secrets(cfg)
            key_id = secrets.get("pmus_key_id")
            secret = secrets.get("pmus_secret_key")
        if not key_id:
            raise ConfigError("secrets: pmus_key_id is missing: set POLYBOT_PMUS_KEY_ID or pmus_key_id in the "
                              "[secrets] file (the API key id from polymarket.us/developer)")  # fmt: skip
        if not secret:
            raise ConfigError("secrets: pmus_secret_key is missing: set POLYBOT_PMUS_SECRET_KEY or pmus_secret_key "
                              "in the [secrets] file (the base64 Ed25519 secret key of that API key)")  # fmt: skip
        try:
            check_secret(secret)
        except AuthError as exc:
            raise ConfigError(f"secrets: pmus_secret_key: not a valid Ed25519 key ({exc})") from None
        self._key_id, self._secret = key_id, secret
        self.alias = key_alias(key_id)

    def __repr__(self) -> str:
        return f"UsExecutor({self.params.api_url}, key={self.alias or 'unset'})"

    def act(self, action: PositionAction) -> None:
        """On-chain position actions do not exist on this venue: it keeps one net position per
        market (no pairs to merge or split, nothing to convert) and pays resolved positions
        itself (``MarketInfo.auto_settle``: nothing to redeem). Refused by the executor's task,
        through the door (``exec.pmus``), like every answer of this executor."""
        self._enqueue("act", action)

    @property
    def account_id(self) -> str:
        """The account an instance lock guards (an alias of the key id); "" before configure."""
        return self.alias

    def attach(self, kernel: Kernel) -> None:
        super().attach(kernel)
        try:
            from .wire import PRIVATE_DECODER as dec  # the source's registered decoder
        except ImportError:
            dec = PRIVATE_DECODER
        kernel.add_decoder(PRIVATE_SOURCE, dec)
        if self._key_id and (self._key_id.encode(), self.alias.encode()) not in kernel.redactions.get(PRIVATE_SOURCE, []):
            kernel.add_redaction(PRIVATE_SOURCE, self._key_id, self.alias)
        kernel.bus.subscribe(TradingStateChanged, self._on_trading_state)
        kernel.bus.subscribe(MarketResolved, self._on_market_end)
        kernel.bus.subscribe(MarketInfo, self._on_market_end)
        kernel.bus.subscribe(MarketStatus, self._on_market_end)  # the markets stream's state changes

    def detach(self) -> None:
        if self.kernel is not None:
            self.kernel.bus.unsubscribe(self._on_trading_state, TradingStateChanged)
            self.kernel.bus.unsubscribe(self._on_market_end)

    def _on_trading_state(self, ev: TradingStateChanged) -> None:
        if _STATE_TRIGGER.get(ev.state, "") in self.params.cancel_all_on and not self.dry_run:
            self._enqueue("cancel_all", "")

    def _on_market_end(self, ev: MarketResolved | MarketInfo | MarketStatus) -> None:
        """A pmus market resolved, closed or no longer accepting orders: cancel what rests there."""
        if isinstance(ev, MarketStatus):  # (stated by every book frame: act on a change only)
            was = self._status.get(ev.market)
            self._status[ev.market] = now = (ev.accepting_orders, ev.closed)
            if was == now:
                return
        if isinstance(ev, (MarketInfo, MarketStatus)) and ev.accepting_orders and not ev.closed:
            return
        slug = slug_of_market(ev.market)
        k = self.kernel
        if slug is None or self.dry_run or k is None:
            return
        if any((parse_asset(o.asset_id) or ("",))[0] == slug for o in k.orders.open_orders()):
            self._enqueue("cancel_all", slug)

    # ------------------------------------------------------------------ the kernel's calls

    def _enqueue(self, op: str, x: Any) -> None:
        self._in_flight += 1
        try:
            self._send_q.send_nowait((op, x))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._in_flight -= 1
            logger.error("pmus executor: {} after the executor closed: not sent", op)

    def submit(self, order: Order) -> None:
        self._enqueue("submit", order)

    def cancel(self, order: Order) -> None:
        self._enqueue("cancel", order)

    def idle(self) -> bool:
        return self._in_flight == 0

    def close(self) -> None:
        self._send_q.close()
        self._recv_q.close()

    # ------------------------------------------------------------------ helpers

    async def _report(self, events: Sequence[Event]) -> None:
        from polybot.kernel import InboundRecord

        if events and self._out is not None and self._clock is not None:
            await self._out.send(InboundRecord(self._clock.now(), self.source, ENCODER.encode(list(events))))

    def _notice(self, kind: str, detail: str = "", client_id: str = "") -> ExecutorNotice:
        return ExecutorNotice(ts=0, executor=self.name, kind=kind, detail=detail[:300], client_id=client_id)

    def _common(self, o: Order, vid: str = "") -> dict[str, Any]:
        return dict(client_id=o.client_id, strategy=o.strategy, asset_id=o.asset_id,
                    venue_order_id=vid or self._vid.get(o.client_id, "") or o.venue_order_id)  # fmt: skip

    def _order(self, client_id: str) -> Order | None:
        return self.kernel.orders.get(client_id) if self.kernel is not None and client_id else None

    def _map(self, cid: str, vid: str) -> None:
        if vid:
            self._by_vid[vid] = cid
            self._vid[cid] = vid

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self._tg is not None:
            self._tg.start_soon(fn, *args)

    # ------------------------------------------------------------------ the task

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        import aiohttp

        self._out, self._clock = send, clock
        async with send:
            async with aiohttp.ClientSession() as session:
                if self.dry_run:
                    await self._worker()
                    return
                if not self._key_id:
                    raise ConfigError("executor: polymarket-us is not configured (configure() was not called)")
                self.rest = UsRest(session, self.params.api_url, self._key_id, self._secret,
                                   self.params.request_timeout_s, self.params.rate_limits)  # fmt: skip
                self._learn()
                await self._start_check()  # before anything is sent
                try:
                    async with anyio.create_task_group() as tg:
                        self._tg = tg
                        tg.start_soon(self._worker)
                        if self.params.ws_url:
                            tg.start_soon(self._private_loop, session)
                        else:
                            tg.start_soon(self._reconcile, "start")
                        if self._unknown:
                            self._start_resolver()
                finally:
                    self._tg = None

    def _learn(self) -> None:
        """After a restart: ids and fills of the journal's orders; the ones still waiting for an
        answer (no venue id) are looked up, never sent again."""
        k = self.kernel
        assert k is not None
        now = time.monotonic()
        for o in k.orders.all():
            if o.venue_order_id:
                self._map(o.client_id, o.venue_order_id)
            self._rep[o.client_id] = max(self._rep.get(o.client_id, 0), o.filled)
        for key, r in k.fills.items():
            cid, _, tid = key.partition("/")
            if cid and tid:
                self._tids.setdefault(cid, set()).add(tid)
                self._all_tids.add(tid)
        for o in k.orders.open_orders():
            if o.venue_order_id or parse_asset(o.asset_id) is None:
                continue
            if o.state in PENDING_STATES or o.state == "cancel_pending":
                key = intent_key(o.intent)
                if key is None:
                    continue
                self._unknown[o.client_id] = _Pending(o.client_id, key, o.created_ts // 1_000_000 - SKEW_MS,
                                                      now + max(self.params.unknown_grace_s, 1.0), recovered=True)  # fmt: skip
                if o.state == "cancel_pending":
                    self._cancel_wanted.add(o.client_id)
        if self._unknown:
            logger.warning("{} order(s) without a venue answer in the journal: looking them up (never re-sent)",
                           len(self._unknown))  # fmt: skip

    async def _start_check(self) -> None:
        """The key works (a 401/403 stops the daemon), and with ``unknown_orders = "refuse"``,
        no open order at the venue is foreign to the journal."""
        assert self.rest is not None
        try:
            venue_open = await self._open_orders(attempts=2)  # (a venue down: the first reconciliation checks)
        except HttpError as err:
            if err.status in (401, 403):
                msg = (f"secrets: pmus_key_id / pmus_secret_key: Polymarket US refused the key {self.alias} "
                       f"(HTTP {err.status}: {err.message[:120]}); check the key id and its secret key")  # fmt: skip
                logger.critical(msg)
                await self._report([self._notice("auth_refused", msg)])
                raise AuthRefusedError(msg) from None
            logger.warning("could not list the venue's open orders at start ({}): the first reconciliation checks them", err)
            return
        if self.params.unknown_orders != "refuse":
            self._unknown_checked = True
            return
        stray = [vid for vid, v in venue_open.items() if vid not in self._by_vid and not self._could_be_ours(v)]
        if stray:
            msg = unknown_orders_message(len(stray), stray)
            logger.critical(msg)
            await self._report([self._notice("unknown_orders_refused", msg)])
            raise UnknownOrdersError(msg)
        self._unknown_checked = True

    def _could_be_ours(self, v: dict[str, Any]) -> bool:
        """A venue order an order of ours waiting for its answer may be."""
        k = venue_key(v)
        return k is not None and any(p.key == k for p in self._unknown.values())

    # ---------------------------------------------------------------- orders out

    async def _worker(self) -> None:
        async for batch in batches(self._recv_q, 100):
            try:
                await self._handle(batch)
            except Exception:  # noqa: BLE001 - never lose the task: reconciliation settles the orders
                logger.exception("pmus executor: a batch of {} request(s) failed unexpectedly", len(batch))
            finally:
                self._in_flight -= len(batch)

    async def _handle(self, batch: list[tuple[str, Any]]) -> None:
        """In queue order around a cancel-all: what was queued before it is at the venue first."""
        seg: list[tuple[str, Any]] = []
        for op, x in batch:
            if op == "cancel_all":
                if seg:
                    await self._handle_orders(seg)
                    seg = []
                await self._cancel_all(x)
            elif op == "act":
                await self._report([PositionActionFailed(
                    ts=0, action_id=x.action_id, action=x.action, market=x.market, strategy=x.strategy,
                    reason=f"{x.action}: not on Polymarket US (one net position per market, settled by the venue)")])  # fmt: skip
            else:
                seg.append((op, x))
        if seg:
            await self._handle_orders(seg)

    async def _handle_orders(self, seg: list[tuple[str, Any]]) -> None:
        submits = [x for op, x in seg if op == "submit"]
        cancels = [x for op, x in seg if op == "cancel"]
        if submits:
            if len(submits) == 1:
                await self._submit(submits[0])
            else:
                limiter = anyio.CapacityLimiter(8)

                async def one(o: Order) -> None:
                    async with limiter:
                        await self._submit(o)

                async with anyio.create_task_group() as tg:
                    for o in submits:
                        tg.start_soon(one, o)
        for o in cancels:
            await self._cancel(o)

    async def _submit(self, o: Order) -> None:
        try:
            body = order_body(o.intent, self.tif_map)
        except (ValueError, KeyError) as exc:
            await self._report([OrderRejected(ts=0, reason=f"not sent: {exc}", **self._common(o))])
            return
        if self.dry_run:
            logger.debug("dry run: {} {}", o.client_id, msgspec.json.encode(body).decode())
            self._map(o.client_id, "dry-" + o.client_id)
            await self._report([OrderAccepted(ts=0, **self._common(o))])
            return
        assert self.rest is not None
        key = intent_key(o.intent)
        assert key is not None
        since_ms = int(time.time() * 1000) - SKEW_MS
        self._posting[o.client_id] = key
        try:
            for attempt in range(6):
                self.posts += 1
                try:
                    r = await self.rest.request("POST", "/v1/orders", body)
                    break
                except HttpError as err:
                    if err.status == 429 and attempt < 5:  # rate limited: not processed, sent again
                        await anyio.sleep(min(4.0, 0.5 * 2**attempt))
                        continue
                    if err.maybe_processed:
                        await self._went_unknown(o, key, since_ms, str(err))
                    else:
                        if err.status in (401, 403):
                            logger.error("Polymarket US refused the key {} (HTTP {})", self.alias, err.status)
                        why = f"venue: {err.message}" if err.sent else f"not sent: {err.detail}"
                        await self._report([OrderRejected(ts=0, reason=why[:300], **self._common(o))])
                        self._cancel_wanted.discard(o.client_id)
                    return
            vid = str(r.get("id") or "") if isinstance(r, dict) else ""
            if not vid:
                await self._went_unknown(o, key, since_ms, "answer without an order id")
                return
            await self._accepted(o, vid, r.get("executions") or [], {})
        finally:
            self._posting.pop(o.client_id, None)

    async def _went_unknown(self, o: Order, key: tuple[str, str, int, int], since_ms: int, why: str) -> None:
        logger.warning("order {} outcome unknown ({}): looking for it at the venue (never re-sent)", o.client_id, why)
        self._unknown[o.client_id] = _Pending(o.client_id, key, since_ms, time.monotonic() + self.params.unknown_grace_s)
        events: list[Event] = [OrderUnknown(ts=0, reason=why[:300], **self._common(o))]
        self._posting.pop(o.client_id, None)
        events.extend(self._match_early())
        await self._report(events)
        self._start_resolver()

    async def _accepted(self, o: Order, vid: str, executions: list[Any], v: dict[str, Any]) -> None:
        """The venue's id for one of our orders is known (the POST answer, or a look-up): the
        acceptance, the fills the answer listed and the executions the stream already sent."""
        await self._report(self._bind(o, vid, v, executions))
        await self._after_bind(o, vid, v, executions)

    def _bind(self, o: Order, vid: str, v: dict[str, Any], answer: Sequence[Any] = ()) -> list[Event]:
        """Map ``vid`` to ``o``: OrderAccepted, then the executions the stream sent before (and
        those of the answer). An order the venue refused at entry (post-only that would cross:
        HTTP 200 and one ``REJECTED`` execution) is rejected, never accepted first."""
        self._map(o.client_id, vid)
        self._unknown.pop(o.client_id, None)
        seen = self._early.pop(vid, None)
        execs = [ex for ex in [*(seen.executions if seen is not None else ()), *answer] if isinstance(ex, dict)]
        if any(str(ex.get("type", "")).endswith("REJECTED") for ex in execs) or str(v.get("state", "")) == "ORDER_STATE_REJECTED":
            ex = next((ex for ex in execs if str(ex.get("type", "")).endswith("REJECTED")), {})
            self._cancel_wanted.discard(o.client_id)
            why = ex.get("orderRejectReason") or ex.get("text") or "rejected"
            return [OrderRejected(ts=0, reason=f"venue: {why}"[:300], **self._common(o, vid))]
        events: list[Event] = [OrderAccepted(ts=0, **self._common(o, vid))]
        for ex in execs:
            events.extend(self._exec_events(o, ex, vid, accepted=True))
        return events

    async def _after_bind(self, o: Order, vid: str, v: dict[str, Any], executions: list[Any]) -> None:
        """What an order just bound still needs: a cancel asked for meanwhile; fills and a final
        state the venue's order shows and no execution told; a watch on an IOC/FOK."""
        cid = o.client_id
        if cid in self._cancel_wanted:
            self._cancel_wanted.discard(cid)
            await self._send_cancel(o, vid)
        if v and (decimal_units(v.get("cumQuantity")) > self._rep.get(cid, 0) or
                  str(v.get("state", "")) in _TERMINAL_VENUE):  # fmt: skip
            await self._settle(o, vid, v)
        if o.intent.tif in ("FOK", "FAK"):
            self._watch(cid)

    # ---------------------------------------------------------------- executions

    def _exec_events(self, o: Order, ex: dict[str, Any], vid: str = "", accepted: bool = False) -> list[Event]:
        """Engine events of one execution of one of our orders (``accepted``: its acceptance is
        reported already, a ``NEW`` adds nothing)."""
        order = ex.get("order") if isinstance(ex.get("order"), dict) else {}
        vid = vid or str(order.get("id") or "")
        typ = str(ex.get("type", "")).removeprefix("EXECUTION_TYPE_")
        c = self._common(o, vid)
        out: list[Event] = []
        if typ == "NEW":
            if not accepted:
                out.append(OrderAccepted(ts=0, **c))
        elif typ in ("FILL", "PARTIAL_FILL", "TRADE"):
            f = self._fill(o, ex, order, c)
            if f is not None:
                out.append(f)
        elif typ == "CANCELED":
            out.append(OrderCancelled(ts=0, reason=str(ex.get("text") or "cancelled")[:200], **c))
        elif typ == "REJECTED":
            out.append(OrderRejected(ts=0, reason=f"venue: {ex.get('orderRejectReason') or ex.get('text') or 'rejected'}"[:300], **c))
        elif typ in ("EXPIRED", "DONE_FOR_DAY"):
            out.append(OrderExpired(ts=0, **c))
        if typ not in ("CANCELED", "REJECTED", "EXPIRED"):
            # a fill whose order is already over (an IOC's last fill): its end as well
            st = _TERMINAL_VENUE.get(str(order.get("state", "")))
            if st == "cancelled":
                out.append(OrderCancelled(ts=0, reason="venue: " + str(order.get("state", "")).lower(), **c))
            elif st == "expired":
                out.append(OrderExpired(ts=0, **c))
        if any(isinstance(e, (OrderCancelled, OrderRejected, OrderExpired)) for e in out):
            self._cancel_wanted.discard(o.client_id)
        return out

    def _fill(self, o: Order, ex: dict[str, Any], order: dict[str, Any], c: dict[str, Any]) -> Event | None:
        cid = o.client_id
        tid = str(ex.get("tradeId") or ex.get("id") or "")
        size = decimal_units(ex.get("lastShares"))
        if not tid or size <= 0:
            return None
        tids = self._tids.setdefault(cid, set())
        if tid in tids:
            return None
        if tid in self._all_tids:
            # booked already, to another order of ours, by a reconciliation that had to guess
            # (the venue's trades name no order): the shares are in; never book them twice
            logger.warning("pmus executor: trade {} of {} was booked to another order by a reconciliation: "
                           "not booked again", tid, cid)  # fmt: skip
            tids.add(tid)
            return None
        px = decimal_units(ex.get("lastPx"))
        if not 0 < px < SCALE:
            # a fill without a usable price would book at 0 or 1: left to the reconciliation
            # (activities carry the trade's price)
            logger.error("pmus executor: execution {} of {} has no usable lastPx ({!r}): fill not booked from it",
                         tid, cid, ex.get("lastPx"))  # fmt: skip
            return None
        rep = self._rep.get(cid, 0)
        if cid in self._synthetic and "cumQuantity" in order:
            # a fill booked from the order's count already covers it, in part or whole
            size = min(size, decimal_units(order.get("cumQuantity")) - rep)
            if size <= 0:
                tids.add(tid)
                return None
        parsed = parse_asset(o.asset_id)
        is_long = parsed[1] if parsed else True
        price = yes_price(px, is_long)
        return self._fill_event(o, c, tid, price, size, decimal_units(ex.get("commissionNotionalCollected")),
                                "taker" if ex.get("aggressor") else "maker",
                                decimal_units(order["leavesQuantity"]) if "leavesQuantity" in order else None)  # fmt: skip

    def _fill_event(self, o: Order, c: dict[str, Any], tid: str, price: int, size: int, fee: int, liq: str,
                    leaves: int | None) -> Event:  # fmt: skip
        cid = o.client_id
        self._tids.setdefault(cid, set()).add(tid)
        self._all_tids.add(tid)
        rep = self._rep.get(cid, 0) + size
        self._rep[cid] = rep
        self._unapplied.add(f"{cid}/{tid}")
        if len(self._unapplied) > 2000 and self.kernel is not None:  # no reconciliation for a while
            self._unapplied = {k_ for k_ in self._unapplied if k_ not in self.kernel.fills}
        left = max(0, o.intent.size - rep) if leaves is None else leaves
        cls = OrderFilled if rep >= o.intent.size else OrderPartiallyFilled
        market = o.intent.market or market_id((parse_asset(o.asset_id) or ("",))[0])
        return cls(ts=0, trade_id=tid, side=o.intent.side, price=price, size=size, liquidity=liq,  # type: ignore[arg-type]
                   fee=max(0, fee), rebate=max(0, -fee), fee_asset="USD", market=market, leaves=left,
                   **c)  # a negative commission is the maker rebate  # fmt: skip

    def _buffer(self, vid: str, order: dict[str, Any], ex: dict[str, Any] | None) -> None:
        """Keep what the stream says of an order that is not (yet) ours."""
        now = time.monotonic()
        if len(self._early) > 200:
            for k_ in [k_ for k_, s in self._early.items() if now - s.first > EARLY_KEEP_S]:
                del self._early[k_]
        s = self._early.get(vid)
        if s is None:
            s = self._early[vid] = _Seen(order, [], now)
        elif order:
            s.order = {**s.order, **order}
        if ex is not None:
            s.executions.append(ex)

    # ---------------------------------------------------------------- unknown outcomes

    def _match(self, vid: str, v: dict[str, Any]) -> str | None:
        """The unknown order of ours a venue order is, if any (see the module doc)."""
        if not vid or vid in self._by_vid or not self._unknown:
            return None
        k = venue_key(v)
        if k is None or k in self._posting.values():  # an identical POST in flight: wait for its answer
            return None
        created = parse_time_ms(v.get("createTime") or v.get("insertTime"))
        best: _Pending | None = None
        for p in self._unknown.values():
            if p.key != k or (created is not None and created < p.since_ms):
                continue
            if best is None or p.since_ms < best.since_ms:
                best = p
        return best.client_id if best is not None else None

    def _match_early(self) -> list[Event]:
        """Unknown orders found among the orders the stream showed that are not ours yet."""
        events: list[Event] = []
        if not self._unknown:
            return events
        for vid, s in sorted(self._early.items(), key=lambda kv: parse_time_ms(kv[1].order.get("createTime")) or 0):
            cid = self._match(vid, s.order)
            o = self._order(cid) if cid else None
            if o is not None:
                events.extend(self._found(o, vid, s.order))
        return events

    def _found(self, o: Order, vid: str, v: dict[str, Any]) -> list[Event]:
        self.unknown_resolved += 1
        logger.info("order {} found at the venue as {}", o.client_id, vid)
        events = self._bind(o, vid, v)
        self._spawn(self._after_bind, o, vid, v, [])
        return events

    def _start_resolver(self) -> None:
        if not self._resolver_running and self._tg is not None:
            self._resolver_running = True
            self._in_flight += 1
            self._tg.start_soon(self._resolver)

    async def _resolver(self) -> None:
        """Look for the unknown orders until each is found or its grace is over."""
        try:
            while self._unknown:
                await self._report(self._match_early())
                now = time.monotonic()
                if self._unknown and now - self._last_lookup >= self.params.lookup_interval_s:
                    self._last_lookup = now
                    await self._lookup_open({p.key[0] for p in self._unknown.values()})
                now = time.monotonic()
                for p in [p for p in self._unknown.values() if p.deadline <= now]:
                    await self._give_up(p)
                if self._unknown:
                    await anyio.sleep(min(0.1, self.params.lookup_interval_s))
        finally:
            self._resolver_running = False
            self._in_flight -= 1

    async def _lookup_open(self, slugs: set[str]) -> None:
        try:
            venue_open = await self._open_orders(sorted(slugs))
        except HttpError as err:
            logger.warning("looking up unknown orders: {}", err)
            return
        events: list[Event] = []
        for vid, v in venue_open.items():
            cid = self._match(vid, v)
            o = self._order(cid) if cid else None
            if o is not None:
                events.extend(self._found(o, vid, v))
        await self._report(events)

    async def _give_up(self, p: _Pending) -> None:
        """The grace is over: one last look (open orders, then trades no order explains)."""
        await self._lookup_open({p.key[0]})
        if p.client_id not in self._unknown:
            return
        o = self._order(p.client_id)
        if o is None:
            self._unknown.pop(p.client_id, None)
            return
        trades = await self._unexplained_trades(p)
        if p.client_id not in self._unknown:
            return
        self._unknown.pop(p.client_id, None)
        self._cancel_wanted.discard(p.client_id)
        if trades:
            # placed, and done at once (no open order left): its trades are its fills
            self.unknown_resolved += 1
            c = self._common(o)
            events: list[Event] = [OrderAccepted(ts=0, **c)]
            _, is_long = parse_asset(o.asset_id) or ("", True)
            for t in trades:
                events.append(self._fill_event(o, c, str(t["id"]), yes_price(decimal_units(t.get("price")), is_long),
                                               decimal_units(t.get("qtyDecimal") or t.get("qty")), 0,
                                               "taker" if t.get("isAggressor") else "maker", None))  # fmt: skip
            if self._rep.get(o.client_id, 0) < o.intent.size:
                events.append(OrderCancelled(ts=0, reason="venue: remainder not resting (found by its trades)", **c))
            logger.warning("order {}: no venue order found, but {} trade(s) explain it: booked", o.client_id, len(trades))
            await self._report(events)
            return
        self.declared_absent += 1
        self._absent[p.client_id] = (p, time.monotonic())
        logger.warning("order {}: not at the venue after {:g} s: not placed", o.client_id, self.params.unknown_grace_s)
        reason = "not placed: the venue has no such order"
        if p.recovered:
            reason += " (after a restart; not re-sent)"
        await self._report([OrderRejected(ts=0, reason=reason, **self._common(o))])

    async def _unexplained_trades(self, p: _Pending) -> list[dict[str, Any]]:
        slug, intent, limit, qty = p.key
        try:
            trades = await self._trades(p.since_ms, slug)
        except HttpError as err:
            logger.warning("looking up unknown order {} in the trades: {}", p.client_id, err)
            return []
        out: list[dict[str, Any]] = []
        total = 0
        for t in trades:
            tid = str(t.get("id", ""))
            oid = str(t.get("orderId") or "")
            if oid and oid in self._by_vid:
                continue
            q = decimal_units(t.get("qtyDecimal") or t.get("qty"))
            created = parse_time_ms(t.get("createTime"))
            # (the first page of trades reaches back before the send: an older trade is not it)
            if (not tid or tid in self._all_tids or str(t.get("marketSlug", slug)) != slug or q <= 0
                    or created is None or created < p.since_ms
                    or not price_fits(intent, limit, decimal_units(t.get("price"))) or total + q > qty):  # fmt: skip
                continue
            out.append(t)
            total += q
        return out

    def _check_late(self, vid: str, v: dict[str, Any]) -> bool:
        """A venue order matching one declared not placed: the venue was far behind. Cancelled
        at the venue (the kernel closed it); reconciliation books what it filled."""
        k = venue_key(v)
        now = time.monotonic()
        for cid, (p, t) in list(self._absent.items()):
            if now - t > ABSENT_KEEP_S:
                del self._absent[cid]
                continue
            created = parse_time_ms(v.get("createTime") or v.get("insertTime"))
            if p.key == k and (created is None or created >= p.since_ms):
                del self._absent[cid]
                self._by_vid[vid] = "late:" + cid
                logger.error("order {} declared not placed turned up at the venue as {}: cancelling it", cid, vid)
                self._spawn(self._cancel_late, cid, vid, p.key[0])
                return True
        return False

    async def _cancel_late(self, cid: str, vid: str, slug: str) -> None:
        await self._report([self._notice("late_order", f"order {vid} (for {cid}, declared not placed) turned up at "
                                                        "the venue: cancelled; positions reconcile its fills", cid)])  # fmt: skip
        await self._venue_cancel(vid, slug)

    # ---------------------------------------------------------------- cancels

    async def _cancel(self, o: Order) -> None:
        if self.dry_run:
            await self._report([OrderCancelled(ts=0, reason="cancelled (dry run)", **self._common(o))])
            return
        vid = self._vid.get(o.client_id) or o.venue_order_id
        if not vid:  # its POST is on its way or its outcome unknown: cancelled once its id is known
            if o.client_id in self._posting or o.client_id in self._unknown:
                self._cancel_wanted.add(o.client_id)
                return
            await self._report([OrderCancelled(ts=0, reason="never reached the venue", **self._common(o))])
            return
        await self._send_cancel(o, vid)

    async def _send_cancel(self, o: Order, vid: str) -> None:
        slug = (parse_asset(o.asset_id) or ("",))[0]
        err = await self._venue_cancel(vid, slug)
        if err is not None and not err.maybe_processed and err.status != 429:
            # refused (not found, already done): what became of it, from the venue
            await self._report([self._notice("not_cancelled", err.message, o.client_id)])
            try:
                await self._settle_by_id(o, vid)
            except HttpError as err2:
                logger.warning("cancel of {} refused and its state unreadable ({}): reconciliation settles it", o.client_id, err2)
            return
        self._watch(o.client_id)

    async def _venue_cancel(self, vid: str, slug: str) -> HttpError | None:
        assert self.rest is not None
        try:
            await self.rest.request("POST", f"/v1/order/{vid}/cancel", {"marketSlug": slug}, retry=True)
        except HttpError as err:
            if err.maybe_processed or err.status == 429:
                await self._report([self._notice("cancel_failed", f"{vid}: {err}", self._by_vid.get(vid, ""))])
            return err
        return None

    def _watch(self, cid: str) -> None:
        """Confirm an order's end by REST if the stream has not within ``cancel_confirm_s``."""
        if cid not in self._watching and self._tg is not None:
            self._watching.add(cid)
            self._tg.start_soon(self._watcher, cid)

    async def _watcher(self, cid: str) -> None:
        try:
            await anyio.sleep(self.params.cancel_confirm_s)
            o = self._order(cid)
            vid = self._vid.get(cid, "")
            if o is not None and o.is_open and vid:
                await self._settle_by_id(o, vid)
        except HttpError as err:
            logger.warning("confirming {}: {}", cid, err)
        finally:
            self._watching.discard(cid)

    async def _cancel_all(self, slug: str) -> None:
        """Everything of ours at the venue (or in one market), known to the journal or not."""
        assert self.rest is not None
        body: dict[str, Any] = {"slugs": [slug]} if slug else {}
        try:
            r = await self.rest.request("POST", "/v1/orders/open/cancel", body, retry=True)
        except HttpError as err:
            await self._report([self._notice("cancel_all_failed", str(err))])
            return
        ids = [str(x) for x in (r.get("canceledOrderIds") or [])] if isinstance(r, dict) else []
        logger.info("cancel-all{}: {} order(s)", f" ({slug})" if slug else "", len(ids))
        for vid in ids:
            cid = self._by_vid.get(vid)
            if cid:
                self._watch(cid)
        k = self.kernel
        if k is not None:  # orders whose id is not known yet: cancelled once it is
            for o in k.orders.open_orders():
                if (o.client_id in self._posting or o.client_id in self._unknown) and (
                        not slug or (parse_asset(o.asset_id) or ("",))[0] == slug):  # fmt: skip
                    self._cancel_wanted.add(o.client_id)

    # ---------------------------------------------------------------- the venue's view of an order

    async def _settle_by_id(self, o: Order, vid: str) -> None:
        assert self.rest is not None
        try:
            r = await self.rest.request("GET", f"/v1/order/{vid}", retry=True)
        except HttpError as err:
            if err.status != 404:
                raise
            if o.is_open:
                await self._report([OrderCancelled(ts=0, reason="venue has no such order", **self._common(o, vid))])
            return
        v = r.get("order") if isinstance(r, dict) and isinstance(r.get("order"), dict) else r
        if isinstance(v, dict):
            await self._settle(o, vid, v)

    async def _settle(self, o: Order, vid: str, v: dict[str, Any], trades: list[dict[str, Any]] | None = None) -> None:
        """Bring one order to what the venue shows: missed fills (from its ``cumQuantity``),
        then its final state."""
        events: list[Event] = []
        if o.state in PENDING_STATES:
            events.append(OrderAccepted(ts=0, **self._common(o, vid)))
        cum = decimal_units(v.get("cumQuantity"))
        if cum > self._rep.get(o.client_id, 0):
            if trades is None:
                trades = await self._trades(self._since(o), (parse_asset(o.asset_id) or ("",))[0])
            events.extend(self._missed_fills([(o, vid, v)], trades))
        st = _TERMINAL_VENUE.get(str(v.get("state", "")))
        c = self._common(o, vid)
        if st == "cancelled":
            events.append(OrderCancelled(ts=0, reason="venue: " + str(v.get("state", "")).lower(), **c))
        elif st == "expired":
            events.append(OrderExpired(ts=0, **c))
        elif st == "rejected":
            events.append(OrderRejected(ts=0, reason="venue: rejected", **c))
        if st is not None:
            self._cancel_wanted.discard(o.client_id)
        await self._report(events)

    def _since(self, o: Order) -> int:
        return o.created_ts // 1_000_000 - SKEW_MS

    def _missed_fills(self, items: list[tuple[Order, str, dict[str, Any]]], trades: list[dict[str, Any]]) -> list[Event]:
        """Fills the venue counts (``cumQuantity``) and the kernel has not heard of: attributed to
        recent trades no fill of ours explains yet (same slug, after the order, a price its limit
        allows, within the missing count); a remainder no trade explains is one fill at the
        order's average price (trade id ``<order id>/cum/<count>``)."""
        out: list[Event] = []
        by_time = sorted(trades, key=lambda t: parse_time_ms(t.get("createTime")) or 0)
        for o, vid, v in sorted(items, key=lambda x: x[0].created_ts):
            cid = o.client_id
            cum = decimal_units(v.get("cumQuantity"))
            missing = cum - self._rep.get(cid, 0)
            if missing <= 0:
                continue
            slug, is_long = parse_asset(o.asset_id) or ("", True)
            key = intent_key(o.intent)
            since = self._since(o)
            c = self._common(o, vid)
            for t in by_time:
                if missing <= 0:
                    break
                tid = str(t.get("id", ""))
                oid = str(t.get("orderId") or "")
                q = decimal_units(t.get("qtyDecimal") or t.get("qty"))
                if not tid or tid in self._all_tids or q <= 0 or q > missing:
                    continue
                if oid:
                    if oid != vid:
                        continue
                else:
                    created = parse_time_ms(t.get("createTime"))
                    if (str(t.get("marketSlug", "")) != slug or (created is not None and created < since)
                            or key is None or not price_fits(key[1], key[2], decimal_units(t.get("price")))):  # fmt: skip
                        continue
                out.append(self._fill_event(o, c, tid, yes_price(decimal_units(t.get("price")), is_long), q, 0,
                                            "taker" if t.get("isAggressor") else "maker", None))  # fmt: skip
                missing -= q
            if missing > 0:
                avg = decimal_units(v.get("avgPx")) or decimal_units(v.get("price"))
                self._synthetic.add(cid)
                logger.warning("order {}: {} share(s) filled at the venue that no trade explains: booked at the "
                               "order's average price", cid, from_units(missing))  # fmt: skip
                out.append(self._fill_event(o, c, f"{vid}/cum/{from_units(cum)}", yes_price(avg, is_long), missing, 0,
                                            "maker", None))  # fmt: skip
        return out

    # ---------------------------------------------------------------- REST reads

    async def _open_orders(self, slugs: Sequence[str] = (), attempts: int = 4) -> dict[str, dict[str, Any]]:
        assert self.rest is not None
        q = [("slugs", s) for s in slugs] or None
        r = await self.rest.request("GET", "/v1/orders/open", query=q, retry=True, attempts=attempts)
        orders = r.get("orders") if isinstance(r, dict) else r
        return {str(v["id"]): v for v in orders or [] if isinstance(v, dict) and v.get("id")}

    async def _trades(self, since_ms: int, slug: str = "") -> list[dict[str, Any]]:
        """Recent trades of the account (newest first from the venue), back to ``since_ms``."""
        assert self.rest is not None
        out: list[dict[str, Any]] = []
        cursor = ""
        while len(out) < self.params.activities_limit:
            q = [("types", "ACTIVITY_TYPE_TRADE"), ("limit", "100"), ("sortOrder", "SORT_ORDER_DESCENDING")]
            if slug:
                q.append(("marketSlug", slug))
            if cursor:
                q.append(("cursor", cursor))
            r = await self.rest.request("GET", "/v1/portfolio/activities", query=q, retry=True)
            acts = r.get("activities") if isinstance(r, dict) else None
            oldest = None
            for a in acts or []:
                t = a.get("trade") if isinstance(a, dict) else None
                if isinstance(t, dict) and t.get("id") and (not slug or t.get("marketSlug", slug) == slug):
                    out.append(t)
                    ms = parse_time_ms(t.get("createTime"))
                    oldest = ms if oldest is None or (ms is not None and ms < oldest) else oldest
            nxt = str(r.get("nextCursor") or "") if isinstance(r, dict) else ""
            if not acts or r.get("eof") or not nxt or nxt == cursor or (oldest is not None and oldest < since_ms):
                break
            cursor = nxt
        return out

    async def _positions(self) -> dict[str, tuple[int, int]]:
        """slug -> (net shares, YES average price)."""
        assert self.rest is not None
        out: dict[str, tuple[int, int]] = {}
        cursor = ""
        for _ in range(100):
            q = [("limit", "100")] + ([("cursor", cursor)] if cursor else [])
            r = await self.rest.request("GET", "/v1/portfolio/positions", query=q, retry=True)
            pos = r.get("positions") if isinstance(r, dict) else None
            if isinstance(pos, dict):
                for slug, p in pos.items():
                    if isinstance(p, dict) and p.get("expired"):
                        self._settled.add(str(slug))  # paid by the venue: the settlement books it
                    elif isinstance(p, dict):
                        net = p.get("netPositionDecimal")
                        out[str(slug)] = (decimal_units(net if net not in (None, "") else p.get("netPosition")),
                                          decimal_units(p.get("avgPx")))  # fmt: skip
            nxt = str(r.get("nextCursor") or "") if isinstance(r, dict) else ""
            if not isinstance(r, dict) or r.get("eof", True) or not nxt or nxt == cursor:
                break
            cursor = nxt
        return out

    # ---------------------------------------------------------------- the private stream

    async def _private_loop(self, session: aiohttp.ClientSession) -> None:
        import aiohttp

        backoff = 0.5
        first = True
        url = self.params.ws_url.rstrip("/") + PRIVATE_PATH
        while True:
            connected = False
            try:
                headers = sign_headers(self._key_id, self._secret, "GET", PRIVATE_PATH)
                async with session.ws_connect(url, headers=headers, autoping=False, heartbeat=None,
                                              timeout=aiohttp.ClientWSTimeout(ws_close=2.0)) as ws:  # fmt: skip
                    connected = True
                    self._ws = ws
                    self.private_connects += 1
                    self._last_rx = time.monotonic()
                    n = self.private_connects
                    for typ in ("ORDER", "ORDER_SNAPSHOT", "POSITION", "ACCOUNT_BALANCE"):
                        sub: dict[str, Any] = {"requestId": f"polybot-{typ.lower()}-{n}",
                                               "subscriptionType": "SUBSCRIPTION_TYPE_" + typ}  # fmt: skip
                        if self.params.markets and typ != "ACCOUNT_BALANCE":
                            sub["marketSlugs"] = list(self.params.markets)
                        await ws.send_str(msgspec.json.encode({"subscribe": sub}).decode())
                    backoff = 0.5
                    await self._report([self._notice("private_connected")])
                    self._spawn(self._reconcile, "start" if first else "reconnect")
                    first = False
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._keepalive, ws)
                        async for m in ws:
                            if m.type == aiohttp.WSMsgType.TEXT:
                                await self._on_private_frame(m.data)
                            elif m.type == aiohttp.WSMsgType.BINARY:
                                await self._on_private_frame(m.data.decode("utf-8", "replace"))
                            elif m.type == aiohttp.WSMsgType.PING:
                                self._last_rx = time.monotonic()
                                await ws.pong(m.data)
                            elif m.type == aiohttp.WSMsgType.PONG:
                                self._last_rx = time.monotonic()
                            elif m.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                            aiohttp.WSMsgType.CLOSING):  # fmt: skip
                                break
                        tg.cancel_scope.cancel()
            except* (aiohttp.ClientError, OSError, TimeoutError) as eg:
                exc = eg.exceptions[0]
                status = getattr(exc, "status", 0)
                logger.warning("private stream: {}{}; reconnecting", type(exc).__name__, f" (HTTP {status})" if status else "")
            finally:
                self._ws = None
            await self._report([self._notice("private_disconnected")])
            if first and not connected:  # never connected: reconcile over REST anyway
                first = False
                self._spawn(self._reconcile, "start (private stream down)")
            await anyio.sleep(backoff)
            backoff = min(30.0, backoff * 2)

    async def _keepalive(self, ws: Any) -> None:
        """A ping every ``ws_ping_s``; nothing received (no frame, no pong) for ``ws_silence_s``:
        the socket is half-open, close it (the loop reconnects and reconciles)."""
        step = min(self.params.ws_ping_s, self.params.ws_silence_s / 4)
        last_ping = time.monotonic()
        while True:
            await anyio.sleep(step)
            now = time.monotonic()
            if now - self._last_rx > self.params.ws_silence_s:
                logger.warning("private stream: nothing received for {:g} s: reconnecting", self.params.ws_silence_s)
                await ws.close()
                return
            if now - last_ping >= self.params.ws_ping_s:
                last_ping = now
                await ws.ping()

    async def _on_private_frame(self, text: str) -> None:
        from polybot.kernel import InboundRecord

        self._last_rx = time.monotonic()
        raw = text.encode()
        try:
            obj = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            obj = None
        if isinstance(obj, dict) and "heartbeat" in obj and len(obj) <= 2:
            return  # keepalive: nothing to journal
        assert self._out is not None and self._clock is not None
        if obj is None and raw.strip() != b"null":  # not JSON: journaled as a JSON string
            from polybot.journal import text_frame

            await self._out.send(InboundRecord(self._clock.now(), PRIVATE_SOURCE, text_frame(raw)))
            # it may have been an execution: the venue's state is read again
            logger.warning("private stream: a frame that is not JSON ({} bytes): reconciling", len(raw))
            self._spawn(self._reconcile, "unreadable private frame")
            return
        await self._out.send(InboundRecord(self._clock.now(), PRIVATE_SOURCE, raw))  # journaled (key id aliased)
        if not isinstance(obj, dict):
            return
        try:
            events = self._translate(obj)
        except Exception as exc:  # noqa: BLE001 - a frame we cannot read must not end the executor
            logger.error("private stream: a frame could not be translated ({}: {}); see the journal",
                         type(exc).__name__, str(exc)[:100])  # fmt: skip
            return
        await self._report(events)

    def _translate(self, m: dict[str, Any]) -> list[Event]:
        if m.get("error"):
            logger.warning("private stream error ({}): {}", m.get("subscriptionType", "?"), str(m.get("error"))[:200])
            return [self._notice("private_error", str(m.get("error")))]
        upd = m.get("orderSubscriptionUpdate") or m.get("orderUpdate")
        if isinstance(upd, dict):
            exs = upd.get("executions") if isinstance(upd.get("executions"), list) else [upd.get("execution")]
            out: list[Event] = []
            for ex in exs:
                if isinstance(ex, dict):
                    out.extend(self.on_execution(ex))
            return out
        snap = m.get("orderSubscriptionSnapshot") or m.get("ordersSnapshot")
        if isinstance(snap, dict):
            out = []
            for v in snap.get("orders") or []:
                if isinstance(v, dict) and v.get("id"):
                    vid = str(v["id"])
                    if vid not in self._by_vid:
                        self._buffer(vid, v, None)
            out.extend(self._match_early())
            return out
        bal = m.get("accountBalancesSnapshot") or m.get("accountBalanceSubscriptionSnapshot")
        if isinstance(bal, dict) and isinstance(bal.get("balances"), list) and bal["balances"]:
            self.balance = bal["balances"][0] if isinstance(bal["balances"][0], dict) else {}
        return []

    def on_execution(self, ex: dict[str, Any]) -> list[Event]:
        """Engine events of one execution from the stream (or an answer)."""
        order = ex.get("order") if isinstance(ex.get("order"), dict) else {}
        vid = str(order.get("id") or ex.get("orderId") or "")
        if not vid:
            return []
        cid = self._by_vid.get(vid)
        if cid is None:
            if self._check_late(vid, order):
                return []
            self._buffer(vid, order, ex)  # an answer on its way, an unknown outcome, or another process
            return self._match_early()
        o = self._order(cid)
        if o is None:
            return []
        return self._exec_events(o, ex, vid)

    # ---------------------------------------------------------------- reconciliation

    async def _reconcile(self, why: str) -> None:
        """Bring the kernel to the venue's state: orders, missed fills, positions, balances.
        ``reconciles`` counts the finished ones (what a caller waiting for it needs)."""
        if self._reconcile_waiting:  # one is already waiting for the running one: it covers this
            return
        self._reconcile_waiting = True
        async with self._reconcile_lock:
            self._reconcile_waiting = False
            try:
                await self._reconcile_once(why)
            except HttpError as err:
                logger.error("reconciliation ({}) failed: {}; it runs again after the next reconnect", why, err)
                await self._report([self._notice("reconcile_failed", str(err))])
            finally:
                self.reconciles += 1

    async def _reconcile_once(self, why: str) -> None:
        k = self.kernel
        assert k is not None and self.rest is not None
        summary = {"open": 0, "adopted": 0, "cancelled_unknown": 0, "left_unknown": 0, "found": 0, "closed": 0,
                   "fills": 0, "corrected": 0}  # fmt: skip
        venue_open = await self._open_orders()
        summary["open"] = len(venue_open)
        events: list[Event] = []
        stray: list[tuple[str, str]] = []
        refused: list[str] = []
        settle: list[tuple[Order, str, dict[str, Any]]] = []
        for vid, v in venue_open.items():
            cid = self._by_vid.get(vid)
            if cid is not None:
                o = self._order(cid)
                if o is None or not o.is_open:
                    # closed for the kernel, open at the venue (a late order, a lost cancel):
                    # nobody would watch it rest, so it is cancelled
                    logger.warning("reconciliation: order {} ({}) is closed here but open at the venue: cancelling it",
                                   vid, cid)  # fmt: skip
                    stray.append((vid, str(v.get("marketSlug", ""))))
                    continue
                if o.state in PENDING_STATES:
                    events.append(OrderAccepted(ts=0, **self._common(o, vid)))
                if decimal_units(v.get("cumQuantity")) > self._rep.get(cid, 0):
                    settle.append((o, vid, v))
                continue
            mcid = self._match(vid, v)
            mo = self._order(mcid) if mcid else None
            if mo is not None:
                events.extend(self._found(mo, vid, v))
                summary["found"] += 1
                continue
            if self._check_late(vid, v):
                continue
            policy = self.params.unknown_orders
            if policy == "adopt":
                it = intent_from_venue(v)
                if it is not None:
                    acid = "venue-" + vid
                    self._map(acid, vid)
                    # its fills so far are not ours to count (the venue's positions are)
                    self._rep[acid] = decimal_units(v.get("cumQuantity"))
                    events.append(OrderAdopted(ts=0, client_id=acid, strategy=it.strategy, asset_id=it.asset_id,
                                               venue_order_id=vid, intent=it, filled=self._rep[acid]))  # fmt: skip
                    summary["adopted"] += 1
            elif policy == "cancel":
                stray.append((vid, str(v.get("marketSlug", ""))))
            elif policy == "refuse":
                refused.append(vid)
            else:
                summary["left_unknown"] += 1
        if refused:
            msg = unknown_orders_message(len(refused), refused)
            if not self._unknown_checked:  # the start check could not run: this is it
                logger.critical(msg)
                await self._report([self._notice("unknown_orders_refused", msg)])
                raise UnknownOrdersError(msg)
            logger.error("reconciliation ({}): {} open order(s) at the venue the journal does not know (another "
                         "process on this key?): left alone", why, len(refused))  # fmt: skip
            events.append(self._notice("unknown_orders", f"{len(refused)} unknown open order(s) left: {', '.join(refused[:3])}"))
            summary["left_unknown"] += len(refused)
        self._unknown_checked = True
        await self._report(events)
        for vid, slug in stray:
            if await self._venue_cancel(vid, slug) is None:
                summary["cancelled_unknown"] += 1
        # our orders the venue no longer lists: their final state and fill count
        for o in list(k.orders.open_orders()):
            vid = self._vid.get(o.client_id) or o.venue_order_id
            if not vid or vid in venue_open or parse_asset(o.asset_id) is None or vid.startswith("dry-"):
                continue
            try:
                r = await self.rest.request("GET", f"/v1/order/{vid}", retry=True)
            except HttpError as err:
                if err.status != 404:
                    raise
                await self._report([OrderCancelled(ts=0, reason="venue has no such order", **self._common(o, vid))])
                summary["closed"] += 1
                continue
            v = r.get("order") if isinstance(r, dict) and isinstance(r.get("order"), dict) else r
            if isinstance(v, dict):
                settle.append((o, vid, v))
        # missed fills (attributed to the recent trades), then the final states
        if settle:
            since = min(self._since(o) for o, _, _ in settle)
            trades = await self._trades(since)
            fills = self._missed_fills(settle, trades)
            summary["fills"] = len(fills)
            await self._report(fills)
            for o, vid, v in settle:
                await self._settle(o, vid, v, trades)
                if str(v.get("state", "")) in _TERMINAL_VENUE:
                    summary["closed"] += 1
        if self._unknown:
            self._start_resolver()
        summary["corrected"] = await self._reconcile_positions()
        await self._reconcile_balances()
        detail = ", ".join(f"{k_} {v}" for k_, v in summary.items())
        logger.info("reconciled ({}): {}", why, detail)
        await self._report([self._notice("reconciled", f"{why}: {detail}")])

    async def _kernel_caught_up(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until the kernel has applied every fill this executor reported."""
        k = self.kernel
        assert k is not None
        with anyio.move_on_after(timeout):
            while True:
                self._unapplied = {key for key in self._unapplied if key not in k.fills}
                if not self._unapplied:
                    return
                await anyio.sleep(0.02)
        if self._unapplied:
            logger.warning("{} reported fill(s) not applied by the kernel (refused?): positions compared anyway",
                           len(self._unapplied))  # fmt: skip
            self._unapplied.clear()

    def _position_diffs(self, venue: dict[str, tuple[int, int]]) -> dict[str, tuple[str, int, int, int]]:
        """slug -> (asset, kernel size, corrected size, price) where long - short != net."""
        k = self.kernel
        assert k is not None
        slugs = set(venue)
        for aid, p in k.portfolio.positions.items():
            parsed = parse_asset(aid)
            if parsed is not None and p.size:
                slugs.add(parsed[0])
        out: dict[str, tuple[str, int, int, int]] = {}
        for slug in sorted(slugs):
            info = k.catalog.market(market_id(slug))
            if slug in self._settled or market_id(slug) in k.catalog.resolved or (info is not None and info.closed):
                # closed or settled: no trade moves it any more, the venue pays it and the
                # market's MarketResolved books that (a correction now would book the held
                # shares away at 0, or book back shares already settled)
                continue
            net, avg = venue.get(slug, (0, 0))
            long_id, short_id = asset_ids(slug)
            lng, sht = k.portfolio.size(long_id), k.portfolio.size(short_id)
            diff = net - (lng - sht)
            if not diff:
                continue
            if net > 0 or (net == 0 and lng > sht):  # the long side carries the difference
                out[slug] = (long_id, lng, lng + diff, avg)
            else:
                out[slug] = (short_id, sht, sht - diff, SCALE - avg if avg else 0)
        return out

    async def _reconcile_positions(self) -> int:
        """The venue's net per market vs the kernel's long - short, after the kernel has applied
        every fill reported; a difference must show in two reads (a fill racing the first)."""
        await self._kernel_caught_up()
        first = self._position_diffs(await self._positions())
        if not first:
            return 0
        await anyio.sleep(0.2)
        await self._kernel_caught_up()
        venue = await self._positions()
        second = self._position_diffs(venue)
        events: list[Event] = []
        for slug, (aid, old, new, px) in sorted(second.items()):
            if slug not in first or first[slug][0] != aid:
                continue
            events.append(PositionCorrected(ts=0, asset_id=aid, market=market_id(slug), old_size=old, new_size=new,
                                            price=px, reason=f"Polymarket US net position {from_units(venue.get(slug, (0, 0))[0])}"))  # fmt: skip
        await self._report(events)
        return len(events)

    async def _reconcile_balances(self) -> None:
        assert self.rest is not None
        try:
            r = await self.rest.request("GET", "/v1/account/balances", retry=True)
        except HttpError as err:
            logger.warning("balances: {}", err)
            return
        bals = r.get("balances") if isinstance(r, dict) else None
        if isinstance(bals, list) and bals and isinstance(bals[0], dict):
            self.balance = bals[0]
            b = bals[0]
            detail = ", ".join(f"{f} {b[f]}" for f in ("currentBalance", "buyingPower", "openOrders", "currency") if f in b)
            logger.info("Polymarket US balance: {}", detail)
            await self._report([self._notice("balance", detail)])
