"""On-chain transactions for the wallet: balances, approvals, wrapping, and the sending machinery
the live executor's position actions use.

* :class:`TxSender` (an EOA pays its own gas): EIP-1559 (type 2) transactions signed with
  eth-account, nonce from ``eth_getTransactionCount(pending)``, gas from ``eth_estimateGas`` times
  ``wallet.gas_margin``, fees from ``eth_maxPriorityFeePerGas`` and the latest block's base fee
  (max fee = 2 x base + tip, capped by ``wallet.max_fee_gwei``; a base fee above the cap refuses
  to send rather than leave a transaction stuck), sent with ``eth_sendRawTransaction``, the
  receipt polled until ``wallet.confirmations`` blocks; no receipt after ``resend_after_s``: the
  same signed bytes are broadcast again; none after ``receipt_timeout_s``: not mined.
* proxy / Safe / deposit wallets go through Polymarket's relayer (:mod:`.relayer`): the funder
  holds the tokens, the EOA signs, the relayer pays the gas.
* :class:`ChainWallet` hides which one a wallet uses: ``prepare`` (build and sign, nothing sent),
  ``send``, ``confirm``.
* ``polybot wallet status | approve | wrap AMOUNT`` (:func:`run_wallet`, called by polybot's CLI by
  module name): balances, every allowance / approval the exchanges and position actions need
  (:data:`.chain.APPROVALS`), setting the missing ones, wrapping USDC.e into pUSD.

The private key stays inside :class:`~.keys.KeySigner`; the RPC URL (often with an API key in it)
is shown by its host only.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TextIO

import anyio
from loguru import logger

from .chain import (
    UNLIMITED,
    Approval,
    Call,
    ChainError,
    Contracts,
    approvals_for,
    contracts_for,
    decode_uint,
    erc20_allowance,
    erc20_approve,
    erc20_balance_of,
    onramp_wrap,
)
from .rpc import JsonRpc, RpcError, quantity, url_host

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

    from polybot.config import Config, Secrets

    from .keys import KeySigner
    from .relayer import Prepared

GWEI = 10**9
DEFAULT_GAS = 150_000  # the gas limit of a dry-run transaction that cannot be estimated yet


# ---------------------------------------------------------------------------------- settings


@dataclass
class WalletSettings:
    """Everything the chain side needs, from ``[wallet]``, the secrets and the executor params."""

    chain_id: int = 137
    rpc_url: str = ""  # a secret (may embed an API key)
    confirmations: int = 3
    max_fee_wei: int = 500 * GWEI
    gas_margin: float = 1.2
    receipt_timeout_s: float = 180.0
    resend_after_s: float = 30.0
    poll_s: float = 2.0
    relayer_url: str = "https://relayer-v2.polymarket.com"
    relayer_api_key: str = ""  # a secret
    relayer_api_key_address: str = ""
    contracts: Contracts = field(default_factory=Contracts)
    signature_type: str = "eoa"
    funder: str = ""

    def __repr__(self) -> str:
        return (f"WalletSettings(chain {self.chain_id}, rpc {url_host(self.rpc_url) if self.rpc_url else '-'}, "
                f"{self.signature_type}, funder {self.funder or '-'})")  # fmt: skip

    @property
    def via(self) -> str:
        return "rpc" if self.signature_type == "eoa" else "relayer"


def settings_from(cfg: Config, secrets: Secrets, params: dict[str, Any] | None = None) -> WalletSettings:
    """``[wallet]`` + secrets (``rpc_url``, ``relayer_api_key``) + the executor's wallet params
    (``signature_type``, ``funder``, ``chain_id``). Raises ConfigError naming the field."""
    from polybot.config import ConfigError

    w = cfg.wallet
    p = dict(params or {})
    src = cfg.source_path or "<config>"
    chain = w.chain_id or int(p.get("chain_id", 137))
    if "chain_id" in p and p["chain_id"] != chain:
        raise ConfigError(f"{src}: wallet.chain_id: {chain} differs from executor.params.chain_id {p['chain_id']} "
                          "(orders and transactions must be on one chain)")  # fmt: skip
    try:
        contracts = contracts_for(chain, dict(w.contracts))
    except ChainError as exc:
        raise ConfigError(f"{src}: wallet.contracts: {exc}") from None
    st = str(p.get("signature_type", "eoa"))
    if st not in ("eoa", "proxy", "safe", "poly_1271"):
        raise ConfigError(f"{src}: executor.params.signature_type: {st!r} is not eoa, proxy, safe or poly_1271")
    return WalletSettings(
        chain_id=chain, rpc_url=secrets.get("rpc_url") or w.rpc_url, confirmations=w.confirmations,
        max_fee_wei=int(Decimal(str(w.max_fee_gwei)) * GWEI), gas_margin=w.gas_margin,
        receipt_timeout_s=w.receipt_timeout_s, resend_after_s=w.resend_after_s, poll_s=w.poll_interval_s,
        relayer_url=w.relayer_url, relayer_api_key=secrets.get("relayer_api_key") or "",
        relayer_api_key_address=w.relayer_api_key_address, contracts=contracts, signature_type=st,
        funder=str(p.get("funder", "") or ""),
    )  # fmt: skip


# ---------------------------------------------------------------------------------- EOA transactions


class TxFailed(Exception):
    """A transaction that did not happen: refused, reverted, replaced or never mined."""

    def __init__(self, reason: str, tx_hash: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.tx_hash = tx_hash


@dataclass
class SignedTx:
    call: Call
    tx: dict[str, Any]
    raw: bytes
    hash: str
    estimate: int = 0  # eth_estimateGas (0: not estimated)

    @property
    def raw_hex(self) -> str:
        return "0x" + self.raw.hex()

    @property
    def max_cost(self) -> int:
        return int(self.tx["gas"]) * int(self.tx["maxFeePerGas"])


@dataclass
class Receipt:
    tx_hash: str
    status: int
    block: int
    gas_used: int
    gas_cost: int
    logs: list[dict[str, Any]]


class TxSender:
    """Builds, signs, sends and confirms one EOA's transactions."""

    def __init__(self, rpc: JsonRpc, signer: KeySigner, s: WalletSettings) -> None:
        self.rpc = rpc
        self.signer = signer
        self.s = s
        self._next_nonce: int | None = None
        self.resends = 0

    async def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) in wei."""
        blk, tip = await self.rpc.latest_block(), await self.rpc.max_priority_fee()
        base = quantity(blk.get("baseFeePerGas"))
        cap = self.s.max_fee_wei
        if base >= cap:
            raise TxFailed(f"base fee {base / GWEI:.2f} gwei is at or above wallet.max_fee_gwei {cap / GWEI:.2f}: "
                           "the transaction would not be mined; raise the cap or wait")  # fmt: skip
        max_fee = min(cap, 2 * base + tip)
        return max_fee, min(tip, max_fee - base)

    async def estimate(self, call: Call) -> int:
        tx = {"from": self.signer.address, "to": call.to, "data": call.data_hex, "value": hex(call.value)}
        try:
            return await self.rpc.estimate_gas(tx)
        except RpcError as err:
            if err.transport:
                raise
            raise TxFailed(f"{call.label or call.function}: would fail: {err.reason or err.message}") from None

    async def nonce(self) -> int:
        n = await self.rpc.nonce(self.signer.address, "pending")
        if self._next_nonce is not None and self._next_nonce > n:
            n = self._next_nonce
        return n

    async def build(self, calls: list[Call], *, estimate: bool = True) -> list[SignedTx]:
        """Sign ``calls`` with consecutive nonces (independent calls: each is estimated on the
        current state; ``estimate=False`` uses :data:`DEFAULT_GAS`)."""
        max_fee, tip = await self.fees()
        nonce = await self.nonce()
        out = []
        for i, c in enumerate(calls):
            est = await self.estimate(c) if estimate else 0
            gas = math.ceil(est * self.s.gas_margin) if estimate else DEFAULT_GAS
            tx = {"type": 2, "chainId": self.s.chain_id, "nonce": nonce + i, "to": c.to, "value": c.value,
                  "data": c.data_hex, "gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}  # fmt: skip
            raw, h = self.signer.sign_transaction(tx)
            out.append(SignedTx(c, tx, raw, h, est))
        return out

    async def send(self, st: SignedTx) -> str:
        try:
            h = await self.rpc.send_raw(st.raw_hex)
        except RpcError as err:
            msg = err.message.lower()
            if not err.transport and "already known" not in msg and "known transaction" not in msg:
                raise TxFailed(f"refused by the node: {err.message}", st.hash) from None
            if err.transport:
                # no answer: the node may have taken it. Treated as sent: wait() polls its receipt
                # and broadcasts the same bytes again; reporting it failed could miss one that is mined
                logger.warning("tx {}: no answer to its broadcast ({}); waiting for its receipt", st.hash, err.message)
            h = st.hash  # (already known: an earlier attempt got through) its nonce is taken either way
        if "nonce" in st.tx:  # (a transaction re-broadcast after a restart carries only its bytes)
            self._next_nonce = max(self._next_nonce or 0, int(st.tx["nonce"]) + 1)
        if h.lower() != st.hash.lower():
            logger.warning("node answered tx hash {} for {}", h, st.hash)
        return st.hash

    async def wait(self, st: SignedTx) -> Receipt:
        """Poll the receipt until ``confirmations`` blocks (re-broadcasting the same bytes when it
        is missing for ``resend_after_s``). TxFailed: not mined in ``receipt_timeout_s``, or
        replaced (another transaction took the nonce)."""
        s = self.s
        start = last = time.monotonic()
        while True:
            try:
                r = await self.rpc.receipt(st.hash)
                if r is not None:
                    blk = quantity(r.get("blockNumber"))
                    head = await self.rpc.block_number()
                    if head - blk + 1 >= s.confirmations:
                        again = await self.rpc.receipt(st.hash)  # still there after the wait (no reorg)
                        if again is not None and quantity(again.get("blockNumber")) == blk:
                            return _receipt(st.hash, again)
                elif time.monotonic() - last >= s.resend_after_s:
                    last = time.monotonic()
                    self.resends += 1
                    try:
                        await self.rpc.send_raw(st.raw_hex)
                        logger.info("tx {} not seen for {:g} s: sent again", st.hash, s.resend_after_s)
                    except RpcError as err:
                        m = err.message.lower()
                        if "nonce too low" in m and await self.rpc.receipt(st.hash) is None:
                            raise TxFailed("replaced: another transaction used its nonce", st.hash) from None
            except RpcError as err:  # transport trouble: keep polling until the deadline
                logger.debug("waiting for {}: {}", st.hash, err)
            if time.monotonic() - start >= s.receipt_timeout_s:
                raise TxFailed(f"not mined within {s.receipt_timeout_s:g} s ({self.resends} resends)", st.hash)
            await anyio.sleep(s.poll_s)


def _receipt(h: str, r: dict[str, Any]) -> Receipt:
    used = quantity(r.get("gasUsed"))
    price = quantity(r.get("effectiveGasPrice"))
    logs = r.get("logs") if isinstance(r.get("logs"), list) else []
    return Receipt(h, quantity(r.get("status")), quantity(r.get("blockNumber")), used, used * price, logs)


# ---------------------------------------------------------------------------------- one interface


@dataclass
class Pending:
    """Calls built and signed, nothing sent: EOA transactions, or one relayer transaction."""

    calls: list[Call]
    via: str
    txs: list[SignedTx] = field(default_factory=list)
    relayed: Prepared | None = None

    @property
    def hashes(self) -> list[str]:
        """What was signed: the transaction hashes, or the relayer transaction's signed hash."""
        return [t.hash for t in self.txs] if self.txs else [self.relayed.signed_hash] if self.relayed else []


