"""The trading side of the exchange simulator: CLOB V2 auth, orders, matching, balances, the user
channel and trading faults, on the same loopback server as :mod:`adapters.polymarket.sim`.

:class:`SimExchange` is created by :class:`~adapters.polymarket.sim.SimServer` (``server.exchange``)
and speaks PROTOCOL.md §2 (user channel), §3.2 (auth), §3.3 (trading), §3.4 (errors), §5.2 (fill
amounts) and §7 (EIP-712):

* **Auth.** L1 ``GET /auth/derive-api-key`` and ``POST /auth/api-key`` verify the ClobAuth EIP-712
  signature of ``POLY_ADDRESS``; the credentials are a pure function of (address, nonce), so derive
  works whether or not the key was created first. Every trading/account route checks the L2 HMAC
  over ``timestamp + METHOD + path (no query) + raw body``; failures count (``auth_failures``).
* **Orders.** ``POST /order`` / ``/orders`` (at most 15) verify the V2 order signature against the
  exchange of the market (CTFExchangeV2 domain "2", its neg-risk twin when the market is neg-risk,
  ExchangeV3 domain "3" for Protocol-V2 position ids), signature types 0-3 (type 3 is the
  ERC-1271 "TypedDataSign" wrapper of py-clob-client-v2), and reject like the venue: tick, price
  range, minimum size (5 shares resting) and notional ($1 marketable), balance (what open orders
  reserve counts), post-only crossing, GTD expiration, duplicate order hash, unknown token.
  The order id is the EIP-712 order hash.
* **Matching.** A marketable order takes liquidity from the walk's synthetic book (YES terms; the
  NO token trades against the mirror), price-improving at each level, and the server publishes the
  trade-triggered ``book`` frames and ``last_trade_price`` prints exactly as for the walk's own
  trades, so market-channel hashes keep verifying. The three deepest levels of each side are never
  taken (the walk needs them). **Resting orders are kept here, not drawn into the public book**:
  the walk is unchanged by them. After each walk event a resting BUY whose token's best ask is at or
  below its price (a SELL: best bid at or above) fills as MAKER at its own price for at most that
  level's size; the synthetic book is not changed by such fills. Our orders never match each
  other. ``/_sim/cross`` sends an external taker against our resting orders.
* **Matching delay.** On a sports market whose game is live (``SimConfig.sports``), a marketable
  order is checked as usual, then answered ``{"success":true,"status":"delayed","orderID":...}``
  with empty amounts; it holds its collateral or shares, shows ``DELAYED`` in ``/data/order``
  and can be canceled. Gamma ``secondsDelay`` seconds later it is matched against the book AS IT
  IS THEN (a stale price may be gone): it fills (``trade`` + order ``UPDATE``), rests (GTC/GTD:
  ``PLACEMENT``) or is canceled (``CANCELLATION``: a FOK that cannot fill whole, an FAK or a
  remainder below 5 shares, a closed market, a balance gone). The user channel says nothing
  before the match.
* **Balances** per account (the order's ``maker``: the EOA, or the funder for proxy/safe/1271
  orders): pUSD collateral (``SimConfig.cash``) and shares per token; takers pay
  ``taker_fee`` of the market's Gamma fee schedule, makers pay nothing. ``SimConfig.allowance``
  (pUSD, None = unlimited) caps collateral spending and reads back in ``/balance-allowance``;
  an allowance of 0 also refuses SELL orders (no ``setApprovalForAll``).
* **Trades** go MATCHED, then MINED and CONFIRMED after ``mined_ms`` / ``confirmed_ms``;
  ``fail_next_trade`` makes the next one FAILED (its balance moves and order fills are undone; the
  public book is not restored), ``retry_next_trade`` inserts RETRYING.
* **User channel** ``/ws/user``: the auth message, optional market (condition id) filter,
  ``subscribe``/``unsubscribe`` operations, ``PING``/``PONG``; ``order`` events (PLACEMENT when an
  order rests, UPDATE on each match, CANCELLATION on cancel, expiry and heartbeat kill) and one
  ``trade`` event per status transition, to the sockets of the key that owns the orders.
* **Heartbeats** ``POST /v1/heartbeats``: once a key has sent one, silence longer than
  ``heartbeat_timeout_s`` cancels all its open orders. Any heartbeat (any id) restarts the timer.
* **Data API / geoblock**: ``GET /v2/positions?user=``, ``GET /api/geoblock``.
* **Faults and introspection** under ``/_sim/<action>`` and as methods: ``drop_user``,
  ``delay_acks?ms=``, ``timeout_next_submit?ms=``, ``error_next?status=&n=&route=``, ``fail_next_trade``,
  ``retry_next_trade``, ``cross?asset=&side=&size=&price=``, ``orders``, ``accounts``, ``trades``,
  ``heartbeats``, ``auth_failures``.

Ids (api keys, trade ids, transaction hashes, synthetic counterparties) come from seeded RNGs.
Trading is not available while the server replays a recording. The EIP-712 checks import
eth-account / eth-utils lazily (the ``live`` extra), so the market-data simulator runs without them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web
from loguru import logger

from polybot.bookhash import ltp_str
from polybot.events import FeeSchedule
from polybot.units import ONE, from_units, to_units

if TYPE_CHECKING:  # pragma: no cover
    from .sim import SimServer, _Market

__all__ = ["SignedOrder", "SimExchange", "exchange_for", "is_v3_position_id", "order_hash_and_signer", "parse_order",
           "clob_auth_digest", "api_credentials"]  # fmt: skip

USER_WS_PATH = "/ws/user"
#: chain id -> (CTFExchangeV2, neg-risk CTFExchangeV2, ExchangeV3) (PROTOCOL.md §7.1). The venue keeps
#: its own copy on purpose: were it to share the client's (adapters/polymarket/signing.py), a wrong
#: address on our side would sign and verify against the same mistake and pass.
EXCHANGES: dict[int, tuple[str, str, str]] = {
    137: ("0xE111180000d2663C0091e4f400237545B87B996B", "0xe2222d279d744050d28e00520010520000310F59",
          "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa"),
    80002: ("0xE111180000d2663C0091e4f400237545B87B996B", "0xe2222d279d744050d28e00520010520000310F59",
            "0x9fE6e61422AdB6F610d8597F9684b16912D50C3D"),
}  # fmt: skip
MAX_UINT = str(2**256 - 1)
DOMAIN_NAME = "Polymarket CTF Exchange"
CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"
ORDER_TYPE = ("Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,"
              "uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,bytes32 builder)")
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
CLOB_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId)"
CLOB_AUTH_TYPE = "ClobAuth(address address,string timestamp,uint256 nonce,string message)"
TYPED_DATA_SIGN_TYPE = ("TypedDataSign(Order contents,string name,string version,uint256 chainId,"
                        "address verifyingContract,bytes32 salt)" + ORDER_TYPE)  # fmt: skip
ORDER_TYPES = ("GTC", "GTD", "FOK", "FAK")
MAX_BATCH = 15
MIN_SHARES = 5 * ONE  # resting orders
MIN_NOTIONAL = ONE  # marketable orders: $1
GTD_BUFFER_S = 60
PROTECTED_LEVELS = 3  # the deepest levels of each side the walk keeps
PAGE_LIMIT = 500
END_CURSOR = "LTE="
UNAUTHORIZED = "Unauthorized/Invalid api key"
BAD_L1 = "Invalid L1 Request headers"
FOK_KILLED = "order couldn't be fully filled. FOK orders are fully filled or killed."
NO_BALANCE = "not enough balance / allowance"
LIQUIDITY_OWNER = "sim-liquidity"
EXTERNAL_OWNER = "sim-external"
ERROR_TEXT = {429: "Too Many Requests", 425: "Too Early: the service is not ready, retry",
              503: "Trading is currently disabled. Check polymarket.com for updates",
              500: "Internal Server Error"}  # fmt: skip


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _word(v: int) -> bytes:
    return v.to_bytes(32, "big")


def _addr_word(a: str) -> bytes:
    return bytes(12) + _addr_bytes(a)


def _addr_bytes(a: str) -> bytes:
    if not isinstance(a, str) or len(a) != 42 or a[:2].lower() != "0x":
        raise ValueError(f"not an address: {a!r}")
    return bytes.fromhex(a[2:])


def _keccak(data: bytes) -> bytes:
    from eth_utils import keccak

    return bytes(keccak(primitive=data))


def _kt(text: str) -> bytes:
    return _keccak(text.encode())


def _recover(digest: bytes, sig: bytes) -> str | None:
    """The address that signed ``digest`` (a 65-byte r|s|v signature), or None."""
    from eth_account import Account

    if len(sig) != 65:
        return None
    try:
        return str(Account._recover_hash(digest, signature=sig))
    except Exception:  # noqa: BLE001 - any malformed signature is simply invalid
        return None


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def api_credentials(address: str, nonce: int) -> dict[str, str]:
    """The deterministic L2 credentials of (address, nonce): ``{apiKey, secret, passphrase}``."""
    h = hashlib.sha256(f"polybot-sim/api-key/{address.lower()}/{nonce}".encode()).digest()
    return {"apiKey": str(uuid.UUID(bytes=h[:16], version=4)),
            "secret": base64.urlsafe_b64encode(hashlib.sha256(h + b"/secret").digest()).decode(),
            "passphrase": hashlib.sha256(h + b"/passphrase").hexdigest()}  # fmt: skip


def clob_auth_digest(address: str, timestamp: str, nonce: int, chain_id: int) -> bytes:
    """The EIP-712 digest of the L1 ClobAuth message (PROTOCOL.md §3.2)."""
    dom = _keccak(_kt(CLOB_DOMAIN_TYPE) + _kt("ClobAuthDomain") + _kt("1") + _word(chain_id))
    st = _keccak(_kt(CLOB_AUTH_TYPE) + _addr_word(address) + _kt(timestamp) + _word(nonce) + _kt(CLOB_AUTH_MESSAGE))
    return _keccak(b"\x19\x01" + dom + st)


def is_v3_position_id(token: int) -> bool:
    """Protocol-V2 position ids (signed against ExchangeV3) have zero reserved bits 40-103
    (PROTOCOL.md §7.1, polymarket-client ``is_v2_position_id``) and a condition id above them;
    small toy ids such as the vectors' 1234 are not taken for position ids."""
    return token >> 104 != 0 and (token >> 40) & ((1 << 64) - 1) == 0


