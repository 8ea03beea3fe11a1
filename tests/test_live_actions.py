"""The CLOB executor's on-chain position actions and its second-daemon check, end to end on
loopback: the daemon against the simulator, whose fake chain (adapters/polymarket/simchain.py)
shares the exchange's ledger (a merge on chain shows in the venue's positions and cash).

An action is journaled by the kernel, queued by ``ClobExecutor.act``, built and signed in the
executor's actions task, and its reports arrive through the kernel's door as ``exec.clob``
records: ``PositionActionSent`` then ``PositionActionDone`` (or ``PositionActionFailed``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest

pytest.importorskip("py_clob_client_v2")
pytest.importorskip("eth_account")

from live_rig import ADDRESS, PK, Rig, live_config, live_rig  # noqa: E402
from test_live_executor import _post_stray  # noqa: E402

from adapters.polymarket.keys import KeySigner  # noqa: E402
from adapters.polymarket.live import UnknownOrdersError  # noqa: E402
from adapters.polymarket.sim import SimConfig, SimServer  # noqa: E402
from adapters.polymarket.wallet import ChainWallet, cmd_approve  # noqa: E402
from polybot.config import parse_config  # noqa: E402
from polybot.daemon import Daemon  # noqa: E402
from polybot.events import PositionAction, PositionActionDone, PositionActionFailed, PositionActionSent  # noqa: E402
from polybot.journal import JournalReader  # noqa: E402

pytestmark = pytest.mark.anyio
TEN = 10_000_000
SIM = {"chain_block_s": 0.05}
WALLET = {"confirmations": 2}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def watch(rig: Rig) -> list[Any]:
    """The action reports in the order the kernel sees them."""
    seen: list[Any] = []
    for t in (PositionActionSent, PositionActionDone, PositionActionFailed):
        rig.kernel.bus.subscribe(t, seen.append)
    return seen


async def approve(rig: Rig) -> None:
    async with aiohttp.ClientSession() as s:
        w = ChainWallet(s, rig.executor._wallet_settings, KeySigner(PK))
        out = io.StringIO()
        assert await cmd_approve(w, out, yes=True, dry_run=False, ask=lambda _: "y") == 0, out.getvalue()


async def buy_pairs(rig: Rig) -> tuple[str, str]:
    m = rig.market
    ids = []
    for asset in (m["yes"], m["no"]):
        _, ask = rig.top(asset)
        ids.append(rig.submit(asset, "BUY", ask, TEN, tif="FAK"))
    await rig.until(lambda: all(rig.order(c).filled == TEN for c in ids), what="both sides filled")
    await rig.until(lambda: all(r.status == "CONFIRMED" for r in rig.kernel.fills.values()), what="fills confirmed")
    return m["yes"], m["no"]


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(v)


def _toml(cfg: dict[str, Any]) -> str:
    """The few shapes a live_config has, as TOML (tables, arrays of tables, inline values)."""
    out = []
    for key, v in cfg.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                out += [f"[[{key}]]"] + [f"{k} = {_toml_value(y)}" for k, y in x.items()]
        elif isinstance(v, dict) and v:
            out += [f"[{key}]"] + [f"{k} = {_toml_value(y)}" for k, y in v.items()]
    return "\n".join(out) + "\n"


def exec_records(rig: Rig) -> list[str]:
    out = []
    for kind, _ts, source, payload in JournalReader(rig.daemon.journal_path):
        if source == "exec.clob" and kind != "engine":
            for ev in msgspec.json.decode(payload if isinstance(payload, bytes) else msgspec.json.encode(payload)):
                if isinstance(ev, dict) and str(ev.get("type", "")).startswith("position_action"):
                    out.append(ev["type"])
    return out


async def test_merge_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch, sim_cfg=SIM, wallet=WALLET) as rig:
        seen = watch(rig)
        await approve(rig)
        yes, no = await buy_pairs(rig)
        cash0 = rig.sim.chain.balance20(rig.sim.chain.c.pusd, ADDRESS)
        aid = rig.kernel.act("t", PositionAction(action="merge", market=rig.market["condition_id"], amount=6_000_000))
        assert aid
        await rig.until(lambda: any(isinstance(e, (PositionActionDone, PositionActionFailed)) for e in seen), what="done")
        assert [type(e) for e in seen] == [PositionActionSent, PositionActionDone], seen
        sent, done = seen
        assert sent.action_id == done.action_id == aid and sent.via == "rpc" and sent.tx_hash == done.tx_hash
        assert done.collateral == 6_000_000 and done.gas_used > 0 and done.gas_cost > 0 and done.block > 0
        # the chain and the venue agree, and so does the kernel
        assert rig.venue_position(yes) == rig.venue_position(no) == 4_000_000
        assert rig.sim.chain.balance20(rig.sim.chain.c.pusd, ADDRESS) == cash0 + 6_000_000
        assert rig.sim.chain.receipts[done.tx_hash]["status"] == "0x1"
        await rig.until(lambda: rig.kernel.portfolio.size(yes) == 4_000_000, what="portfolio moved")
        assert rig.kernel.portfolio.size(no) == 4_000_000 and not rig.kernel.pending_actions()
        assert rig.executor.actions_done == 1 and rig.executor.idle()
    assert exec_records(rig)[-2:] == ["position_action_sent", "position_action_done"]


async def test_revert_dropped_receipt_and_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch, sim_cfg=SIM, wallet={**WALLET, "resend_after_s": 0.2}) as rig:
        seen = watch(rig)
        await approve(rig)
        yes, no = await buy_pairs(rig)
        cid = rig.market["condition_id"]
        ch = rig.sim.chain
        # reverted on chain: Failed, with the transaction; nothing moves
        ch.revert_next("sim: reverted")
        rig.kernel.act("t", PositionAction(action="merge", market=cid, amount=TEN))
        await rig.until(lambda: len(seen) >= 2, what="revert reported")
        assert [type(e) for e in seen] == [PositionActionSent, PositionActionFailed]
        assert "reverted on chain" in seen[1].reason and seen[1].tx_hash == seen[0].tx_hash
        assert rig.venue_position(yes) == TEN == rig.kernel.portfolio.size(yes)
        # the receipt never comes for the first broadcasts: sent again, then confirmed
        seen.clear()
        ch.drop_next(2)
        rig.kernel.act("t", PositionAction(action="merge", market=cid, amount=TEN))
        await rig.until(lambda: len(seen) >= 2, what="merge after resends")
        assert [type(e) for e in seen] == [PositionActionSent, PositionActionDone] and ch.sends >= 3
        assert rig.venue_position(no) == 0
        # refused before anything is sent: no pairs left at the venue (the estimate reverts)
        seen.clear()
        rig.executor.act(PositionAction(action_id="manual-1", action="merge", market=cid, strategy="t", amount=TEN))
        await rig.until(lambda: len(seen) >= 1, what="refusal")
        assert isinstance(seen[0], PositionActionFailed) and "burn amount exceeds balance" in seen[0].reason
        # an unknown market, and a Protocol-V2 convert, are failed with a reason
        seen.clear()
        rig.executor.act(PositionAction(action_id="manual-2", action="split", market="0x" + "ab" * 32, amount=TEN))
        await rig.until(lambda: len(seen) >= 1, what="unknown market")
        assert seen[0].reason == "market not in the catalog" and rig.executor.actions_failed == 3


async def test_dry_run_signs_and_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch, sim_cfg=SIM, wallet=WALLET, executor={"dry_run": True}) as rig:
        seen = watch(rig)
        await approve(rig)  # (the wallet command itself is not a dry run)
        ch = rig.sim.chain
        sends = ch.sends
        rig.executor.act(PositionAction(action_id="dry-1", action="split", market=rig.market["condition_id"],
                                        strategy="t", amount=TEN))  # fmt: skip
        await rig.until(lambda: len(seen) >= 1, what="dry-run report")
        (ev,) = seen
        assert isinstance(ev, PositionActionFailed) and ev.reason == "dry run: not sent"
        assert ev.tx_hash.startswith("0x") and len(ev.tx_hash) == 66 and ch.sends == sends
        assert ev.tx_hash not in ch.receipts


async def test_chain_actions_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch, sim_cfg=SIM, wallet=WALLET, executor={"chain_actions": False}) as rig:
        seen = watch(rig)
        rig.executor.act(PositionAction(action_id="off-1", action="split", market=rig.market["condition_id"], amount=TEN))
        await rig.until(lambda: len(seen) >= 1, what="refusal")
        assert "chain_actions = false" in seen[0].reason and rig.sim.chain.sends == 0
        assert rig.executor.account_id == f"{ADDRESS}:{ADDRESS}"


async def test_a_restart_resumes_an_action_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon stops while a merge's transaction is not mined (the chain drops it): the next
    start finds the action pending in the kernel and its signed bytes in the write-ahead record,
    sends the same bytes again and confirms it; nothing is signed twice."""
    monkeypatch.setenv("POLYBOT_PRIVATE_KEY", PK)
    async with SimServer(SimConfig(autostart=False, n_markets=2, chain_block_s=0.05)) as sim:
        raw = live_config(sim, tmp_path / "data", wallet={**WALLET, "resend_after_s": 0.2, "receipt_timeout_s": 60.0},
                          engine={"on_shutdown": "leave"})  # fmt: skip
        cfg = parse_config(raw, "live-test.toml")
        d = Daemon(cfg)
        rig = Rig(sim, d)
        seen = watch(rig)
        async with anyio.create_task_group() as tg:
            tg.start_soon(d.run)
            assets = [a for m in sim.markets for a in (m["yes"], m["no"])]
            await rig.until(lambda: all(a in d.kernel.books and d.kernel.books[a].healthy for a in assets), what="books")
            await rig.until(lambda: rig.executor.reconciles >= 1, what="reconciled")
            await approve(rig)
            await buy_pairs(rig)
            sim.chain.drop_next(10_000)
            aid = d.kernel.act("t", PositionAction(action="merge", market=rig.market["condition_id"], amount=TEN))
            await rig.until(lambda: any(isinstance(e, PositionActionSent) for e in seen), what="sent")
            sent = seen[0]
            d.request_stop()
        assert sim.chain.receipts.get(sent.tx_hash) is None
        sim.chain.drop_next(0)
        d2 = Daemon(parse_config(raw, "live-test.toml"))
        rig2 = Rig(sim, d2)
        seen2 = watch(rig2)
        async with anyio.create_task_group() as tg:
            tg.start_soon(d2.run)  # recovers the kernel (the action is pending), then resumes it
            await rig2.until(lambda: any(isinstance(e, PositionActionDone) for e in seen2), timeout=20, what="resumed")
            done = next(e for e in seen2 if isinstance(e, PositionActionDone))
            assert done.action_id == aid and done.tx_hash == sent.tx_hash and done.collateral == TEN
            assert rig2.venue_position(rig.market["yes"]) == 0 and not d2.kernel.pending_actions()
            d2.request_stop()