@dataclass
class Outcome:
    tx_hash: str
    status: int
    block: int = 0
    gas_used: int = 0
    gas_cost: int = 0
    logs: list[dict[str, Any]] = field(default_factory=list)
    relayer_id: str = ""


class ChainWallet:
    """The account's wallet: the EOA ``signer`` and the ``funder`` that holds the tokens."""

    def __init__(self, session: aiohttp.ClientSession, s: WalletSettings, signer: KeySigner) -> None:
        from .relayer import Relayer, funder_for

        self.s = s
        self.signer = signer
        self.rpc: JsonRpc | None = JsonRpc(session, s.rpc_url) if s.rpc_url else None
        self.tx = TxSender(self.rpc, signer, s) if self.rpc is not None else None
        self.c = s.contracts
        if s.signature_type == "eoa":
            if s.funder and s.funder.lower() != signer.address.lower():
                raise ChainError(f"funder {s.funder} is not the signer {signer.address}: an eoa trades from its own address")
            self.funder = signer.address
            self.relayer: Relayer | None = None
        else:
            if not s.funder:
                raise ChainError(f"funder: required with signature_type {s.signature_type}")
            self.funder = s.funder
            try:
                self.derived = funder_for(s.signature_type, signer.address, self.c)
            except ChainError:
                self.derived = ""
            self.relayer = Relayer(session, s.relayer_url, signer=signer, signature_type=s.signature_type,
                                   funder=s.funder, chain_id=s.chain_id, contracts=self.c, api_key=s.relayer_api_key,
                                   api_key_address=s.relayer_api_key_address, rpc=self.rpc)  # fmt: skip

    @property
    def via(self) -> str:
        return self.s.via

    def need_rpc(self) -> JsonRpc:
        if self.rpc is None:
            raise ChainError("no RPC endpoint: set the secret rpc_url (POLYBOT_RPC_URL or rpc_url in the secrets "
                             "file) or wallet.rpc_url")  # fmt: skip
        return self.rpc

    async def check_chain(self) -> None:
        cid = await self.need_rpc().chain_id()
        if cid != self.s.chain_id:
            raise ChainError(f"the RPC endpoint {self.need_rpc().host} is chain {cid}, not wallet.chain_id {self.s.chain_id}")

    async def prepare(self, calls: list[Call], *, estimate: bool = True, metadata: str = "") -> Pending:
        if self.relayer is not None:
            return Pending(calls, "relayer", relayed=await self.relayer.prepare(calls, metadata))
        if self.tx is None:
            self.need_rpc()  # raises: no RPC endpoint
        assert self.tx is not None
        return Pending(calls, "rpc", txs=await self.tx.build(calls, estimate=estimate))

    async def send(self, p: Pending) -> str:
        """Send everything (EOA: every transaction, in nonce order); the first hash or the
        relayer's transaction id."""
        if p.relayed is not None:
            assert self.relayer is not None
            return await self.relayer.submit(p.relayed)
        assert self.tx is not None
        first = ""
        for t in p.txs:
            h = await self.tx.send(t)
            first = first or h
        return first

    async def confirm(self, p: Pending, sent: str) -> Outcome:
        """Wait for the outcome. EOA: every transaction confirmed (gas summed; the first status
        0 ends it). Relayer: mined, then (with an RPC) its receipt after the confirmations."""
        s = self.s
        if p.relayed is not None:
            assert self.relayer is not None
            t = await self.relayer.wait(sent, timeout_s=s.receipt_timeout_s, poll_s=s.poll_s)
            h = str(t.get("transactionHash"))
            if self.rpc is None:
                return Outcome(h, 1, relayer_id=sent)
            r = await TxSender(self.rpc, self.signer, s).wait(SignedTx(p.calls[0], {}, b"", h))
            return Outcome(h, r.status, r.block, r.gas_used, 0, r.logs, relayer_id=sent)
        assert self.tx is not None
        out = Outcome("", 1)
        for t in p.txs:
            r = await self.tx.wait(t)
            out = Outcome(r.tx_hash, r.status, r.block, out.gas_used + r.gas_used, out.gas_cost + r.gas_cost,
                          out.logs + r.logs)  # fmt: skip
            if r.status != 1:
                break
        return out

    # -- reads ---------------------------------------------------------------------------

    async def calls_read(self, calls: list[Call]) -> list[int | RpcError]:
        rpc = self.need_rpc()
        res = await rpc.batch([("eth_call", [{"to": c.to, "data": c.data_hex}, "latest"]) for c in calls])
        out: list[int | RpcError] = []
        for r in res:
            if isinstance(r, RpcError):
                out.append(r)
                continue
            try:
                out.append(decode_uint(str(r)))
            except ValueError as exc:
                out.append(RpcError(-1, str(exc), method="eth_call"))
        return out

    async def status(self) -> WalletStatus:
        rpc = self.need_rpc()
        c = self.c
        people = [self.funder] + ([self.signer.address] if self.signer.address.lower() != self.funder.lower() else [])
        reads: list[Call] = []
        for who in people:
            reads += [erc20_balance_of(c.need("pusd"), who), erc20_balance_of(c.need("usdce"), who)]
        apps = approvals_for(c)
        reads += [a.check(c, self.funder) for a in apps]
        vals = await self.calls_read(reads)
        pol = [await rpc.balance(who) for who in people]
        st = WalletStatus(self.signer.address, self.funder, self.s.signature_type, self.s.chain_id, rpc.host)
        for i, who in enumerate(people):
            st.balances[who] = {"pusd": vals[2 * i], "usdce": vals[2 * i + 1], "pol": pol[i]}
        for a, v in zip(apps, vals[2 * len(people):], strict=True):
            st.approvals.append((a, v))
        st.derived = getattr(self, "derived", "")
        return st


