"""Sports markets as strategies see them: each Polymarket sports market linked to its game (score
feed) and its bookmaker event (odds feed), with what each outcome token means, plus the
bookmakers' consensus for it.

:class:`SportsIndex` is fed the catalog's sports markets (``MarketInfo`` events) and re-links
whenever the scoreboard or the odds board learn a new game or event (:mod:`polybot.sports.join`:
by id, else by names and start time, never a guess). A market that cannot be linked is reported
once per reason (a warning in the strategy's log and :attr:`SportsIndex.unmatched`), and stays
untraded until a later game or odds event links it.

:func:`odds_consensus` turns the odds board's quotes for a linked market into the de-vigged,
weighted consensus probability of each of its outcome tokens, with the number of books, their
dispersion and the age of the oldest quote used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..events import GameState, MarketInfo, OddsQuote
from .join import Match, OddsEventRef, match_game, match_odds_event, outcome_sides, same_team
from .odds import DevigMethod, consensus_from_prices

if TYPE_CHECKING:  # pragma: no cover
    from ..scoreboard import OddsBoard, Scoreboard

__all__ = ["Linked", "OddsFair", "SportsIndex", "moneyline_consensus", "odds_consensus"]


@attrs.define(slots=True, eq=False)
class Linked:
    """One sports market and what it is linked to. ``sides[i]`` is what token ``i`` pays on:
    ``home``/``away``/``draw``/``over``/``under``, or ``!home`` etc. (the NO token of a per-result
    market)."""

    info: MarketInfo
    game_id: str = ""
    odds_event: str = ""
    home: str = ""
    away: str = ""
    sides: tuple[str, ...] = ()

    @property
    def market(self) -> str:
        return self.info.market

    @property
    def market_type(self) -> str:
        sp = self.info.sports
        return sp.market_type if sp is not None else ""


class SportsIndex:
    """The sports markets a strategy trades, linked to games and odds events.

    ``markets``: slugs or condition ids to consider ([] = every sports market in the catalog);
    ``market_types``: which ``sportsMarketType`` values to keep; ``need_game`` / ``need_odds``:
    which links a market needs before :meth:`ready` lists it; ``aliases``: team-name aliases
    for the join; ``log``: where unmatched markets are reported (a loguru logger)."""

    def __init__(self, markets: Sequence[str], market_types: Sequence[str], *, need_game: bool, need_odds: bool,
                 aliases: Mapping[str, str] | None = None, log: Any = None,
                 max_start_diff_ns: int = 6 * 3600 * 1_000_000_000) -> None:  # fmt: skip
        self.wanted = frozenset(markets)
        self.types = frozenset(market_types)
        self.need_game = need_game
        self.need_odds = need_odds
        self.aliases = dict(aliases or {})
        self.log = log
        self.max_start_diff_ns = max_start_diff_ns
        self.linked: dict[str, Linked] = {}  # market -> link
        self.by_asset: dict[str, tuple[Linked, int]] = {}  # token -> (link, outcome index)
        self.by_game: dict[str, list[Linked]] = {}
        self.by_event: dict[str, list[Linked]] = {}
        self.unmatched: dict[str, str] = {}  # market -> why it is not (fully) linked
        self._reported: set[tuple[str, str]] = set()
        self._games_seen = 0
        self._events_seen = 0

    # ------------------------------------------------------------------ inputs

    def wants(self, info: MarketInfo) -> bool:
        sp = info.sports
        if sp is None or (self.types and sp.market_type not in self.types):
            return False
        return not self.wanted or info.market in self.wanted or info.slug in self.wanted

    def add(self, info: MarketInfo, scoreboard: Scoreboard, odds: OddsBoard) -> Linked | None:
        """A market from the catalog (new or updated): link it. Returns its link, if wanted."""
        if not self.wants(info):
            return None
        ln = self.linked.get(info.market)
        if ln is None:
            ln = self.linked[info.market] = Linked(info)
            for i, a in enumerate(info.asset_ids):
                self.by_asset[a] = (ln, i)
        else:
            ln.info = info
        self._link(ln, scoreboard, odds)
        return ln

    def refresh(self, scoreboard: Scoreboard, odds: OddsBoard, game: GameState | None = None,
                quote: OddsQuote | None = None) -> None:  # fmt: skip
        """Re-link markets that still miss a link when the boards learned a new game or event
        (cheap when nothing new: it counts games and events)."""
        ng, ne = len(scoreboard), len(odds.events())
        if ng == self._games_seen and ne == self._events_seen:
            return
        self._games_seen, self._events_seen = ng, ne
        for m in sorted(self.linked):
            ln = self.linked[m]
            if not ln.game_id or not ln.odds_event or not ln.sides:
                self._link(ln, scoreboard, odds)

    # ------------------------------------------------------------------ queries

    def ready(self, ln: Linked) -> bool:
        return bool(ln.sides) and (ln.game_id or not self.need_game) and (ln.odds_event or not self.need_odds)  # type: ignore[return-value]

    def for_game(self, game_id: str) -> list[Linked]:
        return self.by_game.get(game_id, [])

    def for_event(self, event_id: str) -> list[Linked]:
        return self.by_event.get(event_id, [])

    def for_asset(self, asset_id: str) -> tuple[Linked, int] | None:
        return self.by_asset.get(asset_id)

    # ------------------------------------------------------------------ linking

    def _link(self, ln: Linked, scoreboard: Scoreboard, odds: OddsBoard) -> None:
        info = ln.info
        reasons: list[str] = []
        if not ln.game_id and (self.need_game or len(scoreboard)):
            r = match_game(info, [g for g in scoreboard if g is not None], self.aliases)
            if isinstance(r, Match):
                ln.game_id = r.ref
                _insert(self.by_game, r.ref, ln)
            elif self.need_game:
                reasons.append(r.reason)
        if not ln.odds_event and (self.need_odds or odds.events()):
            refs = []
            for e in odds.events():
                sport, home, away, commence = odds.event_teams(e)
                refs.append(OddsEventRef(e, home, away, commence, sport))
            r = match_odds_event(info, refs, self.aliases, self.max_start_diff_ns)
            if isinstance(r, Match):
                ln.odds_event = r.ref
                _insert(self.by_event, r.ref, ln)
            elif self.need_odds:
                reasons.append(r.reason)
        if not ln.sides:
            # who is at home: the score feed's names when they place the outcomes (they often
            # are abbreviations that do not), else the bookmaker event's; both placing them
            # differently is a contradiction, and then neither is trusted
            cands: list[tuple[str, str, tuple[str, ...], str]] = []
            g = scoreboard.get(ln.game_id) if ln.game_id else None
            if g is not None and g.home and g.away:
                sides = outcome_sides(info, g.home, g.away, self.aliases)
                if sides is not None:
                    cands.append((g.home, g.away, sides, "score feed"))
            if ln.odds_event:
                _s, home, away, _c = odds.event_teams(ln.odds_event)
                sides = outcome_sides(info, home, away, self.aliases) if home and away else None
                if sides is not None:
                    cands.append((home, away, sides, f"odds event {ln.odds_event}"))
            if len(cands) == 2 and cands[0][2] != cands[1][2]:
                reasons.append(f"the {cands[0][3]} has {cands[0][0]!r} at home, the {cands[1][3]} {cands[1][0]!r}")
            elif cands:
                ln.home, ln.away, ln.sides = cands[0][0], cands[0][1], cands[0][2]
            elif g is not None or ln.odds_event:
                names = f"{g.home!r} / {g.away!r}" if g is not None else "the odds event's teams"
                reasons.append(f"outcomes {list(info.outcomes)} cannot be placed against {names}")
            elif not reasons:
                reasons.append("no game and no odds event linked yet")
        if reasons:
            why = "; ".join(reasons)
            self.unmatched[info.market] = why
            key = (info.market, why)
            # while a board has nothing yet (the feeds are starting) "not linked" is no news
            quiet = (self.need_game and not len(scoreboard)) or (self.need_odds and not odds.events())
            if key not in self._reported and not quiet:
                self._reported.add(key)
                if self.log is not None:
                    self.log.warning("sports market {} ({}) not linked: {}", info.slug or info.market, info.question, why)
        else:
            self.unmatched.pop(info.market, None)

    # ------------------------------------------------------------------ state

    def to_state(self) -> list[list[Any]]:
        return [[m, ln.game_id, ln.odds_event, ln.home, ln.away, list(ln.sides)] for m, ln in sorted(self.linked.items())]

    def restore_links(self, st: Iterable[list[Any]], catalog: Any) -> None:
        """Links saved by :meth:`to_state` (the catalog must hold the markets)."""
        for m, gid, ev, home, away, sides in st:
            info = catalog.market(m)
            if info is None or not self.wants(info):
                continue
            ln = self.linked.get(m)
            if ln is None:
                ln = self.linked[m] = Linked(info)
                for i, a in enumerate(info.asset_ids):
                    self.by_asset[a] = (ln, i)
            ln.game_id, ln.odds_event, ln.home, ln.away, ln.sides = gid, ev, home, away, tuple(sides)
            if gid:
                _insert(self.by_game, gid, ln)
            if ev:
                _insert(self.by_event, ev, ln)


def _insert(index: dict[str, list[Linked]], key: str, ln: Linked) -> None:
    """Add ``ln`` to ``index[key]``, kept in market order: the order a game's markets are
    evaluated in is then the same whether the index was built live or restored."""
    lst = index.setdefault(key, [])
    if ln not in lst:
        lst.append(ln)
        lst.sort(key=lambda x: x.info.market)


@attrs.frozen
class OddsFair:
    """The bookmakers' consensus for one market: ``probs[i]`` for token ``i``."""

    probs: tuple[float, ...]
    books: int
    dispersion: float
    oldest_ns: int  # last_update of the oldest quote used (ns)


