"""Polygon contracts of Polymarket, their calldata, and the routing of on-chain position actions.

Pure functions, no I/O: the transaction machinery is in :mod:`.wallet` (JSON-RPC, EIP-1559
signing) and :mod:`.relayer` (proxy / Safe / deposit wallets through Polymarket's relayer).
eth-abi / eth-utils are imported lazily (the ``live`` extra): ``import polybot`` stays light.

Where the facts come from (all read here, October 2026):

* addresses on Polygon (137): Polymarket's own SDK ``Polymarket/py-sdk`` ``src/polymarket/environments.py``
  (PRODUCTION: pUSD, CTF, NegRiskAdapter, CtfCollateralAdapter, NegRiskCtfCollateralAdapter,
  the three exchanges, Protocol-V2 Router and PositionManager, Safe factory / MultiSend, proxy
  factory, relay hub, deposit-wallet factory and beacon); docs.polymarket.com
  ``resources/contracts`` and ``concepts/pusd`` (USDC.e, CollateralOnramp
  ``0x93070a847efEf7F70739046A929D47a521F5B8ee`` with ``wrap(address _asset, address _to,
  uint256 _amount)``: "the caller must first approve the CollateralOnramp contract (not the
  pUSD token) to transfer USDC.e");
* the WrappedCollateral of the NegRiskAdapter ``0x3A3BD7bb9528E159577F7C2e685CC81A765002E2``:
  checked here by deriving real neg-risk token ids of a Gamma market from its condition id
  (the position ids below reproduce Gamma's ``clobTokenIds``; standard markets' ids derive
  from USDC.e, which is why CTF positions did not change with pUSD);
* the call shapes: py-sdk ``_internal/actions/relayer/calls.py`` (CTF-shaped
  ``splitPosition(address,bytes32,bytes32,uint256[],uint256)`` sent to the *collateral adapter*
  with pUSD as collateral, ``redeemPositions(address,bytes32,bytes32,uint256[])``; Router
  ``split(bytes31,uint256)``, ``merge(bytes31,uint256)``, ``redeem(bytes31,uint256,uint256)``)
  and ``approvals.py`` (which approvals trading needs); the NegRiskAdapter's own functions
  (``splitPosition(bytes32,uint256)``, ``mergePositions(bytes32,uint256)``,
  ``redeemPositions(bytes32,uint256[])``, ``convertPositions(bytes32,uint256,uint256)``) from
  ``Polymarket/neg-risk-ctf-adapter`` ``src/NegRiskAdapter.sol``, which also pays a convert's
  collateral in its own collateral (USDC.e) and takes a per-market fee (``feeBips``);
* ids: the Gnosis CTF ``CTHelpers`` (condition id = keccak(oracle, questionId, outcomeCount);
  collection id on alt_bn128; position id = keccak(collateral, collectionId)); neg-risk question
  ids are ``marketId + index`` (NegRiskIdLib, and Gamma's ``questionID`` / ``negRiskMarketID``
  pairs agree); Protocol-V2 position ids are ``conditionId(bytes31) << 8 | outcomeIndex``
  (py-sdk ``derive_combo_outcome_position_ids``).

Not confirmed, hence configurable (``[wallet] contracts``): every Amoy (80002) address other than
the exchanges and the CTF that py-clob-client-v2's config lists; on Polygon a third-party
inventory names other collateral-adapter addresses (``0xADa1008…9718``, ``0xAdA2000…c6F1``) than
Polymarket's SDK: the SDK's are used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from polybot.events import MarketInfo, PositionAction

MAX_UINT256 = (1 << 256) - 1
#: an allowance at or above this is "unlimited" (approve sets MAX_UINT256; tokens that spend
#: from a finite allowance would take it below, and then it shows as missing again)
UNLIMITED = 1 << 255
ZERO_ADDRESS = "0x" + "00" * 20
ZERO32 = b"\x00" * 32
_ADDR = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
#: alt_bn128 (the CTF's collection-id curve): y^2 = x^3 + 3 over this prime (p = 3 mod 4)
_P = 21888242871839275222246405745257275088696311157297823662689037894645226208583


@dataclass(frozen=True)
class Contracts:
    """The addresses one chain needs; "" = not known (a call that needs it is refused, naming the
    ``[wallet] contracts`` key to set)."""

    pusd: str = ""
    usdce: str = ""
    ctf: str = ""
    neg_risk_adapter: str = ""
    wrapped_collateral: str = ""
    ctf_collateral_adapter: str = ""
    neg_risk_collateral_adapter: str = ""
    exchange_v2: str = ""
    neg_risk_exchange_v2: str = ""
    exchange_v3: str = ""
    router: str = ""
    position_manager: str = ""
    collateral_onramp: str = ""
    safe_factory: str = ""
    safe_multisend: str = ""
    proxy_factory: str = ""
    relay_hub: str = ""
    deposit_wallet_factory: str = ""
    deposit_wallet_beacon: str = ""
    safe_init_code_hash: str = ""
    proxy_init_code_hash: str = ""

    def need(self, name: str) -> str:
        v = getattr(self, name)
        if not v:
            raise ChainError(f"contract {name} is not known for this chain: set it in [wallet] contracts "
                             f"({name} = \"0x…\")")  # fmt: skip
        return str(v)

    def label(self, address: str) -> str:
        """The contract's name for an address ("" when it is none of ours)."""
        a = address.lower()
        for f in fields(self):
            v = getattr(self, f.name)
            if v and v.lower() == a and not f.name.endswith("_hash"):
                return f.name
        return ""


