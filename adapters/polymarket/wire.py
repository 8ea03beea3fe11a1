"""Polymarket market-channel frames -> polybot events (PROTOCOL.md §1).

The decoder is pure (bytes in, events out, no state), so decoding is identical live and in
replay. It reads every frame shape the channel sends: one JSON object, a JSON array (the
subscription dump) and the text ``PONG``; the ``event_type``s ``book``, ``price_change`` (the
current ``price_changes[]`` schema and both legacy schemas: the 2024 single level and
``changes[]``), ``last_trade_price``, ``tick_size_change``, ``best_bid_ask``, ``new_market`` and
``market_resolved``; books of Protocol-V2 positions (``"version":"v2"``).

Bad input never reaches a book: a price outside (0, 1), a negative size, an unparseable number
or timestamp, an unknown side or ``event_type`` make the decoder raise
:class:`polybot.kernel.FrameError` naming the reason and the assets concerned; the kernel counts
and logs it once, marks those books unhealthy, and still publishes the good elements of an array.

Sources: ``polymarket.market`` (WebSocket frames, :data:`DECODER`) and ``polymarket.book``
(REST ``/book`` and ``/books`` responses, :data:`REST_DECODER`).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from polybot.events import (
    BestBidAsk,
    BookDelta,
    BookSnapshot,
    Event,
    MarketResolved,
    TickSizeChange,
    TradePrint,
)
from polybot.kernel import FrameError
from polybot.units import SCALE, to_units

MS = 1_000_000  # ns per ms


class _Level(msgspec.Struct):
    price: str
    size: str


class _Entry(msgspec.Struct):
    asset_id: str
    price: str
    size: str
    side: str
    hash: str = ""
    best_bid: str | None = None
    best_ask: str | None = None


class _Change(msgspec.Struct):
    price: str
    size: str
    side: str


class _Frame(msgspec.Struct, kw_only=True):
    """Every field any market-channel frame (or REST book) carries; absent = default."""

    event_type: str = ""
    market: str = ""
    asset_id: str = ""
    timestamp: str = ""
    hash: str = ""
    # book / REST book
    bids: list[_Level] | None = None
    asks: list[_Level] | None = None
    tick_size: str | None = None
    last_trade_price: str | None = None
    min_order_size: str | None = None
    neg_risk: bool | None = None
    version: str = ""
    # price_change
    price_changes: list[_Entry] | None = None
    changes: list[_Change] | None = None
    # legacy single-level price_change, last_trade_price
    price: str = ""
    size: str = ""
    side: str = ""
    fee_rate_bps: str = ""
    transaction_hash: str = ""
    # tick_size_change
    new_tick_size: str = ""
    old_tick_size: str = ""
    # best_bid_ask
    best_bid: str | None = None
    best_ask: str | None = None
    # market_resolved
    assets_ids: list[str] | None = None
    winning_asset_id: str = ""
    winning_outcome: str = ""


class _PriceChange(msgspec.Struct):
    """The hot path's frame: a current-schema price_change only."""

    market: str = ""
    price_changes: list[_Entry] = []
    timestamp: str = ""
    event_type: str = ""


_FRAME = msgspec.json.Decoder(_Frame)
_PRICE_CHANGE = msgspec.json.Decoder(_PriceChange)
_FRAMES = msgspec.json.Decoder(list[_Frame])
_ANY = msgspec.json.Decoder()

# --------------------------------------------------------------------------- numbers

_POW10 = tuple(10 ** (6 - n) for n in range(7))
_PX: dict[str, int] = {}
_CACHE_MAX = 100_000


def _price(s: str) -> int:
    """A price strictly inside (0, 1), exact."""
    v = _PX.get(s)
    if v is None:
        v = _exact(s)
        if not 0 < v < SCALE:
            raise ValueError(f"price {s!r} outside (0, 1)")
        if len(_PX) < _CACHE_MAX:
            _PX[s] = v
    return v


def _exact(s: str) -> int:
    """Plain decimal text -> base units, exact. The common forms take a fast path: at most 9
    integer digits and 6 decimals is below 1e15 base units (< 2**53), where the double nearest
    to the text, times 1e6, is within 0.5 of the exact integer, so rounding it is exact."""
    if s.isdigit() and s.isascii():
        return int(s) * SCALE
    i = s.find(".")
    if 0 < i <= 9 and len(s) - i <= 7 and s.isascii() and s.replace(".", "", 1).isdigit():
        return int(float(s) * 1e6 + 0.5)
    return to_units(s)  # anything else: the strict parser decides (and names the problem)


