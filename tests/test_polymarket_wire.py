"""adapters.polymarket.wire: every REAL market-channel frame in the shared samples decoded to exact
values, the REST book decoder, bad input (FrameError reasons, asset ids, partial events), and
the same bad input through a real Kernel (counted, reported, books marked unhealthy, never
applied, never raising) including hypothesis fuzzing of the door."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger

from adapters.polymarket.wire import DECODER, MS, REST_DECODER
from polybot.events import (
    BestBidAsk,
    BookDelta,
    BookHealth,
    BookSnapshot,
    Event,
    InputDropped,
    MarketResolved,
    TickSizeChange,
    TradePrint,
)
from polybot.kernel import FrameError, Kernel
from sample_data import H1, POLYTOPE, SAMPLES, V2S, require_samples

require_samples()

NAUT = SAMPLES / "nautilus"
AHSAN = SAMPLES / "ahsan909k"

SRC = "polymarket.market"
M1 = "0x2aaeb40ad2a1ad262d75d5c52bff1a9f801fb72e65774343729fe103ee9fa308"
A_587 = "58726851105893121441976415044785550794620582864839872973127370351200548678811"
A_401 = "40113202025193181740822500498877260546965498642740503547096491847887927548587"


@pytest.fixture(autouse=True)
def _quiet_logs():  # noqa: ANN202 - drops are logged once per kernel; keep test output short
    logger.disable("polybot")
    yield
    logger.enable("polybot")


# --------------------------------------------------------------------------- the captures


def h1_payloads() -> list[bytes]:
    return [json.loads(line)["payloadUtf8"].encode() for line in H1.read_text().splitlines() if line.strip()]


def v2_recv() -> list[bytes]:
    out = []
    for line in V2S.read_text().splitlines():
        r = json.loads(line)
        if r["dir"] == "recv":
            out.append(r["data"].encode())
    return out


def polytope_lines() -> list[bytes]:
    return [line.strip().encode() for line in POLYTOPE.read_text().splitlines() if line.strip()]


def rd(p: Path) -> bytes:
    return p.read_bytes()


def U(s: str) -> int:
    """The independent oracle for base units: Decimal, exact, refusing more than 6 decimals."""
    d = Decimal(s) * 1_000_000
    assert d == d.to_integral_value(), s
    return int(d)


def wire(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def dec(msg: bytes, ts: int = 7) -> list[Event]:
    return list(DECODER(msg, ts))


def as_json_frame(raw: bytes) -> bytes:
    """What the kernel feeds the decoder: a non-JSON text frame as a JSON string."""
    try:
        msgspec.json.decode(raw)
        return raw
    except msgspec.DecodeError:
        return msgspec.json.encode(raw.decode())


# --------------------------------------------------------------------------- an oracle


def oracle(obj: Any) -> list[tuple[type, dict[str, Any]]]:
    """Expected events of one parsed frame, computed with Decimal from the JSON (no polybot code)."""
    if isinstance(obj, list):
        return [e for o in obj for e in oracle(o)]
    et = obj.get("event_type")
    xts = int(obj["timestamp"]) * 1_000_000 if obj.get("timestamp") else 0
    base = {"market": obj.get("market", ""), "exchange_ts": xts}
    side = {"BUY": "BID", "SELL": "ASK"}
    top = lambda s: -1 if s in (None, "") else U(s)  # noqa: E731
    if et == "book":
        return [(BookSnapshot, {**base, "asset_id": obj["asset_id"], "hash": obj.get("hash", ""),
                 "bids": tuple((U(x["price"]), U(x["size"])) for x in obj.get("bids") or ()),
                 "asks": tuple((U(x["price"]), U(x["size"])) for x in obj.get("asks") or ()),
                 "tick_size": U(obj["tick_size"]) if obj.get("tick_size") else 0,
                 "last_trade_price": obj.get("last_trade_price"), "version": obj.get("version", "")})]  # fmt: skip
    if et == "price_change":
        if "price_changes" in obj:
            pcs = obj["price_changes"]
            last = {e["asset_id"]: i for i, e in enumerate(pcs)}
            return [(BookDelta, {**base, "asset_id": e["asset_id"], "side": side[e["side"]], "price": U(e["price"]),
                     "size": U(e["size"]), "hash": e.get("hash", ""), "best_bid": top(e.get("best_bid")),
                     "best_ask": top(e.get("best_ask")), "run_end": last[e["asset_id"]] == i})
                    for i, e in enumerate(pcs)]  # fmt: skip
        if "changes" in obj:
            n = len(obj["changes"])
            return [(BookDelta, {**base, "asset_id": obj["asset_id"], "side": side[c["side"]], "price": U(c["price"]),
                     "size": U(c["size"]), "hash": obj.get("hash", ""), "best_bid": -1, "best_ask": -1,
                     "run_end": i == n - 1}) for i, c in enumerate(obj["changes"])]  # fmt: skip
        return [(BookDelta, {**base, "asset_id": obj["asset_id"], "side": side[obj["side"]], "price": U(obj["price"]),
                 "size": U(obj["size"]), "hash": obj.get("hash", ""), "best_bid": -1, "best_ask": -1, "run_end": True})]  # fmt: skip
    if et == "last_trade_price":
        return [(TradePrint, {**base, "asset_id": obj["asset_id"], "price": U(obj["price"]), "size": U(obj["size"]),
                 "side": obj.get("side"), "fee_rate_bps": int(obj.get("fee_rate_bps") or 0),
                 "tx_hash": obj.get("transaction_hash", "")})]  # fmt: skip
    if et == "tick_size_change":
        return [(TickSizeChange, {**base, "asset_id": obj["asset_id"], "old_tick_size": U(obj["old_tick_size"]),
                 "new_tick_size": U(obj["new_tick_size"])})]  # fmt: skip
    if et == "best_bid_ask":
        return [(BestBidAsk, {**base, "asset_id": obj["asset_id"], "best_bid": U(obj["best_bid"]),
                 "best_ask": U(obj["best_ask"])})]  # fmt: skip
    if et == "market_resolved":
        return [(MarketResolved, {**base, "asset_ids": tuple(obj["assets_ids"]),
                 "winning_asset_id": obj["winning_asset_id"], "winning_outcome": obj["winning_outcome"]})]  # fmt: skip
    raise AssertionError(f"oracle has no case for {et!r}")


def check_against_oracle(raw: bytes, ts: int = 7) -> list[Event]:
    evs = dec(raw, ts)
    exp = oracle(json.loads(raw))
    assert len(evs) == len(exp)
    for ev, (cls, fields) in zip(evs, exp, strict=True):
        assert type(ev) is cls
        assert ev.ts == ts
        got = {k: getattr(ev, k) for k in fields}
        assert got == fields
    return evs


def real_frames() -> list[tuple[str, bytes]]:
    """Every REAL market-channel frame in the samples (raw, as the socket delivered it)."""
    out = [(f"h1:{i}", p) for i, p in enumerate(h1_payloads())]
    out += [(f"v2s:{i}", p) for i, p in enumerate(v2_recv())]
    out += [(f"polytope:{i}", p) for i, p in enumerate(polytope_lines())]
    for name in ("py_ws_messages_book.json", "py_ws_messages_price_change.json", "py_ws_messages_price_change_v2.json",
                 "py_ws_messages_last_trade_price.json", "py_ws_messages_tick_size_change.json"):  # fmt: skip
        out.append((name, rd(NAUT / name)))
    for p in sorted(AHSAN.glob("glmbotpoly__clob_*.json")):
        out.append((p.name, rd(p)))
    for p in sorted(NAUT.glob("rs_ws_market_*.json")):
        out.append((p.name, rd(p)))
    return out


REAL = real_frames()


def _is_new_market(raw: bytes) -> bool:
    return b'"new_market"' in raw


# =========================================================================== every real frame


@pytest.mark.parametrize("name,raw", REAL, ids=[n for n, _ in REAL])
def test_every_real_frame_decodes_to_the_oracle(name: str, raw: bytes) -> None:
    if raw.strip() == b"PONG":
        with pytest.raises(msgspec.DecodeError):
            DECODER(raw, 1)
        assert DECODER(as_json_frame(raw), 1) == ()
        assert DECODER.bare_ts(raw) is None
        return
    if _is_new_market(raw):
        pytest.importorskip("adapters.polymarket.gamma")
        evs = dec(raw)
        obj = json.loads(raw)
        assert len(evs) == 1
        mi = evs[0]
        assert type(mi).__name__ == "MarketInfo"
        assert mi.market == obj["market"]
        assert mi.asset_ids == tuple(obj["assets_ids"])
        assert mi.outcomes == tuple(obj["outcomes"])
        assert mi.question == obj["question"]
        assert mi.slug == obj["slug"]
        assert mi.ts == 7
        return
    check_against_oracle(raw)
    # the frame's own time for bare-frame recordings: its (first) "timestamp", in ns
    obj = json.loads(raw)
    first = obj[0] if isinstance(obj, list) else obj
    assert DECODER.bare_ts(raw) == int(first["timestamp"]) * 1_000_000


def test_real_frame_inventory() -> None:
    """The counts the samples README states, so a missing file cannot pass silently."""
    kinds: dict[str, int] = {}
    for _, raw in REAL:
        if raw.strip() == b"PONG":
            kinds["PONG"] = kinds.get("PONG", 0) + 1
            continue
        obj = json.loads(raw)
        for o in obj if isinstance(obj, list) else [obj]:
            kinds[o["event_type"]] = kinds.get(o["event_type"], 0) + 1
    assert kinds["PONG"] == 2 + 5 + 3
    # 5 h1 + 1 v2 + 1 polytope + py_ws_messages_book + rs_ws_market_book_msg (docs fixture)
    assert kinds["book"] == 9
    assert kinds["price_change"] == 20 + 35 + 2 + 2 + 1
    assert kinds["last_trade_price"] == 2 + 1 + 1 + 1
    assert kinds["tick_size_change"] == 2
    assert kinds["new_market"] == 3
    assert kinds["best_bid_ask"] == 2
    assert kinds["market_resolved"] == 2


# --------------------------------------------------------------------------- h1-run-8, concretely


def test_h1_subscription_dump() -> None:
    raw = h1_payloads()[0]
    assert raw.endswith(b"]\n")  # the dump carries a trailing newline inside the frame
    evs = dec(raw, ts=11)
    assert [type(e) for e in evs] == [BookSnapshot, BookSnapshot]
    a, b = evs
    assert (a.asset_id, b.asset_id) == (A_587, A_401)
    assert a.market == b.market == M1
    assert a.exchange_ts == b.exchange_ts == 1790766966313 * MS == 1_790_766_966_313_000_000
    assert a.hash == "e3410359d71458619127b4dd21b72d79b6193e74"
    assert b.hash == "763ac1077afccf153145dae5260e296d66ed11f2"
    assert b.bids[-1] == (500_000, 45_200_000) and b.asks[-1] == (510_000, 634_490_000)  # the mirror image
    assert (len(a.bids), len(a.asks)) == (48, 49)
    assert a.bids[0] == (10_000, 92_790_000_000)  # "0.01" x "92790"
    assert a.bids[-1] == (490_000, 634_490_000)  # best bid last: "0.49" x "634.49"
    assert a.asks[0] == (990_000, 92_885_000_000)
    assert a.asks[-1] == (500_000, 45_200_000)  # best ask last: "0.5" x "45.2"
    assert a.tick_size == 10_000
    assert a.last_trade_price == "" and a.version == ""
    assert a.min_order_size == "" and a.neg_risk is None  # WS books do not state them
    assert a.ts == 11


def test_h1_first_price_change() -> None:
    evs = dec(h1_payloads()[1])
    assert evs == [
        BookDelta(ts=7, asset_id=A_401, market=M1, exchange_ts=1790766981628 * MS, side="BID", price=460_000,
                  size=918_340_000, best_bid=500_000, best_ask=510_000,
                  hash="c8dc1ac179ac0e493132cfed6b68438c2d20cf1b", run_end=True),
        BookDelta(ts=7, asset_id=A_587, market=M1, exchange_ts=1790766981628 * MS, side="ASK", price=540_000,
                  size=918_340_000, best_bid=490_000, best_ask=500_000,
                  hash="bfd30a02aee2d8de43e3ee3b8191af57bd9bdd03", run_end=True),
    ]  # fmt: skip


def test_h1_all_price_changes() -> None:
    n = 0
    for raw in h1_payloads():
        if b'"price_change"' in raw:
            evs = check_against_oracle(raw)
            assert all(isinstance(e, BookDelta) and e.run_end for e in evs)  # one entry per asset
            n += len(evs)
    assert n == 40


def test_h1_trade_book_and_print() -> None:
    p = h1_payloads()
    book = dec(p[23])
    assert len(book) == 1 and isinstance(book[0], BookSnapshot)
    b = book[0]
    assert b.asset_id == A_401 and b.hash == "4bfbd336509ec5fa87b2bfe5da8ae34fb570b324"
    assert b.exchange_ts == 1790767298635 * MS
    assert b.last_trade_price is None and b.tick_size == 0  # not stated by a trade-triggered book
    assert b.bids[0] == (10_000, 93_900_090_000)
    (t,) = dec(p[25])
    assert t == TradePrint(ts=7, asset_id=A_401, market=M1, exchange_ts=1790767298674 * MS, price=510_000,
                           size=20_000_000, side="BUY", fee_rate_bps=0,
                           tx_hash="0xe3c241e8daa7362a2dcc0a6534c4b23594309bc8ef47875bedd32ead6eff9bd8")  # fmt: skip
    (t2,) = dec(p[27])
    assert (t2.asset_id, t2.price, t2.size, t2.side) == (A_587, 500_000, 50_000_000, "BUY")


def test_v2_position_book() -> None:
    (b,) = dec(v2_recv()[0])
    assert isinstance(b, BookSnapshot)
    assert b.version == "v2"
    assert b.bids == () and b.asks == ()
    assert b.asset_id == "663574927012476832975694178961957910328055987427402067619466963999000625152"
    assert b.market == "0x017791f201d5a788e0039e511fc1900e5f000000000000000000000000000000"
    assert b.exchange_ts == 1791238858575 * MS and b.last_trade_price == "" and b.tick_size == 10_000


def test_polytope_frames() -> None:
    lines = polytope_lines()
    (d,) = dec(lines[0])
    assert d.last_trade_price == "0.550" and d.tick_size == 10_000
    assert d.bids[-1] == (540_000, 63_960_000) and d.asks[-1] == (550_000, 33_000_000)
    deltas = [e for raw in lines[1:] if raw != b"PONG" for e in dec(raw)]
    assert len(deltas) == 70 and all(isinstance(e, BookDelta) for e in deltas)
    removals = [e for e in deltas if e.size == 0]
    assert [(e.side, e.price) for e in removals] == [("BID", 330_000), ("ASK", 670_000), ("ASK", 700_000), ("BID", 300_000)]
    assert sum(raw == b"PONG" for raw in lines) == 3


# --------------------------------------------------------------------------- nautilus & ahsan909k


def test_nautilus_pretty_printed_book() -> None:
    raw = rd(NAUT / "py_ws_messages_book.json")
    assert b"\n" in raw
    (b,) = dec(raw)
    assert b.hash == "655a38d4977427b086c25b985993691b753ed166"
    assert b.exchange_ts == 1728799418260 * MS
    assert (len(b.bids), len(b.asks)) == (76, 86)
    assert b.bids[0] == (1_000, 9_000_023_580_000)  # "0.001" x "9000023.58"
    assert b.bids[-1] == (511_000, 1_304_720_000)
    assert b.asks[0] == (999_000, 10_500_100_000_000)
    assert b.asks[-1] == (514_000, 20_230_870_000)
    # the kernel's one-line form decodes identically
    from polybot.journal import one_line

    assert dec(one_line(raw)) == [b]


def test_legacy_single_level_price_change() -> None:
    (d,) = dec(rd(NAUT / "py_ws_messages_price_change.json"))
    assert d == BookDelta(ts=7, asset_id="48331043336612883890938759509493159234755048973500640148014422747788308965732",
                          market="0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917",
                          exchange_ts=1723967931411 * MS, side="ASK", price=514_000, size=21_574_080_000,
                          hash="bf32b3746fff40c76c98021b7f3f07261169dd26")  # fmt: skip
    assert d.best_bid == -1 and d.best_ask == -1 and d.run_end


def test_price_change_v2_run_end_only_on_last_entry_per_asset() -> None:
    evs = dec(rd(NAUT / "py_ws_messages_price_change_v2.json"))
    assert [e.run_end for e in evs] == [False, False, True]
    assert [(e.side, e.price, e.size) for e in evs] == [
        ("BID", 600_000, 3_300_000_000), ("BID", 500_000, 3_400_000_000), ("BID", 700_000, 3_400_000_000)]
    assert {(e.best_bid, e.best_ask) for e in evs} == {(600_000, 700_000)}
    assert evs[-1].hash == "cf32b3746fff40c76c98021b7f3f07261169dd28"


def test_run_end_with_interleaved_assets() -> None:
    pcs = [{"asset_id": a, "price": "0.5", "size": "1", "side": "BUY", "hash": a * 2} for a in ("X", "Y", "X", "Y", "Z")]
    evs = dec(wire({"event_type": "price_change", "market": "m", "timestamp": "5", "price_changes": pcs}))
    assert [(e.asset_id, e.run_end) for e in evs] == [("X", False), ("Y", False), ("X", True), ("Y", True), ("Z", True)]
    assert all(e.best_bid == -1 and e.best_ask == -1 for e in evs)


def test_last_trade_price_2024_and_tick_size() -> None:
    (t,) = dec(rd(NAUT / "py_ws_messages_last_trade_price.json"))
    assert (t.price, t.size, t.side, t.fee_rate_bps, t.tx_hash) == (491_000, 85_360_000, "SELL", 0, "")
    assert t.exchange_ts == 1724564136087 * MS
    (c,) = dec(rd(NAUT / "py_ws_messages_tick_size_change.json"))
    assert c == TickSizeChange(ts=7, asset_id="115474063863764126958837769719736461272619491980773624567012766320777398670353",
                               market="0xbacdf04bf7f22a670dc4fb408878ec56b76f9934599829455b9371693ba84b8b",
                               exchange_ts=1739068041853 * MS, old_tick_size=10_000, new_tick_size=1_000)  # fmt: skip


def test_ahsan_frames() -> None:
    (bba,) = dec(rd(AHSAN / "glmbotpoly__clob_best_bid_ask.json"))
    assert isinstance(bba, BestBidAsk) and (bba.best_bid, bba.best_ask) == (450_000, 460_000)
    (t,) = dec(rd(AHSAN / "glmbotpoly__clob_last_trade_price.json"))
    assert (t.price, t.size) == (550_000, 10_181_817)  # "10.181817": six decimals, exact
    rm = dec(rd(AHSAN / "glmbotpoly__clob_price_change_removal.json"))
    assert [(e.side, e.price, e.size, e.best_bid, e.best_ask) for e in rm] == [
        ("BID", 450_000, 0, 440_000, 460_000), ("ASK", 550_000, 0, 540_000, 560_000)]
    (r,) = dec(rd(AHSAN / "glmbotpoly__clob_market_resolved.json"))
    assert isinstance(r, MarketResolved)
    assert r.winning_outcome == "Down" and len(r.asset_ids) == 2 and r.winning_asset_id == r.asset_ids[1]
    assert r.exchange_ts == 1781255196396 * MS


def test_new_market_inside_an_array() -> None:
    pytest.importorskip("adapters.polymarket.gamma")
    nm = json.loads(rd(NAUT / "rs_ws_market_new_market_msg.json"))
    bba = json.loads(rd(AHSAN / "glmbotpoly__clob_best_bid_ask.json"))
    evs = dec(wire([bba, nm]))
    assert isinstance(evs[0], BestBidAsk)
    assert type(evs[1]).__name__ == "MarketInfo" and evs[1].market == nm["market"]


# --------------------------------------------------------------------------- legacy changes[] (PROTOCOL §1.3)


def test_legacy_changes_schema_from_the_doc() -> None:
    frame = {"asset_id": "71321045679252212594626385532706912750332728571942532289631379312455583992563",
             "changes": [{"price": "0.4", "side": "SELL", "size": "3300"}, {"price": "0.39", "side": "BUY", "size": "0"}],
             "event_type": "price_change", "market": "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917",
             "timestamp": "1729084877448", "hash": "bf32b3746fff40c76c98021b7f3f07261169dd26"}  # fmt: skip
    evs = check_against_oracle(wire(frame))
    assert [(e.side, e.price, e.size, e.run_end) for e in evs] == [("ASK", 400_000, 3_300_000_000, False), ("BID", 390_000, 0, True)]
    assert all(e.hash == frame["hash"] and e.asset_id == frame["asset_id"] for e in evs)
    bad = dict(frame, changes=[{"price": "0.4", "side": "SELL", "size": "3300"}, {"price": "0.4", "side": "SELLX", "size": "1"}])
    with pytest.raises(FrameError) as ei:
        DECODER(wire(bad), 1)
    assert ei.value.reason == "bad_value" and ei.value.asset_ids == (frame["asset_id"],) and ei.value.events == ()
    assert "unknown side" in str(ei.value)


# --------------------------------------------------------------------------- PONG and bare_ts


def test_pong_and_text_frames() -> None:
    with pytest.raises(msgspec.DecodeError):
        DECODER(b"PONG", 1)
    assert DECODER(b'"PONG"', 1) == ()
    assert DECODER(b'"PING"', 1) == ()
    with pytest.raises(FrameError) as ei:
        DECODER(b'"hello"', 1)
    assert ei.value.reason == "malformed"
    with pytest.raises(msgspec.DecodeError):
        DECODER(b"hello", 1)
    assert DECODER.bare_ts(b"PONG") is None
    assert DECODER.bare_ts(b'"PONG"') is None
    # whitespace around a JSON frame is tolerated
    assert dec(b"  " + h1_payloads()[1] + b"\n") == dec(h1_payloads()[1])


def test_bare_ts() -> None:
    p = h1_payloads()
    assert DECODER.bare_ts(p[0]) == 1790766966313 * MS
    assert DECODER.bare_ts(p[1]) == 1790766981628 * MS
    assert DECODER.bare_ts(p[23]) == 1790767298635 * MS  # ", " separators elsewhere in the frame
    assert DECODER.bare_ts(b'{"timestamp": "12"}') == 12 * MS
    assert DECODER.bare_ts(b'{"timestamp":"12x"}') is None
    assert DECODER.bare_ts(b'{"timestamp":') is None
    assert DECODER.bare_ts(b"{}") is None


# --------------------------------------------------------------------------- exact numbers


def _book_with(price: str, size: str) -> bytes:
    return wire({"event_type": "book", "asset_id": "A", "timestamp": "1", "bids": [{"price": price, "size": size}]})


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.integers(1, 999_999), st.integers(0, 10**15 - 1), st.integers(0, 6), st.integers(0, 6))
def test_prices_and_sizes_are_exact(p: int, size_units: int, pdec: int, sdec: int) -> None:
    """Every price in (0, 1) and every size below 1e9 shares, written with any number of
    decimals up to 6 (trailing zeros included), decodes to the exact base units."""
    def text(units: int, dec: int) -> str:
        q, r = divmod(units, 1_000_000)
        frac = f"{r:06d}"
        keep = max(dec, len(frac.rstrip("0")))
        return f"{q}.{frac[:keep]}" if keep else str(q)

    ps, ss = text(p, pdec), text(size_units, sdec)
    (b,) = dec(_book_with(ps, ss))
    assert b.bids == ((U(ps), U(ss)),) == ((p, size_units),)


def test_large_sizes_are_exact_or_refused() -> None:
    for size in ("8607187775.19", "12345678901234.5", "123456789012345."):
        try:
            (b,) = dec(_book_with("0.5", size))
        except FrameError:
            continue  # refusing is fine; a wrong number is not
        assert b.bids[0][1] == U(size), size


# =========================================================================== REST /book


def test_rest_book_v1() -> None:
    raw = rd(SAMPLES / "adriancova" / "book-v1.json")
    (b,) = REST_DECODER(raw, 3)
    obj = json.loads(raw)
    assert isinstance(b, BookSnapshot) and b.ts == 3
    assert b.asset_id == obj["asset_id"] and b.market == obj["market"] and b.hash == obj["hash"]
    assert b.min_order_size == "5" and b.neg_risk is False and b.last_trade_price == "0.040" and b.tick_size == 10_000
    assert b.exchange_ts == 1791241810525 * MS
    assert b.bids == tuple((U(x["price"]), U(x["size"])) for x in obj["bids"])
    assert b.asks == tuple((U(x["price"]), U(x["size"])) for x in obj["asks"])
    assert b.bids[0] == (10_000, 1_123_000_000) and b.asks[-1] == (960_000, 441_400_000)


def test_rest_book_v2_and_2024() -> None:
    (b2,) = REST_DECODER(rd(SAMPLES / "adriancova" / "book-v2.json"), 1)
    assert b2.version == "v2" and b2.bids == () and b2.asks == () and b2.last_trade_price == ""
    (old,) = REST_DECODER(rd(NAUT / "py_http_responses_book.json"), 1)
    assert old.last_trade_price is None and old.min_order_size == "" and old.neg_risk is None and old.tick_size == 0
    assert old.hash == "2fc4a3d6a98bc164e057589bcb74981852b87412"
    assert old.asks[0] == (980_000, 5_000_000_000) and old.asks[-1] == (140_000, 705_000_000)
    assert old.bids[-1] == (100_000, 125_000_000)


def test_rest_books_array_and_errors() -> None:
    v1 = json.loads(rd(SAMPLES / "adriancova" / "book-v1.json"))
    v2 = json.loads(rd(SAMPLES / "adriancova" / "book-v2.json"))
    evs = REST_DECODER(wire([v1, v2]), 1)
    assert [e.asset_id for e in evs] == [v1["asset_id"], v2["asset_id"]]
    with pytest.raises(FrameError) as ei:
        REST_DECODER(b'{"error":"No orderbook exists for the requested token id"}', 1)
    assert ei.value.reason == "rest_error"
    bad = dict(v2, asset_id="BAD", bids=[{"price": "1.5", "size": "1"}])
    with pytest.raises(FrameError) as ei:
        REST_DECODER(wire([v1, bad]), 1)
    assert ei.value.asset_ids == ("BAD",)
    assert [e.asset_id for e in ei.value.events] == [v1["asset_id"]]
    assert "outside (0, 1)" in str(ei.value)
    with pytest.raises(msgspec.DecodeError):
        REST_DECODER(b"<html>502</html>", 1)
    with pytest.raises(msgspec.ValidationError):
        REST_DECODER(wire(dict(v1, bids=[{"price": 0.5, "size": "1"}])), 1)


# =========================================================================== bad input


def pc_frame(**entry_over: Any) -> dict:
    """h1's first price_change with fields of its first entry replaced."""
    f = json.loads(h1_payloads()[1])
    f["price_changes"][0].update(entry_over)
    return f


