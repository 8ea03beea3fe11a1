"""Sports: the join of real Gamma sports markets to games and odds events, the kernel's
scoreboard and odds board, the paper executor's matching delay, and the two strategies
(live_arbitrage, statistical_edge) replayed on the generated game recordings: they trade exactly
when they should, and not when fees, staleness, a feed disagreement or the matching delay
remove the edge."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.polymarket.gamma import normalize_market, normalize_new_market, split_teams
from polybot.config import parse_config
from polybot.events import (
    BookSnapshot,
    FeedStale,
    FeeSchedule,
    GameState,
    MarketInfo,
    OddsQuote,
    OrderIntent,
    SportsMarket,
)
from polybot.execution.paper import PaperExecutor
from polybot.kernel import Kernel
from polybot.replay import replay
from polybot.sources import resolve_decoder
from polybot.sports.join import Match, OddsEventRef, Unmatched, match_game, match_odds_event, outcome_sides, same_team
from polybot.sports.pricing import buy_limit, fee_per_share, sell_floor
from polybot.synthetic import write_stream
from polybot.units import to_units
from sample_data import SAMPLES, require_samples

ROOT = Path(__file__).resolve().parents[1]
NAUTILUS = SAMPLES / "nautilus"
S = 1_000_000_000
U = 1_000_000


def _gen() -> Any:
    spec = importlib.util.spec_from_file_location("make_sports", ROOT / "recordings" / "make_sports.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEN = _gen()


# ------------------------------------------------------------------------------------ the join


def _sample(name: str) -> dict[str, Any]:
    require_samples()
    return json.loads((NAUTILUS / name).read_text())


def test_gamma_sports_fields_from_real_markets() -> None:
    ml = normalize_market(_sample("rs_gamma_market_sports_market_money_line.json"))
    assert ml.sports == SportsMarket(game_id="1427074", market_type="moneyline", start_ts=1_775_401_800 * S, delay_ms=3000,
                                     league="counter-strike", teams=("FaZe", "illwill"), title="Match Winner")  # fmt: skip
    hc = normalize_market(_sample("rs_gamma_market_sports_market_map_handicap.json"))
    # the handicap market has no gameId of its own: its event's
    assert hc.sports is not None and hc.sports.game_id == "1427074" and hc.sports.market_type == "map_handicap"
    assert hc.sports.line == -1.5 and hc.outcomes == ("FaZe", "illwill")
    nm = normalize_new_market(json.loads((SAMPLES / "ahsan909k" / "glmbotpoly__clob_new_market.json").read_text()))
    assert nm.sports is not None and nm.sports.market_type == "totals" and nm.sports.line == 174.5
    assert nm.sports.teams == ("Olimpia Milano", "Reyer Venezia") and nm.sports.league == "bkseriea"
    assert nm.sports.start_ts == 1_781_373_600 * S and nm.sports.game_id == ""
    # a market that is not a sports market has none
    plain = json.loads((SAMPLES / "adriancova" / "gamma-market-v1-btc15m.json").read_text())
    assert normalize_market(plain).sports is None


def test_split_teams() -> None:
    assert split_teams("Counter-Strike: FaZe vs illwill (BO3) - HLC Belgrade Pro Playoffs") == ("FaZe", "illwill")
    assert split_teams("Olimpia Milano vs. Reyer Venezia") == ("Olimpia Milano", "Reyer Venezia")
    assert split_teams("Will it rain in Paris?") == ()


def _game(gid: str, home: str, away: str, score: tuple[int, int] = (0, 0)) -> GameState:
    return GameState(game_id=gid, home=home, away=away, home_score=score[0], away_score=score[1], live=True,
                     feed="sports.polymarket")  # fmt: skip


def test_join_real_markets_by_id_by_names_and_unmatched_reported() -> None:
    ml = normalize_market(_sample("rs_gamma_market_sports_market_money_line.json"))
    hc = normalize_market(_sample("rs_gamma_market_sports_market_map_handicap.json"))
    games = [_game("1427074", "FaZe Clan", "illwill"), _game("55", "FaZe", "Vitality")]
    assert match_game(ml, games) == Match(ml.market, "1427074", "id")
    assert match_game(hc, games) == Match(hc.market, "1427074", "id")
    assert outcome_sides(ml, "FaZe Clan", "illwill") == ("home", "away")
    assert outcome_sides(hc, "illwill", "FaZe") == ("away", "home")
    # the new_market (no game id): by names, in either order
    nm = normalize_new_market(json.loads((SAMPLES / "ahsan909k" / "glmbotpoly__clob_new_market.json").read_text()))
    m = match_game(nm, [_game("7", "Reyer Venezia", "Olimpia Milano"), _game("8", "Virtus Bologna", "Olimpia Milano")])
    assert m == Match(nm.market, "7", "names")
    assert outcome_sides(nm, "Reyer Venezia", "Olimpia Milano") == ("over", "under")
    # never a guess: two candidates, or none, are reported with the reason
    two = match_game(nm, [_game("7", "Reyer Venezia", "Olimpia Milano"), _game("9", "Olimpia Milano", "Reyer Venezia")])
    assert isinstance(two, Unmatched) and "ambiguous" in two.reason
    none = match_game(nm, [_game("8", "Virtus Bologna", "Olimpia Milano")])
    assert isinstance(none, Unmatched) and "no game" in none.reason
    # odds events: names and the start time
    start = nm.sports.start_ts  # type: ignore[union-attr]
    ev = [OddsEventRef("e1", "Olimpia Milano", "Umana Reyer Venezia", start), OddsEventRef("e2", "Olimpia Milano", "Umana Reyer Venezia", start + 7 * 86_400 * S)]
    assert match_odds_event(nm, ev) == Match(nm.market, "e1", "names")
    far = match_odds_event(nm, ev[1:])
    assert isinstance(far, Unmatched) and "another time" in far.reason


def test_team_names() -> None:
    assert same_team("Lakers", "Los Angeles Lakers") and same_team("LA Clippers", "Los Angeles Clippers")
    assert same_team("Atlético Madrid", "Atletico Madrid") and same_team("Gimcheon Sangmu FC", "Gimcheon Sangmu")
    assert not same_team("Los Angeles", "Los Angeles Lakers") and not same_team("Manchester", "Manchester United")
    assert same_team("Man Utd", "Manchester United", aliases={"Man Utd": "Manchester United"})


def test_per_result_market_of_a_neg_risk_event() -> None:
    info = MarketInfo(market="0xm", asset_ids=("y", "n"), outcomes=("Yes", "No"),
                      sports=SportsMarket(game_id="1", market_type="moneyline", title="Arsenal"))  # fmt: skip
    assert outcome_sides(info, "Arsenal FC", "Chelsea") == ("home", "!home")
    draw = msgspec.structs.replace(info, sports=SportsMarket(game_id="1", market_type="moneyline", title="Draw (Arsenal vs. Chelsea)"))
    assert outcome_sides(draw, "Arsenal", "Chelsea") == ("draw", "!draw")


# ------------------------------------------------------------------------------------ boards


def test_scoreboard_publishes_only_news_and_survives_a_snapshot() -> None:
    require_samples()
    k = Kernel()
    k.set_decoder_resolver(resolve_decoder)
    seen: list[GameState] = []
    k.bus.subscribe(GameState, seen.append)
    frame = (SAMPLES / "dilettante-trading" / "polyoxide__sports__soccer.json").read_bytes()
    k.process(1 * S, "sports.polymarket", frame)
    k.process(2 * S, "sports.polymarket", frame)  # a repeat: heard, not news
    assert len(seen) == 1 and k.stats.sports_repeats == 1
    assert k.scoreboard.heard("90106111") == 2 * S and k.scoreboard.get("90106111").home_score == 2  # type: ignore[union-attr]
    k2 = Kernel()
    k2.set_decoder_resolver(resolve_decoder)
    k2.restore(msgspec.json.decode(msgspec.json.encode(k.to_state())))
    seen2: list[GameState] = []
    k2.bus.subscribe(GameState, seen2.append)
    k2.process(3 * S, "sports.polymarket", frame)
    assert seen2 == [] and k2.stats.sports_repeats == 1  # the restored board filters the same way
    changed = frame.replace(b'"score":"2-1","elapsed":"74"', b'"score":"3-1","elapsed":"80"')
    k2.process(4 * S, "sports.polymarket", changed)
    assert [g.home_score for g in seen2] == [3]


def test_odds_board_news_freshness_and_order() -> None:
    k = Kernel()
    seen: list[OddsQuote] = []
    k.bus.subscribe(OddsQuote, seen.append)
    q = OddsQuote(event_id="e", bookmaker="pinnacle", market="h2h", outcome="A", price=1.9, last_update_ts=10 * S)
    k.process(11 * S, "events", q)
    k.process(12 * S, "events", msgspec.structs.replace(q, last_update_ts=12 * S))  # same price, fresher
    k.process(13 * S, "events", msgspec.structs.replace(q, price=2.0, last_update_ts=9 * S))  # older: ignored
    k.process(14 * S, "events", msgspec.structs.replace(q, price=2.0, last_update_ts=14 * S))
    assert [x.price for x in seen] == [1.9, 2.0]
    assert k.odds.quotes("e")[0].last_update_ts == 14 * S and k.odds.out_of_order == 1


# ------------------------------------------------------------------------------------ pricing


def test_buy_limit_and_sell_floor_round_in_the_traders_favour() -> None:
    sched = FeeSchedule(rate_ppm=30_000, exponent=1)
    lim = buy_limit(0.7759, 40_000, 10_000, sched)
    assert lim == 720_000  # 0.7759 - 0.73 - fee(0.73) = 0.03999: 0.73 is not enough
    assert 775_900 - lim - fee_per_share(lim, sched) >= 40_000
    assert 775_900 - (lim + 10_000) - fee_per_share(lim + 10_000, sched) < 40_000
    fl = sell_floor(0.7759, 30_000, 10_000, sched)
    assert fl == 760_000 and fl - fee_per_share(fl, sched) >= 745_900
    assert buy_limit(0.02, 40_000, 10_000, sched) == 0
    assert fee_per_share(500_000, sched) == 7_500 and fee_per_share(500_000, None) == 0


# ------------------------------------------------------------------------------------ paper delay

SPORTS_INFO = MarketInfo(market="0xg", asset_ids=("h", "a"), outcomes=("Home", "Away"), tick_size=10_000,
                         sports=SportsMarket(game_id="1", market_type="moneyline", start_ts=100 * S, delay_ms=3000))  # fmt: skip


def _paper(match_delay: str = "market") -> tuple[Kernel, list[Any]]:
    k = Kernel(executor=PaperExecutor(cash="1000", match_delay=match_delay))
    out: list[Any] = []
    for t in ("order_accepted", "order_filled", "order_partial", "order_cancelled", "order_rejected"):
        from polybot.events import TAG_TO_TYPE

        k.bus.subscribe(TAG_TO_TYPE[t], out.append)
    k.process(1 * S, "events", SPORTS_INFO)
    return k, out


def _book(k: Kernel, ts: int, ask: int, size: int = 100) -> None:
    k.process(ts, "events", [BookSnapshot(asset_id="h", market="0xg", bids=((ask - 20_000, size * U),), asks=((ask, size * U),), tick_size=10_000),
                             BookSnapshot(asset_id="a", market="0xg", bids=((U - ask, size * U),), asks=((U - ask + 20_000, size * U),), tick_size=10_000)])  # fmt: skip


def _buy(k: Kernel, ts: int, price: int, tif: str = "FAK") -> str:
    k.clock._now = ts
    d = k.submit("t", OrderIntent(strategy="t", asset_id="h", market="0xg", side="BUY", price=price, size=10 * U, tif=tif))  # type: ignore[arg-type]
    assert d.action == "approve"
    return d.client_ids[0]


def test_paper_matching_delay_holds_a_marketable_order_in_play() -> None:
    k, out = _paper()
    _book(k, 150 * S, 550_000)
    _buy(k, 150 * S, 600_000)
    assert [type(e).__name__ for e in out] == ["OrderAccepted"] and out[0].delayed
    _book(k, 152 * S, 560_000)  # the book moves; still within the limit
    k.process(153 * S + 1, "clock", b"{}")  # the delay is over
    fills = [e for e in out if type(e).__name__ == "OrderFilled"]
    assert len(fills) == 1 and fills[0].price == 560_000  # the price of the book THEN


def test_paper_delayed_order_killed_when_the_book_moved_away() -> None:
    k, out = _paper()
    _book(k, 150 * S, 550_000)
    _buy(k, 150 * S, 600_000)
    _book(k, 151 * S, 780_000)  # the market caught up during the delay
    k.process(154 * S, "clock", b"{}")
    kinds = [type(e).__name__ for e in out]
    assert kinds == ["OrderAccepted", "OrderCancelled"] and "matching delay" in out[-1].reason
    assert k.executor.cash == 1000 * U  # the reservation is released


def test_paper_delay_off_pregame_and_cancel_during_the_delay() -> None:
    k, out = _paper("off")
    _book(k, 150 * S, 550_000)
    _buy(k, 150 * S, 600_000)
    assert [type(e).__name__ for e in out] == ["OrderAccepted", "OrderFilled"]
    k, out = _paper()
    _book(k, 50 * S, 550_000)  # before the game starts: no delay
    _buy(k, 50 * S, 600_000)
    assert [type(e).__name__ for e in out] == ["OrderAccepted", "OrderFilled"]
    k, out = _paper()
    _book(k, 150 * S, 550_000)
    cid = _buy(k, 150 * S, 600_000)
    k.cancel("t", cid, "changed my mind")
    k.process(154 * S, "clock", b"{}")
    assert [type(e).__name__ for e in out] == ["OrderAccepted", "OrderCancelled"]


# ------------------------------------------------------------------------------------ replays

ARB = {"executor": {"kind": "paper", "params": {"cash": "1000"}}, "strategies": {"arb": {"class": "live_arbitrage"}}}
EDGE = {
    "executor": {"kind": "paper", "params": {"cash": "1000"}},
    "risk": {"chain": ["trading_state", "sizing"], "validators": {"sizing": {"mode": "kelly", "kelly_fraction": "0.25"}}},
    "strategies": {"edge": {"class": "statistical_edge"}},
}


def _run(tmp_path: Path, game: Any, cfg: dict[str, Any], **params: Any) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
    path = tmp_path / f"{game.label}.jsonl.gz"
    write_stream(str(path), game.records())
    cfg = json.loads(json.dumps(cfg))
    for table in cfg["strategies"].values():
        table.update(params)
    kernels: list[Any] = []
    out = tmp_path / "out.jsonl"
    summary = replay(path, parse_config(cfg), on_kernel=kernels.append, out=out)
    evs = [json.loads(line)["event"] for line in out.read_text().splitlines() if '"source":"engine"' in line]
    strat = next(iter(kernels[0].strategies.values()))
    return summary, strat, evs


def _orders(evs: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["intent"]["side"], e["intent"]["price"]) for e in evs if e["type"] == "order_submitted"]


def _fills(evs: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(e["side"], e["price"], e["size"]) for e in evs if e["type"] in ("order_filled", "order_partial")]


def test_live_arbitrage_buys_the_lagging_book_and_exits_when_it_catches_up(tmp_path: Path) -> None:
    s, strat, evs = _run(tmp_path, GEN.nba_game("lag"), ARB)
    # one buy, on the score change itself (the three with 7 minutes left), FAK at the highest
    # price that keeps the edge; it matches 3 s later (the venue's delay) at the old ask
    assert _orders(evs) == [("BUY", 700_000), ("SELL", 760_000)]
    assert _fills(evs) == [("BUY", 550_000, 20 * U), ("SELL", 760_000, 20 * U)]
    accepted = [e for e in evs if e["type"] == "order_accepted"]
    assert all(e.get("delayed") for e in accepted)
    pnl = s["pnl"]
    assert pnl["realized"] == "4.2" and pnl["fees"] == "0.25794" and pnl["net"] == "3.94206"
    rep = strat.report()
    assert rep["stats"]["score_changes"] == 13 and rep["stats"]["orders"] == 1 and rep["stats"]["exits"] == 1
    assert rep["latency"]["orders"] == 1 and rep["latency"]["score_to_order_ms_p50"] == 0.0
    assert rep["latency"]["feed_lag_ms_p50"] == 300.0
    assert rep["priors"]["90210001"]["source"] == "odds" and abs(rep["priors"]["90210001"]["p0_home"] - 0.607) < 0.001


def test_live_arbitrage_delayed_order_is_killed_when_the_market_catches_up_first(tmp_path: Path) -> None:
    s, strat, evs = _run(tmp_path, GEN.nba_game("fast", lag_s=2.0), ARB)
    assert _orders(evs) == [("BUY", 700_000)] and _fills(evs) == []
    assert s["pnl"]["net"] == "0"
    cancelled = [e for e in evs if e["type"] == "order_cancelled"]
    assert len(cancelled) == 1 and "matching delay" in cancelled[0]["reason"]
    # without the delay model the replay would have filled at a price that was gone
    cfg = json.loads(json.dumps(ARB))
    cfg["executor"]["params"]["match_delay"] = "off"
    _s2, _strat2, evs2 = _run(tmp_path, GEN.nba_game("fast", lag_s=2.0), cfg)
    assert _fills(evs2)[0] == ("BUY", 550_000, 20 * U)


def test_live_arbitrage_no_trade_when_fees_remove_the_edge(tmp_path: Path) -> None:
    # edge before fees 0.7759 - 0.55 = 0.2259 >= 0.22 needed (0.20 + the delay's 0.02); the 10 %
    # fee (0.0248 a share at 0.55) takes it below: no order. Without fees: the order.
    _s, strat, evs = _run(tmp_path, GEN.nba_game("fees", fee_rate="0.10"), ARB, min_edge="0.20", delay_edge="0.02")
    assert _orders(evs) == [] and strat.stats["fees_remove_edge"] >= 1
    _s, strat, evs = _run(tmp_path, GEN.nba_game("nofees", fee_rate="0"), ARB, min_edge="0.20", delay_edge="0.02")
    assert [o[0] for o in _orders(evs)][:1] == ["BUY"]


def test_live_arbitrage_no_trade_on_a_lagging_feed_or_disagreeing_feeds(tmp_path: Path) -> None:
    _s, strat, evs = _run(tmp_path, GEN.nba_game("lagging-feed", feed_lag_ms=30_000), ARB)
    assert _orders(evs) == [] and strat.stats["feed_lag"] >= 1
    _s, strat, evs = _run(tmp_path, GEN.nba_game("disagree", second_feed_stale_score=True), ARB)
    assert _orders(evs) == [] and strat.stats["feeds_disagree"] >= 1


def test_live_arbitrage_stops_on_a_stale_score_feed_and_reports_a_missing_prior(tmp_path: Path) -> None:
    g = GEN.nba_game("stale-feed")
    recs = list(g.records())
    # right after the big score change, the score feed is reported stale: the book updates
    # inside the window (including the catch-up) are not acted on; the buy on the score itself was
    i = next(i for i, r in enumerate(recs) if r[1] == "sports.polymarket" and b'"101-98"' in r[2])
    ts = recs[i][0] + 1
    recs.insert(i + 1, (ts, "events", msgspec.json.encode(FeedStale(feed="sports", detail="no frame for 120s"))))
    g.out = recs
    _s, strat, evs = _run(tmp_path, g, ARB, score_feeds=["sports"])
    nxt = next(r[0] for r in recs[i + 2 :] if r[1] == "sports.polymarket")
    orders = [(e["intent"]["side"], e["ts"]) for e in evs if e["type"] == "order_submitted"]
    assert orders[0][0] == "BUY" and orders[0][1] < ts
    assert all(t >= nxt for side, t in orders if side == "SELL")  # no exit until the feed delivers again
    assert strat.stats["feed_down"] >= 1  # the window's book updates were not acted on
    without = GEN.nba_game("not-stale")
    _s, _strat, evs2 = _run(tmp_path, without, ARB, score_feeds=["sports"])
    sells = [e["ts"] for e in evs2 if e["type"] == "order_submitted" and e["intent"]["side"] == "SELL"]
    assert sells and sells[0] < nxt  # unlike the run without the stale notice
    # prior = "fixed" is not needed; "market" without a level, barely-started game: no prior
    no_odds = GEN.nba_game("no-odds")
    no_odds.out = [r for r in no_odds.out if r[1] != "odds.theoddsapi"]
    _s, strat, evs = _run(tmp_path, no_odds, ARB)
    assert _orders(evs) == [] and strat.stats["no_prior"] >= 1 and strat.report()["priors"] == {}
    _s, strat, evs = _run(tmp_path, no_odds, ARB, prior="fixed", p0=0.6)
    assert [o[0] for o in _orders(evs)][:1] == ["BUY"]


def test_statistical_edge_buys_below_the_consensus_with_kelly_and_exits_when_the_edge_closes(tmp_path: Path) -> None:
    s, strat, evs = _run(tmp_path, GEN.pregame_edge("edge"), EDGE)
    orders = _orders(evs)
    assert [o[0] for o in orders] == ["BUY", "BUY", "BUY", "SELL"]
    assert all(p == 560_000 for side, p in orders if side == "BUY")  # consensus 0.607 - 0.03 - fee, down to the tick
    resized = [e for e in evs if e["type"] == "risk_resized"]
    assert len(resized) == 3 and all("kelly" in e["reason"] for e in resized)
    intents = [e for e in evs if e["type"] == "intent" and e["side"] == "BUY"]
    assert all(abs(e["probability"] - 0.607) < 0.001 and 0.9 < e["confidence"] <= 1 for e in intents)
    fills = _fills(evs)
    assert fills[-1][0] == "SELL" and fills[-1][1] == 620_000
    assert sum(f[2] for f in fills if f[0] == "BUY") == fills[-1][2]  # the whole position sold
    assert to_units(s["pnl"]["net"]) > 0 and s["open_orders"] == 0


@pytest.mark.parametrize(
    ("kw", "why"),
    [({"dispersion": True}, "dispersion"), ({"one_book": True}, "few_books"), ({"fee_rate": "0.25"}, "fees_remove_edge"),
     ({"ask": 0.59}, "no_edge")],
)  # fmt: skip
def test_statistical_edge_does_not_trade_without_a_trustworthy_edge(tmp_path: Path, kw: dict[str, Any], why: str) -> None:
    _s, strat, evs = _run(tmp_path, GEN.pregame_edge("edge-" + why, **kw), EDGE)
    assert [o for o in _orders(evs) if o[0] == "BUY"] == [] and strat.stats[why] >= 1


def test_statistical_edge_stays_out_once_the_game_started(tmp_path: Path) -> None:
    _s, strat, evs = _run(tmp_path, GEN.nba_game("inplay"), EDGE)
    assert _orders(evs) == [] and strat.stats["in_play"] >= 1


def test_sports_replays_are_deterministic_and_the_shipped_recordings_are_the_generators(tmp_path: Path) -> None:
    made = GEN.recordings()
    for name, game in made.items():
        fresh = tmp_path / name
        write_stream(str(fresh), game.records())
        shipped = ROOT / "recordings" / name
        import gzip

        assert gzip.decompress(shipped.read_bytes()) == gzip.decompress(fresh.read_bytes()), name
    a = replay(ROOT / "recordings" / "sports-nba-lag.jsonl.gz", parse_config(ARB))
    b = replay(ROOT / "recordings" / "sports-nba-lag.jsonl.gz", parse_config(ARB))
    assert a["pnl"] == b["pnl"] and a["pnl"]["net"] == "3.94206"


def test_live_executor_reads_a_delayed_answer_as_pending_not_as_a_killed_remainder() -> None:
    pytest.importorskip("py_clob_client_v2")
    from types import SimpleNamespace

    from adapters.polymarket.live import ClobExecutor
    from polybot.events import OrderAccepted, OrderCancelled
    from polybot.execution.orders import Order

    ex = ClobExecutor()
    it = OrderIntent(strategy="arb", asset_id="h", market="0xg", side="BUY", price=700_000, size=20 * U, tif="FAK")
    o = Order("pb-1", it)
    so = SimpleNamespace(order_hash="0xabc")
    delayed = {"success": True, "orderID": "0xabc", "status": "delayed", "makingAmount": "", "takingAmount": ""}
    out = ex._answers([(o, so)], [delayed])  # type: ignore[list-item]
    assert len(out) == 1 and isinstance(out[0], OrderAccepted) and out[0].delayed
    # an answered FAK that matched nothing is killed, as before
    matched_none = {"success": True, "orderID": "0xabc", "status": "unmatched", "makingAmount": "0", "takingAmount": "0"}
    out = ex._answers([(o, so)], [matched_none])  # type: ignore[list-item]
    assert [type(e) for e in out] == [OrderAccepted, OrderCancelled]
