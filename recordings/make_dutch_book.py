"""Make the Dutch-book recordings (deterministic: same code, same bytes, gzip header included).

    .venv/bin/python recordings/make_dutch_book.py [--out-dir recordings]

Each file is a small session of the ``events`` source (polybot.synthetic.write_stream) for one
neg-risk event: the catalog entries of its outcome markets (Polymarket's politics fee schedule,
rate 0.04, tick 0.01, minimum 5 shares), snapshots of every YES and NO book (mirrored: a YES
bid at p is a NO ask at 1 - p), half a minute of ordinary activity (sizes come and go, trades
at the touch; the prices, and so the basket's price, do not move), the scenario, half a minute
more, and the event's resolution two days later (``market_resolved`` for every market), so a
replay ends with realized PnL.

* ``dutch-book-yes``: four candidates, YES asks 0.41 / 0.31 / 0.19 / 0.11 (sum 1.02). Sellers
  post 0.10 on D, 0.16 on C, 0.30 on B and finally 0.39 on A (40 shares): the asks sum to 0.95,
  0.977 with the taker fees -- a YES basket of 40 shares. 1.5 s later other takers clear them.
* ``dutch-book-fees``: the same, but the last asks are 0.17 on C and 0.40 on A: 0.97, which a
  fee-free market would take, and 0.997 with the fees, above 1 - margin: no basket.
* ``dutch-book-depth``: the prices of ``-yes``, but only 3 shares at 0.39 on A: N is below the
  5-share minimum before A's next level (0.41) makes the basket too dear: no basket.
* ``dutch-book-partial``: ``-yes``, and 20 ms after the opportunity appears another taker
  lifts all of C's 0.16 (C's best ask becomes 0.18): with the paper executor's 50 ms latency
  our FOK on C is killed and the other three legs fill -- a partial basket. Completing C at
  0.18 costs about 0.82 more than planned; unwinding sells A, B, D at their best bids.
* ``dutch-book-no``: three outcomes (a central-bank decision) whose YES *bids* sum to 1.05
  once buyers lift the cut and hold bids: the NO asks (1 - bid) sum to 1.95, 1.971 with fees,
  below 2 x (1 - margin) -- a NO basket (each NO pays 1 unless its outcome wins: m - 1 = 2).
"""

from __future__ import annotations

import sys
import hashlib
import random
from pathlib import Path
from typing import Any

from polybot.events import ENCODER, BookDelta, BookSnapshot, FeeSchedule, MarketInfo, MarketResolved, TradePrint
from polybot.synthetic import write_stream

SCALE = 1_000_000
TICK = 10_000
START = 1_792_000_000_000_000_000  # 2026-10-14 (ns)
MS = 1_000_000
S = 1_000 * MS
FEES = FeeSchedule(rate_ppm=40_000, exponent=1, taker_only=True, rebate_ppm=250_000)


def _id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _token(*parts: str) -> str:
    """A CLOB token id: a 77-digit decimal string, like Polymarket's."""
    return str(int(_id("token", *parts), 16))[:77]


def _p(x: str) -> int:
    whole, _, frac = x.partition(".")
    return int(whole or 0) * SCALE + int((frac + "000000")[:6])


def _sh(n: float | int) -> int:
    return int(round(n * 100)) * 10_000