BOTH = (A_401, A_587)
BAD_VALUES = [
    ("price 1.5", pc_frame(price="1.5"), "outside (0, 1)"),
    ("price 0", pc_frame(price="0"), "outside (0, 1)"),
    ("price 1", pc_frame(price="1"), "outside (0, 1)"),
    ("price -0.1", pc_frame(price="-0.1"), "outside (0, 1)"),
    ("size -3", pc_frame(size="-3"), "negative size"),
    ("size 7 decimals", pc_frame(size="1.1234567"), "6-decimal"),
    ("size exponent", pc_frame(size="1e3"), "plain decimal"),
    ("size non-numeric", pc_frame(size="abc"), "plain decimal"),
    ("price empty", pc_frame(price=""), "6-decimal"),
    ("price NaN", pc_frame(price="NaN"), "plain decimal"),
    ("side lower-case", pc_frame(side="buy"), "unknown side"),
    ("side BID", pc_frame(side="BID"), "unknown side"),
    ("best_bid 2", pc_frame(best_bid="2"), "best bid/ask"),
    ("timestamp", {**pc_frame(), "timestamp": "1790766981628.5"}, "timestamp"),
    ("timestamp unicode digits", {**pc_frame(), "timestamp": "١٧٩٠"}, "timestamp"),
    ("timestamp missing", {k: v for k, v in pc_frame().items() if k != "timestamp"}, "timestamp"),
]


