"""The Odds API v4 (https://the-odds-api.com): sportsbook prices polled over REST.

Two halves, as everywhere in polybot: :class:`OddsApiFeed` does the I/O (polls
``GET /v4/sports/{sport}/odds``, sends each successful response through the kernel's one door),
and :data:`DECODER`, the pure decoder of the ``odds.theoddsapi`` input source, turns a journaled
response into :class:`polybot.events.OddsQuote` events, live and in replay alike.

    [[feeds]]
    kind = "theoddsapi"
    params = { sports = ["basketball_nba"], markets = ["h2h", "spreads"], budget_per_day = 500 }

The API key is a secret: ``odds_api_key`` in the secrets file or the environment variable
``POLYBOT_ODDS_API_KEY`` (``api_key_env`` names another one). It is sent only as the request's
``apiKey`` query parameter; it is never journaled, logged, put in an exception or in the stats
(every text that could carry it, such as an aiohttp error naming the URL, is scrubbed).

**The envelope (what is journaled).** One successful poll is one input, source
``odds.theoddsapi``::

    {"endpoint": "/v4/sports/basketball_nba/odds",
     "query": {"regions": "us", "markets": "h2h", "oddsFormat": "decimal", "dateFormat": "iso"},
     "body": <the response body, embedded untouched as raw JSON>}

``query`` is the request's query *without* ``apiKey`` (:func:`odds_input` drops it whatever its
spelling). The decoder also accepts a bare body (the JSON array alone, no envelope), so that
recordings of raw responses replay: see "bare bodies" below.

**Quotes.** One :class:`~polybot.events.OddsQuote` per event x bookmaker x market x outcome:
``market`` is the API's market key as written (``h2h``, ``spreads``, ``totals``, and any other key
such as ``h2h_lay`` or ``alternate_spreads``), ``outcome`` the outcome's ``name`` (a team,
``Draw``, ``Over``/``Under``; when the API adds a ``description`` to tell outcomes of the same
name apart, as in player props and team totals, the outcome is ``"<name> (<description>)"``),
``point`` the handicap or total line (required for a market whose key contains ``spreads`` or
``totals``), ``last_update_ts`` the market's ``last_update``, else the bookmaker's.

**Prices** are decimal odds (a float, > 1). American odds (``oddsFormat=american``, as the
envelope's query says) are converted exactly, rounding once: ``+x`` -> ``1 + x/100`` and ``-x``
-> ``1 + 100/x`` (-160 -> 1.625, +115 -> 2.15; -150 -> 1.6666666666666667, the float nearest
5/3, where ``1 + 100/150`` in floats gives ...65); American odds with ``|x| < 100`` do not exist
and are refused. A price that is not a number, is not finite, or is not above 1.0 in decimal is a bad
value: that outcome is skipped, the others are published, and the message is counted as a drop
(:class:`~polybot.kernel.FrameError`, reason ``bad_value``). An event or bookmaker whose shape is
broken (not an object, no id, an unreadable time) is skipped the same way.

**Bare bodies** carry no query, so their odds format is inferred: American when at least one
price is an integral number with ``|price| >= 100`` and no price has a fractional part (American
odds are always integers of at least 100 in size); decimal otherwise. A decimal body always has
fractional prices (1.91, 2.5), so it is never mistaken for American, and one bad value in an
American body does not flip the whole body to decimal.

**Credits and budget.** The API bills each call ``len(markets) x len(regions)`` credits; when
``bookmakers`` are given they replace the regions (and are sent instead of them), every group of
up to 10 bookmakers counting as one region (:func:`credits_per_call`). An empty response costs
0; the actual cost comes back in ``x-requests-last`` (summed in ``stats["credits_used"]``), with
``x-requests-used`` and ``x-requests-remaining`` (the month's quota). The feed spends at most
``budget_per_day`` credits a day: any two requests are at least ``86400 * cost /
budget_per_day`` seconds apart (:func:`budget_spacing_s`), whatever their outcome (an error may
be billed too), and each sport is polled at most every ``interval_s`` seconds; the sports are
polled round-robin (:class:`PollSchedule`). With one sport a poll thus waits ``max(interval_s,
86400 * cost / budget_per_day)``. The budget is per process: a restart polls at once.

**Quota, errors and health.** When ``x-requests-remaining`` would fall below ``min_remaining``
with one more call, the feed stops polling (logged once, ``FeedStale`` with detail ``quota``) and
returns. 401 (key rejected, deactivated, or usage quota used up) stops it with an error log and
``FeedDisconnected``. Stopping means :meth:`OddsApiFeed.run` returns: this feed ends, the daemon
goes on while it has other feeds. 429, 5xx, timeouts, transport errors, redirects (never
followed: the key would go along) and 200s whose body is not JSON are retried after an exponential backoff with jitter (``Retry-After`` honoured); other 4xx
(400, 404 unknown sport, 422 bad parameter) are permanent for that sport, which is dropped from
the rotation (the feed stops when none is left). Health events go through the door as
``events`` records: ``FeedConnected`` after the first success and after each recovery,
``FeedDisconnected`` after a failure, ``FeedStale`` when no poll succeeded for ``stale_s``.
The kernel's input stream closing ends the feed cleanly.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from fractions import Fraction
from typing import Annotated, Any, Literal
from urllib.parse import quote

import aiohttp
import anyio
import attrs
import msgspec
from anyio.abc import ObjectSendStream
from loguru import logger

from polybot.clock import Clock, iso_to_ns
from polybot.config import Config, load_secrets
from polybot.events import Event, FeedConnected, FeedDisconnected, FeedStale, OddsQuote
from polybot.feeds import Feed, typed_params, door_closed as _door_closed
from polybot.journal import check_source
from polybot.kernel import FrameError, InboundRecord
from polybot.strategy import StrategyParams

__all__ = [
    "BASE_URL",
    "DECODER",
    "SOURCE",
    "OddsApiFeed",
    "OddsDecoder",
    "PollSchedule",
    "american_to_decimal",
    "budget_spacing_s",
    "credits_per_call",
    "decimal_from",
    "decode_odds",
    "guess_odds_format",
    "odds_input",
]

SOURCE = "odds.theoddsapi"
BASE_URL = "https://api.the-odds-api.com"
SECRET_KEY = "odds_api_key"  # the key's name in the secrets file
DEFAULT_KEY_ENV = "POLYBOT_ODDS_API_KEY"
DAY_S = 86_400
NS = 1_000_000_000
BOOKMAKERS_PER_REGION = 10  # the API bills every group of up to 10 bookmakers as one region

OddsFormat = Literal["decimal", "american"]
_FORMATS = ("decimal", "american")
_ENDPOINT = re.compile(r"/v4/(?:historical/)?sports/[^/?#]+/(?:odds|events/[^/?#]+/odds)/?")
_SPORT = re.compile(r"[A-Za-z0-9_]+")
_PARAM_VALUE = re.compile(r"[A-Za-z0-9_.-]+")  # a region, market, bookmaker or event id

PosFloat = Annotated[float, msgspec.Meta(gt=0)]

# =============================================================================================
# prices
# =============================================================================================


_MAX_NUMBER = 2**53  # beyond it a JSON number is no price or line (and would overflow a float)


def _number(v: Any, what: str) -> float | int:
    """A finite JSON number of sane size (bool, str, None are refused)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what}: not a number: {v!r:.40}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{what}: not finite: {v!r}")
    if abs(v) > _MAX_NUMBER:
        raise ValueError(f"{what}: out of range: {v!r:.40}")
    return v


