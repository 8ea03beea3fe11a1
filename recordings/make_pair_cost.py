"""Make the pair-cost recordings (deterministic: same code, same bytes).

    .venv/bin/python recordings/make_pair_cost.py

Each file is one 15-minute BTC up/down window (series ``btc-updown-15m``, Up = YES = ``asset_ids[0]``)
as ready-made polybot events (source ``events``): the catalog entry (crypto fee schedule: rate 0.07,
exponent 1, takers only, 20 % maker rebate), a book snapshot per token, one input a second of book
changes and trade prints, and the resolution after the window ends.

The book is one unified book: the Down book mirrors the Up book (a Up bid at p is a Down ask at
1 - p, same size), every change is sent for both tokens with the venue's best bid/ask after it (so
the kernel's top-of-book check passes), the book is never crossed. Prices move the way they do on
the venue: takers sweep the touch (the level shrinks arrive before the trade prints, as on
Polymarket; fast moves sweep several levels in one frame), makers refill behind them, and the
sizes of the levels further out change now and then. The changes of one second form one frame:
``run_end`` marks the last change of each token in it, as the Polymarket adapter sets it for a
``price_change`` frame. A trade is printed once, on the token the
taker traded (selling Up at p is the same trade as buying Down at 1 - p).

* ``pair-cost-window.jsonl.gz``: Up's best bid swings 0.49 -> 0.36 -> 0.59 -> 0.38 -> 0.61 -> 0.42 ->
  0.63, then rallies to 0.96 in the last minutes; Up wins. Each side is cheap at some point and the swings
  trade through the levels where maker bids rest: the opportunity.
* ``pair-cost-flat.jsonl.gz``: Up stays at 0.49/0.50 (a tick of jitter, the spread one or two
  ticks), trades only at the touch: the sum of the best bids is 0.98 or 0.99, never below a 0.98
  target, and taking the asks costs 1 + spread + taker fees. Down wins. No pair can be built.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from polybot.events import (  # noqa: E402
    ENCODER,
    BookDelta,
    BookSnapshot,
    Event,
    FeeSchedule,
    MarketInfo,
    MarketResolved,
    TradePrint,
)
from polybot.synthetic import write_stream  # noqa: E402

SCALE = 1_000_000
TICK = 10_000
NS = 1_000_000_000
WINDOW_S = 900
DEPTH = 8  # levels kept on each side
SERIES = "btc-updown-15m"
FEES = FeeSchedule(rate_ppm=70_000, exponent=1, taker_only=True, rebate_ppm=200_000)
OUT = Path(__file__).resolve().parent

#: (seconds into the window, Up best bid in ticks)
SWINGS = [(0, 49), (20, 49), (130, 36), (160, 37), (270, 59), (300, 58), (400, 38), (430, 39), (540, 61),
          (570, 60), (660, 42), (690, 43), (790, 63), (820, 70), (860, 88), (900, 96)]  # fmt: skip
FLAT = [(0, 49), (900, 49)]


def token_id(rnd: random.Random) -> str:
    """A Polymarket-style ERC-1155 token id (a 77-digit decimal)."""
    return str(rnd.getrandbits(255) | (1 << 254))


def condition_id(rnd: random.Random) -> str:
    return "0x" + "".join(f"{rnd.getrandbits(8):02x}" for _ in range(32))


def path_at(keys: list[tuple[int, int]], t: float) -> float:
    for (t0, p0), (t1, p1) in zip(keys, keys[1:]):
        if t0 <= t <= t1:
            return p0 + (p1 - p0) * (t - t0) / (t1 - t0)
    return keys[-1][1]


class UnifiedBook:
    """The Up book in ticks -> shares (base units); every change yields the Up delta and the
    mirrored Down delta, each with its token's best bid/ask after the change."""

    def __init__(self, yes: str, no: str, market: str) -> None:
        self.yes, self.no, self.market = yes, no, market
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    @property
    def bb(self) -> int:
        return max(self.bids) if self.bids else 0

    @property
    def ba(self) -> int:
        return min(self.asks) if self.asks else 0

    def snapshots(self) -> list[Event]:
        y = BookSnapshot(asset_id=self.yes, market=self.market, tick_size=TICK,
                         bids=tuple(sorted((p * TICK, s) for p, s in self.bids.items())),
                         asks=tuple(sorted((p * TICK, s) for p, s in self.asks.items())))  # fmt: skip
        n = BookSnapshot(asset_id=self.no, market=self.market, tick_size=TICK,
                         bids=tuple(sorted((SCALE - p * TICK, s) for p, s in self.asks.items())),
                         asks=tuple(sorted((SCALE - p * TICK, s) for p, s in self.bids.items())))  # fmt: skip
        return [y, n]

    def set(self, side: str, tick: int, size: int) -> list[Event]:
        book = self.bids if side == "BID" else self.asks
        if size:
            book[tick] = size
        else:
            book.pop(tick, None)
        bb, ba = self.bb, self.ba
        assert not (bb and ba and bb >= ba), "the generator crossed the book"
        price = tick * TICK
        return [
            BookDelta(asset_id=self.yes, market=self.market, side=side, price=price, size=size,  # type: ignore[arg-type]
                      best_bid=bb * TICK, best_ask=ba * TICK),
            BookDelta(asset_id=self.no, market=self.market, side="ASK" if side == "BID" else "BID",
                      price=SCALE - price, size=size, best_bid=SCALE - ba * TICK if ba else 0,
                      best_ask=SCALE - bb * TICK if bb else 0),
        ]  # fmt: skip