#: chain id -> contracts (see the module docstring for sources)
CHAINS: dict[int, Contracts] = {
    137: Contracts(
        pusd="0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB",
        usdce="0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174",
        ctf="0x4D97DCd97eC945f40cF65F87097ACe5EA0476045",
        neg_risk_adapter="0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296",
        wrapped_collateral="0x3A3BD7bb9528E159577F7C2e685CC81A765002E2",
        ctf_collateral_adapter="0xAdA100Db00Ca00073811820692005400218FcE1f",
        neg_risk_collateral_adapter="0xadA2005600Dec949baf300f4C6120000bDB6eAab",
        exchange_v2="0xE111180000d2663C0091e4f400237545B87B996B",
        neg_risk_exchange_v2="0xe2222d279d744050d28e00520010520000310F59",
        exchange_v3="0xe3333700cA9d93003F00f0F71f8515005F6c00Aa",
        router="0x12121212006e4CD160D18e3f00711DA5c3372600",
        position_manager="0x006F54F7f9A22e0000CC2AB60031000000ae9fEF",
        collateral_onramp="0x93070a847efEf7F70739046A929D47a521F5B8ee",
        safe_factory="0xaacFeEa03eb1561C4e67d661e40682Bd20E3541b",
        safe_multisend="0xA238CBeb142c10Ef7Ad8442C6D1f9E89e07e7761",
        proxy_factory="0xaB45c5A4B0c941a2F231C04C3f49182e1A254052",
        relay_hub="0xD216153c06E857cD7f72665E0aF1d7D82172F494",
        deposit_wallet_factory="0x00000000000Fb5C9ADea0298D729A0CB3823Cc07",
        deposit_wallet_beacon="0x7A18EDfe055488A3128f01F563e5B479D92ffc3a",
        safe_init_code_hash="0x2bce2127ff07fb632d16c8347c4ebf501f4841168bed00d9e6ef715ddb6fcecf",
        proxy_init_code_hash="0xd21df8dc65880a8606f09fe0ce3df9b8869287ab0b058be05aa9e8af6330a00b",
    ),
    # Amoy: py-clob-client-v2 config.py (exchanges, collateral, CTF, neg-risk adapter) and
    # py-builder-relayer-client config.py (Safe factory, MultiSend); the rest is not published
    80002: Contracts(
        pusd="0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB",
        ctf="0x69308FB512518e39F9b16112fA8d994F4e2Bf8bB",
        neg_risk_adapter="0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296",
        exchange_v2="0xE111180000d2663C0091e4f400237545B87B996B",
        neg_risk_exchange_v2="0xe2222d279d744050d28e00520010520000310F59",
        exchange_v3="0x9fE6e61422AdB6F610d8597F9684b16912D50C3D",
        safe_factory="0xaacFeEa03eb1561C4e67d661e40682Bd20E3541b",
        safe_multisend="0xA238CBeb142c10Ef7Ad8442C6D1f9E89e07e7761",
        safe_init_code_hash="0x2bce2127ff07fb632d16c8347c4ebf501f4841168bed00d9e6ef715ddb6fcecf",
        proxy_init_code_hash="0xd21df8dc65880a8606f09fe0ce3df9b8869287ab0b058be05aa9e8af6330a00b",
    ),
}  # fmt: skip
CONTRACT_NAMES = tuple(f.name for f in fields(Contracts))


