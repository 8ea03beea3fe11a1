"""Joining the worlds: a Polymarket sports market to the score feed's game and to the odds
feed's event.

A Polymarket sports market (:class:`polybot.events.MarketInfo` with ``sports`` set) names its
game by Gamma's ``gameId`` (the same id as the Polymarket sports WebSocket's ``gameId``), its
teams by the event title ("A vs. B") and by the outcomes of a money line, and its start time.
A score feed's :class:`~polybot.events.GameState` has a game id, home and away team names;
an odds feed's :class:`~polybot.events.OddsQuote` has an event id, home and away team names
and a commence time.

Rules, in order, and never a guess:

* **By id.** A game whose ``game_id`` equals the market's ``sports.game_id`` is the game.
* **By names and time.** Otherwise both of the market's teams must match the game's (or the odds
  event's) two teams, one to one, by :func:`same_team`, and the start times must be within
  ``max_start_diff_ns`` of each other when both are known (a score feed's game has no start
  time: names alone decide there, so a league's two meetings of the same teams on different days
  are told apart only by the live state: a game that has ended is never matched by names).
* **Unmatched is reported.** No candidate, or more than one, gives a :class:`Unmatched` with
  the reason; the caller reports it once and does not trade that market.

Team names are compared after :func:`normalize_team`: lower case, accents folded, punctuation
dropped, filler words that sportsbooks and Polymarket use inconsistently removed ("FC", "CF",
"AFC", "SC", "Club", "The", "Esports", "Team", "Gaming", "Clan") and a few abbreviations written
both ways expanded ("LA", "NY", "Utd", "St"). Two names are the same team when
their normal forms are equal, or when every word of the shorter one is a word of the longer one
("Lakers" / "Los Angeles Lakers", "FaZe" / "FaZe Clan") and the shorter has at least one word that
is not a city-like prefix shared by the other side (so "Los Angeles" alone matches nothing). An
abbreviation ("LAL") matches only a name in the ``aliases`` table a caller supplies.

Orientation: :func:`outcome_sides` says which of the market's outcomes is the home team (money
line, spread) or Over/Under (totals), from the matched game's home/away names.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from ..events import GameState, MarketInfo

__all__ = [
    "Match",
    "OddsEventRef",
    "Unmatched",
    "match_game",
    "match_odds_event",
    "normalize_team",
    "outcome_sides",
    "same_team",
]

NS = 1_000_000_000
#: Default tolerance between a market's game start and an odds event's commence time.
MAX_START_DIFF_NS = 6 * 3600 * NS

_FILLER = frozenset({"fc", "cf", "afc", "sc", "club", "the", "esports", "esport", "team", "gaming", "clan", "de", "ac",
                     "cd", "sk"})  # fmt: skip
#: Abbreviations written both ways (expanded on both sides before comparing).
_EXPAND = {"la": "los angeles", "ny": "new york", "utd": "united", "st": "state", "intl": "international"}
_PUNCT = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")


def normalize_team(name: str) -> str:
    """Canonical form of a team name for comparison (see the module docstring)."""
    s = unicodedata.normalize("NFKD", name)
    s = "".join(c for c in s if not unicodedata.combining(c)).lower().replace("&", " and ")
    s = _PUNCT.sub(" ", s)
    words = [_EXPAND.get(w, w) for w in _SPACES.split(s) if w and w not in _FILLER]
    return " ".join(words)


@functools.lru_cache(maxsize=8192)
def _words(name: str) -> tuple[str, ...]:
    # cached: the consensus compares the same few names on every book update it is asked for
    return tuple(normalize_team(name).split())


def same_team(a: str, b: str, aliases: Mapping[str, str] | None = None) -> bool:
    """Whether two names denote the same team (see the module docstring)."""
    if aliases:
        a = aliases.get(a, aliases.get(a.lower(), a))
        b = aliases.get(b, aliases.get(b.lower(), b))
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return False
    if wa == wb:
        return True
    short, long_ = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    if not set(short) <= set(long_):
        return False
    # the shorter name must keep the distinctive end of the longer one ("lakers" of "los angeles
    # lakers"), not only its leading city words ("los angeles")
    return long_[-1] in short


class Match(NamedTuple):
    market: str
    ref: str  # the game id or the odds event id
    by: str  # "id" | "names"


class Unmatched(NamedTuple):
    market: str
    reason: str


class OddsEventRef(NamedTuple):
    """What the join needs of an odds feed's event."""

    event_id: str
    home: str
    away: str
    commence_ts: int = 0
    sport: str = ""


def _teams(info: MarketInfo) -> tuple[str, ...]:
    sp = info.sports
    if sp is not None and len(sp.teams) == 2:
        return sp.teams
    if sp is not None and sp.market_type == "moneyline" and len(info.outcomes) == 2:
        return info.outcomes
    return ()