@dataclass
class WalletStatus:
    signer: str
    funder: str
    signature_type: str
    chain_id: int
    rpc_host: str
    balances: dict[str, dict[str, int | RpcError]] = field(default_factory=dict)
    approvals: list[tuple[Approval, int | RpcError]] = field(default_factory=list)
    derived: str = ""

    @property
    def missing(self) -> list[Approval]:
        return [a for a, v in self.approvals if isinstance(v, RpcError) or not a.satisfied(v)]


# ---------------------------------------------------------------------------------- CLI


def _amount(v: int | RpcError, decimals: int = 6) -> str:
    if isinstance(v, RpcError):
        return f"? ({v.message})"
    q = Decimal(v) / (Decimal(10) ** decimals)
    return f"{q:,.{min(decimals, 6)}f}".rstrip("0").rstrip(".") if v else "0"


def _approval_value(a: Approval, v: int | RpcError) -> str:
    if isinstance(v, RpcError):
        return f"unknown ({v.message})"
    if a.kind == "erc1155":
        return "approved" if v else "not approved"
    return "unlimited" if v >= UNLIMITED else f"{_amount(v)} pUSD"


def format_status(st: WalletStatus, c: Contracts) -> str:
    lines = [f"wallet: signer {st.signer}, funder {st.funder} ({st.signature_type}), chain {st.chain_id}, rpc {st.rpc_host}"]
    if st.derived and st.derived.lower() != st.funder.lower():
        lines.append(f"  warning: the {st.signature_type} wallet derived from the signer is {st.derived}, not the "
                     f"configured funder {st.funder}")  # fmt: skip
    for who, b in st.balances.items():
        role = "funder" if who.lower() == st.funder.lower() else "signer"
        gas = " (pays the gas)" if st.signature_type == "eoa" else ""
        lines.append(f"  {role} {who}: pUSD {_amount(b['pusd'])}, USDC.e {_amount(b['usdce'])}, "
                     f"POL {_amount(b['pol'], 18)}{gas}")  # fmt: skip
    lines.append("approvals (of the funder):")
    for a, v in st.approvals:
        ok = not isinstance(v, RpcError) and a.satisfied(v)
        tok = c.need(a.token)
        sp = c.need(a.spender)
        lines.append(f"  {'ok     ' if ok else 'MISSING'} {a.name:<52} {a.venue:<22} {_approval_value(a, v):<14} "
                     f"{a.purpose}  [{tok[:6]}…{tok[-4:]} -> {sp[:6]}…{sp[-4:]}]")  # fmt: skip
    n = len(st.missing)
    lines.append(f"{n} approval(s) missing: run `polybot wallet approve`" if n else "every approval is set")
    return "\n".join(lines)


