"""adapters.polymarket.gamma: normalisers on real samples, the polymarket.gamma decoder, series
slugs, filters, and GammaClient against a loopback aiohttp server."""

from __future__ import annotations

import gzip
import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.polymarket import gamma
from adapters.polymarket.gamma import (
    DECODER,
    SOURCE,
    GammaClient,
    GammaError,
    et_offset_s,
    filter_markets,
    gamma_input,
    iso_to_ns,
    normalize_clob_market,
    normalize_event,
    normalize_market,
    normalize_new_market,
    resolve_markets,
    series_of_slug,
    series_window_slugs,
    window_slug,
    window_start,
)
from polybot.events import FeeSchedule, MarketInfo
from polybot.kernel import FrameError, Kernel
from polybot.units import SCALE, json_units
from sample_data import SAMPLES

NS = 1_000_000_000
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="samples not available")

BTC15_CID = "0xcd5f9f505e0c0182746aa65963f72f01e7463259e5ea9f56672c0fe3a37f348a"
BTC15_UP = "25070934348813416902477876984955073880416401960631253331845590271167412497744"
BTC15_DOWN = "111614563957165270026378011809694313565736745512637881727398424401624030147043"
CRYPTO_FEES = FeeSchedule(rate_ppm=70_000, exponent=1, taker_only=True, rebate_ppm=200_000)


def load(rel: str) -> Any:
    return json.loads((SAMPLES / rel).read_bytes())


def raw(rel: str) -> bytes:
    return (SAMPLES / rel).read_bytes()


