"""Regression tests from the review of the "going live and staying live" change: on-chain
position actions, rolling windows, journal rotation and the wallet's transaction sending."""

from __future__ import annotations

from typing import Any

from test_position_actions import M, N, SHARE, Y, fill, hold, kernel, resolve
from test_rolling import T0, W, Watcher, make, tick, window

from polybot.events import (
    ENCODER,
    MarketResolved,
    OrderAccepted,
    OrderFilled,
    PositionAction,
    PositionActionDone,
    PositionActionFailed,
)
from polybot.execution import RecordedExecutor

S = 1_000_000_000

# ---------------------------------------------------------------------------------------------
# kernel: on-chain actions


def test_an_account_merge_of_pairs_split_over_strategies_is_refused_not_lost():
    """The account holds 10 YES (strategy a) and 10 NO (strategy b): a merge of 10 for the
    account used to be accepted, sent and confirmed, yet booked nothing (the booking shares a
    merge over strategies that hold both sides): the chain paid 10 pUSD the portfolio never saw."""
    k = kernel()
    k.portfolio.apply_fill("a", fill(Y, 400_000, 10 * SHARE))
    k.portfolio.apply_fill("b", fill(N, 500_000, 10 * SHARE))
    refused: list[Any] = []
    k.bus.subscribe(PositionActionFailed, refused.append)
    cash0 = k.portfolio.cash
    assert k.act("", PositionAction(action="merge", market=M, amount=10 * SHARE)) == ""
    assert len(refused) == 1 and "merge" in refused[0].reason
    assert k.portfolio.cash == cash0 and not k.actions
    # what one strategy holds as pairs is merged (and booked) as before
    hold(k, "c", (450_000, 4 * SHARE), (500_000, 4 * SHARE))
    assert k.act("", PositionAction(action="merge", market=M, amount=4 * SHARE))
    assert k.portfolio.cash == cash0 - 3_800_000 + 4 * SHARE
    assert k.portfolio.size(Y, "c") == 0 and k.portfolio.size(Y) == 10 * SHARE


def test_a_merge_confirmed_after_the_resolution_paid_the_pairs_is_not_paid_twice():
    """settle = "resolution" (the default): the pairs are paid at the resolution; a merge of
    them that was on its way and is confirmed afterwards must not credit the collateral again."""
    k = kernel(executor=RecordedExecutor("clob"))
    hold(k, "s", (400_000, 10 * SHARE), (500_000, 10 * SHARE))
    aid = k.act("s", PositionAction(action="merge", market=M, amount=10 * SHARE))
    assert aid
    resolve(k)
    pf = k.portfolio
    after_resolution = (pf.cash, pf.realized_pnl("s"), pf.realized_pnl())
    assert pf.cash == -9 * SHARE + 10 * SHARE
    k.process(60, "exec.clob", ENCODER.encode([PositionActionDone(action_id=aid, action="merge", market=M,
                                                                  amount=10 * SHARE, collateral=10 * SHARE)]))  # fmt: skip
    assert not k.actions
    assert (pf.cash, pf.realized_pnl("s"), pf.realized_pnl()) == after_resolution


# ---------------------------------------------------------------------------------------------
# rolling windows: a window's shares are always redeemed once its market resolves


def _bought_up(k: Any, i: int = 0) -> str:
    (inst,) = k.strategies
    (o,) = k.orders.open_orders()
    k.process(T0 + S, "exec.clob", ENCODER.encode([
        OrderAccepted(client_id=o.client_id, strategy=inst, asset_id=f"up{i}", venue_order_id="v1"),
        OrderFilled(client_id=o.client_id, strategy=inst, asset_id=f"up{i}", venue_order_id="v1", trade_id="t1",
                    side="BUY", price=400_000, size=5_000_000, liquidity="maker", market=f"0xw{i}")]))  # fmt: skip
    return inst


def test_a_window_stopped_without_resolution_is_redeemed_when_the_resolution_comes():
    """The instance is stopped stop_after_s after its window (no resolution yet); when the
    resolution does arrive its shares must still be redeemed (auto_redeem is off: the rollover
    is the only one to ask), not left in the portfolio for ever."""
    k = make(settle="redeem", executor=RecordedExecutor("clob"))
    k.process(T0, "events", window(0))
    inst = _bought_up(k)
    tick(k, T0 + W + 600 * S)
    assert not k.strategies and Watcher.log[-1] == ("stop", inst)
    assert not k.pending_actions()
    k.process(T0 + W + 700 * S, "events",
              MarketResolved(market="0xw0", asset_ids=("up0", "down0"), winning_asset_id="up0"))  # fmt: skip
    (act,) = k.pending_actions()
    assert (act.action, act.market) == ("redeem", "0xw0")
    # a repeat of the resolution does not ask twice
    k.process(T0 + W + 701 * S, "events",
              MarketResolved(market="0xw0", asset_ids=("up0", "down0"), winning_asset_id="up0"))  # fmt: skip
    assert len(k.pending_actions()) == 1


