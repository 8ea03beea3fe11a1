"""polybot.report: the session report, driven through a real kernel's door.

Every figure below is worked out by hand in the comments (base units: 1 share / 1 USDC =
1_000_000)."""

from __future__ import annotations

import msgspec

from polybot.events import (
    ENCODER,
    BookDelta,
    BookSnapshot,
    Event,
    MarketInfo,
    MarketResolved,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderPartiallyFilled,
    OrderPlan,
    OrderRejected,
)
from polybot.execution import RecordedExecutor
from polybot.kernel import Kernel
from polybot.report import SessionReport
from polybot.units import SCALE, from_units

SHARE = SCALE
EXEC = "exec.rec"


def kernel() -> Kernel:
    """A kernel whose executor sends nothing: the test plays the venue through ``exec.rec``."""
    return Kernel(executor=RecordedExecutor("rec"))


def events(k: Kernel, ts: int, *evs: Event) -> None:
    k.process(ts, "events", ENCODER.encode(list(evs)))


def venue(k: Kernel, ts: int, *evs: Event) -> None:
    k.process(ts, EXEC, ENCODER.encode(list(evs)))


def book(aid: str, market: str, bids: tuple, asks: tuple) -> BookSnapshot:
    return BookSnapshot(asset_id=aid, market=market, bids=tuple((p, 100 * SHARE) for p in bids),
                        asks=tuple((p, 100 * SHARE) for p in asks))  # fmt: skip


def buy(k: Kernel, strategy: str, aid: str, price: int, size: int, side: str = "BUY", **kw) -> str:  # noqa: ANN003
    d = k.submit(strategy, OrderIntent(strategy="", asset_id=aid, side=side, price=price, size=size, **kw))  # type: ignore[arg-type]
    assert d.approved, d
    return d.client_ids[0]


def filled(cid: str, aid: str, side: str, price: int, size: int, liquidity: str = "taker", fee: int = 0,
           rebate: int = 0, market: str = "") -> OrderFilled:  # fmt: skip
    return OrderFilled(client_id=cid, asset_id=aid, trade_id="t-" + cid, side=side, price=price, size=size,  # type: ignore[arg-type]
                       liquidity=liquidity, fee=fee, rebate=rebate, market=market)  # type: ignore[arg-type]


def setup() -> tuple[Kernel, SessionReport, SessionReport]:
    k = kernel()
    rep = SessionReport(k, sample_ns=1_000)
    mid = SessionReport(k, mark="mid", sample_ns=1_000)
    events(k, 1,
           MarketInfo(market="m1", asset_ids=("Y1", "N1")), MarketInfo(market="m2", asset_ids=("Y2", "N2")),
           book("Y1", "m1", (380_000,), (400_000,)), book("N1", "m1", (530_000,), (550_000,)),
           book("Y2", "m2", (600_000, 500_000, 450_000), (620_000,)))  # fmt: skip
    return k, rep, mid


