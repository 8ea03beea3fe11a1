"""Deterministic generator of the quoting strategies' recordings (source ``events``).

Run from the repository root: ``.venv/bin/python recordings/make_quoting.py`` (optionally an output
directory). Same code, same bytes. Each recording is one binary market: a ``MarketInfo`` (fees 4 %,
25 % maker rebate, tick 0.01, minimum 5 shares), then the two tokens' books as mirrors of each
other (a YES bid at p is a NO ask at 1 - p, same size: PROTOCOL §8), level changes as
``BookDelta`` pairs (every YES change, then the mirrored NO changes, each carrying the top of book
after it) and trades as ``TradePrint`` of the YES token after the level shrink that they caused (the
order in which Polymarket sends them). Inputs are 0.3-0.9 s apart.

* ``spread-capture.jsonl.gz`` (~11 min): a thin market with a 6-10 tick spread, takers hitting
  the bid and lifting the ask in turn (so quotes inside the spread fill and round-trip), then a
  selling wave that walks the price 10 ticks down (an adverse move for a long inventory), then
  calm trading around the new level.
* ``spread-capture-tight.jsonl.gz``: the same market on another day, liquid: a 1-2 tick spread,
  a level taken by a trade refilled at once: nothing to capture.
* ``market-making.jsonl.gz`` (~9 min): a mid oscillating +-5 ticks around 0.50 (90 s period)
  with a 6-tick touch and two-sided taker flow, and a volatile burst of 40 inputs where the mid
  jumps 2-5 ticks at a time.
* ``market-making-adverse.jsonl.gz``: calm two-sided trading, then a one-directional selling
  trend (-30 ticks in ~55 s, 90 % of the takers selling), then the cases where quotes must come
  down: a missed update (the venue's best bid disagrees with the book: unhealthy until the resync
  snapshot), a crossed book (unhealthy until the next snapshot; trades go on meanwhile), a feed
  disconnect (unhealthy until the resync snapshots), a ``FeedStale`` notice, and a 40 s gap with
  no data at all (a stale book).
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from polybot.events import (  # noqa: E402
    ENCODER,
    BookDelta,
    BookSnapshot,
    Event,
    FeedDisconnected,
    FeedStale,
    FeeSchedule,
    MarketInfo,
    TradePrint,
)
from polybot.synthetic import write_stream  # noqa: E402

SCALE = 1_000_000
TICK = 10_000
SHARE = 1_000_000
START_NS = 1_790_000_000_000_000_000
MS = 1_000_000


def token_id(label: str) -> str:
    """A 77-digit decimal token id (the shape of Polymarket's), stable for a label."""
    return str(int.from_bytes(hashlib.sha256(label.encode()).digest(), "big"))[:77].rjust(77, "1")


def market_id(label: str) -> str:
    return "0x" + hashlib.sha256(("market:" + label).encode()).hexdigest()


class Gen:
    """One binary market's mirrored books and the recording of its changes."""

    def __init__(self, label: str, seed: int, question: str) -> None:
        self.rnd = random.Random(seed)
        self.yes = token_id(label + ":yes")
        self.no = token_id(label + ":no")
        self.market = market_id(label)
        self.ts = START_NS
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.out: list[tuple[int, str, bytes]] = []
        info = MarketInfo(market=self.market, asset_ids=(self.yes, self.no), outcomes=("Yes", "No"),
                          question=question, slug=label, tick_size=TICK, min_order_size=5 * SHARE,
                          fees=FeeSchedule(rate_ppm=40_000, exponent=1, rebate_ppm=250_000))  # fmt: skip
        self.emit([info], 0)

    # ------------------------------------------------------------------ output

    def emit(self, events: list[Event], dt_ms: int | None = None) -> None:
        if dt_ms is None:
            dt_ms = self.rnd.randint(300, 900)
        self.ts += dt_ms * MS
        if events:
            self.out.append((self.ts, "events", ENCODER.encode(events)))

    def records(self) -> Iterator[tuple[int, str, bytes]]:
        return iter(self.out)

    # ------------------------------------------------------------------ book state

    @property
    def bb(self) -> int:
        return max(self.bids) if self.bids else 0

    @property
    def ba(self) -> int:
        return min(self.asks) if self.asks else 0

    def snapshot(self) -> list[Event]:
        def mirror(levels: dict[int, int]) -> tuple[tuple[int, int], ...]:
            return tuple(sorted((SCALE - p, s) for p, s in levels.items()))

        return [
            BookSnapshot(asset_id=self.yes, market=self.market, bids=tuple(sorted(self.bids.items())),
                         asks=tuple(sorted(self.asks.items())), tick_size=TICK),
            BookSnapshot(asset_id=self.no, market=self.market, bids=mirror(self.asks), asks=mirror(self.bids),
                         tick_size=TICK),
        ]  # fmt: skip

    def changes(self, changes: list[tuple[str, int, int]]) -> list[Event]:
        """Apply (side, price, size) changes to the YES book; the YES deltas, then the mirrored
        NO deltas, each with the top of book after it."""
        ys: list[Event] = []
        ns: list[Event] = []
        for side, price, size in changes:
            book = self.bids if side == "BID" else self.asks
            if size > 0:
                book[price] = size
            else:
                book.pop(price, None)
            bb, ba = self.bb, self.ba
            ys.append(BookDelta(asset_id=self.yes, market=self.market, side=side, price=price, size=size,  # type: ignore[arg-type]
                                best_bid=bb, best_ask=ba))  # fmt: skip
            ns.append(BookDelta(asset_id=self.no, market=self.market, side="ASK" if side == "BID" else "BID",
                                price=SCALE - price, size=size, best_bid=SCALE - ba if ba else 0,
                                best_ask=SCALE - bb if bb else 0))  # fmt: skip
        return ys + ns

    def size(self, lo: int = 20, hi: int = 300) -> int:
        return self.rnd.randint(lo, hi) * SHARE

    def shape(self, bb: int, ba: int, depth: int = 5) -> list[tuple[str, int, int]]:
        """Changes that put the touch at ``bb``/``ba`` and keep ``depth`` levels a side."""
        ch: list[tuple[str, int, int]] = []
        for p in sorted(self.bids, reverse=True):
            if p > bb:
                ch.append(("BID", p, 0))
        for p in sorted(self.asks):
            if p < ba:
                ch.append(("ASK", p, 0))
        bids = {p for p in self.bids if p <= bb}
        asks = {p for p in self.asks if p >= ba}
        if bb not in bids:
            ch.append(("BID", bb, self.size()))
            bids.add(bb)
        if ba not in asks:
            ch.append(("ASK", ba, self.size()))
            asks.add(ba)
        for i in range(1, depth):
            if len(bids) >= depth:
                break
            p = bb - i * TICK
            if p >= TICK and p not in bids:
                ch.append(("BID", p, self.size()))
                bids.add(p)
        for i in range(1, depth):
            if len(asks) >= depth:
                break
            p = ba + i * TICK
            if p <= SCALE - TICK and p not in asks:
                ch.append(("ASK", p, self.size()))
                asks.add(p)
        # trim levels far from the touch (the book stays small)
        for p in sorted(bids)[: max(0, len(bids) - depth - 2)]:
            ch.append(("BID", p, 0))
        for p in sorted(asks, reverse=True)[: max(0, len(asks) - depth - 2)]:
            ch.append(("ASK", p, 0))
        return ch

    def init(self, bb: int, ba: int, depth: int = 6) -> None:
        self.bids = {bb - i * TICK: self.size() for i in range(depth)}
        self.asks = {ba + i * TICK: self.size() for i in range(depth)}
        self.emit(self.snapshot(), 100)

    # ------------------------------------------------------------------ flow

    def trade(self, taker: str, size: int) -> list[Event]:
        """A taker buys at the best ask or sells at the best bid (one level): the level shrink,
        then the print."""
        if taker == "BUY":
            price, book, side = self.ba, self.asks, "ASK"
        else:
            price, book, side = self.bb, self.bids, "BID"
        if not price:
            return []
        size = min(size, book[price])
        evs = self.changes([(side, price, book[price] - size)])
        evs.append(TradePrint(asset_id=self.yes, market=self.market, price=price, size=size, side=taker,  # type: ignore[arg-type]
                              fee_rate_bps=0))  # fmt: skip
        return evs

    def noise(self) -> list[Event]:
        """A size change on a level behind the touch (the top of book does not move)."""
        side = "BID" if self.rnd.random() < 0.5 else "ASK"
        book = self.bids if side == "BID" else self.asks
        levels = sorted(book, reverse=(side == "BID"))[1:]
        if not levels:
            return []
        p = self.rnd.choice(levels)
        return self.changes([(side, p, self.size())])

    def crossing(self, size: int) -> list[Event]:
        """A bad change: a YES bid a tick above the best ask (``size`` 0 removes it), with the
        crossed top of book it implies. Not part of the generator's own (true) book."""
        ba, bb = self.ba, self.bb
        p = ba + TICK
        top_b = p if size else bb
        return [BookDelta(asset_id=self.yes, market=self.market, side="BID", price=p, size=size, best_bid=top_b, best_ask=ba),
                BookDelta(asset_id=self.no, market=self.market, side="ASK", price=SCALE - p, size=size,
                          best_bid=SCALE - ba, best_ask=SCALE - top_b)]  # fmt: skip

    def top_size(self) -> list[Event]:
        side = "BID" if self.rnd.random() < 0.5 else "ASK"
        p = self.bb if side == "BID" else self.ba
        return self.changes([(side, p, self.size())]) if p else []


def ticks(x: float) -> int:
    """A price in base units on the 0.01 grid (the nearest tick)."""
    return int(round(x * 100)) * TICK


# ------------------------------------------------------------------------------------ spread capture


def spread_capture(tight: bool) -> Gen:
    # the variants are the same market (same token ids) on another day
    g = Gen("council-stadium-bond", 12 if tight else 11, "Will the council approve the stadium bond?")
    lo, hi = (1, 2) if tight else (6, 10)
    center = 0.42
    spread = lo if tight else 8
    g.init(ticks(center) - (spread // 2) * TICK, ticks(center) - (spread // 2) * TICK + spread * TICK)
    rnd = g.rnd
    seller = True
    for step in range(900):
        if 520 <= step < 560:
            # the selling wave: takers hit the bid, the touch walks 10 ticks down
            if step % 4 == 0:
                center -= 0.01
                bb = ticks(center) - (spread // 2) * TICK
                g.emit(g.changes(g.shape(bb, bb + spread * TICK)))
            else:
                g.emit(g.trade("SELL", g.size(10, 40)))
            continue
        r = rnd.random()
        if r < 0.30:
            # takers alternate sides (with runs), so a quote inside the spread sees both
            if rnd.random() < 0.35:
                seller = not seller
            evs = g.trade("SELL" if seller else "BUY", g.size(5, 30))
            if tight:  # a liquid market: a level taken out is refilled at once
                bb = ticks(center) - (spread // 2) * TICK
                evs += g.changes(g.shape(bb, bb + spread * TICK))
            g.emit(evs)
        elif r < 0.55:
            g.emit(g.noise())
        elif r < 0.82:
            if rnd.random() < 0.3:
                center += rnd.choice((-0.01, 0.01)) * 0.5
            spread = max(lo, min(hi, spread + rnd.choice((-1, 0, 1))))
            bb = ticks(center) - (spread // 2) * TICK
            g.emit(g.changes(g.shape(bb, bb + spread * TICK)))
        else:
            g.emit(g.top_size())
    return g


# ------------------------------------------------------------------------------------ market making


def market_making(adverse: bool) -> Gen:
    g = Gen("fed-cut-march", 24 if adverse else 23, "Will the Fed cut rates in March?")
    rnd = g.rnd
    half = 3  # ticks from the center to each side of the touch
    c0 = 50  # center in ticks
    g.init((c0 - half) * TICK, (c0 + half) * TICK)
    t = 0.0
    burst_off = 0
    n = 700 if not adverse else 560
    for step in range(n):
        t += 0.6
        if not adverse:
            target = c0 + 5 * math.sin(2 * math.pi * t / 90.0)
            if 380 <= step < 420:  # the volatile burst
                burst_off += rnd.choice((-1, 1)) * rnd.randint(2, 5)
                burst_off = max(-12, min(12, burst_off))
            elif burst_off:
                burst_off -= 1 if burst_off > 0 else -1
            center = int(round(target)) + burst_off
            bias = 0.5  # the chance that a taker sells
        else:
            if step < 150:
                center, bias = c0 + int(round(2 * math.sin(2 * math.pi * t / 60.0))), 0.5
            elif step < 240:  # the one-directional trend: mostly sellers, -30 ticks
                center, bias = c0 - (step - 150) // 3, 0.9
            else:
                center, bias = c0 - 30 + int(round(2 * math.sin(2 * math.pi * t / 60.0))), 0.5
            if step == 300:  # a missed update: the venue's top of book disagrees with ours
                evs = g.noise()
                if evs:
                    first = evs[0]
                    assert isinstance(first, BookDelta)
                    evs[0] = msgspec.structs.replace(first, best_bid=first.best_bid - TICK)
                    g.emit(evs)
                    for _ in range(10):  # unhealthy until the resync snapshot
                        g.emit(g.noise() if rnd.random() < 0.6 else g.trade("SELL" if rnd.random() < 0.5 else "BUY", g.size(5, 30)))
                    g.emit(g.snapshot())
                continue
            if step == 330:  # a crossed book: unhealthy until the next snapshot
                g.emit(g.crossing(g.size()))
                for _ in range(20):  # the venue keeps trading meanwhile
                    g.emit(g.noise() if rnd.random() < 0.6 else g.trade("SELL" if rnd.random() < 0.5 else "BUY", g.size(5, 30)))
                g.emit(g.crossing(0))
                g.emit(g.snapshot())
                continue
            if step == 400:  # the feed drops: unhealthy until the resync snapshots
                g.emit([FeedDisconnected(feed="polymarket", detail="socket closed", asset_ids=(g.yes, g.no))])
                g.ts += 8_000 * MS
                g.emit(g.snapshot())
                continue
            if step == 450:  # the feed says the book is stale, then nothing at all for 40 s
                g.emit([FeedStale(feed="polymarket", asset_id=g.yes, age_ns=20_000 * MS)])
                g.ts += 40_000 * MS
                continue
        spread_jitter = rnd.choice((0, 0, 0, 1))
        bb = (center - half) * TICK
        ba = (center + half + spread_jitter) * TICK
        r = rnd.random()
        if (g.bb, g.ba) != (bb, ba) and r < 0.6:
            g.emit(g.changes(g.shape(bb, ba)))
        elif r < 0.85:
            sell = rnd.random() < bias
            g.emit(g.trade("SELL" if sell else "BUY", g.size(5, 60 if bias > 0.5 and sell else 30)))
        elif r < 0.95:
            g.emit(g.noise())
        else:
            g.emit(g.top_size())
    return g


RECORDINGS = {
    "spread-capture.jsonl.gz": lambda: spread_capture(tight=False),
    "spread-capture-tight.jsonl.gz": lambda: spread_capture(tight=True),
    "market-making.jsonl.gz": lambda: market_making(adverse=False),
    "market-making-adverse.jsonl.gz": lambda: market_making(adverse=True),
}


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    for name, make in RECORDINGS.items():
        g = make()
        path = out / name
        n = write_stream(str(path), g.records())  # (the gzip header has no time or name)
        print(f"{path}: {n} inputs, {path.stat().st_size:,} bytes, yes={g.yes[:12]}... market={g.market[:12]}...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
