"""A generic poller of JSON scoreboards (source ``sports.scoreboard``), with an ESPN preset.

:class:`ScoreboardFeed` GETs ``url`` every ``interval_s`` and sends each response through the
kernel's one door as ONE input, a JSON envelope::

    {"url": "<the url, credentials redacted>", "map": {<the field mapping>}, "body": <the response>}

``body`` is the response embedded untouched as raw JSON (only surrounding whitespace and a UTF-8
byte-order mark are dropped); a body that is not JSON is embedded as a JSON string, which the
decoder refuses (a counted drop), and the poll counts as failed. Carrying the mapping in the
input keeps the decoder pure: a journal replays with the mapping it was recorded with. A body
byte-identical to the previous one is not sent again (counted as ``unchanged``). The request
``headers`` (e.g. an API key) are never sent through the door; neither are the values of query
parameters whose names look like credentials (``key``, ``token``, ``secret``, ``pass``, ``auth``,
``sig``, ...) nor any ``user:password@`` part of the url: they are replaced by ``REDACTED``, in
the envelope and in the health events' error details alike.

Health: the first failure (HTTP status other than 2xx, timeout, transport error, a body that is
not JSON) yields ``FeedDisconnected``, the next success ``FeedConnected`` (the first success
too); failures are retried after ``max(interval_s, backoff)`` with an exponential, jittered
backoff (``Retry-After`` honoured). No successful poll for ``stale_s`` yields one ``FeedStale``.

**The mapping.** ``items`` is the path (from the body's root) to the array of games; empty means
the body itself is that array (or one game object). Each of ``game_id`` (required), ``home``,
``away``, ``home_score``, ``away_score``, ``period``, ``clock``, ``status``, ``live``,
``ended``, ``feed_ts``, ``league``, ``sport`` and ``slug`` is a path from one game. Paths:

* dot-separated keys and integer indices: ``competitions.0.status.period``; ``name[0]`` too;
* array filters, the first element whose key (a dotted path) equals the value as text
  (``true``/``false`` for booleans): ``competitors[homeAway=home].score``;
* ``$.`` at the start: from the body's root instead of the game (``$.leagues.0.slug``);
* ``=text`` (the whole path): a constant (``sport = "=basketball"``);
* ``path=value`` at the end (for ``live`` / ``ended``): true when the value there equals ``value``
  as text (``status.type.state=in``).

Values: ``game_id`` a string or integer; scores integers or digit strings (missing = 0);
``live`` / ``ended`` booleans (or ``"true"``/``"false"``, 0/1; missing = false); ``feed_ts`` an
ISO-8601 time or epoch seconds / ms / us / ns (by magnitude); text fields any scalar. ``sport``
is reduced to a family (soccer, basketball, ...) like the Polymarket feed's, from the league
table when not mapped. ``clock`` is kept as text; ``clock_elapsed = true`` says it counts
elapsed time, and then ``elapsed_s`` / ``elapsed_scope`` are derived as for the Polymarket feed
(``"MM:SS"`` = in the period, a bare minute count = in the match). A game whose mapping fails
(no id, a value of the wrong kind) is skipped; the others are published and the input is
counted as a drop (``bad_game``). Every state has ``feed = "sports.scoreboard"``.

**ESPN preset** (``preset = "espn"``) for ``site.api.espn.com/apis/site/v2/sports/<sport>/<league>/scoreboard``:
games are ``events[]``; the teams, scores and home/away sides come from
``competitions[0].competitors[]`` (``homeAway``, ``score``, ``team.displayName``); ``period``
from ``status.period``; ``clock`` from ``status.displayClock``; ``status`` is
``status.type.name`` (``STATUS_IN_PROGRESS``, ...); live when ``status.type.state`` is ``in``;
ended from ``status.type.completed``; the league is the body's ``leagues[0].slug``; the sport
comes from the url. ESPN's display clock counts DOWN in US sports (time left in the period) and
up in soccer, so the preset does not derive ``elapsed_s``. ESPN states no update time per game:
``feed_ts`` is 0. Explicitly set mapping params override the preset's. The preset fits the team
sports' scoreboards (not tennis or golf, which ESPN shapes differently).

    [[feeds]]
    kind = "scoreboard"
    params = { url = "https://site.api.espn.com/apis/site/v2/sports/basketball/nba/scoreboard", preset = "espn" }
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit, urlunsplit

import aiohttp
import anyio
import msgspec
from anyio.abc import ObjectSendStream
from loguru import logger

from polybot.clock import Clock, iso_to_ns
from polybot.events import Event, FeedConnected, FeedDisconnected, FeedStale, GameState
from polybot.feeds import Feed, typed_params, door_closed as _door_closed, describe as _describe
from polybot.kernel import FrameError, InboundRecord
from polybot.strategy import StrategyParams

from .wire import parse_elapsed, sport_of

__all__ = [
    "DECODER",
    "ESPN_PRESET",
    "MAP_FIELDS",
    "SOURCE",
    "ScoreboardDecoder",
    "ScoreboardFeed",
    "compile_path",
    "redact_url",
    "resolve",
]

SOURCE = "sports.scoreboard"
#: Largest response body accepted.
MAX_BODY_BYTES = 32 * 1024 * 1024

#: The per-game paths of a mapping (``items`` and ``clock_elapsed`` are the others).
MAP_FIELDS = ("game_id", "home", "away", "home_score", "away_score", "period", "clock", "status", "live",
              "ended", "feed_ts", "league", "sport", "slug")  # fmt: skip

_ESPN_HOME = "competitions.0.competitors[homeAway=home]"
_ESPN_AWAY = "competitions.0.competitors[homeAway=away]"
#: The mapping of ESPN's public scoreboard JSON (the sport is added from the url).
ESPN_PRESET: dict[str, str] = {
    "items": "events",
    "game_id": "id",
    "home": f"{_ESPN_HOME}.team.displayName",
    "away": f"{_ESPN_AWAY}.team.displayName",
    "home_score": f"{_ESPN_HOME}.score",
    "away_score": f"{_ESPN_AWAY}.score",
    "period": "status.period",
    "clock": "status.displayClock",
    "status": "status.type.name",
    "live": "status.type.state=in",
    "ended": "status.type.completed",
    "league": "$.leagues.0.slug",
}
_ESPN_URL = re.compile(r"/sports/([^/?#]+)/([^/?#]+)/scoreboard")
#: ESPN's sport path segment -> sport family.
_ESPN_SPORTS = {"football": "football", "basketball": "basketball", "hockey": "hockey", "baseball": "baseball",
                "soccer": "soccer", "tennis": "tennis", "cricket": "cricket"}  # fmt: skip

PosFloat = Annotated[float, msgspec.Meta(gt=0)]


# ---------------------------------------------------------------------------------- paths

_MISSING: Any = object()

#: A compiled path step: ("key", name) | ("index", i) | ("filter", (key steps, value text)).
Step = tuple[str, Any]


class CompiledPath(msgspec.Struct, frozen=True):
    steps: tuple[Step, ...] = ()
    root: bool = False  # "$." : from the body's root
    const: str | None = None  # "=text"
    equals: str | None = None  # "path=value": a boolean comparison


def _split_outside_brackets(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError("']' without '['")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ValueError("'[' without ']'")
    parts.append("".join(cur))
    return parts


def _index(text: str) -> int | None:
    t = text[1:] if text.startswith("-") else text
    return int(text) if t.isascii() and t.isdigit() else None


def _steps(path: str) -> tuple[Step, ...]:
    steps: list[Step] = []
    for seg in _split_outside_brackets(path, "."):
        if not seg:
            raise ValueError("empty segment")
        i = seg.find("[")
        name, rest = (seg, "") if i < 0 else (seg[:i], seg[i:])
        if name:
            n = _index(name)
            steps.append(("index", n) if n is not None else ("key", name))
        while rest:
            if not rest.startswith("["):
                raise ValueError(f"unexpected text {rest!r} after ']'")
            j = rest.find("]")
            inner, rest = rest[1:j], rest[j + 1 :]
            n = _index(inner.strip())
            if n is not None:
                steps.append(("index", n))
                continue
            key, eq, value = inner.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"[{inner}] is neither an index nor a key=value filter")
            steps.append(("filter", (_steps(key.strip()), value)))
    return tuple(steps)


@lru_cache(maxsize=512)
def compile_path(path: str) -> CompiledPath:
    """Parse a mapping path (syntax in the module docstring); raises ValueError naming the
    problem."""
    if path.startswith("="):
        return CompiledPath(const=path[1:])
    text, root = path.strip(), False
    if text.startswith("$"):
        text, root = text[1:].lstrip("."), True
    parts = _split_outside_brackets(text, "=")
    if len(parts) > 2:
        raise ValueError(f"path {path!r}: more than one '=' outside brackets")
    equals = parts[1] if len(parts) == 2 else None
    body = parts[0].strip()
    if not body:
        if root and equals is None:
            return CompiledPath(root=True)
        raise ValueError(f"path {path!r} is empty")
    try:
        return CompiledPath(steps=_steps(body), root=root, equals=equals)
    except ValueError as exc:
        raise ValueError(f"path {path!r}: {exc}") from None


def _rooted(path: str) -> str:
    """``items`` is always from the body's root (``$.`` optional)."""
    return path if path.lstrip().startswith("$") else "$." + path


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _walk(steps: Sequence[Step], obj: Any) -> Any:
    for kind, arg in steps:
        if kind == "key":
            obj = obj.get(arg, _MISSING) if isinstance(obj, dict) else _MISSING
        elif kind == "index":
            obj = obj[arg] if isinstance(obj, list) and -len(obj) <= arg < len(obj) else _MISSING
        else:
            key_steps, want = arg
            found = _MISSING
            if isinstance(obj, list):
                for el in obj:
                    v = _walk(key_steps, el)
                    if v is not _MISSING and _text(v) == want:
                        found = el
                        break
            obj = found
        if obj is _MISSING:
            return _MISSING
    return obj