def test_a_merge_on_its_way_at_the_resolution_does_not_cancel_the_redeem():
    """A merge still on its way when the market resolves used to make the rollover skip the
    redeem (any pending action counted), and nothing asked again: the unpaired shares stayed."""
    k = make(settle="redeem", executor=RecordedExecutor("clob"))
    k.process(T0, "events", window(0))
    inst = _bought_up(k)
    k.portfolio.apply_fill(inst, OrderFilled(client_id="x", trade_id="t2", asset_id="down0", market="0xw0", side="BUY",
                                             price=500_000, size=3_000_000, liquidity="maker"))  # fmt: skip
    merge = k.act(inst, PositionAction(action="merge", market="0xw0", amount=3_000_000))
    assert merge
    k.process(T0 + W + S, "events", MarketResolved(market="0xw0", asset_ids=("up0", "down0"), winning_asset_id="up0"))
    assert sorted(a.action for a in k.pending_actions()) == ["merge", "redeem"]
    redeem = next(a.action_id for a in k.pending_actions() if a.action == "redeem")
    k.process(T0 + W + 2 * S, "exec.clob", ENCODER.encode([
        PositionActionDone(action_id=merge, action="merge", market="0xw0", amount=3_000_000, collateral=3_000_000),
        PositionActionDone(action_id=redeem, action="redeem", market="0xw0", collateral=2_000_000)]))  # fmt: skip
    pf = k.portfolio
    assert pf.size("up0") == pf.size("down0") == 0 and not k.pending_actions()
    # 5 Up at 0.40 and 3 Down at 0.50 cost 3.5; 3 merged pairs and 2 winning Up paid 5
    assert pf.cash == -3_500_000 + 5 * SHARE


# ---------------------------------------------------------------------------------------------
# journal rotation: a rotation that fails part way keeps journaling into a file recovery reads


def _inputs(n: int) -> list[tuple[int, str, Any]]:
    from proc_helpers import RECORDING

    from polybot.journal import ENGINE_EVENT, JournalReader

    out = []
    for kind, ts, source, payload in JournalReader(RECORDING):
        if kind != ENGINE_EVENT:
            out.append((ts, source, payload))
            if len(out) >= n:
                break
    return out


def test_a_rotation_that_fails_part_way_loses_no_line_and_recovers(tmp_path, monkeypatch):
    import shutil

    from test_journal_rotation import config

    from polybot.daemon import Daemon
    from polybot.recovery import recover

    cfg = config(tmp_path, rotate_mb=0.000001)
    d = Daemon(cfg)
    d.prepare()
    k = d.kernel
    feed = _inputs(400)
    for ts, source, payload in feed[:200]:
        k.process(ts, source, payload)

    def full(*_a: Any, **_kw: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full)
    d.snapshot()  # the rotation fails (logged); journaling goes on
    monkeypatch.undo()
    for ts, source, payload in feed[200:]:
        k.process(ts, source, payload)
    k.journal.close()
    final = k.summary_state()
    d2 = Daemon(cfg)
    d2.kernel.start()
    recover(d2.kernel, d2.journal_path, d2.snapshot_path)
    assert d2.kernel.summary_state() == final