@pytest.mark.parametrize("name,frame,needle", BAD_VALUES, ids=[x[0] for x in BAD_VALUES])
def test_bad_values_raise_frame_error(name: str, frame: dict, needle: str) -> None:
    with pytest.raises(FrameError) as ei:
        DECODER(wire(frame), 1)
    e = ei.value
    assert isinstance(e, ValueError)
    assert e.reason == "bad_value"
    assert e.asset_ids == BOTH  # every asset of the frame missed its update
    assert e.events == ()  # never a partly applied frame
    assert needle in str(e)


def test_bad_values_in_other_event_types() -> None:
    cases = [
        ({"event_type": "book", "asset_id": "A", "timestamp": "1", "bids": [{"price": "0.5", "size": "-1"}]}, ("A",)),
        ({"event_type": "book", "timestamp": "1", "bids": []}, ()),  # no asset_id
        ({"event_type": "book", "asset_id": "A", "timestamp": "x"}, ("A",)),
        ({"event_type": "book", "asset_id": "A", "timestamp": "1", "tick_size": "0"}, ("A",)),
        ({"event_type": "last_trade_price", "asset_id": "A", "price": "1.01", "size": "1", "timestamp": "1"}, ("A",)),
        ({"event_type": "last_trade_price", "asset_id": "A", "price": "0.5", "size": "1", "timestamp": "1",
          "fee_rate_bps": "x"}, ("A",)),  # fmt: skip
        ({"event_type": "tick_size_change", "asset_id": "A", "timestamp": "1", "new_tick_size": "1"}, ("A",)),
        ({"event_type": "price_change", "timestamp": "1"}, ()),
        ({"event_type": "best_bid_ask", "asset_id": "A", "timestamp": "1", "best_bid": "1.2"}, ("A",)),
    ]
    for frame, assets in cases:
        with pytest.raises(FrameError) as ei:
            DECODER(wire(frame), 1)
        assert ei.value.reason == "bad_value", frame
        assert ei.value.asset_ids == assets, frame


