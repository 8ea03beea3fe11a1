"""L2 order books in exact base units.

One :class:`OrderBook` per asset: price -> size on each side in ``SortedDict``s (O(log n) update),
best bid/ask cached (O(1) read), depth walks for the cost of N shares and the size available up
to a price. A snapshot replaces the book; a delta sets the absolute size at a price (0 removes).

:class:`Books` holds every asset's book plus its health (a book is usable only when healthy) and
its age, and is what strategies and risk read through the context (read-only by convention:
only the kernel's handlers mutate it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sortedcontainers import SortedDict

from .units import SCALE

Level = tuple[int, int]
_dset = dict.__setitem__


class OrderBook:
    __slots__ = ("asset_id", "market", "bids", "asks", "best_bid", "best_ask", "tick_size",
                 "updated_ts", "healthy", "unhealthy_reason", "hash", "last_trade_price",
                 "exchange_ts", "version", "hc", "tail", "pending", "pending_xts")  # fmt: skip

    def __init__(self, asset_id: str, market: str = "") -> None:
        self.asset_id = asset_id
        self.market = market
        self.bids: SortedDict = SortedDict()  # ascending; best = last
        self.asks: SortedDict = SortedDict()  # ascending; best = first
        self.best_bid = 0  # 0 = no bid
        self.best_ask = 0  # 0 = no ask
        self.tick_size = 0
        self.updated_ts = 0
        self.healthy = False
        self.unhealthy_reason = "no snapshot yet"
        self.hash = ""
        self.last_trade_price = ""
        self.exchange_ts = 0  # the venue's time of the last change (ns)
        self.version = ""  # "v2" for Protocol-V2 positions
        # integrity (polybot.integrity): hash renderer, cached hash tail, a pending mismatch
        self.hc = None
        self.tail: bytes | None = None
        self.pending = ""
        self.pending_xts = 0

    # ------------------------------------------------------------------ mutation (kernel only)

    def replace(self, bids: Iterable[Level], asks: Iterable[Level], ts: int = 0) -> None:
        self.bids = SortedDict((p, s) for p, s in bids if s > 0)
        self.asks = SortedDict((p, s) for p, s in asks if s > 0)
        self.best_bid = self.bids.peekitem(-1)[0] if self.bids else 0
        self.best_ask = self.asks.peekitem(0)[0] if self.asks else 0
        self.updated_ts = ts

    def set_bid(self, price: int, size: int) -> None:
        bids = self.bids
        if size > 0:  # like replace(): a size <= 0 is no level
            if price in bids:
                _dset(bids, price, size)  # an existing level: the key order does not change
            else:
                bids[price] = size
            if price > self.best_bid:
                self.best_bid = price
        elif price in bids:
            del bids[price]
            if price == self.best_bid:
                self.best_bid = bids.peekitem(-1)[0] if bids else 0

    def set_ask(self, price: int, size: int) -> None:
        asks = self.asks
        if size > 0:
            if price in asks:
                _dset(asks, price, size)
            else:
                asks[price] = size
            if not self.best_ask or price < self.best_ask:
                self.best_ask = price
        elif price in asks:
            del asks[price]
            if price == self.best_ask:
                self.best_ask = asks.peekitem(0)[0] if asks else 0

    # ------------------------------------------------------------------ reads

    def age_ns(self, now: int) -> int:
        """Time since the book last changed (kernel time, ns)."""
        return now - self.updated_ts

    @property
    def crossed(self) -> bool:
        return bool(self.best_bid and self.best_ask and self.best_bid >= self.best_ask)

    @property
    def mid(self) -> int:
        """Midpoint in base units (rounded down), 0 if a side is empty."""
        if not (self.best_bid and self.best_ask):
            return 0
        return (self.best_bid + self.best_ask) // 2

    @property
    def spread(self) -> int:
        if not (self.best_bid and self.best_ask):
            return 0
        return self.best_ask - self.best_bid

    def bid_size(self, price: int | None = None) -> int:
        return self.bids.get(self.best_bid if price is None else price, 0)

    def ask_size(self, price: int | None = None) -> int:
        return self.asks.get(self.best_ask if price is None else price, 0)

    def iter_asks(self) -> Iterator[Level]:
        """Asks best (lowest) first."""
        return iter(self.asks.items())

    def iter_bids(self) -> Iterator[Level]:
        """Bids best (highest) first."""
        bids = self.bids
        return ((p, bids[p]) for p in reversed(bids))

    def depth(self, side: str, n: int = 5) -> list[Level]:
        it = self.iter_bids() if side in ("BID", "bids", "SELL") else self.iter_asks()
        out = []
        for lvl in it:
            out.append(lvl)
            if len(out) >= n:
                break
        return out

    def cost_to_buy(self, size: int) -> tuple[int, int, int]:
        """Walk the asks for ``size`` shares: (filled, cost rounded up, worst price)."""
        return _walk(self.iter_asks(), size, up=True)

    def proceeds_to_sell(self, size: int) -> tuple[int, int, int]:
        """Walk the bids for ``size`` shares: (filled, proceeds rounded down, worst price)."""
        return _walk(self.iter_bids(), size, up=False)

    def size_up_to(self, side: str, limit: int) -> int:
        """Shares available to a BUY at prices <= limit (side="BUY"), or to a SELL at >= limit."""
        total = 0
        if side == "BUY":
            for p, s in self.iter_asks():
                if p > limit:
                    break
                total += s
        else:
            for p, s in self.iter_bids():
                if p < limit:
                    break
                total += s
        return total

    def to_state(self) -> dict:
        return {
            "asset_id": self.asset_id, "market": self.market,
            "bids": list(self.bids.items()), "asks": list(self.asks.items()),
            "tick_size": self.tick_size, "updated_ts": self.updated_ts, "healthy": self.healthy,
            "unhealthy_reason": self.unhealthy_reason, "hash": self.hash,
            "last_trade_price": self.last_trade_price, "exchange_ts": self.exchange_ts,
            "version": self.version,
        }  # fmt: skip

    @classmethod
    def from_state(cls, st: dict) -> OrderBook:
        b = cls(st["asset_id"], st.get("market", ""))
        b.replace([tuple(x) for x in st["bids"]], [tuple(x) for x in st["asks"]], st["updated_ts"])
        b.tick_size = st.get("tick_size", 0)
        b.healthy = st.get("healthy", False)
        b.unhealthy_reason = st.get("unhealthy_reason", "")
        b.hash = st.get("hash", "")
        b.last_trade_price = st.get("last_trade_price", "")
        b.exchange_ts = st.get("exchange_ts", 0)
        b.version = st.get("version", "")
        return b


def vwap(filled: int, cost: int) -> int:
    """Volume-weighted average price in base units (rounded down); 0 if nothing filled."""
    return cost * SCALE // filled if filled else 0


def _walk(levels: Iterator[Level], size: int, up: bool) -> tuple[int, int, int]:
    filled = 0
    num = 0  # sum(price * shares) in units^2
    worst = 0
    for p, s in levels:
        take = min(s, size - filled)
        num += p * take
        filled += take
        worst = p
        if filled >= size:
            break
    cost = -((-num) // SCALE) if up else num // SCALE
    return filled, cost, worst


class Books:
    """All books by asset id (the context's read-only view)."""

    def __init__(self) -> None:
        self._books: dict[str, OrderBook] = {}
        #: ``get(asset_id) -> OrderBook | None`` (the dict's own method: no Python frame)
        self.get = self._books.get

    def __getitem__(self, asset_id: str) -> OrderBook:
        return self._books[asset_id]

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self._books

    def __iter__(self) -> Iterator[str]:
        return iter(self._books)

    def __len__(self) -> int:
        return len(self._books)

    def items(self) -> Iterable[tuple[str, OrderBook]]:
        return self._books.items()

    def ensure(self, asset_id: str, market: str = "") -> OrderBook:
        b = self._books.get(asset_id)
        if b is None:
            b = self._books[asset_id] = OrderBook(asset_id, market)
        elif market and not b.market:
            b.market = market
        return b

    def is_healthy(self, asset_id: str) -> bool:
        b = self._books.get(asset_id)
        return b is not None and b.healthy

    def to_state(self) -> list[dict]:
        return [self._books[k].to_state() for k in sorted(self._books)]

    def restore(self, states: list[dict]) -> None:
        self._books.clear()  # in place: the kernel holds this dict
        self._books.update((s["asset_id"], OrderBook.from_state(s)) for s in states)