def american_to_decimal(american: int | float) -> float:
    """American odds -> decimal odds, exactly (computed as a fraction, rounded once):
    ``+x`` -> ``1 + x/100``, ``-x`` -> ``1 + 100/x``. Raises ``ValueError`` for anything that is
    not American odds (not a number, or ``|american| < 100``)."""
    v = _number(american, "price")
    a = Fraction(v) if isinstance(v, int) else Fraction(repr(v))  # 112.5 is 225/2, not its binary float
    if abs(a) < 100:
        raise ValueError(f"price: not American odds (|{v}| < 100)")
    return float(1 + a / 100) if a > 0 else float(1 + 100 / -a)


def decimal_from(price: Any, fmt: str) -> float:
    """A price in the API's ``oddsFormat`` (``decimal`` or ``american``) -> decimal odds (> 1).
    Raises ``ValueError`` naming the problem for a bad value (not a number, not finite, a
    decimal price <= 1.0, American odds under 100 in size) or an unknown format."""
    if fmt == "american":
        return american_to_decimal(price)
    if fmt != "decimal":
        raise ValueError(f"oddsFormat: unknown {fmt!r} (expected decimal or american)")
    v = float(_number(price, "price"))
    if not v > 1.0:
        raise ValueError(f"price: decimal odds must be above 1.0, got {price!r}")
    return v


def guess_odds_format(events: Any) -> OddsFormat:
    """The odds format of a bare body (no query says it): ``american`` when some price is an
    integral number with ``|price| >= 100`` and no price has a fractional part, else ``decimal``.
    """
    big_integral = False
    for ev in events if isinstance(events, list) else [events]:
        for price in _prices(ev):
            if isinstance(price, bool) or not isinstance(price, (int, float)):
                continue
            if isinstance(price, float) and not price.is_integer():
                return "decimal"  # a fractional price is never American
            if abs(price) >= 100:
                big_integral = True
    return "american" if big_integral else "decimal"


def _prices(ev: Any) -> list[Any]:
    out: list[Any] = []
    if not isinstance(ev, dict) or not isinstance(ev.get("bookmakers"), list):
        return out
    for bk in ev["bookmakers"]:
        if isinstance(bk, dict) and isinstance(bk.get("markets"), list):
            for mk in bk["markets"]:
                if isinstance(mk, dict) and isinstance(mk.get("outcomes"), list):
                    out.extend(o.get("price") for o in mk["outcomes"] if isinstance(o, dict))
    return out


# =============================================================================================
# the odds.theoddsapi input source
# =============================================================================================


class _Envelope(msgspec.Struct):
    """The envelope, or (``endpoint`` None) a bare event object read through the same decoder."""

    endpoint: str | None = None
    body: msgspec.Raw = msgspec.Raw()
    query: dict[str, Any] = {}


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def _is_key_param(name: str) -> bool:
    return name.lower().replace("_", "") == "apikey"