class ChainError(ValueError):
    """A call that cannot be built (unknown contract, bad id, unsupported action)."""


def contracts_for(chain_id: int, overrides: dict[str, str] | None = None) -> Contracts:
    """The chain's contracts with ``[wallet] contracts`` overrides (checked: names and 0x
    addresses / 32-byte hashes)."""
    base = CHAINS.get(chain_id, Contracts())
    ov = dict(overrides or {})
    for k, v in ov.items():
        if k not in CONTRACT_NAMES:
            raise ChainError(f"unknown contract {k!r} (known: {', '.join(CONTRACT_NAMES)})")
        ok = _HEX32.fullmatch(v) if k.endswith("_hash") else _ADDR.fullmatch(v)
        if not isinstance(v, str) or not ok:
            raise ChainError(f"{k}: {v!r} is not a {'32-byte hash' if k.endswith('_hash') else '0x address'}")
    return replace(base, **ov) if ov else base


# ---------------------------------------------------------------------------------- ABI


def keccak(data: bytes) -> bytes:
    from eth_utils import keccak as _k

    return bytes(_k(primitive=data))


_SELECTORS: dict[str, bytes] = {}


def selector(signature: str) -> bytes:
    s = _SELECTORS.get(signature)
    if s is None:
        s = _SELECTORS[signature] = keccak(signature.encode())[:4]
    return s


def _types(signature: str) -> list[str]:
    """``f(address,(uint8,address)[],uint256)`` -> ``["address", "(uint8,address)[]", "uint256"]``."""
    inner = signature[signature.index("(") + 1 : -1]
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


def encode_call(signature: str, *args: Any) -> bytes:
    """Calldata: the 4-byte selector and the ABI-encoded arguments."""
    from eth_abi import encode

    return selector(signature) + encode(_types(signature), list(args))


def decode_args(signature: str, data: bytes) -> tuple[Any, ...]:
    """The arguments of calldata for ``signature`` (ValueError when it does not decode)."""
    from eth_abi import decode

    if data[:4] != selector(signature):
        raise ValueError(f"not a {signature} call")
    try:
        return tuple(decode(_types(signature), data[4:]))
    except Exception as exc:  # noqa: BLE001 - eth-abi raises several types for bad input
        raise ValueError(f"{signature}: calldata does not decode: {type(exc).__name__}") from None


def decode_uint(result: str | bytes) -> int:
    b = bytes.fromhex(result[2:]) if isinstance(result, str) else result
    if len(b) < 32:
        raise ValueError(f"expected a 32-byte word, got {len(b)} bytes")
    return int.from_bytes(b[:32], "big")


def addr(a: str) -> str:
    """A checked 0x address (checksummed)."""
    from eth_utils import to_checksum_address

    if not isinstance(a, str) or not _ADDR.fullmatch(a):
        raise ChainError(f"not a 0x address: {a!r}")
    return str(to_checksum_address(a))


