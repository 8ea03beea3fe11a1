"""Make the rolling-series recording (deterministic: same code, same bytes).

    .venv/bin/python recordings/make_rolling.py [OUT_DIR]     # writes rolling-btc-5m.jsonl.gz
    .venv/bin/python recordings/make_rolling.py --check       # and replays it (pair_cost, 5m series)

Four consecutive windows of the ``btc-updown-5m`` series (Up = YES = ``asset_ids[0]``), as the
market feed records them while it rolls (adapters/polymarket/feed.py): nothing but real-format
inputs, the way Polymarket sends them.

* ``polymarket.gamma``: for each window, the Gamma ``/events?slug=<window slug>&limit=1`` answer the
  feed's roll fetches one window ahead (the event with its one market: ``conditionId``,
  ``clobTokenIds``, outcomes Up/Down, ``startDate`` (listing), ``eventStartTime`` (window start),
  ``endDate`` (window end), the event's ``series[]`` entry, ``negRisk`` false, the crypto fee
  schedule (rate 0.07, takers only, 20 % rebate), ``orderMinSize`` 5, ``orderPriceMinTickSize``
  0.01), 300 s before the window starts;
* ``polymarket.market``: the subscription dump (one array frame, both books) right after it; while
  the window waits its turn, makers now and then change a size further out (``price_change``);
  during the window, ``price_change`` frames (both tokens, the venue's best bid/ask after each
  change, the book hash after all changes of the frame), trades as the venue sends them
  (trade-triggered ``book`` frames for both tokens, then one ``last_trade_price`` print per level
  taken, a few ms later); and the ``market_resolved`` frame one second after the window's end.

Every hash is the real book hash (PROTOCOL.md §1.8, :func:`polybot.bookhash.book_hash_wire`), the
last trade price included: ``polybot replay --verify-book`` checks them all. Receive times are the
frames' own times plus 35-75 ms.

The book moves like the pair-cost recordings' (recordings/make_pair_cost.py): a unified book (the
Down book mirrors the Up book), Up's best bid following a path of swings, takers sweeping three or
four levels in one go when it moves fast, one level at a time otherwise, makers refilling behind
them. Each window swings both ways before its last minute (the strategy's settlement buffer), so
a pair-cost strategy resting bids on both sides gets maker fills on Up and on Down in every
window; the decisive move comes in the last minute. Down, Up, Up, Down win.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters.polymarket.gamma import gamma_input, window_slug  # noqa: E402
from adapters.polymarket.simseries import gamma_series, window_title  # noqa: E402
from polybot.bookhash import book_hash_wire, ltp_str  # noqa: E402
from polybot.synthetic import write_stream  # noqa: E402
from polybot.units import from_units  # noqa: E402

NAME = "rolling-btc-5m.jsonl.gz"
SERIES = "btc-updown-5m"
GAMMA_SERIES = gamma_series(SERIES)  # the event's series[] entry: btc-up-or-down-5m
START = 1_790_100_000  # the first window's start (a 5-minute boundary, unix s): 2026-09-22T18:00:00Z
WINDOW_S = 300
SCALE = 1_000_000
TICK = 10_000
NS = 1_000_000_000
MS = 1_000_000
DEPTH = 8
OUT = Path(__file__).resolve().parent

#: per window: (seconds into the window, Up best bid in ticks) and whether Up wins
PATHS: list[tuple[list[tuple[int, int]], bool]] = [
    ([(0, 49), (45, 37), (65, 38), (115, 60), (135, 59), (180, 40), (200, 41), (240, 50), (270, 20), (300, 7)], False),
    ([(0, 51), (40, 63), (60, 62), (110, 39), (130, 40), (175, 58), (195, 57), (240, 48), (270, 78), (300, 94)], True),
    ([(0, 50), (45, 38), (65, 39), (110, 61), (130, 60), (175, 42), (195, 43), (240, 51), (270, 77), (300, 91)], True),
    ([(0, 48), (40, 60), (60, 59), (110, 37), (130, 38), (180, 57), (200, 56), (240, 49), (270, 25), (300, 9)], False),
]  # fmt: skip


def iso(s: int | float) -> str:
    ns = int(s * NS)
    return datetime.fromtimestamp(ns // NS, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % NS // 1000:06d}Z"


def iso_s(s: int) -> str:
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def spaced(obj: Any) -> bytes:
    """The separators of the venue's stream frames: ``", "`` between items, ``":"`` after keys."""
    return json.dumps(obj, separators=(", ", ":")).encode()