def odds_input(endpoint: str, query: Mapping[str, Any] | None, body: bytes) -> bytes:
    """The ``odds.theoddsapi`` message for one response: ``{"endpoint", "query", "body"}`` with
    ``body`` embedded verbatim (raw JSON) and any ``apiKey`` parameter dropped from ``query``.
    A body that is not JSON is embedded as a JSON string, so the line is always valid JSON (the
    decoder refuses such a message)."""
    if not _ENDPOINT.fullmatch(endpoint):
        raise ValueError(f"endpoint: not an odds endpoint: {endpoint!r:.80}")
    clean = {k: v for k, v in (query or {}).items() if not _is_key_param(str(k))}
    body = body.strip()
    try:
        msgspec.json.decode(body)
        raw: Any = msgspec.Raw(body)
    except msgspec.DecodeError:
        raw = body.decode("utf-8", "replace")
    return msgspec.json.encode({"endpoint": endpoint, "query": clean, "body": raw})


def _str(v: Any, what: str, required: bool = False) -> str:
    if v is None:
        v = ""
    if not isinstance(v, str):
        raise ValueError(f"{what}: not a string: {v!r:.40}")
    if required and not v:
        raise ValueError(f"{what}: missing")
    return v


def _time(v: Any, what: str) -> int:
    """An ISO time -> ns (0 when absent). ``dateFormat=unix`` (seconds) is read too."""
    if v is None or v == "":
        return 0
    if isinstance(v, str):
        try:
            return iso_to_ns(v)
        except ValueError:
            raise ValueError(f"{what}: not an ISO time: {v!r:.40}") from None
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**11:
        return v * NS
    raise ValueError(f"{what}: not a time: {v!r:.40}")


def _point(v: Any, what: str) -> float | None:
    if v is None:
        return None
    return float(_number(v, what))


def _needs_point(market: str) -> bool:
    return "spreads" in market or "totals" in market


