"""Market making (strategies/market_making.py): two-sided quotes around mid/microprice, the
unified book's token choice (a YES ask is a NO bid at 1 - p; held tokens are sold first),
inventory skew and cap, volatility widening, pulls (unhealthy, crossed, stale, FeedStale),
the replace rule, stop, state, price properties, and replays of the shipped recordings through
the paper executor and the full risk chain of config/market_making.toml."""

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
    CancelSubmitted,
    Event,
    FeedStale,
    MarketInfo,
    OrderSubmitted,
    RiskRejected,
)
from polybot.execution.paper import PaperExecutor
from polybot.execution.rules import check_order
from polybot.kernel import Kernel
from polybot.replay import replay
from quoting_rig import NO, SCHED, YES, M, QuotingRig, S, T, U, c, px
from strategies.market_making import MarketMaker, fair_value, quote_prices

ROOT = Path(__file__).resolve().parents[1]
REC = ROOT / "recordings" / "market-making.jsonl.gz"
REC_ADVERSE = ROOT / "recordings" / "market-making-adverse.jsonl.gz"
CONFIG = ROOT / "config" / "market_making.toml"


class Rig(QuotingRig[MarketMaker]):
    """Kernel + paper executor + one binary market with mirrored books + a market maker."""

    strategy = MarketMaker
    instance = "mm"
    defaults = {"stale_s": 0.0}

    def changes(self, *ch: tuple[str, float, float]) -> tuple[list[Event], list[Event]]:
        return self.deltas(*ch)

    def recenter(self, bb: float, ba: float, dt: float = 0.5) -> None:
        """Move the touch to bb/ba (one level each side plus depth behind)."""
        ch: list[tuple[str, float, float]] = []
        for p in sorted(self.bids):
            if p > px(bb):
                ch.append(("BID", p / U, 0))
        for p in sorted(self.asks):
            if p < px(ba):
                ch.append(("ASK", p / U, 0))
        if px(bb) not in self.bids:
            ch.append(("BID", bb, 100))
        if px(ba) not in self.asks:
            ch.append(("ASK", ba, 100))
        self.move(*ch, dt=dt)

    def quotes_yes_terms(self) -> tuple[int, int]:
        """(bid, ask) of the live quotes in YES terms."""
        b = self.s.live_order(YES, "bid")
        a = self.s.live_order(YES, "ask")
        yt = lambda o: o.intent.price if o.asset_id == YES else U - o.intent.price  # noqa: E731
        return (yt(b) if b else 0), (yt(a) if a else 0)

    def net(self) -> int:
        return self.s.net_inventory(YES)


def calm(r: Rig) -> None:
    """Touch 0.47 / 0.53 (mid 0.50), depth behind."""
    r.book({0.47: 100, 0.46: 100, 0.45: 100}, {0.53: 100, 0.54: 100, 0.55: 100})


# ------------------------------------------------------------------------------------ placement


def test_two_sided_quotes_around_the_mid_on_the_unified_book():
    r = Rig()
    calm(r)
    # bid 0.48 buys YES; the ask at 0.52 is a NO bid at 0.48 (nothing held to sell)
    assert r.open() == [(NO, "BUY", c(48), 10 * U), (YES, "BUY", c(48), 10 * U)]
    assert r.quotes_yes_terms() == (c(48), c(52))
    for it in r.submitted():
        assert it.post_only and it.tif == "GTC"
        book = r.k.books.get(it.asset_id)
        assert not check_order(it, tick=T, min_size=5 * U, now=r.t, marketable=it.price >= book.best_ask)


