"""adapters.odds.theoddsapi: price conversion, the odds.theoddsapi decoder (a real v4 response and
a synthetic one), credits and scheduling math, and OddsApiFeed against a loopback aiohttp server
with a fake monotonic clock (no real waiting). The API key must never leave the request."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgspec
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from adapters.odds import theoddsapi as oa
from adapters.odds.theoddsapi import (
    DECODER,
    SOURCE,
    OddsApiFeed,
    PollSchedule,
    american_to_decimal,
    budget_spacing_s,
    credits_per_call,
    decimal_from,
    decode_odds,
    guess_odds_format,
    odds_input,
)
from polybot.clock import LiveClock
from polybot.config import Config, SecretsConfig
from polybot.events import FeedConnected, FeedDisconnected, FeedStale, InputDropped, OddsQuote
from polybot.journal import JournalWriter
from polybot.kernel import FrameError, InboundRecord, Kernel
from sample_data import SAMPLES

NS = 1_000_000_000
REAL = SAMPLES / "sports_odds" / "theoddsapi_v4_odds_kevschroeder.json"
needs_real = pytest.mark.skipif(not REAL.is_file(), reason="sample not available")
KEY = "PLANTEDk3y0dd5ap1x9f2c7e4b1a6d8c0"  # planted: must appear nowhere but in the request


def ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()) * NS


def envelope(body: bytes | Any, fmt: str = "decimal", sport: str = "soccer_epl", **query: str) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    q = {"regions": "us", "markets": "h2h,spreads,totals", "oddsFormat": fmt, "dateFormat": "iso"} | query
    return odds_input(f"/v4/sports/{sport}/odds", q, raw)


# =============================================================================================
# prices
# =============================================================================================


@pytest.mark.parametrize(
    ("american", "decimal"),
    [(-160, 1.625), (115, 2.15), (100, 2.0), (-100, 2.0), (-110, float(Fraction(21, 11))), (250, 3.5), (-2000, 1.05),
     (850, 9.5), (-112.5, float(Fraction(2125, 1125))), (135.0, 2.35)],
)  # fmt: skip
def test_american_to_decimal(american: float, decimal: float) -> None:
    assert american_to_decimal(american) == decimal
    assert decimal_from(american, "american") == decimal


@pytest.mark.parametrize("bad", [99, -50, 0, 1.5, "120", None, True, float("nan"), float("inf"), 10**30])
def test_american_refuses_non_odds(bad: Any) -> None:
    with pytest.raises(ValueError, match="price"):
        american_to_decimal(bad)


@given(st.integers(min_value=100, max_value=1_000_000), st.booleans())
def test_american_exact_and_above_one(x: int, favourite: bool) -> None:
    a = -x if favourite else x
    exact = 1 + Fraction(100, x) if favourite else 1 + Fraction(x, 100)
    d = american_to_decimal(a)
    assert d == float(exact) and d > 1.0
    assert d <= 2.0 if favourite else d >= 2.0


def test_decimal_from() -> None:
    assert decimal_from(1.91, "decimal") == 1.91
    assert decimal_from(3, "decimal") == 3.0
    for bad in (1.0, 0.5, 0, -110, "1.9", None, False, float("nan")):
        with pytest.raises(ValueError, match="price"):
            decimal_from(bad, "decimal")
    with pytest.raises(ValueError, match="oddsFormat"):
        decimal_from(1.5, "fractional")


# =============================================================================================
# the decoder: a real response (american h2h, 28 events, 2024-03-27)
# =============================================================================================


@needs_real
def test_real_sample_decodes() -> None:
    body = REAL.read_bytes()
    data = json.loads(body)
    expected = sum(len(m["outcomes"]) for ev in data for b in ev["bookmakers"] for m in b["markets"])
    assert len(data) == 28 and expected == 380
    msg = envelope(body, "american", sport="upcoming", markets="h2h")
    quotes, bad = decode_odds(msg, 42)
    assert bad == [] and len(quotes) == expected
    assert all(isinstance(q, OddsQuote) and q.ts == 42 and q.feed == SOURCE and q.market == "h2h" for q in quotes)
    assert all(q.price > 1.0 and q.point is None for q in quotes)

    ev = [q for q in quotes if q.event_id == "493be33adaa7bfb70e7388afb4e1867e"]
    prices = {(q.bookmaker, q.outcome): q.price for q in ev}
    fav, dog = "Mississippi St Bulldogs", "Samford Bulldogs"
    assert prices == {
        ("betmgm", fav): 1.625, ("betmgm", dog): 2.15,  # -160, +115
        ("bovada", fav): float(1 + Fraction(100, 175)), ("bovada", dog): 2.35,  # -175, +135
        ("fanduel", fav): float(1 + Fraction(100, 172)), ("fanduel", dog): 2.28,  # -172, +128
    }  # fmt: skip
    first = ev[0]
    assert (first.sport, first.home, first.away) == ("baseball_ncaa", dog, fav)
    assert first.commence_ts == ns("2024-03-26T23:00:00Z") == 1_711_494_000 * NS
    assert {q.bookmaker: q.last_update_ts for q in ev} == {
        "betmgm": ns("2024-03-27T01:34:27Z"), "bovada": ns("2024-03-27T01:34:26Z"), "fanduel": ns("2024-03-27T01:34:26Z"),
    }  # fmt: skip

    # the bare body (a raw recording) decodes the same: all prices are integers >= 100 -> american
    assert guess_odds_format(data) == "american"
    assert decode_odds(body, 42) == (quotes, [])
    assert DECODER.bare_ts(body) == max(ns(b["last_update"]) for ev in data for b in ev["bookmakers"])
    assert DECODER(msg, 42) == quotes  # no drop: a plain list


# =============================================================================================
# the decoder: spreads, totals, draws, decimal odds (SYNTHETIC fixture, shaped like the v4 docs)
# =============================================================================================

#: SYNTHETIC: written for these tests after the documented v4 response shape, not a recording.
SYNTHETIC = [
    {
        "id": "synthetic-epl-1", "sport_key": "soccer_epl", "sport_title": "EPL",
        "commence_time": "2025-01-04T15:00:00Z", "home_team": "Arsenal", "away_team": "Chelsea",
        "bookmakers": [
            {"key": "pinnacle", "title": "Pinnacle", "last_update": "2025-01-04T14:55:10Z", "markets": [
                {"key": "h2h", "last_update": "2025-01-04T14:55:08Z", "outcomes": [
                    {"name": "Arsenal", "price": 1.95}, {"name": "Chelsea", "price": 4.1}, {"name": "Draw", "price": 3.6}]},
                {"key": "spreads", "last_update": "2025-01-04T14:55:09Z", "outcomes": [
                    {"name": "Arsenal", "price": 1.93, "point": -0.5}, {"name": "Chelsea", "price": 1.97, "point": 0.5}]},
                {"key": "totals", "outcomes": [  # no market last_update: the bookmaker's applies
                    {"name": "Over", "price": 1.88, "point": 2.5}, {"name": "Under", "price": 2.02, "point": 2.5}]},
            ]},
            {"key": "betfair_ex_uk", "title": "Betfair", "last_update": "2025-01-04T14:55:30Z", "markets": [
                {"key": "h2h_lay", "last_update": "2025-01-04T14:55:30Z", "outcomes": [
                    {"name": "Arsenal", "price": 1.97}, {"name": "Chelsea", "price": 4.3}, {"name": "Draw", "price": 3.75}]},
            ]},
        ],
    },
    {
        "id": "synthetic-nba-1", "sport_key": "basketball_nba", "sport_title": "NBA",
        "commence_time": "2025-01-05T00:30:00Z", "home_team": "Boston Celtics", "away_team": "Denver Nuggets",
        "bookmakers": [
            {"key": "draftkings", "title": "DraftKings", "last_update": "2025-01-04T23:59:00Z", "markets": [
                {"key": "spreads", "last_update": "2025-01-04T23:58:00Z", "outcomes": [
                    {"name": "Boston Celtics", "price": 1.91, "point": -5.5},
                    {"name": "Denver Nuggets", "price": 1.91, "point": 5.5}]},
                {"key": "player_points", "last_update": "2025-01-04T23:58:30Z", "outcomes": [
                    {"name": "Over", "description": "Jayson Tatum", "price": 1.87, "point": 27.5}]},
            ]},
        ],
    },
]  # fmt: skip


def test_synthetic_spreads_totals_decimal() -> None:
    quotes, bad = decode_odds(envelope(SYNTHETIC), 7)
    assert bad == []
    got = {(q.event_id, q.bookmaker, q.market, q.outcome): (q.price, q.point, q.last_update_ts) for q in quotes}
    e, n = "synthetic-epl-1", "synthetic-nba-1"
    assert got == {
        (e, "pinnacle", "h2h", "Arsenal"): (1.95, None, ns("2025-01-04T14:55:08Z")),
        (e, "pinnacle", "h2h", "Chelsea"): (4.1, None, ns("2025-01-04T14:55:08Z")),
        (e, "pinnacle", "h2h", "Draw"): (3.6, None, ns("2025-01-04T14:55:08Z")),
        (e, "pinnacle", "spreads", "Arsenal"): (1.93, -0.5, ns("2025-01-04T14:55:09Z")),
        (e, "pinnacle", "spreads", "Chelsea"): (1.97, 0.5, ns("2025-01-04T14:55:09Z")),
        (e, "pinnacle", "totals", "Over"): (1.88, 2.5, ns("2025-01-04T14:55:10Z")),
        (e, "pinnacle", "totals", "Under"): (2.02, 2.5, ns("2025-01-04T14:55:10Z")),
        (e, "betfair_ex_uk", "h2h_lay", "Arsenal"): (1.97, None, ns("2025-01-04T14:55:30Z")),
        (e, "betfair_ex_uk", "h2h_lay", "Chelsea"): (4.3, None, ns("2025-01-04T14:55:30Z")),
        (e, "betfair_ex_uk", "h2h_lay", "Draw"): (3.75, None, ns("2025-01-04T14:55:30Z")),
        (n, "draftkings", "spreads", "Boston Celtics"): (1.91, -5.5, ns("2025-01-04T23:58:00Z")),
        (n, "draftkings", "spreads", "Denver Nuggets"): (1.91, 5.5, ns("2025-01-04T23:58:00Z")),
        (n, "draftkings", "player_points", "Over (Jayson Tatum)"): (1.87, 27.5, ns("2025-01-04T23:58:30Z")),
    }  # fmt: skip
    nba = [q for q in quotes if q.event_id == n][0]
    assert (nba.sport, nba.home, nba.away, nba.commence_ts) == ("basketball_nba", "Boston Celtics", "Denver Nuggets",
                                                                ns("2025-01-05T00:30:00Z"))  # fmt: skip
    # a bare decimal body: fractional prices -> decimal
    assert decode_odds(json.dumps(SYNTHETIC).encode(), 7) == (quotes, [])
    # one event (the /events/{id}/odds shape) and a historical snapshot ({"data": [...]})
    one = odds_input("/v4/sports/soccer_epl/events/synthetic-epl-1/odds", {"oddsFormat": "decimal"},
                     json.dumps(SYNTHETIC[0]).encode())  # fmt: skip
    assert len(DECODER(one, 7)) == 10
    hist = odds_input("/v4/historical/sports/soccer_epl/odds", {"oddsFormat": "decimal"},
                      json.dumps({"timestamp": "2025-01-04T14:55:00Z", "data": SYNTHETIC}).encode())  # fmt: skip
    assert DECODER(hist, 7) == quotes


def test_bare_body_format_heuristic() -> None:
    def body(*prices: Any) -> list[dict[str, Any]]:
        outs = [{"name": f"o{i}", "price": p} for i, p in enumerate(prices)]
        return [{"id": "e", "bookmakers": [{"key": "b", "markets": [{"key": "h2h", "outcomes": outs}]}]}]

    assert guess_odds_format(body(-150, 130)) == "american"
    assert guess_odds_format(body(-150.0, 130.0)) == "american"  # re-encoded integers
    assert guess_odds_format(body(1.5, 101)) == "decimal"  # a 101.0 longshot among fractional prices
    assert guess_odds_format(body(2, 3)) == "decimal"
    assert guess_odds_format(body(-150, 50)) == "american"  # one bad value does not flip the body
    quotes, bad = decode_odds(json.dumps(body(-150, 50, 120)).encode(), 1)
    assert [q.price for q in quotes] == [float(Fraction(5, 3)), 2.2] and len(bad) == 1 and "o1" in bad[0]
    assert guess_odds_format([]) == "decimal"


def test_bad_values_counted_by_the_kernel_good_quotes_published() -> None:
    ev = json.loads(json.dumps(SYNTHETIC[0]))
    h2h, spreads, totals = ev["bookmakers"][0]["markets"]
    h2h["outcomes"] += [{"name": "Void1", "price": 1.0}, {"name": "Void2", "price": 0},
                        {"name": "Void3", "price": "2.5"}, {"name": "Void4", "price": None},
                        {"name": "Void5", "price": True}, {"name": "Void6"}]  # fmt: skip
    del spreads["outcomes"][0]["point"]  # a spread without its line
    totals["outcomes"][0]["point"] = "2.5"
    ev["bookmakers"].append({"key": "", "markets": []})
    ev["bookmakers"].append({"key": "weird", "last_update": "yesterday", "markets": [
        {"key": "h2h", "outcomes": [{"name": "Arsenal", "price": 2.0}]}]})  # fmt: skip
    bad_event = {"id": "x2", "commence_time": "soon", "bookmakers": []}
    msg = envelope([ev, "not an event", bad_event])

    with pytest.raises(FrameError) as info:
        DECODER(msg, 1)
    assert info.value.reason == "bad_value" and len(info.value.events) == 3 + 1 + 1 + 3

    k = Kernel()
    k.add_decoder(SOURCE, DECODER)
    quotes: list[OddsQuote] = []
    drops: list[InputDropped] = []
    k.bus.subscribe(OddsQuote, quotes.append)
    k.bus.subscribe(InputDropped, drops.append)
    k.process(5 * NS, SOURCE, msg)
    assert k.stats.inputs == 1 and k.stats.dropped == 1
    assert k.stats.drop_reasons == {f"{SOURCE}:bad_value": 1}
    assert len(drops) == 1 and "bad odds value" in drops[0].detail
    assert sorted((q.market, q.outcome) for q in quotes) == [
        ("h2h", "Arsenal"), ("h2h", "Chelsea"), ("h2h", "Draw"), ("h2h_lay", "Arsenal"), ("h2h_lay", "Chelsea"),
        ("h2h_lay", "Draw"), ("spreads", "Chelsea"), ("totals", "Under")]  # fmt: skip
    assert all(q.ts == 5 * NS for q in quotes)

    # not an odds message at all: counted and dropped, never raised
    k.process(6 * NS, SOURCE, odds_input("/v4/sports/x/odds", {}, b'{"message": "quota"}'))
    k.process(7 * NS, SOURCE, envelope([], "fractional"))
    k.process(8 * NS, SOURCE, b'{"endpoint": "/v4/sports", "query": {}, "body": []}')
    k.process(9 * NS, SOURCE, b"not json")
    assert k.stats.dropped == 5 and len(quotes) == 8


def test_odds_input_keeps_body_drops_key() -> None:
    body = b'[{"id":"a",  "bookmakers":[]}]'
    msg = odds_input("/v4/sports/basketball_nba/odds", {"apiKey": KEY, "APIKEY": KEY, "api_key": KEY, "regions": "us"}, body)
    assert KEY.encode() not in msg
    assert body in msg  # embedded untouched, whitespace included
    assert json.loads(msg)["query"] == {"regions": "us"}
    assert json.loads(odds_input("/v4/sports/x/odds", None, b"<html>oops"))["body"] == "<html>oops"
    with pytest.raises(ValueError, match="endpoint"):
        odds_input("/v4/sports", {}, b"[]")


# =============================================================================================
# credits and scheduling math
# =============================================================================================


def test_credits_and_spacing() -> None:
    assert credits_per_call(["h2h"], ["us"]) == 1
    assert credits_per_call(["h2h", "spreads", "totals"], ["us", "uk"]) == 6
    assert credits_per_call(["h2h", "totals"], ["us"], [f"b{i}" for i in range(10)]) == 2
    assert credits_per_call(["h2h", "totals"], ["us", "eu"], [f"b{i}" for i in range(11)]) == 4
    assert budget_spacing_s(1, 500) == 172.8
    assert budget_spacing_s(6, 500) == pytest.approx(1036.8)
    with pytest.raises(ValueError):
        budget_spacing_s(1, 0)
    f = OddsApiFeed("o", {"sports": ["basketball_nba"], "markets": ["h2h", "spreads", "totals"],
                          "regions": ["us", "uk"], "budget_per_day": 8640})  # fmt: skip
    assert (f.cost, f.spacing_s) == (6, 60.0)
    assert f.query == {"regions": "us,uk", "markets": "h2h,spreads,totals", "oddsFormat": "decimal", "dateFormat": "iso"}
    g = OddsApiFeed("o", {"sports": ["x"], "bookmakers": ["pinnacle", "fanduel"], "event_ids": ["e1", "e2"],
                          "odds_format": "american"})  # fmt: skip
    assert g.cost == 1 and g.query == {"bookmakers": "pinnacle,fanduel", "markets": "h2h", "oddsFormat": "american",
                                       "dateFormat": "iso", "eventIds": "e1,e2"}  # fmt: skip


def test_poll_schedule_round_robin_interval_and_budget() -> None:
    s = PollSchedule(["a", "b", "c"], interval_s=60.0, spacing_s=10.0)
    s.start(0.0)
    t = 0.0
    seen = []
    for _ in range(7):
        sport, at = s.next()
        t = max(t, at)
        seen.append((sport, t))
        s.requested(sport, t, ok=True)
    # the budget spaces any two requests by 10 s; each sport waits 60 s after its poll
    assert seen == [("a", 0), ("b", 10), ("c", 20), ("a", 60), ("b", 70), ("c", 80), ("a", 120)]

    # one sport: max(interval, budget spacing)
    one = PollSchedule(["a"], interval_s=60.0, spacing_s=172.8)
    one.start(0.0)
    one.requested("a", 0.0, ok=True)
    assert one.next() == ("a", 172.8)

    # a failed poll keeps its sport due but lets the other due sport go first (no starvation)
    s = PollSchedule(["a", "b"], interval_s=60.0, spacing_s=1.0)
    s.start(0.0)
    s.requested("a", 0.0, ok=False)
    s.hold(5.0)
    assert s.next() == ("b", 5.0)
    s.requested("b", 5.0, ok=True)
    assert s.next() == ("a", 6.0)
    s.remove("a")
    assert s.next() == ("b", 65.0)
    s.remove("b")
    with pytest.raises(LookupError):
        s.next()


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="sports"):
        OddsApiFeed("o", {})
    with pytest.raises(ValueError, match=r"sports\[0\]"):
        OddsApiFeed("o", {"sports": ["nba/../x"]})
    with pytest.raises(ValueError, match="markets"):
        OddsApiFeed("o", {"sports": ["x"], "markets": []})
    with pytest.raises(ValueError, match="budget_per_day"):
        OddsApiFeed("o", {"sports": ["x"], "budget_per_day": 0})
    with pytest.raises(ValueError, match="odds_format"):
        OddsApiFeed("o", {"sports": ["x"], "odds_format": "fractional"})
    with pytest.raises(ValueError, match="base_url"):
        OddsApiFeed("o", {"sports": ["x"], "base_url": "ftp://x"})
    with pytest.raises(ValueError, match="odds_api_key"):
        OddsApiFeed("o", {"sports": ["x"]}, api_key="  ")


def test_configure_reads_the_key(tmp_path: Path) -> None:
    f = OddsApiFeed("o", {"sports": ["x"]})
    with pytest.raises(ValueError) as info:
        f.configure(Config(), env={})
    assert "odds_api_key: missing" in str(info.value) and "POLYBOT_ODDS_API_KEY" in str(info.value)
    f.configure(Config(), env={"POLYBOT_ODDS_API_KEY": KEY})
    assert f.has_api_key and KEY not in repr(f.stats) + repr(f.params)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'odds_api_key = "{KEY}"\n')
    os.chmod(secrets, 0o600)
    g = OddsApiFeed("o", {"sports": ["x"], "api_key_env": "MY_ODDS_KEY"})
    g.configure(Config(secrets=SecretsConfig(file=str(secrets))), env={})
    assert g.has_api_key
    h = OddsApiFeed("o", {"sports": ["x"], "api_key_env": "MY_ODDS_KEY"})
    h.configure(Config(), env={"MY_ODDS_KEY": KEY})
    assert h.has_api_key
    with pytest.raises(ValueError, match="MY_ODDS_KEY"):
        OddsApiFeed("o", {"sports": ["x"], "api_key_env": "MY_ODDS_KEY"}).configure(Config(), env={})


# =============================================================================================
# the feed against a loopback server, on a fake monotonic clock
# =============================================================================================

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeTime:
    """A monotonic clock that sleeping advances (no real waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, d: float) -> None:
        self.sleeps.append(d)
        self.now += max(0.0, d)
        await anyio.sleep(0)