def _size(s: str) -> int:
    """A size >= 0, exact."""
    v = _exact(s)
    if v < 0:
        raise ValueError(f"negative size {s!r}")
    return v


def _top(s: str | None) -> int:
    """A best bid/ask: -1 when not given; "0"/"1" (an empty side) and prices in (0, 1)."""
    if s is None or s == "":
        return -1
    v = _PX.get(s)
    if v is None:
        v = _exact(s)
        if not 0 <= v <= SCALE:
            raise ValueError(f"best bid/ask {s!r} outside [0, 1]")
        if 0 < v < SCALE and len(_PX) < _CACHE_MAX:
            _PX[s] = v
    return v


def _tick(s: str) -> int:
    v = to_units(s)
    if not 0 < v < SCALE:
        raise ValueError(f"tick size {s!r} outside (0, 1)")
    return v


def _ms(s: str) -> int:
    if not (s.isascii() and s.isdigit()):
        raise ValueError(f"timestamp {s!r} is not integer milliseconds")
    return int(s) * MS


_SIDE = {"BUY": "BID", "SELL": "ASK"}

# --------------------------------------------------------------------------- per event type


def _book(f: _Frame, ts: int) -> BookSnapshot:
    if not f.asset_id:
        raise ValueError("book without asset_id")
    bids = tuple((_price(x.price), _size(x.size)) for x in f.bids or ())
    asks = tuple((_price(x.price), _size(x.size)) for x in f.asks or ())
    return BookSnapshot(
        ts=ts, asset_id=f.asset_id, market=f.market, exchange_ts=_ms(f.timestamp), bids=bids, asks=asks,
        hash=f.hash, tick_size=_tick(f.tick_size) if f.tick_size else 0, last_trade_price=f.last_trade_price,
        version=f.version, min_order_size=f.min_order_size or "", neg_risk=f.neg_risk,
    )  # fmt: skip


def _price_change(f: _Frame, ts: int, out: list[Event]) -> None:
    xts = _ms(f.timestamp)
    market = f.market
    pcs = f.price_changes
    if pcs is not None:
        n = len(pcs)
        for i, e in enumerate(pcs):
            side = _SIDE.get(e.side)
            if side is None:
                raise ValueError(f"unknown side {e.side!r}")
            aid = e.asset_id
            # the hash is checked once per asset and frame: after its last entry here
            last = i == n - 1 or all(x.asset_id != aid for x in pcs[i + 1 :])
            out.append(BookDelta(ts=ts, asset_id=aid, market=market, exchange_ts=xts, side=side,  # type: ignore[arg-type]
                                 price=_price(e.price), size=_size(e.size), best_bid=_top(e.best_bid),
                                 best_ask=_top(e.best_ask), hash=e.hash, run_end=last))  # fmt: skip
        return
    if not f.asset_id:
        raise ValueError("price_change without price_changes or asset_id")
    if f.changes is not None:  # legacy changes[] (until 2025-09-15): root asset_id and hash
        n = len(f.changes)
        for i, c in enumerate(f.changes):
            side = _SIDE.get(c.side)
            if side is None:
                raise ValueError(f"unknown side {c.side!r}")
            out.append(BookDelta(ts=ts, asset_id=f.asset_id, market=market, exchange_ts=xts, side=side,  # type: ignore[arg-type]
                                 price=_price(c.price), size=_size(c.size), hash=f.hash, run_end=i == n - 1))  # fmt: skip
        return
    side = _SIDE.get(f.side)  # legacy single level (2024)
    if side is None:
        raise ValueError(f"unknown side {f.side!r}")
    out.append(BookDelta(ts=ts, asset_id=f.asset_id, market=market, exchange_ts=xts, side=side,  # type: ignore[arg-type]
                         price=_price(f.price), size=_size(f.size), hash=f.hash))  # fmt: skip