def _side_prob(side: str, p_home: float, p_draw: float, p_away: float) -> float:
    neg = side.startswith("!")
    base = side[1:] if neg else side
    p = {"home": p_home, "draw": p_draw, "away": p_away}[base]
    return 1.0 - p if neg else p


def _consensus(ln: Linked, odds: OddsBoard, now: int, max_age_ns: int, method: DevigMethod,
               weights: Mapping[str, float] | None, sharp: Iterable[str], sharp_weight: float,
               books: Iterable[str], until_ns: int = 0, mtype: str = "") -> tuple[Any, int] | None:  # fmt: skip
    """(Consensus over the fresh, complete books, oldest quote time) for a linked market (or,
    with ``mtype``, for that market type of its game); the outcome order is (home, [draw,]
    away) for a money line, token order otherwise. ``until_ns`` (when set): only quotes made at
    or before it."""
    if not ln.odds_event or not ln.sides:
        return None
    sp = ln.info.sports
    mtype = mtype or (sp.market_type if sp is not None else "")
    only = frozenset(books)
    per_book: dict[str, dict[tuple[str, float | None], OddsQuote]] = {}
    want = "h2h" if mtype == "moneyline" else mtype
    for q in odds.quotes(ln.odds_event, want):
        if only and q.bookmaker not in only:
            continue
        t = q.last_update_ts or q.ts
        if now - t > max_age_ns or (until_ns and t > until_ns):
            continue
        per_book.setdefault(q.bookmaker, {})[(q.outcome, q.point)] = q
    prices: list[tuple[str, tuple[float, ...]]] = []
    oldest = now
    line = sp.line if sp is not None else None
    n = 0
    for book in sorted(per_book):
        vec = _book_vector(ln, per_book[book], mtype, line)
        if vec is None or not all(math.isfinite(x) and x > 1.0 for x in vec[0]):
            continue  # incomplete, or a price no odds can be (a suspended line): this book only
        if n and len(vec[0]) != n:
            continue  # a two-way book among three-way ones (or the reverse): not comparable
        n = len(vec[0])
        prices.append((book, vec[0]))
        oldest = min(oldest, vec[1])
    if not prices:
        return None
    try:
        c = consensus_from_prices(prices, method, weights=weights, sharp=sharp, sharp_weight=sharp_weight)
    except ValueError:
        return None
    if any(not math.isfinite(p) for p in c.probs):
        return None
    return c, oldest


