"""On-chain side of the live path: calldata and ids (adapters/polymarket/chain.py), the fake chain
(simchain.py) verifying real signed transactions, the EOA sender (wallet.py: fees, resends,
reverts, timeouts), position actions against the ledger, and the relayer for Safe, proxy and
deposit wallets (relayer.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("eth_account")
pytest.importorskip("eth_abi")

import aiohttp  # noqa: E402
import msgspec  # noqa: E402
from eth_abi import decode  # noqa: E402
from eth_account import Account  # noqa: E402

from adapters.polymarket import chain as C  # noqa: E402
from adapters.polymarket.keys import KeySigner  # noqa: E402
from adapters.polymarket.relayer import RelayerError, derive_deposit_wallet, derive_proxy, derive_safe  # noqa: E402
from adapters.polymarket.rpc import JsonRpc, RpcError, decode_revert  # noqa: E402
from adapters.polymarket.simchain import RELAY_EOA, SimChain  # noqa: E402
from adapters.polymarket.wallet import ChainWallet, TxFailed, TxSender, WalletSettings  # noqa: E402
from polybot.events import MarketInfo, PositionAction  # noqa: E402

pytestmark = pytest.mark.anyio

PK = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # Hardhat #0
ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
PK2 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # Hardhat #1
K = C.CHAINS[137]
POL = 10**18
ONE = 1_000_000

# a real market of each kind (Gamma samples in /work/shared/samples): condition id -> clobTokenIds
STD_CID = "0xcd5f9f505e0c0182746aa65963f72f01e7463259e5ea9f56672c0fe3a37f348a"
STD_IDS = (25070934348813416902477876984955073880416401960631253331845590271167412497744,
           111614563957165270026378011809694313565736745512637881727398424401624030147043)  # fmt: skip
NR_MARKET = "0x2c3d7e0eee6f058be3006baabf0d54a07da254ba47fe6e3e095e7990c7814700"
NR_CID0 = "0x0f49db97f71c68b1e42a6d16e3de93d85dbf7d4148e3f018eb79e88554be9f75"  # question 0
NR_IDS0 = (54533043819946592547517511176940999955633860128497669742211153063842200957669,
           87854174148074652060467921081181402357467303721471806610111179101805869578687)  # fmt: skip
NR_CID7 = "0xe39adea057926dc197fe30a441f57a340b2a232d5a687010f78bba9b6e02620f"  # Gamma questionID …707
NR_CID5 = "0xc8f1cf5d4f26e0fd9c8fe89f2a7b3263b902cf14fde7bfccef525753bb492e47"  # Gamma questionID …705


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------------------- calldata


def test_selectors_are_the_known_ones() -> None:
    known = {
        "approve(address,uint256)": "095ea7b3", "allowance(address,address)": "dd62ed3e",
        "balanceOf(address)": "70a08231", "setApprovalForAll(address,bool)": "a22cb465",
        "isApprovedForAll(address,address)": "e985e9c5", "balanceOf(address,uint256)": "00fdd58e",
        "splitPosition(address,bytes32,bytes32,uint256[],uint256)": "72ce4275",
        "mergePositions(address,bytes32,bytes32,uint256[],uint256)": "9e7212ad",
        "redeemPositions(address,bytes32,bytes32,uint256[])": "01b7037c", "transfer(address,uint256)": "a9059cbb",
    }  # fmt: skip
    for sig, sel in known.items():
        assert C.selector(sig).hex() == sel, sig
    c = C.erc20_approve(K.pusd, K.exchange_v2)
    assert c.data[:4].hex() == "095ea7b3" and c.to == K.pusd
    assert decode(["address", "uint256"], c.data[4:]) == (K.exchange_v2.lower(), C.MAX_UINT256)
    s = C.erc1155_set_approval_for_all(K.ctf, K.neg_risk_exchange_v2)
    assert s.data.hex() == "a22cb465" + "00" * 12 + K.neg_risk_exchange_v2[2:].lower() + "00" * 31 + "01"


def test_adapter_split_matches_the_official_sdk_vector() -> None:
    """py-sdk's call builder (ctf_split_position_call to the neg-risk collateral adapter, pUSD,
    condition 0x6b04…6fbc, 2.5) as frozen in a port's test vectors."""
    cid = "0x6b049bc3befa02c22d0cfaee77625fc94e9a6d571f00c015ba7a3b442e306fbc"
    got = C.ctf_split(K.neg_risk_collateral_adapter, K.pusd, cid, 2_500_000).data_hex
    want = ("0x72ce4275000000000000000000000000c011a7e12a19f7b1f670d46f03b03f3342e82dfb" + "00" * 32 + cid[2:]
            + f"{0xa0:064x}" + f"{2_500_000:064x}" + f"{2:064x}" + f"{1:064x}" + f"{2:064x}")  # fmt: skip
    assert got == want


