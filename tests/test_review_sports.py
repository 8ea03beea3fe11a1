"""Review of the sports trading path: regression tests for bugs found in live_arbitrage,
statistical_edge, the sports index/join/pricing and the kernel's scoreboard."""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec

from polybot.events import (
    BookSnapshot,
    GameState,
    HandlerError,
    MarketInfo,
    OddsQuote,
    OrderSubmitted,
    SportsMarket,
)
from polybot.execution.paper import PaperExecutor
from polybot.kernel import Kernel
from polybot.scoreboard import OddsBoard, Scoreboard
from polybot.sports.join import Match, Unmatched, match_game
from polybot.sports.markets import SportsIndex
from polybot.sports.pricing import buy_limit, sell_floor, token_fair
from strategies.live_arbitrage import LiveArbitrage
from strategies.statistical_edge import StatisticalEdge

S = 1_000_000_000
U = 1_000_000
START = 100_000 * S  # the game's scheduled start
HOME, AWAY = "Boston Celtics", "Los Angeles Lakers"


def market(mid: str = "0xm", gid: str = "g1", start: int = START, delay_ms: int = 0, tick: int = 10_000,
           assets: tuple[str, str] = ("h", "a"), outcomes: tuple[str, str] = ("Celtics", "Lakers")) -> MarketInfo:  # fmt: skip
    return MarketInfo(market=mid, asset_ids=assets, outcomes=outcomes, tick_size=tick,
                      sports=SportsMarket(game_id=gid, market_type="moneyline", start_ts=start, delay_ms=delay_ms,
                                          league="nba"))  # fmt: skip


def game(ts: int, hs: int, as_: int, *, period: str = "Q4", el: int = 290, home: str = HOME, away: str = AWAY,
         gid: str = "g1", live: bool = True, ended: bool = False, feed: str = "sports.x") -> GameState:  # fmt: skip
    return GameState(ts=ts, game_id=gid, sport="basketball", league="nba", home=home, away=away, home_score=hs,
                     away_score=as_, period=period, elapsed_s=el, elapsed_scope="period", live=live, ended=ended,
                     feed=feed, feed_ts=ts)  # fmt: skip


def books(bid: int, ask: int, assets: tuple[str, str] = ("h", "a"), mid: str = "0xm", tick: int = 10_000) -> list[Any]:
    h, a = assets
    return [BookSnapshot(asset_id=h, market=mid, bids=((bid, 100 * U),), asks=((ask, 100 * U),), tick_size=tick),
            BookSnapshot(asset_id=a, market=mid, bids=((U - ask, 100 * U),), asks=((U - bid, 100 * U),), tick_size=tick)]  # fmt: skip


def quotes(p_home: float, lu: int, *, event: str = "e1", commence: int = START,
           bookmakers: tuple[str, ...] = ("pinnacle", "draftkings", "fanduel")) -> list[OddsQuote]:  # fmt: skip
    out = []
    for b in bookmakers:
        for name, p in ((HOME, p_home), (AWAY, 1.0 - p_home)):
            out.append(OddsQuote(event_id=event, bookmaker=b, market="h2h", outcome=name, price=round(1.0 / p, 4),
                                 sport="basketball_nba", home=HOME, away=AWAY, commence_ts=commence,
                                 last_update_ts=lu))  # fmt: skip
    return out


def kernel(cls: type, **params: Any) -> tuple[Kernel, Any, list[Any]]:
    k = Kernel(executor=PaperExecutor(cash="10000"))
    s = k.add_strategy(cls, "s", params)
    k.start()
    seen: list[Any] = []
    k.bus.subscribe(OrderSubmitted, seen.append)
    k.bus.subscribe(HandlerError, seen.append)
    return k, s, seen


def orders(seen: list[Any]) -> list[tuple[str, str, int]]:
    return [(e.intent.asset_id, e.intent.side, e.intent.price) for e in seen if isinstance(e, OrderSubmitted)]


def errors(seen: list[Any]) -> list[Any]:
    return [e for e in seen if isinstance(e, HandlerError)]


# ------------------------------------------------------------------ live_arbitrage: the link