def sec(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


# =============================================================================================
# Gamma market objects (real samples)
# =============================================================================================


@needs_samples
def test_gamma_market_btc15m() -> None:
    m = normalize_market(load("adriancova/gamma-market-v1-btc15m.json"), ts=7)
    assert m.ts == 7
    assert m.market == BTC15_CID
    assert m.asset_ids == (BTC15_UP, BTC15_DOWN)
    assert m.outcomes == ("Up", "Down")
    assert m.question == "Bitcoin Up or Down - October 5, 7:00PM-7:15PM ET"
    assert m.slug == "btc-updown-15m-1791241200"
    assert m.tick_size == 10_000 and m.min_order_size == 5_000_000
    assert m.fees == CRYPTO_FEES
    assert m.end_ts == sec("2026-10-05T23:15:00Z") * NS == 1_791_242_100 * NS
    assert m.start_ts == sec("2026-10-04T23:08:46Z") * NS + 486_981_000
    assert (m.neg_risk, m.neg_risk_augmented, m.neg_risk_market_id) == (False, False, "")
    assert (m.active, m.closed, m.accepting_orders) == (True, False, True)
    assert m.version == "v1" and m.series == "btc-updown-15m"
    assert m.event_id == "" and m.tags == ()


@needs_samples
def test_gamma_events_keyset_page() -> None:
    page = load("adriancova/gamma-events-keyset-series10192.json")
    infos = [i for ev in page["events"] for i in normalize_event(ev, ts=3)]
    assert [i.slug for i in infos] == ["btc-updown-15m-1791241200", "btc-updown-15m-1791242100"]
    a, b = infos
    assert a.market == BTC15_CID and a.asset_ids == (BTC15_UP, BTC15_DOWN)
    assert (a.event_id, a.event_slug, b.event_id) == ("1133988", "btc-updown-15m-1791241200", "1134033")
    # the slug-derived series name wins over Gamma's seriesSlug "btc-up-or-down-15m"
    assert a.series == b.series == "btc-updown-15m"
    assert {"crypto", "bitcoin", "up-or-down", "15M"} <= set(a.tags)
    assert b.end_ts == sec("2026-10-05T23:30:00Z") * NS
    assert a.fees == b.fees == CRYPTO_FEES
    assert not a.neg_risk and not a.neg_risk_augmented
    # through the decoder as the keyset page it is
    body = raw("adriancova/gamma-events-keyset-series10192.json")
    evs = DECODER.decode(gamma_input("events", {"series_id": "10192"}, body), 99)
    assert [e.market for e in evs] == [a.market, b.market] and all(e.ts == 99 for e in evs)
    assert evs[0] == msgspec.structs.replace(a, ts=99)


@needs_samples
def test_ligengxin_btc5m_every_row() -> None:
    with gzip.open(SAMPLES / "ligengxin96/BTC-5m-markets-2026-07-24.jsonl.gz") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 292
    ticks = set()
    for r in rows:
        m = normalize_market(r["raw"])
        assert m.market == r["condition_id"]
        assert list(m.asset_ids) == r["token_ids"]
        assert m.outcomes == ("Up", "Down")
        assert m.end_ts == r["end_sec"] * NS
        assert m.slug == f"btc-updown-5m-{r['start_sec']}" and m.series == "btc-updown-5m"
        assert m.fees == CRYPTO_FEES
        assert m.min_order_size == 5_000_000 and m.version == "v1"
        assert m.closed and not m.accepting_orders
        ticks.add(m.tick_size)
    assert ticks == {1_000, 10_000}


@needs_samples
def test_nautilus_gamma_markets() -> None:
    live = normalize_market(load("nautilus/rs_gamma_market_live.json"))
    assert live.neg_risk and live.neg_risk_augmented  # event negRiskAugmented, from the embedded event
    assert live.neg_risk_market_id == "0x2c3d7e0eee6f058be3006baabf0d54a07da254ba47fe6e3e095e7990c7814700"
    assert live.event_slug == "democratic-presidential-nominee-2028" and live.event_id == "30829"
    assert live.tick_size == 1_000
    assert live.fees == FeeSchedule(rate_ppm=40_000, exponent=1, taker_only=True, rebate_ppm=250_000)
    assert live.end_ts == sec("2028-11-07T00:00:00Z") * NS

    btc5 = normalize_market(load("nautilus/rs_gamma_market.json"))
    assert btc5.slug == "btc-updown-5m-1773307200" and btc5.series == "btc-updown-5m"
    assert btc5.event_id == "260654"
    assert btc5.fees is None  # feesEnabled but no feeSchedule in this 2026-03 object: unknown
    assert btc5.asset_ids[0] == "104239898038807136052399800151408521467737075933964991162589336683346093173875"

    closed_acc = normalize_market(load("nautilus/rs_gamma_market_closed_binary_accepting_true.json"))
    assert closed_acc.closed and closed_acc.accepting_orders
    assert filter_markets([closed_acc]) == []  # closed: not tradable whatever acceptingOrders says
    closed_no = normalize_market(load("nautilus/rs_gamma_market_closed_binary_accepting_false.json"))
    assert closed_no.closed and not closed_no.accepting_orders and closed_no.tick_size == 1_000

    legacy = normalize_market(load("nautilus/rs_gamma_market_closed_nonbinary_legacy.json"))
    assert legacy.outcomes == ("Long", "Short") and legacy.tick_size == 10_000  # default when absent
    assert legacy.min_order_size == 5_000_000 and legacy.fees is None and not legacy.accepting_orders
    zero = normalize_market(load("nautilus/rs_gamma_market_closed_zero_zero_legacy.json"))
    assert zero.end_ts == sec("2020-11-04T00:00:00Z") * NS

    for name in ("map_handicap", "money_line"):
        sp = normalize_market(load(f"nautilus/rs_gamma_market_sports_market_{name}.json"))
        assert sp.fees == FeeSchedule(rate_ppm=30_000, exponent=1, taker_only=True, rebate_ppm=250_000)
        assert sp.series == "counter-strike" and sp.event_slug == "cs2-faze-ill-2026-04-05"
        assert sp.outcomes == ("FaZe", "illwill") and sp.tick_size == 1_000


@needs_samples
def test_nautilus_gamma_event_neg_risk() -> None:
    (ev,) = load("nautilus/rs_gamma_event.json")
    infos = normalize_event(ev)
    assert len(infos) == 2
    for i in infos:
        assert i.neg_risk and i.neg_risk_augmented and i.event_id == "30829"
        assert i.neg_risk_market_id == "0x2c3d7e0eee6f058be3006baabf0d54a07da254ba47fe6e3e095e7990c7814700"
        assert "politics" in i.tags and i.fees is None and i.tick_size == 1_000
    assert infos[0].asset_ids[0] == "60590045489347122735554346200880179420435533609307820342798544098823516727807"


@needs_samples
def test_nautilus_py_http_gamma_shapes() -> None:
    m = normalize_market(load("nautilus/py_http_responses_market_slug.json"))  # clobTokenIds a real array
    assert m.asset_ids == (
        "41731245504777162452560887531170605263832832998797939951071198553974989813715",
        "72650408556394197703520321372193619642402793204437834561777315032709183100311",
    )
    assert m.slug == "kamala-harris-divorce-in-2025" and m.outcomes == () and m.end_ts == 0
    lst = [normalize_market(x) for x in load("nautilus/py_http_responses_markets_list.json")]
    assert [x.active for x in lst] == [True, True, False]
    # trimmed events carry no token ids: refused, naming the field
    with pytest.raises(ValueError, match="clobTokenIds"):
        normalize_event(load("nautilus/py_http_responses_event.json"))
    msg = gamma_input("events", {}, raw("nautilus/py_http_responses_events_list.json"))
    with pytest.raises(ValueError, match="no usable market"):
        DECODER.decode(msg, 1)
    evs = DECODER.decode(gamma_input("public-search", {"q": "bitcoin"}, raw("nautilus/rs_search_response.json")), 1)
    assert len(evs) == 1 and evs[0].event_slug == "bitcoin-above-on-march-11" and evs[0].tick_size == 1_000


# =============================================================================================
# CLOB market objects
# =============================================================================================


@needs_samples
def test_clob_markets_compact_v1_matches_gamma() -> None:
    c = normalize_clob_market(load("adriancova/clob-markets-v1.json"), ts=5)
    g = normalize_market(load("adriancova/gamma-market-v1-btc15m.json"))
    assert (c.market, c.asset_ids, c.outcomes) == (g.market, g.asset_ids, g.outcomes)
    assert (c.tick_size, c.min_order_size, c.neg_risk, c.version) == (10_000, 5_000_000, False, "v1")
    assert c.fees == FeeSchedule(rate_ppm=70_000, exponent=1, taker_only=True, rebate_ppm=0)  # fd has no rebate
    assert c.accepting_orders and c.ts == 5


@needs_samples
def test_clob_markets_compact_v2() -> None:
    c = normalize_clob_market(load("adriancova/clob-markets-v2.json"))
    assert c.version == "v2"
    assert c.market == "0x017791f201d5a788e0039e511fc1900e5f000000000000000000000000000000"
    assert c.asset_ids == (
        "663574927012476832975694178961957910328055987427402067619466963999000625152",
        "663574927012476832975694178961957910328055987427402067619466963999000625153",
    )
    assert c.fees is not None and c.fees.rate_ppm == 70_000


@needs_samples
def test_clob_full_market_objects() -> None:
    t = normalize_clob_market(load("nautilus/py_http_responses_market.json"))
    assert t.neg_risk and t.tick_size == 1_000 and t.min_order_size == 5_000_000
    assert t.outcomes == ("Yes", "No") and t.slug == "will-donald-trump-win-the-2024-us-presidential-election"
    assert t.asset_ids[0] == "21742633143463906290569050155826241533067272736897614950488156847949938836455"
    assert t.end_ts == sec("2024-11-05T00:00:00Z") * NS and "Politics" in t.tags
    for name in ("false", "true"):
        c = normalize_clob_market(load(f"nautilus/rs_clob_market_closed_binary_accepting_{name}.json"))
        assert c.closed and not c.accepting_orders  # enable_order_book false
    # a CLOB /markets page: the one test market without token ids is skipped, the rest published
    with pytest.raises(FrameError) as ei:
        page = raw("nautilus/py_http_responses_markets.json")
        DECODER.decode(gamma_input("clob-markets", {"next_cursor": "MA=="}, page), 1)
    assert ei.value.reason == "bad_market" and "tokens" in str(ei.value)
    assert len(ei.value.events) == 99


# =============================================================================================
# new_market frames
# =============================================================================================


def _v2_session_new_market() -> dict[str, Any]:
    for line in (SAMPLES / "adriancova/ws-market-v2-session.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if '"new_market"' in rec.get("data", ""):
            return json.loads(rec["data"])
    raise AssertionError("no new_market frame")


@needs_samples
def test_new_market_frames() -> None:
    a = normalize_new_market(_v2_session_new_market(), 11)
    assert a.ts == 11
    assert a.market == "0xab449b45ddb6c2682ec7e931dfb18705cf611cddf42ae35aa300c79453913dca"
    assert a.asset_ids[1] == "34624146322139699725457793989148148865893890146789375344948725030434774938117"
    assert a.outcomes == ("Yes", "No") and a.event_id == "1139944"
    assert a.event_slug == "north-carolina-enacts-data-center-moratorium-by"
    assert a.fees == FeeSchedule(rate_ppm=40_000, exponent=1, taker_only=True, rebate_ppm=250_000)
    assert a.tick_size == 10_000 and a.accepting_orders

    b = normalize_new_market(load("ahsan909k/glmbotpoly__clob_new_market.json"))
    assert b.fees == FeeSchedule(rate_ppm=30_000, exponent=1, taker_only=True, rebate_ppm=250_000)
    assert not b.active and not b.accepting_orders and b.outcomes == ("Over", "Under")
    assert b.event_id == "568509"

    c = normalize_new_market(load("nautilus/rs_ws_market_new_market_msg.json"))
    assert c.fees is None and c.tags == ("stocks",) and c.slug == "nvda-above-240-on-january-30-2026"
    assert c.asset_ids[0] == "76043073756653678226373981964075571318267289248134717369284518995922789326425"


# =============================================================================================
# normaliser edge cases (synthetic)
# =============================================================================================


def mk(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "conditionId": "0x" + "ab" * 32,
        "slug": "will-x",
        "outcomes": '["Yes", "No"]',
        "clobTokenIds": '["1", "2"]',
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not ...}


def test_v2_position_ids_and_defaults() -> None:
    m = normalize_market(mk(version="v2", clobTokenIds=None, positionIds=["11", 12]))
    assert m.version == "v2" and m.asset_ids == ("11", "12")
    d = normalize_market(mk(outcomes=None))
    assert d.outcomes == () and d.tick_size == 10_000 and d.min_order_size == 5_000_000
    assert d.active and not d.closed and d.accepting_orders and d.fees is None and d.version == "v1"
    assert not normalize_market(mk(enableOrderBook=False, acceptingOrders=True)).accepting_orders
    assert not normalize_market(mk(closed=True)).accepting_orders  # no acceptingOrders: closed -> no
    off = normalize_market(mk(feesEnabled=False, feeSchedule={"rate": 0.07, "exponent": 1}))
    assert off.fees is None
    s = normalize_market(mk(feesEnabled=True, feeSchedule={"rate": "0.25", "exponent": 2}))
    assert s.fees == FeeSchedule(rate_ppm=250_000, exponent=2, taker_only=True, rebate_ppm=0)
    assert normalize_market(mk(orderPriceMinTickSize=1e-4)).tick_size == 100
    assert normalize_market(mk(orderMinSize=Decimal("14.96"))).min_order_size == 14_960_000
    assert normalize_market(mk(negRisk=None), {"enableNegRisk": True, "negRiskAugmented": True}).neg_risk_augmented


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"clobTokenIds": None}, "clobTokenIds"),
        ({"clobTokenIds": "[]"}, "clobTokenIds"),
        ({"version": "v2", "clobTokenIds": None}, "positionIds"),
        ({"clobTokenIds": "not json"}, "clobTokenIds"),
        ({"clobTokenIds": '["0xnope", "2"]'}, "clobTokenIds"),
        ({"conditionId": None}, "conditionId"),
        ({"outcomes": '["Yes"]'}, "outcomes"),
        ({"orderPriceMinTickSize": 0.0000001}, "orderPriceMinTickSize"),
        ({"orderPriceMinTickSize": 0}, "orderPriceMinTickSize"),
        ({"orderPriceMinTickSize": "abc"}, "orderPriceMinTickSize"),
        ({"orderMinSize": -5}, "orderMinSize"),
        ({"endDate": "yesterday"}, "endDate"),
        ({"active": "maybe"}, "active"),
        ({"feesEnabled": True, "feeSchedule": {"rate": 0.07, "exponent": 1.5}}, "feeSchedule.exponent"),
        ({"feesEnabled": True, "feeSchedule": {"rate": True}}, "feeSchedule.rate"),
        ({"feesEnabled": True, "feeSchedule": [1]}, "feeSchedule"),
    ],
)
def test_bad_values_name_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        normalize_market(mk(**kw))