def _body_events(body: Any) -> list[Any]:
    """The events of a body: an array (``/odds``), one event (``/events/{id}/odds``), or a
    historical snapshot (``{"timestamp", "data": [...]}``)."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, list):
            return data
        if isinstance(data, dict):
            return [data]
        if "bookmakers" in body or "id" in body:
            return [body]
        if "message" in body:
            raise ValueError(f"body: error response: {str(body['message'])[:160]}")
    raise ValueError(f"body: neither an array of events nor an event ({type(body).__name__})")


def _event_quotes(ev: Any, i: int, fmt: str, ts: int, feed: str, out: list[OddsQuote], bad: list[str]) -> None:
    """Append the quotes of one event to ``out`` and a description of each skipped part to ``bad``."""
    if not isinstance(ev, dict):
        bad.append(f"[{i}]: not an object")
        return
    try:
        event_id = _str(ev.get("id"), "id", required=True)
        sport = _str(ev.get("sport_key"), "sport_key")
        home = _str(ev.get("home_team"), "home_team")
        away = _str(ev.get("away_team"), "away_team")
        commence = _time(ev.get("commence_time"), "commence_time")
        books = ev.get("bookmakers")
        if books is None:
            books = []
        if not isinstance(books, list):
            raise ValueError("bookmakers: not an array")
    except ValueError as exc:
        bad.append(f"[{i}] {str(ev.get('id'))[:40]}: {exc}")
        return
    for bk in books:
        where = event_id
        try:
            if not isinstance(bk, dict):
                raise ValueError("bookmaker: not an object")
            book = _str(bk.get("key"), "bookmaker.key", required=True)
            where = f"{event_id}/{book}"
            try:
                book_update: int | ValueError = _time(bk.get("last_update"), "bookmaker.last_update")
            except ValueError as exc:
                book_update = exc  # only fatal for a market without its own last_update
            markets = bk.get("markets")
            if not isinstance(markets, list):
                raise ValueError("markets: not an array")
        except ValueError as exc:
            bad.append(f"{where}: {exc}")
            continue
        for mk in markets:
            mwhere = where
            try:
                if not isinstance(mk, dict):
                    raise ValueError("market: not an object")
                market = _str(mk.get("key"), "market.key", required=True)
                mwhere = f"{where}/{market}"
                updated = _time(mk.get("last_update"), "market.last_update")
                if not updated:
                    if isinstance(book_update, ValueError):
                        raise book_update
                    updated = book_update
                outcomes = mk.get("outcomes")
                if not isinstance(outcomes, list):
                    raise ValueError("outcomes: not an array")
            except ValueError as exc:
                bad.append(f"{mwhere}: {exc}")
                continue
            need_point = _needs_point(market)
            for o in outcomes:
                owhere = mwhere
                try:
                    if not isinstance(o, dict):
                        raise ValueError("outcome: not an object")
                    name = _str(o.get("name"), "outcome.name", required=True)
                    owhere = f"{mwhere}/{name}"
                    desc = _str(o.get("description"), "outcome.description")
                    point = _point(o.get("point"), "point")
                    if point is None and need_point:
                        raise ValueError("point: missing")
                    price = decimal_from(o.get("price"), fmt)
                except ValueError as exc:
                    bad.append(f"{owhere}: {exc}")
                    continue
                out.append(OddsQuote(
                    ts=ts, event_id=event_id, bookmaker=book, market=market,
                    outcome=f"{name} ({desc})" if desc else name, price=price, point=point,
                    sport=sport, home=home, away=away, commence_ts=commence, last_update_ts=updated, feed=feed,
                ))  # fmt: skip


def decode_odds(msg: bytes, ts: int, feed: str = SOURCE) -> tuple[list[OddsQuote], list[str]]:
    """An ``odds.theoddsapi`` message (an envelope, or a bare body) -> (quotes, what was
    skipped). Raises ``msgspec.DecodeError`` (not JSON) or ``ValueError`` (not an odds message)."""
    events, fmt = _read(msg)
    out: list[OddsQuote] = []
    bad: list[str] = []
    for i, ev in enumerate(events):
        _event_quotes(ev, i, fmt, ts, feed, out, bad)
    return out, bad


def _read(msg: bytes) -> tuple[list[Any], str]:
    """(the events, the odds format) of an envelope or a bare body."""
    env = _ENVELOPE.decode(msg) if msg.lstrip()[:1] == b"{" else None
    if env is None or env.endpoint is None:
        events = _body_events(msgspec.json.decode(msg))
        return events, guess_odds_format(events)
    if not _ENDPOINT.fullmatch(env.endpoint):
        raise ValueError(f"endpoint: not an odds endpoint: {env.endpoint!r:.80}")
    if not bytes(env.body):
        raise ValueError("body: missing")
    fmt = env.query.get("oddsFormat", "decimal")
    if fmt not in _FORMATS:
        raise ValueError(f"query.oddsFormat: unknown {fmt!r:.40} (expected decimal or american)")
    return _body_events(msgspec.json.decode(env.body)), fmt


def _newest_update(events: list[Any]) -> int:
    newest = 0
    for ev in events:
        if not isinstance(ev, dict) or not isinstance(ev.get("bookmakers"), list):
            continue
        for bk in ev["bookmakers"]:
            if not isinstance(bk, dict):
                continue
            stamps = [bk.get("last_update")]
            if isinstance(bk.get("markets"), list):
                stamps += [m.get("last_update") for m in bk["markets"] if isinstance(m, dict)]
            for s in stamps:
                try:
                    newest = max(newest, _time(s, "last_update"))
                except ValueError:
                    pass
    return newest


class OddsDecoder:
    """The ``odds.theoddsapi`` source. Pure: the same message gives the same quotes, live or in
    replay. Bad outcomes are skipped: the good quotes come back inside a
    :class:`~polybot.kernel.FrameError` (reason ``bad_value``), which the kernel publishes and
    counts as one drop; a message with no usable structure raises ``ValueError``."""

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        out, bad = decode_odds(msg, ts)
        if bad:
            more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
            raise FrameError(f"{len(bad)} bad odds value(s) skipped: {'; '.join(bad[:3])}{more}",
                             reason="bad_value", events=out)  # fmt: skip
        return out

    __call__ = decode

    def bare_ts(self, msg: bytes) -> int | None:
        """The time of a bare body (for recordings without receive times): its newest
        ``last_update`` (ns), or None."""
        try:
            events = _read(msg)[0]
        except (msgspec.DecodeError, ValueError):
            return None
        return _newest_update(events) or None


DECODER = OddsDecoder()

# =============================================================================================
# credits and scheduling
# =============================================================================================


def credits_per_call(markets: Sequence[str], regions: Sequence[str], bookmakers: Sequence[str] = ()) -> int:
    """What one ``/odds`` call costs: markets x regions, where given bookmakers replace the
    regions, each group of up to 10 bookmakers counting as one region."""
    units = math.ceil(len(bookmakers) / BOOKMAKERS_PER_REGION) if bookmakers else len(regions)
    return len(markets) * units


def budget_spacing_s(cost: int, budget_per_day: float) -> float:
    """The least time (s) between two calls of ``cost`` credits that keeps a day's spend within
    ``budget_per_day``: ``86400 * cost / budget_per_day``."""
    if budget_per_day <= 0:
        raise ValueError(f"budget_per_day: must be positive, got {budget_per_day!r}")
    return DAY_S * cost / budget_per_day


@attrs.define
class PollSchedule:
    """When to poll which sport (times in seconds on any monotonic clock).

    Each sport is polled at most every ``interval_s``; any two requests are at least
    ``spacing_s`` apart (the budget); :meth:`hold` delays everything (backoff). The next sport is
    the one due first; ties go round-robin, starting after the last one requested, so a sport
    whose poll failed (still due) does not starve the others.
    """

    sports: list[str]
    interval_s: float
    spacing_s: float
    due: dict[str, float] = attrs.Factory(dict)
    not_before: float = -math.inf
    _rr: int = 0

    def start(self, now: float) -> None:
        """Every sport due now."""
        self.due = dict.fromkeys(self.sports, now)
        self.not_before = now
        self._rr = 0

    def next(self) -> tuple[str, float]:
        """The sport to poll next and the earliest time it may be requested."""
        if not self.sports:
            raise LookupError("no sport to poll")
        n = len(self.sports)
        best = ""
        for k in range(n):
            s = self.sports[(self._rr + k) % n]
            if not best or self.due.get(s, -math.inf) < self.due.get(best, -math.inf):
                best = s
        return best, max(self.due.get(best, -math.inf), self.not_before)

    def requested(self, sport: str, at: float, ok: bool) -> None:
        """A request for ``sport`` went out at ``at``: the budget spacing applies from there; a
        successful poll also makes the sport wait ``interval_s``."""
        self.not_before = max(self.not_before, at + self.spacing_s)
        if ok:
            self.due[sport] = at + self.interval_s
        if sport in self.sports:
            self._rr = (self.sports.index(sport) + 1) % len(self.sports)

    def hold(self, until: float) -> None:
        """No request before ``until`` (backoff)."""
        self.not_before = max(self.not_before, until)

    def remove(self, sport: str) -> None:
        if sport in self.sports:
            i = self.sports.index(sport)
            self.sports.remove(sport)
            self.due.pop(sport, None)
            if self.sports:
                self._rr = (self._rr - (1 if i < self._rr else 0)) % len(self.sports)
            else:
                self._rr = 0


# =============================================================================================
# the feed
# =============================================================================================


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    v = headers.get(name)
    if v is None:
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return int(f) if math.isfinite(f) else None


def _retry_after(value: str | None) -> float:
    try:
        v = float(value) if value else 0.0
    except ValueError:
        return 0.0
    return v if math.isfinite(v) and v > 0 else 0.0


@attrs.frozen
class _Reply:
    """One request's outcome, never an exception (an exception's traceback could hold the
    request URL, hence the key). ``kind`` is "" for a 200 with a JSON body."""

    status: int = 0
    body: bytes = b""
    kind: str = ""
    detail: str = ""
    remaining: int | None = None
    used: int | None = None
    last: int | None = None
    retry_after: float = 0.0


#: the failure kinds retried after a backoff (429, 5xx, no answer, 3xx, a 200 that is not JSON)
_RETRYABLE = ("rate_limited", "server", "timeout", "transport", "redirect", "bad_body")


class OddsApiFeed(Feed):
    """Polls The Odds API for each sport in turn and sends every successful response through
    the kernel's door as one ``odds.theoddsapi`` input (see the module docstring)."""

    kind = "theoddsapi"

    class Params(StrategyParams):
        #: sport keys, e.g. ["basketball_nba", "soccer_epl"] ("upcoming": the next games of any sport)
        sports: list[str]
        base_url: str = BASE_URL
        regions: list[str] = msgspec.field(default_factory=lambda: ["us"])
        markets: list[str] = msgspec.field(default_factory=lambda: ["h2h"])
        odds_format: Literal["decimal", "american"] = "decimal"
        #: bookmaker keys; when given they are sent instead of the regions (10 count as one region)
        bookmakers: list[str] = []
        event_ids: list[str] = []
        #: least seconds between two polls of one sport
        interval_s: PosFloat = 60.0
        #: credits the feed may spend a day (sets the least spacing of any two requests)
        budget_per_day: Annotated[int, msgspec.Meta(gt=0)] = 500
        #: stop polling when the month's remaining credits would fall below this
        min_remaining: Annotated[int, msgspec.Meta(ge=0)] = 10
        stale_s: PosFloat = 600.0
        timeout_s: PosFloat = 20.0
        backoff_initial_s: PosFloat = 5.0
        backoff_max_s: PosFloat = 300.0
        source: str = SOURCE
        api_key_env: str = DEFAULT_KEY_ENV
        #: a placeholder key for the local simulator (which accepts any key): allowed only with
        #: a loopback base_url, so a real key never has to be written into a config file
        demo_key: str = ""

    def __init__(
        self,
        name: str = "theoddsapi",
        params: Any = None,
        *,
        api_key: str | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        monotonic: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``sleep`` and ``monotonic`` (seconds) default to anyio's; a test may pass a fake
        pair to run the schedule without waiting."""
        if params is None:
            raise ValueError(f"odds feed {name!r}: params.sports: required key is missing")
        params = typed_params(self.Params, f"odds feed {name!r}", params)
        _validate(name, params)
        super().__init__(name, params)
        p = params
        self.cost = credits_per_call(p.markets, p.regions, p.bookmakers)
        self.spacing_s = budget_spacing_s(self.cost, p.budget_per_day)
        self.schedule = PollSchedule(list(dict.fromkeys(p.sports)), p.interval_s, self.spacing_s)
        self.query: dict[str, str] = _query(p)
        self._key = ""
        self._scrubs: tuple[str, ...] = ()
        if api_key is not None:
            self.set_api_key(api_key)
        self._sleep = sleep or anyio.sleep
        self._monotonic = monotonic or anyio.current_time
        self._rng = rng or random.Random()
        self.stats: dict[str, Any] = {
            "requests": 0, "polls": 0, "bytes": 0, "credits_used": 0, "last_cost": None,
            "remaining": None, "used": None, "errors": Counter(), "connects": 0, "disconnects": 0,
            "stale": 0, "dropped_sports": [], "stopped": "",
        }  # fmt: skip
        self._up = False  # last poll succeeded
        self._down = False  # a FeedDisconnected is the last health event sent
        self._stale_sent = False
        self._last_ok = 0.0
        if p.bookmakers:
            logger.info("odds feed {}: {} bookmaker(s) given: they are sent instead of params.regions",
                        name, len(p.bookmakers))  # fmt: skip
        if self.cost > p.budget_per_day:
            logger.warning("odds feed {}: one call costs {} credits, more than budget_per_day {}: one request "
                           "every {:.1f} h", name, self.cost, p.budget_per_day, self.spacing_s / 3600)  # fmt: skip
        gap = max(self.spacing_s, p.interval_s / len(self.schedule.sports))  # between two requests
        if p.stale_s < gap:
            logger.warning("odds feed {}: stale_s {} is shorter than the time between two requests ({:.0f} s with "
                           "the budget): FeedStale will be reported between polls", name, p.stale_s, gap)  # fmt: skip

    # ------------------------------------------------------------------------------ the key

    def set_api_key(self, key: str) -> None:
        """Use ``key`` (from a secret store; never logged)."""
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{SECRET_KEY}: empty")
        key = key.strip()
        if any(c.isspace() or ord(c) < 32 for c in key):
            raise ValueError(f"{SECRET_KEY}: contains whitespace or control characters")
        self._key = key
        self._scrubs = tuple(dict.fromkeys((key, quote(key, safe=""), quote(key))))

    @property
    def has_api_key(self) -> bool:
        return bool(self._key)

    def configure(self, cfg: Config, env: Mapping[str, str] | None = None) -> None:
        """Read the API key (called by the daemon with the loaded config): the environment
        variable ``params.api_key_env`` first, then the secrets (``odds_api_key`` in the secrets
        file, or ``POLYBOT_ODDS_API_KEY``). Raises ``ValueError`` when there is none."""
        env = dict(os.environ) if env is None else dict(env)
        var = self.params.api_key_env
        key = env.get(var) or load_secrets(cfg, env).get(SECRET_KEY) or self.params.demo_key
        if not key:
            also = f" (or {DEFAULT_KEY_ENV})" if var != DEFAULT_KEY_ENV else ""
            raise ValueError(f"{SECRET_KEY}: missing: set the environment variable {var}{also}, or put "
                             f"{SECRET_KEY} in the secrets file named by [secrets] file")  # fmt: skip
        self.set_api_key(key)

    def _scrub(self, text: str) -> str:
        for s in self._scrubs:
            text = text.replace(s, "***")
        return text

    # ------------------------------------------------------------------------------ running

    async def run(self, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        p = self.params
        session: aiohttp.ClientSession | None = None
        try:
            async with send:
                if not self._key:  # not configured (a bare run): the environment only
                    key = os.environ.get(p.api_key_env) or os.environ.get(DEFAULT_KEY_ENV)
                    try:
                        if key:
                            self.set_api_key(key)
                    except ValueError as exc:  # the message names the problem, never the key
                        logger.error("odds feed {}: {}", self.name, exc)
                if not self._key:
                    self.stats["stopped"] = "no_key"
                    logger.error("odds feed {}: no usable API key ({} / {}): not polling",
                                 self.name, SECRET_KEY, p.api_key_env)  # fmt: skip
                    await self._health(send, clock, FeedDisconnected, f"no API key ({SECRET_KEY} missing)")
                    return
                session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=p.timeout_s),
                                                headers={"Accept": "application/json"})  # fmt: skip
                logger.info("odds feed {}: polling {} sport(s) at {} ({} credit(s) a call, one call per sport "
                            "every >= {:.0f} s, any two >= {:.1f} s apart for {} credits/day)",
                            self.name, len(self.schedule.sports), p.base_url, self.cost, p.interval_s,
                            self.spacing_s, p.budget_per_day)  # fmt: skip
                await self._loop(session, send, clock)
        except BaseException as exc:
            if not _door_closed(exc):
                raise
            logger.info("odds feed {}: the kernel's input stream is closed; stopping", self.name)
        finally:
            if session is not None:
                with anyio.CancelScope(shield=True):
                    await session.close()
            s = self.stats
            logger.info("odds feed {}: stopped{}: {} polls in {} requests, {} credits used, {} remaining, errors {}",
                        self.name, f" ({s['stopped']})" if s["stopped"] else "", s["polls"], s["requests"],
                        s["credits_used"], s["remaining"], dict(s["errors"]))  # fmt: skip

    async def _loop(self, session: aiohttp.ClientSession, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        p = self.params
        sched = self.schedule
        now = self._monotonic()
        sched.start(now)
        self._last_ok = now
        backoff = p.backoff_initial_s
        while True:
            if not sched.sports:
                self.stats["stopped"] = "no_sports"
                logger.error("odds feed {}: no sport left to poll (every one was refused): stopping", self.name)
                await self._health(send, clock, FeedDisconnected, "no sport left to poll")
                return
            sport, at = sched.next()
            now = self._monotonic()
            if at > now:
                wake = at if self._stale_sent else min(at, self._last_ok + p.stale_s)
                if wake > now:
                    await self._sleep(wake - now)
                    now = self._monotonic()
                await self._check_stale(now, send, clock)
                if at > now:
                    continue
            reply = await self._fetch(session, sport)
            now = self._monotonic()
            self.stats["requests"] += 1
            self._usage(reply)
            ok = reply.status == 200 and not reply.kind
            sched.requested(sport, now, ok)
            if ok:
                backoff = p.backoff_initial_s
                await self._success(sport, reply, send, clock, now)
            elif reply.status == 401:
                self.stats["errors"]["unauthorized"] += 1
                self.stats["stopped"] = "unauthorized"
                logger.error("odds feed {}: HTTP 401 from The Odds API: the key was rejected or its usage quota is "
                             "used up ({}); stopping", self.name, reply.detail)  # fmt: skip
                await self._health(send, clock, FeedDisconnected, f"unauthorized: {reply.detail}")
                return
            elif reply.kind in _RETRYABLE:
                self.stats["errors"][reply.kind] += 1
                delay = min(max(reply.retry_after, backoff / 2 + self._rng.uniform(0, backoff / 2)), p.backoff_max_s)
                backoff = min(backoff * 2, p.backoff_max_s)
                sched.hold(now + delay)
                logger.warning("odds feed {}: {} {}: {}; next request in >= {:.1f} s", self.name, sport,
                               reply.kind, reply.detail, max(delay, sched.not_before - now))  # fmt: skip
                if not self._down:
                    await self._health(send, clock, FeedDisconnected, f"{sport}: {reply.kind}: {reply.detail}")
            else:  # 400/403/404/422...: this request cannot succeed as it is
                self.stats["errors"]["bad_request"] += 1
                self.stats["dropped_sports"].append(sport)
                sched.remove(sport)
                logger.error("odds feed {}: sport {!r} refused (HTTP {}: {}); it is no longer polled",
                             self.name, sport, reply.status, reply.detail)  # fmt: skip
            if self._quota_low():
                self.stats["stopped"] = "quota"
                logger.error("odds feed {}: {} credit(s) left this month, min_remaining {}, a call costs {}: "
                             "stopping polling (quota)", self.name, self.stats["remaining"], p.min_remaining,
                             self.cost)  # fmt: skip
                await self._health(send, clock, FeedStale, "quota", age_ns=int(max(0.0, now - self._last_ok) * NS))
                return
            await self._check_stale(now, send, clock)

    async def _success(self, sport: str, reply: _Reply, send: ObjectSendStream[InboundRecord], clock: Clock,
                       now: float) -> None:  # fmt: skip
        endpoint = f"/v4/sports/{sport}/odds"
        msg = odds_input(endpoint, self.query, reply.body)
        ts = clock.now()
        await send.send(InboundRecord(ts, self.params.source, msg))
        self.stats["polls"] += 1
        self.stats["bytes"] += len(reply.body)
        self._last_ok = now
        if not self._up or self._stale_sent:
            left = f", {reply.remaining} credits left" if reply.remaining is not None else ""
            await self._health(send, clock, FeedConnected, f"{sport}: HTTP 200{left}")

    def _usage(self, reply: _Reply) -> None:
        s = self.stats
        if reply.remaining is not None:
            s["remaining"] = reply.remaining
        if reply.used is not None:
            s["used"] = reply.used
        if reply.last is not None:
            s["last_cost"] = reply.last
            s["credits_used"] += max(0, reply.last)

    def _quota_low(self) -> bool:
        r = self.stats["remaining"]
        return r is not None and r - self.cost < self.params.min_remaining

    async def _check_stale(self, now: float, send: ObjectSendStream[InboundRecord], clock: Clock) -> None:
        age = now - self._last_ok
        if self._stale_sent or age < self.params.stale_s:
            return
        logger.warning("odds feed {}: no successful poll for {:.0f} s", self.name, age)
        await self._health(send, clock, FeedStale, f"no successful poll for {age:.0f} s", age_ns=int(age * NS))

    async def _health(self, send: ObjectSendStream[InboundRecord], clock: Clock, cls: type, detail: str,
                      **extra: Any) -> None:  # fmt: skip
        ts = clock.now()
        detail = self._scrub(detail)[:300]
        if cls is FeedConnected:
            self._up, self._down, self._stale_sent = True, False, False
            self.stats["connects"] += 1
            logger.info("odds feed {}: connected ({})", self.name, detail)
        elif cls is FeedDisconnected:
            self._up, self._down = False, True
            self.stats["disconnects"] += 1
        elif cls is FeedStale:
            self._stale_sent = True
            self.stats["stale"] += 1
        await send.send(InboundRecord(ts, "events", cls(ts=ts, feed=self.name, detail=detail, **extra)))

    async def _fetch(self, session: aiohttp.ClientSession, sport: str) -> _Reply:
        """One ``GET /v4/sports/{sport}/odds``. Never raises (except cancellation): every failure
        is a :class:`_Reply` whose detail has the key scrubbed."""
        p = self.params
        url = f"{p.base_url.rstrip('/')}/v4/sports/{sport}/odds"
        started = time.monotonic()
        try:
            async with session.get(url, params={"apiKey": self._key, **self.query}, allow_redirects=False) as resp:
                body = await resp.read()
                h = resp.headers
                usage = {"remaining": _header_int(h, "x-requests-remaining"), "used": _header_int(h, "x-requests-used"),
                         "last": _header_int(h, "x-requests-last")}  # fmt: skip
                status = resp.status
                retry = _retry_after(h.get("Retry-After"))
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return _Reply(kind="timeout", detail=f"no answer within {time.monotonic() - started:.1f} s")
        except Exception as exc:  # noqa: BLE001 - any transport failure is retried; the feed lives on
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return _Reply(kind="transport", detail=self._scrub(text)[:300])
        if status == 200:
            try:
                msgspec.json.decode(body)
            except msgspec.DecodeError:
                return _Reply(200, body, "bad_body", "the 200 response is not JSON", **usage)
            return _Reply(200, body, "", "", **usage)
        detail = self._scrub(f"HTTP {status}: {_error_message(body)}")
        if status == 429:
            kind = "rate_limited"
        elif status >= 500:
            kind = "server"
        elif 300 <= status < 400:
            kind = "redirect"
        else:
            kind = "refused"  # 401 and the other 4xx: handled by status
        return _Reply(status, b"", kind, detail, retry_after=retry, **usage)


def _error_message(body: bytes) -> str:
    """The API's error text: ``{"message": ...}`` (plus ``error_code``), else the body's start."""
    try:
        obj = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(obj, dict) and obj.get("message") is not None:
        code = obj.get("error_code")
        return f"{str(obj['message'])[:240]}{f' ({code})' if isinstance(code, str) and code else ''}"
    return body[:200].decode("utf-8", "replace").strip()


def _query(p: Any) -> dict[str, str]:
    """The request's query without the key (also what is journaled)."""
    q: dict[str, str] = {}
    if p.bookmakers:
        q["bookmakers"] = ",".join(p.bookmakers)
    else:
        q["regions"] = ",".join(p.regions)
    q["markets"] = ",".join(p.markets)
    q["oddsFormat"] = p.odds_format
    q["dateFormat"] = "iso"
    if p.event_ids:
        q["eventIds"] = ",".join(p.event_ids)
    return q


def _validate(name: str, p: Any) -> None:
    """Bounds the type system does not enforce on a directly built Params; errors name the field."""
    where = f"odds feed {name!r}: params"

    def bad(field: str, what: str) -> ValueError:
        return ValueError(f"{where}.{field} {what}, got {getattr(p, field)!r:.120}")

    if not p.sports:
        raise bad("sports", "must name at least one sport key (e.g. basketball_nba)")
    for i, s in enumerate(p.sports):
        if not isinstance(s, str) or not _SPORT.fullmatch(s):
            raise ValueError(f"{where}.sports[{i}] must be a sport key (letters, digits, _), got {s!r:.60}")
    for field in ("regions", "markets", "bookmakers", "event_ids"):
        for i, v in enumerate(getattr(p, field)):
            if not isinstance(v, str) or not _PARAM_VALUE.fullmatch(v):
                raise ValueError(f"{where}.{field}[{i}] must be a key (letters, digits, _ . -), got {v!r:.60}")
    if not p.markets:
        raise bad("markets", "must name at least one market (h2h, spreads, totals, ...)")
    if not p.regions and not p.bookmakers:
        raise bad("regions", "must name at least one region (us, uk, eu, au) unless bookmakers are given")
    if p.odds_format not in _FORMATS:
        raise bad("odds_format", "must be decimal or american")
    for f in ("interval_s", "stale_s", "timeout_s", "backoff_initial_s", "backoff_max_s"):
        v = getattr(p, f)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise bad(f, "must be a positive number of seconds")
    if p.backoff_max_s < p.backoff_initial_s:
        raise bad("backoff_max_s", f"must be >= backoff_initial_s ({p.backoff_initial_s})")
    if isinstance(p.budget_per_day, bool) or not isinstance(p.budget_per_day, int) or p.budget_per_day < 1:
        raise bad("budget_per_day", "must be a whole number of credits >= 1")
    if isinstance(p.min_remaining, bool) or not isinstance(p.min_remaining, int) or p.min_remaining < 0:
        raise bad("min_remaining", "must be a whole number of credits >= 0")
    if not isinstance(p.base_url, str) or not p.base_url.startswith(("http://", "https://")):
        raise bad("base_url", "must be an http:// or https:// URL")
    if "?" in p.base_url or "#" in p.base_url:
        raise bad("base_url", "must not carry a query or fragment")
    try:
        check_source(p.source)
    except ValueError:
        raise bad("source", "must be a source name (letters, digits, _ . : -)") from None
    if p.demo_key and urllib.parse.urlsplit(p.base_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise bad("demo_key", "is for the local simulator only (a loopback base_url); put a real key in "
                              f"the environment ({DEFAULT_KEY_ENV}) or the secrets file")
    if not isinstance(p.api_key_env, str) or not p.api_key_env:
        raise bad("api_key_env", "must name an environment variable")
