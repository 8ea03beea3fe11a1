"""A small JSON-RPC 2.0 client for a Polygon node, over aiohttp.

* transport errors (no answer, a 5xx or a 429) are retried with exponential backoff and jitter;
  a JSON-RPC error answer is not (it is an answer), except the node's rate-limit codes;
* batches (one POST, answers matched by id) for the many reads of ``polybot wallet status``;
* errors decoded: :class:`RpcError` keeps the code, the message and the revert reason of an
  ``execution reverted`` (``Error(string)`` data decoded);
* the URL often embeds an API key (``https://polygon-mainnet.g.alchemy.com/v2/<key>``): it is
  treated as a secret; messages and logs name its host only (:attr:`JsonRpc.host`).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import msgspec
from loguru import logger

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

RETRY_CODES = (-32005, 429)  # "limit exceeded" (EIP-1474), and providers' 429 in a JSON-RPC error
ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


def url_host(url: str) -> str:
    """What may be shown of an RPC URL: its host (the path and query may hold an API key)."""
    try:
        u = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = u.hostname or "<no host>"
    return f"{host}:{u.port}" if u.port else host


def decode_revert(data: Any) -> str:
    """The reason of a revert from its return data (``Error(string)``, ``Panic(uint256)``, or a
    custom error's selector), "" when there is none."""
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return ""
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return ""
    if raw[:4] == ERROR_STRING:
        try:
            from eth_abi import decode

            return str(decode(["string"], raw[4:])[0])
        except Exception:  # noqa: BLE001 - malformed revert data: show the selector instead
            return "0x" + raw[:4].hex()
    if raw[:4] == PANIC and len(raw) >= 36:
        return f"panic 0x{int.from_bytes(raw[4:36], 'big'):02x}"
    return "custom error 0x" + raw[:4].hex()


class RpcError(Exception):
    """A JSON-RPC error answer (``code``, ``message``, ``data``), or with ``code`` None no
    usable answer at all (transport)."""

    def __init__(self, code: int | None, message: str, data: Any = None, method: str = "") -> None:
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        reason = decode_revert(data)
        self.reason = reason
        text = f"{method}: " if method else ""
        text += f"{message}" + (f": {reason}" if reason and reason not in message else "")
        if code is not None:
            text += f" (code {code})"
        super().__init__(text)

    @property
    def transport(self) -> bool:
        return self.code is None

    @property
    def reverted(self) -> bool:
        return "revert" in self.message.lower() or self.code == 3


class JsonRpc:
    """JSON-RPC over one aiohttp session. ``retries`` transport retries per request."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, timeout_s: float = 10.0, retries: int = 4,
                 backoff_s: float = 0.25) -> None:  # fmt: skip
        self.session = session
        self._url = url  # a secret: never logged, never in a message
        self.host = url_host(url)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._id = 0
        self.requests = 0
        self.retried = 0

    def __repr__(self) -> str:
        return f"JsonRpc({self.host})"

    async def _post(self, body: bytes, what: str) -> Any:
        import aiohttp

        attempt = 0
        while True:
            self.requests += 1
            err: RpcError
            try:
                async with self.session.post(self._url, data=body, headers={"Content-Type": "application/json"},
                                             timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as r:  # fmt: skip
                    text = await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                err = RpcError(None, f"no answer from {self.host}: {type(exc).__name__}", method=what)
            else:
                if status < 400 or status == 400 and text[:1] in (b"{", b"["):
                    try:
                        return msgspec.json.decode(text)
                    except msgspec.DecodeError:
                        err = RpcError(None, f"{self.host} answered HTTP {status} with no JSON", method=what)
                        if status < 500:
                            raise err from None
                else:
                    err = RpcError(None, f"{self.host} answered HTTP {status}", method=what)
                    if status not in (429,) and status < 500:
                        raise err
            if attempt >= self.retries:
                raise err
            attempt += 1
            self.retried += 1
            delay = min(8.0, self.backoff_s * 2 ** (attempt - 1)) * (0.5 + random.random())
            logger.debug("rpc {}: {}; retry {} in {:.2f} s", self.host, err, attempt, delay)
            await anyio.sleep(delay)

    def _req(self, method: str, params: list[Any]) -> dict[str, Any]:
        self._id += 1
        return {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}

    @staticmethod
    def _result(ans: Any, method: str) -> Any:
        if not isinstance(ans, dict):
            raise RpcError(None, "malformed answer (not an object)", method=method)
        e = ans.get("error")
        if e is not None:
            if isinstance(e, dict):
                code = e.get("code")
                raise RpcError(int(code) if isinstance(code, int) else -1, str(e.get("message", ""))[:300],
                               e.get("data"), method)  # fmt: skip
            raise RpcError(-1, str(e)[:300], method=method)
        if "result" not in ans:
            raise RpcError(None, "malformed answer (no result)", method=method)
        return ans["result"]

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        """One call; its ``result``, or RpcError (a rate-limit code is retried like transport)."""
        attempt = 0
        while True:
            req = self._req(method, params or [])
            ans = await self._post(msgspec.json.encode(req), method)
            try:
                return self._result(ans, method)
            except RpcError as err:
                if err.code in RETRY_CODES and attempt < self.retries:
                    attempt += 1
                    await anyio.sleep(min(8.0, self.backoff_s * 2**attempt))
                    continue
                raise

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one POST; each item is its result or the RpcError it got."""
        if not calls:
            return []
        reqs = [self._req(m, p) for m, p in calls]
        ans = await self._post(msgspec.json.encode(reqs), "batch")
        if not isinstance(ans, list):  # some nodes refuse batches with one error object
            out: list[Any] = []
            for m, p in calls:
                try:
                    out.append(await self.call(m, p))
                except RpcError as err:
                    out.append(err)
            return out
        by_id = {a.get("id"): a for a in ans if isinstance(a, dict)}
        out = []
        for r in reqs:
            a = by_id.get(r["id"])
            if a is None:
                out.append(RpcError(None, "missing from the batch answer", method=r["method"]))
                continue
            try:
                out.append(self._result(a, r["method"]))
            except RpcError as err:
                out.append(err)
        return out

    # -- typed helpers ---------------------------------------------------------------------

    async def chain_id(self) -> int:
        return _int(await self.call("eth_chainId"), "eth_chainId")

    async def block_number(self) -> int:
        return _int(await self.call("eth_blockNumber"), "eth_blockNumber")

    async def nonce(self, address: str, block: str = "pending") -> int:
        return _int(await self.call("eth_getTransactionCount", [address, block]), "eth_getTransactionCount")

    async def balance(self, address: str) -> int:
        return _int(await self.call("eth_getBalance", [address, "latest"]), "eth_getBalance")

    async def eth_call(self, to: str, data: str, frm: str | None = None) -> str:
        tx: dict[str, Any] = {"to": to, "data": data}
        if frm:
            tx["from"] = frm
        r = await self.call("eth_call", [tx, "latest"])
        if not isinstance(r, str):
            raise RpcError(None, "eth_call: result is not hex", method="eth_call")
        return r

    async def estimate_gas(self, tx: dict[str, Any]) -> int:
        return _int(await self.call("eth_estimateGas", [tx]), "eth_estimateGas")

    async def max_priority_fee(self) -> int:
        return _int(await self.call("eth_maxPriorityFeePerGas"), "eth_maxPriorityFeePerGas")

    async def latest_block(self) -> dict[str, Any]:
        b = await self.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(b, dict):
            raise RpcError(None, "eth_getBlockByNumber: no block", method="eth_getBlockByNumber")
        return b

    async def send_raw(self, raw_hex: str) -> str:
        return str(await self.call("eth_sendRawTransaction", [raw_hex]))

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        r = await self.call("eth_getTransactionReceipt", [tx_hash])
        return r if isinstance(r, dict) else None


def _int(v: Any, what: str) -> int:
    try:
        if isinstance(v, str):
            return int(v, 16) if v.startswith("0x") else int(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    except ValueError:
        pass
    raise RpcError(None, f"not a quantity: {str(v)[:40]!r}", method=what)


def quantity(v: Any, default: int = 0) -> int:
    """A hex quantity field of an answer (receipt, block) as an int; ``default`` when absent."""
    if v is None:
        return default
    return _int(v, "quantity")
