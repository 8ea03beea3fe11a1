"""A local simulator of the Polymarket US API (api.polymarket.us / gateway.polymarket.us), offline.

One aiohttp server on 127.0.0.1 (ephemeral port by default) serves both the public gateway and the
authenticated API, with every path and message shape of the official SDK ``polymarket-us`` 2.4.1
(camelCase JSON, enums as strings, amounts ``{"value": "0.55", "currency": "USD"}``):

* **Public** (no auth): ``GET /v1/markets`` (``id``, ``slug``, ``eventSlug`` repeated, ``active``,
  ``closed``, ``limit``, ``offset``), ``/v1/market/slug/{slug}``, ``/v1/market/id/{id}``,
  ``/v1/markets/{slug}/book`` and ``/bbo`` (``{"marketData": ...}``), ``/v1/markets/{slug}/settlement``
  (404 until resolved), ``/v1/events`` (``slug``, ``id``, ``active``, ``closed``, ``limit``,
  ``offset``; markets nested), ``/v1/events/slug/{slug}``, ``/v1/events/{id}``, ``/v1/series``,
  ``/v1/sports``. An unknown slug or id answers 404 ``{"message": ...}``.
* **Authenticated** (``X-PM-Access-Key`` / ``X-PM-Timestamp`` / ``X-PM-Signature``, verified with
  :func:`.auth.verify` against :attr:`UsSimConfig.keys`; the message is timestamp + METHOD + path
  without the query; 401 ``{"message": reason}`` otherwise): ``POST /v1/orders``,
  ``/v1/orders/batched`` (up to 20: ``{"createdOrderIds"}``), ``GET /v1/orders/open`` (``slugs``),
  ``GET /v1/order/{id}`` (closed orders too), ``POST /v1/order/{id}/cancel`` (``{"marketSlug"}``),
  ``POST /v1/orders/open/cancel`` (``{"slugs"}``: ``{"canceledOrderIds"}``),
  ``POST /v1/orders/batched/cancel`` (echoes the ids, like the venue), ``GET /v1/portfolio/positions``,
  ``GET /v1/portfolio/activities`` (``marketSlug``, ``types``, ``sortOrder``, ``limit``, ``cursor``),
  ``GET /v1/account/balances``. A bad body answers 400 with a message naming the field.
* **WebSockets** ``/v1/ws/markets`` and ``/v1/ws/private``: the handshake is signed like a
  ``GET`` of that path (a bad one is refused with HTTP 401 before the upgrade). Clients send
  ``{"subscribe": {"requestId", "subscriptionType", "marketSlugs"}}`` and
  ``{"unsubscribe": {"requestId"}}``. Markets: ``SUBSCRIPTION_TYPE_MARKET_DATA`` (a full book
  ``marketData`` at once and after every change of the market), ``..._MARKET_DATA_LITE``
  (``marketDataLite`` at once and whenever the top or the last trade changes),
  ``..._TRADE`` (``trade`` for every trade, the walk's and ours; its ``quantity`` is an amount
object, as the SDK's ``_TradePayload`` types it). Private: ``..._ORDER``
  (``orderSubscriptionUpdate.execution`` per execution, updates only), ``..._ORDER_SNAPSHOT``
  (``orderSubscriptionSnapshot`` of the open orders, ``eof: true``), ``..._POSITION``
  (``positionSubscription`` per change), ``..._ACCOUNT_BALANCE`` (``accountBalancesSnapshot`` then
  ``accountBalancesUpdate.balanceChange`` whenever the balance or buying power changes). Errors
  (unknown slug or type, invalid JSON) are ``{"requestId", "error", "subscriptionType"}`` frames;
  the socket stays up. ``{"heartbeat": {}}`` every ``heartbeat_s`` on both sockets.

**Markets.** A seeded random walk of binary markets (slugs ``us-sim-market-{i}``, events
``us-sim-event-{i}``, ids ``i + 1``; or explicit ``slugs``, each its own event of the same slug).
Each keeps ONE book in YES (long) terms, integer 6-decimal units, tick 0.01, whole-share sizes.
:meth:`UsSimServer.step` advances it without waiting (tests: ``autostart=False``); the same seed
and the same calls give the same frames and ids (timestamps follow :attr:`UsSimServer.now_ms`).
Market objects carry ``marketSides`` ([long, short]), ``state``, ``startDate``/``endDate`` and two
fields the SDK types are silent about, named here by our assumption: ``orderPriceMinTickSize``
(0.01) and ``minimumTradeQty`` (1).

**Matching** (one instrument per market, YES-side prices). ``BUY_LONG`` and ``SELL_SHORT`` are
bids at YES price p; ``SELL_LONG`` and ``BUY_SHORT`` are offers at YES price p (a short buy at p
costs 1 - p per share of collateral and moves the net position DOWN). An order first takes
liquidity from the walk's book, at the walk's prices (price improvement goes to the taker), then:
IOC keeps the fill and EXPIRES the rest, FOK fills whole or EXPIRES without a fill, GTC / GTD /
DAY rest (DAY never expires here; GTD at ``goodTillTime``). ``participateDontInitiate`` (post-only)
that would cross is REJECTED (HTTP 200, one ``EXECUTION_TYPE_REJECTED``). Market orders
(``ORDER_TYPE_MARKET``, no price needed) are IOC at the 0.01 / 0.99 limit. **Resting orders are
kept by the exchange and not drawn into the public book**; they fill as MAKER at their own price
when a walk event crosses them (the crossing walk level is consumed) or when :meth:`trade` prints
through them. Our orders never match each other. Executions: ``NEW`` on acceptance, then
``PARTIAL_FILL`` / ``FILL`` (``lastShares``, ``lastPx`` YES-side, unique ``tradeId``, ``aggressor``,
``commissionNotionalCollected``: ``taker_fee_bps`` of the fee notional for takers, minus
``maker_rebate_bps`` of it for makers, as the venue's fee schedule says), then
``CANCELED`` / ``EXPIRED``; every execution carries the order as it is after it. Order ``side``
is the book side (``ORDER_SIDE_BUY`` for bids), ``quantity``/``cumQuantity``/``leavesQuantity`` are
JSON numbers (integers for whole shares) as in the SDK's ``Order`` type.

**Account.** One account for every key: cash (``cash``, USD) and a signed net position per market.
Buying YES when short closes the short first (the NO collateral 1 - p comes back), selling YES when
long closes the long first. Entry checks: a buy needs buying power (cash minus what open buy orders
reserve) for quantity x limit (x (1 - limit) for ``BUY_SHORT``) plus the taker fee; ``SELL_LONG`` /
``SELL_SHORT`` need that much long / short position not already offered. Balances are floats as in
the SDK's ``UserBalance``; positions ``netPosition`` a decimal string (negative = short), ``cost``
the basis of the held side, ``avgPx`` YES-side. :meth:`resolve` closes a market (state
``MARKET_STATE_CLOSED``, settlement 1 or 0), cancels its open orders and pays the winners.

**Faults** (:meth:`UsSimServer.fault`): the next n ``POST /v1/orders`` ``timeout`` (placed, the
answer held 60 s or until close), ``error_500`` (placed, 500), ``reject_500`` (not placed, 500),
``drop`` (placed, connection closed without answer); ``ws_markets_malformed`` /
``ws_private_malformed`` (the next frame on that socket kind is invalid JSON).
:meth:`UsSimServer.drop_connections` aborts every WebSocket. :attr:`UsSimServer.requests` logs
``(method, path, status)`` of every REST request (status 0: no answer was given).

The demo key pair (:data:`DEMO_KEY_ID`, :data:`DEMO_SECRET_KEY`, :data:`DEMO_PUBLIC_KEY`) is public
and for the OFFLINE demo only: it is worthless anywhere but this simulator.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import WSMsgType, web
from loguru import logger

from polybot.units import ONE, from_units, notional, notional_up, to_units

from . import auth

__all__ = ["DEMO_KEY_ID", "DEMO_PUBLIC_KEY", "DEMO_SECRET_KEY", "UsSimConfig", "UsSimServer"]

#: the offline demo's API key (public on purpose: it only opens this simulator)
DEMO_KEY_ID = "us-sim-demo-key"
DEMO_SECRET_KEY = "1laYoprPz+Lm216GzlJd9PReWsRuyHOK/zmCz+nHVbE="
DEMO_PUBLIC_KEY = "7JJEON8rWO2pIXA821yt/0Kx3xLXLVn0RYKCPgX0mN0="

TICK = 10_000  # 0.01 in units
MIN_QTY = ONE  # minimumTradeQty 1
LEVELS = 10
WS_MARKETS = "/v1/ws/markets"
WS_PRIVATE = "/v1/ws/private"
MAX_BATCH = 20

OPEN = "MARKET_STATE_OPEN"
CLOSED = "MARKET_STATE_CLOSED"
MARKET_STATES = frozenset({
    "MARKET_STATE_CLOSED", "MARKET_STATE_OPEN", "MARKET_STATE_PREOPEN", "MARKET_STATE_SUSPENDED",
    "MARKET_STATE_HALTED", "MARKET_STATE_EXPIRED", "MARKET_STATE_TERMINATED",
    "MARKET_STATE_MATCH_AND_CLOSE_AUCTION",
})  # fmt: skip

BUY_LONG, SELL_LONG = "ORDER_INTENT_BUY_LONG", "ORDER_INTENT_SELL_LONG"
BUY_SHORT, SELL_SHORT = "ORDER_INTENT_BUY_SHORT", "ORDER_INTENT_SELL_SHORT"
INTENTS = (BUY_LONG, SELL_LONG, BUY_SHORT, SELL_SHORT)
BID_INTENTS = frozenset({BUY_LONG, SELL_SHORT})
LIMIT, MARKET = "ORDER_TYPE_LIMIT", "ORDER_TYPE_MARKET"
GTC, GTD = "TIME_IN_FORCE_GOOD_TILL_CANCEL", "TIME_IN_FORCE_GOOD_TILL_DATE"
IOC, FOK = "TIME_IN_FORCE_IMMEDIATE_OR_CANCEL", "TIME_IN_FORCE_FILL_OR_KILL"
DAY = "TIME_IN_FORCE_DAY"  # not in the SDK's Literal; accepted (rests like GTC)
TIFS = (GTC, GTD, IOC, FOK, DAY)

S_NEW, S_PARTIAL, S_FILLED = "ORDER_STATE_NEW", "ORDER_STATE_PARTIALLY_FILLED", "ORDER_STATE_FILLED"
S_CANCELED, S_REJECTED, S_EXPIRED = "ORDER_STATE_CANCELED", "ORDER_STATE_REJECTED", "ORDER_STATE_EXPIRED"
LIVE_STATES = frozenset({S_NEW, S_PARTIAL})

MD, MD_LITE, TRADE = "SUBSCRIPTION_TYPE_MARKET_DATA", "SUBSCRIPTION_TYPE_MARKET_DATA_LITE", "SUBSCRIPTION_TYPE_TRADE"
ORDER, ORDER_SNAP = "SUBSCRIPTION_TYPE_ORDER", "SUBSCRIPTION_TYPE_ORDER_SNAPSHOT"
POSITION, BALANCE = "SUBSCRIPTION_TYPE_POSITION", "SUBSCRIPTION_TYPE_ACCOUNT_BALANCE"
MARKET_SUBS = frozenset({MD, MD_LITE, TRADE})
PRIVATE_SUBS = frozenset({ORDER, ORDER_SNAP, POSITION, BALANCE})

ORDER_FAULTS = frozenset({"timeout", "error_500", "reject_500", "drop"})
WS_FAULTS = frozenset({"ws_markets_malformed", "ws_private_malformed"})
TIMEOUT_HOLD_S = 60.0
_LOGGED = web.RequestKey("pmus_sim_logged", bool)  # the handler logged the request itself


class UsSimConfig(msgspec.Struct, kw_only=True):
    """Simulator settings (see the module docstring)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = ephemeral
    seed: int = 1
    markets: int = 2  # random-walk binary markets us-sim-market-{i} (ignored when slugs are given)
    slugs: list[str] = []  # explicit market slugs instead (same walk)
    titles: list[str] = []  # optional titles, same order
    sides: list[list[str]] = []  # optional [long side, short side] descriptions per market
    rate: float = 20.0  # walk events per second while running (autostart)
    autostart: bool = True
    keys: dict[str, str] = {}  # API key id -> base64 Ed25519 public key
    heartbeat_s: float = 5.0  # WS heartbeat period (<= 0: none)
    taker_fee_bps: int = 0  # commission on taker fills, bps of the fee notional (the venue: 30)
    maker_rebate_bps: int = 0  # rebate on maker fills (a negative commission; the venue: 20)
    cash: str = "10000"  # starting balance (USD)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be within [0, 65535]")
        n = len(self.slugs) if self.slugs else self.markets
        if n < 0 or n > 1000:
            raise ValueError("markets must be within [0, 1000]")
        if len(set(self.slugs)) != len(self.slugs) or any(not isinstance(s, str) or not s.strip() for s in self.slugs):
            raise ValueError("slugs must be distinct non-empty strings")
        if len(self.titles) > n:
            raise ValueError("more titles than markets")
        if len(self.sides) > n or any(len(s) != 2 or not all(isinstance(x, str) and x for x in s) for s in self.sides):
            raise ValueError("sides: one [long, short] pair of non-empty names per market")
        if not self.rate >= 0:
            raise ValueError("rate must be >= 0")
        if not 0 <= self.taker_fee_bps <= 10_000:
            raise ValueError("taker_fee_bps must be within [0, 10000]")
        if not 0 <= self.maker_rebate_bps <= 10_000:
            raise ValueError("maker_rebate_bps must be within [0, 10000]")
        if to_units(str(self.cash)) < 0:
            raise ValueError("cash must be >= 0")
        for k, v in self.keys.items():
            _check_public_key(k, v)