def test_iso_to_ns_forms() -> None:
    base = sec("2026-10-05T23:15:00Z") * NS
    assert iso_to_ns("2026-10-05T23:15:00Z") == base
    assert iso_to_ns("2026-10-05T23:15:00.5Z") == base + 500_000_000
    assert iso_to_ns("2026-10-05T23:15:00.123456789Z") == base + 123_456_789
    assert iso_to_ns("2026-10-05 23:15:00+00") == base
    assert iso_to_ns("2026-10-05T19:15:00-04:00") == base
    assert iso_to_ns("2026-10-05") == sec("2026-10-05T00:00:00Z") * NS
    with pytest.raises(ValueError):
        iso_to_ns("2026-13-05T00:00:00Z")


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)))
@settings(max_examples=150, deadline=None)
def test_iso_roundtrip(dt: datetime) -> None:
    dt = dt.replace(tzinfo=timezone.utc)
    exact = (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000
    assert iso_to_ns(dt.isoformat().replace("+00:00", "Z")) == exact


@given(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False, allow_infinity=False))
@settings(max_examples=300, deadline=None)
def test_units_from_float_and_text_are_exact(d: Decimal) -> None:
    want = int(d * SCALE)
    assert json_units(float(d), "x") == want  # the shortest repr of the float is the decimal
    assert json_units(str(d), "x") == want
    assert json_units(d, "x") == want