def test_unknown_event_type() -> None:
    with pytest.raises(FrameError) as ei:
        DECODER(b'{"event_type":"order_book_v9","asset_id":"A"}', 1)
    assert ei.value.reason == "unknown_event_type" and "order_book_v9" in str(ei.value)
    with pytest.raises(FrameError) as ei:
        DECODER(b"{}", 1)
    assert ei.value.reason == "unknown_event_type"


@pytest.mark.parametrize("raw,exc", [
    (b'{"market":"0x2aae", "price_changes":[{"asset_id":"4011', msgspec.DecodeError),  # truncated
    (b"[{", msgspec.DecodeError),
    (b"\x00\xff", msgspec.DecodeError),
    (b"123", msgspec.DecodeError),
    (b"null", msgspec.DecodeError),
    (b"[1]", FrameError),
    (b'["PONG"]', FrameError),
    (b'{"event_type":"price_change","timestamp":1790766981628,"price_changes":[]}', FrameError),
    (b'{"event_type":"book","asset_id":"A","timestamp":"1","bids":[{"price":0.5,"size":"1"}]}', FrameError),
    (b'{"event_type":"book","asset_id":"A","timestamp":"1","hash":null}', FrameError),
    (b'{"event_type":"book","asset_id":"A","timestamp":"1","bids":{"price":"0.5"}}', FrameError),
])  # fmt: skip
def test_non_json_and_schema_errors(raw: bytes, exc: type) -> None:
    with pytest.raises(exc) as ei:
        DECODER(raw, 1)
    if exc is FrameError:  # the wrong shape: counted as "schema", with the assets it names
        assert ei.value.reason == "schema"