Reply = tuple[int, Any, dict[str, str]]


class FakeOddsApi:
    """GET /v4/sports/{sport}/odds with usage headers; ``script`` answers first, in order."""

    def __init__(self, clock: FakeTime, remaining: int = 500) -> None:
        self.clock = clock
        self.remaining = remaining
        self.used = 0
        self.script: list[Reply | Callable[[str], Reply]] = []
        self.requests: list[tuple[float, str, dict[str, str]]] = []
        self.bodies: list[bytes] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v4/sports/{sport}/odds", self._odds)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def body(self, sport: str) -> bytes:
        ev = json.loads(json.dumps(SYNTHETIC[1]))
        ev["sport_key"] = sport
        ev["id"] = f"{sport}-{len(self.requests)}"
        return json.dumps([ev], indent=1).encode()  # pretty-printed: the journal must cope

    async def _odds(self, request: web.Request) -> web.Response:
        sport = request.match_info["sport"]
        q = dict(request.query)
        self.requests.append((self.clock.now, sport, q))
        if self.script:
            step = self.script.pop(0)
            status, body, headers = step(sport) if callable(step) else step
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            return web.Response(status=status, body=raw, headers=headers, content_type="application/json")
        cost = len(q["markets"].split(",")) * len(q.get("regions", "us").split(","))
        self.remaining -= cost
        self.used += cost
        body = self.body(sport)
        self.bodies.append(body)
        headers = {"x-requests-remaining": str(self.remaining), "x-requests-used": str(self.used),
                   "x-requests-last": str(cost)}  # fmt: skip
        return web.Response(body=body, headers=headers, content_type="application/json")


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def api(fake_time: FakeTime) -> Any:
    s = FakeOddsApi(fake_time)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
