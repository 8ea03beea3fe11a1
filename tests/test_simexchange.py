"""The simulator's trading side (adapters/polymarket/simexchange.py) driven as a real client would.

Requests are signed with py-clob-client-v2's own helpers (L1 ClobAuth headers, L2 HMAC headers,
``ExchangeOrderBuilderV2`` + ``order_to_json_v2`` orders), so the simulator is checked against the
official client. Everything runs on loopback with ``autostart=False`` and a fixed clock; the walk
advances only through ``step()``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytest.importorskip("py_clob_client_v2")

from py_clob_client_v2.clob_types import ApiCreds, RequestArgs  # noqa: E402
from py_clob_client_v2.headers.headers import create_level_1_headers, create_level_2_headers  # noqa: E402
from py_clob_client_v2.order_builder.builder import ROUNDING_CONFIG, OrderBuilder  # noqa: E402
from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2  # noqa: E402
from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2, order_to_json_v2  # noqa: E402
from py_clob_client_v2.order_utils.model.side import Side  # noqa: E402
from py_clob_client_v2.signer import Signer  # noqa: E402

from adapters.polymarket import simexchange  # noqa: E402
from adapters.polymarket.sim import SimConfig, SimServer  # noqa: E402
from adapters.polymarket.simexchange import (  # noqa: E402
    EXCHANGES,
    api_credentials,
    clob_auth_digest,
    exchange_for,
    order_hash_and_signer,
    parse_order,
)
from polybot.bookhash import book_hash_wire  # noqa: E402
from polybot.events import FeeSchedule  # noqa: E402
from polybot.execution.rules import taker_fee  # noqa: E402
from polybot.units import ONE, from_units, to_units  # noqa: E402
from proc_helpers import CLI  # noqa: E402
from test_sim import RefClient, sub_msg, sync  # noqa: E402

pytestmark = pytest.mark.anyio

PK = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # Hardhat #0
PK2 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # Hardhat #1
V2, NEG, V3 = EXCHANGES[137]
T0 = 1_790_000_000_000_000_000
FEES = FeeSchedule(rate_ppm=40_000, exponent=1, rebate_ppm=250_000)  # what the sim publishes in Gamma
#: ``../shared/vectors`` beside the checkout, or ``POLYBOT_VECTORS`` (as tests/test_execution_rules.py)
VECTORS = Path(os.environ.get("POLYBOT_VECTORS", Path(__file__).resolve().parents[2] / "shared" / "vectors"),
               "signing_vectors.json")  # fmt: skip
#: the keys of the real user-channel messages (PROTOCOL.md §2; samples/nautilus/py_ws_messages_*)
PLACEMENT_KEYS = ["asset_id", "associate_trades", "created_at", "event_type", "expiration", "id", "maker_address",
                  "market", "order_owner", "order_type", "original_size", "outcome", "owner", "price", "side",
                  "size_matched", "status", "timestamp", "type"]  # fmt: skip
TRADE_KEYS = ["asset_id", "bucket_index", "event_type", "fee_rate_bps", "id", "last_update", "maker_address",
              "maker_orders", "market", "match_time", "outcome", "owner", "price", "side", "size", "status",
              "taker_order_id", "timestamp", "trade_owner", "trader_side", "transaction_hash", "type"]  # fmt: skip
MAKER_ORDER_KEYS = ["asset_id", "fee_rate_bps", "maker_address", "matched_amount", "order_id", "outcome", "owner",
                    "price", "side"]  # fmt: skip


def vectors() -> dict[str, Any]:
    if not VECTORS.is_file():  # pragma: no cover
        pytest.skip(f"signing vectors not found at {VECTORS}")
    return json.loads(VECTORS.read_text())


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cfg(**kw: Any) -> SimConfig:
    base: dict[str, Any] = {"autostart": False, "seed": 7, "clock": lambda: T0, "n_markets": 2, "mined_ms": 20,
                            "confirmed_ms": 40}  # fmt: skip
    base.update(kw)
    return SimConfig(**base)


# ---------------------------------------------------------------------------------------------
# a client built from py-clob-client-v2's pieces


class Trader:
    def __init__(self, server: SimServer, http: aiohttp.ClientSession, pk: str = PK) -> None:
        self.server = server
        self.http = http
        self.signer = Signer(pk, server.config.chain_id)
        self.address = self.signer.address()
        self.creds: ApiCreds | None = None
        self._salt = itertools.count(1000)

    @property
    def key(self) -> str:
        assert self.creds is not None
        return self.creds.api_key

    async def l1(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        h = headers or create_level_1_headers(self.signer, nonce=0)
        async with self.http.request(method, self.server.rest_url + path, headers=h) as r:
            return r.status, await r.json(content_type=None)

    async def login(self) -> Trader:
        status, c = await self.l1("GET", "/auth/derive-api-key")
        assert status == 200, c
        self.creds = ApiCreds(c["apiKey"], c["secret"], c["passphrase"])
        return self

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None, *,
                   send: str | None = None, creds: ApiCreds | None = None, timeout: float | None = None
                   ) -> tuple[int, Any]:  # fmt: skip
        ser = None if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        h = create_level_2_headers(self.signer, creds or self.creds, RequestArgs(method, path, body, ser))
        to = aiohttp.ClientTimeout(total=timeout) if timeout else None
        async with self.http.request(method, self.server.rest_url + path, data=send if send is not None else ser,
                                     headers=h, params=params, timeout=to) as r:  # fmt: skip
            return r.status, await r.json(content_type=None)

    def order(self, token: str, side: str, price: str, size: str, *, order_type: str = "GTC", post_only: bool = False,
              expiration: str = "0", exchange: str | None = None, version: str = "2", sig_type: int = 0,
              maker: str | None = None, signer: str | None = None, amounts: tuple[int, int] | None = None
              ) -> dict[str, Any]:  # fmt: skip
        p, q = to_units(price), to_units(size)
        maker_amt, taker_amt = amounts or ((q * p // ONE, q) if side == "BUY" else (q, q * p // ONE))
        ex = exchange or (NEG if self.server.config.neg_risk else V2)
        b = ExchangeOrderBuilderV2(ex, self.server.config.chain_id, self.signer,
                                   generate_salt=lambda: str(next(self._salt)), domain_version=version)  # fmt: skip
        data = OrderDataV2(maker=maker or self.address, tokenId=token, makerAmount=str(maker_amt),
                           takerAmount=str(taker_amt), side=Side.BUY if side == "BUY" else Side.SELL,
                           signer=signer or self.address,
                           signatureType=sig_type, timestamp="1710000000000", expiration=expiration)  # fmt: skip
        return order_to_json_v2(b.build_signed_order(data), owner=self.key, order_type=order_type, post_only=post_only)

    async def post(self, order: dict[str, Any], **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", "/order", order, **kw)


class UserFeed:
    """A user-channel socket collecting every message in the background."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.msgs: list[Any] = []
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.msgs.append(msg.data if msg.data == "PONG" else json.loads(msg.data))

    async def sync(self) -> None:
        n = self.msgs.count("PONG")
        await self.ws.send_str("PING")
        await self.wait(lambda _: self.msgs.count("PONG") > n)

    async def wait(self, pred: Any, timeout: float = 3.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for x in self.msgs:
                if pred(x):
                    return x
            await asyncio.sleep(0.005)
        raise AssertionError(f"no such message within {timeout} s; got {self.msgs}")

    def of(self, event_type: str, **kw: Any) -> list[dict[str, Any]]:
        return [x for x in self.msgs if isinstance(x, dict) and x.get("event_type") == event_type
                and all(x.get(k) == v for k, v in kw.items())]  # fmt: skip

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def user_feed(t: Trader, markets: list[str] | None = None) -> UserFeed:
    assert t.creds is not None
    ws = await t.http.ws_connect(t.server.user_ws_url)
    auth = {"apiKey": t.creds.api_key, "secret": t.creds.api_secret, "passphrase": t.creds.api_passphrase}
    await ws.send_str(json.dumps({"auth": auth, "markets": markets or [], "type": "user"}))
    f = UserFeed(ws)
    await f.sync()
    return f


def top(server: SimServer, asset: str) -> tuple[str, str]:
    a = server.state()["assets"][asset]
    return a["best_bid"], a["best_ask"]


def add(price: str, ticks: int, tick: str = "0.01") -> str:
    return from_units(to_units(price) + ticks * to_units(tick))


def sim_ctl(server: SimServer, action: str, **params: Any) -> Any:
    return server._control(action, {k: str(v) for k, v in params.items()})


async def settle(server: SimServer) -> None:
    """Wait until every trade reached a final status (CONFIRMED or FAILED)."""
    for _ in range(200):
        if all(t["status"] in ("CONFIRMED", "FAILED") for t in server.exchange.trades()["trades"]):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(server.exchange.trades())


# ---------------------------------------------------------------------------------------------
# auth


async def test_l1_derive_and_create_and_bad_signature() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = Trader(server, http)
        status, c = await t.l1("GET", "/auth/derive-api-key")
        assert status == 200 and set(c) == {"apiKey", "secret", "passphrase"}
        assert str(uuid.UUID(c["apiKey"])) == c["apiKey"]
        assert len(base64.urlsafe_b64decode(c["secret"])) == 32 and c["secret"].endswith("=")
        assert re.fullmatch(r"[0-9a-f]{64}", c["passphrase"])
        assert c == api_credentials(t.address, 0)
        status, c2 = await t.l1("POST", "/auth/api-key")
        assert status == 200 and c2 == c, "create and derive give the same deterministic credentials"
        # another nonce, another key
        status, c3 = await t.l1("GET", "/auth/derive-api-key", create_level_1_headers(t.signer, nonce=5))
        assert status == 200 and c3["apiKey"] != c["apiKey"]
        # a signature by another wallet claiming our address
        other = Signer(PK2, 137)
        h = create_level_1_headers(other, nonce=0)
        h["POLY_ADDRESS"] = t.address
        for path, method in (("/auth/derive-api-key", "GET"), ("/auth/api-key", "POST")):
            status, body = await t.l1(method, path, h)
            assert (status, body) == (401, {"error": "Invalid L1 Request headers"})
        # a signature over another timestamp
        h = create_level_1_headers(t.signer, nonce=0, timestamp=1_700_000_000)
        h["POLY_TIMESTAMP"] = "1700000001"
        assert (await t.l1("GET", "/auth/derive-api-key", h))[0] == 401
        assert (await t.l1("GET", "/auth/derive-api-key", {"POLY_ADDRESS": t.address}))[0] == 401
        assert server.exchange.auth_failures == 4


def test_clob_auth_digest_matches_the_upstream_vector() -> None:
    from eth_account import Account

    v = vectors()["l1_clob_auth"]
    d = clob_auth_digest("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", str(v["timestamp"]), v["nonce"], v["chainId"])
    assert Account._recover_hash(d, signature=bytes.fromhex(v["signature"][2:])) == \
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # fmt: skip


async def test_l2_hmac_refusals() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        assert t.creds is not None
        status, body = await t.call("GET", "/data/orders", params={"next_cursor": "MA=="})
        assert status == 200 and body["data"] == [] and body["next_cursor"] == "LTE=", "query is not signed"
        wrong = ApiCreds(t.creds.api_key, base64.urlsafe_b64encode(b"x" * 32).decode(), t.creds.api_passphrase)
        assert await t.call("GET", "/data/orders", creds=wrong) == (401, {"error": "Unauthorized/Invalid api key"})
        bad_pass = ApiCreds(t.creds.api_key, t.creds.api_secret, "0" * 64)
        assert (await t.call("GET", "/data/orders", creds=bad_pass))[0] == 401
        # the body signed is not the body sent
        signed = {"orderID": "0x" + "11" * 32}
        status, body = await t.call("DELETE", "/order", signed, send=json.dumps({"orderID": "0x" + "22" * 32}))
        assert (status, body) == (401, {"error": "Unauthorized/Invalid api key"})
        status, body = await t.call("DELETE", "/order", signed)
        assert status == 200 and body["not_canceled"] == {"0x" + "11" * 32: "order not found"}
        # no headers at all; a key never derived
        async with http.get(server.rest_url + "/data/orders") as r:
            assert r.status == 401
        ghost = ApiCreds(str(uuid.uuid4()), t.creds.api_secret, t.creds.api_passphrase)
        assert (await t.call("GET", "/data/orders", creds=ghost))[0] == 401
        assert sim_ctl(server, "auth_failures") == {"auth_failures": 5}


# ---------------------------------------------------------------------------------------------
# signatures and domains


async def test_bad_signature_and_owner_rejected() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        m = server.markets[0]
        bb, _ = top(server, m["yes"])
        o = t.order(m["yes"], "BUY", bb, "10")
        o["order"]["makerAmount"] = str(int(o["order"]["makerAmount"]) - 10_000)  # tampered after signing
        status, body = await t.post(o)
        assert status == 400 and body["success"] is False and body["errorMsg"] == "invalid signature"
        assert body["orderID"] == "" and body["status"] == ""
        # signed for the neg-risk exchange while the market is not neg-risk
        status, body = await t.post(t.order(m["yes"], "BUY", bb, "10", exchange=NEG))
        assert (status, body["errorMsg"]) == (400, "invalid signature")
        # another key's owner field
        o = t.order(m["yes"], "BUY", bb, "10")
        o["owner"] = str(uuid.uuid4())
        status, body = await t.post(o)
        assert status == 400 and "owner" in body["errorMsg"]
        # signed by a wallet that is not the API key's
        t2 = await Trader(server, http, PK2).login()
        o = t2.order(m["yes"], "BUY", bb, "10")
        o["owner"] = t.key
        status, body = await t.post(o)
        assert status == 400 and "signer" in body["errorMsg"]
        assert server.exchange.orders()["orders"] == []
        status, body = await t.post(t.order(m["yes"], "BUY", bb, "10"))
        assert status == 200 and body["success"] is True and body["status"] == "live"


async def test_neg_risk_domain_only_against_the_neg_risk_exchange() -> None:
    async with SimServer(cfg(neg_risk=True)) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        m = server.markets[0]
        async with http.get(server.rest_url + "/neg-risk", params={"token_id": m["yes"]}) as r:
            assert await r.json() == {"neg_risk": True}
        async with http.get(server.rest_url + "/markets", params={"id": m["gamma_id"]}) as r:
            assert (await r.json())[0]["negRisk"] is True
        async with http.get(server.rest_url + "/book", params={"token_id": m["yes"]}) as r:
            b = await r.json()
        assert b["neg_risk"] is True
        bw = [(x["price"], x["size"]) for x in b["bids"]]
        aw = [(x["price"], x["size"]) for x in b["asks"]]
        assert book_hash_wire(b["market"], b["asset_id"], b["timestamp"], bw, aw, "5", b["tick_size"], True,
                              b["last_trade_price"]) == b["hash"]  # fmt: skip
        bb, _ = top(server, m["yes"])
        status, body = await t.post(t.order(m["yes"], "BUY", bb, "10", exchange=V2))
        assert (status, body["errorMsg"]) == (400, "invalid signature")
        status, body = await t.post(t.order(m["yes"], "BUY", bb, "10", exchange=NEG))
        assert status == 200 and body["success"] is True


def test_order_hashes_and_domains_match_the_vectors() -> None:
    vecs = {v["label"].split(" ")[0]: v for v in vectors()["vectors"]}
    addr = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    for label, neg in (("v2_polygon_ctf_exchange_v2", False), ("v2_polygon_negrisk_ctf_exchange_v2", True),
                       ("v2_polygon_real_token_btc15m_up_SELL", False), ("v3_polygon_exchange_v3", False)):
        v = vecs[label]
        so = parse_order(v["post_order_body_py_clob_client_v2"]["order"])
        version, contract = exchange_for(int(so.token), neg, 137)
        assert (version, contract) == (v["domain"]["version"], v["domain"]["verifyingContract"]), label
        assert order_hash_and_signer(so, 137, neg) == (v["order_hash"], addr), label
    # a V3 position id is signed against ExchangeV3 whatever the market's neg-risk flag
    assert exchange_for(int(vecs["v3_polygon_exchange_v3"]["message"]["tokenId"]), True, 137) == ("3", V3)
    assert exchange_for(int(vecs["v3_polygon_exchange_v3"]["message"]["tokenId"]), False, 80002) == \
        ("3", "0x9fE6e61422AdB6F610d8597F9684b16912D50C3D")  # fmt: skip


async def test_poly_1271_and_proxy_signatures_accepted() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        m = server.markets[0]
        bb, _ = top(server, m["yes"])
        wallet = "0x1111111111111111111111111111111111111111"
        o = t.order(m["yes"], "BUY", bb, "10", sig_type=3, maker=wallet, signer=wallet)
        assert len(o["order"]["signature"]) > 2 + 130
        status, body = await t.post(o)
        assert status == 200 and body["success"] is True, body
        so = parse_order(o["order"])
        b = ExchangeOrderBuilderV2(V2, 137, t.signer)
        from py_clob_client_v2.order_utils.model.order_data_v2 import OrderV2
        from py_clob_client_v2.order_utils.model.signature_type_v2 import SignatureTypeV2

        plain = OrderV2(salt=str(so.salt), maker=wallet, signer=wallet, tokenId=m["yes"],
                        makerAmount=str(so.maker_amount), takerAmount=str(so.taker_amount), side=Side.BUY,
                        signatureType=SignatureTypeV2.POLY_1271, timestamp=str(so.timestamp),
                        metadata="0x" + "00" * 32, builder="0x" + "00" * 32)  # fmt: skip
        assert body["orderID"] == b.build_order_hash(b.build_order_typed_data(plain)), "the id is the order hash"
        # the wrapped inner signature must be the API key's wallet
        o = t.order(m["yes"], "BUY", bb, "10", sig_type=3, maker=wallet, signer=wallet)
        sig = o["order"]["signature"]
        o["order"]["signature"] = sig[:4] + ("0" if sig[4] != "0" else "1") + sig[5:]
        status, body = await t.post(o)
        assert (status, body["errorMsg"]) == (400, "invalid signature")
        # a Gnosis-safe order: maker = the funder, signer = our EOA
        safe = "0x2222222222222222222222222222222222222222"
        status, body = await t.post(t.order(m["yes"], "BUY", bb, "10", sig_type=2, maker=safe))
        assert status == 200 and body["success"] is True
        accounts = server.exchange.accounts()["accounts"]
        assert accounts[wallet]["reserved"] == from_units(10 * to_units(bb))
        assert accounts[safe]["reserved"] == from_units(10 * to_units(bb))
        status, bal = await t.call("GET", "/balance-allowance", params={"asset_type": "COLLATERAL",
                                                                        "signature_type": "3"})  # fmt: skip
        assert status == 200 and bal["balance"] == str(10_000 * ONE)
        # an EOA order must have maker == signer
        status, body = await t.post(t.order(m["yes"], "BUY", bb, "10", sig_type=0, maker=safe))
        assert (status, body["errorMsg"]) == (400, "invalid signature")


# ---------------------------------------------------------------------------------------------
# order rules


async def test_order_rejections() -> None:
    async with SimServer(cfg(cash="100")) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        m = server.markets[0]
        yes = m["yes"]
        bb, ba = top(server, yes)
        far = from_units(to_units(bb) - 5 * 10_000)

        async def reject(order: dict[str, Any], text: str) -> None:
            status, body = await t.post(order)
            assert status == 400 and body["success"] is False and text in body["errorMsg"], body

        await reject(t.order(yes, "BUY", "0.405", "10", amounts=(4_050_000, 10_000_000)), "tick")
        await reject(t.order(yes, "BUY", "0.001", "10", amounts=(10_000, 10_000_000)), "invalid price")
        await reject(t.order(yes, "BUY", far, "4.99"), "minimum")
        await reject(t.order(yes, "BUY", far, "300"), "not enough balance / allowance")
        await reject(t.order(yes, "SELL", add(ba, 2), "10"), "not enough balance / allowance")
        await reject(t.order(yes, "BUY", ba, "10", post_only=True), "post-only")
        await reject(t.order(yes, "BUY", bb, "10", order_type="FOK", post_only=True), "post-only")
        await reject(t.order(yes, "BUY", far, "10", order_type="GTD", expiration=str(T0 // 10**9 + 30)), "expiration")
        await reject(t.order(yes, "BUY", ba, "1", order_type="FAK"), "min size: $1")
        await reject(t.order("123456789", "BUY", bb, "10"), "Invalid token id")
        await reject(t.order(yes, "BUY", add(ba, 3), "1000000", order_type="FOK"), "not enough balance")
        # reservations: 2 x $40 fit in $100, the third does not
        for _ in range(2):
            status, body = await t.post(t.order(yes, "BUY", "0.10", "400"))
            assert status == 200 and body["status"] == "live"
        await reject(t.order(yes, "BUY", "0.10", "250"), "not enough balance / allowance")
        # duplicate hash: the same signed order twice is placed once
        o = t.order(yes, "BUY", "0.05", "100")
        status, body = await t.post(o)
        assert status == 200
        await reject(o, "order already exists")
        info = server.exchange.orders()
        assert info["posts"][body["orderID"]] == 2 and sum(x["hash"] == body["orderID"] for x in info["orders"]) == 1
        # GTD far enough ahead is fine
        status, body = await t.post(t.order(yes, "BUY", "0.02", "10", order_type="GTD",
                                            expiration=str(T0 // 10**9 + 120)))  # fmt: skip
        assert status == 200 and body["success"], body
        # a resolved market takes no orders
        server.resolve(m["condition_id"])
        await reject(t.order(yes, "BUY", "0.05", "10"), "closed")


async def test_fok_killed_fak_partial_and_batch() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        m = server.markets[0]
        yes = m["yes"]
        bb, ba = top(server, yes)
        before = server.state()["assets"][yes]["hash"]
        status, body = await t.post(t.order(yes, "BUY", ba, "100000", order_type="FOK"))
        assert (status, body["errorMsg"]) == (400, "order couldn't be fully filled. FOK orders are fully filled or "
                                                   "killed.")  # fmt: skip
        assert server.state()["assets"][yes]["hash"] == before and server.exchange.trades()["trades"] == []
        # FAK: fills what is at the best ask, cancels the rest
        level = next(x for x in server.book(yes)["asks"] if x["price"] == ba)["size"]
        status, body = await t.post(t.order(yes, "BUY", ba, "100000", order_type="FAK"))
        assert status == 200 and body["status"] == "matched" and body["takingAmount"] == level
        got = server.exchange.orders()["orders"][-1]
        assert got["status"] == "CANCELED" and got["size_matched"] == level
        # FAK below the book: nothing to take
        status, body = await t.post(t.order(yes, "BUY", "0.05", "100", order_type="FAK"))
        assert status == 200 and body["success"] is True and body["status"] == "unmatched" and body["tradeIDs"] == []
        # a batch: one bad slot does not stop the others; more than 15 is refused
        good = t.order(yes, "BUY", "0.05", "10")
        bad = t.order(yes, "BUY", "0.05", "10")
        bad["order"]["signature"] = good["order"]["signature"]
        status, res = await t.call("POST", "/orders", [good, bad, t.order(m["no"], "BUY", "0.05", "10")])
        assert status == 200 and [r["success"] for r in res] == [True, False, True]
        assert res[1]["errorMsg"] == "invalid signature"
        status, body = await t.call("POST", "/orders", [t.order(yes, "BUY", "0.05", "10") for _ in range(16)])
        assert (status, body) == (400, {"error": "Payload exceeds the limit"})


# ---------------------------------------------------------------------------------------------
# matching against the synthetic book


async def test_marketable_orders_fill_and_the_market_feed_still_verifies() -> None:
    async with SimServer(cfg(trade_prob=0.08, split_prob=0.3)) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        user = await user_feed(t)
        ws = await http.ws_connect(server.ws_url)
        ref = RefClient()
        await ws.send_str(sub_msg([a for m in server.markets for a in (m["yes"], m["no"])]))
        server.step(50)
        await sync(ws, ref)
        m = server.markets[0]
        yes, no = m["yes"], m["no"]
        # BUY YES through two ask levels at a limit two ticks above the best ask
        asks = sorted(server.book(yes)["asks"], key=lambda x: to_units(x["price"]))
        size = to_units(asks[0]["size"]) + to_units(asks[1]["size"]) // 2 // 10_000 * 10_000
        limit = add(asks[1]["price"], 1)
        status, body = await t.post(t.order(yes, "BUY", limit, from_units(size)))
        assert status == 200 and body["status"] == "matched", body
        p0, p1 = to_units(asks[0]["price"]), to_units(asks[1]["price"])
        q0 = to_units(asks[0]["size"])
        q1 = size - q0
        cost = q0 * p0 // ONE + q1 * p1 // ONE
        fee = taker_fee(q0, p0, FEES) + taker_fee(q1, p1, FEES)
        assert body["makingAmount"] == from_units(cost) and body["takingAmount"] == from_units(size)
        assert len(body["tradeIDs"]) == 1 and len(body["transactionsHashes"]) == 1
        acct = server.exchange.accounts()["accounts"][t.address]
        assert acct["cash"] == from_units(10_000 * ONE - cost - fee) and acct["shares"] == {yes: from_units(size)}
        # price improvement: the first level at its own price; the book lost exactly what we took
        asks2 = {x["price"]: x["size"] for x in server.book(yes)["asks"]}
        assert asks[0]["price"] not in asks2 and asks2[asks[1]["price"]] == from_units(to_units(asks[1]["size"]) - q1)
        # BUY NO hits YES bids (the mirror) at 1 - p
        bids = sorted(server.book(yes)["bids"], key=lambda x: -to_units(x["price"]))
        no_price = from_units(ONE - to_units(bids[0]["price"]))
        status, body = await t.post(t.order(no, "BUY", no_price, "5"))
        assert status == 200 and body["status"] == "matched"
        assert body["makingAmount"] == from_units(5 * to_units(no_price))
        bids2 = {x["price"]: x["size"] for x in server.book(yes)["bids"]}
        assert bids2.get(bids[0]["price"]) == (from_units(to_units(bids[0]["size"]) - 5 * ONE) if
                                               to_units(bids[0]["size"]) > 5 * ONE else None)  # fmt: skip
        # a market BUY built by the official client ($10 worth; the implied price is off the grid)
        _, ask = top(server, yes)
        _, mk, tk = OrderBuilder(t.signer).get_market_order_amounts("BUY", 10.0, float(add(ask, 2)),
                                                                     ROUNDING_CONFIG["0.01"])  # fmt: skip
        status, body = await t.post(t.order(yes, "BUY", "0", "0", order_type="FOK", amounts=(mk, tk)))
        assert status == 200 and body["status"] == "matched" and body["takingAmount"] == from_units(tk), body
        # the market channel: trade-triggered books + prints, every hash verifies, then the walk goes on
        await asyncio.sleep(0.06)
        await sync(ws, ref)
        assert ref.counts["trade_book"] >= 6 and ref.counts["print"] >= 3
        server.step(200)
        await sync(ws, ref)
        ref.check_mirrors([(m["yes"], m["no"]) for m in server.markets])
        for a in (yes, no):
            b = server.book(a)
            assert b is not None and ref.books[a].wire() == ([(x["price"], x["size"]) for x in b["bids"]],
                                                             [(x["price"], x["size"]) for x in b["asks"]])  # fmt: skip
        # user channel: one trade per order, TAKER, synthetic makers, MATCHED -> MINED -> CONFIRMED
        await settle(server)
        first = user.of("trade", status="MATCHED")
        assert len(first) == 3 and all(x["trader_side"] == "TAKER" and x["owner"] == t.key for x in first)
        tr = first[0]
        assert list(tr) == TRADE_KEYS and list(tr["maker_orders"][0]) == MAKER_ORDER_KEYS
        assert tr["side"] == "BUY" and tr["asset_id"] == yes and tr["size"] == from_units(size)
        assert [mo["price"] for mo in tr["maker_orders"]] == [asks[0]["price"], asks[1]["price"]]
        assert all(mo["owner"] == "sim-liquidity" for mo in tr["maker_orders"])
        assert tr["price"] == from_units((q0 * p0 + q1 * p1) // size)
        await user.wait(lambda x: isinstance(x, dict) and x.get("id") == tr["id"] and x["status"] == "CONFIRMED")
        assert [x["status"] for x in user.of("trade", id=tr["id"])] == ["MATCHED", "MINED", "CONFIRMED"]
        no_trade = first[1]
        assert no_trade["asset_id"] == no and no_trade["maker_orders"][0]["asset_id"] == yes
        assert no_trade["maker_orders"][0]["side"] == "BUY", "a NO buy meets YES bids (mint)"
        status, trades = await t.call("GET", "/data/trades")
        assert status == 200 and [x["status"] for x in trades["data"]] == ["CONFIRMED"] * 3
        status, trades = await t.call("GET", "/data/trades", params={"asset_id": no})
        assert [x["id"] for x in trades["data"]] == [no_trade["id"]]
        status, trades = await t.call("GET", "/data/trades", params={"after": str(T0 // 10**9 + 1)})
        assert trades["data"] == []
        await ws.close()
        await user.close()


async def test_resting_order_filled_by_the_walk() -> None:
    async with SimServer(cfg(seed=1, n_markets=1)) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        user = await user_feed(t)
        m = server.markets[0]
        yes = m["yes"]
        bb, ba = top(server, yes)
        book_before = server.book(yes)
        status, body = await t.post(t.order(yes, "BUY", bb, "10"))
        assert status == 200 and body["status"] == "live"
        assert server.book(yes) == book_before, "a resting order is not drawn into the public book"
        oid = body["orderID"]
        placement = await user.wait(lambda x: isinstance(x, dict) and x.get("type") == "PLACEMENT")
        assert list(placement) == PLACEMENT_KEYS, "the fields of the real PLACEMENT, in its order"
        assert placement["id"] == oid and placement["status"] == "LIVE" and placement["owner"] == t.key
        assert placement["order_owner"] == t.key and placement["size_matched"] == "0" and placement["price"] == bb
        assert placement["original_size"] == "10" and placement["associate_trades"] is None
        assert placement["created_at"] == str(T0 // 10**9) and placement["timestamp"] == str(T0 // 10**6)
        assert placement["maker_address"] == t.address and placement["outcome"] == "Yes"
        for _ in range(500):
            server.step(1)
            if server.exchange.orders()["orders"][0]["size_matched"] != "0":
                break
        _, ask_now = top(server, yes)
        assert to_units(ask_now) <= to_units(bb), "the walk crossed our price"
        upd = await user.wait(lambda x: isinstance(x, dict) and x.get("type") == "UPDATE")
        assert upd["id"] == oid and upd["size_matched"] == "10" and upd["status"] == "MATCHED"
        assert len(upd["associate_trades"]) == 1
        tid = upd["associate_trades"][0]
        await settle(server)
        await user.wait(lambda x: isinstance(x, dict) and x.get("id") == tid and x["status"] == "CONFIRMED")
        trades = user.of("trade", id=tid)
        assert [x["status"] for x in trades] == ["MATCHED", "MINED", "CONFIRMED"]
        tr = trades[0]
        assert list(tr) == TRADE_KEYS, "the fields of the real trade message, in its order"
        assert tr["trader_side"] == "MAKER" and tr["side"] == "SELL" and tr["taker_order_id"] != oid
        assert [(mo["order_id"], mo["matched_amount"], mo["price"], mo["owner"]) for mo in tr["maker_orders"]] == \
            [(oid, "10", bb, t.key)]  # fmt: skip
        # a maker pays its own price and no fee
        acct = server.exchange.accounts()["accounts"][t.address]
        assert acct["cash"] == from_units(10_000 * ONE - 10 * to_units(bb)) and acct["shares"] == {yes: "10"}
        status, o = await t.call("GET", f"/data/order/{oid}")
        assert status == 200 and o["status"] == "MATCHED" and o["size_matched"] == "10"
        await user.close()


async def test_cross_hits_two_of_our_orders_in_one_trade() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        user = await user_feed(t)
        m = server.markets[0]
        no = m["no"]
        ids = []
        for price in ("0.10", "0.12", "0.11"):
            status, body = await t.post(t.order(no, "BUY", price, "10"))
            assert status == 200
            ids.append(body["orderID"])
        res = sim_ctl(server, "cross", asset=no, side="SELL", size="15", price="0.11")
        assert res["ok"] and res["filled"] == "15" and res["orders"] == [ids[1], ids[2]], "price-time priority"
        msg = await user.wait(lambda x: isinstance(x, dict) and x.get("event_type") == "trade")
        assert msg["id"] == res["trade_id"] and msg["trader_side"] == "MAKER" and msg["size"] == "15"
        assert [(mo["order_id"], mo["matched_amount"], mo["price"]) for mo in msg["maker_orders"]] == \
            [(ids[1], "10", "0.12"), (ids[2], "5", "0.11")]  # fmt: skip
        assert msg["price"] == from_units((10 * 120_000 + 5 * 110_000) // 15)
        assert len(user.of("trade", status="MATCHED")) == 1, "ONE trade for both fills"
        ups = [x for x in user.of("order") if x["type"] == "UPDATE"]
        assert [(x["id"], x["size_matched"], x["status"]) for x in ups] == [(ids[1], "10", "MATCHED"),
                                                                            (ids[2], "5", "LIVE")]  # fmt: skip
        status, body = await t.call("GET", "/data/orders")
        assert {o["id"]: o["size_matched"] for o in body["data"]} == {ids[0]: "0", ids[2]: "5"}
        assert sim_ctl(server, "cross", asset=no, side="SELL", size="1", price="0.5")["ok"] is False
        await user.close()


# ---------------------------------------------------------------------------------------------
# cancels and queries


async def test_cancels_and_order_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        t2 = await Trader(server, http, PK2).login()
        user = await user_feed(t)
        m0, m1 = server.markets
        ids = {}
        for name, tok in (("a", m0["yes"]), ("b", m0["yes"]), ("c", m0["no"]), ("d", m1["yes"]), ("e", m1["no"])):
            status, body = await t.post(t.order(tok, "BUY", "0.05", "10"))
            assert status == 200
            ids[name] = body["orderID"]
        status, other = await t2.post(t2.order(m0["yes"], "BUY", "0.05", "10"))
        assert status == 200
        # /data/orders with filters and pages
        monkeypatch.setattr(simexchange, "PAGE_LIMIT", 2)
        status, p1 = await t.call("GET", "/data/orders")
        assert status == 200 and p1["count"] == 2 and p1["limit"] == 2 and p1["next_cursor"] != "LTE="
        status, p2 = await t.call("GET", "/data/orders", params={"next_cursor": p1["next_cursor"]})
        status, p3 = await t.call("GET", "/data/orders", params={"next_cursor": p2["next_cursor"]})
        assert p3["next_cursor"] == "LTE="
        assert [o["id"] for o in p1["data"] + p2["data"] + p3["data"]] == list(ids.values())
        monkeypatch.setattr(simexchange, "PAGE_LIMIT", 500)
        status, body = await t.call("GET", "/data/orders", params={"market": m0["condition_id"]})
        assert [o["id"] for o in body["data"]] == [ids["a"], ids["b"], ids["c"]]
        status, body = await t.call("GET", "/data/orders", params={"asset_id": m0["no"]})
        assert [o["id"] for o in body["data"]] == [ids["c"]]
        status, body = await t.call("GET", "/data/orders", params={"id": ids["d"]})
        o = body["data"][0]
        assert o["status"] == "LIVE" and o["owner"] == t.key and o["maker_address"] == t.address
        assert (o["market"], o["asset_id"], o["side"], o["original_size"], o["size_matched"], o["price"]) == \
            (m1["condition_id"], m1["yes"], "BUY", "10", "0", "0.05")  # fmt: skip
        assert (o["outcome"], o["expiration"], o["order_type"], o["created_at"]) == ("Yes", "0", "GTC",
                                                                                    str(T0 // 10**9))  # fmt: skip
        # cancel one; cancel several (one unknown, one not ours); cancel again
        status, body = await t.call("DELETE", "/order", {"orderID": ids["a"]})
        assert body == {"canceled": [ids["a"]], "not_canceled": {}}
        status, body = await t.call("DELETE", "/orders", [ids["b"], "0xdead", other["orderID"]])
        assert body == {"canceled": [ids["b"]], "not_canceled": {"0xdead": "order not found",
                                                                 other["orderID"]: "order not found"}}  # fmt: skip
        status, body = await t.call("DELETE", "/order", {"orderID": ids["a"]})
        assert body == {"canceled": [], "not_canceled": {ids["a"]: "already canceled or matched"}}
        status, body = await t.call("DELETE", "/cancel-market-orders", {"market": m1["condition_id"], "asset_id": ""})
        assert body["canceled"] == [ids["d"], ids["e"]]
        status, body = await t.call("DELETE", "/cancel-all")
        assert body == {"canceled": [ids["c"]], "not_canceled": {}}
        status, body = await t.call("GET", "/data/orders")
        assert body["data"] == []
        # /data/order/{id}: any status, only our own
        status, body = await t.call("GET", f"/data/order/{ids['a']}")
        assert status == 200 and body["status"] == "CANCELED"
        assert await t.call("GET", f"/data/order/{other['orderID']}") == (404, {"error": "order not found"})
        assert await t.call("GET", "/data/order/0x1234") == (404, {"error": "order not found"})
        status, body = await t2.call("GET", "/data/orders")
        assert [o["id"] for o in body["data"]] == [other["orderID"]], "the other key's order is untouched"
        await user.wait(lambda x: isinstance(x, dict) and x.get("type") == "CANCELLATION" and x["id"] == ids["c"])
        cancels = [x["id"] for x in user.of("order", type="CANCELLATION")]
        assert cancels == [ids[k] for k in "abdec"] and all(x["status"] == "CANCELED"
                                                            for x in user.of("order", type="CANCELLATION"))
        await user.close()


async def test_gtd_orders_expire() -> None:
    now = [T0]
    async with SimServer(cfg(clock=lambda: now[0])) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        user = await user_feed(t)
        tok = server.markets[0]["yes"]
        status, body = await t.post(t.order(tok, "BUY", "0.05", "10", order_type="GTD",
                                            expiration=str(T0 // 10**9 + 100)))  # fmt: skip
        assert status == 200 and body["status"] == "live"
        server.step(1)
        assert server.exchange.orders()["orders"][0]["status"] == "LIVE"
        now[0] = T0 + 100 * 10**9
        server.step(1)
        assert server.exchange.orders()["orders"][0]["status"] == "CANCELED"
        msg = await user.wait(lambda x: isinstance(x, dict) and x.get("type") == "CANCELLATION")
        assert msg["id"] == body["orderID"] and msg["order_type"] == "GTD"
        assert msg["expiration"] == str(T0 // 10**9 + 100)
        await user.close()


# ---------------------------------------------------------------------------------------------
# heartbeats, failures, faults


async def test_heartbeat_timeout_cancels_the_keys_orders() -> None:
    async with SimServer(cfg(heartbeat_timeout_s=0.3)) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        t2 = await Trader(server, http, PK2).login()
        user = await user_feed(t)
        tok = server.markets[0]["yes"]
        ids = [(await t.post(t.order(tok, "BUY", p, "10")))[1]["orderID"] for p in ("0.05", "0.06")]
        status, other = await t2.post(t2.order(tok, "BUY", "0.05", "10"))
        status, hb = await t.call("POST", "/v1/heartbeats", {"heartbeat_id": ""})
        assert status == 200 and hb["heartbeat_id"]
        for _ in range(3):  # kept alive
            await asyncio.sleep(0.15)
            status, hb2 = await t.call("POST", "/v1/heartbeats", {"heartbeat_id": hb["heartbeat_id"]})
            assert hb2 == hb
        assert all(o["status"] == "LIVE" for o in server.exchange.orders()["orders"])
        await user.wait(lambda x: isinstance(x, dict) and x.get("type") == "CANCELLATION", timeout=2.0)
        await asyncio.sleep(0.02)
        status, body = await t.call("GET", "/data/orders")
        assert body["data"] == []
        assert sorted(x["id"] for x in user.of("order", type="CANCELLATION")) == sorted(ids)
        info = sim_ctl(server, "heartbeats")
        assert info["kills"] == 1
        assert info["heartbeats"][t.key]["kills"] == 1 and info["heartbeats"][t.key]["count"] == 4
        status, body = await t2.call("GET", "/data/orders")
        assert [o["id"] for o in body["data"]] == [other["orderID"]], "a key without heartbeats keeps its orders"
        await user.close()


async def test_fail_next_trade_reverts_and_retry_next_trade() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        user = await user_feed(t)
        m = server.markets[0]
        yes = m["yes"]
        _, ba = top(server, yes)
        before = server.exchange.accounts()["accounts"]
        assert sim_ctl(server, "fail_next_trade") == {"ok": True}
        status, body = await t.post(t.order(yes, "BUY", ba, "5", order_type="FOK"))
        assert status == 200 and body["status"] == "matched"
        oid, tid = body["orderID"], body["tradeIDs"][0]
        assert server.exchange.accounts()["accounts"][t.address]["shares"] == {yes: "5"}
        await user.wait(lambda x: isinstance(x, dict) and x.get("id") == tid and x["status"] == "FAILED")
        assert [x["status"] for x in user.of("trade", id=tid)] == ["MATCHED", "FAILED"]
        await asyncio.sleep(0.06)
        assert [x["status"] for x in user.of("trade", id=tid)] == ["MATCHED", "FAILED"], "no MINED after FAILED"
        after = server.exchange.accounts()["accounts"][t.address]
        assert after["cash"] == "10000" and after["shares"] == {} and before == {}
        status, o = await t.call("GET", f"/data/order/{oid}")
        assert o["size_matched"] == "0"
        status, trades = await t.call("GET", "/data/trades")
        assert [(x["id"], x["status"]) for x in trades["data"]] == [(tid, "FAILED")]
        # a resting order whose maker fill fails is live again, with its size back
        status, body = await t.post(t.order(yes, "SELL", "0.95", "5"))
        assert (status, body["errorMsg"]) == (400, "not enough balance / allowance")
        status, body = await t.post(t.order(yes, "BUY", "0.05", "10"))
        rid = body["orderID"]
        sim_ctl(server, "fail_next_trade")
        res = sim_ctl(server, "cross", asset=yes, side="SELL", size="10", price="0.05")
        assert server.exchange.orders()["orders"][-1]["status"] == "MATCHED"
        await user.wait(lambda x: isinstance(x, dict) and x.get("id") == res["trade_id"] and x["status"] == "FAILED")
        status, o = await t.call("GET", f"/data/order/{rid}")
        assert (o["status"], o["size_matched"]) == ("LIVE", "0")
        # RETRYING
        sim_ctl(server, "retry_next_trade")
        status, body = await t.post(t.order(yes, "BUY", ba, "5", order_type="FOK"))
        tid = body["tradeIDs"][0]
        await user.wait(lambda x: isinstance(x, dict) and x.get("id") == tid and x["status"] == "CONFIRMED")
        assert [x["status"] for x in user.of("trade", id=tid)] == ["MATCHED", "RETRYING", "MINED", "CONFIRMED"]
        assert server.exchange.accounts()["accounts"][t.address]["shares"] == {yes: "5"}
        await user.close()


async def test_timeout_next_submit_holds_the_answer_but_places_the_order() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        user = await user_feed(t)
        tok = server.markets[0]["yes"]
        sim_ctl(server, "timeout_next_submit", ms=800)
        o = t.order(tok, "BUY", "0.05", "10")
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await t.post(o, timeout=0.2)
        assert time.monotonic() - t0 < 0.6
        oid = server.exchange.orders()["orders"][0]["hash"]
        placement = await user.wait(lambda x: isinstance(x, dict) and x.get("type") == "PLACEMENT")
        assert placement["id"] == oid
        status, body = await t.call("GET", f"/data/order/{oid}")
        assert status == 200 and body["status"] == "LIVE"
        status, body = await t.post(o)  # the client's retry of the same signed order
        assert (status, body["errorMsg"]) == (400, "order already exists")
        info = server.exchange.orders()
        assert info["posts"] == {oid: 2} and len(info["orders"]) == 1
        await user.close()


async def test_error_next_is_not_processed_and_delay_acks() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        tok = server.markets[0]["yes"]
        sim_ctl(server, "error_next", status=503, n=1)
        o = t.order(tok, "BUY", "0.05", "10")
        status, body = await t.post(o)
        assert status == 503 and "error" in body and "success" not in body
        assert server.exchange.orders() == {"orders": [], "posts": {}}, "not processed"
        status, body = await t.post(o)
        assert status == 200 and body["success"] is True
        sim_ctl(server, "error_next", status=429, n=2)
        assert (await t.call("GET", "/data/orders"))[0] == 429
        assert (await t.call("DELETE", "/cancel-all"))[0] == 429
        status, body = await t.call("GET", "/data/orders")
        assert status == 200 and len(body["data"]) == 1
        sim_ctl(server, "error_next", status=425)
        assert (await t.call("GET", "/data/orders"))[0] == 425
        sim_ctl(server, "delay_acks", ms=200)
        t0 = time.monotonic()
        assert (await t.call("GET", "/data/orders"))[0] == 200
        assert time.monotonic() - t0 >= 0.19
        sim_ctl(server, "delay_acks", ms=0)
        t0 = time.monotonic()
        await t.call("GET", "/data/orders")
        assert time.monotonic() - t0 < 0.15
        with pytest.raises(ValueError):
            sim_ctl(server, "error_next", status=200)
        async with http.get(server.rest_url + "/_sim/no_such_action") as r:
            assert r.status == 404


# ---------------------------------------------------------------------------------------------
# the user channel, balances, positions


async def test_user_channel_auth_filter_and_drop() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        assert t.creds is not None
        ws = await http.ws_connect(server.user_ws_url)
        await ws.send_str(json.dumps({"auth": {"apiKey": t.key, "secret": t.creds.api_secret, "passphrase": "x"},
                                      "type": "user"}))  # fmt: skip
        msg = await ws.receive(timeout=2)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4401
        m0, m1 = server.markets
        user = await user_feed(t, markets=[m0["condition_id"]])
        await t.post(t.order(m1["yes"], "BUY", "0.05", "10"))
        await t.post(t.order(m0["yes"], "BUY", "0.05", "10"))
        await user.sync()
        assert [x["market"] for x in user.of("order")] == [m0["condition_id"]], "filtered by market"
        await user.ws.send_str(json.dumps({"operation": "subscribe", "markets": [m1["condition_id"]]}))
        await t.post(t.order(m1["yes"], "BUY", "0.06", "10"))
        await user.sync()
        assert [x["market"] for x in user.of("order")] == [m0["condition_id"], m1["condition_id"]]
        await user.ws.send_str(json.dumps({"operation": "unsubscribe", "markets": [m0["condition_id"]]}))
        await t.post(t.order(m0["yes"], "BUY", "0.06", "10"))
        await user.sync()
        assert len(user.of("order")) == 2
        # another key's socket sees none of it
        t2 = await Trader(server, http, PK2).login()
        other = await user_feed(t2)
        await t.post(t.order(m0["no"], "BUY", "0.06", "10"))
        await other.sync()
        assert other.of("order") == []
        assert sim_ctl(server, "drop_user") == {"ok": True, "dropped": 2}
        await asyncio.wait_for(user.task, 2)
        assert user.ws.closed and user.ws.close_code == 1006
        await other.close()


async def test_positions_balances_allowances_and_geoblock() -> None:
    async with SimServer(cfg()) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        m = server.markets[0]
        yes = m["yes"]
        _, ba = top(server, yes)
        status, body = await t.post(t.order(yes, "BUY", ba, "20", order_type="FOK"))
        assert status == 200
        paid = 20 * to_units(ba)
        fee = taker_fee(20 * ONE, to_units(ba), FEES)
        status, bal = await t.call("GET", "/balance-allowance", params={"asset_type": "COLLATERAL",
                                                                        "signature_type": "0"})  # fmt: skip
        assert status == 200 and bal["balance"] == str(10_000 * ONE - paid - fee)
        assert bal["allowances"] == {V2: str(2**256 - 1), NEG: str(2**256 - 1), V3: str(2**256 - 1)}
        status, bal = await t.call("GET", "/balance-allowance", params={"asset_type": "CONDITIONAL", "token_id": yes})
        assert bal["balance"] == str(20 * ONE)
        async with http.get(server.rest_url + "/v2/positions", params={"user": t.address}) as r:
            pos = await r.json()
        assert pos["pagination"] == {"next_cursor": None} and len(pos["data"]) == 1
        p = pos["data"][0]
        assert (p["proxyWallet"], p["asset"], p["conditionId"]) == (t.address, yes, m["condition_id"])
        assert p["outcome"] == "Yes"
        assert p["size"] == 20.0 and p["avgPrice"] == pytest.approx(to_units(ba) / ONE)
        assert isinstance(p["curPrice"], float) and 0 < p["curPrice"] < 1
        # SELL half: the position shrinks at the same average price
        bb, _ = top(server, yes)
        status, body = await t.post(t.order(yes, "SELL", bb, "10", order_type="FOK"))
        assert status == 200 and body["status"] == "matched"
        async with http.get(server.rest_url + "/v2/positions", params={"user": t.address.lower()}) as r:
            p = (await r.json())["data"][0]
        assert p["size"] == 10.0 and p["avgPrice"] == pytest.approx(to_units(ba) / ONE)
        async with http.get(server.rest_url + "/v2/positions", params={"user": "0x" + "ab" * 20}) as r:
            assert (await r.json())["data"] == []
        async with http.get(server.rest_url + "/api/geoblock") as r:
            assert await r.json() == {"blocked": False, "ip": "127.0.0.1", "country": "XX", "region": "XX"}
        async with http.get(server.rest_url + "/version") as r:
            assert await r.json() == {"version": 2}
    async with SimServer(cfg(allowance="0", geoblocked=True, cash="50")) as server, aiohttp.ClientSession() as http:
        t = await Trader(server, http).login()
        status, bal = await t.call("GET", "/balance-allowance", params={"asset_type": "COLLATERAL"})
        assert bal == {"balance": str(50 * ONE), "allowances": {V2: "0", NEG: "0", V3: "0"}}
        status, body = await t.post(t.order(server.markets[0]["yes"], "BUY", "0.05", "10"))
        assert (status, body["errorMsg"]) == (400, "not enough balance / allowance")
        async with http.get(server.rest_url + "/api/geoblock") as r:
            assert (await r.json())["blocked"] is True


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SimConfig(cash="-1")
    with pytest.raises(ValueError):
        SimConfig(allowance="lots")
    with pytest.raises(ValueError):
        SimConfig(mined_ms=200, confirmed_ms=100)
    with pytest.raises(ValueError):
        SimConfig(heartbeat_timeout_s=0)


def test_cli_sim_trading_flags() -> None:
    proc = subprocess.Popen([str(CLI), "--log-level", "WARNING", "sim", "--port", "0", "--rate", "0", "--neg-risk",
                             "--cash", "50", "--allowance", "40", "--chain-id", "80002", "--geoblocked",
                             "--heartbeat-timeout", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or []], daemon=True).start()
    try:
        text = ""
        deadline = time.monotonic() + 15
        while "/ws/user" not in text and time.monotonic() < deadline:
            try:
                text += lines.get(timeout=0.2)
            except queue.Empty:
                if proc.poll() is not None:
                    break
        found = re.search(r"rest\s+(http://127\.0\.0\.1:\d+)", text)
        assert found and "user ws" in text, text
        yes = re.search(r"YES (\d+)", text)
        assert yes

        async def check(url: str, token: str) -> None:
            async with aiohttp.ClientSession() as http:
                async with http.get(url + "/neg-risk", params={"token_id": token}) as r:
                    assert await r.json() == {"neg_risk": True}
                async with http.get(url + "/api/geoblock") as r:
                    assert (await r.json())["blocked"] is True
                server: Any = type("Remote", (), {"rest_url": url, "config": SimConfig(chain_id=80002, neg_risk=True)})
                wrong_chain = create_level_1_headers(Signer(PK, 137))
                async with http.get(url + "/auth/derive-api-key", headers=wrong_chain) as r:
                    assert r.status == 401, "ClobAuth is signed for --chain-id"
                t = await Trader(server, http).login()
                status, bal = await t.call("GET", "/balance-allowance", params={"asset_type": "COLLATERAL"})
                assert bal["balance"] == str(50 * ONE) and set(bal["allowances"].values()) == {str(40 * ONE)}
                status, body = await t.post(t.order(token, "BUY", "0.05", "10"))  # neg-risk exchange, chain 80002
                assert status == 200 and body["success"] is True, body
                status, hb = await t.call("POST", "/v1/heartbeats", {"heartbeat_id": ""})
                assert status == 200
                await asyncio.sleep(0.6)
                status, body = await t.call("GET", "/data/orders")
                assert body["data"] == [], "--heartbeat-timeout 0.3 canceled it"

        asyncio.run(check(found.group(1), yes.group(1)))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
