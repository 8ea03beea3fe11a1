"""Polymarket US frames and REST answers -> polybot events (shapes: the official SDK
``polymarket-us`` 2.4.1, ``websocket/types.py`` and ``types/markets.py``).

Three input sources, each a pure decoder ``(msg: bytes, ts: int) -> Sequence[Event]``:

* ``polymarket_us.market`` (:data:`MARKET_DECODER`): the markets WebSocket's frames as received.

  - ``marketData`` (a FULL YES-side book each frame) -> a :class:`BookSnapshot` of the long asset
    (bids and offers as given) and one of the short asset (its mirror: NO bids at 1 - YES offers,
    NO asks at 1 - YES bids, same sizes), then a :class:`MarketStatus` when the frame states the
    market's ``state`` (the kernel ignores a repeat). ``stats.lastTradePx`` becomes
    ``last_trade_price`` (mirrored for the short asset).
  - ``marketDataLite`` -> a :class:`BestBidAsk` per asset (mirrored for the short one).
  - ``trade`` -> a :class:`TradePrint` per asset: the long one at the YES price, the short one
    at 1 - price; the side is the taker's (``BUY_LONG``/``SELL_SHORT`` lift YES offers: ``BUY``
    on long, ``SELL`` on short; ``SELL_LONG``/``BUY_SHORT`` the other way round).
  - ``heartbeat`` -> nothing.
  - anything else is refused and counted by the kernel (:class:`polybot.kernel.FrameError`,
    reasons ``venue_error`` (an ``error`` frame), ``unknown_message``, ``schema``, ``malformed``,
    ``bad_value``; a price level outside (0, 1) is left out of its book and counted as
    ``price_out_of_range``, the rest of the book is kept: the next frame replaces it anyway).
    A crossed book is passed on as given: the kernel marks it unhealthy (as for the CLOB) and the
    feed fetches it again over REST.

* ``polymarket_us.rest`` (:data:`REST_DECODER`): one REST answer the feed fetched, journaled as
  the envelope ``{"path": "/v1/markets/<slug>/book", "query": {...}, "status": 200, "body": <the
  body verbatim>}`` (:func:`rest_input`). By path:

  - ``/v1/markets/<slug>/book`` -> the two book snapshots and the status, as above;
  - ``/v1/markets/<slug>/bbo`` -> best bid/ask;
  - ``/v1/markets/<slug>/settlement`` (``{"slug", "settlement": 1.0 | 0.0}``) -> MarketResolved
    (the long asset wins at 1, the short one at 0; a 404 or a null settlement: not settled yet);
  - the catalog: ``/v1/markets`` (``{"markets": [...]}``), ``/v1/market/slug/<slug>`` and
    ``/v1/market/id/<id>`` (``{"market": {...}}``), ``/v1/events`` (``{"events": [...]}``),
    ``/v1/events/slug/<slug>`` and ``/v1/events/<id>`` (``{"event": {...}}``), and any body of
    those shapes -> a :class:`MarketInfo` per market (a closed market that states its
    ``settlement`` also gives its :class:`MarketResolved`). Unknown fields are ignored, missing
    ones take defaults; a market that cannot be read is skipped and counted (``bad_market``).
  - an answer that is not a 2xx -> refused (``rest_error``).

* ``polymarket_us.private`` (:data:`PRIVATE_DECODER`): private WebSocket frames are journaled for
  the audit trail; what they mean reaches the kernel as the executor's own records, so they
  decode to nothing.

Units: prices and sizes are 6-decimal integers (exact; ``"0.54"`` -> ``540_000``), times integer
ns (``transactTime`` / ``tradeTime``, ISO 8601).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from polybot.clock import iso_to_ns
from polybot.events import (
    BestBidAsk,
    FeeSchedule,
    BookSnapshot,
    Event,
    MarketInfo,
    MarketResolved,
    MarketStatus,
    SportsMarket,
    TradePrint,
)
from polybot.kernel import FrameError
from polybot.units import SCALE, from_units, json_units, to_units

from . import MARKET_SOURCE, PRIVATE_SOURCE, REST_SOURCE, VENUE, asset_ids, market_id

__all__ = [
    "MARKET_DECODER", "PRIVATE_DECODER", "REST_DECODER", "decode_rest", "mirror", "rest_input", "state_word",
    "catalog_infos",
]  # fmt: skip

NS = 1_000_000_000
_DEFAULT_TICK = 10_000  # 0.01
_DEFAULT_MIN_QTY = SCALE  # 1 share
CLOSED_STATES = frozenset({"closed", "expired", "terminated"})
#: the venue's trading fee schedule (docs.polymarket.us, "Fees"; the same for every market): takers
#: pay 30 bps and makers earn 20 bps of the fee notional, contracts x price for a buyer and
#: contracts x (1 - price) for a seller, rounded to the cent (half to even). The paper executor
#: and the risk chain use it; the live executor books what the venue reports.
FEES = FeeSchedule(rate_ppm=3_000, rebate_ppm=2_000, taker_only=True, model="notional")

# =============================================================================================
# wire structs (only what is read; every other field is ignored)
# =============================================================================================


class _Amount(msgspec.Struct, gc=False):
    value: str = ""
    currency: str = ""


_Px = _Amount | str
_Qty = _Amount | str | int


class _Level(msgspec.Struct, gc=False):
    px: _Px = ""
    qty: _Qty = ""


class _Stats(msgspec.Struct, gc=False):
    lastTradePx: _Px | None = None


class _Book(msgspec.Struct, gc=False):
    marketSlug: str = ""
    bids: list[_Level] | None = None
    offers: list[_Level] | None = None
    asks: list[_Level] | None = None  # some answers name the offers "asks"
    state: str | None = None
    stats: _Stats | None = None
    transactTime: str | None = None


class _Lite(msgspec.Struct, gc=False):
    marketSlug: str = ""
    bestBid: _Px | None = None
    bestAsk: _Px | None = None
    lastTradePx: _Px | None = None


class _TradeSide(msgspec.Struct, gc=False):
    side: str = ""
    intent: str = ""


class _Trade(msgspec.Struct, gc=False):
    marketSlug: str = ""
    price: _Px | None = None
    quantity: _Qty | None = None
    tradeTime: str | None = None
    taker: _TradeSide | None = None
    maker: _TradeSide | None = None


class _Frame(msgspec.Struct, gc=False):
    """Every markets-WebSocket frame: exactly one payload key is set."""

    requestId: str = ""
    subscriptionType: str = ""
    marketData: _Book | None = None
    marketDataLite: _Lite | None = None
    trade: _Trade | None = None
    heartbeat: Any = msgspec.UNSET
    error: str | None = None


class _Slugs(msgspec.Struct):
    """A frame's market slug(s), read leniently to name the books a bad frame concerns."""

    marketData: dict | None = None
    marketDataLite: dict | None = None
    trade: dict | None = None