def test_held_tokens_are_sold_first_and_net_is_yes_minus_no():
    r = Rig(skew="0")
    calm(r)
    r.trade("SELL", 10)  # our YES bid fills: long 10 YES
    assert r.net() == 10 * U
    # the ask is now a sale of the YES held, the bid still buys YES
    assert (YES, "SELL", c(52), 10 * U) in r.open() and (YES, "BUY", c(48), 10 * U) in r.open()
    r.trade("BUY", 10)  # the YES ask fills: flat
    assert r.net() == 0 and r.k.portfolio.size(YES, "mm") == 0
    r.trade("BUY", 10)  # now the NO bid (YES ask) fills: short YES = long NO
    assert r.k.portfolio.size(NO, "mm") == 10 * U and r.net() == -10 * U
    # the bid is now a sale of the NO held at 1 - 0.48
    assert (NO, "SELL", c(52), 10 * U) in r.open()
    assert r.quotes_yes_terms() == (c(48), c(52))
    pos = r.k.portfolio.by_strategy
    assert pos[("mm", YES)].realized == 10 * (c(52) - c(48))
    assert not [e for e in r.events if isinstance(e, RiskRejected)]


def test_microprice_leans_toward_the_thin_side():
    assert fair_value("mid", c(47), 10 * U, c(53), 90 * U) == c(50)
    assert fair_value("microprice", c(47), 10 * U, c(53), 90 * U) == c(47) + (c(6) * 10) // 100
    r = Rig(fair_value="microprice")
    r.book({0.47: 10}, {0.53: 90})
    # fair 0.476: bid 0.45, ask 0.50
    assert r.quotes_yes_terms() == (c(45), c(50))


# ------------------------------------------------------------------------------------ skew, cap, widening


@pytest.mark.parametrize(("skew", "shift"), [("0.01", 1), ("0.02", 2), ("0", 0)])
def test_inventory_skew_shifts_both_quotes_against_the_inventory(skew: str, shift: int):
    r = Rig(skew=skew, size="10", replace_ticks=1)
    calm(r)
    r.trade("SELL", 10)  # long 10 YES: quotes shift down by skew x 10 / size
    assert r.net() == 10 * U
    assert r.quotes_yes_terms() == (c(48 - shift), c(52 - shift))
    r.trade("BUY", 10)  # sold back: flat, centred again
    r.trade("BUY", 10)  # the NO bid fills: short YES, quotes shift up
    assert r.net() == -10 * U
    assert r.quotes_yes_terms() == (c(48 + shift), c(52 + shift))


def test_skew_is_capped_by_max_skew():
    bid, ask, _ = quote_prices(c(50), 100 * U, 0, c(40), c(60), T, size=10 * U, half_spread=c(2),
                               max_half_spread=c(10), skew=c(1), max_skew=c(3), vol_widen=U)  # fmt: skip
    assert (bid, ask) == (c(45), c(49))
    bid, ask, _ = quote_prices(c(50), -100 * U, 0, c(40), c(60), T, size=10 * U, half_spread=c(2),
                               max_half_spread=c(10), skew=c(1), max_skew=c(3), vol_widen=U)  # fmt: skip
    assert (bid, ask) == (c(51), c(55))


def test_inventory_cap_stops_the_side_that_adds():
    r = Rig(max_inventory="20", skew="0")
    calm(r)
    r.trade("SELL", 10)
    r.trade("SELL", 10)
    assert r.net() == 20 * U
    assert [o for o in r.open() if o[1] == "BUY" and o[0] == YES] == []  # no bid at the cap
    assert (YES, "SELL", c(52), 10 * U) in r.open()  # the ask sells what is held


def test_volatility_widens_the_half_spread():
    r = Rig(vol_window=4, vol_widen="1", half_spread="0.02", max_half_spread="0.06", replace_ticks=1)
    calm(r)
    assert r.s.markets[YES].half == c(2)
    for bb in (0.51, 0.45, 0.52, 0.44, 0.53):  # the mid jumps 6-9 ticks at a time
        r.recenter(bb, bb + 0.06)
    m = r.s.markets[YES]
    wide_half = m.half
    assert m.ewma > 3 * U and c(2) < wide_half <= c(6)
    bid, ask = r.quotes_yes_terms()
    assert ask - bid == 2 * wide_half  # a wider pair around the (tick-aligned) mid
    for _ in range(15):  # calm again: half-tick mid changes, the EWMA decays
        r.recenter(0.54, 0.59)
        r.recenter(0.53, 0.59)
    assert m.ewma < U and m.half == c(2)
    bid, ask = r.quotes_yes_terms()
    assert ask - bid in (c(4), c(5))