def logs() -> Any:
    lines: list[str] = []
    sid = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {name} {message} {extra}",
                     diagnose=True, backtrace=True)  # fmt: skip
    yield lines
    logger.remove(sid)


def make_feed(api: FakeOddsApi, clock: FakeTime, **kw: Any) -> OddsApiFeed:
    params = {"sports": ["basketball_nba"], "base_url": api.url, "interval_s": 60, "budget_per_day": 8640,
              "backoff_initial_s": 2, "backoff_max_s": 16, "stale_s": 600, "timeout_s": 2} | kw  # fmt: skip
    return OddsApiFeed("odds", params, api_key=KEY, sleep=clock.sleep, monotonic=clock.monotonic)


async def run_feed(feed: OddsApiFeed, stop: Callable[[list[InboundRecord]], bool] | None = None,
                   timeout: float = 5.0) -> tuple[list[InboundRecord], bool]:  # fmt: skip
    """Run the feed until it returns (-> True, every record drained) or ``stop(records)`` holds
    (-> False; checked as records arrive and every few ms)."""
    send, recv = anyio.create_memory_object_stream[InboundRecord](1000)
    got: list[InboundRecord] = []
    returned = anyio.Event()
    drained = anyio.Event()

    async def feed_task() -> None:
        await feed.run(send, LiveClock())
        returned.set()

    async def drain() -> None:
        async with recv:
            async for rec in recv:
                got.append(rec)
                if stop is not None and stop(got):
                    tg.cancel_scope.cancel()
        drained.set()

    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed_task)
            tg.start_soon(drain)
            while not drained.is_set() and not (stop is not None and stop(got)):
                await anyio.sleep(0.002)
            tg.cancel_scope.cancel()
    return got, returned.is_set()


