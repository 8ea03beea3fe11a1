"""Order signing and request authentication for Polymarket CLOB V2 (PROTOCOL.md §3.2, §7).

The cryptography is py-clob-client-v2's (its exchange order builder, ClobAuth signer and HMAC
helper; eth-keys uses coincurve when it is installed, ~0.3 ms a signature); what this module adds
is what a trading daemon needs around it:

* amounts come from :mod:`polybot.execution.rules` (exact integers, the vectors' rounding), never
  from the client's float math;
* the exchange is chosen per order: CTFExchangeV2 (domain "2"), its neg-risk twin for neg-risk
  markets, ExchangeV3 (domain "3") for Protocol-V2 position ids;
* salt and timestamp are derived from the order's client id and creation time, so the order hash
  is a pure function of what the journal holds: after a crash the daemon recomputes the hash of
  an order whose answer it never saw and asks the venue about it, instead of sending it twice;
* the private key lives inside :class:`Credentials`, whose repr never shows it.

py-clob-client-v2 is imported lazily (the ``live`` extra): paper trading and replay do not need it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from polybot.execution.rules import limit_order_amounts, market_order_amounts

if TYPE_CHECKING:  # pragma: no cover
    from polybot.events import OrderIntent

ZERO32 = "0x" + "00" * 32

#: chain id -> (exchange V2, neg-risk exchange V2, exchange V3); PROTOCOL.md §7.1
EXCHANGES: dict[int, tuple[str, str, str]] = {
    137: ("0xE111180000d2663C0091e4f400237545B87B996B", "0xe2222d279d744050d28e00520010520000310F59",
          "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa"),
    80002: ("0xE111180000d2663C0091e4f400237545B87B996B", "0xe2222d279d744050d28e00520010520000310F59",
            "0x9fE6e61422AdB6F610d8597F9684b16912D50C3D"),
}  # fmt: skip
COLLATERAL = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"  # pUSD

SIGNATURE_TYPES = {"eoa": 0, "proxy": 1, "safe": 2, "poly_1271": 3}


def is_v3_position(token_id: str) -> bool:
    """Protocol-V2 position ids have zero reserved bits 40-103 (PROTOCOL.md §7.1) under a nonzero
    prefix; a CTF token id is a keccak hash (those 64 bits all zero: odds 2**-64), and a toy id such
    as 1234 (no prefix) is not a position id either. Gamma's ``version: "v2"`` says it too."""
    try:
        v = int(token_id)
    except ValueError:
        return False
    return v >> 104 != 0 and (v >> 40) & ((1 << 64) - 1) == 0


def exchange_for(chain_id: int, neg_risk: bool, v3: bool) -> tuple[str, str]:
    """(verifying contract, EIP-712 domain version) of an order."""
    try:
        std, nr, x3 = EXCHANGES[chain_id]
    except KeyError:
        raise ValueError(f"unsupported chain id {chain_id} (known: {sorted(EXCHANGES)})") from None
    if v3:
        return x3, "3"
    return (nr if neg_risk else std), "2"


def order_salt(client_id: str, created_ns: int) -> int:
    """A salt that is a pure function of the order (fits the client's range: < 2**53)."""
    d = hashlib.sha256(f"polybot-salt/{client_id}/{created_ns}".encode()).digest()
    return int.from_bytes(d[:7], "big") >> 3


@dataclass(frozen=True)
class ApiCreds:
    api_key: str
    secret: str
    passphrase: str

    def __repr__(self) -> str:  # never print a credential
        return "ApiCreds(***)"

    __str__ = __repr__


class Credentials:
    """The wallet: private key (kept here only), signer address, funder, signature type."""

    __slots__ = ("_pk", "address", "funder", "signature_type", "chain_id", "_signer")

    def __init__(self, private_key: str, *, chain_id: int = 137, signature_type: str | int = "eoa",
                 funder: str = "") -> None:  # fmt: skip
        from py_clob_client_v2.signer import Signer

        st = SIGNATURE_TYPES.get(signature_type, signature_type) if isinstance(signature_type, str) else signature_type
        if st not in (0, 1, 2, 3):
            raise ValueError(f"signature_type: expected one of {', '.join(SIGNATURE_TYPES)}, got {signature_type!r}")
        try:
            self._signer = Signer(private_key, chain_id)
        except Exception:  # noqa: BLE001 - the library's message may echo the key: never pass it on
            raise ValueError("private key: not a valid secp256k1 private key (64 hex digits)") from None
        self._pk = private_key
        self.address: str = self._signer.address()
        self.chain_id = chain_id
        self.signature_type: int = st
        if st == 0:
            if funder and funder.lower() != self.address.lower():
                raise ValueError(f"funder: an EOA (signature_type eoa) trades from its own address {self.address}; "
                                 "set signature_type to proxy, safe or poly_1271 for a separate funder")  # fmt: skip
            funder = self.address
        elif not funder:
            raise ValueError("funder: required for signature types proxy, safe and poly_1271 (the wallet that holds the funds)")
        self.funder: str = funder

    def __repr__(self) -> str:
        return f"Credentials(address={self.address}, funder={self.funder}, signature_type={self.signature_type})"

    __str__ = __repr__

    @property
    def signer(self) -> Any:
        return self._signer

    def l1_headers(self, timestamp: int | None = None, nonce: int = 0) -> dict[str, str]:
        """Headers for ``/auth/api-key`` and ``/auth/derive-api-key`` (ClobAuth EIP-712)."""
        from py_clob_client_v2.headers.headers import create_level_1_headers

        return create_level_1_headers(self._signer, nonce=nonce, timestamp=timestamp)  # type: ignore[no-any-return]