def test_array_with_one_bad_element_keeps_the_good_events() -> None:
    dump = json.loads(h1_payloads()[0])
    dump[1]["bids"][3]["price"] = "1.5"
    with pytest.raises(FrameError) as ei:
        DECODER(wire(dump), 1)
    e = ei.value
    assert e.asset_ids == (A_401,)
    assert [type(x) for x in e.events] == [BookSnapshot] and e.events[0].asset_id == A_587
    assert e.events == tuple(dec(wire([dump[0]]), 1))
    # two bad elements: both named, first reason kept
    pc = pc_frame(size="-1")
    with pytest.raises(FrameError) as ei:
        DECODER(wire([{"event_type": "nope"}, dump[0], pc]), 1)
    assert ei.value.reason == "unknown_event_type"
    assert ei.value.asset_ids == BOTH
    assert len(ei.value.events) == 1


def test_single_entry_frames_decode_the_same_cold_and_warm() -> None:
    """A one-entry price_change takes a fast path once its prices are cached: same events."""
    grid = [f"0.{i:02d}" for i in range(1, 100)] + [f"0.{i:03d}" for i in range(1, 1000)]
    dec(wire({"event_type": "book", "asset_id": "A", "timestamp": "1", "bids": [{"price": p, "size": "1"} for p in grid]}))
    n = 0
    for raw in h1_payloads() + polytope_lines():
        if b'"price_changes"' not in raw:
            continue
        f = json.loads(raw)
        for e in f["price_changes"]:
            for size in (e["size"], "0", "12", "0.000001", "999999.999999", "123456789.5"):
                one = wire(dict(f, price_changes=[dict(e, size=size)]))
                assert check_against_oracle(one) == check_against_oracle(one)
                n += 1
    assert n == (40 + 70) * 6