def path_at(keys: list[tuple[int, int]], t: float) -> float:
    for (t0, p0), (t1, p1) in zip(keys, keys[1:]):
        if t0 <= t <= t1:
            return p0 + (p1 - p0) * (t - t0) / (t1 - t0)
    return keys[-1][1]


class Window:
    """One window's market: its ids, its unified book (Up terms, ticks -> base units) and its
    output frames ``(receive ns, source, bytes)``."""

    def __init__(self, k: int, start: int, keys: list[tuple[int, int]], up_wins: bool) -> None:
        self.k = k
        self.start, self.end = start, start + WINDOW_S
        self.listed = start - WINDOW_S
        self.keys, self.up_wins = keys, up_wins
        self.slug = window_slug(SERIES, start)
        self.rnd = random.Random(f"polybot/rolling/{self.slug}")
        rnd = self.rnd
        self.cid = "0x" + "".join(f"{rnd.getrandbits(8):02x}" for _ in range(32))
        self.qid = "0x" + "".join(f"{rnd.getrandbits(8):02x}" for _ in range(32))
        self.up, self.down = (str(rnd.getrandbits(255) | (1 << 254)) for _ in range(2))
        self.gamma_id = str(4_200_000 + k)
        self.event_id = str(1_500_000 + k)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.ltp = ""
        self.last_ms = 0
        self.out: list[tuple[int, str, bytes]] = []

    # -- time and output ------------------------------------------------------------------

    def stamp(self, t: float) -> int:
        """The venue's ms timestamp of a frame at ``t`` (unix s), strictly increasing per market."""
        ms = max(int(t * 1000), self.last_ms + 1)
        self.last_ms = ms
        return ms

    def put(self, ms: int, source: str, msg: bytes) -> None:
        self.out.append((ms * MS + self.rnd.randint(35, 75) * MS, source, msg))

    # -- the book ----------------------------------------------------------------------------

    @property
    def bb(self) -> int:
        return max(self.bids) if self.bids else 0

    @property
    def ba(self) -> int:
        return min(self.asks) if self.asks else 0

    def wire(self, asset: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(bids ascending, asks descending) of ``asset`` as the venue writes them."""
        if asset == self.up:
            bids = [(from_units(p * TICK), from_units(s)) for p, s in sorted(self.bids.items())]
            asks = [(from_units(p * TICK), from_units(s)) for p, s in sorted(self.asks.items(), reverse=True)]
        else:  # the mirror: an Up ask at p is a Down bid at 1 - p
            bids = [(from_units(SCALE - p * TICK), from_units(s)) for p, s in sorted(self.asks.items(), reverse=True)]
            asks = [(from_units(SCALE - p * TICK), from_units(s)) for p, s in sorted(self.bids.items())]
        return bids, asks

    def top(self, asset: str) -> tuple[str, str]:
        bb, ba = self.bb, self.ba
        if asset == self.up:
            return from_units(bb * TICK) if bb else "0", from_units(ba * TICK) if ba else "1"
        return from_units(SCALE - ba * TICK) if ba else "0", from_units(SCALE - bb * TICK) if bb else "1"

    def hash(self, asset: str, ms: int) -> str:
        bids, asks = self.wire(asset)
        return book_hash_wire(self.cid, asset, str(ms), bids, asks, "5", "0.01", False, self.ltp)

    def levels(self, asset: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        bids, asks = self.wire(asset)
        return [{"price": p, "size": s} for p, s in bids], [{"price": p, "size": s} for p, s in asks]

    # -- frames ------------------------------------------------------------------------------

    def gamma(self) -> None:
        """The Gamma ``/events?slug=…`` answer the feed's roll journals, one window ahead."""
        created = self.listed - 40
        up_px = "0.5"
        desc = ("This market will resolve to \"Up\" if the Bitcoin price at the end of the time range specified in "
                "the title is greater than or equal to the price at the beginning of that range. Otherwise, it will "
                "resolve to \"Down\".\nThe resolution source for this market is information from Chainlink, "
                "specifically the BTC/USD data stream available at https://data.chain.link/streams/btc-usd.\n"
                "Please note that this market is about the price according to Chainlink data stream BTC/USD, not "
                "according to other sources or spot markets.")  # fmt: skip
        title = window_title(SERIES, self.start, WINDOW_S)
        market = {
            "id": self.gamma_id, "question": title, "conditionId": self.cid, "slug": self.slug,
            "resolutionSource": "https://data.chain.link/streams/btc-usd", "endDate": iso_s(self.end),
            "liquidity": "0", "startDate": iso(created), "description": desc,
            "outcomes": json.dumps(["Up", "Down"]), "outcomePrices": json.dumps([up_px, up_px]), "volume": "0",
            "active": True, "closed": False, "marketMakerAddress": "", "createdAt": iso(created - 1.5),
            "updatedAt": iso(self.listed - 2), "new": False, "featured": False, "archived": False,
            "restricted": True, "groupItemThreshold": "0", "questionID": self.qid, "enableOrderBook": True,
            "orderPriceMinTickSize": 0.01, "orderMinSize": 5, "endDateIso": iso_s(self.end)[:10],
            "startDateIso": iso(created)[:10], "hasReviewedDates": True,
            "clobTokenIds": json.dumps([self.up, self.down]), "comboStatus": "disabled", "makerBaseFee": 1000,
            "takerBaseFee": 1000, "acceptingOrders": True, "negRisk": False, "ready": False, "funded": False,
            "acceptingOrdersTimestamp": iso_s(int(created)), "cyom": False, "approved": True, "rewardsMinSize": 50,
            "rewardsMaxSpread": 4.5, "spread": 0.01, "bestBid": 0.49, "bestAsk": 0.5, "negRiskOther": False,
            "umaResolutionStatuses": "[]", "pendingDeployment": False, "deploying": False, "rfqEnabled": False,
            "eventStartTime": iso_s(self.start), "holdingRewardsEnabled": False, "feesEnabled": True,
            "makerRebatesFeeShareBps": 10000, "feeType": "crypto_fees_v2",
            "feeSchedule": {"exponent": 1, "rate": 0.07, "takerOnly": True, "rebateRate": 0.2},
            "cryptoMarketConfigId": "btc-5m", "cryptoMarketConfig": {"id": "btc-5m", "asset": "btc", "duration": "5m"},
            "version": "v1",
        }  # fmt: skip
        event = {
            "id": self.event_id, "ticker": self.slug, "slug": self.slug, "title": title, "description": desc,
            "resolutionSource": market["resolutionSource"], "startDate": market["startDate"],
            "creationDate": iso(created + 2.5), "endDate": market["endDate"], "active": True, "closed": False,
            "archived": False, "new": False, "featured": False, "restricted": True, "liquidity": 0, "volume": 0,
            "openInterest": 0, "createdAt": market["createdAt"], "updatedAt": market["updatedAt"],
            "enableOrderBook": True, "negRisk": False, "commentCount": 0, "markets": [market],
            "series": [GAMMA_SERIES],
            "tags": [{"id": "102127", "label": "Up or Down", "slug": "up-or-down"},
                     {"id": "1312", "label": "Crypto Prices", "slug": "crypto-prices"},
                     {"id": "101757", "label": "Recurring", "slug": "recurring"},
                     {"id": "21", "label": "Crypto", "slug": "crypto"},
                     {"id": "235", "label": "Bitcoin", "slug": "bitcoin"}],
            "enableNegRisk": False, "negRiskAugmented": False,
        }  # fmt: skip
        t = self.listed + 0.2
        msg = gamma_input("events", {"slug": [self.slug], "limit": "1"}, json.dumps([event], separators=(",", ":")).encode())
        self.out.append((int(t * NS), "polymarket.gamma", msg))

    def dump(self, t: float) -> None:
        ms = self.stamp(t)
        books = []
        for a in (self.up, self.down):
            bids, asks = self.levels(a)
            books.append({"market": self.cid, "asset_id": a, "timestamp": str(ms), "hash": self.hash(a, ms),
                          "bids": bids, "asks": asks, "tick_size": "0.01", "event_type": "book",
                          "last_trade_price": self.ltp})  # fmt: skip
        self.put(ms, "polymarket.market", compact(books) + b"\n")

    def changes(self, t: float, changes: list[tuple[str, int, int]]) -> None:
        """One ``price_change`` frame: each (side, tick, size) on the Up book, with its mirrored
        Down entry; best bid/ask after each change, the hash after all of them."""
        if not changes:
            return
        entries: list[dict[str, str]] = []
        for side, tick, size in changes:
            book = self.bids if side == "BID" else self.asks
            if size:
                book[tick] = size
            else:
                book.pop(tick, None)
            assert not (self.bb and self.ba and self.bb >= self.ba), "the generator crossed the book"
            s = from_units(size)
            yb, ya = self.top(self.up)
            nb, na = self.top(self.down)
            up = {"asset_id": self.up, "price": from_units(tick * TICK), "size": s,
                  "side": "BUY" if side == "BID" else "SELL", "hash": "", "best_bid": yb, "best_ask": ya}  # fmt: skip
            down = {"asset_id": self.down, "price": from_units(SCALE - tick * TICK), "size": s,
                    "side": "SELL" if side == "BID" else "BUY", "hash": "", "best_bid": nb, "best_ask": na}  # fmt: skip
            entries += [up, down] if self.rnd.random() < 0.5 else [down, up]
        ms = self.stamp(t)
        hashes = {a: self.hash(a, ms) for a in (self.up, self.down)}
        for e in entries:
            e["hash"] = hashes[e["asset_id"]]
        self.put(ms, "polymarket.market", spaced({"market": self.cid, "price_changes": entries,
                                                  "timestamp": str(ms), "event_type": "price_change"}))  # fmt: skip

    def sweep(self, t: float, side: str, levels: int, partial: bool) -> None:
        """A taker hits ``levels`` Up bids (``side`` BID: selling Up) or lifts Up asks, the last
        level maybe partly: the trade-triggered books of both tokens, then one print per level."""
        rnd = self.rnd
        book = self.bids if side == "BID" else self.asks
        taken: list[tuple[int, int]] = []
        for i in range(levels):
            if len(book) <= 2:
                break
            tick = self.bb if side == "BID" else self.ba
            size = book[tick]
            take = size
            if partial and i == levels - 1 and size > 2 * SCALE:
                take = max(SCALE, size * rnd.randint(20, 70) // 100 // TICK * TICK)
                if levels == 1:  # a small trade at the touch
                    take = min(take, self.shares(1, 25), size - SCALE)
            if take < size:
                book[tick] = size - take
            else:
                del book[tick]
            taken.append((tick, take))
        if not taken:
            return
        # each print on the token the taker traded: selling Up at p is buying Down at 1 - p
        prints = []
        for tick, take in taken:
            if rnd.random() < 0.5:
                prints.append((self.up, tick * TICK, take, "SELL" if side == "BID" else "BUY"))
            else:
                prints.append((self.down, SCALE - tick * TICK, take, "BUY" if side == "BID" else "SELL"))
        self.ltp = ltp_str(prints[-1][1])
        ms = self.stamp(t)
        order = [self.up, self.down] if rnd.random() < 0.5 else [self.down, self.up]
        for a in order:
            bids, asks = self.levels(a)
            self.put(ms, "polymarket.market", spaced({"market": self.cid, "asset_id": a, "bids": bids, "asks": asks,
                                                      "hash": self.hash(a, ms), "timestamp": str(ms),
                                                      "event_type": "book"}))  # fmt: skip
        pms = self.stamp(t + rnd.randint(3, 30) / 1000)
        for asset, price, size, taker in prints:
            txh = "0x" + "".join(f"{rnd.getrandbits(8):02x}" for _ in range(32))
            self.put(pms, "polymarket.market", spaced({
                "market": self.cid, "asset_id": asset, "price": from_units(price), "size": from_units(size),
                "fee_rate_bps": "0", "side": taker, "timestamp": str(pms), "event_type": "last_trade_price",
                "transaction_hash": txh}))  # fmt: skip

    def resolved(self) -> None:
        ms = self.stamp(self.end + 1)
        win = self.up if self.up_wins else self.down
        self.put(ms, "polymarket.market", spaced({
            "id": self.gamma_id, "market": self.cid, "assets_ids": [self.up, self.down], "winning_asset_id": win,
            "winning_outcome": "Up" if self.up_wins else "Down", "event_message": None, "timestamp": str(ms),
            "event_type": "market_resolved", "tags": ["Crypto", "Up or Down", "Recurring"]}))  # fmt: skip

    # -- the story ---------------------------------------------------------------------------

    def shares(self, lo: int, hi: int) -> int:
        s = self.rnd.randint(lo, hi) * SCALE
        if self.rnd.random() < 0.3:
            s += self.rnd.randint(1, 99) * TICK
        return s

    def maintain(self, spread: int) -> list[tuple[str, int, int]]:
        """Makers refill: the spread back to ``spread`` ticks, DEPTH levels a side, far levels gone."""
        out: list[tuple[str, int, int]] = []
        bids, asks = dict(self.bids), dict(self.asks)

        def put(side: str, tick: int, size: int) -> None:
            (bids if side == "BID" else asks)[tick] = size
            if not size:
                del (bids if side == "BID" else asks)[tick]
            out.append((side, tick, size))

        while min(asks) - max(bids) > spread:
            if self.rnd.random() < 0.5:
                put("BID", max(bids) + 1, self.shares(20, 200))
            else:
                put("ASK", min(asks) - 1, self.shares(20, 200))
        bb, ba = max(bids), min(asks)
        for i in range(DEPTH):
            if bb - i >= 1 and bb - i not in bids:
                put("BID", bb - i, self.shares(30, 250))
            if ba + i <= 99 and ba + i not in asks:
                put("ASK", ba + i, self.shares(30, 250))
        for t in [t for t in bids if t < bb - DEPTH - 1]:
            put("BID", t, 0)
        for t in [t for t in asks if t > ba + DEPTH + 1]:
            put("ASK", t, 0)
        return out

    def frames(self) -> list[tuple[int, str, bytes]]:
        rnd = self.rnd
        self.gamma()
        bid0 = self.keys[0][1]
        for i in range(DEPTH):
            self.bids[bid0 - i] = self.shares(30, 250)
            self.asks[bid0 + 1 + i] = self.shares(30, 250)
        self.dump(self.listed + 0.35)
        t = self.listed + rnd.uniform(10, 30)
        while t < self.start:  # waiting its turn: makers change a size further out now and then
            side = "BID" if rnd.random() < 0.5 else "ASK"
            tick = self.bb - rnd.randint(1, DEPTH - 1) if side == "BID" else self.ba + rnd.randint(1, DEPTH - 1)
            self.changes(t, [(side, tick, self.shares(20, 250))])
            t += rnd.uniform(15, 35)
        next_sweep = 5.0
        for sec in range(1, WINDOW_S):
            t = self.start + sec + rnd.randint(0, 700) / 1000
            want = min(max(round(path_at(self.keys, sec)), 2), 97)
            gap = want - self.bb
            if gap:
                side = "BID" if gap < 0 else "ASK"  # sellers hit the Up bids, buyers lift the Up asks
                if sec >= next_sweep and abs(gap) >= 2:
                    self.sweep(t, side, rnd.randint(3, 4), partial=True)  # a fast move
                    next_sweep = sec + 6 * rnd.uniform(0.6, 1.4)
                else:
                    self.sweep(t, side, 1, partial=False)
                self.changes(t + 0.05, self.maintain(2 if rnd.random() < 0.15 else 1))
            elif rnd.random() < 0.3:  # a small trade at the touch that leaves the level standing
                self.sweep(t, "BID" if rnd.random() < 0.5 else "ASK", 1, partial=True)
            elif rnd.random() < 0.25:  # a maker changes its size further out
                side = "BID" if rnd.random() < 0.5 else "ASK"
                tick = self.bb - rnd.randint(2, DEPTH - 1) if side == "BID" else self.ba + rnd.randint(2, DEPTH - 1)
                if 1 <= tick <= 99:
                    self.changes(t, [(side, tick, self.shares(20, 250))])
        self.resolved()
        return self.out


def windows() -> list[Window]:
    return [Window(k, START + k * WINDOW_S, keys, up) for k, (keys, up) in enumerate(PATHS)]


def recordings() -> dict[str, Iterator[tuple[int, str, bytes]]]:
    """File name -> its input records (all windows merged in receive-time order)."""
    records: list[tuple[int, int, str, bytes]] = []
    for w in windows():
        for i, (ts, src, msg) in enumerate(w.frames()):
            records.append((ts, w.k * 1_000_000 + i, src, msg))
    records.sort(key=lambda r: (r[0], r[1]))
    return {NAME: iter([(ts, src, msg) for ts, _, src, msg in records])}


def check(path: Path) -> int:
    """Replay ``path`` through config/pair_cost.toml with the strategy following the 5m series,
    verifying every book; print per window the maker fills on Up and Down."""
    from polybot.config import load_config
    from polybot.events import OrderFilled, OrderPartiallyFilled
    from polybot.replay import replay

    cfg = load_config(ROOT / "config" / "pair_cost.toml")
    cfg.strategies["gabagool"]["series"] = [SERIES]
    fills: dict[str, list[int]] = {}

    def on_kernel(k: Any) -> None:
        def on_fill(ev: Any) -> None:
            if ev.liquidity == "maker":
                fills.setdefault(ev.asset_id, []).append(ev.size)

        k.bus.subscribe(OrderFilled, on_fill)
        k.bus.subscribe(OrderPartiallyFilled, on_fill)

    summary = replay(path, cfg, on_kernel=on_kernel, verify_book=True)
    books = summary["books"]["total"]
    print(f"books: {books['passed']} hash checks passed, {books['failed']} failed")
    ok = books["failed"] == 0 and books["passed"] > 0 and not summary["errors"]
    for w in windows():
        up, down = len(fills.get(w.up, [])), len(fills.get(w.down, []))
        print(f"{w.slug}: {up} Up fills, {down} Down fills")
        ok = ok and up > 0 and down > 0
    print(json.dumps({k: summary[k] for k in ("inputs", "intents", "orders", "fills", "rejections", "pnl", "errors")
                      if k in summary}, default=str))  # fmt: skip
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    """``make_rolling.py [OUT_DIR] [--check]`` (default: this directory)."""
    args = [a for a in argv if a != "--check"]
    out = Path(args[0]) if args else OUT
    out.mkdir(parents=True, exist_ok=True)
    path = out / NAME
    for name, records in recordings().items():
        n = write_stream(str(out / name), records)
        print(f"{out / name}: {n} inputs, {(out / name).stat().st_size:,} bytes")
    return check(path) if "--check" in argv else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