_FRAME = msgspec.json.Decoder(_Frame)
_SLUGS = msgspec.json.Decoder(_Slugs)
_ANY = msgspec.json.Decoder(float_hook=Decimal)  # REST catalogs: floats keep their exact text


# =============================================================================================
# numbers, ids, times
# =============================================================================================

_PX: dict[str, int] = {}  # price text -> units (only prices inside (0, 1))
_QTY: dict[str, int] = {}  # quantity text -> units
_LTP: dict[str, str] = {}  # YES last trade price text -> the NO one ("" when not a price)
_STATES: dict[str, str] = {}  # MARKET_STATE_X -> x
_CACHE_MAX = 100_000


def _exact(s: str) -> int:
    """Plain decimal text -> base units, exactly. Common forms take a fast path (at most 9
    integer digits and 6 decimals stay below 2**53 base units, where rounding the double
    nearest to the text, times 1e6, gives the exact integer); anything else goes to the strict
    parser, which names the problem."""
    if s.isdigit() and s.isascii():
        return int(s) * SCALE
    i = s.find(".")
    if 0 < i <= 9 and len(s) - i <= 7 and s.isascii() and s.replace(".", "", 1).isdigit():
        return int(float(s) * 1e6 + 0.5)
    return to_units(s)


def _px_text(v: _Px | None) -> str:
    if v is None:
        return ""
    return v if v.__class__ is str else v.value  # type: ignore[union-attr]


def _price(v: _Px) -> int:
    """A price in base units; -1 when outside (0, 1) (the caller counts it)."""
    s = v if v.__class__ is str else v.value  # type: ignore[union-attr]
    p = _PX.get(s)  # type: ignore[arg-type]
    if p is None:
        p = _exact(s)  # type: ignore[arg-type]
        if not 0 < p < SCALE:
            return -1
        if len(_PX) < _CACHE_MAX:
            _PX[s] = p  # type: ignore[index]
    return p