def test_live_arbitrage_watches_a_market_that_the_odds_event_makes_ready() -> None:
    """The score feed names the teams by abbreviation (the outcomes cannot be placed against
    them); the odds event's full names place them later: the market's books must be watched
    from then on (window re-evaluations and exits run on book updates)."""
    k, s, seen = kernel(LiveArbitrage, prior="fixed", p0=0.6)
    k.process(1 * S, "events", market())
    t = START + 600 * S
    k.process(t, "events", game(t, 98, 98, home="BOS", away="LAL"))
    assert not s.index.ready(s.index.linked["0xm"])
    k.process(t + 1 * S, "events", quotes(0.6, lu=t))
    assert s.index.ready(s.index.linked["0xm"]) and s.watched == {"h", "a"}
    # the score changes while the book is already at the new price; the old price's liquidity
    # shows up 2 s later, inside the window: bought
    k.process(t + 2 * S, "events", books(790_000, 800_000))
    k.process(t + 3 * S, "events", game(t + 3 * S, 101, 98, el=300, home="BOS", away="LAL"))
    assert orders(seen) == []
    k.process(t + 5 * S, "events", books(530_000, 550_000))
    assert [o[:2] for o in orders(seen)] == [("h", "BUY")] and not errors(seen)


# ------------------------------------------------------------------ live_arbitrage: the prior


def test_live_arbitrage_odds_prior_is_pregame_only() -> None:
    """``prior = "odds"`` is the *pregame* probability: bookmaker prices updated after the
    start already contain the score, and the model would count the lead twice."""
    k, s, _seen = kernel(LiveArbitrage, prior="odds")
    k.process(1 * S, "events", market())
    k.process(START - 600 * S, "events", quotes(0.6, lu=START - 601 * S))  # pregame
    t = START + 1800 * S  # first seen live in the third quarter, home 10 up
    k.process(t - 2 * S, "events", quotes(0.88, lu=t - 3 * S))  # in play: the lead is priced in
    k.process(t, "events", game(t, 70, 60, period="Q3", el=200))
    assert "g1" not in s.models_obj and s.stats["no_prior"] == 1
    # the same game with the pregame prices still on the board: solved from them
    k, s, _seen = kernel(LiveArbitrage, prior="odds")
    k.process(1 * S, "events", market())
    k.process(START - 600 * S, "events", quotes(0.6, lu=START - 601 * S))
    k.process(t, "events", game(t, 70, 60, period="Q3", el=200))
    assert abs(s.models["g1"][0] - 0.6) < 1e-3


# ------------------------------------------------------------------ the join


def test_join_by_names_never_links_a_game_that_is_over() -> None:
    """Yesterday's game of the same two teams stays on the scoreboard: a market of today's game
    (its game not in the feed yet, or a feed with other ids) must not be linked to it, for good."""
    today = market(gid="g2")
    yesterday = game(START - 86_400 * S, 110, 104, gid="g1", live=False, ended=True)
    assert isinstance(match_game(today, [yesterday]), Unmatched)
    now = game(START + 60 * S, 0, 0, gid="g9", period="Q1", el=60)
    assert match_game(today, [yesterday, now]) == Match(today.market, "g9", "names")
    # by id, a market still finds its own game when it is over
    assert match_game(market(gid="g1"), [yesterday, now]) == Match("0xm", "g1", "id")


def test_live_arbitrage_trades_todays_game_with_yesterdays_on_the_scoreboard() -> None:
    k, s, seen = kernel(LiveArbitrage, prior="fixed", p0=0.6)
    k.process(1 * S, "events", game(START - 86_400 * S, 110, 104, gid="g1", live=False, ended=True))
    k.process(2 * S, "events", market(gid="g2"))
    t = START + 2400 * S
    k.process(t, "events", books(530_000, 550_000))
    k.process(t + 1 * S, "events", game(t + 1 * S, 98, 98, gid="g2"))
    assert s.index.linked["0xm"].game_id == "g2"
    k.process(t + 2 * S, "events", game(t + 2 * S, 101, 98, gid="g2", el=300))
    assert [o[:2] for o in orders(seen)] == [("h", "BUY")]


# ------------------------------------------------------------------ statistical_edge: pregame only


def test_statistical_edge_pregame_only_without_the_markets_start_time() -> None:
    """``in_play = false``: a market without a start time is in play once its odds event has
    commenced (or its game is live): the books then lag the score."""
    k, s, seen = kernel(StatisticalEdge, min_books=2)
    k.process(1 * S, "events", market(start=0))
    t = START + 900 * S
    k.process(t - 5 * S, "events", books(530_000, 550_000))
    k.process(t, "events", quotes(0.62, lu=t - 1 * S))
    assert orders(seen) == [] and s.stats["in_play"] >= 1
    # before the commence time it trades
    k, s, seen = kernel(StatisticalEdge, min_books=2)
    k.process(1 * S, "events", market(start=0))
    t = START - 900 * S
    k.process(t - 5 * S, "events", books(530_000, 550_000))
    k.process(t, "events", quotes(0.62, lu=t - 1 * S))
    assert [o[:2] for o in orders(seen)] == [("h", "BUY")]