def _one_entry(ts: str) -> bytes:
    entry = {"asset_id": "A", "price": "0.5", "size": "5", "side": "BUY", "hash": "h", "best_bid": "0.5", "best_ask": "0.6"}
    return wire({"market": "m", "price_changes": [entry], "timestamp": ts, "event_type": "price_change"})


def test_bad_timestamps_in_single_entry_frames() -> None:
    """One-entry price_changes take a fast path; bad timestamps are refused there too."""
    for t in ("²", "", "-1", "1.5", "0x10", " 1"):
        with pytest.raises(FrameError) as ei:
            DECODER(_one_entry(t), 1)
        assert ei.value.asset_ids == ("A",) and "timestamp" in str(ei.value), t
    (d,) = DECODER(_one_entry("1790766981628"), 1)
    assert d.exchange_ts == 1790766981628 * MS and d.run_end


def test_non_ascii_digit_timestamp_refused_in_single_entry_frames() -> None:
    with pytest.raises(FrameError):
        DECODER(_one_entry("١٧٩٠"), 1)


# =========================================================================== through the kernel


def loaded_kernel(**kw: Any) -> tuple[Kernel, list[Event]]:
    k = Kernel(**kw)
    k.add_decoder(SRC, DECODER)
    seen: list[Event] = []
    k.bus.subscribe(Event, seen.append)
    k.process(1_000, SRC, h1_payloads()[0])
    assert k.books.is_healthy(A_401) and k.books.is_healthy(A_587)
    seen.clear()
    return k, seen


