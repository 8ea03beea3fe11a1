"""A second venue in the same kernel: market ids carry the venue, the router sends each order to
its venue's executor, a strategy may be limited to venues, a netting venue merges YES+NO pairs
at once (portfolio and paper executor alike), and the venue's market status reaches the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import msgspec

from polybot.config import ConfigError, parse_config
from polybot.events import (
    ENCODER,
    BookSnapshot,
    FeeSchedule,
    MarketInfo,
    MarketStatus,
    OrderAccepted,
    OrderEvent,
    OrderIntent,
    OrderRejected,
)
from polybot.execution import Executor, NullExecutor, RecordedExecutor
from polybot.execution.paper import PaperExecutor
from polybot.execution.router import VenueRouter, offline_twin, recorded_twin
from polybot.kernel import Kernel
from polybot.risk import RiskChain
from polybot.risk.market import DataHealth
from polybot.venues import check_name, venue_of
from polybot.wiring import build_executor, build_kernel

U = 1_000_000
MS = 1_000_000
CLOB_M, CLOB_Y, CLOB_N = "0xabc", "111", "222"
US_M, US_Y, US_N = "pmus:nba-bos-lal", "pmus:nba-bos-lal:long", "pmus:nba-bos-lal:short"


def infos(netting: bool = True) -> list[MarketInfo]:
    return [MarketInfo(market=CLOB_M, asset_ids=(CLOB_Y, CLOB_N), outcomes=("Yes", "No")),
            MarketInfo(market=US_M, asset_ids=(US_Y, US_N), outcomes=("Celtics", "Lakers"), netting=netting,
                       tick_size=10_000, min_order_size=U)]  # fmt: skip


def books(market: str, yes: str, no: str, bid: int, ask: int, size: int = 100 * U) -> list[BookSnapshot]:
    return [BookSnapshot(asset_id=yes, market=market, bids=((bid, size),), asks=((ask, size),), tick_size=10_000),
            BookSnapshot(asset_id=no, market=market, bids=((U - ask, size),), asks=((U - bid, size),), tick_size=10_000)]  # fmt: skip


class Taker(Executor):
    """Records what it was given and accepts it (a stand-in for a venue's live executor)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.got: list[str] = []

    def submit(self, order: Any) -> None:
        self.got.append(order.asset_id)
        k = self.kernel
        assert k is not None
        k.emit(OrderAccepted(ts=k.clock.now(), client_id=order.client_id, strategy=order.strategy,
                             asset_id=order.asset_id, venue_order_id=f"{self.name}-{order.client_id}"))  # fmt: skip

    def cancel(self, order: Any) -> None:
        pass


def feed(k: Kernel, *evs: Any, t: list[int] = [1_000 * MS]) -> None:  # noqa: B006 - a shared clock
    t[0] += MS
    k.process(t[0], "events", ENCODER.encode(list(evs)))


def load_config_text(text: str) -> Any:
    return parse_config(msgspec.toml.decode(text.encode()))


def intent(asset: str, market: str, side: str = "BUY", price: int = 450_000, size: int = 10 * U) -> OrderIntent:
    return OrderIntent(strategy="s", asset_id=asset, market=market, side=side, price=price, size=size)  # type: ignore[arg-type]


# ------------------------------------------------------------------ ids


def test_the_venue_is_the_prefix_of_a_market_or_asset_id() -> None:
    assert venue_of(US_M) == venue_of(US_Y) == "pmus"
    assert venue_of(CLOB_M) == venue_of(CLOB_Y) == ""
    assert venue_of("0x12:34") == ""  # not a word
    assert venue_of("PMUS:x") == "" and venue_of(":x") == ""
    assert check_name("pmus") and check_name("") and not check_name("Pm") and not check_name("a:b")


# ------------------------------------------------------------------ routing


def test_the_router_sends_each_order_to_its_venues_executor_and_refuses_an_unknown_venue() -> None:
    clob, us = Taker("clobx"), Taker("usx")
    k = Kernel(executor=VenueRouter({"": clob, "pmus": us}), verify_books=False)
    feed(k, *infos())
    seen: list[OrderEvent] = []
    k.bus.subscribe(OrderEvent, seen.append)
    assert k.submit("s", intent(US_Y, US_M)).approved
    assert k.submit("s", intent(CLOB_Y, CLOB_M)).approved
    assert us.got == [US_Y] and clob.got == [CLOB_Y]
    assert k.submit("s", intent("kx:m:long", "kx:m")).approved  # the risk chain has no view on venues
    rej = [e for e in seen if isinstance(e, OrderRejected)]
    assert len(rej) == 1 and "no executor for venue 'kx'" in rej[0].reason
    # every member's answers are decoded from its own source
    assert "exec.usx" in k.decoders and "exec.clobx" in k.decoders


def test_router_state_round_trips_member_by_member() -> None:
    a, b = PaperExecutor(cash="100"), PaperExecutor(cash="50")
    b.name = "paper-us"
    r = VenueRouter({"": a, "pmus": b})
    assert r.start_cash == 150 * U and not r.asynchronous
    st_ = r.to_state()
    a.cash = b.cash = 0
    r.restore(st_)
    assert a.cash == 100 * U and b.cash == 50 * U
    with pytest.raises(ValueError, match="share the name"):
        VenueRouter({"": PaperExecutor(), "pmus": PaperExecutor()})
    with pytest.raises(ValueError, match="default venue"):
        VenueRouter({"pmus": PaperExecutor()})


def test_replay_and_recovery_stand_recorded_twins_in_for_asynchronous_members() -> None:
    from polybot.execution import LoopbackExecutor

    paper = PaperExecutor()
    live = LoopbackExecutor()
    r = VenueRouter({"": paper, "pmus": live})
    twin = recorded_twin(r)
    assert isinstance(twin, VenueRouter) and twin.members[""] is paper
    assert isinstance(twin.members["pmus"], RecordedExecutor) and twin.members["pmus"].name == "loopback"
    faithful = offline_twin(VenueRouter({"": PaperExecutor(), "pmus": LoopbackExecutor()}), True, PaperExecutor)
    assert isinstance(faithful, VenueRouter) and isinstance(faithful.members["pmus"], RecordedExecutor)
    whatif = offline_twin(VenueRouter({"": NullExecutor(), "pmus": LoopbackExecutor()}), False, PaperExecutor)
    assert isinstance(whatif, PaperExecutor)  # one paper executor fills on every venue's books


def test_executor_venues_config_builds_a_router_and_refuses_bad_tables(tmp_path: Path) -> None:
    cfg = load_config_text("""
[executor]
kind = "null"
[executor.venues.pmus]
kind = "paper"
params = { cash = "10" }
""")
    ex = build_executor(cfg)
    assert isinstance(ex, VenueRouter) and isinstance(ex.members["pmus"], PaperExecutor)
    assert ex.members["pmus"].start_cash == 10 * U
    bad = load_config_text('[executor.venues.PMUS]\nkind = "paper"\n')
    with pytest.raises(ConfigError, match="executor.venues.PMUS"):
        build_executor(bad)
    bad = load_config_text('[executor.venues.pmus]\nkind = "paper"\nparams = { cash = "x" }\n')
    with pytest.raises(ConfigError, match=r"executor.venues.pmus.params"):
        build_executor(bad)
    bad = load_config_text('[executor.venues.pmus]\nkind = "nosuch"\n')
    with pytest.raises(ConfigError, match=r"executor.venues.pmus.kind"):
        build_executor(bad)


def test_a_strategy_limited_to_venues_cannot_trade_elsewhere() -> None:
    cfg = load_config_text("""
[strategies.us_only]
class = "example_buy_below"
max_price = "0.4"
venues = ["pmus"]
""")
    k = build_kernel(cfg)
    feed(k, *infos())
    assert k.venues == {"us_only": frozenset({"pmus"})}
    d = k.submit("us_only", intent(CLOB_Y, CLOB_M))
    assert not d.approved and "venue 'default' is not in the strategy's venues (pmus)" in d.reason
    assert k.submit("us_only", intent(US_Y, US_M)).approved
    # rolling instances follow their name
    assert not k.submit("us_only/btc-1", intent(CLOB_Y, CLOB_M)).approved
    with pytest.raises(ConfigError, match="strategies.x.venues"):
        build_kernel(load_config_text('[strategies.x]\nclass = "example_buy_below"\nvenues = "pmus"\n'))


# ------------------------------------------------------------------ market status


def test_market_status_stops_and_resumes_trading_a_market() -> None:
    k = Kernel(executor=NullExecutor(), risk=RiskChain([DataHealth()]), verify_books=False)
    feed(k, *infos(), *books(US_M, US_Y, US_N, 440_000, 460_000))
    feed(k, MarketStatus(market=US_M, state="halted", accepting_orders=False))
    info = k.catalog.market(US_M)
    assert info is not None and not info.accepting_orders and info.netting
    d = k.submit("s", intent(US_Y, US_M))
    assert not d.approved and d.validator == "data_health" and "not accepting orders" in d.reason
    feed(k, MarketStatus(market=US_M, state="open", accepting_orders=True))
    assert k.submit("s", intent(US_Y, US_M)).approved
    feed(k, MarketStatus(market="pmus:unknown", state="halted", accepting_orders=False))  # no such market: ignored


# ------------------------------------------------------------------ netting


def paper_kernel(netting: bool = True, cash: str = "1000") -> tuple[Kernel, PaperExecutor]:
    ex = PaperExecutor(cash=cash)
    k = Kernel(executor=ex, verify_books=False, synthesize_timers=True)
    feed(k, *infos(netting), *books(US_M, US_Y, US_N, 440_000, 450_000), *books(CLOB_M, CLOB_Y, CLOB_N, 440_000, 450_000))
    return k, ex


def test_a_netting_venue_merges_a_pair_at_once_in_portfolio_and_paper_balance() -> None:
    k, ex = paper_kernel()
    pf = k.portfolio
    assert k.submit("s", intent(US_Y, US_M, price=450_000)).approved  # YES at 0.45
    assert pf.size(US_Y, "s") == 10 * U
    assert k.submit("s", intent(US_N, US_M, price=560_000)).approved  # NO at 0.56 (ask = 1 - 0.44)
    # the venue holds one net position: 10 YES + 10 NO is no position and 10 of collateral
    assert pf.size(US_Y, "s") == pf.size(US_N, "s") == 0 == pf.size(US_Y) == pf.size(US_N)
    assert pf.realized_pnl("s") == 10 * (U - 450_000 - 560_000) == -100_000
    assert pf.cash == 1000 * U - 100_000
    assert ex.cash == 1000 * U - 100_000 and US_Y not in ex.shares and US_N not in ex.shares


def test_without_netting_the_pair_stays_held() -> None:
    k, ex = paper_kernel(netting=False)
    k.submit("s", intent(US_Y, US_M, price=450_000))
    k.submit("s", intent(US_N, US_M, price=560_000))
    assert k.portfolio.size(US_Y, "s") == k.portfolio.size(US_N, "s") == 10 * U
    assert ex.shares[US_Y] == ex.shares[US_N] == 10 * U


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 30), st.booleans()), min_size=1, max_size=12))
def test_netting_never_leaves_both_sides_held_and_keeps_cash_plus_value_equal_to_pnl(ops: list[tuple[bool, int, bool]]) -> None:
    k, ex = paper_kernel()
    pf = k.portfolio
    for long_side, n, sell in ops:
        asset = US_Y if long_side else US_N
        held = pf.size(asset, "s")
        if sell:
            if held <= 0:
                continue
            size = min(held, n * U)
            k.submit("s", intent(asset, US_M, side="SELL", price=440_000 if long_side else 550_000, size=size))
        else:
            k.submit("s", intent(asset, US_M, price=450_000 if long_side else 560_000, size=n * U))
        assert min(pf.size(US_Y, "s"), pf.size(US_N, "s")) == 0
        assert min(ex.shares.get(US_Y, 0), ex.shares.get(US_N, 0)) == 0
        assert ex.shares.get(US_Y, 0) == pf.size(US_Y) and ex.shares.get(US_N, 0) == pf.size(US_N)
        # the paper balance and the portfolio agree on cash (no fees on this market)
        assert ex.cash + sum(ex.reserved.values()) == pf.cash
        # cash + cost basis of what is held = start + realized (nothing unrealized at cost)
        basis = sum(p.cost for p in pf.positions.values())
        assert pf.cash + basis == 1000 * U + pf.realized_pnl()


