"""The live executor for Polymarket CLOB V2 (``[executor] kind = "clob"``).

Same interface as the paper executor: the kernel calls :meth:`ClobExecutor.submit` / ``cancel``
synchronously after journaling; those only queue. Everything else runs in the executor's own task
(:meth:`ClobExecutor.run`), never inside a bus handler:

* **signing** (py-clob-client-v2 + coincurve, ~0.3 ms an order), yielding to the event loop
  between orders so a 20-leg basket never stalls market data, PINGs or heartbeats;
* **transport** on aiohttp: L2 headers per request, token buckets at the documented limits
  (PROTOCOL.md §3.5), batches of at most 15 orders, cancels batched too;
* **unknown outcomes**: a submit that times out, loses its connection or gets a 5xx/425 is
  *unknown*, never rejected: the order's hash (computed locally, before sending) is looked up at
  the venue; found, it is accepted; not found, the *same signed order* is sent again (the venue
  refuses a second order with the same hash, so nothing is ever placed twice);
* **the user channel** (authenticated WebSocket): ``order`` and ``trade`` messages become order
  events; a fill is keyed by (trade id, order hash), so two maker fills of ours in one trade
  both count and a repeated status counts once (the kernel drops repeats at its door);
  MATCHED -> MINED -> CONFIRMED is one fill settling; RETRYING is reported; FAILED reverses the
  fill;
* **reconciliation** on start and after every reconnect: open orders, recent trades and
  positions (Data API v2); orders the journal does not know are cancelled, adopted or left
  (``unknown_orders``); position differences become ``PositionCorrected`` events;
* **the dead-man switch**: heartbeats every ``heartbeat_s`` (the venue cancels every resting order
  when they stop for 10 s); a venue-wide cancel-all on halt (``cancel_all_on``);
* **a second process on the same key**: open orders at the venue that the journal does not know,
  found at start, mean another process may be trading this key: the executor refuses to run
  (``unknown_orders = "refuse"``, the default) unless told to ``adopt`` or ``cancel`` them (or
  ``leave`` them be);
* **on-chain position actions** (:meth:`ClobExecutor.act`: merge, split, redeem, convert) run in
  their own task, one at a time (the wallet's nonce): built with :mod:`.chain`, sent with an EOA's
  own transaction (:mod:`.wallet`) or through Polymarket's relayer for proxy / Safe / deposit
  wallets (:mod:`.relayer`), reported ``PositionActionSent`` then ``PositionActionDone`` (the
  receipt confirmed: collateral from its ``Transfer`` logs, gas) or ``PositionActionFailed``.
  What was signed is written ahead (``<data_dir>/chain_actions.jsonl``, fsynced) so a restart
  resumes an action in flight instead of sending it again.

Every answer reaches the kernel through its one door as a record from ``exec.clob`` (journaled,
so a faithful replay reproduces the session); the raw user-channel frames are journaled too, from
``polymarket.user``, with the API key in ``owner`` fields replaced by a stable alias.
``dry_run = true`` signs and journals every order (``OrderSigned`` with ``dry_run``) and sends
nothing: orders are accepted locally and never fill; a position action is built and signed (the
chain and the relayer are read, for nonces and gas) and reported failed ("dry run: not sent")
with the signed hash.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import msgspec
from loguru import logger

from polybot.events import (
    ENCODER,
    Event,
    ExecutorNotice,
    FillReversed,
    FillSettlement,
    MarketInfo,
    MarketResolved,
    OrderAccepted,
    OrderAdopted,
    OrderCancelled,
    OrderIntent,
    OrderPartiallyFilled,
    OrderRejected,
    OrderSigned,
    OrderUnknown,
    PositionAction,
    PositionActionDone,
    PositionActionFailed,
    PositionActionSent,
    PositionCorrected,
    TradingStateChanged,
)
from polybot.config import ConfigError
from polybot.execution import Executor
from polybot.execution.base import batches
from polybot.ratelimit import TokenBucket
from polybot.execution.rules import fill_fee
from polybot.units import SCALE, to_units

from .signing import ApiCreds, Credentials, OrderSigner, SignedOrder, exchange_for, is_v3_position, l2_headers

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp
    from anyio.abc import ObjectSendStream

    from polybot.clock import Clock
    from polybot.config import Config
    from polybot.execution.orders import Order
    from polybot.kernel import InboundRecord, Kernel

    from .wallet import ChainWallet, Pending, WalletSettings

USER_SOURCE = "polymarket.user"
BATCH_MAX = 15
PING_S = 10.0  # the user channel's keepalive (PROTOCOL.md §1.1, §2)
PONG_TIMEOUT_S = 30.0
SETTLED = ("MINED", "CONFIRMED", "RETRYING")
#: how far a trade has come; a status never moves backwards (RETRYING: the tx is resent, then MINED)
_RANK = {"MATCHED": 1, "RETRYING": 2, "MINED": 3, "CONFIRMED": 4}
PENDING_STATES = ("submitted", "unknown")
_STATE_TRIGGER = {"halted": "halt", "reducing": "reducing"}  # trading state -> cancel_all_on value


def USER_DECODER(msg: bytes, ts: int) -> Sequence[Event]:  # noqa: N802 - an entry point name
    """Raw user-channel frames are journaled for the audit trail; what they mean reaches the
    kernel as the executor's ``exec.clob`` records, so they decode to nothing here. Parsed all
    the same: a frame that is not JSON (``PONG``) raises, and the kernel journals it as a JSON
    string (one JSON object a line)."""
    msgspec.json.decode(msg)
    return ()


class ClobParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rest_url: str = "https://clob.polymarket.com"
    ws_url: str = "wss://ws-subscriptions-clob.polymarket.com/ws/user"
    data_url: str = "https://data-api.polymarket.com"
    geoblock_url: str = "https://polymarket.com/api/geoblock"
    chain_id: int = 137
    signature_type: Literal["eoa", "proxy", "safe", "poly_1271"] = "eoa"
    funder: str = ""
    dry_run: bool = False
    heartbeat_s: float = 5.0  # 0 = no dead-man switch
    request_timeout_s: float = 5.0
    #: orders at the venue that the journal does not know. At start they mean another process
    #: may be trading this key: "refuse" stops the executor (and the daemon) with an error;
    #: "cancel" cancels them, "adopt" takes them over, "leave" ignores them. Later (after a
    #: reconnect) "refuse" leaves them and reports an error.
    unknown_orders: Literal["refuse", "cancel", "adopt", "leave"] = "refuse"
    #: on-chain position actions (merge, split, redeem, convert; settings in [wallet]); false
    #: refuses every one (reported failed)
    chain_actions: bool = True
    #: venue-wide cancel-all (DELETE /cancel-all) when trading halts
    cancel_all_on: list[Literal["halt", "reducing"]] = msgspec.field(default_factory=lambda: ["halt"])
    #: condition ids for the user channel ([] = every market of the account)
    markets: list[str] = []
    #: attempts to resolve an unknown submit (lookup by hash, re-send of the same signed order)
    resolve_attempts: int = 5
    resolve_delay_s: float = 1.0
    #: reconcile trades from this far back on start (seconds)
    trades_lookback_s: float = 86_400.0
    #: write derived API credentials into the [secrets] file (created 0600 if missing)
    store_credentials: bool = True


class HttpError(Exception):
    """A request that did not get a usable answer: ``status`` 0 = no answer at all (timeout,
    connection lost), else the HTTP status; ``processed`` says whether the venue may have acted."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status or 'no answer'}: {detail}")
        self.status = status
        self.detail = detail

    @property
    def maybe_processed(self) -> bool:
        return self.status == 0 or self.status >= 500 or self.status == 425


class UnknownOrdersError(ConfigError):
    """Open orders at the venue that the journal does not know, at start, with
    ``unknown_orders = "refuse"``: another process may be trading this key. Stops the daemon."""


def unknown_orders_message(n: int, sample: Sequence[str]) -> str:
    eg = ", ".join(h[:18] + "…" for h in list(sample)[:3])
    return (f"executor.params.unknown_orders: refusing to run: {n} open order(s) at the venue that this daemon's "
            f"journal does not know ({eg}). Another process may be trading this key: stop it first. To take "
            f"them over set [executor] params unknown_orders = \"adopt\", to cancel them \"cancel\" "
            f"(\"leave\" ignores them)")  # fmt: skip


