"""The simulator's live game (adapters/polymarket/simsports.py): score feed, odds, lagging market.

Everything runs on loopback with ``autostart=False`` and a clock the test moves; the game advances
only through ``server.sports_tick()``. Market-channel frames are checked by the independent
reference client of tests/test_sim.py (every hash recomputed); the delayed-matching test signs
its orders with py-clob-client-v2 through the helpers of tests/test_simexchange.py.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import signal
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.polymarket.sim import SimConfig, SimServer
from adapters.polymarket.simfeed import SimFeed
from adapters.polymarket.simsports import LEAGUES, SimGame, stern_probability
from proc_helpers import CLI
from test_sim import RefClient, recv_text, sub_msg, sync

pytestmark = pytest.mark.anyio

T0 = 1_790_000_000_000_000_000
NS = 1_000_000_000
LAG = 3 * NS
FEED_KEYS = ["gameId", "leagueAbbreviation", "slug", "homeTeam", "awayTeam", "status", "score", "period", "elapsed",
             "live", "ended"]  # fmt: skip
SCHEDULED_KEYS = ["gameId", "leagueAbbreviation", "slug", "homeTeam", "awayTeam", "status", "score", "live", "ended"]
FINAL_KEYS = ["gameId", "leagueAbbreviation", "slug", "homeTeam", "awayTeam", "status", "score", "period", "live",
              "ended", "finishedTimestamp"]  # fmt: skip
ODDS_SAMPLE = Path("/work/shared/samples/sports_odds/theoddsapi_v4_odds_kevschroeder.json")
MONEYLINE_SAMPLE = Path("/work/shared/samples/nautilus/rs_gamma_market_sports_market_money_line.json")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    """A clock the test moves (ns)."""

    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def scfg(clock: Clock, **kw: Any) -> SimConfig:
    base: dict[str, Any] = {"autostart": False, "seed": 2, "n_markets": 0, "clock": clock, "sports": True}
    base.update(kw)
    return SimConfig(**base)


def game(server: SimServer) -> dict[str, Any]:
    assert server.sports is not None
    return server.sports.state()["games"][-1]


def mid(server: SimServer) -> Decimal:
    g = game(server)
    return (Decimal(g["best_bid"]) + Decimal(g["best_ask"])) / 2


def tick_of(server: SimServer) -> Decimal:
    return Decimal(server.state()["assets"][game(server)["home_token"]]["tick_size"])


def to_update(server: SimServer, clock: Clock) -> None:
    """Move the clock to the game's next feed update and process it."""
    assert server.sports is not None
    nxt = server.sports.next_update_ns()
    assert nxt is not None
    clock.t = nxt
    server.sports_tick()


def finish(server: SimServer, clock: Clock) -> None:
    """Play the game to its end and past the resolution."""
    assert server.sports is not None
    while server.sports.next_update_ns() is not None:
        to_update(server, clock)
    clock.t += LAG + NS
    server.sports_tick()


async def get(http: aiohttp.ClientSession, url: str, **params: Any) -> tuple[int, Any, Any]:
    async with http.get(url, params=params or None) as r:
        return r.status, await r.json(content_type=None), r.headers


