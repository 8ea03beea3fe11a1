"""Deterministic generator of the sports strategies' recordings: an NBA game on Polymarket whose
score changes lead the market.

Run from the repository root: ``.venv/bin/python recordings/make_sports.py`` (optionally an output
directory). Same code, same bytes. Each recording is one game, Boston Celtics (home) v Los
Angeles Lakers, in the venues' own wire formats where polybot has an adapter for them:

* the Polymarket money-line market as a Gamma ``/markets`` response (source
  ``polymarket.gamma``, the sports fields of a real Gamma sports market: ``gameId``,
  ``sportsMarketType``, ``gameStartTime``, ``secondsDelay`` 3, sports fee schedule 3 %);
* the score as frames of Polymarket's sports WebSocket (source ``sports.polymarket``: ``gameId``,
  ``homeTeam``, ``score`` "home-away", ``period`` "Q1".."Q4", ``elapsed`` in the quarter, and an
  ``eventState.updatedAt`` 300 ms before the receive time);
* three bookmakers' money-line prices as The Odds API v4 responses (source ``odds.theoddsapi``,
  decimal odds, a 4-5 % overround), refreshed half a second after every score change (the books
  are the fast side);
* the Polymarket books as polybot events (source ``events``: mirrored YES/NO books, as the other
  generated recordings), re-centred on the game's fair value ``lag_s`` seconds after each score
  change: until then they sit on the old price.

The world's fair value is the home win probability of :mod:`polybot.sports.winprob`'s NBA margin
model (sigma 12 points) from the bookmakers' pregame probability 0.60: the recordings are there to
test the strategies' decisions, so the world and the model agree by construction.

Recordings:

* ``sports-nba-lag.jsonl.gz``: a game where the market usually has a basket before the score
  feed (traders watching it live move the book a second earlier: nothing to trade), until, with 7
  minutes left and tied 98-98, the Celtics hit a three that the score feed reports first: the fair
  value jumps ~23 cents while the book still offers the old price for 5 s (longer than the 3 s
  matching delay). A live-arbitrage buy fills; the market catching up gives its exit. The Celtics
  win; the market resolves.
* ``sports-nba-fast.jsonl.gz``: the same game where the market catches up in 2 s, less than the
  matching delay: the delayed order finds the old price gone and is killed (no fill).
* ``sports-pregame-edge.jsonl.gz``: before the same game, the bookmakers price the Celtics at
  ~0.60 while Polymarket offers them at 0.55 for a minute; then Polymarket moves to 0.62 / 0.63.
  A statistical-edge buy, then its exit once the edge is gone.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters.odds.theoddsapi import odds_input  # noqa: E402
from adapters.polymarket.gamma import gamma_input  # noqa: E402
from polybot.events import ENCODER, BookDelta, BookSnapshot, Event, MarketResolved, TradePrint  # noqa: E402
from polybot.sports.winprob import GameModel  # noqa: E402
from polybot.synthetic import write_stream  # noqa: E402

SCALE = 1_000_000
TICK = 10_000
SHARE = 1_000_000
MS = 1_000_000
S = 1_000_000_000
START_NS = 1_795_000_000_000_000_000  # 2026-11-17T...Z
GAME_ID = "90210001"
HOME, AWAY = "Boston Celtics", "Los Angeles Lakers"
P0 = 0.60  # the bookmakers' pregame home win probability
BOOKS = (("pinnacle", "Pinnacle", 0.040, 0.000), ("draftkings", "DraftKings", 0.048, 0.004),
         ("fanduel", "FanDuel", 0.045, -0.003))  # (key, title, overround, tilt)  # fmt: skip
QUARTER_S = 12 * 60


def token_id(label: str) -> str:
    return str(int.from_bytes(hashlib.sha256(label.encode()).digest(), "big"))[:77].rjust(77, "1")


def iso(ns: int) -> str:
    s, rem = divmod(ns, S)
    from datetime import UTC, datetime

    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rem // MS:03d}Z"


class Game:
    """One game's recording: the clock of the recording (``ts``), the game clock, the score, the
    market's mirrored books, and the records."""

    def __init__(self, label: str, *, lag_s: float = 5.0, fee_rate: str = "0.03", start_offset_s: float = 60.0,
                 feed_lag_ms: int = 300) -> None:  # fmt: skip
        self.label = label
        self.lag_ns = int(lag_s * S)
        self.feed_lag_ns = feed_lag_ms * MS
        self.ts = START_NS
        self.start_ns = START_NS + int(start_offset_s * S)
        self.yes = token_id("celtics-lakers:celtics")
        self.no = token_id("celtics-lakers:lakers")
        self.market = "0x" + hashlib.sha256(b"market:celtics-lakers").hexdigest()
        self.model = GameModel.for_sport("basketball", "nba", P0)
        self.home = self.away = 0
        self.period = ""
        self.elapsed = 0  # seconds into the quarter
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.out: list[tuple[int, str, bytes]] = []
        self.fee_rate = fee_rate
        self.pending: list[tuple[int, float]] = []  # (when, fair) re-centrings not yet done

    # ------------------------------------------------------------------ output

    def at(self, dt_s: float) -> None:
        """Advance the recording's clock by ``dt_s`` seconds, doing any re-centring due first."""
        target = self.ts + int(dt_s * S)
        while self.pending and self.pending[0][0] <= target:
            when, fair = self.pending.pop(0)
            self.ts = max(self.ts, when)
            self.recenter(fair)
        self.ts = max(self.ts, target)

    def put(self, source: str, msg: bytes | list[Event]) -> None:
        if isinstance(msg, list):
            msg = ENCODER.encode(msg)
        self.out.append((self.ts, source, msg))
        self.ts += MS  # one millisecond between inputs

    def records(self) -> Iterator[tuple[int, str, bytes]]:
        return iter(self.out)

    # ------------------------------------------------------------------ venues

    def gamma(self) -> None:
        start = iso(self.start_ns)
        m = {
            "id": "2990001", "conditionId": self.market, "questionID": "0x" + "ab" * 32,
            "question": "Lakers vs. Celtics", "slug": "nba-lal-bos-2026-11-17",
            "outcomes": json.dumps(["Celtics", "Lakers"]), "outcomePrices": json.dumps(["0.6", "0.4"]),
            "clobTokenIds": json.dumps([self.yes, self.no]),
            "active": True, "closed": False, "acceptingOrders": True, "enableOrderBook": True,
            "orderPriceMinTickSize": 0.01, "orderMinSize": 5, "negRisk": False,
            "startDate": iso(START_NS - 86_400 * S), "endDate": iso(self.start_ns + 4 * 3600 * S),
            "gameStartTime": start[:10] + " " + start[11:19] + "+00", "eventStartTime": start[:19] + "Z",
            "gameId": GAME_ID, "sportsMarketType": "moneyline", "groupItemTitle": "Match Winner", "secondsDelay": 3,
            "feesEnabled": True, "feeType": "sports_fees_v2",
            "feeSchedule": {"exponent": 1, "rate": float(self.fee_rate), "takerOnly": True, "rebateRate": 0.25},
            "events": [{"id": "880001", "slug": "nba-lal-bos-2026-11-17", "title": "Lakers vs. Celtics",
                        "seriesSlug": "nba", "gameId": int(GAME_ID), "startTime": start[:19] + "Z",
                        "negRisk": False}],
        }  # fmt: skip
        self.put("polymarket.gamma", gamma_input("markets", {"slug": m["slug"]}, json.dumps([m]).encode()))

    def odds(self, p_home: float) -> None:
        books = []
        for key, title, vig, tilt in BOOKS:
            ph = min(0.99, max(0.01, p_home + tilt))
            dh = round(1.0 / (ph * (1 + vig)), 2)
            da = round(1.0 / ((1 - ph) * (1 + vig)), 2)
            upd = iso(self.ts - 200 * MS)
            books.append({"key": key, "title": title, "last_update": upd, "markets": [
                {"key": "h2h", "last_update": upd, "outcomes": [{"name": HOME, "price": dh}, {"name": AWAY, "price": da}]}]})
        body = [{"id": "ev-celtics-lakers", "sport_key": "basketball_nba", "sport_title": "NBA",
                 "commence_time": iso(self.start_ns)[:19] + "Z", "home_team": HOME, "away_team": AWAY,
                 "bookmakers": books}]  # fmt: skip
        q = {"regions": "us", "markets": "h2h", "oddsFormat": "decimal", "dateFormat": "iso"}
        self.put("odds.theoddsapi", odds_input("/v4/sports/basketball_nba/odds", q, json.dumps(body).encode()))

    def score_frame(self, status: str = "InProgress", live: bool = True, ended: bool = False,
                    feed_lag_ns: int | None = None) -> None:  # fmt: skip
        lag = self.feed_lag_ns if feed_lag_ns is None else feed_lag_ns
        f: dict[str, Any] = {"gameId": int(GAME_ID), "leagueAbbreviation": "nba", "slug": "nba-lal-bos-2026-11-17",
                             "homeTeam": HOME, "awayTeam": AWAY, "status": status,
                             "score": f"{self.home}-{self.away}", "period": self.period,
                             "elapsed": f"{self.elapsed // 60:02d}:{self.elapsed % 60:02d}" if self.period else "",
                             "live": live, "ended": ended}  # fmt: skip
        f["eventState"] = {"type": "basketball", "updatedAt": iso(self.ts - lag), "score": f["score"], "period": self.period}
        if ended:
            f["finishedTimestamp"] = iso(self.ts)
        self.put("sports.polymarket", json.dumps(f).encode())

    # ------------------------------------------------------------------ the market

    def tau(self) -> float:
        q = int(self.period[1]) if self.period.startswith("Q") else 1
        left = (4 - q) * QUARTER_S + (QUARTER_S - self.elapsed)
        return max(0.0, left / (4 * QUARTER_S))

    def fair(self) -> float:
        return self.model.p_home_win(self.home - self.away, self.tau())

    def book_events(self) -> list[Event]:
        def mirror(levels: dict[int, int]) -> tuple[tuple[int, int], ...]:
            return tuple(sorted((SCALE - p, s) for p, s in levels.items()))

        return [BookSnapshot(asset_id=self.yes, market=self.market, bids=tuple(sorted(self.bids.items())),
                             asks=tuple(sorted(self.asks.items())), tick_size=TICK),
                BookSnapshot(asset_id=self.no, market=self.market, bids=mirror(self.asks), asks=mirror(self.bids),
                             tick_size=TICK)]  # fmt: skip

    def set_touch(self, bb: int, ba: int, depth: int = 5, size: int = 150) -> None:
        self.bids = {bb - i * TICK: (size + 40 * i) * SHARE for i in range(depth) if bb - i * TICK >= TICK}
        self.asks = {ba + i * TICK: (size + 40 * i) * SHARE for i in range(depth) if ba + i * TICK <= SCALE - TICK}
        self.put("events", self.book_events())

    def recenter(self, fair: float) -> None:
        """The market catches up: a 2-tick touch around the fair value."""
        c = int(round(fair * 100))
        self.set_touch((c - 1) * TICK, (c + 1) * TICK)

    def noise(self) -> None:
        """A size change behind the touch (the book is alive; the top does not move)."""
        if len(self.bids) > 2:
            p = sorted(self.bids)[0]
            self.bids[p] += 10 * SHARE
            bb, ba = max(self.bids), min(self.asks)
            self.put("events", [
                BookDelta(asset_id=self.yes, market=self.market, side="BID", price=p, size=self.bids[p], best_bid=bb, best_ask=ba),
                BookDelta(asset_id=self.no, market=self.market, side="ASK", price=SCALE - p, size=self.bids[p],
                          best_bid=SCALE - ba, best_ask=SCALE - bb),
            ])  # fmt: skip

    def trade_print(self) -> None:
        if self.asks:
            p = min(self.asks)
            self.put("events", [TradePrint(asset_id=self.yes, market=self.market, price=p, size=5 * SHARE, side="BUY")])

    # ------------------------------------------------------------------ the game

    def go_live(self) -> None:
        self.period, self.elapsed = "Q1", 0
        self.score_frame()

    def basket(self, home_pts: int, away_pts: int, period: str, elapsed_s: int, *, lead: bool = True,
               feed_lag_ns: int | None = None) -> None:  # fmt: skip
        """A score change at game clock (``period``, ``elapsed_s``). ``lead``: the score feed has
        it first, the bookmakers 0.5 s later, the Polymarket book ``lag_s`` later (the edge).
        Otherwise the market has it first (traders watching the game), 1 s before the feed."""
        self.home += home_pts
        self.away += away_pts
        self.period, self.elapsed = period, elapsed_s
        fair = self.fair()
        if not lead:
            self.recenter(fair)
            self.at(1.0)
        self.score_frame(feed_lag_ns=feed_lag_ns)
        if lead:
            self.pending.append((self.ts + self.lag_ns, fair))
            self.pending.sort()
        self.at(0.5)
        self.odds(fair)

    def finish(self) -> None:
        self.period, self.elapsed = "Q4", QUARTER_S
        self.at(1.0)
        self.score_frame(status="Final", live=False, ended=True)
        self.at(2.0)
        win = self.yes if self.home > self.away else self.no
        self.put("events", [MarketResolved(market=self.market, asset_ids=(self.yes, self.no), winning_asset_id=win,
                                           winning_outcome="Celtics" if win == self.yes else "Lakers")])  # fmt: skip