def moneyline_consensus(ln: Linked, odds: OddsBoard, *, now: int, max_age_ns: int,
                        method: DevigMethod = "multiplicative", weights: Mapping[str, float] | None = None,
                        sharp: Iterable[str] = (), sharp_weight: float = 1.0,
                        books: Iterable[str] = (), until_ns: int = 0) -> tuple[float, float, float] | None:  # fmt: skip
    """The bookmakers' money-line consensus (home, draw, away) of a linked market's game (any of
    its markets: a spread's or a total's game has a money line too; draw 0 for a two-way
    market), or None. ``until_ns`` (when set): only quotes made at or before it (e.g. the
    game's start, for a pregame prior)."""
    if not ln.home or not ln.away:
        return None
    got = _consensus(ln, odds, now, max_age_ns, method, weights, sharp, sharp_weight, books, until_ns, "moneyline")
    if got is None:
        return None
    probs = got[0].probs
    if len(probs) == 3:
        return probs[0], probs[1], probs[2]
    return probs[0], 0.0, probs[1]


def odds_consensus(ln: Linked, odds: OddsBoard, *, now: int, max_age_ns: int, method: DevigMethod = "multiplicative",
                   weights: Mapping[str, float] | None = None, sharp: Iterable[str] = (), sharp_weight: float = 1.0,
                   books: Iterable[str] = ()) -> OddsFair | None:  # fmt: skip
    """The consensus probability of each token of a linked market from the bookmakers' quotes
    no older than ``max_age_ns`` (by each quote's ``last_update``, else the time it was
    received): money line from ``h2h`` (two- or three-way), spread from ``spreads`` at the
    market's line, total from ``totals`` at the market's line. ``books`` limits the bookmakers
    ([] = all). None when no bookmaker has a complete, fresh market for it."""
    got = _consensus(ln, odds, now, max_age_ns, method, weights, sharp, sharp_weight, books)
    if got is None:
        return None
    c, oldest = got
    if ln.market_type == "moneyline":
        if len(c.probs) == 3:
            ph, pd, pa = c.probs
        else:
            ph, pa = c.probs
            pd = 0.0
        try:
            probs = tuple(_side_prob(s, ph, pd, pa) for s in ln.sides)
        except KeyError:
            return None
    else:
        # spreads: (outcome 0's team covers, the other); totals: in token order
        probs = tuple(c.probs)
    return OddsFair(probs, c.books, c.dispersion, oldest)