def book_state(k: Kernel, aid: str) -> tuple[dict, dict]:
    b = k.books[aid]
    return dict(b.bids), dict(b.asks)


@pytest.mark.parametrize("name,frame,needle", BAD_VALUES, ids=[x[0] for x in BAD_VALUES])
def test_kernel_counts_reports_and_isolates_bad_values(name: str, frame: dict, needle: str) -> None:
    k, seen = loaded_kernel()
    before = {a: book_state(k, a) for a in BOTH}
    k.process(2_000, SRC, wire(frame))  # never raises
    assert k.stats.drop_reasons == {f"{SRC}:bad_value": 1}
    assert k.stats.dropped == 1 and k.stats.inputs == 2
    drops = [e for e in seen if isinstance(e, InputDropped)]
    assert len(drops) == 1 and drops[0].source == SRC and drops[0].reason == "bad_value" and needle in drops[0].detail
    health = [e for e in seen if isinstance(e, BookHealth)]
    assert {(h.asset_id, h.healthy, h.reason) for h in health} == {(a, False, "parse failure (bad_value)") for a in BOTH}
    assert not any(isinstance(e, BookDelta) for e in seen)
    for a in BOTH:
        assert book_state(k, a) == before[a]  # the bad change (and its frame-mates) never applied
        assert not k.books[a].healthy
    assert k.bus.handler_errors == 0


def test_kernel_drop_reasons_by_kind() -> None:
    k, seen = loaded_kernel()
    before = {a: book_state(k, a) for a in BOTH}
    k.process(2_000, SRC, b'{"event_type":"nope"}')
    k.process(2_001, SRC, b'{"market":"0x2aae", "price_changes":[{"asset_id":"4011')  # truncated
    k.process(2_002, SRC, b'{"event_type":"price_change","timestamp":1,"price_changes":[]}')
    k.process(2_003, SRC, b"PONG")
    k.process(2_004, SRC, "PONG")
    k.process(2_005, SRC, b"hello")
    k.process(2_006, SRC, wire(pc_frame(price="2")))
    k.process(2_007, SRC, wire(pc_frame(price="3")))
    assert dict(k.stats.drop_reasons) == {
        f"{SRC}:unknown_event_type": 1, f"{SRC}:malformed": 2, f"{SRC}:schema": 1, f"{SRC}:bad_value": 2}
    assert sum(isinstance(e, InputDropped) for e in seen) == 6
    assert k.stats.inputs == 9
    # the same bad asset twice: one BookHealth per asset (the reason did not change)
    assert sum(isinstance(e, BookHealth) for e in seen) == 2
    for a in BOTH:
        assert book_state(k, a) == before[a]


def test_kernel_good_elements_of_a_bad_array_are_published() -> None:
    k, seen = loaded_kernel()
    dump = json.loads(h1_payloads()[0])
    dump[0]["bids"] = [{"price": "0.3", "size": "1"}]  # changes 587268's book (and its hash no longer matches)
    dump[0]["hash"] = ""
    dump[1]["asks"][0]["size"] = "-5"
    k.process(3_000, SRC, wire(dump))
    assert k.stats.drop_reasons == {f"{SRC}:bad_value": 1}
    assert book_state(k, A_587)[0] == {300_000: 1_000_000}
    assert [e.asset_id for e in seen if isinstance(e, BookSnapshot)] == [A_587]
    assert not k.books[A_401].healthy and k.books[A_401].unhealthy_reason == "parse failure (bad_value)"