def test_widening_is_capped():
    _, _, h = quote_prices(c(50), 0, 50 * U, c(40), c(60), T, size=10 * U, half_spread=c(2),
                           max_half_spread=c(5), skew=0, max_skew=0, vol_widen=U)  # fmt: skip
    assert h == c(5)


# ------------------------------------------------------------------------------------ replace rule


def test_replace_only_on_n_tick_moves_and_rate_limited():
    r = Rig(replace_ticks=2, min_replace_s=3.0)
    calm(r)
    r.recenter(0.48, 0.54)  # mid +1 tick: kept
    assert r.quotes_yes_terms() == (c(48), c(52))
    r.recenter(0.49, 0.55)  # +2 ticks: replaced (the first re-quote)
    assert r.quotes_yes_terms() == (c(50), c(54))
    r.recenter(0.51, 0.57, dt=1.0)  # +2 again, 1 s later: waits
    assert r.quotes_yes_terms() == (c(50), c(54))
    r.tick(2.5)  # 3 s after the last re-quote: the timer re-quotes
    assert r.quotes_yes_terms() == (c(52), c(56))


def test_mid_update_between_the_two_tokens_is_not_acted_on():
    r = Rig(replace_ticks=1)
    calm(r)
    n = len(r.submitted())
    ys, ns = r.changes(("BID", 0.49, 50), ("ASK", 0.55, 100), ("ASK", 0.53, 0), ("ASK", 0.54, 0))
    r.feed(*ys, dt=0.5)  # only the YES half of the change: the books disagree
    assert len(r.submitted()) == n and not [e for e in r.events if isinstance(e, CancelSubmitted)]
    r.feed(*ns, dt=0.01)  # the NO half arrives: re-quote once, from consistent books
    assert r.quotes_yes_terms() == (c(50), c(54))


def test_a_touch_that_moves_under_own_quotes_is_followed():
    """Live, the venue's unified book shows our quotes (the NO bid at 0.48 as a YES ask at
    0.52): with them at the top, the levels behind can move while the top of book stays."""
    r = Rig(replace_ticks=2)
    r.book({0.47: 100, 0.40: 100}, {0.53: 100, 0.54: 100})
    assert r.quotes_yes_terms() == (c(48), c(52))
    r.move(("BID", 0.48, 10), ("ASK", 0.52, 10))  # our YES bid and NO bid, as the venue shows them
    assert r.quotes_yes_terms() == (c(48), c(52))
    r.move(("BID", 0.47, 0))  # without us the touch is 0.40 / 0.53: fair 0.465
    assert r.quotes_yes_terms() == (c(44), c(49))
    # the cancelled quotes may still show until the venue removes them: never chased
    r.move(("BID", 0.44, 10), ("ASK", 0.49, 10))
    r.move(("BID", 0.48, 0), ("ASK", 0.52, 0))
    assert r.quotes_yes_terms() == (c(44), c(49)) and len(r.submitted()) == 4


def test_the_middle_of_a_frame_is_not_acted_on():
    """Microprice: a top size that changes and changes back inside one frame is no move."""
    r = Rig(fair_value="microprice", replace_ticks=1)
    r.book({0.47: 50, 0.46: 100}, {0.53: 50, 0.54: 100})
    n = len(r.submitted())
    ys, ns = r.changes(("BID", 0.47, 5), ("BID", 0.47, 50))
    mark = lambda evs: [msgspec.structs.replace(evs[0], run_end=False), evs[1]]  # noqa: E731
    r.feed(*mark(ys), *mark(ns))
    assert len(r.submitted()) == n and not [e for e in r.events if isinstance(e, CancelSubmitted)]


def test_a_market_that_closes_pulls_the_quotes_at_once():
    r = Rig()
    calm(r)
    assert len(r.open()) == 2
    r.feed(MarketInfo(market=M, asset_ids=(YES, NO), outcomes=("Yes", "No"), fees=SCHED, accepting_orders=False))
    assert r.open() == []


# ------------------------------------------------------------------------------------ pulls


