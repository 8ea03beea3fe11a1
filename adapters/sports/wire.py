"""Polymarket sports WebSocket frames -> :class:`polybot.events.GameState` (source ``sports.polymarket``).

The decoder is pure (bytes in, events out, no state), so decoding is identical live and in
replay. It reads what ``wss://sports-api.polymarket.com/ws`` sends: one JSON object per game
update (the documented ``sport_result`` message, which carries no type field), a JSON array of
such objects, and the heartbeat texts ``ping`` / ``pong`` (no events).

Frame fields read (unknown keys are ignored): ``gameId`` (number) or, on cricket, the string
``metadataGameId``; ``leagueAbbreviation``; ``slug``; ``homeTeam`` / ``awayTeam``; ``status``
(casing varies: ``InProgress``, ``inprogress``, ``running``, ``finished``: kept as sent);
``score``; ``period``; ``elapsed``; ``live``; ``ended``; ``turn`` (possession, NFL/CFB);
``finishedTimestamp`` (also spelled ``finished_timestamp`` in the docs); and ``eventState``, a
per-sport object seen on soccer and tennis frames, whose ``type`` names the sport and whose
``updatedAt`` is the state's own time. Where a top-level field is missing its ``eventState``
twin (``score``, ``period``, ``elapsed``, ``live``, ``ended``) is used.

Interpretation (the feed documents none of this precisely; these are the assumptions):

* **Score order.** ``"a-b"`` is HOME-AWAY: ``a`` belongs to ``homeTeam``. (The NFL docs example
  ``LAC`` v ``BUF`` ``"3-16"`` and every capture are consistent with it, none proves it.)
* **Score formats.** Points/goals/runs ``"3-16"``; esports ``"000-000|2-0|Bo3"``: the middle
  part is the maps (series) score and becomes ``home_score``/``away_score``; tennis
  ``"7-5, 5-7, 2-6"``: the per-set games, home first, and the scores become **sets won**. A set
  counts only when it is finished: one side has 6 or more games and a 2-game lead, or it is
  7-6 (tie-break; a tie-break's points in brackets, ``"7-6(5)"``, are ignored). The set in
  progress is never counted, so ``"4-6, 1-2"`` is 0-1. A match tie-break written as a set
  (``"1-0"``) is not counted either. Cricket ``"21-178"``: the two numbers as given (a side
  written ``runs/wickets`` counts its runs). An empty score is 0-0. A score that cannot be read
  is kept verbatim in ``score`` with both numbers 0, the state is still published, and the
  kernel counts the frame under the reason ``bad_score``.
* **Elapsed.** The docs say ``elapsed`` is the time elapsed in the current period (``"05:09"``,
  ``"5:18"``): ``elapsed_s`` in seconds with ``elapsed_scope = "period"``. Soccer frames carry
  the match minute (``"74"`` in the second half): a bare minute count (also ``"45+2"``,
  ``"74'"``) is ``minutes * 60`` with ``elapsed_scope = "match"``. A soccer clock never restarts
  at half-time, so a soccer ``"MM:SS"`` is also scoped ``"match"``. Anything else: ``None``.
  ``clock`` always keeps the raw text. Caution: no capture of a clocked sport (NFL, NBA, NHL)
  exists to confirm that its ``"MM:SS"`` counts up as documented rather than down like a
  broadcast game clock; a strategy that depends on it should check against a second source.
* **Sport.** ``eventState.type`` when it names a sport family, else the league table
  (:data:`LEAGUE_SPORTS`), else ``""``.
* **Feed time.** ``feed_ts`` is ``eventState.updatedAt``, else ``last_update`` (the docs'
  AsyncAPI example), else ``finishedTimestamp`` / ``finished_timestamp``, else 0. A timestamp
  that cannot be read leaves ``feed_ts`` 0, the state is published, and the frame is counted
  under ``bad_timestamp``.

Refusals (the kernel counts and logs them per reason, and publishes the good games of an array):
not JSON (``malformed``), JSON of the wrong shape (``schema``), no ``gameId`` nor
``metadataGameId`` (``no_game_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from polybot.clock import iso_to_ns
from polybot.events import Event, GameState
from polybot.kernel import FrameError

__all__ = [
    "DECODER",
    "LEAGUE_SPORTS",
    "SOURCE",
    "SPORTS",
    "SportsDecoder",
    "bare_ts",
    "decode",
    "parse_elapsed",
    "parse_score",
    "sport_of",
]

SOURCE = "sports.polymarket"

#: The sport families of :attr:`GameState.sport`.
SPORTS = frozenset(("soccer", "basketball", "football", "hockey", "baseball", "tennis", "esports", "cricket"))


def _table(**families: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for family, leagues in families.items():
        for league in leagues.split(","):
            out[league.strip()] = family
    return out


#: League abbreviation (lower case, as the feed writes it) -> sport family. Polymarket's own
#: abbreviations (the prefixes of its sports market slugs) and the usual alternatives.
LEAGUE_SPORTS: dict[str, str] = _table(
    football="nfl, cfb, ncaaf, ufl, cfl, xfl",
    basketball="nba, wnba, cbb, ncaab, ncaaw, cwbb, wcbb, euroleague, eurocup, bbl-de, acb, nbl, cba, kbl, bsl",
    hockey="nhl, ahl, khl, shl, liiga, del, iihf",
    baseball="mlb, kbo, npb, milb, cpbl, wbc",
    tennis="atp, wta, atp challenger, wta challenger, challenger, itf, itf men, itf women, utr, davis cup, "
    "billie jean king cup",
    esports="cs2, csgo, cs, counter-strike, lol, league-of-legends, dota2, dota, val, valorant, ow, overwatch, "
    "r6, r6siege, rl, rocket-league, cod, mlbb, pubg, sc2, starcraft, hok, kog, apex, fortnite, esports",
    cricket="cricket, ipl, psl, bbl, cpl, bpl, sa20, ilt20, t20, t20i, odi, test, the hundred, wpl, lpl, mlc",
    soccer="epl, lal, bun, sea, fl1, ucl, uel, uecl, col, mls, kor, fif, fifa, wc, euro, mex, bra, arg, jap, jpn, "
    "aus, ere, por, tur, efl, efa, fac, sco, spl, bel, den, nor, swe, sui, aut, gre, rus, ukr, chi, chn, usl, "
    "nwsl, lib, sud, caf, afc, concacaf, cl, el, ecl, acn, afcon, copa, nations, uefa, friendly, fifwc, "
    "laliga, bundesliga, seriea, ligue1, premier-league, soccer",
)

#: ``eventState.type`` spellings that mean a family under another name.
_TYPE_ALIASES = {
    "american_football": "football", "american-football": "football", "americanfootball": "football",
    "ice_hockey": "hockey", "ice-hockey": "hockey", "icehockey": "hockey",
    "esport": "esports", "e-sports": "esports", "e_sports": "esports",
}  # fmt: skip


def sport_of(league: str, state_type: str = "") -> str:
    """The sport family: ``state_type`` (``eventState.type``) when it names one, else the
    league's from :data:`LEAGUE_SPORTS`, else ``""``."""
    if state_type:
        t = state_type.strip().lower()
        t = _TYPE_ALIASES.get(t, t)
        if t in SPORTS:
            return t
    return LEAGUE_SPORTS.get(league.strip().lower(), "") if league else ""