def _qty(v: _Qty) -> int:
    c = v.__class__
    if c is str:
        q = _exact(v)  # type: ignore[arg-type]
    elif c is int:
        q = v * SCALE  # type: ignore[operator]
    else:
        q = _exact(v.value)  # type: ignore[union-attr]
    if q < 0:
        raise ValueError(f"negative quantity {v!r}")
    return q


def _top(v: _Px | None) -> int:
    """A best bid/ask: 0 when absent; a price outside (0, 1) raises (the frame is refused)."""
    if v is None:
        return 0
    s = _px_text(v)
    if not s:
        return 0
    p = _price(v)
    if p < 0:
        raise ValueError(f"best price {s!r} outside (0, 1)")
    return p


_IDS: dict[str, tuple[str, str, str]] = {}


def _ids(slug: str) -> tuple[str, str, str]:
    """(market id, long asset, short asset) of a slug (cached: built once per market)."""
    t = _IDS.get(slug)
    if t is None:
        long_id, short_id = asset_ids(slug)
        t = (market_id(slug), long_id, short_id)
        if len(_IDS) < _CACHE_MAX:
            _IDS[slug] = t
    return t


_DAYS: dict[str, int] = {}


def _iso_ns(s: str | None) -> int:
    """ISO-8601 -> ns (0 when absent). Fast path for ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z``."""
    if not s:
        return 0
    n = len(s)
    if n >= 20 and s[10] == "T" and s[-1] == "Z" and s[13] == ":" and s[16] == ":" and s.isascii():
        frac = s[20:-1] if s[19] == "." else ("" if n == 20 else "x")
        hms = s[11:13] + s[14:16] + s[17:19]
        if hms.isdigit() and (not frac or (len(frac) <= 9 and frac.isdigit())):
            day = _DAYS.get(s[:10])
            if day is None:
                day = iso_to_ns(s[:10])
                if len(_DAYS) < 10_000:
                    _DAYS[s[:10]] = day
            return (day + (int(hms[:2]) * 3600 + int(hms[2:4]) * 60 + int(hms[4:])) * NS
                    + (int(frac.ljust(9, "0")) if frac else 0))  # fmt: skip
    return iso_to_ns(s)


def state_word(state: str) -> str:
    """``MARKET_STATE_OPEN`` -> ``open`` (the venue's word, lower case, without its prefix)."""
    s = state.strip()
    for prefix in ("MARKET_STATE_", "MARKET_STATUS_"):
        if s.startswith(prefix):
            s = s[len(prefix) :]
            break
    return s.lower()