def health(got: list[InboundRecord]) -> list[Any]:
    return [r.msg for r in got if r.source == "events"]


def polls(got: list[InboundRecord]) -> list[InboundRecord]:
    return [r for r in got if r.source == SOURCE]


def connected(got: list[InboundRecord]) -> bool:
    return any(isinstance(h, FeedConnected) for h in health(got))


def everything(got: list[InboundRecord], feed: OddsApiFeed, logs: list[str], extra: str = "") -> str:
    parts = [repr(r) for r in got] + [r.msg.decode() if isinstance(r.msg, bytes) else repr(r.msg) for r in got]
    return "\n".join(parts + logs + [repr(feed.stats), repr(feed.params), repr(feed), extra])


@pytest.mark.anyio
async def test_feed_polls_journals_envelope_without_key(api: FakeOddsApi, fake_time: FakeTime, logs: list[str],
                                                        tmp_path: Path) -> None:  # fmt: skip
    feed = make_feed(api, fake_time, sports=["basketball_nba", "icehockey_nhl"], markets=["h2h", "spreads"],
                     interval_s=60, budget_per_day=8640)  # cost 2 -> any two requests >= 20 s apart  # fmt: skip
    assert (feed.cost, feed.spacing_s) == (2, 20.0)
    got, returned = await run_feed(feed, lambda g: len(polls(g)) >= 5)
    assert not returned
    # every request carried the key; the schedule: budget spacing 20 s, each sport every 60 s
    assert all(q["apiKey"] == KEY for _, _, q in api.requests)
    t0 = api.requests[0][0]
    assert [(t - t0, s) for t, s, _ in api.requests[:5]] == [
        (0, "basketball_nba"), (20, "icehockey_nhl"), (60, "basketball_nba"), (80, "icehockey_nhl"), (120, "basketball_nba")]
    # the envelope: the query without the key, the body untouched
    recs = polls(got)
    for rec, body, (_, sport, _) in zip(recs, api.bodies, api.requests):
        env = json.loads(rec.msg)
        assert env["endpoint"] == f"/v4/sports/{sport}/odds"
        assert env["query"] == {"regions": "us", "markets": "h2h,spreads", "oddsFormat": "decimal", "dateFormat": "iso"}
        assert body.strip() in rec.msg
        assert isinstance(rec.ts, int) and rec.ts > 1_600_000_000 * NS
    # usage headers tracked; one FeedConnected (first success)
    n = feed.stats["requests"]
    assert feed.stats["polls"] == 5 and n in (5, 6)  # a sixth may have been under way at the stop
    assert feed.stats["credits_used"] == 2 * n and feed.stats["last_cost"] == 2
    assert feed.stats["remaining"] == 500 - 2 * n and feed.stats["used"] == 2 * n
    hs = health(got)
    assert [type(h) for h in hs] == [FeedConnected] and hs[0].feed == "odds"

    # journaled through the kernel: quotes published, the key nowhere in the journal text
    path = tmp_path / "journal.jsonl"
    k = Kernel(journal=JournalWriter(path, fsync="never"))
    k.add_decoder(SOURCE, DECODER)
    quotes: list[OddsQuote] = []
    k.bus.subscribe(OddsQuote, quotes.append)
    for r in got:
        k.process(r.ts, r.source, r.msg)
    k.journal.close()  # type: ignore[union-attr]
    text = path.read_text()
    assert len(quotes) == 5 * 3 and k.stats.dropped == 0
    assert text.count(f'"source":"{SOURCE}"') == 5 and "feed_connected" in text
    assert KEY not in text
    assert KEY not in everything(got, feed, logs)
    assert any("polling 2 sport(s)" in line for line in logs)