# ---------------------------------------------------------------------------------- scores


def _int(text: str) -> int | None:
    t = text.strip()
    return int(t) if t.isascii() and t.isdigit() else None


def _pair(text: str, runs: bool = False) -> tuple[int, int] | None:
    """``"3-16"`` -> (3, 16); ``runs``: a side may be ``runs/wickets`` (cricket)."""
    parts = text.split("-")
    if len(parts) != 2:
        return None
    a, b = parts
    if runs:
        a, b = a.split("/", 1)[0], b.split("/", 1)[0]
    x, y = _int(a), _int(b)
    if x is None or y is None:
        return None
    return x, y


def _set_finished(h: int, a: int) -> bool:
    hi, lo = max(h, a), min(h, a)
    return (hi >= 6 and hi - lo >= 2) or (hi == 7 and lo == 6)


def _sets(text: str) -> tuple[int, int] | None:
    home = away = 0
    for part in text.split(","):
        part = part.strip()
        i = part.find("(")
        if i >= 0:  # "7-6(5)": the tie-break's points
            if not part.endswith(")"):
                return None
            part = part[:i]
        games = _pair(part)
        if games is None:
            return None
        h, a = games
        if _set_finished(h, a):
            if h > a:
                home += 1
            else:
                away += 1
    return home, away