def test_units_refuses_more_than_6_decimals() -> None:
    for v in (0.1 + 0.2, "0.0000001", Decimal("1.1234567"), float("nan"), "inf", None, True):
        with pytest.raises(ValueError, match="fld"):
            json_units(v, "fld")
    assert json_units("1e-3", "x") == 1_000 and json_units(5, "x") == 5_000_000


# =============================================================================================
# the polymarket.gamma decoder
# =============================================================================================


def gm(i: int, **kw: Any) -> dict[str, Any]:
    return mk(conditionId=f"0x{i:064x}", slug=f"m{i}", clobTokenIds=json.dumps([str(2 * i + 1), str(2 * i + 2)]), **kw)


def msg(endpoint: str, body: Any, query: dict[str, Any] | None = None) -> bytes:
    return gamma_input(endpoint, query or {}, json.dumps(body).encode())


def test_decoder_shapes() -> None:
    assert [e.market for e in DECODER.decode(msg("markets", [gm(1), gm(2)]), 5)] == [f"0x{1:064x}", f"0x{2:064x}"]
    page = {"markets": [gm(3)], "next_cursor": "abc"}
    (e,) = DECODER.decode(msg("markets", page), 5)
    assert isinstance(e, MarketInfo) and e.ts == 5 and e.asset_ids == ("7", "8")
    (e,) = DECODER.decode(msg("market", gm(4, orderPriceMinTickSize=0.001)), 6)
    assert e.tick_size == 1_000 and e.ts == 6
    ev = {"id": 9, "slug": "ev", "negRisk": True, "negRiskAugmented": False, "markets": [gm(5), gm(6)]}
    out = DECODER.decode(msg("event", ev), 7)  # a single event (it has "markets": not a page)
    assert [x.event_id for x in out] == ["9", "9"] and all(x.neg_risk for x in out)
    assert len(DECODER.decode(msg("events", {"events": [ev, ev], "next_cursor": None}), 7)) == 4
    assert len(DECODER.decode(msg("events", {"data": [ev]}), 7)) == 2
    assert DECODER.decode(msg("markets", []), 1) == []
    assert DECODER.decode(msg("events", [{"id": 1, "markets": []}]), 1) == []