def _book_vector(ln: Linked, qs: Mapping[tuple[str, float | None], OddsQuote], mtype: str,
                 line: float | None) -> tuple[tuple[float, ...], int] | None:  # fmt: skip
    """One bookmaker's decimal prices in the order the consensus needs, and the oldest time."""
    def find(name_ok: Any, point: float | None = None, any_point: bool = True) -> OddsQuote | None:
        hit = None
        for (name, pt), q in qs.items():
            if name_ok(name) and (any_point or (pt is not None and point is not None and abs(pt - point) < 1e-9)):
                if hit is not None:
                    return None  # two quotes fit: ambiguous
                hit = q
        return hit

    al = None
    if mtype == "moneyline":
        home = find(lambda n: same_team(n, ln.home, al) and not same_team(n, ln.away, al))
        away = find(lambda n: same_team(n, ln.away, al) and not same_team(n, ln.home, al))
        draw = find(lambda n: n.strip().lower() in ("draw", "tie"))
        if home is None or away is None:
            return None
        got = [home, draw, away] if draw is not None else [home, away]
    elif mtype in ("spreads", "spread") and line is not None and ln.sides and ln.sides[0] in ("home", "away"):
        team0 = ln.home if ln.sides[0] == "home" else ln.away
        team1 = ln.away if ln.sides[0] == "home" else ln.home
        a = find(lambda n: same_team(n, team0, al), line, any_point=False)
        b = find(lambda n: same_team(n, team1, al), -line, any_point=False)
        if a is None or b is None:
            return None
        got = [a, b]
    elif mtype == "totals" and line is not None and ln.sides in (("over", "under"), ("under", "over")):
        over = find(lambda n: n.strip().lower() == "over", line, any_point=False)
        under = find(lambda n: n.strip().lower() == "under", line, any_point=False)
        if over is None or under is None:
            return None
        got = [over, under] if ln.sides[0] == "over" else [under, over]
    else:
        return None
    return tuple(q.price for q in got), min(q.last_update_ts or q.ts for q in got)