def test_statistical_edge_stays_out_of_a_live_game_that_started_early() -> None:
    k, s, seen = kernel(StatisticalEdge, min_books=2)
    k.process(1 * S, "events", market())
    t = START - 900 * S  # the scheduled start is later, but the game is on
    k.process(t - 9 * S, "events", game(t - 9 * S, 2, 0, period="Q1", el=30))
    k.process(t - 5 * S, "events", books(530_000, 550_000))
    k.process(t, "events", quotes(0.62, lu=t - 1 * S))
    assert orders(seen) == [] and s.stats["in_play"] >= 1


# ------------------------------------------------------------------ pricing on bad input


class _NaNModel:
    def probs(self, lead: float, tau: float) -> tuple[float, float, float]:
        return math.nan, 0.0, math.nan

    def p_cover(self, lead: float, tau: float, line: float) -> float:
        return math.nan

    def p_over(self, total: float, tau: float, line: float, lead: float | None = None) -> float:
        return math.nan


def test_token_fair_is_unpriced_not_zero_for_a_nan_probability() -> None:
    """A NaN used to be clamped to 0: a fair value of 0 makes every bid 'caught up' and the
    exit sells the position at any price."""
    m: Any = _NaNModel()
    assert token_fair(m, "home", "moneyline", 1, 0, 0.5, None, "home") is None
    assert token_fair(m, "!away", "moneyline", 1, 0, 0.5, None, "home") is None
    assert token_fair(m, "home", "spreads", 1, 0, 0.5, -3.5, "home") is None
    assert token_fair(m, "over", "totals", 1, 0, 0.5, 200.5, "over") is None


def test_pricing_with_an_unknown_tick_prices_nothing() -> None:
    assert buy_limit(0.7, 10_000, 0, None) == 0
    assert sell_floor(0.7, 10_000, 0, None) == 0


def test_live_arbitrage_with_an_unknown_tick_does_not_raise() -> None:
    k, s, seen = kernel(LiveArbitrage, prior="fixed", p0=0.6)
    k.process(1 * S, "events", market(tick=0))
    t = START + 2400 * S
    k.process(t, "events", books(530_000, 550_000, tick=0))
    k.process(t + 1 * S, "events", game(t + 1 * S, 98, 98))
    k.process(t + 2 * S, "events", game(t + 2 * S, 101, 98, el=300))
    k.process(t + 3 * S, "events", books(531_000, 550_000, tick=0))
    assert not errors(seen) and orders(seen) == []


# ------------------------------------------------------------------ the index across a restart


def test_sports_index_game_order_is_the_same_after_a_restore() -> None:
    """The order a game's markets are evaluated in (and so the order of their orders) must not
    depend on whether the index was built live or restored from a snapshot."""
    sb, ob = Scoreboard(), OddsBoard()
    sb.accept(game(START, 0, 0))
    live = SportsIndex([], ["moneyline"], need_game=True, need_odds=False)
    m2 = market(mid="0xb", assets=("h2", "a2"))
    m1 = market(mid="0xa", assets=("h1", "a1"))
    live.add(m2, sb, ob)  # Gamma's order, not sorted
    live.add(m1, sb, ob)

    class Cat:
        def market(self, m: str) -> MarketInfo:
            return {"0xa": m1, "0xb": m2}[m]

    restored = SportsIndex([], ["moneyline"], need_game=True, need_odds=False)
    restored.restore_links(msgspec.json.decode(msgspec.json.encode(live.to_state())), Cat())
    assert [ln.market for ln in live.for_game("g1")] == [ln.market for ln in restored.for_game("g1")]


# ------------------------------------------------------------------ the hot path