def test_decoder_float_units_exact_from_json_text() -> None:
    (e,) = DECODER.decode(msg("market", gm(1, feesEnabled=True, feeSchedule={"rate": 0.07, "rebateRate": 0.2})), 1)
    assert e.fees == CRYPTO_FEES


def test_decoder_skips_a_bad_market_and_logs_once() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    gamma._logged.clear()
    try:
        body = [gm(1), {"conditionId": "0xbad", "slug": "broken", "clobTokenIds": None}, gm(2)]
        for _ in range(2):
            with pytest.raises(FrameError) as ei:
                DECODER.decode(msg("markets", body, {"slug": ["x"]}), 3)
            assert ei.value.reason == "bad_market"
            assert [e.market for e in ei.value.events] == [f"0x{1:064x}", f"0x{2:064x}"]
            assert "broken" in str(ei.value) and "clobTokenIds" in str(ei.value)
    finally:
        logger.remove(sink)
    assert len(lines) == 1 and "broken" in lines[0] and "markets" in lines[0]


@pytest.mark.parametrize(
    "bad",
    [
        b"garbage",
        b'"PONG"',
        b"[1, 2]",
        b'{"endpoint": "markets"}',
        b'{"endpoint": "nope", "body": []}',
        b'{"endpoint": "markets", "body": 5}',
        b'{"endpoint": "markets", "body": null}',
        b'{"endpoint": "markets", "body": [{"x": 1}, 7]}',
        b'{"endpoint": "market", "body": {"error": "not found"}}',
    ],
)
def test_decoder_refuses_unusable_messages(bad: bytes) -> None:
    with pytest.raises(ValueError):
        DECODER.decode(bad, 1)


def test_gamma_input_embeds_body_verbatim() -> None:
    body = b'[{"conditionId": "0x01",  "orderPriceMinTickSize": 0.010, "clobTokenIds": "[\\"1\\"]"}]'
    m = gamma_input("markets", {"slug": ["a", "b"], "closed": "false"}, body)
    assert body in m
    env = json.loads(m)
    assert env["endpoint"] == "markets" and env["query"] == {"slug": ["a", "b"], "closed": "false"}
    (e,) = DECODER.decode(m, 1)
    assert e.tick_size == 10_000
    assert json.loads(gamma_input("market", None, b'{\n  "a": 1\n}\n'))["body"] == {"a": 1}
    with pytest.raises(ValueError):
        gamma_input("markets", {}, b"<html>502</html>")
    with pytest.raises(ValueError):
        gamma_input("bogus", {}, b"[]")


def test_kernel_publishes_good_markets_of_a_partly_bad_message() -> None:
    k = Kernel()
    k.add_decoder(SOURCE, DECODER.decode)
    k.process(10, SOURCE, msg("markets", [gm(1), {"slug": "no-id"}, gm(2)]))
    k.process(11, SOURCE, msg("market", gm(3)))
    assert len(k.catalog) == 3 and k.catalog.for_asset("7").market == f"0x{3:064x}"  # type: ignore[union-attr]
    assert k.stats.drop_reasons[f"{SOURCE}:bad_market"] == 1