def test_calldata_round_trips() -> None:
    cid = STD_CID
    cases = [
        (C.ctf_merge(K.ctf_collateral_adapter, K.pusd, cid, 7), (K.pusd.lower(), C.ZERO32, bytes.fromhex(cid[2:]), (1, 2), 7)),
        (C.ctf_redeem(K.ctf_collateral_adapter, K.pusd, cid), (K.pusd.lower(), C.ZERO32, bytes.fromhex(cid[2:]), (1, 2))),
        (C.negrisk_split(K.neg_risk_adapter, cid, 5), (bytes.fromhex(cid[2:]), 5)),
        (C.negrisk_merge(K.neg_risk_adapter, cid, 6), (bytes.fromhex(cid[2:]), 6)),
        (C.negrisk_redeem(K.neg_risk_adapter, cid, [3, 4]), (bytes.fromhex(cid[2:]), (3, 4))),
        (C.negrisk_convert(K.neg_risk_adapter, NR_MARKET, 0b101, 9), (bytes.fromhex(NR_MARKET[2:]), 5, 9)),
        (C.router_split(K.router, cid[:64] + "00", 8), (bytes.fromhex(cid[2:64]), 8)),
        (C.router_merge(K.router, cid[:64], 8), (bytes.fromhex(cid[2:64]), 8)),
        (C.router_redeem(K.router, cid[:64] + "01", 1, 3), (bytes.fromhex(cid[2:64]), 1, 3)),
        (C.onramp_wrap(K.collateral_onramp, K.usdce, ADDR, 12), (K.usdce.lower(), ADDR.lower(), 12)),
    ]  # fmt: skip
    for call, args in cases:
        assert C.decode_args(call.function, call.data) == args, call.function
    assert C.selector("convertPositions(bytes32,uint256,uint256)") == cases[5][0].data[:4]
    with pytest.raises(C.ChainError):
        C.router_split(K.router, "0x1234", 1)
    with pytest.raises(C.ChainError):
        C.ctf_split(K.ctf, K.pusd, "0xnothex", 1)
    with pytest.raises(ValueError):
        C.decode_args("merge(bytes31,uint256)", cases[0][0].data)


def test_position_ids_are_derived_like_the_contracts() -> None:
    """Real Gamma markets: a standard market's token ids derive from USDC.e, a neg-risk market's
    from the NegRiskAdapter's WrappedCollateral; its condition from (adapter, marketId + index)."""
    assert C.binary_position_ids(K.usdce, STD_CID) == STD_IDS
    assert C.binary_position_ids(K.wrapped_collateral, NR_CID0) == NR_IDS0
    assert C.condition_id(K.neg_risk_adapter, C.neg_risk_question_id(NR_MARKET, 0)) == NR_CID0
    assert C.neg_risk_question_index(K.neg_risk_adapter, NR_MARKET, NR_CID0) == 0
    assert C.neg_risk_question_index(K.neg_risk_adapter, NR_MARKET, NR_CID7) == 7
    assert C.neg_risk_question_index(K.neg_risk_adapter, NR_MARKET, NR_CID5) == 5
    with pytest.raises(C.ChainError):
        C.neg_risk_question_index(K.neg_risk_adapter, NR_MARKET, STD_CID)
    base = int(STD_CID[2:64], 16) << 8
    assert C.v2_position_ids(STD_CID[:64]) == (base, base | 1)


