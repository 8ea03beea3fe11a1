"""Seeded synthetic streams (demo recording, benchmarks, tests).

:func:`binary_market_stream` yields input records of the ``events`` source for one binary market
with mirrored YES/NO books (a YES bid at p is a NO ask at 1 - p, same size), a price that walks,
level updates biased to the top of book, and trade prints. Same seed, same stream, byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from .events import ENCODER, BookDelta, BookSnapshot, FeeSchedule, MarketInfo, TradePrint

YES = "1" * 8 + "0" * 8 + "7" * 8
NO = "2" * 8 + "0" * 8 + "9" * 8
MARKET = "0x" + "ab" * 32
TICK = 10_000  # 0.01
STEP_NS = 100_000_000  # 100 ms between inputs


def binary_market_stream(n: int = 3000, seed: int = 7, start_ns: int = 1_790_000_000_000_000_000,
                         levels: int = 10) -> Iterator[tuple[int, str, bytes]]:  # fmt: skip
    """``n`` inputs after the catalog entry and the two snapshots: (ts, "events", msg)."""
    rnd = random.Random(seed)
    ts = start_ns
    info = MarketInfo(market=MARKET, asset_ids=(YES, NO), outcomes=("Yes", "No"), question="Demo: will it rain?",
                      slug="demo-rain", tick_size=TICK, min_order_size=5_000_000,
                      fees=FeeSchedule(rate_ppm=40_000, exponent=1, rebate_ppm=250_000))  # fmt: skip
    yield ts, "events", ENCODER.encode(info)
    mid = 500_000
    bids = {mid - TICK * (i + 1): rnd.randint(5, 500) * 1_000_000 for i in range(levels)}
    asks = {mid + TICK * (i + 1): rnd.randint(5, 500) * 1_000_000 for i in range(levels)}

    def mirror(levels_: dict[int, int]) -> tuple[tuple[int, int], ...]:
        return tuple(sorted((1_000_000 - p, s) for p, s in levels_.items()))

    ts += STEP_NS
    yield ts, "events", ENCODER.encode([
        BookSnapshot(asset_id=YES, market=MARKET, bids=tuple(sorted(bids.items())), asks=tuple(sorted(asks.items())), tick_size=TICK),
        BookSnapshot(asset_id=NO, market=MARKET, bids=mirror(asks), asks=mirror(bids), tick_size=TICK),
    ])  # fmt: skip
    for _ in range(n):
        ts += STEP_NS
        r = rnd.random()
        bb = max(bids) if bids else 0
        ba = min(asks) if asks else 1_000_000
        if r < 0.08 and bids and asks:
            # a trade: the taker lifts the best ask or hits the best bid
            buy = rnd.random() < 0.5
            price, book = (ba, asks) if buy else (bb, bids)
            size = min(book[price], rnd.randint(1, 50) * 1_000_000)
            left = book[price] - size
            if left:
                book[price] = left
            else:
                del book[price]
            evs = [
                TradePrint(asset_id=YES, market=MARKET, price=price, size=size, side="BUY" if buy else "SELL"),
                _delta(YES, "ASK" if buy else "BID", price, left, bids, asks),
                _delta(NO, "BID" if buy else "ASK", 1_000_000 - price, left, _mirror_dict(asks), _mirror_dict(bids)),
            ]
            yield ts, "events", ENCODER.encode(evs)
            continue
        side = "BID" if rnd.random() < 0.5 else "ASK"
        off = int(rnd.random() ** 2 * levels) - 1  # -1: improve the best price by a tick
        if side == "BID":
            price = bb - off * TICK if bids else mid - TICK
            price = min(price, ba - TICK)
            book = bids
        else:
            price = ba + off * TICK if asks else mid + TICK
            price = max(price, bb + TICK)
        if not (TICK <= price <= 1_000_000 - TICK):
            continue
        book = bids if side == "BID" else asks
        size = 0 if (price in book and rnd.random() < 0.15 and len(book) > 3) else rnd.randint(5, 500) * 1_000_000
        if size:
            book[price] = size
        else:
            book.pop(price, None)
        nside = "ASK" if side == "BID" else "BID"
        yield ts, "events", ENCODER.encode([
            _delta(YES, side, price, size, bids, asks),
            _delta(NO, nside, 1_000_000 - price, size, _mirror_dict(asks), _mirror_dict(bids)),
        ])  # fmt: skip


def _mirror_dict(levels: dict[int, int]) -> dict[int, int]:
    return {1_000_000 - p: s for p, s in levels.items()}


def _delta(asset: str, side: str, price: int, size: int, bids: dict[int, int], asks: dict[int, int]) -> BookDelta:
    return BookDelta(asset_id=asset, market=MARKET, side=side, price=price, size=size,  # type: ignore[arg-type]
                     best_bid=max(bids) if bids else 0, best_ask=min(asks) if asks else 0)  # fmt: skip


def write_stream(path: str, records: Iterator[tuple[int, str, bytes]]) -> int:
    from .journal import JournalWriter

    w = JournalWriter(path, fsync="never", append=False)
    n = 0
    for ts, source, msg in records:
        w.write_input(ts, source, msg)
        n += 1
    w.close()
    return n