async def test_a_second_daemon_on_the_same_key_refuses_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with live_rig(tmp_path, monkeypatch) as rig:
        bid, _ = rig.top(rig.market["yes"])
        await _post_stray(rig, rig.market["yes"], bid - 30_000)  # an order this journal does not know
        # a second daemon on another machine (the instance lock of this one does not see it: its
        # own lock dir), its own data dir, the same key: it sees orders it does not know, and stops
        monkeypatch.setenv("POLYBOT_LOCK_DIR", str(tmp_path / "other-machine-locks"))
        raw = live_config(rig.sim, tmp_path / "second")
        d2 = Daemon(parse_config(raw, "second.toml"))
        with pytest.raises(BaseExceptionGroup) as ei:
            with anyio.fail_after(20):
                await d2.run()
        (err,) = ei.value.subgroup(lambda e: isinstance(e, UnknownOrdersError)).exceptions  # type: ignore[union-attr]
        assert "1 open order(s)" in str(err) and "unknown_orders" in str(err) and '"adopt"' in str(err)
        # the same from the command line: a clear message, exit code 2, no traceback
        toml = tmp_path / "third.toml"
        toml.write_text(_toml(live_config(rig.sim, tmp_path / "third")))
        import os

        from proc_helpers import CLI

        r = await anyio.run_process([str(CLI), "--log-level", "ERROR", "run", "--config", str(toml)], check=False,
                                    env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})  # fmt: skip
        err_text = r.stderr.decode()
        assert r.returncode == 2 and "polybot: executor.params.unknown_orders: refusing to run: 1 open order(s)" in err_text
        assert "Traceback" not in err_text and PK[2:] not in err_text
        # told to adopt them, it runs
        raw = live_config(rig.sim, tmp_path / "fourth", executor={"unknown_orders": "adopt"})
        d4 = Daemon(parse_config(raw, "fourth.toml"))
        r4 = Rig(rig.sim, d4)
        async with anyio.create_task_group() as tg:
            tg.start_soon(d4.run)
            await r4.until(lambda: r4.executor.reconciles >= 1 and any(o.strategy == "adopted" for o in d4.kernel.orders.all()),
                           what="adopted")  # fmt: skip
            d4.request_stop()
        assert rig.executor.reconciles >= 1  # the first daemon is untouched