def parse_score(score: str, sport: str = "") -> tuple[int, int] | None:
    """(home, away) from the feed's score text, or None if it cannot be read (see the module
    docstring: home-away order, tennis sets won, esports maps, cricket runs). ``""`` is 0-0."""
    s = score.strip()
    if not s:
        return 0, 0
    if "|" in s:  # esports: "<current map rounds>|<maps>|Bo<N>"
        parts = s.split("|")
        return _pair(parts[1]) if len(parts) >= 2 else None
    if sport == "tennis" or (not sport and "," in s):
        return _sets(s)
    return _pair(s, runs=sport == "cricket")


def parse_elapsed(text: str, sport: str = "") -> tuple[int | None, str]:
    """(elapsed seconds, scope) from the feed's elapsed text: ``"5:18"`` -> (318, "period");
    ``"74"`` / ``"45+2"`` / ``"74'"`` -> (minutes * 60, "match"); a soccer ``"MM:SS"`` is the
    running match clock (scope "match"); unreadable or empty -> (None, "")."""
    t = text.strip().rstrip("'\u2019").strip()
    if not t:
        return None, ""
    if ":" in t:
        parts = t.split(":")
        if len(parts) > 3:
            return None, ""
        total = 0
        for p in parts:
            v = _int(p)
            if v is None:
                return None, ""
            total = total * 60 + v
        return total, ("match" if sport == "soccer" else "period")
    if "+" in t:  # stoppage time: "45+2" is the 47th minute
        base, _, extra = t.partition("+")
        b, e = _int(base), _int(extra)
        if b is None or e is None:
            return None, ""
        return (b + e) * 60, "match"
    m = _int(t)
    if m is None:
        return None, ""
    return m * 60, "match"


# ---------------------------------------------------------------------------------- frames


class _Frame(msgspec.Struct, kw_only=True):
    """One ``sport_result`` message; every field optional (checked in :func:`_state`)."""

    gameId: int | str | None = None
    metadataGameId: str | int | None = None
    leagueAbbreviation: str | None = None
    slug: str | None = None
    homeTeam: str | None = None
    awayTeam: str | None = None
    status: str | None = None
    score: str | None = None
    period: str | None = None
    elapsed: str | int | None = None
    live: bool | None = None
    ended: bool | None = None
    turn: str | None = None
    finishedTimestamp: str | None = None
    finished_timestamp: str | None = None
    last_update: str | None = None
    #: per-sport detail whose shape varies by sport: read field by field, never validated whole
    #: (anything but an object is ignored)
    eventState: Any = None


_ONE = msgspec.json.Decoder(_Frame)
_MANY = msgspec.json.Decoder(list[_Frame])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_HEARTBEATS = frozenset(("ping", "pong"))


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _game_id(f: _Frame) -> str:
    for v in (f.gameId, f.metadataGameId):
        if v is not None:
            s = str(v).strip()
            if s:
                return s
    return ""


def _feed_time(f: _Frame, es: dict[str, Any]) -> tuple[str, str]:
    """(field name, text) of the frame's own time, by preference; ("", "") if none."""
    for name, v in (("eventState.updatedAt", es.get("updatedAt")), ("last_update", f.last_update),
                    ("finishedTimestamp", f.finishedTimestamp), ("finished_timestamp", f.finished_timestamp)):  # fmt: skip
        if isinstance(v, str) and v.strip():
            return name, v
    return "", ""


