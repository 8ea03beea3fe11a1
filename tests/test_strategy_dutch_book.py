"""The Dutch-book strategy: pricing (depth walk, fees, signed-order rounding, the NO basket),
the events it refuses, the property that no plan can cost its payout, and replays of the
shipped recordings through the paper executor (the opportunity, the fee and depth variants, the
partial basket completed and unwound, a restart in the middle of a partial basket)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybot.config import load_config, parse_config
from polybot.events import (
    ENCODER,
    LIST_DECODER,
    BookDelta,
    BookSnapshot,
    FeedDisconnected,
    FeedStale,
    FeeSchedule,
    MarketInfo,
    OrderPlan,
    OrderSubmitted,
)
from polybot.execution.rules import LOT, limit_order_amounts, market_order_amounts, max_buy_cost, taker_fee
from polybot.journal import INPUT, JournalReader
from polybot.replay import replay
from polybot.units import SCALE
from polybot.wiring import build_executor, build_kernel
from strategies.dutch_book import DutchBook, LegBook, Pricing, acceptable, price_basket, quote_at

ROOT = Path(__file__).resolve().parents[1]
REC = ROOT / "recordings"
CONFIG = ROOT / "config" / "dutch_book.toml"
FEES = FeeSchedule(rate_ppm=40_000, exponent=1)
POLYBOT = str(Path(sys.executable).parent / "polybot")


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location("make_dutch_book", REC / "make_dutch_book.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


GEN = _gen()


def u(x: str) -> int:
    whole, _, frac = x.partition(".")
    return int(whole) * SCALE + int((frac + "000000")[:6])


def leg(name: str, asks: list[tuple[str, float]], fees: FeeSchedule | None = FEES, min_size: int = 5 * SCALE,
        tick: int = 10_000) -> LegBook:  # fmt: skip
    return LegBook(name, "m-" + name, tuple((u(p), int(s * SCALE)) for p, s in asks), tick, min_size, fees)


def four(fees: FeeSchedule | None = FEES, a_first: float = 30) -> list[LegBook]:
    return [leg("a", [("0.40", a_first), ("0.41", 100)], fees), leg("b", [("0.28", 50), ("0.30", 100)], fees),
            leg("c", [("0.16", 40), ("0.19", 100)], fees), leg("d", [("0.11", 100)], fees)]  # fmt: skip


LIMIT = Pricing(order_kind="limit")


# ------------------------------------------------------------------------------ pricing


def test_depth_walk_fees_and_amounts_are_exact():
    q = price_basket(four(), SCALE, LIMIT)
    assert q is not None
    # the marginal basket price: 0.95 + fees (0-30), 0.96 + fees (30-40), then C's 0.19: 0.99 + 0.0278 > 0.995
    assert q.n == 40 * SCALE and q.payout == 40 * SCALE
    a, b, c, d = q.legs
    assert (a.price, a.cost, a.fee) == (410_000, 16_100_000, 288_000 + 96_760)  # 30 @ 0.40 + 10 @ 0.41
    assert a.worst == 16_400_000 + 387_040 == max_buy_cost(40 * SCALE, 410_000, FEES)
    assert (b.price, b.cost, b.fee) == (280_000, 11_200_000, 322_560)
    assert (c.price, c.cost, c.fee) == (160_000, 6_400_000, 215_040)
    assert (d.price, d.cost, d.fee) == (110_000, 4_400_000, 156_640)
    assert q.cost == 38_100_000 + 1_079_000 and q.profit == 821_000
    assert all((lq.maker, lq.taker) == (lq.price * 40, 40 * SCALE) for lq in q.legs)
    assert not acceptable(q, four(), LIMIT)


def test_market_orders_step_n_to_amounts_the_client_signs_exactly():
    # py-clob-client-v2 floors $16.40 (40 x 0.41) to $16.39 in floating point: 40 shares cannot be
    # signed as a market order at 0.41; 39 can (39 x 0.41 = $15.99)
    assert market_order_amounts("BUY", 16_400_000, 410_000, 10_000) != (16_400_000, 40 * SCALE)
    q = price_basket(four(), SCALE, Pricing(order_kind="market"))
    assert q is not None and q.n == 39 * SCALE
    for lq in q.legs:
        assert market_order_amounts("BUY", lq.price * 39, lq.price, 10_000) == (lq.price * 39, 39 * SCALE)
    # a limit of 0.57 signs 0.56 as a market order: never exact, the basket is refused; as a
    # limit order it is fine
    legs = [leg("a", [("0.57", 50)]), leg("b", [("0.20", 50)]), leg("c", [("0.10", 50)])]
    assert price_basket(legs, SCALE, Pricing(order_kind="market")) is None
    ql = price_basket(legs, SCALE, LIMIT)
    assert ql is not None and ql.n == 50 * SCALE
    assert limit_order_amounts("BUY", ql.n, 570_000, 10_000) == (ql.legs[0].maker, ql.n)


def test_fees_remove_the_opportunity():
    # the books of recordings/dutch-book-fees at its best: 0.40 + 0.30 + 0.17 + 0.10 = 0.97
    def legs(fees: FeeSchedule | None) -> list[LegBook]:
        return [leg("a", [("0.40", 40), ("0.41", 100)], fees), leg("b", [("0.30", 60), ("0.31", 100)], fees),
                leg("c", [("0.17", 45), ("0.19", 100)], fees), leg("d", [("0.10", 80), ("0.11", 100)], fees)]  # fmt: skip

    assert price_basket(legs(FEES), SCALE, LIMIT) is None  # 0.97 + 0.0272 fees >= 0.995
    free = price_basket(legs(None), SCALE, LIMIT)
    # fee-free, A's 0.41 is walked too (0.98 < 0.995) up to C's 45 shares: 40 x 0.03 + 5 x 0.02
    assert free is not None and free.n == 45 * SCALE and free.profit == 1_300_000
    q = quote_at(legs(FEES), 40 * SCALE, SCALE, LIMIT)
    assert q is not None and "x (1 - margin)" in acceptable(q, legs(FEES), LIMIT)


def test_depth_minimum_size_and_dollar_rules():
    # only 3 shares at A's 0.39: beyond them A's 0.41 makes the basket too dear
    legs = [leg("a", [("0.39", 3), ("0.41", 100)]), leg("b", [("0.30", 60)]), leg("c", [("0.16", 45)]),
            leg("d", [("0.10", 80)])]  # fmt: skip
    assert price_basket(legs, SCALE, LIMIT) is None
    q3 = quote_at(legs, 3 * SCALE, SCALE, LIMIT)
    assert q3 is not None and "min_order_size" in acceptable(q3, legs, LIMIT)
    small = [attrs_evolve(x, min_size=LOT) for x in legs]
    assert "$1" in acceptable(quote_at(small, 3 * SCALE, SCALE, LIMIT), small, LIMIT)  # D: 3 x 0.10 = $0.30
    assert price_basket(small, SCALE, LIMIT) is None
    deep = [leg("a", [("0.39", 40)]), *legs[1:]]
    q = price_basket(deep, SCALE, LIMIT)
    assert q is not None and q.n == 40 * SCALE


def attrs_evolve(x: LegBook, **kw: Any) -> LegBook:
    import attrs

    return attrs.evolve(x, **kw)


def test_caps_levels_and_slippage():
    assert price_basket(four(), SCALE, Pricing(order_kind="limit", max_shares=10 * SCALE)).n == 10 * SCALE
    q = price_basket(four(), SCALE, Pricing(order_kind="limit", max_notional=20 * SCALE))
    assert q is not None and q.worst <= 20 * SCALE
    assert quote_at(four(), q.n + LOT, SCALE, LIMIT).worst > 20 * SCALE
    assert price_basket(four(), SCALE, Pricing(order_kind="limit", max_levels=1)).n == 30 * SCALE
    assert price_basket(four(), SCALE, Pricing(order_kind="limit", max_slippage=0)).n == 30 * SCALE
    # off the tick grid: never walked
    odd = [leg("a", [("0.40", 30), ("0.405", 100)]), *four()[1:]]
    assert price_basket(odd, SCALE, LIMIT).n == 30 * SCALE
    assert price_basket(four(), SCALE, Pricing(order_kind="limit", margin=50_000)) is None  # 5 %: too little


def test_no_basket_pays_m_minus_one():
    # recordings/dutch-book-no: NO asks 0.38 + 0.62 + 0.95 = 1.95 for a payout of 2
    legs = [leg("cut", [("0.38", 70), ("0.39", 100)]), leg("hold", [("0.62", 55), ("0.65", 350)]),
            leg("hike", [("0.95", 300)])]  # fmt: skip
    q = price_basket(legs, 2 * SCALE, LIMIT)
    assert q is not None and q.n == 55 * SCALE and q.payout == 110 * SCALE
    assert q.cost == 107_250_000 + 1_141_140 and q.profit == 1_608_860
    assert price_basket(legs, SCALE, LIMIT) is None  # as a YES basket it would be absurd


# ------------------------------------------------------------------------------ property


@st.composite
def baskets(draw: Any) -> tuple[list[LegBook], int, Pricing]:
    """An event of 2-5 outcomes whose best asks sum to within a few cents of the payout (most
    examples are opportunities at the top, many stop being one a level or two deeper)."""
    m = draw(st.integers(2, 5))
    no = draw(st.booleans())
    per_share = (m - 1) * SCALE if no else SCALE
    cents = per_share // 10_000
    total = draw(st.integers(max(cents - 15, 3 * m), cents + 1))
    tops = [3] * m  # at least 0.03 each, the rest spread at random (at most 0.99)
    for _ in range(total - 3 * m):
        i = draw(st.integers(0, m - 1))
        if tops[i] < 99:
            tops[i] += 1
    exp = draw(st.sampled_from([1, 1, 1, 2]))
    rate = draw(st.sampled_from([0, 10_000, 40_000, 72_000] if exp == 1 else [250_000]))
    fees = FeeSchedule(rate_ppm=rate, exponent=exp) if rate else None
    legs = []
    for i, top in enumerate(tops):
        levels = []
        price = top
        for _ in range(draw(st.integers(1, 4))):
            if price > 99:
                break
            size = draw(st.integers(1, 400)) * SCALE + draw(st.sampled_from([0, 1_000, 10_000, 370_000]))
            levels.append((price * 10_000, size))
            price += draw(st.integers(1, 3))
        legs.append(LegBook(f"t{i}", f"m{i}", tuple(levels), 10_000, draw(st.sampled_from([LOT, SCALE, 5 * SCALE])),
                            fees))  # fmt: skip
    pr = Pricing(margin=draw(st.sampled_from([0, 1_000, 5_000, 20_000])),
                 max_shares=draw(st.sampled_from([3 * SCALE, 37 * SCALE, 100 * SCALE, 10_000 * SCALE])),
                 max_notional=draw(st.sampled_from([0, 0, 50 * SCALE, 1000 * SCALE])),
                 max_levels=draw(st.integers(1, 4)), max_slippage=draw(st.sampled_from([0, 10_000, 30_000])),
                 order_kind=draw(st.sampled_from(["market", "limit"])))  # fmt: skip
    return legs, per_share, pr


def _check_plan(legs: list[LegBook], sizes: list[int], prices: list[int], per_share: int, pr: Pricing) -> None:
    """The invariant, recomputed from the legs alone: worst-case cost (every leg filled at its
    limit, fee at the limit rounded up) and the book-walked cost stay below the payout."""
    n = sizes[0]
    assert all(s == n for s in sizes) and n > 0 and n % LOT == 0 and n <= pr.max_shares
    payout = n * per_share // SCALE
    worst = sum(max_buy_cost(n, p, lg.fees) for p, lg in zip(prices, legs))
    assert worst < payout
    walked = 0
    for p_lim, lg in zip(prices, legs):
        assert n >= lg.min_size and p_lim * n >= SCALE * SCALE  # venue minimums: size and $1
        best = lg.asks[0][0]
        assert p_lim - best <= pr.max_slippage
        left = n
        for p, s in lg.asks[: pr.max_levels]:
            if p > p_lim or left == 0:
                break
            q = min(s, left)
            walked += p * q // SCALE + taker_fee(q, p, lg.fees)
            left -= q
        assert left == 0
        signed = (market_order_amounts("BUY", p_lim * n // SCALE, p_lim, lg.tick) if pr.order_kind == "market"
                  else limit_order_amounts("BUY", n, p_lim, lg.tick))  # fmt: skip
        assert signed == (p_lim * n // SCALE, n)
    assert walked <= worst
    assert walked * SCALE < payout * (SCALE - pr.margin)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(baskets())
def test_property_no_plan_reaches_its_payout(case):
    legs, per_share, pr = case
    q = price_basket(legs, per_share, pr)
    if q is not None:
        _check_plan(legs, [lq.size for lq in q.legs], [lq.price for lq in q.legs], per_share, pr)


def _event_infos(m: int, fees: FeeSchedule | None, min_size: int) -> list[MarketInfo]:
    return [MarketInfo(market=f"mkt{i}", asset_ids=(f"yes{i}", f"no{i}"), outcomes=("Yes", "No"), event_id="ev",
                       neg_risk=True, neg_risk_market_id="nr", min_order_size=min_size, fees=fees)
            for i in range(m)]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(baskets())
def test_property_holds_for_the_plans_the_strategy_emits(case):
    legs, per_share, pr = case
    m = len(legs)
    side = "yes" if per_share == SCALE else "no"
    cfg = parse_config({"strategies": {"db": {
        "class": "dutch_book", "sides": [side], "margin": pr.margin / SCALE, "max_shares": pr.max_shares / SCALE,
        "max_notional": pr.max_notional // SCALE, "max_levels": pr.max_levels, "max_slippage": pr.max_slippage / SCALE,
        "order_kind": pr.order_kind}}})  # fmt: skip
    k = build_kernel(cfg)
    plans: list[OrderPlan] = []
    k.bus.subscribe(OrderPlan, plans.append)
    k.start()
    infos = _event_infos(m, legs[0].fees, legs[0].min_size)
    k.process(1, "events", ENCODER.encode(infos))
    snaps = []
    for i, lg in enumerate(legs):
        books = {"yes": (), "no": ()}
        books[side] = lg.asks
        snaps.append(BookSnapshot(asset_id=f"yes{i}", market=f"mkt{i}", asks=books["yes"], tick_size=10_000))
        snaps.append(BookSnapshot(asset_id=f"no{i}", market=f"mkt{i}", asks=books["no"], tick_size=10_000))
    k.process(2, "events", ENCODER.encode(snaps))
    same_min = [attrs_evolve(lg, min_size=legs[0].min_size) for lg in legs]
    expected = price_basket(same_min, per_share, pr)
    assert (len(plans) == 1) == (expected is not None)
    for plan in plans:
        assert [leg_.asset_id for leg_ in plan.legs] == [f"{side}{i}" for i in range(m)]
        assert all(x.tif == "FOK" and x.side == "BUY" and x.kind == pr.order_kind for x in plan.legs)
        _check_plan(same_min, [x.size for x in plan.legs], [x.price for x in plan.legs], per_share, pr)


# ------------------------------------------------------------------------------ refusals


def _records(scenario: Any = None, seed: int = 11) -> list[tuple[int, str, bytes]]:
    scen = scenario or (lambda ev: GEN.yes_scenario(ev))
    return GEN.session(GEN.candidates(), scen, seed, 1)


def _map_infos(recs: list[tuple[int, str, bytes]], **changes: Any) -> list[tuple[int, str, bytes]]:
    ts, src, msg = recs[0]
    infos = [msgspec.structs.replace(i, **changes) for i in LIST_DECODER.decode(msg)]
    return [(ts, src, ENCODER.encode(infos)), *recs[1:]]


def run(recs: list[tuple[int, str, bytes]], latency_ms: float = 50, **params: Any) -> tuple[Any, list[OrderSubmitted]]:
    cfg = parse_config({"executor": {"kind": "paper", "params": {"cash": "1000", "latency_ms": latency_ms}},
                        "strategies": {"dutch": {"class": "dutch_book", **params}}})  # fmt: skip
    k = build_kernel(cfg, executor=build_executor(cfg), synthesize_timers=True)
    sent: list[OrderSubmitted] = []
    k.bus.subscribe(OrderSubmitted, sent.append)
    k.start()
    for ts, src, msg in recs:
        k.process(ts, src, msg)
    return k, sent


def test_the_generated_session_trades_and_each_refusal_blocks_it():
    k, sent = run(_records())
    assert len(sent) == 4 and k.strategies["dutch"].stats["filled"] == 1
    # an augmented event: an unlisted outcome could win
    assert run(_map_infos(_records(), neg_risk_augmented=True))[1] == []
    # not a neg-risk event at all
    assert run(_map_infos(_records(), neg_risk=False))[1] == []
    # an outcome the catalog does not know: the stated count refuses the event
    recs = _records()
    ev = GEN.candidates()
    infos = LIST_DECODER.decode(recs[0][2])[:3]
    three = [(recs[0][0], "events", ENCODER.encode(infos)), *recs[1:]]
    assert run(three, events={ev.event_id: 4})[1] == []
    trusting = run(three, events={ev.event_id: 0})[1]  # "trust the catalog" buys 3 outcomes of 4
    assert {o.asset_id for o in trusting[:3]} == {i.asset_ids[0] for i in infos} and trusting[0].intent.plan_id == "dutch-1"
    assert run(_records(), events={"some-other-event": 4})[1] == []
    # the settlement buffer (end_ts is two days after the session)
    assert run(_records(), settlement_buffer_s=3 * 86_400.0)[1] == []
    # stale legs: D's book last changed 1.2 s before the basket appears
    assert run(_records(), max_book_age_s=0.5)[1] == []
    assert len(run(_records(), max_book_age_s=2.0)[1]) == 4
    # an unhealthy book (a feed gap on A's YES token just before the scenario)
    i = 2 + 120
    gap = FeedDisconnected(feed="ws", asset_ids=(ev.yes[0],))
    recs = [*recs[:i], (recs[i][0] - 1, "events", ENCODER.encode(gap)), *recs[i:]]
    k2, sent = run(recs)
    assert sent == [] and not k2.books.get(ev.yes[0]).healthy
    # a FeedStale naming D's YES token after its last change: stale until D's book changes
    recs = _records()
    t0 = recs[2 + 120][0]  # the scenario: D's 0.10 at +1 s, C's 0.16 at +1.4 s, ..., A's 0.39 at +2.2 s
    i = next(j for j, r in enumerate(recs) if r[0] >= t0 + 1100 * GEN.MS)
    stale = FeedStale(feed="ws", asset_id=ev.yes[3], age_ns=60 * GEN.S)
    assert run([*recs[:i], (recs[i][0] - 1, "events", ENCODER.encode(stale)), *recs[i:]])[1] == []
    # only the NO basket is looked for: no YES orders
    assert run(_records(), sides=["no"])[1] == []


def _persistent(ev: Any, last: Any = None) -> list[tuple[int, list[Any]]]:
    """The -fees books (asks 0.40 + 0.30 + 0.17 + 0.10: an opportunity before the fees, none
    after), left standing; ``last(ev)`` makes A's final change instead."""
    sc = GEN._pull_bids(ev)
    sc += [(1000 * GEN.MS, ev.set(3, "ASK", "0.10", 80)), (1400 * GEN.MS, ev.set(2, "ASK", "0.17", 45)),
           (1800 * GEN.MS, ev.set(1, "ASK", "0.30", 60))]  # fmt: skip
    sc.append((2200 * GEN.MS, last(ev) if last is not None else ev.set(0, "ASK", "0.40", 40)))
    return sc