@pytest.mark.anyio
async def test_feed_backs_off_on_429_and_5xx_then_recovers(api: FakeOddsApi, fake_time: FakeTime,
                                                           logs: list[str]) -> None:  # fmt: skip
    api.script = [(429, {"message": "Too many requests"}, {"Retry-After": "7"}),
                  (503, f"upstream hiccup for apiKey={KEY}".encode(), {}),  # an error echoing the key
                  (500, b"", {})]  # fmt: skip
    feed = make_feed(api, fake_time, budget_per_day=864_000)  # budget spacing 0.1 s: the backoff rules
    got, _ = await run_feed(feed, connected)
    times = [t for t, _, _ in api.requests]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == 4
    assert gaps[0] >= 7  # Retry-After honoured (backoff 2 s: 1-2 s otherwise)
    assert 2 <= gaps[1] <= 4 and 4 <= gaps[2] <= 8  # exponential, with jitter
    assert feed.stats["errors"] == {"rate_limited": 1, "server": 2}
    hs = health(got)
    assert [type(h) for h in hs] == [FeedDisconnected, FeedConnected]  # one per transition
    assert "rate_limited" in hs[0].detail
    assert KEY not in everything(got, feed, logs)
    assert any("server" in line and "***" in line for line in logs)  # the echoed key was scrubbed