class Event:
    """A neg-risk event with mirrored YES/NO books per outcome market."""

    def __init__(self, slug: str, title: str, names: list[str], books: list[dict[str, Any]]) -> None:
        self.slug = slug
        self.title = title
        self.event_id = str(int(_id("event", slug), 16) % 90_000 + 10_000)
        self.nr_id = "0x" + _id("negrisk", slug)
        self.names = names
        self.markets = ["0x" + _id("market", slug, n) for n in names]
        self.yes = [_token(slug, n, "yes") for n in names]
        self.no = [_token(slug, n, "no") for n in names]
        # YES books: price -> size (base units)
        self.bids = [{_p(p): _sh(s) for p, s in b["bids"]} for b in books]
        self.asks = [{_p(p): _sh(s) for p, s in b["asks"]} for b in books]
        self.end_ts = START + 2 * 86_400 * S

    # -------------------------------------------------------------- messages

    def infos(self) -> list[MarketInfo]:
        return [
            MarketInfo(market=m, asset_ids=(y, n), outcomes=("Yes", "No"),
                       question=f"Will {name} win? ({self.title})", slug=f"{self.slug}-{name.lower().replace(' ', '-')}",
                       event_id=self.event_id, event_slug=self.slug, tick_size=TICK, min_order_size=5 * SCALE,
                       neg_risk=True, neg_risk_market_id=self.nr_id, end_ts=self.end_ts, start_ts=START - 30 * 86_400 * S,
                       fees=FEES, tags=("Politics",))  # fmt: skip
            for name, m, y, n in zip(self.names, self.markets, self.yes, self.no)
        ]

    def snapshots(self) -> list[BookSnapshot]:
        out = []
        for i in range(len(self.names)):
            b, a = self.bids[i], self.asks[i]
            out.append(BookSnapshot(asset_id=self.yes[i], market=self.markets[i], bids=tuple(sorted(b.items())),
                                    asks=tuple(sorted(a.items())), tick_size=TICK))  # fmt: skip
            out.append(BookSnapshot(asset_id=self.no[i], market=self.markets[i],
                                    bids=tuple(sorted((SCALE - p, s) for p, s in a.items())),
                                    asks=tuple(sorted((SCALE - p, s) for p, s in b.items())), tick_size=TICK))  # fmt: skip
        return out

    def _bbo(self, i: int) -> tuple[int, int, int, int]:
        b, a = self.bids[i], self.asks[i]
        yb, ya = (max(b) if b else 0), (min(a) if a else 0)
        return yb, ya, (SCALE - ya if ya else 0), (SCALE - yb if yb else 0)

    def set(self, i: int, side: str, price: str | int, shares: float | int) -> list[BookDelta]:
        """Set the YES level (``side`` BID/ASK) of outcome ``i``; returns it and its NO mirror."""
        p = _p(price) if isinstance(price, str) else price
        size = _sh(shares)
        book = self.bids[i] if side == "BID" else self.asks[i]
        if size:
            book[p] = size
        else:
            book.pop(p, None)
        yb, ya, nb, na = self._bbo(i)
        m = self.markets[i]
        return [
            BookDelta(asset_id=self.yes[i], market=m, side=side, price=p, size=size, best_bid=yb, best_ask=ya),  # type: ignore[arg-type]
            BookDelta(asset_id=self.no[i], market=m, side="ASK" if side == "BID" else "BID", price=SCALE - p,
                      size=size, best_bid=nb, best_ask=na),  # fmt: skip
        ]

    def trade(self, i: int, taker: str, shares: float | int) -> list[Any]:
        """A taker ``BUY``s the best YES ask (or ``SELL``s into the best bid) of outcome ``i``."""
        book = self.asks[i] if taker == "BUY" else self.bids[i]
        p = min(book) if taker == "BUY" else max(book)
        q = min(_sh(shares), book[p])
        left = (book[p] - q) / SCALE
        return [TradePrint(asset_id=self.yes[i], market=self.markets[i], price=p, size=q, side=taker,  # type: ignore[arg-type]
                           fee_rate_bps=0),
                *self.set(i, "ASK" if taker == "BUY" else "BID", p, left)]  # fmt: skip

    def resolve(self, winner: int) -> list[MarketResolved]:
        return [
            MarketResolved(market=m, asset_ids=(y, n), winning_asset_id=y if i == winner else n,
                           winning_outcome="Yes" if i == winner else "No")  # fmt: skip
            for i, (m, y, n) in enumerate(zip(self.markets, self.yes, self.no))
        ]