async def feed_frames(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        t = await recv_text(ws)
        if t != "ping":
            out.append(json.loads(t))
    return out


def devig_home(book: dict[str, Any], home: str) -> float:
    """The home team's probability a decimal-odds h2h quote implies, margin removed."""
    inv = {o["name"]: 1 / o["price"] for o in book["markets"][0]["outcomes"]}
    return inv[home] / sum(inv.values())


# ---------------------------------------------------------------------------------------------
# the game model


def test_model_is_stern_and_seeded() -> None:
    g = SimGame(seed=1, index=0, p0=0.6)
    lg = LEAGUES["nba"]
    assert g.regulation_s == 2880 and g.sigma == 12.0 and g.probability() == pytest.approx(0.6)
    assert stern_probability(0, 1.0, g.mu, 12.0) == pytest.approx(0.6)
    assert stern_probability(5, 0.0, g.mu, 12.0) == 1.0 and stern_probability(-1, 0.0, g.mu, 12.0) == 0.0
    g.start()
    seen = []
    while not g.ended:
        u = g.step()
        seen.append(u)
        if u.kind == "score":
            assert u.points in (2, 3) and u.side in ("home", "away")
            lead, tau = g.lead, g.tau()
            assert g.probability() == pytest.approx(stern_probability(lead, tau, g.mu, g.sigma))
    assert g.home != g.away and [u.kind for u in seen].count("period") >= lg.periods - 1
    g2 = SimGame(seed=1, index=0, p0=0.6)
    g2.start()
    while not g2.ended:
        g2.step()
    assert (g2.home, g2.away) == (g.home, g.away)


# ---------------------------------------------------------------------------------------------
# the score feed


async def test_score_feed_frames() -> None:
    clk = Clock()
    async with SimServer(scfg(clk)) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.sports_ws_url)
        first = json.loads(await recv_text(ws))  # the current state, once, on connect
        assert list(first) == SCHEDULED_KEYS and first["status"] == "Scheduled" and first["score"] == "0-0"
        assert first["live"] is False and first["ended"] is False and isinstance(first["gameId"], int)
        assert first["homeTeam"] == "BOS" and first["awayTeam"] == "LAL" and first["leagueAbbreviation"] == "nba"
        assert re.fullmatch(r"nba-bos-lal-\d{4}-\d{2}-\d{2}", first["slug"])
        assert game(server)["tip"] == "2026-09-21T14:13:25Z"  # pregame_s (5 s) after the start (T0)
        n = 0
        while server.sports is not None and server.sports.next_update_ns() is not None:
            to_update(server, clk)
            n += 1
        frames = await feed_frames(ws, n)
        live, final = frames[:-1], frames[-1]
        assert live[0]["status"] == "InProgress" and live[0]["score"] == "0-0" and live[0]["period"] == "Q1"
        prev = (0, 0)
        periods = []
        for f in live:
            assert list(f) == FEED_KEYS and f["gameId"] == first["gameId"] and f["slug"] == first["slug"]
            assert f["live"] is True and f["ended"] is False
            assert re.fullmatch(r"\d{1,2}:\d{2}", f["elapsed"]) and f["period"] in ("Q1", "Q2", "Q3", "Q4", "OT", "2OT")
            h, a = map(int, f["score"].split("-"))
            d = (h - prev[0], a - prev[1])
            assert d in ((0, 0), (2, 0), (3, 0), (0, 2), (0, 3)), (prev, f["score"])
            if d == (0, 0) and f is not live[0]:  # a period change
                assert f["elapsed"] == "0:00" and f["period"] != periods[-1]
            periods.append(f["period"])
            prev = (h, a)
        assert periods[0] == "Q1" and {"Q2", "Q3", "Q4"} <= set(periods)
        assert list(final) == FINAL_KEYS and final["status"] == "Final" and final["period"] == "FT"
        assert final["live"] is False and final["ended"] is True and final["score"] == live[-1]["score"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z", final["finishedTimestamp"])
        h, a = map(int, final["score"].split("-"))
        assert 150 < h + a < 320 and h != a
        # a new connection gets the final state once
        ws2 = await http.ws_connect(server.sports_ws_url)
        assert json.loads(await recv_text(ws2)) == final
        await ws.close()
        await ws2.close()


async def test_ping_pong_keeps_the_connection_and_silence_closes_it() -> None:
    clk = Clock()
    async with SimServer(scfg(clk, ping_interval_s=0.1, pong_timeout_s=0.35)) as server, \
            aiohttp.ClientSession() as http:  # fmt: skip
        good = await http.ws_connect(server.sports_ws_url)
        mute = await http.ws_connect(server.sports_ws_url)
        assert json.loads(await recv_text(good))["status"] == "Scheduled"
        pings = 0
        t_end = time.monotonic() + 0.8
        while time.monotonic() < t_end:
            t = await recv_text(good, timeout=1.0)
            if t == "ping":
                pings += 1
                await good.send_str("pong")
        assert pings >= 5
        # the mute client saw its state and pings, then a close
        got = []
        t0 = time.monotonic()
        while True:
            msg = await mute.receive(timeout=2.0)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            got.append(msg.data)
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1008, "pong timeout")
        assert got[0].startswith('{"gameId"') and "ping" in got and time.monotonic() - t0 < 1.0
        # the answering client is still connected and still gets game updates
        to_update(server, clk)
        while (t := await recv_text(good)) == "ping":
            await good.send_str("pong")
        assert json.loads(t)["status"] == "InProgress"
        assert not good.closed
        await good.close()


