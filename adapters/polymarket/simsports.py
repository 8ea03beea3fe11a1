"""A live basketball game for the exchange simulator: score feed, bookmaker odds, lagging markets.

With ``SimConfig(sports=True)`` the :class:`~adapters.polymarket.sim.SimServer` runs one game at a
time (:class:`SimSports`, ``server.sports``) and serves, on the same loopback port as the rest of
the simulator and in the real wire formats:

* ``/ws/sports``: Polymarket's sports WebSocket (``wss://sports-api.polymarket.com/ws``). No
  subscribe message. On connect the server sends the current state of every game once; then one
  JSON object frame per update: when the game goes live, on every score change, on every period
  change and at the end. The server sends the text ``ping`` every ``ping_interval_s`` (5 s) and
  closes (code 1008, "pong timeout") a connection that has not answered ``pong`` within
  ``pong_timeout_s`` (10 s) of a ping. Frames are compact JSON, keys in this order::

      {"gameId":93817265,"leagueAbbreviation":"nba","slug":"nba-bos-lal-2026-09-21","homeTeam":"BOS",
       "awayTeam":"LAL","status":"InProgress","score":"54-49","period":"Q3","elapsed":"5:18",
       "live":true,"ended":false}

  ``score`` is "HOME-AWAY"; ``period`` "Q1".."Q4" ("1H"/"2H" for NCAAB), "OT", "2OT", ...;
  ``elapsed`` "M:SS" is the time elapsed IN the current period. Before the tip the state is
  ``"status":"Scheduled"`` without ``period``/``elapsed``; the end is ``"status":"Final"``,
  ``"period":"FT"``, ``"live":false``, ``"ended":true`` plus ``"finishedTimestamp"`` (ISO,
  nanoseconds, as in the real captures).
* ``GET /v4/sports`` and ``GET /v4/sports/{sport_key}/odds``: The Odds API v4. ``apiKey`` is
  required (any non-empty value; missing: 401 ``{"message","error_code":"MISSING_KEY",...}``);
  ``regions`` (us, us2, uk, eu, au) or ``bookmakers``; ``markets`` h2h (default), spreads, totals;
  ``oddsFormat`` decimal (default) | american; ``dateFormat`` iso (default) | unix. The answer is
  the array of scheduled and live games (a finished game is dropped) with three books: pinnacle
  (region eu), draftkings and fanduel (us). Outcomes are sorted by name, as the real API does.
  Every request that returns games costs ``len(markets) x len(regions)`` (bookmakers: one region
  per 10) from a per-``apiKey`` quota (``odds_quota``), reported in ``x-requests-remaining``,
  ``x-requests-used`` and ``x-requests-last``; an exhausted quota answers 401
  ``OUT_OF_USAGE_CREDITS``.
* A Polymarket moneyline market per game, in Gamma (``/markets``, ``/events``, ``/series``) with
  the real sports fields (``sportsMarketType`` "moneyline", ``gameId`` (a string on the market,
  an int on its event), ``gameStartTime`` "YYYY-MM-DD HH:MM:SS+00", ``eventStartTime``,
  ``secondsDelay``, ``groupItemTitle`` "Match Winner", the sports fee schedule (rate 0.03,
  ``feeType`` "sports_fees_v2"), event title "Celtics vs. Lakers", slug
  "nba-bos-lal-<date>", ``seriesSlug`` "nba"). **Outcomes are [home team, away team]**: token 0
  (the market's "YES" token in the simulator's terms) pays if the home team wins. Its book is one
  YES book in home-team terms, rendered for both tokens and hashed like every other simulator
  market; at the end of the game it resolves (``market_resolved``) to the winner.

The game model
--------------
Regulation is ``periods x period_s`` game seconds (NBA 4 x 12 min), overtime periods of 5 min
until the tie breaks. Game time runs ``speed = regulation / game_seconds`` times faster than wall
time, so a whole game takes ``game_seconds`` wall seconds (240 by default). Scoring events come
as a Poisson process in game time (``points per game / 2.3`` events per regulation); each is a
2 (70 %) or a 3 (30 %). The scorer follows a two-state Markov chain (possessions alternate: after
a home basket the next one is the away team's with probability ``a·(1 - δ)``, after an away
basket the home team's with probability ``a·(1 + δ)``). ``δ`` gives the home team the drift
``mu = sigma · Φ⁻¹(p0)`` points per game, and ``a`` is chosen so the final margin's standard
deviation is ``sigma`` (12 points for the NBA): the margin is then close to the Brownian motion of
Stern (1994), and the simulator's TRUE fair home-win probability is that model's::

    P(home wins) = Φ((lead + mu·τ) / (sigma·√τ)),   τ = regulation time remaining / regulation

(in overtime τ is the overtime left over the regulation length). The value is re-evaluated at
every feed update (tip, score, period change, end), so it is a step function of time: the odds
and the market are priced from the same numbers. It is computed here, from the simulator's own
parameters; the simulator stands for the outside world and imports no client model.

The lag
-------
At each update the bookmakers re-price AT ONCE (``last_update`` = the update's time; each book
adds its own margin, about 2.5-4.5 %, and a small deterministic noise). The Polymarket book is
re-centred on the same TRUE probability ``market_lag_s`` wall seconds LATER (default 3; 0 =
immediately): until then it still sits on the old price while the score feed and the books
have moved, which is the edge a live-arbitrage strategy trades. A re-centre keeps the sizes of
the levels that stay, adds fresh levels (a few hundred shares each), removes the ones that
leave, with a 1-2 tick spread and ``levels`` levels a side; the changes go out as one
``price_change`` frame, ordered so that no intermediate state is crossed or one-sided. Between
re-centrings only sizes change (about one ``price_change`` a second), never the top prices; the
random walk of the other markets does not touch a sports market. Near 0 or 1 the tick becomes
0.001 as for every simulator market. The game's result resolves the market ``market_lag_s``
after the final whistle; with ``sports_loop`` a new game (new ``gameId``, new market, announced
by ``new_market``) is created then and goes live ``pregame_s`` later; a rematch on the same day
gets the slug ``nba-bos-lal-<date>-2`` (``-3``, ...).

While the game is live, a marketable order on its market is matched ``secondsDelay`` seconds
after it is posted (the POST answers ``"status":"delayed"``), against the book as it is then;
see :mod:`adapters.polymarket.simexchange`.

Time: everything (the tip, the scores, the re-centrings, the delayed matches) sits on one
timeline of wall-clock nanoseconds processed by :meth:`SimSports.advance`. With ``autostart``
a task advances it with ``SimConfig.clock``; with ``autostart=False`` tests call
``server.sports_tick(now_ns)`` (or :meth:`SimSports.advance`) and nothing waits. The same seed
and the same calls give the same game, odds and frames.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, NamedTuple

from aiohttp import WSMsgType, web
from loguru import logger

from polybot.units import ONE, from_units

from .sim import ASK, BID, _compact, _Market
from .simexchange import stop_task

if TYPE_CHECKING:  # pragma: no cover
    from .sim import SimConfig, SimServer

__all__ = ["LEAGUES", "League", "SimGame", "SimSports", "GameUpdate", "stern_probability", "team_names"]

SPORTS_WS_PATH = "/ws/sports"
ODDS_SPORTS_PATH = "/v4/sports"
NS = 1_000_000_000
_N = NormalDist()
P3 = 0.3  # share of scoring events that are threes
MEAN_PTS = 2 * (1 - P3) + 3 * P3  # 2.3
MEAN_PTS2 = 4 * (1 - P3) + 9 * P3  # E[points^2] = 5.5
NOISE_PER_S = 1.0  # size-only book updates per wall second on a sports market
SIZE_SHARES = 250.0  # median size of a fresh level, shares
GROUP_ITEM_TITLE = "Match Winner"
FEE_SCHEDULE = {"exponent": 1, "rate": 0.03, "takerOnly": True, "rebateRate": 0.25}  # Gamma's sports schedule
SERIES_ID = {"nba": "10345", "wnba": "10105", "ncaab": "10470"}
CLOSE_PONG_TIMEOUT = 1008
ODDS_ERRORS = "https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html"
#: (key, title, region, margin): the books the odds endpoint quotes
BOOKS: tuple[tuple[str, str, str, float], ...] = (
    ("pinnacle", "Pinnacle", "eu", 0.025),
    ("draftkings", "DraftKings", "us", 0.045),
    ("fanduel", "FanDuel", "us", 0.04),
)
REGIONS = ("us", "us2", "uk", "eu", "au")
ODDS_MARKETS = ("h2h", "spreads", "totals")


class League(NamedTuple):
    """A basketball league's clock and scoring (``sigma``: final-margin st. dev., points)."""

    key: str
    sport_key: str  # The Odds API's
    sport_title: str
    periods: int
    period_s: int
    ot_s: int
    points: float  # both teams, per regulation game
    sigma: float
    labels: tuple[str, ...]
    resolution_source: str


