"""Spread capture (strategies/spread_capture.py): quotes inside a wide spread, the replace rule and
its rate limit, the inventory cap, the adverse exit (cross and post-then-cross), pulls, stop,
state, the price properties, and replays of the shipped recordings through the paper executor
and the full risk chain of config/spread_capture.toml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybot.config import load_config
from polybot.events import (
    ENCODER,
    BookDelta,
    CancelSubmitted,
    Event,
    FeedDisconnected,
    FillEvent,
    MarketInfo,
    OrderRejected,
    OrderSubmitted,
    RiskRejected,
    SetParams,
)
from polybot.execution.paper import PaperExecutor
from polybot.execution.rules import check_order
from polybot.kernel import Kernel
from polybot.replay import replay
from polybot.units import to_units
from quoting_rig import NO, SCHED, YES, M, QuotingRig, S, T, U, c
from strategies.spread_capture import SpreadCapture, spread_quotes

ROOT = Path(__file__).resolve().parents[1]
REC = ROOT / "recordings" / "spread-capture.jsonl.gz"
REC_TIGHT = ROOT / "recordings" / "spread-capture-tight.jsonl.gz"
CONFIG = ROOT / "config" / "spread_capture.toml"


class Rig(QuotingRig[SpreadCapture]):
    """A kernel with the paper executor, one binary market with mirrored books, and a spread
    capture instance (tests/quoting_rig.py)."""

    strategy = SpreadCapture
    instance = "sc"

    def changes(self, *ch: tuple[str, float, float]) -> list[Event]:
        """The YES deltas, then the NO deltas, as one list."""
        ys, ns = self.deltas(*ch)
        return ys + ns


def wide(r: Rig) -> None:
    r.book({0.40: 100, 0.39: 100, 0.38: 100}, {0.48: 100, 0.49: 100, 0.50: 100})


# ------------------------------------------------------------------------------------ quotes


def test_bids_one_tick_inside_a_wide_spread_post_only_and_no_ask_without_inventory():
    r = Rig()
    wide(r)
    assert r.open() == [(YES, "BUY", c(41), 10 * U)]
    it = r.submitted()[0]
    assert it.post_only and it.tif == "GTC" and it.market == M
    assert not check_order(it, tick=T, min_size=5 * U, now=r.t, marketable=False)


def test_no_quote_when_the_spread_is_below_min_ticks_and_the_bid_is_pulled_when_it_narrows():
    r = Rig()
    r.book({0.40: 100}, {0.43: 100})  # 3 ticks < 4
    assert r.open() == [] and r.submitted() == []
    r.move(("ASK", 0.45, 100), ("ASK", 0.43, 0))  # 5 ticks: quote
    assert r.open() == [(YES, "BUY", c(41), 10 * U)]
    r.move(("ASK", 0.43, 50))  # 3 ticks again: the bid comes down
    assert r.open() == []
    assert any(isinstance(e, CancelSubmitted) for e in r.events)


def test_more_ticks_inside_with_improve_ticks():
    r = Rig(improve_ticks=2, min_spread_ticks=6)
    wide(r)
    assert r.open() == [(YES, "BUY", c(42), 10 * U)]


def test_replace_only_when_the_wanted_price_moves_by_n_ticks():
    r = Rig(replace_ticks=2)
    wide(r)
    r.move(("BID", 0.41, 50))  # touch +1 tick: wanted 0.42, one tick away -> kept
    assert r.open() == [(YES, "BUY", c(41), 10 * U)]
    r.move(("BID", 0.42, 50))  # touch +2 from the order's reference: wanted 0.43 -> replaced
    assert r.open() == [(YES, "BUY", c(43), 10 * U)]
    cancels = [e for e in r.events if isinstance(e, CancelSubmitted)]
    assert len(cancels) == 1 and cancels[0].reason == "replace"


def test_replace_is_rate_limited_per_market_and_retried_by_a_timer():
    r = Rig(replace_ticks=1, min_replace_s=5.0)
    wide(r)
    r.move(("BID", 0.41, 50))  # replace now (first one)
    assert r.open() == [(YES, "BUY", c(42), 10 * U)]
    r.move(("BID", 0.42, 50), dt=1.0)  # 1 s later: too soon, kept
    assert r.open() == [(YES, "BUY", c(42), 10 * U)]
    r.tick(3.0)  # 4 s after the replace: still waiting
    assert r.open() == [(YES, "BUY", c(42), 10 * U)]
    r.tick(1.5)  # the timer at 5 s re-quotes without any book event
    assert r.open() == [(YES, "BUY", c(43), 10 * U)]
    subs = [e for e in r.events if isinstance(e, OrderSubmitted)]
    assert (subs[2].ts - subs[1].ts) >= 5 * S


def test_size_change_replaces():
    r = Rig()
    wide(r)
    r.k.process(r.t + 1, "control", ENCODER.encode(SetParams(strategy="sc", params={"size": "20"})))
    assert r.open() == [(YES, "BUY", c(41), 20 * U)]


def test_replacement_waits_for_the_cancel_confirmation_with_latency():
    r = Rig(latency_ms=50, replace_ticks=1)
    wide(r)
    r.tick(0.1)  # the order arrives
    r.move(("BID", 0.42, 50))
    # the cancel is on its way: no second order in the slot yet
    assert [o.intent.price for o in r.k.orders.open_orders("sc")] == [c(41)]
    r.tick(0.1)  # cancel confirmed -> replacement sent
    assert [o.intent.price for o in r.k.orders.open_orders("sc")] == [c(43)]


# ------------------------------------------------------------------------------------ inventory


def test_fills_round_trip_and_the_offer_sizes_follow_the_inventory():
    r = Rig()
    wide(r)
    r.trade("SELL", 10)  # a taker sells at 0.40: our 0.41 bid is better and fills first
    assert r.held() == 10 * U
    assert (YES, "SELL", c(47), 10 * U) in r.open() and (YES, "BUY", c(41), 10 * U) in r.open()
    r.trade("BUY", 10)  # a taker buys at 0.48: our 0.47 ask fills
    assert r.held() == 0
    pos = r.k.portfolio.by_strategy[("sc", YES)]
    assert pos.realized == 10 * (c(47) - c(41)) and pos.fees == 0 and pos.rebates > 0
    fills = [e for e in r.events if isinstance(e, FillEvent)]
    assert [f.liquidity for f in fills] == ["maker", "maker"]


def test_inventory_cap_stops_the_bid_and_keeps_offering():
    r = Rig(max_inventory="15")
    wide(r)
    r.trade("SELL", 10)
    assert (YES, "BUY", c(41), 5 * U) in r.open()  # room for 5 more
    r.trade("SELL", 10)
    assert r.held() == 15 * U
    assert r.open() == [(YES, "SELL", c(47), 15 * U)]  # no bid at the cap, the offer stays
    r.trade("BUY", 10)  # 10 sold: room again
    assert r.held() == 5 * U
    assert (YES, "BUY", c(41), 10 * U) in r.open()


def test_partial_fill_does_not_resize_the_order_that_produced_it():
    r = Rig()
    wide(r)
    r.trade("SELL", 3)  # bid 10 filled 3: kept with 7 left
    assert r.held() == 3 * U
    assert r.open() == [(YES, "BUY", c(41), 7 * U)]  # 3 shares are below the 5-share minimum: no ask
    r.trade("SELL", 3)
    assert (YES, "SELL", c(47), 6 * U) in r.open()


# ------------------------------------------------------------------------------------ adverse exit


def test_adverse_move_cancels_and_exits_as_a_taker_then_cools_down():
    r = Rig(adverse_ticks=4, exit_slippage_ticks=2, cooldown_s=10.0)
    wide(r)
    r.trade("SELL", 10)  # long 10, entry mid 0.44
    assert r.s.assets[YES].entry_mid == (c(40) + c(48)) // 2
    # the book walks down: mid 0.42, then 0.40 (= entry - 4 ticks)
    r.move(("ASK", 0.46, 100), ("ASK", 0.48, 0), ("BID", 0.38, 100), ("BID", 0.40, 0))
    assert r.s.assets[YES].mode == "quote"
    r.move(("ASK", 0.44, 100), ("ASK", 0.46, 0), ("BID", 0.36, 100), ("BID", 0.39, 0), ("BID", 0.38, 0))
    assert r.held() == 0
    exits = [i for i in r.submitted() if i.tif == "FAK"]
    assert len(exits) == 1 and exits[0].side == "SELL" and exits[0].price == c(34)  # 0.36 - 2 ticks
    fills = [e for e in r.events if isinstance(e, FillEvent)]
    assert fills[-1].liquidity == "taker" and fills[-1].price == c(36) and fills[-1].fee > 0
    assert r.s.assets[YES].mode == "cooldown" and r.open() == []
    r.move(("BID", 0.37, 20))
    assert r.open() == []  # still cooling down
    r.tick(10.0)
    assert r.s.assets[YES].mode == "quote" and r.open() == [(YES, "BUY", c(38), 10 * U)]


def test_adverse_exit_post_then_cross():
    r = Rig(adverse_ticks=2, exit_mode="post_then_cross", exit_timeout_s=2.0, exit_slippage_ticks=1)
    wide(r)
    r.trade("SELL", 10)
    r.move(("ASK", 0.46, 100), ("ASK", 0.48, 0), ("BID", 0.39, 0), ("BID", 0.40, 0))  # mid 0.42: -2 ticks
    posted = [i for i in r.submitted() if "exit" in i.note]
    assert len(posted) == 1 and posted[0].post_only and posted[0].price == c(46) and posted[0].size == 10 * U
    r.tick(2.5)  # nobody lifted it: cancelled, then the rest crosses at the bid down to 0.37
    crossed = [i for i in r.submitted() if "exit" in i.note or "cross" in i.note][1:]
    assert crossed and crossed[0].tif == "FAK" and crossed[0].price == c(37)
    assert r.held() == 0


def test_adverse_exit_waits_for_the_quote_cancels_under_latency():
    r = Rig(latency_ms=20, adverse_ticks=2)
    wide(r)
    r.tick(0.05)
    r.trade("SELL", 10)
    r.tick(0.05)  # the ask arrives
    assert (YES, "SELL", c(47), 10 * U) in r.open()
    r.move(("ASK", 0.46, 100), ("ASK", 0.48, 0), ("BID", 0.39, 0), ("BID", 0.40, 0))  # mid 0.42
    assert not [i for i in r.submitted() if i.tif == "FAK"]  # the ask still holds the shares
    r.tick(0.05)  # cancels confirmed: the exit goes out
    r.tick(0.05)
    assert [i.tif for i in r.submitted() if "exit" in i.note] == ["FAK"]
    assert r.held() == 0
    assert not [e for e in r.events if isinstance(e, RiskRejected)]


# ------------------------------------------------------------------------------------ safety, state


def test_unhealthy_book_pulls_and_requotes_after_the_resync():
    r = Rig(min_replace_s=1.0)
    wide(r)
    assert r.open()
    r.feed(FeedDisconnected(feed="ws", asset_ids=(YES, NO)))
    assert r.open() == []
    r.move(("BID", 0.40, 80))  # applied, still unhealthy: nothing placed
    assert r.open() == []
    wide(r)  # the resync snapshot
    r.tick(1.0)
    assert r.open() == [(YES, "BUY", c(41), 10 * U)]


def test_stop_cancels_every_quote():
    r = Rig()
    wide(r)
    r.trade("SELL", 10)
    assert len(r.open()) == 2
    r.k.stop()
    assert r.open() == []


def test_snapshot_restore_round_trip_and_restart_keeps_the_quote():
    r = Rig()
    wide(r)
    r.trade("SELL", 10)
    st = r.s.snapshot()
    assert json.loads(ENCODER.encode(st)) == st  # JSON-able
    k2 = Kernel(executor=PaperExecutor(cash="1000"), synthesize_timers=True)
    s2 = k2.add_strategy(SpreadCapture, "sc", {"asset_ids": [YES], "min_replace_s": 0.0})
    k2.start()
    k2.restore(r.k.to_state())
    assert s2.snapshot() == st
    assert s2.live_order(YES, "bid") is not None and s2.live_order(YES, "ask") is not None
    n = k2.stats.orders
    k2.process(r.t + S, "events", ENCODER.encode([BookDelta(asset_id=YES, market=M, side="BID", price=c(39), size=50 * U,
                                                              best_bid=c(40), best_ask=c(48))]))  # fmt: skip
    assert k2.stats.orders == n  # nothing to re-quote: the restored quotes are kept


def test_params_are_validated():
    k = Kernel()
    with pytest.raises(msgspec.ValidationError, match="min_spread_ticks"):
        k.add_strategy(SpreadCapture, "a", {"asset_ids": [YES], "improve_ticks": 2, "min_spread_ticks": 4})
    with pytest.raises(msgspec.ValidationError, match="asset_ids"):
        k.add_strategy(SpreadCapture, "b", {"asset_ids": []})
    with pytest.raises(msgspec.ValidationError):
        k.add_strategy(SpreadCapture, "c", {"asset_ids": [YES], "exit_mode": "market"})


def test_unchanged_top_of_book_costs_no_recompute():
    r = Rig()
    wide(r)
    calls = []
    orig = r.s._recompute
    r.s._recompute = lambda a: (calls.append(a), orig(a))  # type: ignore[method-assign]
    r.move(("BID", 0.38, 70))  # behind the touch
    r.move(("ASK", 0.50, 70))
    assert calls == []
    r.move(("BID", 0.40, 60))  # top size only: prices unchanged
    assert calls == []
    r.move(("BID", 0.41, 60))
    assert calls == [YES]


def test_a_touch_that_moves_under_an_own_quote_is_followed():
    """Live, the venue's book shows our bid: when it is the best bid, the levels behind it can
    move without the top of book changing. The touch without our orders moved: re-quote."""
    r = Rig(replace_ticks=2)
    r.book({0.40: 100, 0.35: 100}, {0.48: 100, 0.49: 100})
    assert r.open() == [(YES, "BUY", c(41), 10 * U)]
    r.move(("BID", 0.41, 10))  # the venue's book shows our bid: the top is ours
    assert r.open() == [(YES, "BUY", c(41), 10 * U)]
    r.move(("BID", 0.40, 0))  # the 0.40 bids leave: without us the touch is 0.35
    assert r.open() == [(YES, "BUY", c(36), 10 * U)]
    # the cancelled bid may still show until the venue's update removes it: never chased
    r.move(("BID", 0.36, 10))
    assert r.open() == [(YES, "BUY", c(36), 10 * U)]
    r.move(("BID", 0.41, 0))
    assert r.open() == [(YES, "BUY", c(36), 10 * U)]
    assert len(r.submitted()) == 2


def test_the_middle_of_a_frame_is_not_acted_on():
    """A book's run of changes in one frame is applied (and hash-checked) as a whole: the state
    after its first entries is not the book and must cause no order traffic."""
    r = Rig(replace_ticks=1)
    wide(r)
    n = len(r.submitted())
    mid, last = r.changes(("BID", 0.44, 50))[0], r.changes(("BID", 0.44, 0))[0]
    mid = msgspec.structs.replace(mid, run_end=False)
    r.feed(mid, last)  # a level that came and went inside one frame
    assert len(r.submitted()) == n and not [e for e in r.events if isinstance(e, CancelSubmitted)]
    assert r.open() == [(YES, "BUY", c(41), 10 * U)]


def test_an_adverse_exit_that_cannot_cross_is_not_sent_again_and_again():
    """10 shares at a 0.04 exit limit are worth $0.40: the venue refuses a marketable order
    under $1, so a FAK is never sent; the inventory is left to the ask quote."""
    r = Rig(adverse_ticks=4, exit_slippage_ticks=3, cooldown_s=5.0)
    r.book({0.10: 100, 0.09: 100, 0.08: 100}, {0.18: 100, 0.19: 100})
    r.trade("SELL", 10)  # long 10 at 0.11, entry mid 0.14
    assert r.held() == 10 * U
    r.move(("ASK", 0.13, 100), ("ASK", 0.18, 0), ("BID", 0.07, 100), ("BID", 0.10, 0), ("BID", 0.09, 0),
           ("BID", 0.08, 0))  # mid 0.10: adverse  # fmt: skip
    for i in range(6):  # the touch keeps moving
        r.move(("BID", 0.07, 0) if i % 2 == 0 else ("BID", 0.07, 100))
    assert not [e for e in r.events if isinstance(e, (OrderRejected, RiskRejected))]
    assert not [i for i in r.submitted() if i.tif == "FAK"]
    assert r.held() == 10 * U and r.s.assets[YES].mode == "cooldown"
    r.tick(5.0)  # after the cool-down the shares are offered again
    assert (YES, "SELL", c(12), 10 * U) in r.open()


def test_a_market_that_stops_accepting_orders_pulls_the_quotes_at_once():
    r = Rig()
    wide(r)
    r.trade("SELL", 10)
    assert len(r.open()) == 2
    r.feed(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=SCHED, accepting_orders=False))
    assert r.open() == []


# ------------------------------------------------------------------------------------ properties


@settings(max_examples=400, deadline=None)
@given(bb=st.integers(1, 98), width=st.integers(1, 40), improve=st.integers(1, 4), extra=st.integers(0, 6),
       tick=st.sampled_from([10_000, 1_000]))  # fmt: skip
def test_quotes_are_on_the_grid_inside_the_range_and_never_cross(bb: int, width: int, improve: int, extra: int, tick: int):
    bb_p = bb * tick
    ba_p = bb_p + width * tick
    if ba_p > U - tick:
        return
    min_spread = 2 * improve + 1 + extra
    bid, ask = spread_quotes(bb_p, ba_p, tick, improve, min_spread)
    for q in (bid, ask):
        assert q == 0 or (q % tick == 0 and tick <= q <= U - tick)
    if bid:
        assert bb_p < bid < ba_p and width >= min_spread  # inside the spread, only when it is wide
    else:
        assert width < min_spread
    if ask:
        assert bb_p < ask <= ba_p
        if bid:
            assert bid < ask and ask < ba_p


# ------------------------------------------------------------------------------------ replays


def _replay(path: Path, tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = tmp_path / (path.name + ".out.jsonl")
    s = replay(path, load_config(CONFIG), out=out)
    lines = [json.loads(x) for x in out.read_bytes().splitlines()]
    return s, [x["event"] for x in lines if x.get("source") == "engine"]


def test_replay_wide_spread_round_trips_with_an_adverse_exit(tmp_path: Path):
    s, evs = _replay(REC, tmp_path)
    t = s["report"]["totals"]
    assert s["errors"] == {} and s["rejections"] == 0 and t["orders_rejected"] == 0
    subs = [e["intent"] for e in evs if e["type"] == "order_submitted"]
    assert len(subs) == s["orders"] > 150
    quotes = [i for i in subs if i.get("post_only")]
    assert {i["side"] for i in quotes} == {"BUY", "SELL"}
    assert all(i["price"] % T == 0 and T <= i["price"] <= U - T for i in subs)
    # one adverse exit, as a taker, paying the fee; everything else made
    exits = [i for i in subs if "exit" in i.get("note", "")]
    assert len(exits) == 1 and exits[0]["tif"] == "FAK" and exits[0]["size"] == 50 * U
    assert t["maker_fills"] > 150 and t["taker_fills"] == 2 and t["fees"] > 0 and t["rebates"] > 0
    # round trips: shares bought and sold, positive realized PnL net of fees, rebates included
    buys = sum(e["size"] for e in evs if e["type"] in ("order_filled", "order_partial") and e["side"] == "BUY")
    sells = sum(e["size"] for e in evs if e["type"] in ("order_filled", "order_partial") and e["side"] == "SELL")
    assert buys > 500 * U and sells > 500 * U and buys - sells == to_units(s["positions"].popitem()[1])
    assert t["realized_pnl"] > 30 * U and t["net_pnl"] > 30 * U
    assert t["net_pnl"] == t["realized_pnl"] + t["unrealized_pnl"] - t["fees"] + t["rebates"]
    # the inventory never passed the cap, and every quote was cancelled at the end
    held = 0
    for e in evs:
        if e["type"] == "position":
            held = e["size"]
            assert held <= 50 * U
    assert sum(1 for e in evs if e["type"] == "cancel_submitted" and e.get("reason") == "cancel_all") == 2
    # re-quotes respect the per-market rate limit: cancels for a replace at least 1 s apart
    rts = [e["ts"] for e in evs if e["type"] == "cancel_submitted" and e.get("reason") == "replace"]
    assert rts and all(b - a >= S for a, b in zip(rts, rts[1:]))


def test_replay_tight_spread_has_no_opportunity(tmp_path: Path):
    s, evs = _replay(REC_TIGHT, tmp_path)
    assert s["errors"] == {} and s["inputs"] > 700
    assert s["intents"] == 0 and s["orders"] == 0 and s["fills"] == 0
    assert not [e for e in evs if e["type"] in ("intent", "order_submitted")]


def test_replay_is_deterministic(tmp_path: Path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    s1, _ = _replay(REC, a)
    s2, _ = _replay(REC, b)
    assert (a / (REC.name + ".out.jsonl")).read_bytes() == (b / (REC.name + ".out.jsonl")).read_bytes()
    assert s1["pnl"] == s2["pnl"] and s1["fills"] == s2["fills"]


def test_the_shipped_quoting_recordings_are_what_the_generator_makes(tmp_path: Path) -> None:
    """recordings/make_quoting.py writes the four quoting recordings byte for byte."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_quoting", root / "recordings" / "make_quoting.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(tmp_path)]) == 0
    for name in mod.RECORDINGS:
        assert (tmp_path / name).read_bytes() == (root / "recordings" / name).read_bytes(), f"{name} is stale"


def test_an_exit_with_nothing_left_to_sell_logs_nothing() -> None:
    """After the adverse exit sold everything, the empty inventory is not reported, again and
    again, as "0 shares cannot be sold as a taker"."""
    from loguru import logger

    from polybot.config import load_config
    from polybot.replay import replay

    root = Path(__file__).resolve().parents[1]
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING", format="{message}")
    try:
        replay(root / "recordings" / "spread-capture.jsonl.gz", load_config(root / "config" / "spread_capture.toml"))
    finally:
        logger.remove(sink)
    assert not [w for w in warnings if "cannot be sold as a taker" in w]