def test_contracts_overrides_and_the_approvals_table() -> None:
    amoy = C.contracts_for(80002)
    assert amoy.exchange_v3 == "0x9fE6e61422AdB6F610d8597F9684b16912D50C3D" and amoy.collateral_onramp == ""
    with pytest.raises(C.ChainError, match="collateral_onramp"):
        amoy.need("collateral_onramp")
    assert C.contracts_for(80002, {"collateral_onramp": ADDR}).collateral_onramp == ADDR
    with pytest.raises(C.ChainError, match="unknown contract"):
        C.contracts_for(137, {"nope": ADDR})
    with pytest.raises(C.ChainError, match="0x address"):
        C.contracts_for(137, {"pusd": "0x12"})
    # each exchange: pUSD allowance (BUY) and setApprovalForAll on its token contract (SELL)
    by = {(a.kind, a.token, a.spender) for a in C.APPROVALS}
    for ex, tok in (("exchange_v2", "ctf"), ("neg_risk_exchange_v2", "ctf"), ("exchange_v3", "position_manager")):
        assert ("erc20", "pusd", ex) in by and ("erc1155", tok, ex) in by
    assert ("erc1155", "ctf", "neg_risk_adapter") in by
    assert len(C.approvals_for(amoy)) < len(C.approvals_for(K)) == len(C.APPROVALS)


def _info(cid: str, ids: tuple[int, int], **kw: Any) -> MarketInfo:
    return MarketInfo(ts=0, market=cid, asset_ids=(str(ids[0]), str(ids[1])), **kw)


def test_plan_routes_each_kind_of_market() -> None:
    std = _info(STD_CID, STD_IDS)
    p = C.plan_action(PositionAction(action="merge", market=STD_CID, amount=5), std, K)
    assert p.route == "ctf_collateral_adapter" and p.calls[0].to == K.ctf_collateral_adapter
    assert C.decode_args(p.calls[0].function, p.calls[0].data)[0] == K.pusd.lower()
    nr = _info(NR_CID0, NR_IDS0, neg_risk=True, neg_risk_market_id=NR_MARKET)
    p = C.plan_action(PositionAction(action="redeem", market=NR_CID0), nr, K)
    assert p.calls[0].to == K.neg_risk_collateral_adapter and p.calls[0].function.startswith("redeemPositions(address")
    v2 = _info(STD_CID[:64] + "00", C.v2_position_ids(STD_CID[:64]), version="v2")
    p = C.plan_action(PositionAction(action="redeem", market=v2.market), v2, K, balances=(3, 0))
    assert [c.function for c in p.calls] == ["redeem(bytes31,uint256,uint256)"] and p.calls[0].to == K.router
    with pytest.raises(C.ChainError, match="not supported"):
        C.plan_action(PositionAction(action="convert", market=v2.market, amount=1, asset_ids=("1",)), v2, K)
    # convert: the index set from each NO token's question index
    m7 = _info(NR_CID7, C.binary_position_ids(K.wrapped_collateral, NR_CID7), neg_risk=True, neg_risk_market_id=NR_MARKET)
    a = PositionAction(action="convert", market=NR_CID0, amount=4, asset_ids=(nr.asset_ids[1], m7.asset_ids[1]))
    p = C.plan_action(a, nr, K, convert_markets={nr.asset_ids[1]: nr, m7.asset_ids[1]: m7})
    assert C.decode_args(p.calls[0].function, p.calls[0].data) == (bytes.fromhex(NR_MARKET[2:]), 1 | 1 << 7, 4)
    with pytest.raises(C.ChainError, match="NO token"):
        C.plan_action(PositionAction(action="convert", market=NR_CID0, amount=4, asset_ids=(nr.asset_ids[0],)), nr, K,
                      convert_markets={nr.asset_ids[0]: nr})  # fmt: skip


def test_collateral_delta_and_revert_decoding() -> None:
    me, other = ADDR.lower(), "0x" + "11" * 20
    t = lambda frm, to, v, token=K.pusd: {"address": token.lower(), "topics": [C.TRANSFER_TOPIC, "0x" + frm[2:].rjust(64, "0"),  # noqa: E731
                                                                               "0x" + to[2:].rjust(64, "0")], "data": hex(v)}  # fmt: skip
    logs = [t(other, me, 10), t(me, other, 3), t(other, me, 5, K.usdce), t(other, me, 99, K.ctf), {"bad": 1}]
    assert C.collateral_delta(logs, (K.pusd,), ADDR) == 7
    assert C.collateral_delta(logs, (K.pusd, K.usdce), ADDR) == 12
    assert decode_revert("0x08c379a0" + "00" * 31 + "20" + "00" * 31 + "03" + b"abc".hex().ljust(64, "0")) == "abc"
    assert decode_revert("0x") == "" and decode_revert("0xdeadbeef").startswith("custom error")