def test_the_middle_of_a_frame_is_not_acted_on():
    """A's 0.39 ask appears and goes within one frame (its first entry has run_end False): the
    state after that entry is not the book -- a basket priced on it is killed at the venue."""
    def frame(ev: Any) -> list[Any]:
        ya, na = ev.set(0, "ASK", "0.39", 40)
        yb, nb = ev.set(0, "ASK", "0.39", 0)
        return [msgspec.structs.replace(ya, run_end=False), yb, msgspec.structs.replace(na, run_end=False), nb]

    k, sent = run(GEN.session(GEN.candidates(), lambda ev: _persistent(ev, frame), 12, 1))
    assert sent == [] and k.strategies["dutch"].stats["baskets"] == 0
    # the same level standing (run_end on its entry) is the trade
    k, sent = run(GEN.session(GEN.candidates(), lambda ev: _persistent(ev, lambda e: e.set(0, "ASK", "0.39", 40)), 12, 1))
    assert len({o.asset_id for o in sent[:4]}) == 4 and sent[0].intent.plan_id == "dutch-1"


def test_changes_that_cannot_move_a_basket_do_not_reprice_it(monkeypatch: Any):
    """While the best asks sum under the threshold but fees remove the edge, a book change that
    cannot change the basket (a bid, an ask beyond the walked levels) must not re-price it."""
    import strategies.dutch_book as dbm

    calls: list[int] = []
    real = dbm.price_basket
    monkeypatch.setattr(dbm, "price_basket", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    recs = GEN.session(GEN.candidates(), _persistent, 12, 1)[:-1]  # (not the resolution)
    k, sent = run(recs)
    assert sent == [] and calls  # priced, and refused (fees)
    ev = GEN.candidates()
    n = len(calls)
    ts = recs[-1][0] + GEN.MS
    yes_a = ev.yes[0]
    for j in range(30):  # bids come and go, and a level far behind the asks
        side, price = ("BID", 330_000 + (j % 3) * 10_000) if j % 2 else ("ASK", 900_000)
        d = BookDelta(asset_id=yes_a, market=ev.markets[0], side=side, price=price, size=(j + 1) * SCALE)
        k.process(ts + j, "events", ENCODER.encode([d]))
    assert len(calls) == n
    book = k.books.get(yes_a)
    d = BookDelta(asset_id=yes_a, market=ev.markets[0], side="ASK", price=book.best_ask, size=41 * SCALE)
    k.process(ts + 100, "events", ENCODER.encode([d]))  # the best ask's size: a new price
    assert len(calls) == n + 1


def test_bad_params_are_refused():
    for bad in ({"margin": "1"}, {"max_levels": 0}, {"retry_s": 0}, {"cooldown_s": -1}, {"events": {"e": -1}}):
        with pytest.raises(ValueError, match="strategies.dutch"):
            run(_records()[:1], **bad)


def test_a_resized_basket_is_tracked_at_its_new_size():
    cfg = parse_config({"executor": {"kind": "paper", "params": {"latency_ms": 50}},
                        "risk": {"chain": ["trading_state", "position_caps"],
                                 "validators": {"position_caps": {"max_shares": "25"}}},
                        "strategies": {"dutch": {"class": "dutch_book"}}})  # fmt: skip
    k = _kernel(cfg)
    sent: list[OrderSubmitted] = []
    k.bus.subscribe(OrderSubmitted, sent.append)
    for ts, src, msg in _records():
        k.process(ts, src, msg)
    assert [o.intent.size for o in sent] == [25 * SCALE] * 4
    strat = k.strategies["dutch"]
    # 25 x (1 - 0.95) - fees 25 x 0.04 x (0.2379 + 0.21 + 0.1344 + 0.09)
    assert strat.stats["filled"] == 1 and strat.stats["locked_profit"] == 1_250_000 - 672_300
    assert k.portfolio.realized_pnl() == 1_250_000 - 672_300


def test_cooldown_between_baskets():
    def scen(ev: Any) -> list[tuple[int, list[Any]]]:
        sc = [(0, ev.set(0, "BID", "0.39", 0)), (100 * GEN.MS, ev.set(1, "BID", "0.29", 0)),
              (200 * GEN.MS, ev.set(2, "BID", "0.17", 0) + ev.set(2, "BID", "0.16", 0)),
              (300 * GEN.MS, ev.set(3, "ASK", "0.10", 900)), (400 * GEN.MS, ev.set(2, "ASK", "0.16", 900)),
              (500 * GEN.MS, ev.set(1, "ASK", "0.30", 900)), (600 * GEN.MS, ev.set(0, "ASK", "0.39", 900))]  # fmt: skip
        for j in range(34):  # 17 s of small changes behind the touch
            sc.append((700 * GEN.MS + j * 500 * GEN.MS, ev.set(j % 4, "ASK", ["0.43", "0.33", "0.21", "0.13"][j % 4], 50 + j)))
        sc.append((18 * GEN.S, ev.set(0, "ASK", "0.39", 0)))
        return sc

    k, sent = run(_records(scen), max_shares="10", cooldown_s=5.0)
    times = sorted({s.ts for s in sent})
    assert len(sent) == 16 and len(times) == 4  # at 0, 5, 10 and 15 s
    assert all(b - a == 5 * GEN.S for a, b in zip(times, times[1:]))
    st_ = k.strategies["dutch"].stats
    assert st_["filled"] == 4 and st_["shares"] == 40 * SCALE


# ------------------------------------------------------------------------------ replays


def _cfg(**strategy: Any) -> Any:
    cfg = load_config(CONFIG)
    st_ = dict(cfg.strategies)
    st_["dutch"] = {**st_["dutch"], **strategy}
    return msgspec.structs.replace(cfg, strategies=st_)


def replay_rec(name: str, **strategy: Any) -> tuple[dict[str, Any], Any, list[OrderSubmitted]]:
    got: dict[str, Any] = {}
    sent: list[OrderSubmitted] = []

    def hook(k: Any) -> None:
        got["k"] = k
        k.bus.subscribe(OrderSubmitted, sent.append)

    s = replay(REC / f"dutch-book-{name}.jsonl.gz", _cfg(**strategy), on_kernel=hook)
    assert s["errors"] == {} and s["trading_state"] == "active"
    return s, got["k"].strategies["dutch"], sent


def test_replay_yes_basket_locks_a_profit():
    s, strat, sent = replay_rec("yes")
    ev = GEN.candidates()
    assert s["orders"] == 4 and s["fills"] == 4 and s["rejections"] == 0
    assert sorted(o.asset_id for o in sent) == sorted(ev.yes)
    assert {(o.intent.side, o.intent.tif, o.intent.kind, o.intent.size) for o in sent} == {("BUY", "FOK", "market", 40 * SCALE)}
    assert sorted(o.intent.price for o in sent) == [100_000, 160_000, 300_000, 390_000]
    assert len({o.intent.plan_id for o in sent}) == 1
    # resolved: one YES paid 40; the basket cost 38 + 1.07568 fees
    assert s["pnl"]["realized"] == "2" and s["pnl"]["fees"] == "1.07568" and s["pnl"]["net"] == "0.92432"
    assert strat.stats["filled"] == 1 and strat.stats["locked_profit"] == 924_320 and strat.stats["partials"] == 0


@pytest.mark.parametrize("name", ["fees", "depth"])
def test_replay_fee_and_depth_variants_trade_nothing(name):
    s, strat, sent = replay_rec(name)
    assert s["intents"] == 0 and s["orders"] == 0 and sent == [] and s["pnl"]["net"] == "0"
    assert strat.stats["baskets"] == 0


def test_replay_no_basket():
    s, strat, sent = replay_rec("no")
    ev = GEN.fed()
    assert s["orders"] == 3 and s["fills"] == 3
    assert sorted(o.asset_id for o in sent) == sorted(ev.no)
    assert sorted(o.intent.price for o in sent) == [380_000, 620_000, 950_000]
    assert s["pnl"]["net"] == "1.60886" and strat.stats["locked_profit"] == 1_608_860


def test_replay_partial_basket_completed():
    s, strat, sent = replay_rec("partial", partial="complete")
    c = GEN.candidates().yes[2]
    # 4 legs, C's FOK killed (another taker was first), then C completed at 0.18
    assert s["orders"] == 5 and s["fills"] == 4
    assert [(o.asset_id, o.intent.price) for o in sent if o.asset_id == c] == [(c, 160_000), (c, 180_000)]
    st_ = strat.stats
    assert st_["partials"] == 1 and st_["completed"] == 1 and st_["unwound"] == 0
    # the cost above the plan: 40 x (0.18 - 0.16) + the fee difference (0.23616 - 0.21504)
    assert st_["partial_cost"] == 800_000 + 21_120
    assert st_["locked_profit"] == 924_320 - 821_120 == 103_200
    assert s["pnl"]["net"] == "0.1032"
    assert strat.history[-1]["outcome"] == "completed" and strat.history[-1]["partial_cost"] == 821_120


def test_replay_partial_basket_unwound():
    s, strat, sent = replay_rec("partial", partial="unwind")
    sells = [o for o in sent if o.intent.side == "SELL"]
    assert s["orders"] == 7 and len(sells) == 3
    assert all(o.intent.reduce_only and o.intent.tif == "FAK" and o.intent.size == 40 * SCALE for o in sells)
    assert sorted(o.intent.price for o in sells) == [90_000, 280_000, 380_000]  # the best bids
    st_ = strat.stats
    assert st_["partials"] == 1 and st_["unwound"] == 1 and st_["completed"] == 0 and st_["locked_profit"] == 0
    # paid 32.46064 for A, B, D (fees in), sold for 29.16944 net: the cost is the session's loss
    assert st_["partial_cost"] == 3_291_200 and s["pnl"]["net"] == "-3.2912" and s["positions"] == {}


def test_replay_partial_completion_over_budget_falls_back_to_unwind():
    s, strat, sent = replay_rec("partial", partial="complete", max_extra_cost="0.5")
    st_ = strat.stats
    assert st_["partials"] == 1 and st_["unwound"] == 1 and st_["completed"] == 0
    assert [o.intent.side for o in sent].count("SELL") == 3 and s["positions"] == {}
    assert st_["partial_cost"] == -int(round(float(s["pnl"]["net"]) * SCALE))


def test_restart_in_the_middle_of_a_partial_basket():
    """Snapshot the kernel while the basket's legs travel, restore into a new one, finish the
    recording there: same orders, stats and PnL as without the restart."""
    path = REC / "dutch-book-partial.jsonl.gz"
    recs = [(ts, src, msg) for kind, ts, src, msg in JournalReader(path) if kind == INPUT]
    cfg = _cfg(partial="complete")
    plain = _kernel(cfg)
    for ts, src, msg in recs:
        plain.process(ts, src, msg)
    a = _kernel(cfg)
    rest = iter(recs)
    for ts, src, msg in rest:
        a.process(ts, src, msg)
        if a.stats.orders:
            break  # the basket is sent; its FOKs reach the book in 50 ms
    strat = a.strategies["dutch"]
    assert strat.baskets and len(a.orders.open_orders()) == 4
    state = msgspec.json.decode(msgspec.json.encode(a.to_state()))
    b = _kernel(cfg)
    b.restore(state)
    assert b.strategies["dutch"].baskets == strat.baskets and b.strategies["dutch"].seq == 1
    for ts, src, msg in rest:
        b.process(ts, src, msg)
    assert b.strategies["dutch"].stats == plain.strategies["dutch"].stats
    assert b.strategies["dutch"].stats["completed"] == 1
    assert b.portfolio.cash == plain.portfolio.cash
    assert b.portfolio.realized_pnl() == plain.portfolio.realized_pnl() == 103_200


def _kernel(cfg: Any) -> Any:
    k = build_kernel(cfg, executor=build_executor(cfg), synthesize_timers=True)
    k.start()
    return k


def test_snapshot_round_trip_and_strategy_listing():
    _, strat, _ = replay_rec("partial", partial="unwind")
    snap = strat.snapshot()
    assert msgspec.json.decode(msgspec.json.encode(snap)) == snap
    assert snap["stats"]["partial_cost"] == 3_291_200 and snap["history"][-1]["outcome"] == "unwound"
    assert (DutchBook.__doc__ or "").startswith("Buys every outcome of a neg-risk event")


def test_cli_replay_and_recordings_are_reproducible(tmp_path):
    r = subprocess.run([POLYBOT, "replay", str(REC / "dutch-book-yes.jsonl.gz"), "--config", str(CONFIG)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "orders 4, fills 4" in r.stdout and "net 0.92432" in r.stdout
    GEN.build(tmp_path)
    for name in ("yes", "fees", "depth", "partial", "no"):
        f = f"dutch-book-{name}.jsonl.gz"
        assert (tmp_path / f).read_bytes() == (REC / f).read_bytes(), f"{f} is stale: run recordings/make_dutch_book.py"
        assert (REC / f).stat().st_size < 50_000