def _trade(f: _Frame, ts: int) -> TradePrint:
    side = f.side if f.side in ("BUY", "SELL") else None
    fee = int(f.fee_rate_bps) if f.fee_rate_bps else 0
    return TradePrint(ts=ts, asset_id=f.asset_id, market=f.market, exchange_ts=_ms(f.timestamp),
                      price=_price(f.price), size=_size(f.size), side=side, fee_rate_bps=fee,  # type: ignore[arg-type]
                      tx_hash=f.transaction_hash)  # fmt: skip


def _frame_events(f: _Frame, ts: int, msg: bytes, out: list[Event]) -> None:
    et = f.event_type
    if et == "price_change":
        _price_change(f, ts, out)
    elif et == "book":
        out.append(_book(f, ts))
    elif et == "last_trade_price":
        out.append(_trade(f, ts))
    elif et == "tick_size_change":
        out.append(TickSizeChange(ts=ts, asset_id=f.asset_id, market=f.market, exchange_ts=_ms(f.timestamp),
                                  old_tick_size=_tick(f.old_tick_size) if f.old_tick_size else 0,
                                  new_tick_size=_tick(f.new_tick_size)))  # fmt: skip
    elif et == "best_bid_ask":
        out.append(BestBidAsk(ts=ts, asset_id=f.asset_id, market=f.market, exchange_ts=_ms(f.timestamp),
                              best_bid=max(_top(f.best_bid), 0), best_ask=max(_top(f.best_ask), 0)))  # fmt: skip
    elif et == "market_resolved":
        out.append(MarketResolved(ts=ts, market=f.market, asset_ids=tuple(f.assets_ids or ()),
                                  winning_asset_id=f.winning_asset_id, winning_outcome=f.winning_outcome,
                                  exchange_ts=_ms(f.timestamp) if f.timestamp else 0))  # fmt: skip
    elif et == "new_market":
        from .gamma import normalize_new_market

        out.append(normalize_new_market(_new_market_obj(msg, f), ts))
    else:
        raise FrameError(f"unknown event_type {et!r}", reason="unknown_event_type")


def _new_market_obj(msg: bytes, f: _Frame) -> dict:
    obj = _ANY.decode(msg)
    if isinstance(obj, list):  # new_market inside an array: find it by its market id
        obj = next(o for o in obj if isinstance(o, dict) and o.get("event_type") == "new_market"
                   and o.get("market") == f.market)  # fmt: skip
    return obj


def _assets(f: _Frame) -> list[str]:
    if f.price_changes:
        return list(dict.fromkeys(e.asset_id for e in f.price_changes))
    return [f.asset_id] if f.asset_id else []


def _apply(frames: list[_Frame], ts: int, msg: bytes) -> list[Event]:
    out: list[Event] = []
    problems: list[str] = []
    bad_assets: list[str] = []
    reason = ""
    for f in frames:
        n = len(out)
        try:
            _frame_events(f, ts, msg, out)
        except FrameError as exc:
            del out[n:]
            problems.append(str(exc))
            reason = reason or exc.reason
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            del out[n:]  # never a partly applied frame
            aids = _assets(f)
            bad_assets += aids
            problems.append(f"{f.event_type or '?'} {','.join(a[:12] for a in aids)}: {exc}")
            reason = reason or "bad_value"
    if problems:
        raise FrameError("; ".join(problems), reason=reason, asset_ids=bad_assets, events=out)
    return out


class _Loose(msgspec.Struct):
    asset_id: str = ""
    price_changes: list[dict] | None = None


_LOOSE = msgspec.json.Decoder(_Loose | list[_Loose])


def _schema_error(msg: bytes, exc: msgspec.ValidationError) -> FrameError:
    """A frame of the wrong shape: name the assets it concerns, if they can be read, so their
    books (which missed the change) become unhealthy."""
    assets: list[str] = []
    try:
        obj = _LOOSE.decode(msg)
        for f in obj if isinstance(obj, list) else [obj]:
            if f.asset_id:
                assets.append(f.asset_id)
            for e in f.price_changes or ():
                a = e.get("asset_id") if isinstance(e, dict) else None
                if isinstance(a, str) and a:
                    assets.append(a)
    except msgspec.MsgspecError:
        pass
    return FrameError(str(exc), reason="schema", asset_ids=list(dict.fromkeys(assets)))