class _ActJob(msgspec.Struct):
    """A position action with what the kernel knew when it was decided (captured by act())."""

    action: PositionAction
    info: Any = None  # MarketInfo | None
    convert: dict[str, Any] = {}  # asset id -> MarketInfo (a convert's NO tokens)
    sizes: tuple[int, ...] = ()  # the account's shares of the market's outcomes (portfolio)


ACTIONS_FILE = "chain_actions.jsonl"


#: (method, path) -> [(requests, window s), ...]: PROTOCOL.md §3.5 (burst and sustained)
LIMITS: dict[tuple[str, str], list[tuple[int, float]]] = {
    ("POST", "/order"): [(3500, 10), (36000, 600)],
    ("POST", "/orders"): [(1000, 10), (15000, 600)],
    ("DELETE", "/order"): [(3000, 10), (30000, 600)],
    ("DELETE", "/orders"): [(1000, 10), (15000, 600)],
    ("DELETE", "/cancel-all"): [(250, 10), (6000, 600)],
    ("DELETE", "/cancel-market-orders"): [(1000, 10), (1500, 600)],
    ("GET", "/data/orders"): [(500, 10)],
    ("GET", "/data/trades"): [(500, 10)],
    ("GET", "/balance-allowance"): [(200, 10)],
    ("GET", "/auth/derive-api-key"): [(100, 10)],
    ("POST", "/auth/api-key"): [(100, 10)],
    ("GET", "*"): [(9000, 10)],
}


class Clob:
    """The CLOB REST client: L2-signed requests over one aiohttp session, rate limited, with
    retries only where a retry cannot act twice (GETs, cancels, 429s, which the venue did not
    process)."""

    def __init__(self, session: aiohttp.ClientSession, rest_url: str, creds: Credentials, api: ApiCreds | None,
                 timeout_s: float) -> None:  # fmt: skip
        self.session = session
        self.base = rest_url.rstrip("/")
        self.creds = creds
        self.api = api
        self.timeout = timeout_s
        self.buckets: dict[tuple[str, str], list[TokenBucket]] = {}
        self.requests = 0
        self.retries = 0

    def _limit(self, method: str, path: str) -> list[TokenBucket]:
        key = (method, path) if (method, path) in LIMITS else (method, "*") if (method, "*") in LIMITS else ("GET", "*")
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = [TokenBucket(n, w) for n, w in LIMITS[key]]
        return b

    async def request(self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
                      auth: str = "l2", retry: bool = False, base: str | None = None) -> Any:  # fmt: skip
        """One request; returns the decoded JSON. ``retry``: retry 429/5xx/425/no answer with
        backoff (only for requests that cannot act twice)."""
        import aiohttp

        data = b"" if body is None else (body if isinstance(body, bytes) else msgspec.json.encode(body))
        attempt = 0
        while True:
            for b in self._limit(method, path.split("/data/order/")[0] if path.startswith("/data/order/") else path):
                await b.take()
            if auth == "l2":
                assert self.api is not None
                headers = l2_headers(self.api, self.creds.address, method, path, data)
            elif auth == "l1":
                headers = self.creds.l1_headers()
            else:
                headers = {}
            if data:
                headers["Content-Type"] = "application/json"
            self.requests += 1
            try:
                async with self.session.request(method, (base or self.base) + path, data=data or None, params=query,
                                                headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)) as r:  # fmt: skip
                    text = await r.text()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                err = HttpError(0, f"{method} {path}: {type(exc).__name__}")
            else:
                if status < 400:
                    try:
                        return msgspec.json.decode(text) if text else None
                    except msgspec.DecodeError:
                        return text
                err = HttpError(status, f"{method} {path}: {text[:200]}")
                if status not in (429, 425) and status < 500:
                    raise err
            if not retry or attempt >= 4:
                raise err
            attempt += 1
            self.retries += 1
            await anyio.sleep(min(8.0, 0.2 * 2**attempt) * (0.5 + random.random()))


def _alias(api_key: str) -> str:
    return "apikey-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


