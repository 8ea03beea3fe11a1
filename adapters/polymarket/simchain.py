"""A fake Polygon for tests and ``polybot sim``: a JSON-RPC endpoint over one ledger, and a fake of
Polymarket's relayer on the same ledger.

**The ledger**: POL balances and nonces; ERC-20 balances and allowances (pUSD, USDC.e); ERC-1155
balances by token id and ``setApprovalForAll`` (the CTF, the Protocol-V2 PositionManager);
conditions and their payouts; neg-risk markets (question count, fee). Position ids are derived
the way the contracts derive them (:func:`.chain.binary_position_ids`: USDC.e collateral for
standard conditions, the NegRiskAdapter's WrappedCollateral for neg-risk ones; ``cid << 8 | i``
for Protocol-V2), except for the markets of a :class:`~adapters.polymarket.sim.SimServer` this
chain is bound to: those use the simulator's own (random) token ids, which are what its books,
orders and Data API report. Bound to a simulator, pUSD balances and the CTF balances of its
tokens ARE the exchange's accounts (``SimExchange._accounts``): a merge on chain shows in
``/v2/positions`` and in the cash the exchange lets an order spend.

**Transactions**: ``eth_sendRawTransaction`` takes EIP-1559 (type 2) transactions only; it
decodes them, RECOVERS THE SENDER from the signature, checks the chain id, the nonce (exactly
the next one), the fee (max fee >= base fee) and the POL for gas; decodes the calldata against
the known ABIs (an unknown contract or selector reverts); applies the effects with the real
preconditions (balances, allowances, ``setApprovalForAll``, a merge needs both outcomes, a
redeem a resolved condition) and mines it in a new block with a receipt (status 0 on a revert,
the state untouched) whose logs carry the ERC-20 ``Transfer`` events. Empty blocks appear every
``block_time_s`` (lazily, from the clock), so confirmations accrue.

Contracts: pUSD / USDC.e (ERC-20), the CTF (ERC-1155, ``splitPosition`` / ``mergePositions`` /
``redeemPositions`` with USDC.e, payouts), CtfCollateralAdapter and NegRiskCtfCollateralAdapter
(the CTF's signatures with pUSD), the NegRiskAdapter (its split / merge / redeem / convert, paid in
USDC.e), the Protocol-V2 Router and PositionManager, the CollateralOnramp (``wrap``), the proxy
factory (``proxy(calls)``: the caller's proxy wallet executes them). The exchanges are approval
targets only (calling them reverts).

**Reads**: ``eth_chainId``, ``eth_blockNumber``, ``eth_getTransactionCount``, ``eth_estimateGas``
(the call simulated; a revert is error 3 with the ``Error(string)`` data), ``eth_maxPriorityFeePerGas``,
``eth_gasPrice``, ``eth_getBlockByNumber``, ``eth_getBalance``, ``eth_call`` (``balanceOf``,
``allowance``, ``isApprovedForAll``, ``balanceOf(address,uint256)``, ``payoutNumerators``,
``payoutDenominator``), ``eth_getTransactionReceipt``, ``eth_getTransactionByHash``; batches.

**The relayer** (``/relayer``): ``GET /nonce``, ``/relay-payload``,
``/v1/account/transactions/params``, ``POST /submit``, ``GET /transaction``, with the headers
``RELAYER_API_KEY`` / ``RELAYER_API_KEY_ADDRESS`` required. A SAFE submission is checked like the
Safe checks it: the wallet must be the Safe derived from ``from``, the nonce the Safe's, the
signature an eth_sign of the SafeTx digest by ``from`` (v + 4); MultiSend batches are unpacked.
PROXY: the proxy factory's ``proxy(calls)``, the ``rlx:`` hash signed by ``from``, executed by the
proxy wallet derived from ``from``. WALLET (deposit wallets): the EIP-712 Batch signed by
``from`` for the deposit wallet derived from it. The inner calls run on the same ledger, as the
wallet, in one transaction from the relay's EOA (which pays the gas).

**Faults** (methods and ``<prefix>/_chain/<action>``): ``drop_next(n)`` (the next n sends are
accepted and never mined: a re-broadcast of the same bytes is), ``revert_next(reason)``,
``error_next(n, status)`` (the next n HTTP requests answer that status), ``reject_relayer_next``.
Setup: ``fund``, ``prepare_condition``, ``prepare_neg_risk_market``, ``report_payouts``, ``mine``,
``state``.

eth-account / eth-abi are imported lazily (the ``live`` extra).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from loguru import logger

from . import chain as C
from .chain import Contracts

if TYPE_CHECKING:  # pragma: no cover
    from .sim import SimServer

GWEI = 10**9
ZERO = "0x" + "00" * 20
RELAY_EOA = "0x4da9395388791c22684e03779c3de10934eb9cfb"  # the docs' example relay address
ONE_POL = 10**18

# intrinsic gas 21000 + what each function costs here (fixed: estimates are exact)
GAS = {
    "approve(address,uint256)": 25_000, "transfer(address,uint256)": 30_000,
    "setApprovalForAll(address,bool)": 25_500, "wrap(address,address,uint256)": 75_000,
    "splitPosition(address,bytes32,bytes32,uint256[],uint256)": 140_000,
    "mergePositions(address,bytes32,bytes32,uint256[],uint256)": 120_000,
    "redeemPositions(address,bytes32,bytes32,uint256[])": 100_000,
    "splitPosition(bytes32,uint256)": 170_000, "mergePositions(bytes32,uint256)": 150_000,
    "redeemPositions(bytes32,uint256[])": 130_000, "convertPositions(bytes32,uint256,uint256)": 200_000,
    "split(bytes31,uint256)": 110_000, "merge(bytes31,uint256)": 100_000,
    "redeem(bytes31,uint256,uint256)": 90_000, "proxy((uint8,address,uint256,bytes)[])": 40_000,
}  # fmt: skip
SAFE_EXEC_GAS = 50_000
WALLET_EXEC_GAS = 45_000
VIEWS = ("balanceOf(address)", "allowance(address,address)", "isApprovedForAll(address,address)",
         "balanceOf(address,uint256)", "payoutNumerators(bytes32,uint256)", "payoutDenominator(bytes32)",
         "decimals()")  # fmt: skip


class _Revert(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RpcErr(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _revert_data(reason: str) -> str:
    from eth_abi import encode

    return "0x08c379a0" + encode(["string"], [reason]).hex()


def _lo(a: str) -> str:
    return a.lower()


def _hex(v: int) -> str:
    return hex(v)


def _topic(a: str) -> str:
    return "0x" + a.lower()[2:].rjust(64, "0")


@dataclass
class Condition:
    cid: str
    kind: str  # "ctf" (standard, USDC.e positions) | "negrisk" (wcol positions) | "v2" (PositionManager)
    yes: int
    no: int
    payouts: list[int] | None = None
    market_id: str = ""  # neg-risk market
    index: int = -1  # its question index

    @property
    def ids(self) -> tuple[int, int]:
        return self.yes, self.no


@dataclass
class NegMarket:
    market_id: str
    questions: int
    fee_bips: int = 0


class SimChain:
    """The fake chain. ``server``: bind to a SimServer (its markets and its exchange's accounts)."""

    def __init__(self, chain_id: int = 137, *, contracts: Contracts | None = None, block_time_s: float = 2.0,
                 base_fee_wei: int = 30 * GWEI, priority_fee_wei: int = 30 * GWEI, default_pol: int = 0,
                 clock: Callable[[], float] = time.monotonic, server: SimServer | None = None) -> None:  # fmt: skip
        self.chain_id = chain_id
        # what the chain does not publish (Amoy) is taken from Polygon's table
        base = contracts or C.CHAINS.get(chain_id, C.CHAINS[137])
        main = C.CHAINS[137]
        self.c = C.replace(base, **{f.name: getattr(main, f.name) for f in C.fields(Contracts) if not getattr(base, f.name)})
        self.block_time_s = block_time_s
        self.base_fee = base_fee_wei
        self.priority_fee = priority_fee_wei
        self.default_pol = default_pol
        self._clock = clock
        self.server = server
        self.head = 1
        self._tick_at = clock()
        self._block_txs: dict[int, list[str]] = {}
        self.pol: dict[str, int] = {}
        self.erc20: dict[str, dict[str, int]] = {}
        self.allow: dict[str, dict[tuple[str, str], int]] = {}
        self.erc1155: dict[str, dict[tuple[str, int], int]] = {}
        self.approved: dict[str, set[tuple[str, str]]] = {}
        self.nonces: dict[str, int] = {}
        self.txs: dict[str, dict[str, Any]] = {}
        self.receipts: dict[str, dict[str, Any]] = {}
        self.dropped: dict[str, bytes] = {}
        self.conditions: dict[str, Condition] = {}
        self.neg_markets: dict[str, NegMarket] = {}
        self.safe_nonces: dict[str, int] = {}
        self.proxy_nonces: dict[str, int] = {}
        self.wallet_nonces: dict[str, int] = {}
        self.relayed: dict[str, dict[str, Any]] = {}
        self._relay_seq = itertools.count(1)
        self._undo: list[Callable[[], None]] | None = None
        self._logs: list[dict[str, Any]] = []
        self._drop_n = 0
        self._revert_next: str | None = None
        self._error_n = 0
        self._error_status = 503
        self._relayer_reject: str | None = None
        self.sends = 0
        self.requests = 0
        self.pol[_lo(RELAY_EOA)] = 10**9 * ONE_POL
        self._kinds = {_lo(v): f.name for f in C.fields(Contracts) if (v := getattr(self.c, f.name)) and not f.name.endswith("_hash")}

    # ------------------------------------------------------------------------ storage

    def _exchange(self) -> Any:
        return self.server.exchange if self.server is not None else None

    def _record(self, fn: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(fn)

    def _sim_token(self, token_id: int) -> bool:
        return self.server is not None and str(token_id) in self.server._by_asset

    def balance20(self, token: str, who: str) -> int:
        token, who = _lo(token), _lo(who)
        ex = self._exchange()
        if ex is not None and token == _lo(self.c.pusd):
            a = ex._accounts.get(who)
            return a.cash if a is not None else ex._cash0
        return self.erc20.get(token, {}).get(who, 0)

    def _set20(self, token: str, who: str, v: int) -> None:
        token, who = _lo(token), _lo(who)
        old = self.balance20(token, who)
        ex = self._exchange()
        if ex is not None and token == _lo(self.c.pusd):
            acct = ex._account(who)
            acct.cash = v
            self._record(lambda: setattr(acct, "cash", old))
            return
        self.erc20.setdefault(token, {})[who] = v
        self._record(lambda: self.erc20[token].__setitem__(who, old))

    def _move20(self, token: str, frm: str, to: str, amount: int) -> None:
        if amount < 0:
            raise _Revert("negative amount")
        if frm != ZERO:
            bal = self.balance20(token, frm)
            if bal < amount:
                raise _Revert(f"{self._name(token)}: transfer amount exceeds balance")
            self._set20(token, frm, bal - amount)
        if to != ZERO:
            self._set20(token, to, self.balance20(token, to) + amount)
        self._logs.append({"address": _lo(token), "topics": [C.TRANSFER_TOPIC, _topic(frm), _topic(to)],
                           "data": "0x" + amount.to_bytes(32, "big").hex()})  # fmt: skip

    def _pay(self, token: str, contract: str, to: str, amount: int) -> None:
        """A contract pays out collateral: from what it holds, else (positions minted off this
        ledger, e.g. by the simulator's fills) minted."""
        self._move20(token, contract if self.balance20(token, contract) >= amount else ZERO, to, amount)

    def allowance(self, token: str, owner: str, spender: str) -> int:
        return self.allow.get(_lo(token), {}).get((_lo(owner), _lo(spender)), 0)

    def _set_allow(self, token: str, owner: str, spender: str, v: int) -> None:
        key, t = (_lo(owner), _lo(spender)), _lo(token)
        old = self.allowance(token, owner, spender)
        self.allow.setdefault(t, {})[key] = v
        self._record(lambda: self.allow[t].__setitem__(key, old))

    def _spend(self, token: str, owner: str, spender: str, amount: int) -> None:
        """transferFrom by ``spender``: needs the allowance (an unlimited one is not reduced)."""
        a = self.allowance(token, owner, spender)
        if a < amount:
            raise _Revert(f"{self._name(token)}: insufficient allowance of {self._name(spender)}")
        if a != C.MAX_UINT256:
            self._set_allow(token, owner, spender, a - amount)

    def balance1155(self, contract: str, who: str, token_id: int) -> int:
        contract, who = _lo(contract), _lo(who)
        ex = self._exchange()
        if ex is not None and contract == _lo(self.c.ctf) and self._sim_token(token_id):
            a = ex._accounts.get(who)
            return a.shares.get(str(token_id), 0) if a is not None else 0
        return self.erc1155.get(contract, {}).get((who, token_id), 0)

    def _set1155(self, contract: str, who: str, token_id: int, v: int) -> None:
        contract, who = _lo(contract), _lo(who)
        old = self.balance1155(contract, who, token_id)
        ex = self._exchange()
        if ex is not None and contract == _lo(self.c.ctf) and self._sim_token(token_id):
            acct, tok = ex._account(who), str(token_id)
            old_cost = acct.cost.get(tok, 0)
            # the exchange keeps a cost basis for /v2/positions: a burn takes its share, a mint
            # (a split's pair) books 0.5 a share
            acct.cost[tok] = (old_cost * v // old if v < old and old > 0 else old_cost + (v - old) // 2)
            acct.shares[tok] = v

            def undo() -> None:
                acct.shares[tok], acct.cost[tok] = old, old_cost

            self._record(undo)
            return
        self.erc1155.setdefault(contract, {})[(who, token_id)] = v
        self._record(lambda: self.erc1155[contract].__setitem__((who, token_id), old))

    def _mint1155(self, contract: str, who: str, token_id: int, amount: int) -> None:
        self._set1155(contract, who, token_id, self.balance1155(contract, who, token_id) + amount)

    def _burn1155(self, contract: str, who: str, token_id: int, amount: int) -> None:
        bal = self.balance1155(contract, who, token_id)
        if bal < amount:
            raise _Revert(f"ERC1155: burn amount exceeds balance (token {str(token_id)[:12]}…: {bal} < {amount})")
        self._set1155(contract, who, token_id, bal - amount)

    def is_approved(self, contract: str, owner: str, operator: str) -> bool:
        return (_lo(owner), _lo(operator)) in self.approved.get(_lo(contract), set())

    def _set_approved(self, contract: str, owner: str, operator: str, on: bool) -> None:
        s = self.approved.setdefault(_lo(contract), set())
        key = (_lo(owner), _lo(operator))
        was = key in s
        (s.add if on else s.discard)(key)
        self._record(lambda: (s.add if was else s.discard)(key))

    def _need_approved(self, contract: str, owner: str, operator: str) -> None:
        if not self.is_approved(contract, owner, operator):
            raise _Revert(f"{self._name(contract)}: {self._name(operator)} is not approved for all (setApprovalForAll)")

    def _name(self, a: str) -> str:
        return self._kinds.get(_lo(a), a)

    def pol_balance(self, who: str) -> int:
        return self.pol.get(_lo(who), self.default_pol)

    # ------------------------------------------------------------------------ setup

    def fund(self, who: str, token: str, amount: int) -> None:
        """Give ``who`` ``amount`` (wei for POL, base units for pusd / usdce)."""
        who = C.addr(who)
        if token == "pol":
            self.pol[_lo(who)] = self.pol_balance(who) + amount
            return
        t = {"pusd": self.c.pusd, "usdce": self.c.usdce}.get(token)
        if not t:
            raise ValueError(f"token must be pol, pusd or usdce, not {token!r}")
        self._set20(t, who, self.balance20(t, who) + amount)

    def prepare_condition(self, cid: str = "", *, kind: str = "ctf", oracle: str = "", question_id: str = "",
                          ids: tuple[int, int] | None = None) -> Condition:  # fmt: skip
        """Register a condition (``cid``, or derived from ``oracle`` and ``question_id``); its
        position ids derived as the contracts do unless ``ids`` are given."""
        if not cid:
            cid = C.condition_id(oracle or ZERO, question_id)
        cid = cid.lower()
        if kind == "v2":
            ids = ids or C.v2_position_ids(cid)
        elif kind == "ctf":
            ids = ids or C.binary_position_ids(self.c.usdce, cid)
        elif kind == "negrisk":
            ids = ids or C.binary_position_ids(self.c.wrapped_collateral, cid)
        else:
            raise ValueError(f"kind must be ctf, negrisk or v2, not {kind!r}")
        cond = Condition(cid, kind, ids[0], ids[1])
        self.conditions[cid] = cond
        return cond

    def prepare_neg_risk_market(self, market_id: str, questions: int, fee_bips: int = 0) -> list[Condition]:
        """A neg-risk market of ``questions`` questions prepared by the NegRiskAdapter (oracle)."""
        if questions < 1 or questions > 255:
            raise ValueError("questions must be 1-255")
        mid = market_id.lower()
        self.neg_markets[mid] = NegMarket(mid, questions, fee_bips)
        out = []
        for i in range(questions):
            q = C.neg_risk_question_id(mid, i)
            cond = self.prepare_condition(kind="negrisk", oracle=self.c.neg_risk_adapter, question_id=q)
            cond.market_id, cond.index = mid, i
            out.append(cond)
        return out

    def report_payouts(self, cid: str, payouts: list[int]) -> None:
        cond = self.condition(cid)
        if cond is None:
            raise ValueError(f"condition {cid} is not prepared")
        if len(payouts) != 2 or sum(payouts) <= 0 or min(payouts) < 0:
            raise ValueError("payouts: two non-negative numbers, not both 0")
        cond.payouts = list(payouts)

    def report_market(self, cid: str, winner: int) -> None:
        """The simulator resolved a market: outcome ``winner`` (0 YES, 1 NO) pays 1."""
        cond = self.condition(cid)
        if cond is not None:
            cond.payouts = [1, 0] if winner == 0 else [0, 1]

    def condition(self, cid: str) -> Condition | None:
        cid = cid.lower()
        cond = self.conditions.get(cid)
        if cond is None and self.server is not None:
            m = self.server._by_cid.get(cid) or next((x for x in self.server._markets if x.cid.lower() == cid), None)
            if m is not None:
                cond = Condition(cid, "negrisk" if m.neg_risk else "ctf", int(m.yes), int(m.no))
                if m.resolved and m.winner is not None:
                    cond.payouts = [1, 0] if m.winner == m.yes else [0, 1]
                self.conditions[cid] = cond
        return cond

    def _cond(self, cid: bytes, kind: str) -> Condition:
        h = "0x" + cid.hex()
        cond = self.condition(h)
        if cond is None:
            raise _Revert(f"condition {h} not prepared")
        if kind == "v2" and cond.kind != "v2" or kind != "v2" and cond.kind == "v2":
            raise _Revert(f"condition {h} is a {cond.kind} condition")
        if kind in ("ctf", "negrisk") and cond.kind != kind:
            raise _Revert(f"condition {h} is a {'neg-risk' if cond.kind == 'negrisk' else 'standard'} condition: "
                          f"use the {'neg-risk ' if cond.kind == 'negrisk' else ''}adapter")  # fmt: skip
        return cond

    def _v2(self, cid31: bytes) -> Condition:
        cond = self.condition("0x" + cid31.hex() + "00")
        if cond is None or cond.kind != "v2":
            raise _Revert(f"Protocol-V2 condition 0x{cid31.hex()} not prepared")
        return cond

    # ------------------------------------------------------------------------ blocks

    def _tick(self) -> None:
        now = self._clock()
        if self.block_time_s > 0:
            n = int((now - self._tick_at) / self.block_time_s)
            if n > 0:
                self.head += min(n, 100_000)
                self._tick_at += n * self.block_time_s

    def mine(self, n: int = 1) -> int:
        self.head += max(0, n)
        return self.head

    def _block_hash(self, n: int) -> str:
        return "0x" + C.keccak(b"polybot-simchain/block/" + str(n).encode()).hex()

    def block(self, n: int | None = None) -> dict[str, Any]:
        self._tick()
        n = self.head if n is None else n
        return {"number": _hex(n), "hash": self._block_hash(n), "parentHash": self._block_hash(n - 1),
                "baseFeePerGas": _hex(self.base_fee), "gasLimit": _hex(30_000_000), "gasUsed": "0x0",
                "timestamp": _hex(1_700_000_000 + 2 * n), "transactions": list(self._block_txs.get(n, []))}  # fmt: skip

    # ------------------------------------------------------------------------ execution

    def _run(self, sender: str, to: str, data: bytes, *, commit: bool,
             gas_limit: int | None = None) -> tuple[int, list[dict[str, Any]], bytes]:  # fmt: skip
        """Execute a call; (gas, logs, return data). Raises _Revert with the state rolled back
        (also when it needs more than ``gas_limit``). With ``commit`` False the effects are rolled
        back anyway (eth_call, eth_estimateGas)."""
        self._undo, self._logs = [], []
        try:
            gas, ret = self._dispatch(_lo(sender), _lo(to), data)
            if gas_limit is not None and 21_000 + gas > gas_limit:
                raise _Revert("out of gas")
        except _Revert:
            self._rollback()
            raise
        except Exception as exc:  # noqa: BLE001 - a malformed call reverts like on chain
            self._rollback()
            raise _Revert(f"bad call: {type(exc).__name__}") from None
        logs = self._logs
        if not commit:
            self._rollback()
        self._undo = None
        return 21_000 + gas, logs, ret

    def _rollback(self) -> None:
        for fn in reversed(self._undo or []):
            fn()
        self._undo = None
        self._logs = []

    def _args(self, sig: str, data: bytes) -> tuple[Any, ...]:
        try:
            return C.decode_args(sig, data)
        except ValueError:
            raise _Revert(f"{sig}: calldata does not decode") from None

    def _dispatch(self, sender: str, to: str, data: bytes) -> tuple[int, bytes]:
        kind = self._kinds.get(to)
        if kind is None:
            raise _Revert(f"no contract at {to}")
        sel = data[:4]
        sig = next((s for s in (*GAS, *VIEWS) if C.selector(s) == sel), None)
        if sig is None:
            raise _Revert(f"unknown selector 0x{sel.hex()} for {kind}")
        if sig in VIEWS:
            return 2_000, self._view(kind, to, sig, self._args(sig, data))
        a = self._args(sig, data)
        fn = getattr(self, f"_x_{kind}", None)
        if fn is None:
            raise _Revert(f"{kind}: {sig} is not a function of it")
        extra = fn(sender, to, sig, a) or 0
        return GAS[sig] + extra, b""

    def _view(self, kind: str, to: str, sig: str, a: tuple[Any, ...]) -> bytes:
        w = lambda v: int(v).to_bytes(32, "big")  # noqa: E731
        if sig == "balanceOf(address)" and kind in ("pusd", "usdce"):
            return w(self.balance20(to, a[0]))
        if sig == "decimals()" and kind in ("pusd", "usdce"):
            return w(6)
        if sig == "allowance(address,address)" and kind in ("pusd", "usdce"):
            return w(self.allowance(to, a[0], a[1]))
        if sig == "isApprovedForAll(address,address)" and kind in ("ctf", "position_manager"):
            return w(1 if self.is_approved(to, a[0], a[1]) else 0)
        if sig == "balanceOf(address,uint256)" and kind in ("ctf", "position_manager", "neg_risk_adapter"):
            return w(self.balance1155(self.c.position_manager if kind == "position_manager" else self.c.ctf, a[0], a[1]))
        if kind == "ctf" and sig == "payoutDenominator(bytes32)":
            cond = self.condition("0x" + a[0].hex())
            return w(sum(cond.payouts) if cond is not None and cond.payouts else 0)
        if kind == "ctf" and sig == "payoutNumerators(bytes32,uint256)":
            cond = self.condition("0x" + a[0].hex())
            if cond is None or not cond.payouts or a[1] >= 2:
                return w(0)
            return w(cond.payouts[a[1]])
        raise _Revert(f"{kind}: {sig} is not a function of it")

    # -- ERC-20 --------------------------------------------------------------------------

    def _erc20(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> None:
        if sig == "approve(address,uint256)":
            self._set_allow(to, sender, a[0], a[1])
            return
        if sig == "transfer(address,uint256)":
            self._move20(to, sender, _lo(a[0]), a[1])
            return
        raise _Revert(f"{self._name(to)}: {sig} is not a function of it")

    _x_pusd = _erc20
    _x_usdce = _erc20

    # -- ERC-1155 approvals ----------------------------------------------------------------

    def _approve1155(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> bool:
        if sig == "setApprovalForAll(address,bool)":
            self._set_approved(to, sender, a[0], bool(a[1]))
            return True
        return False

    def _x_position_manager(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> None:
        if not self._approve1155(sender, to, sig, a):
            raise _Revert(f"position_manager: {sig} is not a function of it")

    # -- the CTF itself (legacy route: collateral USDC.e, the caller's own tokens) -----------

    def _x_ctf(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> None:
        if self._approve1155(sender, to, sig, a):
            return
        if sig.startswith(("splitPosition(address", "mergePositions(address", "redeemPositions(address")):
            collateral = _lo(a[0])
            if collateral != _lo(self.c.usdce):
                raise _Revert("CTF: positions of these conditions are collateralised by USDC.e")
            self._check_shape(a)
            cond = self._cond(a[2], "ctf")
            if sig.startswith("split"):
                self._spend(self.c.usdce, sender, self.c.ctf, a[4])
                self._move20(self.c.usdce, sender, to, a[4])
                self._mint_pair(self.c.ctf, sender, cond, a[4])
            elif sig.startswith("merge"):
                self._burn_pair(self.c.ctf, sender, cond, a[4])
                self._pay(self.c.usdce, to, sender, a[4])
            else:
                pay = self._redeem_all(self.c.ctf, sender, cond)
                self._move20(self.c.usdce, ZERO, sender, pay)
            return
        raise _Revert(f"ctf: {sig} is not a function of it")

    @staticmethod
    def _check_shape(a: tuple[Any, ...]) -> None:
        if a[1] != C.ZERO32:
            raise _Revert("only parentCollectionId 0")
        if list(a[3]) != C.BINARY_PARTITION:
            raise _Revert("partition / index sets must be [1, 2]")

    def _mint_pair(self, contract: str, who: str, cond: Condition, amount: int) -> None:
        for tid in cond.ids:
            self._mint1155(contract, who, tid, amount)

    def _burn_pair(self, contract: str, who: str, cond: Condition, amount: int) -> None:
        for tid in cond.ids:
            self._burn1155(contract, who, tid, amount)

    def _redeem_all(self, contract: str, who: str, cond: Condition) -> int:
        if not cond.payouts:
            raise _Revert(f"condition {cond.cid} is not resolved (payout denominator 0)")
        den = sum(cond.payouts)
        pay = 0
        for tid, num in zip(cond.ids, cond.payouts, strict=True):
            bal = self.balance1155(contract, who, tid)
            if bal:
                self._burn1155(contract, who, tid, bal)
                pay += bal * num // den
        return pay

    # -- collateral adapters (pUSD, the CTF's signatures) ------------------------------------

    def _adapter(self, sender: str, to: str, sig: str, a: tuple[Any, ...], kind: str) -> None:
        if not sig.startswith(("splitPosition(address", "mergePositions(address", "redeemPositions(address")):
            raise _Revert(f"{self._name(to)}: {sig} is not a function of it")
        if _lo(a[0]) != _lo(self.c.pusd):
            raise _Revert(f"{self._name(to)}: collateral must be pUSD")
        self._check_shape(a)
        cond = self._cond(a[2], kind)
        ctf, pusd = self.c.ctf, self.c.pusd
        if sig.startswith("split"):
            self._spend(pusd, sender, to, a[4])
            self._move20(pusd, sender, ZERO, a[4])  # unwrapped to USDC.e inside the adapter
            self._mint_pair(ctf, sender, cond, a[4])
        elif sig.startswith("merge"):
            self._need_approved(ctf, sender, to)
            self._burn_pair(ctf, sender, cond, a[4])
            self._move20(pusd, ZERO, sender, a[4])  # re-wrapped into pUSD for the caller
        else:
            self._need_approved(ctf, sender, to)
            self._move20(pusd, ZERO, sender, self._redeem_all(ctf, sender, cond))

    def _x_ctf_collateral_adapter(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> None:
        self._adapter(sender, to, sig, a, "ctf")

    def _x_neg_risk_collateral_adapter(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> None:
        self._adapter(sender, to, sig, a, "negrisk")

    # -- the NegRiskAdapter (USDC.e) ---------------------------------------------------------

    def _x_neg_risk_adapter(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> int:
        ctf, usdce = self.c.ctf, self.c.usdce
        if sig == "splitPosition(bytes32,uint256)":
            cond = self._cond(a[0], "negrisk")
            self._spend(usdce, sender, to, a[1])
            self._move20(usdce, sender, to, a[1])
            self._mint_pair(ctf, sender, cond, a[1])
            return 0
        if sig == "mergePositions(bytes32,uint256)":
            cond = self._cond(a[0], "negrisk")
            self._need_approved(ctf, sender, to)
            self._burn_pair(ctf, sender, cond, a[1])
            self._move20(usdce, ZERO, sender, a[1])
            return 0
        if sig == "redeemPositions(bytes32,uint256[])":
            cond = self._cond(a[0], "negrisk")
            amounts = list(a[1])
            if len(amounts) != 2:
                raise _Revert("amounts: [yes, no]")
            if not cond.payouts:
                raise _Revert(f"condition {cond.cid} is not resolved")
            self._need_approved(ctf, sender, to)
            den, pay = sum(cond.payouts), 0
            for tid, n, num in zip(cond.ids, amounts, cond.payouts, strict=True):
                self._burn1155(ctf, sender, tid, n)
                pay += n * num // den
            self._move20(usdce, ZERO, sender, pay)
            return 0
        if sig == "convertPositions(bytes32,uint256,uint256)":
            return self._convert(sender, to, "0x" + a[0].hex(), a[1], a[2])
        raise _Revert(f"neg_risk_adapter: {sig} is not a function of it")

    def _convert(self, sender: str, to: str, mid: str, index_set: int, amount: int) -> int:
        m = self.neg_markets.get(mid.lower())
        if m is None:
            raise _Revert("MarketNotPrepared")
        if m.questions <= 1:
            raise _Revert("NoConvertiblePositions")
        if index_set == 0 or index_set >> m.questions:
            raise _Revert("InvalidIndexSet")
        if amount == 0:
            return 0
        ctf = self.c.ctf
        self._need_approved(ctf, sender, to)
        conds = {c.index: c for c in self.conditions.values() if c.market_id == m.market_id}
        nos = [i for i in range(m.questions) if index_set >> i & 1]
        fee = amount * m.fee_bips // 10_000
        out = amount - fee
        for i in nos:
            self._burn1155(ctf, sender, conds[i].no, amount)
        for i in range(m.questions):
            if not index_set >> i & 1:
                self._mint1155(ctf, sender, conds[i].yes, out)
        if len(nos) > 1:
            self._pay(self.c.usdce, to, sender, (len(nos) - 1) * out)
        return 40_000 * m.questions

    # -- Protocol-V2 Router ------------------------------------------------------------------

    def _x_router(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> None:
        pm, pusd = self.c.position_manager, self.c.pusd
        cond = self._v2(a[0])
        if sig == "split(bytes31,uint256)":
            self._spend(pusd, sender, to, a[1])
            self._move20(pusd, sender, ZERO, a[1])
            self._mint_pair(pm, sender, cond, a[1])
        elif sig == "merge(bytes31,uint256)":
            self._need_approved(pm, sender, to)
            self._burn_pair(pm, sender, cond, a[1])
            self._move20(pusd, ZERO, sender, a[1])
        elif sig == "redeem(bytes31,uint256,uint256)":
            if not cond.payouts:
                raise _Revert("condition not resolved")
            if a[1] not in (0, 1):
                raise _Revert("outcome index must be 0 or 1")
            self._need_approved(pm, sender, to)
            self._burn1155(pm, sender, cond.ids[a[1]], a[2])
            self._move20(pusd, ZERO, sender, a[2] * cond.payouts[a[1]] // sum(cond.payouts))
        else:
            raise _Revert(f"router: {sig} is not a function of it")

    # -- CollateralOnramp --------------------------------------------------------------------

    def _x_collateral_onramp(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> None:
        if sig != "wrap(address,address,uint256)":
            raise _Revert(f"collateral_onramp: {sig} is not a function of it")
        asset, dest, amount = _lo(a[0]), _lo(a[1]), a[2]
        if asset != _lo(self.c.usdce):
            raise _Revert("CollateralOnramp: unsupported asset (USDC.e only)")
        self._spend(self.c.usdce, sender, to, amount)
        self._move20(self.c.usdce, sender, to, amount)
        self._move20(self.c.pusd, ZERO, dest, amount)

    # -- proxy wallets ------------------------------------------------------------------------

    def _x_proxy_factory(self, sender: str, to: str, sig: str, a: tuple[Any, ...]) -> int:
        from .relayer import derive_proxy

        if sig != "proxy((uint8,address,uint256,bytes)[])":
            raise _Revert(f"proxy_factory: {sig} is not a function of it")
        wallet = _lo(derive_proxy(sender, self.c))
        return self._inner(wallet, self._proxy_calls(a[0]))

    @staticmethod
    def _proxy_calls(items: Any) -> list[tuple[int, str, int, bytes]]:
        """ProxyWalletFactory calls: type code 1 is CALL (0 here); nothing else is accepted."""
        out = []
        for t, dst, v, d in items:
            if int(t) != 1:
                raise _Revert(f"proxy: type code {t} is not CALL (1)")
            out.append((0, str(dst), int(v), bytes(d)))
        return out

    def _inner(self, wallet: str, calls: list[tuple[int, str, int, bytes]]) -> int:
        """Run ``calls`` (operation 0 = CALL only) as ``wallet``."""
        gas = 0
        for typ, dst, value, d in calls:
            if typ != 0 or value:
                raise _Revert("only plain calls (operation CALL) without value")
            g, _ = self._dispatch(wallet, _lo(dst), d)
            gas += g
        return gas

    # ------------------------------------------------------------------------ transactions

    def _error(self, code: int, message: str, data: str | None = None) -> _RpcErr:
        return _RpcErr(code, message, data)

    def send_raw(self, raw_hex: str) -> str:
        from eth_account import Account
        from eth_account.typed_transactions import TypedTransaction
        from hexbytes import HexBytes

        self._tick()
        try:
            raw = bytes.fromhex(raw_hex[2:] if raw_hex[:2] in ("0x", "0X") else raw_hex)
        except (ValueError, TypeError):
            raise self._error(-32602, "invalid raw transaction hex") from None
        if not raw or raw[0] != 2:
            raise self._error(-32000, "only EIP-1559 (type 2) transactions are accepted")
        h = "0x" + C.keccak(raw).hex()
        if h in self.receipts:
            raise self._error(-32000, "already known")
        try:
            tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
            sender = str(Account.recover_transaction(raw))
        except Exception as exc:  # noqa: BLE001 - a malformed or unsignable transaction
            raise self._error(-32000, f"invalid transaction: {type(exc).__name__}") from None
        if tx.get("chainId") != self.chain_id:
            raise self._error(-32000, f"invalid chain id {tx.get('chainId')} (this chain is {self.chain_id})")
        nonce = int(tx["nonce"])
        want = self.nonces.get(_lo(sender), 0)
        if nonce < want:
            raise self._error(-32000, f"nonce too low: next nonce {want}, tx nonce {nonce}")
        if nonce > want:
            raise self._error(-32000, f"nonce too high: next nonce {want}, tx nonce {nonce}")
        max_fee, tip, gas = int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"]), int(tx["gas"])
        if tip > max_fee:
            raise self._error(-32000, "max priority fee per gas higher than max fee per gas")
        if max_fee < self.base_fee:
            raise self._error(-32000, f"max fee per gas less than block base fee: {max_fee} < {self.base_fee}")
        value = int(tx.get("value") or 0)
        if self.pol_balance(sender) < gas * max_fee + value:
            raise self._error(-32000, f"insufficient funds for gas * price + value: address {sender} have "
                                      f"{self.pol_balance(sender)} want {gas * max_fee + value}")  # fmt: skip
        self.sends += 1
        if self._drop_n > 0:
            self._drop_n -= 1
            self.dropped[h] = raw
            logger.info("simchain: dropped tx {} (never mined; a re-broadcast is)", h)
            return h
        self.dropped.pop(h, None)
        to_hex = "0x" + bytes(tx["to"]).hex() if tx.get("to") else ""
        self._mine_tx(h, sender, to_hex, bytes(tx.get("data") or b""), nonce, gas, max_fee, tip, value)
        return h

    def _mine_tx(self, h: str, sender: str, to: str, data: bytes, nonce: int, gas_limit: int, max_fee: int, tip: int,
                 value: int = 0) -> dict[str, Any]:  # fmt: skip
        price = min(max_fee, self.base_fee + tip)
        status, logs, used = 1, [], 0
        reason = ""
        if self._revert_next is not None:
            reason, self._revert_next = self._revert_next, None
            status, used = 0, 26_000
        else:
            try:
                used, logs, _ = self._run(sender, to, data, commit=True, gas_limit=gas_limit)
            except _Revert as r:
                status, reason, logs = 0, r.reason, []
                used = gas_limit if r.reason == "out of gas" else min(gas_limit, 26_000)
        self.nonces[_lo(sender)] = nonce + 1
        self.pol[_lo(sender)] = self.pol_balance(sender) - used * price - (value if status else 0)
        self.head += 1
        n = self.head
        self._block_txs.setdefault(n, []).append(h)
        for i, lg in enumerate(logs):
            lg.update(blockNumber=_hex(n), transactionHash=h, logIndex=_hex(i), blockHash=self._block_hash(n))
        rc = {"transactionHash": h, "blockNumber": _hex(n), "blockHash": self._block_hash(n), "from": _lo(sender),
              "to": _lo(to) if to else None, "status": _hex(status), "gasUsed": _hex(used),
              "cumulativeGasUsed": _hex(used), "effectiveGasPrice": _hex(price), "logs": logs, "type": "0x2",
              "contractAddress": None, "transactionIndex": "0x0"}  # fmt: skip
        if reason:
            rc["revertReason"] = reason
            logger.info("simchain: tx {} from {} reverted: {}", h, sender, reason)
        self.receipts[h] = rc
        self.txs[h] = {"hash": h, "from": _lo(sender), "to": _lo(to) if to else None, "nonce": _hex(nonce),
                       "blockNumber": _hex(n), "input": "0x" + data.hex(), "gas": _hex(gas_limit),
                       "maxFeePerGas": _hex(max_fee), "maxPriorityFeePerGas": _hex(tip), "type": "0x2",
                       "chainId": _hex(self.chain_id), "value": _hex(value)}  # fmt: skip
        return rc

    def _dry_run(self, tx: dict[str, Any]) -> tuple[int, bytes]:
        """Run a call without committing it: (gas, return data); a revert is JSON-RPC error 3."""
        self._tick()
        frm, to, data = self._call_fields(tx)
        try:
            gas, _, ret = self._run(frm, to, data, commit=False)
        except _Revert as r:
            raise self._error(3, f"execution reverted: {r.reason}", _revert_data(r.reason)) from None
        return gas, ret

    def estimate(self, tx: dict[str, Any]) -> int:
        return self._dry_run(tx)[0]

    def call(self, tx: dict[str, Any]) -> str:
        return "0x" + self._dry_run(tx)[1].hex()

    def _call_fields(self, tx: Any) -> tuple[str, str, bytes]:
        if not isinstance(tx, dict) or not isinstance(tx.get("to"), str):
            raise self._error(-32602, "invalid call object: to is required")
        data = tx.get("data") or tx.get("input") or "0x"
        try:
            return _lo(str(tx.get("from") or ZERO)), _lo(tx["to"]), bytes.fromhex(str(data)[2:])
        except ValueError:
            raise self._error(-32602, "invalid call data hex") from None

    # ------------------------------------------------------------------------ JSON-RPC

    def rpc(self, method: str, params: list[Any]) -> Any:
        self._tick()
        p = params or []
        if method == "eth_chainId":
            return _hex(self.chain_id)
        if method == "net_version":
            return str(self.chain_id)
        if method == "eth_blockNumber":
            return _hex(self.head)
        if method == "eth_getTransactionCount":
            return _hex(self.nonces.get(_lo(str(p[0])), 0))
        if method == "eth_getBalance":
            return _hex(self.pol_balance(str(p[0])))
        if method == "eth_maxPriorityFeePerGas":
            return _hex(self.priority_fee)
        if method == "eth_gasPrice":
            return _hex(self.base_fee + self.priority_fee)
        if method == "eth_getBlockByNumber":
            tag = p[0] if p else "latest"
            n = None if tag in ("latest", "pending", "safe", "finalized") else int(str(tag), 16)
            if n is not None and n > self.head:
                return None
            return self.block(n)
        if method == "eth_estimateGas":
            return _hex(self.estimate(p[0] if p else {}))
        if method == "eth_call":
            return self.call(p[0] if p else {})
        if method == "eth_sendRawTransaction":
            raw = str(p[0]) if p else ""
            h = "0x" + C.keccak(bytes.fromhex(raw[2:])).hex() if raw.startswith("0x") and len(raw) % 2 == 0 else ""
            if h and h in self.dropped and self._drop_n == 0:
                self.dropped.pop(h)
            return self.send_raw(raw)
        if method == "eth_getTransactionReceipt":
            return self.receipts.get(str(p[0]).lower()) if p else None
        if method == "eth_getTransactionByHash":
            return self.txs.get(str(p[0]).lower()) if p else None
        raise self._error(-32601, f"the method {method} does not exist/is not available")

    async def _h_rpc(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self._error_n > 0:
            self._error_n -= 1
            return web.Response(status=self._error_status, text="simchain: injected error")
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}})
        if isinstance(body, list):
            if not body:
                return web.json_response({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "empty batch"}})
            return web.json_response([self._one(x) for x in body])
        return web.json_response(self._one(body))

    def _one(self, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
        rid = req.get("id")
        try:
            params = req.get("params") or []
            if not isinstance(params, list):
                raise self._error(-32602, "params must be an array")
            return {"jsonrpc": "2.0", "id": rid, "result": self.rpc(req["method"], params)}
        except _RpcErr as e:
            err: dict[str, Any] = {"code": e.code, "message": e.message}
            if e.data is not None:
                err["data"] = e.data
            return {"jsonrpc": "2.0", "id": rid, "error": err}
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": f"invalid params: {type(exc).__name__}"}}

    # ------------------------------------------------------------------------ the relayer

    def _relayer_auth(self, request: web.Request) -> web.Response | None:
        if not request.headers.get("RELAYER_API_KEY") or not request.headers.get("RELAYER_API_KEY_ADDRESS"):
            return web.json_response({"error": "missing RELAYER_API_KEY / RELAYER_API_KEY_ADDRESS"}, status=401)
        return None

    async def _h_nonce(self, request: web.Request) -> web.Response:
        from .relayer import derive_safe

        q = request.query
        try:
            who = C.addr(q.get("address", ""))
        except C.ChainError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        typ = q.get("type", "")
        if typ == "SAFE":
            return web.json_response({"nonce": str(self.safe_nonces.get(_lo(derive_safe(who, self.c)), 0))})
        if typ == "PROXY":
            return web.json_response({"nonce": str(self.proxy_nonces.get(_lo(who), 0))})
        return web.json_response({"error": "type must be PROXY or SAFE"}, status=400)

    async def _h_relay_payload(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            who = C.addr(q.get("address", ""))
        except C.ChainError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if q.get("type") != "PROXY":
            return web.json_response({"error": "type must be PROXY"}, status=400)
        return web.json_response({"address": RELAY_EOA, "nonce": str(self.proxy_nonces.get(_lo(who), 0))})

    async def _h_wallet_params(self, request: web.Request) -> web.Response:
        from .relayer import derive_deposit_wallet

        q = request.query
        try:
            who = C.addr(q.get("address", ""))
        except C.ChainError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if q.get("type") != "WALLET":
            return web.json_response({"error": "type must be WALLET"}, status=400)
        wallet = _lo(derive_deposit_wallet(who, self.c))
        return web.json_response({"address": RELAY_EOA, "nonce": str(self.wallet_nonces.get(wallet, 0))})

    async def _h_submit(self, request: web.Request) -> web.Response:
        bad = self._relayer_auth(request)
        if bad is not None:
            return bad
        if self._relayer_reject is not None:
            msg, self._relayer_reject = self._relayer_reject, None
            return web.json_response({"error": msg}, status=400)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        try:
            rec = self.relay(body)
        except (C.ChainError, ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response({"transactionID": rec["transactionID"], "state": "STATE_NEW"})

    async def _h_transaction(self, request: web.Request) -> web.Response:
        rec = self.relayed.get(request.query.get("id", ""))
        return web.json_response([rec] if rec else [])

    def relay(self, body: Any) -> dict[str, Any]:
        """Verify and execute one relayer submission; its record. ValueError: refused."""
        from .keys import eip191_digest, recover_digest
        from .relayer import (
            derive_deposit_wallet,
            derive_proxy,
            derive_safe,
            multisend_decode,
            proxy_struct_hash,
            safe_tx_digest,
            wallet_batch_digest,
        )

        if not isinstance(body, dict):
            raise ValueError("body must be an object")
        typ = body.get("type")
        frm = C.addr(str(body.get("from", "")))
        sig = bytes.fromhex(str(body.get("signature", "0x"))[2:])
        nonce = int(str(body.get("nonce", "")))
        calls: list[tuple[int, str, int, bytes]]
        if typ == "SAFE":
            safe = _lo(derive_safe(frm, self.c))
            if _lo(str(body.get("proxyWallet", ""))) != safe:
                raise ValueError(f"proxyWallet is not the Safe of {frm}")
            if nonce != self.safe_nonces.get(safe, 0):
                raise ValueError(f"nonce {nonce} does not match the Safe nonce {self.safe_nonces.get(safe, 0)}")
            sp = body.get("signatureParams") or {}
            op = int(str(sp.get("operation", "0")))
            if any(str(sp.get(k, "0")) != "0" for k in ("safeTxnGas", "baseGas", "gasPrice")):
                raise ValueError("gas fields must be 0")
            to, data, value = C.addr(str(body.get("to"))), bytes.fromhex(str(body.get("data", "0x"))[2:]), int(str(body.get("value", "0")))
            if len(sig) != 65 or sig[64] not in (31, 32):
                raise ValueError("invalid signature: expected an eth_sign signature (v 31/32)")
            digest = safe_tx_digest(self.chain_id, safe, to, value, data, op, nonce)
            signer = recover_digest(eip191_digest(digest), sig[:64] + bytes([sig[64] - 4]))
            if signer is None or _lo(signer) != _lo(frm):
                raise ValueError(f"invalid signature: signed by {signer}, not the owner {frm}")
            if op == 1:
                if _lo(to) != _lo(self.c.safe_multisend):
                    raise ValueError("a delegatecall goes to the Safe MultiSend only")
                calls = [(o, t, v, d) for o, t, v, d in multisend_decode(data)]
                if any(o != 0 for o, *_ in calls):
                    raise ValueError("nested delegatecalls are not allowed")
            elif op == 0:
                calls = [(0, to, value, data)]
            else:
                raise ValueError("operation must be 0 or 1")
            wallet, target, store, key = safe, safe, self.safe_nonces, safe
            extra = SAFE_EXEC_GAS
        elif typ == "PROXY":
            factory = self.c.proxy_factory
            if _lo(str(body.get("to", ""))) != _lo(factory):
                raise ValueError("a PROXY transaction goes to the proxy factory")
            wallet = _lo(derive_proxy(frm, self.c))
            if body.get("proxyWallet") and _lo(str(body["proxyWallet"])) != wallet:
                raise ValueError(f"proxyWallet is not the proxy wallet of {frm}")
            if nonce != self.proxy_nonces.get(_lo(frm), 0):
                raise ValueError(f"nonce {nonce} does not match {self.proxy_nonces.get(_lo(frm), 0)}")
            sp = body.get("signatureParams") or {}
            if _lo(str(sp.get("relay", ""))) != _lo(RELAY_EOA) or _lo(str(sp.get("relayHub", ""))) != _lo(self.c.relay_hub):
                raise ValueError("relay / relayHub mismatch")
            data = bytes.fromhex(str(body.get("data", "0x"))[2:])
            h = proxy_struct_hash(frm, factory, data, int(str(sp.get("relayerFee", "0"))), int(str(sp.get("gasPrice", "0"))),
                                  int(str(sp.get("gasLimit", "0"))), nonce, self.c.relay_hub, RELAY_EOA)  # fmt: skip
            signer = recover_digest(eip191_digest(h), sig)
            if signer is None or _lo(signer) != _lo(frm):
                raise ValueError(f"invalid signature: signed by {signer}, not {frm}")
            (items,) = C.decode_args("proxy((uint8,address,uint256,bytes)[])", data)
            try:
                calls = self._proxy_calls(items)
            except _Revert as r:
                raise ValueError(r.reason) from None
            target, store, key = factory, self.proxy_nonces, _lo(frm)
            extra = GAS["proxy((uint8,address,uint256,bytes)[])"]
        elif typ == "WALLET":
            p = body.get("depositWalletParams") or {}
            wallet = _lo(derive_deposit_wallet(frm, self.c))
            if _lo(str(p.get("depositWallet", ""))) != wallet:
                raise ValueError(f"depositWallet is not the deposit wallet of {frm}")
            if _lo(str(body.get("to", ""))) != _lo(self.c.deposit_wallet_factory):
                raise ValueError("a WALLET transaction goes to the deposit-wallet factory")
            if nonce != self.wallet_nonces.get(wallet, 0):
                raise ValueError(f"batch nonce {nonce} does not match on-chain nonce {self.wallet_nonces.get(wallet, 0)}")
            deadline = int(str(p.get("deadline", "0")))
            if deadline < time.time():
                raise ValueError("batch deadline passed")
            raw_calls = p.get("calls") or []
            cs = [C.Call(C.addr(str(x["target"])), bytes.fromhex(str(x["data"])[2:]), int(str(x.get("value", "0"))))
                  for x in raw_calls]  # fmt: skip
            digest = wallet_batch_digest(self.chain_id, wallet, nonce, deadline, cs)
            signer = recover_digest(digest, sig)
            if signer is None or _lo(signer) != _lo(frm):
                raise ValueError(f"invalid signature: signed by {signer}, not {frm}")
            calls = [(0, c.to, c.value, c.data) for c in cs]
            target, store, key = self.c.deposit_wallet_factory, self.wallet_nonces, wallet
            extra = WALLET_EXEC_GAS
        else:
            raise ValueError("type must be SAFE, PROXY or WALLET")
        rc = self._relay_exec(wallet, target, calls, extra)
        if rc["status"] == "0x1":
            store[key] = nonce + 1
        tid = f"sim-relay-{next(self._relay_seq):06d}"
        rec = {"transactionID": tid, "transactionHash": rc["transactionHash"], "from": _lo(frm), "to": _lo(target),
               "proxyAddress": wallet, "nonce": str(nonce), "value": "", "signature": "0x" + sig.hex(),
               "state": "STATE_CONFIRMED" if rc["status"] == "0x1" else "STATE_FAILED", "type": typ, "owner": _lo(frm),
               "metadata": str(body.get("metadata", ""))[:500], "errorMsg": rc.get("revertReason", "")}  # fmt: skip
        self.relayed[tid] = rec
        return rec

    def _relay_exec(self, wallet: str, target: str, calls: list[tuple[int, str, int, bytes]], extra: int) -> dict[str, Any]:
        """The relay EOA's transaction to ``target``; the calls run as ``wallet``, all or none."""
        relay = _lo(RELAY_EOA)
        nonce = self.nonces.get(relay, 0)
        h = "0x" + C.keccak(b"polybot-simchain/relay/" + str(nonce).encode() + wallet.encode()).hex()
        self._undo, self._logs = [], []
        try:
            gas = self._inner(wallet, calls)
        except _Revert as r:
            self._rollback()
            rc = self._mine_record(h, relay, target, nonce, 21_000 + extra, 0, [], r.reason)
            return rc
        except Exception as exc:  # noqa: BLE001
            self._rollback()
            return self._mine_record(h, relay, target, nonce, 21_000 + extra, 0, [], f"bad call: {type(exc).__name__}")
        logs = self._logs
        self._undo = None
        return self._mine_record(h, relay, target, nonce, 21_000 + extra + gas, 1, logs, "")

    def _mine_record(self, h: str, sender: str, to: str, nonce: int, used: int, status: int, logs: list[dict[str, Any]],
                     reason: str) -> dict[str, Any]:  # fmt: skip
        price = self.base_fee + self.priority_fee
        self.nonces[sender] = nonce + 1
        self.pol[sender] = self.pol_balance(sender) - used * price
        self.head += 1
        n = self.head
        self._block_txs.setdefault(n, []).append(h)
        for i, lg in enumerate(logs):
            lg.update(blockNumber=_hex(n), transactionHash=h, logIndex=_hex(i), blockHash=self._block_hash(n))
        rc = {"transactionHash": h, "blockNumber": _hex(n), "blockHash": self._block_hash(n), "from": sender,
              "to": _lo(to), "status": _hex(status), "gasUsed": _hex(used), "cumulativeGasUsed": _hex(used),
              "effectiveGasPrice": _hex(price), "logs": logs, "type": "0x2", "contractAddress": None,
              "transactionIndex": "0x0"}  # fmt: skip
        if reason:
            rc["revertReason"] = reason
        self.receipts[h] = rc
        self.txs[h] = {"hash": h, "from": sender, "to": _lo(to), "nonce": _hex(nonce), "blockNumber": _hex(n)}
        return rc

    # ------------------------------------------------------------------------ faults, controls

    def drop_next(self, n: int = 1) -> None:
        self._drop_n = max(0, int(n))

    def revert_next(self, reason: str = "injected revert") -> None:
        self._revert_next = reason

    def error_next(self, n: int = 1, status: int = 503) -> None:
        self._error_n, self._error_status = max(0, int(n)), int(status)

    def reject_relayer_next(self, message: str = "injected rejection") -> None:
        self._relayer_reject = message

    def state(self, who: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"chain_id": self.chain_id, "block": self.head, "sends": self.sends, "dropped": len(self.dropped)}
        if who:
            w = _lo(C.addr(who))
            out["account"] = {
                "pol": str(self.pol_balance(w)), "nonce": self.nonces.get(w, 0),
                "pusd": str(self.balance20(self.c.pusd, w)), "usdce": str(self.balance20(self.c.usdce, w)),
                "positions": {str(tid): str(v) for (c, d) in self.erc1155.items() for (o, tid), v in d.items() if o == w and v},
                "allowances": {f"{self._name(t)}->{self._name(s)}": str(v) for t, d in self.allow.items()
                               for (o, s), v in d.items() if o == w},
                "approved_for_all": sorted(f"{self._name(t)}->{self._name(op)}" for t, s in self.approved.items()
                                           for (o, op) in s if o == w),
            }  # fmt: skip
        return out

    def control(self, action: str, p: dict[str, Any]) -> dict[str, Any]:
        if action == "fund":
            self.fund(str(p["address"]), str(p.get("token", "pol")), int(str(p["amount"])))
        elif action == "prepare_condition":
            ids = p.get("ids")
            c = self.prepare_condition(str(p.get("condition_id", "")), kind=str(p.get("kind", "ctf")),
                                       oracle=str(p.get("oracle", "")), question_id=str(p.get("question_id", "")),
                                       ids=(int(ids[0]), int(ids[1])) if ids else None)  # fmt: skip
            return {"ok": True, "condition_id": c.cid, "yes": str(c.yes), "no": str(c.no)}
        elif action == "prepare_neg_risk_market":
            cs = self.prepare_neg_risk_market(str(p["market_id"]), int(p["questions"]), int(p.get("fee_bips", 0)))
            return {"ok": True, "conditions": [{"condition_id": c.cid, "yes": str(c.yes), "no": str(c.no)} for c in cs]}
        elif action == "report_payouts":
            self.report_payouts(str(p["condition_id"]), [int(x) for x in p["payouts"]])
        elif action == "drop_next":
            self.drop_next(int(p.get("n", 1)))
        elif action == "revert_next":
            self.revert_next(str(p.get("reason", "injected revert")))
        elif action == "error_next":
            self.error_next(int(p.get("n", 1)), int(p.get("status", 503)))
        elif action == "reject_relayer_next":
            self.reject_relayer_next(str(p.get("message", "injected rejection")))
        elif action == "mine":
            return {"ok": True, "block": self.mine(int(p.get("n", 1)))}
        elif action == "state":
            return self.state(str(p.get("address", "")))
        else:
            raise KeyError(action)
        return {"ok": True}

    async def _h_control(self, request: web.Request) -> web.Response:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "body is not JSON"}, status=400)
            if isinstance(body, dict):
                params.update(body)
        try:
            return web.json_response(self.control(request.match_info["action"], params))
        except KeyError as exc:
            return web.json_response({"error": f"unknown control or missing parameter {exc}"}, status=404)
        except (ValueError, TypeError, C.ChainError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    # ------------------------------------------------------------------------ wiring

    def add_routes(self, r: web.UrlDispatcher, prefix: str = "/rpc", relayer_prefix: str = "/relayer") -> None:
        """Mount the JSON-RPC endpoint at ``prefix`` (POST; also ``prefix/<anything>``, as an
        API key in a provider's URL), its controls at
        ``prefix/_chain/{action}`` and the relayer under ``relayer_prefix``."""
        r.add_route("*", f"{prefix}/_chain/{{action}}", self._h_control)
        r.add_post(prefix or "/", self._h_rpc)
        r.add_post(f"{prefix}/{{key}}", self._h_rpc)  # providers put an API key in the path
        rp = relayer_prefix
        r.add_get(f"{rp}/nonce", self._h_nonce)
        r.add_get(f"{rp}/relay-payload", self._h_relay_payload)
        r.add_get(f"{rp}/v1/account/transactions/params", self._h_wallet_params)
        r.add_post(f"{rp}/submit", self._h_submit)
        r.add_get(f"{rp}/transaction", self._h_transaction)

    def app(self) -> web.Application:
        """A standalone app: JSON-RPC at ``/``, controls at ``/_chain/{action}``, the relayer at ``/relayer``."""
        app = web.Application()
        self.add_routes(app.router, prefix="")
        return app

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve :meth:`app` on loopback; yields the base URL (the RPC URL; the relayer is
        ``<url>/relayer``)."""
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        try:
            yield f"http://{host}:{int(runner.addresses[0][1])}"
        finally:
            await runner.cleanup()