@pytest.mark.anyio
async def test_feed_401_stops(api: FakeOddsApi, fake_time: FakeTime, logs: list[str]) -> None:
    api.script = [(401, {"message": f"API key {KEY} is not valid", "error_code": "INVALID_KEY"}, {})]
    feed = make_feed(api, fake_time)
    got, returned = await run_feed(feed)
    assert returned and len(api.requests) == 1 and feed.stats["stopped"] == "unauthorized"
    hs = health(got)
    assert [type(h) for h in hs] == [FeedDisconnected] and "unauthorized" in hs[0].detail
    assert "INVALID_KEY" in hs[0].detail and "***" in hs[0].detail
    assert any(line.startswith("ERROR") and "401" in line and "quota" in line for line in logs)
    assert KEY not in everything(got, feed, logs)


@pytest.mark.anyio
async def test_feed_stops_at_min_remaining(api: FakeOddsApi, fake_time: FakeTime, logs: list[str]) -> None:
    api.remaining = 13  # calls of cost 1 leave 12, 11, then 10 = min_remaining: one more would go below
    feed = make_feed(api, fake_time, min_remaining=10, interval_s=1, budget_per_day=86400)
    got, returned = await run_feed(feed)
    assert returned and feed.stats["stopped"] == "quota"
    assert len(api.requests) == 3 and len(polls(got)) == 3  # the last poll is still journaled
    assert feed.stats["remaining"] == 10
    hs = health(got)
    assert [type(h) for h in hs] == [FeedConnected, FeedStale] and hs[-1].detail == "quota"
    assert sum("quota" in line and line.startswith("ERROR") for line in logs) == 1