def test_scoreboard_heard_of_one_game_does_not_scan_every_game() -> None:
    """``heard(game)`` is read on every book update a live-arbitrage market gets: its cost must
    not grow with the number of games the score feeds report (a full league's scoreboard)."""
    sb = Scoreboard()
    for i in range(20_000):
        sb.accept(game(i, 0, 0, gid=f"x{i}"))
    sb.accept(game(7 * S, 1, 0, gid="g1", feed="a"))
    sb.accept(game(9 * S, 1, 0, gid="g1", feed="b"))
    assert sb.heard("g1") == 9 * S and sb.heard("g1", "a") == 7 * S and sb.heard("nope") == 0
    t0 = time.perf_counter()
    for _ in range(2_000):
        sb.heard("g1")
    assert time.perf_counter() - t0 < 0.2


def _spy_open_orders(k: Kernel) -> list[Any]:
    calls: list[Any] = []
    real = k.orders.open_orders

    def spy(strategy: str | None = None, asset_id: str | None = None) -> Any:
        calls.append(asset_id)
        return real(strategy, asset_id)

    k.orders.open_orders = spy  # type: ignore[method-assign]
    return calls


def test_in_flight_check_uses_the_per_asset_index_on_book_updates() -> None:
    """Both strategies check 'an order already open on this market' on every book update: a
    scan of every open order (other strategies' resting quotes included) per update is the
    hot-path trap; the order store is indexed by asset."""
    k, s, seen = kernel(LiveArbitrage, prior="fixed", p0=0.6)
    k.process(1 * S, "events", market())
    t = START + 2400 * S
    k.process(t, "events", books(790_000, 800_000))
    k.process(t + 1 * S, "events", game(t + 1 * S, 98, 98))
    k.process(t + 2 * S, "events", game(t + 2 * S, 101, 98, el=300))  # the window opens
    calls = _spy_open_orders(k)
    for i in range(5):
        k.process(t + 3 * S + i, "events", books(780_000 - i * 10_000, 800_000))
    assert calls and None not in calls
    k, s, seen = kernel(StatisticalEdge, min_books=2)
    k.process(1 * S, "events", market())
    t = START - 900 * S
    k.process(t - 5 * S, "events", books(600_000, 650_000))
    k.process(t, "events", quotes(0.62, lu=t - 1 * S))
    calls = _spy_open_orders(k)
    for i in range(5):
        k.process(t + 1 * S + i, "events", books(600_000 - i * 10_000, 650_000))
    assert calls and None not in calls


def test_live_arbitrage_book_updates_outside_a_window_and_flat_cost_nothing() -> None:
    """Outside a score change's window a book update can only trigger an exit: with no position
    in the market (or ``exit = "hold"``) the model and the bookmakers' consensus are not
    computed on every update."""
    k, s, seen = kernel(LiveArbitrage, prior="fixed", p0=0.6)
    k.process(1 * S, "events", market())
    k.process(START - 10 * S, "events", quotes(0.6, lu=START - 11 * S))
    t = START + 2400 * S
    k.process(t, "events", books(790_000, 800_000))
    k.process(t + 1 * S, "events", game(t + 1 * S, 98, 98))
    k.process(t + 2 * S, "events", game(t + 2 * S, 101, 98, el=300))
    n = s.stats["evaluations"]
    for i in range(20):  # the window is over
        k.process(t + 20 * S + i, "events", books(780_000 - (i % 3) * 10_000, 800_000))
    assert s.stats["evaluations"] == n and orders(seen) == []


# ------------------------------------------------------------------ the boards


def test_scoreboard_out_of_order_is_judged_against_the_latest_report_repeats_included() -> None:
    """A late frame older than the last *repeat* (not only than the last change) is out of
    order: accepted, it would flip the score back and forth (two phantom score changes)."""
    sb = Scoreboard()

    def st(score: tuple[int, int], feed_ts: int, ts: int) -> GameState:
        return msgspec.structs.replace(game(ts, *score), feed_ts=feed_ts)

    assert sb.accept(st((98, 98), 10 * S, 11 * S))
    assert sb.accept(st((101, 98), 20 * S, 21 * S))
    assert not sb.accept(st((101, 98), 30 * S, 31 * S))  # a repeat, heard at 31
    assert not sb.accept(st((98, 98), 25 * S, 32 * S))  # an old frame, delivered late
    assert sb.get("g1").home_score == 101 and sb.out_of_order == 1  # type: ignore[union-attr]
    # the board keeps judging so after a snapshot
    sb2 = Scoreboard()
    sb2.restore(msgspec.json.decode(msgspec.json.encode(sb.to_state())))
    assert not sb2.accept(st((98, 98), 26 * S, 33 * S))
    assert sb2.accept(st((101, 100), 40 * S, 41 * S))