def test_a_venue_that_settles_itself_is_settled_at_the_resolution_even_with_settle_redeem() -> None:
    from polybot.events import MarketResolved

    ex = PaperExecutor(cash="1000")
    k = Kernel(executor=ex, verify_books=False, synthesize_timers=True, settle="redeem", auto_redeem=True)
    clob, us = infos()
    import msgspec as _m

    feed(k, clob, _m.structs.replace(us, auto_settle=True), *books(US_M, US_Y, US_N, 440_000, 450_000),
         *books(CLOB_M, CLOB_Y, CLOB_N, 440_000, 450_000))  # fmt: skip
    k.submit("s", intent(US_Y, US_M, price=450_000))
    k.submit("s", intent(CLOB_Y, CLOB_M, price=450_000))
    from polybot.events import PositionAction

    asked: list[str] = []
    k.bus.subscribe(PositionAction, lambda a: asked.append(a.market))
    feed(k, MarketResolved(market=US_M, asset_ids=(US_Y, US_N), winning_asset_id=US_Y),
         MarketResolved(market=CLOB_M, asset_ids=(CLOB_Y, CLOB_N), winning_asset_id=CLOB_Y))  # fmt: skip
    pf = k.portfolio
    assert pf.size(US_Y, "s") == 0  # the venue paid it at once
    assert asked == [CLOB_M]  # the CLOB's shares wait for a redeem (auto_redeem asks for it); the venue's don't
    assert pf.realized_pnl("s") == 2 * 10 * (U - 450_000)  # both paid 1 per winning share in the end