def test_wallet_derivations_are_stable() -> None:
    safe, proxy, dw = derive_safe(ADDR, K), derive_proxy(ADDR, K), derive_deposit_wallet(ADDR, K)
    assert len({safe, proxy, dw, ADDR}) == 4 and all(x.startswith("0x") and len(x) == 42 for x in (safe, proxy, dw))
    assert derive_safe(ADDR.lower(), K) == safe


# ---------------------------------------------------------------------------------- the fake chain


@asynccontextmanager
async def chain_rpc(**kw: Any) -> AsyncIterator[tuple[SimChain, str, aiohttp.ClientSession]]:
    ch = SimChain(**{"block_time_s": 0.02, **kw})
    async with ch.serve() as url, aiohttp.ClientSession() as s:
        yield ch, url, s


def settings(url: str, **kw: Any) -> WalletSettings:
    return WalletSettings(**{"rpc_url": url, "confirmations": 2, "poll_s": 0.02, "resend_after_s": 0.2,
                             "receipt_timeout_s": 3.0, "contracts": K, **kw})  # fmt: skip


def _signed(pk: str, **kw: Any) -> tuple[str, str]:
    tx = {"type": 2, "chainId": 137, "nonce": 0, "to": K.pusd, "value": 0, "gas": 80_000, "maxFeePerGas": 100 * 10**9,
          "maxPriorityFeePerGas": 30 * 10**9, "data": C.erc20_approve(K.pusd, K.exchange_v2).data_hex, **kw}  # fmt: skip
    s = Account.sign_transaction(tx, pk)
    return "0x" + bytes(s.raw_transaction).hex(), "0x" + bytes(s.hash).hex()


async def _rpc(s: aiohttp.ClientSession, url: str, method: str, *params: Any) -> dict[str, Any]:
    async with s.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}) as r:
        return msgspec.json.decode(await r.read())  # type: ignore[no-any-return]


async def test_signed_transactions_are_verified() -> None:
    async with chain_rpc() as (ch, url, s):
        ch.fund(ADDR, "pol", POL)
        raw, h = _signed(PK2)  # the wrong key: its sender is another account, with no POL
        r = await _rpc(s, url, "eth_sendRawTransaction", raw)
        assert "insufficient funds" in r["error"]["message"] and Account.from_key(PK2).address in r["error"]["message"]
        raw, h = _signed(PK, chainId=1)  # the wrong chain
        assert "invalid chain id 1" in (await _rpc(s, url, "eth_sendRawTransaction", raw))["error"]["message"]
        raw, h = _signed(PK, nonce=3)
        assert "nonce too high" in (await _rpc(s, url, "eth_sendRawTransaction", raw))["error"]["message"]
        raw, h = _signed(PK)
        bad = raw[:-70] + ("1" if raw[-70] != "1" else "2") + raw[-69:]  # a different s: another (or no) signer
        r = await _rpc(s, url, "eth_sendRawTransaction", bad)
        assert "error" in r and ch.nonces.get(ADDR.lower(), 0) == 0
        legacy = Account.sign_transaction({"chainId": 137, "nonce": 0, "to": K.pusd, "value": 0, "gas": 50_000,
                                           "gasPrice": 100 * 10**9, "data": "0x"}, PK)  # fmt: skip
        r = await _rpc(s, url, "eth_sendRawTransaction", "0x" + bytes(legacy.raw_transaction).hex())
        assert "type 2" in r["error"]["message"]
        r = await _rpc(s, url, "eth_sendRawTransaction", raw)
        assert r["result"] == h
        rc = (await _rpc(s, url, "eth_getTransactionReceipt", h))["result"]
        assert rc["status"] == "0x1" and rc["from"] == ADDR.lower() and ch.nonces[ADDR.lower()] == 1
        assert ch.allowance(K.pusd, ADDR, K.exchange_v2) == C.MAX_UINT256
        assert "already known" in (await _rpc(s, url, "eth_sendRawTransaction", raw))["error"]["message"]
        assert "nonce too low" in (await _rpc(s, url, "eth_sendRawTransaction", _signed(PK, gas=90_000)[0]))["error"]["message"]
        # an unknown selector reverts (mined, status 0); estimateGas says why with error 3
        raw, h = _signed(PK, nonce=1, data="0xdeadbeef")
        await _rpc(s, url, "eth_sendRawTransaction", raw)
        rc = (await _rpc(s, url, "eth_getTransactionReceipt", h))["result"]
        assert rc["status"] == "0x0" and "unknown selector" in rc["revertReason"]
        est = await _rpc(s, url, "eth_estimateGas", {"from": ADDR, "to": K.ctf_collateral_adapter,
                                                     "data": C.ctf_merge(K.ctf_collateral_adapter, K.pusd, STD_CID, 1).data_hex})  # fmt: skip
        assert est["error"]["code"] == 3 and "not prepared" in decode_revert(est["error"]["data"])