def bytes32(h: str) -> bytes:
    if not isinstance(h, str) or not _HEX32.fullmatch(h):
        raise ChainError(f"not a 32-byte 0x hex id: {h!r}")
    return bytes.fromhex(h[2:])


def bytes31(h: str) -> bytes:
    """A Protocol-V2 condition id: 31 bytes, or 32 whose last byte is an outcome index (00/01),
    as py-sdk accepts it."""
    s = h[2:].lower() if isinstance(h, str) and h[:2].lower() == "0x" else ""
    if len(s) == 64 and s[-2:] in ("00", "01"):
        s = s[:-2]
    if len(s) != 62:
        raise ChainError(f"not a Protocol-V2 condition id (bytes31): {h!r}")
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise ChainError(f"not a Protocol-V2 condition id (bytes31): {h!r}") from None


@dataclass(frozen=True)
class Call:
    """One contract call: target, calldata, value, and what it is in words."""

    to: str
    data: bytes
    value: int = 0
    function: str = ""  # e.g. "approve(address,uint256)"
    args: tuple[Any, ...] = ()
    label: str = ""  # e.g. "pUSD.approve(exchange_v2, unlimited)"

    @property
    def data_hex(self) -> str:
        return "0x" + self.data.hex()


def _call(to: str, signature: str, *args: Any, label: str = "") -> Call:
    return Call(addr(to), encode_call(signature, *args), 0, signature, tuple(args), label)


# -- ERC-20 / ERC-1155 -------------------------------------------------------------------------

def erc20_approve(token: str, spender: str, amount: int = MAX_UINT256, label: str = "") -> Call:
    return _call(token, "approve(address,uint256)", addr(spender), amount, label=label)


def erc20_allowance(token: str, owner: str, spender: str) -> Call:
    return _call(token, "allowance(address,address)", addr(owner), addr(spender))


def erc20_balance_of(token: str, owner: str) -> Call:
    return _call(token, "balanceOf(address)", addr(owner))


def erc1155_set_approval_for_all(token: str, operator: str, approved: bool = True, label: str = "") -> Call:
    return _call(token, "setApprovalForAll(address,bool)", addr(operator), approved, label=label)


def erc1155_is_approved_for_all(token: str, owner: str, operator: str) -> Call:
    return _call(token, "isApprovedForAll(address,address)", addr(owner), addr(operator))


def erc1155_balance_of(token: str, owner: str, token_id: int) -> Call:
    return _call(token, "balanceOf(address,uint256)", addr(owner), int(token_id))


# -- collateral --------------------------------------------------------------------------------

def onramp_wrap(onramp: str, asset: str, to: str, amount: int) -> Call:
    """CollateralOnramp.wrap(_asset, _to, _amount): USDC.e of the caller into pUSD for ``to``."""
    return _call(onramp, "wrap(address,address,uint256)", addr(asset), addr(to), amount,
                 label=f"CollateralOnramp.wrap(USDC.e, {to}, {amount})")  # fmt: skip


# -- CTF-shaped (the CTF itself, the collateral adapters, the NegRiskAdapter's CTF-compatible form)

BINARY_PARTITION = [1, 2]


def ctf_split(target: str, collateral: str, condition_id: str, amount: int, label: str = "") -> Call:
    return _call(target, "splitPosition(address,bytes32,bytes32,uint256[],uint256)", addr(collateral), ZERO32,
                 bytes32(condition_id), BINARY_PARTITION, amount, label=label)  # fmt: skip


def ctf_merge(target: str, collateral: str, condition_id: str, amount: int, label: str = "") -> Call:
    return _call(target, "mergePositions(address,bytes32,bytes32,uint256[],uint256)", addr(collateral), ZERO32,
                 bytes32(condition_id), BINARY_PARTITION, amount, label=label)  # fmt: skip