def test_kernel_rest_source() -> None:
    k = Kernel()
    k.add_decoder("polymarket.book", REST_DECODER)
    k.process(1, "polymarket.book", rd(SAMPLES / "adriancova" / "book-v1.json"))
    k.process(2, "polymarket.book", rd(SAMPLES / "adriancova" / "book-v2.json"))
    rep = k.integrity.summary()["total"]
    assert rep["passed"] == 2 and rep["failed"] == 0  # both real REST hashes recompute
    k.process(3, "polymarket.book", b'{"error":"No orderbook exists for the requested token id"}')
    assert k.stats.drop_reasons == {"polymarket.book:rest_error": 1}


def test_kernel_schema_error_marks_the_named_books_unhealthy() -> None:
    k, seen = loaded_kernel()
    f = pc_frame()
    f["price_changes"][0]["size"] = 918.34  # a JSON number
    k.process(2_000, SRC, wire(f))
    assert k.stats.drop_reasons == {f"{SRC}:schema": 1}
    assert not k.books[A_401].healthy


def test_kernel_never_raises_on_a_str_with_a_lone_surrogate() -> None:
    k, _ = loaded_kernel()
    k.process(2_000, SRC, "\ud800PONG")
    assert k.stats.dropped == 1


# --------------------------------------------------------------------------- fuzzing the door

REAL_RAW = [raw for _, raw in REAL]
H1_RAW = h1_payloads()

TOKENS = [b'"1.5"', b'"-1"', b'"0"', b'"1"', b'"0.0000001"', b'"0.5"', b'"0.49"', b'"1e3"', b'""', b'"x"', b'"SELL"',
          b'"BUY"', b'"book"', b'"tick_size_change"', b'"\\u0000"', b"null", b"1e9", b"[]", b"{}", b"true"]  # fmt: skip

byte_mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("del"), st.integers(0, 1 << 16), st.integers(1, 40)),
    st.tuples(st.just("ins"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16), st.just(0)),
)
value_mutation = st.tuples(st.sampled_from(["val", "val", "key"]), st.integers(0, 1 << 16), st.sampled_from(TOKENS))


def mutate(raw: bytes, muts: list[tuple]) -> bytes:
    """Byte-level damage (set/del/ins/cut) or, keeping the JSON valid, a string value replaced by
    a token (val) or a key renamed so the field goes missing (key)."""
    b = bytearray(raw)
    for kind, pos, arg in muts:
        if not b:
            break
        i = pos % len(b)
        if kind == "set":
            b[i] = arg
        elif kind == "del":
            del b[i : i + arg]
        elif kind == "ins":
            b[i:i] = arg
        elif kind == "cut":
            del b[i:]
        else:
            j = b.find(b'":', i)
            if j < 0:
                j = b.find(b'":')
            if j < 1:
                continue
            if kind == "key":
                b[j - 1] = ord("x")
                continue
            v = j + 2
            while v < len(b) and b[v] == 32:
                v += 1
            if v < len(b) and b[v] == 34:
                b[v : b.find(b'"', v + 1) + 1] = arg
    return bytes(b)


def door_invariants(k: Kernel, n_inputs: int) -> None:
    assert k.stats.inputs == n_inputs
    assert k.stats.dropped == sum(k.stats.drop_reasons.values())
    assert k.bus.handler_errors == 0  # no kernel handler ever crashed on what the decoder let through
    for _, b in k.books.items():
        assert all(0 < p < 1_000_000 and s > 0 for p, s in b.bids.items())
        assert all(0 < p < 1_000_000 and s > 0 for p, s in b.asks.items())


FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


@FUZZ
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_fuzz_arbitrary_bytes_never_raise(msgs: list[bytes]) -> None:
    k, _ = loaded_kernel()
    for i, m in enumerate(msgs):
        k.process(2_000 + i, SRC, m)
    door_invariants(k, 1 + len(msgs))


@FUZZ
@given(st.lists(st.text(max_size=120), min_size=1, max_size=4))
def test_fuzz_arbitrary_text_never_raises(msgs: list[str]) -> None:
    k, _ = loaded_kernel()
    for i, m in enumerate(msgs):
        k.process(2_000 + i, SRC, m)
    door_invariants(k, 1 + len(msgs))


@FUZZ
@given(st.sampled_from(REAL_RAW), st.lists(byte_mutation, min_size=1, max_size=4))
def test_fuzz_damaged_real_frames_never_raise(raw: bytes, muts: list[tuple]) -> None:
    k, _ = loaded_kernel()
    m = mutate(raw, muts)
    k.process(2_000, SRC, m)
    k.process(2_001, SRC, m)  # the same input twice: counted (or applied) twice, still no raise
    k.settle_books()
    door_invariants(k, 3)


@settings(FUZZ, max_examples=40)  # a diverged book costs one ~1,000-candidate search
@given(st.sampled_from(REAL_RAW), st.lists(value_mutation, min_size=1, max_size=3), st.integers(1, 22))
def test_fuzz_bad_values_in_real_frames_then_the_real_stream(raw: bytes, muts: list[tuple], j: int) -> None:
    k, _ = loaded_kernel()
    k.process(2_000, SRC, mutate(raw, muts))
    for i, p in enumerate(H1_RAW[j : j + 5]):  # the stream goes on after the bad frame
        k.process(3_000 + i, SRC, p)
    k.settle_books()
    door_invariants(k, 2 + len(H1_RAW[j : j + 5]))