# ---------------------------------------------------------------------------------------------
# the odds


async def test_odds_endpoint_shape_formats_and_quota() -> None:
    clk = Clock()
    async with SimServer(scfg(clk, odds_quota=10)) as server, aiohttp.ClientSession() as http:
        url = server.odds_url + "/v4/sports/basketball_nba/odds"
        status, body, h = await get(http, url, regions="us")
        assert status == 401 and body["error_code"] == "MISSING_KEY" and body["message"]
        status, body, h = await get(http, url, apiKey="k", regions="us,eu", oddsFormat="decimal", dateFormat="iso")
        assert status == 200
        assert (h["x-requests-remaining"], h["x-requests-used"], h["x-requests-last"]) == ("8", "2", "2")
        sample = json.loads(ODDS_SAMPLE.read_text())[0]
        (ev,) = body
        assert list(ev) == list(sample) and ev["sport_key"] == "basketball_nba" and ev["sport_title"] == "NBA"
        assert ev["home_team"] == "Boston Celtics" and ev["away_team"] == "Los Angeles Lakers"
        assert ev["commence_time"] == game(server)["tip"] and re.fullmatch(r"[0-9a-f]{32}", ev["id"])
        assert [b["key"] for b in ev["bookmakers"]] == ["pinnacle", "draftkings", "fanduel"]
        for b in ev["bookmakers"]:
            assert list(b) == list(sample["bookmakers"][0]) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                                                                              b["last_update"])  # fmt: skip
            (mk,) = b["markets"]
            assert list(mk) == list(sample["bookmakers"][0]["markets"][0]) and mk["key"] == "h2h"
            names = [o["name"] for o in mk["outcomes"]]
            assert names == sorted(names) == ["Boston Celtics", "Los Angeles Lakers"]  # the real API sorts by name
            prices = [o["price"] for o in mk["outcomes"]]
            assert all(isinstance(p, float) and p > 1 for p in prices)
            overround = sum(1 / p for p in prices) - 1
            assert 0.015 < overround < 0.06, overround
            assert devig_home(b, "Boston Celtics") == pytest.approx(0.6, abs=0.025)
        # american, unix dates, the other markets, one region
        status, body, h = await get(http, url, apiKey="k", regions="us", oddsFormat="american", dateFormat="unix",
                                    markets="h2h,spreads,totals")  # fmt: skip
        assert status == 200 and h["x-requests-last"] == "3" and h["x-requests-remaining"] == "5"
        (ev,) = body
        assert isinstance(ev["commence_time"], int) and [b["key"] for b in ev["bookmakers"]] == ["draftkings",
                                                                                                 "fanduel"]  # fmt: skip
        for b in ev["bookmakers"]:
            h2h, spreads, totals = b["markets"]
            assert [m["key"] for m in b["markets"]] == ["h2h", "spreads", "totals"]
            home = next(o for o in h2h["outcomes"] if o["name"] == "Boston Celtics")
            away = next(o for o in h2h["outcomes"] if o["name"] == "Los Angeles Lakers")
            assert isinstance(home["price"], int) and home["price"] < -100 < 100 < away["price"], h2h  # favourite
            sp = {o["name"]: o for o in spreads["outcomes"]}
            assert sp["Boston Celtics"]["point"] == -sp["Los Angeles Lakers"]["point"] < 0
            assert [o["name"] for o in totals["outcomes"]] == ["Over", "Under"]
            assert totals["outcomes"][0]["point"] == totals["outcomes"][1]["point"] > 150
            assert all(abs(o["price"]) >= 100 for m in b["markets"] for o in m["outcomes"])
        # the quota runs out: 401 OUT_OF_USAGE_CREDITS; another key has its own
        status, body, h = await get(http, url, apiKey="k", regions="us,eu,uk", markets="h2h,spreads")
        assert status == 401 and body["error_code"] == "OUT_OF_USAGE_CREDITS" and h["x-requests-remaining"] == "5"
        status, body, h = await get(http, url, apiKey="other", regions="us")
        assert status == 200 and h["x-requests-used"] == "1"
        # bad requests
        for params, code in (({"regions": "mars"}, "INVALID_REGION"), ({}, "MISSING_REGION"),
                             ({"regions": "us", "markets": "props"}, "INVALID_MARKET"),
                             ({"regions": "us", "oddsFormat": "hk"}, "INVALID_ODDS_FORMAT")):  # fmt: skip
            status, body, _ = await get(http, url, apiKey="k", **params)
            assert status == 422 and body["error_code"] == code, (params, body)
        status, body, _ = await get(http, server.odds_url + "/v4/sports/soccer_epl/odds", apiKey="k", regions="us")
        assert status == 404 and body["error_code"] == "UNKNOWN_SPORT"
        status, body, _ = await get(http, server.odds_url + "/v4/sports", apiKey="k")
        assert status == 200 and body[0]["key"] == "basketball_nba"
        # after the final whistle the game leaves the odds; an empty answer costs nothing
        finish(server, clk)
        status, body, h = await get(http, url, apiKey="other", regions="us")
        assert (status, body, h["x-requests-last"], h["x-requests-used"]) == (200, [], "0", "1")