async def test_reads_batches_and_transport_retries() -> None:
    async with chain_rpc() as (ch, url, s):
        ch.fund(ADDR, "usdce", 7 * ONE)
        rpc = JsonRpc(s, url + "/", backoff_s=0.01)
        assert rpc.host.startswith("127.0.0.1") and "/" not in rpc.host
        ch.error_next(2, 503)
        assert await rpc.chain_id() == 137 and rpc.retried == 2
        bal, allow, bad = await rpc.batch([("eth_call", [{"to": K.usdce, "data": C.erc20_balance_of(K.usdce, ADDR).data_hex}, "latest"]),
                                           ("eth_call", [{"to": K.usdce, "data": C.erc20_allowance(K.usdce, ADDR, K.collateral_onramp).data_hex}, "latest"]),
                                           ("eth_nope", [])])  # fmt: skip
        assert C.decode_uint(bal) == 7 * ONE and C.decode_uint(allow) == 0
        assert isinstance(bad, RpcError) and bad.code == -32601
        ch.error_next(10, 500)
        with pytest.raises(RpcError) as ei:
            await JsonRpc(s, url, retries=1, backoff_s=0.01).block_number()
        assert ei.value.transport and url not in str(ei.value)


async def test_sender_fees_reverts_resends_and_timeouts() -> None:
    async with chain_rpc() as (ch, url, s):
        ch.fund(ADDR, "pol", POL)
        signer = KeySigner(PK)
        assert PK[2:] not in repr(signer) and "0xf39F" in repr(signer)
        tx = TxSender(JsonRpc(s, url), signer, settings(url))
        max_fee, tip = await tx.fees()
        assert max_fee == 2 * ch.base_fee + ch.priority_fee and tip == ch.priority_fee
        capped = TxSender(JsonRpc(s, url), signer, settings(url, max_fee_wei=40 * 10**9))
        assert (await capped.fees())[0] == 40 * 10**9
        with pytest.raises(TxFailed, match="max_fee_gwei"):
            await TxSender(JsonRpc(s, url), signer, settings(url, max_fee_wei=20 * 10**9)).fees()
        # a revert: mined, status 0, gas paid
        (st,) = await tx.build([C.erc20_approve(K.pusd, K.exchange_v2)])
        ch.revert_next("boom")
        await tx.send(st)
        r = await tx.wait(st)
        assert r.status == 0 and r.gas_cost > 0 and ch.allowance(K.pusd, ADDR, K.exchange_v2) == 0
        # the receipt does not come: the same bytes are sent again, then it is mined
        (st,) = await tx.build([C.erc20_approve(K.pusd, K.exchange_v2)])
        ch.drop_next(2)
        await tx.send(st)
        r = await tx.wait(st)
        assert r.status == 1 and tx.resends >= 2 and ch.allowance(K.pusd, ADDR, K.exchange_v2) == C.MAX_UINT256
        # never mined: failed after the timeout
        short = TxSender(JsonRpc(s, url), signer, settings(url, receipt_timeout_s=0.5))
        (st,) = await short.build([C.erc20_approve(K.pusd, K.exchange_v3)])
        ch.drop_next(1000)
        await short.send(st)
        with pytest.raises(TxFailed, match="not mined within 0.5 s"):
            await short.wait(st)
        ch.drop_next(0)
        # estimation refuses what would revert, naming why
        with pytest.raises(TxFailed, match="not approved for all"):
            await tx.estimate(C.ctf_merge(K.ctf_collateral_adapter, K.pusd, _std(ch).cid, 1))


def _std(ch: SimChain, funder: str = ADDR, shares: int = 0) -> Any:
    cond = ch.prepare_condition(STD_CID)
    for tid in cond.ids:
        if shares:
            ch._mint1155(K.ctf, funder, tid, shares)
    return cond


async def _approve_all(w: ChainWallet) -> None:
    from adapters.polymarket.chain import approvals_for

    p = await w.prepare([a.call(w.c) for a in approvals_for(w.c)])
    o = await w.confirm(p, await w.send(p))
    assert o.status == 1