def _state(f: _Frame, ts: int, source: str, problems: list[tuple[str, str]]) -> GameState | None:
    gid = _game_id(f)
    if not gid:
        problems.append(("no_game_id", "a game update without gameId or metadataGameId"))
        return None
    es = f.eventState if isinstance(f.eventState, dict) else {}
    league = f.leagueAbbreviation or ""
    sport = sport_of(league, _str(es.get("type")) or "")
    score = f.score if f.score is not None else (_str(es.get("score")) or "")
    scores = parse_score(score, sport)
    if scores is None:
        problems.append(("bad_score", f"game {gid}: unreadable score {score[:60]!r} (kept as text, scores 0)"))
        scores = (0, 0)
    elapsed = f.elapsed if f.elapsed is not None else es.get("elapsed")
    clock = str(elapsed) if isinstance(elapsed, (str, int)) and not isinstance(elapsed, bool) else ""
    elapsed_s, scope = parse_elapsed(clock, sport)
    feed_ts = 0
    field, when = _feed_time(f, es)
    if when:
        try:
            feed_ts = iso_to_ns(when)
        except ValueError:
            problems.append(("bad_timestamp", f"game {gid}: {field} {when[:40]!r} is not an ISO-8601 time"))
    live = f.live if f.live is not None else _bool(es.get("live"))
    ended = f.ended if f.ended is not None else _bool(es.get("ended"))
    return GameState(
        ts=ts, game_id=gid, league=league, sport=sport, slug=f.slug or "", home=f.homeTeam or "",
        away=f.awayTeam or "", home_score=scores[0], away_score=scores[1], score=score,
        period=f.period if f.period is not None else (_str(es.get("period")) or ""), clock=clock,
        elapsed_s=elapsed_s, elapsed_scope=scope, status=f.status or "", live=bool(live), ended=bool(ended),
        turn=f.turn or "", feed=source, feed_ts=feed_ts,
    )  # fmt: skip


def _frames(msg: bytes) -> tuple[list[_Frame], list[tuple[str, str]]]:
    """The game objects of an array; elements of the wrong shape are reported, not fatal."""
    try:
        return _MANY.decode(msg), []
    except msgspec.ValidationError:
        pass
    frames: list[_Frame] = []
    problems: list[tuple[str, str]] = []
    for i, raw in enumerate(_RAW_LIST.decode(msg)):
        try:
            frames.append(_ONE.decode(raw))
        except msgspec.ValidationError as exc:
            problems.append(("schema", f"element {i}: {exc}"))
    return frames, problems


class SportsDecoder:
    """The ``sports.polymarket`` source: raw frames of Polymarket's sports WebSocket.

    ``source`` is what the events' ``feed`` field says (the source name the decoder is
    registered under)."""

    def __init__(self, source: str = SOURCE) -> None:
        self.source = source

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        c = msg[:1]
        if c == b"{":
            frames = [_ONE.decode(msg)]
            problems: list[tuple[str, str]] = []
        elif c == b"[":
            frames, problems = _frames(msg)
        elif c == b'"':  # a text frame, journaled as a JSON string
            text = msgspec.json.decode(msg)
            if isinstance(text, str) and text.strip().lower() in _HEARTBEATS:
                return ()
            raise FrameError(f"unexpected text frame {str(text)[:40]!r}", reason="malformed")
        else:
            stripped = msg.strip()
            if stripped != msg and stripped[:1] in (b"{", b"[", b'"'):
                return self.decode(stripped, ts)
            try:
                msgspec.json.decode(stripped)
            except msgspec.DecodeError:
                # text ("ping") or garbage: the kernel journals it as a JSON string and asks again
                raise msgspec.DecodeError("not a JSON frame") from None
            raise FrameError(f"not a game object: {stripped[:40]!r}", reason="schema")
        out: list[Event] = []
        source = self.source
        for f in frames:
            ev = _state(f, ts, source, problems)
            if ev is not None:
                out.append(ev)
        if problems:
            raise FrameError("; ".join(d for _r, d in problems)[:1000], reason=problems[0][0], events=out)
        return out

    __call__ = decode

    @staticmethod
    def bare_ts(msg: bytes) -> int | None:
        """The frame's own time (ns) for recordings of bare frames: the latest
        ``eventState.updatedAt`` / ``last_update`` of its games; None when it states none (a
        finish time is not the time the frame was sent, so it is not used here). Never raises."""
        if b"updatedAt" not in msg and b"last_update" not in msg:
            return None
        try:
            c = msg.lstrip()[:1]
            frames = [_ONE.decode(msg)] if c == b"{" else _frames(msg)[0] if c == b"[" else []
        except (msgspec.MsgspecError, ValueError):
            return None
        best: int | None = None
        for f in frames:
            es = f.eventState if isinstance(f.eventState, dict) else {}
            for v in (es.get("updatedAt"), f.last_update):
                if isinstance(v, str):
                    try:
                        t = iso_to_ns(v)
                    except ValueError:
                        continue
                    best = t if best is None or t > best else best
                    break
        return best


#: The decoder of the ``sports.polymarket`` source (register it under that name).
DECODER = SportsDecoder()
decode = DECODER.decode
bare_ts = DECODER.bare_ts