def _describe(c: Contracts, call: Call) -> str:
    name = c.label(call.to) or call.to
    args = []
    for v in call.args:
        if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
            args.append(f"{c.label(v) or 'address'} {v}")
        elif isinstance(v, int) and not isinstance(v, bool) and v >= UNLIMITED:
            args.append("unlimited")
        elif isinstance(v, bool):
            args.append(str(v).lower())
        elif isinstance(v, bytes):
            args.append("0x" + v.hex())
        else:
            args.append(str(v))
    return f"{name} {call.to}: {call.function.split('(')[0]}({', '.join(args)})"


async def _plan_and_send(w: ChainWallet, calls: list[Call], *, yes: bool, dry_run: bool, out: TextIO,
                         ask: Callable[[str], str], what: str, estimate: bool = True) -> int:  # fmt: skip
    """Print what will be done, ask, and do it (or only sign it: ``dry_run``)."""
    c = w.c
    p = await w.prepare(calls, estimate=estimate, metadata=what)
    if p.via == "rpc":
        total = 0
        for t in p.txs:
            total += t.max_cost
            est = (f"estimated gas {t.estimate:,} (limit {int(t.tx['gas']):,})" if t.estimate else
                   f"gas not estimated yet (limit {int(t.tx['gas']):,})")  # fmt: skip
            out.write(f"  tx nonce {t.tx['nonce']}: {_describe(c, t.call)}; {est}\n")
        out.write(f"  {len(p.txs)} transaction(s) from {w.signer.address}, at most "
                  f"{_amount(total, 18)} POL of gas (max fee {int(p.txs[0].tx['maxFeePerGas']) / GWEI:.2f} gwei)\n")  # fmt: skip
    else:
        for call in calls:
            out.write(f"  call: {_describe(c, call)}\n")
        assert p.relayed is not None
        out.write(f"  one {p.relayed.kind} relayer transaction for {w.funder} (gasless), signed by {w.signer.address}\n")
    if dry_run:
        for h in p.hashes:
            out.write(f"  dry run: signed {h} (not sent)\n")
        out.write("dry run: nothing sent\n")
        return 0
    if not yes:
        ans = ask(f"send {'these' if len(calls) > 1 else 'this'} ({what})? [y/N] ").strip().lower()
        if ans not in ("y", "yes"):
            out.write("not sent\n")
            return 1
    sent = await w.send(p)
    out.write(f"  sent: {', '.join(p.hashes)}\n" if p.via == "rpc" else f"  submitted: relayer transaction {sent}\n")
    o = await w.confirm(p, sent)
    if o.status != 1:
        out.write(f"  FAILED: {o.tx_hash} reverted in block {o.block}\n")
        return 1
    out.write(f"  confirmed: {o.tx_hash} in block {o.block}, gas used {o.gas_used:,}"
              + (f", cost {_amount(o.gas_cost, 18)} POL" if o.gas_cost else "") + "\n")  # fmt: skip
    return 0


