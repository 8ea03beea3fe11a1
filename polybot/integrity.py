"""Book integrity: the venue's book hash and top of book checked against the local book.

Polymarket states a hash of each book (PROTOCOL.md §1.8) in every subscription-dump book and on
every ``price_change`` entry (the state after all changes with that timestamp). The kernel keeps
a :class:`polybot.bookhash.BookHasher` beside each book and, when verification is on, compares:

* a dump or REST book (it states ``last_trade_price``) when it arrives;
* a ``price_change`` run when it ends: the decoder marks each asset's last entry of a frame
  (``run_end``); a mismatch there may be a run split across frames (the server sends the final
  hash on every part), so it is only *pending* until a frame with another timestamp or a
  snapshot settles it (a print retries it with the printed price); at the end of a replay a
  pending check that still does not verify is *unsettled* (the input may have ended inside a
  split run), not failed;
* the market's last trade price, which the hash includes and which can change before its print
  arrives: the value from the dump; after a print at p, p or 1 - p; failing those, one search of
  "" and 0.001...0.999. Only when nothing verifies is it a divergence.

A divergence, a best bid/ask that differs from the venue's, a crossed book, a tick-size change, a
reconnect or a frame that failed to parse makes the book unhealthy (a ``BookHealth`` event);
the next snapshot restores it. Trade-triggered ``book`` frames (no ``last_trade_price``) are the
server's state: they replace the book and are checked only to learn the last trade price.

Everything here is deterministic (no clock, no I/O): it runs inside the kernel.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .bookhash import BookHasher, hash_tail, ltp_candidates, ltp_str
from .units import SCALE, from_units


class HashDefaults(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Hash inputs WebSocket books do not state; REST books and the catalog override them."""

    min_order_size: str = "5"
    neg_risk: bool = False


class AssetCounts:
    __slots__ = ("passed", "failed", "bbo_mismatch", "resyncs", "snapshots", "unverified", "ltp_searches",
                 "split_runs", "unhealthy", "unsettled")  # fmt: skip

    def __init__(self) -> None:
        self.passed = self.failed = self.bbo_mismatch = self.resyncs = self.snapshots = 0
        self.unverified = self.ltp_searches = self.split_runs = self.unhealthy = self.unsettled = 0

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class MarketHash:
    """Per market: the last trade price the venue hashes with, and the hash meta."""

    __slots__ = ("ltp", "print_cands", "min_order_size", "neg_risk", "books")

    def __init__(self, defaults: HashDefaults) -> None:
        self.ltp = ""
        self.print_cands: tuple[str, ...] = ()
        self.min_order_size = defaults.min_order_size
        self.neg_risk = defaults.neg_risk
        self.books: list[Any] = []


class Integrity:
    """Verification state and counters; the kernel's book handlers call it."""

    def __init__(self, verify: bool = True, defaults: HashDefaults | None = None) -> None:
        self.verify = verify
        self.defaults = defaults or HashDefaults()
        self.markets: dict[str, MarketHash] = {}
        self.counts: dict[str, AssetCounts] = {}
        self.meta_overrides: dict[str, tuple[str, bool]] = {}  # market -> (min size, neg risk)

    # ------------------------------------------------------------------ setup

    def counts_for(self, asset_id: str) -> AssetCounts:
        c = self.counts.get(asset_id)
        if c is None:
            c = self.counts[asset_id] = AssetCounts()
        return c

    def market(self, b: Any) -> MarketHash:
        hc = b.hc
        if hc is not None and hc.mh is not None:
            return hc.mh  # found once per hasher (the hot path)
        key = b.market or b.asset_id
        m = self.markets.get(key)
        if m is None:
            m = self.markets[key] = MarketHash(self.defaults)
            meta = self.meta_overrides.get(key)
            if meta is not None:
                m.min_order_size, m.neg_risk = meta
        if b not in m.books:
            m.books.append(b)
        if hc is not None:
            hc.mh = m
        return m

    def set_catalog_meta(self, market: str, min_order_size: str, neg_risk: bool) -> None:
        """From the catalog, also for a market whose books have not arrived yet."""
        self.meta_overrides[market] = (min_order_size, neg_risk)
        m = self.markets.get(market)
        if m is not None:
            self.set_meta(m, min_order_size, neg_risk)

    def set_meta(self, m: MarketHash, min_order_size: str, neg_risk: bool) -> None:
        """The market's ``min_order_size`` and ``neg_risk`` as the venue writes them into the
        hash (from the catalog or a REST book)."""
        if (m.min_order_size, m.neg_risk) != (min_order_size, neg_risk):
            m.min_order_size, m.neg_risk = min_order_size, neg_risk
            self._invalidate(m)

    @staticmethod
    def _invalidate(m: MarketHash) -> None:
        for b in m.books:
            b.tail = None

    def set_ltp(self, m: MarketHash, ltp: str) -> None:
        if m.ltp != ltp:
            m.ltp = ltp
            self._invalidate(m)

    # ------------------------------------------------------------------ hashing

    def tail(self, b: Any, m: MarketHash, ltp: str | None = None) -> bytes:
        if ltp is None:
            t = b.tail
            if t is None:
                t = b.tail = hash_tail(m.min_order_size, from_units(b.tick_size or 10_000), m.neg_risk, m.ltp, b.version)
            return t
        return hash_tail(m.min_order_size, from_units(b.tick_size or 10_000), m.neg_risk, ltp, b.version)

    @staticmethod
    def digest(b: Any, xts: int, tail: bytes) -> str:
        hc: BookHasher = b.hc
        return hc.digest(str(xts // 1_000_000), tail)

    def matches(self, b: Any, xts: int, expected: str, search: bool) -> bool:
        """Does the book hash to ``expected`` with the market's last trade price, or with one
        of its candidates (the last print's p and 1 - p; with ``search``, all of them)? A
        candidate that verifies becomes the market's value."""
        m = self.market(b)
        if self.digest(b, xts, self.tail(b, m)) == expected:
            return True
        tried = {m.ltp}
        for cand in m.print_cands:
            if cand not in tried:
                tried.add(cand)
                if self.digest(b, xts, self.tail(b, m, cand)) == expected:
                    self.set_ltp(m, cand)
                    return True
        if search:
            self.counts_for(b.asset_id).ltp_searches += 1
            for cand in ltp_candidates():
                if cand not in tried and self.digest(b, xts, self.tail(b, m, cand)) == expected:
                    self.set_ltp(m, cand)
                    return True
        return False

    @staticmethod
    def on_print(m: MarketHash, price: int) -> None:
        m.print_cands = (ltp_str(price), ltp_str(SCALE - price))

    def summary(self) -> dict[str, Any]:
        per = {a: c.to_dict() for a, c in sorted(self.counts.items())}
        total: dict[str, int] = {}
        for c in per.values():
            for k, v in c.items():
                total[k] = total.get(k, 0) + v
        return {"verify": self.verify, "total": total, "assets": per}