def mirror(levels: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """YES levels -> the NO levels on the other side: (1 - price, same size). Its own inverse."""
    return tuple([(SCALE - p, q) for p, q in levels])


# =============================================================================================
# per payload
# =============================================================================================


def _levels(levels: list[_Level] | None, bad: list[str]) -> tuple[tuple[int, int], ...]:
    """The hot path: (price, size) per level, the number parsing inlined behind two caches."""
    if not levels:
        return ()
    px_get, qty_get = _PX.get, _QTY.get
    out = []
    append = out.append
    for lv in levels:
        px = lv.px
        p = px_get(px if px.__class__ is str else px.value)  # type: ignore[union-attr, arg-type]
        if p is None:
            p = _price(px)
            if p < 0:
                bad.append(_px_text(px) or "?")
                continue
        q = lv.qty
        v = qty_get(q) if q.__class__ is str else None  # type: ignore[arg-type]
        if v is None:
            v = _qty(q)
            if q.__class__ is str and len(_QTY) < _CACHE_MAX:
                _QTY[q] = v  # type: ignore[index]
        append((p, v))
    return tuple(out)


def _book(b: _Book, ts: int, out: list[Event], oor: list[str]) -> None:
    slug = b.marketSlug
    if not slug:
        raise FrameError("marketData without marketSlug", reason="schema")
    mid, long_id, short_id = _ids(slug)
    try:
        xts = _iso_ns(b.transactTime)
        n = len(oor)
        bids = _levels(b.bids, oor)
        asks = _levels(b.offers if b.offers is not None else b.asks, oor)
        if len(oor) > n:
            oor[n:] = [f"{slug}: price {p!r} outside (0, 1)" for p in oor[n:]]
        ltp = short_ltp = None
        st = b.stats
        if st is not None and st.lastTradePx is not None:
            ltp = _px_text(st.lastTradePx)
            short_ltp = _LTP.get(ltp)
            if short_ltp is None:
                v = _exact(ltp) if ltp else -1
                short_ltp = from_units(SCALE - v) if 0 <= v <= SCALE else ""
                if len(_LTP) < _CACHE_MAX:
                    _LTP[ltp] = short_ltp
    except ValueError as exc:
        raise FrameError(f"marketData {slug}: {exc}", reason="bad_value", asset_ids=(long_id, short_id)) from None
    out.append(BookSnapshot(ts=ts, asset_id=long_id, market=mid, exchange_ts=xts, bids=bids, asks=asks,
                            last_trade_price=ltp))  # fmt: skip
    out.append(BookSnapshot(ts=ts, asset_id=short_id, market=mid, exchange_ts=xts,
                            bids=tuple([(SCALE - p, q) for p, q in asks]),
                            asks=tuple([(SCALE - p, q) for p, q in bids]), last_trade_price=short_ltp))  # fmt: skip
    if b.state:
        w = _STATES.get(b.state)
        if w is None:
            w = state_word(b.state)
            if len(_STATES) < 1000:
                _STATES[b.state] = w
        out.append(MarketStatus(ts=ts, market=mid, state=w, accepting_orders=w == "open", closed=w in CLOSED_STATES,
                                exchange_ts=xts))  # fmt: skip


def _lite(m: _Lite, ts: int, out: list[Event]) -> None:
    slug = m.marketSlug
    if not slug:
        raise FrameError("marketDataLite without marketSlug", reason="schema")
    mid, long_id, short_id = _ids(slug)
    try:
        bb, ba = _top(m.bestBid), _top(m.bestAsk)
    except ValueError as exc:
        raise FrameError(f"marketDataLite {slug}: {exc}", reason="price_out_of_range") from None
    out.append(BestBidAsk(ts=ts, asset_id=long_id, market=mid, best_bid=bb, best_ask=ba))
    out.append(BestBidAsk(ts=ts, asset_id=short_id, market=mid, best_bid=SCALE - ba if ba else 0,
                          best_ask=SCALE - bb if bb else 0))  # fmt: skip


# taker intent (or side) -> its side on the long asset
_LONG_SIDE = {
    "ORDER_INTENT_BUY_LONG": "BUY", "ORDER_INTENT_SELL_SHORT": "BUY",
    "ORDER_INTENT_SELL_LONG": "SELL", "ORDER_INTENT_BUY_SHORT": "SELL",
    "BUY_LONG": "BUY", "SELL_SHORT": "BUY", "SELL_LONG": "SELL", "BUY_SHORT": "SELL",
    "SIDE_BUY": "BUY", "SIDE_SELL": "SELL", "BUY": "BUY", "SELL": "SELL",
}  # fmt: skip
_OTHER = {"BUY": "SELL", "SELL": "BUY", None: None}


def _trade(t: _Trade, ts: int, out: list[Event]) -> None:
    slug = t.marketSlug
    if not slug:
        raise FrameError("trade without marketSlug", reason="schema")
    mid, long_id, short_id = _ids(slug)
    if t.price is None or t.quantity is None:
        raise FrameError(f"trade {slug}: no price or quantity", reason="schema")
    try:
        xts = _iso_ns(t.tradeTime)
        p = _price(t.price)
        size = _qty(t.quantity)
    except ValueError as exc:
        raise FrameError(f"trade {slug}: {exc}", reason="bad_value") from None
    if p < 0:
        raise FrameError(f"trade {slug}: price {_px_text(t.price)!r} outside (0, 1)", reason="price_out_of_range")
    side = None
    tk = t.taker
    if tk is not None:
        side = _LONG_SIDE.get(tk.intent) or _LONG_SIDE.get(tk.side)
    out.append(TradePrint(ts=ts, asset_id=long_id, market=mid, exchange_ts=xts, price=p, size=size, side=side))  # type: ignore[arg-type]
    out.append(TradePrint(ts=ts, asset_id=short_id, market=mid, exchange_ts=xts, price=SCALE - p, size=size,
                          side=_OTHER[side]))  # type: ignore[arg-type]  # fmt: skip


def _frame_slugs(msg: bytes) -> list[str]:
    """The market slug(s) of a frame that failed its schema (for unhealthy books); never raises."""
    try:
        s = _SLUGS.decode(msg)
    except (msgspec.MsgspecError, TypeError, ValueError):
        return []
    out = []
    for d in (s.marketData, s.marketDataLite, s.trade):
        slug = d.get("marketSlug") if isinstance(d, dict) else None
        if isinstance(slug, str) and slug:
            out.extend(_ids(slug)[1:])
    return out


# =============================================================================================
# polymarket_us.market
# =============================================================================================


class MarketDecoder:
    """The ``polymarket_us.market`` source: markets-WebSocket frames as received."""

    source = MARKET_SOURCE

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        c = msg[:1]
        if c != b"{":
            if c == b'"':  # a text frame, journaled as a JSON string
                raise FrameError(f"unexpected text frame {msg[:60]!r}", reason="malformed")
            stripped = msg.strip()
            if stripped[:1] == b"{" and stripped != msg:
                return self.decode(stripped, ts)
            if c == b"[" or c[:1].isdigit():
                raise FrameError(f"not a markets message: {msg[:60]!r}", reason="unknown_message")
            raise msgspec.DecodeError("not a JSON object")  # the kernel keeps it as a JSON string
        try:
            f = _FRAME.decode(msg)
        except msgspec.ValidationError as exc:
            raise FrameError(f"schema: {exc}", reason="schema", asset_ids=_frame_slugs(msg)) from None
        out: list[Event] = []
        b = f.marketData
        if b is not None:
            oor: list[str] = []
            _book(b, ts, out, oor)
            if oor:
                raise FrameError("; ".join(oor[:5]), reason="price_out_of_range", events=out)
            return out
        t = f.trade
        if t is not None:
            _trade(t, ts, out)
            return out
        m = f.marketDataLite
        if m is not None:
            _lite(m, ts, out)
            return out
        if f.heartbeat is not msgspec.UNSET:
            return ()
        if f.error is not None:
            raise FrameError(f"venue error ({f.subscriptionType or '-'} {f.requestId or '-'}): {f.error[:200]}",
                             reason="venue_error")  # fmt: skip
        raise FrameError(f"unknown markets message {msg[:80]!r}", reason="unknown_message")

    __call__ = decode

    @staticmethod
    def bare_ts(msg: bytes) -> int | None:
        """The frame's own time (ns), for recordings of bare frames; None if it states none."""
        for key in (b'"transactTime"', b'"tradeTime"'):
            i = msg.find(key)
            if i < 0:
                continue
            rest = msg[i + len(key) : i + len(key) + 64].lstrip()
            if rest[:1] != b":":
                return None
            rest = rest[1:].lstrip()
            j = rest.find(b'"', 1)
            if rest[:1] != b'"' or j < 0:
                return None
            try:
                return _iso_ns(rest[1:j].decode()) or None
            except (ValueError, UnicodeDecodeError):
                return None
        return None


# =============================================================================================
# polymarket_us.rest
# =============================================================================================


class _Envelope(msgspec.Struct):
    path: str
    body: msgspec.Raw = msgspec.Raw(b"null")
    status: int = 200
    query: dict[str, Any] = {}


class _BookAnswer(msgspec.Struct, gc=False):
    marketData: _Book | None = None


class _BboAnswer(msgspec.Struct, gc=False):
    marketData: _Lite | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_BOOK_ANSWER = msgspec.json.Decoder(_BookAnswer)
_BBO_ANSWER = msgspec.json.Decoder(_BboAnswer)

_BOOK_PATH = re.compile(r"/v1/markets/([^/?]+)/book/?")
_BBO_PATH = re.compile(r"/v1/markets/([^/?]+)/bbo/?")
_SETTLEMENT_PATH = re.compile(r"/v1/markets/([^/?]+)/settlement/?")


def rest_input(path: str, status: int, body: bytes, query: Mapping[str, Any] | None = None) -> bytes:
    """The ``polymarket_us.rest`` message for one answer: the body embedded verbatim when it is
    JSON, else as a JSON string (so the journal line stays one JSON object)."""
    body = body.strip()
    try:
        msgspec.json.decode(body)
        raw = msgspec.Raw(body)
    except msgspec.DecodeError:
        raw = msgspec.Raw(msgspec.json.encode(body.decode("utf-8", "replace")))
    env: dict[str, Any] = {"path": path, "status": status, "body": raw}
    if query:
        env["query"] = dict(query)
    return msgspec.json.encode(env)


def _bool(v: Any, default: bool) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return default


def _str(v: Any) -> str:
    if v is None or isinstance(v, (dict, list)):
        return ""
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v)