def test_crossed_book_pulls_both_quotes_until_a_snapshot():
    r = Rig(min_replace_s=1.0)
    calm(r)
    assert len(r.open()) == 2
    r.move(("BID", 0.54, 30))  # crossed: unhealthy
    assert r.open() == []
    n = len(r.submitted())
    r.move(("BID", 0.54, 0))  # uncrossed, but unhealthy until a snapshot
    r.move(("ASK", 0.55, 60))
    assert len(r.submitted()) == n
    calm(r)
    r.tick(1.0)
    assert len(r.open()) == 2


def test_stale_book_is_pulled_by_a_timer_and_requoted_on_the_next_change():
    r = Rig(stale_s=5.0)
    calm(r)
    assert len(r.open()) == 2
    r.tick(4.0)
    assert len(r.open()) == 2
    r.tick(1.5)  # 5 s without a change
    assert r.open() == [] and r.s.markets[YES].pulled == "stale book"
    r.move(("BID", 0.46, 70))  # a change behind the touch: fresh again
    assert len(r.open()) == 2


def test_feed_stale_pulls_until_the_book_changes():
    r = Rig()
    calm(r)
    r.feed(FeedStale(feed="ws", asset_id=YES, age_ns=30 * S))
    assert r.open() == []
    r.tick(1.0)
    assert r.open() == []
    r.move(("ASK", 0.55, 80))
    assert len(r.open()) == 2


def test_stop_cancels_and_state_round_trips():
    r = Rig()
    calm(r)
    r.trade("SELL", 10)
    st = r.s.snapshot()
    assert json.loads(ENCODER.encode(st)) == st
    k2 = Kernel(executor=PaperExecutor(cash="1000"), synthesize_timers=True)
    s2 = k2.add_strategy(MarketMaker, "mm", {"asset_ids": [YES], "min_replace_s": 0.0, "stale_s": 0.0})
    k2.start()
    k2.restore(r.k.to_state())
    assert s2.snapshot() == st and s2.net_inventory(YES) == 10 * U
    r.k.stop()
    assert r.open() == []


def test_params_are_validated():
    k = Kernel()
    with pytest.raises(msgspec.ValidationError, match="max_half_spread"):
        k.add_strategy(MarketMaker, "a", {"asset_ids": [YES], "half_spread": "0.05", "max_half_spread": "0.02"})
    with pytest.raises(msgspec.ValidationError):
        k.add_strategy(MarketMaker, "b", {"asset_ids": [YES], "fair_value": "vwap"})
    with pytest.raises(msgspec.ValidationError, match="asset_ids"):
        k.add_strategy(MarketMaker, "c", {"asset_ids": []})


# ------------------------------------------------------------------------------------ properties


@settings(max_examples=500, deadline=None)
@given(bb=st.integers(1, 98), width=st.integers(1, 30), fair_off=st.integers(0, 1000), net=st.integers(-200, 200),
       ewma=st.integers(0, 20 * U), half=st.integers(1, 10), extra_cap=st.integers(0, 10),
       skew=st.integers(0, 3), max_skew=st.integers(0, 8), tick=st.sampled_from([10_000, 1_000]))  # fmt: skip
def test_quotes_on_grid_in_range_ordered_and_never_crossing(bb: int, width: int, fair_off: int, net: int, ewma: int,
                                                           half: int, extra_cap: int, skew: int, max_skew: int, tick: int):  # fmt: skip
    bb_p = bb * tick
    ba_p = bb_p + width * tick
    if ba_p > U - tick:
        return
    fair = bb_p + (ba_p - bb_p) * fair_off // 1000
    bid, ask, h = quote_prices(fair, net * U, ewma, bb_p, ba_p, tick, size=10 * U, half_spread=half * tick,
                               max_half_spread=(half + extra_cap) * tick, skew=skew * tick,
                               max_skew=max_skew * tick, vol_widen=U)  # fmt: skip
    assert half * tick <= h <= (half + extra_cap) * tick
    for q in (bid, ask):
        assert q == 0 or (q % tick == 0 and tick <= q <= U - tick)
    if bid:
        assert bid < ba_p  # a post-only bid never crosses
    if ask:
        assert ask > bb_p
    if bid and ask:
        assert bid < ask


# ------------------------------------------------------------------------------------ replays