def exchange_for(token: int, neg_risk: bool, chain_id: int) -> tuple[str, str]:
    """(domain version, verifying contract) an order for ``token`` must be signed against."""
    v2, neg, v3 = EXCHANGES.get(chain_id, EXCHANGES[137])
    if is_v3_position_id(token):
        return "3", v3
    return "2", (neg if neg_risk else v2)


class SignedOrder:
    """The ``order`` object of a POST /order body, parsed and checked for shape."""

    __slots__ = ("salt", "maker", "signer", "token", "maker_amount", "taker_amount", "side", "sig_type",
                 "timestamp", "metadata", "builder", "expiration", "signature")  # fmt: skip

    def __init__(self, d: Any) -> None:
        if not isinstance(d, dict):
            raise ValueError("order must be an object")
        try:
            self.salt = int(d["salt"])
            self.maker, self.signer = str(d["maker"]), str(d["signer"])
            _addr_bytes(self.maker), _addr_bytes(self.signer)
            self.token = str(d["tokenId"])
            self.maker_amount, self.taker_amount = int(str(d["makerAmount"])), int(str(d["takerAmount"]))
            self.side = {0: "BUY", 1: "SELL"}.get(d["side"], d["side"])
            self.sig_type = int(d["signatureType"])
            self.timestamp = int(str(d["timestamp"]))
            self.metadata = bytes.fromhex(str(d.get("metadata") or "0x" + "00" * 32)[2:])
            self.builder = bytes.fromhex(str(d.get("builder") or "0x" + "00" * 32)[2:])
            self.expiration = int(str(d.get("expiration") or "0"))
            self.signature = str(d["signature"])
            sig = bytes.fromhex(self.signature[2:]) if self.signature[:2] == "0x" else b""
        except (KeyError, TypeError) as exc:
            raise ValueError(f"missing or bad order field: {exc}") from exc
        if not self.token.isdigit() or int(self.token) >= 2**256:
            raise ValueError("tokenId must be a decimal uint256")
        if self.side not in ("BUY", "SELL"):
            raise ValueError("side must be BUY or SELL")
        if self.sig_type not in (0, 1, 2, 3):
            raise ValueError("signatureType must be 0, 1, 2 or 3")
        if len(self.metadata) != 32 or len(self.builder) != 32:
            raise ValueError("metadata and builder must be bytes32")
        if self.maker_amount <= 0 or self.taker_amount <= 0 or self.salt < 0 or self.expiration < 0:
            raise ValueError("amounts must be positive")
        if not sig:
            raise ValueError("signature must be 0x-hex")

    def struct_hash(self) -> bytes:
        return _keccak(_kt(ORDER_TYPE) + _word(self.salt) + _addr_word(self.maker) + _addr_word(self.signer)
                       + _word(int(self.token)) + _word(self.maker_amount) + _word(self.taker_amount)
                       + _word(0 if self.side == "BUY" else 1) + _word(self.sig_type) + _word(self.timestamp)
                       + self.metadata + self.builder)  # fmt: skip


def parse_order(d: Any) -> SignedOrder:
    return SignedOrder(d)


def order_hash_and_signer(o: SignedOrder, chain_id: int, neg_risk: bool) -> tuple[str, str | None]:
    """(order hash, the EOA that signed it or None when the signature is invalid).

    Types 0-2 are plain EIP-712 signatures (type 0 also needs signer == maker). Type 3 (POLY_1271)
    is py-clob-client-v2's wrapper: inner 65-byte signature | exchange domain separator | Order
    struct hash | the Order type string | its length (2 bytes); the inner signature signs the
    Solady ``TypedDataSign`` digest of the deposit wallet (``signer``)."""
    version, contract = exchange_for(int(o.token), neg_risk, chain_id)
    dom = _keccak(_kt(DOMAIN_TYPE) + _kt(DOMAIN_NAME) + _kt(version) + _word(chain_id) + _addr_word(contract))
    st = o.struct_hash()
    digest = _keccak(b"\x19\x01" + dom + st)
    oid = "0x" + digest.hex()
    sig = bytes.fromhex(o.signature[2:])
    if o.sig_type in (0, 1, 2):
        rec = _recover(digest, sig)
        if not _same(rec, o.signer) or (o.sig_type == 0 and not _same(o.signer, o.maker)):
            return oid, None
        return oid, rec
    ctype = ORDER_TYPE.encode()
    if len(sig) != 65 + 32 + 32 + len(ctype) + 2:
        return oid, None
    inner, app, contents = sig[:65], sig[65:97], sig[97:129]
    if app != dom or contents != st or sig[129:-2] != ctype or int.from_bytes(sig[-2:], "big") != len(ctype):
        return oid, None
    tds = _keccak(_kt(TYPED_DATA_SIGN_TYPE) + st + _kt("DepositWallet") + _kt("1") + _word(chain_id)
                  + _addr_word(o.signer) + bytes(32))  # fmt: skip
    return oid, _recover(_keccak(b"\x19\x01" + dom + tds), inner)


# ---------------------------------------------------------------------------------------------
# state


class _Key:
    __slots__ = ("api_key", "secret", "passphrase", "address", "nonce", "created", "funders", "hb_id", "hb_handle",
                 "hb_last", "hb_count", "hb_kills")  # fmt: skip

    def __init__(self, creds: dict[str, str], address: str, nonce: int) -> None:
        self.api_key, self.secret, self.passphrase = creds["apiKey"], creds["secret"], creds["passphrase"]
        self.address = address
        self.nonce = nonce
        self.created = False
        self.funders: dict[int, str] = {}  # signature type -> the maker (funder) address last used
        self.hb_id = ""
        self.hb_handle: asyncio.TimerHandle | None = None
        self.hb_last = 0.0
        self.hb_count = 0
        self.hb_kills = 0


class _Account:
    __slots__ = ("address", "cash", "shares", "cost")

    def __init__(self, address: str, cash: int) -> None:
        self.address = address
        self.cash = cash
        self.shares: dict[str, int] = {}
        self.cost: dict[str, int] = {}  # cost basis of the shares held (collateral, fees excluded)