def _time(v: Any, field: str) -> int:
    if not v or not isinstance(v, str):
        return 0
    try:
        return _iso_ns(v.strip())
    except ValueError:
        raise ValueError(f"{field}: not an ISO-8601 time: {v!r}") from None


def _sides(m: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The market's two sides, long first (``marketSides``; ``long`` flags if given)."""
    sides = [s for s in (m.get("marketSides") or ()) if isinstance(s, Mapping)]
    if len(sides) == 2 and sides[0].get("long") is False and sides[1].get("long") is not False:
        sides.reverse()
    elif sides and any(s.get("long") is True for s in sides):
        longs = [s for s in sides if s.get("long") is True]
        sides = longs[:1] + [s for s in sides if s is not longs[0]]
    return sides[:2]


def _side_label(s: Mapping[str, Any]) -> str:
    d = s.get("description")
    if isinstance(d, str) and d.strip():
        return d.strip()
    team = s.get("team")
    if isinstance(team, Mapping):
        return _str(team.get("name") or team.get("safeName")).strip()
    return ""


def _team_name(s: Mapping[str, Any]) -> str:
    team = s.get("team")
    if isinstance(team, Mapping):
        n = _str(team.get("name") or team.get("safeName") or team.get("alias")).strip()
        if n:
            return n
    return _side_label(s)


def _line(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)  # a model input (see SportsMarket.line), never money
    except (TypeError, ValueError):
        return None


def normalize_market(m: Any, event: Mapping[str, Any] | None, ts: int) -> tuple[MarketInfo, MarketResolved | None]:
    """One market object (with its event, if it came inside one) -> its MarketInfo, and its
    MarketResolved when it is closed and states a ``settlement``. Raises ``ValueError`` naming the
    field for a market that cannot be traded safely (no slug, bad tick or minimum size)."""
    if not isinstance(m, Mapping):
        raise ValueError(f"market: not an object ({type(m).__name__})")
    ev: Mapping[str, Any] = event if isinstance(event, Mapping) else {}
    slug = _str(m.get("slug") or m.get("marketSlug")).strip()
    if not slug:
        raise ValueError("slug: missing")
    mid, long_id, short_id = _ids(slug)
    sides = _sides(m)
    labels = [_side_label(s) for s in sides]
    outcomes = (labels[0] or "Yes", labels[1] or "No") if len(labels) == 2 else ("Yes", "No")
    tick = _DEFAULT_TICK
    if m.get("orderPriceMinTickSize") is not None:
        tick = json_units(m["orderPriceMinTickSize"], "orderPriceMinTickSize")
        if not 0 < tick < SCALE:
            raise ValueError(f"orderPriceMinTickSize: {m['orderPriceMinTickSize']!r} outside (0, 1)")
    min_qty = _DEFAULT_MIN_QTY
    if m.get("minimumTradeQty") is not None:
        min_qty = json_units(m["minimumTradeQty"], "minimumTradeQty")
        if min_qty <= 0:
            raise ValueError(f"minimumTradeQty: {m['minimumTradeQty']!r} is not positive")
    active = _bool(m.get("active"), True)
    closed = _bool(m.get("closed"), False)
    raw_state = m.get("state") or m.get("status")
    state = state_word(raw_state) if isinstance(raw_state, str) and raw_state else ""
    if state in CLOSED_STATES:
        closed = True
    accepting = active and not closed and (state == "open" if state else True)
    event_slug = _str(m.get("eventSlug") or ev.get("slug")).strip()
    event_id = _str(m.get("eventId") or ev.get("id")).strip()
    game_id = _str(m.get("gameId") or ev.get("gameId")).strip()
    teams = tuple(n for n in (_team_name(s) for s in sides if isinstance(s.get("team"), Mapping)) if n)
    sports = None
    if game_id or teams:
        series = ev.get("series") if isinstance(ev.get("series"), Mapping) else {}
        league = ""
        for s in sides:
            t = s.get("team")
            if isinstance(t, Mapping) and t.get("league"):
                league = _str(t.get("league"))
                break
        sports = SportsMarket(
            game_id=game_id,
            market_type=_str(m.get("sportsMarketType") or m.get("marketType")),
            line=_line(m.get("line")),
            start_ts=_time(m.get("gameStartTime") or ev.get("startTime") or ev.get("startDate"), "gameStartTime"),
            league=league or _str(series.get("slug")) or _str(ev.get("seriesSlug")),
            teams=tuple(_team_name(s) for s in sides) if len(sides) == 2 else teams,
            title=_str(m.get("groupItemTitle") or m.get("outcome")),
        )
    tags = tuple(_str(t.get("slug") or t.get("label")) for t in (ev.get("tags") or ()) if isinstance(t, Mapping))
    series_slug = ev.get("series").get("slug") if isinstance(ev.get("series"), Mapping) else ev.get("seriesSlug")
    info = MarketInfo(
        ts=ts, market=mid, asset_ids=(long_id, short_id), outcomes=outcomes,
        question=_str(m.get("title") or m.get("question") or ev.get("title")), slug=slug,
        event_id=event_id, event_slug=event_slug, tick_size=tick, min_order_size=min_qty,
        end_ts=_time(m.get("endDate") or m.get("endTime"), "endDate"),
        start_ts=_time(m.get("startDate") or m.get("startTime"), "startDate"),
        active=active, closed=closed, accepting_orders=accepting, fees=FEES, version=VENUE,
        series=_str(series_slug), tags=tuple(t for t in tags if t), sports=sports, netting=True, auto_settle=True,
    )  # fmt: skip
    resolved = None
    settlement = m.get("settlement", m.get("settlementPrice"))
    if closed and settlement is not None:
        resolved = _resolved(slug, settlement, ts, _time(m.get("settledAt") or m.get("closedTime"), "settledAt"))
    return info, resolved


def _resolved(slug: str, settlement: Any, ts: int, xts: int = 0) -> MarketResolved:
    mid, long_id, short_id = _ids(slug)
    v = json_units(settlement, "settlement")
    if v == SCALE:
        win = long_id
    elif v == 0:
        win = short_id
    else:  # the portfolio settles binary outcomes only: never guess a split payout
        raise ValueError(f"settlement: {settlement!r} is neither 1 nor 0")
    outcome = "long" if win == long_id else "short"
    return MarketResolved(ts=ts, market=mid, asset_ids=(long_id, short_id), winning_asset_id=win,
                          winning_outcome=outcome, exchange_ts=xts)  # fmt: skip


def _catalog_items(body: Any) -> list[tuple[Any, Mapping[str, Any] | None]]:
    """(market, its event) pairs of a catalog body of any of the known shapes."""
    if isinstance(body, list):
        items = body
    elif isinstance(body, Mapping):
        if isinstance(body.get("markets"), list) and "slug" not in body:
            return [(m, None) for m in body["markets"]]
        if isinstance(body.get("events"), list):
            items = body["events"]
        elif isinstance(body.get("event"), Mapping):
            items = [body["event"]]
        elif isinstance(body.get("market"), Mapping):
            return [(body["market"], None)]
        elif "slug" in body and isinstance(body.get("markets"), list):
            items = [body]  # a bare event
        elif "slug" in body:
            return [(body, None)]  # a bare market
        else:
            raise ValueError(f"body: no markets or events in {sorted(body)[:8]}")
    else:
        raise ValueError(f"body: neither an object nor an array ({type(body).__name__})")
    out: list[tuple[Any, Mapping[str, Any] | None]] = []
    for e in items:
        if isinstance(e, Mapping) and isinstance(e.get("markets"), list):
            out += [(m, e) for m in e["markets"]]
        else:
            out.append((e, None))  # an array of markets
    return out


def catalog_infos(body: Any, ts: int = 0) -> tuple[list[Event], list[str]]:
    """A decoded catalog body -> (MarketInfo and MarketResolved events, problems)."""
    out: list[Event] = []
    bad: list[str] = []
    for i, (m, ev) in enumerate(_catalog_items(body)):
        try:
            info, resolved = normalize_market(m, ev, ts)
        except ValueError as exc:
            label = m.get("slug") or m.get("id") or "?" if isinstance(m, Mapping) else "?"
            bad.append(f"[{i}] {label}: {exc}")
            continue
        out.append(info)
        if resolved is not None:
            out.append(resolved)
    return out, bad


def decode_rest(msg: bytes, ts: int) -> list[Event]:
    """A ``polymarket_us.rest`` message -> events; raises :class:`FrameError` (counted)."""
    try:
        env = _ENVELOPE.decode(msg)
    except msgspec.ValidationError as exc:
        raise FrameError(f"REST envelope: {exc}", reason="schema") from None
    path = env.path.split("?", 1)[0]
    if (mm := _SETTLEMENT_PATH.fullmatch(path)) is not None:
        if env.status == 404:
            return []  # not settled yet
        _status(env, path)
        body = _ANY.decode(env.body)
        if not isinstance(body, Mapping):
            raise FrameError(f"{path}: not an object", reason="schema")
        slug = _str(body.get("slug") or body.get("marketSlug")) or mm.group(1)
        value = body.get("settlement", body.get("settlementPrice"))
        if value is None:
            return []
        try:
            return [_resolved(slug, value, ts, _time(body.get("settledAt"), "settledAt"))]
        except ValueError as exc:
            raise FrameError(f"{path}: {exc}", reason="bad_settlement") from None
    _status(env, path)
    if (mm := _BOOK_PATH.fullmatch(path)) is not None:
        try:
            ans = _BOOK_ANSWER.decode(env.body)
        except msgspec.ValidationError as exc:
            _, l_id, s_id = _ids(mm.group(1))
            raise FrameError(f"{path}: {exc}", reason="schema", asset_ids=(l_id, s_id)) from None
        if ans.marketData is None:
            raise FrameError(f"{path}: no marketData", reason="schema")
        if not ans.marketData.marketSlug:
            ans.marketData.marketSlug = mm.group(1)
        out: list[Event] = []
        oor: list[str] = []
        _book(ans.marketData, ts, out, oor)
        if oor:
            raise FrameError("; ".join(oor[:5]), reason="price_out_of_range", events=out)
        return out
    if (mm := _BBO_PATH.fullmatch(path)) is not None:
        try:
            bbo = _BBO_ANSWER.decode(env.body)
        except msgspec.ValidationError as exc:
            raise FrameError(f"{path}: {exc}", reason="schema") from None
        if bbo.marketData is None:
            raise FrameError(f"{path}: no marketData", reason="schema")
        if not bbo.marketData.marketSlug:
            bbo.marketData.marketSlug = mm.group(1)
        out = []
        _lite(bbo.marketData, ts, out)
        return out
    try:
        body = _ANY.decode(env.body)
        events, bad = catalog_infos(body, ts)
    except (msgspec.DecodeError, ValueError) as exc:
        raise FrameError(f"{path}: {exc}", reason="schema") from None
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise FrameError(f"{path}: {len(bad)} bad market(s): {'; '.join(bad[:3])}{more}", reason="bad_market",
                         events=events)  # fmt: skip
    return events


def _status(env: _Envelope, path: str) -> None:
    if not 200 <= env.status < 300:
        raise FrameError(f"{path}: HTTP {env.status}: {bytes(env.body)[:160].decode('utf-8', 'replace')}",
                         reason="rest_error")  # fmt: skip


class RestDecoder:
    """The ``polymarket_us.rest`` source (see :func:`decode_rest`)."""

    source = REST_SOURCE

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        if msg[:1] != b"{":
            if msg[:1] == b'"':
                raise FrameError(f"not a REST envelope: {msg[:60]!r}", reason="malformed")
            raise msgspec.DecodeError("not a JSON object")
        return decode_rest(msg, ts)

    __call__ = decode


class PrivateDecoder:
    """The ``polymarket_us.private`` source: journaled for the audit trail only (what the frames
    mean reaches the kernel as the executor's ``exec.pmus`` records). The frame is parsed all the
    same: one that is not JSON then raises, and the kernel journals it as a JSON string, so the
    journal stays one JSON object a line."""

    source = PRIVATE_SOURCE

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        msgspec.json.decode(msg)
        return ()

    __call__ = decode


MARKET_DECODER = MarketDecoder()
REST_DECODER = RestDecoder()
PRIVATE_DECODER = PrivateDecoder()