def test_a_crash_between_the_new_journal_and_its_snapshot_keeps_the_state(tmp_path, monkeypatch):
    """The rotation's last step writes the new part's snapshot; a crash (here: a failure) just
    before it must not leave an empty new journal next to a snapshot that points past its end
    (recovery would ignore the snapshot and start from nothing)."""
    import polybot.daemon as daemon_mod
    from test_journal_rotation import config

    from polybot.daemon import Daemon
    from polybot.recovery import recover

    cfg = config(tmp_path, rotate_mb=0.000001)
    d = Daemon(cfg)
    d.prepare()
    k = d.kernel
    for ts, source, payload in _inputs(300):
        k.process(ts, source, payload)
    final = k.summary_state()
    real = daemon_mod.write_snapshot
    calls = {"n": 0}

    def crash_on_second(*a: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the first is the regular snapshot, the second the new part's
            raise KeyboardInterrupt("power loss")
        real(*a, **kw)

    monkeypatch.setattr(daemon_mod, "write_snapshot", crash_on_second)
    try:
        d.snapshot()
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert calls["n"] == 2
    d2 = Daemon(cfg)
    d2.kernel.start()
    recover(d2.kernel, d2.journal_path, d2.snapshot_path)
    assert d2.kernel.summary_state() == final


# ---------------------------------------------------------------------------------------------
# wallet: a transaction whose broadcast got no answer may well be on its way


class _LostAnswerRpc:
    """A node that takes the transaction but whose answer never arrives (a timeout)."""

    def __init__(self) -> None:
        self.mempool: dict[str, str] = {}
        self.nonce_seen = 0

    async def send_raw(self, raw_hex: str) -> str:
        from adapters.polymarket.rpc import RpcError

        self.mempool[raw_hex] = "taken"
        raise RpcError(None, "no answer from node.example: TimeoutError", method="eth_sendRawTransaction")

    async def nonce(self, address: str, block: str = "pending") -> int:
        return self.nonce_seen  # a load-balanced node that has not seen the pending one yet


def test_a_broadcast_without_an_answer_is_waited_for_not_reported_failed():
    """eth_sendRawTransaction timed out (after its retries): the node may have taken it. It used
    to be reported "refused" (the action failed, nothing booked) while the transaction could
    still be mined, and the next action was signed with the same nonce."""
    import anyio
    import pytest

    pytest.importorskip("eth_account")
    from adapters.polymarket.chain import Call
    from adapters.polymarket.keys import KeySigner
    from adapters.polymarket.wallet import SignedTx, TxSender, WalletSettings

    signer = KeySigner("0x" + "11" * 32)
    rpc = _LostAnswerRpc()
    tx = TxSender(rpc, signer, WalletSettings())  # type: ignore[arg-type]
    raw, h = signer.sign_transaction({"type": 2, "chainId": 137, "nonce": 7, "to": "0x" + "22" * 20, "value": 0,
                                      "data": "0x", "gas": 21000, "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 10**9})
    st = SignedTx(Call("0x" + "22" * 20, b""), {"nonce": 7}, raw, h)

    async def main() -> None:
        assert await tx.send(st) == h  # on its way as far as we know: the receipt will tell
        rpc.nonce_seen = 7
        assert await tx.nonce() == 8  # the next transaction does not take its nonce

    anyio.run(main)
    assert rpc.mempool


def test_a_convert_naming_one_no_token_twice_is_refused():
    """The contracts refuse the same question twice; the paper executor used to confirm it, and
    the portfolio burnt the NO twice for the collateral of one."""
    from polybot.events import MarketInfo
    from polybot.kernel import Kernel

    k = Kernel()
    for i in range(3):
        k.process(1, "events", MarketInfo(market=f"0xq{i}", asset_ids=(f"y{i}", f"n{i}"), neg_risk=True, event_id="e1"))
    k.portfolio.apply_fill("s", OrderFilled(client_id="c", trade_id="t0", asset_id="n0", side="BUY", price=700_000,
                                            size=10 * SHARE, liquidity="maker"))  # fmt: skip
    before = k.portfolio.to_state()
    assert k.act("s", PositionAction(action="convert", market="0xq0", amount=5 * SHARE, asset_ids=("n0", "n0"))) == ""
    assert k.portfolio.to_state() == before


def test_alert_scrubbing_of_a_huge_reason_is_quick_and_capped():
    """An alert's text is scrubbed inside a bus handler: a 100k-character reason (a halt from the
    control file, a handler's error text) must neither stall the kernel nor reach the sink whole."""
    import time

    from polybot.alerts import scrub

    for text in ("a" * 100_000, "x://" * 25_000, "key " * 25_000):
        t0 = time.perf_counter()
        out = scrub(text)
        assert time.perf_counter() - t0 < 0.5 and len(out) <= 500
    assert scrub("see https://h.io/p?key=SECRET now") == "see https://h.io/p?… now"


def test_a_removed_instance_sends_no_cross_from_its_post_then_cross():
    """A rolling window's instance stopped while its post_then_cross was cancelling the maker
    order (the timeout fired) must not send the cross afterwards."""
    from polybot.events import BookSnapshot, ENCODER, OrderAccepted, OrderCancelled
    from polybot.execution import RecordedExecutor
    from polybot.kernel import Kernel
    from polybot.strategy import Strategy

    k = Kernel(executor=RecordedExecutor("clob"))
    k.process(1, "events", BookSnapshot(asset_id="y", market="0xm", bids=((400_000, 100_000_000),),
                                        asks=((420_000, 100_000_000),)))  # fmt: skip

    class S(Strategy):
        name = "s"

    k.add_strategy(S, "w/1", {})
    k.executions.execute("w/1", "y", "BUY", 10_000_000, "post_then_cross", timeout_s=1.0, max_price=450_000)
    (o,) = k.orders.open_orders()
    k.process(2, "exec.clob", ENCODER.encode([OrderAccepted(client_id=o.client_id, strategy="w/1", asset_id="y")]))
    k.process(2 + 2_000_000_000, "clock", b"{}")  # the timeout: the maker order is being cancelled
    assert k.orders.get(o.client_id).state == "cancel_pending"
    k.remove_strategy("w/1", "window over")
    k.process(3 + 2_000_000_000, "exec.clob", ENCODER.encode([OrderCancelled(client_id=o.client_id, strategy="w/1",
                                                                               asset_id="y")]))  # fmt: skip
    assert k.stats.orders == 1 and not k.orders.open_orders()  # no cross went out