# =============================================================================================
# recurring series
# =============================================================================================


def test_series_of_slug() -> None:
    assert series_of_slug("btc-updown-15m-1791241200") == "btc-updown-15m"
    assert series_of_slug("eth-updown-5m-1784850900") == "eth-updown-5m"
    assert series_of_slug("btc-updown-4h-1772442000") == "btc-updown-4h"
    assert series_of_slug("bitcoin-up-or-down-february-23-1pm-et") == "btc-updown-1h"
    assert series_of_slug("ethereum-up-or-down-october-5-12am-et") == "eth-updown-1h"
    assert series_of_slug("will-x-happen") == series_of_slug("btc-updown-15m") == ""


def test_window_slugs_examples() -> None:
    t = 1_791_241_200  # btc-updown-15m-1791241200, 2026-10-05 23:00 UTC
    assert series_window_slugs("btc-updown-15m", t + 899) == ["btc-updown-15m-1791241200", "btc-updown-15m-1791242100"]
    assert series_window_slugs("btc-updown-15m", t + 900)[0] == "btc-updown-15m-1791242100"
    assert series_window_slugs("btc-updown-5m", 1_784_850_900 + 10, 3) == [
        "btc-updown-5m-1784850900", "btc-updown-5m-1784851200", "btc-updown-5m-1784851500"]  # fmt: skip
    # hourly: named by the US Eastern start hour (EST in February, EDT in October)
    assert window_slug("btc-updown-1h", 1_771_869_600) == "bitcoin-up-or-down-february-23-1pm-et"
    assert series_window_slugs("eth-updown-1h", t + 1800) == [
        "ethereum-up-or-down-october-5-7pm-et", "ethereum-up-or-down-october-5-8pm-et"]  # fmt: skip
    assert window_slug("btc-updown-1h", sec("2026-10-06T04:00:00Z")) == "bitcoin-up-or-down-october-6-12am-et"
    assert window_slug("btc-updown-1h", sec("2026-10-06T16:00:00Z")) == "bitcoin-up-or-down-october-6-12pm-et"
    # 4h windows start on US Eastern 4-hour boundaries (slugs from public Gamma mirrors)
    for start in (1_772_442_000, 1_775_088_000, 1_775_390_400):
        assert window_start("btc-updown-4h", start + 14_399) == start
        assert series_window_slugs("btc-updown-4h", start + 60)[0] == f"btc-updown-4h-{start}"
    with pytest.raises(ValueError, match="series"):
        window_start("btc-updown-7m", t)


def test_us_eastern_dst_edges() -> None:
    assert et_offset_s(sec("2026-03-08T06:59:59Z")) == -5 * 3600
    assert et_offset_s(sec("2026-03-08T07:00:00Z")) == -4 * 3600
    assert et_offset_s(sec("2026-11-01T05:59:59Z")) == -4 * 3600
    assert et_offset_s(sec("2026-11-01T06:00:00Z")) == -5 * 3600


@given(st.integers(min_value=1_600_000_000, max_value=2_000_000_000),
       st.sampled_from(["btc-updown-5m", "eth-updown-15m", "btc-updown-1h", "sol-updown-4h"]))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_window_contains_now_and_slugs_map_back(now: int, series: str) -> None:
    dur = gamma.DURATIONS[series.rsplit("-", 1)[1]]
    start = window_start(series, now)
    assert start <= now < start + dur
    assert start % (3600 if dur >= 3600 else dur) == 0  # ET windows: whole UTC hours
    slugs = series_window_slugs(series, now, 2)
    assert len(set(slugs)) == 2 and all(series_of_slug(s) == series for s in slugs)


# =============================================================================================
# filters
# =============================================================================================

NOW = 1_791_241_500 * NS


def info(i: int, **kw: Any) -> MarketInfo:
    base = MarketInfo(market=f"c{i}", asset_ids=(f"{i}a", f"{i}b"), slug=f"s{i}", end_ts=NOW + 600 * NS)
    return msgspec.structs.replace(base, **kw)