def hmac_signature(secret: str, timestamp: str | int, method: str, path: str, body: str | bytes | None) -> str:
    """The L2 ``POLY_SIGNATURE`` (base64url HMAC-SHA256 of ts+METHOD+path+body, '=' kept)."""
    from py_clob_client_v2.signing.hmac import build_hmac_signature

    if isinstance(body, bytes):
        body = body.decode("utf-8")
    if body and "'" in body:  # the client's helper rewrites ' to " before signing: sign what is sent
        msg = f"{timestamp}{method}{path}{body}".encode()
        return base64.urlsafe_b64encode(hmac.new(base64.urlsafe_b64decode(secret), msg, hashlib.sha256).digest()).decode()
    return build_hmac_signature(secret, str(timestamp), method, path, body or None)  # type: ignore[no-any-return]


def l2_headers(creds: ApiCreds, address: str, method: str, path: str, body: bytes | str = b"",
               timestamp: int | None = None) -> dict[str, str]:  # fmt: skip
    """Headers of an authenticated request; ``path`` without its query string, ``body`` the exact
    bytes sent."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "POLY_ADDRESS": address,
        "POLY_SIGNATURE": hmac_signature(creds.secret, ts, method, path, body),
        "POLY_TIMESTAMP": ts,
        "POLY_API_KEY": creds.api_key,
        "POLY_PASSPHRASE": creds.passphrase,
    }


class SignedOrder(msgspec.Struct, frozen=True):
    """What a submit sends: the POST body (one order, as py-clob-client-v2 serialises it) and the
    order hash (the venue's order id)."""

    order_hash: str
    body: dict[str, Any]
    maker_amount: int
    taker_amount: int


class OrderSigner:
    """Signs V2/V3 orders for one wallet; one exchange builder per (contract, domain), cached."""

    def __init__(self, creds: Credentials, owner: str = "") -> None:
        self.creds = creds
        self.owner = owner  # the API key (the body's "owner")
        self._builders: dict[tuple[str, str], Any] = {}

    def _builder(self, contract: str, version: str) -> Any:
        b = self._builders.get((contract, version))
        if b is None:
            from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2

            b = ExchangeOrderBuilderV2(contract, self.creds.chain_id, self.creds.signer, domain_version=version)
            self._builders[(contract, version)] = b
        return b

    def amounts(self, it: OrderIntent, tick: int) -> tuple[int, int]:
        """(makerAmount, takerAmount) in base units. A market BUY spends collateral: its amount is
        the limit's notional for the size (the venue fills at that price or better)."""
        if it.kind == "market" and it.side == "BUY":
            return market_order_amounts("BUY", it.price * it.size // 1_000_000, it.price, tick)
        if it.kind == "market":
            return market_order_amounts("SELL", it.size, it.price, tick)
        return limit_order_amounts(it.side, it.size, it.price, tick)

    def sign(self, it: OrderIntent, *, tick: int, neg_risk: bool, v3: bool, created_ns: int) -> SignedOrder:
        """Sign ``it`` (its client id and ``created_ns`` fix the salt and timestamp)."""
        maker_amt, taker_amt = self.amounts(it, tick)
        expiration = it.expire_ts // 1_000_000_000 if it.tif == "GTD" and it.expire_ts else 0
        return self.sign_amounts(it.asset_id, it.side, maker_amt, taker_amt, neg_risk=neg_risk, v3=v3,
                                 salt=order_salt(it.client_id, created_ns), timestamp_ms=created_ns // 1_000_000,
                                 expiration=expiration, order_type=it.tif, post_only=it.post_only)  # fmt: skip

    def sign_amounts(self, token_id: str, side: str, maker_amount: int, taker_amount: int, *, neg_risk: bool,
                     v3: bool, salt: int, timestamp_ms: int, expiration: int = 0, order_type: str = "GTC",
                     post_only: bool = False) -> SignedOrder:  # fmt: skip
        import dataclasses

        from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2, SignedOrderV2, order_to_json_v2
        from py_clob_client_v2.order_utils.model.side import Side

        contract, version = exchange_for(self.creds.chain_id, neg_risk, v3)
        b = self._builder(contract, version)
        c = self.creds
        data = OrderDataV2(maker=c.funder, tokenId=token_id, makerAmount=str(maker_amount),
                           takerAmount=str(taker_amount), side=Side.BUY if side == "BUY" else Side.SELL,
                           signer=c.address, signatureType=c.signature_type, timestamp=str(timestamp_ms),
                           expiration=str(expiration))  # fmt: skip
        b.generate_salt = lambda: str(salt)  # the builder asks for its salt while building
        order = b.build_order(data)
        typed = b.build_order_typed_data(order)
        signature = b.build_order_signature(typed)
        order_hash = b.build_order_hash(typed)
        signed = SignedOrderV2(**{**dataclasses.asdict(order), "signature": signature})
        body = order_to_json_v2(signed, owner=self.owner, order_type=order_type, post_only=post_only)
        return SignedOrder(order_hash, body, maker_amount, taker_amount)

    def order_hash(self, it: OrderIntent, *, tick: int, neg_risk: bool, v3: bool, created_ns: int) -> str:
        return self.sign(it, tick=tick, neg_risk=neg_risk, v3=v3, created_ns=created_ns).order_hash


def encode_body(obj: Any) -> bytes:
    """The exact bytes of a JSON request body (compact, as py-clob-client-v2 sends them)."""
    return msgspec.json.encode(obj)