async def cmd_status(w: ChainWallet, out: TextIO) -> int:
    await w.check_chain()
    st = await w.status()
    out.write(format_status(st, w.c) + "\n")
    return 0


async def cmd_approve(w: ChainWallet, out: TextIO, *, yes: bool, dry_run: bool, ask: Callable[[str], str]) -> int:
    await w.check_chain()
    st = await w.status()
    missing = st.missing
    if not missing:
        out.write("nothing to approve: every approval is set\n")
        return 0
    out.write(f"{len(missing)} approval(s) missing for {w.funder}:\n")
    rc = await _plan_and_send(w, [a.call(w.c) for a in missing], yes=yes, dry_run=dry_run, out=out, ask=ask,
                              what=f"approve {len(missing)}")  # fmt: skip
    if rc or dry_run:
        return rc
    left = (await w.status()).missing
    out.write("every approval is set\n" if not left else f"{len(left)} approval(s) still missing\n")
    return 0 if not left else 1


async def cmd_wrap(w: ChainWallet, amount: int, out: TextIO, *, yes: bool, dry_run: bool,
                   ask: Callable[[str], str]) -> int:  # fmt: skip
    from polybot.units import from_units

    if amount <= 0:
        raise ChainError("wrap: the amount must be positive")
    await w.check_chain()
    c = w.c
    usdce, onramp = c.need("usdce"), c.need("collateral_onramp")
    bal, allow = await w.calls_read([erc20_balance_of(usdce, w.funder), erc20_allowance(usdce, w.funder, onramp)])
    if isinstance(bal, RpcError) or isinstance(allow, RpcError):
        raise ChainError(f"could not read the USDC.e balance / allowance: {bal if isinstance(bal, RpcError) else allow}")
    if bal < amount:
        raise ChainError(f"wrap {from_units(amount)}: the funder {w.funder} holds {from_units(bal)} USDC.e")
    wrap = onramp_wrap(onramp, usdce, w.funder, amount)
    approve = erc20_approve(usdce, onramp, amount, label=f"USDC.e.approve(collateral_onramp, {from_units(amount)})")
    out.write(f"wrap {from_units(amount)} USDC.e into pUSD for {w.funder}:\n")
    if allow >= amount:
        return await _plan_and_send(w, [wrap], yes=yes, dry_run=dry_run, out=out, ask=ask, what="wrap")
    if w.via == "relayer":  # one atomic batch: approve, then wrap
        return await _plan_and_send(w, [approve, wrap], yes=yes, dry_run=dry_run, out=out, ask=ask, what="approve + wrap")
    # an EOA: the wrap can only be estimated once the approval is mined
    out.write("  step 1 of 2 (the CollateralOnramp may take the USDC.e):\n")
    if dry_run:
        rc = await _plan_and_send(w, [approve, wrap], yes=yes, dry_run=True, out=out, ask=ask, what="approve + wrap",
                                  estimate=False)  # fmt: skip
        return rc
    rc = await _plan_and_send(w, [approve], yes=yes, dry_run=False, out=out, ask=ask, what="approve USDC.e")
    if rc:
        return rc
    out.write("  step 2 of 2:\n")
    return await _plan_and_send(w, [wrap], yes=True, dry_run=False, out=out, ask=ask, what="wrap")


