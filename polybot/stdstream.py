"""The standard market-data stream of ``make bench`` and how it is replayed.

The stream (seeded, deterministic): one asset; a 50-level-a-side subscription dump around 0.500
(tick 0.001); then ``n`` (1,000,000) single-entry ``price_change`` frames in the current schema,
one per millisecond. Each changes one level: the side is a coin flip, the level is
``int(random() ** 2 * 50)`` ticks from that side's best (biased to the top of book), 10% of
changes delete the level (size "0"), the others set a new size; every frame carries the real
book hash (PROTOCOL.md §1.8) and the best bid/ask after the change. It is written as a journal
(``{"ts","source":"polymarket.market","msg":<frame>}`` lines).

:func:`run` replays it the way ``polybot replay`` does (journal reader -> kernel door: JSON
decode -> bus -> book -> a handler that reads the top of book on every event), with journal
writing off, hash verification off or on, and reports events/s, per-event latency percentiles
and the process's peak RSS. ``python -m polybot.stdstream run FILE [--verify]`` runs one mode in
a fresh process (so the RSS is that mode's alone).
"""

from __future__ import annotations

import gc
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from .book import OrderBook
from .bookhash import BookHasher, hash_tail
from .units import from_units

MARKET = "0x" + "5d" * 32
ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
TICK = 1_000  # 0.001
START_MS = 1_790_000_000_000
VERSION = 1  # bump when the stream's definition changes (cached files are keyed by it)


def _size(rng: random.Random) -> int:
    return rng.randint(1, 500_000) * 10_000  # 0.01 .. 5000 shares, 2 decimals


def generate(path: str | Path, n: int = 1_000_000, seed: int = 20260930) -> Path:
    """Write the standard stream to ``path`` (a plain .jsonl)."""
    rng = random.Random(seed)
    book = OrderBook(ASSET, MARKET)
    book.replace([(500_000 - TICK * (i + 1), _size(rng)) for i in range(50)],  # 0.499 .. 0.450
                 [(500_000 + TICK * (i + 1), _size(rng)) for i in range(50)])  # 0.501 .. 0.550  # fmt: skip
    bids, asks = book.bids, book.asks
    hasher = BookHasher(book)
    tail = hash_tail("5", from_units(TICK), False, "")
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    m_q = json.dumps(MARKET)
    a_q = json.dumps(ASSET)

    def digest(ms: int) -> str:
        return hasher.digest(str(ms), tail)

    with open(tmp, "w", buffering=1 << 20) as f:
        ms = START_MS
        lv = lambda levels: ",".join(f'{{"price":"{from_units(p)}","size":"{from_units(s)}"}}'  # noqa: E731
                                     for p, s in levels)  # fmt: skip
        dump = (f'[{{"market":{m_q},"asset_id":{a_q},"timestamp":"{ms}","hash":"{digest(ms)}",'
                f'"bids":[{lv(bids.items())}],"asks":[{lv(reversed(asks.items()))}],"tick_size":"0.001",'
                f'"event_type":"book","last_trade_price":""}}]')  # fmt: skip
        f.write(f'{{"ts":{ms * 1_000_000},"source":"polymarket.market","msg":{dump}}}\n')
        for _ in range(n):
            ms += 1
            buy = rng.random() < 0.5
            off = int(rng.random() ** 2 * 50)
            delete = rng.random() < 0.10
            levels = bids if buy else asks
            price = book.best_bid - off * TICK if buy else book.best_ask + off * TICK
            if not TICK <= price <= 1_000_000 - TICK:
                price = book.best_bid if buy else book.best_ask
            size = 0 if delete and len(levels) > 5 and price in levels else _size(rng)
            if buy:
                book.set_bid(price, size)
                hasher.bid_changed(price, size)
            else:
                book.set_ask(price, size)
                hasher.ask_changed(price, size)
            best_bid, best_ask = book.best_bid, book.best_ask
            frame = (f'{{"market":{m_q},"price_changes":[{{"asset_id":{a_q},"price":"{from_units(price)}",'
                     f'"size":"{from_units(size)}","side":"{"BUY" if buy else "SELL"}","hash":"{digest(ms)}",'
                     f'"best_bid":"{from_units(best_bid)}","best_ask":"{from_units(best_ask)}"}}],'
                     f'"timestamp":"{ms}","event_type":"price_change"}}')  # fmt: skip
            f.write(f'{{"ts":{ms * 1_000_000},"source":"polymarket.market","msg":{frame}}}\n')
    tmp.replace(path)
    return path