LEAGUES: dict[str, League] = {
    "nba": League("nba", "basketball_nba", "NBA", 4, 720, 300, 228.0, 12.0, ("Q1", "Q2", "Q3", "Q4"),
                  "https://www.nba.com/"),
    "wnba": League("wnba", "basketball_wnba", "WNBA", 4, 600, 300, 165.0, 10.0, ("Q1", "Q2", "Q3", "Q4"),
                   "https://www.wnba.com/"),
    "ncaab": League("ncaab", "basketball_ncaab", "NCAAB", 2, 1200, 300, 145.0, 11.0, ("1H", "2H"),
                    "https://www.ncaa.com/"),
}  # fmt: skip

#: NBA team -> (abbreviation, nickname); other names fall back to their last word
NBA_TEAMS: dict[str, tuple[str, str]] = {
    "Atlanta Hawks": ("ATL", "Hawks"), "Boston Celtics": ("BOS", "Celtics"), "Brooklyn Nets": ("BKN", "Nets"),
    "Charlotte Hornets": ("CHA", "Hornets"), "Chicago Bulls": ("CHI", "Bulls"),
    "Cleveland Cavaliers": ("CLE", "Cavaliers"), "Dallas Mavericks": ("DAL", "Mavericks"),
    "Denver Nuggets": ("DEN", "Nuggets"), "Detroit Pistons": ("DET", "Pistons"),
    "Golden State Warriors": ("GSW", "Warriors"), "Houston Rockets": ("HOU", "Rockets"),
    "Indiana Pacers": ("IND", "Pacers"), "Los Angeles Clippers": ("LAC", "Clippers"),
    "Los Angeles Lakers": ("LAL", "Lakers"), "Memphis Grizzlies": ("MEM", "Grizzlies"), "Miami Heat": ("MIA", "Heat"),
    "Milwaukee Bucks": ("MIL", "Bucks"), "Minnesota Timberwolves": ("MIN", "Timberwolves"),
    "New Orleans Pelicans": ("NOP", "Pelicans"), "New York Knicks": ("NYK", "Knicks"),
    "Oklahoma City Thunder": ("OKC", "Thunder"), "Orlando Magic": ("ORL", "Magic"),
    "Philadelphia 76ers": ("PHI", "76ers"), "Phoenix Suns": ("PHX", "Suns"),
    "Portland Trail Blazers": ("POR", "Trail Blazers"), "Sacramento Kings": ("SAC", "Kings"),
    "San Antonio Spurs": ("SAS", "Spurs"), "Toronto Raptors": ("TOR", "Raptors"), "Utah Jazz": ("UTA", "Jazz"),
    "Washington Wizards": ("WAS", "Wizards"),
}  # fmt: skip


def team_names(name: str) -> tuple[str, str]:
    """(abbreviation, nickname) of a team: the NBA table, else the last word ("Las Vegas Aces"
    -> ("ACE", "Aces"))."""
    if name in NBA_TEAMS:
        return NBA_TEAMS[name]
    last = name.split()[-1]
    letters = "".join(ch for ch in last if ch.isalnum()) or "TM"
    return letters[:3].upper(), last