def noise(ev: Event, rnd: random.Random, steps: int) -> list[list[Any]]:
    """Ordinary activity that moves no price: sizes behind the touch come and go, the touch
    trades in small clips and refills."""
    out: list[list[Any]] = []
    for _ in range(steps):
        i = rnd.randrange(len(ev.names))
        r = rnd.random()
        if r < 0.2:
            taker = "BUY" if rnd.random() < 0.5 else "SELL"
            book = ev.asks[i] if taker == "BUY" else ev.bids[i]
            top = min(book) if taker == "BUY" else max(book)
            clip = min(rnd.randint(2, 25), book[top] // SCALE - 20)
            if clip > 0:
                out.append(ev.trade(i, taker, clip))
                continue
        side = "BID" if rnd.random() < 0.5 else "ASK"
        book = ev.bids[i] if side == "BID" else ev.asks[i]
        levels = sorted(book, reverse=side == "BID")
        p = levels[min(len(levels) - 1, int(rnd.random() ** 2 * len(levels)))]
        out.append(ev.set(i, side, p, rnd.randint(40, 900)))
    return out


def candidates() -> Event:
    return Event("springfield-mayor-2026", "Springfield mayoral election 2026",
                 ["Alvarez", "Brooks", "Chen", "Dubois"], [
                     {"bids": [("0.39", 120), ("0.38", 300), ("0.37", 500)], "asks": [("0.41", 150), ("0.42", 300), ("0.43", 400)]},
                     {"bids": [("0.29", 200), ("0.28", 350), ("0.27", 600)], "asks": [("0.31", 180), ("0.32", 300), ("0.33", 500)]},
                     {"bids": [("0.17", 250), ("0.16", 400), ("0.15", 700)], "asks": [("0.19", 220), ("0.20", 350), ("0.21", 500)]},
                     {"bids": [("0.09", 300), ("0.08", 500), ("0.07", 900)], "asks": [("0.11", 260), ("0.12", 400), ("0.13", 600)]},
                 ])  # fmt: skip


def fed() -> Event:
    return Event("central-bank-december-2026", "Central bank decision in December 2026",
                 ["Cut", "Hold", "Hike"], [
                     {"bids": [("0.60", 150), ("0.59", 300), ("0.58", 500)], "asks": [("0.63", 150), ("0.64", 300), ("0.65", 400)]},
                     {"bids": [("0.35", 200), ("0.34", 350), ("0.33", 600)], "asks": [("0.40", 180), ("0.41", 300), ("0.42", 500)]},
                     {"bids": [("0.05", 300), ("0.04", 500), ("0.03", 900)], "asks": [("0.07", 260), ("0.08", 400), ("0.09", 600)]},
                 ])  # fmt: skip


def _pull_bids(ev: Event) -> list[tuple[int, list[Any]]]:
    """Market makers step back first: the top bids of A, B and C go (no crossed books later)."""
    return [(0, ev.set(0, "BID", "0.39", 0)), (150 * MS, ev.set(1, "BID", "0.29", 0)),
            (300 * MS, ev.set(2, "BID", "0.17", 0) + ev.set(2, "BID", "0.16", 0))]  # fmt: skip


def _clear(ev: Event, at: int, levels: list[tuple[int, str]]) -> list[tuple[int, list[Any]]]:
    """Other takers lift the cheap asks, then the makers come back."""
    out = []
    for k, (i, p) in enumerate(levels):
        if _p(p) in ev.asks[i]:
            out.append((at + k * 40 * MS, ev.trade(i, "BUY", ev.asks[i][_p(p)] / SCALE)))
    out.append((at + 400 * MS, ev.set(0, "BID", "0.39", 120)))
    out.append((at + 500 * MS, ev.set(1, "BID", "0.29", 200)))
    return out


def yes_scenario(ev: Event, a_price: str = "0.39", a_size: float = 40, c_price: str = "0.16",
                 partial: bool = False) -> list[tuple[int, list[Any]]]:  # fmt: skip
    sc = _pull_bids(ev)
    sc += [(1000 * MS, ev.set(3, "ASK", "0.10", 80)), (1400 * MS, ev.set(2, "ASK", c_price, 45)),
           (1800 * MS, ev.set(1, "ASK", "0.30", 60))]  # fmt: skip
    t = 2200 * MS
    sc.append((t, ev.set(0, "ASK", a_price, a_size)))  # the basket is there now
    if partial:
        # another taker is faster on C: all of 0.16 goes, a maker re-offers at 0.18
        sc.append((t + 20 * MS, ev.trade(2, "BUY", 45)))
        sc.append((t + 30 * MS, ev.set(2, "ASK", "0.18", 100)))
    sc += _clear(ev, t + 1500 * MS, [(0, a_price), (1, "0.30"), (2, c_price), (2, "0.18"), (3, "0.10")])
    return sc


def no_scenario(ev: Event) -> list[tuple[int, list[Any]]]:
    # buyers lift the hold and cut bids (YES bids 0.62 + 0.38 + 0.05 = 1.05)
    sc = [(0, ev.set(1, "BID", "0.38", 55)), (600 * MS, ev.set(0, "BID", "0.62", 70))]
    t = 2100 * MS  # sellers hit them
    sc += [(t, ev.trade(1, "SELL", 55)), (t + 40 * MS, ev.trade(0, "SELL", 70))]
    return sc


def build(out_dir: Path) -> dict[str, int]:
    made = {}
    specs = {
        "dutch-book-yes": (candidates, lambda ev: yes_scenario(ev), 11, 1),
        "dutch-book-fees": (candidates, lambda ev: yes_scenario(ev, a_price="0.40", c_price="0.17"), 12, 1),
        "dutch-book-depth": (candidates, lambda ev: yes_scenario(ev, a_size=3), 13, 1),
        "dutch-book-partial": (candidates, lambda ev: yes_scenario(ev, partial=True), 14, 1),
        "dutch-book-no": (fed, no_scenario, 15, 1),
    }
    for name, (make, scen, seed, winner) in specs.items():
        recs = session(make(), scen, seed, winner)
        path = out_dir / f"{name}.jsonl.gz"
        made[str(path)] = write_stream(str(path), iter(recs))  # (the gzip header has no time or name)
    return made


def session(ev: Event, scen: Any, seed: int, winner: int) -> list[tuple[int, str, bytes]]:
    """Noise first, then the scenario built on the books as the noise left them."""
    rnd = random.Random(seed)
    recs: list[tuple[int, str, bytes]] = []
    ts = START
    recs.append((ts, "events", ENCODER.encode(ev.infos())))
    ts += 100 * MS
    recs.append((ts, "events", ENCODER.encode(ev.snapshots())))
    for msg in noise(ev, rnd, 120):
        ts += 250 * MS
        recs.append((ts, "events", ENCODER.encode(msg)))
    t0 = ts + 250 * MS
    for off, msg in scen(ev):
        ts = t0 + off
        recs.append((ts, "events", ENCODER.encode(msg)))
    for msg in noise(ev, rnd, 120):
        ts += 250 * MS
        recs.append((ts, "events", ENCODER.encode(msg)))
    ts = ev.end_ts + 600 * S
    recs.append((ts, "events", ENCODER.encode(ev.resolve(winner))))
    return recs


def main(argv: list[str]) -> int:
    """``make_dutch_book.py [OUT_DIR]`` (default: this directory)."""
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    for path, n in build(out).items():
        print(f"{path}: {n} inputs, {Path(path).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
