"""The kernel's sports state: the latest game states (score feeds) and bookmaker quotes (odds
feeds), like the books are its market-data state.

Score and odds feeds repeat themselves: a scoreboard poll returns every game each time, an odds
poll every price. The kernel passes each ``GameState`` / ``OddsQuote`` a source decodes through
these boards before it is published (:meth:`Scoreboard.accept`, :meth:`OddsBoard.accept`), so a
strategy hears about a game or a price only when it changed. A repeat still refreshes the
board's "last heard" time, which is what staleness is measured against. Both boards are part
of the state snapshot, so a restarted kernel filters exactly as the one that wrote the journal.

Feeds are kept apart: a game reported by two score feeds has one state per feed
(:meth:`Scoreboard.states`), so a strategy can see when they disagree.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .events import GameState, OddsQuote

#: OddsBoard key: (event id, bookmaker, market, outcome, point)
QuoteKey = tuple[str, str, str, str, float | None]


def _same_game(a: GameState, b: GameState) -> bool:
    """Equal apart from the times (``ts``, ``feed_ts``)."""
    return msgspec.structs.replace(a, ts=0, feed_ts=0) == msgspec.structs.replace(b, ts=0, feed_ts=0)


class Scoreboard:
    """Latest ``GameState`` per game and per feed, and when each feed last reported it."""

    def __init__(self) -> None:
        self._games: dict[str, dict[str, GameState]] = {}
        self._heard: dict[tuple[str, str], int] = {}  # (game, feed) -> kernel ts of the last report
        self._feed_ts: dict[tuple[str, str], int] = {}  # (game, feed) -> latest feed time reported (repeats too)
        self.repeats = 0
        self.out_of_order = 0

    def accept(self, ev: GameState) -> bool:
        """Record ``ev``; True when it is news (a first report or a change from this feed's
        previous state), False for a repeat or a report older (by the feed's own time) than
        the latest this feed made of the game (a repeat included)."""
        per = self._games.get(ev.game_id)
        prev = per.get(ev.feed) if per is not None else None
        key = (ev.game_id, ev.feed)
        if prev is not None:
            last = self._feed_ts.get(key, prev.feed_ts)
            if ev.feed_ts and last and ev.feed_ts < last:
                self.out_of_order += 1
                return False
            self._heard[key] = ev.ts
            if ev.feed_ts > last:
                self._feed_ts[key] = ev.feed_ts
            if _same_game(prev, ev):
                self.repeats += 1
                return False
        if per is None:
            per = self._games[ev.game_id] = {}
        per[ev.feed] = ev
        self._heard[key] = ev.ts
        if ev.feed_ts:
            self._feed_ts[key] = max(ev.feed_ts, self._feed_ts.get(key, 0))
        return True

    def get(self, game_id: str, feed: str | None = None) -> GameState | None:
        """The state of a game: from ``feed``, or the most recently changed one of any feed."""
        per = self._games.get(game_id)
        if not per:
            return None
        if feed is not None:
            return per.get(feed)
        return max(per.values(), key=lambda g: (g.ts, g.feed))

    def states(self, game_id: str) -> dict[str, GameState]:
        """Every feed's state of a game (feed -> state)."""
        return dict(self._games.get(game_id, {}))

    def heard(self, game_id: str, feed: str | None = None) -> int:
        """Kernel time (ns) a feed (or any feed) last reported the game, changed or not; 0 never."""
        if feed is not None:
            return self._heard.get((game_id, feed), 0)
        per = self._games.get(game_id)  # its feeds (not a scan of every game's: the hot path reads it)
        if not per:
            return 0
        return max(self._heard.get((game_id, f), 0) for f in per)

    def games(self) -> list[str]:
        return sorted(self._games)

    def __len__(self) -> int:
        return len(self._games)

    def __iter__(self) -> Any:
        for gid in sorted(self._games):
            yield self.get(gid)

    def to_state(self) -> dict[str, Any]:
        return {
            "games": [msgspec.to_builtins(g) for gid in sorted(self._games) for _f, g in sorted(self._games[gid].items())],
            "heard": sorted([g, f, t] for (g, f), t in self._heard.items()),
            "feed_ts": sorted([g, f, t] for (g, f), t in self._feed_ts.items()),
        }

    def restore(self, st: dict[str, Any]) -> None:
        self._games.clear()
        self._heard.clear()
        self._feed_ts.clear()
        for d in st.get("games", []):
            g = msgspec.convert(d, GameState)
            self._games.setdefault(g.game_id, {})[g.feed] = g
        for g, f, t in st.get("heard", []):
            self._heard[(g, f)] = t
        for g, f, t in st.get("feed_ts", []):
            self._feed_ts[(g, f)] = t


class OddsBoard:
    """Latest ``OddsQuote`` per (event, bookmaker, market, outcome, point)."""

    def __init__(self) -> None:
        self._quotes: dict[QuoteKey, OddsQuote] = {}
        self._by_event: dict[str, set[QuoteKey]] = {}
        self._version: dict[str, int] = {}  # event -> count of stores (news or a refreshed repeat)
        self.repeats = 0
        self.out_of_order = 0

    @staticmethod
    def key(q: OddsQuote) -> QuoteKey:
        return (q.event_id, q.bookmaker, q.market, q.outcome, q.point)

    def accept(self, q: OddsQuote) -> bool:
        """Record ``q``; True when its price is new for its key. A repeat of the same price
        (a later poll) refreshes ``last_update_ts`` and is not news; a quote older than the one
        held (by the bookmaker's ``last_update``) is ignored."""
        k = (q.event_id, q.bookmaker, q.market, q.outcome, q.point)
        prev = self._quotes.get(k)
        if prev is None:
            self._quotes[k] = q
            self._by_event.setdefault(q.event_id, set()).add(k)
            self._version[q.event_id] = self._version.get(q.event_id, 0) + 1
            return True
        if q.last_update_ts and prev.last_update_ts and q.last_update_ts < prev.last_update_ts:
            self.out_of_order += 1
            return False
        self._quotes[k] = q
        self._version[q.event_id] = self._version.get(q.event_id, 0) + 1
        if prev.price == q.price and prev.commence_ts == q.commence_ts:
            self.repeats += 1
            return False
        return True

    def quotes(self, event_id: str, market: str | None = None) -> list[OddsQuote]:
        """The quotes held for an event (one market, or all), in a deterministic order."""
        ks = self._by_event.get(event_id)
        if not ks:
            return []
        out = [self._quotes[k] for k in ks if market is None or k[2] == market]
        out.sort(key=lambda q: (q.bookmaker, q.market, q.outcome, q.point if q.point is not None else 0.0))
        return out

    def version(self, event_id: str) -> int:
        """Changes whenever a quote of the event is stored (a new price or a refreshed
        repeat): what is computed from the event's quotes can be kept until it changes."""
        return self._version.get(event_id, 0)

    def events(self) -> list[str]:
        return sorted(self._by_event)

    def event_teams(self, event_id: str) -> tuple[str, str, str, int]:
        """(sport, home, away, commence_ts) of an event, from any of its quotes."""
        for k in sorted(self._by_event.get(event_id, ()), key=repr):
            q = self._quotes[k]
            return q.sport, q.home, q.away, q.commence_ts
        return "", "", "", 0

    def __len__(self) -> int:
        return len(self._quotes)

    def to_state(self) -> list[Any]:
        return [msgspec.to_builtins(self._quotes[k]) for k in sorted(self._quotes, key=repr)]

    def restore(self, st: list[Any]) -> None:
        self._quotes.clear()
        self._by_event.clear()
        for d in st:
            q = msgspec.convert(d, OddsQuote)
            k = self.key(q)
            self._quotes[k] = q
            self._by_event.setdefault(q.event_id, set()).add(k)
        for e in set(self._version) | set(self._by_event):  # what was computed before is void
            self._version[e] = self._version.get(e, 0) + 1