def test_filter_markets() -> None:
    xs = [
        info(0),
        info(1, closed=True),
        info(2, accepting_orders=False),
        info(3, active=False),
        info(4, neg_risk=True, tags=("Politics",)),
        info(5, series="btc-updown-15m", end_ts=NOW + 60 * NS),
        info(6, end_ts=0),
        info(7, end_ts=NOW - NS),
    ]
    ids = lambda r: [x.market for x in r]  # noqa: E731
    assert ids(filter_markets(xs)) == ["c0", "c4", "c5", "c6", "c7"]
    assert len(filter_markets(xs, tradable_only=False)) == 8
    assert ids(filter_markets(xs, slug="s4")) == ["c4"]
    assert ids(filter_markets(xs, slug=["s4", "s0", "s1"])) == ["c0", "c4"]
    assert ids(filter_markets(xs, condition_id={"c1", "c5"}, tradable_only=False)) == ["c1", "c5"]
    assert ids(filter_markets(xs, tag="politics")) == ["c4"]
    assert ids(filter_markets(xs, series="btc-updown-15m")) == ["c5"]
    assert ids(filter_markets(xs, neg_risk=True)) == ["c4"]
    assert ids(filter_markets(xs, neg_risk=False)) == ["c0", "c5", "c6", "c7"]
    assert ids(filter_markets(xs, min_time_to_end_s=120, now_ns=NOW)) == ["c0", "c4"]
    assert ids(filter_markets(xs, max_time_to_end_s=120, now_ns=NOW)) == ["c5", "c7"]
    assert ids(filter_markets(xs, min_time_to_end_s=0, max_time_to_end_s=60, now_ns=NOW)) == ["c5"]
    with pytest.raises(ValueError, match="now_ns"):
        filter_markets(xs, min_time_to_end_s=1)