def test_live_arbitrage_odds_prior_for_a_spreads_only_configuration() -> None:
    """``market_types = ["spreads"]`` with the default ``prior = "odds"``: the prior is the
    game's money line at the bookmakers, whichever of its markets are traded."""
    k, s, seen = kernel(LiveArbitrage, market_types=["spreads"])
    spread = msgspec.structs.replace(market(), sports=SportsMarket(game_id="g1", market_type="spreads", line=-3.5,
                                                                   start_ts=START, league="nba",
                                                                   teams=("Lakers", "Celtics")))  # fmt: skip
    k.process(1 * S, "events", spread)
    k.process(START - 600 * S, "events", quotes(0.6, lu=START - 601 * S))
    k.process(START + 1 * S, "events", game(START + 1 * S, 0, 0, period="Q1", el=1))
    assert abs(s.models["g1"][0] - 0.6) < 1e-3 and s.stats["no_prior"] == 0


def test_one_bookmakers_bad_price_drops_that_book_not_the_consensus() -> None:
    """A decimal price of 1.0 (a suspended line) at one bookmaker used to make the whole
    consensus fail (no statistical-edge trade, no live-arbitrage prior)."""
    k, s, seen = kernel(StatisticalEdge, min_books=2)
    k.process(1 * S, "events", market())
    t = START - 900 * S
    k.process(t - 5 * S, "events", books(530_000, 550_000))
    bad = [msgspec.structs.replace(q, price=1.0) for q in quotes(0.62, lu=t - 1 * S, bookmakers=("betfair",))]
    k.process(t, "events", quotes(0.62, lu=t - 1 * S) + bad)
    assert [o[:2] for o in orders(seen)] == [("h", "BUY")] and s.stats["no_consensus"] == 0


def test_live_arbitrage_model_check_uses_books_priced_after_the_score_not_after_a_clock_tick() -> None:
    """The bookmakers' prices made after the score change are compared with the model; a later
    clock-only update of the game state (news too) must not hide them."""
    k, s, seen = kernel(LiveArbitrage, prior="fixed", p0=0.6)
    k.process(1 * S, "events", market())
    t = START + 2400 * S
    k.process(t, "events", books(790_000, 800_000))
    k.process(t + 1 * S, "events", game(t + 1 * S, 98, 98))
    k.process(t + 2 * S, "events", game(t + 2 * S, 101, 98, el=300))  # model: home ~0.77
    k.process(t + 3 * S, "events", quotes(0.35, lu=t + 2 * S + 500_000_000))  # the books: ~0.35
    k.process(t + 4 * S, "events", game(t + 4 * S, 101, 98, el=302))  # the clock only
    k.process(t + 5 * S, "events", books(530_000, 550_000))  # the old price, inside the window
    assert orders(seen) == [] and s.stats["model_vs_books"] >= 1


def test_statistical_edge_does_not_recompute_the_consensus_on_every_book_update(monkeypatch: Any) -> None:
    """The de-vigged consensus over every bookmaker changes only when the odds board does (or a
    quote ages out): recomputing it on each book update of the token is the hot-path trap.
    The decisions are the same: a new price, or the books going stale, are seen at once."""
    import strategies.statistical_edge as se

    calls: list[int] = []
    real = se.odds_consensus

    def spy(*a: Any, **kw: Any) -> Any:
        calls.append(kw["now"])
        return real(*a, **kw)

    monkeypatch.setattr(se, "odds_consensus", spy)
    k, s, seen = kernel(StatisticalEdge, min_books=2, odds_max_age_s=120.0)
    k.process(1 * S, "events", market())
    t = START - 9000 * S
    k.process(t - 5 * S, "events", books(600_000, 650_000))
    k.process(t, "events", quotes(0.62, lu=t - 1 * S))
    n = len(calls)
    for i in range(50):
        k.process(t + 1 * S + i * S, "events", books(600_000 - (i % 3) * 10_000, 650_000))
    assert len(calls) - n <= 1 and s.stats["no_edge"] >= 50
    k.process(t + 60 * S, "events", quotes(0.70, lu=t + 59 * S))  # news: the edge is there now
    assert [o[:2] for o in orders(seen)] == [("h", "BUY")]
    # the books age out (120 s after the oldest quote used): no consensus from then on
    k.process(t + 59 * S + 121 * S, "events", books(600_000, 650_000))
    assert s.stats["no_consensus"] >= 1
