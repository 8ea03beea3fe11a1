"""On-chain position actions in the kernel: merge, split, redeem and neg-risk convert are
journaled decisions; the portfolio moves only when the executor reports them confirmed."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.book import Books
from polybot.catalog import Catalog
from polybot.events import (
    ENCODER,
    MarketInfo,
    MarketResolved,
    OrderFilled,
    PositionAction,
    PositionActionDone,
    PositionActionFailed,
    PositionActionSent,
)
from polybot.execution import RecordedExecutor
from polybot.journal import ENGINE_EVENT, JournalReader, JournalWriter
from polybot.kernel import Kernel
from polybot.portfolio import Portfolio
from polybot.units import SCALE

SHARE = SCALE
M, Y, N = "0xm1", "y1", "n1"
INFO = MarketInfo(market=M, asset_ids=(Y, N), outcomes=("Yes", "No"), slug="m1")


def fill(asset: str, price: int, size: int, side: str = "BUY", fee: int = 0) -> OrderFilled:
    return OrderFilled(client_id="c", trade_id=f"t{asset}{price}{size}", asset_id=asset, market=M, side=side,  # type: ignore[arg-type]
                       price=price, size=size, liquidity="maker", fee=fee)  # fmt: skip


def kernel(tmp_path: Any = None, **kw: Any) -> Kernel:
    k = Kernel(journal=JournalWriter(tmp_path / "j.jsonl") if tmp_path is not None else None, **kw)
    k.process(1, "events", INFO)
    return k


def hold(k: Kernel, strategy: str, yes: tuple[int, int], no: tuple[int, int]) -> None:
    """Give ``strategy`` YES and NO positions: (price, size) each, through the portfolio."""
    k.portfolio.apply_fill(strategy, fill(Y, *yes))
    k.portfolio.apply_fill(strategy, fill(N, *no))


def engine_types(path: Any) -> list[str]:
    return [msgspec.json.decode(m)["type"] for kind, _t, _s, m in JournalReader(path) if kind == ENGINE_EVENT]


def test_merge_is_journaled_then_confirmed_and_realizes_one_minus_pair_cost(tmp_path):
    k = kernel(tmp_path)
    hold(k, "s", (450_000, 10 * SHARE), (500_000, 10 * SHARE))
    cash0 = k.portfolio.cash
    aid = k.act("s", PositionAction(action="merge", market=M, amount=6 * SHARE))
    assert aid == "pb-a1"
    pf = k.portfolio
    # the null executor simulates the chain: confirmed at once
    assert pf.size(Y, "s") == pf.size(N, "s") == 4 * SHARE
    assert pf.size(Y) == pf.size(N) == 4 * SHARE
    assert pf.cash == cash0 + 6 * SHARE
    # 6 pairs at a pair cost of 0.95 realize 6 x 0.05
    assert pf.realized_pnl("s") == 300_000 == pf.realized_pnl()
    assert pf.by_strategy[("s", Y)].cost == 1_800_000 and pf.by_strategy[("s", N)].cost == 2_000_000
    assert not k.actions
    k.journal.close()
    types = engine_types(tmp_path / "j.jsonl")
    assert types.index("position_action") < types.index("position_action_done")
    assert "position" in types[types.index("position_action_done"):]


def test_a_merge_beyond_the_pairs_held_is_refused_and_journaled(tmp_path):
    k = kernel(tmp_path)
    hold(k, "s", (450_000, 10 * SHARE), (500_000, 3 * SHARE))
    seen: list[Any] = []
    k.bus.subscribe(PositionActionFailed, seen.append)
    assert k.act("s", PositionAction(action="merge", market=M, amount=4 * SHARE)) == ""
    assert k.act("s", PositionAction(action="merge", market="0xunknown", amount=SHARE)) == ""
    assert k.act("s", PositionAction(action="merge", market=M, amount=0)) == ""
    assert k.act("other", PositionAction(action="merge", market=M, amount=SHARE)) == ""  # holds nothing
    assert k.act("s", PositionAction(action="redeem", market=M)) == ""  # not resolved
    assert [e.reason.split(" ")[0] for e in seen] == ["merge", "market", "amount", "merge", "market"]
    assert k.portfolio.size(Y) == 10 * SHARE and k.portfolio.cash == -(4_500_000 + 1_500_000)
    k.journal.close()
    assert engine_types(tmp_path / "j.jsonl").count("position_action_failed") == 5


def test_split_mints_both_outcomes_at_half_and_realizes_nothing():
    k = kernel()
    assert k.act("s", PositionAction(action="split", market=M, amount=5 * SHARE))
    pf = k.portfolio
    assert pf.size(Y, "s") == pf.size(N, "s") == 5 * SHARE
    assert pf.cash == -5 * SHARE
    assert pf.realized_pnl() == 0
    assert pf.pair_view(M, "s").pair_cost == SCALE  # one share of each cost exactly 1


def test_asynchronous_confirmation_moves_the_portfolio_only_when_done():
    k = kernel(executor=RecordedExecutor("clob"))
    hold(k, "s", (400_000, 10 * SHARE), (500_000, 10 * SHARE))
    aid = k.act("s", PositionAction(action="merge", market=M, amount=10 * SHARE))
    assert aid and k.portfolio.size(Y) == 10 * SHARE  # sent, not confirmed
    # a second merge of the same pairs while the first is on its way is refused
    assert k.act("s", PositionAction(action="merge", market=M, amount=SHARE)) == ""
    st = k.to_state()
    k2 = Kernel(executor=RecordedExecutor("clob"))
    k2.restore(st)
    assert list(k2.actions) == [aid]  # a restart knows it is still on its way
    sent = PositionActionSent(action_id=aid, action="merge", market=M, tx_hash="0xabc", via="rpc")
    done = PositionActionDone(action_id=aid, action="merge", market=M, tx_hash="0xabc", amount=10 * SHARE,
                              collateral=10 * SHARE, gas_used=120_000, gas_cost=3 * 10**15)  # fmt: skip
    for kk in (k, k2):
        kk.process(10, "exec.clob", ENCODER.encode([sent]))
        assert kk.portfolio.size(Y) == 10 * SHARE
        kk.process(11, "exec.clob", ENCODER.encode([done]))
        assert kk.portfolio.size(Y) == 0 and kk.portfolio.realized_pnl("s") == SHARE
        # a repeat of the confirmation is dropped, not applied twice
        kk.process(12, "exec.clob", ENCODER.encode([done]))
        assert kk.portfolio.cash == k.portfolio.cash and kk.stats.drop_reasons["exec:action_not_pending"] == 1


def test_a_failed_action_moves_nothing():
    k = kernel(executor=RecordedExecutor("clob"))
    hold(k, "s", (400_000, 10 * SHARE), (500_000, 10 * SHARE))
    aid = k.act("s", PositionAction(action="merge", market=M, amount=10 * SHARE))
    before = k.portfolio.to_state()
    k.process(10, "exec.clob", ENCODER.encode([PositionActionFailed(action_id=aid, action="merge", market=M,
                                                                   reason="reverted")]))  # fmt: skip
    assert k.portfolio.to_state() == before and not k.actions


def resolve(k: Kernel, ts: int = 50) -> None:
    k.process(ts, "events", MarketResolved(market=M, asset_ids=(Y, N), winning_asset_id=Y))


def test_settle_on_redeem_keeps_shares_marked_at_payout_until_the_redeem_confirms():
    k = kernel(executor=RecordedExecutor("clob"), settle="redeem")
    hold(k, "a", (400_000, 10 * SHARE), (500_000, 4 * SHARE))
    hold(k, "b", (300_000, 2 * SHARE), (500_000, 0))
    resolve(k)
    pf = k.portfolio
    assert pf.size(Y) == 12 * SHARE  # not paid yet
    marks = pf.marks(Books())
    assert marks(Y) == SCALE and marks(N) == 0
    # valued at the payout: 10 x 1 + 4 x 0 - cost
    assert pf.pnl("a", marks).net == 10 * SHARE - 4_000_000 - 2_000_000
    (act,) = k.pending_actions()
    assert (act.action, act.strategy, act.note) == ("redeem", "", "auto_redeem")
    cash0 = pf.cash
    k.process(60, "exec.clob", ENCODER.encode([PositionActionDone(action_id=act.action_id, action="redeem", market=M,
                                                                  collateral=12 * SHARE, tx_hash="0x1")]))  # fmt: skip
    assert pf.size(Y) == pf.size(N) == 0 and pf.size(Y, "a") == 0 and pf.size(Y, "b") == 0
    assert pf.cash == cash0 + 12 * SHARE
    assert pf.realized_pnl("a") == 10 * SHARE - 4_000_000 - 2_000_000
    assert pf.realized_pnl("b") == 2 * SHARE - 600_000


def test_redeem_mode_ends_where_resolution_mode_ends():
    """Paper trading with settle = "redeem" (auto) books the same PnL and cash as settling at
    resolution: the simulated redeem is confirmed at once."""
    out = []
    for mode in ("resolution", "redeem"):
        k = kernel(settle=mode)
        hold(k, "a", (400_000, 10 * SHARE), (550_000, 7 * SHARE))
        resolve(k)
        pf = k.portfolio
        out.append((pf.cash, pf.realized_pnl("a"), pf.size(Y), pf.size(N)))
    assert out[0] == out[1]


def test_convert_in_a_neg_risk_event():
    k = Kernel()
    ev = "e1"
    infos = [MarketInfo(market=f"0xq{i}", asset_ids=(f"y{i}", f"n{i}"), neg_risk=True, event_id=ev) for i in range(3)]
    for i in infos:
        k.process(1, "events", i)
    pf = k.portfolio
    pf.apply_fill("s", OrderFilled(client_id="c", trade_id="t0", asset_id="n0", side="BUY", price=700_000,
                                   size=5 * SHARE, liquidity="maker"))  # fmt: skip
    pf.apply_fill("s", OrderFilled(client_id="c", trade_id="t1", asset_id="n1", side="BUY", price=600_000,
                                   size=5 * SHARE, liquidity="maker"))  # fmt: skip
    cash0 = pf.cash
    assert k.act("s", PositionAction(action="convert", market="0xq0", amount=5 * SHARE, asset_ids=("n0", "n1")))
    # 5 NO of 2 questions -> 5 x (2 - 1) collateral + 5 YES of the third
    assert pf.size("n0") == pf.size("n1") == 0 and pf.size("y2", "s") == 5 * SHARE
    assert pf.cash == cash0 + 5 * SHARE
    # basis 6.5 carried: 5 received, the new YES costs the 1.5 rest; nothing realized
    assert pf.by_strategy[("s", "y2")].cost == 1_500_000 and pf.realized_pnl("s") == 0
    # a YES token, or a market outside the event, is refused
    assert k.act("s", PositionAction(action="convert", market="0xq0", amount=SHARE, asset_ids=("y2",))) == ""


# ---------------------------------------------------------------------------------------------
# the accounting identity holds through any sequence of fills and on-chain actions

ops = st.lists(
    st.one_of(
        st.tuples(st.just("fill"), st.sampled_from([Y, N]), st.sampled_from(["BUY", "SELL"]),
                  st.integers(1, 99), st.integers(1, 2000), st.integers(0, 50_000)),  # fmt: skip
        st.tuples(st.just("merge"), st.integers(1, 2000)),
        st.tuples(st.just("split"), st.integers(1, 2000)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(1, 99), st.integers(1, 99))
def test_cash_plus_value_equals_pnl_through_merges_and_splits(seq, mark_y, mark_n):
    cat = Catalog()
    cat.add(INFO)
    pf = Portfolio(starting_cash=1000 * SHARE, catalog=cat)
    n = 0
    for op in seq:
        if op[0] == "fill":
            _, aid, side, price, size, fee = op
            size *= 10_000
            if side == "SELL":
                size = min(size, pf.size(aid, "s"))
                if not size:
                    continue
            n += 1
            pf.apply_fill("s", OrderFilled(client_id="c", trade_id=f"t{n}", asset_id=aid, market=M, side=side,
                                           price=price * 10_000, size=size, liquidity="taker", fee=fee))  # fmt: skip
        elif op[0] == "merge":
            amt = min(op[1] * 10_000, pf.size(Y, "s"), pf.size(N, "s"))
            if amt:
                pf.exchange("s", [(Y, amt), (N, amt)], [], amt, M)
        else:
            amt = op[1] * 10_000
            pf.exchange("s", [], [(Y, amt), (N, amt)], -amt, M)
    marks = {Y: mark_y * 10_000, N: mark_n * 10_000}.get
    for scope in ("", "s"):
        p = pf.pnl(scope, marks)
        value = pf.mark_value(marks, scope or None)
        cash_moved = pf.cash_flow(scope or None)
        assert cash_moved + value == p.net
        for pos in (pf.positions if not scope else {a: pf.by_strategy[(scope, a)] for a in (Y, N)
                                                   if (scope, a) in pf.by_strategy}).values():  # fmt: skip
            assert pos.size >= 0 and pos.cost >= 0
    assert pf.cash == 1000 * SHARE + pf.cash_flow()
    assert msgspec.json.decode(msgspec.json.encode(pf.to_state())) == pf.to_state()


# ---------------------------------------------------------------------------------------------
# the pair-cost strategy merges its pairs once it stops adding; replayed, and replayed faithfully


def test_pair_cost_merges_its_pairs_and_ends_where_the_redeem_would(tmp_path):
    from polybot.config import load_config
    from polybot.replay import replay

    rec = "recordings/pair-cost-window.jsonl.gz"
    base = load_config("config/pair_cost.toml")
    plain = replay(rec, base)
    cfg = load_config("config/pair_cost.toml")
    cfg.strategies["gabagool"]["merge"] = "stopped"
    merged = replay(rec, cfg, out=tmp_path / "j.jsonl")
    assert merged["events_by_type"]["position_action"] == merged["events_by_type"]["position_action_done"] == 1
    assert "position_action" not in plain["events_by_type"]
    # merging the pairs before the resolution pays what the resolution would have: same PnL, same cash
    assert merged["pnl"] == plain["pnl"]
    types = engine_types(tmp_path / "j.jsonl")
    assert types.index("position_action_done") < len(types) - 1
    again = replay(tmp_path / "j.jsonl", cfg, mode="faithful")
    assert again["divergences"] == 0


def test_operator_asks_for_a_merge_through_the_control_input(tmp_path):
    from polybot.cli import main
    from polybot.events import DECODER, ChainAction

    cfgfile = tmp_path / "c.toml"
    cfgfile.write_text(f'[engine]\ndata_dir = "{tmp_path / "var"}"\n')
    assert main(["merge", "--config", str(cfgfile), M, "--amount", "2.5", "--strategy", "s", "--reason", "free cash"]) == 0
    assert main(["merge", "--config", str(cfgfile), M, "--amount", "-1"]) != 0
    assert main(["redeem", "--config", str(cfgfile), M]) == 0
    lines = (tmp_path / "var" / "control.jsonl").read_bytes().splitlines()
    cmds = [DECODER.decode(x) for x in lines]
    assert cmds[0] == ChainAction(action="merge", market=M, amount=2_500_000, strategy="s", origin="cli", reason="free cash")
    assert cmds[1].action == "redeem" and len(cmds) == 2
    k = kernel(tmp_path)
    hold(k, "s", (450_000, 10 * SHARE), (500_000, 10 * SHARE))
    k.process(5, "control", lines[0])
    assert k.portfolio.size(Y, "s") == 7_500_000 and k.portfolio.cash == -9_500_000 + 2_500_000
    (a,) = [x for x in engine_lines(k, tmp_path) if x["type"] == "position_action"]
    assert a["note"] == "cli: free cash"
    k.process(6, "control", lines[1])  # not resolved: refused, counted, journaled
    assert [x["reason"] for x in engine_lines(k, tmp_path) if x["type"] == "position_action_failed"] == ["market not resolved"]


def engine_lines(k: Kernel, tmp_path: Any) -> list[dict[str, Any]]:
    k.journal.flush()
    return [msgspec.json.decode(m) for kind, _t, _s, m in JournalReader(tmp_path / "j.jsonl") if kind == ENGINE_EVENT]


def test_a_failed_redeem_is_asked_for_again_while_the_shares_are_held():
    """A redeem that failed (payouts not on chain yet, the RPC down, a restart in between) is
    asked for again REDEEM_RETRY_NS later, through a journaled timer, until it goes through."""
    from polybot.kernel import REDEEM_RETRY_NS

    k = kernel(executor=RecordedExecutor("clob"), settle="redeem")
    hold(k, "a", (400_000, 10 * SHARE), (500_000, 0))
    resolve(k)
    (first,) = k.pending_actions()
    k.process(60, "exec.clob", ENCODER.encode([PositionActionFailed(action_id=first.action_id, action="redeem",
                                                                   market=M, reason="execution reverted")]))  # fmt: skip
    assert not k.pending_actions()
    k.process(60 + REDEEM_RETRY_NS - 1, "clock", b"{}")
    assert not k.pending_actions()
    k.process(60 + REDEEM_RETRY_NS, "clock", b"{}")
    (again,) = k.pending_actions()
    assert again.action == "redeem" and again.note == "redeem retry" and again.action_id != first.action_id
    k.process(70 + REDEEM_RETRY_NS, "exec.clob", ENCODER.encode([PositionActionDone(action_id=again.action_id, action="redeem",
                                                                                   market=M, tx_hash="0x2")]))  # fmt: skip
    assert k.portfolio.size(Y) == 0 and k.portfolio.realized_pnl("a") == 10 * SHARE - 4_000_000
    assert k.timers.next_deadline() is None  # nothing left to retry