def test_a_router_daemon_locks_every_venues_account(tmp_path: Path) -> None:
    from polybot.instance import AlreadyRunning, InstanceLock

    both = InstanceLock(tmp_path / "a", account_ids=["clob-key", "pmus-key"]).acquire()
    try:
        assert both.held and len(both.account_locks) == 2
        with pytest.raises(AlreadyRunning, match="account pmus-key"):
            InstanceLock(tmp_path / "b", account_id="pmus-key").acquire()
        # the refused one let go of what it had taken: its data dir is free again
        InstanceLock(tmp_path / "b").acquire().release()
    finally:
        both.release()
    InstanceLock(tmp_path / "c", account_id="pmus-key").acquire().release()


def test_on_a_netting_venue_a_strategy_cannot_buy_the_outcome_another_strategy_holds() -> None:
    k, ex = paper_kernel()
    assert k.submit("a", intent(US_Y, US_M, price=450_000)).approved
    d = k.submit("b", intent(US_N, US_M, price=560_000))
    assert not d.approved and "netting venue: a holds the other outcome" in d.reason
    assert k.portfolio.size(US_Y, "a") == 10 * U == ex.shares[US_Y]
    # the holder itself may (its pair nets), and other venues' markets are not concerned
    assert k.submit("a", intent(US_N, US_M, price=560_000)).approved
    assert k.submit("a", intent(CLOB_Y, CLOB_M, price=450_000)).approved
    assert k.submit("b", intent(CLOB_N, CLOB_M, price=560_000)).approved