async def _act(w: ChainWallet, a: PositionAction, info: MarketInfo, **kw: Any) -> Any:
    plan = C.plan_action(a, info, w.c, **kw)
    p = await w.prepare(plan.calls)
    o = await w.confirm(p, await w.send(p))
    return o, C.collateral_delta(o.logs, plan.collateral_tokens, w.funder)


async def test_position_actions_on_the_ledger() -> None:
    async with chain_rpc() as (ch, url, s):
        ch.fund(ADDR, "pol", POL)
        ch.fund(ADDR, "pusd", 100 * ONE)
        w = ChainWallet(s, settings(url), KeySigner(PK))
        std = _std(ch)
        info = _info(STD_CID, STD_IDS)
        # without the approvals the adapter cannot take pUSD: refused before sending
        with pytest.raises(TxFailed, match="insufficient allowance"):
            await w.prepare(C.plan_action(PositionAction(action="split", market=STD_CID, amount=ONE), info, K).calls)
        await _approve_all(w)
        o, coll = await _act(w, PositionAction(action="split", market=STD_CID, amount=10 * ONE), info)
        assert o.status == 1 and coll == -10 * ONE and o.gas_cost > 0
        assert ch.balance20(K.pusd, ADDR) == 90 * ONE and [ch.balance1155(K.ctf, ADDR, t) for t in std.ids] == [10 * ONE] * 2
        o, coll = await _act(w, PositionAction(action="merge", market=STD_CID, amount=4 * ONE), info)
        assert coll == 4 * ONE and [ch.balance1155(K.ctf, ADDR, t) for t in std.ids] == [6 * ONE] * 2
        # a merge needs both outcomes
        ch._burn1155(K.ctf, ADDR, std.no, 6 * ONE)
        ch._undo = None
        with pytest.raises(TxFailed, match="burn amount exceeds balance"):
            await w.prepare(C.plan_action(PositionAction(action="merge", market=STD_CID, amount=ONE), info, K).calls)
        # a redeem needs a resolved condition, and pays the winner's shares
        redeem = C.plan_action(PositionAction(action="redeem", market=STD_CID), info, K)
        with pytest.raises(TxFailed, match="not resolved"):
            await w.prepare(redeem.calls)
        ch.report_payouts(STD_CID, [1, 0])
        o, coll = await _act(w, PositionAction(action="redeem", market=STD_CID), info)
        assert coll == 6 * ONE and ch.balance1155(K.ctf, ADDR, std.yes) == 0 and ch.balance20(K.pusd, ADDR) == 100 * ONE


async def test_convert_and_protocol_v2_on_the_ledger() -> None:
    async with chain_rpc() as (ch, url, s):
        ch.fund(ADDR, "pol", POL)
        ch.fund(ADDR, "pusd", 50 * ONE)
        w = ChainWallet(s, settings(url), KeySigner(PK))
        await _approve_all(w)
        conds = ch.prepare_neg_risk_market(NR_MARKET, 3, fee_bips=0)
        assert conds[0].cid == NR_CID0 and conds[0].ids == NR_IDS0
        infos = [_info(c.cid, c.ids, neg_risk=True, neg_risk_market_id=NR_MARKET) for c in conds]
        for c, i in zip(conds, infos, strict=True):  # NO shares of questions 0 and 2
            await _act(w, PositionAction(action="split", market=c.cid, amount=5 * ONE), i)
        assert ch.balance20(K.pusd, ADDR) == 35 * ONE
        nos = (infos[0].asset_ids[1], infos[2].asset_ids[1])
        a = PositionAction(action="convert", market=conds[0].cid, amount=2 * ONE, asset_ids=nos)
        o, coll = await _act(w, a, infos[0], convert_markets={nos[0]: infos[0], nos[1]: infos[2]})
        assert o.status == 1 and coll == 2 * ONE  # (2 NOs - 1) x 2, paid in USDC.e
        assert ch.balance20(K.usdce, ADDR) == 2 * ONE
        assert ch.balance1155(K.ctf, ADDR, conds[0].no) == 3 * ONE == ch.balance1155(K.ctf, ADDR, conds[2].no)
        assert ch.balance1155(K.ctf, ADDR, conds[1].yes) == 7 * ONE  # the complementary YES
        # Protocol-V2: Router split, then a resolved redeem of what is held
        v2c = ch.prepare_condition(STD_CID[:64] + "00", kind="v2")
        v2 = _info(v2c.cid, v2c.ids, version="v2")
        await _act(w, PositionAction(action="split", market=v2.market, amount=3 * ONE), v2)
        assert ch.balance1155(K.position_manager, ADDR, v2c.yes) == 3 * ONE
        ch.report_payouts(v2c.cid, [0, 1])
        o, coll = await _act(w, PositionAction(action="redeem", market=v2.market), v2, balances=(3 * ONE, 3 * ONE))
        assert coll == 3 * ONE and ch.balance1155(K.position_manager, ADDR, v2c.no) == 0