class MarketDecoder:
    """The ``polymarket.market`` source: raw WebSocket frames as received."""

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        c = msg[:1]
        if c == b"{":
            try:  # a current-schema price_change? (anything else decodes to no entries here)
                p = _PRICE_CHANGE.decode(msg)
            except msgspec.ValidationError as exc:
                raise _schema_error(msg, exc) from None
            pcs = p.price_changes
            if len(pcs) == 1 and p.event_type == "price_change":
                # the hot path: one level of one asset (else the general path, which also
                # names any problem precisely)
                e = pcs[0]
                side = _SIDE.get(e.side)
                t = p.timestamp
                sz = e.size
                if sz.isdigit() and sz.isascii():
                    sz = int(sz) * SCALE
                else:
                    i = sz.find(".")
                    if 0 < i <= 9 and len(sz) - i <= 7 and sz.isascii() and sz.replace(".", "", 1).isdigit():
                        sz = int(float(sz) * 1e6 + 0.5)  # exact here: see _exact
                if side is not None and sz.__class__ is int and t.isdigit() and t.isascii() and e.best_bid and e.best_ask:
                    try:
                        return (BookDelta(ts=ts, asset_id=e.asset_id, market=p.market, exchange_ts=int(t) * MS,
                                          side=side, price=_PX.get(e.price) or _price(e.price), size=sz,  # type: ignore[arg-type]
                                          best_bid=_PX.get(e.best_bid) or _top(e.best_bid),
                                          best_ask=_PX.get(e.best_ask) or _top(e.best_ask), hash=e.hash),)  # fmt: skip
                    except ValueError:
                        pass  # the general path names the problem
            try:
                f = _FRAME.decode(msg)
            except msgspec.ValidationError as exc:
                raise _schema_error(msg, exc) from None
            return _apply([f], ts, msg)
        if c == b"[":
            try:
                frames = _FRAMES.decode(msg)
            except msgspec.ValidationError as exc:
                raise _schema_error(msg, exc) from None
            return _apply(frames, ts, msg)
        if c == b'"':  # a text frame, journaled as a JSON string ("PONG")
            text = msgspec.json.decode(msg)
            if text == "PONG" or text == "PING":
                return ()
            raise FrameError(f"unexpected text frame {text[:40]!r}", reason="malformed")
        if msg == b"PONG":
            raise msgspec.DecodeError("text frame")  # the kernel journals it as a JSON string
        stripped = msg.strip()
        if stripped != msg and stripped[:1] in (b"{", b"["):
            return self.decode(stripped, ts)
        raise msgspec.DecodeError("not a JSON frame")

    __call__ = decode

    @staticmethod
    def bare_ts(msg: bytes) -> int | None:
        """The frame's own time (ns) for recordings of bare frames; None for PONG."""
        i = msg.find(b'"timestamp":')
        if i < 0:
            return None
        j = msg.find(b'"', i + 12)
        if msg[i + 12 : j].strip():  # not a string value
            return None
        k = msg.find(b'"', j + 1)
        v = msg[j + 1 : k]
        return int(v) * MS if v.isdigit() else None


class RestBookDecoder:
    """The ``polymarket.book`` source: a REST ``/book`` object or a ``/books`` array."""

    def decode(self, msg: bytes, ts: int) -> Sequence[Event]:
        c = msg[:1]
        if c == b"[":
            frames = _FRAMES.decode(msg)
        elif c == b"{":
            f = _FRAME.decode(msg)
            if not f.asset_id:  # {"error": ...}
                raise FrameError(f"no book in REST response: {msg[:120]!r}", reason="rest_error")
            frames = [f]
        else:
            raise msgspec.DecodeError("not a JSON response")
        out: list[Event] = []
        bad: list[str] = []
        bad_assets: list[str] = []
        for f in frames:
            if not f.asset_id:
                bad.append("a book without asset_id")
                continue
            try:
                out.append(_book(f, ts))
            except ValueError as exc:
                bad.append(f"{f.asset_id[:12]}: {exc}")
                bad_assets.append(f.asset_id)
        if bad:
            raise FrameError("; ".join(bad), asset_ids=bad_assets, events=out)
        return out

    __call__ = decode


DECODER = MarketDecoder()
REST_DECODER = RestBookDecoder()