def cached(n: int = 1_000_000, seed: int = 20260930, directory: str | Path = "var/bench") -> Path:
    """The stream, generated once into ``directory`` and reused."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"standard-stream-v{VERSION}-{n}-{seed}.jsonl"
    if not p.exists():
        generate(p, n, seed)
    return p


def run(path: str | Path, verify: bool = False, latency_sample: int = 200_000) -> dict[str, Any]:
    """Replay the stream: throughput over the whole file, then per-event latency over the
    first ``latency_sample`` inputs in a second kernel (timing each call costs time)."""
    from .journal import JournalReader
    from .kernel import Kernel
    from .events import BookDelta, BookSnapshot
    from .sources import resolve_decoder

    def make() -> tuple[Kernel, list[int]]:
        k = Kernel(verify_books=verify)
        k.add_decoder("polymarket.market", resolve_decoder("polymarket.market"))  # type: ignore[arg-type]
        books = k.books
        seen = [0, 0]

        def top(ev: Any) -> None:  # a strategy's minimum: read the top of book
            b = books.get(ev.asset_id)
            if b is not None and b.best_bid < b.best_ask:
                seen[0] += 1

        k.bus.subscribe(BookDelta, top)
        k.bus.subscribe(BookSnapshot, top)
        return k, seen

    k, seen = make()
    process = k.process
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _kind, ts, source, msg in JournalReader(path):
            process(ts, source, msg, False)
        wall = time.perf_counter() - t0
    finally:
        gc.enable()
    k.settle_books()
    integ = k.integrity.summary()["total"]
    b = k.books.get(ASSET)
    out: dict[str, Any] = {
        "verify": verify,
        "inputs": k.stats.inputs,
        "events": k.stats.events,
        "wall_s": wall,
        "events_per_s": k.stats.events / wall,
        "handler_reads": seen[0],
        "dropped": k.stats.dropped,
        "hash_passed": integ.get("passed", 0),
        "hash_failed": integ.get("failed", 0),
        "bbo_mismatch": integ.get("bbo_mismatch", 0),
        "healthy_at_end": bool(b and b.healthy),
    }
    # latency: time each input's whole trip (decode -> bus -> book -> handler)
    k2, _ = make()
    process = k2.process
    pc = time.perf_counter_ns
    lat = []
    gc.disable()
    try:
        for i, (_kind, ts, source, msg) in enumerate(JournalReader(path)):
            if i >= latency_sample:
                break
            t = pc()
            process(ts, source, msg, False)
            lat.append(pc() - t)
    finally:
        gc.enable()
    lat.sort()
    out["p50_us"] = lat[len(lat) // 2] / 1000
    out["p99_us"] = lat[int(len(lat) * 0.99)] / 1000
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .logs import setup_logging

    p = argparse.ArgumentParser(prog="python -m polybot.stdstream")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    g.add_argument("--n", type=int, default=1_000_000)
    g.add_argument("--seed", type=int, default=20260930)
    r = sub.add_parser("run")
    r.add_argument("file")
    r.add_argument("--verify", action="store_true")
    a = p.parse_args(argv)
    setup_logging("WARNING")
    if a.cmd == "generate":
        generate(a.out, a.n, a.seed)
        return 0
    sys.stdout.write(json.dumps(run(a.file, a.verify)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