class ClobExecutor(Executor):
    """Polymarket CLOB V2. Params: :class:`ClobParams`; secrets from the environment or the
    ``[secrets]`` file (``private_key``; ``api_key``/``api_secret``/``api_passphrase`` are derived
    with the key (L1) when missing, and stored)."""

    name = "clob"
    asynchronous = True
    doctor_module = "adapters.polymarket.doctor"
    bench_module = "adapters.polymarket.livebench"
    wallet_module = "adapters.polymarket.wallet"  # `polybot wallet status | approve | wrap`

    def __init__(self, **params: Any) -> None:
        super().__init__()
        try:
            self.params = msgspec.convert(params, ClobParams)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None
        p = self.params
        self.dry_run = p.dry_run
        self.creds: Credentials | None = None
        self.api: ApiCreds | None = None
        self.signer: OrderSigner | None = None
        self._cfg: Config | None = None
        self._send_q, self._recv_q = anyio.create_memory_object_stream[tuple[str, Any]](math.inf)
        self._in_flight = 0
        self._by_hash: dict[str, str] = {}  # order hash -> client id
        self._signed: dict[str, SignedOrder] = {}  # client id -> what was (or will be) sent
        self._fill_status: dict[tuple[str, str], str] = {}  # (trade id, hash) -> last status
        self._posting: set[str] = set()  # hashes of orders on their way (reconciliation leaves them be)
        # orders found unanswered in the journal after a restart: their hash is recomputed, so
        # they are only looked up, never re-sent (a recomputation that differed from what was
        # sent, a tick change in between, must not place a second order)
        self._recovered: set[str] = set()
        self._last_rx = time.monotonic()  # the user channel's last frame (PONG included)
        # after a restart: trade id -> unsettled fills of orders the snapshot no longer holds
        # (closed before it), whose hashes are unknown; their trade's later status still applies
        self._orphans: dict[str, list[Any]] = {}
        self._out: ObjectSendStream[InboundRecord] | None = None
        self._clock: Clock | None = None
        self.clob: Clob | None = None
        self.reconciles = 0
        self.heartbeats = 0
        self.heartbeat_failures = 0
        self.user_connects = 0
        self.resends = 0
        # on-chain position actions: their own queue and task (one at a time: the wallet's nonce)
        self._act_q, self._act_recv = anyio.create_memory_object_stream[_ActJob](math.inf)
        self._acting = 0
        self._queued_actions: set[str] = set()
        self._wallet_settings: WalletSettings | None = None
        self._key_signer: Any = None
        self._chain: ChainWallet | None = None
        self._session: aiohttp.ClientSession | None = None
        self._actions_path: Path | None = None
        self._unknown_checked = False  # the start check of unknown orders has run
        self.actions_done = 0
        self.actions_failed = 0

    # ------------------------------------------------------------------ configuration

    def configure(self, cfg: Config) -> None:
        """Credentials from the environment or the secrets file (called by the daemon)."""
        from polybot.config import ConfigError, load_secrets

        self._cfg = cfg
        secrets = load_secrets(cfg)
        pk = secrets.get("private_key")
        if not pk:
            raise ConfigError("secrets: private_key is missing: set POLYBOT_PRIVATE_KEY or private_key in the "
                              "[secrets] file (polybot doctor explains the set-up)")  # fmt: skip
        try:
            self.creds = Credentials(pk, chain_id=self.params.chain_id, signature_type=self.params.signature_type,
                                     funder=self.params.funder)  # fmt: skip
        except ValueError as exc:
            raise ConfigError(f"executor.params: {exc}") from None
        from .keys import KeySigner
        from .wallet import settings_from

        p = self.params
        self._wallet_settings = settings_from(cfg, secrets, {"signature_type": p.signature_type, "funder": p.funder,
                                                             "chain_id": p.chain_id})  # fmt: skip
        self._key_signer = KeySigner(pk)
        if cfg.engine.data_dir:
            self._actions_path = Path(cfg.engine.data_dir) / ACTIONS_FILE
        if all(secrets.get(k) for k in ("api_key", "api_secret", "api_passphrase")):
            self.api = ApiCreds(secrets.get("api_key") or "", secrets.get("api_secret") or "",
                                secrets.get("api_passphrase") or "")  # fmt: skip
        self.signer = OrderSigner(self.creds, owner=self.api.api_key if self.api else "")

    def attach(self, kernel: Kernel) -> None:
        super().attach(kernel)
        kernel.add_decoder(USER_SOURCE, USER_DECODER)
        if self.api is not None:
            kernel.add_redaction(USER_SOURCE, self.api.api_key, _alias(self.api.api_key))
        kernel.bus.subscribe(TradingStateChanged, self._on_trading_state)
        kernel.bus.subscribe(MarketResolved, self._on_market_end)
        kernel.bus.subscribe(MarketInfo, self._on_market_end)

    def detach(self) -> None:
        if self.kernel is not None:
            self.kernel.bus.unsubscribe(self._on_trading_state, TradingStateChanged)
            self.kernel.bus.unsubscribe(self._on_market_end)

    def _on_market_end(self, ev: MarketResolved | MarketInfo) -> None:
        """A market that resolved, closed or stopped accepting orders: cancel whatever of ours
        still rests there, venue-side (DELETE /cancel-market-orders), journal or not."""
        if isinstance(ev, MarketInfo) and ev.accepting_orders and not ev.closed:
            return
        k = self.kernel
        if self.dry_run or k is None or not ev.market or not any(o.intent.market == ev.market or
                                                                   (k.catalog.market_of(o.asset_id, "") == ev.market)
                                                                   for o in k.orders.open_orders()):  # fmt: skip
            return
        self._in_flight += 1
        self._send_q.send_nowait(("cancel_market", ev.market))

    def _on_trading_state(self, ev: TradingStateChanged) -> None:
        if _STATE_TRIGGER.get(ev.state, "") in self.params.cancel_all_on and not self.dry_run:
            self._in_flight += 1
            self._send_q.send_nowait(("cancel_all", ev.reason))

    # ------------------------------------------------------------------ the kernel's calls

    def submit(self, order: Order) -> None:
        self._in_flight += 1
        self._send_q.send_nowait(("submit", order))

    def cancel(self, order: Order) -> None:
        self._in_flight += 1
        self._send_q.send_nowait(("cancel", order))

    def act(self, action: PositionAction) -> None:
        """Queue an on-chain position action (already journaled and fsynced) for the actions
        task, with the catalog's view of its market as of now."""
        k = self.kernel
        info = k.catalog.market(action.market) if k is not None else None
        conv = {aid: m for aid in action.asset_ids if k is not None and (m := k.catalog.for_asset(aid)) is not None}
        sizes = tuple(k.portfolio.size(a) for a in info.asset_ids) if k is not None and info is not None else ()
        self._queued_actions.add(action.action_id)
        self._acting += 1
        try:
            self._act_q.send_nowait(_ActJob(action, info, conv, sizes))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._acting -= 1
            logger.error("clob executor: on-chain {} {} after the executor closed: not sent", action.action, action.action_id)

    @property
    def account_id(self) -> str:
        """``<signer address>:<funder address>`` (the account an instance lock guards); "" before
        :meth:`configure`."""
        if self.creds is None:
            return ""
        return f"{self.creds.address}:{self.creds.funder}"

    def idle(self) -> bool:
        return self._in_flight == 0 and self._acting == 0

    def close(self) -> None:
        self._send_q.close()
        self._recv_q.close()
        self._act_q.close()
        self._act_recv.close()

    # ------------------------------------------------------------------ helpers

    async def _report(self, events: Sequence[Event]) -> None:
        from polybot.kernel import InboundRecord

        if events and self._out is not None and self._clock is not None:
            await self._out.send(InboundRecord(self._clock.now(), self.source, ENCODER.encode(list(events))))

    def _market_meta(self, asset_id: str) -> tuple[int, bool, bool, Any]:
        """(tick, neg_risk, v3, fee schedule) of an asset, from the kernel's book and catalog."""
        k = self.kernel
        assert k is not None
        info = k.catalog.for_asset(asset_id)
        b = k.books.get(asset_id)
        tick = (b.tick_size if b is not None and b.tick_size else 0) or (info.tick_size if info is not None else 10_000)
        neg = info.neg_risk if info is not None else False
        v3 = (info is not None and info.version == "v2") or is_v3_position(asset_id)
        return tick, neg, v3, info.fees if info is not None else None

    def _sign(self, o: Order) -> SignedOrder:
        so = self._signed.get(o.client_id)
        if so is None:
            assert self.signer is not None
            tick, neg, v3, _ = self._market_meta(o.asset_id)
            so = self.signer.sign(o.intent, tick=tick, neg_risk=neg, v3=v3, created_ns=o.created_ts)
            self._signed[o.client_id] = so
            self._by_hash[so.order_hash] = o.client_id
        return so

    def _common(self, o: Order, venue_id: str = "") -> dict[str, Any]:
        return dict(client_id=o.client_id, strategy=o.strategy, asset_id=o.asset_id,
                    venue_order_id=venue_id or o.venue_order_id)  # fmt: skip

    def _order(self, client_id: str) -> Order | None:
        return self.kernel.orders.get(client_id) if self.kernel is not None else None

    # ------------------------------------------------------------------ the task

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        import aiohttp

        self._out, self._clock = send, clock
        async with send:
            async with aiohttp.ClientSession() as session:
                self._session = session
                if self.dry_run:  # no order leaves; actions read the chain (nonce, gas) and sign only
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._action_worker)
                        await self._worker()
                    return
                assert self.creds is not None
                self.clob = Clob(session, self.params.rest_url, self.creds, self.api, self.params.request_timeout_s)
                await self._ensure_api_creds()
                self._learn_hashes()
                await self._check_unknown_orders()  # before anything is sent
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._worker)
                    tg.start_soon(self._action_worker)
                    if self.params.heartbeat_s > 0:
                        tg.start_soon(self._heartbeat_loop)
                    if self.params.ws_url:
                        tg.start_soon(self._user_loop, session)
                    else:
                        await self._reconcile("start")

    async def _ensure_api_creds(self) -> None:
        """Derive (or create) the L2 credentials with the private key when they are missing, and
        store them in the secrets file for the next start."""
        if self.api is not None:
            return
        assert self.clob is not None
        try:
            r = await self.clob.request("GET", "/auth/derive-api-key", auth="l1", retry=True)
        except HttpError:
            r = await self.clob.request("POST", "/auth/api-key", auth="l1", retry=True)
        self.api = ApiCreds(r["apiKey"], r["secret"], r["passphrase"])
        self.clob.api = self.api
        assert self.signer is not None and self.kernel is not None
        self.signer.owner = self.api.api_key
        self.kernel.add_redaction(USER_SOURCE, self.api.api_key, _alias(self.api.api_key))
        logger.info("API credentials derived from the wallet key (L1) for {}", self.creds.address if self.creds else "?")
        if self.params.store_credentials and self._cfg is not None and self._cfg.secrets.file:
            store_api_creds(Path(self._cfg.secrets.file).expanduser(), self.api)

    def _learn_hashes(self) -> None:
        """After a restart: the hash of every order the journal knows (recomputed when its answer
        never arrived: the hash is a function of the journaled order)."""
        k = self.kernel
        assert k is not None
        for r in k.fills.values():
            if not r.reversed and r.status != "CONFIRMED" and r.client_id and k.orders.get(r.client_id) is None:
                self._orphans.setdefault(r.trade_id, []).append(r)
        for o in k.orders.all():
            if o.venue_order_id:
                self._by_hash[o.venue_order_id] = o.client_id
            if o.is_open and (o.state in PENDING_STATES or not o.venue_order_id):
                self._sign(o)  # its hash, recomputed (and mapped)
                self._recovered.add(o.client_id)
        if self._recovered:
            logger.warning("{} order(s) without a venue answer in the journal: looking them up by hash", len(self._recovered))

    async def _check_unknown_orders(self) -> None:
        """At start, with ``unknown_orders = "refuse"``: open orders at the venue that the journal
        does not know stop the executor (UnknownOrdersError). When the venue cannot be asked
        now, the first reconciliation does the check."""
        if self.params.unknown_orders != "refuse":
            self._unknown_checked = True
            return
        try:
            venue_open = await self._pages("/data/orders")
        except HttpError as err:
            logger.warning("could not list the venue's open orders at start ({}): the first reconciliation checks them", err)
            return
        stray = [str(v.get("id")) for v in venue_open if str(v.get("id")) not in self._by_hash]
        if stray:
            msg = unknown_orders_message(len(stray), stray)
            logger.critical(msg)
            await self._report([ExecutorNotice(ts=0, executor=self.name, kind="unknown_orders_refused", detail=msg[:300])])
            raise UnknownOrdersError(msg)
        self._unknown_checked = True

    # ---------------------------------------------------------------- on-chain actions

    def _wallet(self) -> ChainWallet:
        if self._chain is None:
            from .wallet import ChainWallet

            if self._wallet_settings is None or self._key_signer is None or self._session is None:
                raise RuntimeError("the executor is not configured for on-chain actions (configure() not called)")
            self._chain = ChainWallet(self._session, self._wallet_settings, self._key_signer)
        return self._chain

    def _act_common(self, a: PositionAction) -> dict[str, Any]:
        return dict(action_id=a.action_id, action=a.action, market=a.market, strategy=a.strategy)

    async def _act_failed(self, a: PositionAction, reason: str, tx_hash: str = "") -> None:
        self.actions_failed += 1
        logger.warning("on-chain {} {} failed: {}", a.action, a.action_id, reason)
        self._wal(a.action_id, {"stage": "failed", "reason": reason[:300]})
        await self._report([PositionActionFailed(ts=0, reason=reason[:300], tx_hash=tx_hash, **self._act_common(a))])

    async def _action_worker(self) -> None:
        recv = self._act_recv
        async with recv:
            if not self.dry_run:
                try:
                    await self._resume_actions()
                except Exception:  # noqa: BLE001 - resuming must not end the task
                    logger.exception("clob executor: resuming on-chain actions after a restart failed")
            while True:
                try:
                    job = await recv.receive()
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    return
                try:
                    await self._do_action(job)
                except Exception as exc:  # noqa: BLE001 - an action that cannot run is failed, never lost
                    logger.exception("clob executor: on-chain {} {} failed unexpectedly", job.action.action, job.action.action_id)
                    await self._act_failed(job.action, f"internal error: {type(exc).__name__}: {exc}")
                finally:
                    self._acting -= 1

    async def _do_action(self, job: _ActJob) -> None:
        """Plan, sign, send and confirm one action; reports Sent, then Done or Failed."""
        from .chain import ChainError, plan_action
        from .relayer import RelayerError
        from .rpc import RpcError
        from .wallet import TxFailed

        a, info = job.action, job.info
        if not self.params.chain_actions:
            return await self._act_failed(a, "on-chain actions are off (executor param chain_actions = false)")
        if info is None:
            return await self._act_failed(a, "market not in the catalog")
        try:
            w = self._wallet()
            balances = None
            if a.action == "redeem" and info.version == "v2":
                balances = await self._v2_balances(w, info, job.sizes)
            plan = plan_action(a, info, w.c, convert_markets=job.convert, balances=balances)
            pending = await w.prepare(plan.calls, metadata=f"polybot {a.action} {a.action_id}")
        except (ChainError, TxFailed, RpcError, RelayerError, ValueError) as exc:
            return await self._act_failed(a, f"not sent: {getattr(exc, 'reason', '') or exc}")
        if self.dry_run:
            return await self._act_failed(a, "dry run: not sent", pending.hashes[0] if pending.hashes else "")
        self._wal(a.action_id, {"stage": "signed", "via": pending.via, "hashes": pending.hashes,
                                "raws": [t.raw_hex for t in pending.txs], "tokens": list(plan.collateral_tokens),
                                "funder": w.funder, "amount": a.amount})  # fmt: skip
        try:
            sent = await w.send(pending)
        except (TxFailed, RpcError, RelayerError) as exc:
            return await self._act_failed(a, f"refused: {getattr(exc, 'reason', '') or exc}", pending.hashes[0] if pending.hashes else "")
        if pending.via == "relayer":
            self._wal(a.action_id, {"stage": "sent", "relayer_id": sent})
        logger.info("on-chain {} {} sent via {}: {}", a.action, a.action_id, pending.via, sent)
        await self._report([PositionActionSent(ts=0, tx_hash=sent, via=pending.via, **self._act_common(a))])
        await self._confirm_action(a, w, pending, sent, plan.collateral_tokens)

    async def _confirm_action(self, a: PositionAction, w: ChainWallet, pending: Pending, sent: str,
                              tokens: Sequence[str]) -> None:  # fmt: skip
        from .chain import collateral_delta
        from .relayer import RelayerError
        from .rpc import RpcError
        from .wallet import TxFailed

        try:
            o = await w.confirm(pending, sent)
        except TxFailed as exc:
            return await self._act_failed(a, exc.reason, exc.tx_hash or sent)
        except (RelayerError, RpcError) as exc:
            return await self._act_failed(a, str(exc), sent)
        except TimeoutError:
            return await self._act_failed(a, f"not mined within {w.s.receipt_timeout_s:g} s", sent)
        if o.status != 1:
            return await self._act_failed(a, f"reverted on chain (block {o.block})", o.tx_hash)
        collateral = collateral_delta(o.logs, tuple(tokens), w.funder) if o.logs else 0
        self.actions_done += 1
        done = dict(tx_hash=o.tx_hash, amount=a.amount, collateral=collateral, gas_used=o.gas_used,
                    gas_cost=o.gas_cost, block=o.block)  # fmt: skip
        self._wal(a.action_id, {"stage": "done", **done})
        logger.info("on-chain {} {} confirmed in block {}: {} collateral, gas {}", a.action, a.action_id, o.block,
                    collateral, o.gas_used)  # fmt: skip
        await self._report([PositionActionDone(ts=0, **done, **self._act_common(a))])

    async def _v2_balances(self, w: ChainWallet, info: MarketInfo, sizes: tuple[int, ...]) -> tuple[int, int]:
        """A Protocol-V2 redeem names its amounts: the position balances on chain (the
        portfolio's when there is no RPC)."""
        from .chain import decode_uint, erc1155_balance_of

        if w.rpc is None:
            return (sizes + (0, 0))[0], (sizes + (0, 0))[1]
        pm = w.c.need("position_manager")
        out = []
        for aid in info.asset_ids[:2]:
            c = erc1155_balance_of(pm, w.funder, int(aid))
            out.append(decode_uint(await w.rpc.eth_call(c.to, c.data_hex)))
        return out[0], out[1]

    # -- the write-ahead record of actions in flight (a restart resumes, never re-signs)

    def _wal(self, action_id: str, rec: dict[str, Any]) -> None:
        path = self._actions_path
        if path is None or self.dry_run:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                f.write(msgspec.json.encode({"action_id": action_id, **rec}) + b"\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            logger.error("cannot write {}: {} (a restart could not resume this action)", path, exc)

    def _wal_read(self) -> dict[str, dict[str, Any]]:
        path = self._actions_path
        out: dict[str, dict[str, Any]] = {}
        if path is None or not path.exists():
            return out
        for line in path.read_bytes().splitlines():
            try:
                r = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue  # a torn last line
            if isinstance(r, dict) and isinstance(r.get("action_id"), str):
                prev = out.get(r["action_id"], {})
                out[r["action_id"]] = {**prev, **r}
        return out

    async def _resume_actions(self) -> None:
        """After a restart: the kernel's actions still pending, from the write-ahead record:
        signed EOA transactions are broadcast again (the same bytes) and confirmed; a relayer
        transaction is polled; a confirmed one is reported again; one never signed failed."""
        from .chain import Call
        from .wallet import Pending, SignedTx

        k = self.kernel
        if k is None or not hasattr(k, "pending_actions"):
            return
        recs = self._wal_read()
        pending = [a for a in k.pending_actions() if a.action_id not in self._queued_actions]
        if self._actions_path is not None and self._actions_path.exists() and not pending:
            self._actions_path.unlink(missing_ok=True)  # nothing in flight: start a fresh record
        for a in pending:
            r = recs.get(a.action_id)
            stage = (r or {}).get("stage")
            if r is None or stage not in ("signed", "sent", "done"):
                await self._act_failed(a, "interrupted by a restart before it was sent; not sent again"
                                       if r is None else f"failed before the restart: {r.get('reason', '')}")  # fmt: skip
                continue
            if stage == "done":
                await self._report([PositionActionDone(ts=0, tx_hash=str(r.get("tx_hash", "")), amount=int(r.get("amount", 0)),
                                                       collateral=int(r.get("collateral", 0)), gas_used=int(r.get("gas_used", 0)),
                                                       gas_cost=int(r.get("gas_cost", 0)), block=int(r.get("block", 0)),
                                                       **self._act_common(a))])  # fmt: skip
                continue
            try:
                w = self._wallet()
            except Exception as exc:  # noqa: BLE001
                await self._act_failed(a, f"cannot resume after a restart: {exc}")
                continue
            tokens = tuple(r.get("tokens") or ())
            if r.get("via") == "relayer":
                tid = r.get("relayer_id")
                if not tid:
                    await self._act_failed(a, "outcome unknown: the relayer submission was interrupted by a restart "
                                              "(reconciliation corrects the positions if it went through)")  # fmt: skip
                    continue
                p = Pending([Call(w.funder, b"")], "relayer")
                from .relayer import Prepared

                p.relayed = Prepared({}, "", p.calls, "")
                logger.info("resuming on-chain {} {}: relayer transaction {}", a.action, a.action_id, tid)
                await self._confirm_action(a, w, p, str(tid), tokens)
                continue
            txs = [SignedTx(Call(w.funder, b""), {}, bytes.fromhex(raw[2:]), h)
                   for raw, h in zip(r.get("raws") or [], r.get("hashes") or [], strict=False)]  # fmt: skip
            if not txs or w.tx is None:
                await self._act_failed(a, "cannot resume after a restart: no signed transaction or no RPC")
                continue
            for t in txs:  # the same bytes again: mined already (known) or now; never a second action
                try:
                    await w.tx.send(t)
                except Exception as exc:  # noqa: BLE001 - "nonce too low" etc.: the receipt says
                    logger.info("resuming {}: re-broadcast of {}: {}", a.action_id, t.hash, exc)
            logger.info("resuming on-chain {} {}: {}", a.action, a.action_id, ", ".join(t.hash for t in txs))
            await self._confirm_action(a, w, Pending([t.call for t in txs], "rpc", txs=txs), txs[0].hash, tokens)

    # ---------------------------------------------------------------- orders out

    async def _worker(self) -> None:
        async for batch in batches(self._recv_q, 200):
            try:
                await self._handle(batch)
            except Exception:  # noqa: BLE001 - never lose the task: the orders are resolved by reconciliation
                logger.exception("clob executor: a batch of {} request(s) failed unexpectedly", len(batch))
            finally:
                self._in_flight -= len(batch)

    async def _handle(self, batch: list[tuple[str, Any]]) -> None:
        # in queue order around a cancel-all: an order queued before it must be at the venue
        # before the cancel-all goes out (else it rests, live, after a halt)
        seg: list[tuple[str, Any]] = []
        done: set[str] = set()
        for op, x in batch:
            if op in ("cancel_all", "cancel_market"):
                market = x if op == "cancel_market" else ""
                if seg:
                    await self._handle_orders(seg)
                    seg, done = [], set()
                if market not in done:
                    done.add(market)
                    await self._cancel_all(market)
            else:
                seg.append((op, x))
        if seg:
            await self._handle_orders(seg)

    async def _handle_orders(self, batch: list[tuple[str, Any]]) -> None:
        submits = [x for op, x in batch if op == "submit"]
        cancels = [x for op, x in batch if op == "cancel"]
        if submits:
            await self._submit(submits)
        if cancels:
            await self._cancel(cancels)

    async def _submit(self, items: list[Order]) -> None:
        signed: list[tuple[Order, SignedOrder]] = []
        notes: list[Event] = []
        for o in items:
            try:
                so = self._sign(o)
            except Exception as exc:  # noqa: BLE001 - an order that cannot be signed is refused, not lost
                await self._report([OrderRejected(ts=0, reason=f"signing failed: {type(exc).__name__}: {exc}",
                                                  **self._common(o))])  # fmt: skip
                continue
            tick, neg, v3, _ = self._market_meta(o.asset_id)
            notes.append(OrderSigned(ts=0, maker_amount=so.maker_amount, taker_amount=so.taker_amount,
                                     exchange=exchange_for(self.params.chain_id, neg, v3)[0], dry_run=self.dry_run,
                                     **self._common(o, so.order_hash)))  # fmt: skip
            signed.append((o, so))
            await anyio.sleep(0)  # a basket's signing never holds the loop for more than one order
        if self.dry_run:
            for o, so in signed:
                notes.append(OrderAccepted(ts=0, **self._common(o, so.order_hash)))
            await self._report(notes)
            return
        await self._report(notes)
        for i in range(0, len(signed), BATCH_MAX):
            await self._post(signed[i : i + BATCH_MAX])

    async def _post(self, chunk: list[tuple[Order, SignedOrder]]) -> None:
        hashes = [so.order_hash for _, so in chunk]
        self._posting.update(hashes)
        try:
            await self._post_chunk(chunk)
        finally:
            self._posting.difference_update(hashes)

    async def _post_chunk(self, chunk: list[tuple[Order, SignedOrder]]) -> None:
        assert self.clob is not None
        one = len(chunk) == 1
        body = msgspec.json.encode(chunk[0][1].body if one else [so.body for _, so in chunk])
        for attempt in range(6):  # a 429 was not processed: the same bytes again, after a pause
            try:
                r = await self.clob.request("POST", "/order" if one else "/orders", body)
                break
            except HttpError as err:
                if err.status == 429 and attempt < 5:
                    await anyio.sleep(min(4.0, 0.25 * 2**attempt))
                    continue
                await self._post_failed(chunk, err)
                return
        answers = [r] if one else (r if isinstance(r, list) else [])
        if len(answers) != len(chunk):
            await self._report([OrderUnknown(ts=0, reason="malformed answer", **self._common(o, so.order_hash))
                                for o, so in chunk])  # fmt: skip
            for o, so in chunk:
                await self._resolve(o, so)
            return
        await self._report(self._answers(chunk, answers))
        for (o, so), a in zip(chunk, answers):
            if isinstance(a, dict) and _duplicate(a):
                await self._resolve(o, so, resend=False)

    async def _post_failed(self, chunk: list[tuple[Order, SignedOrder]], err: HttpError) -> None:
        if err.maybe_processed:
            # unknown, never rejected; an order the user channel already reported (accepted,
            # filled) is known and needs nothing more
            pending = [(o, so) for o, so in chunk if o.state in PENDING_STATES]
            await self._report([OrderUnknown(ts=0, reason=str(err), **self._common(o, so.order_hash))
                                for o, so in pending])  # fmt: skip
            for o, so in pending:
                await self._resolve(o, so)
        else:  # refused (4xx): each order's reason, when the venue gave one
            await self._report(self._answers(chunk, _error_answers(err, len(chunk))))

    def _answers(self, chunk: list[tuple[Order, SignedOrder]], answers: list[Any]) -> list[Event]:
        out: list[Event] = []
        for (o, so), a in zip(chunk, answers):
            c = self._common(o, so.order_hash)
            if not isinstance(a, dict) or not a.get("success") or not a.get("orderID"):
                reason = a.get("errorMsg") or a.get("error") or "refused" if isinstance(a, dict) else "refused"
                if isinstance(a, dict) and _duplicate(a):
                    continue  # the venue has it already: resolved by hash next
                out.append(OrderRejected(ts=0, reason=str(reason)[:300], **c))
                continue
            if str(a.get("status", "")).lower() == "delayed":
                # in-play sports market: matching is held back; the user channel reports the
                # fill or the cancel after the delay (nothing matched yet is not a remainder)
                out.append(OrderAccepted(ts=0, delayed=True, **c))
                continue
            out.append(OrderAccepted(ts=0, **c))
            it = o.intent
            if it.tif in ("FOK", "FAK"):
                got = _matched_shares(it.side, a)
                if got is not None and got < it.size:
                    out.append(OrderCancelled(ts=0, reason=f"{it.tif} remainder not filled", **c))
        return out

    async def _resolve(self, o: Order, so: SignedOrder, resend: bool = True) -> None:
        """An unknown submit: look the hash up; absent, send the same signed order again."""
        assert self.clob is not None
        for attempt in range(max(1, self.params.resolve_attempts)):
            await anyio.sleep(self.params.resolve_delay_s * (attempt + 1) if attempt or resend else 0)
            try:
                found = await self.clob.request("GET", f"/data/order/{so.order_hash}", retry=True)
            except HttpError as err:
                if err.status != 404:
                    continue
                found = None
            if isinstance(found, dict) and found.get("id"):
                await self._report(self._from_venue_order(o, found))
                if _shares(found.get("size_matched")):
                    await self._sync_trades()  # its fills (the user channel may have missed them)
                return
            if not resend:
                continue
            self.resends += 1
            try:
                a = await self.clob.request("POST", "/order", msgspec.json.encode(so.body))
            except HttpError as err:
                answer = _error_answers(err, 1)
                if _duplicate(answer[0]):
                    resend = False  # the venue has it (our first send landed): look it up again
                    continue
                if not err.maybe_processed and err.status != 429:
                    await self._report(self._answers([(o, so)], answer))
                    return
                continue
            if isinstance(a, dict) and a.get("success") and a.get("orderID"):
                await self._report(self._answers([(o, so)], [a]))
                return
            if isinstance(a, dict) and not _duplicate(a):
                await self._report(self._answers([(o, so)], [a]))
                return
            resend = False  # "already exists": look it up again
        if o.client_id in self._recovered and (o.state in PENDING_STATES or o.state == "cancel_pending"):
            # sent (or not) before a crash, and the venue has no order with its hash: it never
            # arrived; refused here rather than sent again (also when a cancel of it was sent:
            # left "cancel_pending", it would count as open for ever)
            await self._report([OrderRejected(ts=0, reason="not at the venue after a restart (never arrived); not re-sent",
                                              **self._common(o, so.order_hash))])  # fmt: skip
            return
        await self._report([ExecutorNotice(ts=0, executor=self.name, kind="unresolved", client_id=o.client_id,
                                           detail=f"order {so.order_hash} still unknown after "
                                                  f"{self.params.resolve_attempts} attempts; reconciliation will settle it")])  # fmt: skip

    def _from_venue_order(self, o: Order, v: dict[str, Any]) -> list[Event]:
        """Events for one of our orders as the venue shows it (REST order object)."""
        c = self._common(o, str(v.get("id", "")))
        status = str(v.get("status", "")).upper()
        out: list[Event] = [OrderAccepted(ts=0, **c)]
        if status.startswith("CANCELED") or status in ("INVALID", "UNMATCHED"):
            out.append(OrderCancelled(ts=0, reason=status.lower(), **c))
        elif status == "MATCHED" and o.intent.tif in ("FOK", "FAK"):
            matched = _shares(v.get("size_matched"))
            if matched < o.intent.size:
                out.append(OrderCancelled(ts=0, reason=f"{o.intent.tif} remainder not filled", **c))
        return out

    async def _cancel(self, orders: list[Order]) -> None:
        if self.dry_run:
            await self._report([OrderCancelled(ts=0, reason="cancelled (dry run)", **self._common(o)) for o in orders])
            return
        assert self.clob is not None
        by_hash = {o.venue_order_id or self._sign(o).order_hash: o for o in orders}
        hashes = list(by_hash)
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            try:
                if len(part) == 1:
                    r = await self.clob.request("DELETE", "/order", {"orderID": part[0]}, retry=True)
                else:
                    r = await self.clob.request("DELETE", "/orders", part, retry=True)
            except HttpError as err:
                await self._report([ExecutorNotice(ts=0, executor=self.name, kind="cancel_failed", client_id=by_hash[h].client_id,
                                                   detail=str(err)[:300]) for h in part])  # fmt: skip
                continue
            await self._report(self._cancel_answers(r, by_hash))

    def _cancel_answers(self, r: Any, by_hash: dict[str, Order]) -> list[Event]:
        out: list[Event] = []
        if not isinstance(r, dict):
            return out
        for h in r.get("canceled") or []:
            o = by_hash.get(h) or self._order(self._by_hash.get(h, ""))
            if o is not None:
                out.append(OrderCancelled(ts=0, reason="cancelled", **self._common(o, h)))
        for h, why in (r.get("not_canceled") or {}).items():
            o = by_hash.get(h) or self._order(self._by_hash.get(h, ""))
            if o is not None:
                # already matched or cancelled: the user channel / reconciliation says which
                out.append(ExecutorNotice(ts=0, executor=self.name, kind="not_cancelled", client_id=o.client_id,
                                          detail=str(why)[:200]))  # fmt: skip
        return out

    async def _cancel_all(self, market: str = "") -> None:
        """Everything of ours at the venue (or in one market), known to the journal or not."""
        assert self.clob is not None
        try:
            if market:
                r = await self.clob.request("DELETE", "/cancel-market-orders", {"market": market, "asset_id": ""}, retry=True)
            else:
                r = await self.clob.request("DELETE", "/cancel-all", retry=True)
        except HttpError as err:
            await self._report([ExecutorNotice(ts=0, executor=self.name, kind="cancel_all_failed", detail=str(err)[:300])])
            return
        await self._report(self._cancel_answers(r, {}))

    # ---------------------------------------------------------------- heartbeats

    async def _heartbeat_loop(self) -> None:
        assert self.clob is not None
        hb_id = ""
        failing = False
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    r = await self.clob.request("POST", "/v1/heartbeats", {"heartbeat_id": hb_id})
                    hb_id = str((r or {}).get("heartbeat_id", hb_id)) if isinstance(r, dict) else hb_id
                    self.heartbeats += 1
                    if failing:
                        failing = False
                        await self._report([ExecutorNotice(ts=0, executor=self.name, kind="heartbeat_restored")])
                        # the venue may have cancelled our orders; reconciled in its own task, so
                        # the heartbeats go on meanwhile (a slow one would trip the dead-man switch)
                        tg.start_soon(self._reconcile, "heartbeat restored")
                except HttpError as err:
                    self.heartbeat_failures += 1
                    if not failing:
                        failing = True
                        logger.error("heartbeat failed ({}): the venue cancels every resting order after 10 s without one", err)
                        await self._report([ExecutorNotice(ts=0, executor=self.name, kind="heartbeat_failed", detail=str(err)[:200])])
                await anyio.sleep(self.params.heartbeat_s)

    # ---------------------------------------------------------------- user channel

    async def _user_loop(self, session: aiohttp.ClientSession) -> None:
        import aiohttp

        backoff = 0.5
        first = True
        while True:
            try:
                async with session.ws_connect(self.params.ws_url, heartbeat=None, autoping=True) as ws:
                    assert self.api is not None
                    await ws.send_str(msgspec.json.encode({
                        "auth": {"apiKey": self.api.api_key, "secret": self.api.secret, "passphrase": self.api.passphrase},
                        "markets": self.params.markets, "type": "user"}).decode())  # fmt: skip
                    self.user_connects += 1
                    self._last_rx = time.monotonic()
                    backoff = 0.5
                    await self._report([ExecutorNotice(ts=0, executor=self.name, kind="user_connected")])
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._pinger, ws)
                        tg.start_soon(self._reconcile, "start" if first else "reconnect")
                        first = False
                        async for m in ws:
                            if m.type == aiohttp.WSMsgType.TEXT:
                                await self._on_user_frame(m.data)
                            elif m.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                                break
                        tg.cancel_scope.cancel()
            except* (aiohttp.ClientError, OSError, TimeoutError) as eg:
                # raised inside the task group, it arrives as an ExceptionGroup (anyio)
                exc = eg.exceptions[0]
                logger.warning("user channel: {} ({}); reconnecting", type(exc).__name__, exc)
            await self._report([ExecutorNotice(ts=0, executor=self.name, kind="user_disconnected")])
            if first:  # never connected: reconcile over REST anyway (fills and orders)
                first = False
                await self._reconcile("start (user channel down)")
            await anyio.sleep(backoff)
            backoff = min(30.0, backoff * 2)

    async def _pinger(self, ws: Any) -> None:
        """PING every 10 s; no PONG (nor any frame) for 30 s: the socket is half-open, close it
        (the loop reconnects and reconciles)."""
        while True:
            await anyio.sleep(PING_S)
            if time.monotonic() - self._last_rx > PONG_TIMEOUT_S:
                logger.warning("user channel: nothing received for {:.0f} s (no PONG): reconnecting", PONG_TIMEOUT_S)
                await ws.close()
                return
            await ws.send_str("PING")

    async def _on_user_frame(self, text: str) -> None:
        from polybot.kernel import InboundRecord

        self._last_rx = time.monotonic()
        if text == "PONG":
            return
        assert self._out is not None and self._clock is not None
        raw = text.encode()
        await self._out.send(InboundRecord(self._clock.now(), USER_SOURCE, raw))  # journaled (owner aliased)
        try:
            obj = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return
        msgs = obj if isinstance(obj, list) else [obj]
        events: list[Event] = []
        for m in msgs:
            if isinstance(m, dict):
                try:
                    events.extend(self._translate(m))
                except Exception as exc:  # noqa: BLE001 - a frame we cannot read must not end the executor
                    # (type only: the frame carries the API key in ``owner``; it is journaled, aliased)
                    logger.error("user channel: a {} message could not be translated ({}); see the journal",
                                 str(m.get("event_type", "?"))[:20], type(exc).__name__)  # fmt: skip
        await self._report(events)

    def _translate(self, m: dict[str, Any]) -> list[Event]:
        et = m.get("event_type")
        if et == "order":
            return self._translate_order(m)
        if et == "trade":
            return self._translate_trade(m)
        return []

    def _translate_order(self, m: dict[str, Any]) -> list[Event]:
        h = str(m.get("id", ""))
        o = self._order(self._by_hash.get(h, ""))
        if o is None:
            return []
        typ = str(m.get("type", "")).upper()
        c = self._common(o, h)
        if typ == "PLACEMENT":
            return [OrderAccepted(ts=0, **c)]
        if typ == "CANCELLATION":
            return [OrderCancelled(ts=0, reason=str(m.get("status", "cancelled")).lower()[:100], **c)]
        return []

    def _translate_trade(self, m: dict[str, Any]) -> list[Event]:
        """Our fills in one trade message: the taker order if it is ours, and every maker order
        of ours in ``maker_orders`` (two of ours in one trade both count)."""
        out: list[Event] = []
        tid = str(m.get("id", ""))
        status = str(m.get("status", "")).upper().removeprefix("TRADE_STATUS_")
        legs: list[tuple[str, str, int, int, str]] = []  # (hash, side, price, size, liquidity)
        taker = str(m.get("taker_order_id", ""))
        if taker in self._by_hash:
            legs.append((taker, str(m.get("side", "")), _price(m.get("price")), _shares(m.get("size")), "taker"))
        tside = str(m.get("side", ""))
        tasset = str(m.get("asset_id", ""))
        for mo in m.get("maker_orders") or []:
            if not isinstance(mo, dict):
                continue
            h = str(mo.get("order_id", ""))
            if h not in self._by_hash:
                continue
            side = str(mo.get("side") or "")
            if not side:  # a maker on the same token takes the other side; on the complement, the same
                side = ("SELL" if tside == "BUY" else "BUY") if str(mo.get("asset_id", tasset)) == tasset else tside
            legs.append((h, side, _price(mo.get("price")), _shares(mo.get("matched_amount")), "maker"))
        for h, side, price, size, liq in legs:
            o = self._order(self._by_hash[h])
            if o is None or size <= 0:
                continue
            key = (tid, h)
            prev = self._fill_status.get(key)
            self._fill_status[key] = status
            c = self._common(o, h)
            if status == "FAILED":
                if prev is not None or self.kernel is not None and f"{o.client_id}/{tid}" in self.kernel.fills:
                    out.append(FillReversed(ts=0, trade_id=tid, reason="trade FAILED on chain", **c))
                continue
            if prev is None:
                _, _, _, fees = self._market_meta(o.asset_id)
                fee, rebate = fill_fee(liq, size, price, fees)
                out.append(OrderPartiallyFilled(ts=0, trade_id=tid, side=side if side in ("BUY", "SELL") else o.intent.side,  # type: ignore[arg-type]
                                                price=price, size=size, liquidity=liq, fee=fee, rebate=rebate,  # type: ignore[arg-type]
                                                market=str(m.get("market", "")), **c))  # fmt: skip
            if status in SETTLED and _RANK.get(status, 0) > _RANK.get(prev or "", 0):
                out.append(FillSettlement(ts=0, trade_id=tid, status=status, **c))
            elif prev is not None and _RANK.get(status, 0) < _RANK.get(prev, 0):
                self._fill_status[key] = prev  # a stale report (REST after the user channel): never backwards
            if status == "RETRYING" and prev != "RETRYING":
                logger.warning("trade {} of {} is RETRYING on chain", tid, o.client_id)
        for r in self._orphans.get(tid, ()):
            key = (tid, "client:" + r.client_id)
            prev = self._fill_status.get(key)
            if status != "FAILED" and _RANK.get(status, 0) <= _RANK.get(prev or "", 0):
                continue  # a repeat, or a stale report
            self._fill_status[key] = status
            c = dict(client_id=r.client_id, strategy=r.strategy, asset_id=r.asset_id)
            if status == "FAILED" and prev != "FAILED":
                out.append(FillReversed(ts=0, trade_id=tid, reason="trade FAILED on chain", **c))
            elif status in SETTLED:
                out.append(FillSettlement(ts=0, trade_id=tid, status=status, **c))
        return out

    # ---------------------------------------------------------------- reconciliation

    async def _pages(self, path: str, query: dict[str, str] | None = None, base: str | None = None) -> list[dict[str, Any]]:
        assert self.clob is not None
        out: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(1000):
            q = dict(query or {})
            if cursor:
                q["next_cursor"] = cursor
            r = await self.clob.request("GET", path, query=q, retry=True, base=base, auth="none" if base else "l2")
            if isinstance(r, list):
                out.extend(x for x in r if isinstance(x, dict))
                break
            if not isinstance(r, dict):
                break
            out.extend(x for x in r.get("data") or [] if isinstance(x, dict))
            nxt = r.get("next_cursor") or (r.get("pagination") or {}).get("next_cursor")
            if not nxt or nxt == "LTE=" or nxt == cursor:
                break
            cursor = str(nxt)
        return out

    async def _reconcile(self, why: str) -> None:
        """Bring the kernel to the venue's state: orders, then trades, then positions.
        ``reconciles`` counts the finished ones (what a caller waiting for it needs)."""
        try:
            await self._reconcile_once(why)
        finally:
            self.reconciles += 1

    async def _reconcile_once(self, why: str) -> None:
        k = self.kernel
        assert k is not None and self.clob is not None
        summary: dict[str, int] = {"adopted": 0, "cancelled_unknown": 0, "left_unknown": 0, "closed": 0,
                                   "trades": 0, "corrected": 0}  # fmt: skip
        try:
            venue_open = {str(v.get("id")): v for v in await self._pages("/data/orders")}
            events: list[Event] = []
            stray: list[str] = []
            refused: list[str] = []
            for h, v in venue_open.items():
                cid = self._by_hash.get(h)
                o = self._order(cid) if cid else None
                if o is not None:
                    if o.state in PENDING_STATES:
                        events.append(OrderAccepted(ts=0, **self._common(o, h)))
                    continue
                policy = self.params.unknown_orders
                if policy == "adopt":
                    it = _intent_from_venue(v)
                    if it is not None:
                        cid = "venue-" + h[2:14]
                        self._by_hash[h] = cid
                        # adopted with filled = size_matched (the position comes from the venue's
                        # positions): its trades so far are not fills of ours to count again
                        for t in v.get("associate_trades") or []:
                            self._fill_status.setdefault((str(t), h), "MATCHED")
                        events.append(OrderAdopted(ts=0, client_id=cid, strategy=it.strategy, asset_id=it.asset_id,
                                                   venue_order_id=h, intent=it, filled=_shares(v.get("size_matched"))))  # fmt: skip
                        summary["adopted"] += 1
                elif policy == "cancel":
                    stray.append(h)
                elif policy == "refuse":
                    refused.append(h)
                else:
                    summary["left_unknown"] += 1
            if refused:
                msg = unknown_orders_message(len(refused), refused)
                if not self._unknown_checked:  # the start check could not run: this is it
                    logger.critical(msg)
                    await self._report([ExecutorNotice(ts=0, executor=self.name, kind="unknown_orders_refused", detail=msg[:300])])
                    raise UnknownOrdersError(msg)
                logger.error("reconciliation ({}): {} open order(s) at the venue the journal does not know (another "
                             "process on this key?): left alone", why, len(refused))  # fmt: skip
                events.append(ExecutorNotice(ts=0, executor=self.name, kind="unknown_orders",
                                             detail=f"{len(refused)} unknown open order(s) left: {', '.join(refused[:3])}"))  # fmt: skip
                summary["left_unknown"] += len(refused)
            self._unknown_checked = True
            await self._report(events)
            if stray:
                try:
                    await self.clob.request("DELETE", "/orders", stray, retry=True)
                    summary["cancelled_unknown"] = len(stray)
                except HttpError as err:
                    logger.error("reconciliation: cancelling {} unknown order(s) failed: {}", len(stray), err)
            # trades first (fills we missed), then the orders the venue no longer has open
            summary["trades"] = await self._sync_trades()
            closing: list[Event] = []
            for o in list(k.orders.open_orders()):
                h = o.venue_order_id or (self._signed[o.client_id].order_hash if o.client_id in self._signed else "")
                if not h or h in venue_open or h in self._posting:
                    continue
                try:
                    v = await self.clob.request("GET", f"/data/order/{h}", retry=True)
                except HttpError as err:
                    if err.status != 404:
                        continue
                    v = None
                if isinstance(v, dict) and v.get("id"):
                    st = str(v.get("status", "")).upper()
                    if st.startswith("CANCELED") or st in ("INVALID", "UNMATCHED"):
                        closing.append(OrderCancelled(ts=0, reason=f"venue: {st.lower()}", **self._common(o, h)))
                        summary["closed"] += 1
                    elif st == "MATCHED" and _shares(v.get("size_matched")) < o.intent.size:
                        closing.append(OrderCancelled(ts=0, reason="venue: matched in part, rest gone", **self._common(o, h)))
                        summary["closed"] += 1
                elif o.state in PENDING_STATES and o.client_id in self._signed:
                    await self._resolve(o, self._signed[o.client_id], resend=o.client_id not in self._recovered)
                else:
                    closing.append(OrderCancelled(ts=0, reason="venue has no such order", **self._common(o, h)))
                    summary["closed"] += 1
            await self._report(closing)
            summary["corrected"] = await self._reconcile_positions()
        except HttpError as err:
            logger.error("reconciliation ({}) failed: {}; it runs again after the next reconnect", why, err)
            await self._report([ExecutorNotice(ts=0, executor=self.name, kind="reconcile_failed", detail=str(err)[:300])])
            return
        detail = ", ".join(f"{k_} {v}" for k_, v in summary.items())
        logger.info("reconciled ({}): {}", why, detail)
        await self._report([ExecutorNotice(ts=0, executor=self.name, kind="reconciled", detail=f"{why}: {detail}")])

    async def _sync_trades(self) -> int:
        """Recent trades from REST, as the user channel would have reported them (the kernel
        drops the fills it already has)."""
        after = int(time.time() - self.params.trades_lookback_s)
        trades = await self._pages("/data/trades", {"after": str(after)})
        events: list[Event] = []
        for t in trades:
            events.extend(self._translate_trade(t))
        await self._report(events)
        return len(trades)

    async def _reconcile_positions(self) -> int:
        """Data API v2 positions vs the account's. The trades are fetched again *after* the
        positions and reported first, so every fill the venue's figure includes reaches the
        kernel before any correction (the kernel books only the difference left when it gets
        there). Assets with a fill not yet CONFIRMED, as the kernel or this executor knows it,
        are skipped: the venue's figure lags settlement."""
        k = self.kernel
        assert k is not None and self.creds is not None
        rows = await self._pages("/v2/positions", {"user": self.creds.funder, "sizeThreshold": "0"},
                                 base=self.params.data_url.rstrip("/"))  # fmt: skip
        await self._sync_trades()
        venue: dict[str, tuple[int, int, str]] = {}
        for r in rows:
            aid = str(r.get("asset", ""))
            if aid:
                venue[aid] = (_shares(r.get("size")), _price(r.get("avgPrice")), str(r.get("conditionId", "")))
        unsettled = {rec.asset_id for rec in k.fills.values() if not rec.reversed and rec.status != "CONFIRMED"}
        for (_tid, h), st in self._fill_status.items():
            if st not in ("CONFIRMED", "FAILED"):
                o = self._order(self._by_hash.get(h, ""))
                if o is not None:
                    unsettled.add(o.asset_id)
        events: list[Event] = []
        for aid in sorted(set(venue) | {a for a, p in k.portfolio.positions.items() if p.size}):
            if aid in unsettled:
                continue
            size, avg, market = venue.get(aid, (0, 0, ""))
            ours = k.portfolio.size(aid)
            if size != ours:
                events.append(PositionCorrected(ts=0, asset_id=aid, market=market, old_size=ours, new_size=size,
                                                price=avg, reason="Data API v2 positions"))  # fmt: skip
        await self._report(events)
        return len(events)


