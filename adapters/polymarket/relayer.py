"""Polymarket's relayer: gasless transactions for proxy, Safe and deposit wallets.

The funder (the proxy wallet, Safe or deposit wallet) holds the tokens; the EOA only signs; the
relayer pays the gas and calls the wallet. Facts, and where they come from:

* API (docs.polymarket.com ``api-reference/relayer/*``, the OpenAPI of
  ``https://relayer-v2.polymarket.com``): ``POST /submit`` answers ``{"transactionID", "state":
  "STATE_NEW"}``; ``GET /transaction?id=`` answers a list with ``state`` (``STATE_NEW``,
  ``STATE_EXECUTED``, ``STATE_MINED``, ``STATE_CONFIRMED``, ``STATE_FAILED``, ``STATE_INVALID``:
  py-sdk ``models/clob/relayer.py``) and ``transactionHash``; ``GET /nonce?address=&type=SAFE|PROXY``
  answers ``{"nonce"}``; ``GET /relay-payload?address=&type=PROXY`` answers ``{"address" (the
  relay), "nonce"}``. Auth: the headers ``RELAYER_API_KEY`` and ``RELAYER_API_KEY_ADDRESS`` (a
  Relayer API key, created on polymarket.com; the address is the key's owner), or Builder API keys
  (``POLY_BUILDER_*``, HMAC-signed: not implemented here, its signing is not documented in what
  we read).
* Safe (``type: SAFE``; py-sdk ``actions/relayer/gasless.py`` and ``signing/safe.py``,
  py-builder-relayer-client ``builder/safe.py``): the EIP-712 ``SafeTx(address to,uint256 value,
  bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,uint256 gasPrice,address gasToken,
  address refundReceiver,uint256 nonce)`` under the domain ``{chainId, verifyingContract: safe}``,
  gas fields 0, the digest signed as an ``eth_sign`` message and packed r|s|v with v + 4 (the
  Safe's marker for eth_sign signatures); several calls go as one delegatecall (operation 1) to
  the Safe MultiSend. The Safe's address is CREATE2(safe factory, keccak(abi.encode(owner)),
  init code hash).
* Proxy (``type: PROXY``): the proxy factory's ``proxy((uint8,address,uint256,bytes)[])`` with
  type code 1 (CALL) per call; the signed hash is keccak("rlx:" ‖ from ‖ to ‖ data ‖ relayerFee ‖
  gasPrice ‖ gasLimit ‖ nonce ‖ relayHub ‖ relay) as an eth_sign message; relayer fee and gas
  price 0. The proxy wallet is CREATE2(proxy factory, keccak(encodePacked(owner)), init code hash).
* Deposit wallet (``type: WALLET``, signature type poly_1271): the EIP-712 ``Batch(address wallet,
  uint256 nonce,uint256 deadline,Call[] calls)Call(address target,uint256 value,bytes data)``
  under ``{name "DepositWallet", version "1", chainId, verifyingContract: wallet}``, signed
  plainly; its nonce from ``GET /v1/account/transactions/params?address=&type=WALLET`` (py-sdk
  ``nonce.py``; not on the docs pages we read: the path is configurable).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .chain import Call, Contracts, addr, keccak
from .rpc import url_host

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

    from .keys import KeySigner

SAFE_DOMAIN_TYPE = "EIP712Domain(uint256 chainId,address verifyingContract)"
SAFE_TX_TYPE = ("SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,"
                "uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)")  # fmt: skip
WALLET_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
WALLET_CALL_TYPE = "Call(address target,uint256 value,bytes data)"
WALLET_BATCH_TYPE = "Batch(address wallet,uint256 nonce,uint256 deadline,Call[] calls)" + WALLET_CALL_TYPE
PROXY_PREFIX = b"rlx:"
PROXY_DEFAULT_GAS_LIMIT = 200_000  # py-sdk's fallback when the estimate fails
WALLET_DEADLINE_S = 600
TERMINAL_OK = ("STATE_MINED", "STATE_CONFIRMED")
TERMINAL_FAIL = ("STATE_FAILED", "STATE_INVALID")
RELAYER_TYPES = {"proxy": "PROXY", "safe": "SAFE", "poly_1271": "WALLET"}

# ERC-1967 beacon proxy init code of deposit wallets (py-builder-relayer-client builder/derive.py)
_BEACON_PREFIX = 0x6100523D8160233D3973
_BEACON_C1 = "b3582b35133d50545afa5036515af43d6000803e604d573d6000fd5b3d6000f3"
_BEACON_C2 = "1b60e01b36527fa3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6c"
_BEACON_C3 = "60195155f3363d3d373d3d363d602036600436635c60da"


def _b(a: str) -> bytes:
    return bytes.fromhex(addr(a)[2:])


def _w(v: int) -> bytes:
    return v.to_bytes(32, "big")


def _aw(a: str) -> bytes:
    return bytes(12) + _b(a)


def create2(factory: str, salt: bytes, init_code_hash: str) -> str:
    return addr("0x" + keccak(b"\xff" + _b(factory) + salt + bytes.fromhex(init_code_hash[2:]))[-20:].hex())


def derive_safe(owner: str, c: Contracts) -> str:
    """The Safe of ``owner`` (py-builder-relayer-client ``derive``)."""
    return create2(c.need("safe_factory"), keccak(_aw(owner)), c.need("safe_init_code_hash"))


def derive_proxy(owner: str, c: Contracts) -> str:
    """The Polymarket proxy wallet of ``owner`` (``derive_proxy_wallet``)."""
    return create2(c.need("proxy_factory"), keccak(_b(owner)), c.need("proxy_init_code_hash"))


def derive_deposit_wallet(owner: str, c: Contracts) -> str:
    """The deposit wallet of ``owner``: an ERC-1967 beacon proxy made by the deposit-wallet
    factory (``derive_beacon_deposit_wallet``)."""
    factory, beacon = c.need("deposit_wallet_factory"), c.need("deposit_wallet_beacon")
    args = _aw(factory) + bytes(12) + _b(owner)  # abi.encode(address factory, bytes32 walletId = owner)
    init = ((_BEACON_PREFIX + (len(args) << 56)).to_bytes(10, "big") + _b(beacon) + bytes.fromhex(_BEACON_C3)
            + bytes.fromhex(_BEACON_C2) + bytes.fromhex(_BEACON_C1) + args)  # fmt: skip
    return create2(factory, keccak(args), "0x" + keccak(init).hex())


def funder_for(signature_type: str, owner: str, c: Contracts) -> str:
    """The wallet a signature type trades from, derived from the owner."""
    if signature_type == "safe":
        return derive_safe(owner, c)
    if signature_type == "proxy":
        return derive_proxy(owner, c)
    if signature_type == "poly_1271":
        return derive_deposit_wallet(owner, c)
    return addr(owner)


# ---------------------------------------------------------------------------------- encodings


def multisend_encode(calls: list[Call]) -> bytes:
    """MultiSend.multiSend(bytes): each call packed as operation(1) | to(20) | value(32) |
    length(32) | data."""
    from eth_abi import encode

    from .chain import selector

    inner = b"".join(bytes([0]) + _b(c.to) + _w(c.value) + _w(len(c.data)) + c.data for c in calls)
    return selector("multiSend(bytes)") + encode(["bytes"], [inner])


def multisend_decode(data: bytes) -> list[tuple[int, str, int, bytes]]:
    """The (operation, to, value, data) items of multiSend(bytes) calldata (ValueError if bad)."""
    from .chain import decode_args

    (inner,) = decode_args("multiSend(bytes)", data)
    out, i = [], 0
    while i < len(inner):
        if i + 85 > len(inner):
            raise ValueError("multiSend: truncated transaction")
        op = inner[i]
        to = "0x" + inner[i + 1 : i + 21].hex()
        value = int.from_bytes(inner[i + 21 : i + 53], "big")
        n = int.from_bytes(inner[i + 53 : i + 85], "big")
        if i + 85 + n > len(inner):
            raise ValueError("multiSend: truncated data")
        out.append((op, to, value, bytes(inner[i + 85 : i + 85 + n])))
        i += 85 + n
    return out


def proxy_encode(calls: list[Call]) -> bytes:
    """ProxyWalletFactory.proxy((uint8 typeCode,address to,uint256 value,bytes data)[]), type 1 = CALL."""
    from .chain import encode_call

    return encode_call("proxy((uint8,address,uint256,bytes)[])", [(1, c.to, c.value, c.data) for c in calls])


def safe_tx_digest(chain_id: int, safe: str, to: str, value: int, data: bytes, operation: int, nonce: int) -> bytes:
    dom = keccak(keccak(SAFE_DOMAIN_TYPE.encode()) + _w(chain_id) + _aw(safe))
    st = keccak(keccak(SAFE_TX_TYPE.encode()) + _aw(to) + _w(value) + keccak(data) + _w(operation) + _w(0) + _w(0)
                + _w(0) + _aw("0x" + "00" * 20) + _aw("0x" + "00" * 20) + _w(nonce))  # fmt: skip
    return keccak(b"\x19\x01" + dom + st)


def pack_safe_signature(sig: bytes) -> bytes:
    """An eth_sign signature in the Safe's encoding: v + 4 (31/32)."""
    v = sig[64]
    v = v + 31 if v in (0, 1) else v + 4 if v in (27, 28) else -1
    if v < 0:
        raise ValueError("invalid signature v")
    return sig[:64] + bytes([v])