# =============================================================================================
# GammaClient against a loopback server
# =============================================================================================

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeGamma:
    """A loopback Gamma: scripted failures, keyset pages, id filters; records every request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.fail: dict[str, list[int]] = {}  # path -> statuses to answer before succeeding
        self.markets = [gm(i) for i in range(250)]
        self.events = [{"id": str(i), "slug": f"ev{i}", "negRisk": i % 2 == 0, "markets": [gm(1000 + i)]}
                       for i in range(5)]  # fmt: skip

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app

    async def handle(self, req: web.Request) -> web.StreamResponse:
        q = list(req.query.items())
        self.calls.append((req.path, q))
        pending = self.fail.get(req.path)
        if pending:
            status = pending.pop(0)
            return web.Response(status=status, text="busy", headers={"Retry-After": "0"} if status == 429 else {})
        if req.path == "/markets":
            cids = set(req.query.getall("condition_ids", []))
            toks = set(req.query.getall("clob_token_ids", []))
            slugs = set(req.query.getall("slug", []))
            out = [m for m in self.markets if m["conditionId"] in cids or m["slug"] in slugs
                   or set(json.loads(m["clobTokenIds"])) & toks]  # fmt: skip
            return web.json_response(out)
        if req.path == "/events/keyset":
            i = int(req.query.get("after_cursor", "0"))
            nxt = str(i + 2) if i + 2 < len(self.events) else None
            return web.json_response({"events": self.events[i : i + 2], "next_cursor": nxt})
        if req.path == "/markets/keyset":
            i = int(req.query.get("after_cursor", "0"))
            return web.json_response({"markets": self.markets[i : i + 100], "next_cursor": str(i + 100)})
        if req.path == "/events":
            slugs = req.query.getall("slug", [])
            return web.json_response([{"id": s, "slug": s, "markets": [mk(conditionId="0x" + s.encode().hex(), slug=s)]}
                                      for s in slugs])  # fmt: skip
        if req.path == "/series":
            return web.json_response([{"id": "77", "slug": req.query.get("slug")}])
        if req.path.startswith("/clob-markets/"):
            return web.Response(body=raw("adriancova/clob-markets-v1.json"), content_type="application/json")
        if req.path == "/gone":
            return web.Response(status=404, text="nope")
        return web.Response(status=404)


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    fake = FakeGamma()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = GammaClient(f"http://127.0.0.1:{port}", retries=3, backoff_s=0.001, max_backoff_s=0.01,
                         clob_url=f"http://127.0.0.1:{port}", rng=random.Random(1))  # fmt: skip
    try:
        yield fake, client
    finally:
        await client.close()
        await runner.cleanup()


@pytest.mark.anyio
async def test_client_retries_503_and_429(server) -> None:  # type: ignore[no-untyped-def]
    fake, client = server
    fake.fail["/markets"] = [503, 429]
    r = await client.market_by_slug("m7")
    assert [p for p, _ in fake.calls] == ["/markets"] * 3
    assert r.endpoint == "markets" and r.query == {"slug": ["m7"]}
    assert r.data[0]["slug"] == "m7" and r.body.startswith(b"[")
    (e,) = DECODER.decode(r.message(), 1)
    assert e.slug == "m7" and r.infos(1) == [e]


@pytest.mark.anyio
async def test_client_gives_up_after_retries_and_on_4xx(server) -> None:  # type: ignore[no-untyped-def]
    fake, client = server
    fake.fail["/markets"] = [500] * 10
    with pytest.raises(GammaError) as ei:
        await client.markets(slug="x")
    assert ei.value.status == 500 and len(fake.calls) == 4  # 1 + 3 retries
    fake.calls.clear()
    with pytest.raises(GammaError) as ei:
        await client.get("/gone")
    assert ei.value.status == 404 and len(fake.calls) == 1  # not retried


@pytest.mark.anyio
async def test_client_connection_error_is_retried_then_raised() -> None:
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    client = GammaClient("http://127.0.0.1:9", retries=2, backoff_s=0.1, max_backoff_s=0.15, sleep=fake_sleep,
                         rng=random.Random(3))  # fmt: skip
    try:
        with pytest.raises(GammaError):
            await client.get("/markets")
    finally:
        await client.close()
    assert len(sleeps) == 2 and 0.05 <= sleeps[0] <= 0.1 and 0.075 <= sleeps[1] <= 0.15  # jittered, capped


@pytest.mark.anyio
async def test_client_chunks_condition_and_token_ids(server) -> None:  # type: ignore[no-untyped-def]
    fake, client = server
    cids = [m["conditionId"] for m in fake.markets]
    resps = await client.markets_by_condition_ids(cids + cids[:5])  # duplicates dropped
    sizes = [len([v for k, v in q if k == "condition_ids"]) for _, q in fake.calls]
    assert sizes == [100, 100, 50]
    assert [dict(q)["limit"] for _, q in fake.calls] == ["100", "100", "50"]
    got = [i.market for r in resps for i in r.infos()]
    assert got == cids
    fake.calls.clear()
    toks = [json.loads(m["clobTokenIds"])[0] for m in fake.markets[:120]]
    resps = await client.markets_by_token_ids(toks)
    assert [len(q) - 1 for _, q in fake.calls] == [100, 20]
    assert sum(len(r.infos()) for r in resps) == 120


@pytest.mark.anyio
async def test_client_keyset_pagination(server) -> None:  # type: ignore[no-untyped-def]
    fake, client = server
    pages = [p async for p in client.events_keyset(closed=False, limit=2)]
    assert len(pages) == 3
    assert [dict(q).get("after_cursor") for _, q in fake.calls] == [None, "2", "4"]
    assert all(dict(q)["closed"] == "false" for _, q in fake.calls)
    assert [len(p.infos()) for p in pages] == [2, 2, 1]
    assert pages[1].query == {"closed": "false", "limit": "2", "after_cursor": "2"}
    fake.calls.clear()
    mpages = [p async for p in client.markets_keyset(max_pages=2)]  # this server never ends: bounded
    assert len(mpages) == 2 and len(fake.calls) == 2


@pytest.mark.anyio
async def test_client_clob_market(server) -> None:  # type: ignore[no-untyped-def]
    if not SAMPLES.is_dir():
        pytest.skip("samples not available")
    _, client = server
    r = await client.clob_market(BTC15_CID)
    (e,) = r.infos(4)
    assert r.endpoint == "clob-market" and e.market == BTC15_CID and e.fees is not None


@pytest.mark.anyio
async def test_resolve_markets(server) -> None:  # type: ignore[no-untyped-def]
    fake, client = server
    now = 1_791_241_200 * NS + 5 * NS
    infos, msgs = await resolve_markets(
        client,
        slugs=["m1", "m2"],
        condition_ids=[fake.markets[3]["conditionId"], fake.markets[1]["conditionId"]],
        series=["btc-updown-15m", "btc-updown-1h", "btc-up-or-down-5m"],
        neg_risk_events=True,
        now_ns=now,
        ts=9,
    )
    slugs = [i.slug for i in infos]
    assert slugs[:3] == ["m1", "m2", "m3"]
    assert slugs.count("m1") == 1 and slugs.count("m2") == 1  # deduplicated by condition id
    assert "btc-updown-15m-1791241200" in slugs and "btc-updown-15m-1791242100" in slugs
    assert "bitcoin-up-or-down-october-5-7pm-et" in slugs and "bitcoin-up-or-down-october-5-8pm-et" in slugs
    neg = [i for i in infos if i.event_slug.startswith("ev")]
    # the Gamma series slug was looked up (/series) then its events paged; neg-risk events only once
    assert any(p == "/series" for p, _ in fake.calls)
    assert {("series_id", "77")} <= {kv for p, q in fake.calls if p == "/events/keyset" for kv in q}
    assert all(i.ts == 9 for i in infos) and {i.event_slug for i in neg if i.neg_risk} >= {"ev0", "ev2", "ev4"}
    # every response is a journalable message that decodes to the same markets
    decoded = []
    for m in msgs:
        try:
            decoded += DECODER.decode(m, 9)
        except FrameError as exc:
            decoded += exc.events
    assert {i.market for i in infos} <= {d.market for d in decoded}
