"""Polymarket's order-book hash (PROTOCOL.md §1.8), computed from a local book.

``sha1`` of the compact JSON of the book summary with the key order ``market, asset_id,
timestamp, hash:"", bids, asks, min_order_size, tick_size, neg_risk, last_trade_price`` (and
``version`` last, for Protocol-V2 positions), bids ascending and asks descending (worst first,
the wire order), every value the server's string. Prices and sizes are written the way the
server writes them: the shortest exact decimal (``"0.5"``, ``"92790"``, ``"634.49"``).
``last_trade_price`` is a 3-decimal string (``"0.490"``) or ``""``.

The hot path (:class:`BookHasher`) keeps each level's JSON fragment beside the book and each
side's joined fragments, so a change re-renders one level and re-joins one side before the sha1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from .units import SCALE, from_units

_sha1 = hashlib.sha1

#: Rendered decimal strings of base-unit values (prices repeat; bounded cache).
_STR: dict[int, str] = {}


def units_str(v: int) -> str:
    """Base units as the server writes them (shortest exact decimal)."""
    s = _STR.get(v)
    if s is None:
        s = from_units(v)
        if len(_STR) < 200_000:
            _STR[v] = s
    return s


def ltp_str(price: int) -> str:
    """A last trade price (base units) as the 3-decimal string the hash uses."""
    q, r = divmod(price, SCALE)
    return f"{q}.{r // 1000:03d}"


def ltp_candidates() -> list[str]:
    """Every value the market's last trade price can have in the hash: "" and 0.001..0.999."""
    return [""] + [f"0.{i:03d}" for i in range(1, 1000)]


def book_hash_wire(
    market: str, asset_id: str, timestamp: str, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]],
    min_order_size: str, tick_size: str, neg_risk: bool, last_trade_price: str, version: str = "",
) -> str:  # fmt: skip
    """The reference form, from wire strings (bids ascending, asks descending as sent)."""
    payload = {
        "market": market, "asset_id": asset_id, "timestamp": timestamp, "hash": "",
        "bids": [{"price": p, "size": s} for p, s in bids],
        "asks": [{"price": p, "size": s} for p, s in asks],
        "min_order_size": min_order_size, "tick_size": tick_size, "neg_risk": neg_risk,
        "last_trade_price": last_trade_price,
    }  # fmt: skip
    if version:
        payload["version"] = version
    return _sha1(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def _frag(price: int, size: int) -> bytes:
    return b'{"price":"%s","size":"%s"}' % (units_str(price).encode(), units_str(size).encode())


def _q(s: str) -> bytes:
    return json.dumps(s).encode()


class BookHasher:
    """The hash payload of one :class:`polybot.book.OrderBook`, kept in step with it.

    Each side's level fragments sit in a list in price order (found by bisection in the book's
    sorted dict), so a change re-renders one level and re-joins one side; the other side's
    joined bytes are reused. Call :meth:`bid_changed`/:meth:`ask_changed` after every change
    of the book, :meth:`reset` after a replace.
    """

    __slots__ = ("book", "head", "bid_list", "ask_list", "bids_joined", "asks_joined", "mh")

    def __init__(self, book: Any) -> None:
        self.book = book
        self.mh: Any = None  # the market's hash state (polybot.integrity), once looked up
        self.head = b'{"market":%s,"asset_id":%s,"timestamp":"' % (_q(book.market), _q(book.asset_id))
        self.reset()

    def reset(self) -> None:
        b = self.book
        self.bid_list = [_frag(p, s) for p, s in b.bids.items()]  # ascending: the wire order
        self.ask_list = [_frag(p, s) for p, s in b.asks.items()]  # ascending: joined reversed
        self.bids_joined: bytes | None = None
        self.asks_joined: bytes | None = None

    def bid_changed(self, price: int, size: int) -> None:
        _changed(self.book.bids, self.bid_list, price, size)
        self.bids_joined = None

    def ask_changed(self, price: int, size: int) -> None:
        _changed(self.book.asks, self.ask_list, price, size)
        self.asks_joined = None

    def digest(self, timestamp: str, tail: bytes) -> str:
        bj = self.bids_joined
        if bj is None:
            bj = self.bids_joined = b",".join(self.bid_list)
        aj = self.asks_joined
        if aj is None:
            aj = self.asks_joined = b",".join(reversed(self.ask_list))
        return _sha1(b"".join((self.head, timestamp.encode(), b'","hash":"","bids":[', bj, b'],"asks":[', aj, tail))).hexdigest()


def _changed(levels: Any, lst: list[bytes], price: int, size: int) -> None:
    """``levels`` (a SortedDict) already holds the change; bring ``lst`` in line with it."""
    if size > 0:
        i = levels.bisect_left(price)
        if len(lst) < len(levels):
            lst.insert(i, _frag(price, size))
        else:
            lst[i] = _frag(price, size)
    elif len(lst) > len(levels):  # the level was removed
        del lst[levels.bisect_left(price)]


def hash_tail(min_order_size: str, tick_size: str, neg_risk: bool, last_trade_price: str, version: str = "") -> bytes:
    """The part of the payload after the asks: ``],"min_order_size":...}``."""
    t = b'],"min_order_size":%s,"tick_size":%s,"neg_risk":%s,"last_trade_price":%s' % (
        _q(min_order_size), _q(tick_size), b"true" if neg_risk else b"false", _q(last_trade_price))
    if version:
        t += b',"version":%s' % _q(version)
    return t + b"}"