@pytest.mark.anyio
async def test_feed_reports_stale_and_recovers(api: FakeOddsApi, fake_time: FakeTime) -> None:
    api.script = [(500, b"oops", {})] * 6
    feed = make_feed(api, fake_time, stale_s=30, backoff_initial_s=4, backoff_max_s=8)
    got, _ = await run_feed(feed, connected)
    hs = health(got)
    assert [type(h) for h in hs] == [FeedDisconnected, FeedStale, FeedConnected]
    assert hs[1].detail.startswith("no successful poll for") and hs[1].age_ns >= 30 * NS
    assert feed.stats["stale"] == 1 and feed.stats["errors"]["server"] == 6


@pytest.mark.anyio
async def test_feed_drops_a_refused_sport_and_keeps_the_others(api: FakeOddsApi, fake_time: FakeTime) -> None:
    api.script = [(422, {"message": "Invalid sport"}, {})]
    feed = make_feed(api, fake_time, sports=["bad_sport", "basketball_nba"], budget_per_day=86400)
    got, _ = await run_feed(feed, lambda g: len(polls(g)) >= 2)
    assert [s for _, s, _ in api.requests] == ["bad_sport", "basketball_nba", "basketball_nba"]
    assert feed.stats["dropped_sports"] == ["bad_sport"] and feed.stats["errors"] == {"bad_request": 1}

    api.script = [(404, {"message": "Unknown sport"}, {})]
    alone = make_feed(api, fake_time, sports=["bad_sport"])
    got, returned = await run_feed(alone)
    assert returned and alone.stats["stopped"] == "no_sports"
    assert [type(h) for h in health(got)] == [FeedDisconnected]