def nba_game(label: str, *, lag_s: float = 5.0, fee_rate: str = "0.03", big_feed_lag_ns: int | None = None,
             second_feed_stale_score: bool = False, feed_lag_ms: int = 300) -> Game:  # fmt: skip
    """The recorded game (see the module docstring); the knobs make the tests' variants:
    ``lag_s`` (how late the market follows), ``fee_rate``, ``feed_lag_ms`` (how far the score
    feed's own time trails the receive time), ``big_feed_lag_ns`` (the same for the big score
    change only), ``second_feed_stale_score``
    (a second score feed, a JSON scoreboard, still reporting the tie at the big change)."""
    g = Game(label, lag_s=lag_s, fee_rate=fee_rate, feed_lag_ms=feed_lag_ms)
    g.gamma()
    g.at(1.0)
    g.odds(P0)
    g.at(1.0)
    g.recenter(P0)
    g.at(2.0)
    g.score_frame(status="Scheduled", live=False)
    for _ in range(20):  # pregame: the book is alive
        g.at(2.7)
        g.noise()
    g.ts = max(g.ts, g.start_ns)
    g.go_live()
    # small baskets through the first three quarters: moves of 1-3 cents
    plays = [(2, 0, "Q1", 75), (0, 3, "Q1", 190), (2, 0, "Q1", 330), (0, 2, "Q1", 505), (3, 0, "Q2", 120),
             (0, 2, "Q2", 300), (0, 3, "Q2", 610), (2, 0, "Q3", 200), (0, 2, "Q3", 460)]  # fmt: skip
    for hp, ap, per, el in plays:
        g.at(9.0)
        g.noise()
        g.at(3.0)
        g.basket(hp, ap, per, el, lead=False)
        for _ in range(3):
            g.at(2.1)
            g.noise()
    # fast-forward the score to a tie late in the fourth quarter (one state, its own re-centring)
    g.at(10.0)
    g.home, g.away = 98, 98
    g.period, g.elapsed = "Q4", 290
    g.recenter(g.fair())
    g.at(1.0)
    g.score_frame()
    g.at(0.5)
    g.odds(g.fair())
    for _ in range(6):
        g.at(2.0)
        g.noise()
    # the big one: 7 minutes left (5:00 into Q4), the Celtics hit a three
    g.at(3.0)
    if second_feed_stale_score:
        scoreboard = {"games": [{"id": GAME_ID, "home": HOME, "away": AWAY, "home_score": 98, "away_score": 98,
                                  "period": "Q4", "clock": "05:00", "status": "in"}]}  # fmt: skip
        g.put("sports.scoreboard", json.dumps({"url": "https://scores.example/nba", "map": SCOREBOARD_MAP,
                                               "body": scoreboard}).encode())  # fmt: skip
    g.basket(3, 0, "Q4", 300, feed_lag_ns=big_feed_lag_ns)
    for _ in range(8):  # the lagging book is alive meanwhile, then the market catches up
        g.at(1.0)
        g.noise()
    for _ in range(6):
        g.at(2.0)
        g.noise()
        g.trade_print()
    g.at(5.0)
    g.basket(0, 2, "Q4", 420, lead=False)
    g.at(8.0)
    g.basket(2, 0, "Q4", 560, lead=False)
    g.at(8.0)
    g.noise()
    g.finish()
    return g