# ---------------------------------------------------------------------------------------------
# Gamma and resolution


async def test_gamma_sports_market_and_resolution() -> None:
    clk = Clock()
    async with SimServer(scfg(clk, n_markets=1)) as server, aiohttp.ClientSession() as http:
        g = game(server)
        base = server.gamma_url
        status, ms, _ = await get(http, base + "/markets", slug=g["slug"])
        (gm,) = ms
        real = json.loads(MONEYLINE_SAMPLE.read_text())
        for k in ("sportsMarketType", "gameId", "gameStartTime", "eventStartTime", "secondsDelay", "groupItemTitle",
                  "feeSchedule", "feesEnabled", "feeType", "orderPriceMinTickSize", "orderMinSize", "outcomes",
                  "clobTokenIds", "events"):  # fmt: skip
            assert type(gm[k]) is type(real[k]), k
        assert gm["sportsMarketType"] == "moneyline" and gm["gameId"] == str(g["game_id"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00", gm["gameStartTime"])
        assert gm["eventStartTime"] == g["tip"] and gm["gameStartTime"][:10] == g["tip"][:10]
        assert gm["secondsDelay"] == 3 and gm["feeType"] == "sports_fees_v2" and gm["feesEnabled"] is True
        assert gm["feeSchedule"] == {"exponent": 1, "rate": 0.03, "takerOnly": True, "rebateRate": 0.25}
        assert gm["orderPriceMinTickSize"] == 0.01 and gm["orderMinSize"] == 5
        assert json.loads(gm["outcomes"]) == ["Celtics", "Lakers"]  # outcome 0: the home team
        assert json.loads(gm["clobTokenIds"]) == [g["home_token"], g["away_token"]]
        assert gm["question"] == "Celtics vs. Lakers" and gm["slug"] == g["slug"]
        (ev,) = gm["events"]
        assert ev["gameId"] == g["game_id"] and ev["seriesSlug"] == "nba" and ev["title"] == "Celtics vs. Lakers"
        assert ev["slug"] == g["slug"] and ev["live"] is False and ev["ended"] is False
        status, evs, _ = await get(http, base + "/events", slug=g["slug"])
        assert evs[0]["gameId"] == g["game_id"] and evs[0]["markets"][0]["conditionId"] == g["market"]
        status, series, _ = await get(http, base + "/series", slug="nba")
        status, page, _ = await get(http, base + "/events/keyset", series_id=series[0]["id"], closed="false")
        assert [e["slug"] for e in page["events"]] == [g["slug"]]
        status, evs, _ = await get(http, base + "/events", tag_slug="nba")
        assert [e["slug"] for e in evs] == [g["slug"]]
        status, evs, _ = await get(http, base + "/events")
        assert len(evs) == 2  # the walk market's event too
        status, clob, _ = await get(http, base + f"/markets/{g['market']}")
        assert [t["outcome"] for t in clob["tokens"]] == ["Celtics", "Lakers"]
        # the game plays; Gamma shows it live; the walk never touches the sports market
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([g["home_token"], g["away_token"]]))
        client.feed(await recv_text(ws))
        to_update(server, clk)
        walk = server.step(200)
        assert len(walk) > 200 and all(g["market"] not in f for f in walk)
        await sync(ws, client)
        status, ms, _ = await get(http, base + "/markets", slug=g["slug"])
        assert ms[0]["events"][0]["live"] is True and ms[0]["events"][0]["period"] == "Q1"
        finish(server, clk)
        await sync(ws, client)
        (res,) = [e for e in client.events if e["event_type"] == "market_resolved"]
        g = game(server)
        h, a = map(int, g["score"].split("-"))
        winner = g["home_token"] if h > a else g["away_token"]
        assert res["winning_asset_id"] == winner and res["winning_outcome"] == ("Celtics" if h > a else "Lakers")
        status, ms, _ = await get(http, base + "/markets", slug=g["slug"])
        assert ms[0]["closed"] is True and ms[0]["acceptingOrders"] is False
        assert json.loads(ms[0]["outcomePrices"]) == (["1", "0"] if h > a else ["0", "1"])
        assert ms[0]["events"][0]["ended"] is True and ms[0]["events"][0]["score"] == g["score"]
        assert (await get(http, server.rest_url + "/book", token_id=g["home_token"]))[0] == 404
        await ws.close()


async def test_sports_loop_starts_a_new_game() -> None:
    clk = Clock()
    async with SimServer(scfg(clk, sports_loop=True, game_seconds=60)) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str(sub_msg([], custom=True))
        await sync(ws)
        first = game(server)
        finish(server, clk)
        second = game(server)
        assert second["game_id"] != first["game_id"] and second["market"] != first["market"]
        assert second["status"] == "Scheduled" and second["tip"] > first["tip"]
        assert second["slug"] == first["slug"] + "-2"
        client = RefClient()
        await sync(ws, client)
        (nm,) = [e for e in client.events if e["event_type"] == "new_market"]
        assert nm["market"] == second["market"] and nm["outcomes"] == ["Celtics", "Lakers"]
        assert nm["sports_market_type"] == "moneyline" and nm["game_start_time"].endswith("+00")
        assert nm["fee_schedule"]["rate"] == "0.03"
        status, ms, _ = await get(http, server.gamma_url + "/markets", closed="false")
        assert [m["conditionId"] for m in ms] == [second["market"]]
        to_update(server, clk)
        assert game(server)["status"] == "InProgress"
        await ws.close()


# ---------------------------------------------------------------------------------------------
# the lag


async def test_market_lags_the_score_and_the_odds_do_not() -> None:
    clk = Clock()
    async with SimServer(scfg(clk)) as server, aiohttp.ClientSession() as http:
        sp = server.sports
        assert sp is not None
        run = sp.runs[0]
        g = game(server)
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([g["home_token"], g["away_token"]]))
        client.feed(await recv_text(ws))
        odds_url = server.odds_url + "/v4/sports/basketball_nba/odds"

        async def pinnacle() -> dict[str, Any]:
            status, body, _ = await get(http, odds_url, apiKey="k", regions="eu")
            assert status == 200
            return body[0]["bookmakers"][0]

        to_update(server, clk)  # the tip
        found = False
        for _ in range(150):
            t_s = sp.next_update_ns()
            assert t_s is not None
            clk.t = t_s - 1
            server.sports_tick()
            score0, p0, mid0, odds0 = game(server)["score"], run.p, mid(server), await pinnacle()
            clk.t = t_s
            server.sports_tick()
            t_prev = run.updates[-2][0]
            t_next = sp.next_update_ns()
            if game(server)["score"] == score0 or abs(run.p - p0) < 0.03 or t_s - t_prev <= LAG or \
                    t_next is None or t_next - t_s <= LAG:  # fmt: skip
                continue  # want a score that moves the price, well apart from the updates around it
            found = True
            # the bookmakers moved at once; the market did not
            odds1 = await pinnacle()
            assert odds1["last_update"] != odds0["last_update"]
            assert devig_home(odds1, "Boston Celtics") == pytest.approx(run.p, abs=0.025)
            assert mid(server) == mid0
            clk.t = t_s + LAG - 1_000_000
            server.sports_tick()
            assert mid(server) == mid0, "the book still sits on the old price a moment before the lag"
            clk.t = t_s + LAG
            server.sports_tick()
            m1, tick = mid(server), tick_of(server)
            assert abs(m1 - Decimal(str(run.p))) <= tick / 2 + Decimal("1e-9"), (m1, run.p)
            assert (m1 > mid0) == (run.p > p0), "the book moved toward the new TRUE probability"
            break
        assert found
        frames = await sync(ws, client)  # every frame's hash recomputes (RefClient)
        assert frames and client.counts.get("run", 0) >= 3
        await ws.close()