def ctf_redeem(target: str, collateral: str, condition_id: str, label: str = "") -> Call:
    return _call(target, "redeemPositions(address,bytes32,bytes32,uint256[])", addr(collateral), ZERO32,
                 bytes32(condition_id), BINARY_PARTITION, label=label)  # fmt: skip


def ctf_payout_denominator(ctf: str, condition_id: str) -> Call:
    return _call(ctf, "payoutDenominator(bytes32)", bytes32(condition_id))


def ctf_payout_numerator(ctf: str, condition_id: str, index: int) -> Call:
    return _call(ctf, "payoutNumerators(bytes32,uint256)", bytes32(condition_id), index)


# -- NegRiskAdapter (its own functions; collateral USDC.e) --------------------------------------

def negrisk_split(adapter: str, condition_id: str, amount: int) -> Call:
    return _call(adapter, "splitPosition(bytes32,uint256)", bytes32(condition_id), amount,
                 label=f"NegRiskAdapter.splitPosition({condition_id}, {amount})")  # fmt: skip


def negrisk_merge(adapter: str, condition_id: str, amount: int) -> Call:
    return _call(adapter, "mergePositions(bytes32,uint256)", bytes32(condition_id), amount,
                 label=f"NegRiskAdapter.mergePositions({condition_id}, {amount})")  # fmt: skip


def negrisk_redeem(adapter: str, condition_id: str, amounts: list[int]) -> Call:
    return _call(adapter, "redeemPositions(bytes32,uint256[])", bytes32(condition_id), list(amounts),
                 label=f"NegRiskAdapter.redeemPositions({condition_id}, {amounts})")  # fmt: skip


def negrisk_convert(adapter: str, market_id: str, index_set: int, amount: int) -> Call:
    return _call(adapter, "convertPositions(bytes32,uint256,uint256)", bytes32(market_id), index_set, amount,
                 label=f"NegRiskAdapter.convertPositions({market_id}, {index_set:#x}, {amount})")  # fmt: skip


# -- Protocol-V2 Router ------------------------------------------------------------------------

def router_split(router: str, condition_id: str, amount: int) -> Call:
    return _call(router, "split(bytes31,uint256)", bytes31(condition_id), amount,
                 label=f"Router.split({condition_id}, {amount})")  # fmt: skip


def router_merge(router: str, condition_id: str, amount: int) -> Call:
    return _call(router, "merge(bytes31,uint256)", bytes31(condition_id), amount,
                 label=f"Router.merge({condition_id}, {amount})")  # fmt: skip


def router_redeem(router: str, condition_id: str, outcome_index: int, amount: int) -> Call:
    if outcome_index not in (0, 1):
        raise ChainError("Protocol-V2 outcome index must be 0 (YES) or 1 (NO)")
    return _call(router, "redeem(bytes31,uint256,uint256)", bytes31(condition_id), outcome_index, amount,
                 label=f"Router.redeem({condition_id}, {outcome_index}, {amount})")  # fmt: skip


# ---------------------------------------------------------------------------------- ids


def condition_id(oracle: str, question_id: str, outcome_count: int = 2) -> str:
    """CTHelpers.getConditionId: keccak256(abi.encodePacked(oracle, questionId, outcomeSlotCount))."""
    return "0x" + keccak(bytes.fromhex(addr(oracle)[2:]) + bytes32(question_id) + outcome_count.to_bytes(32, "big")).hex()