def _check_public_key(key_id: str, public_key_b64: str) -> None:
    import base64
    import binascii

    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"key {key_id!r}: public key is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"key {key_id!r}: an Ed25519 public key has 32 bytes, not {len(raw)}")


# ---------------------------------------------------------------------------------------------
# wire helpers


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _iso(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _parse_iso_ms(text: str) -> int:
    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _amt(v: int) -> dict[str, str]:
    return {"value": from_units(v, 2), "currency": "USD"}


def _num(v: int) -> int | float:
    """Quantity as the SDK's ``Order`` carries it: an integer for whole shares."""
    return v // ONE if v % ONE == 0 else float(from_units(v))


def _usd(v: int) -> float:
    return float(from_units(v))


def _div_round(a: int, b: int) -> int:
    return (2 * a + b) // (2 * b)


def _fee(qty: int, px: int, bps: int) -> int:
    """An upper bound of a fill's fee (reservations and fund checks): bps of qty x px, rounded up."""
    return -((-qty * px * bps) // (ONE * 10_000)) if bps else 0


def _commission(qty: int, px: int, bps: int, buys_yes: bool) -> int:
    """The venue's fee (or rebate) of a fill (docs.polymarket.us "Fees"): bps of the fee notional,
    contracts x price for a buyer and contracts x (1 - price) for a seller, rounded to the cent,
    half to even. In YES terms: an order that buys YES (BUY_LONG, SELL_SHORT) is the buyer at
    ``px``; one that sells YES (SELL_LONG, BUY_SHORT: buying NO at 1 - px) pays on 1 - px."""
    if not bps:
        return 0
    notional = qty * (px if buys_yes else ONE - px)  # 10**-12 USD
    den = ONE * ONE * 100  # notional x bps / 10**4 in 10**-12 USD, over 10**10 -> cents
    q, r = divmod(notional * bps, den)
    if 2 * r > den or (2 * r == den and q % 2):
        q += 1
    return q * 10_000


class BadRequest(Exception):
    """A 400 (or other status) answer with a message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# ---------------------------------------------------------------------------------------------
# state


class _Mkt:
    def __init__(self, idx: int, slug: str, event_slug: str, title: str, long: str, short: str) -> None:
        self.idx = idx
        self.id = idx + 1
        self.slug = slug
        self.event_slug = event_slug
        self.title = title
        self.long = long
        self.short = short
        self.bids: dict[int, int] = {}
        self.offers: dict[int, int] = {}
        self.state = OPEN
        self.ltp: int | None = None
        self.high: int | None = None
        self.low: int | None = None
        self.traded = 0
        self.settlement: int | None = None
        self.transact_ms = 0
        self.last_lite: tuple[Any, ...] | None = None

    def top(self) -> tuple[int | None, int | None]:
        return (max(self.bids) if self.bids else None, min(self.offers) if self.offers else None)


class _Order:
    __slots__ = ("id", "seq", "slug", "intent", "type", "price", "qty", "cum", "notional", "tif", "gtt_ms",
                 "post_only", "state", "create_ms", "fees")  # fmt: skip

    def __init__(self, oid: str, seq: int, slug: str, intent: str, otype: str, price: int, qty: int, tif: str,
                 gtt_ms: int | None, post_only: bool, create_ms: int) -> None:  # fmt: skip
        self.id = oid
        self.seq = seq
        self.slug = slug
        self.intent = intent
        self.type = otype
        self.price = price  # YES-side limit (units)
        self.qty = qty
        self.cum = 0
        self.notional = 0  # sum of px * qty (units^2)
        self.tif = tif
        self.gtt_ms = gtt_ms
        self.post_only = post_only
        self.state = S_NEW
        self.create_ms = create_ms
        self.fees = 0

    @property
    def is_bid(self) -> bool:
        return self.intent in BID_INTENTS

    @property
    def leaves(self) -> int:
        return self.qty - self.cum if self.state in LIVE_STATES else 0

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


class _Pos:
    __slots__ = ("net", "bought", "sold", "cost", "realized", "fees", "update_ms", "expired")

    def __init__(self) -> None:
        self.net = 0
        self.bought = 0
        self.sold = 0
        self.cost = 0  # basis of the held side (YES shares when long, NO shares when short)
        self.realized = 0
        self.fees = 0
        self.update_ms = 0
        self.expired = False


class _Sub:
    __slots__ = ("rid", "type", "slugs")

    def __init__(self, rid: str, stype: str, slugs: set[str] | None) -> None:
        self.rid = rid
        self.type = stype
        self.slugs = slugs  # None: every market

    def covers(self, slug: str | None) -> bool:
        return self.slugs is None or slug is None or slug in self.slugs


class _Conn:
    __slots__ = ("ws", "transport", "kind", "subs", "queue", "tasks", "closed")

    def __init__(self, ws: web.WebSocketResponse, transport: Any, kind: str) -> None:
        self.ws = ws
        self.transport = transport
        self.kind = kind  # "markets" | "private"
        self.subs: dict[str, _Sub] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False


# ---------------------------------------------------------------------------------------------
# the server


class UsSimServer:
    """The Polymarket US simulator. ``await start()`` (or ``async with``), then use :attr:`url`
    and :attr:`ws_url`."""

    def __init__(self, cfg: UsSimConfig | None = None, **kw: Any) -> None:
        base = cfg or UsSimConfig()
        self.cfg = msgspec.structs.replace(base, **kw) if kw else base
        if kw:
            self.cfg.__post_init__()
        c = self.cfg
        self._rng = random.Random(f"polybot-us-sim/{c.seed}/walk")
        self._ids = random.Random(f"polybot-us-sim/{c.seed}/ids")
        self._trng = random.Random(f"polybot-us-sim/{c.seed}/timing")
        self._keys: dict[str, str] = dict(c.keys)
        self.now_ms: Callable[[], int] | None = None
        self.requests: list[tuple[str, str, int]] = []
        self._markets: list[_Mkt] = []
        self._by_slug: dict[str, _Mkt] = {}
        self._orders: dict[str, _Order] = {}
        self._seq = 0
        self._cash = to_units(str(c.cash))
        self._pos: dict[str, _Pos] = {}
        self._activities: list[dict[str, Any]] = []
        self._conns: set[_Conn] = set()
        self._order_faults: list[str] = []
        self._ws_malformed = {"markets": 0, "private": 0}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._created_ms = int(time.time() * 1000)
        n = len(c.slugs) if c.slugs else c.markets
        for i in range(n):
            self._new_market(i)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("UsSimServer already started")
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get(WS_MARKETS, self._ws_markets)
        r.add_get(WS_PRIVATE, self._ws_private)
        r.add_get("/v1/markets", self._h_markets)
        r.add_get("/v1/market/slug/{slug}", self._h_market_slug)
        r.add_get("/v1/market/id/{id}", self._h_market_id)
        r.add_get("/v1/markets/{slug}/book", self._h_book)
        r.add_get("/v1/markets/{slug}/bbo", self._h_bbo)
        r.add_get("/v1/markets/{slug}/settlement", self._h_settlement)
        r.add_get("/v1/events", self._h_events)
        r.add_get("/v1/events/slug/{slug}", self._h_event_slug)
        r.add_get("/v1/events/{id}", self._h_event_id)
        r.add_get("/v1/series", self._h_series)
        r.add_get("/v1/sports", self._h_sports)
        r.add_post("/v1/orders", self._h_create)
        r.add_post("/v1/orders/batched", self._h_create_batch)
        r.add_post("/v1/orders/batched/cancel", self._h_cancel_batch)
        r.add_get("/v1/orders/open", self._h_open_orders)
        r.add_post("/v1/orders/open/cancel", self._h_cancel_all)
        r.add_get("/v1/order/{id}", self._h_order)
        r.add_post("/v1/order/{id}/cancel", self._h_cancel)
        r.add_get("/v1/portfolio/positions", self._h_positions)
        r.add_get("/v1/portfolio/activities", self._h_activities)
        r.add_get("/v1/account/balances", self._h_balances)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        if self.cfg.autostart and self.cfg.rate > 0:
            self._task = asyncio.get_running_loop().create_task(self._walk_loop())
        logger.info("polymarket-us sim listening on {} ({} markets)", self.url, len(self._markets))

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None
        for c in list(self._conns):
            self._abort(c)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> UsSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("UsSimServer not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}"

    def _now(self) -> int:
        return int(self.now_ms()) if self.now_ms is not None else int(time.time() * 1000)

    # -- public control --------------------------------------------------------------------

    def add_key(self, key_id: str, public_key_b64: str) -> None:
        _check_public_key(key_id, public_key_b64)
        self._keys[key_id] = public_key_b64

    @property
    def slugs(self) -> list[str]:
        return [m.slug for m in self._markets]

    def step(self, n: int = 1) -> None:
        """Advance the walk ``n`` events now, publishing to subscribers."""
        for _ in range(n):
            self._walk_event()

    def book(self, slug: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        m = self._market(slug)
        return (sorted(m.bids.items(), reverse=True), sorted(m.offers.items()))

    def set_state(self, slug: str, state: str) -> None:
        m = self._market(slug)
        if state not in MARKET_STATES:
            raise ValueError(f"unknown market state {state!r}")
        m.state = state
        m.transact_ms = self._now()
        self._publish_book(m)

    def resolve(self, slug: str, long_wins: bool) -> None:
        m = self._market(slug)
        now = self._now()
        bal0 = self._bal_key()
        for o in sorted(self._orders.values(), key=lambda o: o.seq):
            if o.slug == slug and o.live:
                self._end_order(o, S_CANCELED, "market resolved")
        m.state = CLOSED
        m.settlement = ONE if long_wins else 0
        m.bids.clear()
        m.offers.clear()
        m.transact_ms = now
        p = self._pos.get(slug)
        if p is not None and p.net:
            before_pos = self._pos_wire(m, p)
            held = abs(p.net)
            wins = (p.net > 0) == long_wins
            payout = held if wins else 0
            self._cash += payout
            p.realized += payout - p.cost
            p.cost = 0
            p.net = 0
            p.expired = True
            p.update_ms = now
            tid = self._uuid()
            after = self._pos_wire(m, p)
            self._activities.append({"type": "ACTIVITY_TYPE_POSITION_RESOLUTION", "_slug": slug, "_ms": now,
                                     "positionResolution": {"marketSlug": slug, "beforePosition": before_pos,
                                                            "afterPosition": after, "updateTime": _iso(now),
                                                            "tradeId": tid,
                                                            "side": "LONG" if long_wins else "SHORT"}})  # fmt: skip
            self._publish_position(m, before_pos, after, "ENTRY_TYPE_RESOLUTION", tid, "")
        self._publish_balance(bal0, "ENTRY_TYPE_RESOLUTION", f"settlement of {slug}")
        self._publish_book(m)

    def trade(self, slug: str, price: str, qty: str, aggressor_buys: bool = True) -> None:
        """A third-party trade print at YES price ``price`` for ``qty``: our resting offers at or
        below it (an aggressive buy) or bids at or above it (a sell) fill as makers at their own
        prices, price-time priority, up to ``qty``; the rest prints at ``price``."""
        m = self._market(slug)
        px, left = to_units(price), to_units(qty)
        if not 0 < px < ONE or left <= 0:
            raise ValueError("price must be within (0, 1) and qty > 0")
        ours = [o for o in self._orders.values() if o.slug == slug and o.live and o.is_bid != aggressor_buys
                and (o.price <= px if aggressor_buys else o.price >= px)]  # fmt: skip
        ours.sort(key=lambda o: (o.price if aggressor_buys else -o.price, o.seq))
        for o in ours:
            if left <= 0:
                break
            q = min(o.leaves, left)
            self._fill(o, q, o.price, aggressor=False)
            left -= q
        if left > 0:
            self._print(m, px, left, aggressor_buys, None)
        m.transact_ms = self._now()
        self._publish_book(m)

    def drop_connections(self) -> None:
        for c in list(self._conns):
            self._abort(c)

    def fault(self, kind: str, n: int = 1) -> None:
        if kind in ORDER_FAULTS:
            self._order_faults.extend([kind] * max(0, int(n)))
        elif kind in WS_FAULTS:
            self._ws_malformed["markets" if kind == "ws_markets_malformed" else "private"] += max(0, int(n))
        else:
            raise ValueError(f"unknown fault {kind!r} (one of {sorted(ORDER_FAULTS | WS_FAULTS)})")

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        """Every order by venue id, wire-shaped."""
        return {o.id: self._order_wire(o) for o in sorted(self._orders.values(), key=lambda o: o.seq)}

    def position(self, slug: str) -> int:
        p = self._pos.get(slug)
        return p.net if p is not None else 0

    def balance(self) -> int:
        return self._cash

    # -- markets ---------------------------------------------------------------------------

    def _new_market(self, i: int) -> None:
        c, rng = self.cfg, self._rng
        if c.slugs:
            slug = c.slugs[i]
            event = slug
            title = c.titles[i] if i < len(c.titles) else slug
        else:
            slug, event = f"us-sim-market-{i}", f"us-sim-event-{i}"
            title = c.titles[i] if i < len(c.titles) else f"US sim market {i}: will the random walk close above 0.5?"
        long, short = (c.sides[i][0], c.sides[i][1]) if i < len(c.sides) else ("Yes", "No")
        m = _Mkt(i, slug, event, title, long, short)
        bb = rng.randint(30, 70) * TICK
        ba = bb + TICK * rng.choice((1, 1, 2))
        p = bb
        for depth in range(LEVELS):
            if p < TICK:
                break
            m.bids[p] = self._rand_size(depth)
            p -= TICK * (2 if rng.random() < 0.15 else 1)
        p = ba
        for depth in range(LEVELS):
            if p > ONE - TICK:
                break
            m.offers[p] = self._rand_size(depth)
            p += TICK * (2 if rng.random() < 0.15 else 1)
        self._markets.append(m)
        self._by_slug[slug] = m

    def _rand_size(self, depth: int = 0) -> int:
        return self._rng.randint(1, 20 + 10 * depth) * 10 * ONE

    def _market(self, slug: str) -> _Mkt:
        m = self._by_slug.get(slug)
        if m is None:
            raise KeyError(f"unknown market slug {slug!r}")
        return m

    # -- the walk --------------------------------------------------------------------------

    async def _walk_loop(self) -> None:
        rate = self.cfg.rate
        while True:
            await asyncio.sleep(self._trng.expovariate(rate))
            try:
                self._walk_event()
            except Exception:  # noqa: BLE001 - a bug in one event must not stop the demo
                logger.exception("polymarket-us sim: walk event failed")

    def _walk_event(self) -> None:
        self._expire()
        active = [m for m in self._markets if m.state == OPEN]
        if not active:
            return
        rng = self._rng
        m = active[rng.randrange(len(active))]
        r = rng.random()
        if r < 0.08:
            self._walk_trade(m)
        elif r < 0.40:
            self._walk_move(m)
        elif r < 0.85:
            side = m.bids if rng.random() < 0.5 else m.offers
            near = sorted(side, reverse=side is m.bids)[:5]
            if near:
                p = near[min(int(rng.expovariate(0.6)), len(near) - 1)]
                side[p] = self._rand_size()
        else:
            self._walk_deep(m, m.bids if rng.random() < 0.5 else m.offers)
        self._refill(m)
        m.transact_ms = self._now()
        self._cross_resting(m)
        self._publish_book(m)

    def _walk_trade(self, m: _Mkt) -> None:
        buy = self._rng.random() < 0.5
        side = m.offers if buy else m.bids
        if len(side) <= 3:
            return
        p = min(side) if buy else max(side)
        q = min(side[p], self._rng.randint(1, 20) * ONE)
        side[p] -= q
        if side[p] <= 0:
            del side[p]
        self._print(m, p, q, buy, None)

    def _walk_move(self, m: _Mkt) -> None:
        rng = self._rng
        bb, ba = m.top()
        if bb is None or ba is None:
            return
        mid = (bb + ba) / 2 / ONE
        up = rng.random() < min(0.85, max(0.15, 0.5 + 0.5 * (0.5 - mid)))
        gap = (ba - bb) // TICK
        if up and gap > 1:
            m.bids[bb + TICK * rng.randint(1, min(2, gap - 1))] = self._rand_size()
        elif up and len(m.offers) > 3 and ba < ONE - 3 * TICK:
            del m.offers[ba]
        elif not up and gap > 1:
            m.offers[ba - TICK * rng.randint(1, min(2, gap - 1))] = self._rand_size()
        elif not up and len(m.bids) > 3 and bb > 3 * TICK:
            del m.bids[bb]

    def _walk_deep(self, m: _Mkt, side: dict[int, int]) -> None:
        if len(side) > LEVELS + 4:
            del side[min(side) if side is m.bids else max(side)]
            return
        if side is m.bids:
            p = (min(side) if side else (m.top()[1] or ONE // 2)) - TICK * self._rng.randint(1, 2)
            if p >= TICK:
                side[p] = self._rand_size(LEVELS // 2)
        else:
            p = (max(side) if side else (m.top()[0] or ONE // 2)) + TICK * self._rng.randint(1, 2)
            if p <= ONE - TICK:
                side[p] = self._rand_size(LEVELS // 2)

    def _refill(self, m: _Mkt) -> None:
        """Keep at least three levels a side (deeper than the worst), never crossing."""
        for side in (m.bids, m.offers):
            for _ in range(3):
                if len(side) >= 3:
                    break
                if side is m.bids:
                    worst = min(side) if side else (min(m.offers) if m.offers else ONE // 2)
                    p = worst - TICK
                    if p < TICK:
                        break
                else:
                    worst = max(side) if side else (max(m.bids) if m.bids else ONE // 2)
                    p = worst + TICK
                    if p > ONE - TICK:
                        break
                side[p] = self._rand_size(3)

    def _cross_resting(self, m: _Mkt) -> None:
        """Our resting orders the walk's book now crosses fill as makers at their own prices,
        consuming the crossing walk levels."""
        mine = [o for o in self._orders.values() if o.slug == m.slug and o.live and o.tif not in (IOC, FOK)]
        if not mine:
            return
        for bid in (True, False):
            hit = sorted((o for o in mine if o.is_bid == bid), key=lambda o: (-o.price if bid else o.price, o.seq))
            for o in hit:
                book = m.offers if bid else m.bids
                while o.live and book:
                    top = min(book) if bid else max(book)
                    if (top > o.price) if bid else (top < o.price):
                        break
                    q = min(o.leaves, book[top])
                    book[top] -= q
                    if book[top] <= 0:
                        del book[top]
                    self._fill(o, q, o.price, aggressor=False)
        self._refill(m)

    # -- orders ----------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _validate(self, body: Any, where: str = "") -> dict[str, Any]:
        """The checked fields of a CreateOrderParams body (BadRequest naming the field)."""
        if not isinstance(body, dict):
            raise BadRequest(f"{where or 'body'}: must be a JSON object")
        f = where

        def name(x: str) -> str:
            return f"{f}.{x}" if f else x

        slug = body.get("marketSlug")
        if not isinstance(slug, str) or not slug:
            raise BadRequest(f"{name('marketSlug')}: required")
        m = self._by_slug.get(slug)
        if m is None:
            raise BadRequest(f"{name('marketSlug')}: unknown market {slug!r}")
        intent = body.get("intent")
        if intent not in INTENTS:
            raise BadRequest(f"{name('intent')}: must be one of {', '.join(INTENTS)}")
        otype = body.get("type", LIMIT)
        if otype not in (LIMIT, MARKET):
            raise BadRequest(f"{name('type')}: must be {LIMIT} or {MARKET}")
        tif = body.get("tif", GTC if otype == LIMIT else IOC)
        if tif not in TIFS:
            raise BadRequest(f"{name('tif')}: must be one of {', '.join(TIFS)}")
        if otype == MARKET and tif not in (IOC, FOK):
            raise BadRequest(f"{name('tif')}: a market order is IOC or FOK")
        bid = intent in BID_INTENTS
        raw_price = body.get("price")
        if otype == LIMIT or raw_price is not None:
            price = self._parse_price(raw_price, name("price"))
        else:
            price = ONE - TICK if bid else TICK
        if otype == MARKET:
            price = ONE - TICK if bid else TICK  # the SDK's market price is a reference only
        qty = self._parse_qty(body.get("quantity"), name("quantity"))
        post_only = body.get("participateDontInitiate", False)
        if not isinstance(post_only, bool):
            raise BadRequest(f"{name('participateDontInitiate')}: must be a boolean")
        gtt_ms: int | None = None
        if tif == GTD:
            gtt = body.get("goodTillTime")
            if not isinstance(gtt, str) or not gtt:
                raise BadRequest(f"{name('goodTillTime')}: required with {GTD}")
            try:
                gtt_ms = _parse_iso_ms(gtt)
            except ValueError:
                raise BadRequest(f"{name('goodTillTime')}: not an ISO 8601 time: {gtt!r}") from None
            if gtt_ms <= self._now():
                raise BadRequest(f"{name('goodTillTime')}: in the past")
        return {"m": m, "intent": intent, "type": otype, "tif": tif, "price": price, "qty": qty,
                "post_only": post_only, "gtt_ms": gtt_ms}  # fmt: skip

    @staticmethod
    def _parse_price(raw: Any, field: str) -> int:
        v = raw.get("value") if isinstance(raw, dict) else raw
        if isinstance(raw, dict) and raw.get("currency", "USD") != "USD":
            raise BadRequest(f"{field}.currency: must be USD")
        if isinstance(v, bool) or v is None:
            raise BadRequest(f"{field}: required, as {{\"value\": \"0.55\", \"currency\": \"USD\"}}")
        try:
            p = to_units(repr(v) if isinstance(v, float) else str(v))
        except ValueError:
            raise BadRequest(f"{field}: not a decimal price: {v!r}") from None
        if not 0 < p < ONE:
            raise BadRequest(f"{field}: must be within (0, 1), got {from_units(p)}")
        if p % TICK:
            raise BadRequest(f"{field}: {from_units(p)} is not on the 0.01 tick")
        return p

    @staticmethod
    def _parse_qty(raw: Any, field: str) -> int:
        if isinstance(raw, bool) or raw is None:
            raise BadRequest(f"{field}: required, a number of shares")
        try:
            q = to_units(repr(raw) if isinstance(raw, float) else str(raw))
        except ValueError:
            raise BadRequest(f"{field}: not a decimal quantity: {raw!r}") from None
        if q <= 0:
            raise BadRequest(f"{field}: must be > 0")
        if q < MIN_QTY:
            raise BadRequest(f"{field}: below the minimum trade quantity {from_units(MIN_QTY)}")
        return q

    def _reserved(self) -> int:
        bps = self.cfg.taker_fee_bps
        total = 0
        for o in self._orders.values():
            if not o.live:
                continue
            if o.intent == BUY_LONG:
                total += notional_up(o.price, o.leaves) + _fee(o.leaves, o.price, bps)
            elif o.intent == BUY_SHORT:
                total += notional_up(ONE - o.price, o.leaves) + _fee(o.leaves, o.price, bps)
        return total

    def _buying_power(self) -> int:
        return self._cash - self._reserved()

    def _check_funds(self, v: dict[str, Any]) -> None:
        m, intent, price, qty = v["m"], v["intent"], v["price"], v["qty"]
        if intent in (SELL_LONG, SELL_SHORT):
            net = self.position(m.slug)
            have = max(net, 0) if intent == SELL_LONG else max(-net, 0)
            offered = sum(o.leaves for o in self._orders.values() if o.live and o.slug == m.slug and o.intent == intent)
            if qty > have - offered:
                side = "long" if intent == SELL_LONG else "short"
                raise BadRequest(f"quantity: insufficient {side} position ({from_units(max(have - offered, 0))} "
                                 f"available)")  # fmt: skip
            return
        bps = self.cfg.taker_fee_bps
        if v["type"] == MARKET:  # what the sweep would cost now
            need = 0
            left = qty
            levels = sorted(m.offers.items()) if intent == BUY_LONG else sorted(m.bids.items(), reverse=True)
            for p, s in levels:
                if left <= 0:
                    break
                q = min(s, left)
                need += (notional_up(p, q) if intent == BUY_LONG else notional_up(ONE - p, q)) + _fee(q, p, bps)
                left -= q
        else:
            cost = price if intent == BUY_LONG else ONE - price
            need = notional_up(cost, qty) + _fee(qty, price, bps)
        if need > self._buying_power():
            raise BadRequest(f"insufficient balance: the order needs {from_units(need)} USD, buying power is "
                             f"{from_units(max(self._buying_power(), 0))}")  # fmt: skip

    def _place(self, v: dict[str, Any]) -> tuple[_Order, list[dict[str, Any]]]:
        """Accept a validated order: match it, rest or end it. Returns the order and its executions."""
        m: _Mkt = v["m"]
        if m.state != OPEN:
            raise BadRequest(f"market {m.slug} is not open ({m.state})")
        self._check_funds(v)
        now = self._now()
        self._seq += 1
        o = _Order(self._uuid(), self._seq, m.slug, v["intent"], v["type"], v["price"], v["qty"], v["tif"],
                   v["gtt_ms"], v["post_only"], now)  # fmt: skip
        self._orders[o.id] = o
        execs: list[dict[str, Any]] = []
        self._collect = execs
        try:
            bal0 = self._bal_key()
            book = m.offers if o.is_bid else m.bids
            crossing = sorted(p for p in book if (p <= o.price if o.is_bid else p >= o.price))
            if not o.is_bid:
                crossing.reverse()
            if o.post_only and crossing:
                o.state = S_REJECTED
                self._execution(o, "EXECUTION_TYPE_REJECTED", text="participateDontInitiate order would cross",
                                reason="ORDER_REJECT_REASON_POST_ONLY_WOULD_CROSS")  # fmt: skip
                return o, execs
            self._execution(o, "EXECUTION_TYPE_NEW")
            if o.tif == FOK and sum(book[p] for p in crossing) < o.qty:
                self._end_order(o, S_EXPIRED, "fill-or-kill order could not be filled in full")
                self._publish_balance(bal0, "ENTRY_TYPE_ORDER", "")
                return o, execs
            touched = False
            for p in crossing:
                if o.leaves <= 0:
                    break
                q = min(o.leaves, book[p])
                book[p] -= q
                if book[p] <= 0:
                    del book[p]
                touched = True
                self._fill(o, q, p, aggressor=True)
            if o.live and o.tif in (IOC, FOK):
                self._end_order(o, S_EXPIRED, "immediate-or-cancel remainder")
            if touched:
                self._refill(m)
                m.transact_ms = now
                self._publish_book(m)
            self._publish_balance(bal0, "ENTRY_TYPE_ORDER", "")
        finally:
            self._collect = None
        return o, execs

    _collect: list[dict[str, Any]] | None = None

    def _fill(self, o: _Order, qty: int, px: int, aggressor: bool) -> None:
        m = self._by_slug[o.slug]
        now = self._now()
        p = self._pos.setdefault(o.slug, _Pos())
        before_pos = self._pos_wire(m, p)
        bal0 = self._bal_key()
        # takers pay, makers earn the rebate (a negative commission)
        fee = (_commission(qty, px, self.cfg.taker_fee_bps, o.is_bid) if aggressor
               else -_commission(qty, px, self.cfg.maker_rebate_bps, o.is_bid))  # fmt: skip
        net = p.net
        realized = 0
        cost_basis = 0
        if o.is_bid:  # buy YES: close a short, then go long
            c = min(qty, max(-net, 0))
            if c:
                basis = p.cost * c // -net
                proceeds = notional(ONE - px, c)
                self._cash += proceeds
                realized += proceeds - basis
                p.cost -= basis
            r = qty - c
            if r:
                spend = notional_up(px, r)
                self._cash -= spend
                p.cost += spend
                cost_basis = spend
            p.net += qty
            p.bought += qty
        else:  # sell YES: close a long, then go short
            c = min(qty, max(net, 0))
            if c:
                basis = p.cost * c // net
                proceeds = notional(px, c)
                self._cash += proceeds
                realized += proceeds - basis
                p.cost -= basis
            r = qty - c
            if r:
                spend = notional_up(ONE - px, r)
                self._cash -= spend
                p.cost += spend
                cost_basis = spend
            p.net -= qty
            p.sold += qty
        self._cash -= fee
        p.realized += realized - fee
        p.fees += fee
        p.update_ms = now
        o.cum += qty
        o.notional += px * qty
        o.fees += fee
        o.state = S_FILLED if o.cum >= o.qty else S_PARTIAL
        tid = self._uuid()
        self._execution(o, "EXECUTION_TYPE_FILL" if o.state == S_FILLED else "EXECUTION_TYPE_PARTIAL_FILL",
                        last=(qty, px), trade_id=tid, aggressor=aggressor, fee=fee)  # fmt: skip
        self._activities.append({"type": "ACTIVITY_TYPE_TRADE", "_slug": o.slug, "_ms": now,
                                 "trade": {"id": tid, "marketSlug": o.slug, "state": "TRADE_STATE_CLEARED",
                                           "createTime": _iso(now), "updateTime": _iso(now), "price": _amt(px),
                                           "qty": from_units(qty), "qtyDecimal": from_units(qty),
                                           "isAggressor": aggressor, "costBasis": _amt(cost_basis),
                                           "realizedPnl": _amt(realized - fee)}})  # fmt: skip
        self._print(m, px, qty, o.is_bid if aggressor else not o.is_bid, o if aggressor else None,
                    maker=None if aggressor else o)  # fmt: skip
        self._publish_position(m, before_pos, self._pos_wire(m, p), "ENTRY_TYPE_TRADE", tid, o.id)
        if self._collect is None:  # inside an order entry the balance is published once at its end
            self._publish_balance(bal0, "ENTRY_TYPE_TRADE", f"trade {tid}")

    def _end_order(self, o: _Order, state: str, text: str) -> None:
        o.state = state
        et = {S_CANCELED: "EXECUTION_TYPE_CANCELED", S_EXPIRED: "EXECUTION_TYPE_EXPIRED"}[state]
        self._execution(o, et, text=text)

    def _cancel(self, o: _Order, text: str = "canceled by the user") -> None:
        bal0 = self._bal_key()
        self._end_order(o, S_CANCELED, text)
        self._publish_balance(bal0, "ENTRY_TYPE_ORDER", "")

    def _expire(self) -> None:
        now = self._now()
        for o in sorted(self._orders.values(), key=lambda o: o.seq):
            if o.live and o.gtt_ms is not None and now >= o.gtt_ms:
                bal0 = self._bal_key()
                self._end_order(o, S_EXPIRED, "good-till-date order expired")
                self._publish_balance(bal0, "ENTRY_TYPE_ORDER", "")

    def _execution(self, o: _Order, etype: str, *, last: tuple[int, int] | None = None, trade_id: str = "",
                   aggressor: bool = False, fee: int = 0, text: str = "", reason: str = "") -> dict[str, Any]:  # fmt: skip
        now = self._now()
        ex: dict[str, Any] = {"id": self._uuid(), "order": self._order_wire(o), "type": etype,
                              "transactTime": _iso(now)}  # fmt: skip
        if last is not None:
            ex["lastShares"] = from_units(last[0])
            ex["lastPx"] = _amt(last[1])
            ex["tradeId"] = trade_id
            ex["aggressor"] = aggressor
            ex["commissionNotionalCollected"] = _amt(fee)
        if text:
            ex["text"] = text
        if reason:
            ex["orderRejectReason"] = reason
        if self._collect is not None:
            self._collect.append(ex)
        self._publish_private(ORDER, o.slug, "orderSubscriptionUpdate", {"execution": ex})
        return ex

    def _order_wire(self, o: _Order) -> dict[str, Any]:
        m = self._by_slug[o.slug]
        w: dict[str, Any] = {
            "id": o.id, "marketSlug": o.slug, "side": "ORDER_SIDE_BUY" if o.is_bid else "ORDER_SIDE_SELL",
            "type": o.type, "price": _amt(o.price), "quantity": _num(o.qty), "cumQuantity": _num(o.cum),
            "leavesQuantity": _num(o.leaves), "tif": o.tif, "intent": o.intent,
            "marketMetadata": self._meta(m), "state": o.state, "insertTime": _iso(o.create_ms),
            "createTime": _iso(o.create_ms), "commissionNotionalTotalCollected": _amt(o.fees),
            "commissionsBasisPoints": str(self.cfg.taker_fee_bps),
            "makerCommissionsBasisPoints": str(-self.cfg.maker_rebate_bps),
        }  # fmt: skip
        if o.cum:
            w["avgPx"] = _amt(_div_round(o.notional, o.cum))
        if o.gtt_ms is not None:
            w["goodTillTime"] = _iso(o.gtt_ms)
        if o.post_only:
            w["participateDontInitiate"] = True
        return w

    def _meta(self, m: _Mkt) -> dict[str, Any]:
        return {"slug": m.slug, "title": m.title, "outcome": m.long, "eventSlug": m.event_slug}

    # -- account views ---------------------------------------------------------------------

    def _pos_wire(self, m: _Mkt, p: _Pos) -> dict[str, Any]:
        n = abs(p.net)
        w: dict[str, Any] = {
            "netPosition": from_units(p.net), "netPositionDecimal": from_units(p.net),
            "qtyBought": from_units(p.bought), "qtyBoughtDecimal": from_units(p.bought),
            "qtySold": from_units(p.sold), "qtySoldDecimal": from_units(p.sold),
            "bodPosition": "0", "bodPositionDecimal": "0",
            "qtyAvailable": from_units(n), "qtyAvailableDecimal": from_units(n),
            "cost": _amt(p.cost), "realized": _amt(p.realized), "fees": _amt(p.fees), "expired": p.expired,
            "updateTime": _iso(p.update_ms) if p.update_ms else None, "marketMetadata": self._meta(m),
        }  # fmt: skip
        if n:
            avg = _div_round(p.cost * ONE, n)
            w["avgPx"] = _amt(avg if p.net > 0 else ONE - avg)
            w["costPerShare"] = _amt(avg)
        return w

    def _balance_wire(self) -> dict[str, Any]:
        reserved = self._reserved()
        return {"currentBalance": _usd(self._cash), "currency": "USD", "lastUpdated": _iso(self._now()),
                "buyingPower": _usd(self._cash - reserved), "openOrders": _usd(reserved),
                "assetNotional": 0.0, "assetAvailable": 0.0, "pendingCredit": 0.0, "unsettledFunds": 0.0,
                "pendingWithdrawals": [], "marginRequirement": 0.0, "balanceReservation": _usd(reserved),
                "availableToWithdraw": _usd(self._cash - reserved)}  # fmt: skip

    def _bal_key(self) -> tuple[int, int, dict[str, Any]]:
        return (self._cash, self._reserved(), self._balance_wire())

    # -- publishing ------------------------------------------------------------------------

    def _book_wire(self, m: _Mkt) -> dict[str, Any]:
        return {"marketSlug": m.slug,
                "bids": [{"px": _amt(p), "qty": from_units(q)} for p, q in sorted(m.bids.items(), reverse=True)],
                "offers": [{"px": _amt(p), "qty": from_units(q)} for p, q in sorted(m.offers.items())],
                "state": m.state, "stats": self._stats(m),
                "transactTime": _iso(m.transact_ms or self._created_ms)}  # fmt: skip

    def _stats(self, m: _Mkt) -> dict[str, Any]:
        s: dict[str, Any] = {"sharesTraded": from_units(m.traded), "openInterest": from_units(self._oi(m))}
        if m.ltp is not None:
            s["lastTradePx"] = _amt(m.ltp)
        if m.high is not None and m.low is not None:
            s["highPx"] = _amt(m.high)
            s["lowPx"] = _amt(m.low)
        return s

    def _oi(self, m: _Mkt) -> int:
        p = self._pos.get(m.slug)
        return abs(p.net) if p is not None else 0

    def _lite(self, m: _Mkt) -> dict[str, Any]:
        bb, ba = m.top()
        w: dict[str, Any] = {"marketSlug": m.slug}
        if bb is not None:
            w["bestBid"] = _amt(bb)
        if ba is not None:
            w["bestAsk"] = _amt(ba)
        if m.ltp is not None:
            w["lastTradePx"] = _amt(m.ltp)
        return w

    def _bbo(self, m: _Mkt) -> dict[str, Any]:
        bb, ba = m.top()
        return {"marketSlug": m.slug, "bestBid": _amt(bb) if bb is not None else None,
                "bestAsk": _amt(ba) if ba is not None else None,
                "bidDepth": m.bids[bb] // ONE if bb is not None else 0,
                "askDepth": m.offers[ba] // ONE if ba is not None else 0,
                "lastTradePx": _amt(m.ltp) if m.ltp is not None else None,
                "sharesTraded": from_units(m.traded), "openInterest": from_units(self._oi(m))}  # fmt: skip

    def _send(self, c: _Conn, obj: dict[str, Any]) -> None:
        if c.closed:
            return
        text = _dumps(obj)
        if self._ws_malformed[c.kind] > 0:
            self._ws_malformed[c.kind] -= 1
            text = text[: max(1, len(text) // 2)]
        c.queue.put_nowait(text)

    def _subs(self, kind: str, stype: str, slug: str | None) -> list[tuple[_Conn, _Sub]]:
        out = []
        for c in self._conns:
            if c.kind != kind or c.closed:
                continue
            for s in c.subs.values():
                if s.type == stype and s.covers(slug):
                    out.append((c, s))
        return out

    def _publish_book(self, m: _Mkt) -> None:
        subs = self._subs("markets", MD, m.slug)
        if subs:
            book = self._book_wire(m)
            for c, s in subs:
                self._send(c, {"requestId": s.rid, "subscriptionType": MD, "marketData": book})
        lite = self._lite(m)
        key = tuple(sorted((k, str(v)) for k, v in lite.items()))
        if key != m.last_lite:
            m.last_lite = key
            for c, s in self._subs("markets", MD_LITE, m.slug):
                self._send(c, {"requestId": s.rid, "subscriptionType": MD_LITE, "marketDataLite": lite})

    def _print(self, m: _Mkt, px: int, qty: int, taker_buys: bool, taker: _Order | None,
               maker: _Order | None = None) -> None:  # fmt: skip
        now = self._now()
        m.ltp = px
        m.traded += qty
        m.high = px if m.high is None else max(m.high, px)
        m.low = px if m.low is None else min(m.low, px)

        def side(buys: bool, o: _Order | None) -> dict[str, str]:
            if o is not None:
                return {"side": "ORDER_SIDE_BUY" if o.is_bid else "ORDER_SIDE_SELL", "intent": o.intent}
            return {"side": "ORDER_SIDE_BUY" if buys else "ORDER_SIDE_SELL", "intent": BUY_LONG if buys else SELL_LONG}

        trade = {"marketSlug": m.slug, "price": _amt(px), "quantity": {"value": from_units(qty), "currency": "USD"},
                 "tradeTime": _iso(now), "maker": side(not taker_buys, maker), "taker": side(taker_buys, taker)}
        for c, s in self._subs("markets", TRADE, m.slug):
            self._send(c, {"requestId": s.rid, "subscriptionType": TRADE, "trade": trade})

    def _publish_private(self, stype: str, slug: str | None, key: str, payload: dict[str, Any]) -> None:
        for c, s in self._subs("private", stype, slug):
            self._send(c, {"requestId": s.rid, "subscriptionType": stype, key: payload})

    def _publish_position(self, m: _Mkt, before: dict[str, Any], after: dict[str, Any], entry: str, tid: str,
                          ref: str) -> None:  # fmt: skip
        self._publish_private(POSITION, m.slug, "positionSubscription", {
            "beforePosition": before, "afterPosition": after, "updateTime": after.get("updateTime"),
            "entryType": entry, "tradeId": tid, "referenceId": ref, "description": "",
        })  # fmt: skip

    def _publish_balance(self, before: tuple[int, int, dict[str, Any]], entry: str, desc: str) -> None:
        if (self._cash, self._reserved()) == before[:2]:
            return
        after = self._balance_wire()
        self._publish_private(BALANCE, None, "accountBalancesUpdate", {"balanceChange": {
            "beforeBalance": before[2], "afterBalance": after, "description": desc,
            "updateTime": after["lastUpdated"], "entryType": entry, "accountName": "us-sim", "id": self._uuid(),
            "modifiedSecurityId": "",
        }})  # fmt: skip

    # -- WebSockets ------------------------------------------------------------------------

    async def _ws_markets(self, request: web.Request) -> web.StreamResponse:
        return await self._ws(request, "markets", WS_MARKETS)

    async def _ws_private(self, request: web.Request) -> web.StreamResponse:
        return await self._ws(request, "private", WS_PRIVATE)

    async def _ws(self, request: web.Request, kind: str, path: str) -> web.StreamResponse:
        why = self._auth(request, "GET", path)
        if why:
            return web.json_response({"message": why}, status=401)
        ws = web.WebSocketResponse(max_msg_size=1 << 22, autoping=True)
        await ws.prepare(request)
        c = _Conn(ws, request.transport, kind)
        loop = asyncio.get_running_loop()
        c.tasks.append(loop.create_task(self._writer(c)))
        if self.cfg.heartbeat_s > 0:
            c.tasks.append(loop.create_task(self._heartbeat(c)))
        self._conns.add(c)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        self._on_text(c, msg.data)
                    except Exception as exc:  # noqa: BLE001 - never crash on client input
                        logger.warning("polymarket-us sim: client message failed: {!r}", exc)
                        self._send(c, {"error": f"internal error: {exc}"})
                elif msg.type == WSMsgType.BINARY:
                    self._send(c, {"error": "binary frames are not supported"})
        except Exception as exc:  # noqa: BLE001
            logger.debug("polymarket-us sim: ws ended: {!r}", exc)
        finally:
            c.closed = True
            self._conns.discard(c)
            for t in c.tasks:
                t.cancel()
        return ws

    async def _writer(self, c: _Conn) -> None:
        try:
            while True:
                text = await c.queue.get()
                await c.ws.send_str(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            logger.debug("polymarket-us sim: writer stopped: {!r}", exc)

    async def _heartbeat(self, c: _Conn) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_s)
            self._send(c, {"heartbeat": {}})

    def _abort(self, c: _Conn) -> None:
        c.closed = True
        self._conns.discard(c)
        for t in c.tasks:
            t.cancel()
        if c.transport is not None:
            c.transport.abort()  # no close frame: the client sees the connection drop

    def _on_text(self, c: _Conn, data: str) -> None:
        try:
            obj = json.loads(data)
        except ValueError:
            self._send(c, {"error": "invalid JSON"})
            return
        if not isinstance(obj, dict):
            self._send(c, {"error": "a request is a JSON object with subscribe or unsubscribe"})
            return
        if "subscribe" in obj:
            self._subscribe(c, obj["subscribe"])
        elif "unsubscribe" in obj:
            u = obj["unsubscribe"]
            rid = u.get("requestId") if isinstance(u, dict) else None
            if not isinstance(rid, str) or rid not in c.subs:
                self._send(c, {"requestId": rid if isinstance(rid, str) else "", "error": "unknown requestId"})
                return
            del c.subs[rid]
        else:
            self._send(c, {"error": "unknown request: expected subscribe or unsubscribe"})

    def _subscribe(self, c: _Conn, s: Any) -> None:
        if not isinstance(s, dict):
            self._send(c, {"error": "subscribe: must be an object"})
            return
        rid, stype, slugs = s.get("requestId"), s.get("subscriptionType"), s.get("marketSlugs")
        st = stype if isinstance(stype, str) else ""
        if not isinstance(rid, str) or not rid:
            self._send(c, {"error": "subscribe.requestId: required", "subscriptionType": st})
            return
        allowed = MARKET_SUBS if c.kind == "markets" else PRIVATE_SUBS
        if stype not in allowed:
            self._send(c, {"requestId": rid, "error": f"subscriptionType {stype!r} is not available on this socket",
                           "subscriptionType": st})  # fmt: skip
            return
        if slugs is not None and (not isinstance(slugs, list) or not all(isinstance(x, str) for x in slugs)):
            self._send(c, {"requestId": rid, "error": "marketSlugs: must be a list of slugs", "subscriptionType": st})
            return
        if c.kind == "markets" and not slugs:
            self._send(c, {"requestId": rid, "error": "marketSlugs: required", "subscriptionType": st})
            return
        unknown = [x for x in slugs or [] if x not in self._by_slug]
        if unknown:
            self._send(c, {"requestId": rid, "error": f"unknown market slug(s): {', '.join(unknown)}",
                           "subscriptionType": st})  # fmt: skip
            return
        sub = _Sub(rid, stype, set(slugs) if slugs else None)
        if stype == ORDER_SNAP:  # one-shot
            orders = [self._order_wire(o) for o in sorted(self._orders.values(), key=lambda o: o.seq)
                      if o.live and sub.covers(o.slug)]  # fmt: skip
            self._send(c, {"requestId": rid, "subscriptionType": stype,
                           "orderSubscriptionSnapshot": {"orders": orders, "eof": True}})  # fmt: skip
            return
        c.subs[rid] = sub
        if stype == MD:
            for x in slugs or []:
                self._send(c, {"requestId": rid, "subscriptionType": MD, "marketData": self._book_wire(self._by_slug[x])})
        elif stype == MD_LITE:
            for x in slugs or []:
                self._send(c, {"requestId": rid, "subscriptionType": MD_LITE,
                               "marketDataLite": self._lite(self._by_slug[x])})  # fmt: skip
        elif stype == BALANCE:
            self._send(c, {"requestId": rid, "subscriptionType": BALANCE,
                           "accountBalancesSnapshot": {"balances": [self._balance_wire()]}})  # fmt: skip

    # -- REST ------------------------------------------------------------------------------

    def _auth(self, request: web.Request, method: str, path: str) -> str:
        headers = {k: request.headers.get(k, "") for k in (auth.ACCESS_KEY, auth.TIMESTAMP, auth.SIGNATURE)}
        key_id = headers[auth.ACCESS_KEY]
        if not key_id:
            return "missing X-PM-Access-Key"
        pub = self._keys.get(key_id)
        if pub is None:
            return "unknown API key"
        why = auth.verify(pub, headers, method, path, now_ms=self._now())
        if why == "bad signature":
            raw = request.raw_path.split("?", 1)[0]
            if raw != path and not auth.verify(pub, headers, method, raw, now_ms=self._now()):
                return ""
        return why

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        path = request.path
        if path in (WS_MARKETS, WS_PRIVATE):
            return await handler(request)
        status = 500
        try:
            if path.startswith(("/v1/orders", "/v1/order/", "/v1/portfolio/", "/v1/account/")):
                why = self._auth(request, request.method, path)
                if why:
                    status = 401
                    return web.json_response({"message": why}, status=401)
            self._expire()
            resp = await handler(request)
            status = resp.status
            return resp
        except BadRequest as exc:
            status = exc.status
            return web.json_response({"message": exc.message}, status=exc.status)
        except web.HTTPException as exc:
            status = exc.status
            if exc.status >= 400:
                return web.json_response({"message": exc.reason or "error"}, status=exc.status)
            raise
        except Exception as exc:  # noqa: BLE001
            logger.exception("polymarket-us sim: {} {} failed", request.method, path)
            status = 500
            return web.json_response({"message": f"internal error: {exc}"}, status=500)
        finally:
            if not request.get(_LOGGED):
                self.requests.append((request.method, path, status))

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise BadRequest("body: not valid JSON") from None

    @staticmethod
    def _flag(request: web.Request, name: str) -> bool | None:
        v = request.query.get(name)
        if v is None:
            return None
        return v.lower() in ("1", "true", "yes")

    @staticmethod
    def _int(request: web.Request, name: str, default: int | None) -> int | None:
        v = request.query.get(name)
        if v is None or v == "":
            return default
        try:
            n = int(v)
        except ValueError:
            raise BadRequest(f"{name}: not an integer: {v!r}") from None
        if n < 0:
            raise BadRequest(f"{name}: must be >= 0")
        return n

    def _page(self, request: web.Request, items: list[Any]) -> list[Any]:
        off = self._int(request, "offset", 0) or 0
        lim = self._int(request, "limit", None)
        return items[off:] if lim is None else items[off : off + lim]

    def _slug_or_404(self, slug: str) -> _Mkt:
        m = self._by_slug.get(slug)
        if m is None:
            raise BadRequest(f"market not found: {slug}", status=404)
        return m

    def _market_wire(self, m: _Mkt) -> dict[str, Any]:
        start = self._created_ms
        closed = m.state in (CLOSED, "MARKET_STATE_EXPIRED", "MARKET_STATE_TERMINATED")
        return {"id": m.id, "slug": m.slug, "title": m.title, "outcome": m.long,
                "description": f"{m.title} Resolves to {m.long} (long) or {m.short} (short).",
                "active": not closed, "closed": closed, "archived": False,
                "liquidity": _usd(sum(notional(p, q) for p, q in m.bids.items())
                                  + sum(notional(ONE - p, q) for p, q in m.offers.items())),
                "volume": _usd(m.traded), "eventSlug": m.event_slug,
                "marketSides": [{"identifier": m.slug, "description": m.long, "long": True},
                                {"identifier": m.slug, "description": m.short, "long": False}],
                "orderPriceMinTickSize": 0.01, "minimumTradeQty": 1, "state": m.state,
                "startDate": _iso(start), "endDate": _iso(start + 30 * 86_400_000),
                "marketType": "MARKET_TYPE_BINARY"}  # fmt: skip

    def _event_wire(self, m: _Mkt) -> dict[str, Any]:
        mk = self._market_wire(m)
        return {"id": m.id, "slug": m.event_slug, "title": m.title, "description": mk["description"],
                "startTime": mk["startDate"], "endTime": mk["endDate"], "active": mk["active"],
                "closed": mk["closed"], "archived": False, "featured": False, "liquidity": mk["liquidity"],
                "volume": mk["volume"], "markets": [mk], "tags": [],
                "series": {"id": 1, "slug": "us-sim-series", "title": "US sim series"}}  # fmt: skip

    async def _h_markets(self, request: web.Request) -> web.Response:
        q = request.query
        slugs, events, ids = set(q.getall("slug", [])), set(q.getall("eventSlug", [])), set(q.getall("id", []))
        active, closed = self._flag(request, "active"), self._flag(request, "closed")
        out = []
        for m in self._markets:
            w = self._market_wire(m)
            if (slugs and m.slug not in slugs) or (events and m.event_slug not in events) \
                    or (ids and str(m.id) not in ids) or (active is not None and w["active"] != active) \
                    or (closed is not None and w["closed"] != closed):  # fmt: skip
                continue
            out.append(w)
        return web.json_response({"markets": self._page(request, out)})

    async def _h_market_slug(self, request: web.Request) -> web.Response:
        return web.json_response({"market": self._market_wire(self._slug_or_404(request.match_info["slug"]))})

    async def _h_market_id(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        m = next((x for x in self._markets if str(x.id) == raw), None)
        if m is None:
            raise BadRequest(f"market not found: id {raw}", status=404)
        return web.json_response({"market": self._market_wire(m)})

    async def _h_book(self, request: web.Request) -> web.Response:
        return web.json_response({"marketData": self._book_wire(self._slug_or_404(request.match_info["slug"]))})

    async def _h_bbo(self, request: web.Request) -> web.Response:
        return web.json_response({"marketData": self._bbo(self._slug_or_404(request.match_info["slug"]))})

    async def _h_settlement(self, request: web.Request) -> web.Response:
        m = self._slug_or_404(request.match_info["slug"])
        if m.settlement is None:
            raise BadRequest(f"market {m.slug} is not settled", status=404)
        return web.json_response({"slug": m.slug, "settlement": _usd(m.settlement)})

    async def _h_events(self, request: web.Request) -> web.Response:
        q = request.query
        slugs, ids = set(q.getall("slug", [])), set(q.getall("id", []))
        active, closed = self._flag(request, "active"), self._flag(request, "closed")
        out = []
        for m in self._markets:
            e = self._event_wire(m)
            if (slugs and m.event_slug not in slugs) or (ids and str(m.id) not in ids) \
                    or (active is not None and e["active"] != active) \
                    or (closed is not None and e["closed"] != closed):  # fmt: skip
                continue
            out.append(e)
        return web.json_response({"events": self._page(request, out)})

    async def _h_event_slug(self, request: web.Request) -> web.Response:
        slug = request.match_info["slug"]
        m = next((x for x in self._markets if x.event_slug == slug), None)
        if m is None:
            raise BadRequest(f"event not found: {slug}", status=404)
        return web.json_response({"event": self._event_wire(m)})

    async def _h_event_id(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        m = next((x for x in self._markets if str(x.id) == raw), None)
        if m is None:
            raise BadRequest(f"event not found: id {raw}", status=404)
        return web.json_response({"event": self._event_wire(m)})

    async def _h_series(self, request: web.Request) -> web.Response:
        return web.json_response({"series": [{"id": 1, "slug": "us-sim-series", "title": "US sim series",
                                              "description": "Markets of the Polymarket US simulator",
                                              "active": True, "closed": False, "archived": False,
                                              "recurrence": "none"}]})  # fmt: skip

    async def _h_sports(self, request: web.Request) -> web.Response:
        return web.json_response({"sports": [{"id": "1", "name": "Basketball", "slug": "basketball",
                                              "leagues": [{"id": "1", "name": "NBA", "slug": "nba"}]}]})  # fmt: skip

    async def _h_create(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        kind = self._order_faults.pop(0) if self._order_faults else ""
        if kind == "reject_500":
            return web.json_response({"message": "internal error (simulated)"}, status=500)
        v = self._validate(body)
        o, execs = self._place(v)
        if kind == "error_500":
            return web.json_response({"message": "internal error (simulated)"}, status=500)
        if kind in ("timeout", "drop"):
            request[_LOGGED] = True
            self.requests.append((request.method, request.path, 0))
            if kind == "drop":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            try:
                await asyncio.wait_for(self._closing.wait(), TIMEOUT_HOLD_S)
            except TimeoutError:
                pass
        return web.json_response({"id": o.id, "executions": execs})

    async def _h_create_batch(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        items = body.get("orders") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise BadRequest("orders: required, a non-empty list")
        if len(items) > MAX_BATCH:
            raise BadRequest(f"orders: at most {MAX_BATCH} per batch")
        checked = [self._validate(x, f"orders[{i}]") for i, x in enumerate(items)]
        ids = []
        for v in checked:
            try:
                o, _ = self._place(v)
            except BadRequest as exc:  # a later order no longer fits: it is rejected, the batch stands
                logger.debug("polymarket-us sim: batch order refused: {}", exc.message)
                continue
            ids.append(o.id)
        return web.json_response({"createdOrderIds": ids})

    async def _h_open_orders(self, request: web.Request) -> web.Response:
        slugs = set(request.query.getall("slugs", []))
        orders = [self._order_wire(o) for o in sorted(self._orders.values(), key=lambda o: o.seq)
                  if o.live and (not slugs or o.slug in slugs)]  # fmt: skip
        return web.json_response({"orders": orders})

    async def _h_order(self, request: web.Request) -> web.Response:
        o = self._orders.get(request.match_info["id"])
        if o is None:
            raise BadRequest(f"order not found: {request.match_info['id']}", status=404)
        return web.json_response({"order": self._order_wire(o)})

    async def _h_cancel(self, request: web.Request) -> web.Response:
        oid = request.match_info["id"]
        body = await self._body(request)
        o = self._orders.get(oid)
        if o is None:
            raise BadRequest(f"order not found: {oid}", status=404)
        slug = body.get("marketSlug") if isinstance(body, dict) else None
        if not isinstance(slug, str) or not slug:
            raise BadRequest("marketSlug: required")
        if slug != o.slug:
            raise BadRequest(f"marketSlug: order {oid} is in market {o.slug}, not {slug}")
        if not o.live:
            raise BadRequest(f"order {oid} is not open ({o.state})")
        self._cancel(o)
        return web.json_response({})

    async def _h_cancel_all(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        slugs = body.get("slugs") if isinstance(body, dict) else None
        if slugs is not None and (not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs)):
            raise BadRequest("slugs: must be a list of market slugs")
        ids = []
        for o in sorted(self._orders.values(), key=lambda o: o.seq):
            if o.live and (not slugs or o.slug in slugs):
                self._cancel(o)
                ids.append(o.id)
        return web.json_response({"canceledOrderIds": ids})

    async def _h_cancel_batch(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        items = body.get("orders") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise BadRequest("orders: required, a non-empty list")
        if len(items) > MAX_BATCH:
            raise BadRequest(f"orders: at most {MAX_BATCH} per batch")
        ids = []
        for i, x in enumerate(items):
            if not isinstance(x, dict) or not isinstance(x.get("orderId"), str):
                raise BadRequest(f"orders[{i}].orderId: required")
            if not isinstance(x.get("marketSlug"), str):
                raise BadRequest(f"orders[{i}].marketSlug: required")
            ids.append(x["orderId"])
        for x in items:
            o = self._orders.get(x["orderId"])
            if o is not None and o.live and o.slug == x["marketSlug"]:
                self._cancel(o)
        return web.json_response({"canceledOrderIds": ids})

    async def _h_positions(self, request: web.Request) -> web.Response:
        want = request.query.get("market")
        out = {slug: self._pos_wire(self._by_slug[slug], p) for slug, p in self._pos.items()
               if p.net and (not want or slug == want)}  # fmt: skip
        return web.json_response({"positions": out, "eof": True})

    async def _h_activities(self, request: web.Request) -> web.Response:
        q = request.query
        slug = q.get("marketSlug")
        types = set(q.getall("types", []))
        order = q.get("sortOrder", "SORT_ORDER_DESCENDING")
        if order not in ("SORT_ORDER_DESCENDING", "SORT_ORDER_ASCENDING"):
            raise BadRequest("sortOrder: must be SORT_ORDER_DESCENDING or SORT_ORDER_ASCENDING")
        items = [a for a in self._activities if (not slug or a["_slug"] == slug) and (not types or a["type"] in types)]
        if order == "SORT_ORDER_DESCENDING":
            items = items[::-1]
        start = 0
        cur = q.get("cursor")
        if cur:
            if not cur.isdigit():
                raise BadRequest("cursor: not a cursor of this server")
            start = int(cur)
        limit = self._int(request, "limit", 100) or 100
        page = items[start : start + limit]
        out: dict[str, Any] = {"activities": [{k: v for k, v in a.items() if not k.startswith("_")} for a in page]}
        if start + limit < len(items):
            out["nextCursor"] = str(start + limit)
            out["eof"] = False
        else:
            out["eof"] = True
        return web.json_response(out)

    async def _h_balances(self, request: web.Request) -> web.Response:
        return web.json_response({"balances": [self._balance_wire()]})


def loopback_only(url: str) -> bool:
    """True if ``url`` points at this machine (127.0.0.1, ::1 or localhost): where the demo key
    may be used."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
