"""The market catalog from Gamma (PROTOCOL.md §4), CLOB ``/clob-markets`` (§3.1) and ``new_market`` (§1.6).

Pure normalisers turn each venue shape into :class:`polybot.events.MarketInfo` (exact base
units, ns timestamps); :data:`DECODER` is the kernel input source ``polymarket.gamma``; the
async :class:`GammaClient` fetches (bounded, jittered retries) and keeps the raw bodies so the
daemon can journal exactly what the API returned (:func:`gamma_input`); :func:`resolve_markets`
turns "what to trade" (slugs, ids, tags, series) into markets; :func:`filter_markets` selects.

Conventions and assumptions:

* Numbers may arrive as JSON floats (``0.01``), strings (``"0.04"``) or ints; they are converted
  from their decimal text, never through ``float * 1e6``. More than 6 decimals is refused.
* ``tick_size``/``min_order_size`` in base units (0.01 -> 10_000; 5 shares -> 5_000_000);
  fee ``rate``/``rebateRate`` in millionths (0.07 -> 70_000).
* ``fees`` is ``None`` when the market says fees are disabled (or does not say), and also when
  fees are enabled but no schedule is given (seen in a 2026-03 Gamma object): unknown, not zero.
* ``series``: recurring crypto up/down markets get a name derived from their slug, the same
  whatever the source (``btc-updown-15m-1791241200`` -> ``btc-updown-15m``; the hourly
  ``bitcoin-up-or-down-october-5-7pm-et`` -> ``btc-updown-1h``); other markets take their
  event's ``seriesSlug`` (Gamma names the 15m series ``btc-up-or-down-15m``; the slug-derived
  name wins so that one name selects a series everywhere).
* ``start_ts`` is Gamma ``startDate`` (when the market was listed), not the window start of a
  recurring market (``eventStartTime``; for those, the slug suffix).
* Hourly crypto slugs (``bitcoin-up-or-down-<month>-<day>-<h><am|pm>-et``, hour in US Eastern
  time, window start) are as seen on public Gamma mirrors for Feb 2026; 4h windows
  (``btc-updown-4h-<start>``) start on 4-hour boundaries of US Eastern time. US DST is computed
  with the post-2007 rule, without a tz database.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import aiohttp
import anyio
import attrs
import msgspec
from loguru import logger

from polybot.clock import iso_to_ns
from polybot.events import Event, FeeSchedule, MarketInfo, SportsMarket
from polybot.kernel import FrameError
from polybot.units import SCALE, json_units

GAMMA_URL = "https://gamma-api.polymarket.com"
CLOB_URL = "https://clob.polymarket.com"
SOURCE = "polymarket.gamma"
NS = 1_000_000_000
CHUNK = 100  # ids per /markets call (Gamma accepts about 100)

_ANY = msgspec.json.Decoder(float_hook=Decimal)  # floats keep their exact decimal text

# =============================================================================================
# value helpers (every error names the field)
# =============================================================================================


def _int(v: Any, field: str) -> int:
    u = json_units(v, field)
    if u % SCALE:
        raise ValueError(f"{field}: not an integer: {v!r}")
    return u // SCALE


def _bool(v: Any, field: str, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise ValueError(f"{field}: not a boolean: {v!r}")


def _str(v: Any, field: str) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    raise ValueError(f"{field}: not a string: {v!r}")


def _list(v: Any, field: str) -> list[Any]:
    """A real array or a JSON-encoded one (Gamma's ``outcomes``/``clobTokenIds``)."""
    if v is None or v == "":
        return []
    if isinstance(v, str):
        try:
            v = msgspec.json.decode(v)
        except msgspec.DecodeError:
            raise ValueError(f"{field}: not a JSON array: {v[:60]!r}") from None
    if not isinstance(v, list):
        raise ValueError(f"{field}: not an array: {v!r:.60}")
    return v


def _ids(v: Any, field: str) -> tuple[str, ...]:
    out = []
    for x in _list(v, field):
        if isinstance(x, int) and not isinstance(x, bool) and x >= 0:
            x = str(x)
        if not isinstance(x, str) or not x.isdigit():
            raise ValueError(f"{field}: bad token id {x!r:.40}")
        out.append(x)
    return tuple(out)


def _strs(v: Any, field: str) -> tuple[str, ...]:
    out = []
    for x in _list(v, field):
        if not isinstance(x, str):
            raise ValueError(f"{field}: not a string: {x!r:.40}")
        out.append(x)
    return tuple(out)




def _ts(v: Any, field: str) -> int:
    if v is None or v == "":
        return 0
    if not isinstance(v, str):
        raise ValueError(f"{field}: not a time: {v!r}")
    try:
        return iso_to_ns(v)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def _tick(v: Any, field: str) -> int:
    if v is None or v == "":
        return 10_000
    t = json_units(v, field)
    if not 0 < t < SCALE:
        raise ValueError(f"{field}: tick size outside (0, 1): {v!r}")
    return t


def _min_size(v: Any, field: str) -> int:
    if v is None or v == "":
        return 5_000_000
    s = json_units(v, field)
    if s < 0:
        raise ValueError(f"{field}: negative: {v!r}")
    return s


def _fees(sched: Any, enabled: Any, field: str, keys: tuple[str, str, str, str | None]) -> FeeSchedule | None:
    """``keys`` = names of (rate, exponent, taker_only, rebate) in this shape (rebate: if any)."""
    if not _bool(enabled, field + "Enabled", False) or sched is None:
        return None
    if not isinstance(sched, dict):
        raise ValueError(f"{field}: not an object: {sched!r:.60}")
    r, e, to, rb = keys
    rate = json_units(sched.get(r, 0), f"{field}.{r}")
    rebate = json_units(sched.get(rb) or 0, f"{field}.{rb}") if rb else 0
    if rate < 0 or not 0 <= rebate <= SCALE:
        raise ValueError(f"{field}: rate/rebate out of range: {sched!r:.80}")
    exp = sched.get(e)
    return FeeSchedule(
        rate_ppm=rate,
        exponent=1 if exp is None else _int(exp, f"{field}.{e}"),
        taker_only=_bool(sched.get(to), f"{field}.{to}", True),
        rebate_ppm=rebate,
    )


def _tags(*sources: Any) -> tuple[str, ...]:
    """Tag slugs (objects) or names (strings), deduplicated, first seen first."""
    out: dict[str, None] = {}
    for src in sources:
        if not isinstance(src, list):
            continue
        for t in src:
            if isinstance(t, dict):
                t = t.get("slug") or t.get("label")
            if isinstance(t, str) and t:
                out.setdefault(t, None)
    return tuple(out)


def _game_ts(v: Any, field: str) -> int:
    """A game start time: ISO-8601 (``eventStartTime``) or Gamma's SQL-style
    ``"2026-04-05 15:10:00+00"`` (``gameStartTime``)."""
    if isinstance(v, str) and len(v) >= 19 and v[10] == " ":
        t = v[:10] + "T" + v[11:]
        if t.endswith("+00"):
            t = t[:-3] + "Z"
        elif t[-3] in "+-" and t[-2:].isdigit():
            t += ":00"
        return _ts(t, field)
    return _ts(v, field)


def _line(v: Any, field: str) -> float | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise ValueError(f"{field}: not a number: {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: not a number: {v!r}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"{field}: not a finite number: {v!r}")
    return x


_VS = re.compile(r"\s+(?:vs\.?|v\.?|@)\s+", re.IGNORECASE)


def _league_of_slug(slug: str) -> str:
    """The league prefix of a sports event slug (``"bkseriea-oli-rey-2026-06-13"`` ->
    ``"bkseriea"``); "" when the slug does not look like ``<league>-<a>-<b>-<date>``."""
    m = re.fullmatch(r"([a-z0-9]+)-[a-z0-9]+-[a-z0-9]+-\d{4}-\d{2}-\d{2}", slug)
    return m.group(1) if m else ""


def split_teams(title: str) -> tuple[str, ...]:
    """The two sides of an event title: ``"Olimpia Milano vs. Reyer Venezia"`` and
    ``"Counter-Strike: FaZe vs illwill (BO3) - HLC Belgrade Pro Playoffs"`` -> the two names
    (a ``"<game>: "`` prefix, a ``" (BO3)"`` note and a ``" - <tournament>"`` suffix are cut).
    Anything else -> ``()``: the join then relies on ids and the outcomes."""
    parts = _VS.split(title.strip())
    if len(parts) != 2:
        return ()
    a, b = parts
    if ": " in a:
        a = a.rsplit(": ", 1)[1]
    b = b.split(" - ", 1)[0]
    b = re.sub(r"\s*\([^)]*\)\s*$", "", b)
    a, b = a.strip(), b.strip()
    return (a, b) if a and b else ()


def _sports(kind: Any, game_id: Any, line: Any, start: Any, delay: Any, league: str, title: str,
            item_title: Any, prefix: str) -> SportsMarket | None:  # fmt: skip
    """The sports fields of a market (None for a market that is not a sports market)."""
    mtype = _str(kind, prefix + "sportsMarketType")
    gid = game_id if not isinstance(game_id, (int, float)) or isinstance(game_id, bool) else str(int(game_id))
    gid = _str(gid, prefix + "gameId")
    if not mtype and not gid:
        return None
    d = 0 if delay is None or delay == "" else json_units(delay, prefix + "secondsDelay") // 1000
    if d < 0:
        raise ValueError(f"{prefix}secondsDelay: negative: {delay!r}")
    return SportsMarket(
        game_id=gid,
        market_type=mtype,
        line=_line(line, prefix + "line"),
        start_ts=start,
        delay_ms=d,
        league=league,
        teams=split_teams(title),
        title=_str(item_title, prefix + "groupItemTitle"),
    )


# =============================================================================================
# series: recurring crypto up/down markets
# =============================================================================================

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")  # fmt: skip
#: short asset -> the name the hourly slugs use
ASSET_NAMES = {"btc": "bitcoin", "eth": "ethereum", "sol": "solana", "xrp": "xrp"}
_NAME_ASSETS = {v: k for k, v in ASSET_NAMES.items()}
#: window length (s) by the duration token of ``<asset>-updown-<dur>``
DURATIONS = {"5m": 300, "15m": 900, "1h": 3600, "4h": 14_400}
_ET_ALIGNED = frozenset({"1h", "4h"})  # windows on US Eastern hour boundaries

_UPDOWN = re.compile(r"([a-z0-9]+)-updown-(\d+[mhd])-(\d{9,11})")
_HOURLY = re.compile(r"([a-z0-9]+)-up-or-down-(" + "|".join(_MONTHS) + r")-(\d{1,2})-(\d{1,2})(am|pm)-et")
_SERIES = re.compile(r"([a-z0-9]+)-updown-(\d+[mhd])")


def series_of_slug(slug: str) -> str:
    """The recurring series a market slug belongs to, or "" (not a recurring crypto slug)."""
    m = _UPDOWN.fullmatch(slug)
    if m:
        return f"{m[1]}-updown-{m[2]}"
    m = _HOURLY.fullmatch(slug)
    if m:
        return f"{_NAME_ASSETS.get(m[1], m[1])}-updown-1h"
    return ""


def window_of_slug(slug: str, end_s: int = 0) -> int:
    """A recurring up/down market's window start (unix s) from its slug: the suffix of
    ``<asset>-updown-<dur>-<start>``; for an hourly slug, its end minus an hour (``end_s``,
    the market's end date); 0 when not a recurring slug (or the end is unknown)."""
    m = _UPDOWN.fullmatch(slug)
    if m:
        return int(m[3])
    if _HOURLY.fullmatch(slug) and end_s:
        return end_s - DURATIONS["1h"]
    return 0


def _window_ns(slug: str, event_start: int, end_ts: int) -> int:
    """MarketInfo.window_start_ts: Gamma's eventStartTime of a recurring market, else its slug's."""
    if not series_of_slug(slug):
        return 0
    return event_start or window_of_slug(slug, end_ts // 1_000_000_000) * 1_000_000_000


def _nth_sunday_utc(year: int, month: int, n: int, hour_utc: int) -> int:
    first = datetime(year, month, 1, tzinfo=timezone.utc)
    day = 1 + (6 - first.weekday()) % 7 + 7 * (n - 1)
    return int(datetime(year, month, day, hour_utc, tzinfo=timezone.utc).timestamp())


def et_offset_s(t: int) -> int:
    """US Eastern offset from UTC (s) at unix time ``t``: -4 h in DST, else -5 h (2007+ rule)."""
    year = datetime.fromtimestamp(t, timezone.utc).year
    start = _nth_sunday_utc(year, 3, 2, 7)  # 2:00 EST
    end = _nth_sunday_utc(year, 11, 1, 6)  # 2:00 EDT
    return -4 * 3600 if start <= t < end else -5 * 3600


def window_start(series: str, now_s: int) -> int:
    """Start (unix s) of the window of ``series`` that contains ``now_s``."""
    m = _SERIES.fullmatch(series)
    if m is None or m[2] not in DURATIONS:
        raise ValueError(f"series: not a recurring up/down series: {series!r}")
    dur = DURATIONS[m[2]]
    if m[2] not in _ET_ALIGNED:
        return now_s - now_s % dur
    off = et_offset_s(now_s)
    local = now_s + off
    return local - local % dur - off


def window_slug(series: str, start_s: int) -> str:
    """The market/event slug of the window of ``series`` starting at ``start_s``."""
    m = _SERIES.fullmatch(series)
    if m is None or m[2] not in DURATIONS:
        raise ValueError(f"series: not a recurring up/down series: {series!r}")
    asset, dur = m[1], m[2]
    if dur != "1h":
        return f"{asset}-updown-{dur}-{start_s}"
    local = datetime.fromtimestamp(start_s + et_offset_s(start_s), timezone.utc)
    h12 = local.hour % 12 or 12
    ampm = "am" if local.hour < 12 else "pm"
    name = ASSET_NAMES.get(asset, asset)
    return f"{name}-up-or-down-{_MONTHS[local.month - 1]}-{local.day}-{h12}{ampm}-et"


def series_window_slugs(series: str, now_s: int, count: int = 2) -> list[str]:
    """Slugs of the current window and the ``count - 1`` next ones."""
    start = window_start(series, now_s)
    dur = DURATIONS[_SERIES.fullmatch(series)[2]]  # type: ignore[index]
    return [window_slug(series, start + i * dur) for i in range(count)]


# =============================================================================================
# normalisers
# =============================================================================================


def normalize_market(obj: dict[str, Any], event: dict[str, Any] | None = None, ts: int = 0) -> MarketInfo:
    """A Gamma market object (``/markets``, ``/markets/{id}``, inside an event) -> MarketInfo."""
    if not isinstance(obj, dict):
        raise ValueError(f"market: not an object: {obj!r:.60}")
    if event is None:
        evs = obj.get("events")
        if isinstance(evs, list) and evs and isinstance(evs[0], dict):
            event = evs[0]
    ev = event or {}
    cid = _str(obj.get("conditionId"), "conditionId")
    if not cid:
        raise ValueError("conditionId: missing")
    version = _str(obj.get("version"), "version")
    if version == "v2":
        asset_ids = _ids(obj.get("positionIds"), "positionIds") or _ids(obj.get("clobTokenIds"), "clobTokenIds")
    else:
        asset_ids = _ids(obj.get("clobTokenIds"), "clobTokenIds")
        if not asset_ids and obj.get("positionIds"):
            asset_ids = _ids(obj.get("positionIds"), "positionIds")
            version = version or "v2"
    if not asset_ids:
        raise ValueError(f"{'positionIds' if version == 'v2' else 'clobTokenIds'}: no token ids for market {cid}")
    outcomes = _strs(obj.get("outcomes"), "outcomes")
    if outcomes and len(outcomes) != len(asset_ids):
        raise ValueError(f"outcomes: {len(outcomes)} outcomes for {len(asset_ids)} token ids")
    slug = _str(obj.get("slug"), "slug")
    active = _bool(obj.get("active"), "active", True)
    closed = _bool(obj.get("closed"), "closed", False)
    accepting = _bool(obj.get("acceptingOrders"), "acceptingOrders", active and not closed)
    book = _bool(obj.get("enableOrderBook"), "enableOrderBook", True)
    ev_neg = _bool(ev.get("negRisk"), "event.negRisk", False) or _bool(
        ev.get("enableNegRisk"), "event.enableNegRisk", False
    )
    neg_risk = _bool(obj.get("negRisk"), "negRisk", ev_neg)
    return MarketInfo(
        ts=ts,
        market=cid,
        asset_ids=asset_ids,
        outcomes=outcomes,
        question=_str(obj.get("question"), "question"),
        slug=slug,
        event_id=_str(ev.get("id"), "event.id"),
        event_slug=_str(ev.get("slug"), "event.slug"),
        tick_size=_tick(obj.get("orderPriceMinTickSize"), "orderPriceMinTickSize"),
        min_order_size=_min_size(obj.get("orderMinSize"), "orderMinSize"),
        neg_risk=neg_risk,
        neg_risk_augmented=neg_risk and _bool(ev.get("negRiskAugmented"), "event.negRiskAugmented", False),
        neg_risk_market_id=_str(obj.get("negRiskMarketID") or ev.get("negRiskMarketID"), "negRiskMarketID"),
        end_ts=_ts(obj.get("endDate"), "endDate"),
        start_ts=_ts(obj.get("startDate"), "startDate"),
        window_start_ts=_window_ns(slug, _ts(obj.get("eventStartTime") or ev.get("startTime"), "eventStartTime"),
                                   _ts(obj.get("endDate"), "endDate")),
        active=active,
        closed=closed,
        accepting_orders=accepting and book,
        fees=_fees(obj.get("feeSchedule"), obj.get("feesEnabled"), "feeSchedule",
                   ("rate", "exponent", "takerOnly", "rebateRate")),  # fmt: skip
        version=version or "v1",
        series=series_of_slug(slug) or _event_series(ev),
        tags=_tags(obj.get("tags"), ev.get("tags")),
        sports=_sports(
            obj.get("sportsMarketType"), obj.get("gameId") or ev.get("gameId"), obj.get("line"),
            _game_ts(obj.get("gameStartTime"), "gameStartTime") or _ts(obj.get("eventStartTime"), "eventStartTime")
            or _ts(ev.get("startTime"), "event.startTime"),
            obj.get("secondsDelay"), _event_series(ev), _str(ev.get("title"), "event.title") or
            _str(obj.get("question"), "question"), obj.get("groupItemTitle"), "",
        ),
    )


def _event_series(ev: dict[str, Any]) -> str:
    s = ev.get("seriesSlug")
    if isinstance(s, str) and s:
        return s
    ser = ev.get("series")
    if isinstance(ser, list) and ser and isinstance(ser[0], dict):
        return _str(ser[0].get("slug"), "event.series.slug")
    return ""


def _event_markets(obj: Any, ts: int, out: list[MarketInfo], bad: list[str]) -> None:
    if not isinstance(obj, dict):
        bad.append(f"event: not an object: {obj!r:.60}")
        return
    markets = obj.get("markets")
    if markets is None:
        return
    if not isinstance(markets, list):
        bad.append(f"event {obj.get('slug') or obj.get('id')}: markets: not an array")
        return
    for i, m in enumerate(markets):
        try:
            out.append(normalize_market(m, obj, ts))
        except ValueError as exc:
            bad.append(f"event {obj.get('slug') or obj.get('id')} market[{i}] {_label(m)}: {exc}")


def normalize_event(obj: dict[str, Any], ts: int = 0) -> list[MarketInfo]:
    """Every market of a Gamma event, with the event's context; the first bad market raises."""
    out: list[MarketInfo] = []
    bad: list[str] = []
    _event_markets(obj, ts, out, bad)
    if bad:
        raise ValueError(bad[0])
    return out


def normalize_clob_market(obj: dict[str, Any], ts: int = 0) -> MarketInfo:
    """CLOB ``/clob-markets/{cid}`` (compact: ``t, c, mts, mos, nr, fd, v, ao``) or the full
    ``/markets/{cid}`` object (``condition_id, tokens[], minimum_tick_size, …``) -> MarketInfo."""
    if not isinstance(obj, dict):
        raise ValueError(f"clob market: not an object: {obj!r:.60}")
    if "tokens" in obj or "condition_id" in obj:
        return _clob_full(obj, ts)
    cid = _str(obj.get("c"), "c")
    if not cid:
        raise ValueError("c: missing condition id")
    toks = obj.get("t")
    if not isinstance(toks, list) or not toks:
        raise ValueError(f"t: no tokens for market {cid}")
    ids, outs = [], []
    for i, tk in enumerate(toks):
        if not isinstance(tk, dict):
            raise ValueError(f"t[{i}]: not an object")
        ids += _ids([tk.get("t")], f"t[{i}].t")
        outs.append(_str(tk.get("o"), f"t[{i}].o"))
    fd = obj.get("fd")
    return MarketInfo(
        ts=ts,
        market=cid,
        asset_ids=tuple(ids),
        outcomes=tuple(outs) if all(outs) else (),
        tick_size=_tick(obj.get("mts"), "mts"),
        min_order_size=_min_size(obj.get("mos"), "mos"),
        neg_risk=_bool(obj.get("nr"), "nr", False),
        accepting_orders=_bool(obj.get("ao"), "ao", True),
        fees=_fees(fd, fd is not None, "fd", ("r", "e", "to", None)),  # no rebate rate in fd
        version=_str(obj.get("v"), "v") or "v1",
    )


def _clob_full(obj: dict[str, Any], ts: int) -> MarketInfo:
    cid = _str(obj.get("condition_id"), "condition_id")
    if not cid:
        raise ValueError("condition_id: missing")
    toks = obj.get("tokens")
    if not isinstance(toks, list):
        raise ValueError(f"tokens: not an array for market {cid}")
    ids, outs = [], []
    for i, tk in enumerate(toks):
        if not isinstance(tk, dict):
            raise ValueError(f"tokens[{i}]: not an object")
        tid = _str(tk.get("token_id"), f"tokens[{i}].token_id")
        if tid:
            ids += _ids([tid], f"tokens[{i}].token_id")
            outs.append(_str(tk.get("outcome"), f"tokens[{i}].outcome"))
    if not ids:
        raise ValueError(f"tokens: no token ids for market {cid}")
    active = _bool(obj.get("active"), "active", True)
    closed = _bool(obj.get("closed"), "closed", False)
    slug = _str(obj.get("market_slug"), "market_slug")
    return MarketInfo(
        ts=ts,
        market=cid,
        asset_ids=tuple(ids),
        outcomes=tuple(outs) if all(outs) else (),
        question=_str(obj.get("question"), "question"),
        slug=slug,
        tick_size=_tick(obj.get("minimum_tick_size"), "minimum_tick_size"),
        min_order_size=_min_size(obj.get("minimum_order_size"), "minimum_order_size"),
        neg_risk=_bool(obj.get("neg_risk"), "neg_risk", False),
        neg_risk_market_id=_str(obj.get("neg_risk_market_id"), "neg_risk_market_id"),
        end_ts=_ts(obj.get("end_date_iso"), "end_date_iso"),
        window_start_ts=_window_ns(slug, 0, _ts(obj.get("end_date_iso"), "end_date_iso")),
        active=active,
        closed=closed,
        accepting_orders=_bool(obj.get("accepting_orders"), "accepting_orders", active and not closed)
        and _bool(obj.get("enable_order_book"), "enable_order_book", True),
        version=_str(obj.get("version"), "version") or "v1",
        series=series_of_slug(slug),
        tags=_tags(obj.get("tags")),
    )


def normalize_new_market(frame: dict[str, Any], ts: int = 0) -> MarketInfo:
    """The market WebSocket's ``new_market`` broadcast -> MarketInfo. Accepting orders iff
    ``active``; the frame has no end date, min size or neg-risk flag: defaults."""
    if not isinstance(frame, dict):
        raise ValueError(f"new_market: not an object: {frame!r:.60}")
    cid = _str(frame.get("condition_id") or frame.get("market"), "condition_id")
    if not cid:
        raise ValueError("condition_id: missing")
    ids = _ids(frame.get("assets_ids"), "assets_ids") or _ids(frame.get("clob_token_ids"), "clob_token_ids")
    if not ids:
        raise ValueError(f"assets_ids: no token ids for market {cid}")
    outcomes = _strs(frame.get("outcomes"), "outcomes")
    if outcomes and len(outcomes) != len(ids):
        raise ValueError(f"outcomes: {len(outcomes)} outcomes for {len(ids)} token ids")
    em = frame.get("event_message")
    ev = em if isinstance(em, dict) else {}
    slug = _str(frame.get("slug"), "slug")
    active = _bool(frame.get("active"), "active", True)
    return MarketInfo(
        ts=ts,
        market=cid,
        asset_ids=ids,
        outcomes=outcomes,
        question=_str(frame.get("question"), "question"),
        slug=slug,
        event_id=_str(ev.get("id"), "event_message.id"),
        event_slug=_str(ev.get("slug"), "event_message.slug"),
        tick_size=_tick(frame.get("order_price_min_tick_size"), "order_price_min_tick_size"),
        active=active,
        accepting_orders=active,
        fees=_fees(frame.get("fee_schedule"), frame.get("fees_enabled"), "fee_schedule",
                   ("rate", "exponent", "taker_only", "rebate_rate")),  # fmt: skip
        version=_str(frame.get("version"), "version") or "v1",
        series=series_of_slug(slug),
        tags=_tags(frame.get("tags")),
        sports=_sports(
            frame.get("sports_market_type"), frame.get("game_id"), frame.get("line"),
            _game_ts(frame.get("game_start_time"), "game_start_time"), frame.get("seconds_delay"),
            _league_of_slug(_str(ev.get("slug"), "event_message.slug")),
            _str(ev.get("title"), "event_message.title") or _str(frame.get("question"), "question"),
            frame.get("group_item_title"), "",
        ),
    )


def _label(m: Any) -> str:
    if isinstance(m, dict):
        return str(m.get("slug") or m.get("conditionId") or m.get("condition_id") or m.get("c") or m.get("id") or "?")
    return "?"


# =============================================================================================
# the polymarket.gamma input source
# =============================================================================================

_EVENT_ENDPOINTS = frozenset({"events", "event", "public-search"})
_MARKET_ENDPOINTS = frozenset({"markets", "market"})
_CLOB_ENDPOINTS = frozenset({"clob-market", "clob-markets"})
ENDPOINTS = _EVENT_ENDPOINTS | _MARKET_ENDPOINTS | _CLOB_ENDPOINTS


class _Envelope(msgspec.Struct):
    endpoint: str
    body: msgspec.Raw
    query: dict[str, Any] = {}


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def gamma_input(endpoint: str, query: Mapping[str, Any] | None, body: bytes) -> bytes:
    """The ``polymarket.gamma`` message for one response: ``body`` embedded verbatim (raw JSON)."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint: unknown {endpoint!r}")
    body = body.strip()
    msgspec.json.decode(body)  # refuses a body that is not JSON (it would break the journal line)
    return msgspec.json.encode({"endpoint": endpoint, "query": dict(query or {}), "body": msgspec.Raw(body)})


def _items(endpoint: str, body: Any) -> list[Any]:
    """The objects of a body: an array, a page (``{"events"|"markets"|"data": [...]}``) or one."""
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        raise ValueError(f"body: neither an array nor an object ({type(body).__name__})")
    if endpoint in _EVENT_ENDPOINTS:
        keys: tuple[str, ...] = ("events", "data")  # a single event has "markets": not a page
    elif endpoint in _MARKET_ENDPOINTS:
        keys = ("markets", "data") if "conditionId" not in body else ()
    else:
        keys = ("data",)
    for key in keys:
        if isinstance(body.get(key), list):
            return body[key]
    if "error" in body and len(body) <= 3:
        raise ValueError(f"body: error response: {str(body['error'])[:120]}")
    return [body]


def decode_gamma(msg: bytes, ts: int) -> tuple[list[MarketInfo], list[str]]:
    """A ``polymarket.gamma`` message -> (markets, problems). Raises when nothing is usable."""
    env = _ENVELOPE.decode(msg)
    if env.endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint: unknown {env.endpoint!r}")
    items = _items(env.endpoint, _ANY.decode(env.body))
    out: list[MarketInfo] = []
    bad: list[str] = []
    for i, it in enumerate(items):
        if env.endpoint in _EVENT_ENDPOINTS:
            _event_markets(it, ts, out, bad)
            continue
        try:
            if env.endpoint in _CLOB_ENDPOINTS:
                out.append(normalize_clob_market(it, ts))
            else:
                out.append(normalize_market(it, None, ts))
        except ValueError as exc:
            bad.append(f"[{i}] {_label(it)}: {exc}")
    if bad and not out:
        raise FrameError(f"{env.endpoint}: no usable market ({len(bad)} bad): {'; '.join(bad[:3])}",
                         reason="bad_market")  # fmt: skip
    return out, bad


_logged: set[tuple[str, str]] = set()  # log-once keys; never affects what decode returns


def _log_once(endpoint: str, query: Any, problems: list[str]) -> None:
    """One warning per (endpoint, offending field); the kernel counts every message."""
    parts = problems[0].split(": ")
    key = (endpoint, parts[1] if len(parts) > 2 else parts[-1][:40])
    if key in _logged or len(_logged) > 1000:
        return
    _logged.add(key)
    logger.warning("gamma {} {}: skipped {} bad market(s): {} (further ones of this kind are counted only)",
                   endpoint, query, len(problems), "; ".join(problems[:3]))  # fmt: skip


class GammaDecoder:
    """The ``polymarket.gamma`` source: ``{"endpoint", "query", "body"}`` -> MarketInfo events.

    A bad market is skipped: the good ones come back inside a :class:`FrameError` (reason
    ``bad_market``) so the kernel publishes them and counts the message; a message with nothing
    usable raises ``ValueError``.
    """

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        out, bad = decode_gamma(msg, ts)
        if bad:
            ep = msgspec.json.decode(msg, type=_Envelope)
            _log_once(ep.endpoint, ep.query, bad)
            more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
            raise FrameError(f"{len(bad)} bad market(s): {'; '.join(bad[:3])}{more}", reason="bad_market", events=out)
        return out

    __call__ = decode


DECODER = GammaDecoder()


# =============================================================================================
# HTTP client
# =============================================================================================


class GammaError(RuntimeError):
    """A request that failed for good (4xx, or 429/5xx/connection errors after the retries)."""

    def __init__(self, detail: str, status: int = 0, url: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.url = url


@attrs.frozen
class GammaResponse:
    """One response: the raw body (to journal) and its decoded JSON (floats as Decimal)."""

    endpoint: str
    query: dict[str, Any]
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    data: Any = attrs.field(eq=False, repr=False)

    def message(self) -> bytes:
        """The ``polymarket.gamma`` input message for this response."""
        return gamma_input(self.endpoint, self.query, self.body)

    def infos(self, ts: int = 0) -> list[MarketInfo]:
        """Its markets (bad ones skipped and logged, as the decoder does)."""
        try:
            out, bad = decode_gamma(self.message(), ts)
        except ValueError as exc:
            logger.warning("gamma {} {}: {}", self.endpoint, self.query, exc)
            return []
        if bad:
            _log_once(self.endpoint, self.query, bad)
        return out


def _param(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _query(params: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(the query as recorded, the pairs sent: arrays as repeated keys, None dropped)."""
    rec: dict[str, Any] = {}
    pairs: list[tuple[str, str]] = []
    for k, v in (params or {}).items():
        if v is None:
            continue
        if isinstance(v, (list, tuple, set, frozenset)):
            vals = [x for x in v if x is not None]
            rec[k] = [_param(x) for x in vals]
            pairs += [(k, _param(x)) for x in vals]
        else:
            rec[k] = _param(v)
            pairs.append((k, _param(v)))
    return rec, pairs


def _chunks(xs: Sequence[str], n: int) -> Iterable[list[str]]:
    xs = list(dict.fromkeys(xs))
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


class GammaClient:
    """Async Gamma (and CLOB ``/clob-markets``) client. Every call returns a :class:`GammaResponse`
    (raw body + decoded data). 429, 5xx and connection errors are retried ``retries`` times with
    jittered exponential backoff (``Retry-After`` honoured, capped at ``max_backoff_s``)."""

    def __init__(
        self,
        base_url: str = GAMMA_URL,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 10,
        retries: int = 3,
        *,
        clob_url: str = CLOB_URL,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = anyio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clob_url = clob_url.rstrip("/")
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.requests = 0  # HTTP requests sent (retries included)
        self._session = session
        self._own = session is None
        self._rng = rng or random.Random()
        self._sleep = sleep

    async def __aenter__(self) -> GammaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers={"Accept": "application/json"})
        return self._session

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(self.max_backoff_s, float(retry_after))
        cap = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return cap * (0.5 + 0.5 * self._rng.random())

    async def get(self, path: str, params: Mapping[str, Any] | None = None, *, base_url: str | None = None) -> bytes:
        """GET ``path`` and return the raw body of a 2xx answer (retrying transient failures)."""
        url = (base_url or self.base_url) + path
        _, pairs = _query(params)
        err: GammaError
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                self.requests += 1
                async with self._sess().get(url, params=pairs, timeout=self.timeout) as resp:
                    body = await resp.read()
                    if 200 <= resp.status < 300:
                        return body
                    err = GammaError(f"GET {url} {pairs}: HTTP {resp.status}: {body[:200]!r}", resp.status, url)
                    if resp.status != 429 and resp.status < 500:
                        raise err
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                err = GammaError(f"GET {url}: {type(exc).__name__}: {exc}", 0, url)
            if attempt < self.retries:
                delay = self._delay(attempt, retry_after)
                logger.debug("gamma retry {}/{} in {:.2f}s: {}", attempt + 1, self.retries, delay, err)
                await self._sleep(delay)
        raise err

    async def request(self, endpoint: str, path: str, params: Mapping[str, Any] | None = None,
                      *, base_url: str | None = None) -> GammaResponse:  # fmt: skip
        """GET and wrap: the body, its decoded data, and the query as recorded."""
        rec, _ = _query(params)
        body = await self.get(path, params, base_url=base_url)
        try:
            data = _ANY.decode(body)
        except msgspec.DecodeError:
            raise GammaError(f"GET {path}: not JSON: {body[:120]!r}", 200, path) from None
        return GammaResponse(endpoint, rec, body, data)

    async def markets(self, **filters: Any) -> GammaResponse:
        """``GET /markets`` (filters: ``slug``, ``condition_ids``, ``clob_token_ids``, ``closed``, …)."""
        return await self.request("markets", "/markets", filters)

    async def events(self, **filters: Any) -> GammaResponse:
        """``GET /events`` (filters: ``slug``, ``tag_slug``, ``tag_id``, ``closed``, …)."""
        return await self.request("events", "/events", filters)

    async def market(self, market_id: str | int) -> GammaResponse:
        return await self.request("market", f"/markets/{market_id}")

    async def event(self, event_id: str | int) -> GammaResponse:
        return await self.request("event", f"/events/{event_id}")

    async def market_by_slug(self, slug: str) -> GammaResponse:
        return await self.markets(slug=[slug])

    async def series(self, **filters: Any) -> Any:
        """``GET /series`` decoded (not a catalog input: series carry no markets to journal)."""
        return _ANY.decode(await self.get("/series", filters))

    async def clob_market(self, condition_id: str) -> GammaResponse:
        """CLOB ``GET /clob-markets/{condition_id}`` (tick, min size, fees, version)."""
        return await self.request("clob-market", f"/clob-markets/{condition_id}", base_url=self.clob_url)

    async def keyset(self, kind: str, *, max_pages: int = 50, **filters: Any) -> AsyncIterator[GammaResponse]:
        """Pages of ``/markets/keyset`` or ``/events/keyset`` (``next_cursor`` -> ``after_cursor``)."""
        if kind not in ("markets", "events"):
            raise ValueError(f"kind: {kind!r} (markets | events)")
        params = dict(filters)
        seen: set[str] = set()
        for _ in range(max_pages):
            resp = await self.request(kind, f"/{kind}/keyset", params)
            yield resp
            data = resp.data
            cur = data.get("next_cursor") if isinstance(data, dict) else None
            items = data.get(kind) if isinstance(data, dict) else None
            if not cur or not isinstance(cur, str) or cur == "LTE=" or cur in seen or not items:
                return
            seen.add(cur)
            params["after_cursor"] = cur
        logger.warning("gamma {} keyset: stopped after {} pages ({})", kind, max_pages, filters)

    def markets_keyset(self, *, max_pages: int = 50, **filters: Any) -> AsyncIterator[GammaResponse]:
        return self.keyset("markets", max_pages=max_pages, **filters)

    def events_keyset(self, *, max_pages: int = 50, **filters: Any) -> AsyncIterator[GammaResponse]:
        return self.keyset("events", max_pages=max_pages, **filters)

    async def markets_by_condition_ids(self, condition_ids: Sequence[str], chunk: int = CHUNK,
                                       **filters: Any) -> list[GammaResponse]:  # fmt: skip
        """``/markets?condition_ids=…`` in chunks of at most ``chunk`` (≤ 100) ids."""
        return [await self.markets(condition_ids=ids, limit=len(ids), **filters)
                for ids in _chunks(condition_ids, min(chunk, CHUNK))]  # fmt: skip

    async def markets_by_token_ids(self, token_ids: Sequence[str], chunk: int = CHUNK,
                                   **filters: Any) -> list[GammaResponse]:  # fmt: skip
        """``/markets?clob_token_ids=…`` in chunks (a market matches once, by either token)."""
        return [await self.markets(clob_token_ids=ids, limit=len(ids), **filters)
                for ids in _chunks(token_ids, min(chunk, CHUNK))]  # fmt: skip

    async def markets_by_slugs(self, slugs: Sequence[str], chunk: int = CHUNK) -> list[GammaResponse]:
        return [await self.markets(slug=s, limit=len(s)) for s in _chunks(slugs, min(chunk, CHUNK))]


# =============================================================================================
# resolving what to trade
# =============================================================================================


async def resolve_markets(
    client: GammaClient,
    *,
    slugs: Sequence[str] = (),
    condition_ids: Sequence[str] = (),
    token_ids: Sequence[str] = (),
    tag: str | None = None,
    series: Sequence[str] = (),
    neg_risk_events: bool = False,
    now_ns: int | None = None,
    windows: int = 2,
    max_pages: int = 20,
    ts: int = 0,
) -> tuple[list[MarketInfo], list[bytes]]:
    """Fetch what is asked; return (the markets, the ``polymarket.gamma`` messages to journal).

    * ``slugs``/``condition_ids``/``token_ids``: ``/markets`` in chunks of ≤ 100.
    * ``series``: a recurring up/down series (``btc-updown-15m``, ``eth-updown-5m``,
      ``btc-updown-1h``, ``btc-updown-4h``) -> the current window and ``windows - 1`` next ones at
      ``now_ns`` (default: wall clock), fetched as events by slug; any other name is taken as a
      Gamma series slug (``/series?slug=`` then ``/events/keyset?series_id=…&closed=false``).
    * ``tag``: open events with that tag slug (``/events/keyset?tag_slug=…&closed=false``).
    * ``neg_risk_events``: open neg-risk events (within ``tag`` if given); only their markets are
      returned, though the messages carry the whole pages fetched.

    Markets are deduplicated by condition id, first seen first.
    """
    msgs: list[bytes] = []
    infos: list[MarketInfo] = []

    def take(resp: GammaResponse, keep: Callable[[MarketInfo], bool] | None = None) -> None:
        msgs.append(resp.message())
        infos.extend(i for i in resp.infos(ts) if keep is None or keep(i))

    for resp in await client.markets_by_slugs(slugs):
        take(resp)
    for resp in await client.markets_by_condition_ids(condition_ids):
        take(resp)
    for resp in await client.markets_by_token_ids(token_ids):
        take(resp)
    if series:
        now_s = (time.time_ns() if now_ns is None else now_ns) // NS
        recurring: list[str] = []
        for name in series:
            m = _SERIES.fullmatch(name)
            if m is not None and m[2] in DURATIONS:
                recurring += series_window_slugs(name, now_s, windows)
                continue
            found = await client.series(slug=[name])
            ids = [str(s["id"]) for s in found if isinstance(s, dict) and s.get("id") is not None] \
                if isinstance(found, list) else []  # fmt: skip
            if not ids:
                logger.warning("gamma: no series {!r}", name)
            for sid in ids:
                async for page in client.events_keyset(series_id=sid, closed=False, max_pages=max_pages):
                    take(page)
        for chunk in _chunks(recurring, CHUNK):
            take(await client.events(slug=chunk, limit=len(chunk)))
    if tag is not None or neg_risk_events:
        keep = (lambda i: i.neg_risk) if neg_risk_events else None
        async for page in client.events_keyset(tag_slug=tag, closed=False, max_pages=max_pages):
            take(page, keep)
    first: dict[str, MarketInfo] = {}
    for i in infos:
        first.setdefault(i.market, i)
    out = list(first.values())
    logger.info("gamma: resolved {} market(s) from {} response(s)", len(out), len(msgs))
    return out, msgs


# =============================================================================================
# filters
# =============================================================================================


def _one_of(v: str | Iterable[str] | None) -> frozenset[str] | None:
    if v is None:
        return None
    return frozenset((v,)) if isinstance(v, str) else frozenset(v)


def is_tradable(info: MarketInfo) -> bool:
    """Active, not closed, accepting orders (which already implies an order book)."""
    return info.active and not info.closed and info.accepting_orders


def filter_markets(
    infos: Iterable[MarketInfo],
    *,
    slug: str | Iterable[str] | None = None,
    condition_id: str | Iterable[str] | None = None,
    tag: str | None = None,
    series: str | Iterable[str] | None = None,
    neg_risk: bool | None = None,
    tradable_only: bool = True,
    min_time_to_end_s: float | None = None,
    max_time_to_end_s: float | None = None,
    now_ns: int | None = None,
) -> list[MarketInfo]:
    """The markets matching every given criterion, in input order. Tags match case-insensitively.
    Time bounds need ``now_ns``; a market with no end time fails any time bound."""
    if (min_time_to_end_s is not None or max_time_to_end_s is not None) and now_ns is None:
        raise ValueError("now_ns: required with min_time_to_end_s / max_time_to_end_s")
    slugs, cids, sers = _one_of(slug), _one_of(condition_id), _one_of(series)
    tag_l = tag.lower() if tag is not None else None
    lo = None if min_time_to_end_s is None else int(min_time_to_end_s * NS)
    hi = None if max_time_to_end_s is None else int(max_time_to_end_s * NS)
    out = []
    for i in infos:
        if slugs is not None and i.slug not in slugs:
            continue
        if cids is not None and i.market not in cids:
            continue
        if sers is not None and i.series not in sers:
            continue
        if tag_l is not None and all(t.lower() != tag_l for t in i.tags):
            continue
        if neg_risk is not None and i.neg_risk != neg_risk:
            continue
        if tradable_only and not is_tradable(i):
            continue
        if lo is not None or hi is not None:
            if not i.end_ts:
                continue
            left = i.end_ts - now_ns  # type: ignore[operator]
            if (lo is not None and left < lo) or (hi is not None and left > hi):
                continue
        out.append(i)
    return out