def mark_run_ends(evs: list[Event]) -> list[Event]:
    """As the Polymarket adapter does for one ``price_change`` frame: ``run_end`` only on the last
    change of each token (the book between two changes of one frame is not a state the venue had)."""
    last = {e.asset_id: i for i, e in enumerate(evs) if isinstance(e, BookDelta)}
    return [msgspec.structs.replace(e, run_end=False) if isinstance(e, BookDelta) and last[e.asset_id] != i else e
            for i, e in enumerate(evs)]  # fmt: skip


def shares(rnd: random.Random, lo: int, hi: int) -> int:
    """A level or trade size in base units: whole shares, now and then with cents."""
    s = rnd.randint(lo, hi) * SCALE
    if rnd.random() < 0.3:
        s += rnd.randint(1, 99) * 10_000
    return s


def window(name: str, seed: int, start_s: int, keys: list[tuple[int, int]], up_wins: bool,
           sweep_every: float, jitter: bool) -> Iterator[tuple[int, str, bytes]]:  # fmt: skip
    rnd = random.Random(seed)
    yes, no, market = token_id(rnd), token_id(rnd), condition_id(rnd)
    t0 = start_s * NS
    info = MarketInfo(ts=t0, market=market, asset_ids=(yes, no), outcomes=("Up", "Down"),
                      question=f"Bitcoin Up or Down - {name}", slug=f"{SERIES}-{start_s}",
                      event_slug=f"{SERIES}-{start_s}", event_id=str(100_000 + seed), tick_size=TICK,
                      min_order_size=5 * SCALE, start_ts=t0, end_ts=t0 + WINDOW_S * NS, fees=FEES,
                      series=SERIES, tags=("crypto", "bitcoin", "up-or-down"))  # fmt: skip
    yield t0, "events", ENCODER.encode(info)
    ub = UnifiedBook(yes, no, market)
    bid0 = keys[0][1]
    for i in range(DEPTH):
        ub.bids[bid0 - i] = shares(rnd, 30, 250)
        ub.asks[bid0 + 1 + i] = shares(rnd, 30, 250)
    yield t0 + NS // 10, "events", ENCODER.encode(ub.snapshots())

    def trade(tick: int, size: int, taker_sells_up: bool) -> TradePrint:
        # printed on the token the taker traded: selling Up at p == buying Down at 1 - p
        if rnd.random() < 0.5:
            return TradePrint(asset_id=yes, market=market, price=tick * TICK, size=size,
                              side="SELL" if taker_sells_up else "BUY", fee_rate_bps=0)  # fmt: skip
        return TradePrint(asset_id=no, market=market, price=SCALE - tick * TICK, size=size,
                          side="BUY" if taker_sells_up else "SELL", fee_rate_bps=0)  # fmt: skip

    def sweep(side: str, levels: int, partial: bool) -> list[Event]:
        """A taker hits ``levels`` bids (side "BID") or lifts asks, the last one maybe partly:
        the level changes first, then one print per level."""
        book = ub.bids if side == "BID" else ub.asks
        deltas: list[Event] = []
        prints: list[Event] = []
        for k in range(levels):
            if not book:
                break
            tick = ub.bb if side == "BID" else ub.ba
            size = book[tick]
            take = size
            if partial and k == levels - 1 and size > 2 * SCALE:
                take = max(SCALE, size * rnd.randint(20, 70) // 100 // 10_000 * 10_000)
            deltas += ub.set(side, tick, size - take)
            prints.append(trade(tick, take, side == "BID"))
        return deltas + prints

    def maintain(spread: int) -> list[Event]:
        """Makers refill: the spread back to ``spread`` ticks, DEPTH levels a side, far levels
        dropped."""
        out: list[Event] = []
        while ub.ba - ub.bb > spread:  # join inside the gap, the side further from the path first
            if rnd.random() < 0.5:
                out += ub.set("BID", ub.bb + 1, shares(rnd, 20, 200))
            else:
                out += ub.set("ASK", ub.ba - 1, shares(rnd, 20, 200))
        for i in range(DEPTH):
            if ub.bb - i >= 1 and ub.bb - i not in ub.bids:
                out += ub.set("BID", ub.bb - i, shares(rnd, 30, 250))
            if ub.ba + i <= 99 and ub.ba + i not in ub.asks:
                out += ub.set("ASK", ub.ba + i, shares(rnd, 30, 250))
        for t in [t for t in ub.bids if t < ub.bb - DEPTH - 1]:
            out += ub.set("BID", t, 0)
        for t in [t for t in ub.asks if t > ub.ba + DEPTH + 1]:
            out += ub.set("ASK", t, 0)
        return out

    next_sweep = sweep_every
    for sec in range(1, WINDOW_S + 1):
        ts = t0 + sec * NS
        evs: list[Event] = []
        want = round(path_at(keys, sec) + (rnd.choice((-1, 0, 0, 1)) if jitter else 0))
        want = min(max(want, 2), 97)
        gap = want - ub.bb
        spread = 2 if rnd.random() < 0.15 else 1
        if gap < 0 or gap > 0:
            side = "BID" if gap < 0 else "ASK"  # sellers hit the bids, buyers lift the asks
            if not jitter and sec >= next_sweep:
                # a fast move: one taker sweeps several levels in one frame
                evs += sweep(side, rnd.randint(3, 4), partial=True)
                next_sweep = sec + sweep_every * rnd.uniform(0.6, 1.4)
            else:  # one level a second (the flat market: only ever the touch)
                evs += sweep(side, 1 if jitter else min(abs(gap), 2), partial=False)
        elif rnd.random() < 0.35:
            # a small trade at the touch that leaves the level standing
            side = "BID" if rnd.random() < 0.5 else "ASK"
            tick = ub.bb if side == "BID" else ub.ba
            size = (ub.bids if side == "BID" else ub.asks)[tick]
            take = min(size - SCALE, shares(rnd, 1, 25))
            if take > 0:
                evs += ub.set(side, tick, size - take)
                evs.append(trade(tick, take, side == "BID"))
        evs += maintain(spread)
        if rnd.random() < 0.5:  # a maker changes its size further out
            side = "BID" if rnd.random() < 0.5 else "ASK"
            tick = (ub.bb - rnd.randint(2, DEPTH - 1)) if side == "BID" else (ub.ba + rnd.randint(2, DEPTH - 1))
            if 1 <= tick <= 99:
                evs += ub.set(side, tick, shares(rnd, 20, 250))
        if evs:
            yield ts, "events", ENCODER.encode(mark_run_ends(evs))
    winner = yes if up_wins else no
    end = t0 + WINDOW_S * NS
    yield end + 5 * NS, "events", ENCODER.encode(MarketResolved(
        ts=end + 5 * NS, market=market, asset_ids=(yes, no), winning_asset_id=winner,
        winning_outcome="Up" if up_wins else "Down", exchange_ts=end + 5 * NS))  # fmt: skip


def recordings() -> dict[str, Iterator[tuple[int, str, bytes]]]:
    """File name -> its input records."""
    start = 1_790_001_000  # a 15-minute boundary (unix s)
    return {
        "pair-cost-window.jsonl.gz": window("swings", 11, start, SWINGS, up_wins=True, sweep_every=6.0, jitter=False),
        "pair-cost-flat.jsonl.gz": window("flat", 12, start + WINDOW_S, FLAT, up_wins=False, sweep_every=0,
                                          jitter=True),
    }  # fmt: skip


def main(argv: list[str]) -> int:
    """``make_pair_cost.py [OUT_DIR]`` (default: this directory)."""
    out = Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    for name, records in recordings().items():
        path = out / name
        n = write_stream(str(path), records)
        print(f"{path}: {n} inputs, {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