#: The generic scoreboard mapping of the second score feed (adapters.sports.scoreboard).
SCOREBOARD_MAP = {"items": "games", "game_id": "id", "home": "home", "away": "away", "home_score": "home_score",
                  "away_score": "away_score", "period": "period", "clock": "clock", "status": "status",
                  "live": "status=in", "sport": "=basketball", "league": "=nba", "clock_elapsed": True}  # fmt: skip


def pregame_edge(label: str = "sports-pregame-edge", fee_rate: str = "0.03", ask: float = 0.55,
                 dispersion: bool = False, one_book: bool = False) -> Game:  # fmt: skip
    """Before the game: the books say ~0.60, Polymarket offers the Celtics at ``ask`` for a
    minute, then moves to 0.62 / 0.63 (the edge is gone). ``dispersion``: the books disagree
    (one at 0.52, one at 0.68); ``one_book``: only one bookmaker quotes."""
    g = Game(label, fee_rate=fee_rate, start_offset_s=600.0)
    global BOOKS
    saved = BOOKS
    if dispersion:
        BOOKS = (("pinnacle", "Pinnacle", 0.04, -0.08), ("draftkings", "DraftKings", 0.045, 0.08),
                 ("fanduel", "FanDuel", 0.045, 0.0))  # fmt: skip
    elif one_book:
        BOOKS = saved[:1]
    try:
        g.gamma()
        g.at(1.0)
        g.odds(P0)
        g.at(1.0)
        g.set_touch(int(round((ask - 0.02) * 100)) * TICK, int(round(ask * 100)) * TICK)
        for i in range(30):
            g.at(2.0)
            g.noise()
            if i % 10 == 9:
                g.odds(P0)  # a later poll: the same prices (not news)
        g.at(2.0)
        g.set_touch(62 * TICK, 63 * TICK)
        for _ in range(20):
            g.at(2.0)
            g.noise()
    finally:
        BOOKS = saved
    return g


def recordings() -> dict[str, Game]:
    return {
        "sports-nba-lag.jsonl.gz": nba_game("sports-nba-lag"),
        "sports-nba-fast.jsonl.gz": nba_game("sports-nba-fast", lag_s=2.0),
        "sports-pregame-edge.jsonl.gz": pregame_edge(),
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "recordings"
    out.mkdir(parents=True, exist_ok=True)
    for name, g in recordings().items():
        n = write_stream(str(out / name), g.records())
        print(f"{name}: {n} inputs")


if __name__ == "__main__":
    main()