def _pair(teams: tuple[str, ...], home: str, away: str, aliases: Mapping[str, str] | None) -> bool:
    a, b = teams
    return (same_team(a, home, aliases) and same_team(b, away, aliases)) or (
        same_team(a, away, aliases) and same_team(b, home, aliases)
    )


def match_game(info: MarketInfo, games: Iterable[GameState], aliases: Mapping[str, str] | None = None) -> Match | Unmatched:
    """The score feed's game of a sports market (``games``: the candidates, e.g. the
    scoreboard's current states)."""
    sp = info.sports
    if sp is None:
        return Unmatched(info.market, "not a sports market")
    cands = list(games)
    if sp.game_id:
        for g in cands:
            if g.game_id == sp.game_id:
                return Match(info.market, g.game_id, "id")
    teams = _teams(info)
    if not teams:
        return Unmatched(info.market, f"no game with id {sp.game_id!r} and no two team names to match by"
                         if sp.game_id else "no game id and no two team names to match by")  # fmt: skip
    # a game that is over is never linked by names: the same two teams meet again (a series,
    # a rematch) and yesterday's game stays on the scoreboard
    hits = sorted({g.game_id for g in cands if g.home and g.away and not g.ended and _pair(teams, g.home, g.away, aliases)})
    if len(hits) == 1:
        return Match(info.market, hits[0], "names")
    if not hits:
        return Unmatched(info.market, f"no game of {teams[0]!r} and {teams[1]!r} in the score feed")
    return Unmatched(info.market, f"{len(hits)} games of {teams[0]!r} and {teams[1]!r}: ambiguous ({', '.join(hits[:5])})")


def match_odds_event(info: MarketInfo, events: Iterable[OddsEventRef], aliases: Mapping[str, str] | None = None,
                     max_start_diff_ns: int = MAX_START_DIFF_NS) -> Match | Unmatched:  # fmt: skip
    """The odds feed's event of a sports market: both teams, and the start within
    ``max_start_diff_ns`` when both times are known."""
    sp = info.sports
    if sp is None:
        return Unmatched(info.market, "not a sports market")
    teams = _teams(info)
    if not teams:
        return Unmatched(info.market, "no two team names to match an odds event by")
    hits = []
    near_miss = ""
    for e in events:
        if not _pair(teams, e.home, e.away, aliases):
            continue
        if sp.start_ts and e.commence_ts and abs(sp.start_ts - e.commence_ts) > max_start_diff_ns:
            near_miss = e.event_id
            continue
        hits.append(e.event_id)
    hits = sorted(set(hits))
    if len(hits) == 1:
        return Match(info.market, hits[0], "names")
    if not hits:
        why = f" (event {near_miss} has them, at another time)" if near_miss else ""
        return Unmatched(info.market, f"no odds event of {teams[0]!r} and {teams[1]!r}{why}")
    return Unmatched(info.market, f"{len(hits)} odds events of {teams[0]!r} and {teams[1]!r}: ambiguous")


def outcome_sides(info: MarketInfo, home: str, away: str, aliases: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    """What each outcome of the market is, given the game's home and away team names:
    ``"home"``/``"away"`` for a money line or a spread (by the outcome names), ``"draw"`` for a
    draw outcome, ``"over"``/``"under"`` for a total; for a Yes/No market of a neg-risk game
    event (one market per result, its group title naming the team or "Draw"):
    ``("home", "!home")`` (YES pays when home wins, NO when it does not). ``None`` when an outcome cannot be placed
    (the market is then not traded: never a guess)."""
    sp = info.sports
    if sp is None or not info.outcomes:
        return None
    if tuple(normalize_team(o) for o in info.outcomes) == ("yes", "no"):
        # a neg-risk event's per-outcome market ("Will Arsenal win?"): the YES token is the
        # outcome its group title names, the NO token its negation
        t = sp.title
        nt = normalize_team(t)
        if nt in ("draw", "tie") or nt.startswith(("draw ", "tie ")):
            side = "draw"
        elif same_team(t, home, aliases) and not same_team(t, away, aliases):
            side = "home"
        elif same_team(t, away, aliases) and not same_team(t, home, aliases):
            side = "away"
        else:
            return None
        return (side, "!" + side)
    out: list[str] = []
    for name in info.outcomes:
        n = normalize_team(name)
        if n in ("over", "under"):
            out.append(n)
        elif n in ("draw", "tie"):
            out.append("draw")
        elif same_team(name, home, aliases) and not same_team(name, away, aliases):
            out.append("home")
        elif same_team(name, away, aliases) and not same_team(name, home, aliases):
            out.append("away")
        else:
            return None
    if len(set(out)) != len(out):
        return None
    return tuple(out)