# ---------------------------------------------------------------------- helpers


def _decimal_units(x: Any) -> int:
    if x is None or x == "":
        return 0
    if isinstance(x, bool):
        return 0
    if isinstance(x, int):
        return x * SCALE
    if isinstance(x, float):  # a JSON number (Data API): to the nearest base unit
        x = f"{x:.6f}"
    try:
        return to_units(str(x))
    except ValueError:
        return 0


_shares = _decimal_units
_price = _decimal_units


def _matched_shares(side: str, a: dict[str, Any]) -> int | None:
    """Shares a marketable order matched at once, from the submit answer's amounts (BUY: taking
    = shares; SELL: making = shares); None when the answer does not say."""
    key = "takingAmount" if side == "BUY" else "makingAmount"
    v = a.get(key)
    if v is None or v == "":
        return None
    return _decimal_units(v)


def _duplicate(a: dict[str, Any]) -> bool:
    msg = str(a.get("errorMsg") or a.get("error") or "").lower()
    return "already exists" in msg or "duplicate" in msg


def _error_answers(err: HttpError, n: int) -> list[dict[str, Any]]:
    try:
        body = msgspec.json.decode(err.detail.split(": ", 1)[1]) if ": " in err.detail else None
    except (msgspec.DecodeError, IndexError):
        body = None
    if isinstance(body, list) and len(body) == n:
        return [b if isinstance(b, dict) else {"success": False, "errorMsg": str(b)} for b in body]
    msg = (body.get("errorMsg") or body.get("error")) if isinstance(body, dict) else None
    return [{"success": False, "errorMsg": msg or f"HTTP {err.status}"}] * n


def _intent_from_venue(v: dict[str, Any]) -> OrderIntent | None:
    try:
        side = str(v.get("side", "")).upper()
        if side not in ("BUY", "SELL"):
            return None
        return OrderIntent(strategy="adopted", asset_id=str(v["asset_id"]), market=str(v.get("market", "")),
                           side=side, price=_price(v.get("price")), size=_shares(v.get("original_size")),  # type: ignore[arg-type]
                           tif="GTD" if str(v.get("order_type", "")).upper() == "GTD" else "GTC",
                           note="adopted from the venue")  # fmt: skip
    except (KeyError, ValueError):
        return None


def store_api_creds(path: Path, api: ApiCreds) -> None:
    """Add the derived L2 credentials to the secrets file (TOML), created with mode 0600."""
    import os

    lines: list[str] = []
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines()
                 if not ln.split("=", 1)[0].strip() in ("api_key", "api_secret", "api_passphrase")]  # fmt: skip
    lines += [f'api_key = "{api.api_key}"', f'api_secret = "{api.secret}"', f'api_passphrase = "{api.passphrase}"']
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    logger.info("API credentials stored in {}", path)