def collection_id(cond: str, index_set: int, parent: int = 0) -> int:
    """CTHelpers.getCollectionId (parent 0: the only case Polymarket uses): hash to a point of
    alt_bn128, compressed (the sign of y in bit 254)."""
    if parent:
        raise ChainError("nested collections are not supported")
    x1 = int.from_bytes(keccak(bytes32(cond) + index_set.to_bytes(32, "big")), "big")
    odd = x1 >> 255 != 0
    while True:
        x1 = (x1 + 1) % _P
        yy = (x1 * x1 % _P * x1 + 3) % _P
        y1 = pow(yy, (_P + 1) // 4, _P)
        if y1 * y1 % _P == yy:
            break
    if (odd and y1 % 2 == 0) or (not odd and y1 % 2 == 1):
        y1 = _P - y1
    if y1 % 2 == 1:
        x1 ^= 1 << 254
    return x1


def position_id(collateral: str, cond: str, index_set: int) -> int:
    """CTHelpers.getPositionId: uint256(keccak256(abi.encodePacked(collateral, collectionId)))."""
    cid = collection_id(cond, index_set)
    return int.from_bytes(keccak(bytes.fromhex(addr(collateral)[2:]) + cid.to_bytes(32, "big")), "big")


def binary_position_ids(collateral: str, cond: str) -> tuple[int, int]:
    """(YES, NO) token ids of a binary CTF condition (index sets 1 and 2)."""
    return position_id(collateral, cond, 1), position_id(collateral, cond, 2)


def neg_risk_question_id(market_id: str, index: int) -> str:
    """NegRiskIdLib.getQuestionId: the market id plus the question's index (last byte)."""
    m = int.from_bytes(bytes32(market_id), "big")
    if m & 0xFF:
        raise ChainError(f"a neg-risk market id ends in a zero byte: {market_id}")
    return "0x" + (m + index).to_bytes(32, "big").hex()


def neg_risk_question_index(adapter: str, market_id: str, cond: str) -> int:
    """The index of the question of neg-risk market ``market_id`` whose condition is ``cond``
    (conditions are prepared by the adapter as oracle); ChainError when none of the 256 is."""
    want = cond.lower()
    for i in range(256):
        if condition_id(adapter, neg_risk_question_id(market_id, i)) == want:
            return i
    raise ChainError(f"condition {cond} is not a question of neg-risk market {market_id}")


def v2_position_ids(cond: str) -> tuple[int, int]:
    """Protocol-V2 (YES, NO) position ids: the bytes31 condition id followed by the outcome byte."""
    base = int.from_bytes(bytes31(cond), "big") << 8
    return base, base | 1


# ---------------------------------------------------------------------------------- approvals


@dataclass(frozen=True)
class Approval:
    """One approval the account needs: an ERC-20 allowance of ``token`` to ``spender``, or an
    ERC-1155 ``setApprovalForAll(spender)`` on ``token``."""

    kind: Literal["erc20", "erc1155"]
    token: str  # a Contracts field name
    spender: str  # a Contracts field name
    venue: str  # which exchange / feature needs it
    purpose: str

    def call(self, c: Contracts) -> Call:
        token, spender = c.need(self.token), c.need(self.spender)
        if self.kind == "erc20":
            return erc20_approve(token, spender, MAX_UINT256, label=f"{self.token}.approve({self.spender}, unlimited)")
        return erc1155_set_approval_for_all(token, spender, True, label=f"{self.token}.setApprovalForAll({self.spender}, true)")

    def check(self, c: Contracts, owner: str) -> Call:
        token, spender = c.need(self.token), c.need(self.spender)
        if self.kind == "erc20":
            return erc20_allowance(token, owner, spender)
        return erc1155_is_approved_for_all(token, owner, spender)

    def satisfied(self, result: int) -> bool:
        return result >= UNLIMITED if self.kind == "erc20" else result != 0

    @property
    def name(self) -> str:
        return (f"{self.token}.approve({self.spender})" if self.kind == "erc20"
                else f"{self.token}.setApprovalForAll({self.spender})")  # fmt: skip


#: Every approval trading and position actions need (py-sdk ``approvals.py`` less its perps /
#: auto-redeem / combo entries, plus the NegRiskAdapter for converts). BUY spends pUSD through
#: the exchange (an allowance); SELL moves outcome tokens through it (setApprovalForAll on the
#: CTF, or the PositionManager for Protocol-V2 positions).
APPROVALS: tuple[Approval, ...] = (
    Approval("erc20", "pusd", "exchange_v2", "CTFExchangeV2", "BUY on standard markets"),
    Approval("erc1155", "ctf", "exchange_v2", "CTFExchangeV2", "SELL on standard markets"),
    Approval("erc20", "pusd", "neg_risk_exchange_v2", "neg-risk CTFExchangeV2", "BUY on neg-risk markets"),
    Approval("erc1155", "ctf", "neg_risk_exchange_v2", "neg-risk CTFExchangeV2", "SELL on neg-risk markets"),
    Approval("erc20", "pusd", "exchange_v3", "ExchangeV3", "BUY on Protocol-V2 markets"),
    Approval("erc1155", "position_manager", "exchange_v3", "ExchangeV3", "SELL on Protocol-V2 markets"),
    Approval("erc20", "pusd", "ctf_collateral_adapter", "position actions", "split (standard markets)"),
    Approval("erc1155", "ctf", "ctf_collateral_adapter", "position actions", "merge / redeem (standard markets)"),
    Approval("erc20", "pusd", "neg_risk_collateral_adapter", "position actions", "split (neg-risk markets)"),
    Approval("erc1155", "ctf", "neg_risk_collateral_adapter", "position actions", "merge / redeem (neg-risk markets)"),
    Approval("erc1155", "ctf", "neg_risk_adapter", "position actions", "convert (neg-risk NO -> YES + USDC.e)"),
    Approval("erc20", "pusd", "router", "position actions", "split (Protocol-V2 markets)"),
    Approval("erc1155", "position_manager", "router", "position actions", "merge / redeem (Protocol-V2 markets)"),
)  # fmt: skip


def approvals_for(c: Contracts) -> list[Approval]:
    """The approvals this chain's known contracts allow (an unknown contract's row is skipped)."""
    return [a for a in APPROVALS if getattr(c, a.token) and getattr(c, a.spender)]


# ---------------------------------------------------------------------------------- actions


@dataclass
class ActionPlan:
    """The calls that carry out one :class:`~polybot.events.PositionAction`, and what they move."""

    calls: list[Call]
    route: str  # "collateral_adapter" | "neg_risk_collateral_adapter" | "neg_risk_adapter" | "router"
    collateral_tokens: tuple[str, ...]  # the ERC-20s whose transfers make the collateral figure
    erc1155: str = ""  # where the outcome tokens live (CTF or PositionManager)
    notes: list[str] = field(default_factory=list)


def plan_action(a: PositionAction, info: MarketInfo, c: Contracts, *,
                convert_markets: dict[str, MarketInfo] | None = None,
                balances: tuple[int, int] | None = None) -> ActionPlan:  # fmt: skip
    """The calls for action ``a`` on market ``info``:

    * CTF markets (``version`` "v1"): split / merge / redeem through Polymarket's collateral
      adapter (CtfCollateralAdapter, or NegRiskCtfCollateralAdapter for a neg-risk market) with
      pUSD, the CTF's own signatures (what Polymarket's SDK does since pUSD);
    * convert (neg-risk): NegRiskAdapter.convertPositions(negRiskMarketID, indexSet, amount), the
      index set from the question index of each NO token's market (``convert_markets``: asset id
      -> its MarketInfo); the adapter pays the collateral in USDC.e;
    * Protocol-V2 markets (``version`` "v2"): Router split / merge / redeem; a redeem names the
      amount of each outcome (``balances``: the account's (YES, NO) position balances; 0 skips it).
    """
    cond = info.market
    if a.action not in ("split", "merge", "redeem", "convert"):
        raise ChainError(f"unknown action {a.action!r}")
    if info.version == "v2":
        if a.action == "convert":
            raise ChainError("convert of Protocol-V2 positions is not supported (Router.convert converts one "
                             "NO into the other YES, a different exchange than the NegRiskAdapter's)")  # fmt: skip
        router = c.need("router")
        plan = ActionPlan([], "router", (c.need("pusd"),), c.need("position_manager"))
        if a.action == "split":
            plan.calls.append(router_split(router, cond, a.amount))
        elif a.action == "merge":
            plan.calls.append(router_merge(router, cond, a.amount))
        else:
            if balances is None:
                raise ChainError("a Protocol-V2 redeem needs the position balances")
            for i, n in enumerate(balances):
                if n > 0:
                    plan.calls.append(router_redeem(router, cond, i, n))
            if not plan.calls:
                raise ChainError("nothing to redeem: no position balance")
        return plan
    if a.action == "convert":
        if not info.neg_risk:
            raise ChainError("convert needs a neg-risk market")
        adapter = c.need("neg_risk_adapter")
        mid = info.neg_risk_market_id
        if not mid:
            raise ChainError(f"market {cond} has no neg-risk market id in the catalog (Gamma negRiskMarketID)")
        if not a.asset_ids:
            raise ChainError("convert needs the NO tokens to convert (asset_ids)")
        index_set = 0
        for aid in a.asset_ids:
            m = (convert_markets or {}).get(aid)
            if m is None:
                raise ChainError(f"{aid}: its market is not in the catalog")
            if len(m.asset_ids) != 2 or m.asset_ids[1] != aid:
                raise ChainError(f"{aid} is not the NO token of market {m.market}")
            if m.neg_risk_market_id and m.neg_risk_market_id.lower() != mid.lower():
                raise ChainError(f"{aid} belongs to neg-risk market {m.neg_risk_market_id}, not {mid}")
            index_set |= 1 << neg_risk_question_index(adapter, mid, m.market)
        if bin(index_set).count("1") != len(a.asset_ids):
            raise ChainError("the same question twice in asset_ids")
        return ActionPlan([negrisk_convert(adapter, mid, index_set, a.amount)], "neg_risk_adapter",
                          (c.need("usdce"), c.need("pusd")), c.need("ctf"),
                          ["the NegRiskAdapter pays a convert's collateral in USDC.e (less the market's fee): "
                           "`polybot wallet wrap` turns it into pUSD"])  # fmt: skip
    pusd = c.need("pusd")
    key = "neg_risk_collateral_adapter" if info.neg_risk else "ctf_collateral_adapter"
    target = c.need(key)
    name = "NegRiskCtfCollateralAdapter" if info.neg_risk else "CtfCollateralAdapter"
    if a.action == "split":
        call = ctf_split(target, pusd, cond, a.amount, label=f"{name}.splitPosition(pUSD, 0, {cond}, [1,2], {a.amount})")
    elif a.action == "merge":
        call = ctf_merge(target, pusd, cond, a.amount, label=f"{name}.mergePositions(pUSD, 0, {cond}, [1,2], {a.amount})")
    else:
        call = ctf_redeem(target, pusd, cond, label=f"{name}.redeemPositions(pUSD, 0, {cond}, [1,2])")
    return ActionPlan([call], key, (pusd,), c.need("ctf"))


# ---------------------------------------------------------------------------------- logs

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"  # Transfer(address,address,uint256)


def collateral_delta(logs: list[dict[str, Any]], tokens: tuple[str, ...], account: str) -> int:
    """Net ERC-20 ``Transfer``s of ``tokens`` into ``account`` in a receipt's logs (negative:
    out). Malformed log entries are skipped."""
    want = {t.lower() for t in tokens}
    me = account.lower()[2:].rjust(64, "0")
    total = 0
    for lg in logs:
        try:
            if str(lg.get("address", "")).lower() not in want:
                continue
            topics = [str(t).lower() for t in lg.get("topics") or []]
            if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
                continue
            value = int(str(lg.get("data", "0x0")), 16)
        except (ValueError, AttributeError):
            continue
        if topics[2][2:] == me:
            total += value
        if topics[1][2:] == me:
            total -= value
    return total