def parse_amount(text: str) -> int:
    """``"12.5"`` -> 12_500_000 (6 decimals, exact)."""
    from polybot.units import to_units

    try:
        Decimal(text)
        return to_units(text.strip())
    except (ValueError, InvalidOperation):
        raise ChainError(f"amount: {text!r} is not a decimal number with at most 6 decimals") from None


async def run_wallet(cfg: Config, secrets: Secrets, params: dict[str, Any], command: str, *, amount: str = "",
                     yes: bool = False, dry_run: bool = False, out: TextIO | None = None,
                     ask: Callable[[str], str] | None = None) -> int:  # fmt: skip
    """``polybot wallet COMMAND``: 0 done, 1 not done (refused, declined, reverted, still
    missing), 2 a configuration or connection problem (printed on stderr, never a secret)."""
    import aiohttp

    from polybot.config import ConfigError

    from .keys import KeySigner
    from .relayer import RelayerError

    w_out = out or sys.stdout
    err_out = sys.stderr if out is None else out
    ask = ask or input
    try:
        s = settings_from(cfg, secrets, params)
        pk = secrets.get("private_key")
        if not pk:
            raise ConfigError("secrets: private_key is missing: set POLYBOT_PRIVATE_KEY or private_key in the [secrets] file")
        signer = KeySigner(pk)
        async with aiohttp.ClientSession() as session:
            w = ChainWallet(session, s, signer)
            w.need_rpc()
            if command == "status":
                return await cmd_status(w, w_out)
            if command not in ("approve", "wrap"):
                raise ChainError(f"unknown wallet command {command!r} (status, approve, wrap)")
            lock = None
            if not dry_run:
                # a daemon on this account sends its own transactions (merges, redeems) from the
                # same key: two senders would race for nonces. Refused while one runs.
                from polybot.instance import InstanceLock

                lock = InstanceLock(cfg.engine.data_dir, account_id=f"{signer.address}:{w.funder}",
                                    config_path=cfg.source_path).acquire()  # fmt: skip
            try:
                if command == "approve":
                    return await cmd_approve(w, w_out, yes=yes, dry_run=dry_run, ask=ask)
                return await cmd_wrap(w, parse_amount(amount), w_out, yes=yes, dry_run=dry_run, ask=ask)
            finally:
                if lock is not None:
                    lock.release()
    except (ConfigError, ChainError, ValueError) as exc:
        err_out.write(f"polybot wallet: {exc}\n")
        return 2
    except (RpcError, RelayerError) as exc:
        err_out.write(f"polybot wallet: {exc}\n")
        return 2
    except TxFailed as exc:
        err_out.write(f"polybot wallet: {exc.reason}" + (f" ({exc.tx_hash})" if exc.tx_hash else "") + "\n")
        return 1