def stern_probability(lead: float, tau: float, mu: float, sigma: float) -> float:
    """Stern's Brownian-motion win probability of the team leading by ``lead`` with the fraction
    ``tau`` of regulation left, drift ``mu`` and st. dev. ``sigma`` per regulation game."""
    if tau <= 0:
        return 1.0 if lead > 0 else 0.0 if lead < 0 else 0.5
    return _N.cdf((lead + mu * tau) / (sigma * math.sqrt(tau)))


def _iso_s(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % NS:09d}Z"


def _sql_ts(ns: int) -> str:
    """Gamma's ``gameStartTime`` form: ``"2026-04-05 15:10:00+00"``."""
    return datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") + "+00"


# ---------------------------------------------------------------------------------------------
# the game


class GameUpdate(NamedTuple):
    """One change of the game's state: ``start``, ``score``, ``period`` or ``end``."""

    kind: str
    game_t: float  # game seconds since the tip
    side: str = ""  # score: "home" | "away"
    points: int = 0


class SimGame:
    """A seeded basketball game (see the module docstring for the model). Driven by
    :meth:`start` and :meth:`step`; :meth:`next_t` says when (game seconds) the next update is."""

    def __init__(self, *, seed: int, index: int, league: str = "nba", p0: float = 0.6) -> None:
        if league not in LEAGUES:
            raise ValueError(f"league must be one of {sorted(LEAGUES)}, not {league!r}")
        if not 0.01 <= p0 <= 0.99:
            raise ValueError("p0 must be within [0.01, 0.99]")
        self.league = lg = LEAGUES[league]
        self.p0 = p0
        self._rng = random.Random(f"polybot-sim/{seed}/sports/{index}/game")
        self.regulation_s = float(lg.periods * lg.period_s)
        n = lg.points / MEAN_PTS  # scoring events per regulation game
        self.rate = n / self.regulation_s  # per game second
        self.sigma = lg.sigma
        self.mu = lg.sigma * _N.inv_cdf(p0)
        delta = self.mu / (n * MEAN_PTS)
        var = MEAN_PTS2 - MEAN_PTS**2
        # Var(final margin) ~= n (m^2 (1 - a) / a + var) = sigma^2  ->  a
        a = 1.0 / (1.0 + max(1e-6, self.sigma**2 / n - var) / MEAN_PTS**2)
        self.p_home_after_away = min(1.0, a * (1 + delta))
        self.p_away_after_home = min(1.0, a * (1 - delta))
        self.home_share = (1 + delta) / 2
        self.home = 0
        self.away = 0
        self.t = 0.0
        self.period = 0  # 0-based: regulation periods, then overtimes
        self.period_start = 0.0
        self.period_end = float(lg.period_s)
        self.status = "Scheduled"
        self._last: str | None = None
        self._next_score = 0.0

    @property
    def live(self) -> bool:
        return self.status == "InProgress"

    @property
    def ended(self) -> bool:
        return self.status == "Final"

    @property
    def lead(self) -> int:
        return self.home - self.away

    def period_label(self) -> str:
        lg = self.league
        if self.period < lg.periods:
            return lg.labels[self.period]
        k = self.period - lg.periods + 1
        return "OT" if k == 1 else f"{k}OT"

    def elapsed_label(self) -> str:
        s = int(self.t - self.period_start + 1e-9)
        return f"{s // 60}:{s % 60:02d}"

    def tau(self) -> float:
        """The fraction of regulation left (in overtime: the overtime left over regulation)."""
        if self.period < self.league.periods:
            return max(0.0, self.regulation_s - self.t) / self.regulation_s
        return max(0.0, self.period_end - self.t) / self.regulation_s

    def probability(self) -> float:
        """The TRUE fair probability that the home team wins (1 or 0 once final)."""
        if self.ended:
            return 1.0 if self.lead > 0 else 0.0
        return stern_probability(self.lead, self.tau(), self.mu, self.sigma)

    def expected_margin(self) -> tuple[float, float]:
        """(mean, st. dev.) of the final margin (home - away) under the model."""
        tau = self.tau()
        return self.lead + self.mu * tau, self.sigma * math.sqrt(tau)

    def expected_total(self) -> tuple[float, float]:
        """(mean, st. dev.) of the final total points."""
        left = self.tau() * self.regulation_s * self.rate  # scoring events still to come
        return self.home + self.away + left * MEAN_PTS, math.sqrt(left * MEAN_PTS2)

    def start(self) -> GameUpdate:
        if self.status != "Scheduled":
            raise RuntimeError("the game has already started")
        self.status = "InProgress"
        self._next_score = self._rng.expovariate(self.rate)
        return GameUpdate("start", 0.0)

    def next_t(self) -> float | None:
        """Game time of the next update (None: not live)."""
        return min(self._next_score, self.period_end) if self.live else None

    def step(self) -> GameUpdate:
        """Apply the next update (a basket, a period change or the end) and return it."""
        if not self.live:
            raise RuntimeError("the game is not live")
        rng = self._rng
        if self._next_score < self.period_end:
            self.t = self._next_score
            if self._last is None:
                home = rng.random() < self.home_share
            elif self._last == "home":
                home = rng.random() >= self.p_away_after_home
            else:
                home = rng.random() < self.p_home_after_away
            pts = 3 if rng.random() < P3 else 2
            side = "home" if home else "away"
            if home:
                self.home += pts
            else:
                self.away += pts
            self._last = side
            self._next_score = self.t + rng.expovariate(self.rate)
            return GameUpdate("score", self.t, side, pts)
        self.t = self.period_end
        lg = self.league
        if self.period + 1 < lg.periods or self.home == self.away:
            self.period += 1
            self.period_start = self.t
            self.period_end = self.t + (lg.period_s if self.period < lg.periods else lg.ot_s)
            return GameUpdate("period", self.t)
        self.status = "Final"
        return GameUpdate("end", self.t)


# ---------------------------------------------------------------------------------------------
# the simulator's side: one game (and its market) after another