def proxy_struct_hash(frm: str, to: str, data: bytes, relayer_fee: int, gas_price: int, gas_limit: int, nonce: int,
                      relay_hub: str, relay: str) -> bytes:  # fmt: skip
    return keccak(PROXY_PREFIX + _b(frm) + _b(to) + data + _w(relayer_fee) + _w(gas_price) + _w(gas_limit) + _w(nonce)
                  + _b(relay_hub) + _b(relay))  # fmt: skip


def wallet_batch_digest(chain_id: int, wallet: str, nonce: int, deadline: int, calls: list[Call]) -> bytes:
    dom = keccak(keccak(WALLET_DOMAIN_TYPE.encode()) + keccak(b"DepositWallet") + keccak(b"1") + _w(chain_id) + _aw(wallet))
    ct = keccak(WALLET_CALL_TYPE.encode())
    inner = b"".join(keccak(ct + _aw(c.to) + _w(c.value) + keccak(c.data)) for c in calls)
    st = keccak(keccak(WALLET_BATCH_TYPE.encode()) + _aw(wallet) + _w(nonce) + _w(deadline) + keccak(inner))
    return keccak(b"\x19\x01" + dom + st)


# ---------------------------------------------------------------------------------- client


class RelayerError(Exception):
    """The relayer refused or did not answer (``status`` 0: no answer)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"relayer: HTTP {status or 'no answer'}: {detail}")
        self.status = status
        self.detail = detail


@dataclass
class Prepared:
    """A relayer transaction, signed, not yet submitted: the body and the hash the EOA signed."""

    body: dict[str, Any]
    signed_hash: str
    calls: list[Call]
    kind: str  # SAFE | PROXY | WALLET


class Relayer:
    """Submits and tracks relayer transactions for one EOA and its wallet."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, signer: KeySigner, signature_type: str,
                 funder: str, chain_id: int, contracts: Contracts, api_key: str = "", api_key_address: str = "",
                 timeout_s: float = 10.0, wallet_params_path: str = "/v1/account/transactions/params",
                 rpc: Any = None) -> None:  # fmt: skip
        if signature_type not in RELAYER_TYPES:
            raise ValueError(f"signature_type {signature_type!r} does not use the relayer")
        self.session = session
        self.base = url.rstrip("/")
        self.host = url_host(url)
        self.signer = signer
        self.kind = RELAYER_TYPES[signature_type]
        self.funder = addr(funder)
        self.chain_id = chain_id
        self.c = contracts
        self._api_key = api_key  # a secret: never logged
        self.api_key_address = api_key_address or signer.address
        self.timeout_s = timeout_s
        self.wallet_params_path = wallet_params_path
        self.rpc = rpc  # for the proxy path's gas estimate (optional)

    def __repr__(self) -> str:
        return f"Relayer({self.host}, {self.kind}, {self.funder})"

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self._api_key:
            h["RELAYER_API_KEY"] = self._api_key
            h["RELAYER_API_KEY_ADDRESS"] = self.api_key_address
        return h

    async def _request(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None,
                       attempts: int = 3) -> Any:  # fmt: skip
        import aiohttp

        data = msgspec.json.encode(body) if body is not None else None
        for attempt in range(attempts):
            try:
                async with self.session.request(method, self.base + path, params=query, data=data, headers=self._headers(),
                                                timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as r:  # fmt: skip
                    text = await r.text()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                err = RelayerError(0, f"{method} {path}: {type(exc).__name__}")
            else:
                if status < 400:
                    try:
                        return msgspec.json.decode(text) if text else None
                    except msgspec.DecodeError:
                        raise RelayerError(status, f"{method} {path}: not JSON") from None
                err = RelayerError(status, f"{method} {path}: {text[:300]}")
                if status != 429 and status < 500:
                    raise err
            # a submit is retried only when it cannot have been processed twice: the relayer
            # refuses a second transaction with the same wallet nonce
            if attempt + 1 >= attempts:
                raise err
            await anyio.sleep(0.25 * 2**attempt)
        raise RelayerError(0, f"{method} {path}: no attempt")

    async def _nonce(self) -> tuple[int, str]:
        """(wallet nonce, relay address for PROXY)."""
        if self.kind == "PROXY":
            r = await self._request("GET", "/relay-payload", query={"address": self.signer.address, "type": "PROXY"})
            relay = r.get("address") if isinstance(r, dict) else None
        elif self.kind == "SAFE":
            r = await self._request("GET", "/nonce", query={"address": self.signer.address, "type": "SAFE"})
            relay = None
        else:
            r = await self._request("GET", self.wallet_params_path, query={"address": self.signer.address, "type": "WALLET"})
            relay = None
        n = r.get("nonce") if isinstance(r, dict) else None
        if not isinstance(n, (str, int)) or not str(n).isdigit():
            raise RelayerError(200, f"no nonce in the answer: {str(r)[:100]}")
        return int(n), str(relay or "")

    async def prepare(self, calls: list[Call], metadata: str = "") -> Prepared:
        """Sign ``calls`` for the wallet (a read of the relayer's nonce; nothing is submitted)."""
        if not calls:
            raise ValueError("nothing to send")
        nonce, relay = await self._nonce()
        s = self.signer
        if self.kind == "SAFE":
            if len(calls) == 1:
                to, data, value, op = calls[0].to, calls[0].data, calls[0].value, 0
            else:
                to, data, value, op = self.c.need("safe_multisend"), multisend_encode(calls), 0, 1
            digest = safe_tx_digest(self.chain_id, self.funder, to, value, data, op, nonce)
            sig = pack_safe_signature(s.sign_eip191(digest))
            body: dict[str, Any] = {
                "type": "SAFE", "from": s.address, "to": addr(to), "proxyWallet": self.funder, "data": "0x" + data.hex(),
                "nonce": str(nonce), "signature": "0x" + sig.hex(), "metadata": metadata,
                "signatureParams": {"baseGas": "0", "gasPrice": "0", "gasToken": "0x" + "00" * 20, "operation": str(op),
                                    "refundReceiver": "0x" + "00" * 20, "safeTxnGas": "0"}}  # fmt: skip
            if value:
                body["value"] = str(value)
            return Prepared(body, "0x" + digest.hex(), calls, "SAFE")
        if self.kind == "PROXY":
            if not relay:
                raise RelayerError(200, "no relay address in /relay-payload")
            factory, hub = self.c.need("proxy_factory"), self.c.need("relay_hub")
            data = proxy_encode(calls)
            gas_limit = PROXY_DEFAULT_GAS_LIMIT
            if self.rpc is not None:
                try:
                    gas_limit = await self.rpc.estimate_gas({"from": s.address, "to": factory, "data": "0x" + data.hex()})
                except Exception:  # noqa: BLE001 - py-sdk falls back to its default too
                    gas_limit = PROXY_DEFAULT_GAS_LIMIT
            h = proxy_struct_hash(s.address, factory, data, 0, 0, gas_limit, nonce, hub, relay)
            sig = s.sign_eip191(h)
            body = {"type": "PROXY", "from": s.address, "to": addr(factory), "proxyWallet": self.funder,
                    "data": "0x" + data.hex(), "nonce": str(nonce), "signature": "0x" + sig.hex(), "metadata": metadata,
                    "signatureParams": {"gasLimit": str(gas_limit), "gasPrice": "0", "relay": addr(relay),
                                        "relayHub": addr(hub), "relayerFee": "0"}}  # fmt: skip
            return Prepared(body, "0x" + h.hex(), calls, "PROXY")
        deadline = int(time.time()) + WALLET_DEADLINE_S
        digest = wallet_batch_digest(self.chain_id, self.funder, nonce, deadline, calls)
        sig = s.sign_digest(digest)
        body = {"type": "WALLET", "from": s.address, "to": self.c.need("deposit_wallet_factory"), "nonce": str(nonce),
                "signature": "0x" + sig.hex(), "metadata": metadata,
                "depositWalletParams": {"depositWallet": self.funder, "deadline": str(deadline),
                                        "calls": [{"target": c.to, "value": str(c.value), "data": c.data_hex} for c in calls]}}  # fmt: skip
        return Prepared(body, "0x" + digest.hex(), calls, "WALLET")

    async def submit(self, p: Prepared) -> str:
        """POST /submit; the relayer's transaction id."""
        r = await self._request("POST", "/submit", body=p.body, attempts=1)
        tid = r.get("transactionID") if isinstance(r, dict) else None
        if not tid:
            raise RelayerError(200, f"no transactionID in the answer: {str(r)[:200]}")
        return str(tid)

    async def transaction(self, tid: str) -> dict[str, Any]:
        r = await self._request("GET", "/transaction", query={"id": tid})
        if isinstance(r, list):
            r = r[0] if r else None
        if not isinstance(r, dict):
            raise RelayerError(200, f"transaction {tid}: no record")
        return r

    async def wait(self, tid: str, *, timeout_s: float, poll_s: float) -> dict[str, Any]:
        """Poll until the transaction is mined (its record) or failed (RelayerError with the
        state); TimeoutError after ``timeout_s``."""
        with anyio.fail_after(timeout_s):
            while True:
                try:
                    t = await self.transaction(tid)
                except RelayerError as err:
                    if err.status and err.status < 500 and err.status != 429:
                        raise
                    await anyio.sleep(poll_s)
                    continue
                st = str(t.get("state", ""))
                if st in TERMINAL_OK and t.get("transactionHash"):
                    return t
                if st in TERMINAL_FAIL:
                    raise RelayerError(200, f"transaction {tid} {st.removeprefix('STATE_').lower()}"
                                            + (f": {t.get('errorMsg') or t.get('error_msg')}" if t.get("errorMsg") or t.get("error_msg") else ""))  # fmt: skip
                await anyio.sleep(poll_s)