def resolve(path: CompiledPath, game: Any, root: Any) -> Any:
    """The value at ``path`` in ``game`` (or ``root``); None when it is not there. A
    comparison path gives a bool."""
    if path.const is not None:
        return path.const
    v = _walk(path.steps, root if path.root else game)
    if path.equals is not None:
        return v is not _MISSING and _text(v) == path.equals
    return None if v is _MISSING else v


# ---------------------------------------------------------------------------------- decoding


class _Map(msgspec.Struct, kw_only=True):
    """A field mapping: the same fields in the feed's params and in every envelope it sends."""

    items: str = ""
    game_id: str = ""
    home: str = ""
    away: str = ""
    home_score: str = ""
    away_score: str = ""
    period: str = ""
    clock: str = ""
    status: str = ""
    live: str = ""
    ended: str = ""
    feed_ts: str = ""
    league: str = ""
    sport: str = ""
    slug: str = ""
    #: the clock counts elapsed time: derive elapsed_s / elapsed_scope from it
    clock_elapsed: bool = False


class _Envelope(msgspec.Struct, kw_only=True):
    url: str = ""
    map: _Map
    body: msgspec.Raw


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class _BadValue(ValueError):
    pass


def _scalar_text(field: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        raise _BadValue(f"{field} is a JSON {'object' if isinstance(v, dict) else 'array'}, not a value")
    return _text(v)


def _score(field: str, v: Any) -> int:
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise _BadValue(f"{field} is a boolean")
    if isinstance(v, int):
        if v < 0:
            raise _BadValue(f"{field} {v} is negative")
        return v
    if isinstance(v, float) and v.is_integer() and v >= 0:
        return int(v)
    if isinstance(v, str):
        t = v.strip()
        if t.isascii() and t.isdigit():
            return int(t)
    raise _BadValue(f"{field} {_text(v)[:30]!r} is not a whole number")


def _flag(field: str, v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise _BadValue(f"{field} {_text(v)[:30]!r} is not a boolean")


def _when(v: Any) -> int:
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise _BadValue("feed_ts is a boolean")
    if isinstance(v, (int, float)):
        if not math.isfinite(v) or v < 0:
            raise _BadValue(f"feed_ts {v} is not a time")
        a = abs(v)
        scale = 1_000_000_000 if a < 1e11 else 1_000_000 if a < 1e14 else 1_000 if a < 1e17 else 1
        return int(v * scale) if isinstance(v, float) else v * scale
    if isinstance(v, str):
        try:
            return iso_to_ns(v)
        except ValueError:
            raise _BadValue(f"feed_ts {v[:40]!r} is not an ISO-8601 time") from None
    raise _BadValue("feed_ts is not a time")


class ScoreboardDecoder:
    """The ``sports.scoreboard`` source: the feed's envelopes (url, mapping, response body)."""

    def __init__(self, source: str = SOURCE) -> None:
        self.source = source

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        env = _ENVELOPE.decode(msg)  # not JSON: DecodeError; wrong shape: ValidationError
        m = env.map
        raw = env.body
        if memoryview(raw)[:1].tobytes() == b'"':
            text = msgspec.json.decode(raw)
            raise FrameError(f"the response from {env.url} is not JSON: {str(text)[:80]!r}", reason="bad_body")
        try:
            paths = {f: compile_path(getattr(m, f)) for f in MAP_FIELDS if getattr(m, f)}
            items_path = compile_path(_rooted(m.items)) if m.items else None
        except ValueError as exc:
            raise FrameError(f"bad mapping: {exc}", reason="bad_map") from None
        if "game_id" not in paths:
            raise FrameError("the mapping has no game_id path", reason="bad_map")
        body = msgspec.json.decode(raw)
        if items_path is None:
            items = body if isinstance(body, list) else [body]
        else:
            items = resolve(items_path, body, body)
            if not isinstance(items, list):
                what = "missing" if items is None else f"a JSON {type(items).__name__}, not an array"
                raise FrameError(f"items path {m.items!r} in the response from {env.url}: {what}", reason="no_items")
        out: list[Event] = []
        problems: list[str] = []
        for i, game in enumerate(items):
            try:
                out.append(self._game(game, body, paths, m.clock_elapsed, ts))
            except _BadValue as exc:
                problems.append(f"game {i}: {exc}")
        if problems:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise FrameError(f"{env.url}: " + "; ".join(problems[:3]) + more, reason="bad_game", events=out)
        return out

    __call__ = decode

    def _game(self, game: Any, body: Any, paths: dict[str, CompiledPath], clock_elapsed: bool, ts: int) -> GameState:
        def get(field: str) -> Any:
            p = paths.get(field)
            return resolve(p, game, body) if p is not None else None

        gid_v = get("game_id")
        if isinstance(gid_v, bool) or not isinstance(gid_v, (str, int)) or not str(gid_v).strip():
            raise _BadValue(f"no game id ({'missing' if gid_v is None else repr(_text(gid_v))[:30]})")
        gid = str(gid_v).strip()
        try:
            league = _scalar_text("league", get("league"))
            sport = sport_of(league, _scalar_text("sport", get("sport")))
            clock = _scalar_text("clock", get("clock"))
            elapsed_s, scope = parse_elapsed(clock, sport) if clock_elapsed else (None, "")
            return GameState(
                ts=ts, game_id=gid, league=league, sport=sport, slug=_scalar_text("slug", get("slug")),
                home=_scalar_text("home", get("home")), away=_scalar_text("away", get("away")),
                home_score=_score("home_score", get("home_score")), away_score=_score("away_score", get("away_score")),
                score="", period=_scalar_text("period", get("period")), clock=clock, elapsed_s=elapsed_s,
                elapsed_scope=scope, status=_scalar_text("status", get("status")), live=_flag("live", get("live")),
                ended=_flag("ended", get("ended")), feed=self.source, feed_ts=_when(get("feed_ts")),
            )  # fmt: skip
        except _BadValue as exc:
            raise _BadValue(f"id {gid}: {exc}") from None


#: The decoder of the ``sports.scoreboard`` source (register it under that name).
DECODER = ScoreboardDecoder()


# ---------------------------------------------------------------------------------- the feed

_SECRET_NAME = re.compile(r"key|token|secret|pass|pwd|auth|sig|credential|session|cookie", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` without credentials: no ``user:password@``, and the values of query parameters
    whose names look like secrets replaced by ``REDACTED``."""
    try:
        u = urlsplit(url)
    except ValueError:
        return "REDACTED"
    netloc = u.netloc.rpartition("@")[2]
    if u.query:
        pairs = parse_qsl(u.query, keep_blank_values=True)
        query = "&".join(f"{quote(k, safe='')}={'REDACTED' if _SECRET_NAME.search(k) else quote(v, safe='')}"
                         for k, v in pairs)  # fmt: skip
    else:
        query = ""
    return urlunsplit((u.scheme, netloc, u.path, query, ""))


def _secrets(url: str, headers: Mapping[str, str]) -> list[str]:
    """The credential values a message must never show: the url's password, its secret-looking
    query values (raw and decoded) and the request headers' values; longest first."""
    out: set[str] = set()
    try:
        u = urlsplit(url)
        if u.password:
            out.add(u.password)
        for part in u.query.split("&"):
            k, _, v = part.partition("=")
            if v and _SECRET_NAME.search(unquote_plus(k)):
                out.update((v, unquote_plus(v)))
    except ValueError:
        pass
    out.update(v for v in headers.values() if isinstance(v, str))
    return sorted((s for s in out if len(s) >= 4), key=len, reverse=True)


def _retry_after(value: str | None) -> float:
    try:
        v = float(value) if value else 0.0
    except ValueError:
        return 0.0
    return v if math.isfinite(v) and v > 0 else 0.0


class _OutEnvelope(msgspec.Struct):
    url: str
    map: dict[str, Any]
    body: msgspec.Raw


_ENCODER = msgspec.json.Encoder()
_RAW = msgspec.json.Decoder(msgspec.Raw)
_BOM = b"\xef\xbb\xbf"


class _PollFailed(Exception):
    def __init__(self, why: str, retry_after: float = 0.0) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class ScoreboardFeed(Feed):
    """Polls a JSON scoreboard (generic field mapping, or the ESPN preset) into game states."""

    kind = "scoreboard"

    class Params(StrategyParams, _Map):
        url: str
        preset: Literal["", "espn"] = ""
        interval_s: PosFloat = 5.0
        timeout_s: PosFloat = 10.0
        #: no successful poll for this long -> one FeedStale
        stale_s: PosFloat = 60.0
        backoff_initial_s: PosFloat = 1.0
        backoff_max_s: PosFloat = 60.0
        source: str = SOURCE
        #: request headers (an API key, a User-Agent); never journaled
        headers: dict[str, str] = {}
        # the mapping's fields (items, game_id, home, ..., clock_elapsed) come from _Map

    def __init__(self, name: str = "scoreboard", params: Any = None) -> None:
        if params is None:
            raise ValueError(f"scoreboard feed {name!r}: params.url is required")
        params = typed_params(self.Params, f"scoreboard feed {name!r}", params)
        self.mapping = _validate(name, params)
        super().__init__(name, params)
        self.public_url = redact_url(params.url)
        self._secrets = _secrets(params.url, params.headers)
        self.stats: dict[str, Any] = {
            "polls": 0, "sent": 0, "unchanged": 0, "failures": 0, "not_json": 0, "bytes": 0,
            "connects": 0, "disconnects": 0, "stale": 0,
        }  # fmt: skip
        self._rng = random.Random()
        self._send: ObjectSendStream[InboundRecord] | None = None
        self._clock: Clock | None = None
        self._last_digest: bytes | None = None
        self._up: bool | None = None  # None: no poll yet
        self._last_ok = 0.0
        self._stale_reported = False

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        p = self.params
        self._send, self._clock = send, clock
        self._last_ok = anyio.current_time()
        self._stale_reported = False
        timeout = aiohttp.ClientTimeout(total=p.timeout_s)
        session = aiohttp.ClientSession(timeout=timeout, headers=p.headers or None)
        logger.info("scoreboard feed {}: polling {} every {}s", self.name, self.public_url, p.interval_s)
        try:
            async with send:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._stale_watch, name=f"{self.name}-stale")
                    await self._poll_loop(session)
        except BaseException as exc:
            if not _door_closed(exc):
                raise
            logger.info("scoreboard feed {}: the kernel's input stream is closed; stopping", self.name)
        finally:
            with anyio.CancelScope(shield=True):
                await session.close()
            s = self.stats
            logger.info("scoreboard feed {}: stopped: {} polls, {} sent, {} unchanged, {} failures",
                        self.name, s["polls"], s["sent"], s["unchanged"], s["failures"])  # fmt: skip

    async def _poll_loop(self, session: aiohttp.ClientSession) -> None:
        p = self.params
        backoff = p.backoff_initial_s
        next_at = anyio.current_time()
        while True:
            try:
                await self._poll(session)
                ok, retry = True, 0.0
            except _PollFailed as exc:
                ok, retry = False, exc.retry_after
                await self._health(False, str(exc))
            except Exception as exc:  # noqa: BLE001 - a bug here must not end the feed
                if _door_closed(exc):
                    raise
                logger.opt(exception=exc).error("scoreboard feed {}: poll failed unexpectedly", self.name)
                ok, retry = False, 0.0
            now = anyio.current_time()
            if ok:
                backoff = p.backoff_initial_s
                next_at += p.interval_s
                if next_at <= now:  # late (a slow response): no burst to catch up
                    next_at = now + p.interval_s
            else:
                jittered = backoff / 2 + self._rng.uniform(0, backoff / 2)
                backoff = min(backoff * 2, p.backoff_max_s)
                next_at = now + max(p.interval_s, jittered, min(retry, 3600.0))
            await anyio.sleep(max(0.0, next_at - now))

    async def _poll(self, session: aiohttp.ClientSession) -> None:
        """One GET; sends the envelope unless the body is unchanged. Raises _PollFailed."""
        p = self.params
        assert self._send is not None and self._clock is not None
        self.stats["polls"] += 1
        try:
            async with session.get(p.url) as resp:
                ts = self._clock.now()
                body = await _read_body(resp)
                status = resp.status
                if not 200 <= status < 300:
                    self.stats["failures"] += 1
                    snippet = body[:200].decode("utf-8", "replace").strip()
                    raise _PollFailed(f"HTTP {status}: {snippet}", _retry_after(resp.headers.get("Retry-After")))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            self.stats["failures"] += 1
            raise _PollFailed(_describe(exc) or "request failed") from None
        self.stats["bytes"] += len(body)
        if body.startswith(_BOM):
            body = body[len(_BOM) :]
        try:
            raw: msgspec.Raw = _RAW.decode(body)
            is_json = True
        except msgspec.DecodeError:
            raw = msgspec.Raw(msgspec.json.encode(body.decode("utf-8", "replace")))
            is_json = False
        if is_json:
            self._last_ok = anyio.current_time()
            if self._stale_reported:
                self._stale_reported = False
                logger.info("scoreboard feed {}: polls succeed again", self.name)
            await self._health(True, "")  # reported before the data it brings
        digest = hashlib.blake2b(body, digest_size=16).digest()
        if digest == self._last_digest:
            self.stats["unchanged"] += 1
        else:
            self._last_digest = digest
            msg = _ENCODER.encode(_OutEnvelope(self.public_url, self.mapping, raw))
            await self._send.send(InboundRecord(ts, p.source, msg))
            self.stats["sent"] += 1
        if not is_json:  # journaled (and refused by the decoder), but the scoreboard is not working
            self.stats["not_json"] += 1
            self.stats["failures"] += 1
            raise _PollFailed(f"the response is not JSON: {body[:80].decode('utf-8', 'replace')!r}")

    def _scrub(self, text: str) -> str:
        """``text`` (an error message, a response snippet) without the url's or headers' secrets."""
        for secret in self._secrets:
            text = text.replace(secret, "REDACTED")
        return text

    async def _health(self, ok: bool, why: str) -> None:
        assert self._send is not None and self._clock is not None
        why = self._scrub(why)
        if ok:
            if self._up is not True:
                self._up = True
                self.stats["connects"] += 1
                ts = self._clock.now()
                ev: Event = FeedConnected(ts=ts, feed=self.name, detail=self.public_url)
                await self._send.send(InboundRecord(ts, "events", ev))
                logger.info("scoreboard feed {}: polling {} succeeds", self.name, self.public_url)
            return
        if self._up is not False:
            self._up = False
            self.stats["disconnects"] += 1
            ts = self._clock.now()
            ev = FeedDisconnected(ts=ts, feed=self.name, detail=why[:300])
            await self._send.send(InboundRecord(ts, "events", ev))
        logger.warning("scoreboard feed {}: poll of {} failed: {}", self.name, self.public_url, why[:300])

    async def _stale_watch(self) -> None:
        """One FeedStale per stretch of ``stale_s`` without a successful poll."""
        p = self.params
        assert self._send is not None and self._clock is not None
        while True:
            age = anyio.current_time() - self._last_ok
            if age >= p.stale_s and not self._stale_reported:
                self._stale_reported = True
                self.stats["stale"] += 1
                ts = self._clock.now()
                ev = FeedStale(ts=ts, feed=self.name, detail=f"no successful poll for {age:.1f}s", age_ns=int(age * 1e9))
                await self._send.send(InboundRecord(ts, "events", ev))
                logger.warning("scoreboard feed {}: stale: no successful poll for {:.1f}s", self.name, age)
                await anyio.sleep(p.stale_s)
            else:
                await anyio.sleep(p.stale_s - age if age < p.stale_s else p.stale_s)


async def _read_body(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None and resp.content_length > MAX_BODY_BYTES:
        raise ValueError(f"response of {resp.content_length} bytes is over the {MAX_BODY_BYTES} limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ValueError(f"response over the {MAX_BODY_BYTES} bytes limit")
        chunks.append(chunk)


def _espn_sport(url: str) -> str:
    m = _ESPN_URL.search(urlsplit(url).path)
    return _ESPN_SPORTS.get(m.group(1).lower(), "") if m else ""


def _validate(name: str, p: Any) -> dict[str, Any]:
    """Check the params (errors name the field) and return the effective mapping."""
    where = f"scoreboard feed {name!r}: params"

    def bad(field: str, what: str) -> ValueError:
        return ValueError(f"{where}.{field} {what}, got {getattr(p, field)!r}")

    for f in ("interval_s", "timeout_s", "stale_s", "backoff_initial_s", "backoff_max_s"):
        v = getattr(p, f)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise bad(f, "must be a positive number of seconds")
    if p.backoff_max_s < p.backoff_initial_s:
        raise bad("backoff_max_s", f"must be >= backoff_initial_s ({p.backoff_initial_s})")
    if not isinstance(p.url, str) or not p.url.startswith(("http://", "https://")):
        raise bad("url", "must be an http:// or https:// URL")
    if not isinstance(p.source, str) or not p.source:
        raise bad("source", "must not be empty")
    if p.preset not in ("", "espn"):
        raise bad("preset", 'must be "" or "espn"')
    mapping: dict[str, Any] = {}
    if p.preset == "espn":
        mapping.update(ESPN_PRESET)
        sport = _espn_sport(p.url)
        if sport:
            mapping["sport"] = "=" + sport
    for f in ("items", *MAP_FIELDS):
        v = getattr(p, f)
        if not isinstance(v, str):
            raise bad(f, "must be a path string")
        if v:
            mapping[f] = v
    if p.clock_elapsed:
        mapping["clock_elapsed"] = True
    if not mapping.get("game_id"):
        raise ValueError(f"{where}.game_id is required (a path to each game's id), or preset = \"espn\"")
    for f in ("items", *MAP_FIELDS):
        if f in mapping:
            try:
                compile_path(_rooted(mapping[f]) if f == "items" else mapping[f])
            except ValueError as exc:
                raise ValueError(f"{where}.{f}: {exc}") from None
    return mapping