def test_the_notional_fee_model_matches_the_venues_published_examples() -> None:
    """docs.polymarket.us "Fees": taker 30 bps, maker rebate 20 bps of the fee notional
    (contracts x price for a buyer, x (1 - price) for a seller), rounded to the cent, half to even."""
    from adapters.polymarket_us.wire import FEES
    from polybot.execution.rules import fill_fee, max_buy_cost, taker_fee

    assert taker_fee(1000 * U, 650_000, FEES, "BUY") == 1_950_000  # example 1: $1.95
    assert fill_fee("maker", 1000 * U, 650_000, FEES, "SELL") == (0, 700_000)  # example 2: rebate $0.70
    assert taker_fee(10 * U, 900_000, FEES, "SELL") == 0  # example 3: $0.003 rounds to $0.00
    # half to even at the half cent: $0.025 -> $0.02, $0.035 -> $0.04 (notional 8.3333.. / 11.6666..)
    assert taker_fee(5000 * U, 1_666, FEES) == 20_000  # notional 8.33 -> 0.02499 -> 0.02
    half = FeeSchedule(rate_ppm=2_500, model="notional")  # 0.25 %: notional 10 -> exactly 0.025
    assert taker_fee(20 * U, 500_000, half) == 20_000 and taker_fee(28 * U, 500_000, half) == 40_000  # 0.035 -> 0.04
    # the buy bound never falls short of what a fill at the limit or better is charged
    for size in (1, 7 * U, 333 * U):
        for p in (1, 10_000, 333_333, 650_000, 999_999):
            assert max_buy_cost(size, p, FEES) >= -(-size * p // U) + taker_fee(size, p, FEES)


def test_doctor_runs_every_venues_executor_checks(tmp_path: Path, capsys: Any) -> None:
    from polybot.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('[executor]\nkind = "paper"\n[executor.venues.pmus]\nkind = "null"\n')
    assert main(["doctor", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "== executor (paper)" in out and "== executor.venues.pmus (null)" in out
    assert out.count("has no preflight checks") == 2
    cfg.write_text('[executor]\nkind = "paper"\n[executor.venues.pmus]\nkind = "nosuch"\n')
    assert main(["doctor", "--config", str(cfg)]) != 0
    assert "executor.venues.pmus.kind" in capsys.readouterr().err