class _Order:
    __slots__ = ("id", "owner", "acct", "maker", "signer", "asset", "market", "outcome", "side", "price",
                 "maker_amount", "taker_amount", "size", "order_type", "expiration", "created_ns", "post_only",
                 "sig_type", "size_matched", "status", "trades", "seq")  # fmt: skip

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)
        self.size_matched = 0
        self.status = "LIVE"
        self.trades: list[str] = []

    @property
    def remaining(self) -> int:
        return self.size - self.size_matched

    def reserve(self, shares: int | None = None) -> int:
        """Collateral (BUY) a fill of ``shares`` (default: the remaining size) costs at the order's
        own price: the §5.2 counter amount, rounded against the buyer."""
        q = self.remaining if shares is None else shares
        return _ceil_div(q * self.maker_amount, self.taker_amount)

    def proceeds(self, shares: int) -> int:
        """Collateral a SELL fill of ``shares`` receives: floor(fill x takerAmount / makerAmount)."""
        return shares * self.taker_amount // self.maker_amount


class _Trade:
    __slots__ = ("id", "market", "asset", "outcome", "side", "size", "price", "status", "history", "match_ns",
                 "last_ns", "taker_order_id", "taker_owner", "taker_address", "maker_orders", "txh", "fee_bps",
                 "ops", "fills", "owners", "fail", "retry")  # fmt: skip

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)
        self.status = "MATCHED"
        self.history = ["MATCHED"]
        self.ops: list[tuple[str, str, int, int, int]] = []  # (account, asset, d_cash, d_shares, d_cost)
        self.fills: list[tuple[_Order, int]] = []  # our orders and what this trade filled of them
        self.fail = False
        self.retry = False


class _UserConn:
    __slots__ = ("ws", "transport", "key", "all", "markets", "excluded", "queue", "task")

    def __init__(self, ws: web.WebSocketResponse, transport: Any) -> None:
        self.ws = ws
        self.transport = transport
        self.key: _Key | None = None
        self.all = True
        self.markets: set[str] = set()
        self.excluded: set[str] = set()
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def wants(self, cid: str) -> bool:
        return (self.all and cid not in self.excluded) or cid in self.markets