class _Run:
    """A game, its moneyline market and what the outside world knows of it."""

    def __init__(self, index: int, game: SimGame, game_id: int, odds_id: str, market: _Market, created_ns: int,
                 live_ns: int, home: str, away: str) -> None:  # fmt: skip
        self.index = index
        self.game = game
        self.game_id = game_id
        self.odds_id = odds_id  # The Odds API event id
        self.market = market
        self.created_ns = created_ns
        self.live_ns = live_ns  # the scheduled tip (wall ns)
        self.home, self.away = home, away
        self.home_abbr, self.home_nick = team_names(home)
        self.away_abbr, self.away_nick = team_names(away)
        date = datetime.fromtimestamp(live_ns // NS, tz=UTC).strftime("%Y-%m-%d")
        self.slug = f"{game.league.key}-{self.home_abbr.lower()}-{self.away_abbr.lower()}-{date}"
        self.title = f"{self.home_nick} vs. {self.away_nick}"
        self.p = game.probability()  # TRUE home-win probability as of the last update
        self.p_ns = created_ns
        self.quote_seq = 0  # bookmaker re-pricings
        self.quotes: dict[str, tuple[float, float]] = {}  # book -> (its fair home probability, its margin)
        self.margin = game.expected_margin()
        self.total = game.expected_total()
        self.updates: list[tuple[int, float]] = [(created_ns, self.p)]  # (wall ns, TRUE p) per update
        self.book_p = self.p  # the probability the market's book is centred on
        self.book_ns = created_ns
        self.finished_ns = 0
        self.resolved = False

    @property
    def event_id(self) -> str:
        return str(800_000 + self.market.idx)


class _SportsConn:
    __slots__ = ("ws", "transport", "peer", "queue", "writer", "pinger", "unanswered_since", "pings", "pongs")

    def __init__(self, ws: web.WebSocketResponse, transport: Any, peer: str) -> None:
        self.ws = ws
        self.transport = transport
        self.peer = peer
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.pinger: asyncio.Task[None] | None = None
        self.unanswered_since: float | None = None  # monotonic time of the oldest unanswered ping
        self.pings = 0
        self.pongs = 0


class SimSports:
    """The sports side of a :class:`~adapters.polymarket.sim.SimServer` (``server.sports``)."""

    def __init__(self, server: SimServer, cfg: SimConfig) -> None:
        self.server = server
        self.cfg = cfg
        self.league = LEAGUES[cfg.league]
        self._rng = random.Random(f"polybot-sim/{cfg.seed}/sports/book")
        self._timeline: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.runs: list[_Run] = []
        self._conns: set[_SportsConn] = set()
        self._used: dict[str, int] = {}  # odds quota used per apiKey
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._out: list[str] | None = None
        self.frames_sent = 0
        self.now_ns = int(server._clock())
        self._new_run(self.now_ns, announce=False)

    # -- the timeline ---------------------------------------------------------------------------

    def call_at(self, due_ns: int, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` when the timeline reaches ``due_ns`` (FIFO among equal times)."""
        self._seq += 1
        heapq.heappush(self._timeline, (int(due_ns), self._seq, fn, args))
        if self._wake is not None:
            self._wake.set()

    def call_later(self, delay_s: float, fn: Callable[..., None], *args: Any) -> None:
        """``fn(*args)`` ``delay_s`` wall seconds from now (the later of the clock and the timeline)."""
        self.call_at(max(self.now_ns, int(self.server._clock())) + round(delay_s * NS), fn, *args)

    def next_due_ns(self) -> int | None:
        return self._timeline[0][0] if self._timeline else None

    def next_update_ns(self) -> int | None:
        """When the current game's next feed update (tip, score, period, end) is due."""
        run = self.runs[-1]
        g = run.game
        if g.status == "Scheduled":
            return run.live_ns
        t = g.next_t()
        return None if t is None else self._wall(run, t)

    def _wall(self, run: _Run, game_t: float) -> int:
        return run.live_ns + round(game_t * self.cfg.game_seconds / run.game.regulation_s * NS)

    def advance(self, now_ns: int) -> list[str]:
        """Process everything due up to ``now_ns``, in time order; returns the frames sent (score
        feed and market channel)."""
        out: list[str] = []
        srv = self.server
        prev, self._out, srv._out = srv._out, out, out
        try:
            while self._timeline and self._timeline[0][0] <= now_ns:
                due, _, fn, args = heapq.heappop(self._timeline)
                self.now_ns = max(self.now_ns, due)
                fn(*args)
            self.now_ns = max(self.now_ns, int(now_ns))
        finally:
            self._out, srv._out = prev, prev
        return out

    # -- lifecycle ------------------------------------------------------------------------------

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get(SPORTS_WS_PATH, self._h_ws)
        r.add_get(ODDS_SPORTS_PATH, self._h_sports)
        r.add_get(ODDS_SPORTS_PATH + "/{sport}/odds", self._h_odds)

    def start(self, autostart: bool) -> None:
        self._wake = asyncio.Event()
        if autostart:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        for c in list(self._conns):
            await self._close(c, 1001, b"server shutdown")

    async def _loop(self) -> None:
        assert self._wake is not None
        clock = self.server._clock
        while True:
            try:
                self.advance(int(clock()))
            except Exception:  # noqa: BLE001 - a bug in one item must not stop the game
                logger.exception("sim sports: timeline item failed")
            nxt = self.next_due_ns()
            wait = 0.5 if nxt is None else min(0.5, max(0.0, (nxt - int(clock())) / NS))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    # -- games ----------------------------------------------------------------------------------

    def _new_run(self, now_ns: int, announce: bool = True) -> _Run:
        cfg, srv = self.cfg, self.server
        index = len(self.runs)
        ids = random.Random(f"polybot-sim/{cfg.seed}/sports/{index}/ids")
        game_id = 90_000_000 + ids.randrange(10_000_000)
        odds_id = f"{ids.getrandbits(128):032x}"
        cid = f"0x{ids.getrandbits(256):064x}"
        yes, no = (str(ids.randrange(10**76, 2**256)) for _ in range(2))
        qid = f"0x{ids.getrandbits(256):064x}"
        m = _Market(len(srv._markets), cid, yes, no, qid, srv._base_tick, now_ns)
        game = SimGame(seed=cfg.seed, index=index, league=cfg.league, p0=cfg.p0)
        run = _Run(index, game, game_id, odds_id, m, now_ns, now_ns + round(cfg.pregame_s * NS), cfg.home, cfg.away)
        taken = {r.slug for r in self.runs}
        if run.slug in taken:  # a looped rematch on the same day: slugs stay unique
            run.slug = next(f"{run.slug}-{k}" for k in range(2, len(taken) + 3) if f"{run.slug}-{k}" not in taken)
        m.slug, m.question, m.outcomes, m.sports = run.slug, run.title, (run.home_nick, run.away_nick), run
        m.neg_risk = cfg.neg_risk
        bids, asks = self._target_book(m, run.p)
        m.bids, m.asks = bids, asks
        m.last_top = m.yes_top()
        srv._register_market(m)
        self.runs.append(run)
        self._quote(run)
        self.call_at(run.live_ns, self._go_live, run)
        self.call_at(now_ns + round(self._rng.expovariate(NOISE_PER_S) * NS), self._noise, run)
        if announce:
            srv._announce_market(m)
        logger.info("sim sports: game {} {} ({}), tip at {}", run.game_id, run.title, run.slug, _iso_s(run.live_ns))
        return run

    def _go_live(self, run: _Run) -> None:
        self._update(run, run.game.start())

    def _game_step(self, run: _Run) -> None:
        self._update(run, run.game.step())

    def _update(self, run: _Run, upd: GameUpdate) -> None:
        """A feed update: the frame goes out, the books re-price at once, the market later."""
        g, now = run.game, self.now_ns
        if upd.kind == "end":
            run.finished_ns = now
        self._broadcast(_compact(self.wire(run)))
        run.p, run.p_ns = g.probability(), now
        run.margin, run.total = g.expected_margin(), g.expected_total()
        run.updates.append((now, run.p))
        self._quote(run)
        lag = round(self.cfg.market_lag_s * NS)
        if upd.kind == "end":
            self.call_at(now + lag, self._finish, run)
            logger.info("sim sports: {} final {}-{}", run.title, g.home, g.away)
            return
        self.call_at(now + lag, self._recenter, run, run.p)
        t = g.next_t()
        if t is not None:
            self.call_at(self._wall(run, t), self._game_step, run)

    def _finish(self, run: _Run) -> None:
        m = run.market
        if not m.resolved:
            self.server.resolve(m.cid, m.yes if run.game.lead > 0 else m.no)
        run.resolved = True
        if self.cfg.sports_loop:
            self._new_run(self.now_ns)

    def wire(self, run: _Run) -> dict[str, Any]:
        """The game's state as a sports WebSocket frame (a dict in wire key order)."""
        g = run.game
        d: dict[str, Any] = {"gameId": run.game_id, "leagueAbbreviation": g.league.key, "slug": run.slug,
                             "homeTeam": run.home_abbr, "awayTeam": run.away_abbr, "status": g.status,
                             "score": f"{g.home}-{g.away}"}  # fmt: skip
        if g.live:
            d["period"], d["elapsed"] = g.period_label(), g.elapsed_label()
        elif g.ended:
            d["period"] = "FT"
        d["live"], d["ended"] = g.live, g.ended
        if g.ended:
            d["finishedTimestamp"] = _iso_ns(run.finished_ns)
        return d

    def match_delay_s(self, m: _Market) -> int:
        """Gamma ``secondsDelay`` of ``m`` while its game is live, else 0."""
        run = m.sports
        return self.cfg.seconds_delay if isinstance(run, _Run) and run.game.live else 0

    # -- the market's book ------------------------------------------------------------------------

    def _size(self) -> int:
        shares = max(20, round(self._rng.lognormvariate(math.log(SIZE_SHARES), 0.45)))
        if self._rng.random() < 0.4:
            shares = max(20, shares // 10 * 10)
        return shares * ONE

    def _target_book(self, m: _Market, p: float) -> tuple[dict[int, int], dict[int, int]]:
        """A book centred on ``p`` on the market's grid: a 1-2 tick spread, ``levels`` contiguous
        levels a side; levels that stay keep their size, new ones get a fresh one."""
        t, L = m.tick, self.cfg.levels
        k = 1 if self._rng.random() < 0.6 else 2
        bid = math.floor((p * ONE - k * t / 2) / t + 0.5) * t
        bid = max(t, min(bid, ONE - t - k * t))
        ask = bid + k * t
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for i in range(L):
            q = bid - i * t
            if q < t:
                break
            bids[q] = m.bids.get(q) or self._size()
        for i in range(L):
            q = ask + i * t
            if q > ONE - t:
                break
            asks[q] = m.asks.get(q) or self._size()
        return bids, asks

    def _recenter(self, run: _Run, p: float) -> None:
        m, srv = run.market, self.server
        if m.resolved:
            return
        for _ in range(2):  # once more when the move changed the tick size (the new grid)
            bb, ba = m.yes_top()
            old_mid = (bb or 0) + (ba if ba is not None else ONE)
            bids, asks = self._target_book(m, p)
            new_mid = max(bids) + min(asks)
            adds_b = [(BID, q, s) for q, s in sorted(bids.items(), reverse=True) if m.bids.get(q) != s]
            dels_b = [(BID, q, 0) for q in sorted(m.bids, reverse=True) if q not in bids]
            adds_a = [(ASK, q, s) for q, s in sorted(asks.items()) if m.asks.get(q) != s]
            dels_a = [(ASK, q, 0) for q in sorted(m.asks) if q not in asks]
            # never crossed, never one-sided in between: the side moving away from the other first
            changes = adds_a + dels_a + adds_b + dels_b if new_mid >= old_mid else adds_b + dels_b + adds_a + dels_a
            if changes:
                srv._batch(m, split=False, changes=changes)
            tick = m.tick
            srv._auto_tick(m)
            if m.tick == tick:
                break
        run.book_p, run.book_ns = p, self.now_ns
        srv.exchange.on_walk(m)

    def _noise(self, run: _Run) -> None:
        """A size-only change of one level (top prices stay), then the next one."""
        m, rng = run.market, self._rng
        if m.resolved:
            return
        side = BID if rng.random() < 0.5 else ASK
        book = m.bids if side == BID else m.asks
        if book:
            p = rng.choice(sorted(book))
            new = max(20, round(book[p] / ONE * rng.uniform(0.6, 1.4))) * ONE
            if new != book[p]:
                self.server._batch(m, split=False, changes=[(side, p, new)])
                self.server.exchange.on_walk(m)
        self.call_at(self.now_ns + max(1, round(rng.expovariate(NOISE_PER_S) * NS)), self._noise, run)

    # -- Gamma ----------------------------------------------------------------------------------

    def _description(self, run: _Run) -> str:
        lg = run.game.league
        tip = datetime.fromtimestamp(run.live_ns // NS, tz=UTC)
        when = f"{tip:%B} {tip.day} at {tip:%H:%M} UTC"
        return (f"In the upcoming {lg.sport_title} game, scheduled for {when}:\n"
                f"If the {run.home} win, the market will resolve to \"{run.home_nick}\".\n"
                f"If the {run.away} win, the market will resolve to \"{run.away_nick}\".\n"
                "If the game is postponed, this market will remain open until the game has been completed.\n"
                "If the game is canceled entirely, with no make-up game, this market will resolve 50-50.\n"
                "The result will be determined based on the final score including any overtime periods.\n"
                "(A simulated game: polybot sim.)")  # fmt: skip

    def _series(self) -> dict[str, Any]:
        lg = self.league
        return {"id": SERIES_ID.get(lg.key, "10000"), "ticker": lg.key, "slug": lg.key, "title": lg.sport_title,
                "seriesType": "single", "recurrence": "daily", "active": True, "closed": False}  # fmt: skip

    def series(self, slugs: set[str]) -> list[dict[str, Any]]:
        """Gamma ``/series`` (filter ``slug``): the league's series."""
        s = self._series()
        return [s] if not slugs or s["slug"] in slugs else []

    def _tags(self) -> list[dict[str, Any]]:
        lg = self.league
        return [{"id": "1", "label": "Sports", "slug": "sports"}, {"id": "100639", "label": "Games", "slug": "games"},
                {"id": SERIES_ID.get(lg.key, "10000"), "label": lg.sport_title, "slug": lg.key},
                {"id": "28", "label": "Basketball", "slug": "basketball"}]  # fmt: skip

    def event_matches(self, m: _Market, series_ids: set[str], tags: set[str]) -> bool:
        """Whether ``m``'s event passes the Gamma ``series_id`` / ``tag_slug`` filters."""
        if not isinstance(m.sports, _Run):
            return not series_ids and not tags
        return (not series_ids or self._series()["id"] in series_ids) and \
            (not tags or not tags.isdisjoint(t["slug"] for t in self._tags()))  # fmt: skip

    def _event_live_fields(self, run: _Run) -> dict[str, Any]:
        g = run.game
        out: dict[str, Any] = {"gameId": run.game_id, "startTime": _iso_s(run.live_ns),
                               "eventDate": _iso_s(run.live_ns)[:10], "seriesSlug": run.game.league.key,
                               "live": g.live, "ended": g.ended, "score": f"{g.home}-{g.away}"}  # fmt: skip
        if g.live:
            out["period"], out["elapsed"] = g.period_label(), g.elapsed_label()
        elif g.ended:
            out["period"] = "FT"
        return out

    def gamma_market(self, m: _Market, g: dict[str, Any]) -> dict[str, Any]:
        """The walk market shape ``g`` of a sports market, with the real sports fields."""
        run = m.sports
        assert isinstance(run, _Run)
        end_ns = run.live_ns + 3 * 3600 * NS
        g.update({
            "question": run.title, "slug": run.slug, "resolutionSource": run.game.league.resolution_source,
            "endDate": _iso_s(end_ns), "endDateIso": _iso_s(end_ns)[:10], "description": self._description(run),
            "outcomes": json.dumps(list(m.outcomes)), "feeType": "sports_fees_v2", "feesEnabled": True,
            "feeSchedule": dict(FEE_SCHEDULE), "sportsMarketType": "moneyline", "gameId": str(run.game_id),
            "gameStartTime": _sql_ts(run.live_ns), "eventStartTime": _iso_s(run.live_ns),
            "secondsDelay": self.cfg.seconds_delay, "groupItemTitle": GROUP_ITEM_TITLE,
            "clearBookOnStart": False,
        })  # fmt: skip
        ev = {"id": run.event_id, "ticker": run.slug, "slug": run.slug, "title": run.title,
              "description": self._description(run), "startDate": _iso_s(run.created_ns), "endDate": _iso_s(end_ns),
              "active": True, "closed": m.resolved, "archived": False, "restricted": False, "negRisk": m.neg_risk,
              "enableNegRisk": False, "negRiskAugmented": False}  # fmt: skip
        ev.update(self._event_live_fields(run))
        g["events"] = [ev]
        return g

    def gamma_event(self, m: _Market, ev: dict[str, Any]) -> dict[str, Any]:
        """The walk event shape ``ev`` of a sports market's event, with the real sports fields."""
        run = m.sports
        assert isinstance(run, _Run)
        ev.update({"ticker": run.slug, "slug": run.slug, "title": run.title, "description": self._description(run),
                   "enableNegRisk": False, "series": [self._series()], "tags": self._tags()})  # fmt: skip
        ev.update(self._event_live_fields(run))
        ev["markets"] = [{k: v for k, v in mk.items() if k != "events"} for mk in ev["markets"]]
        return ev

    def new_market_fields(self, m: _Market, frame: dict[str, Any]) -> dict[str, Any]:
        """The ``new_market`` frame of a sports market (the real frame's sports keys)."""
        run = m.sports
        assert isinstance(run, _Run)
        desc = self._description(run)
        frame.update({"question": run.title, "slug": run.slug, "description": desc,
                      "event_message": {"id": run.event_id, "ticker": run.slug, "slug": run.slug, "title": run.title,
                                        "description": desc},
                      "sports_market_type": "moneyline", "line": "", "game_start_time": _sql_ts(run.live_ns),
                      "group_item_title": GROUP_ITEM_TITLE,
                      "fee_schedule": {"exponent": "1", "rate": "0.03", "taker_only": True, "rebate_rate": "0.25"}})
        return frame  # fmt: skip

    def state(self) -> dict[str, Any]:
        """Introspection (``/_sim/sports``): each game, its TRUE probability and its market."""
        games = []
        for run in self.runs:
            g, m = run.game, run.market
            bb, ba = m.yes_top() if not m.resolved else (None, None)
            games.append({"game_id": run.game_id, "slug": run.slug, "title": run.title, "status": g.status,
                          "score": f"{g.home}-{g.away}", "period": g.period_label() if g.live else "",
                          "elapsed": g.elapsed_label() if g.live else "", "home": run.home, "away": run.away,
                          "tip": _iso_s(run.live_ns), "true_probability": run.p, "updated_ns": run.p_ns,
                          "book_probability": run.book_p, "book_ns": run.book_ns, "market": m.cid,
                          "home_token": m.yes, "away_token": m.no,
                          "best_bid": from_units(bb) if bb is not None else None,
                          "best_ask": from_units(ba) if ba is not None else None, "resolved": m.resolved,
                          "odds_event_id": run.odds_id})  # fmt: skip
        return {"now_ns": self.now_ns, "next_update_ns": self.next_update_ns(), "games": games,
                "ws": SPORTS_WS_PATH, "odds": f"{ODDS_SPORTS_PATH}/{self.league.sport_key}/odds",
                "connections": len(self._conns), "frames_sent": self.frames_sent}  # fmt: skip

    # -- the score feed ----------------------------------------------------------------------------

    def _broadcast(self, text: str) -> None:
        if self._out is not None:
            self._out.append(text)
        for c in list(self._conns):
            c.queue.put_nowait(text)
            self.frames_sent += 1

    async def _h_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 16)
        await ws.prepare(request)
        c = _SportsConn(ws, request.transport, str(request.remote))
        for run in self.runs:  # the current state of each game, once
            c.queue.put_nowait(_compact(self.wire(run)))
        loop = asyncio.get_running_loop()
        c.writer = loop.create_task(self._writer(c))
        c.pinger = loop.create_task(self._pinger(c))
        self._conns.add(c)
        logger.debug("sim sports: ws connection from {}", c.peer)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data.strip() == "pong":
                    c.unanswered_since = None
                    c.pongs += 1
                elif msg.type == WSMsgType.TEXT:
                    logger.debug("sim sports: ignored a client message {!r}", msg.data[:100])
        except Exception as exc:  # noqa: BLE001
            logger.debug("sim sports: ws {} ended: {!r}", c.peer, exc)
        finally:
            self._conns.discard(c)
            for task in (c.writer, c.pinger):
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
        return ws

    async def _writer(self, c: _SportsConn) -> None:
        try:
            while True:
                await c.ws.send_str(await c.queue.get())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            logger.debug("sim sports: writer for {} stopped: {!r}", c.peer, exc)

    async def _pinger(self, c: _SportsConn) -> None:
        """``ping`` every ``ping_interval_s``; close when a ping stays unanswered ``pong_timeout_s``."""
        interval, timeout = self.cfg.ping_interval_s, self.cfg.pong_timeout_s
        next_ping = time.monotonic() + interval
        while True:
            deadline = c.unanswered_since + timeout if c.unanswered_since is not None else math.inf
            await asyncio.sleep(max(0.0, min(next_ping, deadline) - time.monotonic()))
            now = time.monotonic()
            if c.unanswered_since is not None and now >= c.unanswered_since + timeout:
                logger.info("sim sports: no pong from {} for {} s: closing", c.peer, timeout)
                self._conns.discard(c)
                await self._close(c, CLOSE_PONG_TIMEOUT, b"pong timeout")
                return
            if now >= next_ping:
                c.queue.put_nowait("ping")
                c.pings += 1
                next_ping += interval
                if c.unanswered_since is None:
                    c.unanswered_since = now

    async def _close(self, c: _SportsConn, code: int, message: bytes) -> None:
        if c.writer is not None:
            c.writer.cancel()
        try:
            await asyncio.wait_for(c.ws.close(code=code, message=message), 1.0)
        except (TimeoutError, Exception):  # noqa: BLE001
            if c.transport is not None:
                c.transport.abort()

    # -- The Odds API ----------------------------------------------------------------------------

    def _quote(self, run: _Run) -> None:
        """Each book re-prices from the TRUE probability: its own margin and a small noise."""
        run.quote_seq += 1
        for key, _, _, margin in BOOKS:
            r = random.Random(f"polybot-sim/{self.cfg.seed}/odds/{run.index}/{run.quote_seq}/{key}")
            p = min(0.998, max(0.002, run.p + r.gauss(0.0, 0.006)))
            run.quotes[key] = (p, margin + r.uniform(-0.005, 0.005))

    @staticmethod
    def _prices(fair: list[float], margin: float) -> list[float]:
        """Decimal prices of outcomes with fair probabilities ``fair`` after a proportional margin."""
        return [min(101.0, max(1.01, 1.0 / max(1e-9, q * (1.0 + margin)))) for q in fair]

    @staticmethod
    def _fmt_price(dec: float, fmt: str) -> float | int:
        if fmt == "american":
            return round((dec - 1) * 100) if dec >= 2 else -round(100 / (dec - 1))
        return round(dec, 2)

    def _odds_event(self, run: _Run, markets: list[str], books: list[tuple[str, str, str, float]], fmt: str,
                    datefmt: str) -> dict[str, Any]:  # fmt: skip
        def when(ns: int) -> str | int:
            return ns // NS if datefmt == "unix" else _iso_s(ns)

        lg = run.game.league
        upd = when(run.p_ns)
        out_books = []
        for key, title, _, _ in books:
            p, margin = run.quotes[key]
            mks = []
            for mk in markets:
                if mk == "h2h":
                    pairs = [(run.home, p, None), (run.away, 1 - p, None)]
                elif mk == "spreads":
                    mean, sd = run.margin
                    line = math.floor(mean) + 0.5  # home -line: the home team must win by more
                    cover = _N.cdf((mean - line) / sd) if sd > 0 else float(mean > line)
                    pairs = [(run.home, cover, -line), (run.away, 1 - cover, line)]
                else:
                    mean, sd = run.total
                    line = math.floor(mean) + 0.5
                    over = 1 - _N.cdf((line - mean) / sd) if sd > 0 else float(mean > line)
                    pairs = [("Over", over, line), ("Under", 1 - over, line)]
                prices = self._prices([min(0.998, max(0.002, q)) for _, q, _ in pairs], margin)
                outs = []
                for (name, _, point), dec in zip(pairs, prices, strict=True):
                    o: dict[str, Any] = {"name": name, "price": self._fmt_price(dec, fmt)}
                    if point is not None:
                        o["point"] = point
                    outs.append(o)
                if mk != "totals":
                    outs.sort(key=lambda o: o["name"])
                mks.append({"key": mk, "last_update": upd, "outcomes": outs})
            out_books.append({"key": key, "title": title, "last_update": upd, "markets": mks})
        return {"id": run.odds_id, "sport_key": lg.sport_key, "sport_title": lg.sport_title,
                "commence_time": when(run.live_ns), "home_team": run.home, "away_team": run.away,
                "bookmakers": out_books}  # fmt: skip

    def _quota_headers(self, key: str) -> dict[str, str]:
        used = self._used.get(key, 0)
        return {"x-requests-remaining": str(max(0, self.cfg.odds_quota - used)), "x-requests-used": str(used)}

    @staticmethod
    def _odds_error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {"message": message, "error_code": code, "details_url": f"{ODDS_ERRORS}#{code.lower().replace('_', '-')}"}
        return web.Response(text=_compact(body), status=status, content_type="application/json", headers=headers)

    def _api_key(self, request: web.Request) -> str | web.Response:
        key = request.query.get("apiKey", "").strip()
        if not key:
            return self._odds_error(401, "API key is missing. Include the apiKey query parameter: ?apiKey=YOUR_KEY",
                                    "MISSING_KEY")  # fmt: skip
        return key

    async def _h_sports(self, request: web.Request) -> web.Response:
        key = self._api_key(request)
        if isinstance(key, web.Response):
            return key
        lg = self.league
        body = [{"key": lg.sport_key, "group": "Basketball", "title": lg.sport_title,
                 "description": f"US Basketball ({lg.sport_title})" if lg.key != "ncaab" else "US College Basketball",
                 "active": True, "has_outrights": False}]  # fmt: skip
        return web.Response(text=_compact(body), content_type="application/json",
                            headers={**self._quota_headers(key), "x-requests-last": "0"})  # fmt: skip

    async def _h_odds(self, request: web.Request) -> web.Response:
        key = self._api_key(request)
        if isinstance(key, web.Response):
            return key
        q, lg = request.query, self.league
        sport = request.match_info["sport"]
        if sport not in (lg.sport_key, "upcoming"):
            return self._odds_error(404, f"Unknown sport. Check the sport key ({sport!r}); see /v4/sports",
                                    "UNKNOWN_SPORT")  # fmt: skip
        regions = [r for r in q.get("regions", "").lower().split(",") if r]
        wanted = [b for b in q.get("bookmakers", "").lower().split(",") if b]
        markets = [mk for mk in q.get("markets", "h2h").lower().split(",") if mk] or ["h2h"]
        fmt, datefmt = q.get("oddsFormat", "decimal").lower(), q.get("dateFormat", "iso").lower()
        if not regions and not wanted:
            return self._odds_error(422, "Missing regions. Specify regions (us, us2, uk, eu, au) or bookmakers",
                                    "MISSING_REGION")  # fmt: skip
        if bad := [r for r in regions if r not in REGIONS]:
            return self._odds_error(422, f"Invalid regions: {','.join(bad)}", "INVALID_REGION")
        if bad := [mk for mk in markets if mk not in ODDS_MARKETS]:
            return self._odds_error(422, f"Invalid markets: {','.join(bad)} (h2h, spreads, totals)", "INVALID_MARKET")
        if fmt not in ("decimal", "american"):
            return self._odds_error(422, "Invalid oddsFormat: decimal or american", "INVALID_ODDS_FORMAT")
        if datefmt not in ("iso", "unix"):
            return self._odds_error(422, "Invalid dateFormat: iso or unix", "INVALID_DATE_FORMAT")
        markets = list(dict.fromkeys(markets))
        books = [b for b in BOOKS if b[0] in wanted] if wanted else [b for b in BOOKS if b[2] in regions]
        games = [self._odds_event(run, markets, books, fmt, datefmt) for run in self.runs
                 if not run.game.ended and books]  # fmt: skip
        n_regions = len(set(regions)) if not wanted else -(-len(wanted) // 10)
        cost = len(markets) * n_regions if games else 0  # an empty answer costs nothing
        if self._used.get(key, 0) + cost > self.cfg.odds_quota:
            return self._odds_error(401, "Usage quota has been reached. Upgrade your plan or wait for the monthly "
                                    "reset", "OUT_OF_USAGE_CREDITS", {**self._quota_headers(key),
                                                                      "x-requests-last": "0"})  # fmt: skip
        self._used[key] = self._used.get(key, 0) + cost
        return web.Response(text=_compact(games), content_type="application/json",
                            headers={**self._quota_headers(key), "x-requests-last": str(cost)})  # fmt: skip