def play(k: Kernel) -> dict[str, str]:
    """The session of :func:`test_session_report_by_hand`; returns the client ids by name."""
    ids = {}
    # s1 buys 10 YES of m1 at 0.40, taker, fee 0.01: equity 10 x 0.38 (bid) - 4.00 - 0.01 = -0.21
    ids["y1"] = buy(k, "s1", "Y1", 400_000, 10 * SHARE)
    venue(k, 11, OrderAccepted(client_id=ids["y1"]), filled(ids["y1"], "Y1", "BUY", 400_000, 10 * SHARE, fee=10_000))
    # s1 buys 10 NO of m1 at 0.55, maker, rebate 0.005: 10 pairs worth 10 for 9.50,
    # equity 10 - 9.5 - 0.01 + 0.005 = +0.495 (the peak of s1, m1 and the account)
    k.process(20, "clock", b"{}")
    ids["n1"] = buy(k, "s1", "N1", 550_000, 10 * SHARE)
    venue(k, 21, filled(ids["n1"], "N1", "BUY", 550_000, 10 * SHARE, "maker", rebate=5_000, market="m1"))
    # s2 buys 20 YES of m2 at 0.62 in two fills, fee 0.02: 20 x 0.60 - 12.40 - 0.02 = -0.42
    # (account: 0.495 - 0.42 = 0.075)
    k.process(30, "clock", b"{}")
    ids["y2"] = buy(k, "s2", "Y2", 620_000, 20 * SHARE)
    venue(k, 31, OrderPartiallyFilled(client_id=ids["y2"], asset_id="Y2", trade_id="a", side="BUY", price=620_000,
                                      size=5 * SHARE, liquidity="taker", fee=5_000),
          filled(ids["y2"], "Y2", "BUY", 620_000, 15 * SHARE, fee=15_000))  # fmt: skip
    # Y2's bid falls to 0.50 (held: sampled): s2 and m2 at 20 x 0.5 - 12.42 = -2.42, the account
    # at 0.495 - 2.42 = -1.925 (a drawdown of 2.42 from 0.495)
    events(k, 40, BookDelta(asset_id="Y2", side="BID", price=600_000, size=0))
    # ... then to 0.45, within 1000 ns of the last sample: not sampled (it would be -3.42)
    events(k, 50, BookDelta(asset_id="Y2", side="BID", price=500_000, size=0))
    # a book change of an asset nobody holds never samples
    events(k, 1_500, BookDelta(asset_id="N2", side="BID", price=100_000, size=SHARE))
    # ... and back up to 0.58 later (sampled): s2 at 20 x 0.58 - 12.42 = -0.82; account -0.325
    events(k, 2_000, BookDelta(asset_id="Y2", side="BID", price=580_000, size=SHARE))
    # s1 sells 5 YES at 0.45: realizes 5 x (0.45 - 0.40) = 0.25; 5 pairs + 5 NO at 0.53:
    # equity 0.25 + (5 + 2.65) - 7.5 - 0.01 + 0.005 = 0.395; account 0.395 - 0.82 = -0.425
    ids["sell"] = buy(k, "s1", "Y1", 450_000, 5 * SHARE, side="SELL")
    venue(k, 2_101, filled(ids["sell"], "Y1", "SELL", 450_000, 5 * SHARE))
    # orders that do not fill: a risk rejection (off the 0.01 lot), an executor rejection and a
    # fill the state machine refuses after it, a cancel told twice, an expiry
    d = k.submit("s2", OrderIntent(strategy="", asset_id="Y2", side="BUY", price=500_000, size=1_234_567))
    assert not d.approved
    ids["rej"] = buy(k, "s2", "N2", 300_000, SHARE)
    venue(k, 2_200, OrderRejected(client_id=ids["rej"], reason="not enough balance"))
    venue(k, 2_201, filled(ids["rej"], "N2", "BUY", 300_000, SHARE))
    assert k.stats.illegal_transitions == 1 and k.portfolio.size("N2") == 0
    ids["cxl"] = buy(k, "s1", "N1", 500_000, SHARE)
    k.cancel("s1", ids["cxl"])
    venue(k, 2_300, OrderCancelled(client_id=ids["cxl"]), OrderCancelled(client_id=ids["cxl"]))
    ids["gtd"] = buy(k, "s2", "Y2", 400_000, SHARE, tif="GTD", expire_ts=2_400)
    venue(k, 2_400, OrderAccepted(client_id=ids["gtd"]), OrderExpired(client_id=ids["gtd"]))
    # m1 resolves YES: s1's 5 YES pay 5 (cost 2.0), its 10 NO nothing (cost 5.5): realized
    # 0.25 + 3.0 - 5.5 = -2.25, equity -2.255 (a drawdown of 2.75 from 0.495);
    # the account at -2.255 - 0.82 = -3.075 (a drawdown of 3.57 from 0.495)
    events(k, 3_000, MarketResolved(market="m1", asset_ids=("Y1", "N1"), winning_asset_id="Y1"))
    return ids


def pick(section: dict, *keys: str) -> tuple:
    return tuple(section[k] for k in keys)


PNL = ("realized_pnl", "unrealized_pnl", "fees", "rebates", "net_pnl", "max_drawdown")
ORDERS = ("orders_submitted", "orders_rejected", "orders_rejected_risk", "orders_rejected_exec",
          "orders_cancelled", "orders_expired", "fills", "maker_fills", "taker_fills", "volume", "notional")  # fmt: skip