class _Reject(Exception):
    def __init__(self, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.msg = msg
        self.status = status


Fill = tuple[int, int, int]  # (price in the order's token terms, YES-book price, shares)


# ---------------------------------------------------------------------------------------------
# the exchange



async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a simulator's background task and wait for it to end (whatever it raised)."""
    if task is not None:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - it is being stopped
            pass
    return None

class SimExchange:
    """Orders, matching, balances and the user channel of a :class:`SimServer`."""

    def __init__(self, server: SimServer, cfg: Any) -> None:
        self.server = server
        self.cfg = cfg
        self.chain_id = int(cfg.chain_id)
        self._rng = random.Random(f"polybot-sim/{cfg.seed}/exchange")
        self._cash0 = to_units(str(cfg.cash))
        self._allowance = None if cfg.allowance is None else to_units(str(cfg.allowance))
        self._keys: dict[str, _Key] = {}
        self._accounts: dict[str, _Account] = {}
        self._orders: dict[str, _Order] = {}
        self._open: dict[str, _Order] = {}
        self._posts: dict[str, int] = {}
        self._trades: dict[str, _Trade] = {}
        self._conns: set[_UserConn] = set()
        self._seq = 0
        self._fees: dict[str, FeeSchedule | None] = {}
        self._handles: set[asyncio.TimerHandle] = set()
        self._task: asyncio.Task[None] | None = None
        self.auth_failures = 0
        self.heartbeat_kills = 0
        self._ack_delay_ms = 0
        self._hold_next_ms = 0
        self._error_status = 0
        self._error_n = 0
        self._error_route = ""
        self._fail_next = False
        self._retry_next = False

    # -- lifecycle ---------------------------------------------------------------------------

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get(USER_WS_PATH, self._h_ws_user)
        r.add_get("/auth/derive-api-key", self._h_derive)
        r.add_post("/auth/api-key", self._h_create)
        r.add_get("/version", self._h_version)
        r.add_post("/order", self._l2(self._h_post_order, submit=True))
        r.add_post("/orders", self._l2(self._h_post_orders, submit=True))
        r.add_delete("/order", self._l2(self._h_cancel_one))
        r.add_delete("/orders", self._l2(self._h_cancel_many))
        r.add_delete("/cancel-all", self._l2(self._h_cancel_all))
        r.add_delete("/cancel-market-orders", self._l2(self._h_cancel_market))
        r.add_get("/data/orders", self._l2(self._h_open_orders))
        r.add_get("/data/order/{id}", self._l2(self._h_order))
        r.add_get("/data/trades", self._l2(self._h_trades))
        r.add_get("/balance-allowance", self._l2(self._h_balance))
        r.add_post("/v1/heartbeats", self._l2(self._h_heartbeat))
        r.add_get("/v2/positions", self._h_positions)
        r.add_get("/api/geoblock", self._h_geoblock)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._housekeeping())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        for h in list(self._handles):
            h.cancel()
        self._handles.clear()
        for k in self._keys.values():
            if k.hb_handle is not None:
                k.hb_handle.cancel()
                k.hb_handle = None
        for c in list(self._conns):
            try:
                await asyncio.wait_for(c.ws.close(code=1001, message=b"server shutdown"), 0.5)
            except (TimeoutError, Exception):  # noqa: BLE001
                self._abort(c)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            try:
                self._expire()
            except Exception:  # noqa: BLE001 - never stop the sweep
                logger.exception("sim exchange: expiry sweep failed")

    def _later(self, delay_s: float, fn: Callable[..., None], *args: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            fn(*args)
            return
        holder: list[asyncio.TimerHandle] = []

        def run() -> None:
            self._handles.discard(holder[0])
            fn(*args)

        h = loop.call_later(max(0.0, delay_s), run)
        holder.append(h)
        self._handles.add(h)

    # -- helpers ---------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self.server._clock())

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _hex32(self) -> str:
        return f"0x{self._rng.getrandbits(256):064x}"

    def _addr(self) -> str:
        return f"0x{self._rng.getrandbits(160):040x}"

    @staticmethod
    def _json(obj: Any, status: int = 200) -> web.Response:
        return web.Response(text=_compact(obj), status=status, content_type="application/json")

    def _account(self, address: str) -> _Account:
        a = self._accounts.get(address.lower())
        if a is None:
            a = self._accounts[address.lower()] = _Account(address, self._cash0)
        return a

    def _market(self, token: str) -> _Market | None:
        return self.server._by_asset.get(token)

    def _fee_schedule(self, m: _Market) -> FeeSchedule | None:
        """The market's fee schedule exactly as the server publishes it in Gamma."""
        if m.cid not in self._fees:
            g = self.server._gamma_market(m)
            fs = g.get("feeSchedule")
            self._fees[m.cid] = (FeeSchedule(rate_ppm=to_units(str(fs["rate"])), exponent=int(fs["exponent"]),
                                             taker_only=bool(fs.get("takerOnly", True)),
                                             rebate_ppm=to_units(str(fs.get("rebateRate", 0))))
                                 if g.get("feesEnabled") and isinstance(fs, dict) else None)  # fmt: skip
        return self._fees[m.cid]

    def _taker_fee(self, m: _Market, shares: int, price: int) -> int:
        from polybot.execution.rules import taker_fee

        return taker_fee(shares, price, self._fee_schedule(m))

    def _reserved(self, acct: str, asset: str | None) -> int:
        """What the account's open orders hold: collateral (asset None) or shares of ``asset``."""
        if asset is None:
            return sum(o.reserve() for o in self._open.values() if o.acct == acct and o.side == "BUY")
        return sum(o.remaining for o in self._open.values() if o.acct == acct and o.side == "SELL" and o.asset == asset)

    def _outcome(self, m: _Market, asset: str) -> str:
        return m.outcomes[0] if asset == m.yes else m.outcomes[1]

    # -- user channel --------------------------------------------------------------------------

    def _send(self, key: str, cid: str, msg: dict[str, Any]) -> None:
        text = _compact(msg)
        for c in list(self._conns):
            if c.key is not None and c.key.api_key == key and c.wants(cid):
                c.queue.put_nowait(text)

    def _order_msg(self, o: _Order, typ: str) -> dict[str, Any]:
        return {"asset_id": o.asset, "associate_trades": list(o.trades) or None,
                "created_at": str(o.created_ns // 1_000_000_000), "event_type": "order",
                "expiration": str(o.expiration), "id": o.id, "maker_address": o.maker, "market": o.market,
                "order_owner": o.owner, "order_type": o.order_type, "original_size": from_units(o.size),
                "outcome": o.outcome, "owner": o.owner, "price": from_units(o.price), "side": o.side,
                "size_matched": from_units(o.size_matched), "status": o.status,
                "timestamp": str(self._now_ns() // 1_000_000), "type": typ}  # fmt: skip

    def _order_event(self, o: _Order, typ: str) -> None:
        self._send(o.owner, o.market, self._order_msg(o, typ))

    def _order_rest(self, o: _Order) -> dict[str, Any]:
        return {"id": o.id, "status": o.status, "owner": o.owner, "maker_address": o.maker, "market": o.market,
                "asset_id": o.asset, "side": o.side, "original_size": from_units(o.size),
                "size_matched": from_units(o.size_matched), "price": from_units(o.price), "outcome": o.outcome,
                "expiration": str(o.expiration), "order_type": o.order_type,
                "created_at": str(o.created_ns // 1_000_000_000), "associate_trades": list(o.trades)}  # fmt: skip

    def _trade_msg(self, t: _Trade, key: str) -> dict[str, Any]:
        return {"asset_id": t.asset, "bucket_index": 0, "event_type": "trade", "fee_rate_bps": t.fee_bps,
                "id": t.id, "last_update": str(t.last_ns // 1_000_000_000), "maker_address": t.taker_address,
                "maker_orders": t.maker_orders, "market": t.market,
                "match_time": str(t.match_ns // 1_000_000_000), "outcome": t.outcome, "owner": t.taker_owner,
                "price": from_units(t.price), "side": t.side, "size": from_units(t.size), "status": t.status,
                "taker_order_id": t.taker_order_id, "timestamp": str(self._now_ns() // 1_000_000),
                "trade_owner": t.taker_owner, "trader_side": "TAKER" if key == t.taker_owner else "MAKER",
                "transaction_hash": t.txh, "type": "TRADE"}  # fmt: skip

    def _trade_event(self, t: _Trade) -> None:
        for key in t.owners:
            self._send(key, t.market, self._trade_msg(t, key))

    async def _writer(self, c: _UserConn) -> None:
        try:
            while True:
                await c.ws.send_str(await c.queue.get())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            logger.debug("sim exchange: user writer stopped: {!r}", exc)

    def _abort(self, c: _UserConn) -> None:
        if c.task is not None:
            c.task.cancel()
        if c.transport is not None:
            c.transport.abort()
        self._conns.discard(c)

    async def _h_ws_user(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        c = _UserConn(ws, request.transport)
        c.task = asyncio.get_running_loop().create_task(self._writer(c))
        self._conns.add(c)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if msg.data == "PING":
                    c.queue.put_nowait("PONG")
                    continue
                if not self._on_user_text(c, msg.data):
                    self.auth_failures += 1
                    c.task.cancel()
                    await ws.close(code=4401, message=UNAUTHORIZED.encode())
                    break
        except Exception as exc:  # noqa: BLE001
            logger.debug("sim exchange: user ws ended: {!r}", exc)
        finally:
            self._conns.discard(c)
            if c.task is not None:
                c.task.cancel()
        return ws

    def _on_user_text(self, c: _UserConn, data: str) -> bool:
        """Apply one client message; False: refused authentication (the socket is closed)."""
        try:
            obj = json.loads(data)
        except ValueError:
            logger.warning("sim exchange: ignored a non-JSON user-channel message {!r}", data[:200])
            return c.key is not None
        if not isinstance(obj, dict):
            return c.key is not None
        markets = [x for x in obj.get("markets") or [] if isinstance(x, str)]
        if c.key is None or "auth" in obj:
            auth = obj.get("auth")
            k = self._keys.get(auth.get("apiKey", "")) if isinstance(auth, dict) else None
            if k is None or not isinstance(auth, dict) or auth.get("secret") != k.secret or \
                    auth.get("passphrase") != k.passphrase:  # fmt: skip
                return False
            c.key = k
            c.all, c.markets, c.excluded = not markets, set(markets), set()
            return True
        op = obj.get("operation")
        if op == "subscribe":
            c.markets.update(markets)
            c.excluded.difference_update(markets)
        elif op == "unsubscribe":
            c.markets.difference_update(markets)
            c.excluded.update(markets)
        else:
            logger.warning("sim exchange: ignored user-channel message {!r}", data[:200])
        return True

    def drop_user(self) -> int:
        """Close every user-channel socket abruptly (no close frame)."""
        n = len(self._conns)
        for c in list(self._conns):
            self._abort(c)
        return n

    # -- auth ------------------------------------------------------------------------------

    def _l1(self, request: web.Request) -> _Key | None:
        h = request.headers
        try:
            address, ts, nonce = h["POLY_ADDRESS"], h["POLY_TIMESTAMP"], int(h.get("POLY_NONCE", "0"))
            sig = bytes.fromhex(h["POLY_SIGNATURE"].removeprefix("0x"))
            rec = _recover(clob_auth_digest(address, ts, nonce, self.chain_id), sig)
        except (KeyError, ValueError):
            rec = None
        if rec is None or not _same(rec, address):
            self.auth_failures += 1
            return None
        creds = api_credentials(rec, nonce)
        k = self._keys.get(creds["apiKey"])
        if k is None:
            k = self._keys[creds["apiKey"]] = _Key(creds, rec, nonce)
        return k

    @staticmethod
    def _creds(k: _Key) -> dict[str, str]:
        return {"apiKey": k.api_key, "secret": k.secret, "passphrase": k.passphrase}

    async def _h_derive(self, request: web.Request) -> web.Response:
        k = self._l1(request)
        return self._json(self._creds(k)) if k is not None else self._json({"error": BAD_L1}, 401)

    async def _h_create(self, request: web.Request) -> web.Response:
        k = self._l1(request)
        if k is None:
            return self._json({"error": BAD_L1}, 401)
        k.created = True
        return self._json(self._creds(k))

    def _check_l2(self, request: web.Request, body: bytes) -> _Key | None:
        h = request.headers
        k = self._keys.get(h.get("POLY_API_KEY", ""))
        if k is None or not hmac.compare_digest(h.get("POLY_PASSPHRASE", ""), k.passphrase):
            return None
        if not _same(h.get("POLY_ADDRESS"), k.address):
            return None
        path = request.raw_path.split("?", 1)[0]
        try:
            secret = base64.urlsafe_b64decode(k.secret)
            msg = (h.get("POLY_TIMESTAMP", "") + request.method + path).encode() + body
        except ValueError:
            return None
        want = base64.urlsafe_b64encode(hmac.new(secret, msg, hashlib.sha256).digest()).decode()
        return k if hmac.compare_digest(h.get("POLY_SIGNATURE", ""), want) else None

    def _l2(self, fn: Callable[[web.Request, _Key, bytes], Awaitable[web.Response]], submit: bool = False
            ) -> Callable[[web.Request], Awaitable[web.Response]]:  # fmt: skip
        async def handler(request: web.Request) -> web.Response:
            if self._error_n > 0 and f"{request.method} {request.path}".startswith(self._error_route):
                self._error_n -= 1
                st = self._error_status
                return self._json({"error": ERROR_TEXT.get(st, f"sim error {st}")}, st)
            body = await request.read()
            k = self._check_l2(request, body)
            if k is None:
                self.auth_failures += 1
                return self._json({"error": UNAUTHORIZED}, 401)
            self._expire()
            resp = await fn(request, k, body)
            delay = self._ack_delay_ms
            if submit and self._hold_next_ms:
                delay, self._hold_next_ms = max(delay, self._hold_next_ms), 0
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            return resp

        return handler

    # -- placing orders --------------------------------------------------------------------------

    @staticmethod
    def _reply(ok: bool, msg: str = "", oid: str = "", status: str = "", making: str = "", taking: str = "",
               txs: list[str] | None = None, tids: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
        out = {"success": ok, "errorMsg": msg, "orderID": oid, "status": status, "makingAmount": making,
               "takingAmount": taking, "transactionsHashes": txs or [], "tradeIDs": tids or []}  # fmt: skip
        if not ok:
            out["error"] = msg
        return out

    async def _h_post_order(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        try:
            item = json.loads(body)
        except ValueError:
            return self._json(self._reply(False, "Invalid order payload"), 400)
        status, out = self.place(k, item)
        return self._json(out, status)

    async def _h_post_orders(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        try:
            items = json.loads(body)
        except ValueError:
            return self._json({"error": "Invalid order payload"}, 400)
        if not isinstance(items, list):
            return self._json({"error": "Invalid order payload"}, 400)
        if len(items) > MAX_BATCH:
            return self._json({"error": "Payload exceeds the limit"}, 400)
        return self._json([self.place(k, it)[1] for it in items])

    def place(self, k: _Key, item: Any) -> tuple[int, dict[str, Any]]:
        """Process one ``{"order", "owner", "orderType", "postOnly"}`` submission for key ``k``:
        (HTTP status, the response object)."""
        try:
            return 200, self._place(k, item)
        except _Reject as r:
            return r.status, self._reply(False, r.msg)

    def _place(self, k: _Key, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise _Reject("Invalid order payload")
        try:
            so = parse_order(item.get("order"))
        except ValueError as exc:
            raise _Reject(f"Invalid order payload: {exc}") from exc
        if item.get("owner") != k.api_key:
            raise _Reject("the order owner has to be the owner of the API KEY")
        otype = item.get("orderType", "GTC")
        if otype not in ORDER_TYPES:
            raise _Reject(f"invalid order type {otype!r}")
        post_only = item.get("postOnly", False) is True
        if self.server._replay is not None:
            raise _Reject("trading is not available while the simulator replays a recording")
        m = self._market(so.token)
        if m is None:
            raise _Reject("Invalid token id")
        oid, signer = order_hash_and_signer(so, self.chain_id, m.neg_risk)
        self._posts[oid] = self._posts.get(oid, 0) + 1
        if signer is None or (so.sig_type == 3 and not _same(signer, k.address)):
            raise _Reject("invalid signature")  # type 3: the wrapped signature must be the key's wallet's
        if not _same(signer, k.address):
            raise _Reject("the order signer address has to be the address of the API KEY")
        if oid in self._orders:
            raise _Reject("order already exists")
        if m.resolved:
            raise _Reject("the market is closed: it is not accepting orders")
        if post_only and otype in ("FOK", "FAK"):
            raise _Reject("invalid post-only order: only GTC and GTD orders can be post-only")
        # the price the amounts imply, on the tick grid
        buy = so.side == "BUY"
        implied = Fraction(so.maker_amount * ONE, so.taker_amount) if buy else \
            Fraction(so.taker_amount * ONE, so.maker_amount)  # fmt: skip
        tick = m.tick
        price = round(implied / tick) * tick
        if abs(implied - price) * 100 > tick:
            raise _Reject(f"invalid price ({float(implied) / ONE:.6g}), breaks minimum tick size rule: {m.tick_str}")
        if not tick <= price <= ONE - tick:
            raise _Reject(f"invalid price ({from_units(price)}), min: {m.tick_str} - max: {from_units(ONE - tick)}")
        now_s = self._now_ns() // 1_000_000_000
        if otype == "GTD" and so.expiration < now_s + GTD_BUFFER_S:
            raise _Reject(f"invalid expiration value ({so.expiration}): GTD orders must expire at least "
                          f"{GTD_BUFFER_S} s from now ({now_s})")  # fmt: skip
        size = so.taker_amount if buy else so.maker_amount
        bb, ba = m.top(so.token)
        crosses = (ba is not None and ba <= price) if buy else (bb is not None and bb >= price)
        if post_only and crosses:
            raise _Reject("invalid post-only order: order crosses book")
        # a sports market in play: a marketable order matches secondsDelay later (checked now against the
        # book as it is, matched then against the book as it will be)
        delay = self.server.match_delay_s(m) if crosses and not post_only else 0
        fills = [] if post_only else self._sweep(m, so.token, so.side, price, size)
        filled = sum(q for _, _, q in fills)
        rests = otype in ("GTC", "GTD") and filled < size
        notional_ = so.maker_amount if buy else so.taker_amount
        if (otype in ("FOK", "FAK") or crosses) and notional_ < MIN_NOTIONAL:
            raise _Reject(f"invalid amount for a marketable {so.side} order (${from_units(notional_)}), min size: $1")
        if rests and size < MIN_SHARES:
            raise _Reject(f"invalid order size {from_units(size)}: lower than the minimum: 5")
        acct = so.maker.lower()
        self._account(so.maker)
        if self._shortfall(m, acct, so.token, so.side, fills, size - filled if rests else 0, size, so.maker_amount,
                           so.taker_amount):  # fmt: skip
            raise _Reject(NO_BALANCE)
        if otype == "FOK" and filled < size and not delay:
            raise _Reject(FOK_KILLED)
        # accepted
        self._seq += 1
        o = _Order(id=oid, owner=k.api_key, acct=acct, maker=so.maker, signer=so.signer, asset=so.token,
                   market=m.cid, outcome=self._outcome(m, so.token), side=so.side, price=price,
                   maker_amount=so.maker_amount, taker_amount=so.taker_amount, size=size, order_type=otype,
                   expiration=so.expiration if otype == "GTD" else 0, created_ns=self._now_ns(),
                   post_only=post_only, sig_type=so.sig_type, seq=self._seq)  # fmt: skip
        self._orders[oid] = o
        k.funders[so.sig_type] = so.maker
        if delay:
            o.status = "DELAYED"  # holds its collateral / shares meanwhile; cancelable
            self._open[oid] = o
            sports = self.server.sports
            assert sports is not None
            sports.call_later(delay, self._match_delayed, oid)
            logger.debug("sim exchange: {} {} {} @ {} {} -> delayed {} s", otype, so.side, from_units(size),
                         from_units(price), oid[:10], delay)  # fmt: skip
            return self._reply(True, "", oid, "delayed")
        return self._execute(m, o, fills, rests)

    def _shortfall(self, m: _Market, acct: str, token: str, side: str, fills: list[Fill], rest: int, size: int,
                   maker_amount: int, taker_amount: int) -> bool:  # fmt: skip
        """Whether the account lacks the collateral (BUY: the fills, their fees and what rests, at
        the order's price) or the shares (SELL: the order's size) an order needs, beside what its
        open orders hold."""
        a = self._accounts[acct]
        if side == "BUY":
            need = sum(_ceil_div(q * ap, ONE) + self._taker_fee(m, q, ap) for ap, _, q in fills)
            need += _ceil_div(rest * maker_amount, taker_amount) if rest else 0
            have = a.cash - self._reserved(acct, None)
            if self._allowance is not None:
                have = min(have, self._allowance - self._reserved(acct, None))
        else:
            need = size
            have = a.shares.get(token, 0) - self._reserved(acct, token)
            if self._allowance is not None and self._allowance <= 0:
                have = 0
        return need > have

    def _match_delayed(self, oid: str) -> None:
        """A delayed order's match, ``secondsDelay`` after it was posted, against the book now: it
        fills, rests (GTC/GTD) or is canceled (FOK not fully fillable, FAK remainder, a remainder
        below the minimum size, the market closed, the balance gone); the user channel says which."""
        o = self._orders.get(oid)
        if o is None or o.status != "DELAYED":
            return  # canceled meanwhile
        self._open.pop(oid, None)
        o.status = "LIVE"
        m = self._market(o.asset)
        fills = self._sweep(m, o.asset, o.side, o.price, o.size) if m is not None and not m.resolved else []
        filled = sum(q for _, _, q in fills)
        rests = o.order_type in ("GTC", "GTD") and filled < o.size and o.size - filled >= MIN_SHARES
        kill = (m is None or m.resolved or (o.order_type == "FOK" and filled < o.size)
                or self._shortfall(m, o.acct, o.asset, o.side, fills, o.size - filled if rests else 0, o.size,
                                   o.maker_amount, o.taker_amount))  # fmt: skip
        if kill or (not fills and not rests):
            self._cancel(o)
            logger.debug("sim exchange: delayed {} {} -> canceled", o.side, oid[:10])
            return
        assert m is not None
        self._execute(m, o, fills, rests, delayed=True)

    def _execute(self, m: _Market, o: _Order, fills: list[Fill], rests: bool, delayed: bool = False
                 ) -> dict[str, Any]:  # fmt: skip
        """Match an accepted order against ``fills`` and rest what is left when ``rests``; the
        user-channel events and the POST /order answer."""
        size, buy = o.size, o.side == "BUY"
        filled = sum(q for _, _, q in fills)
        trade = self._take(m, o, fills) if fills else None
        if rests:
            self._open[o.id] = o
            status = "live"
        else:
            o.status = "MATCHED" if filled == size else "CANCELED"
            status = "matched" if filled else "unmatched"
        if trade is not None:
            self._start_trade(trade)
        if rests:
            self._order_event(o, "PLACEMENT")
            if delayed and filled:
                self._order_event(o, "UPDATE")
        elif filled:
            self._order_event(o, "UPDATE")
            if o.status == "CANCELED":
                self._order_event(o, "CANCELLATION")
        cost = sum(_ceil_div(q * ap, ONE) for ap, _, q in fills) if buy else \
            sum(q * ap // ONE for ap, _, q in fills)  # fmt: skip
        making, taking = (cost, filled) if buy else (filled, cost)
        logger.debug("sim exchange: {} {} {} @ {} {} -> {}{}", o.order_type, o.side, from_units(size),
                     from_units(o.price), o.id[:10], status, " (delayed)" if delayed else "")  # fmt: skip
        return self._reply(True, "", o.id, status, from_units(making), from_units(taking),
                           [trade.txh] if trade else [], [trade.id] if trade else [])  # fmt: skip

    # -- matching ------------------------------------------------------------------------------

    def _sweep(self, m: _Market, asset: str, side: str, price: int, size: int) -> list[Fill]:
        """The fills a taker ``side`` order for ``size`` shares of ``asset`` limited at ``price``
        gets from the synthetic book (best level first, each at its own price); nothing applied.
        The NO token's book is the mirror of the YES book; the deepest levels are kept."""
        yes = asset == m.yes
        if side == "BUY":
            book = m.asks if yes else m.bids  # YES asks are YES offers; YES bids at b are NO offers at 1-b
            order = sorted(book) if yes else sorted(book, reverse=True)
        else:
            book = m.bids if yes else m.asks
            order = sorted(book, reverse=True) if yes else sorted(book)
        usable = order[: max(0, len(order) - PROTECTED_LEVELS)]
        fills: list[Fill] = []
        left = size
        for yp in usable:
            if left <= 0:
                break
            ap = yp if yes else ONE - yp
            if (side == "BUY" and ap > price) or (side == "SELL" and ap < price):
                break
            q = min(left, book[yp])
            fills.append((ap, yp, q))
            left -= q
        return fills

    def _take(self, m: _Market, o: _Order, fills: list[Fill]) -> _Trade:
        """Apply a taker order's fills: consume the synthetic book, publish the market-channel
        frames the walk publishes for its trades, move balances; returns the (MATCHED) trade."""
        srv = self.server
        srv._flush_pending()  # an earlier print goes out before this trade moves the last trade price
        yes = o.asset == m.yes
        consume_asks = (o.side == "BUY") == yes
        book = m.asks if consume_asks else m.bids
        for _, yp, q in fills:
            left = book[yp] - q
            if left > 0:
                book[yp] = left
            else:
                del book[yp]
        # market channel: trade-triggered books for both tokens, best_bid_ask, then the prints
        ts = srv._next_ts()
        m.ts = str(ts)
        last = fills[-1][0]
        m.ltp = ltp_str(last) if self._rng.random() < 0.5 else ltp_str(ONE - last)
        for a in m.assets:
            b = m.book(a)
            srv._emit(m.cid, json.dumps({"market": m.cid, "asset_id": a, "bids": b["bids"], "asks": b["asks"],
                                         "hash": b["hash"], "timestamp": m.ts, "event_type": "book"},
                                        separators=(", ", ":")))  # fmt: skip
        srv._best_bid_ask(m, m.ts)
        delay = self._rng.randint(3, 40)
        srv._last_ts = max(srv._last_ts, ts + delay)
        txh = self._hex32()
        total = sum(q for _, _, q in fills)
        # one print for the order: the last (worst) level's price, the size it took in all
        item = (delay, m.cid, json.dumps({
            "market": m.cid, "asset_id": o.asset, "price": from_units(last), "size": from_units(total),
            "fee_rate_bps": "0", "side": o.side, "timestamp": str(ts + delay), "event_type": "last_trade_price",
            "transaction_hash": txh}, separators=(", ", ":")))  # fmt: skip
        srv._pending.append(item)
        self._later(delay / 1000, self._flush_print, item)
        # the trade
        cost = sum(q * ap for ap, _, q in fills)
        sched = self._fee_schedule(m)
        makers = [{"asset_id": m.yes, "fee_rate_bps": "0", "maker_address": self._addr(),
                   "matched_amount": from_units(q), "order_id": self._hex32(), "outcome": m.outcomes[0],
                   "owner": LIQUIDITY_OWNER, "price": from_units(yp), "side": "SELL" if consume_asks else "BUY"}
                  for _, yp, q in fills]  # fmt: skip
        t = self._new_trade(m, o.asset, o.side, total, cost // total, o.id, o.owner, o.maker, makers, txh,
                            str(sched.rate_ppm // 100) if sched else "0")  # fmt: skip
        t.owners = {o.owner}
        collateral = paid = 0
        for ap, _, q in fills:
            notional_ = _ceil_div(q * ap, ONE) if o.side == "BUY" else q * ap // ONE
            fee = self._taker_fee(m, q, ap)
            collateral += (-notional_ - fee) if o.side == "BUY" else (notional_ - fee)
            paid += notional_
        self._fill(t, o, total, collateral, paid)
        return t

    def _flush_print(self, item: tuple[int, str, str]) -> None:
        srv = self.server
        if item in srv._pending:
            srv._pending.remove(item)
            srv._emit(item[1], item[2])

    def _new_trade(self, m: _Market, asset: str, side: str, size: int, price: int, taker_order_id: str,
                   taker_owner: str, taker_address: str, makers: list[dict[str, Any]], txh: str, fee_bps: str
                   ) -> _Trade:  # fmt: skip
        now = self._now_ns()
        t = _Trade(id=self._uuid(), market=m.cid, asset=asset, outcome=self._outcome(m, asset), side=side, size=size,
                   price=price, match_ns=now, last_ns=now, taker_order_id=taker_order_id, taker_owner=taker_owner,
                   taker_address=taker_address, maker_orders=makers, txh=txh, fee_bps=fee_bps,
                   owners=set())  # fmt: skip
        self._trades[t.id] = t
        return t

    def _move(self, t: _Trade, acct: str, asset: str, d_cash: int, d_shares: int, d_cost: int) -> None:
        a = self._accounts[acct]
        a.cash += d_cash
        if d_shares or d_cost:
            a.shares[asset] = a.shares.get(asset, 0) + d_shares
            a.cost[asset] = a.cost.get(asset, 0) + d_cost
        t.ops.append((acct, asset, d_cash, d_shares, d_cost))

    def _fill(self, t: _Trade, o: _Order, q: int, d_cash: int, paid: int = 0) -> None:
        """Book a fill of ``q`` shares of our order ``o`` in trade ``t`` (``d_cash``: the collateral
        the account receives, negative when it pays; ``paid``: a BUY's notional, fees excluded)."""
        a = self._accounts[o.acct]
        if o.side == "BUY":
            d_shares, d_cost = q, paid
        else:
            held = a.shares.get(o.asset, 0)
            d_shares, d_cost = -q, -(a.cost.get(o.asset, 0) * q // held) if held > 0 else 0
        self._move(t, o.acct, o.asset, d_cash, d_shares, d_cost)
        o.size_matched += q
        o.trades.append(t.id)
        t.fills.append((o, q))
        if o.remaining <= 0 and o.status == "LIVE":
            o.status = "MATCHED"
            self._open.pop(o.id, None)

    def _maker_trade(self, m: _Market, asset: str, taker_side: str, fills: list[tuple[_Order, int]]) -> _Trade:
        """An external taker fills our resting orders (each at its own price): ONE trade."""
        makers = [{"asset_id": o.asset, "fee_rate_bps": "0", "maker_address": o.maker, "matched_amount": from_units(q),
                   "order_id": o.id, "outcome": o.outcome, "owner": o.owner, "price": from_units(o.price),
                   "side": o.side} for o, q in fills]  # fmt: skip
        total = sum(q for _, q in fills)
        price = sum(q * o.price for o, q in fills) // total
        t = self._new_trade(m, asset, taker_side, total, price, self._hex32(), EXTERNAL_OWNER, self._addr(), makers,
                            self._hex32(), "0")  # fmt: skip
        t.owners = {o.owner for o, _ in fills}
        for o, q in fills:
            if o.side == "BUY":
                self._fill(t, o, q, -o.reserve(q), o.reserve(q))
            else:
                self._fill(t, o, q, o.proceeds(q))
        self._start_trade(t)
        for o, _ in fills:
            self._order_event(o, "UPDATE")
        return t

    def on_walk(self, m: _Market) -> None:
        """After a walk event on market ``m``: expire GTD orders, then fill our resting orders the
        synthetic book now crosses, as MAKER at their own price, up to the crossing level's size."""
        self._expire()
        mine = [o for o in self._open.values() if o.market == m.cid]
        if not mine or m.resolved:
            return
        for asset in m.assets:
            bb, ba = m.top(asset)
            yes = asset == m.yes
            for side, top, taker in (("BUY", ba, "SELL"), ("SELL", bb, "BUY")):
                if top is None:
                    continue
                hit = [o for o in mine if o.asset == asset and o.side == side and o.status == "LIVE"
                       and (top <= o.price if side == "BUY" else top >= o.price)]  # fmt: skip
                if not hit:
                    continue
                # the crossing level's size: a YES ask/bid, or the mirrored YES bid/ask for NO
                if side == "BUY":
                    avail = m.asks[top] if yes else m.bids[ONE - top]
                else:
                    avail = m.bids[top] if yes else m.asks[ONE - top]
                hit.sort(key=lambda o: (-o.price if side == "BUY" else o.price, o.seq))
                fills = []
                for o in hit:
                    q = min(o.remaining, avail)
                    if q <= 0:
                        break
                    fills.append((o, q))
                    avail -= q
                if fills:
                    self._maker_trade(m, asset, taker, fills)

    def cross(self, asset: str, side: str, size: str, price: str) -> dict[str, Any]:
        """An external taker ``side`` order for ``size`` shares of ``asset`` at ``price`` against
        OUR resting orders on that token (price-time priority): one trade, every order it hit in
        its ``maker_orders``."""
        m = self._market(str(asset))
        if m is None:
            raise ValueError(f"unknown asset {asset!r}")
        if side not in ("BUY", "SELL"):
            raise ValueError("side must be BUY or SELL")
        q_left, p = to_units(str(size)), to_units(str(price))
        if q_left <= 0 or not 0 < p < ONE:
            raise ValueError("size must be > 0 and price within (0, 1)")
        self._expire()
        ours = "SELL" if side == "BUY" else "BUY"
        hit = [o for o in self._open.values() if o.asset == asset and o.side == ours and o.status == "LIVE"
               and (o.price <= p if side == "BUY" else o.price >= p)]  # fmt: skip
        hit.sort(key=lambda o: (o.price if side == "BUY" else -o.price, o.seq))
        fills = []
        for o in hit:
            if q_left <= 0:
                break
            q = min(o.remaining, q_left)
            fills.append((o, q))
            q_left -= q
        if not fills:
            return {"ok": False, "trade_id": None, "orders": [], "filled": "0"}
        t = self._maker_trade(m, str(asset), side, fills)
        return {"ok": True, "trade_id": t.id, "orders": [o.id for o, _ in fills], "filled": from_units(t.size)}

    # -- trade lifecycle -------------------------------------------------------------------------

    def _start_trade(self, t: _Trade) -> None:
        t.fail, self._fail_next = self._fail_next, False
        t.retry, self._retry_next = self._retry_next and not t.fail, False
        self._trade_event(t)
        mined, confirmed = self.cfg.mined_ms / 1000, self.cfg.confirmed_ms / 1000
        if t.fail:
            self._later(mined, self._fail_trade, t)
        elif t.retry:
            self._later(mined, self._advance, t, "RETRYING")
            self._later(confirmed, self._advance, t, "MINED")
            self._later(2 * confirmed - mined, self._advance, t, "CONFIRMED")
        else:
            self._later(mined, self._advance, t, "MINED")
            self._later(confirmed, self._advance, t, "CONFIRMED")

    def _advance(self, t: _Trade, status: str) -> None:
        if t.status == "FAILED":
            return
        t.status = status
        t.history.append(status)
        t.last_ns = self._now_ns()
        self._trade_event(t)

    def _fail_trade(self, t: _Trade) -> None:
        """FAILED: undo the trade's balance moves and our orders' fills (the public book stays)."""
        for acct, asset, d_cash, d_shares, d_cost in reversed(t.ops):
            a = self._accounts[acct]
            a.cash -= d_cash
            if d_shares or d_cost:
                a.shares[asset] = a.shares.get(asset, 0) - d_shares
                a.cost[asset] = a.cost.get(asset, 0) - d_cost
        t.status = "FAILED"
        t.history.append("FAILED")
        t.last_ns = self._now_ns()
        self._trade_event(t)
        for o, q in t.fills:
            o.size_matched -= q
            if o.status == "MATCHED" and o.order_type in ("GTC", "GTD"):
                o.status = "LIVE"  # a resting order whose fill failed is live again
                self._open[o.id] = o
            self._order_event(o, "UPDATE")

    def fail_next_trade(self) -> None:
        self._fail_next = True

    def retry_next_trade(self) -> None:
        self._retry_next = True

    # -- cancels, expiry, heartbeats ---------------------------------------------------------------

    def _cancel(self, o: _Order) -> None:
        o.status = "CANCELED"
        self._open.pop(o.id, None)
        self._order_event(o, "CANCELLATION")

    def _cancel_ids(self, k: _Key, ids: list[Any]) -> dict[str, Any]:
        canceled: list[str] = []
        not_canceled: dict[str, str] = {}
        for i in ids:
            oid = str(i)
            o = self._orders.get(oid)
            if o is None or o.owner != k.api_key:
                not_canceled[oid] = "order not found"
            elif o.status not in ("LIVE", "DELAYED"):
                not_canceled[oid] = "already canceled or matched"
            else:
                self._cancel(o)
                canceled.append(oid)
        return {"canceled": canceled, "not_canceled": not_canceled}

    def _expire(self) -> None:
        now_s = self._now_ns() // 1_000_000_000
        for o in [o for o in self._open.values() if o.order_type == "GTD" and 0 < o.expiration <= now_s]:
            self._cancel(o)

    def _hb_expired(self, k: _Key) -> None:
        k.hb_handle = None
        k.hb_id = ""
        k.hb_kills += 1
        self.heartbeat_kills += 1
        mine = sorted((o for o in self._open.values() if o.owner == k.api_key), key=lambda o: o.seq)
        logger.info("sim exchange: no heartbeat from {} for {} s: canceling {} orders", k.api_key,
                    self.cfg.heartbeat_timeout_s, len(mine))  # fmt: skip
        for o in mine:
            self._cancel(o)

    @staticmethod
    def _body_json(body: bytes) -> Any:
        try:
            return json.loads(body) if body else None
        except ValueError as exc:
            raise _Reject(f"Invalid payload: {exc}") from exc

    def _dict_body(self, body: bytes) -> tuple[dict[str, Any], web.Response | None]:
        """An optional JSON object body: (the object or {}, None) or ({}, the 400 to answer)."""
        try:
            obj = self._body_json(body) or {}
        except _Reject as r:
            return {}, self._json({"error": r.msg}, 400)
        if not isinstance(obj, dict):
            return {}, self._json({"error": "Invalid payload"}, 400)
        return obj, None

    async def _h_cancel_one(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        try:
            obj = self._body_json(body)
        except _Reject as r:
            return self._json({"error": r.msg}, 400)
        if not isinstance(obj, dict) or not isinstance(obj.get("orderID"), str):
            return self._json({"error": "Invalid payload: orderID required"}, 400)
        return self._json(self._cancel_ids(k, [obj["orderID"]]))

    async def _h_cancel_many(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        try:
            obj = self._body_json(body)
        except _Reject as r:
            return self._json({"error": r.msg}, 400)
        if not isinstance(obj, list):
            return self._json({"error": "Invalid payload: a list of order ids required"}, 400)
        return self._json(self._cancel_ids(k, obj))

    async def _h_cancel_all(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        ids = [o.id for o in sorted(self._open.values(), key=lambda o: o.seq) if o.owner == k.api_key]
        return self._json(self._cancel_ids(k, ids))

    async def _h_cancel_market(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        obj, bad = self._dict_body(body)
        if bad is not None:
            return bad
        mk, asset = obj.get("market") or "", obj.get("asset_id") or ""
        ids = [o.id for o in sorted(self._open.values(), key=lambda o: o.seq) if o.owner == k.api_key
               and (not mk or o.market == mk) and (not asset or o.asset == asset)]  # fmt: skip
        return self._json(self._cancel_ids(k, ids))

    async def _h_heartbeat(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        obj, bad = self._dict_body(body)
        if bad is not None:
            return bad
        if not k.hb_id:
            k.hb_id = self._uuid()
        k.hb_count += 1
        k.hb_last = time.monotonic()
        if k.hb_handle is not None:
            k.hb_handle.cancel()
        k.hb_handle = asyncio.get_running_loop().call_later(float(self.cfg.heartbeat_timeout_s), self._hb_expired, k)
        return self._json({"heartbeat_id": k.hb_id})

    # -- queries ----------------------------------------------------------------------------------

    @staticmethod
    def _paged(request: web.Request, items: list[Any]) -> dict[str, Any]:
        cur = request.query.get("next_cursor") or "MA=="
        try:
            off = int(base64.b64decode(cur).decode()) if cur != END_CURSOR else len(items)
        except ValueError:
            off = 0
        off = max(0, off)
        page = items[off : off + PAGE_LIMIT]
        nxt = off + PAGE_LIMIT
        cursor = base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else END_CURSOR
        return {"data": page, "next_cursor": cursor, "limit": PAGE_LIMIT, "count": len(page)}

    async def _h_open_orders(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        q = request.query
        oid, mk, asset = q.get("id"), q.get("market"), q.get("asset_id")
        items = [self._order_rest(o) for o in sorted(self._open.values(), key=lambda o: o.seq)
                 if o.owner == k.api_key and (not oid or o.id == oid) and (not mk or o.market == mk)
                 and (not asset or o.asset == asset)]  # fmt: skip
        return self._json(self._paged(request, items))

    async def _h_order(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        o = self._orders.get(request.match_info["id"])
        if o is None or o.owner != k.api_key:
            return self._json({"error": "order not found"}, 404)
        return self._json(self._order_rest(o))

    async def _h_trades(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        q = request.query
        mk, asset, tid = q.get("market"), q.get("asset_id"), q.get("id")
        try:
            after = int(q["after"]) if q.get("after") else None
            before = int(q["before"]) if q.get("before") else None
        except ValueError:
            return self._json({"error": "after/before must be unix seconds"}, 400)
        items = []
        for t in self._trades.values():
            s = t.match_ns // 1_000_000_000
            if k.api_key not in t.owners or (mk and t.market != mk) or (tid and t.id != tid):
                continue
            if (asset and t.asset != asset and all(x["asset_id"] != asset for x in t.maker_orders)) or \
                    (after is not None and s < after) or (before is not None and s > before):  # fmt: skip
                continue
            items.append(self._trade_msg(t, k.api_key))
        return self._json(self._paged(request, items))

    async def _h_balance(self, request: web.Request, k: _Key, body: bytes) -> web.Response:
        q = request.query
        kind = q.get("asset_type", "COLLATERAL").upper()
        try:
            st = int(q.get("signature_type") or 0)
        except ValueError:
            return self._json({"error": "invalid signature_type"}, 400)
        a = self._account(k.funders.get(st, k.address) if st else k.address)
        if kind == "COLLATERAL":
            bal = a.cash
        elif kind in ("CONDITIONAL", "CONDITIONAL-V2"):
            tok = q.get("token_id", "")
            if not tok:
                return self._json({"error": "token_id is required for CONDITIONAL"}, 400)
            bal = a.shares.get(tok, 0)
        else:
            return self._json({"error": f"invalid asset_type {kind!r}"}, 400)
        allow = MAX_UINT if self._allowance is None else str(self._allowance)
        return self._json({"balance": str(bal), "allowances": {x: allow for x in EXCHANGES.get(self.chain_id,
                                                                                                EXCHANGES[137])}})

    async def _h_positions(self, request: web.Request) -> web.Response:
        user = request.query.get("user", "")
        if not user:
            return self._json({"error": "user is required"}, 400)
        a = self._accounts.get(user.lower())
        out = []
        for tok, sz in sorted((a.shares if a else {}).items()):
            m = self._market(tok)
            if sz == 0 or m is None or a is None:
                continue
            bb, ba = m.top(tok)
            cur = ((bb or 0) + (ba if ba is not None else ONE)) / 2 / ONE
            out.append({"proxyWallet": a.address, "asset": tok, "conditionId": m.cid, "size": sz / ONE,
                        "avgPrice": round(a.cost.get(tok, 0) / sz, 6), "curPrice": cur,
                        "outcome": self._outcome(m, tok), "outcomeIndex": 0 if tok == m.yes else 1,
                        "oppositeAsset": m.no if tok == m.yes else m.yes, "slug": m.slug, "title": m.question,
                        "negativeRisk": m.neg_risk})  # fmt: skip
        return self._json({"data": out, "pagination": {"next_cursor": None}})

    async def _h_geoblock(self, request: web.Request) -> web.Response:
        return self._json({"blocked": bool(self.cfg.geoblocked), "ip": "127.0.0.1", "country": "XX", "region": "XX"})

    async def _h_version(self, request: web.Request) -> web.Response:
        return self._json({"version": 2})

    # -- faults and introspection -----------------------------------------------------------------

    def delay_acks(self, ms: int) -> None:
        self._ack_delay_ms = max(0, int(ms))

    def timeout_next_submit(self, ms: int) -> None:
        self._hold_next_ms = max(0, int(ms))

    def error_next(self, status: int = 503, n: int = 1, route: str = "") -> None:
        """The next ``n`` authenticated requests answer ``status`` unprocessed; with ``route``
        (e.g. ``"POST /order"``: a prefix of ``"<METHOD> <path>"``) only requests to it count,
        so a heartbeat or a reconciliation in between does not take the error."""
        if not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._error_status, self._error_n, self._error_route = int(status), max(0, int(n)), str(route)

    def orders(self) -> dict[str, Any]:
        return {"orders": [{"hash": o.id, "owner": o.owner, "status": o.status, "side": o.side,
                            "price": from_units(o.price), "original_size": from_units(o.size),
                            "size_matched": from_units(o.size_matched), "asset_id": o.asset, "market": o.market,
                            "order_type": o.order_type, "maker_address": o.maker}
                           for o in sorted(self._orders.values(), key=lambda o: o.seq)],
                "posts": dict(self._posts)}  # fmt: skip

    def accounts(self) -> dict[str, Any]:
        return {"accounts": {a.address: {"cash": from_units(a.cash),
                                         "reserved": from_units(self._reserved(key, None)),
                                         "shares": {t: from_units(s) for t, s in a.shares.items() if s}}
                             for key, a in self._accounts.items()}}  # fmt: skip

    def trades(self) -> dict[str, Any]:
        return {"trades": [{"id": t.id, "status": t.status, "history": list(t.history), "market": t.market,
                            "asset_id": t.asset, "side": t.side, "size": from_units(t.size),
                            "price": from_units(t.price), "taker_order_id": t.taker_order_id,
                            "taker_owner": t.taker_owner, "owners": sorted(t.owners),
                            "maker_orders": t.maker_orders, "transaction_hash": t.txh}
                           for t in self._trades.values()]}  # fmt: skip

    def heartbeats(self) -> dict[str, Any]:
        now = time.monotonic()
        return {"heartbeats": {k.api_key: {"heartbeat_id": k.hb_id, "count": k.hb_count, "kills": k.hb_kills,
                                           "seconds_since_last": round(now - k.hb_last, 3) if k.hb_count else None,
                                           "active": k.hb_handle is not None}
                               for k in self._keys.values() if k.hb_count},
                "kills": self.heartbeat_kills}  # fmt: skip

    def control(self, action: str, p: dict[str, Any]) -> dict[str, Any]:
        """A ``/_sim/<action>`` control of the exchange; KeyError: not an exchange action."""
        if action == "drop_user":
            return {"ok": True, "dropped": self.drop_user()}
        if action == "delay_acks":
            self.delay_acks(int(p.get("ms", 0)))
        elif action == "timeout_next_submit":
            self.timeout_next_submit(int(p.get("ms", 0)))
        elif action == "error_next":
            self.error_next(int(p.get("status", 503)), int(p.get("n", 1)), str(p.get("route", "")))
        elif action == "fail_next_trade":
            self.fail_next_trade()
        elif action == "retry_next_trade":
            self.retry_next_trade()
        elif action == "cross":
            return self.cross(str(p.get("asset", "")), str(p.get("side", "")), str(p.get("size", "")),
                              str(p.get("price", "")))  # fmt: skip
        elif action == "orders":
            return self.orders()
        elif action == "accounts":
            return self.accounts()
        elif action == "trades":
            return self.trades()
        elif action == "heartbeats":
            return self.heartbeats()
        elif action == "auth_failures":
            return {"auth_failures": self.auth_failures}
        else:
            raise KeyError(action)
        return {"ok": True}