def _replay(path: Path, tmp_path: Path, hook: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = tmp_path / (path.name + ".out.jsonl")
    s = replay(path, load_config(CONFIG), out=out, on_kernel=hook)
    return s, [json.loads(x)["event"] for x in out.read_bytes().splitlines() if b'"engine"' in x]


def test_replay_oscillating_market_two_sided_on_both_tokens_widening_in_the_burst(tmp_path: Path):
    halves: list[int] = []

    def hook(k: Any) -> None:
        mm = k.strategies["mm"]
        k.bus.subscribe(OrderSubmitted, lambda ev: halves.append(mm.markets[mm.params.asset_ids[0]].half))

    s, evs = _replay(REC, tmp_path, hook)
    t = s["report"]["totals"]
    assert s["errors"] == {} and s["rejections"] == 0 and t["orders_rejected"] == 0
    subs = [e["intent"] for e in evs if e["type"] == "order_submitted"]
    assert len(subs) == s["orders"] > 200 and all(i["post_only"] for i in subs)
    kinds = {(i["asset_id"][:6], i["side"]) for i in subs}
    assert len(kinds) == 4  # YES buys and sells, NO buys and sells: the whole unified book is used
    assert t["fills"] > 150 and t["maker_fills"] == t["fills"] and t["fees"] == 0 and t["rebates"] > 0
    assert t["realized_pnl"] > 10 * U and t["net_pnl"] > 10 * U and t["max_drawdown"] < 5 * U
    # the volatile burst widened the quotes; calm periods used the configured half-spread
    assert halves.count(20_000) > len(halves) // 2 and max(halves) >= 50_000
    # net inventory (YES - NO) stayed within the cap
    yes = load_config(CONFIG).strategies["mm"]["asset_ids"][0]
    (no,) = {i["asset_id"] for i in subs} - {yes}
    held = {yes: 0, no: 0}
    for e in evs:
        if e["type"] == "position" and e["strategy"] == "mm":
            held[e["asset_id"]] = e["size"]
            assert abs(held[yes] - held[no]) <= 50 * U


def test_replay_adverse_stretch_and_bad_data_pull_the_quotes(tmp_path: Path):
    s, evs = _replay(REC_ADVERSE, tmp_path)
    assert s["errors"] == {} and s["rejections"] == 0
    # book health from the input side (the journal has only engine events): replay it again
    health: list[tuple[int, bool]] = []

    def hook(k: Any) -> None:
        from polybot.events import BookHealth

        k.bus.subscribe(BookHealth, lambda ev: health.append((ev.ts, ev.healthy)))

    _replay(REC_ADVERSE, tmp_path, hook)
    bad = [ts for ts, ok in health if not ok]
    assert len(bad) >= 5  # missed update, crossed (both tokens), reconnect (both tokens)
    windows = []
    for ts in sorted(set(bad)):
        end = min((t2 for t2, ok in health if ok and t2 > ts), default=None)
        windows.append((ts, end))
    subs = [e for e in evs if e["type"] == "order_submitted"]
    cancels = [e for e in evs if e["type"] == "cancel_submitted"]
    for start, end in windows:
        assert end is not None
        # nothing is sent while the book is unhealthy
        assert not [e for e in subs if start <= e["ts"] < end]
        # every quote resting at that moment got its cancel at once
        assert [e for e in cancels if e["ts"] == start]
    # the FeedStale notice and the 40 s silence: quotes pulled, nothing sent during the gap
    stale = [e for e in cancels if e.get("reason") in ("feed stale", "stale book")]
    assert stale
    gap_start = stale[0]["ts"]
    later = [e["ts"] for e in subs if e["ts"] > gap_start]
    assert later and later[0] - gap_start >= 40 * S
    # the one-directional selling trend: long inventory built up, bounded by skew and cap
    yes_id = load_config(CONFIG).strategies["mm"]["asset_ids"][0]
    peak = max((e["size"] for e in evs if e["type"] == "position" and e["asset_id"] == yes_id), default=0)
    assert 10 * U <= peak <= 50 * U
    fills = [e for e in evs if e["type"] in ("order_filled", "order_partial")]
    assert fills and all(f["liquidity"] == "maker" for f in fills)