# ---------------------------------------------------------------------------------- the relayer


@pytest.mark.parametrize("kind", ["safe", "proxy", "poly_1271"])
async def test_relayer_wallets_are_verified_and_executed(kind: str) -> None:
    async with chain_rpc() as (ch, url, s):
        signer = KeySigner(PK)
        funder = {"safe": derive_safe, "proxy": derive_proxy, "poly_1271": derive_deposit_wallet}[kind](ADDR, K)
        ch.fund(funder, "pusd", 20 * ONE)
        st = settings(url, signature_type=kind, funder=funder, relayer_url=url + "/relayer", relayer_api_key="k")
        w = ChainWallet(s, st, signer)
        await _approve_all(w)  # one relayer transaction: a MultiSend / a proxy batch / a wallet batch
        assert ch.allowance(K.pusd, funder, K.ctf_collateral_adapter) == C.MAX_UINT256
        assert ch.is_approved(K.ctf, funder, K.ctf_collateral_adapter) and ch.pol_balance(ADDR) == 0  # gasless
        _std(ch)
        info = _info(STD_CID, STD_IDS)
        o, coll = await _act(w, PositionAction(action="split", market=STD_CID, amount=5 * ONE), info)
        assert o.status == 1 and o.relayer_id.startswith("sim-relay-") and coll == -5 * ONE
        assert ch.balance1155(K.ctf, funder, STD_IDS[0]) == 5 * ONE and ch.balance20(K.pusd, funder) == 15 * ONE
        # the relayer checks who signed: another key for this wallet is refused
        other = ChainWallet(s, settings(url, signature_type=kind, funder=funder, relayer_url=url + "/relayer",
                                        relayer_api_key="k"), KeySigner(PK2))  # fmt: skip
        p = await other.prepare([C.erc20_approve(K.pusd, K.exchange_v2, 1)])
        with pytest.raises(RelayerError, match="400"):
            await other.send(p)
        # ... and a signature by another key for the right owner
        from adapters.polymarket.relayer import Prepared

        pend = await w.prepare([C.erc20_approve(K.pusd, K.exchange_v2, 1)])
        rel = pend.relayed
        assert rel is not None
        forged = bytearray(bytes.fromhex(rel.body["signature"][2:]))
        forged[:64] = bytes(KeySigner(PK2).sign_digest(bytes(32)))[:64]
        pend.relayed = Prepared({**rel.body, "signature": "0x" + forged.hex()}, rel.signed_hash, rel.calls, rel.kind)
        with pytest.raises(RelayerError, match="invalid signature"):
            await w.send(pend)
        # a rejected submission, and no API key
        ch.reject_relayer_next("wallet busy")
        p = await w.prepare([C.erc20_approve(K.pusd, K.exchange_v2, 1)])
        with pytest.raises(RelayerError, match="wallet busy"):
            await w.send(p)
        nokey = ChainWallet(s, settings(url, signature_type=kind, funder=funder, relayer_url=url + "/relayer"), signer)
        with pytest.raises(RelayerError, match="401"):
            await nokey.send(await nokey.prepare([C.erc20_approve(K.pusd, K.exchange_v2, 1)]))
        # an inner call that reverts: the relayer transaction fails, nothing moves
        p = await w.prepare(C.plan_action(PositionAction(action="merge", market=STD_CID, amount=50 * ONE), info, K).calls)
        tid = await w.send(p)
        with pytest.raises(RelayerError, match="failed"):
            await w.confirm(p, tid)
        assert ch.balance1155(K.ctf, funder, STD_IDS[1]) == 5 * ONE
        assert ch.pol_balance(RELAY_EOA) < 10**9 * POL  # the relay paid the gas