def test_session_report_by_hand() -> None:
    k, rep, mid = setup()
    play(k)
    s = rep.summary()
    assert list(s) == ["mark", "sample_ns", "equity_samples", "totals", "per_strategy", "per_market"]
    assert list(s["per_strategy"]) == ["s1", "s2"] and list(s["per_market"]) == ["m1", "m2"]
    t, s1, s2 = s["totals"], s["per_strategy"]["s1"], s["per_strategy"]["s2"]
    m1, m2 = s["per_market"]["m1"], s["per_market"]["m2"]

    # activity: s1 placed 4 orders (3 filled, 1 cancelled), s2 placed 4 (1 filled in 2 fills, 1
    # refused by risk before submission, 1 rejected by the venue, 1 expired)
    assert pick(s1, *ORDERS) == (4, 0, 0, 0, 1, 0, 3, 1, 2, 25 * SHARE, 4_000_000 + 5_500_000 + 2_250_000)
    assert pick(s2, *ORDERS) == (3, 2, 1, 1, 0, 1, 2, 0, 2, 20 * SHARE, 12_400_000)
    assert pick(t, *ORDERS) == (7, 2, 1, 1, 1, 1, 5, 1, 4, 45 * SHARE, 24_150_000)
    assert pick(m1, *ORDERS) == pick(s1, *ORDERS) and pick(m2, *ORDERS) == pick(s2, *ORDERS)

    # PnL at the end (Y2 marked at its 0.58 bid) and the max drawdowns worked out in play()
    assert pick(s1, *PNL) == (-2_250_000, 0, 10_000, 5_000, -2_255_000, 2_750_000)
    assert pick(s2, *PNL) == (0, 20 * 580_000 - 12_400_000, 20_000, 0, -820_000, 2_420_000)
    assert pick(m1, *PNL) == pick(s1, *PNL) and pick(m2, *PNL) == pick(s2, *PNL)
    assert pick(t, *PNL) == (-2_250_000, -800_000, 30_000, 5_000, -3_075_000, 3_570_000)
    # cash moved: -4.01 - 5.495 - 12.42 + 2.25 + 5 (settlement) = -14.675; plus 11.6 of marks
    assert (t["cash"], t["starting_cash"]) == (-14_675_000, 0)
    assert t["cash"] + 20 * 580_000 == t["net_pnl"]

    # decimal twins of every amount
    assert (t["net_pnl_str"], t["max_drawdown_str"], t["volume_str"], t["cash_str"]) == ("-3.075", "3.57", "45", "-14.675")
    assert all(sec[key + "_str"] == from_units(sec[key]) for sec in (t, s1, s2, m1, m2) for key in PNL)
    # samples: 5 fills (one per fill event), 2 book changes, 1 settlement
    assert s["equity_samples"] == 8

    # the same session marked at the mid: Y2's end mid is (0.58 + 0.62) / 2 = 0.60
    sm = mid.summary()
    assert sm["mark"] == "mid"
    assert sm["per_strategy"]["s2"]["unrealized_pnl"] == 20 * 600_000 - 12_400_000
    assert sm["totals"]["net_pnl"] == -2_255_000 - 420_000

    # JSON-able and deterministic
    assert msgspec.json.decode(msgspec.json.encode(s)) == s
    assert rep.summary() == s, "summary() reads, it changes nothing"


def test_report_is_deterministic_across_runs() -> None:
    outs = []
    for _ in range(2):
        k, rep, _mid = setup()
        play(k)
        outs.append(msgspec.json.encode(rep.summary()))
    assert outs[0] == outs[1]


def test_pairs_across_strategies_and_a_rejected_plan() -> None:
    k = kernel()
    rep = SessionReport(k, sample_ns=10**9)
    assert k.portfolio.catalog is k.catalog, "the report gives the portfolio the kernel's catalog"
    events(k, 1, MarketInfo(market="m", asset_ids=("Y", "N")),
           book("Y", "m", (380_000,), (420_000,)), book("N", "m", (500_000,), (600_000,)))  # fmt: skip
    a = buy(k, "a", "Y", 420_000, 10 * SHARE)
    b = buy(k, "b", "N", 550_000, 10 * SHARE)
    venue(k, 2, filled(a, "Y", "BUY", 400_000, 10 * SHARE, "maker"), filled(b, "N", "BUY", 550_000, 10 * SHARE, fee=20_000))
    # a plan with an illegal leg is rejected whole: both legs count as rejected orders
    d = k.submit("a", OrderPlan(strategy="a", plan_id="", legs=(
        OrderIntent(strategy="", asset_id="Y", side="BUY", price=400_000, size=SHARE),
        OrderIntent(strategy="", asset_id="N", side="BUY", price=500_000, size=0))))  # fmt: skip
    assert not d.approved
    s = rep.summary()
    t, sa, sb, m = s["totals"], s["per_strategy"]["a"], s["per_strategy"]["b"], s["per_market"]["m"]
    assert (sa["orders_rejected_risk"], t["orders_rejected"], m["orders_rejected_risk"]) == (2, 2, 2)
    # the account holds 10 pairs (worth 10 for 9.50): +0.5 unrealized, -0.02 fees; it was at
    # 10 x 0.38 - 4.00 = -0.20 after the first fill of the same input (sampled after each fill)
    assert pick(t, "unrealized_pnl", "net_pnl", "max_drawdown") == (500_000, 480_000, 200_000)
    assert m["net_pnl"] == t["net_pnl"]
    # each strategy alone holds one side, marked at its bid
    assert pick(sa, "unrealized_pnl", "net_pnl") == (10 * 380_000 - 4_000_000, -200_000)
    assert pick(sb, "unrealized_pnl", "net_pnl") == (10 * 500_000 - 5_500_000, -520_000)
    assert (sa["max_drawdown"], sb["max_drawdown"]) == (200_000, 520_000)
    rep.close()
    venue(k, 3, OrderCancelled(client_id=a))
    assert rep.summary()["totals"]["orders_cancelled"] == 0, "closed: no longer counting"


def test_report_attached_to_a_restored_kernel_starts_from_its_equity() -> None:
    k, rep, _mid = setup()
    play(k)
    st = msgspec.json.decode(msgspec.json.encode(k.to_state()))
    k2 = kernel()
    k2.restore(st)
    rep2 = SessionReport(k2)
    s2 = rep2.summary()["totals"]
    # nothing happened since the attach: no activity, no drawdown, the same PnL
    assert (s2["fills"], s2["max_drawdown"]) == (0, 0)
    assert s2["net_pnl"] == rep.summary()["totals"]["net_pnl"]