async def test_a_safe_wallet_merges_through_the_relayer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """signature_type safe: the Safe holds the shares, the EOA signs the SafeTx, the simulator's
    relayer checks the signature against the owner and runs the merge as the Safe (gasless)."""
    from adapters.polymarket.chain import CHAINS
    from adapters.polymarket.relayer import derive_safe

    safe = derive_safe(ADDRESS, CHAINS[137])
    monkeypatch.setenv("POLYBOT_RELAYER_API_KEY", "relayer-key")
    async with live_rig(tmp_path, monkeypatch, sim_cfg=SIM, wallet=WALLET,
                        executor={"signature_type": "safe", "funder": safe}) as rig:  # fmt: skip
        seen = watch(rig)
        await approve(rig)
        ch = rig.sim.chain
        assert ch.is_approved(ch.c.ctf, safe, ch.c.ctf_collateral_adapter) and ch.nonces.get(ADDRESS.lower(), 0) == 0
        yes, no = await buy_pairs(rig)
        shares = rig.sim.exchange._accounts[safe.lower()].shares
        assert shares[yes] == TEN == shares[no]
        rig.kernel.act("t", PositionAction(action="merge", market=rig.market["condition_id"], amount=TEN))
        await rig.until(lambda: len(seen) >= 2, what="merge via the relayer")
        sent, done = seen
        assert isinstance(done, PositionActionDone), done
        assert sent.via == "relayer" and sent.tx_hash.startswith("sim-relay-") and done.tx_hash.startswith("0x")
        assert done.collateral == TEN and done.gas_cost == 0 and shares[yes] == 0 == shares[no]
        assert rig.executor.account_id == f"{ADDRESS}:{safe}"
        await rig.until(lambda: rig.kernel.portfolio.size(yes) == 0, what="portfolio moved")