async def test_book_tracks_the_lagged_true_probability_over_a_game() -> None:
    """At every moment the book is centred on the TRUE probability of the last update at least
    ``market_lag_s`` old, with a 1-2 tick spread and full depth; every frame verifies."""
    clk = Clock()
    async with SimServer(scfg(clk)) as server, aiohttp.ClientSession() as http:
        sp = server.sports
        assert sp is not None
        run = sp.runs[0]
        g = game(server)
        ws = await http.ws_connect(server.ws_url)
        client = RefClient()
        await ws.send_str(sub_msg([g["home_token"], g["away_token"]]))
        client.feed(await recv_text(ws))
        checked = 0
        while (nxt := sp.next_update_ns()) is not None:
            for t in (nxt, nxt + LAG // 2, nxt + LAG):
                clk.t = max(clk.t, t)
                server.sports_tick()
                if run.game.ended:
                    break
                want = [p for ts, p in run.updates if ts <= clk.t - LAG][-1]
                st = server.state()["assets"][g["home_token"]]
                bb, ba, tick = Decimal(st["best_bid"]), Decimal(st["best_ask"]), Decimal(st["tick_size"])
                if 0.05 <= want <= 0.95:
                    assert abs((bb + ba) / 2 - Decimal(str(want))) <= tick / 2 + Decimal("1e-9"), (bb, ba, want)
                    assert (ba - bb) / tick in (1, 2)
                    checked += 1
                if 0.2 <= want <= 0.8:
                    m = run.market
                    assert len(m.bids) == len(m.asks) == 15  # SimConfig.levels
                    assert all(20 * 10**6 <= s <= 10_000 * 10**6 for s in (*m.bids.values(), *m.asks.values()))
            if clk.t % (20 * NS) < NS:
                await sync(ws, client)
        await sync(ws, client)
        assert checked > 80 and client.counts["run"] > 100
        client.check_mirrors([(g["home_token"], g["away_token"])])
        await ws.close()


async def test_zero_lag_recentres_at_once() -> None:
    clk = Clock()
    server = SimServer(scfg(clk, market_lag_s=0))
    assert server.sports is not None
    to_update(server, clk)
    for _ in range(30):
        to_update(server, clk)
        p = server.sports.runs[0].p
        if 0.05 <= p <= 0.95:
            assert abs(mid(server) - Decimal(str(p))) <= tick_of(server) / 2 + Decimal("1e-9")


async def test_same_seed_same_game() -> None:
    def play(seed: int) -> list[str]:
        clk = Clock()
        s = SimServer(scfg(clk, seed=seed, n_markets=1))
        return s.sports_tick(T0 + 400 * NS)

    a, b, c = play(11), play(11), play(12)
    assert a == b and a != c
    feed = [json.loads(f) for f in a if f.startswith('{"gameId"')]
    assert feed[-1]["status"] == "Final" and len(feed) > 60
    assert any('"event_type":"market_resolved"' in f.replace(" ", "") for f in a)


def test_config_checks_and_simfeed_params() -> None:
    for bad in ({"league": "nfl"}, {"p0": 1.2}, {"home": "X", "away": "X"}, {"game_seconds": 0},
                {"market_lag_s": -1}, {"recording": "x.jsonl"}):  # fmt: skip
        with pytest.raises(ValueError):
            SimConfig(sports=True, **bad)
    SimConfig(sports=False, league="nfl")  # not checked unless the game runs
    import msgspec

    p = msgspec.convert({"sports": True, "markets": 0, "home": "Miami Heat", "away": "Utah Jazz", "p0": 0.45,
                         "game_seconds": 60, "market_lag_s": 1.5, "sports_loop": True, "odds_quota": 20},
                        SimFeed.Params)  # fmt: skip
    c = SimFeed("sim", p).config()
    assert (c.sports, c.n_markets, c.home, c.away, c.p0, c.game_seconds, c.market_lag_s, c.sports_loop,
            c.odds_quota) == (True, 0, "Miami Heat", "Utah Jazz", 0.45, 60, 1.5, True, 20)  # fmt: skip
    s = SimServer(SimConfig(autostart=False, n_markets=0, sports=True, home="Miami Heat", away="Utah Jazz"))
    assert s.sports is not None and s.sports.runs[0].slug.startswith("nba-mia-uta-")


# ---------------------------------------------------------------------------------------------
# matching delay


async def test_marketable_orders_are_delayed_while_live() -> None:
    pytest.importorskip("py_clob_client_v2")
    from test_simexchange import Trader, settle, user_feed

    clk = Clock()
    # real-time pace (baskets ~30 s apart): a score with nothing else around it is easy to find
    async with SimServer(scfg(clk, game_seconds=2880, mined_ms=20, confirmed_ms=40)) as server, \
            aiohttp.ClientSession() as http:  # fmt: skip
        sp = server.sports
        assert sp is not None
        run = sp.runs[0]
        home = run.market.yes
        t = await Trader(server, http).login()
        uf = await user_feed(t)
        # pregame: no delay
        ask = game(server)["best_ask"]
        status, r = await t.post(t.order(home, "BUY", ask, "10", order_type="FAK"))
        assert status == 200 and r["status"] == "matched" and r["success"] is True
        to_update(server, clk)  # tip: live from now on
        # a resting order is not delayed
        status, r = await t.post(t.order(home, "BUY", "0.05", "10"))
        assert r["status"] == "live"
        # a marketable order is: matched 3 s later against the book as it is then
        limit = str(Decimal(game(server)["best_ask"]) + Decimal("0.05"))  # some room: the book may move meanwhile
        status, r = await t.post(t.order(home, "BUY", limit, "10", order_type="FAK"))
        assert status == 200 and r["success"] is True and r["status"] == "delayed" and r["orderID"]
        assert r["makingAmount"] == "" and r["tradeIDs"] == []
        oid = r["orderID"]
        status, o = await t.call("GET", f"/data/order/{oid}")
        assert o["status"] == "DELAYED"
        clk.t += 3 * NS - 1
        server.sports_tick()
        await uf.sync()
        assert not uf.of("order", id=oid) and not uf.of("trade", taker_order_id=oid)
        clk.t += 1
        server.sports_tick()
        await uf.wait(lambda x: isinstance(x, dict) and x.get("taker_order_id") == oid)
        (upd,) = uf.of("order", id=oid, type="UPDATE")
        assert upd["size_matched"] == "10"
        # a delayed order can be canceled before its match
        ask = game(server)["best_ask"]
        status, r = await t.post(t.order(home, "BUY", ask, "10", order_type="GTC"))
        assert r["status"] == "delayed"
        status, c = await t.call("DELETE", "/order", {"orderID": r["orderID"]})
        assert c["canceled"] == [r["orderID"]]
        clk.t += 5 * NS
        server.sports_tick()
        await uf.sync()
        assert not uf.of("trade", taker_order_id=r["orderID"])
        # a stale price: the home team scores, the book still shows the old ask; a FOK at it is
        # matched after the re-centre and killed
        killed = False
        for _ in range(150):
            nxt = sp.next_update_ns()
            assert nxt is not None
            clk.t = nxt - 1
            server.sports_tick()
            p_before, ask = run.p, game(server)["best_ask"]
            clk.t = nxt
            server.sports_tick()
            if run.p - p_before < 0.03 or nxt - run.updates[-2][0] <= LAG or (sp.next_update_ns() or 0) - nxt < 5 * NS:
                continue  # want a home basket that moves the price, apart from the updates around it
            clk.t = nxt + NS // 2
            status, r = await t.post(t.order(home, "BUY", ask, "10", order_type="FOK"))
            assert r["status"] == "delayed", r
            clk.t = nxt + 4 * NS
            server.sports_tick()
            assert Decimal(game(server)["best_ask"]) > Decimal(ask)
            await uf.wait(lambda x, oid=r["orderID"]: isinstance(x, dict) and x.get("id") == oid
                          and x.get("type") == "CANCELLATION")  # fmt: skip
            assert not uf.of("trade", taker_order_id=r["orderID"])
            killed = True
            break
        assert killed
        await settle(server)
        await uf.close()


# ---------------------------------------------------------------------------------------------
# the CLI


def test_cli_sim_sports_subprocess() -> None:
    proc = subprocess.Popen([str(CLI), "--log-level", "WARNING", "sim", "--port", "0", "--markets", "0", "--sports",
                             "--game-seconds", "60", "--market-lag", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or []], daemon=True).start()
    try:
        text = ""
        deadline = time.monotonic() + 15
        while "/odds" not in text and time.monotonic() < deadline:
            try:
                text += lines.get(timeout=0.2)
            except queue.Empty:
                if proc.poll() is not None:
                    break
        assert "/ws/sports" in text and "nba-bos-lal-" in text and "/v4/sports/basketball_nba/odds" in text, text
        url = re.search(r"ws://127\.0\.0\.1:\d+/ws/sports", text)
        assert url is not None

        async def first_frame() -> dict[str, Any]:
            async with aiohttp.ClientSession() as http, http.ws_connect(url.group(0)) as ws:
                return json.loads(await recv_text(ws, timeout=5))

        assert asyncio.run(first_frame())["slug"].startswith("nba-bos-lal-")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