@pytest.mark.anyio
async def test_feed_transport_errors_and_timeouts_do_not_kill_it(fake_time: FakeTime, logs: list[str]) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there: connection refused
    feed = OddsApiFeed("odds", {"sports": ["x"], "base_url": f"http://127.0.0.1:{port}", "backoff_initial_s": 1},
                       api_key=KEY, sleep=fake_time.sleep, monotonic=fake_time.monotonic)  # fmt: skip
    got, returned = await run_feed(feed, lambda g: feed.stats["requests"] >= 3)
    assert not returned and feed.stats["errors"]["transport"] >= 2
    hs = health(got)  # the fake clock runs ahead: a FeedStale may follow (600 s without a success)
    assert type(hs[0]) is FeedDisconnected and "transport" in hs[0].detail and not connected(got)
    assert KEY not in everything(got, feed, logs)


@pytest.mark.anyio
async def test_feed_timeout(fake_time: FakeTime, logs: list[str]) -> None:
    async def slow(request: web.Request) -> web.Response:
        await anyio.sleep(1.0)
        return web.Response(body=b"[]")

    app = web.Application()
    app.router.add_get("/v4/sports/{sport}/odds", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        feed = OddsApiFeed("odds", {"sports": ["x"], "base_url": f"http://127.0.0.1:{port}", "timeout_s": 0.05},
                           api_key=KEY, sleep=fake_time.sleep, monotonic=fake_time.monotonic)  # fmt: skip
        got, _ = await run_feed(feed, lambda g: feed.stats["requests"] >= 2)
        assert feed.stats["errors"]["timeout"] >= 1
        assert KEY not in everything(got, feed, logs)
    finally:
        await runner.cleanup()


@pytest.mark.anyio
async def test_feed_ends_cleanly_when_the_door_closes(api: FakeOddsApi, fake_time: FakeTime, logs: list[str]) -> None:
    feed = make_feed(api, fake_time)
    send, recv = anyio.create_memory_object_stream[InboundRecord](10)
    recv.close()
    with anyio.fail_after(3):
        await feed.run(send, LiveClock())  # returns, no exception
    assert any("input stream is closed" in line for line in logs)


@pytest.mark.anyio
async def test_feed_without_key_does_not_poll(api: FakeOddsApi, fake_time: FakeTime, monkeypatch: Any) -> None:
    monkeypatch.delenv("POLYBOT_ODDS_API_KEY", raising=False)
    feed = OddsApiFeed("odds", {"sports": ["x"], "base_url": api.url}, sleep=fake_time.sleep,
                       monotonic=fake_time.monotonic)  # fmt: skip
    got, returned = await run_feed(feed)
    assert returned and api.requests == [] and feed.stats["stopped"] == "no_key"
    assert [type(h) for h in health(got)] == [FeedDisconnected]


def test_decoded_events_round_trip_through_the_event_codec() -> None:
    from polybot.events import DECODER as EVENTS, ENCODER

    quotes, _ = decode_odds(envelope(SYNTHETIC), 3)
    assert [EVENTS.decode(ENCODER.encode(q)) for q in quotes] == quotes
    assert msgspec.json.decode(oa.odds_input("/v4/sports/x/odds", {}, b"[]")) == {
        "endpoint": "/v4/sports/x/odds", "query": {}, "body": []}  # fmt: skip


def test_daemon_builds_the_feed_and_reads_the_key(tmp_path: Path, monkeypatch: Any) -> None:
    from polybot.config import ConfigError, parse_config
    from polybot.daemon import build_feeds

    table = {"feeds": [{"kind": "adapters.odds.theoddsapi:OddsApiFeed", "name": "odds",
                        "params": {"sports": ["basketball_nba"], "markets": ["h2h", "totals"]}}]}  # fmt: skip
    monkeypatch.delenv("POLYBOT_ODDS_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="odds_api_key: missing.*POLYBOT_ODDS_API_KEY"):
        build_feeds(parse_config(table, "cfg.toml"))
    monkeypatch.setenv("POLYBOT_ODDS_API_KEY", KEY)
    (feed,) = build_feeds(parse_config(table, "cfg.toml"))
    assert isinstance(feed, OddsApiFeed) and feed.has_api_key and feed.cost == 2
    bad = {"feeds": [{"kind": "adapters.odds.theoddsapi:OddsApiFeed", "params": {"sports": ["x"], "regionz": ["us"]}}]}
    with pytest.raises(ConfigError, match="regionz"):
        build_feeds(parse_config(bad, "cfg.toml"))


def test_demo_key_only_for_a_loopback_simulator() -> None:
    from polybot.config import parse_config

    feed = OddsApiFeed("odds", {"sports": ["basketball_nba"], "base_url": "http://127.0.0.1:8765", "demo_key": "demo"})
    feed.configure(parse_config({}), env={})
    assert feed._key == "demo"
    with pytest.raises(ValueError, match="demo_key"):
        OddsApiFeed("odds", {"sports": ["basketball_nba"], "demo_key": "demo"})
