"""Book integrity: the venue's book hash (PROTOCOL.md §1.8) and top of book checked against the
local book. The incremental BookHasher against the reference, the upstream test vector, replays of
both real captures with every check passing (counted independently from the files), tampering,
the last-trade-price rules on a synthetic market, and the health transitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from adapters.polymarket.wire import DECODER, REST_DECODER
from polybot.bookhash import book_hash_wire, hash_tail, ltp_candidates, ltp_str
from polybot.config import Config
from polybot.events import (
    ENCODER,
    BookHealth,
    BookSnapshot,
    Event,
    FeedDisconnected,
)
from polybot.journal import JournalWriter, text_frame
from polybot.kernel import Kernel
from polybot.replay import replay
from polybot.units import SCALE, from_units
from sample_data import H1, POLYTOPE, SAMPLES, require_samples

require_samples()

SRC = "polymarket.market"
A_587 = "58726851105893121441976415044785550794620582864839872973127370351200548678811"
A_401 = "40113202025193181740822500498877260546965498642740503547096491847887927548587"
A_980 = "98022490269692409998126496127597032490334070080325855126491859374983463996227"
A_538_PREFIX = "538315"


@pytest.fixture(autouse=True)
def _quiet_logs():  # noqa: ANN202
    logger.disable("polybot")
    yield
    logger.enable("polybot")


# =========================================================================== (1) BookHasher == reference

TICKS = st.sampled_from([10_000, 1_000])
sizes = st.integers(min_value=1, max_value=10**12)  # up to 1,000,000 shares, 6 decimals
ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8) | st.just(
    "0x2aaeb40ad2a1ad262d75d5c52bff1a9f801fb72e65774343729fe103ee9fa308")


def ref_hash(market: str, aid: str, ts: str, bids: dict[int, int], asks: dict[int, int], meta: tuple) -> str:
    mos, tick, neg, ltp, ver = meta
    return book_hash_wire(market, aid, ts,
                          [(from_units(p), from_units(s)) for p, s in sorted(bids.items())],
                          [(from_units(p), from_units(s)) for p, s in sorted(asks.items(), reverse=True)],
                          mos, tick, neg, ltp, ver)  # fmt: skip


@st.composite
def books_and_ops(draw: Any) -> tuple:
    tick = draw(TICKS)
    grid = st.integers(1, SCALE // tick - 1).map(lambda i: i * tick)
    bids = draw(st.dictionaries(grid, sizes, max_size=25))
    asks = draw(st.dictionaries(grid, sizes, max_size=25))
    ops = draw(st.lists(st.tuples(st.sampled_from(["bid", "ask"]), grid, st.one_of(st.just(0), sizes)), max_size=40))
    meta = (draw(st.sampled_from(["5", "1", "100", "0.5"])), from_units(tick), draw(st.booleans()),
            draw(st.sampled_from(ltp_candidates())), draw(st.sampled_from(["", "v2"])))  # fmt: skip
    ts = str(draw(st.integers(0, 2_000_000_000_000)))
    return draw(ids), draw(ids), ts, bids, asks, ops, meta


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(books_and_ops())
def test_book_hasher_follows_the_book_through_changes(case: tuple) -> None:
    """The kernel's renderer (bound to an OrderBook, fragments in price order) equals the
    reference after every set, insert and removal, including removals of absent levels."""
    from polybot.book import OrderBook
    from polybot.bookhash import BookHasher

    market, aid, ts, bids, asks, ops, meta = case
    book = OrderBook(aid, market)
    book.replace(bids.items(), asks.items())
    hb = BookHasher(book)
    tail = hash_tail(*meta)
    assert hb.digest(ts, tail) == ref_hash(market, aid, ts, bids, asks, meta)
    for side, p, s in ops:
        if side == "bid":
            book.set_bid(p, s)
            hb.bid_changed(p, s)
            model = bids
        else:
            book.set_ask(p, s)
            hb.ask_changed(p, s)
            model = asks
        if s > 0:
            model[p] = s
        else:
            model.pop(p, None)
        assert hb.digest(ts, tail) == ref_hash(market, aid, ts, bids, asks, meta)


def test_ltp_str_and_candidates() -> None:
    assert ltp_str(490_000) == "0.490" and ltp_str(510_000) == "0.510" and ltp_str(5_000) == "0.005"
    assert ltp_str(SCALE - 510_000) == "0.490"
    c = ltp_candidates()
    assert len(c) == 1000 and c[0] == "" and c[1] == "0.001" and c[-1] == "0.999" and "0.550" in c


# =========================================================================== (2) vectors and real hashes


def test_upstream_vector() -> None:
    """py-clob-client-v2 tests/test_client_market_params.py expects this hash for this summary."""
    h = book_hash_wire("0xaabbcc", "100", "123456789", [("0.3", "100"), ("0.4", "100")], [("0.6", "100"), ("0.7", "100")],
                       "100", "0.01", False, "0.5")  # fmt: skip
    assert h == "0458ea5755c9f73d64a14636fa5c36ed460ec394"
    # an empty book, empty timestamp (a Go client's test vector for the same summary, emptied)
    assert book_hash_wire("0xaabbcc", "100", "", [], [], "100", "0.01", False, "0.5") == "74c6a7c81c1d572f1c877b7d3e25b80c336d8a6e"


def _wire_hash(o: dict, mos: str = "5", neg: bool = False, ltp: str | None = None) -> str:
    return book_hash_wire(o["market"], o["asset_id"], o["timestamp"], [(x["price"], x["size"]) for x in o["bids"]],
                          [(x["price"], x["size"]) for x in o["asks"]], o.get("min_order_size", mos),
                          o.get("tick_size", "0.01"), o.get("neg_risk", neg),
                          o["last_trade_price"] if ltp is None else ltp, o.get("version", ""))  # fmt: skip


def test_real_server_hashes_recompute() -> None:
    dump = json.loads(json.loads(H1.read_text().splitlines()[0])["payloadUtf8"])
    for o in dump:
        assert _wire_hash(o) == o["hash"]
    poly = json.loads(POLYTOPE.read_text().splitlines()[0])
    assert _wire_hash(poly[0]) == poly[0]["hash"]
    for name in ("book-v1.json", "book-v2.json"):
        o = json.loads((SAMPLES / "adriancova" / name).read_text())
        assert _wire_hash(o) == o["hash"]
    # trade-triggered h1 books: hashed with the market's ltp of the moment ("0.490", then "0.500")
    frames = [json.loads(json.loads(line)["payloadUtf8"]) for line in H1.read_text().splitlines()[23:27]]
    assert _wire_hash(frames[0], ltp="0.490") == frames[0]["hash"]
    assert _wire_hash(frames[1], ltp="0.490") == frames[1]["hash"]
    assert _wire_hash(frames[3], ltp="0.500") == frames[3]["hash"]


# =========================================================================== (3) replays of the real captures


def independent_count(frames: list[bytes]) -> tuple[int, int, set[str]]:
    """Hash checks a correct client passes, counted from the frames alone: one per book of a
    subscribed asset (a dump book states last_trade_price; a trade book follows a dump), and one
    per run of a subscribed asset: consecutive frames with its entries at the same timestamp and
    the same final hash; a run over several frames is a split run."""
    subscribed: set[str] = set()
    checks = 0
    split = 0
    run: dict[str, list] = {}  # asset -> [(ts, hash), frames]
    for raw in frames:
        if raw.strip() in (b"PONG", b'"PONG"'):
            continue
        obj = json.loads(raw)
        for o in obj if isinstance(obj, list) else [obj]:
            aid = o.get("asset_id")
            if o["event_type"] == "book":
                if "last_trade_price" in o:
                    subscribed.add(aid)
                if aid in subscribed:
                    checks += 1
                    run.pop(aid, None)
            elif o["event_type"] == "price_change":
                last = {e["asset_id"]: e for e in o["price_changes"]}
                for a, e in last.items():
                    if a not in subscribed:
                        continue
                    key = (o["timestamp"], e["hash"])
                    r = run.get(a)
                    if r is not None and r[0] == key:
                        r[1] += 1
                        if r[1] == 2:
                            split += 1
                    else:
                        checks += 1
                        run[a] = [key, 1]
    return checks, split, subscribed


def h1_frames() -> list[bytes]:
    return [json.loads(line)["payloadUtf8"].encode() for line in H1.read_text().splitlines() if line.strip()]


def polytope_frames() -> list[bytes]:
    return [line.strip().encode() for line in POLYTOPE.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("path,frames,fmt", [(H1, h1_frames, "received-at"), (POLYTOPE, polytope_frames, None)],
                         ids=["h1-run-8", "polytope-market-39"])  # fmt: skip
def test_replay_real_capture_every_check_passes(path: Path, frames: Any, fmt: str | None) -> None:
    expected, split, subscribed = independent_count(frames())
    assert expected == 31  # 2 + 26 + 3 (h1) and 1 + 30 (market 39): the counter itself, pinned
    s = replay(path, Config(), verify_book=True)
    assert s.get("import_format") == fmt
    rep = s["books"]
    assert rep["failed"] == 0
    assert rep["passed"] == expected == rep["hash_checks"]
    assert rep["bbo_mismatches"] == 0 and rep["resyncs"] == 0
    assert rep["total"]["split_runs"] == split
    assert rep["total"]["unhealthy"] == 0 and rep["total"]["unverified"] == 0
    assert rep["dropped"] == {} and s["errors"] == {}
    assert set(rep["assets"]) == subscribed
    for aid in subscribed:
        assert rep["assets"][aid]["healthy"] is True


def test_replay_counts_per_asset_h1() -> None:
    rep = replay(H1, Config(), verify_book=True)["books"]["assets"]
    # 401132: dump + 13 runs + 2 trade books; 587268: dump + 13 runs + 1 trade book
    assert (rep[A_401]["passed"], rep[A_401]["snapshots"], rep[A_401]["split_runs"]) == (16, 3, 1)
    assert (rep[A_587]["passed"], rep[A_587]["snapshots"], rep[A_587]["split_runs"]) == (15, 2, 1)
    # the ltp changed twice before its print: two one-off searches, both on the first trade book of 401132's
    assert rep[A_401]["ltp_searches"] + rep[A_587]["ltp_searches"] == 2


def test_polytope_unsubscribed_token_is_ignored() -> None:
    seen: list[Any] = []
    s = replay(POLYTOPE, Config(), verify_book=True, on_kernel=lambda k: seen.append(k))
    k = seen[0]
    assert [a for a in k.books] == [A_980]
    assert not any(a.startswith(A_538_PREFIX) for a in s["books"]["assets"])
    b = k.books[A_980]
    assert (b.best_bid, b.best_ask) == (540_000, 550_000)
    assert k.integrity.markets[b.market].ltp == "0.550"


# =========================================================================== (4) tampering


def _rewrite_h1(tmp_path: Path, line_no: int, edit: Any) -> Path:
    lines = H1.read_text().splitlines()
    rec = json.loads(lines[line_no])
    obj = json.loads(rec["payloadUtf8"])
    edit(obj)
    rec["payloadUtf8"] = json.dumps(obj)
    lines[line_no] = json.dumps(rec)
    out = tmp_path / "h1-tampered.jsonl"
    out.write_text("\n".join(lines) + "\n")
    return out


def _replay_with_health(path: Path) -> tuple[dict, list[BookHealth], Any]:
    health: list[BookHealth] = []
    ks: list[Any] = []

    def hook(k: Any) -> None:
        ks.append(k)
        k.bus.subscribe(BookHealth, health.append)

    s = replay(path, Config(), verify_book=True, on_kernel=hook)
    return s, health, ks[0]


def test_tampered_size_fails_exactly_that_asset_and_a_snapshot_restores_it(tmp_path: Path) -> None:
    clean = replay(H1, Config(), verify_book=True)["books"]["assets"]

    def edit(o: dict) -> None:  # frame 12: 401132's entry SELL 0.51 x 684.49 (not a change of best price)
        (e,) = [e for e in o["price_changes"] if e["asset_id"] == A_401]
        assert (e["price"], e["size"]) == ("0.51", "684.49")
        e["size"] = "684.5"

    s, health, _ = _replay_with_health(_rewrite_h1(tmp_path, 12, edit))
    rep = s["books"]
    a = rep["assets"]
    assert rep["failed"] == 1 and a[A_401]["failed"] == 1
    assert a[A_587] == clean[A_587]  # the other token: untouched
    assert a[A_401]["bbo_mismatch"] == 0
    # the failed run and the 8 runs after it (unchecked while unhealthy) until the trade book of frame 23
    assert a[A_401]["passed"] == clean[A_401]["passed"] - 9
    assert [(h.asset_id, h.healthy, h.reason) for h in health if h.asset_id == A_401] == [
        (A_401, True, "snapshot"), (A_401, False, "hash mismatch"), (A_401, True, "snapshot")]
    assert a[A_401]["resyncs"] == 1 and rep["resyncs"] == 1 and a[A_401]["healthy"] is True


def test_tampered_best_level_is_a_bbo_mismatch(tmp_path: Path) -> None:
    def edit(o: dict) -> None:  # removes 401132's best ask 0.51: the venue still says 0.51
        (e,) = [e for e in o["price_changes"] if e["asset_id"] == A_401]
        e["size"] = "0"

    s, health, _ = _replay_with_health(_rewrite_h1(tmp_path, 12, edit))
    a = s["books"]["assets"]
    assert a[A_401]["bbo_mismatch"] == 1 and a[A_401]["failed"] == 0 and s["books"]["bbo_mismatches"] == 1
    bad = [h for h in health if h.asset_id == A_401 and not h.healthy]
    assert len(bad) == 1 and bad[0].reason.startswith("best bid/ask mismatch")
    assert a[A_587]["bbo_mismatch"] == 0 and a[A_587]["failed"] == 0


def _polytope_journal(tmp_path: Path, tamper: bool) -> tuple[Path, int]:
    """The capture as a journal (bare frames timed by their own timestamp); optionally one size changed."""
    out = tmp_path / ("tampered.jsonl" if tamper else "clean.jsonl")
    w = JournalWriter(out, fsync="never", append=False)
    ts = 0
    done = False
    for raw in polytope_frames():
        if raw == b"PONG":
            w.write_input(ts, SRC, text_frame(raw))
            continue
        ts = DECODER.bare_ts(raw) or ts
        if tamper and not done and b'"1779862957120"' in raw:
            o = json.loads(raw)
            (e,) = [e for e in o["price_changes"] if e["asset_id"] == A_980]
            assert (e["price"], e["size"]) == ("0.07", "3528.57")
            e["size"] = "3528.56"
            raw = json.dumps(o).encode()
            done = True
        w.write_input(ts, SRC, raw)
    w.close()
    assert done or not tamper
    return out, ts


def _true_book(k: Any, aid: str, ts_ms: int) -> dict:
    b = k.books[aid]
    o = {"market": b.market, "asset_id": aid, "timestamp": str(ts_ms), "hash": "",
         "bids": [{"price": from_units(p), "size": from_units(s)} for p, s in b.bids.items()],
         "asks": [{"price": from_units(p), "size": from_units(s)} for p, s in reversed(b.asks.items())],
         "min_order_size": "5", "tick_size": "0.01", "neg_risk": False, "last_trade_price": "0.550"}  # fmt: skip
    o["hash"] = _wire_hash(o)
    return o


@pytest.mark.parametrize("via", ["polymarket.book", "events"])
def test_tampered_polytope_then_rest_snapshot_resyncs(tmp_path: Path, via: str) -> None:
    clean_path, last_ts = _polytope_journal(tmp_path, tamper=False)
    ks: list[Any] = []
    clean = replay(clean_path, Config(), verify_book=True, on_kernel=ks.append)["books"]
    assert clean["failed"] == 0 and clean["passed"] == 31
    rest = _true_book(ks[0], A_980, last_ts // 1_000_000 + 1_000)
    assert REST_DECODER(json.dumps(rest).encode(), 0)[0].hash == rest["hash"]

    path, _ = _polytope_journal(tmp_path, tamper=True)
    w = JournalWriter(path, fsync="never", append=True)
    if via == "polymarket.book":
        w.write_input(last_ts + 10**9, via, json.dumps(rest).encode())
    else:
        (snap,) = REST_DECODER(json.dumps(rest).encode(), last_ts + 10**9)
        w.write_input(last_ts + 10**9, via, ENCODER.encode(snap))
    w.close()

    s, health, k = _replay_with_health(path)
    a = s["books"]["assets"][A_980]
    assert a["failed"] == 1 and s["books"]["failed"] == 1
    assert a["resyncs"] == 1 and a["snapshots"] == 2 and a["healthy"] is True
    assert [(h.healthy, h.reason) for h in health] == [(True, "snapshot"), (False, "hash mismatch"), (True, "snapshot")]
    # the tampered frame is the 2nd run: checked 1 (dump) + 1 (first run) + the REST snapshot
    assert a["passed"] == 3
    assert k.books[A_980].bids == ks[0].books[A_980].bids and k.books[A_980].asks == ks[0].books[A_980].asks


# =========================================================================== (5) last trade price, synthetic


MKT = "0x" + "ab" * 32
YES = "1" * 40
NO = "2" * 40


def _u(s: str) -> int:
    from polybot.units import to_units

    return to_units(s)


class Venue:
    """A two-token market as the server keeps it: books (base units), tick, the market's last
    trade price; it writes frames carrying the hashes it would compute (polybot.bookhash)."""

    def __init__(self, ltp: str = "0.550", tick: str = "0.01") -> None:
        self.ltp = ltp
        self.tick = tick
        self.books: dict[str, tuple[dict[int, int], dict[int, int]]] = {YES: ({}, {}), NO: ({}, {})}

    def set(self, aid: str, side: str, price: str, size: str) -> None:
        d = self.books[aid][0 if side == "BUY" else 1]
        if _u(size) > 0:
            d[_u(price)] = _u(size)
        else:
            d.pop(_u(price), None)

    def hash(self, aid: str, ts: int, ltp: str | None = None) -> str:
        bids, asks = self.books[aid]
        return ref_hash(MKT, aid, str(ts), bids, asks, ("5", self.tick, False, self.ltp if ltp is None else ltp, ""))

    def _obj(self, aid: str, ts: int) -> dict:
        bids, asks = self.books[aid]
        return {"market": MKT, "asset_id": aid, "timestamp": str(ts), "hash": self.hash(aid, ts),
                "bids": [{"price": from_units(p), "size": from_units(s)} for p, s in sorted(bids.items())],
                "asks": [{"price": from_units(p), "size": from_units(s)} for p, s in sorted(asks.items(), reverse=True)],
                "event_type": "book"}  # fmt: skip

    def dump(self, ts: int, aids: tuple[str, ...] = (YES, NO)) -> bytes:
        return json.dumps([dict(self._obj(a, ts), tick_size=self.tick, last_trade_price=self.ltp) for a in aids]).encode()

    def trade_book(self, aid: str, ts: int) -> bytes:
        return json.dumps(self._obj(aid, ts)).encode()

    def top(self, aid: str) -> tuple[str, str]:
        bids, asks = self.books[aid]
        return (from_units(max(bids)) if bids else "0", from_units(min(asks)) if asks else "0")

    def frame(self, ts: int, changes: list[tuple[str, str, str, str]], hashes: dict[str, str] | None = None) -> bytes:
        """A price_change frame; each entry's hash is its asset's state after the whole frame
        (or ``hashes``), best bid/ask after that entry."""
        entries = []
        for aid, side, price, size in changes:
            self.set(aid, side, price, size)
            bb, ba = self.top(aid)
            entries.append({"asset_id": aid, "price": price, "size": size, "side": side, "best_bid": bb, "best_ask": ba})
        for e in entries:
            e["hash"] = (hashes or {}).get(e["asset_id"]) or self.hash(e["asset_id"], ts)
        return json.dumps({"market": MKT, "price_changes": entries, "timestamp": str(ts), "event_type": "price_change"}).encode()

    @staticmethod
    def mirror(aid: str, side: str, price: str, size: str) -> list[tuple[str, str, str, str]]:
        """A YES bid at p is a NO ask at 1 - p with the same size (and the reverse)."""
        other = NO if aid == YES else YES
        return [(aid, side, price, size), (other, "SELL" if side == "BUY" else "BUY", from_units(SCALE - _u(price)), size)]

    @staticmethod
    def print_(aid: str, price: str, ts: int) -> bytes:
        return json.dumps({"market": MKT, "asset_id": aid, "price": price, "size": "20", "fee_rate_bps": "0",
                           "side": "BUY", "timestamp": str(ts), "event_type": "last_trade_price"}).encode()  # fmt: skip


def synthetic(**kw: Any) -> tuple[Kernel, Venue, list[Event]]:
    v = Venue(**kw)
    for c in [("0.50", "100"), ("0.49", "50"), ("0.40", "1000")]:
        for aid, side, p, s in Venue.mirror(YES, "BUY", *c):
            v.set(aid, side, p, s)
    for c in [("0.52", "80"), ("0.53", "40"), ("0.60", "700")]:
        for aid, side, p, s in Venue.mirror(YES, "SELL", *c):
            v.set(aid, side, p, s)
    k = Kernel()
    k.add_decoder(SRC, DECODER)
    seen: list[Event] = []
    k.bus.subscribe(Event, seen.append)
    k.process(1, SRC, v.dump(1_000))
    assert totals(k)["passed"] == 2 and k.books.is_healthy(YES) and k.books.is_healthy(NO)
    seen.clear()
    return k, v, seen


def totals(k: Kernel) -> dict[str, int]:
    return k.integrity.summary()["total"]


def counts(k: Kernel, aid: str) -> dict[str, int]:
    return k.integrity.counts_for(aid).to_dict()


def test_ltp_changed_before_its_print_one_search_then_print_verifies_both() -> None:
    k, v, _ = synthetic(ltp="0.550")
    v.ltp = "0.490"  # a trade happened; its print is late
    k.process(2, SRC, v.frame(2_000, Venue.mirror(YES, "BUY", "0.49", "60")))
    assert totals(k)["passed"] == 2 and totals(k)["failed"] == 0  # pending: maybe a split run
    assert k.books[YES].pending and k.books[NO].pending
    k.process(3, SRC, v.frame(3_000, Venue.mirror(YES, "BUY", "0.48", "5")))  # a new run settles the old one
    t = totals(k)
    assert t["ltp_searches"] == 1 and t["failed"] == 0 and t["passed"] == 2 + 2 + 2
    assert k.integrity.markets[MKT].ltp == "0.490"
    k.process(4, SRC, Venue.print_(YES, "0.51", 3_500))  # the print: 0.51 on YES, 1 - p = 0.490
    assert k.integrity.markets[MKT].print_cands == ("0.510", "0.490")
    k.process(5, SRC, v.frame(4_000, Venue.mirror(YES, "SELL", "0.53", "41")))
    t = totals(k)
    assert t["passed"] == 8 and t["ltp_searches"] == 1 and t["failed"] == 0
    assert k.books.is_healthy(YES) and k.books.is_healthy(NO)


def test_print_first_then_runs_verify_with_one_minus_p_without_search() -> None:
    k, v, _ = synthetic(ltp="0.550")
    k.process(2, SRC, Venue.print_(YES, "0.51", 1_500))
    v.ltp = "0.490"  # the venue hashes both books with 1 - p of YES's print
    k.process(3, SRC, v.frame(2_000, Venue.mirror(YES, "BUY", "0.49", "60")))
    t = totals(k)
    assert t["passed"] == 4 and t["ltp_searches"] == 0 and t["failed"] == 0  # immediately, not pending
    assert not k.books[YES].pending and k.integrity.markets[MKT].ltp == "0.490"
    v.ltp = "0.510"  # another trade at p itself
    k.process(4, SRC, Venue.print_(YES, "0.51", 2_500))
    k.process(5, SRC, v.frame(3_000, Venue.mirror(NO, "BUY", "0.30", "7")))
    assert totals(k)["passed"] == 6 and totals(k)["ltp_searches"] == 0


def test_trade_triggered_book_learns_the_ltp() -> None:
    k, v, _ = synthetic(ltp="0.550")
    v.ltp = "0.500"
    v.set(YES, "BUY", "0.50", "90")
    k.process(2, SRC, v.trade_book(YES, 2_000))
    c = counts(k, YES)
    assert c["passed"] == 2 and c["ltp_searches"] == 1 and c["unverified"] == 0 and c["snapshots"] == 2
    assert k.integrity.markets[MKT].ltp == "0.500"
    v.set(NO, "SELL", "0.50", "90")
    k.process(3, SRC, v.trade_book(NO, 2_001))
    assert counts(k, NO)["passed"] == 2 and counts(k, NO)["ltp_searches"] == 0
    assert k.books[YES].bids[500_000] == 90_000_000
    # a trade book whose hash nothing explains: unverified, yet it is the server's state
    k.process(4, SRC, v.trade_book(YES, 2_002).replace(v.hash(YES, 2_002).encode(), b"f" * 40))
    assert counts(k, YES)["unverified"] == 1 and counts(k, YES)["failed"] == 0 and k.books.is_healthy(YES)


def test_split_run_passes_once_and_is_counted() -> None:
    k, v, _ = synthetic()
    part1 = Venue.mirror(YES, "BUY", "0.47", "10")
    part2 = Venue.mirror(YES, "BUY", "0.46", "20")
    scratch = Venue()
    scratch.books = {a: (dict(b), dict(s)) for a, (b, s) in v.books.items()}
    for c in part1 + part2:
        scratch.set(*c)
    final = {a: scratch.hash(a, 5_000) for a in (YES, NO)}
    k.process(2, SRC, v.frame(5_000, part1, hashes=final))
    assert totals(k)["passed"] == 2 and k.books[YES].pending == final[YES]
    k.process(3, SRC, v.frame(5_000, part2, hashes=final))
    t = totals(k)
    assert t["passed"] == 4 and t["split_runs"] == 2 and t["failed"] == 0 and t["ltp_searches"] == 0
    assert not k.books[YES].pending and not k.books[NO].pending


def test_genuinely_wrong_book_fails_after_the_run_ends() -> None:
    k, v, seen = synthetic()
    k.process(2, SRC, v.frame(6_000, Venue.mirror(YES, "BUY", "0.45", "3"), hashes={YES: "0" * 40}))
    assert counts(k, YES)["failed"] == 0 and k.books[YES].pending  # not yet: maybe a split run
    assert counts(k, NO)["passed"] == 2
    k.process(3, SRC, v.frame(7_000, Venue.mirror(YES, "BUY", "0.44", "3")))
    c = counts(k, YES)
    assert c["failed"] == 1 and c["ltp_searches"] == 1 and c["unhealthy"] == 1
    assert not k.books[YES].healthy and k.books[YES].unhealthy_reason == "hash mismatch"
    assert counts(k, NO)["failed"] == 0 and k.books.is_healthy(NO)
    bh = [e for e in seen if isinstance(e, BookHealth)]
    assert [(e.asset_id, e.healthy, e.reason) for e in bh][-1] == (YES, False, "hash mismatch")
    # at the end of a replay a pending check that does not verify is unsettled, not failed:
    # the recording may have ended inside a run split across frames
    k2, v2, _ = synthetic()
    k2.process(2, SRC, v2.frame(6_000, Venue.mirror(YES, "BUY", "0.45", "3"), hashes={YES: "0" * 40}))
    k2.settle_books()
    c2 = counts(k2, YES)
    assert c2["failed"] == 0 and c2["unsettled"] == 1 and not k2.books[YES].pending


def test_wrong_meta_fails_the_snapshot() -> None:
    v = Venue()
    v.set(YES, "BUY", "0.5", "1")
    k = Kernel()
    k.add_decoder(SRC, DECODER)
    frame = v.dump(1_000, (YES,)).replace(b'"tick_size": "0.01"', b'"tick_size": "0.001"')
    k.process(1, SRC, frame)
    assert counts(k, YES)["failed"] == 1 and not k.books[YES].healthy
    assert k.books[YES].unhealthy_reason.startswith("snapshot hash mismatch")


# =========================================================================== (6) health transitions


def test_tick_size_change_unhealthy_until_snapshot() -> None:
    k, v, seen = synthetic()
    tsc = {"event_type": "tick_size_change", "asset_id": YES, "market": MKT, "old_tick_size": "0.01",
           "new_tick_size": "0.001", "timestamp": "8000"}  # fmt: skip
    k.process(2, SRC, json.dumps(tsc).encode())
    assert not k.books[YES].healthy and k.books[YES].unhealthy_reason == "tick size change"
    assert k.books[YES].tick_size == 1_000
    v.tick = "0.001"
    before = counts(k, YES)["passed"]
    k.process(3, SRC, v.frame(9_000, Venue.mirror(YES, "BUY", "0.455", "5")))
    assert counts(k, YES)["passed"] == before and counts(k, YES)["failed"] == 0  # applied, not checked
    assert k.books[YES].bids[455_000] == 5_000_000
    k.process(4, SRC, v.dump(10_000))
    c = counts(k, YES)
    assert k.books[YES].healthy and c["resyncs"] == 1 and c["passed"] == before + 1 and c["failed"] == 0
    assert (YES, True, "snapshot") in [(e.asset_id, e.healthy, e.reason) for e in seen if isinstance(e, BookHealth)]


def test_feed_disconnected_through_events_source() -> None:
    k, v, seen = synthetic()
    ev = FeedDisconnected(feed="polymarket", asset_ids=(YES, "not-a-book"), detail="1006")
    k.process(2, "events", ENCODER.encode(ev))
    assert not k.books[YES].healthy and k.books[YES].unhealthy_reason.startswith("reconnect")
    assert k.books.is_healthy(NO) and "not-a-book" not in k.books
    bh = [e for e in seen if isinstance(e, BookHealth)]
    assert len(bh) == 1 and bh[0].asset_id == YES and not bh[0].healthy and bh[0].reason.startswith("reconnect")
    k.process(3, SRC, v.dump(2_000, (YES,)))
    assert k.books[YES].healthy and counts(k, YES)["resyncs"] == 1


def test_crossed_delta_and_crossed_snapshot() -> None:
    k, v, _ = synthetic()
    # a legacy-style entry without best bid/ask: a bid through the best ask
    pc = {"event_type": "price_change", "market": MKT, "asset_id": YES, "price": "0.55", "side": "BUY", "size": "1",
          "timestamp": "2000", "hash": ""}  # fmt: skip
    k.process(2, SRC, json.dumps(pc).encode())
    assert not k.books[YES].healthy and k.books[YES].unhealthy_reason == "crossed book"
    assert k.books.is_healthy(NO)
    snap = BookSnapshot(asset_id=NO, market=MKT, bids=((600_000, 1),), asks=((500_000, 1),))
    k.process(3, "events", ENCODER.encode(snap))
    assert not k.books[NO].healthy and k.books[NO].unhealthy_reason == "crossed book in snapshot"


def test_bbo_mismatch_is_unhealthy() -> None:
    k, v, seen = synthetic()
    f = json.loads(v.frame(2_000, [(YES, "BUY", "0.30", "9")]))
    f["price_changes"][0]["best_bid"] = "0.51"
    k.process(2, SRC, json.dumps(f).encode())
    assert counts(k, YES)["bbo_mismatch"] == 1 and counts(k, YES)["failed"] == 0
    assert k.books[YES].unhealthy_reason.startswith("best bid/ask mismatch")
    # an empty ask side stated as "1" is the same top as "0"
    k2, v2, _ = synthetic()
    for p in ("0.52", "0.53", "0.60"):
        f = json.loads(v2.frame(3_000 + _u(p), [(YES, "SELL", p, "0")]))
        if f["price_changes"][0]["best_ask"] == "0":
            f["price_changes"][0]["best_ask"] = "1"
        k2.process(3, SRC, json.dumps(f).encode())
    assert k2.books.is_healthy(YES) and counts(k2, YES)["bbo_mismatch"] == 0 and k2.books[YES].best_ask == 0
    assert counts(k2, YES)["passed"] == 1 + 3


def test_entries_for_assets_without_a_book_are_ignored() -> None:
    k, v, seen = synthetic()
    other = {"market": MKT, "event_type": "price_change", "timestamp": "2000",
             "price_changes": [{"asset_id": "777", "price": "0.5", "size": "1", "side": "BUY", "hash": "0" * 40,
                                "best_bid": "0.5", "best_ask": "0.6"}]}  # fmt: skip
    k.process(2, SRC, json.dumps(other).encode())
    k.settle_books()
    assert "777" not in k.books and "777" not in k.integrity.counts
    assert totals(k)["failed"] == 0 and k.bus.handler_errors == 0
    assert not any(isinstance(e, BookHealth) for e in seen)


def test_verify_off_counts_no_hashes_but_checks_top_of_book() -> None:
    k = Kernel(verify_books=False)
    k.add_decoder(SRC, DECODER)
    for raw in h1_frames():
        k.process(1, SRC, raw)
    k.settle_books()
    t = totals(k)
    assert t["passed"] == 0 and t["failed"] == 0 and t["ltp_searches"] == 0 and t["snapshots"] == 5
    assert k.books.is_healthy(A_401) and k.books.is_healthy(A_587)
    assert all(b.hc is None for _, b in k.books.items())
    # a bad hash goes unnoticed; a bbo mismatch and a crossed book do not
    f = json.loads(h1_frames()[1])
    f["price_changes"][0]["hash"] = "0" * 40
    f["price_changes"][1]["best_ask"] = "0.52"
    k.process(2, SRC, json.dumps(f).encode())
    k.settle_books()
    assert k.books.is_healthy(A_401)
    assert not k.books[A_587].healthy and counts(k, A_587)["bbo_mismatch"] == 1
    bad = {"event_type": "price_change", "market": "m", "asset_id": A_401, "price": "0.99", "side": "BUY", "size": "1",
           "timestamp": "1"}  # fmt: skip
    k.process(3, SRC, json.dumps(bad).encode())
    assert k.books[A_401].unhealthy_reason == "crossed book"
    assert totals(k)["passed"] == 0 and totals(k)["failed"] == 0


def test_replay_without_verify_has_no_book_report() -> None:
    s = replay(H1, Config())
    assert "books" not in s and s["errors"] == {}


def test_hashless_snapshot_then_verified_run() -> None:
    k, v, _ = synthetic()
    # the book is replaced by a snapshot that states no hash (an events-source or docs-style book)
    v.books[YES] = ({300_000: 1_000_000}, {700_000: 2_000_000})
    snap = BookSnapshot(asset_id=YES, market=MKT, bids=((300_000, 1_000_000),), asks=((700_000, 2_000_000),))
    k.process(2, "events", ENCODER.encode(snap))
    k.process(3, SRC, v.frame(2_000, [(YES, "BUY", "0.35", "3")]))
    k.settle_books()
    assert k.bus.handler_errors == 0
    assert counts(k, YES)["failed"] == 0 and k.books.is_healthy(YES)
    assert counts(k, YES)["passed"] == 2


def test_a_print_retries_a_pending_mismatch_and_the_next_run_settles_it() -> None:
    k, v, _ = synthetic()
    k.process(2, SRC, v.frame(6_000, [(YES, "BUY", "0.45", "3")], hashes={YES: "0" * 40}))
    assert k.books[YES].pending
    # a print retries the pending check with its price (a run split across frames may still be
    # going on, so a print alone does not fail it) ...
    k.process(3, SRC, Venue.print_(YES, "0.51", 6_500))
    assert k.books[YES].pending and counts(k, YES)["failed"] == 0
    # ... and the next change with another timestamp settles it: a real divergence
    k.process(4, SRC, v.frame(7_000, [(YES, "BUY", "0.44", "3")]))
    assert counts(k, YES)["failed"] == 1 and not k.books[YES].healthy
    assert k.books[YES].unhealthy_reason == "hash mismatch"
